"""The local driver: statistics of one domain: domstats and the per-device counters, from
:mod:`vsh.api.local.qemustats` (QMP, /proc, the disks' images) and
:mod:`vsh.api.local.nicstats` (the NICs' traffic and addresses).
"""

from __future__ import annotations

from vsh.api.local.qemustats import (
    balloon_device, block_stats, cpu_times, file_sizes, find_disk, memory_stats, not_running, qemu_pid, qmp, rundir,
    vcpu_threads)
from vsh.api.stats import BLOCK_COUNTERS, STATS_GROUPS, DomainStats
from vsh.core.errors import InvalidArgument, OperationInvalid, VshError

# virDomainState and the reasons libvirt numbers for each state (domstats state.*)
STATE_NUMBERS = {"running": 1, "starting": 1, "blocked": 2, "paused": 3, "shutdown": 4, "shutoff": 5,
                 "crashed": 6, "pmsuspended": 7}
REASON_NUMBERS = {
    1: ["unknown", "booted", "migrated", "restored", "from snapshot", "unpaused", "migration canceled",
        "save canceled", "wakeup", "crashed", "post-copy", "post-copy failed"],
    3: ["unknown", "user", "migration", "saving", "dump", "ioerror", "watchdog", "from snapshot", "shutdown",
        "snapshot", "crashed", "starting up", "post-copy", "post-copy failed", "api error"],
    4: ["unknown", "user"],
    5: ["unknown", "shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from snapshot", "daemon"],
    6: ["unknown", "panicked"],
}


# -- domstats -----------------------------------------------------------------------------------------


def _block_params(store, ref, dom, active: bool) -> list[tuple[str, object]]:
    disks = dom.disks
    stats = block_stats(store, ref, dom) if active else {}
    out: list[tuple[str, object]] = [("block.count", len(disks))]
    for i, disk in enumerate(disks):
        out.append((f"block.{i}.name", disk.target_dev))
        if disk.source:
            out.append((f"block.{i}.path", disk.source))
        s = stats.get(disk.target_dev)
        if s:
            out += [(f"block.{i}.rd.reqs", s["rd_req"]), (f"block.{i}.rd.bytes", s["rd_bytes"]),
                    (f"block.{i}.rd.times", s["rd_total_times"]), (f"block.{i}.wr.reqs", s["wr_req"]),
                    (f"block.{i}.wr.bytes", s["wr_bytes"]), (f"block.{i}.wr.times", s["wr_total_times"]),
                    (f"block.{i}.fl.reqs", s["flush_operations"]),
                    (f"block.{i}.fl.times", s["flush_total_times"])]
        if disk.source:
            try:
                _alloc, phys, cap = file_sizes(disk)
            except VshError:
                continue
            if s and s.get("capacity") is not None:
                cap = s["capacity"]
            if s:
                out.append((f"block.{i}.allocation", s["wr_highest_offset"]))
            if cap is not None:
                out.append((f"block.{i}.capacity", cap))
            out.append((f"block.{i}.physical", phys))
    return out


def _net_params(store, ref, dom) -> list[tuple[str, object]]:
    from vsh.api.local.nicstats import nic_counters, nic_name

    nics = dom.interfaces
    out: list[tuple[str, object]] = [("net.count", len(nics))]
    for i, nic in enumerate(nics):
        acct = nic_counters(store, ref, nic)
        out.append((f"net.{i}.name", nic_name(acct, nic)))
        if acct:
            for way in ("rx", "tx"):
                out += [(f"net.{i}.{way}.bytes", acct[f"{way}_bytes"]),
                        (f"net.{i}.{way}.pkts", acct[f"{way}_packets"])]
                if f"{way}_errs" in acct:
                    out += [(f"net.{i}.{way}.errs", acct[f"{way}_errs"]),
                            (f"net.{i}.{way}.drop", acct[f"{way}_drop"])]
    return out


def dirty_rate(store, ref) -> dict:
    """QMP query-dirty-rate in libvirt's ``dirtyrate.*`` names."""
    info = qmp(store, ref, "query-dirty-rate")
    status = {"unstarted": 0, "measuring": 1, "measured": 2}.get(info.get("status"), 0)
    out = {"calc_status": status, "calc_start_time": info.get("start-time", 0),
           "calc_period": info.get("calc-time", 0)}
    if status == 2 and "dirty-rate" in info:
        out["megabytes_per_second"] = info["dirty-rate"]
    out["calc_mode"] = info.get("mode", "page-sampling")
    return out


