"""What libvirt's qemu driver writes into a definition on define beyond the plain defaults:
the disk format (raw, never probed), controller indexes, the implicit controllers
(the PCI root, USB, the IDE/SATA/SCSI controllers disks sit on, virtio-serial for
virtio consoles and channels) and the default devices of a pc/q35 machine (a virtio
memory balloon, the chipset's PS/2 mouse and keyboard)."""

from __future__ import annotations

from vsh.core.domain.hardware import Controller

#: Controller types a disk bus implies, in the order libvirt adds them (virDomainDefAddImplicitControllers).
DISK_CONTROLLERS = ("scsi", "fdc", "ide", "sata")

#: The pcie-root-ports virt-install adds to a q35 guest with no PCI controller (virtinst's
#: num_pcie_root_ports: devices go on them, the rest are free for hot-plug).
VIRT_INSTALL_ROOT_PORTS = 14

#: Disks per controller of each bus, as libvirt counts them to give a target its drive address.
PER_CONTROLLER = {"ide": 4, "sata": 6, "scsi": 7, "fdc": 2}


def machine_family(machine: str | None) -> str:
    """pc, q35 or microvm for an ``<os><type machine>`` (vsh's default, q35, when absent)."""
    m = machine or "q35"
    if m == "q35" or m.startswith("pc-q35"):
        return "q35"
    if m == "microvm":
        return "microvm"
    return "pc" if m == "pc" or m.startswith("pc-") else "other"


def disk_index(dev: str) -> int | None:
    """libvirt's index of a disk target name ('vda' 0, 'hdc' 2, 'sdaa' 26), or None when the
    name is not one (or its index would not fit libvirt's int)."""
    import re

    m = re.fullmatch(r"(?:fd|hd|vd|sd|xvd|ubd)([a-z]+)", dev or "")
    if not m:
        return None
    idx = 0
    for i, ch in enumerate(m.group(1)):
        idx = (idx + (1 if i else 0)) * 26 + (ord(ch) - ord("a"))
        if idx > 2**31 - 1:
            return None
    return idx


def disk_controller(disk_el, bus: str) -> int:
    """The controller index a disk on ``bus`` sits on: its drive address, else its target's."""
    a = disk_el.find("address")
    if a is not None and a.get("type") == "drive":
        try:
            return int(a.get("controller") or "0", 0)
        except ValueError:
            return 0
    target = disk_el.find("target")
    idx = disk_index(target.get("dev", "") if target is not None else "")
    return (idx or 0) // PER_CONTROLLER[bus]


def fill_disk_driver(dom) -> None:
    """A disk without a format is raw (libvirt never probes); ``cache='default'`` means no cache option."""
    from vsh.core.lxmlload import etree

    for disk in dom.disks:
        drv = disk.node.find("driver")
        if disk.type == "volume":
            continue
        if drv is None:
            drv = etree.Element("driver")
            disk.node.insert(0, drv)
        if drv.get("name") is None:
            attrs = dict(drv.attrib)
            drv.attrib.clear()
            drv.set("name", "qemu")
            drv.attrib.update(attrs)
        if drv.get("type") is None:
            attrs = dict(drv.attrib)
            drv.attrib.clear()
            drv.set("name", attrs.pop("name"))
            drv.set("type", "raw")
            drv.attrib.update(attrs)
        if drv.get("cache") == "default":
            del drv.attrib["cache"]


def fill_controller_indexes(dom) -> None:
    """A controller without ``index`` gets the lowest one its type does not use yet."""
    ctrls = dom.devices("controller")
    used: dict[str, set[int]] = {}
    for c in ctrls:
        if c.node.get("index") is not None:
            try:
                used.setdefault(c.type or "", set()).add(int(c.node.get("index")))
            except ValueError:
                continue
    for c in ctrls:
        if c.node.get("index") is None:
            taken = used.setdefault(c.type or "", set())
            idx = 0
            while idx in taken:
                idx += 1
            taken.add(idx)
            attrs = dict(c.node.attrib)
            c.node.attrib.clear()
            c.node.set("type", attrs.pop("type", c.type or ""))
            c.node.set("index", str(idx))
            c.node.attrib.update(attrs)


