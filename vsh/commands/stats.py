"""Statistics of domains: domstats, domblkstat, domifstat, dommemstat, vcpuinfo, cpu-stats,
domblkinfo, domifaddr: thin over ``dom.stats`` (:class:`vsh.api.stats.DomainStats`; where the
numbers come from is the driver's business, e.g. :mod:`vsh.api.local.stats`).

Text formats are virsh's: ``Domain: 'NAME'`` + ``  key=value`` records, ``vda rd_req N``,
``%-15s %s`` blocks, the ``domifaddr`` columns.  Every command takes ``--json``.
"""

from __future__ import annotations

from vsh.api.stats import ADDRESS_SOURCES
from vsh.core.errors import InvalidArgument, VshError
from vsh.core.output import KeyValue, Many, Message, Table, Text, human_size
from vsh.registry import CONFIG_OPT, CURRENT_EXCLUSIVE, CURRENT_OPT, LIVE_OPT, Opt, check_readonly, command

DOMAIN = Opt("domain", kind="domain", required=True, positional=True, help="domain name, id or uuid")


def _affinity_text(cpus, maxcpu: int, pretty: bool) -> str:
    if pretty:
        return f"{_ranges(cpus)} (out of {maxcpu})"
    return "".join("y" if i in cpus else "-" for i in range(maxcpu))


def _ranges(cpus) -> str:
    from vsh.core.domain import format_cpuset

    return format_cpuset(cpus)


# -- domstats ---------------------------------------------------------------------------------------


GROUP_OPTS = [("state", "report domain state"), ("cpu-total", "report domain physical cpu usage"),
              ("balloon", "report domain balloon statistics"), ("vcpu", "report domain virtual cpu information"),
              ("interface", "report domain network interface information"),
              ("block", "report domain block device statistics"),
              ("perf", "report domain perf event statistics"),
              ("dirtyrate", "report domain dirty rate information (after domdirtyrate-calc)")]
LIST_OPTS = [("list-active", "list only active domains"), ("list-inactive", "list only inactive domains"),
             ("list-persistent", "list only persistent domains"), ("list-transient", "list only transient domains"),
             ("list-running", "list only running domains"), ("list-paused", "list only paused domains"),
             ("list-shutoff", "list only shutoff domains"), ("list-other", "list only domains in other states")]


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
             perf=False, dirtyrate=False, list_active=False, list_inactive=False, list_persistent=False, list_transient=False,
             list_running=False, list_paused=False, list_shutoff=False, list_other=False, raw=False,
             enforce=False, domain=()):
    chosen = [name for name, flag in (("state", state), ("cpu-total", cpu_total), ("balloon", balloon),
                                      ("vcpu", vcpu), ("interface", interface), ("block", block),
                                      ("perf", perf), ("dirtyrate", dirtyrate)) if flag]
    groups = chosen or None       # None: every group
    conn = ctx.conn
    if domain:
        doms, seen = [], set()
        for ident in domain:
            dom = conn.lookup_domain(ident)
            if dom.name not in seen:
                seen.add(dom.name)
                doms.append(dom)
        listed = {d["name"]: d for d in conn.list_domains()}
        entries = [(dom, listed.get(dom.name)) for dom in doms]
    else:
        listed = sorted(conn.list_domains(),
                        key=lambda d: (0, d["id"] or 0, "") if d["active"] else (1, 0, d["name"].lower()))
        entries = [(None, d) for d in listed]

    def keep(entry) -> bool:
        if entry is None:           # gone since it was looked up: its stats say what is true now
            return True
        if list_active != list_inactive and entry["active"] != list_active:
            return False
        if list_persistent != list_transient and entry["persistent"] != list_persistent:
            return False
        states = [s for s, f in (("running", list_running), ("paused", list_paused),
                                 ("shutoff", list_shutoff)) if f]
        if states or list_other:
            st = entry["state"] if entry["active"] else "shutoff"
            if st == "starting":
                st = "running"
            if not (st in states or (list_other and st not in ("running", "paused", "shutoff"))):
                return False
        return True

    records = []
    for dom, entry in entries:
        if keep(entry):
            dom = dom or conn.lookup_domain(entry["name"])
            records.append((dom.name, dom.stats.domain_stats(groups)))
    text = "\n".join(f"Domain: '{name}'\n" + "".join(f"  {k}={v}\n" for k, v in params.items())
                     for name, params in records)
    return Text(text, json_data=[{"domain": name, "stats": params} for name, params in records])


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
    device = device or ""
    values = ctx.conn.lookup_domain(domain).stats.block_stats(device)
    lines = []
    label = device
    if human:
        lines.append(f"Device: {device}\n")
        label = ""
    for key, text in BLKSTAT_ORDER:
        name = text if human else key
        lines.append(f"{label} {name:<{31 if human else 0}} {values[key]}\n")
    return Text("".join(lines), json_data={"device": device, **values})


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
    stats = ctx.conn.lookup_domain(domain).stats
    if not all and not device:
        raise InvalidArgument("command 'domblkinfo' requires <device> option")

    def fmt(values: dict) -> list[str]:
        keys = ("capacity", "allocation", "physical")
        if not any(values[k] for k in keys):
            return ["-", "-", "-"]
        return [human_size(values[k], 3) if human else str(values[k]) for k in keys]

    if all:
        data = stats.block_info_all()
        return Table(["Target", "Capacity", "Allocation", "Physical"], [[d["target"], *fmt(d)] for d in data],
                     json_data=data)
    values = stats.block_info(device)
    cap, alloc, phys = fmt(values)
    return KeyValue([("Capacity", cap), ("Allocation", alloc), ("Physical", phys)], json_data=values)


