"""A virtual network's definition: libvirt's ``<network>`` XML, parsed (untrusted input,
checked as libvirt checks it) and read without lxml for listings."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, Unsupported, XMLError
from vsh.core.names import check_file_name, is_mac, is_uuid, normal_uuid
from vsh.core.networks.host import check_ifname

DEFAULT_NETWORK = "default"
FORWARD_MODES = ("nat", "route", "open", "bridge")
LIBVIRT_ONLY_MODES = ("passthrough", "private", "vepa", "hostdev")
MAX_NAME_BYTES = 255 - len(".xml")
#: top-level elements vsh honours; anything else is refused rather than ignored
_KNOWN = ("name", "uuid", "title", "description", "metadata", "forward", "bridge", "mac", "domain", "dns",
          "ip", "mtu")
_ORDER = ("name", "uuid", "title", "description", "metadata", "forward", "bridge", "mtu", "mac", "domain",
          "dns", "ip")


# -- names and small checks ---------------------------------------------------------------


def check_network_name(name: str) -> None:
    """A network name becomes a file name in the store: refuse what could escape it."""
    check_file_name(name, "network", MAX_NAME_BYTES)


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


def insert_element(root, el) -> None:
    """Put a new top-level element where libvirt's order wants it."""
    rank = _ORDER.index(el.tag)
    for i, child in enumerate(root):
        if isinstance(child.tag, str) and child.tag in _ORDER and _ORDER.index(child.tag) > rank:
            root.insert(i, el)
            return
    root.append(el)


def new_element(tag: str, **attrs):
    from vsh.core.lxmlload import etree

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
        if not is_mac(addr):
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
    import re

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
            if h.get("mac") is not None and not is_mac(mac):
                raise XMLError(f"XML error: malformed mac address '{h.get('mac')}' in <dhcp><host>")
            if not mac and not h.get("name"):
                raise XMLError("XML error: a <dhcp><host> needs a mac or a name")
            if h.get("name"):
                _check_hostname(h.get("name"))
            if h.get("ip") is None:
                raise XMLError("XML error: a <dhcp><host> needs an ip")
            inside(h.get("ip"), "DHCP host")
