"""The host: node facts, capabilities, domain capabilities, validation."""

from __future__ import annotations

from abc import ABC, abstractmethod


class Host(ABC):
    """The host: node facts, capabilities, domain capabilities, validation."""

    @abstractmethod
    def hostname(self) -> str:
        """``virConnectGetHostname``: the host's name (the node name of the kernel that runs the
        domains)."""

    @abstractmethod
    def hypervisor_version(self) -> str | None:
        """``virConnectGetVersion``: the version of the QEMU that runs the domains (``"8.2.2"``); ``""``
        when no QEMU is found, None when the host could not be probed at all."""

    @abstractmethod
    def versions(self) -> dict:
        """virsh version's facts: ``library`` and ``compiled`` (``(name, version)`` of the library
        that answers, as it runs and as the client was built against), ``api`` (``(hypervisor
        type, library version)``) and ``hypervisor`` (``(type, version)``, the version None when
        it cannot be found)."""

    @abstractmethod
    def cpu_count(self) -> int:
        """The number of host CPUs a vCPU may be pinned to (their numbers are 0 to count-1): the width
        of vcpuinfo's affinity maps and the range cpu-stats accepts."""

    @abstractmethod
    def node_info(self) -> dict:
        """``virNodeGetInfo``: a dict with virsh nodeinfo's labels as keys: ``CPU model`` (the
        architecture), ``CPU(s)``, ``CPU frequency`` (MHz), ``CPU socket(s)`` (per NUMA cell, as
        libvirt counts them), ``Core(s) per socket``, ``Thread(s) per core``, ``NUMA cell(s)``,
        ``Memory size`` (KiB); numbers are ints."""

    @abstractmethod
    def free_memory(self, cell: int | None = None) -> int:
        """``virNodeGetFreeMemory`` (all cells), or with ``cell`` ``virNodeGetCellsFreeMemory`` of that
        NUMA cell: free memory in bytes. InvalidArgument (``invalid argument: Range exceeds available
        cells``) for a cell the host does not have."""

    @abstractmethod
    def numa_cells(self) -> list[int]:
        """The ids of the host's NUMA cells, in order (the cells of the capabilities' topology)."""

    @abstractmethod
    def sysinfo_xml(self) -> str:
        """``virConnectGetSysinfo``: the host's SMBIOS facts as libvirt's ``<sysinfo type='smbios'>``."""

    @abstractmethod
    def capabilities_xml(self) -> str:
        """``virConnectGetCapabilities``: the host's capabilities document (libvirt's
        ``<capabilities>`` format: host CPU, topology, guests the hypervisor can run)."""

    @abstractmethod
    def domain_capabilities_xml(self, virttype: str | None = None, emulatorbin: str | None = None,
                                arch: str | None = None, machine: str | None = None) -> str:
        """``virConnectGetDomainCapabilities``: the ``<domainCapabilities>`` document for a
        virtualization type (``kvm`` or ``qemu``; None: the host's default), emulator, architecture
        and machine type (None: the defaults). Raises InvalidArgument for an architecture, type or
        machine the host does not offer, Unsupported when KVM is asked for but unusable or no QEMU
        is found."""

    @abstractmethod
    def validate(self, refresh: bool = False) -> list[dict]:
        """virt-host-validate's checks, in order: dicts with ``check`` (what was checked),
        ``result`` (``PASS``, ``WARN`` or ``FAIL``) and ``reason`` (why, or ``""``). ``refresh``
        probes the host again instead of using a cached verdict. A failed check is data, not an
        error."""

    @abstractmethod
    def domxml_to_native(self, fmt: str, xml: str | None = None, domain: str | None = None) -> list[str]:
        """``virConnectDomainXMLToNative``: the command line that would run a domain, as a list of
        words. ``fmt`` is the native format (``qemu-argv``; anything else is InvalidArgument
        ``unsupported config type``). Exactly one of ``xml`` (domain XML text, parsed and validated
        as define would) and ``domain`` (a defined domain's name, id or UUID: its persistent
        definition) is given, else InvalidArgument; NotFound for an unknown domain, XMLError for
        XML that does not parse or validate."""

    @abstractmethod
    def domxml_from_native(self, fmt: str, config: str) -> str:
        """``virConnectDomainXMLFromNative``: domain XML for the QEMU command line ``config`` (one
        text, shell-quoted as ``ps`` or a script shows it) when ``fmt`` is ``qemu-argv`` (else
        InvalidArgument ``unsupported config type``). Reads -name, -uuid, -m, -smp, -machine,
        -cpu, -accel/-enable-kvm, -drive and -blockdev file disks, -cdrom, -hda..-hdd, -netdev
        user/tap with virtio-net/e1000 -device (or -net nic), -kernel/-initrd/-append, -serial,
        -boot; other options are skipped as libvirt skips what it does not know. InvalidArgument
        for a line that does not parse."""
