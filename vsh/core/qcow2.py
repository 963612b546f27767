"""The qcow2 header, read with plain ``struct`` (never through QEMU): the one parser.

Storage pools read it for a volume's size, cluster size, compat level and backing
file; the QEMU command line for the backing file and the external data file it
must refuse; the snapshot code (:mod:`vsh.kvm.qcow2`) for the L1 table and the
internal snapshot table. Reading is safe while QEMU has the image open: these
fields are only ever replaced as a whole.

Format reference: QEMU's ``docs/interop/qcow2.txt``.
"""

from __future__ import annotations

import os

MAGIC = b"QFI\xfb"
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_DATA_FILE = 0x44415441
INCOMPAT_DATA_FILE = 1 << 2          # incompatible feature bit: guest data in an external file
COMPAT_LAZY_REFCOUNTS = 1 << 0
MAX_BACKING_NAME = 4096              # bytes of a backing file name vsh reads
_HEAD = 65536                        # the header and its extensions are read from this much


class Header:
    """What the header says (version 2 or 3)."""

    def __init__(self):
        self.version = 0
        self.size = 0
        self.cluster_bits = 16
        self.encrypted = False
        self.l1_size = 0
        self.l1_offset = 0
        self.nb_snapshots = 0
        self.snapshots_offset = 0
        self.incompatible = 0                   # feature bits (version 3)
        self.compatible = 0
        self.backing: str | None = None         # as written in the header
        self.backing_length = 0                 # as the header gives it
        self.backing_format: str | None = None
        self.data_file_name: str | None = None  # the external data file extension

    @property
    def compat(self) -> str:
        return "0.10" if self.version == 2 else "1.1"

    @property
    def lazy_refcounts(self) -> bool:
        return bool(self.compatible & COMPAT_LAZY_REFCOUNTS)

    @property
    def data_file(self) -> bool:
        """The image keeps (or names) its guest data in another file."""
        return bool(self.incompatible & INCOMPAT_DATA_FILE) or self.data_file_name is not None


def read_header(fd: int) -> Header | None:
    """The header of an open file, or None when it is not qcow2 version 2 or 3 (qcow v1 included)."""
    import struct

    head = os.pread(fd, _HEAD, 0)
    if len(head) < 72 or head[:4] != MAGIC:
        return None
    (version, backing_off, backing_len, cluster_bits, size, crypt, l1_size, l1_offset, _rt_off,
     _rt_clusters, nb_snapshots, snapshots_offset) = struct.unpack_from(">IQIIQIIQQIIQ", head, 4)
    if version not in (2, 3):
        return None
    hdr = Header()
    hdr.version, hdr.size, hdr.cluster_bits, hdr.encrypted = version, size, cluster_bits, crypt != 0
    hdr.l1_size, hdr.l1_offset = l1_size, l1_offset
    hdr.nb_snapshots, hdr.snapshots_offset = nb_snapshots, snapshots_offset
    ext_start = 72
    if version == 3 and len(head) >= 104:
        hdr.incompatible, hdr.compatible = struct.unpack_from(">QQ", head, 72)
        ext_start = max(struct.unpack_from(">I", head, 100)[0], 104)
    pos = ext_start
    limit = min(len(head), backing_off) if backing_off else len(head)
    while pos + 8 <= limit:
        ext_type, ext_len = struct.unpack_from(">II", head, pos)
        if ext_type == 0:
            break
        body = head[pos + 8:pos + 8 + ext_len]
        if ext_type == EXT_BACKING_FORMAT:
            hdr.backing_format = body.decode("utf-8", "replace")
        elif ext_type == EXT_DATA_FILE:
            hdr.data_file_name = body.decode("utf-8", "replace")
        pos += 8 + ((ext_len + 7) & ~7)
    if backing_off and backing_len:
        hdr.backing_length = backing_len
        hdr.backing = os.pread(fd, min(backing_len, MAX_BACKING_NAME), backing_off).decode("utf-8", "replace")
    return hdr


def read_header_at(path: str) -> Header | None:
    """:func:`read_header` of the file at ``path`` (OSError when it cannot be read)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return read_header(fd)
    finally:
        os.close(fd)


def has_magic(path: str) -> bool:
    """The file starts with qcow's magic (any version); False when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == MAGIC
    except OSError:
        return False
