"""The memory, block I/O and cpuset limits of QEMU's own cgroup (``memtune``, ``blkiotune``,
``numatune``'s ``cpuset.mems``), in the files and units libvirt's QEMU driver uses.

A group is ``(kind, directory)``: ``("v1", dir)`` in one v1 hierarchy, ``("v2", dir)`` in the
unified one.  :func:`find` gives the group of a running QEMU (``vsh.slice/qemu-PID``, made by
:mod:`vsh.kvm.cgroup`) for a controller, or says why there is none usable.

=================  ==================================  ===========================
libvirt parameter  cgroup v1 file                      cgroup v2 file
=================  ==================================  ===========================
hard_limit         memory.limit_in_bytes               memory.max
soft_limit         memory.soft_limit_in_bytes          memory.high
swap_hard_limit    memory.memsw.limit_in_bytes         memory.swap.max
                   (memory + swap, as libvirt's)       (swap alone: minus hard_limit)
weight             blkio.bfq.weight or blkio.weight    io.bfq.weight or io.weight
device_weight      blkio.weight_device                 io.weight (``MAJ:MIN W``)
                   (or blkio.bfq.weight per device)
device_read_*      blkio.throttle.read_{bps,iops}_     io.max (``rbps=``/``riops=``)
device_write_*     blkio.throttle.write_{bps,iops}_    io.max (``wbps=``/``wiops=``)
numa_nodeset       cpuset.mems                         cpuset.mems
=================  ==================================  ===========================

Memory values are KiB here (libvirt's API) and bytes in the files; None is unlimited (v1
writes ``-1`` and reads back the kernel's largest page multiple, v2 ``max``).  On v1 the
kernel keeps ``limit_in_bytes`` at or below ``memsw.limit_in_bytes``: the two are written in
the order that keeps that true at every step.  A device value of 0 removes the device's line
(``default``/``max`` on v2), as in libvirt.
"""

from __future__ import annotations

import os

from vsh.kvm.cgroup import CgroupError, mounts, proc_paths, read_file, under, write_file

#: controller → (v1 file, v2 file) that must be writable in QEMU's group to use it
PROBE = {"memory": ("memory.limit_in_bytes", "memory.max"),
         "blkio": ("blkio.throttle.read_bps_device", "io.max"),
         "cpuset": ("cpuset.mems", "cpuset.mems")}
MEMORY_FILES = {"v1": {"hard_limit": "memory.limit_in_bytes", "soft_limit": "memory.soft_limit_in_bytes",
                       "swap_hard_limit": "memory.memsw.limit_in_bytes"},
                "v2": {"hard_limit": "memory.max", "soft_limit": "memory.high", "swap_hard_limit": "memory.swap.max"}}
#: blkiotune's per-device throttles → v1 file, v2 io.max key
THROTTLES = {"device_read_bytes_sec": ("blkio.throttle.read_bps_device", "rbps"),
             "device_write_bytes_sec": ("blkio.throttle.write_bps_device", "wbps"),
             "device_read_iops_sec": ("blkio.throttle.read_iops_device", "riops"),
             "device_write_iops_sec": ("blkio.throttle.write_iops_device", "wiops")}
NO_WEIGHT = ("blkio device weight is valid only for bfq or cfq scheduler (the host's {what} has no "
             "weight file: the disks' I/O scheduler is neither)")


