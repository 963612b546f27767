"""Statistics of domains: domstats, domblkstat, domifstat, dommemstat, vcpuinfo, cpu-stats,
domblkinfo, domifaddr.

Where the numbers come from (nothing is estimated):

* CPU: ``/proc/QEMU_PID/stat`` (user and system time of the whole QEMU process);
  per vCPU, the vCPU thread QEMU reports (``query-cpus-fast`` thread-id) and its
  ``/proc/QEMU_PID/task/TID/schedstat`` (run time and run-queue delay, ns), ``stat``
  (the host CPU it last ran on) and its affinity.  No per-host-CPU accounting exists
  without cgroups, so ``cpu-stats`` says so and shows the totals.
* Memory: QMP ``query-balloon`` (``actual``) and the balloon's ``guest-stats`` QOM
  property (the guest driver's numbers, once a polling period is set: ``dommemstat
  --period``), and the QEMU process's ``VmRSS``.
* Disks: QMP ``query-blockstats`` and ``query-block`` (virtual size); allocation and
  physical size from the image file itself.
* User-mode NICs: the frames QEMU passed (``vsh.kvm.netacct``): counters, the DHCP
  lease QEMU's DHCP server gave (``domifaddr --source lease``, the default) and the
  addresses the guest used as sources (``--source arp``).  A guest that never did DHCP
  has no lease; a guest that never sent a frame has no address seen.
* Network and bridge NICs (a tap): the kernel's counters (``/proc/net/dev``), the
  lease the network's dnsmasq gave the MAC, and the host's neighbour table
  (``/proc/net/arp``) for ``--source arp``.

Text formats are virsh's: ``Domain: 'NAME'`` + ``  key=value`` records, ``vda rd_req N``,
``%-15s %s`` blocks, the ``domifaddr`` columns.  Every command takes ``--json``.
"""

from __future__ import annotations

import os
import time

from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, Unsupported, VshError
from vsh.core.output import KeyValue, Table, Text
from vsh.registry import Opt, command

DOMAIN = Opt("domain", kind="domain", required=True, positional=True, help="domain name, id or uuid")

# virDomainState and the reasons libvirt numbers for each state (domstats state.*)
STATE_NUMBERS = {"running": 1, "starting": 1, "blocked": 2, "paused": 3, "shutdown": 4, "shutoff": 5,
                 "crashed": 6, "pmsuspended": 7}
REASON_NUMBERS = {
    1: ["unknown", "booted", "migrated", "restored", "from snapshot", "unpaused", "migration canceled",
        "save canceled", "wakeup", "crashed", "post-copy", "post-copy failed"],
    3: ["unknown", "user", "migration", "saving", "dump", "ioerror", "watchdog", "from snapshot", "shutdown",
        "snapshot", "crashed", "starting up", "post-copy", "post-copy failed", "api error"],
    4: ["unknown", "user"],
    5: ["unknown", "shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from snapshot", "daemon"],
    6: ["unknown", "panicked"],
}

# QEMU balloon guest-stats -> virsh names (bytes are shown in KiB)
BALLOON_STATS = [("stat-swap-in", "swap_in", True), ("stat-swap-out", "swap_out", True),
                 ("stat-major-faults", "major_fault", False), ("stat-minor-faults", "minor_fault", False),
                 ("stat-free-memory", "unused", True), ("stat-total-memory", "available", True),
                 ("stat-available-memory", "usable", True)]
BALLOON_STATS_TAIL = [("stat-disk-caches", "disk_caches", True), ("stat-htlb-pgalloc", "hugetlb_pgalloc", False),
                      ("stat-htlb-pgfail", "hugetlb_pgfail", False)]


# -- helpers ----------------------------------------------------------------------------------------


def _client():
    from vsh.kvm import client

    return client


def _rundir(ctx, ref) -> str:
    return str(ctx.store.runtime_dir(ref.name))


def _qmp(ctx, ref, cmd: str, args: dict | None = None):
    return _client().qmp(_rundir(ctx, ref), cmd, args)


def _not_running() -> OperationInvalid:
    return OperationInvalid("Requested operation is not valid: domain is not running")


def _running(ctx, domain: str, context: str | None = None):
    ref = ctx.store.get(domain)
    if not ref.active:
        err = _not_running()
        raise err.with_context(context) if context else err
    return ref


def _pid(ref) -> int:
    pid = ref.runtime.data.get("qemu_pid") if ref.runtime else None
    if not isinstance(pid, int):
        raise _not_running()
    return pid


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode(errors="replace")
    except OSError:
        return None


def _stat_fields(text: str | None) -> list[str]:
    """The fields of a /proc stat line after the command name (field 3 is index 0)."""
    if not text:
        return []
    return text[text.rfind(")") + 2:].split()


