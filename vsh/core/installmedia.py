"""Install media for ``vsh install --location``: the kernel and initrd of an install tree.

``--location`` names an ISO image, a directory holding an install tree, or an http(s)/ftp
URL of one, with optional ``kernel=`` and ``initrd=`` paths inside it. As virt-install does,
vsh looks for the kernel and initrd where the distributions put them (:data:`TREES`), copies
them out (reading an ISO with pycdlib: nothing is mounted), and ``--initrd-inject`` appends
files to the copied initrd as one more cpio archive (the kernel unpacks every archive
concatenated in an initrd, so a preseed or kickstart file lands in the installer's root).
"""

from __future__ import annotations

import os
from collections import namedtuple

from vsh.core.errors import InvalidArgument, NotFound, VshError

#: (kernel, initrd) inside install trees and ISOs, in the order they are tried
TREES = (
    ("install.amd/vmlinuz", "install.amd/initrd.gz"),                      # Debian ISO
    ("install.amd/xen/vmlinuz", "install.amd/xen/initrd.gz"),
    ("debian-installer/amd64/linux", "debian-installer/amd64/initrd.gz"),  # Debian/Ubuntu netboot tree
    ("main/installer-amd64/current/images/netboot/debian-installer/amd64/linux",
     "main/installer-amd64/current/images/netboot/debian-installer/amd64/initrd.gz"),
    ("casper/vmlinuz", "casper/initrd"),                                   # Ubuntu live server
    ("casper/hwe-vmlinuz", "casper/hwe-initrd"),
    ("install/vmlinuz", "install/initrd.gz"),
    ("images/pxeboot/vmlinuz", "images/pxeboot/initrd.img"),               # Fedora, RHEL, CentOS
    ("boot/x86_64/loader/linux", "boot/x86_64/loader/initrd"),             # openSUSE
    ("boot/vmlinuz-lts", "boot/initramfs-lts"),                            # Alpine
    ("boot/vmlinuz-virt", "boot/initramfs-virt"),
    ("isolinux/vmlinuz", "isolinux/initrd.img"),                           # generic isolinux trees
    ("boot/vmlinuz", "boot/initrd.img"),
)
MAX_BOOT_FILE = 2 << 30
URL_TIMEOUT = 60

Location = namedtuple("Location", "source kind kernel initrd")


def parse_location(text: str) -> Location:
    """``PATH|URL[,kernel=REL,initrd=REL]`` → :class:`Location` (``kind`` iso, dir or url)."""
    from vsh.core.installopts import split_options, unknown_option

    source = kernel = initrd = None
    for key, value in split_options(text, "--location"):
        if key is None and source is None:
            source = value
        elif key in ("kernel", "initrd"):
            rel = value.strip("/")
            if not rel or ".." in rel.split("/"):
                raise InvalidArgument(f"--location: {key}= must be a path inside the install tree")
            kernel, initrd = (rel, initrd) if key == "kernel" else (kernel, rel)
        else:
            raise unknown_option(key, value, "location", ("PATH", "URL", "kernel=", "initrd="))
    if not source:
        raise InvalidArgument("--location: give an ISO image, an install tree directory or its URL")
    if (kernel is None) != (initrd is None):
        raise InvalidArgument("--location: kernel= and initrd= go together")
    if source.split("://", 1)[0].lower() in ("http", "https", "ftp") and "://" in source:
        return Location(source.rstrip("/") + "/", "url", kernel, initrd)
    path = os.path.abspath(os.path.expanduser(source))
    if os.path.isdir(path):
        return Location(path, "dir", kernel, initrd)
    if os.path.isfile(path):
        return Location(path, "iso", kernel, initrd)
    raise NotFound(f"--location: cannot access '{source}': No such file or directory")


def _candidates(loc: Location) -> tuple:
    return ((loc.kernel, loc.initrd),) if loc.kernel else TREES


def fetch_boot_files(loc: Location, dest_dir: str, stem: str) -> tuple[str, str]:
    """Copy the kernel and initrd of ``loc`` into ``dest_dir`` as ``STEM-vmlinuz`` and
    ``STEM-initrd``; returns their paths. NotFound names what was looked for."""
    kernel_out = os.path.join(dest_dir, f"{stem}-vmlinuz")
    initrd_out = os.path.join(dest_dir, f"{stem}-initrd")
    if loc.kind == "iso":
        _from_iso(loc, kernel_out, initrd_out)
    else:
        for kernel, initrd in _candidates(loc):
            try:
                if loc.kind == "dir":
                    _copy_file(os.path.join(loc.source, kernel), kernel_out)
                    _copy_file(os.path.join(loc.source, initrd), initrd_out)
                else:
                    _download(loc.source + kernel, kernel_out)
                    _download(loc.source + initrd, initrd_out)
                break
            except FileNotFoundError:
                continue
        else:
            raise _not_found(loc)
    return kernel_out, initrd_out


