"""QEMU's control group: each domain's QEMU in a group of its own, under ``vsh.slice``.

libvirt's QEMU driver puts every domain in ``machine.slice/machine-qemu-N-NAME.scope``; vsh
does the same with ``vsh.slice/qemu-PID``, so that the guests together weigh what one
process of the host weighs in the CPU scheduler: with forty busy TCG guests a ``vsh list``
still gets its share instead of one forty-first (the scheduler shares CPU time between
groups first, then within them).

Where the groups go:

* **cgroup v2** (one unified hierarchy with controllers): ``vsh.slice`` at the top of the
  hierarchy this process sees (the root, or the container's root under a cgroup namespace),
  with the ``cpu`` controller enabled down to each ``qemu-PID`` (and ``memory``, ``io``,
  ``cpuset``, where the root offers them), as libvirt's ``machine.slice``.  The top is the
  only place where a group may hold both processes and controller-enabled children.
* **cgroup v1**: in each of the ``cpu``, ``cpuacct``, ``memory``, ``blkio`` and ``cpuset``
  hierarchies that is mounted, below the supervisor's own group there (``/proc/self/cgroup``),
  so a container's limits still hold QEMU.  A new cpuset group has no CPUs and no memory
  nodes, so no task may join it: as libvirt does, it gets its parent's ``cpuset.cpus`` and
  ``cpuset.mems`` first (and ``cpuset.memory_migrate`` on, so that a later change of
  ``cpuset.mems`` moves QEMU's memory).

The limits themselves (memtune, blkiotune, numatune's ``cpuset.mems``) are in
:mod:`vsh.kvm.cgtune`; the CPU scheduler's are here.  Whoever looks for QEMU's groups later
(a live ``memtune``, a supervisor that re-attaches) finds them from ``/proc/PID/cgroup`` of
QEMU itself, not from its own placement, which may differ.

Only root can make them; elsewhere, or when the hierarchy refuses, QEMU stays in the
group of the command that started it, as before, and the supervisor logs why.  The group
is removed when QEMU is gone; a group left by a supervisor that died with its QEMU is
removed by the next placement (its QEMU's pid is dead).
"""

from __future__ import annotations

import os
import re

SLICE = "vsh.slice"
PREFIX = "qemu-"
#: v1 hierarchies used: the scheduler share and its accounting, memory, block I/O, cpuset.
V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "blkio", "cpuset")
#: v2 controllers enabled for the groups, when the hierarchy's top offers them.
V2_CONTROLLERS = ("cpu", "memory", "io", "cpuset")
#: a new v1 cpuset group's values copied from its parent before a task may join (libvirt's list)
CPUSET_INHERIT = ("cpuset.cpus", "cpuset.mems", "cpuset.memory_migrate")


class CgroupError(OSError):
    pass


def mounts(mountinfo: str = "/proc/self/mountinfo") -> tuple[str | None, dict[str, tuple[str, str]]]:
    """(the cgroup v2 mount with the cpu controller or None, {v1 controller: (mount point, mount root)})."""
    unified, v1 = None, {}
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None, {}
    for line in lines:
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, point = _unescape(fields[3]), _unescape(fields[4])
        if tail[0] == "cgroup2":
            # a hybrid host's cgroup2 mount holds no cpu controller (v1 has it): not that one
            if unified is None and "cpu" in read_file(os.path.join(point, "cgroup.controllers")).split():
                unified = point
        elif tail[0] == "cgroup":
            for opt in tail[2].split(","):
                if opt in V1_CONTROLLERS and opt not in v1:
                    v1[opt] = (point, root)
    return unified, v1


def _unescape(field: str) -> str:
    """mountinfo's escapes (space, tab, newline and backslash as \\ooo) undone."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def read_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return ""


def write_file(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(text)


def _own_paths() -> dict[str, str]:
    """{controller name (or "" for v2): path in that hierarchy} of this process."""
    return proc_paths("self")


def under(point: str, root: str, path: str) -> str:
    """The directory of hierarchy path ``path`` in a mount of hierarchy path ``root``."""
    if root != "/" and (path == root or path.startswith(root.rstrip("/") + "/")):
        path = path[len(root.rstrip("/")):] or "/"
    return os.path.normpath(os.path.join(point, path.lstrip("/")))


def _bases(mountinfo: str = "/proc/self/mountinfo", paths: dict | None = None) -> list[tuple[str, str]]:
    """[(kind, the directory under which the groups go)]: ('v2', top) or ('v1', dir) per hierarchy.

    ``paths`` ({controller: hierarchy path}, as :func:`_own_paths`): where in each v1
    hierarchy; this process's own groups unless given."""
    unified, v1 = mounts(mountinfo)
    if unified is not None:
        return [("v2", unified)]
    own = _own_paths() if paths is None else paths
    seen, out = set(), []
    for ctl, (point, root) in v1.items():
        if point in seen:       # cpu and cpuacct mounted together
            continue
        seen.add(point)
        out.append(("v1", under(point, root, own.get(ctl, "/"))))
    return out


