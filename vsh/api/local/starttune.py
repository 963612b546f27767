"""What a start does with the resource tunables of the definition (``<numatune>``, ``<memtune>``,
``<blkiotune>``, ``<perf>``), where libvirt's QEMU driver applies them through cgroups and perf.

Nothing is dropped: what vsh applies, it applies; what it cannot, it refuses before QEMU starts.

- ``<numatune><memory mode='strict|preferred|interleave' nodeset=…>`` of a guest without NUMA
  cells: QEMU's memory policy, set in the child before it executes QEMU (libvirt does the same
  where it has no cpuset cgroup). Guests with cells get it per memory backend from the argv
  (``host-nodes``/``policy``, :mod:`vsh.kvm.argv.numa`).
- ``<cputune>``'s ``shares``, ``global_period`` and ``global_quota``: the CPU weight and
  bandwidth of QEMU's own cgroup (:mod:`vsh.kvm.cgroup`), set once QEMU runs; refused where
  vsh makes no cgroup (not root, no cpu hierarchy). The per-thread periods and quotas
  (``period``, ``quota``, ``emulator_*``, ``iothread_*``) need a cgroup per thread: refused.
- The others need memory, block I/O or cpuset limits on QEMU's cgroup (memory.max, io.weight,
  cpuset.mems for ``restrictive``) or perf counters on QEMU's threads; vsh sets neither, so a
  definition that asks for them does not start, and the error says which element and why.
"""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, Unsupported, VshError

_WHY = ("vsh's cgroup for QEMU carries the CPU scheduler's weight and bandwidth only "
        "(libvirt's QEMU driver sets memory, I/O and cpuset limits on it too)")

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


def check_nodeset(nodes: set[int]) -> None:
    missing = sorted(nodes - host_nodes())
    if missing:
        raise Unsupported(f"unsupported configuration: NUMA node {missing[0]} is unavailable")


def memory_policy(dom) -> dict | None:
    """``{"mode", "nodes"}`` for QEMU's memory policy from ``<numatune><memory>``, or None; refuses
    what vsh cannot apply (see the module's text)."""
    from vsh.core.domain import parse_cpuset

    node = dom.node
    for el, what in ((node.find("memtune"), "<memtune>"), (node.find("blkiotune"), "<blkiotune>")):
        if el is not None and any((child.text or "").strip() or len(child) for child in el):
            raise Unsupported(f"unsupported configuration: {what} limits need a cgroup of the domain's own: {_WHY}",
                              hint=f"remove {what} (or start the domain on a libvirt connection)")
    enabled = [ev.get("name") for ev in node.findall("perf/event") if ev.get("enabled") == "yes"]
    if enabled:
        raise Unsupported(f"unsupported configuration: perf event '{enabled[0]}': vsh opens no perf counters on "
                          "QEMU's threads", hint="set enabled='no' (virsh perf --disable) or remove <perf>")
    for el in node.findall("numatune/*"):
        if el.get("mode") == "restrictive":
            raise Unsupported(f"unsupported configuration: numatune mode 'restrictive' needs the cpuset cgroup: "
                              f"{_WHY}", hint="use mode='strict'")
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
    if node.find("cpu/numa/cell") is not None:
        return None                     # per memory backend, in the argv
    return {"mode": mem.get("mode") or "strict", "nodes": sorted(nodes)}


def cpu_scheduler(dom) -> dict:
    """The arguments of :func:`vsh.kvm.cgroup.set_cpu` from ``<cputune>`` (empty when it sets none);
    refuses, before QEMU starts, what vsh cannot apply (see the module's text)."""
    from vsh.kvm import cgroup

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
    if found and not cgroup.usable():
        raise Unsupported(f"unsupported configuration: <cputune><{tags[0]}> needs a cgroup of the "
                          "domain's own, which vsh makes only when it runs as root on a host with a cpu "
                          "cgroup hierarchy", hint="remove it, or start the domain on vsh:///system")
    return found
