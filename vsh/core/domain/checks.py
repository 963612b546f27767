"""What libvirt does to a domain definition on define: the defaults it fills in and the
semantic checks it makes (with precise messages); domain names and cpusets."""

from __future__ import annotations

from vsh.core.domain.devices import default_bus
from vsh.core.domain.implicit import disk_index
from vsh.core.errors import InvalidArgument, Unsupported, XMLError
from vsh.core.names import control_message, has_control, is_mac, is_uuid, normal_uuid, random_mac, random_uuid


def fill_defaults(dom, default_devices: bool = True) -> None:
    """What libvirt adds on define: uuid, KiB units, currentMemory, placement, actions, MACs."""
    if not dom.uuid:
        dom.uuid = random_uuid()
    elif is_uuid(dom.uuid):  # libvirt keeps the 16 bytes it parsed and writes them back its own way
        dom.uuid = normal_uuid(dom.uuid)
    for prop in ("memory", "current_memory", "max_memory"):
        value = getattr(dom, prop)
        if value is not None:
            slots = dom.max_memory_slots if prop == "max_memory" else None
            setattr(dom, prop, value)
            if slots is not None:
                dom.max_memory_slots = slots
    numa_memory(dom)
    if dom.memory is not None and dom.current_memory is None:
        mem = dom.node.find("./memory")
        from vsh.core.lxmlload import etree

        cur = etree.Element("currentMemory", unit="KiB")
        cur.text = str(dom.memory)
        mem.addnext(cur)
    if dom.node.find("./vcpu") is None:
        dom.vcpus = 1
    if dom.vcpu_placement is None:
        dom.vcpu_placement = "static"
    if dom.os_type is None:
        dom.os_type = "hvm"
    if dom.os_arch is None:
        dom.os_arch = "x86_64"
        t = dom.node.find("./os/type")
        if t is not None and t.get("machine") is not None:    # libvirt's order: arch, then machine
            machine = t.attrib.pop("machine")
            t.set("machine", machine)
    if dom.node.find("./clock") is None:     # libvirt always writes the clock (UTC unless told)
        from vsh.core.lxmlload import etree

        from vsh.core.xmlobject import insert_ordered

        insert_ordered(dom.node, etree.Element("clock", offset="utc"))
    for key, default in (("on_poweroff", "destroy"), ("on_reboot", "restart"), ("on_crash", "destroy")):
        if getattr(dom, key) is None:
            setattr(dom, key, default)
    for disk in dom.disks:
        if disk.type is None:
            disk.type = "file"
        if disk.device is None:
            disk.device = "disk"
        if disk.target_dev and not disk.target_bus:
            disk.target_bus = default_bus(disk.target_dev, disk.device)
    for nic in dom.interfaces:
        if not nic.mac:
            nic.mac = random_mac()
    from vsh.core.domain.implicit import fill_implicit

    fill_implicit(dom, default_devices)