def cpu_times(pid: int) -> dict:
    """cpu_time, user_time, system_time of a process in ns (all its threads, dead ones too)."""
    fields = _stat_fields(_read(f"/proc/{pid}/stat"))
    if len(fields) < 13:
        raise _not_running()
    hz = os.sysconf("SC_CLK_TCK")
    user = int(fields[11]) * 1_000_000_000 // hz
    system = int(fields[12]) * 1_000_000_000 // hz
    return {"cpu_time": user + system, "user_time": user, "system_time": system}


def rss_kib(pid: int) -> int | None:
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def vcpu_threads(ctx, ref) -> list[dict]:
    """Per vCPU: number, thread id, host CPU last used, run time and run-queue delay (ns), affinity."""
    pid = _pid(ref)
    out = []
    for cpu in sorted(_qmp(ctx, ref, "query-cpus-fast"), key=lambda c: c.get("cpu-index", 0)):
        tid = cpu.get("thread-id")
        sched = (_read(f"/proc/{pid}/task/{tid}/schedstat") or "0 0 0").split()
        fields = _stat_fields(_read(f"/proc/{pid}/task/{tid}/stat"))
        try:
            affinity = sorted(os.sched_getaffinity(tid))
        except OSError:
            affinity = []
        out.append({"vcpu": cpu.get("cpu-index", 0), "thread_id": tid,
                    "cpu": int(fields[36]) if len(fields) > 36 else -1,
                    "time": int(sched[0]), "delay": int(sched[1]) if len(sched) > 1 else 0,
                    "affinity": affinity})
    return out


def host_cpus() -> int:
    return os.cpu_count() or 1


def _affinity_text(cpus, maxcpu: int, pretty: bool) -> str:
    if pretty:
        return f"{_ranges(cpus)} (out of {maxcpu})"
    return "".join("y" if i in cpus else "-" for i in range(maxcpu))


def _ranges(cpus) -> str:
    cpus = sorted(cpus)
    parts = []
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        parts.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(parts)


def _balloon_device(ctx, ref) -> str | None:
    for item in _qmp(ctx, ref, "qom-list", {"path": "/machine/peripheral"}):
        if str(item.get("type", "")).startswith("child<virtio-balloon"):
            return "/machine/peripheral/" + item["name"]
    return None


