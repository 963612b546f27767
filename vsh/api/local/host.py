"""The local driver: the host: node facts, capabilities, domain capabilities, validation.

Everything comes from :func:`vsh.kvm.host.probe` (QEMU's answers and /proc, /sys; cached).
"""

from __future__ import annotations

import os

from vsh.api.host import Host


def _probe(refresh: bool = False):
    from vsh.kvm.host import probe

    return probe(refresh=refresh)


class LocalHost(Host):
    def __init__(self, conn):
        self.conn = conn

    def hostname(self) -> str:
        return os.uname().nodename

    def hypervisor_version(self) -> str | None:
        try:
            version = _probe().qemu_version
        except Exception:       # a host that cannot be probed still answers `version`
            return None
        return version and str(version)

    def versions(self) -> dict:
        from vsh import __version__

        return {"library": ("vsh", __version__), "compiled": ("vsh", __version__), "api": ("QEMU", __version__),
                "hypervisor": ("QEMU", self.hypervisor_version())}

    def cpu_count(self) -> int:
        return os.cpu_count() or 1

    def node_info(self) -> dict:
        from vsh.kvm.host import nodeinfo

        return nodeinfo(_probe())

    def free_memory(self, cell: int | None = None) -> int:
        from vsh.kvm.host import free_memory

        return free_memory(cell)

    def numa_cells(self) -> list[int]:
        from vsh.kvm.host import numa_cells

        return numa_cells()

    def sysinfo_xml(self) -> str:
        from vsh.kvm.host import sysinfo_xml

        return sysinfo_xml()

    def capabilities_xml(self) -> str:
        from vsh.kvm.host import capabilities_xml

        return capabilities_xml(_probe())

    def domain_capabilities_xml(self, virttype: str | None = None, emulatorbin: str | None = None,
                                arch: str | None = None, machine: str | None = None) -> str:
        from vsh.core.errors import InvalidArgument
        from vsh.kvm.host import domcapabilities_xml

        if arch not in (None, "x86_64"):
            raise InvalidArgument(f"unsupported configuration: architecture '{arch}' is not supported by this "
                                  "host (vsh drives qemu-system-x86_64)")
        if virttype not in (None, "kvm", "qemu"):
            raise InvalidArgument(f"unknown virttype '{virttype}': use kvm or qemu")
        return domcapabilities_xml(_probe(), machine=machine, domtype=virttype)

    def validate(self, refresh: bool = False) -> list[dict]:
        from vsh.kvm.host import host_validate

        return [{"check": text, "result": verdict, "reason": reason}
                for text, verdict, reason in host_validate(_probe(refresh))]

    def domxml_to_native(self, fmt: str, xml: str | None = None, domain: str | None = None) -> list[str]:
        from vsh.core.errors import InvalidArgument

        if fmt != "qemu-argv":
            raise InvalidArgument(f"unsupported config type {fmt}")
        if (domain is None) == (xml is None):
            raise InvalidArgument("exactly one of --domain and --xml is required")
        store = self.conn.store
        if domain is not None:
            ref = store.get(domain)
            dom = store.load(ref, inactive=True)
            name = ref.name
        else:
            from vsh.core.domain import Domain

            dom = Domain.parse(xml.encode("utf-8", "surrogateescape"))
            dom.fill_defaults()
            dom.validate()
            name = dom.name
        from vsh.kvm.argv import RuntimePaths, build_argv

        # the argv vsh would run, with the paths of the domain's runtime directory
        return build_argv(dom.node, _probe(), RuntimePaths.for_rundir(store.runtime_dir(name)))

    def domxml_from_native(self, fmt: str, config: str) -> str:
        from vsh.api.local.fromnative import domxml_from_native

        return domxml_from_native(fmt, config)