def domain_stats(store, ref, groups) -> dict:
    """The typed parameters libvirt's virConnectGetAllDomainStats gives for one domain."""
    out: list[tuple[str, object]] = []
    active = ref.active
    dom = store.load(ref)
    state = STATE_NUMBERS.get(ref.state if active else "shutoff", 0)
    reasons = REASON_NUMBERS.get(state, ["unknown"])
    if "state" in groups:
        reason = ref.reason if ref.runtime is not None else "unknown"
        out += [("state.state", state), ("state.reason", reasons.index(reason) if reason in reasons else 0)]
    if "cpu-total" in groups and active:
        t = cpu_times(qemu_pid(ref))
        out += [("cpu.time", t["cpu_time"]), ("cpu.user", t["user_time"]), ("cpu.system", t["system_time"])]
    if "balloon" in groups:
        if active:
            mem = memory_stats(store, ref, dom)
            out += [("balloon.current", mem.pop("actual")), ("balloon.maximum", dom.memory or 0)]
            for name, value in mem.items():
                out.append((f"balloon.{'last-update' if name == 'last_update' else name}", value))
        else:
            out += [("balloon.current", dom.current_memory or dom.memory or 0), ("balloon.maximum", dom.memory or 0)]
    if "vcpu" in groups:
        current = (ref.runtime.data.get("vcpus") if active and ref.runtime else None) or dom.effective_vcpus
        out += [("vcpu.current", current), ("vcpu.maximum", dom.vcpus or 1)]
        if active:
            for v in vcpu_threads(store, ref):
                n = v["vcpu"]
                out += [(f"vcpu.{n}.state", 1), (f"vcpu.{n}.time", v["time"]), (f"vcpu.{n}.delay", v["delay"])]
    if "interface" in groups and active:
        out += _net_params(store, ref, dom)
    if "block" in groups:
        out += _block_params(store, ref, dom, active)
    if "perf" in groups and active and ref.runtime is not None and ref.runtime.data.get("perf"):
        from vsh.kvm import client      # the counters the supervisor holds (vsh.kvm.perf)

        out += [(f"perf.{k}", v) for k, v in client.perf(rundir(store, ref))["values"].items()]
    if "dirtyrate" in groups and active:
        out += [(f"dirtyrate.{k}", v) for k, v in dirty_rate(store, ref).items()]
    return dict(out)


# -- the handle ---------------------------------------------------------------------------------------