def _inherit_cpuset(parent: str, group: str) -> None:
    """A new v1 cpuset group gets its parent's CPUs and memory nodes (empty, it takes no task)."""
    if not os.path.exists(os.path.join(group, "cpuset.mems")):
        return                  # not the cpuset hierarchy
    for leaf in CPUSET_INHERIT:
        path = os.path.join(group, leaf)
        if leaf == "cpuset.memory_migrate":
            if os.path.exists(path) and read_file(path).strip() != "1":
                write_file(path, "1")
        elif not read_file(path).strip():
            write_file(path, read_file(os.path.join(parent, leaf)).strip())


def _enable(group: str, wanted) -> None:
    offered = set(read_file(os.path.join(group, "cgroup.controllers")).split())
    enabled = set(read_file(os.path.join(group, "cgroup.subtree_control")).split())
    for ctl in wanted:
        if ctl in offered and ctl not in enabled:
            try:
                write_file(os.path.join(group, "cgroup.subtree_control"), f"+{ctl}")
            except OSError as exc:
                if ctl == "cpu":
                    raise CgroupError(exc.errno, f"cannot enable the cpu controller in {group}: "
                                                 f"{exc.strerror}") from None


def _join(kind: str, base: str, pid: int) -> str:
    """Make ``base``/vsh.slice/qemu-PID and move ``pid`` into it; the group."""
    slice_dir = os.path.join(base, SLICE)
    if kind == "v2":
        _enable(base, V2_CONTROLLERS)
    os.makedirs(slice_dir, exist_ok=True)
    _sweep(slice_dir)
    if kind == "v2":
        _enable(slice_dir, V2_CONTROLLERS)
    else:
        _inherit_cpuset(base, slice_dir)
    group = os.path.join(slice_dir, f"{PREFIX}{pid}")
    os.makedirs(group, exist_ok=True)
    try:
        if kind == "v1":
            _inherit_cpuset(slice_dir, group)
        write_file(os.path.join(group, "cgroup.procs"), str(pid))
    except OSError:
        remove([group])
        raise
    return group


def _why(exc: OSError) -> str:
    return f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")


def place(pid: int, mountinfo: str = "/proc/self/mountinfo", warn=None) -> list[str]:
    """Move QEMU (``pid``, all its threads) into a group of its own; the groups made.

    [] when this process may not make groups (not root) or the host has no usable hierarchy;
    raises :class:`CgroupError` naming the cause when it should and cannot.  On v1 only the
    cpu hierarchies are needed for that: a memory, blkio or cpuset hierarchy that refuses
    (a container's, read-only) is left out and ``warn`` (a callable) told why; the limits that
    need it are then refused with the reason (:func:`vsh.kvm.cgtune.find`)."""
    if os.geteuid() != 0:
        return []
    _unified, v1 = mounts(mountinfo)
    needed = {v1[c][0] for c in ("cpu", "cpuacct") if c in v1}
    made = []
    try:
        for kind, base in _bases(mountinfo):
            if kind == "v2" or any(base == p or base.startswith(p.rstrip("/") + "/") for p in needed):
                made.append(_join(kind, base, pid))
                continue
            try:
                made.append(_join(kind, base, pid))
            except OSError as exc:
                if warn is not None:
                    warn(f"QEMU is left out of the cgroup hierarchy at {base}: {_why(exc)}")
    except OSError as exc:
        remove(made)
        if isinstance(exc, CgroupError):
            raise
        raise CgroupError(exc.errno, f"cannot put QEMU in a cgroup of its own: {_why(exc)}") from None
    return made


def proc_paths(pid: int, proc: str = "/proc") -> dict[str, str]:
    """{controller name (or "" for v2): path in that hierarchy} of process ``pid``."""
    out = {}
    for line in read_file(os.path.join(proc, str(pid), "cgroup")).splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for ctl in parts[1].split(",") if parts[1] else [""]:
                out[ctl] = parts[2]
    return out


def _groups(pid: int, mountinfo: str = "/proc/self/mountinfo", proc: str = "/proc") -> list[tuple[str, str]]:
    """[(kind, directory)] of QEMU ``pid``'s own group (``…/vsh.slice/qemu-PID``) in each hierarchy
    where it is in one, found from ``/proc/PID/cgroup``."""
    paths = proc_paths(pid, proc)
    unified, v1 = mounts(mountinfo)
    own = os.path.join(SLICE, f"{PREFIX}{pid}")
    if unified is not None:
        path = paths.get("", "")
        return [("v2", os.path.join(unified, path.lstrip("/")))] if path.endswith("/" + own) else []
    out, seen = [], set()
    for ctl, (point, root) in v1.items():
        path = paths.get(ctl, "")
        if point not in seen and path.endswith("/" + own):
            seen.add(point)
            out.append(("v1", under(point, root, path)))
    return out


