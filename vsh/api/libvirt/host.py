"""The host behind a libvirt connection: node facts, capabilities, XML to and from native."""

from __future__ import annotations

from vsh.api.host import Host
from vsh.api.libvirt.lv import call, mod
from vsh.core.errors import InvalidArgument, Unsupported


class LibvirtHost(Host):
    def __init__(self, conn):
        self.conn = conn

    def hostname(self) -> str:
        return call("virConnectGetHostname", self.conn.ptr)

    def hypervisor_version(self) -> str | None:
        mod().virResetLastError()
        version = mod().virConnectGetVersion(self.conn.ptr)
        if version is None or version < 0:
            return None
        return _dotted(version)

    def versions(self) -> dict:
        m = mod()
        library = _dotted(m.virGetVersion())
        kind = call("virConnectGetType", self.conn.ptr)
        # libvirt-python is built against the libvirt it runs with (scripts/setup pins the same version)
        return {"library": ("libvirt", library), "compiled": ("libvirt", library), "api": (kind, library),
                "hypervisor": (kind, self.hypervisor_version())}

    def cpu_count(self) -> int:
        return call("virNodeGetCPUMap", self.conn.ptr, 0)[0]

    def node_info(self) -> dict:
        model, memory_mib, cpus, mhz, nodes, sockets, cores, threads = call("virNodeGetInfo", self.conn.ptr)
        # the binding gives the memory in MiB; the exact KiB virsh prints are MemTotal of the node's stats
        m = mod()
        stats = m.virNodeGetMemoryStats(self.conn.ptr, -1, 0)
        memory_kib = stats.get("total") if isinstance(stats, dict) and stats.get("total") else memory_mib * 1024
        return {"CPU model": model, "CPU(s)": cpus, "CPU frequency": mhz, "CPU socket(s)": sockets,
                "Core(s) per socket": cores, "Thread(s) per core": threads, "NUMA cell(s)": nodes,
                "Memory size": memory_kib}

    def free_memory(self, cell: int | None = None) -> int:
        if cell is None:
            return call("virNodeGetFreeMemory", self.conn.ptr)
        return call("virNodeGetCellsFreeMemory", self.conn.ptr, cell, 1)[0]

    def numa_cells(self) -> list[int]:
        from vsh.api.libvirt.handles import parse_xml

        cells = parse_xml(self.capabilities_xml()).iterfind("host/topology/cells/cell")
        return [int(cell.get("id")) for cell in cells] or [0]

    def sysinfo_xml(self) -> str:
        return call("virConnectGetSysinfo", self.conn.ptr, 0)

    def capabilities_xml(self) -> str:
        return call("virConnectGetCapabilities", self.conn.ptr)

    def domain_capabilities_xml(self, virttype: str | None = None, emulatorbin: str | None = None,
                                arch: str | None = None, machine: str | None = None) -> str:
        return call("virConnectGetDomainCapabilities", self.conn.ptr, emulatorbin, arch, machine, virttype, 0)

    def validate(self, refresh: bool = False) -> list[dict]:
        from vsh.core.uri import Uri

        if Uri.parse(self.conn.uri).host:
            raise Unsupported("this function is not supported by the connection driver: virt-host-validate "
                              "checks the host it runs on; run it there")
        from vsh.kvm.host import host_validate, probe

        return [{"check": text, "result": verdict, "reason": reason}
                for text, verdict, reason in host_validate(probe(refresh=refresh))]

    def domxml_to_native(self, fmt: str, xml: str | None = None, domain: str | None = None) -> list[str]:
        import shlex

        if (domain is None) == (xml is None):
            raise InvalidArgument("exactly one of --domain and --xml is required")
        if domain is not None:
            xml = self.conn.lookup_domain(domain).xml(inactive=True)
        return shlex.split(call("virConnectDomainXMLToNative", self.conn.ptr, fmt, xml, 0))

    def domxml_from_native(self, fmt: str, config: str) -> str:
        return call("virConnectDomainXMLFromNative", self.conn.ptr, fmt, config, 0)


def _dotted(version: int) -> str:
    """libvirt's version number (major * 1000000 + minor * 1000 + release) as ``major.minor.release``."""
    return f"{version // 1000000}.{version // 1000 % 1000}.{version % 1000}"