def find(pid: int, controller: str, mountinfo: str = "/proc/self/mountinfo", proc: str = "/proc") -> tuple[str, str]:
    """QEMU ``pid``'s group in the hierarchy of ``controller`` (memory, blkio, cpuset) when it holds
    QEMU alone and the controller's file is writable; CgroupError saying why not otherwise."""
    paths = proc_paths(pid, proc)
    unified, v1 = mounts(mountinfo)
    if unified is not None:
        kind, path = "v2", paths.get("")
        group = os.path.join(unified, (path or "").lstrip("/"))
    elif controller in v1:
        kind, path = "v1", paths.get(controller)
        group = under(*v1[controller], path or "/")
    else:
        raise CgroupError(0, f"the host has no cgroup hierarchy with the {controller} controller")
    if path is None:
        raise CgroupError(0, f"QEMU (pid {pid}) is in no {controller} cgroup")
    if read_file(os.path.join(group, "cgroup.procs")).split() != [str(pid)]:
        raise CgroupError(0, f"QEMU (pid {pid}) shares its {controller} cgroup {path} with other processes (vsh "
                             "makes one of its own only when it runs as root and the hierarchy accepts it), and "
                             "changing that one would limit them too")
    if not os.access(os.path.join(group, PROBE[controller][kind == "v2"]), os.W_OK):
        raise CgroupError(0, f"the {controller} controller of cgroup {path} is not enabled or not writable by "
                             "this user")
    return kind, group


def _put(group: str, leaf: str, text: str) -> None:
    path = os.path.join(group, leaf)
    try:
        write_file(path, text)
    except OSError as exc:
        raise CgroupError(exc.errno, exc.strerror or str(exc), path) from None


# ---- memory ------------------------------------------------------------------------------------

def _v1_max() -> int:
    """What a v1 memory limit reads when unlimited: the largest page multiple below 2**63."""
    page = os.sysconf("SC_PAGE_SIZE")
    return (2 ** 63 - 1) // page * page


def memory(group: tuple[str, str]) -> dict:
    """{hard_limit, soft_limit, swap_hard_limit} in KiB, None for unlimited (or a file the host
    lacks, such as memsw without swap accounting)."""
    kind, where = group
    out = dict.fromkeys(MEMORY_FILES["v1"])
    for name, leaf in MEMORY_FILES[kind].items():
        text = read_file(os.path.join(where, leaf)).strip()
        if not text.isdigit() or (kind == "v1" and int(text) >= _v1_max()):
            continue                            # "max", absent, unlimited
        out[name] = int(text) // 1024
    if kind == "v2" and out["swap_hard_limit"] is not None and out["hard_limit"] is not None:
        out["swap_hard_limit"] += out["hard_limit"]         # libvirt's is memory + swap
    return out


def set_memory(group: tuple[str, str], changes: dict) -> None:
    """Set the limits named in ``changes`` (KiB, None: unlimited); the caller checked that
    hard_limit <= swap_hard_limit holds afterwards."""
    kind, where = group
    files = MEMORY_FILES[kind]
    order = [n for n in ("hard_limit", "soft_limit", "swap_hard_limit") if n in changes]
    if kind == "v1" and "hard_limit" in changes and "swap_hard_limit" in changes:
        old_swap, hard = memory(group)["swap_hard_limit"], changes["hard_limit"]
        if old_swap is not None and (hard is None or hard > old_swap):
            order = ["swap_hard_limit", "hard_limit", "soft_limit"]     # raise the ceiling first
            order = [n for n in order if n in changes]
    before = {name: read_file(os.path.join(where, files[name])).strip() for name in order}
    new = dict(memory(group), **changes)
    done = []
    try:
        for name in order:
            value = new[name]
            if kind == "v2" and name == "swap_hard_limit" and value is not None:
                value -= new["hard_limit"] or 0
            unlimited = "max" if kind == "v2" else "-1"
            _put(where, files[name], unlimited if value is None else str(value * 1024))
            done.append(name)
    except CgroupError:
        for name in reversed(done):         # nothing half-written: the earlier values back
            try:
                write_file(os.path.join(where, files[name]), before[name])
            except OSError:
                pass
        raise


# ---- block I/O ---------------------------------------------------------------------------------

def _weight_file(group: tuple[str, str]) -> str | None:
    kind, where = group
    prefix = "blkio" if kind == "v1" else "io"
    for leaf in (f"{prefix}.bfq.weight", f"{prefix}.weight"):
        if os.path.exists(os.path.join(where, leaf)):
            return leaf
    return None