def _not_found(loc: Location) -> NotFound:
    where = {"iso": "ISO image", "dir": "install tree", "url": "install tree at"}[loc.kind]
    if loc.kernel:
        return NotFound(f"--location: {where} '{loc.source}' has no {loc.kernel} and {loc.initrd}")
    return NotFound(f"--location: could not find a kernel and initrd in {where} '{loc.source}'",
                    hint="name them: --location SOURCE,kernel=PATH,initrd=PATH")


def _copy_file(src: str, dest: str) -> None:
    if not os.path.isfile(src):
        raise FileNotFoundError(src)
    import shutil

    with open(src, "rb") as fin, _create(dest) as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


def _create(path: str):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    return os.fdopen(fd, "wb")


def _download(url: str, dest: str) -> None:
    import urllib.error
    import urllib.request

    try:
        resp = urllib.request.urlopen(url, timeout=URL_TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise FileNotFoundError(url) from None
        raise VshError(f"--location: cannot fetch '{url}': HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise VshError(f"--location: cannot fetch '{url}': {reason}") from None
    total = 0
    with resp, _create(dest) as fout:
        while True:
            try:
                chunk = resp.read(1 << 20)
            except OSError as exc:
                raise VshError(f"--location: reading '{url}' failed: {exc}") from None
            if not chunk:
                break
            total += len(chunk)
            if total > MAX_BOOT_FILE:
                raise VshError(f"--location: '{url}' is larger than {MAX_BOOT_FILE >> 30} GiB; not a kernel or initrd")
            fout.write(chunk)


def _from_iso(loc: Location, kernel_out: str, initrd_out: str) -> None:
    import pycdlib
    from pycdlib.pycdlibexception import PyCdlibException

    iso = pycdlib.PyCdlib()
    try:
        iso.open(loc.source)
    except (PyCdlibException, OSError) as exc:
        raise InvalidArgument(f"--location: '{loc.source}' is not a readable ISO image: {exc}") from None
    try:
        for kernel, initrd in _candidates(loc):
            facade_k = _iso_lookup(iso, kernel)
            facade_i = _iso_lookup(iso, initrd) if facade_k else None
            if facade_k and facade_i:
                _iso_extract(iso, facade_k, kernel_out)
                _iso_extract(iso, facade_i, initrd_out)
                return
        raise _not_found(loc)
    finally:
        iso.close()


def _iso_lookup(iso, rel: str):
    """(keyword, path) by which pycdlib finds ``/rel`` in the ISO (Rock Ridge, Joliet, UDF or plain
    ISO 9660 names), or None."""
    from pycdlib.pycdlibexception import PyCdlibException

    path = "/" + rel
    tries = []
    if iso.has_rock_ridge():
        tries.append(("rr_path", path))
    if iso.has_joliet():
        tries.append(("joliet_path", path))
    if iso.has_udf():
        tries.append(("udf_path", path))
    parts = path.upper().split("/")
    base = parts[-1] if "." in parts[-1] else parts[-1] + "."
    tries.append(("iso_path", "/".join(parts[:-1] + [base.replace("-", "_") + ";1"])))
    for key, value in tries:
        try:
            rec = iso.get_record(**{key: value})
        except PyCdlibException:
            continue
        if not rec.is_dir():
            return key, value
    return None


def _iso_extract(iso, facade, dest: str) -> None:
    key, value = facade
    with _create(dest) as fout:
        iso.get_file_from_iso_fp(fout, **{key: value})


def _cpio_entry(name: str, data: bytes, mode: int, ino: int) -> bytes:
    """One entry of a "newc" cpio archive (the format the kernel unpacks from an initrd)."""
    raw = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0)
    head = b"070701" + b"".join(f"{v:08X}".encode() for v in fields) + raw
    head += b"\0" * (-len(head) % 4)
    return head + data + b"\0" * (-len(data) % 4)


def inject_files(initrd: str, files: list[str]) -> None:
    """Append ``files`` (host paths; each lands in the initrd's root under its base name) to the
    initrd as one more gzip-compressed cpio archive, as virt-install's --initrd-inject does."""
    import gzip
    import stat

    archive = []
    for n, path in enumerate(files, start=1):
        name = os.path.basename(path.rstrip("/"))
        if not name or name in (".", ".."):
            raise InvalidArgument(f"--initrd-inject: '{path}' does not name a file")
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                raise InvalidArgument(f"--initrd-inject: '{path}' is not a regular file")
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise NotFound(f"--initrd-inject: cannot read '{path}': {exc.strerror}") from None
        archive.append(_cpio_entry(name, data, stat.S_IFREG | (st.st_mode & 0o7777), n))
    archive.append(_cpio_entry("TRAILER!!!", b"", 0, 0))
    blob = gzip.compress(b"".join(archive), compresslevel=6)
    with open(initrd, "ab") as fh:
        size = fh.tell()
        fh.write(b"\0" * (-size % 4) + blob)       # each archive starts on a 4-byte boundary