# -- domifstat / domifaddr ----------------------------------------------------------------------------


@command("domifstat", group="monitor", summary="get network interface stats for a domain",
         opts=[DOMAIN, Opt("interface", kind="interface", required=True, positional=True,
                           help="interface device specified by name (tap name e.g. vnet0, QEMU id e.g. net0) or MAC Address")],
         description="Traffic of an interface of a running domain since its QEMU started (rx is what\n"
                     "the guest received). User-mode interfaces: frames and bytes as QEMU passed them\n"
                     "(QEMU counts no errors or drops there, so those lines are not printed). Network\n"
                     "and bridge interfaces: the kernel's counters of the tap (vnetN), errors and drops too.",
         examples=("domifstat vm1 net0", "domifstat vm1 52:54:00:12:34:56"))
def domifstat(ctx, domain, interface):
    dom = ctx.conn.lookup_domain(domain)
    try:
        counters = dom.stats.interface_stats(interface)
    except VshError as err:
        raise err.with_context(f"Failed to get interface stats {domain} {interface}") from None
    return Text("".join(f"{interface} {k} {v}\n" for k, v in counters.items()),
                json_data={"interface": interface, **counters})


@command("domifaddr", group="monitor", summary="Get network interfaces' addresses for a running domain",
         opts=[DOMAIN, Opt("interface", kind="interface", positional=True, help="network interface name"),
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
    if source not in (None, *ADDRESS_SOURCES):
        raise InvalidArgument(f"Unknown data source '{source}'")
    dom = ctx.conn.lookup_domain(domain)
    try:
        rows = dom.stats.interface_addresses(source or "lease")
    except VshError as err:
        raise err.with_context("Failed to query for interfaces addresses") from None
    if interface:
        rows = [row for row in rows if row["name"] == interface]
    head = (f" {'Name':<10} {'MAC address':<20} {'Protocol':<8}     Address\n" + "-" * 49 + "-" * 30 + "\n")
    from vsh.core.escape import escape

    lines = []
    for row in rows:            # with --source agent, names and addresses come from the guest
        if not row["addresses"]:
            lines.append(f" {escape(row['name']):<10} {escape(row['mac'] or 'N/A'):<17}    {'N/A':<12} N/A\n")
        for j, addr in enumerate(row["addresses"]):
            cell = f"{escape(addr['type']):<12} {escape(str(addr['address']))}/{addr['prefix']}"
            if full or not j:
                lines.append(f" {escape(row['name']):<10} {escape(row['mac'] or ''):<17}    {cell}\n")
            else:
                lines.append(f" {'-':<10} {'-':<17}    {cell}\n")
    return _Quietable(head, "".join(lines), rows)


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
               CONFIG_OPT, LIVE_OPT, CURRENT_OPT],
         exclusive=CURRENT_EXCLUSIVE,
         description="Memory statistics of a running domain, in KiB: actual (the balloon size), the\n"
                     "guest balloon driver's numbers (swap_in ... usable, last_update, disk_caches) once\n"
                     "a collection period is set, and rss (the QEMU process's resident memory).\n"
                     "--period N sets how often the guest reports (0 stops it), live and/or in the\n"
                     "configuration (<memballoon><stats period='N'/>).",
         examples=("dommemstat vm1", "dommemstat vm1 --period 2 --live"))
