"""QEMU's option syntax and the value checks every device family shares.

``opts("virtio-blk-pci", ("id", "d0"), ("serial", "a,b"))`` is
``virtio-blk-pci,id=d0,serial=a,,b``: commas in values are doubled, booleans
are on/off, ``None`` pairs and values are left out.  ``split_opts`` undoes it.
The checks raise ``InvalidArgument`` (or ``NotFound``) with a message naming
the element they were given.
"""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, NotFound
from vsh.core.units import scale_for_unit
from vsh.kvm.qemuopts import split_opts  # noqa: F401  (the argv families use it from here)

#: The longest unix socket path the kernel takes (sun_path without its NUL).
SUN_PATH_MAX = 107


def esc(value: object) -> str:
    """A value inside QEMU's key=value option syntax (commas doubled)."""
    return str(value).replace(",", ",,")


def opts(head: str, *pairs: tuple[str, object] | None) -> str:
    """``head,key=value,...`` from (key, value) pairs; None pairs and None values are left out."""
    parts = [head]
    for p in pairs:
        if p is None:
            continue
        k, v = p
        if v is None:
            continue
        if isinstance(v, bool):
            v = "on" if v else "off"
        parts.append("%s=%s" % (k, esc(v)))
    return ",".join(parts)


def usb_port(dev) -> tuple[str, object] | None:
    """``port=`` of a USB device (a :class:`vsh.core.domain.Device`) from its ``<address type='usb'
    port='1.2'/>`` (None without one)."""
    a = dev.address
    if a is not None and a.type == "usb" and a.port:
        return ("port", a.port)
    return None


def given(value, default):
    """``value``, or ``default`` where the XML leaves it out (an empty value is kept, to be refused)."""
    return default if value is None else value


def number(value: str | None, what: str, default: int | None = None) -> int:
    """An integer attribute or text (decimal or 0x hex); ``default`` when absent, else an error."""
    if value is None or value == "":
        if default is None:
            raise InvalidArgument("%s is missing" % what)
        return default
    try:
        return int(value, 0)
    except ValueError:
        raise InvalidArgument("%s: '%s' is not a number" % (what, value)) from None


def size_bytes(text: str | None, unit: str | None, what: str) -> int:
    """A size given as a number and a unit (KiB when none) in bytes."""
    text = (text or "").strip()
    scale = scale_for_unit(unit or "KiB")
    if scale is None:
        raise InvalidArgument("%s: unknown unit '%s'" % (what, unit))
    try:
        n = int(text)
    except ValueError:
        raise InvalidArgument("%s: '%s' is not a number" % (what, text)) from None
    if n < 0:
        raise InvalidArgument("%s: must not be negative" % what)
    return n * scale


def check_socket_path(path: str, what: str) -> None:
    """Refuse a unix socket path longer than the kernel takes."""
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise InvalidArgument("%s: socket path is %d bytes long, the limit is %d: %s"
                              % (what, len(os.fsencode(path)), SUN_PATH_MAX, path))


def need_file(path: str | None, what: str) -> str:
    """``path``, which must be absolute and exist (a file the domain XML names)."""
    if not path:
        raise InvalidArgument("%s: no file given" % what)
    if not os.path.isabs(path):
        raise InvalidArgument("%s: '%s' is not an absolute path" % (what, path))
    if not os.path.exists(path):
        raise NotFound("%s: cannot access '%s': No such file or directory" % (what, path))
    return path
