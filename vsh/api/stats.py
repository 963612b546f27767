"""Statistics of one domain: domstats and the per-device counters.

Counters are plain numbers (bytes, requests, ns, KiB as libvirt reports them); the
front end formats them. A method that needs the running domain raises
OperationInvalid (``Requested operation is not valid: domain is not running``)
when it is not.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

#: the groups of virConnectGetAllDomainStats, in the order they are reported
STATS_GROUPS = ("state", "cpu-total", "balloon", "vcpu", "interface", "block", "perf")
#: groups shown only when asked for (``domstats --dirtyrate``)
EXTRA_STATS_GROUPS = ("dirtyrate",)
#: where domifaddr's addresses come from (virDomainInterfaceAddressesSource)
ADDRESS_SOURCES = ("lease", "arp", "agent")
#: virDomainBlockStatsFlags' counters, in virsh domblkstat's order
BLOCK_COUNTERS = ("rd_req", "rd_bytes", "wr_req", "wr_bytes", "flush_operations", "rd_total_times",
                  "wr_total_times", "flush_total_times")


class DomainStats(ABC):
    """Statistics of one domain: domstats and the per-device counters."""

    @abstractmethod
    def domain_stats(self, groups: list[str] | None = None) -> dict:
        """``virConnectGetAllDomainStats`` for this domain: libvirt's typed parameters
        (``state.state``, ``cpu.time``, ``balloon.current``, ``vcpu.0.time``, ``net.0.rx.bytes``,
        ``block.0.name``...) as an ordered dict of field -> int or str, for the groups named in
        ``groups`` (:data:`STATS_GROUPS` and :data:`EXTRA_STATS_GROUPS`; None: the former). A shut-off domain has only what its definition
        says; a domain that stops meanwhile is reported as it is now."""

    @abstractmethod
    def memory_stats(self) -> dict:
        """``virDomainMemoryStats``, in virsh dommemstat's order, values in KiB (counts for the fault
        counters): ``actual`` (the balloon size), the guest balloon driver's numbers (``swap_in``...
        ``usable``, ``last_update`` in seconds since the epoch, ``disk_caches``...) once a collection
        period is set, and ``rss`` (the emulator's resident memory). Needs the running domain."""

    @abstractmethod
    def set_memory_stats_period(self, period: int, live: bool = False, config: bool = False,
                                current: bool = False) -> dict:
        """``virDomainSetMemoryStatsPeriod``: how often (seconds, 0 stops it) the guest's balloon
        driver reports, in the running domain and/or its persistent definition (the flags as virsh's
        ``--live``/``--config``/``--current``; none: the running domain, and the definition too when
        it is persistent, or only the definition when it is not running). Returns
        ``{"live": bool, "config": bool}``: what was changed. OperationInvalid without a memory
        balloon, for a live change of a stopped domain or a config change of a transient one."""

    @abstractmethod
    def block_stats(self, device: str | None = None) -> dict:
        """``virDomainBlockStatsFlags``: the counters of :data:`BLOCK_COUNTERS` (requests, bytes, ns)
        of the disk whose target (``vda``) or source path is ``device``, or of all disks together
        (None or ``""``). Needs the running domain; InvalidArgument ``invalid path: DEV`` for a disk
        it does not have."""

    @abstractmethod
    def block_info(self, device: str) -> dict:
        """``virDomainGetBlockInfo``: ``target``, ``capacity`` (what the guest sees), ``allocation``
        (host bytes in use) and ``physical`` (the image's size) of the disk whose target or source
        path is ``device``, in bytes (all 0 for a drive without a medium). Running or not;
        InvalidArgument ``invalid path DEV not assigned to domain`` for a disk it does not have,
        VshError ``cannot stat file`` for an image that is gone."""

    @abstractmethod
    def block_info_all(self) -> list[dict]:
        """:meth:`block_info` of every disk of the domain, in the order of its definition."""

    @abstractmethod
    def interface_stats(self, interface: str) -> dict:
        """``virDomainInterfaceStats`` of the NIC named ``interface`` (its QEMU id, tap name or MAC):
        ``rx_bytes``, ``rx_packets``, ``rx_errs``, ``rx_drop``, ``tx_*`` (rx is what the guest
        received), leaving out the counters the NIC's type has none of. Needs the running domain;
        InvalidArgument for an unknown interface, Unsupported for one without counters."""

    @abstractmethod
    def interface_addresses(self, source: str = "lease") -> list[dict]:
        """``virDomainInterfaceAddresses``: per NIC with an address, ``{"name", "mac", "addresses":
        [{"type": "ipv4"|"ipv6", "address", "prefix"}]}``. ``source`` (:data:`ADDRESS_SOURCES`):
        ``lease``, the address a DHCP server gave the NIC's MAC; ``arp``, the addresses the guest used
        as sources; ``agent``, what the guest agent reports. Needs the running domain."""

    @abstractmethod
    def hostname(self, source: str | None = None) -> str:
        """``virDomainGetHostname``: the guest's host name from ``source``: ``lease`` (the host name
        the guest gave the DHCP server of a network its ``type='network'`` NIC is on), ``agent``, or
        None (the driver's default source: the agent, as libvirt's QEMU driver).
        Unsupported for a source the driver has not; VshError ``no hostname found for domain X``;
        the domain must run."""

    @abstractmethod
    def vcpu_info(self) -> list[dict]:
        """``virDomainGetVcpus``: per vCPU ``vcpu`` (its number), ``cpu`` (the host CPU it last ran on),
        ``state`` (``running``), ``cpu_time_ns``, ``affinity`` (host CPU numbers it may run on) and
        ``thread_id``; for a domain that is not running, ``cpu``, ``state`` and ``cpu_time_ns`` are
        None and the affinity is the definition's pinning."""

    @abstractmethod
    def start_dirty_rate_calc(self, seconds: int = 1, mode: str | None = None) -> None:
        """``virDomainStartDirtyRateCalc``: start measuring how fast the guest dirties its memory
        over ``seconds`` (1-60) by ``mode`` (page-sampling, dirty-bitmap, dirty-ring; None: QEMU's
        default); :meth:`dirty_rate` reads the result. InvalidArgument for a bad value; the
        domain must run."""

    @abstractmethod
    def dirty_rate(self) -> dict:
        """The last dirty-rate measurement (domstats ``--dirtyrate``): ``calc_status`` (0 never
        started, 1 measuring, 2 done), ``calc_start_time`` (s), ``calc_period`` (s), ``megabytes_per_second``
        (when done) and ``calc_mode``. The domain must run."""

    @abstractmethod
    def cpu_times(self) -> dict:
        """``virDomainGetCPUStats`` totals: ``cpu_time``, ``user_time``, ``system_time`` of the whole
        emulator, in ns. Needs the running domain."""

    @abstractmethod
    def per_cpu_times(self) -> list[dict] | None:
        """``virDomainGetCPUStats`` per host CPU: one dict per host CPU, in order, with its counters in
        ns (``cpu_time``, ``vcpu_time``...; empty for a CPU the domain has no figures for), or None
        when the driver keeps no per-CPU accounting (the local driver has it from QEMU's cgroup on
        cgroup v1 hosts when it runs as root). Needs
        the running domain."""
