"""Tuning of one domain: CPU pinning, iothreads, scheduler, disk I/O limits, NIC bandwidth.

Owned by the tuning commands (vcpupin, emulatorpin, iothreadinfo in ``vsh/commands/stats.py``;
schedinfo, blkdeviotune, domiftune in ``vsh/commands/config.py``). Every method takes virsh's
``live``/``config``/``current`` flags (none: the running definition of a running domain, else
the persistent one) and returns plain data; the setters return ``{"live": bool, "config": bool}``,
the definitions they changed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from vsh.core.errors import InvalidArgument

#: the scheduler parameters virsh schedinfo shows for QEMU, in its order (``<cputune>`` element names
#: are these without the ``cpu_`` prefix of ``cpu_shares``)
SCHED_PARAMS = ("cpu_shares", "vcpu_period", "vcpu_quota", "emulator_period", "emulator_quota",
                "global_period", "global_quota", "iothread_period", "iothread_quota")

#: virsh blkdeviotune's parameters in its order (also the ``<iotune>`` element names)
IOTUNE_PARAMS = ("total_bytes_sec", "read_bytes_sec", "write_bytes_sec", "total_iops_sec", "read_iops_sec",
                 "write_iops_sec", "total_bytes_sec_max", "read_bytes_sec_max", "write_bytes_sec_max",
                 "total_iops_sec_max", "read_iops_sec_max", "write_iops_sec_max", "size_iops_sec", "group_name",
                 "total_bytes_sec_max_length", "read_bytes_sec_max_length", "write_bytes_sec_max_length",
                 "total_iops_sec_max_length", "read_iops_sec_max_length", "write_iops_sec_max_length")

#: virsh iothreadset's parameters (``--poll-max-ns`` ...) → QEMU's iothread object properties
IOTHREAD_PARAMS = {"poll_max_ns": "poll-max-ns", "poll_grow": "poll-grow", "poll_shrink": "poll-shrink",
                   "thread_pool_min": "thread-pool-min", "thread_pool_max": "thread-pool-max"}

#: virsh memtune's parameters (KiB) in its order
MEMTUNE_PARAMS = ("hard_limit", "soft_limit", "swap_hard_limit", "min_guarantee")
#: virsh blkiotune's per-device parameters in its order (``<blkiotune><device>`` children without
#: the ``device_`` prefix; ``device_weight`` is ``<weight>``)
BLKIO_DEVICE_PARAMS = ("device_weight", "device_read_iops_sec", "device_write_iops_sec", "device_read_bytes_sec",
                       "device_write_bytes_sec")
#: libvirt's perf events, in virsh perf's order
PERF_EVENTS = ("cmt", "mbmt", "mbml", "cpu_cycles", "instructions", "cache_references", "cache_misses",
               "branch_instructions", "branch_misses", "bus_cycles", "stalled_cycles_frontend",
               "stalled_cycles_backend", "ref_cpu_cycles", "cpu_clock", "task_clock", "page_faults",
               "context_switches", "cpu_migrations", "page_faults_min", "page_faults_maj", "alignment_faults",
               "emulation_faults")
#: numatune modes, by virsh's number
NUMA_MODES = ("strict", "preferred", "interleave", "restrictive")

#: virsh domiftune's parameters in its order
BANDWIDTH_PARAMS = ("inbound.average", "inbound.peak", "inbound.burst", "inbound.floor",
                    "outbound.average", "outbound.peak", "outbound.burst")


def parse_bandwidth(text: str, inbound: bool) -> dict:
    """virsh's ``average[,peak[,burst[,floor]]]`` (floor inbound only) → dict of ints."""
    keys = ["average", "peak", "burst"] + (["floor"] if inbound else [])
    parts = text.split(",")
    if not text or len(parts) > len(keys):
        raise InvalidArgument("inbound format is incorrect" if inbound else "outbound format is incorrect")
    out = {}
    for key, part in zip(keys, parts):
        if part == "":
            continue
        if not part.isdigit():
            raise InvalidArgument(f"{'inbound' if inbound else 'outbound'} {key} '{part}' is invalid")
        out[key] = int(part)
    if "average" not in out and not (inbound and "floor" in out):
        raise InvalidArgument(f"{'inbound' if inbound else 'outbound'} average is mandatory")
    return out


