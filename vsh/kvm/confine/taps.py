"""Taps opened by the supervisor and handed to QEMU as file descriptors (QEMU runs without
CAP_NET_ADMIN, so it cannot create them), as libvirt does: ``/dev/net/tun`` with
``TUNSETIFF`` for the tap, ``/dev/vhost-net`` for its vhost fd.
"""

from __future__ import annotations

import fcntl
import os
import struct

from vsh.core.errors import VshError
from vsh.kvm.qemuopts import split_opts

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000


def open_tap(dev: str) -> int:
    """A file descriptor of the tap ``dev`` (made now, gone when the last fd closes)."""
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise VshError(f"internal error: cannot open /dev/net/tun for tap '{dev}': {exc.strerror}") from None
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
    except OSError as exc:
        os.close(fd)
        raise VshError(f"internal error: cannot create tap '{dev}': {exc.strerror}") from None
    return fd


def open_vhost() -> int:
    try:
        return os.open("/dev/vhost-net", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise VshError(f"internal error: cannot open /dev/vhost-net: {exc.strerror}") from None


def tap_name(netdev: str) -> str | None:
    """The ``ifname=`` of a ``tap,...`` -netdev text, else None."""
    parts = split_opts(netdev)
    if not parts or parts[0] != "tap":
        return None
    return next((p[7:] for p in parts[1:] if p.startswith("ifname=")), None)


def with_fds(netdev: str, fd, vhostfd=None) -> str:
    """The -netdev text of a tap by name rewritten to use ``fd`` (and ``vhostfd``): what
    QEMU refuses beside ``fd=`` (ifname, script, downscript) goes."""
    parts = [p for p in split_opts(netdev)
             if not p.startswith(("ifname=", "script=", "downscript=", "vhostfd="))]
    parts.insert(2 if len(parts) > 1 and parts[1].startswith("id=") else 1, f"fd={fd}")
    if vhostfd is not None:
        parts.append(f"vhostfd={vhostfd}")
    return ",".join(p.replace(",", ",,") for p in parts)


def wants_vhost(netdev: str) -> bool:
    return "vhost=on" in split_opts(netdev)


def open_for_argv(argv: list[str]) -> tuple[list[str], list[int]]:
    """``argv`` with every tap -netdev using an fd the supervisor opened, and those fds
    (inheritable; the caller closes them once QEMU holds its copies)."""
    out, fds = list(argv), []
    try:
        for i in range(len(out) - 1):
            if out[i] != "-netdev":
                continue
            dev = tap_name(out[i + 1])
            if dev is None:
                continue
            fd = open_tap(dev)
            fds.append(fd)
            vfd = None
            if wants_vhost(out[i + 1]):
                vfd = open_vhost()
                fds.append(vfd)
            out[i + 1] = with_fds(out[i + 1], fd, vfd)
        for fd in fds:
            os.set_inheritable(fd, True)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return out, fds
