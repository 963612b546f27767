"""The host reports in libvirt's XML: ``virsh capabilities`` and ``virsh domcapabilities``
(what vsh's argv builder supports on this host), written in libvirt's style (2-space
indent, single-quoted attributes)."""

from __future__ import annotations

import os
import re

from vsh.core.errors import InvalidArgument, Unsupported
from vsh.core.xml import escape_attr, escape_text
from vsh.kvm.argv.builder import DEFAULT_MACHINE
from vsh.kvm.host.hardware import read_text
from vsh.kvm.host.qemu import QEMU_NAME
from vsh.kvm.host.records import HostInfo, default_domain_type


def xml_tag(name: str, attrs: dict | None = None, text: str | None = None, close: bool = True) -> str:
    """One element on one line: empty, open, or with text."""
    a = "".join(" %s='%s'" % (k, escape_attr(str(v))) for k, v in (attrs or {}).items() if v is not None)
    if text is not None:
        return "<%s%s>%s</%s>" % (name, a, escape_text(str(text)), name)
    return "<%s%s%s>" % (name, a, "/" if close else "")


class XmlWriter:
    """Lines of XML in libvirt's layout, indented by nesting."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def leaf(self, name: str, attrs: dict | None = None, text: str | None = None) -> None:
        self.lines.append("  " * self.depth + xml_tag(name, attrs, text))

    def open(self, name: str, attrs: dict | None = None) -> None:
        self.lines.append("  " * self.depth + xml_tag(name, attrs, close=False))
        self.depth += 1

    def close(self, name: str) -> None:
        self.depth -= 1
        self.lines.append("  " * self.depth + "</%s>" % name)

    def blank(self) -> None:
        self.lines.append("")

    def enum(self, name: str, values) -> None:
        values = list(values)
        if not values:
            self.leaf("enum", {"name": name})
            return
        self.open("enum", {"name": name})
        for v in values:
            self.leaf("value", text=v)
        self.close("enum")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def host_uuid(sysfs: str = "/sys") -> str:
    """The host's UUID: the DMI product UUID, else /etc/machine-id, else zeros."""
    u = read_text(os.path.join(sysfs, "class/dmi/id/product_uuid")).strip().lower()
    if re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", u) \
            and u not in ("00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"):
        return u
    mid = read_text("/etc/machine-id").strip().lower()
    if re.fullmatch(r"[0-9a-f]{32}", mid):
        return "%s-%s-%s-%s-%s" % (mid[:8], mid[8:12], mid[12:16], mid[16:20], mid[20:])
    return "00000000-0000-0000-0000-000000000000"


