"""The image files of snapshots: qemu-img (create, snapshot, rebase, info), copies, fresh
names, and the small file helpers the engine shares.
"""

from __future__ import annotations

import os
import subprocess

from vsh.core.errors import Unsupported, VshError
from vsh.core.store import fsync_dir
from vsh.core.store import remove_file as unlink  # noqa: F401  (the engine's name for it)

#: The formats of the block nodes that are images (for the live node names).
FORMATS = ("qcow2", "raw")


def real_path(path: str) -> str:
    return os.path.realpath(path)


def qemu_img(*args: str, what: str | None = None) -> str:
    """Run qemu-img (through :func:`vsh.core.qemuimg.qemu_img`, with an hour's timeout); its
    output as text. A failure is the engine's internal error."""
    from vsh.core.qemuimg import qemu_img as run

    try:
        return run(list(args), what=what, timeout=3600).decode("utf-8", "replace")
    except Unsupported:
        raise
    except VshError as err:
        raise VshError(f"internal error: {err.lines[0]}", *err.lines[1:]) from None


def image_size(path: str, fmt: str) -> int:
    """Virtual size of an image (qcow2 header, or a raw file's length)."""
    from vsh.kvm import qcow2

    if fmt == "qcow2":
        return qcow2.read_info(path).size
    st = os.stat(path)
    if st.st_size:
        return st.st_size
    with open(path, "rb") as fh:     # a block device
        return fh.seek(0, os.SEEK_END)


def tmp_for(path: str) -> str:
    """The temporary name a new image is written under (fixed: recovery removes it)."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name[:200]}.vsh-part")


def create_overlay(path: str, base: str, base_fmt: str, size: int) -> None:
    """A new qcow2 overlay at ``path`` (it must not exist), written under a temporary name."""
    tmp = tmp_for(path)
    unlink(tmp)
    try:
        qemu_img("create", "-q", "-f", "qcow2", "-b", base, "-F", base_fmt, "-u", tmp, str(size),
                 what=f"creating overlay '{path}'")
        os.chmod(tmp, 0o600)
        fsync(tmp)
        os.link(tmp, path)          # fails if path exists: never overwrite
    finally:
        unlink(tmp)
    fsync_dir(os.path.dirname(path))


def copy_image(src: str, dst: str) -> None:
    """A full copy (sparse; reflinked where the filesystem can) under a temporary name."""
    tmp = tmp_for(dst)
    unlink(tmp)
    try:
        proc = subprocess.run(["cp", "--reflink=auto", "--sparse=always", "--", src, tmp],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise VshError(f"internal error: copying '{src}' failed: {proc.stderr.strip()}")
        os.chmod(tmp, 0o600)
        fsync(tmp)
        os.link(tmp, dst)
    finally:
        unlink(tmp)
    fsync_dir(os.path.dirname(dst))


def fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tags_of(path: str) -> list[str]:
    from vsh.kvm import qcow2

    if not os.path.exists(path) or not qcow2.is_qcow2(path):
        return []
    return qcow2.read_info(path).tags()


def fresh_path(base: str, label: str, taken: set | None = None) -> str:
    """``<dir>/<stem>.<label>`` (libvirt's overlay names), or with ``-N`` if taken."""
    directory, name = os.path.split(base)
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    candidate = os.path.join(directory, f"{stem}.{label}")
    n = 1
    while os.path.lexists(candidate) or (taken and candidate in taken):
        n += 1
        candidate = os.path.join(directory, f"{stem}.{label}-{n}")
    return candidate


def short_id() -> str:
    return os.urandom(2).hex()