def memory_stats(ctx, ref) -> list[tuple[str, int]]:
    """virsh dommemstat's records, in its order: actual, the guest's numbers, rss."""
    dom = ctx.store.load(ref)
    out: list[tuple[str, int]] = []
    path = _balloon_device(ctx, ref)
    actual = None
    if path is not None:
        try:
            actual = int(_qmp(ctx, ref, "query-balloon").get("actual", 0)) // 1024
        except VshError:
            actual = None
    if actual is None:
        actual = (ref.runtime.data.get("balloon_kib") if ref.runtime else None) \
            or dom.current_memory or dom.memory or 0
    out.append(("actual", actual))
    if path is not None:
        try:
            gs = _qmp(ctx, ref, "qom-get", {"path": path, "property": "guest-stats"}) or {}
        except VshError:
            gs = {}
        stats = gs.get("stats") or {}
        if gs.get("last-update"):
            for key, name, in_bytes in BALLOON_STATS:
                value = stats.get(key)
                if value is not None and value >= 0:
                    out.append((name, value // 1024 if in_bytes else value))
            out.append(("last_update", int(gs["last-update"])))
            for key, name, in_bytes in BALLOON_STATS_TAIL:
                value = stats.get(key)
                if value is not None and value >= 0:
                    out.append((name, value // 1024 if in_bytes else value))
    rss = rss_kib(_pid(ref))
    if rss is not None:
        out.append(("rss", rss))
    return out


def _qdev_of(entry: dict) -> str:
    qdev = entry.get("qdev") or ""
    if qdev.startswith("/machine/peripheral/"):
        return qdev[len("/machine/peripheral/"):].split("/", 1)[0]
    return qdev


def disk_ids(ctx, ref, dom) -> dict:
    """target -> QEMU device id, for the disks of the live XML."""
    from vsh.kvm.hotplug import device_id

    out = {}
    for disk in dom.disks:
        try:
            out[disk.target_dev] = device_id(dom, disk.node, _rundir(ctx, ref))
        except VshError:
            out[disk.target_dev] = None
    return out


def block_stats(ctx, ref, dom) -> dict:
    """target -> {rd_req, rd_bytes, wr_req, wr_bytes, flush, rd_times, wr_times, flush_times,
    wr_highest_offset, capacity}, for the disks QEMU has."""
    ids = disk_ids(ctx, ref, dom)
    stats = {_qdev_of(e): e for e in _qmp(ctx, ref, "query-blockstats")}
    blocks = {_qdev_of(e): e for e in _qmp(ctx, ref, "query-block")}
    out = {}
    for target, qid in ids.items():
        if not qid or qid not in stats:
            continue
        s = stats[qid].get("stats") or {}
        image = ((blocks.get(qid) or {}).get("inserted") or {}).get("image") or {}
        out[target] = {"rd_req": s.get("rd_operations", 0), "rd_bytes": s.get("rd_bytes", 0),
                       "wr_req": s.get("wr_operations", 0), "wr_bytes": s.get("wr_bytes", 0),
                       "flush_operations": s.get("flush_operations", 0),
                       "rd_total_times": s.get("rd_total_time_ns", 0),
                       "wr_total_times": s.get("wr_total_time_ns", 0),
                       "flush_total_times": s.get("flush_total_time_ns", 0),
                       "wr_highest_offset": s.get("wr_highest_offset", 0),
                       "capacity": image.get("virtual-size")}
    return out


def find_disk(dom, device: str):
    for disk in dom.disks:
        if disk.target_dev == device:
            return disk
    for disk in dom.disks:
        if device and disk.source == device:
            return disk
    return None


def _qcow2_size(path: str) -> int | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
    except OSError:
        return None
    if len(head) >= 32 and head[:4] == b"QFI\xfb":
        return int.from_bytes(head[24:32], "big")
    return None


def file_sizes(disk) -> tuple[int, int, int | None]:
    """(allocation, physical, capacity-from-the-file) of a disk's image; zeros without a medium."""
    import stat

    path = disk.source
    if not path:
        return 0, 0, 0
    try:
        st = os.stat(path)
    except OSError as exc:
        raise VshError(f"cannot stat file '{path}': {exc.strerror}") from None
    if stat.S_ISBLK(st.st_mode):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
        finally:
            os.close(fd)
        return size, size, size
    capacity = _qcow2_size(path) if disk.driver_type == "qcow2" else st.st_size
    return st.st_blocks * 512, st.st_size, capacity


def pretty_capacity(value: int) -> str:
    """virsh's vshPrettyCapacity with 3 decimals: ``1023.995 GiB``, ``1.000 TiB``, ``512.000 B``."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    scaled = float(value)
    i = 0
    while scaled >= 1024 and i < len(units) - 1:
        scaled /= 1024
        i += 1
    return f"{scaled:.3f} {units[i]}"


def nic_name(entry: dict | None, nic) -> str:
    if entry and entry.get("id"):
        return entry["id"]
    return nic.alias or "-"


def nic_counters(ctx, ref, nic) -> dict | None:
    """Traffic (and what is known of the guest's addresses) of one NIC of a running domain."""
    if not nic.mac:
        return None
    if nic.type in ("network", "bridge"):
        return tap_counters(ctx, nic)
    from vsh.kvm import netacct

    return netacct.read(_rundir(ctx, ref), nic.mac)


#: /proc/net/dev columns (host view) -> the guest's view libvirt reports for a tap
_TAP_FIELDS = {"rx_bytes": 8, "rx_packets": 9, "rx_errs": 10, "rx_drop": 11,
               "tx_bytes": 0, "tx_packets": 1, "tx_errs": 2, "tx_drop": 3}


def tap_counters(ctx, nic) -> dict | None:
    """A tap's counters from the kernel (/proc/net/dev, this network namespace's), turned
    round to the guest's view; the address its network's dnsmasq leased to the NIC's MAC;
    the addresses the host's neighbour table saw with that MAC."""
    dev = nic.target_dev
    text = _read("/proc/net/dev") or ""
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
            networks = Networks(ctx.store, init=False)
            net = networks.get(nic.source_network)
            if net.ipv4 is not None:
                acct["subnet"] = str(net.ipv4.network)
            now = time.time()
            for lease in networks.leases(net):
                if lease["mac"] == mac and (not lease["expiry"] or lease["expiry"] >= now):
                    acct["lease"] = {"address": lease["ip"]}
        except VshError:
            pass
    for line in (_read("/proc/net/arp") or "").splitlines()[1:]:
        words = line.split()
        if len(words) >= 6 and words[3].lower() == mac and words[2] != "0x0":
            acct["seen"].append((words[0], "ipv4", 0))
    return acct


# -- domstats ---------------------------------------------------------------------------------------


GROUP_OPTS = [("state", "report domain state"), ("cpu-total", "report domain physical cpu usage"),
              ("balloon", "report domain balloon statistics"), ("vcpu", "report domain virtual cpu information"),
              ("interface", "report domain network interface information"),
              ("block", "report domain block device statistics")]
LIST_OPTS = [("list-active", "list only active domains"), ("list-inactive", "list only inactive domains"),
             ("list-persistent", "list only persistent domains"), ("list-transient", "list only transient domains"),
             ("list-running", "list only running domains"), ("list-paused", "list only paused domains"),
             ("list-shutoff", "list only shutoff domains"), ("list-other", "list only domains in other states")]


def domain_stats(ctx, ref, groups: list[str]) -> list[tuple[str, object]]:
    """The typed parameters libvirt's virConnectGetAllDomainStats gives for one domain."""
    out: list[tuple[str, object]] = []
    active = ref.active
    dom = ctx.store.load(ref)
    state = STATE_NUMBERS.get(ref.state if active else "shutoff", 0)
    reasons = REASON_NUMBERS.get(state, ["unknown"])
    if "state" in groups:
        reason = ref.reason if ref.runtime is not None else "unknown"
        out += [("state.state", state), ("state.reason", reasons.index(reason) if reason in reasons else 0)]
    if "cpu-total" in groups and active:
        t = cpu_times(_pid(ref))
        out += [("cpu.time", t["cpu_time"]), ("cpu.user", t["user_time"]), ("cpu.system", t["system_time"])]
    if "balloon" in groups:
        if active:
            mem = dict(memory_stats(ctx, ref))
            out += [("balloon.current", mem.pop("actual")), ("balloon.maximum", dom.memory or 0)]
            for name, value in mem.items():
                out.append((f"balloon.{'last-update' if name == 'last_update' else name}", value))
        else:
            out += [("balloon.current", dom.current_memory or dom.memory or 0), ("balloon.maximum", dom.memory or 0)]
    if "vcpu" in groups:
        current = (ref.runtime.data.get("vcpus") if active and ref.runtime else None) or dom.effective_vcpus
        out += [("vcpu.current", current), ("vcpu.maximum", dom.vcpus or 1)]
        if active:
            for v in vcpu_threads(ctx, ref):
                n = v["vcpu"]
                out += [(f"vcpu.{n}.state", 1), (f"vcpu.{n}.time", v["time"]), (f"vcpu.{n}.delay", v["delay"])]
    if "interface" in groups and active:
        nics = dom.interfaces
        out.append(("net.count", len(nics)))
        for i, nic in enumerate(nics):
            acct = nic_counters(ctx, ref, nic)
            out.append((f"net.{i}.name", nic_name(acct, nic)))
            if acct:
                out += [(f"net.{i}.rx.bytes", acct["rx_bytes"]), (f"net.{i}.rx.pkts", acct["rx_packets"])]
                if "rx_errs" in acct:
                    out += [(f"net.{i}.rx.errs", acct["rx_errs"]), (f"net.{i}.rx.drop", acct["rx_drop"])]
                out += [(f"net.{i}.tx.bytes", acct["tx_bytes"]), (f"net.{i}.tx.pkts", acct["tx_packets"])]
                if "tx_errs" in acct:
                    out += [(f"net.{i}.tx.errs", acct["tx_errs"]), (f"net.{i}.tx.drop", acct["tx_drop"])]
    if "block" in groups:
        disks = dom.disks
        stats = block_stats(ctx, ref, dom) if active else {}
        out.append(("block.count", len(disks)))
        for i, disk in enumerate(disks):
            out.append((f"block.{i}.name", disk.target_dev))
            if disk.source:
                out.append((f"block.{i}.path", disk.source))
            s = stats.get(disk.target_dev)
            if s:
                out += [(f"block.{i}.rd.reqs", s["rd_req"]), (f"block.{i}.rd.bytes", s["rd_bytes"]),
                        (f"block.{i}.rd.times", s["rd_total_times"]), (f"block.{i}.wr.reqs", s["wr_req"]),
                        (f"block.{i}.wr.bytes", s["wr_bytes"]), (f"block.{i}.wr.times", s["wr_total_times"]),
                        (f"block.{i}.fl.reqs", s["flush_operations"]),
                        (f"block.{i}.fl.times", s["flush_total_times"])]
            if disk.source:
                try:
                    alloc, phys, cap = file_sizes(disk)
                except VshError:
                    continue
                if s and s.get("capacity") is not None:
                    cap = s["capacity"]
                if s:
                    out.append((f"block.{i}.allocation", s["wr_highest_offset"]))
                if cap is not None:
                    out.append((f"block.{i}.capacity", cap))
                out.append((f"block.{i}.physical", phys))
    return out


@command("domstats", group="monitor", summary="get statistics about one or multiple domains",
         opts=[*(Opt(name, kind="bool", help=text) for name, text in GROUP_OPTS),
               *(Opt(name, kind="bool", help=text) for name, text in LIST_OPTS),
               Opt("raw", kind="bool", help="do not pretty-print the fields (virsh prints raw fields anyway)"),
               Opt("enforce", kind="bool", help="enforce requested stats parameters (every group listed "
                                                "here is supported, so this never refuses one)"),
               Opt("domain", kind="argv", help="list of domains to get stats for")],
         description="Print statistics of the named domains, or of all domains that the --list-*\n"
                     "filters keep: one 'Domain: 'NAME'' record each, then '  field=value' lines\n"
                     "(libvirt's field names). Without a group option every group is shown. A shut-off\n"
                     "domain has only what its definition says.",
         examples=("domstats", "domstats vm1 --block --interface", "domstats --list-running --cpu-total"))
def domstats(ctx, state=False, cpu_total=False, balloon=False, vcpu=False, interface=False, block=False,
             list_active=False, list_inactive=False, list_persistent=False, list_transient=False,
             list_running=False, list_paused=False, list_shutoff=False, list_other=False, raw=False,
             enforce=False, domain=()):
    chosen = [name for name, flag in (("state", state), ("cpu-total", cpu_total), ("balloon", balloon),
                                      ("vcpu", vcpu), ("interface", interface), ("block", block)) if flag]
    groups = chosen or [name for name, _ in GROUP_OPTS]
    store = ctx.store
    if domain:
        refs, seen = [], set()
        for ident in domain:
            ref = store.get(ident)
            if ref.name not in seen:
                seen.add(ref.name)
                refs.append(ref)
    else:
        refs = sorted(store.refs(), key=lambda r: (0, r.id or 0, "") if r.active else (1, 0, r.name.lower()))

    def keep(ref) -> bool:
        if list_active != list_inactive and ref.active != list_active:
            return False
        if list_persistent != list_transient and ref.persistent != list_persistent:
            return False
        states = [s for s, f in (("running", list_running), ("paused", list_paused),
                                 ("shutoff", list_shutoff)) if f]
        if states or list_other:
            st = ref.state if ref.active else "shutoff"
            if st == "starting":
                st = "running"
            if not (st in states or (list_other and st not in ("running", "paused", "shutoff"))):
                return False
        return True

    records = []
    for ref in refs:
        if not keep(ref):
            continue
        try:
            params = domain_stats(ctx, ref, groups)
        except OperationInvalid:
            ref = store.get(ref.name)      # it stopped meanwhile: report what is true now
            params = domain_stats(ctx, ref, groups)
        records.append((ref.name, params))
    text = "\n".join(f"Domain: '{name}'\n" + "".join(f"  {k}={v}\n" for k, v in params)
                     for name, params in records)
    return Text(text, json_data=[{"domain": name, "stats": dict(params)} for name, params in records])


# -- domblkstat / domblkinfo --------------------------------------------------------------------------


BLKSTAT_ORDER = [("rd_req", "number of read operations:"), ("rd_bytes", "number of bytes read:"),
                 ("wr_req", "number of write operations:"), ("wr_bytes", "number of bytes written:"),
                 ("flush_operations", "number of flush operations:"),
                 ("rd_total_times", "total duration of reads (ns):"),
                 ("wr_total_times", "total duration of writes (ns):"),
                 ("flush_total_times", "total duration of flushes (ns):")]


@command("domblkstat", group="monitor", summary="get device block stats for a domain",
         opts=[DOMAIN, Opt("device", kind="device", positional=True, help="block device (target or source path; "
                                                                           "none: all disks together)"),
               Opt("human", kind="bool", help="print a more human readable output")],
         description="I/O counters of a disk of a running domain, from QEMU (query-blockstats):\n"
                     "'vda rd_req N' lines, or the explained form with --human.",
         examples=("domblkstat vm1 vda", "domblkstat vm1 vda --human"))
def domblkstat(ctx, domain, device=None, human=False):
    ref = _running(ctx, domain)
    dom = ctx.store.load(ref)
    stats = block_stats(ctx, ref, dom)
    device = device or ""
    if device:
        disk = find_disk(dom, device)
        if disk is None or disk.target_dev not in stats:
            raise InvalidArgument(f"invalid argument: invalid path: {device}")
        values = stats[disk.target_dev]
    else:
        values = {key: sum(s[key] for s in stats.values()) for key, _ in BLKSTAT_ORDER}
    lines = []
    label = device
    if human:
        lines.append(f"Device: {device}\n")
        label = ""
    for key, text in BLKSTAT_ORDER:
        name = text if human else key
        lines.append(f"{label} {name:<{31 if human else 0}} {values[key]}\n")
    return Text("".join(lines), json_data={"device": device, **{k: values[k] for k, _ in BLKSTAT_ORDER}})


@command("domblkinfo", group="monitor", summary="domain block device size information",
         opts=[DOMAIN, Opt("device", kind="device", positional=True, help="block device"),
               Opt("human", kind="bool", help="Human readable output"),
               Opt("all", kind="bool", help="display all block devices info")],
         exclusive=(("all", "device"),),
         description="Capacity (the size the guest sees: QEMU's virtual size, or the image's), allocation\n"
                     "(host bytes in use) and physical size (the file's size) of a disk, in bytes, or\n"
                     "with 3 decimals and a binary unit with --human. A drive without a medium shows '-'.",
         examples=("domblkinfo vm1 vda", "domblkinfo vm1 --all --human"))
def domblkinfo(ctx, domain, device=None, human=False, all=False):
    ref = ctx.store.get(domain)
    if not all and not device:
        raise InvalidArgument("command 'domblkinfo' requires <device> option")
    dom = ctx.store.load(ref)
    live = block_stats(ctx, ref, dom) if ref.active else {}

    def info(disk) -> dict:
        alloc, phys, cap = file_sizes(disk)
        qcap = (live.get(disk.target_dev) or {}).get("capacity")
        if qcap is not None:
            cap = qcap
        return {"target": disk.target_dev, "capacity": cap or 0, "allocation": alloc, "physical": phys}

    def fmt(values: dict) -> list[str]:
        keys = ("capacity", "allocation", "physical")
        if not any(values[k] for k in keys):
            return ["-", "-", "-"]
        return [pretty_capacity(values[k]) if human else str(values[k]) for k in keys]

    if all:
        rows, data = [], []
        for disk in dom.disks:
            values = info(disk) if disk.source else {"target": disk.target_dev, "capacity": 0, "allocation": 0,
                                                     "physical": 0}
            rows.append([disk.target_dev, *fmt(values)])
            data.append(values)
        return Table(["Target", "Capacity", "Allocation", "Physical"], rows, json_data=data)
    disk = find_disk(dom, device)
    if disk is None:
        raise InvalidArgument(f"invalid argument: invalid path {device} not assigned to domain")
    values = info(disk)
    cap, alloc, phys = fmt(values)
    return KeyValue([("Capacity", cap), ("Allocation", alloc), ("Physical", phys)], json_data=values)


# -- domifstat / domifaddr ----------------------------------------------------------------------------


def _find_nic(ctx, ref, dom, ident: str):
    from vsh.kvm import netacct

    accounted = netacct.load_map(_rundir(ctx, ref))
    for nic in dom.interfaces:
        entry = accounted.get((nic.mac or "").lower())
        if ident.lower() == (nic.mac or "").lower() or ident in ((entry or {}).get("id"), nic.alias,
                                                                  nic.target_dev):
            return nic
    return None


@command("domifstat", group="monitor", summary="get network interface stats for a domain",
         opts=[DOMAIN, Opt("interface", required=True, positional=True,
                           help="interface device specified by name (tap name e.g. vnet0, QEMU id e.g. net0) or MAC Address")],
         description="Traffic of an interface of a running domain since its QEMU started (rx is what\n"
                     "the guest received). User-mode interfaces: frames and bytes as QEMU passed them\n"
                     "(QEMU counts no errors or drops there, so those lines are not printed). Network\n"
                     "and bridge interfaces: the kernel's counters of the tap (vnetN), errors and drops too.",
         examples=("domifstat vm1 net0", "domifstat vm1 52:54:00:12:34:56"))
def domifstat(ctx, domain, interface):
    ref = ctx.store.get(domain)
    context = f"Failed to get interface stats {domain} {interface}"
    try:
        if not ref.active:
            raise _not_running()
        dom = ctx.store.load(ref)
        nic = _find_nic(ctx, ref, dom, interface)
        if nic is None:
            raise InvalidArgument(f"invalid argument: invalid path, '{interface}' is not a known interface")
        acct = nic_counters(ctx, ref, nic)
        if acct is None:
            raise Unsupported(f"operation not supported: interface '{interface}' (type '{nic.type}') has no "
                              "traffic counters: vsh counts the traffic of user-mode interfaces")
    except VshError as err:
        raise err.with_context(context) from None
    keys = [k for k in ("rx_bytes", "rx_packets", "rx_errs", "rx_drop", "tx_bytes", "tx_packets", "tx_errs",
                        "tx_drop") if k in acct]
    return Text("".join(f"{interface} {k} {acct[k]}\n" for k in keys),
                json_data={"interface": interface, **{k: acct[k] for k in keys}})


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


@command("domifaddr", group="monitor", summary="Get network interfaces' addresses for a running domain",
         opts=[DOMAIN, Opt("interface", positional=True, help="network interface name"),
               Opt("full", kind="bool", help="always display names and MACs of interfaces"),
               Opt("source", help="address source: 'lease' (what QEMU's DHCP server gave) or 'arp' "
                                  "(addresses the guest used)")],
         description="Addresses of the interfaces of a running domain. --source lease (the default):\n"
                     "the address the DHCP server gave the interface's MAC (QEMU's for user-mode\n"
                     "interfaces, the network's dnsmasq for type 'network'), so the guest must have\n"
                     "asked for one by DHCP. --source arp: the addresses the guest itself used as the\n"
                     "source of a frame (user-mode: IPv4 and IPv6 from the frames QEMU passed; network\n"
                     "and bridge: the host's neighbour table). An interface with nothing to show is left out.",
         examples=("domifaddr vm1", "domifaddr vm1 --source arp --full"))
def domifaddr(ctx, domain, interface=None, full=False, source=None):
    if source not in (None, "lease", "arp", "agent"):
        raise InvalidArgument(f"Unknown data source '{source}'")
    ref = ctx.store.get(domain)
    context = "Failed to query for interfaces addresses"
    try:
        if source == "agent":
            raise Unsupported("operation not supported: vsh uses no guest agent; use --source lease or arp")
        if not ref.active:
            raise _not_running()
        dom = ctx.store.load(ref)
        rows = []
        for nic in dom.interfaces:
            acct = nic_counters(ctx, ref, nic)
            if acct is None:
                continue
            name = nic_name(acct, nic)
            if interface and interface != name:
                continue
            addrs = []
            if source in (None, "lease"):
                if acct.get("lease"):
                    a = acct["lease"]["address"]
                    addrs.append(("ipv4", a, address_prefix(nic, a, "ipv4", acct.get("subnet"))))
            else:
                for a, family, _ts in sorted(acct.get("seen") or [], key=lambda s: (s[1] != "ipv4", s[2])):
                    addrs.append((family, a, address_prefix(nic, a, family, acct.get("subnet"))))
            if addrs:
                rows.append((name, nic.mac, addrs))
    except VshError as err:
        raise err.with_context(context) from None
    head = (f" {'Name':<10} {'MAC address':<20} {'Protocol':<8}     Address\n" + "-" * 49 + "-" * 30 + "\n")
    lines = []
    for name, mac, addrs in rows:
        for j, (family, addr, prefix) in enumerate(addrs):
            cell = f"{family:<12} {addr}/{prefix}"
            if full or not j:
                lines.append(f" {name:<10} {mac:<17}    {cell}\n")
            else:
                lines.append(f" {'-':<10} {'-':<17}    {cell}\n")
    data = [{"name": name, "mac": mac, "addresses": [{"type": f, "address": a, "prefix": p} for f, a, p in addrs]}
            for name, mac, addrs in rows]
    return _Quietable(head, "".join(lines), data)


class _Quietable(Text):
    """A header that ``-q`` drops (virsh's vshPrintExtra) followed by the data."""

    def __init__(self, head: str, body: str, json_data):
        super().__init__(head + body, json_data=json_data)
        self.head, self.body = head, body

    def text(self, quiet: bool) -> str:
        return self.body if quiet else self.head + self.body


# -- dommemstat ---------------------------------------------------------------------------------------


@command("dommemstat", group="monitor", summary="get memory statistics for a domain",
         opts=[DOMAIN, Opt("period", kind="int", help="period in seconds to set collection"),
               Opt("config", kind="bool", help="affect next boot"),
               Opt("live", kind="bool", help="affect running domain"),
               Opt("current", kind="bool", help="affect current domain")],
         exclusive=(("current", "live"), ("current", "config")),
         description="Memory statistics of a running domain, in KiB: actual (the balloon size), the\n"
                     "guest balloon driver's numbers (swap_in ... usable, last_update, disk_caches) once\n"
                     "a collection period is set, and rss (the QEMU process's resident memory).\n"
                     "--period N sets how often the guest reports (0 stops it), live and/or in the\n"
                     "configuration (<memballoon><stats period='N'/>).",
         examples=("dommemstat vm1", "dommemstat vm1 --period 2 --live"))
def dommemstat(ctx, domain, period=None, config=False, live=False, current=False):
    ref = ctx.store.get(domain)
    if period is not None:
        return _set_period(ctx, ref, period, config, live, current)
    try:
        if not ref.active:
            raise _not_running()
        stats = memory_stats(ctx, ref)
    except VshError as err:
        raise err.with_context(f"Failed to get memory statistics for domain {ref.name}") from None
    return Text("".join(f"{k} {v}\n" for k, v in stats), json_data=dict(stats))


def _set_period(ctx, ref, period: int, config: bool, live: bool, current: bool):
    from vsh.api.local.changes import change_config, impact

    try:
        if not (config or live or current):
            do_live, do_config = (True, ref.persistent) if ref.active else (False, True)
        else:
            do_live, do_config = impact(ref, live=live, config=config, current=current, default="current")

        def change(cfg):
            from vsh.core.domain import ensure

            bal = cfg.node.find("./devices/memballoon")
            if bal is None or bal.get("model") == "none":
                raise OperationInvalid("Requested operation is not valid: the domain has no memory balloon device")
            ensure(bal, "./stats").set("period", str(period))

        if do_live:
            path = _balloon_device(ctx, ref)
            if path is None:
                raise OperationInvalid("Requested operation is not valid: no memory balloon device configured, "
                                       "can not set the collection period")
            _qmp(ctx, ref, "qom-set", {"path": path, "property": "guest-stats-polling-interval",
                                       "value": int(period)})
        if do_config:
            change_config(ctx.store, ref, change)
    except VshError as err:
        raise err.with_context("Unable to change balloon collection period.") from None
    return Text("", json_data={"domain": ref.name, "period": period, "live": do_live, "config": do_config})


# -- vcpuinfo / cpu-stats -----------------------------------------------------------------------------


@command("vcpuinfo", group="domain", summary="detailed domain vcpu information",
         opts=[DOMAIN, Opt("pretty", kind="bool", help="return human readable output")],
         description="Per vCPU: the host CPU its thread last ran on, its state, its CPU time (from\n"
                     "/proc, the thread QEMU reports for the vCPU) and the host CPUs it may run on.",
         examples=("vcpuinfo vm1", "vcpuinfo vm1 --pretty"))
def vcpuinfo(ctx, domain, pretty=False):
    ref = ctx.store.get(domain)
    maxcpu = host_cpus()
    records = []
    data = []
    if ref.active:
        for v in vcpu_threads(ctx, ref):
            pairs = [("VCPU", str(v["vcpu"])), ("CPU", str(v["cpu"])), ("State", "running")]
            if v["time"]:
                pairs.append(("CPU time", f"{v['time'] / 1e9:.1f}s"))
            pairs.append(("CPU Affinity", _affinity_text(v["affinity"], maxcpu, pretty)))
            records.append(pairs)
            data.append({"vcpu": v["vcpu"], "cpu": v["cpu"], "state": "running", "cpu_time_ns": v["time"],
                         "affinity": v["affinity"], "thread_id": v["thread_id"]})
    else:
        from vsh.core.domain import parse_cpuset

        dom = ctx.store.load(ref, inactive=True)
        cpuset = dom.node.find("vcpu").get("cpuset") if dom.node.find("vcpu") is not None else None
        allowed = sorted(parse_cpuset(cpuset)) if cpuset else list(range(maxcpu))
        for n in range(dom.effective_vcpus):
            pin = dom.node.find(f"./cputune/vcpupin[@vcpu='{n}']")
            cpus = sorted(parse_cpuset(pin.get("cpuset"))) if pin is not None and pin.get("cpuset") else allowed
            records.append([("VCPU", str(n)), ("CPU", "N/A"), ("State", "N/A"), ("CPU time", "N/A"),
                            ("CPU Affinity", _affinity_text(cpus, maxcpu, pretty))])
            data.append({"vcpu": n, "cpu": None, "state": None, "cpu_time_ns": None, "affinity": cpus})
    text = "\n".join(KeyValue(pairs).text(False) for pairs in records)
    if not ref.active:
        # virsh prints the inactive record's "CPU time" label without its colon
        text = text.replace("CPU time:       N/A", "CPU time        N/A")
    return Text(text, json_data=data)


@command("cpu-stats", group="domain", summary="show domain cpu statistics",
         opts=[DOMAIN, Opt("total", kind="bool", help="Show total statistics only"),
               Opt("start", kind="int", help="Show statistics from this CPU"),
               Opt("count", kind="int", help="Number of shown CPUs at most")],
         description="CPU time of the domain's QEMU process (user + system, from /proc). Per host CPU\n"
                     "times need cgroup accounting, which vsh does not set up: for those it says that\n"
                     "no per-CPU stats are available, and shows the totals.",
         examples=("cpu-stats vm1 --total",))
def cpu_stats(ctx, domain, total=False, start=None, count=None):
    ref = ctx.store.get(domain)
    context = f"Failed to retrieve CPU statistics for domain '{ref.name}'"
    per_cpu = start is not None or count is not None
    if not total and not per_cpu:
        total = per_cpu = True
    out = []
    if not ref.active:
        raise _not_running().with_context(context)
    if per_cpu:
        max_id = host_cpus()
        if (start or 0) >= max_id:
            raise InvalidArgument(f"Start CPU {start} is out of range (min: 0, max: {max_id - 1})")
        if count is not None and count > max_id:
            out.append(f"Only {max_id} CPUs available to show\n")
        out.append("No per-CPU stats available\n")
    data: dict = {"per_cpu": None}
    if total:
        times = cpu_times(_pid(ref))
        out.append("Total:\n")
        for key in ("cpu_time", "user_time", "system_time"):
            ns = times[key]
            out.append(f"\t{key:<12} {ns // 1_000_000_000:9d}.{ns % 1_000_000_000:09d} seconds\n")
        data["total"] = times
    return Text("".join(out), json_data=data)