def dommemstat(ctx, domain, period=None, config=False, live=False, current=False):
    dom = ctx.conn.lookup_domain(domain)
    if period is not None:
        try:
            done = dom.stats.set_memory_stats_period(period, live=live, config=config, current=current)
        except VshError as err:
            raise err.with_context("Unable to change balloon collection period.") from None
        return Text("", json_data={"domain": dom.name, "period": period, **done})
    try:
        stats = dom.stats.memory_stats()
    except VshError as err:
        raise err.with_context(f"Failed to get memory statistics for domain {dom.name}") from None
    return Text("".join(f"{k} {v}\n" for k, v in stats.items()), json_data=stats)


# -- vcpuinfo / cpu-stats -----------------------------------------------------------------------------


@command("vcpuinfo", group="domain", summary="detailed domain vcpu information",
         opts=[DOMAIN, Opt("pretty", kind="bool", help="return human readable output")],
         description="Per vCPU: the host CPU its thread last ran on, its state, its CPU time (from\n"
                     "/proc, the thread QEMU reports for the vCPU) and the host CPUs it may run on.",
         examples=("vcpuinfo vm1", "vcpuinfo vm1 --pretty"))
def vcpuinfo(ctx, domain, pretty=False):
    data = ctx.conn.lookup_domain(domain).stats.vcpu_info()
    maxcpu = ctx.conn.host.cpu_count()
    texts = []
    for v in data:
        affinity = ("CPU Affinity", _affinity_text(v["affinity"], maxcpu, pretty))
        if v["state"] is None:
            pairs = [("VCPU", str(v["vcpu"])), ("CPU", "N/A"), ("State", "N/A"), ("CPU time", "N/A"), affinity]
            # virsh prints the inactive record's "CPU time" label without its colon
            texts.append(KeyValue(pairs).text(False).replace("CPU time:       N/A", "CPU time        N/A"))
            continue
        pairs = [("VCPU", str(v["vcpu"])), ("CPU", str(v["cpu"])), ("State", v["state"])]
        if v["cpu_time_ns"]:
            pairs.append(("CPU time", f"{v['cpu_time_ns'] / 1e9:.1f}s"))
        texts.append(KeyValue([*pairs, affinity]).text(False))
    return Text("\n".join(texts), json_data=data)


@command("cpu-stats", group="domain", summary="show domain cpu statistics",
         opts=[DOMAIN, Opt("total", kind="bool", help="Show total statistics only"),
               Opt("start", kind="int", help="Show statistics from this CPU"),
               Opt("count", kind="int", help="Number of shown CPUs at most")],
         description="CPU time of the domain's QEMU process (user + system, from /proc). Per host CPU\n"
                     "times come from the accounting of QEMU's own cgroup (cgroup v1 hosts, vsh as root);\n"
                     "elsewhere it says that no per-CPU stats are available, and shows the totals.",
         examples=("cpu-stats vm1 --total",))
