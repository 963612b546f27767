"""Disk images, opened read-only with an explicit format.

An image is a :class:`Block`: bytes of a known size that can be read at any
offset.  Formats: ``raw``, ``qcow2`` (with backing chains), ``vmdk``,
``vhdx`` and ``vpc`` (VHD), read through the libyal bindings (libqcow,
libvmdk, libvhdi).  Every link of a qcow2 backing chain is opened with the
format recorded in its overlay and is never probed; a chain that loops, is
too deep, names a protocol instead of a file, or ends in something that is
not a disk image is refused with a :class:`VshError`.

Probing (:func:`detect_format`) is only used when the user gave no format.
It is deliberately conservative (see its docstring): anything it does not
recognise by a magic number at offset 0 is raw, and a *probed* image is not
allowed to pull in other host files (backing files, VMDK extents), because
a guest can write any header it likes into a raw disk.

The heavy libraries are imported inside the functions that need them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import bisect
import json
import os
import re
import stat

from vsh.core.errors import InvalidArgument, NotFound, Unsupported, VshError

FORMATS = ("raw", "qcow2", "vmdk", "vhdx", "vpc")
MAX_CHAIN_DEPTH = 16
SECTOR = 512
# What a libyal binding raises on damaged input (IOError is OSError).
LIB_ERRORS = (OSError, ValueError, MemoryError, OverflowError, SystemError, TypeError)
_PROTOCOL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def lib_message(exc: BaseException) -> str:
    """A short message from a libyal exception (its first root cause)."""
    text = str(exc).strip() or exc.__class__.__name__
    parts = [p.strip() for p in text.split(". ") if p.strip()]
    pick = parts[1] if len(parts) > 1 else parts[0]
    pick = re.sub(r"^(py)?lib\w+?: ", "", pick)
    pick = re.sub(r"^\w+: ", "", pick) if pick.startswith(("lib", "py")) else pick
    return pick.rstrip(".")


# --- blocks -----------------------------------------------------------------


class Block(ABC):
    """Read-only bytes of a known size."""

    size: int = 0
    name: str = "block"

    @abstractmethod
    def pread(self, length: int, offset: int) -> bytes:
        """Up to ``length`` bytes at ``offset``."""

    def read_exact(self, length: int, offset: int) -> bytes:
        """Read exactly *length* bytes (less only at the end of the block)."""
        if offset < 0 or length < 0:
            raise InvalidArgument(f"{self.name}: invalid read at offset {offset}")
        if offset >= self.size or length == 0:
            return b""
        length = min(length, self.size - offset)
        data = self.pread(length, offset)
        if len(data) != length:
            raise VshError(
                f"{self.name}: short read at offset {offset} "
                f"({len(data)} of {length} bytes): the image is truncated or damaged"
            )
        return data

    def direct(self):
        """``(fd, offset)`` when these bytes are a plain range of a host file."""
        return None

    def fileobj(self) -> "BlockFile":
        return BlockFile(self)

    def close(self) -> None:
        pass


class BlockFile:
    """A file-like view of a :class:`Block` for the libyal ``open_file_object``."""

    def __init__(self, block: Block):
        self.block = block
        self.pos = 0

    def read(self, size: int | None = None) -> bytes:
        if size is None or size < 0:
            size = max(0, self.block.size - self.pos)
        try:
            data = self.block.read_exact(size, self.pos)
        except VshError as e:
            raise OSError(str(e)) from None
        self.pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self.pos + offset
        elif whence == os.SEEK_END:
            pos = self.block.size + offset
        else:
            raise OSError("invalid whence")
        if pos < 0:
            raise OSError("negative seek position")
        self.pos = pos
        return pos

    def tell(self) -> int:
        return self.pos

    get_offset = tell

    def get_size(self) -> int:
        return self.block.size

    def close(self) -> None:
        pass


class FileBlock(Block):
    """A raw host file or block device."""

    def __init__(self, path: str, fd: int, size: int):
        self.path = path
        self.name = path
        self.fd = fd
        self.size = size

    def pread(self, length: int, offset: int) -> bytes:
        chunks = []
        while length > 0:
            try:
                data = os.pread(self.fd, length, offset)
            except OSError as e:
                raise VshError(f"{self.path}: read error at offset {offset}: {e.strerror}") from None
            if not data:
                break
            chunks.append(data)
            length -= len(data)
            offset += len(data)
        return b"".join(chunks)

    def direct(self):
        return (self.fd, 0)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class LibBlock(Block):
    """Bytes read through a libyal object with ``read_buffer_at_offset``."""

    def __init__(self, obj, size: int, name: str, keep=()):
        self.obj = obj
        self.size = size
        self.name = name
        self.keep = list(keep)  # objects that must outlive obj (file objects, parents)

    def pread(self, length: int, offset: int) -> bytes:
        try:
            return self.obj.read_buffer_at_offset(length, offset)
        except LIB_ERRORS as e:
            raise VshError(f"{self.name}: cannot read at offset {offset}: {lib_message(e)}") from None

    def close(self) -> None:
        for o in [self.obj, *self.keep]:
            try:
                o.close()
            except Exception:  # noqa: BLE001 - best effort on close
                pass
        self.keep = []


class SliceBlock(Block):
    """A range of another block (a partition)."""

    def __init__(self, parent: Block, offset: int, size: int, name: str):
        self.parent = parent
        self.offset = offset
        self.size = size
        self.name = name
        self.beyond_end = offset + size > parent.size

    def pread(self, length: int, offset: int) -> bytes:
        if self.beyond_end and self.offset + offset + length > self.parent.size:
            raise VshError(
                f"{self.name}: the partition extends past the end of the disk "
                f"(ends at byte {self.offset + self.size}, the disk has {self.parent.size} bytes)"
            )
        return self.parent.read_exact(length, self.offset + offset)

    def direct(self):
        d = self.parent.direct()
        if d is None or self.beyond_end:
            return None
        return (d[0], d[1] + self.offset)


class OverlayBlock(Block):
    """A qcow2 overlay whose backing file is not qcow2 (libqcow cannot chain those).

    *ranges* is QEMU's allocation map of the overlay alone (``qemu-img map`` with
    the backing file cut off): ``(start, length, kind, host_offset)`` with kind
    ``data`` (read from the overlay file at host_offset), ``zero`` or ``backing``.
    """

    def __init__(self, top: FileBlock, ranges, backing: Block, size: int, name: str):
        self.top = top
        self.ranges = ranges
        self.starts = [r[0] for r in ranges]
        self.backing = backing
        self.size = size
        self.name = name

    def pread(self, length: int, offset: int) -> bytes:
        out = []
        end = min(offset + length, self.size)
        pos = offset
        while pos < end:
            i = bisect.bisect_right(self.starts, pos) - 1
            if i < 0:
                raise VshError(f"{self.name}: no allocation data at offset {pos}")
            start, rlen, kind, host = self.ranges[i]
            if pos >= start + rlen:
                raise VshError(f"{self.name}: no allocation data at offset {pos}")
            n = min(end, start + rlen) - pos
            if kind == "data":
                out.append(self.top.read_exact(n, host + (pos - start)))
            elif kind == "zero":
                out.append(bytes(n))
            else:
                data = self.backing.pread(n, pos) if pos < self.backing.size else b""
                out.append(data + bytes(n - len(data)))
            pos += n
        return b"".join(out)

    def close(self) -> None:
        self.top.close()


# --- images -----------------------------------------------------------------


class Image(Block):
    """An opened disk image (the top of its chain)."""

    def __init__(self, path: str, format: str, block: Block, backing: "Image | None" = None,
                 handle=None, probed: bool = False):
        self.path = path
        self.name = path
        self.format = format
        self.block = block
        self.size = block.size
        self.backing = backing
        self.handle = handle  # the pyqcow.file of a chain libqcow resolves itself
        self.probed = probed

    def pread(self, length: int, offset: int) -> bytes:
        return self.block.pread(length, offset)

    def direct(self):
        return self.block.direct()

    def chain(self) -> list[tuple[str, str]]:
        out, img = [], self
        while img is not None:
            out.append((img.path, img.format))
            img = img.backing
        return out

    def close(self) -> None:
        img = self
        while img is not None:
            img.block.close()
            img = img.backing


def detect_format(path: str) -> str:
    """Guess the format of *path* from magic numbers at offset 0; raw otherwise.

    Conservative by design: ``QFI\\xfb`` with version 2 or 3 is qcow2, ``KDMV``
    or a ``# Disk DescriptorFile`` header is vmdk, ``vhdxfile`` is vhdx,
    ``conectix`` is a dynamic VHD (vpc).  Everything else - including LUKS,
    partition tables and filesystems - is raw, so a raw disk is never read as
    QEMU's ``luks`` format.  Images found this way are opened with
    ``probed=True``, which refuses backing files and external extents.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidArgument(f"{path}: is a directory, not a disk image") from None
    except OSError as e:
        raise VshError(f"{path}: {e.strerror}") from None
    if head[:4] == b"QFI\xfb" and head[4:8] in (b"\0\0\0\x02", b"\0\0\0\x03"):
        return "qcow2"
    if head[:4] == b"KDMV" or head.startswith(b"# Disk DescriptorFile"):
        return "vmdk"
    if head[:8] == b"vhdxfile":
        return "vhdx"
    if head[:8] == b"conectix":
        return "vpc"
    return "raw"


