"""The machine parts of a ``<domain>`` outside ``<devices>`` that starting it reads: firmware and
boot, CPU features, NUMA cells and their host policy, iothreads, timers, SMBIOS tables and
libvirt's QEMU namespace (``<qemu:commandline>``).  ``Domain`` inherits them.  Values that the
argv builder checks with its own messages stay the XML's strings."""

from __future__ import annotations

from vsh.core.xmlobject import XFlag, XMLObject, XProp

#: libvirt's QEMU namespace (xmlns:qemu).
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"


class Timer(XMLObject):
    tag = "timer"
    name = XProp("./@name")
    present = XProp("./@present")
    tickpolicy = XProp("./@tickpolicy")


class IOThread(XMLObject):
    tag = "iothread"
    id = XProp("./@id")
    thread_pool_min = XProp("./@thread_pool_min")
    thread_pool_max = XProp("./@thread_pool_max")
    poll_max = XProp("./poll/@max")
    poll_grow = XProp("./poll/@grow")
    poll_shrink = XProp("./poll/@shrink")


class NumaCell(XMLObject):
    tag = "cell"
    id = XProp("./@id")
    cpus = XProp("./@cpus")
    memory = XProp("./@memory")
    unit = XProp("./@unit")
    mem_access = XProp("./@memAccess")
    discard = XProp("./@discard")

    @property
    def distances(self) -> list[tuple[str | None, str | None]]:
        """(id, value) of each <distances><sibling>."""
        return [(el.get("id"), el.get("value")) for el in self.node.findall("distances/sibling")]


class NumaTune(XMLObject):
    """<numatune><memory> or one <memnode>."""

    tag = "memory"
    mode = XProp("./@mode")
    nodeset = XProp("./@nodeset")
    placement = XProp("./@placement")


class SysInfo(XMLObject):
    """<sysinfo type='smbios'>."""

    tag = "sysinfo"

    def blocks(self, name: str) -> list[list[tuple[str | None, str]]]:
        """Each <NAME> block (bios, system, baseBoard, chassis) as its (entry name, stripped text) pairs."""
        return [[(e.get("name"), (e.text or "").strip()) for e in part.findall("entry")]
                for part in self.node.findall(name)]

    @property
    def oem_strings(self) -> list[str]:
        return [(e.text or "").strip() for e in self.node.findall("oemStrings/entry")]


class Platform(XMLObject):
    emulator = XProp("./devices/emulator")
    has_loader = XFlag("./os/loader")
    os_loader_secure = XProp("./os/loader/@secure")
    os_loader_format = XProp("./os/loader/@format")
    has_nvram = XFlag("./os/nvram")
    os_nvram_type = XProp("./os/nvram/@type")
    os_nvram_template = XProp("./os/nvram/@template")
    has_kernel = XFlag("./os/kernel")
    os_dtb = XProp("./os/dtb")
    os_bootmenu_timeout = XProp("./os/bootmenu/@timeout")
    os_bios_reboot_timeout = XProp("./os/bios/@rebootTimeout")
    os_smbios_mode = XProp("./os/smbios/@mode")
    has_cpu = XFlag("./cpu")
    has_topology = XFlag("./cpu/topology")
    memory_value = XProp("./memory")
    memory_unit = XProp("./memory/@unit")
    has_memory = XFlag("./memory")
    has_max_memory = XFlag("./maxMemory")
    hugepages = XFlag("./memoryBacking/hugepages")
    memory_source_type = XProp("./memoryBacking/source/@type")
    memory_access_mode = XProp("./memoryBacking/access/@mode")
    iothreads = XProp("./iothreads")

    @property
    def os_boot_list(self) -> list[str | None]:
        """The dev of each <os><boot>, as given (None where one names none)."""
        return [el.get("dev") for el in self.node.findall("./os/boot")]

    def feature_state(self, name: str) -> bool | None:
        """<features><NAME state='on|off'/>: True, False, or None when absent."""
        f = self.node.find("features/" + name)
        if f is None:
            return None
        return f.get("state", "on") == "on"

    @property
    def cpu_features(self) -> list[tuple[str | None, str]]:
        """(name, policy) of each <cpu><feature> (policy 'require' when not given)."""
        return [(f.get("name"), f.get("policy", "require")) for f in self.node.findall("./cpu/feature")]

    @property
    def timers(self) -> list[Timer]:
        return [Timer(el) for el in self.node.findall("./clock/timer")]

    def hotplugged_vcpu_count(self) -> int:
        """How many vCPUs of <vcpus> are enabled and hot-pluggable."""
        return len(self.node.xpath("./vcpus/vcpu[@enabled='yes'][@hotpluggable='yes']"))

    def iothread(self, ident: int) -> IOThread | None:
        """The <iothreadids><iothread id=IDENT>, or None."""
        el = self.node.find("./iothreadids/iothread[@id='%d']" % ident)
        return IOThread(el) if el is not None else None

    @property
    def numa_cells(self) -> list[NumaCell]:
        return [NumaCell(el) for el in self.node.findall("./cpu/numa/cell")]

    def numatune_for(self, cell: int) -> NumaTune | None:
        """The host policy of guest cell ``cell``: its <numatune><memnode>, else <numatune><memory>."""
        el = self.node.find("./numatune/memnode[@cellid='%d']" % cell)
        if el is None:
            el = self.node.find("./numatune/memory")
        return NumaTune(el) if el is not None else None

    @property
    def smbios_sysinfo(self) -> SysInfo | None:
        el = self.node.find("sysinfo[@type='smbios']")
        return SysInfo(el) if el is not None else None

    @property
    def qemu_commandline(self) -> list[tuple[str, str | None, str | None]]:
        """The <qemu:commandline> items in order: ('arg', None, value) and ('env', name, value)."""
        out = []
        for cl in self.node.findall("{%s}commandline" % QEMU_NS):
            for el in cl:
                if el.tag == "{%s}arg" % QEMU_NS:
                    out.append(("arg", None, el.get("value")))
                elif el.tag == "{%s}env" % QEMU_NS:
                    out.append(("env", el.get("name"), el.get("value")))
        return out
