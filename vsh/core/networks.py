"""Virtual networks of one connection, in libvirt's network XML format.

A network is a Linux bridge on the host that domains' ``<interface type='network'>``
NICs are plugged into (through a tap device each).  vsh keeps the definitions and
the state; :mod:`vsh.kvm.hostnet` creates and removes the bridge, the NAT rules and
the DHCP server.  Layout in the store::

    <config>/networks/NAME.xml          a definition (libvirt's <network>)
    <config>/networks/autostart/NAME    autostart mark
    <config>/networks/.lock             held while definitions or states change
    <config>/networks/.initialized      ``default`` has been defined once
    <runtime>/.networks/NAME/           an active network: state.json (with the
                                        live XML), dnsmasq.conf, dnsmasq.pid,
                                        leases, dnsmasq.log

Forward modes vsh runs (``<forward mode=...>``):

* ``nat`` (the default when ``<forward>`` has no mode): a bridge with an IPv4
  address, masquerading of the subnet's traffic to anywhere else, IP forwarding on;
* ``route``: the same without masquerading;
* ``open``: the bridge and its address, no firewall rules at all;
* no ``<forward>`` (isolated): the bridge and its address, forwarding to or from
  the bridge refused;
* ``bridge``: an existing host bridge (``<bridge name='br0'/>``); vsh creates
  nothing and only plugs taps into it.

DHCP (``<ip><dhcp><range/><host/></dhcp></ip>``) and DNS on the bridge address come
from dnsmasq, as with libvirt.  There is no daemon: a network marked autostart is
started by the first ``vsh start`` of a domain that needs it after the host boots
(or by ``net-start``).  A network whose bridge has gone (host rebooted, someone
deleted it, or vsh runs in another network namespace) is inactive.
"""

from __future__ import annotations

import json
import os
import re

from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, Unsupported, VshError, XMLError
from vsh.core.names import check_file_name, is_uuid, is_uuid_arg, normal_uuid

DEFAULT_NETWORK = "default"
FORWARD_MODES = ("nat", "route", "open", "bridge")
LIBVIRT_ONLY_MODES = ("passthrough", "private", "vepa", "hostdev")
MAX_NAME_BYTES = 255 - len(".xml")
IFNAMSIZ = 15
_MAC = re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}")
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
#: top-level elements vsh honours; anything else is refused rather than ignored
_KNOWN = ("name", "uuid", "title", "description", "metadata", "forward", "bridge", "mac", "domain", "dns",
          "ip", "mtu")
_ORDER = ("name", "uuid", "title", "description", "metadata", "forward", "bridge", "mtu", "mac", "domain",
          "dns", "ip")
STATE_FILE = "state.json"
LEASES_FILE = "leases"


# -- names and small checks ---------------------------------------------------------------


def check_network_name(name: str) -> None:
    """A network name becomes a file name in the store: refuse what could escape it."""
    check_file_name(name, "network", MAX_NAME_BYTES)


def check_ifname(name: str, what: str) -> None:
    if not _IFNAME.fullmatch(name or "") or name in (".", ".."):
        raise InvalidArgument(f"{what} '{name}' is not a valid interface name (1-{IFNAMSIZ} characters of "
                              "letters, digits, '_', '.', '-')")


def random_mac() -> str:
    tail = os.urandom(3)
    return "52:54:00:" + ":".join(f"{b:02x}" for b in tail)


def interface_exists(name: str) -> bool:
    """Whether a network interface of that name exists in this process's network namespace."""
    import socket

    try:
        socket.if_nametoindex(name)
        return True
    except OSError:
        return False


def current_netns() -> int | None:
    """This process's network namespace (the inode of /proc/self/ns/net)."""
    try:
        return os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return None


def host_interfaces() -> set[str]:
    import socket

    try:
        return {name for _i, name in socket.if_nameindex()}
    except OSError:
        return set()


