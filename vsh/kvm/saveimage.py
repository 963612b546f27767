"""The save image: a small header with the domain XML, then QEMU's migration stream.

Layout (all integers big-endian)::

    0   16 bytes  magic: MAGIC when complete, PARTIAL while QEMU still writes
    16  u32       format version (1)
    20  u32       flags (bit 0: the guest was running, so restore resumes it)
    24  u32       length of the XML in bytes
    28  u64       offset of the migration stream (a multiple of 4096)
    36  ...       the domain XML (UTF-8), zero padding up to the stream

``save`` writes the header with the PARTIAL magic, QEMU appends its migration
stream through a file descriptor, and only once QEMU reports the migration
complete (and the data is on disk) is the magic switched to MAGIC. A file with
the wrong magic is never restored. No compression: restoring is a plain read.
"""

from __future__ import annotations

import os
import struct

from vsh.core.errors import InvalidArgument, OperationInvalid
from vsh.core.inputfile import OPEN_ERRORS, open_failed

MAGIC = b"vsh-qemu-save\x00\x00\x01"
PARTIAL = b"vsh-qemu-part\x00\x00\x01"
VERSION = 1
FLAG_RUNNING = 1
ALIGN = 4096
MAX_XML = 10 * 1024 * 1024
_HEAD = struct.Struct(">16sIIIQ")


class SaveImage:
    """What a save image's header says."""

    def __init__(self, path: str, xml: str, running: bool, data_offset: int, complete: bool):
        self.path = path
        self.xml = xml
        self.running = running
        self.data_offset = data_offset
        self.complete = complete


def header_bytes(xml: str, running: bool, partial: bool = True) -> bytes:
    data = xml.encode("utf-8")
    if len(data) > MAX_XML:
        raise InvalidArgument("the domain XML is too large for a save image")
    used = _HEAD.size + len(data) + 1
    offset = (used + ALIGN - 1) // ALIGN * ALIGN
    head = _HEAD.pack(PARTIAL if partial else MAGIC, VERSION, FLAG_RUNNING if running else 0, len(data), offset)
    return head + data + b"\x00" * (offset - _HEAD.size - len(data))


def create(path: str, xml: str, running: bool) -> int:
    """Create ``path`` (0600, must not exist) holding a partial header; return the stream offset."""
    head = header_bytes(xml, running)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(head)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    return len(head)


def complete(fd: int, drop_cache: bool = False) -> None:
    """The stream is written: make it durable, then mark the image complete (and durable)."""
    os.fdatasync(fd)
    os.pwrite(fd, MAGIC, 0)
    os.fdatasync(fd)
    if drop_cache:
        drop_page_cache(fd)


def drop_page_cache(fd: int) -> None:
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


def read(path: str) -> SaveImage:
    """Read and check the header of a save image (virsh's error wording)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD.size)
            if len(head) < _HEAD.size:
                raise OperationInvalid("operation failed: failed to read qemu header")
            magic, version, flags, xml_len, offset = _HEAD.unpack(head)
            if magic == PARTIAL:
                raise OperationInvalid("operation failed: save image is incomplete")
            if magic != MAGIC:
                raise OperationInvalid("operation failed: image magic is incorrect")
            if version != VERSION:
                raise OperationInvalid(f"operation failed: image version is not supported ({version} > {VERSION})")
            if xml_len > MAX_XML or offset < _HEAD.size + xml_len or offset % ALIGN:
                raise OperationInvalid("operation failed: save image header is damaged")
            data = fh.read(xml_len)
    except OPEN_ERRORS as exc:
        raise open_failed(path, exc) from None
    if len(data) < xml_len:
        raise OperationInvalid("operation failed: failed to read domain XML from the save image")
    try:
        xml = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OperationInvalid("operation failed: the domain XML in the save image is not UTF-8") from None
    return SaveImage(os.fspath(path), xml, bool(flags & FLAG_RUNNING), offset, True)


def tmp_path_for(final: str) -> str:
    """A hidden temporary name next to ``final`` (renamed into place when complete)."""
    directory = os.path.dirname(os.path.abspath(final))
    return os.path.join(directory, f".vsh-save-{os.getpid()}-{os.urandom(4).hex()}.part")