def vendor_name(vendor: str) -> str:
    """libvirt's vendor name for a /proc/cpuinfo vendor_id."""
    return {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(vendor, vendor or "unknown")


def capabilities_xml(host: HostInfo) -> str:
    """``virsh capabilities`` in libvirt's format."""
    w = XmlWriter()
    w.open("capabilities")
    w.blank()
    w.open("host")
    w.leaf("uuid", text=host_uuid())
    w.open("cpu")
    w.leaf("arch", text=host.arch)
    if host.cpu_model_name:
        w.leaf("model", text=host.cpu_model_name)
    w.leaf("vendor", text=vendor_name(host.cpu_vendor))
    w.leaf("topology", {"sockets": host.sockets, "dies": 1, "cores": host.cores_per_socket,
                        "threads": host.threads_per_core})
    for flag in sorted(set(host.cpu_flags)):
        if re.fullmatch(r"[a-z0-9_.-]+", flag):
            w.leaf("feature", {"name": flag})
    w.leaf("pages", {"unit": "KiB", "size": 4})
    if "pse" in host.cpu_flags:
        w.leaf("pages", {"unit": "KiB", "size": 2048})
    if "pdpe1gb" in host.cpu_flags:
        w.leaf("pages", {"unit": "KiB", "size": 1048576})
    w.close("cpu")
    w.leaf("power_management")
    w.leaf("iommu", {"support": "yes" if host.iommu_groups else "no"})
    w.open("topology")
    cells = host.numa_cells or [{"id": 0, "cpus": list(range(host.cpus)), "memory_kib": host.memory_kib}]
    w.open("cells", {"num": len(cells)})
    for cell in cells:
        w.open("cell", {"id": cell["id"]})
        w.leaf("memory", {"unit": "KiB"}, str(cell["memory_kib"]))
        w.open("distances")
        for other in cells:
            w.leaf("sibling", {"id": other["id"], "value": 10 if other["id"] == cell["id"] else 20})
        w.close("distances")
        w.open("cpus", {"num": len(cell["cpus"])})
        for c in cell["cpus"]:
            w.leaf("cpu", {"id": c})
        w.close("cpus")
        w.close("cell")
    w.close("cells")
    w.close("topology")
    w.open("secmodel")
    w.leaf("model", text="none")
    w.leaf("doi", text="0")
    w.close("secmodel")
    w.close("host")
    w.blank()
    if host.qemu_path and host.machines:
        w.open("guest")
        w.leaf("os_type", text="hvm")
        w.open("arch", {"name": "x86_64"})
        w.leaf("wordsize", text="64")
        w.leaf("emulator", text=host.qemu_path)
        for m in host.machines:
            w.leaf("machine", {"maxCpus": m.cpu_max}, m.name)
            if m.alias:
                w.leaf("machine", {"canonical": m.name, "maxCpus": m.cpu_max}, m.alias)
        if host.tcg:
            w.leaf("domain", {"type": "qemu"})
        if host.kvm.usable:
            w.leaf("domain", {"type": "kvm"})
        w.close("arch")
        w.open("features")
        w.leaf("acpi", {"default": "on", "toggle": "yes"})
        w.leaf("apic", {"default": "on", "toggle": "no"})
        w.leaf("cpuselection")
        w.leaf("deviceboot")
        w.leaf("disksnapshot", {"default": "on", "toggle": "no"})
        w.close("features")
        w.close("guest")
        w.blank()
    w.close("capabilities")
    return w.text()


def cpu_model_vendor(name: str) -> str:
    """The CPU vendor a QEMU model imitates ('unknown' for the generic ones)."""
    n = name.lower()
    if re.match(r"(qemu|kvm)(32|64)|486|base", n):
        return "unknown"
    if re.match(r"(epyc|opteron|phenom|athlon)", n):
        return "AMD"
    if n.startswith("dhyana"):
        return "Hygon"
    return "Intel"


def domcapabilities_xml(host: HostInfo, machine: str | None = None, domtype: str | None = None) -> str:
    """``virsh domcapabilities`` for what vsh's argv builder supports on this host."""
    if not host.qemu_path:
        raise Unsupported("no %s found on this host" % QEMU_NAME)
    domtype = domtype or default_domain_type(host)
    if domtype == "kvm" and not host.kvm.usable:
        raise Unsupported("KVM is not usable on this host: %s" % (host.kvm.reason or "no /dev/kvm"),
                          hint="use --virttype qemu")
    if domtype not in ("kvm", "qemu"):
        raise InvalidArgument("unknown virttype '%s' (kvm or qemu)" % domtype)
    mt = host.machine(machine or DEFAULT_MACHINE)
    if mt is None:
        raise InvalidArgument("machine type '%s' is not supported by %s" % (machine, host.qemu_path))
    is_q35 = "q35" in mt.name
    is_microvm = mt.name == "microvm"
    w = XmlWriter()
    w.open("domainCapabilities")
    w.leaf("path", text=host.qemu_path)
    w.leaf("domain", text=domtype)
    w.leaf("machine", text=mt.name)
    w.leaf("arch", text="x86_64")
    w.leaf("vcpu", {"max": mt.cpu_max})
    w.leaf("iothreads", {"supported": "yes"})
    w.open("os", {"supported": "yes"})
    w.enum("firmware", [])
    w.open("loader", {"supported": "yes"})
    w.enum("type", ["rom"])
    w.enum("readonly", ["yes"])
    w.enum("secure", ["no"])
    w.close("loader")
    w.close("os")
    w.open("cpu")
    host_cpu = domtype == "kvm" and host.kvm.host_cpu_usable
    if host_cpu:
        w.open("mode", {"name": "host-passthrough", "supported": "yes"})
        w.enum("hostPassthroughMigratable", ["off"])
        w.close("mode")
    else:
        w.leaf("mode", {"name": "host-passthrough", "supported": "no"})
    w.open("mode", {"name": "maximum", "supported": "yes"})
    w.enum("maximumMigratable", ["off"])
    w.close("mode")
    w.leaf("mode", {"name": "host-model", "supported": "yes" if host_cpu else "no"})
    models = [c for c in host.cpu_models if c.name not in ("host", "max", "base")]
    if models:
        w.open("mode", {"name": "custom", "supported": "yes"})
        for c in models:
            # usability was measured under TCG; under KVM QEMU decides at start
            attrs = {"usable": "yes" if c.usable else ("unknown" if domtype == "kvm" else "no")}
            if c.deprecated:
                attrs["deprecated"] = "yes"
            attrs["vendor"] = cpu_model_vendor(c.name)
            w.leaf("model", attrs, c.name)
        w.close("mode")
    else:
        w.leaf("mode", {"name": "custom", "supported": "no"})
    w.close("cpu")
    w.open("memoryBacking", {"supported": "yes"})
    w.enum("sourceType", ["anonymous"])
    w.close("memoryBacking")
    w.open("devices")
    w.open("disk", {"supported": "yes"})
    w.enum("diskDevice", ["disk", "cdrom"])
    buses = ["virtio"] if is_microvm else (["scsi", "virtio", "sata"] + ([] if is_q35 else ["ide"]))
    w.enum("bus", sorted(buses))
    w.enum("model", ["virtio"])
    w.close("disk")
    w.open("graphics", {"supported": "yes"})
    w.enum("type", ["vnc"])
    w.close("graphics")
    w.open("video", {"supported": "yes"})
    w.enum("modelType", ["none"] if is_microvm else ["bochs", "none", "vga", "virtio"])
    w.close("video")
    if is_microvm or not host.iommu_groups:
        w.leaf("hostdev", {"supported": "no"})
    else:
        w.open("hostdev", {"supported": "yes"})
        w.enum("mode", ["subsystem"])
        w.enum("startupPolicy", [])
        w.enum("subsysType", ["pci"])
        w.enum("capsType", [])
        w.enum("pciBackend", ["vfio"])
        w.close("hostdev")
    w.open("rng", {"supported": "yes"})
    w.enum("model", ["virtio"])
    w.enum("backendModel", ["builtin", "random"])
    w.close("rng")
    w.close("devices")
    w.open("features")
    w.leaf("gic", {"supported": "no"})
    w.leaf("vmcoreinfo", {"supported": "no"})
    w.leaf("genid", {"supported": "no"})
    w.leaf("backingStoreInput", {"supported": "yes"})
    w.leaf("backup", {"supported": "no"})
    w.leaf("sev", {"supported": "no"})
    w.close("features")
    w.close("domainCapabilities")
    return w.text()