# -- the model ---------------------------------------------------------------------------------


class Network:
    """A network definition: the parsed XML tree plus the facts vsh uses."""

    def __init__(self, root=None, data: bytes | None = None, facts: dict | None = None, origin: str = ""):
        self._root = root
        self._data = data           # a stored definition, parsed (and checked) on first use
        self._facts = facts         # what listings need, read without lxml (quick_facts)
        self._origin = origin
        self.active = False
        self.autostart = False
        self.persistent = True
        self.state: dict | None = None

    @property
    def root(self):
        if self._root is None:
            self._root = parse_network_xml(self._data, self._origin).root
            self._facts = None
        return self._root

    def _text(self, tag: str) -> str | None:
        if self._facts is not None:
            return self._facts.get(tag)
        el = self.root.find(tag)
        return el.text.strip() if el is not None and el.text is not None else None

    name = property(lambda self: self._text("name"))
    uuid = property(lambda self: self._text("uuid"))

    @property
    def forward_mode(self) -> str | None:
        if self._facts is not None:
            return self._facts.get("forward")
        fwd = self.root.find("forward")
        if fwd is None:
            return None
        return fwd.get("mode") or "nat"

    @property
    def forward_dev(self) -> str | None:
        fwd = self.root.find("forward")
        return fwd.get("dev") if fwd is not None else None

    @property
    def bridge(self) -> str | None:
        if self._facts is not None:
            return self._facts.get("bridge")
        br = self.root.find("bridge")
        return br.get("name") if br is not None else None

    @property
    def stp(self) -> bool:
        br = self.root.find("bridge")
        return br is None or br.get("stp", "on") == "on"

    @property
    def delay(self) -> int:
        br = self.root.find("bridge")
        return int(br.get("delay") or 0) if br is not None else 0

    @property
    def mac(self) -> str | None:
        el = self.root.find("mac")
        return el.get("address").lower() if el is not None and el.get("address") else None

    @property
    def mtu(self) -> int | None:
        el = self.root.find("mtu")
        return int(el.get("size")) if el is not None and el.get("size") else None

    @property
    def ipv4(self):
        """The network's IPv4 interface (an ``ipaddress.IPv4Interface``) or None."""
        el = self._ip_el()
        return _ip_interface(el) if el is not None else None

    @property
    def ipv4_text(self) -> str | None:
        """``ADDRESS/PREFIX`` of the network's IPv4 interface (cheap: for listings)."""
        if self._facts is not None:
            ip = self._facts.get("ip")
            if ip is None:
                return None
            if ip.get("prefix"):
                return f"{ip.get('address')}/{ip['prefix']}"
            if ip.get("netmask"):
                bits = sum(bin(int(part)).count("1") for part in ip["netmask"].split(".") if part.isdigit())
                return f"{ip.get('address')}/{bits}"
            return f"{ip.get('address')}/24"
        iface = self.ipv4
        return str(iface) if iface is not None else None

    def _ip_el(self):
        for el in self.root.findall("ip"):
            if el.get("family", "ipv4") == "ipv4":
                return el
        return None

    @property
    def dhcp_ranges(self) -> list[tuple[str, str]]:
        el = self._ip_el()
        if el is None:
            return []
        return [(r.get("start"), r.get("end")) for r in el.findall("dhcp/range")]

    @property
    def dhcp_hosts(self) -> list[dict]:
        el = self._ip_el()
        if el is None:
            return []
        return [{"mac": (h.get("mac") or "").lower() or None, "name": h.get("name"), "ip": h.get("ip")}
                for h in el.findall("dhcp/host")]

    @property
    def dns_enabled(self) -> bool:
        dns = self.root.find("dns")
        return dns is None or dns.get("enable", "yes") != "no"

    @property
    def domain_name(self) -> str | None:
        el = self.root.find("domain")
        return el.get("name") if el is not None else None

    @property
    def dns_hosts(self) -> list[tuple[str, list[str]]]:
        return [(h.get("ip"), [n.text.strip() for n in h.findall("hostname") if n.text])
                for h in self.root.findall("dns/host")]

    @property
    def dns_forwarders(self) -> list[str]:
        return [f.get("addr") for f in self.root.findall("dns/forwarder") if f.get("addr")]

    @property
    def creates_bridge(self) -> bool:
        return self.forward_mode != "bridge"

    def xml(self) -> str:
        from vsh.core.xml import serialize

        return serialize(self.root)

    def copy(self) -> "Network":
        import copy

        other = Network(copy.deepcopy(self.root))
        other.active, other.autostart, other.persistent, other.state = (self.active, self.autostart,
                                                                        self.persistent, self.state)
        return other

    def __repr__(self) -> str:
        return f"<Network {self.name!r} {self.forward_mode or 'isolated'} {self.bridge!r}>"


