"""What the guest agent answers, turned into libvirt's shapes: ``virDomainGetGuestInfo``'s typed
parameters (names and order as libvirt's QEMU driver makes them) and the interface list of
``virDomainInterfaceAddresses`` with the agent as its source. A part of
:class:`vsh.api.local.agent.LocalDomainAgent`.
"""

from __future__ import annotations

from vsh.api.agent import GUEST_INFO_TYPES

#: guest-get-osinfo's keys → libvirt's parameter names, in libvirt's order
_OS_KEYS = (("id", "os.id"), ("name", "os.name"), ("pretty-name", "os.pretty-name"),
            ("version", "os.version"), ("version-id", "os.version-id"), ("machine", "os.machine"),
            ("variant", "os.variant"), ("variant-id", "os.variant-id"),
            ("kernel-release", "os.kernel-release"), ("kernel-version", "os.kernel-version"))
#: agent error classes that mean "this agent has no such command" (skipped when no type was asked)
_UNSUPPORTED = ("CommandNotFound", "CommandDisabled")


def fs_entries(agent, live, timeout: int) -> list[dict]:
    """guest-get-fsinfo in mount order: ``mountpoint``, ``name``, ``fstype``, ``total_bytes``,
    ``used_bytes`` and ``disks`` (``alias``: the domain's target, ``serial``, ``device``)."""
    out = []
    for entry in reversed(agent.execute("guest-get-fsinfo", None, timeout)["return"]):   # last mount first
        disks = [{"alias": disk_target(live, d), "serial": d.get("serial"), "device": d.get("dev")}
                 for d in entry.get("disk") or []]
        out.append({"mountpoint": entry.get("mountpoint"), "name": entry.get("name"), "fstype": entry.get("type"),
                    "total_bytes": entry.get("total-bytes"), "used_bytes": entry.get("used-bytes"), "disks": disks})
    return out


def guest_info(agent, live, timeout: int, types: tuple[str, ...]) -> list[tuple[str, object]]:
    """The typed parameters for ``types`` (empty: every category, skipping those the agent lacks)."""
    from vsh.kvm.agent import AgentCommandError

    wanted = types or GUEST_INFO_TYPES
    strict = bool(types)

    def ask(command):
        try:
            return agent.execute(command, None, timeout)["return"]
        except AgentCommandError as err:
            if not strict and err.klass in _UNSUPPORTED:
                return None
            raise

    out: list[tuple[str, object]] = []
    if "users" in wanted:
        users = ask("guest-get-users")
        if users is not None:
            out.append(("user.count", len(users)))
            for i, u in enumerate(users):
                out.append((f"user.{i}.name", str(u.get("user", ""))))
                if u.get("domain") is not None:
                    out.append((f"user.{i}.domain", str(u["domain"])))
                out.append((f"user.{i}.login-time", int(float(u.get("login-time", 0)) * 1000)))
    if "os" in wanted:
        osinfo = ask("guest-get-osinfo")
        if osinfo is not None:
            out += [(name, str(osinfo[key])) for key, name in _OS_KEYS if isinstance(osinfo.get(key), str)]
    if "timezone" in wanted:
        tz = ask("guest-get-timezone")
        if tz is not None:
            if isinstance(tz.get("zone"), str):
                out.append(("timezone.name", tz["zone"]))
            out.append(("timezone.offset", int(tz.get("offset", 0))))
    if "hostname" in wanted:
        host = ask("guest-get-host-name")
        if host is not None:
            out.append(("hostname", str(host.get("host-name", ""))))
    if "filesystem" in wanted:
        try:
            entries = fs_entries(agent, live, timeout)
        except AgentCommandError as err:
            if strict or err.klass not in _UNSUPPORTED:
                raise
            entries = []
        if entries:
            out.append(("fs.count", len(entries)))
            for i, e in enumerate(entries):
                out += [(f"fs.{i}.name", str(e["name"])), (f"fs.{i}.mountpoint", str(e["mountpoint"])),
                        (f"fs.{i}.fstype", str(e["fstype"]))]
                if e["total_bytes"] is not None:
                    out.append((f"fs.{i}.total-bytes", int(e["total_bytes"])))
                if e["used_bytes"] is not None:
                    out.append((f"fs.{i}.used-bytes", int(e["used_bytes"])))
                out.append((f"fs.{i}.disk.count", len(e["disks"])))
                for j, d in enumerate(e["disks"]):
                    for key in ("alias", "serial", "device"):
                        if d[key]:
                            out.append((f"fs.{i}.disk.{j}.{key}", str(d[key])))
    if "disks" in wanted:
        disks = ask("guest-get-disks")
        if disks:
            out.append(("disk.count", len(disks)))
            for i, d in enumerate(disks):
                out += [(f"disk.{i}.name", str(d.get("name", ""))), (f"disk.{i}.partition", bool(d.get("partition")))]
                deps = d.get("dependencies") or []
                if deps:
                    out.append((f"disk.{i}.dependency.count", len(deps)))
                    out += [(f"disk.{i}.dependency.{j}.name", str(n)) for j, n in enumerate(deps)]
                addr = d.get("address")
                if isinstance(addr, dict):
                    if addr.get("serial"):
                        out.append((f"disk.{i}.serial", str(addr["serial"])))
                    alias = disk_target(live, addr)
                    if alias:
                        out.append((f"disk.{i}.alias", alias))
                if d.get("alias"):
                    out.append((f"disk.{i}.guest_alias", str(d["alias"])))
    if "interfaces" in wanted:
        got = ask("guest-network-get-interfaces")
        ifaces = interfaces(got) if got is not None else []
        if ifaces:
            out.append(("if.count", len(ifaces)))
            for i, nic in enumerate(ifaces):
                out += [(f"if.{i}.name", nic["name"]), (f"if.{i}.hwaddr", nic["mac"] or ""),
                        (f"if.{i}.addr.count", len(nic["addresses"]))]
                for j, a in enumerate(nic["addresses"]):
                    out += [(f"if.{i}.addr.{j}.type", a["type"]), (f"if.{i}.addr.{j}.addr", a["address"]),
                            (f"if.{i}.addr.{j}.prefix", a["prefix"])]
    return out


