"""What a start does with the resource tunables of the definition (``<numatune>``, ``<memtune>``,
``<blkiotune>``, ``<cputune>``, ``<perf>``), where libvirt's QEMU driver applies them through
cgroups and perf.

Nothing is dropped: what vsh applies, it applies; what it cannot, it refuses, saying why.

- ``<numatune><memory mode='strict|preferred|interleave' nodeset=…>`` of a guest without NUMA
  cells: QEMU's memory policy, set in the child before it executes QEMU (libvirt does the same
  where it has no cpuset cgroup). Guests with cells get it per memory backend from the argv
  (``host-nodes``/``policy``, :mod:`vsh.kvm.argv.numa`).
- The cgroup limits (:func:`cgroup_plan`), set by the supervisor on QEMU's own groups
  (:mod:`vsh.kvm.cgroup`, :mod:`vsh.kvm.cgtune`) while QEMU is still stopped, on cgroup v1
  or v2: ``<cputune>``'s ``shares``, ``global_period`` and ``global_quota``; ``<memtune>``'s
  ``hard_limit``, ``soft_limit`` and ``swap_hard_limit``; ``<blkiotune>``'s weight and
  per-device weight and throttles; ``<numatune><memory mode='restrictive'>``'s nodes as
  ``cpuset.mems`` (no memory policy, as libvirt). Refused before QEMU starts where vsh
  makes no group with that controller (not root, no such hierarchy); a group that refuses a
  value (no I/O weight file without CFQ/BFQ, a memory limit below what QEMU uses) fails the
  start with the file and the kernel's reason.
- ``<perf>``'s enabled events: counters the supervisor opens on QEMU's threads before the
  guest runs (:mod:`vsh.kvm.perf`); an event the host cannot count (no hardware PMU, no
  intel_cqm) fails the start with the kernel's reason.
- The per-thread periods and quotas (``period``, ``quota``, ``emulator_*``, ``iothread_*``)
  need a cgroup per thread and ``<memtune><min_guarantee>`` is an ESX setting: refused,
  with the element named.
"""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, Unsupported, VshError

#: libvirt's "unlimited" memory parameter (2**53 - 1 KiB): no limit
UNLIMITED_KIB = 2 ** 53 - 1
MEMTUNE = ("hard_limit", "soft_limit", "swap_hard_limit")
#: <blkiotune><device> children → blkiotune's parameters
BLKIO_DEVICE = {"weight": "device_weight", "read_bytes_sec": "device_read_bytes_sec",
                "write_bytes_sec": "device_write_bytes_sec", "read_iops_sec": "device_read_iops_sec",
                "write_iops_sec": "device_write_iops_sec"}

#: <cputune> children applied to QEMU's cgroup at start → vsh.kvm.cgroup.set_cpu's arguments
CPU_KNOBS = {"shares": "shares", "global_period": "period", "global_quota": "quota"}
#: <cputune> children that need a cgroup per thread
PER_THREAD = ("period", "quota", "emulator_period", "emulator_quota", "iothread_period", "iothread_quota")


def host_nodes() -> set[int]:
    """The host's online NUMA nodes (node 0 where the kernel says nothing)."""
    from vsh.core.domain import parse_cpuset

    try:
        with open("/sys/devices/system/node/online") as fh:
            return set(parse_cpuset(fh.read().strip()))
    except (OSError, ValueError, VshError):
        return {0}