def quick_facts(data: bytes) -> dict | None:
    """name, uuid, forward mode, bridge name and the first IPv4 <ip> of a stored definition,
    read with expat (no lxml); None when the document is not what vsh writes."""
    from xml.parsers import expat

    facts: dict = {"forward": None}
    path: list[str] = []
    text: list[str] = []

    def start(tag, attrs):
        path.append(tag)
        text.clear()
        depth = len(path)
        if depth == 2 and tag == "forward":
            facts["forward"] = attrs.get("mode") or "nat"
        elif depth == 2 and tag == "bridge":
            facts["bridge"] = attrs.get("name")
        elif depth == 2 and tag == "ip" and "ip" not in facts and attrs.get("family", "ipv4") == "ipv4":
            facts["ip"] = dict(attrs)

    def end(tag):
        if len(path) == 2 and tag in ("name", "uuid"):
            facts[tag] = "".join(text).strip()
        path.pop()

    def chars(data_):
        text.append(data_)

    def refuse(*_args):
        raise ValueError("not a plain document")

    parser = expat.ParserCreate()
    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, chars
    parser.StartDoctypeDeclHandler = parser.EntityDeclHandler = refuse
    try:
        parser.Parse(data, True)
    except (ValueError, expat.ExpatError):
        return None
    if not facts.get("name") or not facts.get("uuid"):
        return None
    return facts


def _ip_interface(el):
    import ipaddress

    addr = el.get("address")
    prefix = el.get("prefix")
    netmask = el.get("netmask")
    try:
        if prefix is not None and netmask is not None:
            raise ValueError("give either prefix or netmask, not both")
        if prefix is not None:
            return ipaddress.IPv4Interface(f"{addr}/{int(prefix)}")
        if netmask is not None:
            return ipaddress.IPv4Interface(f"{addr}/{netmask}")
        return ipaddress.IPv4Interface(f"{addr}/24")
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"invalid <ip address='{addr}' prefix='{prefix}' netmask='{netmask}'>: {exc}") from None


def _insert(root, el) -> None:
    """Put a new top-level element where libvirt's order wants it."""
    rank = _ORDER.index(el.tag)
    for i, child in enumerate(root):
        if isinstance(child.tag, str) and child.tag in _ORDER and _ORDER.index(child.tag) > rank:
            root.insert(i, el)
            return
    root.append(el)


def _element(tag: str, **attrs):
    from lxml import etree

    el = etree.Element(tag)
    for k, v in attrs.items():
        el.set(k, v)
    return el


