"""The host side of virtual networks: bridges, NAT rules, dnsmasq, and domains' taps.

``net-start`` (:func:`start`) builds, in this order, and undoes in reverse on any
failure (nothing is left half-made):

1. the bridge (``ip link add NAME type bridge``), its MAC, MTU and IPv4 address;
2. an nftables table of its own, ``ip vsh_<uuid12>``: masquerading for ``nat``,
   forwarding rules for ``nat``/``route``/isolated (``open`` gets none), and IPv4
   forwarding switched on for ``nat``/``route``;
3. dnsmasq for DHCP and DNS on the bridge address only (``bind-dynamic``,
   ``interface=``), its lease file in the network's runtime directory.

``net-destroy`` (:func:`stop`) stops dnsmasq, deletes the table and the bridge.
The bridge of a ``forward mode='bridge'`` network is the host's: vsh never
creates or deletes it.

A domain's ``<interface type='network'>`` or ``type='bridge'`` becomes a tap
named in the argv (``-netdev tap,ifname=vnetN,script=no,downscript=no``) that the
supervisor opens and hands to QEMU as an fd (:mod:`vsh.kvm.confine.taps`: QEMU runs
without CAP_NET_ADMIN); it plugs it into the bridge (:func:`attach_tap`) while QEMU is
still stopped, so the guest never runs unplugged.  The tap goes away with QEMU.

All of it needs CAP_NET_ADMIN (root); without it the commands say so before
touching anything.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import time

from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, Unsupported, VshError

CAP_NET_ADMIN = 12
TOOL_TIMEOUT = 10.0
DNSMASQ_STOP_TIMEOUT = 5.0
DNSMASQ_PID = "dnsmasq.pid"
DNSMASQ_CONF = "dnsmasq.conf"


def has_net_admin() -> bool:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except (OSError, ValueError, IndexError):
        pass
    return os.geteuid() == 0


def require_net_admin(what: str) -> None:
    if not has_net_admin():
        raise Unsupported(f"{what} needs CAP_NET_ADMIN (run vsh as root); vsh runs as uid {os.geteuid()} "
                          "without it",
                          hint="a domain of an unprivileged user can use <interface type='user'> "
                               "(with port forwards) instead")


def _tool(argv: list[str], what: str, input: str | None = None) -> str:
    try:
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    except FileNotFoundError:
        raise Unsupported(f"{what}: '{argv[0]}' is not installed",
                          hint="scripts/setup installs iproute2, nftables and dnsmasq-base") from None
    except subprocess.TimeoutExpired:
        raise VshError(f"{what}: '{' '.join(argv)}' did not finish within {TOOL_TIMEOUT:g} s") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise VshError(f"{what}: {detail[-1] if detail else f'{argv[0]} exited with status {proc.returncode}'}")
    return proc.stdout


def ip(*args: str, what: str) -> str:
    return _tool(["ip", *args], what)


# -- domains' taps -------------------------------------------------------------------------------


def attach_tap(tap: str, bridge: str, mtu: int | None = None) -> None:
    """Plug a tap (QEMU made it) into a bridge and bring it up."""
    args = ["link", "set", "dev", tap]
    if mtu:
        args += ["mtu", str(mtu)]
    ip(*args, "master", bridge, "up", what=f"cannot plug tap '{tap}' into bridge '{bridge}'")


def plan_taps(store, live, running_names=()) -> list[dict]:
    """Give each tap-backed NIC of ``live`` (a Domain, changed in place) its bridge and tap name.

    ``<interface type='network'>`` needs its network active (an inactive network
    marked autostart is started here); ``type='bridge'`` needs the bridge to exist.
    The live XML gets ``<source ... bridge='...'/>`` and ``<target dev='vnetN'/>``.
    Returns ``[{"dev", "bridge", "mtu", "mac"}]`` for the supervisor.
    """
    from vsh.core.networks import host_interfaces

    nics = [n for n in live.interfaces if n.type in ("network", "bridge")]
    if not nics:
        return []
    require_net_admin(f"<interface type='{nics[0].type}'>")
    taken = host_interfaces() | set(running_names)
    return [plan_tap(store, nic, taken) for nic in nics]


def plan_tap(store, nic, taken: set) -> dict:
    """One NIC (a vsh.core.domain.Interface, changed in place) of :func:`plan_taps`;
    its tap name joins ``taken``."""
    from vsh.core.networks import Networks, check_ifname, interface_exists

    require_net_admin(f"<interface type='{nic.type}'>")
    mtu = None
    if nic.type == "network":
        if not nic.source_network:
            raise InvalidArgument("an <interface type='network'> needs <source network='NAME'/>")
        networks = Networks(store)
        net = networks.get(nic.source_network)
        if not net.active:
            if not net.autostart:
                raise OperationInvalid(f"Requested operation is not valid: network '{net.name}' is not active",
                                       hint=f"start it with: vsh net-start {net.name}")
            start(networks, net)
        bridge = net.bridge
        mtu = net.mtu
        nic.node.find("source").set("bridge", bridge)
    else:
        bridge = nic.source_bridge
        if not bridge:
            raise InvalidArgument("an <interface type='bridge'> needs <source bridge='NAME'/>")
        check_ifname(bridge, "bridge")
        if not interface_exists(bridge):
            raise NotFound(f"bridge '{bridge}' does not exist on this host (ip link show {bridge})")
    dev = nic.target_dev
    if dev and not dev.startswith("vnet"):
        check_ifname(dev, "interface target dev")
        if interface_exists(dev):
            raise OperationInvalid(f"interface target dev '{dev}' already exists on this host")
    else:
        n = 0
        while f"vnet{n}" in taken:
            n += 1
        dev = f"vnet{n}"
    taken.add(dev)
    target = nic.node.find("target")
    if target is None:
        from vsh.core.lxmlload import etree

        target = etree.SubElement(nic.node, "target")
        _move_after(nic.node, target, ("source", "mac"))
    target.set("dev", dev)
    return {"dev": dev, "bridge": bridge, "mtu": mtu, "mac": nic.mac}


def _move_after(parent, el, tags) -> None:
    for tag in tags:
        ref = parent.find(tag)
        if ref is not None:
            ref.addnext(el)
            return


def running_taps(store) -> set[str]:
    """Tap names recorded in the live XML of this store's running domains."""
    import re

    names = set()
    root = os.fspath(store.runtime_root)
    try:
        entries = os.listdir(root)
    except OSError:
        return names
    from vsh.kvm.client import ACTIVE_STATES, read_state

    for entry in entries:
        if entry.startswith("."):
            continue
        st = read_state(os.path.join(root, entry))
        if not st or st.get("state") not in ACTIVE_STATES:
            continue
        try:
            with open(os.path.join(root, entry, "live.xml"), "rb") as fh:
                text = fh.read(1 << 20).decode("utf-8", "replace")
        except OSError:
            continue
        names.update(re.findall(r"<target dev='(vnet\d+)'", text))
    return names


