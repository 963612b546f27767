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