def blkio_weight(group: tuple[str, str]) -> int | None:
    """The group's I/O weight, or None where the host has no weight file (no CFQ/BFQ on v1)."""
    leaf = _weight_file(group)
    if leaf is None:
        return None
    for line in read_file(os.path.join(group[1], leaf)).splitlines():
        words = line.split()
        if len(words) == 1 and words[0].isdigit():
            return int(words[0])
        if len(words) == 2 and words[0] == "default" and words[1].isdigit():
            return int(words[1])
    return None


def set_blkio(group: tuple[str, str], weight: int | None = None, devices: dict | None = None) -> None:
    """The weight (100-1000), and per device ``{parameter: [(MAJ:MIN, value)]}`` of blkiotune's
    device_weight and device_{read,write}_{bytes,iops}_sec (0 removes a device's value)."""
    kind, where = group
    if weight is not None:
        leaf = _weight_file(group)
        if leaf is None:
            raise CgroupError(0, NO_WEIGHT.format(what="blkio controller" if kind == "v1" else "io controller"))
        _put(where, leaf, str(int(weight)) if kind == "v1" else f"default {int(weight)}")
    for name, items in (devices or {}).items():
        for dev, value in items:
            value = int(value)
            if name == "device_weight":
                if kind == "v2":
                    _put(where, _weight_file(group) or "io.weight", f"{dev} {value or 'default'}")
                    continue
                leaf = next((f for f in ("blkio.weight_device", "blkio.bfq.weight")
                             if os.path.exists(os.path.join(where, f))), None)
                if leaf is None:
                    raise CgroupError(0, NO_WEIGHT.format(what="blkio controller"))
                _put(where, leaf, f"{dev} {value or ('default' if 'bfq' in leaf else 0)}")
            elif kind == "v1":
                _put(where, THROTTLES[name][0], f"{dev} {value}")
            else:
                _put(where, "io.max", f"{dev} {THROTTLES[name][1]}={value or 'max'}")


# ---- cpuset ------------------------------------------------------------------------------------

def mems(group: tuple[str, str]) -> str:
    """The memory nodes QEMU may allocate from (``cpuset.mems``; v2's effective set when unset)."""
    text = read_file(os.path.join(group[1], "cpuset.mems")).strip()
    if not text and group[0] == "v2":
        text = read_file(os.path.join(group[1], "cpuset.mems.effective")).strip()
    return text


def set_mems(group: tuple[str, str], nodeset: str) -> None:
    _put(group[1], "cpuset.mems", nodeset)


# ---- at start: what the definition asks, on a QEMU the supervisor just placed ------------------------

def apply(pid: int, plan: dict) -> None:
    """Apply a start's ``plan`` (:func:`vsh.api.local.starttune.cgroup_plan`: ``cpu`` knobs,
    ``memory`` changes, ``blkio`` {weight, devices}, ``mems``) to QEMU's groups; CgroupError
    naming the element, the file and the cause where one cannot be set."""
    from vsh.kvm import cgroup

    steps = (("cputune", "cpu"), ("memtune", "memory"), ("blkiotune", "blkio"), ("numatune", "mems"))
    for element, key in steps:
        if not plan.get(key):
            continue
        try:
            if key == "cpu":
                cgroup.set_cpu(pid, **plan["cpu"])
            elif key == "memory":
                set_memory(find(pid, "memory"), plan["memory"])
            elif key == "blkio":
                set_blkio(find(pid, "blkio"), plan["blkio"].get("weight"), plan["blkio"].get("devices"))
            else:
                set_mems(find(pid, "cpuset"), plan["mems"])
        except CgroupError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise CgroupError(exc.errno, f"cannot apply <{element}> to QEMU's cgroup: {exc.strerror}{where}") from None
