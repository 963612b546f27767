"""Virtual networks through libvirt (``virNetworkPtr``)."""

from __future__ import annotations

from vsh.api.libvirt.handles import Named, parse_xml
from vsh.api.libvirt.lv import call, mod
from vsh.api.libvirt.states import is_uuid
from vsh.api.networks import Network, Networks
from vsh.core.errors import InvalidArgument


def _text(xml) -> str:
    return xml.decode() if isinstance(xml, bytes) else xml


class LibvirtNetworks(Networks):
    def __init__(self, conn):
        self.conn = conn

    def _all(self, flags: int = 0) -> list:
        return call("virConnectListAllNetworks", self.conn.ptr, flags, context=("Failed to list networks",))

    def list(self, active=None, persistent=None, autostart=None) -> list[dict]:
        flags = 0
        # VIR_CONNECT_LIST_NETWORKS_INACTIVE 1, ACTIVE 2, PERSISTENT 4, TRANSIENT 8, AUTOSTART 16, NO_AUTOSTART 32
        for value, yes, no in ((active, 2, 1), (persistent, 4, 8), (autostart, 16, 32)):
            if value is not None:
                flags |= yes if value else no
        return sorted((LibvirtNetwork(self.conn, ptr).info() for ptr in self._all(flags)), key=lambda n: n["name"])

    def names(self) -> list[str]:
        return sorted(mod().virNetworkGetName(ptr) for ptr in self._all())

    def lookup(self, ident: str) -> "Network":
        ptr = mod().virNetworkLookupByUUIDString(self.conn.ptr, ident) if is_uuid(ident) else None
        return LibvirtNetwork(self.conn, ptr) if ptr is not None else self.lookup_by_name(ident)

    def lookup_by_name(self, name: str) -> "Network":
        return LibvirtNetwork(self.conn, call("virNetworkLookupByName", self.conn.ptr, name,
                                   context=(f"failed to get network '{name}'",)))

    def lookup_by_uuid(self, uuid: str) -> "Network":
        return LibvirtNetwork(self.conn, call("virNetworkLookupByUUIDString", self.conn.ptr, uuid,
                                   context=(f"failed to get network '{uuid}'",)))

    def define_xml(self, xml) -> "Network":
        return LibvirtNetwork(self.conn, call("virNetworkDefineXML", self.conn.ptr, _text(xml)))

    def create_xml(self, xml) -> "Network":
        return LibvirtNetwork(self.conn, call("virNetworkCreateXML", self.conn.ptr, _text(xml)))


class LibvirtNetwork(Named, Network):
    KIND = "virNetwork"

    def __init__(self, conn, ptr):
        self.conn = conn
        self._take(ptr)

    def info(self) -> dict:
        m = mod()
        tree = parse_xml(self.xml())
        forward = tree.find("forward")
        ip = next((el for el in tree.iter("ip") if el.get("family", "ipv4") == "ipv4" and el.get("address")), None)
        ip_text = None
        if ip is not None:
            prefix = ip.get("prefix")
            if prefix is None and ip.get("netmask"):
                prefix = str(sum(bin(int(part)).count("1") for part in ip.get("netmask").split(".")))
            ip_text = f"{ip.get('address')}/{prefix}" if prefix else ip.get("address")
        m.virResetLastError()
        bridge = m.virNetworkGetBridgeName(self.ptr)
        return {"name": self.name, "uuid": self.uuid, "active": m.virNetworkIsActive(self.ptr) == 1,
                "persistent": m.virNetworkIsPersistent(self.ptr) == 1,
                "autostart": m.virNetworkGetAutostart(self.ptr) == 1, "bridge": bridge or None,
                "forward": (forward.get("mode") or "nat") if forward is not None else "isolated", "ip": ip_text}

    def xml(self, inactive: bool = False) -> str:
        return self._call("virNetworkGetXMLDesc", 1 if inactive else 0)    # VIR_NETWORK_XML_INACTIVE

    def start(self) -> None:
        self._call("virNetworkCreate")

    def destroy(self) -> None:
        self._call("virNetworkDestroy")

    def undefine(self) -> None:
        self._call("virNetworkUndefine")

    def set_autostart(self, enabled: bool) -> None:
        self._call("virNetworkSetAutostart", 1 if enabled else 0)

    def redefine(self, xml) -> None:
        text = _text(xml)
        name = parse_xml(text).findtext("name")
        if name != self.name:
            raise InvalidArgument(f"the network's name cannot change: '{self.name}' is now '{name}'")
        self.ptr = call("virNetworkDefineXML", self.conn.ptr, text)

    def dhcp_leases(self, mac: str | None = None) -> list[dict]:
        leases = call("virNetworkGetDHCPLeases", self.ptr, mac, 0,
                      context=(f"Failed to get leases info for {self.name}",)) or []
        out = [{"expiry": lease.get("expirytime") or 0, "mac": lease.get("mac"),
                "type": "ipv6" if lease.get("type") == 1 else "ipv4", "ip": lease.get("ipaddr"),
                "prefix": lease.get("prefix"), "hostname": lease.get("hostname") or None,
                "clientid": lease.get("clientid") or None} for lease in leases]
        return sorted(out, key=lambda lease: (lease["mac"] or "", lease["ip"] or ""))

    def update(self, command: str, section: str, xml, parent_index: int | None = None,
               live: bool = False, config: bool = False) -> dict:
        commands = {"modify": 1, "delete": 2, "add": 3, "add-last": 3, "add-first": 4}
        sections = {"bridge": 1, "domain": 2, "ip": 3, "ip-dhcp-host": 4, "ip-dhcp-range": 5, "forward": 6,
                    "forward-interface": 7, "forward-pf": 8, "portgroup": 9, "dns-host": 10, "dns-txt": 11,
                    "dns-srv": 12}
        if command not in commands:
            raise InvalidArgument(f"unrecognized command name '{command}'")
        if section not in sections:
            raise InvalidArgument(f"unrecognized section name '{section}'")
        text = xml.decode() if isinstance(xml, bytes) else xml
        flags = (1 if live else 0) | (2 if config else 0)
        call("virNetworkUpdate", self.ptr, commands[command], sections[section],
             -1 if parent_index is None else parent_index, text, flags)
        active = mod().virNetworkIsActive(self.ptr) == 1
        if not (live or config):
            return {"live": active, "config": not active}
        return {"live": bool(live), "config": bool(config)}