def open_image(path: str, format: str | None = None, *, probed: bool | None = None) -> Image:
    """Open *path* read-only.  *format* None means :func:`detect_format`."""
    path = os.fspath(path)
    if format is None:
        fmt = detect_format(path)
        return _open(path, fmt, probed=True if probed is None else probed, seen=set(), depth=0, role=None)
    fmt = format.lower()
    if fmt not in FORMATS:
        raise InvalidArgument(f"unknown disk format {format!r} (known: {', '.join(FORMATS)})")
    return _open(path, fmt, probed=bool(probed), seen=set(), depth=0, role=None)


def _stat_disk(path: str, fmt: str, role: str | None) -> os.stat_result:
    what = f"{role} {path}" if role else path
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"{what}: no such file") from None
    except OSError as e:
        raise VshError(f"{what}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"{what}: is a directory, not a disk image")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise InvalidArgument(f"{what}: is not a regular file or block device")
    if role and stat.S_ISREG(st.st_mode):
        real = os.path.realpath(path)
        if real.startswith(("/proc/", "/sys/", "/dev/")):
            raise InvalidArgument(f"{what}: refusing a backing file under {real.split('/')[1]}")
        if fmt == "raw" and (st.st_size == 0 or st.st_size % SECTOR):
            raise InvalidArgument(
                f"{what}: is not a disk image (its size, {st.st_size} bytes, "
                f"is not a whole number of {SECTOR}-byte sectors)"
            )
    return st


def _open(path: str, fmt: str, *, probed: bool, seen: set, depth: int, role: str | None) -> Image:
    if depth > MAX_CHAIN_DEPTH:
        raise VshError(f"{path}: backing chain deeper than {MAX_CHAIN_DEPTH} images")
    st = _stat_disk(path, fmt, role)
    key = (st.st_dev, st.st_ino)
    if key in seen:
        raise VshError(f"{path}: backing chain loops (this image is already in the chain)")
    seen.add(key)
    if fmt == "raw":
        return _open_raw(path, st, probed)
    if fmt == "qcow2":
        return _open_qcow2(path, probed, seen, depth)
    if fmt == "vmdk":
        return _open_vmdk(path, probed)
    return _open_vhdi(path, fmt)


def _open_raw(path: str, st: os.stat_result, probed: bool) -> Image:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise VshError(f"{path}: {e.strerror}") from None
    size = st.st_size if stat.S_ISREG(st.st_mode) else os.lseek(fd, 0, os.SEEK_END)
    return Image(path, "raw", FileBlock(path, fd, size), probed=probed)


def _open_qcow2(path: str, probed: bool, seen: set, depth: int) -> Image:
    import pyqcow

    q = pyqcow.file()
    try:
        q.open(path)
    except LIB_ERRORS as e:
        raise VshError(f"{path}: not a usable qcow2 image: {lib_message(e)}") from None
    try:
        if q.is_locked():
            q.close()
            raise Unsupported(f"{path}: encrypted qcow2 images are not supported")
        size = q.get_media_size()
        backing_name = q.get_backing_filename()
    except LIB_ERRORS as e:
        q.close()
        raise VshError(f"{path}: not a usable qcow2 image: {lib_message(e)}") from None
    if not backing_name:
        return Image(path, "qcow2", LibBlock(q, size, path), handle=q, probed=probed)
    q.close()
    if probed:
        raise InvalidArgument(
            f"{path}: looks like a qcow2 image with a backing file, but no format was given;"
            " vsh does not follow backing files of probed images",
            hint="give the format explicitly (--format qcow2)",
        )
    info = _qemu_img_json("info", path)
    bname = info.get("backing-filename") or backing_name
    bfmt = info.get("backing-filename-format")
    if not bfmt:
        raise VshError(
            f"{path}: its backing file {bname!r} has no recorded format, and vsh never probes backing files",
            hint="record it with: qemu-img rebase -u -F FORMAT -b BACKING IMAGE",
        )
    if bfmt not in FORMATS:
        raise Unsupported(f"{path}: backing file format {bfmt!r} is not supported")
    if bname.startswith("json:") or _PROTOCOL_RE.match(bname) and not bname.startswith("/"):
        raise Unsupported(f"{path}: backing file {bname!r} is not a local file")
    bpath = bname if os.path.isabs(bname) else os.path.join(os.path.dirname(os.path.abspath(path)), bname)
    backing = _open(bpath, bfmt, probed=False, seen=seen, depth=depth + 1, role=f"backing file of {path}:")
    fs = info.get("format-specific", {}).get("data", {})
    if info.get("encrypted") or fs.get("encrypt"):
        backing.close()
        raise Unsupported(f"{path}: encrypted qcow2 images are not supported")
    if fs.get("data-file"):
        backing.close()
        raise Unsupported(f"{path}: qcow2 images with an external data file are not supported")
    if backing.format == "qcow2" and backing.handle is not None:
        q = pyqcow.file()
        try:
            q.open(path)
            q.set_parent(backing.handle)
        except LIB_ERRORS as e:
            backing.close()
            raise VshError(f"{path}: cannot attach backing file {bpath}: {lib_message(e)}") from None
        return Image(path, "qcow2", LibBlock(q, size, path), backing=backing, handle=q)
    # A backing file libqcow cannot chain: read the overlay's own clusters at the
    # host offsets QEMU reports, and everything else from the backing image.
    ranges = []
    for ent in _qemu_img_json("map", path):
        start, length = int(ent["start"]), int(ent["length"])
        if not ent.get("present"):
            ranges.append((start, length, "backing", 0))
        elif ent.get("data"):
            if "offset" not in ent:
                backing.close()
                raise Unsupported(f"{path}: compressed clusters in an overlay over a {backing.format} image are not supported")
            ranges.append((start, length, "data", int(ent["offset"])))
        else:
            ranges.append((start, length, "zero", 0))
    ranges.sort()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        backing.close()
        raise VshError(f"{path}: {e.strerror}") from None
    top = FileBlock(path, fd, os.fstat(fd).st_size)
    return Image(path, "qcow2", OverlayBlock(top, ranges, backing, size, path), backing=backing)


def _qemu_img_json(cmd: str, path: str):
    """``qemu-img info|map`` of one qcow2 file alone (format given, backing cut off)."""
    from vsh.core.qemuimg import qemu_img

    spec = {"driver": "qcow2", "file": {"driver": "file", "filename": os.path.abspath(path)}, "backing": None}
    out = qemu_img([cmd, "--output=json", "-U", "json:" + json.dumps(spec)], what=f"{path}: qemu-img {cmd}",
                   timeout=60, missing="reading qcow2 backing chains needs qemu-img (Debian package qemu-utils)")
    try:
        return json.loads(out)
    except ValueError:
        raise VshError(f"{path}: qemu-img {cmd} printed something that is not JSON") from None


def _open_vmdk(path: str, probed: bool) -> Image:
    import pyvmdk

    h = pyvmdk.handle()
    try:
        h.open(path)
    except LIB_ERRORS as e:
        raise VshError(f"{path}: not a usable vmdk image: {lib_message(e)}") from None
    try:
        parent = h.get_parent_content_identifier()
        if parent not in (None, 0xFFFFFFFF):
            raise Unsupported(f"{path}: differencing (child) VMDK images are not supported")
        base = os.path.dirname(os.path.abspath(path))
        own = os.path.basename(path)
        for i in range(h.get_number_of_extents()):
            name = h.get_extent_descriptor(i).get_filename() or ""
            if not name:
                continue
            if "/" in name or "\\" in name or name in (".", ".."):
                raise InvalidArgument(f"{path}: extent file {name!r} is not in the image's directory")
            if probed and name != own:
                raise InvalidArgument(
                    f"{path}: this VMDK refers to extent file {name!r}, but no format was given",
                    hint="give the format explicitly (--format vmdk)",
                )
            _stat_disk(os.path.join(base, name), "raw" if name != own else "vmdk", None)
        h.open_extent_data_files()
        size = h.get_media_size()
    except LIB_ERRORS as e:
        h.close()
        raise VshError(f"{path}: not a usable vmdk image: {lib_message(e)}") from None
    return Image(path, "vmdk", LibBlock(h, size, path), probed=probed)


def _open_vhdi(path: str, fmt: str) -> Image:
    import pyvhdi

    f = pyvhdi.file()
    try:
        f.open(path)
    except LIB_ERRORS as e:
        raise VshError(f"{path}: not a usable {fmt} image: {lib_message(e)}") from None
    try:
        with open(path, "rb") as fh:
            is_vhdx = fh.read(8) == b"vhdxfile"
        if fmt == "vhdx" and not is_vhdx:
            raise InvalidArgument(f"{path}: is a VHD (vpc) image, not vhdx")
        if fmt == "vpc" and is_vhdx:
            raise InvalidArgument(f"{path}: is a VHDX image, not VHD (vpc)")
        if f.get_parent_filename():
            raise Unsupported(f"{path}: differencing {fmt} images are not supported")
        size = f.get_media_size()
    except LIB_ERRORS as e:
        f.close()
        raise VshError(f"{path}: not a usable {fmt} image: {lib_message(e)}") from None
    except VshError:
        f.close()
        raise
    return Image(path, fmt, LibBlock(f, size, path))