class LocalDomainStats(DomainStats):
    def __init__(self, dom):
        self.dom = dom

    def _running(self):
        """The domain's ref, read again; OperationInvalid when it is not running."""
        ref = self.dom.refresh()
        if not ref.active:
            raise not_running()
        return ref

    DIRTY_MODES = {"page-sampling": "page-sampling", "dirty-bitmap": "dirty-bitmap", "dirty-ring": "dirty-ring"}

    def start_dirty_rate_calc(self, seconds: int = 1, mode: str | None = None) -> None:
        if not 1 <= seconds <= 60:
            raise InvalidArgument(f"invalid argument: seconds={seconds} is invalid, please choose value within "
                                  "[1, 60].")
        if mode is not None and mode not in self.DIRTY_MODES:
            raise InvalidArgument(f"invalid argument: unknown dirty page rate calculation mode '{mode}'")
        args = {"calc-time": seconds}
        if mode is not None:
            args["mode"] = self.DIRTY_MODES[mode]
        qmp(self.dom.store, self._running(), "calc-dirty-rate", args)

    def dirty_rate(self) -> dict:
        return dirty_rate(self.dom.store, self._running())

    def domain_stats(self, groups: list[str] | None = None) -> dict:
        groups = list(STATS_GROUPS) if groups is None else groups
        store = self.dom.store
        try:
            return domain_stats(store, self.dom.ref, groups)
        except OperationInvalid:
            return domain_stats(store, self.dom.refresh(), groups)    # it stopped meanwhile: what is true now

    def memory_stats(self) -> dict:
        ref = self._running()
        return memory_stats(self.dom.store, ref, self.dom.store.load(ref))

    def set_memory_stats_period(self, period: int, live: bool = False, config: bool = False,
                                current: bool = False) -> dict:
        from vsh.api.local.changes import change_config, impact

        store, ref = self.dom.store, self.dom.refresh()
        if not (config or live or current):
            do_live, do_config = (True, ref.persistent) if ref.active else (False, True)
        else:
            do_live, do_config = impact(ref, live=live, config=config, current=current, default="current")

        def change(cfg):
            from vsh.core.domain import ensure

            bal = cfg.node.find("./devices/memballoon")
            if bal is None or bal.get("model") == "none":
                raise OperationInvalid("Requested operation is not valid: the domain has no memory balloon device")
            ensure(bal, "./stats").set("period", str(period))

        if do_live:
            path = balloon_device(store, ref)
            if path is None:
                raise OperationInvalid("Requested operation is not valid: no memory balloon device configured, "
                                       "can not set the collection period")
            qmp(store, ref, "qom-set", {"path": path, "property": "guest-stats-polling-interval",
                                        "value": int(period)})
        if do_config:
            change_config(store, ref, change)
        return {"live": do_live, "config": do_config}

    def block_stats(self, device: str | None = None) -> dict:
        ref = self._running()
        dom = self.dom.store.load(ref)
        stats = block_stats(self.dom.store, ref, dom)
        if device:
            disk = find_disk(dom, device)
            if disk is None or disk.target_dev not in stats:
                raise InvalidArgument(f"invalid argument: invalid path: {device}")
            return {key: stats[disk.target_dev][key] for key in BLOCK_COUNTERS}
        return {key: sum(s[key] for s in stats.values()) for key in BLOCK_COUNTERS}

    def _block_info(self, disks) -> list[dict]:
        ref = self.dom.refresh()
        live = block_stats(self.dom.store, ref, self.dom.store.load(ref)) if ref.active else {}
        out = []
        for disk in disks:
            alloc, phys, cap = file_sizes(disk)
            qcap = (live.get(disk.target_dev) or {}).get("capacity")
            if qcap is not None:
                cap = qcap
            out.append({"target": disk.target_dev, "capacity": cap or 0, "allocation": alloc, "physical": phys})
        return out

    def block_info(self, device: str) -> dict:
        disk = find_disk(self.dom.store.load(self.dom.refresh()), device)
        if disk is None:
            raise InvalidArgument(f"invalid argument: invalid path {device} not assigned to domain")
        return self._block_info([disk])[0]

    def block_info_all(self) -> list[dict]:
        return self._block_info(self.dom.store.load(self.dom.refresh()).disks)

    def interface_stats(self, interface: str) -> dict:
        from vsh.api.local.nicstats import interface_stats

        ref = self._running()
        return interface_stats(self.dom.store, ref, self.dom.store.load(ref), interface)

    def interface_addresses(self, source: str = "lease") -> list[dict]:
        from vsh.api.local.nicstats import interface_addresses

        if source == "agent":
            return self.dom.agent.interfaces()
        if source not in ("lease", "arp"):
            raise InvalidArgument(f"Unknown data source '{source}'")
        ref = self._running()
        return interface_addresses(self.dom.store, ref, self.dom.store.load(ref), source)

    def hostname(self, source: str | None = None) -> str:
        if source in (None, "agent"):
            return self.dom.agent.hostname()
        if source != "lease":
            raise InvalidArgument(f"Unknown data source '{source}'")
        ref = self._running()
        for nic in self.dom.store.load(ref).interfaces:
            if nic.type != "network" or not nic.source_network:
                continue
            try:
                leases = self.dom.conn.networks.lookup(nic.source_network).dhcp_leases(nic.mac)
            except VshError:
                continue
            for lease in leases:
                if lease.get("hostname"):
                    return lease["hostname"]
        raise VshError(f"no hostname found for domain {self.dom.name}")

    def vcpu_info(self) -> list[dict]:
        store, ref = self.dom.store, self.dom.refresh()
        if ref.active:
            return [{"vcpu": v["vcpu"], "cpu": v["cpu"], "state": "running", "cpu_time_ns": v["time"],
                     "affinity": v["affinity"], "thread_id": v["thread_id"]} for v in vcpu_threads(store, ref)]
        from vsh.core.domain import parse_cpuset

        dom = store.load(ref, inactive=True)
        vcpu = dom.node.find("vcpu")
        cpuset = vcpu.get("cpuset") if vcpu is not None else None
        allowed = sorted(parse_cpuset(cpuset)) if cpuset else list(range(self.dom.conn.host.cpu_count()))
        out = []
        for n in range(dom.effective_vcpus):
            pin = dom.node.find(f"./cputune/vcpupin[@vcpu='{n}']")
            cpus = sorted(parse_cpuset(pin.get("cpuset"))) if pin is not None and pin.get("cpuset") else allowed
            out.append({"vcpu": n, "cpu": None, "state": None, "cpu_time_ns": None, "affinity": cpus})
        return out

    def cpu_times(self) -> dict:
        return cpu_times(qemu_pid(self._running()))

    def per_cpu_times(self) -> list[dict] | None:
        from vsh.kvm import cgroup

        ns = cgroup.per_cpu_ns(qemu_pid(self._running()))     # QEMU's own cgroup (cpuacct, v1)
        return None if ns is None else [{"cpu_time": n} for n in ns]