def parse_network_xml(data, origin: str = "network_definition") -> Network:
    """Parse and check a network definition (untrusted input); nothing is filled in yet."""
    import ipaddress

    from vsh.core.xml import parse

    root = parse(data, origin, "network")
    net = Network(root)
    for child in root:
        if not isinstance(child.tag, str):
            continue
        if child.tag not in _KNOWN:
            raise Unsupported(f"unsupported configuration: <network><{child.tag}> is not supported by vsh")
    for tag in ("name", "uuid", "forward", "bridge", "mac", "domain", "dns", "mtu"):
        if len(root.findall(tag)) > 1:
            raise XMLError(f"XML error: more than one <{tag}> in network '{net.name}'")
    if not net.name:
        raise XMLError("XML error: missing network name")
    check_network_name(net.name)
    if net.uuid is not None:
        if not is_uuid(net.uuid):
            raise XMLError(f"XML error: malformed uuid element '{net.uuid}'")
        root.find("uuid").text = normal_uuid(net.uuid)
    mode = net.forward_mode
    fwd = root.find("forward")
    if fwd is not None:
        if mode in LIBVIRT_ONLY_MODES:
            raise Unsupported(f"unsupported configuration: forward mode '{mode}' is not supported by vsh "
                              "(nat, route, open, bridge, or no <forward> for an isolated network)")
        if mode not in FORWARD_MODES:
            raise XMLError(f"XML error: unknown forwarding type '{mode}'")
        for child in fwd:
            if isinstance(child.tag, str):
                raise Unsupported(f"unsupported configuration: <forward><{child.tag}> is not supported by vsh")
        if fwd.get("dev") is not None:
            check_ifname(fwd.get("dev"), "forward dev")
    br = root.find("bridge")
    if br is not None:
        if br.get("name") is not None:
            check_ifname(br.get("name"), "bridge name")
        if br.get("stp", "on") not in ("on", "off"):
            raise XMLError(f"XML error: invalid stp setting '{br.get('stp')}' (on or off)")
        try:
            delay = int(br.get("delay") or 0)
        except ValueError:
            raise XMLError(f"XML error: invalid bridge delay '{br.get('delay')}'") from None
        if not 0 <= delay <= 30:
            raise InvalidArgument(f"bridge delay {delay} is out of range (0-30 seconds)")
    mtu = root.find("mtu")
    if mtu is not None:
        try:
            size = int(mtu.get("size") or "")
        except ValueError:
            raise XMLError(f"XML error: invalid mtu size '{mtu.get('size')}'") from None
        if not 68 <= size <= 65535:
            raise InvalidArgument(f"mtu size {size} is out of range (68-65535)")
    mac = root.find("mac")
    if mac is not None:
        addr = (mac.get("address") or "").lower()
        if not _MAC.fullmatch(addr):
            raise XMLError(f"XML error: malformed mac address '{mac.get('address')}'")
        if int(addr[:2], 16) & 1:
            raise InvalidArgument(f"network mac {addr} is a multicast address")
    dns = root.find("dns")
    if dns is not None:
        if dns.get("enable", "yes") not in ("yes", "no"):
            raise XMLError(f"XML error: invalid dns enable setting '{dns.get('enable')}'")
        for child in dns:
            if isinstance(child.tag, str) and child.tag not in ("host", "forwarder"):
                raise Unsupported(f"unsupported configuration: <dns><{child.tag}> is not supported by vsh")
        for ip, names in net.dns_hosts:
            try:
                ipaddress.ip_address(ip or "")
            except ValueError:
                raise XMLError(f"XML error: invalid IP address '{ip}' in <dns><host>") from None
            if not names:
                raise XMLError(f"XML error: <dns><host ip='{ip}'> has no <hostname>")
            for n in names:
                _check_hostname(n)
        for addr in net.dns_forwarders:
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                raise XMLError(f"XML error: invalid forwarder address '{addr}'") from None
    dom = root.find("domain")
    if dom is not None:
        _check_hostname(dom.get("name") or "")
    _check_ips(net)
    if mode == "bridge":
        if net.bridge is None:
            raise XMLError("XML error: a network with forward mode 'bridge' needs <bridge name='...'/> "
                           "(an existing host bridge)")
        for tag in ("ip", "mac", "dns", "domain", "mtu"):
            if root.find(tag) is not None:
                raise XMLError(f"XML error: a network with forward mode 'bridge' cannot have <{tag}> "
                               "(vsh only plugs domains into the existing bridge)")
    return net