def cpu_stats(ctx, domain, total=False, start=None, count=None):
    dom = ctx.conn.lookup_domain(domain)
    per_cpu = start is not None or count is not None
    if not total and not per_cpu:
        total = per_cpu = True
    try:
        times = dom.stats.cpu_times()
    except VshError as err:
        raise err.with_context(f"Failed to retrieve CPU statistics for domain '{dom.name}'") from None
    out = []
    if per_cpu:
        try:
            cpus = dom.stats.per_cpu_times()
        except VshError as err:
            raise err.with_context(f"Failed to retrieve CPU statistics for domain '{dom.name}'") from None
        # as virsh: the CPUs the statistics cover (the host's when there are none)
        max_id = ctx.conn.host.cpu_count() if cpus is None else len(cpus)
        if (start or 0) >= max_id:
            raise InvalidArgument(f"Start CPU {start} is out of range (min: 0, max: {max_id - 1})")
        if count is not None and count > max_id:
            out.append(f"Only {max_id} CPUs available to show\n")
        if cpus is None:
            out.append("No per-CPU stats available\n")
        else:
            first = start or 0
            cpus = cpus[first:first + count if count is not None else None]
            for number, counters in enumerate(cpus, first):
                if counters:
                    out.append(f"CPU{number}:\n" + "".join(_cpu_line(k, v) for k, v in counters.items()))
    data: dict = {"per_cpu": cpus if per_cpu else None}
    if total:
        out.append("Total:\n")
        for key in ("cpu_time", "user_time", "system_time"):
            out.append(_cpu_line(key, times[key]))
        data["total"] = times
    return Text("".join(out), json_data=data)


def _cpu_line(key: str, value) -> str:
    """virsh cpu-stats' line of one counter: times in seconds with 9 decimals, others as they are."""
    if key.endswith("_time") and isinstance(value, int):
        return f"\t{key:<12} {value // 1_000_000_000:9d}.{value % 1_000_000_000:09d} seconds\n"
    return f"\t{key:<12} {value}\n"


# -- vcpupin / emulatorpin / iothreadinfo -------------------------------------------------------------

AFFECT = [CONFIG_OPT, LIVE_OPT, CURRENT_OPT]


def _cpulist(text: str, maxcpu: int) -> list[int]:
    """virsh's cpulist: ``0-3,^2``, or ``r`` for every host CPU."""
    from vsh.core.domain import parse_cpuset

    if text == "r":
        return list(range(maxcpu))
    try:
        return sorted(parse_cpuset(text))
    except VshError:
        raise InvalidArgument("cpulist: Invalid format.") from None


@command("vcpupin", group="domain", summary="control or query domain vcpu affinity",
         opts=[DOMAIN, Opt("vcpu", kind="int", positional=True, help="vcpu number"),
               Opt("cpulist", positional=True, help="host cpu number(s) to set, or omit option to query"),
               *AFFECT],
         exclusive=CURRENT_EXCLUSIVE,
         description="Query or change the host CPUs each vCPU may run on. Live this is the affinity of\n"
                     "the vCPU's QEMU thread; --config writes <cputune><vcpupin>. cpulist is libvirt's\n"
                     "syntax (0-3,^2) or 'r' for every host CPU.",
         examples=("vcpupin vm1", "vcpupin vm1 0 1-2", "vcpupin vm1 --vcpu 1 --cpulist 0 --config"))
def vcpupin(ctx, domain, vcpu=None, cpulist=None, config=False, live=False, current=False):
    dom = ctx.conn.lookup_domain(domain)
    flags = {"live": live, "config": config, "current": current}
    if vcpu is not None and vcpu < 0:
        raise InvalidArgument("vcpupin: Invalid vCPU number.")
    if cpulist is None:
        pins = dom.tuning.vcpu_pins(**flags)
        if vcpu is not None:
            if vcpu >= len(pins):
                raise InvalidArgument("vcpupin: vCPU index out of range.")
            pins = [p for p in pins if p["vcpu"] == vcpu]
        return Table(["VCPU", "CPU Affinity"], [[str(p["vcpu"]), _ranges(p["cpus"])] for p in pins],
                     json_data=pins)
    if vcpu is None:
        raise InvalidArgument("vcpupin: Missing vCPU number in pin mode.")
    check_readonly(ctx, "virDomainPinVcpuFlags")
    cpus = _cpulist(cpulist, ctx.conn.host.cpu_count())
    done = dom.tuning.pin_vcpu(vcpu, cpus, **flags)
    return Text("", json_data={"domain": dom.name, "vcpu": vcpu, "cpus": cpus, **done})


