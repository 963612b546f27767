"""Statistics of one domain through libvirt."""

from __future__ import annotations

from vsh.api.libvirt.handles import changed
from vsh.api.libvirt.lv import call
from vsh.api.stats import BLOCK_COUNTERS, STATS_GROUPS, DomainStats
from vsh.core.errors import InvalidArgument, Unsupported

# virDomainStatsTypes of the groups of STATS_GROUPS
_GROUP_FLAGS = {"state": 1, "cpu-total": 2, "balloon": 4, "vcpu": 8, "interface": 16, "block": 32, "perf": 256}
_ADDRESS_SOURCES = {"lease": 0, "agent": 1, "arp": 2}
_IFACE_COUNTERS = ("rx_bytes", "rx_packets", "rx_errs", "rx_drop", "tx_bytes", "tx_packets", "tx_errs", "tx_drop")


class LibvirtDomainStats(DomainStats):
    def __init__(self, dom):
        self.dom = dom

    def _call(self, name: str, *args, context: tuple = ()):
        return call(name, self.dom.ptr, *args, context=context)

    def domain_stats(self, groups: list[str] | None = None) -> dict:
        flags = 0
        for group in groups or STATS_GROUPS:
            flags |= _GROUP_FLAGS[group]
        records = call("virDomainListGetStats", self.dom.conn.ptr, [self.dom.ptr], flags, 0)
        return dict(records[0][1]) if records else {}

    def memory_stats(self) -> dict:
        return dict(self._call("virDomainMemoryStats"))

    def set_memory_stats_period(self, period: int, live: bool = False, config: bool = False,
                                current: bool = False) -> dict:
        active = self.dom.active()
        flags = (1 if live else 0) | (2 if config else 0)
        if not (live or config or current) and active:
            flags |= 1          # as virsh: no flag on a running domain means live
        self._call("virDomainSetMemoryStatsPeriod", period, flags)
        return changed(active, self.dom.persistent(), bool(flags & 1), bool(flags & 2), current)

    def block_stats(self, device: str | None = None) -> dict:
        from vsh.api.libvirt.lv import code_of

        context = (f"Failed to get block stats {self.dom.name} {device or ''}",)
        try:
            params = self._call("virDomainBlockStatsFlags", device or "", 0, context=context)
        except Unsupported as err:
            if code_of(err) != 3:
                raise
            # as virsh: the older call where the driver lacks the typed one
            values = self._call("virDomainBlockStats", device or "", context=context)
            params = dict(zip(("rd_req", "rd_bytes", "wr_req", "wr_bytes"), values))
        return {key: params[key] for key in BLOCK_COUNTERS if key in params and params[key] != -1}

    def block_info(self, device: str) -> dict:
        capacity, allocation, physical = self._call("virDomainGetBlockInfo", device, 0)
        return {"target": device, "capacity": capacity, "allocation": allocation, "physical": physical}

    def block_info_all(self) -> list[dict]:
        out = []
        for disk in self.dom.block_devices():
            if disk["source"] is None:
                out.append({"target": disk["target"], "capacity": 0, "allocation": 0, "physical": 0})
            else:
                out.append(self.block_info(disk["target"]))
        return out

    def interface_stats(self, interface: str) -> dict:
        values = self._call("virDomainInterfaceStats", interface)
        return {key: value for key, value in zip(_IFACE_COUNTERS, values) if value != -1}

    def interface_addresses(self, source: str = "lease") -> list[dict]:
        if source not in _ADDRESS_SOURCES:
            raise InvalidArgument(f"Unknown data source '{source}'")
        found = self._call("virDomainInterfaceAddresses", _ADDRESS_SOURCES[source], 0) or {}
        out = []
        for name, iface in found.items():
            addrs = [{"type": "ipv6" if a.get("type") == 1 else "ipv4", "address": a.get("addr"),
                      "prefix": a.get("prefix")} for a in iface.get("addrs") or ()]
            out.append({"name": name, "mac": iface.get("hwaddr"), "addresses": addrs})
        return out

    def vcpu_info(self) -> list[dict]:
        ncpus = self.dom.conn.host.cpu_count()
        if not self.dom.active():
            pins = self._call("virDomainGetVcpuPinInfo", 2)        # VIR_DOMAIN_AFFECT_CONFIG
            return [{"vcpu": n, "cpu": None, "state": None, "cpu_time_ns": None,
                     "affinity": [c for c in range(ncpus) if c < len(pin) and pin[c]], "thread_id": None}
                    for n, pin in enumerate(pins)]
        infos, maps = self._call("virDomainGetVcpus")
        out = []
        for (number, state, cpu_time, cpu), pin in zip(infos, maps):
            out.append({"vcpu": number, "cpu": cpu, "state": ("offline", "running", "blocked")[state]
                        if 0 <= state < 3 else "no state", "cpu_time_ns": cpu_time,
                        "affinity": [c for c in range(ncpus) if c < len(pin) and pin[c]], "thread_id": None})
        return out

    def cpu_times(self) -> dict:
        totals = self._call("virDomainGetCPUStats", True, 0)
        if not totals:
            raise Unsupported("this function is not supported by the connection driver: virDomainGetCPUStats")
        total = totals[0]
        return {"cpu_time": total.get("cpu_time", 0), "user_time": total.get("user_time", 0),
                "system_time": total.get("system_time", 0)}

    def per_cpu_times(self) -> list[dict] | None:
        return [dict(cpu) for cpu in self._call("virDomainGetCPUStats", False, 0)]

    def hostname(self, source: str | None = None) -> str:
        flags = {None: 0, "lease": 1, "agent": 2}.get(source)
        if flags is None:
            raise InvalidArgument(f"Unknown data source '{source}'")
        return self._call("virDomainGetHostname", flags)

    def start_dirty_rate_calc(self, seconds: int = 1, mode: str | None = None) -> None:
        modes = {None: 0, "page-sampling": 0, "dirty-bitmap": 1, "dirty-ring": 2}
        if mode not in modes:
            raise InvalidArgument(f"Unknown calculation mode '{mode}'")
        self._call("virDomainStartDirtyRateCalc", seconds, modes[mode])

    def dirty_rate(self) -> dict:
        records = call("virDomainListGetStats", self.dom.conn.ptr, [self.dom.ptr], 512, 0)   # STATS_DIRTYRATE
        stats = dict(records[0][1]) if records else {}
        return {key.removeprefix("dirtyrate."): value for key, value in stats.items()
                if key.startswith("dirtyrate.")}