class DomainTuning(ABC):
    """CPU pinning, iothreads, scheduler parameters, I/O limits and bandwidth of one domain."""

    @abstractmethod
    def vcpu_pins(self, live: bool = False, config: bool = False, current: bool = False) -> list[dict]:
        """``virDomainGetVcpuPinInfo``: per vCPU ``{"vcpu": n, "cpus": [host CPU numbers]}``; live,
        the affinity of the vCPU's thread, else ``<cputune><vcpupin>`` (or ``<vcpu cpuset>``, or every
        host CPU). OperationInvalid for --live of a domain that is not running."""

    @abstractmethod
    def pin_vcpu(self, vcpu: int, cpus: list[int], live: bool = False, config: bool = False,
                 current: bool = False) -> dict:
        """``virDomainPinVcpuFlags``: let vCPU ``vcpu`` run only on host CPUs ``cpus`` (live: the affinity
        of its thread; config: ``<vcpupin>``). InvalidArgument for a vCPU the domain does not have or a
        CPU the host does not have."""

    @abstractmethod
    def emulator_pin(self, live: bool = False, config: bool = False, current: bool = False) -> list[int]:
        """``virDomainGetEmulatorPinInfo``: the host CPUs QEMU's own (non-vCPU) threads may run on."""

    @abstractmethod
    def pin_emulator(self, cpus: list[int], live: bool = False, config: bool = False,
                     current: bool = False) -> dict:
        """``virDomainPinEmulator``: let QEMU's threads other than the vCPUs and iothreads run only
        on ``cpus`` (config: ``<cputune><emulatorpin>``)."""

    @abstractmethod
    def iothreads(self, live: bool = False, config: bool = False, current: bool = False) -> list[dict]:
        """``virDomainGetIOThreadInfo``: ``{"id": n, "cpus": [...]}`` per iothread (``<iothreads>``,
        ``<iothreadids>``; live, the affinity of the thread QMP query-iothreads names)."""

    @abstractmethod
    def add_iothread(self, iothread: int, live: bool = False, config: bool = False, current: bool = False) -> dict:
        """``virDomainAddIOThread``: a new iothread ``iothread`` (live: QMP object-add; the definitions
        list it in ``<iothreadids>``). InvalidArgument when that id exists or is not positive."""

    @abstractmethod
    def delete_iothread(self, iothread: int, live: bool = False, config: bool = False,
                        current: bool = False) -> dict:
        """``virDomainDelIOThread``: remove iothread ``iothread`` (live: QMP object-del).
        InvalidArgument when there is none of that id; OperationInvalid when a disk uses it."""

    @abstractmethod
    def pin_iothread(self, iothread: int, cpus: list[int], live: bool = False, config: bool = False,
                     current: bool = False) -> dict:
        """``virDomainPinIOThread``: let iothread ``iothread`` run only on ``cpus`` (live: its thread's
        affinity; config: ``<cputune><iothreadpin>``). InvalidArgument for an unknown iothread or CPU."""

    @abstractmethod
    def set_iothread(self, iothread: int, params: dict, live: bool = False, config: bool = False,
                     current: bool = False) -> dict:
        """``virDomainSetIOThreadParams``: ``params`` of :data:`IOTHREAD_PARAMS` (ints) of iothread
        ``iothread`` (live: QOM properties of the iothread object; config: the ``<iothread>``
        attributes and ``<poll>`` of libvirt's schema, applied at start). InvalidArgument for an
        unknown iothread or a negative value."""

    @abstractmethod
    def memory_parameters(self, live: bool = False, config: bool = False, current: bool = False) -> dict:
        """``virDomainGetMemoryParameters``: :data:`MEMTUNE_PARAMS` → KiB, or None for unlimited (live: the
        cgroup v2 of QEMU's own; config: ``<memtune>``). OperationInvalid, saying why, when the live
        values live nowhere vsh can reach."""

    @abstractmethod
    def set_memory_parameters(self, params: dict, live: bool = False, config: bool = False,
                              current: bool = False) -> dict:
        """``virDomainSetMemoryParameters``: :data:`MEMTUNE_PARAMS` → KiB (None: unlimited). InvalidArgument
        for a hard limit above the swap hard limit; Unsupported for ``min_guarantee`` (QEMU has none)."""

    @abstractmethod
    def blkio_parameters(self, live: bool = False, config: bool = False, current: bool = False) -> dict:
        """``virDomainGetBlkioParameters``: ``weight`` (int, 0 unset) and the per-device lists of
        :data:`BLKIO_DEVICE_PARAMS` as virsh shows them (``/dev/sda,500,/dev/sdb,300``; "" for none)."""

    @abstractmethod
    def set_blkio_parameters(self, params: dict, live: bool = False, config: bool = False,
                             current: bool = False) -> dict:
        """``virDomainSetBlkioParameters``: ``weight`` (100-1000) and per-device lists as
        :meth:`blkio_parameters` gives them (a device's value 0 removes it); config:
        ``<blkiotune>``. InvalidArgument for a malformed list or a weight out of range."""

    @abstractmethod
    def numa_parameters(self, live: bool = False, config: bool = False, current: bool = False) -> dict:
        """``virDomainGetNumaParameters``: ``numa_mode`` (strict, preferred, interleave, restrictive)
        and ``numa_nodeset`` ("" for none), from ``<numatune><memory>`` (live: the cgroup's cpuset)."""

    @abstractmethod
    def set_numa_parameters(self, mode: str | None = None, nodeset: str | None = None, live: bool = False,
                            config: bool = False, current: bool = False) -> dict:
        """``virDomainSetNumaParameters``: the memory policy ``mode`` and host NUMA ``nodeset``.
        InvalidArgument for an unknown mode or a node the host does not have; OperationInvalid for a
        live mode change (libvirt's rule)."""

    @abstractmethod
    def perf_events(self, live: bool = False, config: bool = False, current: bool = False) -> dict:
        """``virDomainGetPerfEvents``: :data:`PERF_EVENTS` → enabled? (config: ``<perf>``)."""

    @abstractmethod
    def set_perf_events(self, events: dict, live: bool = False, config: bool = False,
                        current: bool = False) -> dict:
        """``virDomainSetPerfEvents``: enable (True) or disable event names of :data:`PERF_EVENTS`.
        InvalidArgument for an unknown name; Unsupported for an event the host cannot count on the
        running domain."""

    @abstractmethod
    def scheduler(self, live: bool = False, config: bool = False, current: bool = False) -> dict:
        """``virDomainGetSchedulerParametersFlags``: ``{"scheduler": "posix", "params": {name: int}}``
        with :data:`SCHED_PARAMS` (0 where ``<cputune>`` says nothing, as libvirt shows). Live it needs a
        cgroup v2 of the QEMU process's own with the cpu controller: OperationInvalid saying why not."""

    @abstractmethod
    def set_scheduler(self, params: dict, live: bool = False, config: bool = False,
                      current: bool = False) -> dict:
        """``virDomainSetSchedulerParametersFlags``: set ``params`` (names of :data:`SCHED_PARAMS`,
        int values). InvalidArgument for an unknown name or a value out of libvirt's range."""

    @abstractmethod
    def block_iotune(self, disk: str, live: bool = False, config: bool = False, current: bool = False) -> dict:
        """``virDomainGetBlockIoTune``: :data:`IOTUNE_PARAMS` → int (``group_name``: str) of the disk
        named by target or source (live: QMP query-block; config: ``<iotune>``). InvalidArgument for a
        disk the domain does not have."""

    @abstractmethod
    def set_block_iotune(self, disk: str, params: dict, live: bool = False, config: bool = False,
                         current: bool = False) -> dict:
        """``virDomainSetBlockIoTune``: change ``params`` (names of :data:`IOTUNE_PARAMS`), keeping the
        others (live: QMP block_set_io_throttle; config: ``<iotune>``). InvalidArgument for combinations
        QEMU refuses (a ``total_*`` with its ``read_*``/``write_*``, a ``*_max`` below its base)."""

    @abstractmethod
    def interface_bandwidth(self, interface: str, live: bool = False, config: bool = False,
                            current: bool = False) -> dict:
        """``virDomainGetInterfaceParameters``: :data:`BANDWIDTH_PARAMS` → int (0: unset) of the NIC named
        by MAC address or host-side name, from its ``<bandwidth>``."""

    @abstractmethod
    def set_interface_bandwidth(self, interface: str, inbound: dict | None = None, outbound: dict | None = None,
                                live: bool = False, config: bool = False, current: bool = False) -> dict:
        """``virDomainSetInterfaceParameters``: ``inbound``/``outbound`` (``average``, ``peak``,
        ``burst``, inbound ``floor``; average 0 removes the direction) into ``<bandwidth>``. Unsupported
        for the live definition when the driver shapes no traffic."""
