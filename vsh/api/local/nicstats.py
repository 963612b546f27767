"""The local driver: traffic and addresses of a running domain's NICs.

* User-mode NICs: the frames QEMU passed (:mod:`vsh.kvm.netacct`): counters, the DHCP
  lease QEMU's DHCP server gave (source ``lease``) and the addresses the guest used as
  sources (source ``arp``). A guest that never did DHCP has no lease; a guest that never
  sent a frame has no address seen.
* Network and bridge NICs (a tap): the kernel's counters (``/proc/net/dev``), the lease
  the network's dnsmasq gave the MAC, and the host's neighbour table (``/proc/net/arp``)
  for ``arp``.
"""

from __future__ import annotations

import time

from vsh.api.local.qemustats import read_text, rundir
from vsh.core.errors import InvalidArgument, Unsupported, VshError

#: /proc/net/dev columns (host view) -> the guest's view libvirt reports for a tap
_TAP_FIELDS = {"rx_bytes": 8, "rx_packets": 9, "rx_errs": 10, "rx_drop": 11,
               "tx_bytes": 0, "tx_packets": 1, "tx_errs": 2, "tx_drop": 3}
#: virDomainInterfaceStats' counters, in virsh domifstat's order
_COUNTERS = ("rx_bytes", "rx_packets", "rx_errs", "rx_drop", "tx_bytes", "tx_packets", "tx_errs", "tx_drop")


def nic_name(entry: dict | None, nic) -> str:
    if entry and entry.get("id"):
        return entry["id"]
    return nic.alias or "-"


def nic_counters(store, ref, nic) -> dict | None:
    """Traffic (and what is known of the guest's addresses) of one NIC of a running domain."""
    if not nic.mac:
        return None
    if nic.type in ("network", "bridge"):
        return tap_counters(store, nic)
    from vsh.kvm import netacct

    return netacct.read(rundir(store, ref), nic.mac)


def tap_counters(store, nic) -> dict | None:
    """A tap's counters from the kernel (/proc/net/dev, this network namespace's), turned
    round to the guest's view; the address its network's dnsmasq leased to the NIC's MAC;
    the addresses the host's neighbour table saw with that MAC."""
    dev = nic.target_dev
    text = read_text("/proc/net/dev") or ""
    counters = None
    for line in text.splitlines()[2:]:
        name, _sep, rest = line.partition(":")
        if dev and name.strip() == dev:
            values = [int(v) for v in rest.split()]
            counters = {key: values[i] for key, i in _TAP_FIELDS.items()}
            break
    if counters is None:
        return None
    acct = {"id": dev, **counters, "lease": None, "seen": []}
    mac = nic.mac.lower()
    if nic.type == "network" and nic.source_network:
        from vsh.core.networks import Networks

        try:
            networks = Networks(store, init=False)
            net = networks.get(nic.source_network)
            if net.ipv4 is not None:
                acct["subnet"] = str(net.ipv4.network)
            now = time.time()
            for lease in networks.leases(net):
                if lease["mac"] == mac and (not lease["expiry"] or lease["expiry"] >= now):
                    acct["lease"] = {"address": lease["ip"]}
        except VshError:
            pass
    for line in (read_text("/proc/net/arp") or "").splitlines()[1:]:
        words = line.split()
        if len(words) >= 6 and words[3].lower() == mac and words[2] != "0x0":
            acct["seen"].append((words[0], "ipv4", 0))
    return acct


def find_nic(store, ref, dom, ident: str):
    """The NIC whose MAC, QEMU id, alias or tap name is ``ident``, or None."""
    from vsh.kvm import netacct

    accounted = netacct.load_map(rundir(store, ref))
    for nic in dom.interfaces:
        entry = accounted.get((nic.mac or "").lower())
        if ident.lower() == (nic.mac or "").lower() or ident in ((entry or {}).get("id"), nic.alias,
                                                                  nic.target_dev):
            return nic
    return None


def interface_stats(store, ref, dom, interface: str) -> dict:
    nic = find_nic(store, ref, dom, interface)
    if nic is None:
        raise InvalidArgument(f"invalid argument: invalid path, '{interface}' is not a known interface")
    acct = nic_counters(store, ref, nic)
    if acct is None:
        raise Unsupported(f"operation not supported: interface '{interface}' (type '{nic.type}') has no "
                          "traffic counters: vsh counts the traffic of user-mode interfaces")
    return {key: acct[key] for key in _COUNTERS if key in acct}


def _prefix_v4(nic) -> tuple[str, int]:
    for ip in nic.node.findall("ip"):
        if ip.get("family", "ipv4") == "ipv4" and ip.get("address"):
            return ip.get("address"), int(ip.get("prefix") or 24)
    return "10.0.2.0", 24


def _prefix_v6(nic) -> tuple[str, int]:
    for ip in nic.node.findall("ip"):
        if ip.get("family") == "ipv6" and ip.get("address"):
            return ip.get("address"), int(ip.get("prefix") or 64)
    return "fec0::", 64


def address_prefix(nic, address: str, family: str, subnet: str | None = None) -> int:
    """The prefix length of a guest's address: its network's, or the user-mode NIC's subnet's."""
    import ipaddress

    addr = ipaddress.ip_address(address)
    if subnet is not None:
        net = ipaddress.ip_network(subnet)
        if addr.version == net.version and addr in net:
            return net.prefixlen
    if nic.type in ("network", "bridge"):
        return 32 if family == "ipv4" else 128
    if family == "ipv4":
        net, prefix = _prefix_v4(nic)
        return prefix if addr in ipaddress.ip_network(f"{net}/{prefix}", strict=False) else 32
    if addr.is_link_local:
        return 64
    net, prefix = _prefix_v6(nic)
    return prefix if addr in ipaddress.ip_network(f"{net}/{prefix}", strict=False) else 128


def interface_addresses(store, ref, dom, source: str) -> list[dict]:
    """domifaddr's rows: the NICs with an address from ``source`` (``lease`` or ``arp``)."""
    rows = []
    for nic in dom.interfaces:
        acct = nic_counters(store, ref, nic)
        if acct is None:
            continue
        addrs = []
        if source == "lease":
            if acct.get("lease"):
                a = acct["lease"]["address"]
                addrs.append(("ipv4", a, address_prefix(nic, a, "ipv4", acct.get("subnet"))))
        else:
            for a, family, _ts in sorted(acct.get("seen") or [], key=lambda s: (s[1] != "ipv4", s[2])):
                addrs.append((family, a, address_prefix(nic, a, family, acct.get("subnet"))))
        if addrs:
            rows.append({"name": nic_name(acct, nic), "mac": nic.mac,
                         "addresses": [{"type": f, "address": a, "prefix": p} for f, a, p in addrs]})
    return rows
