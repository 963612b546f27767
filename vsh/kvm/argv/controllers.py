"""Controllers: PCI buses and the address book, SCSI, SATA, virtio-serial and USB controllers,
those the XML declares and those its disks and consoles imply."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.disks import disk_bus, drive_address
from vsh.kvm.argv.options import number, opts


def reserve_pci(b: Builder) -> None:
    """Take the PCI addresses the XML gives before any device asks for a free slot."""
    if b.microvm:
        for dev in b.dom.devices():
            if dev.address is not None and dev.address.type == "pci":
                raise InvalidArgument("<%s>: machine 'microvm' has no PCI bus" % dev.kind)
        return
    for dev in b.dom.devices():
        b.pci.reserve(dev, "<%s>" % dev.kind)
    for c in b.dom.devices("controller"):
        if c.type != "pci":
            continue
        idx = number(c.raw("index"), "<controller type='pci'> index")
        if idx:
            b.pci.buses[idx] = "pci.%d" % idx


def controllers(b: Builder) -> None:
    """Controllers the XML declares, then the ones its devices imply."""
    declared = b.dom.devices("controller")
    pci = sorted((c for c in declared if c.type == "pci"),
                 key=lambda c: number(c.raw("index"), "<controller type='pci'> index", 0))
    for c in pci + [c for c in declared if c.type != "pci"]:
        t, model = c.type, c.model
        idx = number(c.raw("index"), "<controller type='%s'> index" % t, 0)
        what = "<controller type='%s' index='%d'>" % (t, idx)
        if t == "pci":
            pci_controller(b, c, idx, model, what)
        elif t == "scsi":
            scsi_controller(b, c, idx, model or "virtio-scsi", what)
        elif t == "sata":
            sata_controller(b, c, idx, what)
        elif t == "virtio-serial":
            vser_controller(b, c, idx, what)
        elif t == "usb":
            usb_controller(b, c, idx, model, what)
        elif t in ("ide", "fdc"):
            pass  # built into pc; checked where a disk uses it
        else:
            raise Unsupported("%s is not supported" % what)
    for ctype, idx in implied(b):
        what = "<controller type='%s' index='%d'>" % (ctype, idx)
        {"scsi": lambda: scsi_controller(b, None, idx, "virtio-scsi", what),
         "sata": lambda: sata_controller(b, None, idx, what),
         "virtio-serial": lambda: vser_controller(b, None, idx, what)}[ctype]()


def implied(b: Builder) -> list[tuple[str, int]]:
    """(type, index) of the controllers the disks, consoles and channels need and the XML does not
    declare (a definition made by define has them all: libvirt adds them)."""
    declared = set()
    for c in b.dom.devices("controller"):
        declared.add((c.type, number(c.raw("index"), "<controller type='%s'> index" % c.type, 0)))
    out: list[tuple[str, int]] = []
    for d in b.dom.disks:
        bus = disk_bus(b, d)
        if bus in ("scsi", "sata"):
            ctrl = drive_address(b, d)[0]
            if (bus, ctrl) not in declared and (bus, ctrl) not in out:
                out.append((bus, ctrl))
    if any(ch.target_type == "virtio" for ch in b.dom.devices("channel") + b.dom.devices("console")) \
            and ("virtio-serial", 0) not in declared:
        out.append(("virtio-serial", 0))
    return out


def pci_controller(b: Builder, c, idx: int, model: str | None, what: str) -> None:
    """A PCI controller: the root bus is the machine's; root ports and bridges become buses pci.N."""
    if model in ("pci-root", "pcie-root") or (idx == 0 and model is None):
        want = "pcie-root" if b.family == "q35" else "pci-root"
        if b.microvm:
            raise InvalidArgument("%s: machine 'microvm' has no PCI bus" % what)
        if model and model != want:
            raise InvalidArgument("%s: machine '%s' has a %s, not a %s" % (what, b.machine, want, model))
        return
    b.need_pci(what)
    pid = "pci.%d" % idx
    if model == "pcie-root-port":
        if b.family != "q35":
            raise InvalidArgument("%s: pcie-root-port needs machine q35" % what)
        chassis = number(c.target_chassis, what + " chassis", idx)
        where = b.pci.parse(c.address, what) or b.pci.assigned.get(c.key)
        # libvirt's default port: the root port's own slot and function
        port = number(c.target_port, what + " port", (where[1] << 3) + where[2] if where else idx)
        qdev = c.model_name
        if qdev not in (None, "pcie-root-port", "ioh3420"):
            raise Unsupported("%s: <model name='%s'> is not supported (pcie-root-port, ioh3420)" % (what, qdev))
        b.add("-device", opts(qdev or "pcie-root-port", ("port", port), ("chassis", chassis), ("id", pid),
                              *b.pci.props(c, what)))
    elif model == "pci-bridge":
        chassis = number(c.target_chassis_nr, what + " chassisNr", idx)
        b.add("-device", opts("pci-bridge", ("chassis_nr", chassis), ("id", pid), *b.pci.props(c, what)))
    elif model == "pcie-to-pci-bridge":
        b.add("-device", opts("pcie-pci-bridge", ("id", pid), *b.pci.props(c, what)))
    elif model == "dmi-to-pci-bridge":
        if b.family != "q35":
            raise InvalidArgument("%s: dmi-to-pci-bridge needs machine q35" % what)
        b.add("-device", opts("i82801b11-bridge", ("id", pid), *b.pci.props(c, what)))
    else:
        raise Unsupported("%s model '%s' is not supported (pcie-root-port, pci-bridge, pcie-to-pci-bridge, "
                          "dmi-to-pci-bridge)" % (what, model))