@command("emulatorpin", group="domain", summary="control or query domain emulator affinity",
         opts=[DOMAIN, Opt("cpulist", positional=True, help="host cpu number(s) to set, or omit option to query"),
               *AFFECT],
         exclusive=CURRENT_EXCLUSIVE,
         description="Query or change the host CPUs QEMU's own threads (all but the vCPUs and iothreads)\n"
                     "may run on. --config writes <cputune><emulatorpin>.",
         examples=("emulatorpin vm1", "emulatorpin vm1 0-1 --live --config"))
def emulatorpin(ctx, domain, cpulist=None, config=False, live=False, current=False):
    dom = ctx.conn.lookup_domain(domain)
    flags = {"live": live, "config": config, "current": current}
    if cpulist is None:
        cpus = dom.tuning.emulator_pin(**flags)
        return Many([Message("emulator: CPU Affinity\n----------------------------------\n       *: ",
                             newline=False), Text(_ranges(cpus) + "\n")], json_data={"cpus": cpus})
    check_readonly(ctx, "virDomainPinEmulator")
    cpus = _cpulist(cpulist, ctx.conn.host.cpu_count())
    done = dom.tuning.pin_emulator(cpus, **flags)
    return Text("", json_data={"domain": dom.name, "cpus": cpus, **done})


@command("iothreadinfo", group="domain", summary="view domain IOThreads",
         opts=[DOMAIN, *AFFECT], exclusive=CURRENT_EXCLUSIVE,
         description="The domain's IOThreads (<iothreads>, <iothreadids>) and the host CPUs each may\n"
                     "run on (live: the affinity of the thread QEMU runs it in).",
         examples=("iothreadinfo vm1", "iothreadinfo vm1 --config"))
def iothreadinfo(ctx, domain, config=False, live=False, current=False):
    threads = ctx.conn.lookup_domain(domain).tuning.iothreads(live=live, config=config, current=current)
    if not threads:
        return Message("No IOThreads found for the domain", newline=False, json_data=[])
    return Table(["IOThread ID", "CPU Affinity"], [[str(t["id"]), _ranges(t["cpus"])] for t in threads],
                 json_data=threads)


IOTHREAD_ID = Opt("id", kind="int", required=True, positional=True, help="iothread id")


def _iothread_id(value: int) -> int:
    if value <= 0:
        raise InvalidArgument(f"Invalid IOThread id value: '{value}'")
    return value


@command("iothreadadd", group="domain", summary="add an IOThread to the guest domain",
         opts=[DOMAIN, IOTHREAD_ID, *AFFECT], exclusive=CURRENT_EXCLUSIVE, mutating=True,
         description="Add iothread <id>: live a new QEMU iothread object, with --config in the\n"
                     "definition (<iothreads>, <iothreadids>). Disks use it through <driver iothread='id'/>.",
         examples=("iothreadadd vm1 2", "iothreadadd vm1 3 --live --config"))
def iothreadadd(ctx, domain, id, config=False, live=False, current=False):
    done = ctx.conn.lookup_domain(domain).tuning.add_iothread(_iothread_id(id), live=live, config=config,
                                                              current=current)
    return Text("", json_data={"id": id, **done})


@command("iothreaddel", group="domain", summary="delete an IOThread from the guest domain",
         opts=[DOMAIN, IOTHREAD_ID, *AFFECT], exclusive=CURRENT_EXCLUSIVE, mutating=True,
         description="Remove iothread <id> (refused while a disk uses it).",
         examples=("iothreaddel vm1 2",))
def iothreaddel(ctx, domain, id, config=False, live=False, current=False):
    done = ctx.conn.lookup_domain(domain).tuning.delete_iothread(_iothread_id(id), live=live, config=config,
                                                                 current=current)
    return Text("", json_data={"id": id, **done})


