"""The QEMU side of a domain's tuning: its threads (vCPUs, iothreads, the emulator's), their CPU
affinity, a drive's I/O throttling; and what a start applies of ``<cputune>`` and ``<iotune>``.

Used by :mod:`vsh.api.local.tuning` (the commands) and :mod:`vsh.api.local.launch` (a start).
"""

from __future__ import annotations

import os

from vsh.api.tuning import IOTUNE_PARAMS
from vsh.core.errors import InvalidArgument, OperationInvalid

#: virsh blkdeviotune name → QMP block_set_io_throttle / query-block field
QMP_IOTUNE = dict(zip(IOTUNE_PARAMS, (
    "bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr", "bps_max", "bps_rd_max", "bps_wr_max", "iops_max",
    "iops_rd_max", "iops_wr_max", "iops_size", "group", "bps_max_length", "bps_rd_max_length",
    "bps_wr_max_length", "iops_max_length", "iops_rd_max_length", "iops_wr_max_length")))


def qemu_threads(store, ref) -> tuple[int, dict, dict]:
    """(QEMU's pid, vCPU number → thread id, iothread number → thread id) of a running domain."""
    from vsh.api.local.qemustats import qemu_pid, qmp

    pid = qemu_pid(ref)
    vcpus = {c.get("cpu-index", 0): c["thread-id"] for c in qmp(store, ref, "query-cpus-fast")}
    iothreads = {}
    for t in qmp(store, ref, "query-iothreads"):
        ident = str(t.get("id", ""))
        if ident.startswith("iothread") and ident[8:].isdigit():
            iothreads[int(ident[8:])] = t["thread-id"]
    return pid, vcpus, iothreads


def emulator_threads(pid: int, vcpus: dict, iothreads: dict) -> list[int]:
    """QEMU's threads that run neither a vCPU nor an iothread (libvirt's emulator threads)."""
    skip = set(vcpus.values()) | set(iothreads.values())
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    return [t for t in tids if t not in skip]


def set_affinity(tid: int, cpus) -> None:
    """``sched_setaffinity`` of one thread; a thread that ended meanwhile is no error."""
    from vsh.core.errors import VshError

    try:
        os.sched_setaffinity(tid, cpus)
    except ProcessLookupError:
        pass
    except OSError as err:
        raise VshError(f"cannot set CPU affinity on process {tid}: {err.strerror}") from None


def check_cputune(dom) -> None:
    """Before a start: every host CPU ``dom``'s ``<vcpu cpuset>`` and ``<cputune>`` pins name must be one
    this process may use (else pinning the threads would fail with the domain running)."""
    from vsh.core.domain import format_cpuset, parse_cpuset

    usable = os.sched_getaffinity(0)
    for el in [dom.node.find("vcpu"), *dom.node.findall("./cputune/*[@cpuset]")]:
        if el is None or not el.get("cpuset"):
            continue
        bad = sorted(parse_cpuset(el.get("cpuset")) - usable)
        if bad:
            raise InvalidArgument(f"invalid argument: <{el.tag}> names host CPU {bad[0]}, which is not available "
                                  f"(usable: {format_cpuset(usable)})")


def drive_of(store, ref, disk) -> tuple[str, dict]:
    """(QEMU device id, query-block's ``inserted``) of ``disk`` of the running domain ``ref``."""
    from vsh.api.local.qemustats import qmp

    def real(path):
        return os.path.realpath(path) if path else None

    want = real(disk.source)
    for entry in qmp(store, ref, "query-block"):
        ins = entry.get("inserted") or {}
        qdev = entry.get("qdev") or ""
        image = ins.get("image") or {}
        if want and want in (real(ins.get("file")), real(image.get("filename"))) and qdev:
            return qdev, ins
    raise OperationInvalid(f"Requested operation is not valid: disk '{disk.target_dev}' has no medium "
                           "QEMU throttles (empty drive)")


def throttle(store, ref, qdev: str, values: dict) -> None:
    """QMP block_set_io_throttle of device ``qdev`` to ``values`` (:data:`IOTUNE_PARAMS` names; a
    missing or None value is 0); QEMU's refusal as InvalidArgument."""
    from vsh.api.local.qemustats import qmp
    from vsh.core.errors import VshError

    args = {"id": qdev}
    for name in IOTUNE_PARAMS:
        value = values.get(name)
        if name == "group_name":
            if value:
                args["group"] = value
        elif value not in (None, ""):
            args[QMP_IOTUNE[name]] = int(value)
    for key in ("bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr"):
        args.setdefault(key, 0)
    try:
        qmp(store, ref, "block_set_io_throttle", args)
    except VshError as err:
        raise InvalidArgument("invalid argument: " + " ".join(err.lines).replace("error: ", "")) from None


def apply_tuning(store, ref, dom) -> None:
    """At start, as libvirt does: the disks' ``<iotune>`` limits, and the pinning of the vCPU, iothread
    and emulator threads that ``dom``'s ``<vcpu cpuset>`` and ``<cputune>`` say (nothing when none do)."""
    from vsh.core.domain import parse_cpuset

    for disk in dom.disks:
        tune = disk.node.find("./iotune")
        if tune is not None and len(tune):
            throttle(store, ref, drive_of(store, ref, disk)[0],
                     {name: disk.node.findtext(f"./iotune/{name}") for name in IOTUNE_PARAMS})

    node = dom.node
    vcpu = node.find("vcpu")
    default = parse_cpuset(vcpu.get("cpuset")) if vcpu is not None and vcpu.get("cpuset") else None
    if default is None and node.find("./cputune/*[@cpuset]") is None:
        return

    def pins(xpath):
        el = node.find(xpath)
        return parse_cpuset(el.get("cpuset")) if el is not None and el.get("cpuset") else default

    pid, vcpus, iothreads = qemu_threads(store, ref)
    for n, tid in vcpus.items():
        if pins(f"./cputune/vcpupin[@vcpu='{n}']"):
            set_affinity(tid, pins(f"./cputune/vcpupin[@vcpu='{n}']"))
    for n, tid in iothreads.items():
        if pins(f"./cputune/iothreadpin[@iothread='{n}']"):
            set_affinity(tid, pins(f"./cputune/iothreadpin[@iothread='{n}']"))
    if pins("./cputune/emulatorpin"):
        for tid in emulator_threads(pid, vcpus, iothreads):
            set_affinity(tid, pins("./cputune/emulatorpin"))