def scsi_controller(b: Builder, c, idx: int, model: str, what: str) -> None:
    """A virtio-scsi or LSI 53C895A (lsilogic, what define writes for a controller without a model)
    controller scsiN (declared, or implied by a SCSI disk when ``c`` is None)."""
    if model not in ("virtio-scsi", "lsilogic"):
        raise Unsupported("%s model '%s' is not supported (virtio-scsi, lsilogic)" % (what, model))
    if idx in b.scsi_ctrls:
        raise InvalidArgument("%s is declared twice" % what)
    b.scsi_ctrls[idx] = model
    if model == "lsilogic":
        b.need_pci(what)
        b.add("-device", opts("lsi", ("id", "scsi%d" % idx), *b.dev_addr(c, what)))
        return
    pairs = [("id", "scsi%d" % idx)]
    if c is not None:
        if c.driver_queues:
            pairs.append(("num_queues", number(c.driver_queues, what + " queues")))
        io = b.iothread(c.driver_iothread, what)
        if io:
            pairs.append(io)
    b.add("-device", opts(b.virtio("scsi"), *pairs,
                          *b.dev_addr(c, what, ("implicit", "scsi", idx) if c is None else None)))


def sata_controller(b: Builder, c, idx: int, what: str) -> None:
    """A SATA (AHCI) controller sataN; q35's built-in one for index 0."""
    if idx in b.sata_ctrls:
        raise InvalidArgument("%s is declared twice" % what)
    b.sata_ctrls.add(idx)
    if b.family == "q35" and idx == 0:
        return  # the ICH9 AHCI controller built into q35 (buses ide.0-ide.5)
    b.need_pci("SATA (%s)" % what)
    b.add("-device", opts("ich9-ahci", ("id", "sata%d" % idx), *b.pci.props(c, what, ("implicit", "sata", idx)
                                                                             if c is None else None)))


def vser_controller(b: Builder, c, idx: int, what: str) -> None:
    """A virtio-serial controller virtio-serialN (declared, or implied by a virtio console/channel)."""
    if idx in b.vser_ctrls:
        raise InvalidArgument("%s is declared twice" % what)
    b.vser_ctrls.add(idx)
    pairs: list[tuple[str, object]] = [("id", "virtio-serial%d" % idx)]
    if c is not None and c.ports:
        pairs.append(("max_ports", number(c.ports, what + " ports")))
    if c is not None and c.vectors and not b.microvm:
        pairs.append(("vectors", number(c.vectors, what + " vectors")))
    b.add("-device", opts(b.virtio("serial"), *pairs,
                          *b.dev_addr(c, what, ("implicit", "virtio-serial", idx) if c is None else None)))


#: libvirt's USB controller models -> QEMU's devices.
USB_MODELS = {"qemu-xhci": "qemu-xhci", "nec-xhci": "nec-usb-xhci", "piix3-uhci": "piix3-usb-uhci",
              "piix4-uhci": "piix4-usb-uhci", "ich9-ehci1": "ich9-usb-ehci1", "ich9-uhci1": "ich9-usb-uhci1",
              "ich9-uhci2": "ich9-usb-uhci2", "ich9-uhci3": "ich9-usb-uhci3", "vt82c686b-uhci": "vt82c686b-usb-uhci"}

#: The first port of each UHCI companion of an ICH9 EHCI controller.
USB_COMPANION_PORT = {"ich9-uhci1": 0, "ich9-uhci2": 2, "ich9-uhci3": 4}


def usb_controller(b: Builder, c, idx: int, model: str | None, what: str) -> None:
    """A USB controller (xHCI, EHCI with its UHCI companions, UHCI); none on microvm or model='none'."""
    if model == "none":
        return
    if b.microvm:
        if any(i.bus == "usb" for i in b.dom.devices("input")) \
                or any(h.type == "usb" for h in b.dom.devices("hostdev")):
            raise Unsupported("USB needs PCI, which machine 'microvm' does not have")
        return
    if model is None:
        model = "qemu-xhci" if b.family == "q35" else "piix3-uhci"
    qdev = USB_MODELS.get(model)
    if qdev is None:
        raise Unsupported("%s model '%s' is not supported (%s)" % (what, model, ", ".join(USB_MODELS)))
    uid = "usb" if idx == 0 else "usb%d" % idx
    companion = model in USB_COMPANION_PORT and any(
        o.type == "usb" and o.model == "ich9-ehci1" and number(o.raw("index"), what, 0) == idx
        for o in b.dom.devices("controller"))
    if companion:
        first = number(c.master_startport, what + " startport", USB_COMPANION_PORT[model])
        pairs: list[tuple[str, object]] = [("masterbus", "%s.0" % uid), ("firstport", first)]
    else:
        if idx in b.usb_ctrls:
            raise InvalidArgument("%s is declared twice" % what)
        b.usb_ctrls[idx] = uid
        pairs = [("id", uid)]
    if c.ports and "xhci" in model:
        pairs.append(("p2", number(c.ports, what + " ports")))
        pairs.append(("p3", number(c.ports, what + " ports")))
    b.add("-device", opts(qdev, *pairs, *b.pci.props(c, what)))
