"""The networks of a store: their definitions, their autostart marks and their state
(``state.json`` with the live XML, dnsmasq's leases); see :mod:`vsh.core.networks`."""

from __future__ import annotations

import json
import os

from vsh.core.definitions import DefinitionDir
from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, VshError
from vsh.core.names import is_mac, random_mac
from vsh.core.networks.host import current_netns, host_interfaces, host_subnets, interface_exists
from vsh.core.networks.model import (DEFAULT_NETWORK, Network, check_network_name, insert_element, new_element,
                                     parse_network_xml, quick_facts)

STATE_FILE = "state.json"
LEASES_FILE = "leases"


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
        if not is_mac(words[1].lower()):
            continue
        leases.append({"expiry": expiry, "mac": words[1].lower(), "ip": str(ip),
                       "type": "ipv4" if ip.version == 4 else "ipv6",
                       "hostname": None if words[3] == "*" else words[3],
                       "clientid": None if len(words) < 5 or words[4] == "*" else words[4]})
    return leases


# -- the store ---------------------------------------------------------------------------------


class Networks(DefinitionDir):
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
    def _make_default(self, nets: list) -> None:
        """NAT, DHCP, autostart, on the first of 192.168.122.0/24, 192.168.123.0/24 ... that this
        host does not use."""
        import ipaddress

        if any(n.name == DEFAULT_NETWORK for n in nets):
            return
        used = [n.ipv4.network for n in nets if n.ipv4 is not None] + host_subnets()
        third = next((i for i in range(122, 255)
                      if not any(ipaddress.IPv4Network(f"192.168.{i}.0/24").overlaps(u) for u in used)), None)
        if third is not None:
            xml = (f"<network><name>{DEFAULT_NETWORK}</name><forward mode='nat'/>"
                   f"<ip address='192.168.{third}.1' netmask='255.255.255.0'><dhcp>"
                   f"<range start='192.168.{third}.2' end='192.168.{third}.254'/></dhcp></ip></network>")
            net = parse_network_xml(xml)
            self._fill_in(net, nets)
            self._write(net)
            self._write_autostart(net.name, True)

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

    def _not_found(self, ident: str) -> NotFound:
        return NotFound(f"Network not found: no network with matching name '{ident}'")

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

    def _write(self, net: Network) -> None:
        from vsh.core.store import atomic_write, ensure_private_dir

        ensure_private_dir(self.store._config)
        ensure_private_dir(self.dir)
        atomic_write(self._path(net.name), net.xml())

    def _fill_in(self, net: Network, others: list[Network]) -> None:
        """What libvirt adds to a new definition: a UUID, a bridge name and a bridge MAC."""
        root = net.root
        if net.uuid is None:
            from vsh.core.names import random_uuid

            insert_element(root, new_element("uuid"))
            root.find("uuid").text = random_uuid()
        if not net.creates_bridge:
            return
        br = root.find("bridge")
        if br is None:
            br = new_element("bridge")
            insert_element(root, br)
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
            insert_element(root, new_element("mac", address=random_mac()))

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
                    insert_element(net.root, new_element("uuid"))
                    net.root.find("uuid").text = old.uuid
                elif net.uuid != old.uuid:
                    raise OperationInvalid(f"operation failed: network '{net.name}' is already defined "
                                           f"with uuid {old.uuid}")
                if net.creates_bridge and net.bridge is None and old.bridge:
                    net.root.append(new_element("bridge", name=old.bridge))
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