def numa_memory(dom) -> None:
    """Guest NUMA cells: each cell's memory in KiB, and <memory> their sum (libvirt's rule);
    <currentMemory> no higher than that."""
    cells = dom.node.findall("./cpu/numa/cell")
    if not cells or any(c.get("memory") is None for c in cells):
        return
    from vsh.core.units import scale_for_unit

    total = 0
    for cell in cells:
        scale = scale_for_unit(cell.get("unit") or "KiB")
        text = cell.get("memory").strip()
        if scale is None or not text.isdigit():
            raise InvalidArgument(f"invalid argument: invalid memory '{text}' unit '{cell.get('unit')}' "
                                  f"of NUMA cell {cell.get('id')}")
        kib = -(-int(text) * scale // 1024)
        cell.set("memory", str(kib))
        cell.set("unit", "KiB")
        total += kib
    dom.memory = total
    if dom.current_memory is not None and dom.current_memory > total:
        dom.current_memory = total


def validate(dom) -> None:
    """Semantic checks with precise messages."""
    name = dom.name
    if name is None:
        raise XMLError("missing name information")
    check_name(name)
    if dom.uuid is not None and not is_uuid(dom.uuid):
        raise XMLError(f"malformed uuid element: '{dom.uuid}'")
    if dom.type is None:
        raise XMLError("missing domain type attribute (expected type='kvm' or type='qemu')")
    if dom.type not in ("kvm", "qemu"):
        raise XMLError(f"unsupported domain type '{dom.type}': vsh runs type='kvm' and type='qemu'")
    memory = dom.memory
    if memory is None:
        raise XMLError("missing memory element: a domain needs <memory>")
    if memory == 0:
        raise XMLError("memory size must be greater than zero")
    current = dom.current_memory
    if current is not None and current > memory:
        raise XMLError(f"currentMemory ({current} KiB) cannot be larger than memory ({memory} KiB)")
    maxmem = dom.max_memory
    if maxmem is not None and maxmem < memory:
        raise XMLError(f"maxMemory ({maxmem} KiB) cannot be smaller than memory ({memory} KiB)")
    vcpus = dom.vcpus
    if vcpus is not None and vcpus < 1:
        raise XMLError("vcpu count must be at least 1")
    cur = dom.vcpu_current
    if cur is not None and vcpus is not None and cur > vcpus:
        raise XMLError(f"current vcpus ({cur}) cannot exceed maximum vcpus ({vcpus})")
    if cur is not None and cur < 1:
        raise XMLError("current vcpu count must be at least 1")
    topo = [dom.cpu_sockets, dom.cpu_cores, dom.cpu_threads]
    if all(t is not None for t in topo) and vcpus is not None:
        product = topo[0] * topo[1] * topo[2] * (dom.cpu_dies or 1)
        if product != vcpus:
            raise XMLError(f"CPU topology doesn't match maximum vcpu count ({product} != {vcpus})")
    for key in ("on_poweroff", "on_reboot", "on_crash"):
        value = getattr(dom, key)
        if value is not None and value not in dom.LIFECYCLE_ACTIONS:
            raise XMLError(f"invalid {key} action '{value}'")
    targets: dict[str, int] = {}
    for disk in dom.disks:
        dev = disk.target_dev
        if not dev:
            raise XMLError("missing disk target (<target dev='...'/>)")
        if dev in targets:
            raise XMLError(f"target '{dev}' duplicated for disk sources")
        targets[dev] = 1
        if disk.device not in (None, "disk", "cdrom", "floppy", "lun"):
            raise XMLError(f"unknown disk device '{disk.device}'")
        if disk.node.find("address") is None and disk_index(dev) is None:
            raise XMLError(f"XML error: Unknown disk name '{dev}' and no address specified")
        check_disk_driver(disk.node.find("driver"))
    check_cpusets(dom)
    check_sysinfo(dom)
    check_uefi_acpi(dom)
    macs: dict[str, int] = {}
    for nic in dom.interfaces:
        mac = nic.mac
        if mac:
            if not is_mac(mac):
                raise XMLError(f"unable to parse mac address '{mac}'")
            if int(mac.split(":")[0], 16) & 1:
                raise XMLError(f"expected unicast mac address, found multicast '{mac}'")
            if mac.lower() in macs:
                raise XMLError(f"duplicate MAC address {mac}")
            macs[mac.lower()] = 1
    if dom.node.find("./metadata") is not None:
        from vsh.core.portfwd import forwards

        forwards(dom.node)  # vsh's user-mode port forwards, if any, must be well-formed


#: the values libvirt takes for a disk's <driver> attributes ("default" only for cache)
DISK_DRIVER_VALUES = {
    "cache": ("default", "none", "writethrough", "writeback", "directsync", "unsafe"),
    "error_policy": ("stop", "report", "ignore", "enospace"),
    "rerror_policy": ("stop", "report", "ignore", "enospace"),
    "io": ("native", "threads", "io_uring"),
    "discard": ("unmap", "ignore"),
    "detect_zeroes": ("off", "on", "unmap"),
}


def check_disk_driver(driver) -> None:
    """A disk's ``<driver>`` attributes as libvirt parses them at define."""
    if driver is None:
        return
    for attr, values in DISK_DRIVER_VALUES.items():
        value = driver.get(attr)
        if value is not None and value not in values:
            raise XMLError(f"XML error: Invalid value for attribute '{attr}' in element 'driver': '{value}'.")
    if driver.get("rerror_policy") == "enospace":
        raise Unsupported("unsupported configuration: Invalid disk read error policy: 'enospace'")


def check_uefi_acpi(dom) -> None:
    """UEFI (firmware='efi' or a pflash loader) on x86 needs <features><acpi/>, as libvirt checks."""
    uefi = dom.node.find("os[@firmware='efi']") is not None or dom.node.find("os/loader[@type='pflash']") is not None
    if uefi and dom.node.find("features/acpi") is None and (dom.os_arch or "x86_64") in ("x86_64", "i686"):
        raise Unsupported("unsupported configuration: UEFI requires ACPI on this architecture")


def check_name(name: str) -> None:
    """Domain names become paths and reach terminals: refuse what could escape or confuse
    (the characters are :func:`vsh.core.names.has_control`'s rule, shared by every name)."""
    if name is None or name == "":
        raise InvalidArgument("domain name must not be empty")
    if has_control(name):
        raise InvalidArgument(control_message("name", name))
    if "/" in name:
        raise InvalidArgument(f"name '{name}' cannot contain '/'")
    if name.startswith("."):
        raise InvalidArgument(f"name '{name}' cannot start with '.'")
    if len(name.encode("utf-8")) > 255:
        raise InvalidArgument(f"name is too long ({len(name.encode('utf-8'))} bytes; the limit is 255)")
    if name.strip() != name and not name.strip():
        raise InvalidArgument("domain name must not be blank")


def parse_cpuset(text: str) -> set[int]:
    """libvirt's cpuset syntax: ``0-3,^2,8`` (libvirt's error for anything else)."""
    cpus: set[int] = set()
    excluded: set[int] = set()
    bad = InvalidArgument(f"invalid argument: Failed to parse bitmap '{text}'")
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise bad
        target = cpus
        if part.startswith("^"):
            target, part = excluded, part[1:]
        lo, dash, hi = part.partition("-")
        if not lo.strip().isdigit() or (dash and not hi.strip().isdigit()):
            raise bad
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            raise bad
        target.update(range(first, last + 1))
    return cpus - excluded


def format_cpuset(cpus) -> str:
    """libvirt's bitmap text of a set of numbers: ``0-3,6`` (ranges of neighbours)."""
    cpus = sorted(set(cpus))
    parts = []
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        parts.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(parts)


#: Where a domain names host CPU or NUMA node sets (libvirt parses each as a bitmap on define).
CPUSET_PATHS = ("./vcpu/@cpuset", "./cputune/vcpupin/@cpuset", "./cputune/emulatorpin/@cpuset",
                "./cputune/iothreadpin/@cpuset", "./numatune/memory/@nodeset", "./numatune/memnode/@nodeset",
                "./cpu/numa/cell/@cpus")


def check_cpusets(dom) -> None:
    """Each cpuset and nodeset must parse, as libvirt's virBitmapParse demands."""
    for path in CPUSET_PATHS:
        for value in dom.node.xpath(path):
            parse_cpuset(str(value))


def check_sysinfo(dom) -> None:
    """<sysinfo type='smbios'><bios><entry name='date'>: mm/dd/yy or mm/dd/yyyy (libvirt's check)."""
    import re

    for date in dom.node.xpath("./sysinfo/bios/entry[@name='date']"):
        text = (date.text or "").strip()
        m = re.fullmatch(r"([+-]?\d+)/([+-]?\d+)/([+-]?\d+)", text)
        if m is None or not 1 <= int(m.group(1)) <= 12 or not 1 <= int(m.group(2)) <= 31 \
                or int(m.group(3)) < 0 or 100 <= int(m.group(3)) < 1900:
            raise XMLError("XML error: Invalid BIOS 'date' format")
