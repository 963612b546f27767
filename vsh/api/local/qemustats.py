"""The local driver: the numbers of a running domain's QEMU, read from QMP and /proc, and of
its disks' images (the statistics handle, :mod:`vsh.api.local.stats`, assembles them).

* CPU: ``/proc/QEMU_PID/stat`` (user and system time of the whole QEMU process);
  per vCPU, the vCPU thread QEMU reports (``query-cpus-fast`` thread-id) and its
  ``/proc/QEMU_PID/task/TID/schedstat`` (run time and run-queue delay, ns), ``stat``
  (the host CPU it last ran on) and its affinity.
* Memory: QMP ``query-balloon`` (``actual``) and the balloon's ``guest-stats`` QOM
  property (the guest driver's numbers, once a polling period is set), and the QEMU
  process's ``VmRSS``.
* Disks: QMP ``query-blockstats`` and ``query-block`` (virtual size); allocation and
  physical size from the image file itself.
"""

from __future__ import annotations

import os

from vsh.core.errors import OperationInvalid, VshError

# QEMU balloon guest-stats -> virsh names (bytes are shown in KiB)
BALLOON_STATS = [("stat-swap-in", "swap_in", True), ("stat-swap-out", "swap_out", True),
                 ("stat-major-faults", "major_fault", False), ("stat-minor-faults", "minor_fault", False),
                 ("stat-free-memory", "unused", True), ("stat-total-memory", "available", True),
                 ("stat-available-memory", "usable", True)]
BALLOON_STATS_TAIL = [("stat-disk-caches", "disk_caches", True), ("stat-htlb-pgalloc", "hugetlb_pgalloc", False),
                      ("stat-htlb-pgfail", "hugetlb_pgfail", False)]


# -- the running domain: QMP and /proc ----------------------------------------------------------------


def not_running() -> OperationInvalid:
    return OperationInvalid("Requested operation is not valid: domain is not running")


def rundir(store, ref) -> str:
    return str(store.runtime_dir(ref.name))


def qmp(store, ref, cmd: str, args: dict | None = None):
    from vsh.kvm.client import qmp as call

    return call(rundir(store, ref), cmd, args)


def qemu_pid(ref) -> int:
    pid = ref.runtime.data.get("qemu_pid") if ref.runtime else None
    if not isinstance(pid, int):
        raise not_running()
    return pid


def read_text(path: str) -> str | None:
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
    fields = _stat_fields(read_text(f"/proc/{pid}/stat"))
    if len(fields) < 13:
        raise not_running()
    hz = os.sysconf("SC_CLK_TCK")
    user = int(fields[11]) * 1_000_000_000 // hz
    system = int(fields[12]) * 1_000_000_000 // hz
    return {"cpu_time": user + system, "user_time": user, "system_time": system}


def rss_kib(pid: int) -> int | None:
    for line in (read_text(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def vcpu_threads(store, ref) -> list[dict]:
    """Per vCPU: number, thread id, host CPU last used, run time and run-queue delay (ns), affinity."""
    pid = qemu_pid(ref)
    out = []
    for cpu in sorted(qmp(store, ref, "query-cpus-fast"), key=lambda c: c.get("cpu-index", 0)):
        tid = cpu.get("thread-id")
        sched = (read_text(f"/proc/{pid}/task/{tid}/schedstat") or "0 0 0").split()
        fields = _stat_fields(read_text(f"/proc/{pid}/task/{tid}/stat"))
        try:
            affinity = sorted(os.sched_getaffinity(tid))
        except OSError:
            affinity = []
        out.append({"vcpu": cpu.get("cpu-index", 0), "thread_id": tid,
                    "cpu": int(fields[36]) if len(fields) > 36 else -1,
                    "time": int(sched[0]), "delay": int(sched[1]) if len(sched) > 1 else 0,
                    "affinity": affinity})
    return out


def balloon_device(store, ref) -> str | None:
    """The QOM path of the running domain's virtio-balloon, or None."""
    for item in qmp(store, ref, "qom-list", {"path": "/machine/peripheral"}):
        if str(item.get("type", "")).startswith("child<virtio-balloon"):
            return "/machine/peripheral/" + item["name"]
    return None


def _balloon_values(out: dict, stats: dict, table) -> None:
    for key, name, in_bytes in table:
        value = stats.get(key)
        if value is not None and value >= 0:
            out[name] = value // 1024 if in_bytes else value


def memory_stats(store, ref, dom) -> dict:
    """virsh dommemstat's records, in its order: actual, the guest's numbers, rss."""
    out: dict = {}
    path = balloon_device(store, ref)
    actual = None
    if path is not None:
        try:
            actual = int(qmp(store, ref, "query-balloon").get("actual", 0)) // 1024
        except VshError:
            actual = None
    if actual is None:
        actual = (ref.runtime.data.get("balloon_kib") if ref.runtime else None) \
            or dom.current_memory or dom.memory or 0
    out["actual"] = actual
    if path is not None:
        try:
            gs = qmp(store, ref, "qom-get", {"path": path, "property": "guest-stats"}) or {}
        except VshError:
            gs = {}
        stats = gs.get("stats") or {}
        if gs.get("last-update"):
            _balloon_values(out, stats, BALLOON_STATS)
            out["last_update"] = int(gs["last-update"])
            _balloon_values(out, stats, BALLOON_STATS_TAIL)
    rss = rss_kib(qemu_pid(ref))
    if rss is not None:
        out["rss"] = rss
    return out


# -- disks --------------------------------------------------------------------------------------------


def disk_ids(store, ref, dom) -> dict:
    """target -> QEMU device id, for the disks of the live XML."""
    from vsh.kvm.hotplug import device_id

    out = {}
    for disk in dom.disks:
        try:
            out[disk.target_dev] = device_id(dom, disk.node, rundir(store, ref))
        except VshError:
            out[disk.target_dev] = None
    return out


def block_stats(store, ref, dom) -> dict:
    """target -> the counters of BLOCK_COUNTERS, wr_highest_offset and capacity, for the disks QEMU has."""
    ids = disk_ids(store, ref, dom)
    from vsh.kvm.qemudevs import qdev_of_block

    stats = {qdev_of_block(e): e for e in qmp(store, ref, "query-blockstats")}
    blocks = {qdev_of_block(e): e for e in qmp(store, ref, "query-block")}
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
    """The disk whose target (or else source path) is ``device``, or None."""
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
