"""Memory, block I/O and NUMA tunables and perf events of a domain (virsh's memtune, blkiotune,
numatune, perf) through ``dom.tuning`` (vsh.api.tuning). Queries print virsh's ``%-15s: %s``
lines; every command takes ``--json`` and virsh's ``--config``/``--live``/``--current``."""

from __future__ import annotations

from vsh.api.tuning import BLKIO_DEVICE_PARAMS, NUMA_MODES, PERF_EVENTS
from vsh.core.errors import InvalidArgument
from vsh.core.output import Text
from vsh.registry import CONFIG_OPT, CURRENT_EXCLUSIVE, CURRENT_OPT, LIVE_OPT, Opt, command

DOMAIN = Opt("domain", kind="domain", required=True, positional=True, help="domain name, id or uuid")
AFFECT = [CONFIG_OPT, LIVE_OPT, CURRENT_OPT]


def _lines(values: dict) -> str:
    return "".join(f"{name:<15}: {value}\n" for name, value in values.items())


def _flags(config, live, current) -> dict:
    return {"config": config, "live": live, "current": current}


MEMTUNE_OPTS = [("hard-limit", "Max memory, as scaled integer (default KiB)"),
                ("soft-limit", "Memory during contention, as scaled integer (default KiB)"),
                ("swap-hard-limit", "Max memory plus swap, as scaled integer (default KiB)"),
                ("min-guarantee", "Min guaranteed memory, as scaled integer (default KiB)")]


@command("memtune", group="domain", summary="Get or set memory parameters",
         opts=[DOMAIN, *(Opt(name, help=text) for name, text in MEMTUNE_OPTS), *AFFECT],
         exclusive=CURRENT_EXCLUSIVE,
         description="Get or set the current memory parameters for a guest domain: with no option the\n"
                     "limits (KiB, or 'unlimited'); -1 sets one to unlimited. The definition keeps\n"
                     "<memtune>; live values are those of QEMU's own memory cgroup (v1:\n"
                     "memory.limit_in_bytes, memory.soft_limit_in_bytes, memory.memsw.limit_in_bytes; v2:\n"
                     "memory.max, memory.high, memory.swap.max), and vsh says why not when QEMU has none.",
         examples=("memtune vm1 --config", "memtune vm1 --hard-limit 2G --config"))
def memtune(ctx, domain, hard_limit=None, soft_limit=None, swap_hard_limit=None, min_guarantee=None,
            config=False, live=False, current=False):
    from vsh.core.units import parse_scaled

    given = {"hard_limit": hard_limit, "soft_limit": soft_limit, "swap_hard_limit": swap_hard_limit,
             "min_guarantee": min_guarantee}
    params = {}
    for name, text in given.items():
        if text is None:
            continue
        if text.strip() == "-1":
            params[name] = None
        else:
            try:
                params[name] = parse_scaled(text, 1024, name) // 1024
            except InvalidArgument:
                raise InvalidArgument(f"Unable to parse integer parameter {name.replace('_', '-')}") from None
    tuning = ctx.conn.lookup_domain(domain).tuning
    if params:
        done = tuning.set_memory_parameters(params, **_flags(config, live, current))
        return Text("", json_data={"params": params, **done})
    values = tuning.memory_parameters(**_flags(config, live, current))
    return Text(_lines({k: "unlimited" if v is None else v for k, v in values.items()}), json_data=values)


BLKIO_OPTS = [("device-weights", "per-device IO Weights, in the form of /path/to/device,weight,..."),
              ("device-read-iops-sec", "per-device read I/O limit per second, in the form of "
                                       "/path/to/device,read_iops_sec,..."),
              ("device-write-iops-sec", "per-device write I/O limit per second, in the form of "
                                        "/path/to/device,write_iops_sec,..."),
              ("device-read-bytes-sec", "per-device bytes read per second, in the form of "
                                        "/path/to/device,read_bytes_sec,..."),
              ("device-write-bytes-sec", "per-device bytes wrote per second, in the form of "
                                         "/path/to/device,write_bytes_sec,...")]