def interfaces(got) -> list[dict]:
    """guest-network-get-interfaces → ``[{"name", "mac", "addresses": [{"type", "address",
    "prefix"}]}]``; an alias (``eth0:1``) joins its interface, as libvirt does."""
    out: list[dict] = []
    by_name: dict[str, dict] = {}
    for entry in got or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        name = entry["name"].split(":")[0]
        nic = by_name.get(name)
        if nic is None:
            mac = entry.get("hardware-address")
            nic = by_name[name] = {"name": name, "mac": mac if isinstance(mac, str) else None, "addresses": []}
            out.append(nic)
        for a in entry.get("ip-addresses") or []:
            kind = a.get("ip-address-type")
            if kind not in ("ipv4", "ipv6"):
                continue
            nic["addresses"].append({"type": kind, "address": str(a.get("ip-address", "")),
                                     "prefix": int(a.get("prefix", 0))})
    return out


def disk_target(live, address: dict) -> str | None:
    """The target (``vda``) of the domain's disk at the PCI address the agent reports."""
    pci = address.get("pci-controller") or {}
    want = tuple(int(pci.get(k, -1)) for k in ("domain", "bus", "slot", "function"))
    for disk in live.node.iterfind("devices/disk"):
        addr = disk.find("address")
        target = disk.find("target")
        if addr is None or target is None:
            continue
        if addr.get("type") == "pci":
            if _pci_tuple(addr) == want:
                return target.get("dev")
        elif addr.get("type") == "drive" and target.get("bus") in ("scsi", "sata", "ide"):
            ctrl = live.node.find(f"devices/controller[@type='{target.get('bus')}'][@index='{addr.get('controller', '0')}']"
                                  "/address[@type='pci']")
            if ctrl is not None and _pci_tuple(ctrl) == want and \
                    (int(addr.get("bus", "0")), int(addr.get("target", "0")), int(addr.get("unit", "0"))) == \
                    (address.get("bus"), address.get("target"), address.get("unit")):
                return target.get("dev")
    return None


def _pci_tuple(addr) -> tuple[int, ...]:
    return tuple(int(addr.get(k, "0"), 0) for k in ("domain", "bus", "slot", "function"))
