"""The session's file commands: guestfish's ls, cat, stat, find, download, copy-out, df ...

Paths are guest paths in the session's mounted tree (:class:`~.fs.tree.MountTree`),
resolved inside the guest.  ``download`` and ``copy-out`` are the only ones
that write host files, and only where they are told to.
"""

from __future__ import annotations

import os

from vsh.core.errors import NotFound, VshError

from .fs.data import write_all
from .fs.paths import join_path


class SessionFiles:
    """The file half of :class:`~.session.GuestSession` (which provides ``tree``)."""

    def ls(self, directory: str) -> list[str]:
        return self.tree.listdir(directory)

    def ll(self, path: str) -> list[dict]:
        return self.tree.ll(path)

    def cat(self, path: str) -> bytes:
        return self.tree.read(path)

    read_file = cat

    def head(self, path: str) -> list[str]:
        return self.tree.head(path, 10)

    def head_n(self, nrlines: int, path: str) -> list[str]:
        return self.tree.head(path, int(nrlines))

    def tail(self, path: str) -> list[str]:
        return self.tree.tail(path, 10)

    def tail_n(self, nrlines: int, path: str) -> list[str]:
        return self.tree.tail(path, int(nrlines))

    def find(self, directory: str) -> list[str]:
        return self.tree.find(directory)

    def stat(self, path: str) -> dict:
        return self.tree.stat(path, follow=True)

    statns = stat

    def lstat(self, path: str) -> dict:
        return self.tree.stat(path, follow=False)

    lstatns = lstat

    def readlink(self, path: str) -> str:
        return self.tree.readlink(path)

    def realpath(self, path: str) -> str:
        return self.tree.realpath(path)

    def is_file(self, path: str, followsymlinks: bool = False) -> bool:
        return self.tree.is_kind(path, "f", follow=followsymlinks)

    def is_dir(self, path: str, followsymlinks: bool = False) -> bool:
        return self.tree.is_kind(path, "d", follow=followsymlinks)

    def is_symlink(self, path: str) -> bool:
        return self.tree.is_kind(path, "l", follow=False)

    def exists(self, path: str) -> bool:
        return self.tree.exists(path)

    def checksum(self, csumtype: str, path: str) -> str:
        return self.tree.checksum(csumtype, path)

    def iter_read(self, path: str, offset: int = 0, length: int | None = None):
        """Stream a guest file in chunks (for very large files)."""
        return self.tree.iter_read(path, offset, length)

    def download(self, remotefilename: str, filename: str) -> int:
        """Copy a guest file to a host file (or ``-``/a descriptor path); returns its size."""
        if filename == "-":
            return self.tree.copy_to_fd(remotefilename, 1)
        # check the source first so a failure leaves no empty file behind
        self.tree._file(remotefilename)
        try:
            fd = os.open(filename, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        except OSError as e:
            raise VshError(f"{filename}: {e.strerror}") from None
        try:
            return self.tree.copy_to_fd(remotefilename, fd)
        finally:
            os.close(fd)

    def download_offset(self, remotefilename: str, filename: str, offset: int, size: int) -> int:
        fd = os.open(filename, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        total = 0
        try:
            for data in self.tree.iter_read(remotefilename, int(offset), int(size)):
                write_all(fd, data)
                total += len(data)
        finally:
            os.close(fd)
        return total

    def copy_out(self, remote: str, localdir: str) -> list[str]:
        """Copy a guest file or directory (recursively) into a host directory; returns warnings."""
        if not os.path.isdir(localdir):
            raise NotFound(f"{localdir}: no such host directory")
        return self.tree.copy_out(remote, localdir)

    def du(self, path: str) -> int:
        return self.tree.du(path)

    def complete_path(self, prefix: str, limit: int = 500) -> list[str]:
        """Guest paths starting with *prefix* (directories end in ``/``), for tab completion.

        Never raises: nothing mounted, an unreadable directory or a bad prefix
        gives an empty list.
        """
        if not prefix.startswith("/") or () not in self.tree.mounts:
            return []
        head, _, stem = prefix.rpartition("/")
        directory = head or "/"
        try:
            names = self.tree.listdir(directory)
        except VshError:
            return []
        out = []
        for name in names:
            if not name.startswith(stem):
                continue
            full = f"{head}/{name}"
            out.append(full + "/" if self.tree.is_kind(full, "d") else full)
            if len(out) >= limit:
                break
        return out

    def df(self) -> list[dict]:
        """One row per mounted filesystem: sizes in bytes from its superblock (or estimated)."""
        rows = []
        for mp, fs in sorted(self.tree.mounts.items()):
            row = {"filesystem": fs.device.name, "mountpoint": join_path(mp), "type": fs.vfs_type}
            row.update(_df_numbers(fs, self.tree, join_path(mp)))
            row["use_percent"] = (100 * row["used"] + row["size"] - 1) // row["size"] if row["size"] else 0
            rows.append(row)
        return rows

    def file(self, path: str) -> str:
        """A description of the file's type, like ``file``."""
        import shutil
        import subprocess

        fs, node, _ = self.tree.resolve(path, follow=False)
        kind = node.kind
        if kind == "d":
            return "directory"
        if kind == "l":
            return "symbolic link"
        if kind in ("c", "b"):
            return "character device" if kind == "c" else "block device"
        if kind == "p":
            return "FIFO"
        if kind == "s":
            return "socket"
        size = fs.size(node)
        if size == 0:
            return "empty"
        head = b"".join(self.tree.iter_read(path, 0, 1 << 20))
        exe = shutil.which("file")
        if exe:
            try:
                res = subprocess.run([exe, "-b", "-"], input=head, capture_output=True, timeout=30)
                out = res.stdout.decode("utf-8", "replace").strip()
                if res.returncode == 0 and out:
                    return out
            except (OSError, subprocess.TimeoutExpired):
                pass
        if head.startswith(b"\x7fELF"):
            return "ELF executable"
        try:
            head.decode("ascii")
            return "ASCII text"
        except UnicodeDecodeError:
            return "data"


def _df_numbers(fs, tree, mountpoint: str) -> dict:
    """size / used / available in bytes for one filesystem."""
    nums = _superblock_numbers(fs)
    if nums is None:
        used = 0
        try:
            used = tree.du(mountpoint) * 1024
        except VshError:
            pass
        size = fs.block.size
        nums = {"size": size, "used": min(used, size), "available": max(0, size - used), "estimated": True}
    return nums


def _superblock_numbers(fs) -> dict | None:
    import re
    import shutil
    import subprocess

    tool = {"ext2": ("dumpe2fs", "-h"), "ext3": ("dumpe2fs", "-h"), "ext4": ("dumpe2fs", "-h"),
            "xfs": ("xfs_db", "-r", "-c", "sb 0", "-c", "p dblocks fdblocks blocksize")}.get(fs.vfs_type)
    if tool is None or shutil.which(tool[0]) is None:
        return None
    block = fs.block
    head = min(block.size, 8 << 20)
    fd = os.memfd_create("vsh-df", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, block.size)
        os.pwrite(fd, block.read_exact(head, 0), 0)
        res = subprocess.run([shutil.which(tool[0]), *tool[1:], f"/proc/self/fd/{fd}"], pass_fds=(fd,),
                             capture_output=True, timeout=30, env={**os.environ, "LC_ALL": "C"},
                             stdin=subprocess.DEVNULL)
    except (OSError, VshError, subprocess.TimeoutExpired):
        return None
    finally:
        os.close(fd)
    vals = {}
    for line in res.stdout.decode("utf-8", "replace").splitlines():
        m = re.match(r"^\s*([A-Za-z ]+?)\s*[:=]\s*(\d+)\s*$", line)
        if m:
            vals[m.group(1).strip().lower()] = int(m.group(2))
    try:
        if fs.vfs_type == "xfs":
            bs = vals["blocksize"]
            size, free, avail = vals["dblocks"] * bs, vals["fdblocks"] * bs, vals["fdblocks"] * bs
        else:
            bs = vals["block size"]
            size = vals["block count"] * bs
            free = vals["free blocks"] * bs
            avail = max(0, free - vals.get("reserved block count", 0) * bs)
    except KeyError:
        return None
    return {"size": size, "used": size - free, "available": avail, "estimated": False}