def major_minor(path: str) -> str:
    """``MAJOR:MINOR`` of block device ``path`` (a <blkiotune> device, as cgroups name it)."""
    import stat

    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidArgument(f"invalid argument: cannot stat '{path}': {exc.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidArgument(f"invalid argument: path '{path}' must be a block device")
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


def check_nodeset(nodes: set[int]) -> None:
    missing = sorted(nodes - host_nodes())
    if missing:
        raise Unsupported(f"unsupported configuration: NUMA node {missing[0]} is unavailable")


def memory_policy(dom) -> dict | None:
    """``{"mode", "nodes"}`` for QEMU's memory policy from ``<numatune><memory>``, or None; refuses
    what vsh cannot apply (see the module's text)."""
    from vsh.core.domain import parse_cpuset

    node = dom.node
    if any(el.get("mode") == "restrictive" for el in node.findall("numatune/memnode")) and \
            node.find("numatune/memory[@mode='restrictive']") is None:
        raise Unsupported("unsupported configuration: 'restrictive' mode is required in memory element when mode "
                          "is 'restrictive' in memnode element")
    for el in node.findall("numatune/memnode"):       # per guest cell: in the argv; QEMU would fail later
        if el.get("nodeset"):
            check_nodeset(set(parse_cpuset(el.get("nodeset"))))
    mem = node.find("numatune/memory")
    if mem is None:
        return None
    if mem.get("placement") == "auto":
        raise Unsupported("unsupported configuration: numatune placement 'auto' needs numad, which vsh does not use",
                          hint="give a nodeset (placement='static')")
    nodeset = mem.get("nodeset")
    if not nodeset:
        return None
    nodes = set(parse_cpuset(nodeset))
    check_nodeset(nodes)
    if node.find("cpu/numa/cell") is not None or mem.get("mode") == "restrictive":
        return None                     # per memory backend, in the argv; restrictive: cpuset.mems
    return {"mode": mem.get("mode") or "strict", "nodes": sorted(nodes)}


def perf_events(dom) -> list[str]:
    """The enabled ``<perf>`` events, which the supervisor counts on QEMU (:mod:`vsh.kvm.perf`);
    one the host cannot count fails the start there, with the kernel's reason."""
    from vsh.api.tuning import PERF_EVENTS

    names = [ev.get("name") for ev in dom.node.findall("perf/event") if ev.get("enabled") == "yes"]
    for name in names:
        if name not in PERF_EVENTS:
            raise InvalidArgument(f"invalid argument: unknown perf event '{name}'")
    return names


def _needs(controller: str, element: str) -> None:
    from vsh.kvm import cgroup

    if not cgroup.usable(controller):
        raise Unsupported(f"unsupported configuration: {element} needs a cgroup of the domain's own with the "
                          f"{controller} controller, which vsh makes only when it runs as root on a host with "
                          f"a {controller} cgroup hierarchy",
                          hint="remove it, or start the domain on vsh:///system")


def cgroup_plan(dom) -> dict:
    """What the supervisor sets on QEMU's cgroups at start (:func:`vsh.kvm.cgtune.apply`):
    ``cpu``, ``memory``, ``blkio``, ``mems``, each only when the definition asks; refuses,
    before QEMU starts, what vsh cannot apply (see the module's text)."""
    plan = {"cpu": cpu_scheduler(dom), "memory": _memtune(dom), "blkio": _blkiotune(dom),
            "mems": _restrictive_nodes(dom)}
    return {key: value for key, value in plan.items() if value}


def _memtune(dom) -> dict:
    from vsh.core.units import parse_scaled

    found = {}
    for el in dom.node.findall("memtune/*"):
        text = (el.text or "").strip()
        if el.tag == "min_guarantee" and text:
            raise Unsupported("unsupported configuration: <memtune><min_guarantee> is an ESX setting; QEMU has none",
                              hint="remove it")
        if el.tag in MEMTUNE and text:
            kib = parse_scaled(text + (el.get("unit") or "KiB"), what=f"memtune/{el.tag}") // 1024
            found[el.tag] = None if kib >= UNLIMITED_KIB else kib
    if not any(v is not None for v in found.values()):
        return {}
    hard, swap = found.get("hard_limit"), found.get("swap_hard_limit")
    if swap is not None and (hard is None or hard > swap):
        raise InvalidArgument("invalid argument: memory hard_limit tunable value must be lower than or equal to "
                              "swap_hard_limit")
    _needs("memory", f"<memtune><{next(k for k, v in found.items() if v is not None)}>")
    return found


def _blkiotune(dom) -> dict:

    tune = dom.node.find("blkiotune")
    if tune is None:
        return {}
    out, devices = {}, {}
    weight = (tune.findtext("weight") or "").strip()
    if weight:
        if not weight.isdigit() or not 100 <= int(weight) <= 1000:
            raise InvalidArgument(f"invalid argument: <blkiotune><weight> '{weight}' is out of the range 100-1000")
        out["weight"] = int(weight)
    for dev in tune.findall("device"):
        path = (dev.findtext("path") or "").strip()
        for leaf, name in BLKIO_DEVICE.items():
            text = (dev.findtext(leaf) or "").strip()
            if not text or text == "0":
                continue
            if not text.isdigit():
                raise InvalidArgument(f"invalid argument: <blkiotune><device><{leaf}> is not a number: '{text}'")
            devices.setdefault(name, []).append([major_minor(path), int(text)])
    if devices:
        out["devices"] = devices
    if out:
        _needs("blkio", "<blkiotune>")
    return out


def _restrictive_nodes(dom) -> str:
    from vsh.core.domain import format_cpuset, parse_cpuset

    mem = dom.node.find("numatune/memory")
    if mem is None or mem.get("mode") != "restrictive" or not mem.get("nodeset") or mem.get("placement") == "auto":
        return ""
    nodes = set(parse_cpuset(mem.get("nodeset")))
    check_nodeset(nodes)
    _needs("cpuset", "numatune mode 'restrictive'")
    return format_cpuset(nodes)


def cpu_scheduler(dom) -> dict:
    """The arguments of :func:`vsh.kvm.cgroup.set_cpu` from ``<cputune>`` (empty when it sets none);
    refuses, before QEMU starts, what vsh cannot apply (see the module's text)."""
    found, tags = {}, []
    for el in dom.node.findall("cputune/*"):
        text = (el.text or "").strip()
        if el.tag in PER_THREAD and text not in ("", "0"):
            raise Unsupported(f"unsupported configuration: <cputune><{el.tag}> needs a cgroup per thread, "
                              "which vsh does not create", hint="use <global_period>/<global_quota>")
        if el.tag in CPU_KNOBS and text:
            try:
                found[CPU_KNOBS[el.tag]] = int(text)
            except ValueError:
                raise InvalidArgument(f"invalid argument: <cputune><{el.tag}> is not a number: "
                                      f"'{text}'") from None
            tags.append(el.tag)
    if found:
        _needs("cpu", f"<cputune><{tags[0]}>")
    return found