def add_implicit_controllers(dom, as_virt_install: bool = False) -> None:
    """The controllers libvirt adds on define when the devices need them (or the machine has them),
    appended in libvirt's order: the machine's own (qemuDomainDefAddDefaultDevices: USB, q35's
    SATA, the PCI root), those the disks need type by type (SCSI, floppy, IDE, SATA), virtio-serial.
    ``as_virt_install``: in the order and with the USB ports virt-install --print-xml writes them
    (the disks' first, virtio-serial, then USB with ports='15' on q35, SATA, the PCI root and on
    q35 its 14 root ports)."""
    from vsh.core.lxmlload import etree

    family = machine_family(dom.os_machine)
    have = {(c.type, c.index) for c in dom.devices("controller")}
    want: list[tuple[str, int, dict]] = []

    def need(ctype: str, idx: int, **attrs) -> None:
        if (ctype, idx) not in have and all((t, i) != (ctype, idx) for t, i, _a in want):
            want.append((ctype, idx, attrs))

    def machine_own() -> None:
        if family in ("pc", "q35") and not any(t == "usb" for t, _i in have):
            need("usb", 0, model="piix3-uhci" if family == "pc" else "qemu-xhci",
                 **({"ports": "15"} if as_virt_install and family == "q35" else {}))
        if family == "q35":
            need("sata", 0)
        if family in ("pc", "q35"):
            need("pci", 0, model="pci-root" if family == "pc" else "pcie-root")
        if as_virt_install and family == "q35" and not any(t == "pci" for t, _i in have):
            for idx in range(1, VIRT_INSTALL_ROOT_PORTS + 1):
                need("pci", idx, model="pcie-root-port")

    def for_devices() -> None:
        if as_virt_install:
            for disk in dom.disks:
                if disk.target_bus in DISK_CONTROLLERS:
                    for idx in range(disk_controller(disk.node, disk.target_bus) + 1):
                        need(disk.target_bus, idx)
        for bus in DISK_CONTROLLERS:
            top = max((disk_controller(d.node, bus) for d in dom.disks if d.target_bus == bus), default=-1)
            for idx in range(top + 1):
                need(bus, idx)
        devs = dom.node.find("./devices")
        if devs is not None and devs.xpath("./channel[target/@type='virtio'] | ./console[target/@type='virtio']"):
            need("virtio-serial", 0)

    for step in ((for_devices, machine_own) if as_virt_install else (machine_own, for_devices)):
        step()
    for ctype, idx, attrs in want:
        dom.add_device(Controller(etree.Element("controller", type=ctype, index=str(idx), **attrs)))


def add_default_devices(dom) -> None:
    """pc and q35: the PS/2 mouse and keyboard the chipset has (unless <features><ps2 state='off'/>)
    and a virtio balloon where the XML has no <memballoon> (libvirt's qemuDomainDefAddDefaultDevices)."""
    from vsh.core.lxmlload import etree

    from vsh.core.xmlobject import insert_ordered

    if machine_family(dom.os_machine) not in ("pc", "q35"):
        return
    devs = dom.node.find("./devices")
    if devs is None:
        devs = etree.SubElement(dom.node, "devices")
        dom.node.remove(devs)
        insert_ordered(dom.node, devs)
    if dom.node.find("./features/ps2[@state='off']") is None:
        for kind in ("mouse", "keyboard"):
            if devs.find(f"./input[@type='{kind}'][@bus='ps2']") is None:
                el = etree.Element("input", type=kind, bus="ps2")
                same = devs.findall("./input")
                if same:
                    same[-1].addnext(el)
                else:
                    insert_ordered(devs, el)
    if devs.find("./memballoon") is None:
        insert_ordered(devs, etree.Element("memballoon", model="virtio"))


def fill_implicit(dom, default_devices: bool = True) -> None:
    """Everything of this module, in libvirt's order: disk formats, indexes, implicit controllers,
    default devices and the rest of libvirt's defaults on pc/q35 (postparse; left to define when
    ``default_devices`` is false: virt-install --print-xml)."""
    fill_disk_driver(dom)
    fill_controller_indexes(dom)
    add_implicit_controllers(dom, as_virt_install=not default_devices)
    if default_devices:
        add_default_devices(dom)
        if machine_family(dom.os_machine) in ("pc", "q35"):
            from vsh.core.domain.postparse import fill_postparse

            fill_postparse(dom)