# -- networks --------------------------------------------------------------------------------------


def table_name(net) -> str:
    return "vsh_" + net.uuid.replace("-", "")[:12]


def nft_ruleset(net) -> str | None:
    """The nftables table of a network (None for 'open' and 'bridge', which get no rules)."""
    mode = net.forward_mode
    if mode in ("open", "bridge"):
        return None
    br = net.bridge
    lines = [f"table ip {table_name(net)} {{"]
    subnet = str(net.ipv4.network) if net.ipv4 is not None else None
    if mode == "nat" and subnet:
        out = f' oifname "{net.forward_dev}"' if net.forward_dev else ""
        lines += ["  chain postrouting {",
                  "    type nat hook postrouting priority srcnat; policy accept;",
                  f"    ip saddr {subnet} ip daddr 224.0.0.0/24 return",
                  f"    ip saddr {subnet} ip daddr 255.255.255.255 return",
                  f"    ip saddr {subnet} ip daddr != {subnet}{out} meta l4proto {{ tcp, udp }} "
                  "masquerade to :1024-65535",
                  f"    ip saddr {subnet} ip daddr != {subnet}{out} masquerade",
                  "  }"]
    lines += ["  chain forward {", "    type filter hook forward priority filter; policy accept;",
              f'    iifname "{br}" oifname "{br}" accept']
    if mode in ("nat", "route") and subnet:
        out = f' oifname "{net.forward_dev}"' if net.forward_dev else ""
        back = f' iifname "{net.forward_dev}"' if net.forward_dev else ""
        lines.append(f'    iifname "{br}"{out} ip saddr {subnet} accept')
        if mode == "nat":
            lines.append(f'   {back} oifname "{br}" ip daddr {subnet} ct state established,related accept')
        else:
            lines.append(f'   {back} oifname "{br}" ip daddr {subnet} accept')
    lines += [f'    iifname "{br}" reject', f'    oifname "{br}" reject', "  }", "}"]
    return "\n".join(lines) + "\n"