@command("iothreadpin", group="domain", summary="control domain IOThread affinity",
         opts=[DOMAIN, Opt("iothread", kind="int", required=True, positional=True, help="IOThread ID number"),
               Opt("cpulist", required=True, positional=True, help="host cpu number(s) to set"), *AFFECT],
         exclusive=CURRENT_EXCLUSIVE, mutating=True,
         description="Let an iothread run only on the host CPUs of cpulist (libvirt's syntax, or 'r' for\n"
                     "all): live the affinity of its QEMU thread, --config <cputune><iothreadpin>.",
         examples=("iothreadpin vm1 1 0", "iothreadpin vm1 1 0-1 --config"))
def iothreadpin(ctx, domain, iothread, cpulist, config=False, live=False, current=False):
    cpus = _cpulist(cpulist, ctx.conn.host.cpu_count())
    done = ctx.conn.lookup_domain(domain).tuning.pin_iothread(iothread, cpus, live=live, config=config,
                                                              current=current)
    return Text("", json_data={"iothread": iothread, "cpus": cpus, **done})


IOTHREADSET_OPTS = [("poll-max-ns", "set the maximum IOThread polling time in ns"),
                    ("poll-grow", "set the value to increase the IOThread polling time"),
                    ("poll-shrink", "set the value for reduction of the IOThread polling time"),
                    ("thread-pool-min", "lower boundary for worker thread pool"),
                    ("thread-pool-max", "upper boundary for worker thread pool")]


@command("iothreadset", group="domain", summary="modifies an existing IOThread of the guest domain",
         opts=[DOMAIN, Opt("id", kind="int", required=True, positional=True, help="iothread id of existing IOThread"),
               *(Opt(name, kind="int", help=text) for name, text in IOTHREADSET_OPTS), *AFFECT],
         exclusive=CURRENT_EXCLUSIVE, mutating=True,
         description="Change the polling and worker-pool parameters of an iothread: live the properties\n"
                     "of its QEMU object, --config libvirt's <iothread> attributes and <poll>.",
         examples=("iothreadset vm1 1 --poll-max-ns 32768", "iothreadset vm1 1 --thread-pool-max 16 --config"))
def iothreadset(ctx, domain, id, poll_max_ns=None, poll_grow=None, poll_shrink=None, thread_pool_min=None,
                thread_pool_max=None, config=False, live=False, current=False):
    given = {"poll_max_ns": poll_max_ns, "poll_grow": poll_grow, "poll_shrink": poll_shrink,
             "thread_pool_min": thread_pool_min, "thread_pool_max": thread_pool_max}
    params = {k: v for k, v in given.items() if v is not None}
    if not params:
        raise InvalidArgument("Not enough arguments passed, nothing to set")
    done = ctx.conn.lookup_domain(domain).tuning.set_iothread(_iothread_id(id), params, live=live, config=config,
                                                              current=current)
    return Text("", json_data={"id": id, "params": params, **done})


@command("domdirtyrate-calc", group="domain", summary="Calculate a vm's memory dirty rate",
         opts=[DOMAIN, Opt("seconds", kind="int", help="calculate memory dirty rate within specified seconds, the "
                                                        "supported value range from 1 to 60, default to 1."),
               Opt("mode", kind="enum", choices=("page-sampling", "dirty-bitmap", "dirty-ring"),
                   help="dirty page rate calculation mode, either of these 3 options 'page-sampling, dirty-bitmap, "
                        "dirty-ring' can be specified.")],
         mutating=True, examples=("domdirtyrate-calc vm1 --seconds 2", "domstats vm1 --dirtyrate"),
         description="Calculate memory dirty rate of a domain in order to decide whether it's proper to be\n"
                     "migrated out or not. The calculated dirty rate information is available by calling\n"
                     "'domstats --dirtyrate'.")
def domdirtyrate_calc(ctx, domain, seconds=None, mode=None):
    dom = ctx.conn.lookup_domain(domain)
    dom.stats.start_dirty_rate_calc(1 if seconds is None else seconds, mode)
    return Message("Start to calculate domain's memory dirty rate successfully.",
                   json_data={"domain": dom.name, "seconds": 1 if seconds is None else seconds, "mode": mode})
