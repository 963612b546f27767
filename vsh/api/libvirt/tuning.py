"""CPU pinning, iothreads, scheduler, disk I/O limits and NIC bandwidth of one domain through libvirt."""

from __future__ import annotations

from vsh.api.libvirt.handles import affect, changed
from vsh.api.tuning import DomainTuning


def _cpus(cpumap) -> list[int]:
    return [n for n, on in enumerate(cpumap) if on]


class LibvirtDomainTuning(DomainTuning):
    def __init__(self, dom):
        self.dom = dom

    def _call(self, name: str, *args):
        return self.dom._call(name, *args)

    def _cpumap(self, cpus: list[int]) -> tuple:
        ncpus = self.dom.conn.host.cpu_count()
        return tuple(n in cpus for n in range(max(ncpus, max(cpus, default=-1) + 1)))

    def _changed(self, live, config, current) -> dict:
        return changed(self.dom.active(), self.dom.persistent(), live, config, current)

    def vcpu_pins(self, live=False, config=False, current=False) -> list[dict]:
        return [{"vcpu": n, "cpus": _cpus(pin)}
                for n, pin in enumerate(self._call("virDomainGetVcpuPinInfo", affect(live, config)))]

    def pin_vcpu(self, vcpu: int, cpus: list[int], live=False, config=False, current=False) -> dict:
        self._call("virDomainPinVcpuFlags", vcpu, self._cpumap(cpus), affect(live, config))
        return self._changed(live, config, current)

    def emulator_pin(self, live=False, config=False, current=False) -> list[int]:
        return _cpus(self._call("virDomainGetEmulatorPinInfo", affect(live, config)))

    def pin_emulator(self, cpus: list[int], live=False, config=False, current=False) -> dict:
        self._call("virDomainPinEmulator", self._cpumap(cpus), affect(live, config))
        return self._changed(live, config, current)

    def iothreads(self, live=False, config=False, current=False) -> list[dict]:
        return [{"id": number, "cpus": _cpus(cpumap)}
                for number, cpumap in self._call("virDomainGetIOThreadInfo", affect(live, config))]

    def scheduler(self, live=False, config=False, current=False) -> dict:
        kind = self._call("virDomainGetSchedulerType")[0]
        if live or config or current:
            params = self._call("virDomainGetSchedulerParametersFlags", affect(live, config))
        else:       # as virsh: the call without flags (some drivers take no flags at all)
            params = self._call("virDomainGetSchedulerParameters")
        return {"scheduler": kind, "params": dict(params)}

    def set_scheduler(self, params: dict, live=False, config=False, current=False) -> dict:
        if live or config or current:
            self._call("virDomainSetSchedulerParametersFlags", dict(params), affect(live, config))
        else:
            self._call("virDomainSetSchedulerParameters", dict(params))
        return self._changed(live, config, current)

    def block_iotune(self, disk: str, live=False, config=False, current=False) -> dict:
        return dict(self._call("virDomainGetBlockIoTune", disk, affect(live, config)))

    def set_block_iotune(self, disk: str, params: dict, live=False, config=False, current=False) -> dict:
        self._call("virDomainSetBlockIoTune", disk, dict(params), affect(live, config))
        return self._changed(live, config, current)

    def interface_bandwidth(self, interface: str, live=False, config=False, current=False) -> dict:
        return dict(self._call("virDomainGetInterfaceParameters", interface, affect(live, config)))

    def set_interface_bandwidth(self, interface: str, inbound=None, outbound=None, live=False, config=False,
                                current=False) -> dict:
        params = {}
        for direction, values in (("inbound", inbound), ("outbound", outbound)):
            for key, value in (values or {}).items():
                params[f"{direction}.{key}"] = value
        self._call("virDomainSetInterfaceParameters", interface, params, affect(live, config))
        return self._changed(live, config, current)

    # --- iothreads, memory, blkio, NUMA and perf (virsh iothread*, memtune, blkiotune, numatune, perf) ------

    def add_iothread(self, iothread: int, live=False, config=False, current=False) -> dict:
        self._call("virDomainAddIOThread", iothread, affect(live, config))
        return self._changed(live, config, current)

    def delete_iothread(self, iothread: int, live=False, config=False, current=False) -> dict:
        self._call("virDomainDelIOThread", iothread, affect(live, config))
        return self._changed(live, config, current)

    def pin_iothread(self, iothread: int, cpus: list[int], live=False, config=False, current=False) -> dict:
        self._call("virDomainPinIOThread", iothread, self._cpumap(cpus), affect(live, config))
        return self._changed(live, config, current)

    def set_iothread(self, iothread: int, params: dict, live=False, config=False, current=False) -> dict:
        from vsh.api.tuning import IOTHREAD_PARAMS

        typed = {IOTHREAD_PARAMS.get(k, k).replace("-", "_"): int(v) for k, v in params.items()}
        self._call("virDomainSetIOThreadParams", iothread, typed, affect(live, config))
        return self._changed(live, config, current)

    def memory_parameters(self, live=False, config=False, current=False) -> dict:
        from vsh.api.tuning import MEMTUNE_PARAMS

        got = dict(self._call("virDomainGetMemoryParameters", affect(live, config)))
        return {k: (None if got[k] == UNLIMITED_KIB else int(got[k])) for k in MEMTUNE_PARAMS if k in got}

    def set_memory_parameters(self, params: dict, live=False, config=False, current=False) -> dict:
        typed = {k: UNLIMITED_KIB if v is None else int(v) for k, v in params.items()}
        self._call("virDomainSetMemoryParameters", typed, affect(live, config))
        return self._changed(live, config, current)

    def blkio_parameters(self, live=False, config=False, current=False) -> dict:
        from vsh.api.tuning import BLKIO_DEVICE_PARAMS

        got = dict(self._call("virDomainGetBlkioParameters", affect(live, config)))
        out = {"weight": int(got.get("weight") or 0)}
        for key in BLKIO_DEVICE_PARAMS:
            out[key] = got.get(key) or ""
        return out

    def set_blkio_parameters(self, params: dict, live=False, config=False, current=False) -> dict:
        typed = {k: (int(v) if k == "weight" else str(v)) for k, v in params.items()}
        self._call("virDomainSetBlkioParameters", typed, affect(live, config))
        return self._changed(live, config, current)

    def numa_parameters(self, live=False, config=False, current=False) -> dict:
        from vsh.api.tuning import NUMA_MODES

        got = dict(self._call("virDomainGetNumaParameters", affect(live, config)))
        mode = got.get("numa_mode")
        return {"numa_mode": NUMA_MODES[mode] if isinstance(mode, int) and mode < len(NUMA_MODES) else mode,
                "numa_nodeset": got.get("numa_nodeset") or ""}

    def set_numa_parameters(self, mode=None, nodeset=None, live=False, config=False, current=False) -> dict:
        from vsh.api.tuning import NUMA_MODES

        typed = {}
        if mode is not None:
            typed["numa_mode"] = NUMA_MODES.index(mode) if mode in NUMA_MODES else mode
        if nodeset is not None:
            typed["numa_nodeset"] = nodeset
        self._call("virDomainSetNumaParameters", typed, affect(live, config))
        return self._changed(live, config, current)

    def perf_events(self, live=False, config=False, current=False) -> dict:
        from vsh.api.tuning import PERF_EVENTS

        got = dict(self._call("virDomainGetPerfEvents", affect(live, config)))
        return {name: bool(got.get(name)) for name in PERF_EVENTS if name in got} or \
            {name: False for name in PERF_EVENTS}

    def set_perf_events(self, events: dict, live=False, config=False, current=False) -> dict:
        self._call("virDomainSetPerfEvents", {k: bool(v) for k, v in events.items()}, affect(live, config))
        return self._changed(live, config, current)


#: libvirt's "unlimited" for memory tunables (VIR_DOMAIN_MEMORY_PARAM_UNLIMITED), in KiB
UNLIMITED_KIB = 9007199254740991