def dnsmasq_conf(net, state_dir: str) -> str:
    iface = net.ipv4
    subnet = iface.network
    lines = ["# generated by vsh for network '%s': changes are overwritten" % net.name,
             "strict-order", f"pid-file={os.path.join(state_dir, DNSMASQ_PID)}", "except-interface=lo",
             "bind-dynamic", f"interface={net.bridge}", f"listen-address={iface.ip}"]
    if not net.dns_enabled:
        lines.append("port=0")
    else:
        if net.domain_name:
            lines += [f"domain={net.domain_name}", f"local=/{net.domain_name}/", "expand-hosts"]
        lines += [f"server={addr}" for addr in net.dns_forwarders]
        for addr, names in net.dns_hosts:
            lines.append("host-record=" + ",".join(names + [addr]))
    size = 0
    for start, end in net.dhcp_ranges:
        lines.append(f"dhcp-range={start},{end},{subnet.netmask}")
        size += int(ipaddress.IPv4Address(end)) - int(ipaddress.IPv4Address(start)) + 1
    for host in net.dhcp_hosts:
        lines.append("dhcp-host=" + ",".join(v for v in (host["mac"], host["ip"], host["name"]) if v))
    if net.dhcp_ranges or net.dhcp_hosts:
        size += len(net.dhcp_hosts)
        lines += ["dhcp-no-override", "dhcp-authoritative", f"dhcp-lease-max={max(size, 1)}",
                  f"dhcp-leasefile={os.path.join(state_dir, 'leases')}"]
    return "\n".join(lines) + "\n"


def _subnet_in_use(net) -> str | None:
    """The host interface whose route overlaps the network's subnet, if any."""
    from vsh.core.networks import host_routes

    if net.ipv4 is None:
        return None
    return next((iface for subnet, iface in host_routes() if subnet.overlaps(net.ipv4.network)), None)