def _check_hostname(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*", name or ""):
        raise InvalidArgument(f"'{name}' is not a valid host or domain name")


def _check_ips(net: Network) -> None:
    import ipaddress

    seen_v4 = False
    for el in net.root.findall("ip"):
        family = el.get("family", "ipv4")
        if family == "ipv6" or ":" in (el.get("address") or ""):
            raise Unsupported("unsupported configuration: IPv6 addresses on networks are not supported by vsh yet")
        if family != "ipv4":
            raise XMLError(f"XML error: unknown IP family '{family}'")
        if seen_v4:
            raise Unsupported("unsupported configuration: vsh networks have one IPv4 <ip>")
        seen_v4 = True
        iface = _ip_interface(el)
        subnet = iface.network
        if subnet.prefixlen > 30:
            raise InvalidArgument(f"network {subnet} is too small (a prefix of at most 30 is needed)")
        if iface.ip in (subnet.network_address, subnet.broadcast_address):
            raise InvalidArgument(f"the bridge address {iface.ip} is the network or broadcast address of {subnet}")
        for child in el:
            if isinstance(child.tag, str) and child.tag not in ("dhcp", "tftp"):
                raise Unsupported(f"unsupported configuration: <ip><{child.tag}> is not supported by vsh")
            if child.tag == "tftp":
                raise Unsupported("unsupported configuration: <ip><tftp> is not supported by vsh")
        for child in el.findall("dhcp/*"):
            if child.tag not in ("range", "host"):
                raise Unsupported(f"unsupported configuration: <dhcp><{child.tag}> is not supported by vsh")

        def inside(text, what):
            try:
                addr = ipaddress.IPv4Address(text or "")
            except ValueError:
                raise XMLError(f"XML error: invalid {what} address '{text}'") from None
            if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address):
                raise InvalidArgument(f"{what} address {addr} is not a host address of network {subnet}")
            return addr

        for r in el.findall("dhcp/range"):
            start, end = inside(r.get("start"), "DHCP range start"), inside(r.get("end"), "DHCP range end")
            if start > end:
                raise InvalidArgument(f"DHCP range '{start}' to '{end}' is reversed")
        for h in el.findall("dhcp/host"):
            mac = (h.get("mac") or "").lower()
            if h.get("mac") is not None and not _MAC.fullmatch(mac):
                raise XMLError(f"XML error: malformed mac address '{h.get('mac')}' in <dhcp><host>")
            if not mac and not h.get("name"):
                raise XMLError("XML error: a <dhcp><host> needs a mac or a name")
            if h.get("name"):
                _check_hostname(h.get("name"))
            if h.get("ip") is None:
                raise XMLError("XML error: a <dhcp><host> needs an ip")
            inside(h.get("ip"), "DHCP host")


# -- leases -----------------------------------------------------------------------------------


def read_leases(path: str) -> list[dict]:
    """dnsmasq's lease file: ``EXPIRY MAC IP HOSTNAME CLIENTID`` per line (``*`` = none)."""
    import ipaddress

    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 20)
    except OSError:
        return []
    leases = []
    for raw in data.decode("utf-8", "replace").splitlines():
        words = raw.split()
        if len(words) < 4 or words[0] == "duid":
            continue
        try:
            expiry = int(words[0])
            ip = ipaddress.ip_address(words[2])
        except ValueError:
            continue
        if not _MAC.fullmatch(words[1].lower()):
            continue
        leases.append({"expiry": expiry, "mac": words[1].lower(), "ip": str(ip),
                       "type": "ipv4" if ip.version == 4 else "ipv6",
                       "hostname": None if words[3] == "*" else words[3],
                       "clientid": None if len(words) < 5 or words[4] == "*" else words[4]})
    return leases