@command("blkiotune", group="domain", summary="Get or set blkio parameters",
         opts=[DOMAIN, Opt("weight", kind="int", help="IO Weight"),
               *(Opt(name, help=text) for name, text in BLKIO_OPTS), *AFFECT],
         exclusive=CURRENT_EXCLUSIVE,
         description="Get or set the blkio parameters of a domain: the weight (100-1000) and per-device\n"
                     "weights and limits (a value of 0 removes a device's). The definition keeps\n"
                     "<blkiotune>; live values are those of QEMU's own blkio cgroup (v1: blkio.weight or\n"
                     "blkio.bfq.weight, blkio.weight_device, blkio.throttle.*; v2: io.weight, io.max); a\n"
                     "weight needs a disk scheduler that has one (CFQ or BFQ on v1).",
         examples=("blkiotune vm1 --config", "blkiotune vm1 --weight 500 --config"))
def blkiotune(ctx, domain, weight=None, device_weights=None, device_read_iops_sec=None,
              device_write_iops_sec=None, device_read_bytes_sec=None, device_write_bytes_sec=None,
              config=False, live=False, current=False):
    lists = dict(zip(BLKIO_DEVICE_PARAMS, (device_weights, device_read_iops_sec, device_write_iops_sec,
                                           device_read_bytes_sec, device_write_bytes_sec)))
    params = {k: v for k, v in lists.items() if v is not None}
    if weight is not None:
        params["weight"] = weight
    tuning = ctx.conn.lookup_domain(domain).tuning
    if params:
        done = tuning.set_blkio_parameters(params, **_flags(config, live, current))
        return Text("", json_data={"params": params, **done})
    values = tuning.blkio_parameters(**_flags(config, live, current))
    return Text(_lines(values), json_data=values)


@command("numatune", group="domain", summary="Get or set numa parameters",
         opts=[DOMAIN, Opt("mode", help="NUMA mode, one of strict, preferred, interleave, restrictive or a number "
                                        "of the mode"),
               Opt("nodeset", help="NUMA node selections to set"), *AFFECT],
         exclusive=CURRENT_EXCLUSIVE,
         description="Get or set the memory policy of a domain's QEMU (<numatune><memory>): mode and host\n"
                     "NUMA nodeset. Live only the nodeset of mode restrictive changes (cpuset.mems of\n"
                     "QEMU's own cpuset cgroup).",
         examples=("numatune vm1 --config", "numatune vm1 --mode strict --nodeset 0 --config"))
def numatune(ctx, domain, mode=None, nodeset=None, config=False, live=False, current=False):
    tuning = ctx.conn.lookup_domain(domain).tuning
    if mode is not None and mode.isdigit():
        if int(mode) >= len(NUMA_MODES):
            raise InvalidArgument(f"Invalid mode: {mode}")
        mode = NUMA_MODES[int(mode)]
    elif mode is not None and mode not in NUMA_MODES:
        raise InvalidArgument(f"Invalid mode: {mode}")
    if mode is not None or nodeset is not None:
        done = tuning.set_numa_parameters(mode, nodeset, **_flags(config, live, current))
        return Text("", json_data={"mode": mode, "nodeset": nodeset, **done})
    values = tuning.numa_parameters(**_flags(config, live, current))
    return Text(_lines(values), json_data=values)


@command("perf", group="domain", summary="Get or set perf event",
         opts=[DOMAIN, Opt("enable", help="perf events which will be enabled"),
               Opt("disable", help="perf events which will be disabled"), *AFFECT],
         exclusive=CURRENT_EXCLUSIVE,
         description="Get or set the perf events of a domain (comma-separated names, see the list a query\n"
                     "prints). The definition keeps <perf>; on a running domain the supervisor opens\n"
                     "the counters on QEMU's threads (domstats --perf reports them as perf.NAME), and\n"
                     "an event the host cannot count (no hardware PMU, no intel_cqm) is refused with why.",
         examples=("perf vm1", "perf vm1 --enable task_clock,context_switches", "domstats vm1 --perf"))
def perf(ctx, domain, enable=None, disable=None, config=False, live=False, current=False):
    events = {}
    for text, state in ((enable, True), (disable, False)):
        for name in (text or "").split(","):
            if name:
                events[name] = state
    tuning = ctx.conn.lookup_domain(domain).tuning
    if enable is not None or disable is not None:
        if not events:
            raise InvalidArgument("No event is specified")
        done = tuning.set_perf_events(events, **_flags(config, live, current))
        return Text("", json_data={"events": events, **done})
    values = tuning.perf_events(**_flags(config, live, current))
    return Text(_lines({name: "enabled" if values[name] else "disabled" for name in PERF_EVENTS}),
                json_data=values)