def start(networks, net) -> None:
    """Bring a network up (see the module docstring); the state is recorded last."""
    from vsh.core.networks import check_ifname, current_netns, interface_exists

    with networks.lock():
        cur = networks._load(net.name)
        if cur is not None and cur.active:
            raise OperationInvalid(f"Requested operation is not valid: network '{net.name}' is already active")
        require_net_admin(f"starting network '{net.name}'")
        if cur is not None and networks.elsewhere(cur):
            raise OperationInvalid(f"Requested operation is not valid: network '{net.name}' is active in another "
                                   "network namespace", hint=f"run 'vsh net-destroy {net.name}' there first")
        if cur is not None and cur.state is not None and cur.state.get("netns") in (None, current_netns()):
            _teardown(networks, cur)    # leftovers of a run whose bridge has gone
        networks.forget_state(net.name)
        if not net.creates_bridge:
            if not interface_exists(net.bridge):
                raise NotFound(f"bridge '{net.bridge}' of network '{net.name}' does not exist on this host")
            networks.write_state(net.name, {"bridge": net.bridge, "created_bridge": False, "xml": net.xml(),
                                            "transient": not net.persistent})
            net.active = True
            return
        br = net.bridge
        check_ifname(br, "bridge name")
        if interface_exists(br):
            raise OperationInvalid(f"bridge name '{br}' is already in use by an interface on this host",
                                   hint=f"see ip link show {br}; give the network another <bridge name=...>")
        used_by = _subnet_in_use(net)
        if used_by:
            raise OperationInvalid(f"internal error: Network is already in use by interface {used_by} "
                                   f"({net.ipv4.network})")
        if net.forward_dev and not interface_exists(net.forward_dev):
            raise NotFound(f"forward dev '{net.forward_dev}' of network '{net.name}' does not exist")
        state_dir = networks.prepare_state_dir(net.name)
        state = {"bridge": br, "created_bridge": True, "xml": net.xml(), "transient": not net.persistent,
                 "table": None, "dnsmasq_pid": None}
        try:
            _make_bridge(net)
            ruleset = nft_ruleset(net)
            if ruleset is not None:
                _tool(["nft", "-f", "-"], f"cannot set up firewall rules of network '{net.name}'", input=ruleset)
                state["table"] = table_name(net)
            if net.forward_mode in ("nat", "route"):
                _enable_forwarding()
            if net.ipv4 is not None:
                pid = _start_dnsmasq(net, state_dir)
                from vsh.kvm.client import proc_starttime

                state.update(dnsmasq_pid=pid, dnsmasq_starttime=proc_starttime(pid))
            networks.write_state(net.name, state)
        except BaseException:
            _teardown_state(state, net.name)
            networks.forget_state(net.name)
            raise
        net.state = state
        net.active = True
    replug(networks.store, net)


def replug(store, net) -> list[str]:
    """Plug the taps of running domains on ``net`` back into its (new) bridge: a network
    restarted under running guests gives them their network back.  Returns the taps."""
    from vsh.core.domain import Domain
    from vsh.core.networks import interface_exists
    from vsh.kvm.client import ACTIVE_STATES, read_state

    plugged = []
    root = store._run
    try:
        entries = os.listdir(root)
    except OSError:
        return plugged
    for entry in entries:
        rundir = os.path.join(root, entry)
        if entry.startswith(".") or not os.path.isfile(os.path.join(rundir, "live.xml")):
            continue
        st = read_state(rundir)
        if not st or st.get("state") not in ACTIVE_STATES:
            continue
        try:
            with open(os.path.join(rundir, "live.xml"), "rb") as fh:
                dom = Domain.parse(fh.read(), "live.xml")
        except (OSError, VshError):
            continue
        for nic in dom.interfaces:
            if nic.type == "network" and nic.source_network == net.name and nic.target_dev \
                    and interface_exists(nic.target_dev):
                try:
                    attach_tap(nic.target_dev, net.bridge, net.mtu)
                    plugged.append(nic.target_dev)
                except VshError:
                    pass
    return plugged


def _make_bridge(net) -> None:
    br = net.bridge
    what = f"cannot create bridge '{br}'"
    args = ["link", "add", br]
    if net.mac:
        args += ["address", net.mac]
    if net.mtu:
        args += ["mtu", str(net.mtu)]
    args += ["type", "bridge", "forward_delay", str(net.delay * 100), "stp_state", "1" if net.stp else "0"]
    ip(*args, what=what)
    try:
        if net.ipv4 is not None:
            iface = net.ipv4
            ip("addr", "add", f"{iface.ip}/{iface.network.prefixlen}", "broadcast",
               str(iface.network.broadcast_address), "dev", br, what=f"cannot give bridge '{br}' its address")
        ip("link", "set", "dev", br, "up", what=f"cannot bring bridge '{br}' up")
    except BaseException:
        _quiet(["ip", "link", "del", br])
        raise


def _enable_forwarding() -> None:
    path = "/proc/sys/net/ipv4/ip_forward"
    try:
        with open(path) as fh:
            if fh.read().strip() == "1":
                return
        with open(path, "w") as fh:
            fh.write("1\n")
    except OSError as exc:
        raise VshError(f"cannot enable IPv4 forwarding ({path}): {exc.strerror}") from None


