"""What the builder reads from a qcow2 image header before it lets QEMU open the image:
the backing file it names (refused unless the XML declares it) and an external data file
(always refused)."""

from __future__ import annotations

import struct

from vsh.core.errors import InvalidArgument

QCOW2_EXT_DATA_FILE = 0x44415441          # header extension: external data file name
QCOW2_INCOMPAT_DATA_FILE = 1 << 2          # incompatible feature bit: data in an external file


def qcow2_backing_file(path: str) -> str | None:
    """The backing file name in a qcow2 header, or None.  Raises InvalidArgument if not qcow2."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if len(head) < 20 or head[:4] != b"QFI\xfb":
                raise InvalidArgument("'%s' is not a qcow2 image (the domain XML says type='qcow2')" % path)
            offset, size = struct.unpack(">QI", head[8:20])
            if not offset or not size:
                return None
            f.seek(offset)
            return f.read(min(size, 4096)).decode("utf-8", "replace")
    except OSError as e:
        raise InvalidArgument("cannot read '%s': %s" % (path, e.strerror)) from None


def qcow2_data_file(path: str) -> str | None:
    """The external data file a qcow2 (v3) image keeps its guest data in, or None.

    QEMU opens the file the header names (read-write) unless told another one, so an
    image can point a guest at any host file: vsh refuses such images.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(104)
            if len(head) < 104 or head[:4] != b"QFI\xfb" or struct.unpack(">I", head[4:8])[0] < 3:
                return None
            if not struct.unpack(">Q", head[72:80])[0] & QCOW2_INCOMPAT_DATA_FILE:
                return None
            f.seek(struct.unpack(">I", head[100:104])[0])
            exts = f.read(65536)
    except OSError as e:
        raise InvalidArgument("cannot read '%s': %s" % (path, e.strerror)) from None
    off = 0
    while off + 8 <= len(exts):
        etype, elen = struct.unpack(">II", exts[off:off + 8])
        if etype == 0:
            break
        if etype == QCOW2_EXT_DATA_FILE:
            return exts[off + 8:off + 8 + elen].decode("utf-8", "replace")
        off += 8 + ((elen + 7) & ~7)
    return ""
