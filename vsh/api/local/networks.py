"""The local driver: virtual networks, over :mod:`vsh.core.networks` (definitions and state)
and :mod:`vsh.kvm.hostnet` (bridges, firewall rules, dnsmasq)."""

from __future__ import annotations

from vsh.api.networks import Network, Networks


def _info(net) -> dict:
    return {"name": net.name, "uuid": net.uuid, "active": net.active, "persistent": net.persistent,
            "autostart": net.autostart, "bridge": net.bridge, "forward": net.forward_mode or "isolated",
            "ip": net.ipv4_text}


class LocalNetworks(Networks):
    def __init__(self, conn):
        self.conn = conn

    def _networks(self, init: bool = True):
        """The store's networks (:class:`vsh.core.networks.Networks`); ``init`` defines ``default``
        the first time."""
        from vsh.core.networks import Networks as StoreNetworks

        return StoreNetworks(self.conn.store, init=init)

    def list(self, active=None, persistent=None, autostart=None) -> list[dict]:
        return [_info(net) for net in self._networks().list()
                if (active is None or net.active == active)
                and (persistent is None or net.persistent == persistent)
                and (autostart is None or net.autostart == autostart)]

    def names(self) -> list[str]:
        return self._networks(init=False).names()

    def lookup(self, ident: str):
        networks = self._networks()
        return LocalNetwork(networks, networks.get(ident))

    def lookup_by_name(self, name: str):
        networks = self._networks()
        return LocalNetwork(networks, networks.by_name(name))

    def lookup_by_uuid(self, uuid: str):
        from vsh.core.errors import NotFound
        from vsh.core.names import is_uuid_arg

        if not is_uuid_arg(uuid):
            raise NotFound(f"Network not found: no network with matching uuid '{uuid}'")
        return self.lookup(uuid)

    def define_xml(self, xml):
        from vsh.core.networks import parse_network_xml

        networks = self._networks()
        net, _new = networks.define(parse_network_xml(xml))
        return LocalNetwork(networks, net)

    def create_xml(self, xml):
        from vsh.core.errors import VshError
        from vsh.core.networks import parse_network_xml
        from vsh.kvm import hostnet

        networks = self._networks()
        net = parse_network_xml(xml)
        with networks.lock():
            others = networks._load_all()
            if any(n.name == net.name for n in others):
                raise VshError(f"operation failed: network '{net.name}' already exists")
            networks._fill_in(net, others)
            networks._check_conflicts(net, others)
        net.persistent = False
        hostnet.start(networks, net)
        return LocalNetwork(networks, net)


class LocalNetwork(Network):
    """A network of the store; ``net`` is its :class:`vsh.core.networks.Network` as last read."""

    def __init__(self, networks, net):
        self.networks = networks
        self.net = net
        self.name = net.name
        self.uuid = net.uuid

    def __repr__(self) -> str:
        return f"<LocalNetwork {self.name!r}>"

    def info(self) -> dict:
        return _info(self.net)

    def xml(self, inactive: bool = False) -> str:
        if inactive and self.net.persistent:
            return self.net.xml()
        return self.networks.live_xml(self.net)

    def start(self) -> None:
        from vsh.kvm import hostnet

        hostnet.start(self.networks, self.net)

    def destroy(self) -> None:
        from vsh.kvm import hostnet

        hostnet.stop(self.networks, self.net)

    def undefine(self) -> None:
        self.networks.undefine(self.net)
        self.net.persistent = self.net.autostart = False

    def set_autostart(self, enabled: bool) -> None:
        self.networks.set_autostart(self.net, enabled)

    def redefine(self, xml) -> None:
        from vsh.core.errors import InvalidArgument
        from vsh.core.networks import parse_network_xml

        new = parse_network_xml(xml)
        if new.name != self.name:
            raise InvalidArgument(f"the network name cannot change from '{self.name}' to '{new.name}' "
                                  "(define a new network instead)")
        self.net, _new = self.networks.define(new)

    def update(self, command: str, section: str, xml, parent_index: int | None = None,
               live: bool = False, config: bool = False) -> dict:
        from vsh.core.errors import OperationInvalid
        from vsh.core.networks.update import check_command, check_section, updated

        check_command(command)
        check_section(section)
        net = self.networks.get(self.name)
        if not (live or config):
            live, config = net.active, not net.active
        if live and not net.active:
            raise OperationInvalid(f"Requested operation is not valid: network '{self.name}' is not active")
        if config and not net.persistent:
            raise OperationInvalid("Requested operation is not valid: cannot change persistent config of a "
                                   "transient network")
        running = persistent = None
        if live:
            from vsh.core.networks import parse_network_xml

            running = updated(parse_network_xml(self.networks.live_xml(net), f"{self.name} (live)"), command,
                              section, xml, parent_index)
        if config:
            persistent = updated(net, command, section, xml, parent_index)
        if running is not None:
            from vsh.kvm import hostnet

            hostnet.update_live(self.networks, net, running)
        if persistent is not None:
            self.net, _new = self.networks.define(persistent)
        return {"live": bool(live), "config": bool(config)}

    def dhcp_leases(self, mac: str | None = None) -> list[dict]:
        import time

        net = self.net
        prefix = net.ipv4.network.prefixlen if net.ipv4 is not None else 24
        now = time.time()
        out = []
        for lease in sorted(self.networks.leases(net), key=lambda x: (x["mac"], x["ip"])):
            if lease["expiry"] and lease["expiry"] < now:
                continue
            if mac is not None and lease["mac"] != mac.lower():
                continue
            out.append({**lease, "prefix": prefix})
        return out
