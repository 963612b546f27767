"""What the builder reads from a qcow2 image header (``vsh.core.qcow2``, the one header parser)
before it lets QEMU open the image: the backing file it names (refused unless the XML declares
it) and an external data file (always refused)."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument


def qcow2_backing_file(path: str) -> str | None:
    """The backing file name in a qcow2 header, or None.  Raises InvalidArgument if not qcow2."""
    from vsh.core.qcow2 import MAGIC, read_header

    try:
        with open(path, "rb") as f:
            if f.read(4) != MAGIC:
                raise InvalidArgument("'%s' is not a qcow2 image (the domain XML says type='qcow2')" % path)
            hdr = read_header(f.fileno())
    except OSError as e:
        raise InvalidArgument("cannot read '%s': %s" % (path, e.strerror)) from None
    return hdr.backing if hdr is not None else None


def qcow2_data_file(path: str) -> str | None:
    """The external data file a qcow2 (v3) image keeps its guest data in, or None
    ("" when the header says so without naming one).

    QEMU opens the file the header names (read-write) unless told another one, so an
    image can point a guest at any host file: vsh refuses such images.
    """
    from vsh.core.qcow2 import INCOMPAT_DATA_FILE, read_header_at

    try:
        hdr = read_header_at(path)
    except OSError as e:
        raise InvalidArgument("cannot read '%s': %s" % (path, e.strerror)) from None
    if hdr is None or not hdr.incompatible & INCOMPAT_DATA_FILE:
        return None
    return hdr.data_file_name or ""