def groups_of(pid: int, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """The groups :func:`place` made for a running QEMU (a supervisor that re-attaches)."""
    return [group for _kind, group in _groups(pid, mountinfo)
            if str(pid) in read_file(os.path.join(group, "cgroup.procs")).split()]


def remove(groups) -> list[str]:
    """Remove QEMU's groups once it is gone; the warnings (a group still holding processes)."""
    warnings = []
    for group in groups:
        try:
            os.rmdir(group)
        except FileNotFoundError:
            pass
        except OSError as exc:
            warnings.append(f"cannot remove cgroup {group}: {exc.strerror}")
    return warnings


def _sweep(slice_dir: str) -> None:
    """Remove the groups whose QEMU died with no supervisor to remove them."""
    try:
        names = os.listdir(slice_dir)
    except OSError:
        return
    for name in names:
        pid = name[len(PREFIX):]
        if name.startswith(PREFIX) and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            try:
                os.rmdir(os.path.join(slice_dir, name))
            except OSError:
                pass        # not empty after all (a pid reused), or gone already


# ---- the CPU scheduler's knobs of a QEMU's own group (schedinfo, <cputune>) ---------------

def usable(controller: str = "cpu", mountinfo: str = "/proc/self/mountinfo") -> bool:
    """Whether a start here puts QEMU in a group of its own with ``controller`` (cpu, memory,
    blkio, cpuset): root, and a v1 hierarchy of it or a v2 top that offers it (blkio is v2's io)."""
    if os.geteuid() != 0:
        return False
    unified, v1 = mounts(mountinfo)
    if unified is not None:
        offered = read_file(os.path.join(unified, "cgroup.controllers")).split()
        return {"blkio": "io", "cpuacct": "cpu"}.get(controller, controller) in offered
    return controller in v1


def _cpu_group(pid: int) -> tuple[str, str]:
    """(kind, directory) of QEMU's own group in the cpu hierarchy, or CgroupError saying why not."""
    for kind, group in _groups(pid):
        if os.path.exists(os.path.join(group, "cpu.weight" if kind == "v2" else "cpu.shares")):
            return kind, group
    raise CgroupError(0, f"QEMU (pid {pid}) has no cgroup of its own with the cpu controller (vsh makes one "
                         "when it runs as root on a host with a cpu cgroup hierarchy)")


def cpu_settings(pid: int) -> dict:
    """{"shares", "period", "quota"} of QEMU's group (quota -1: no limit)."""
    kind, group = _cpu_group(pid)
    if kind == "v2":
        quota, period = read_file(os.path.join(group, "cpu.max")).split()
        return {"shares": int(read_file(os.path.join(group, "cpu.weight"))), "period": int(period),
                "quota": -1 if quota == "max" else int(quota)}
    return {"shares": int(read_file(os.path.join(group, "cpu.shares"))),
            "period": int(read_file(os.path.join(group, "cpu.cfs_period_us"))),
            "quota": int(read_file(os.path.join(group, "cpu.cfs_quota_us")))}


def set_cpu(pid: int, shares: int | None = None, period: int | None = None, quota: int | None = None) -> None:
    """Change QEMU's CPU weight and bandwidth (libvirt's cpu_shares, global_period, global_quota:
    cpu.weight/cpu.max on v2, cpu.shares/cpu.cfs_* on v1; a quota of -1 or 0 lifts the limit)."""
    kind, group = _cpu_group(pid)
    try:
        if kind == "v2":
            if shares is not None:
                write_file(os.path.join(group, "cpu.weight"), str(max(1, min(10000, int(shares)))))
            if period is not None or quota is not None:
                old_quota, old_period = read_file(os.path.join(group, "cpu.max")).split()
                q = old_quota if quota is None else ("max" if int(quota) <= 0 else str(int(quota)))
                write_file(os.path.join(group, "cpu.max"), f"{q} {old_period if period is None else int(period)}")
            return
        if shares is not None:
            write_file(os.path.join(group, "cpu.shares"), str(int(shares)))
        if period is not None:
            write_file(os.path.join(group, "cpu.cfs_period_us"), str(int(period)))
        if quota is not None:
            write_file(os.path.join(group, "cpu.cfs_quota_us"), str(-1 if int(quota) <= 0 else int(quota)))
    except OSError as exc:
        raise CgroupError(exc.errno, f"cannot change the CPU scheduler settings of cgroup {group}: "
                                     f"{exc.strerror}") from None


def per_cpu_ns(pid: int) -> list[int] | None:
    """CPU time QEMU used on each host CPU, in ns (cgroup v1's cpuacct.usage_percpu of its own
    group); None where no such accounting exists (cgroup v2 keeps none per CPU, or no group)."""
    for kind, group in _groups(pid):
        path = os.path.join(group, "cpuacct.usage_percpu")
        if kind == "v1" and os.path.exists(path):
            text = read_file(path).split()
            if text and all(t.isdigit() for t in text):
                return [int(t) for t in text]
    return None
