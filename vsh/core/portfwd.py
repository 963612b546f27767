"""Port forwards of user-mode (slirp) interfaces, kept as vsh metadata in the domain XML.

libvirt has no way to say "forward host port 2222 to the guest's port 22" for
``<interface type='user'>`` with QEMU's built-in slirp stack (its
``<portForward>`` is for the passt backend only), so vsh keeps the forwards in
the domain's ``<metadata>``, in its own namespace, where libvirt keeps (and
ignores) them::

    <metadata>
      <vsh:net xmlns:vsh='https://vsh.example/xmlns/net/1'>
        <vsh:forward interface='0' proto='tcp' host='127.0.0.1' hostport='2222' guestport='22'/>
      </vsh:net>
    </metadata>

Attributes of ``<vsh:forward>`` (see docs/networking.md):

``hostport`` / ``guestport`` (required)
    1-65535.
``proto``
    ``tcp`` (default) or ``udp``.
``host``
    the host address to listen on, IPv4; default ``127.0.0.1`` (loopback only).
    ``0.0.0.0`` listens on every address.
``guest``
    the guest's IPv4 address; default: the address slirp's DHCP hands out first
    (10.0.2.15 on the default network).
``interface`` or ``mac``
    which ``<interface type='user'>``: its index among the domain's
    ``<interface>`` elements (0 is the first), or its MAC address; default 0.

The argv builder turns each forward into ``hostfwd=`` of the interface's
``-netdev user``. This module is pure: parsing, validation, the QEMU syntax and
the check that a host port is free.
"""

from __future__ import annotations

import re
from collections import namedtuple

from vsh.core.errors import InvalidArgument, OperationInvalid, XMLError

NS = "https://vsh.example/xmlns/net/1"
PREFIX = "vsh"
DEFAULT_HOST = "127.0.0.1"

_IPV4 = re.compile(r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}")
_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


class PortForward(namedtuple("PortForward", "proto host hostport guest guestport interface mac",
                             defaults=("tcp", DEFAULT_HOST, None, "", None, None, None))):
    """One forward: ``proto host:hostport -> guest:guestport`` on one interface."""

    __slots__ = ()

    def hostfwd(self) -> str:
        """QEMU's ``hostfwd=`` value: ``tcp:127.0.0.1:2222-:22``."""
        return "%s:%s:%d-%s:%d" % (self.proto, self.host, self.hostport, self.guest or "", self.guestport)

    def describe(self) -> str:
        return "%s %s:%d -> %s:%d" % (self.proto, self.host or "0.0.0.0", self.hostport,
                                      self.guest or "guest", self.guestport)

    def matches(self, index: int, mac: str | None) -> bool:
        """Does this forward belong to interface number ``index`` (with MAC ``mac``)?"""
        if self.mac is not None:
            return (mac or "").lower() == self.mac.lower()
        return (self.interface or 0) == index


def _port(value: str | None, what: str) -> int:
    text = (value or "").strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidArgument("%s: '%s' is not a port number (1-65535)" % (what, value if value is not None else ""))
    return int(text)


def _ipv4(value: str, what: str) -> str:
    if not _IPV4.fullmatch(value):
        raise InvalidArgument("%s: '%s' is not an IPv4 address (user-mode forwards are IPv4 only)" % (what, value))
    return value


def make(proto: str = "tcp", host: str | None = None, hostport=None, guest: str | None = None,
         guestport=None, interface=None, mac: str | None = None, what: str = "port forward") -> PortForward:
    """A checked PortForward from text values (as found in XML or on a command line)."""
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp"):
        raise InvalidArgument("%s: protocol '%s' is not tcp or udp" % (what, proto))
    host = DEFAULT_HOST if host is None else host
    if host != "":
        _ipv4(host, what + " host address")
    guest = guest or ""
    if guest:
        _ipv4(guest, what + " guest address")
    index = None
    if interface is not None:
        text = str(interface).strip()
        if not text.isdigit():
            raise InvalidArgument("%s: interface '%s' is not an interface number (0 is the first)" % (what, interface))
        index = int(text)
    if mac is not None:
        if not _MAC.fullmatch(mac):
            raise InvalidArgument("%s: '%s' is not a MAC address" % (what, mac))
        if index is not None:
            raise InvalidArgument("%s: give interface= or mac=, not both" % what)
        mac = mac.lower()
    return PortForward(proto, host, _port(str(hostport) if hostport is not None else None, what + " hostport"),
                       guest, _port(str(guestport) if guestport is not None else None, what + " guestport"),
                       index, mac)