def _start_dnsmasq(net, state_dir: str) -> int:
    from vsh.core.store import atomic_write

    conf = os.path.join(state_dir, DNSMASQ_CONF)
    atomic_write(conf, dnsmasq_conf(net, state_dir))
    pidfile = os.path.join(state_dir, DNSMASQ_PID)
    try:
        os.unlink(pidfile)
    except FileNotFoundError:
        pass
    # dnsmasq forks; its parent exits once the daemon is set up, with a status and a
    # message on stderr if it could not be (a taken port, a bad option)
    _tool(["dnsmasq", f"--conf-file={conf}"], f"cannot start dnsmasq for network '{net.name}'")
    deadline = time.monotonic() + TOOL_TIMEOUT
    while True:
        try:
            with open(pidfile) as fh:
                text = fh.read().strip()
            if text:
                return int(text)
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            raise VshError(f"dnsmasq for network '{net.name}' wrote no pid file ({pidfile}) "
                           f"within {TOOL_TIMEOUT:g} s")
        time.sleep(0.01)


def update_live(networks, net, new) -> None:
    """net-update --live: ``new`` (an updated copy of ``net``'s live definition) becomes the
    running network's: its dnsmasq is restarted on the new configuration (the old one comes
    back if the new one fails), then the state records it."""
    with networks.lock():
        cur = networks._load(net.name)
        if cur is None or not cur.active:
            raise OperationInvalid(f"Requested operation is not valid: network '{net.name}' is not active")
        state = dict(cur.state)
        if state.get("dnsmasq_pid") and new.ipv4 is not None:
            require_net_admin(f"updating network '{net.name}'")
            from vsh.kvm.client import proc_starttime

            state_dir = networks.prepare_state_dir(net.name)
            _stop_pid(state.get("dnsmasq_pid"), state.get("dnsmasq_starttime"))
            try:
                pid = _start_dnsmasq(new, state_dir)
            except VshError:
                pid = _start_dnsmasq(cur, state_dir)
                networks.write_state(net.name, {**state, "dnsmasq_pid": pid,
                                                "dnsmasq_starttime": proc_starttime(pid)})
                raise
            state.update(dnsmasq_pid=pid, dnsmasq_starttime=proc_starttime(pid))
        state["xml"] = new.xml()
        networks.write_state(net.name, state)


def _quiet(argv: list[str]) -> None:
    try:
        subprocess.run(argv, capture_output=True, timeout=TOOL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _stop_pid(pid, starttime) -> None:
    from vsh.core.store import pid_alive

    if not pid or not pid_alive(pid, starttime):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + DNSMASQ_STOP_TIMEOUT
    while pid_alive(pid, starttime):
        if time.monotonic() >= deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        time.sleep(0.01)


def _teardown_state(state: dict, name: str) -> None:
    """Undo what a state records (each step tolerates what is already gone)."""
    _stop_pid(state.get("dnsmasq_pid"), state.get("dnsmasq_starttime"))
    if state.get("table"):
        _quiet(["nft", "delete", "table", "ip", state["table"]])
    if state.get("created_bridge") and state.get("bridge"):
        _quiet(["ip", "link", "del", state["bridge"]])


def _teardown(networks, net) -> None:
    if net.state:
        _teardown_state(net.state, net.name)


def stop(networks, net) -> None:
    from vsh.core.networks import current_netns

    with networks.lock():
        cur = networks._load(net.name)
        if cur is None or not cur.active:
            if cur is not None and networks.elsewhere(cur):
                raise OperationInvalid(f"Requested operation is not valid: network '{net.name}' is active in "
                                       "another network namespace", hint="destroy it from there")
            if cur is not None and cur.state is not None:
                if cur.state.get("netns") in (None, current_netns()):
                    _teardown(networks, cur)    # what is left of a run whose bridge has gone
                networks.forget_state(net.name)
            raise OperationInvalid(f"Requested operation is not valid: network '{net.name}' is not active")
        if cur.state.get("created_bridge"):
            require_net_admin(f"stopping network '{net.name}'")
        _teardown(networks, cur)
        networks.forget_state(net.name)
    net.active = False
    net.state = None