# -- the store ---------------------------------------------------------------------------------


class Networks:
    """The networks of one store."""

    def __init__(self, store, init: bool = True):
        self.store = store
        self.dir = os.path.join(store._config, "networks")
        self.autostart_dir = os.path.join(self.dir, "autostart")
        self.run_root = store._run
        self.state_root = os.path.join(self.run_root, ".networks")
        if init:
            self.ensure_default()

    def lock(self, timeout: float = 60.0):
        from vsh.core.store import Lock

        return Lock(os.path.join(self.dir, ".lock"), timeout, "network definitions are locked by another vsh process")

    # -- definitions ------------------------------------------------------------------------
    def ensure_default(self) -> None:
        """Define ``default`` (NAT, DHCP, autostart) the first time this store's networks are used,
        on the first of 192.168.122.0/24, 192.168.123.0/24 ... that this host does not use."""
        marker = os.path.join(self.dir, ".initialized")
        if os.path.exists(marker):
            return
        import ipaddress

        from vsh.core.store import atomic_write

        with self.lock():
            if os.path.exists(marker):
                return
            nets = self._load_all()
            if not any(n.name == DEFAULT_NETWORK for n in nets):
                used = [n.ipv4.network for n in nets if n.ipv4 is not None] + host_subnets()
                third = next((i for i in range(122, 255)
                              if not any(ipaddress.IPv4Network(f"192.168.{i}.0/24").overlaps(u) for u in used)),
                             None)
                if third is not None:
                    xml = (f"<network><name>{DEFAULT_NETWORK}</name><forward mode='nat'/>"
                           f"<ip address='192.168.{third}.1' netmask='255.255.255.0'><dhcp>"
                           f"<range start='192.168.{third}.2' end='192.168.{third}.254'/></dhcp></ip></network>")
                    net = parse_network_xml(xml)
                    self._fill_in(net, nets)
                    self._write(net)
                    self._write_autostart(net.name, True)
            atomic_write(marker, b"")

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.xml")

    def _state_dir(self, name: str) -> str:
        return os.path.join(self.state_root, name)

    def state_file(self, name: str, leaf: str) -> str:
        return os.path.join(self._state_dir(name), leaf)

    def _read_state(self, name: str) -> dict | None:
        from vsh.core.store import boot_id

        try:
            with open(self.state_file(name, STATE_FILE), "rb") as fh:
                st = json.loads(fh.read(1 << 20))
        except (OSError, ValueError):
            return None
        if not isinstance(st, dict) or st.get("boot_id") != boot_id():
            return None
        return st

    def _load(self, name: str) -> Network | None:
        try:
            check_network_name(name)
        except InvalidArgument:
            return None
        net = None
        try:
            with open(self._path(name), "rb") as fh:
                data = fh.read()
        except OSError:
            data = None
        if data is not None:
            facts = quick_facts(data)
            if facts is not None:
                net = Network(data=data, facts=facts, origin=f"{name}.xml")
            else:
                try:
                    net = parse_network_xml(data, f"{name}.xml")
                except VshError:
                    return None
            if net.name != name:
                return None
        st = self._read_state(name)
        if net is None:            # transient: only its state knows it
            if st is None or not st.get("transient") or not st.get("xml"):
                return None
            try:
                net = parse_network_xml(st["xml"], f"{name} (live)")
            except VshError:
                return None
            net.persistent = False
        net.autostart = net.persistent and os.path.exists(os.path.join(self.autostart_dir, name))
        net.state = st
        net.active = st is not None and self._alive(st)
        return net

    @staticmethod
    def _alive(st: dict) -> bool:
        """A recorded start is still real here: it was made in this network namespace and
        its bridge is still there."""
        bridge = st.get("bridge")
        return st.get("netns") in (None, current_netns()) and bool(bridge) and interface_exists(bridge)

    @staticmethod
    def elsewhere(net: Network) -> bool:
        """The network was started in another network namespace that still has it running."""
        from vsh.core.store import pid_alive

        st = net.state or {}
        if st.get("netns") in (None, current_netns()):
            return False
        pid = st.get("dnsmasq_pid")
        return pid is not None and pid_alive(pid, st.get("dnsmasq_starttime"))

    @staticmethod
    def dhcp_running(net: Network) -> bool | None:
        """Whether the network's dnsmasq still runs (None: the network has none)."""
        from vsh.core.store import pid_alive

        pid = (net.state or {}).get("dnsmasq_pid")
        if not net.active or pid is None:
            return None
        return pid_alive(pid, net.state.get("dnsmasq_starttime"))

    def _load_all(self) -> list[Network]:
        names = set()
        for directory, suffix in ((self.dir, ".xml"), (self.state_root, "")):
            try:
                entries = os.listdir(directory)
            except OSError:
                continue
            for entry in entries:
                if entry.startswith(".") or not entry.endswith(suffix):
                    continue
                names.add(entry[: len(entry) - len(suffix)] if suffix else entry)
        nets = []
        for name in names:
            net = self._load(name)
            if net is not None:
                nets.append(net)
        return nets

    def list(self) -> list[Network]:
        return sorted(self._load_all(), key=lambda n: (n.name.lower(), n.name))

    def names(self) -> list[str]:
        return [n.name for n in self.list()]

    def by_name(self, name: str) -> Network:
        net = self._load(name)
        if net is None:
            raise NotFound(f"Network not found: no network with matching name '{name}'")
        return net

    def get(self, ident: str) -> Network:
        """By UUID, then by name (virsh's order)."""
        if is_uuid_arg(ident):
            wanted = normal_uuid(ident)
            for net in self._load_all():
                if net.uuid == wanted:
                    return net
        net = self._load(ident) if ident else None
        if net is None:
            raise NotFound(f"Network not found: no network with matching name '{ident}'")
        return net

    def _write(self, net: Network) -> None:
        from vsh.core.store import atomic_write, ensure_private_dir

        ensure_private_dir(self.store._config)
        ensure_private_dir(self.dir)
        atomic_write(self._path(net.name), net.xml())

    def _write_autostart(self, name: str, enabled: bool) -> None:
        from vsh.core.store import atomic_write, ensure_private_dir, remove_file

        path = os.path.join(self.autostart_dir, name)
        if enabled:
            ensure_private_dir(self.autostart_dir)
            atomic_write(path, b"")
        else:
            remove_file(path)

    def _fill_in(self, net: Network, others: list[Network]) -> None:
        """What libvirt adds to a new definition: a UUID, a bridge name and a bridge MAC."""
        root = net.root
        if net.uuid is None:
            import uuid

            _insert(root, _element("uuid"))
            root.find("uuid").text = str(uuid.uuid4())
        if not net.creates_bridge:
            return
        br = root.find("bridge")
        if br is None:
            br = _element("bridge")
            _insert(root, br)
        if not br.get("name"):
            taken = {n.bridge for n in others if n.name != net.name} | host_interfaces()
            i = 0
            while f"virbr{i}" in taken:
                i += 1
            br.set("name", f"virbr{i}")
        if br.get("stp") is None:
            br.set("stp", "on")
        if br.get("delay") is None:
            br.set("delay", "0")
        if root.find("mac") is None:
            _insert(root, _element("mac", address=random_mac()))

    def _check_conflicts(self, net: Network, others: list[Network]) -> None:
        for other in others:
            if other.name == net.name:
                continue
            if other.uuid == net.uuid:
                raise OperationInvalid(f"operation failed: network '{other.name}' already exists with uuid {net.uuid}")
            if net.creates_bridge and other.creates_bridge and other.bridge == net.bridge:
                raise OperationInvalid(f"bridge name '{net.bridge}' already in use.")

    def define(self, net: Network) -> tuple[Network, bool]:
        """Store a definition (new, or a redefinition with the same UUID); (network, is_new)."""
        with self.lock():
            nets = self._load_all()
            old = next((n for n in nets if n.name == net.name), None)
            if old is not None:
                if net.uuid is None:
                    _insert(net.root, _element("uuid"))
                    net.root.find("uuid").text = old.uuid
                elif net.uuid != old.uuid:
                    raise OperationInvalid(f"operation failed: network '{net.name}' is already defined "
                                           f"with uuid {old.uuid}")
                if net.creates_bridge and net.bridge is None and old.bridge:
                    net.root.append(_element("bridge", name=old.bridge))
            self._fill_in(net, nets)
            self._check_conflicts(net, nets)
            self._write(net)
            if old is not None and not old.persistent and old.state is not None:
                self._update_state(net.name, transient=False)
        net.persistent = True
        net.autostart = old.autostart if old is not None else False
        net.active = old.active if old is not None else False
        return net, old is None

    def undefine(self, net: Network) -> None:
        """Remove the definition; an active network stays up as a transient one."""
        from vsh.core.store import remove_file

        with self.lock():
            cur = self._load(net.name)
            if cur is None or not cur.persistent:
                raise OperationInvalid(f"Requested operation is not valid: network '{net.name}' is not persistent")
            if cur.active:
                self._update_state(net.name, transient=True)
            elif cur.state is None:
                self.forget_state(net.name)
            remove_file(self._path(net.name))
            remove_file(os.path.join(self.autostart_dir, net.name))

    def set_autostart(self, net: Network, enabled: bool) -> None:
        if not net.persistent:
            raise OperationInvalid("Requested operation is not valid: cannot set autostart for transient network")
        with self.lock():
            self._write_autostart(net.name, enabled)
        net.autostart = enabled

    # -- state ---------------------------------------------------------------------------------
    def prepare_state_dir(self, name: str) -> str:
        from vsh.core.store import ensure_private_dir

        ensure_private_dir(self.run_root)
        ensure_private_dir(self.state_root)
        return ensure_private_dir(self._state_dir(name))

    def write_state(self, name: str, state: dict) -> None:
        from vsh.core.store import atomic_write, boot_id

        self.prepare_state_dir(name)
        atomic_write(self.state_file(name, STATE_FILE),
                     json.dumps({"netns": current_netns(), **state, "boot_id": boot_id()}, indent=1))

    def _update_state(self, name: str, **changes) -> None:
        st = self._read_state(name)
        if st is not None:
            st.update(changes)
            self.write_state(name, st)

    def forget_state(self, name: str) -> None:
        import shutil

        shutil.rmtree(self._state_dir(name), ignore_errors=True)

    def leases(self, net: Network) -> list[dict]:
        if not net.active:
            return []
        return read_leases(self.state_file(net.name, LEASES_FILE))

    def live_xml(self, net: Network) -> str:
        if net.active and net.state and net.state.get("xml"):
            return net.state["xml"]
        return net.xml()


def host_subnets() -> list:
    """IPv4 networks of this host's routes (to keep a new default network off them)."""
    return [subnet for subnet, _iface in host_routes()]


def host_routes() -> list:
    """(IPv4 network, interface) of each of this network namespace's routes but the default."""
    import ipaddress
    import socket

    nets = []
    try:
        with open("/proc/net/route") as fh:
            next(fh, None)
            for line in fh:
                words = line.split()
                if len(words) < 8 or words[1] == "00000000":
                    continue
                dest = socket.inet_ntoa(int(words[1], 16).to_bytes(4, "little"))
                mask = socket.inet_ntoa(int(words[7], 16).to_bytes(4, "little"))
                try:
                    nets.append((ipaddress.IPv4Network(f"{dest}/{mask}", strict=False), words[0]))
                except ValueError:
                    continue
    except OSError:
        pass
    return nets