def parse_spec(text: str, interface: int | None = None) -> PortForward:
    """The command-line form ``[HOSTADDR:]HOSTPORT:GUESTPORT[/tcp|udp]`` (``2222:22``, ``0.0.0.0:8080:80/tcp``)."""
    what = "port forward '%s'" % text
    body, _slash, proto = (text or "").strip().partition("/")
    parts = body.split(":")
    if len(parts) == 2:
        host, hostport, guestport = None, parts[0], parts[1]
    elif len(parts) == 3:
        host, hostport, guestport = parts
    else:
        raise InvalidArgument("%s: expected [HOSTADDR:]HOSTPORT:GUESTPORT[/tcp|udp], e.g. 2222:22" % what)
    return make(proto or "tcp", host, hostport, None, guestport, interface, None, what)


def _container(root):
    meta = root.find("metadata")
    if meta is None:
        return None
    return meta.find("{%s}net" % NS)


def forwards(root) -> list[PortForward]:
    """Every forward declared in the domain element ``root``, checked; [] when there are none."""
    net = _container(root)
    if net is None:
        return []
    out = []
    for i, el in enumerate(net.findall("{%s}forward" % NS)):
        what = "<vsh:forward> #%d" % i
        if el.get("hostport") is None or el.get("guestport") is None:
            raise XMLError("%s needs hostport= and guestport=" % what)
        try:
            fw = make(el.get("proto"), el.get("host"), el.get("hostport"), el.get("guest"),
                      el.get("guestport"), el.get("interface"), el.get("mac"), what)
        except InvalidArgument as err:
            raise XMLError(*err.lines) from None
        out.append(fw)
    seen: dict = {}
    for fw in out:
        key = (fw.proto, fw.hostport)
        if key in seen:
            raise XMLError("two port forwards use host port %s/%d" % (fw.proto, fw.hostport))
        seen[key] = fw
    return out


def add(root, fw: PortForward) -> None:
    """Append ``fw`` to the domain element's vsh metadata (created in libvirt's place if needed)."""
    from vsh.core.lxmlload import etree

    from vsh.core.xmlobject import ensure

    meta = ensure(root, "./metadata")
    net = meta.find("{%s}net" % NS)
    if net is None:
        net = etree.SubElement(meta, "{%s}net" % NS, nsmap={PREFIX: NS})
    el = etree.SubElement(net, "{%s}forward" % NS)
    if fw.mac is not None:
        el.set("mac", fw.mac)
    else:
        el.set("interface", str(fw.interface or 0))
    el.set("proto", fw.proto)
    el.set("host", fw.host)
    el.set("hostport", str(fw.hostport))
    if fw.guest:
        el.set("guest", fw.guest)
    el.set("guestport", str(fw.guestport))


def check_free(fw: PortForward, what: str = "port forward") -> None:
    """Refuse a forward whose host port is already taken (by another program or another guest).

    Binds the address and port the way QEMU's slirp will (SO_REUSEADDR for TCP,
    so a port in TIME_WAIT counts as free), then lets it go at once.
    """
    import errno
    import socket

    kind = socket.SOCK_STREAM if fw.proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if fw.proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((fw.host or "0.0.0.0", fw.hostport))
    except OSError as exc:
        where = "%s %s:%d" % (fw.proto, fw.host or "0.0.0.0", fw.hostport)
        if exc.errno == errno.EADDRINUSE:
            raise OperationInvalid("%s: host port %s is already in use" % (what, where),
                                   hint="pick another hostport, or stop what listens there "
                                        "(ss -ltnup shows it)") from None
        if exc.errno == errno.EACCES:
            raise OperationInvalid("%s: not allowed to listen on host port %s (ports below 1024 need "
                                   "privileges)" % (what, where)) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise OperationInvalid("%s: host address %s is not an address of this host"
                                   % (what, fw.host)) from None
        raise OperationInvalid("%s: cannot listen on host port %s: %s" % (what, where, exc.strerror)) from None
    finally:
        sock.close()
