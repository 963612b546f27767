"""PCI addresses on a q35 machine, planned as libvirt's qemu driver plans them on define
(qemu_domain_address.c over domain_addr.c).

The machine's buses are the ``<controller type='pci'>`` elements: the ``pcie-root`` (index 0)
and each root port, bridge or switch port (index N, bus N).  Every bus accepts some kinds of
connection: the root bus takes root ports, DMI bridges and integrated devices but nothing
auto-placed; a ``pcie-root-port`` has one slot for one PCIe device; a ``pcie-to-pci-bridge``
(or ``pci-bridge``) has slots 1-31 for conventional PCI devices.  Each device has the kind it
needs (virtio devices, xHCI, e1000e and bochs are PCIe; other NICs, sound cards, UHCI/EHCI,
qxl/cirrus/vga, i6300esb are conventional PCI).

Two passes, as libvirt runs them:

1. a dry run places every device without an address on the first compatible free slot, and
   where none is left adds a bus: a new ``pcie-root-port`` for a PCIe device, a root port with
   a ``pcie-to-pci-bridge`` behind it for the first conventional PCI device.  A definition
   whose only PCI controller was the root gets one spare root port more (for hot-plug).  The
   buses added become controllers in the definition.
2. the real run places, in libvirt's order, the PCI controllers (root ports share slots as
   functions 0-7, from 00:01.0, or 00:02.0 after the primary video), then filesystems, NICs,
   sound cards, the other controllers, virtio disks, host devices, the balloon, RNGs,
   watchdogs, videos, virtio inputs, PCI serial ports, vsock and pvpanic.

The chipset's own places come first (SATA at 00:1f.2, the primary video at 00:01.0, ICH9
USB2 at 00:1d, the DMI bridge at 00:1e, ICH9 audio at 00:1b), and every address the XML
gives is kept.  Then root ports get their ``<model name>`` and ``<target chassis port>``, and
function 0 of a slot with more functions in use gets ``multifunction='on'``."""

from __future__ import annotations

from vsh.core.errors import VshError, XMLError
from vsh.kvm.argv.options import given

# Connection kinds: what a device needs, what a bus accepts.
PCI_DEV, PCIE_DEV, ROOT_PORT, UPSTREAM, DOWNSTREAM, DMI, PCIE_PCI, PXB, PXB_PCIE, BRIDGE = (1 << i for i in range(10))
TYPES = (1 << 10) - 1
ENDPOINT = PCI_DEV | PCIE_DEV
AUTO, HOTPLUG, AGGREGATE, INTEGRATED = 1 << 10, 1 << 11, 1 << 12, 1 << 13

PCI_FLAGS = PCI_DEV | AUTO
PCIE_FLAGS = PCIE_DEV | AUTO

#: Bus model -> (what it accepts, lowest slot, highest slot).
BUS_MODELS = {
    "pci-root": (AUTO | PCI_DEV | BRIDGE | PXB | HOTPLUG, 1, 31),
    "pcie-root": (PCIE_DEV | ROOT_PORT | DMI | PXB_PCIE, 1, 31),
    "pci-bridge": (AUTO | PCI_DEV | BRIDGE | HOTPLUG, 1, 31),
    "pci-expander-bus": (AUTO | PCI_DEV | BRIDGE | HOTPLUG, 0, 31),
    "dmi-to-pci-bridge": (PCI_DEV | BRIDGE, 0, 31),
    "pcie-to-pci-bridge": (AUTO | PCI_DEV | BRIDGE | HOTPLUG, 1, 31),
    "pcie-root-port": (AUTO | PCIE_DEV | UPSTREAM | PCIE_PCI | HOTPLUG, 0, 0),
    "pcie-switch-downstream-port": (AUTO | PCIE_DEV | UPSTREAM | PCIE_PCI | HOTPLUG, 0, 0),
    "pcie-switch-upstream-port": (DOWNSTREAM, 0, 31),
    "pcie-expander-bus": (ROOT_PORT | DMI, 0, 31),
}

#: Controller model -> the connection it needs upstream.
CONTROLLER_NEEDS = {"pcie-root-port": ROOT_PORT | AGGREGATE, "pci-bridge": BRIDGE, "dmi-to-pci-bridge": DMI,
                    "pcie-to-pci-bridge": PCIE_PCI, "pcie-switch-upstream-port": UPSTREAM,
                    "pcie-switch-downstream-port": DOWNSTREAM, "pci-expander-bus": PXB, "pcie-expander-bus": PXB_PCIE}

#: Controller model -> the QEMU device libvirt names in <model name>.
MODEL_NAMES = {"pci-bridge": "pci-bridge", "dmi-to-pci-bridge": "i82801b11-bridge",
               "pcie-to-pci-bridge": "pcie-pci-bridge", "pcie-root-port": "pcie-root-port",
               "pcie-switch-upstream-port": "x3130-upstream", "pcie-switch-downstream-port": "xio3130-downstream",
               "pci-expander-bus": "pxb", "pcie-expander-bus": "pxb-pcie"}

USB2 = {"ich9-ehci1": (7, False), "ich9-uhci1": (0, True), "ich9-uhci2": (1, False), "ich9-uhci3": (2, False)}
USB_PCIE = ("qemu-xhci", "nec-xhci")
USB_PCI = ("piix3-uhci", "piix4-uhci", "ehci", "ich9-ehci1", "ich9-uhci1", "ich9-uhci2", "ich9-uhci3",
           "vt82c686b-uhci", "pci-ohci")
NO_VIDEO_SLOT = ("none", "ramfb")


def needs(el) -> int:
    """The connection a device needs (0: it is no PCI device), libvirt's
    qemuDomainDeviceCalculatePCIConnectFlags on a q35 machine."""
    tag, model = el.kind, el.virtio_model
    transitional = (model or (el.model if tag == "interface" else None) or "").endswith("virtio-transitional")
    virtio = PCI_FLAGS if transitional else PCIE_FLAGS
    if tag == "controller":
        t = el.type
        if t == "pci":
            return CONTROLLER_NEEDS.get(model or "", 0)
        if t in ("sata", "ide"):
            return PCI_FLAGS
        if t == "usb":
            return PCIE_FLAGS if model in USB_PCIE else PCI_FLAGS if model in USB_PCI or model is None else 0
        if t == "scsi":
            if model in (None, "virtio-scsi", "virtio-non-transitional"):
                return PCIE_FLAGS
            return 0 if model == "ncr53c90" else PCI_FLAGS
        if t == "virtio-serial":
            return virtio
        return 0
    if tag == "filesystem":
        return virtio if el.driver_type in (None, "path", "handle", "virtiofs") else 0
    if tag == "interface":
        if el.type == "hostdev":
            return 0
        m = given(el.model, "virtio")
        if m in ("virtio", "virtio-non-transitional"):
            return PCIE_FLAGS
        if m == "usb-net":
            return 0
        return PCIE_FLAGS if m in ("e1000e", "igb") else PCI_FLAGS
    if tag == "sound":
        return PCI_FLAGS if model in ("es1370", "ac97", "ich6", "ich9") else 0
    if tag == "disk":
        bus = el.target_bus or ("virtio" if (el.target_dev or "").startswith("vd") else None)
        return virtio if bus == "virtio" else 0
    if tag == "hostdev":
        return PCIE_FLAGS if el.type in ("pci", "scsi_host", "mdev") else 0
    if tag in ("memballoon", "rng"):
        return virtio if model not in ("none", "xen") else 0
    if tag == "watchdog":
        return PCI_FLAGS if model == "i6300esb" else 0
    if tag == "video":
        vm = given(el.model, "vga")
        return virtio if vm == "virtio" else PCIE_FLAGS if vm == "bochs" else 0 if vm in NO_VIDEO_SLOT else PCI_FLAGS
    if tag == "shmem":
        return PCI_FLAGS
    if tag == "input":
        return virtio if el.bus == "virtio" else 0
    if tag == "serial":
        return PCI_FLAGS if el.target_type == "pci-serial" else 0
    if tag == "vsock":
        return virtio
    if tag == "panic":
        return PCI_FLAGS | INTEGRATED if model == "pvpanic" else 0
    if tag == "iommu":
        return PCIE_FLAGS | INTEGRATED if model == "virtio" else 0
    if tag == "memory":
        return virtio if model in ("virtio-pmem", "virtio-mem") else 0
    if tag == "crypto":
        return PCI_FLAGS
    return 0


#: The kind of connection a device needs, named as libvirt names it in its errors.
KIND_NAMES = ((PCI_DEV, "standard PCI device"), (PCIE_DEV, "PCI Express device"), (ROOT_PORT, "pcie-root-port"),
              (UPSTREAM, "pcie-switch-upstream-port"), (DOWNSTREAM, "pcie-switch-downstream-port"),
              (DMI, "dmi-to-pci-bridge"), (PCIE_PCI, "pcie-to-pci-bridge"), (PXB, "pci-expander-bus"),
              (PXB_PCIE, "pcie-expander-bus"), (BRIDGE, "pci-bridge"))


def _fail(from_config: bool, text: str) -> None:
    """libvirt's error for an address: an XML error when the XML gave it, else an internal one."""
    if from_config:
        raise XMLError("XML error: " + text)
    raise VshError("internal error: " + text)


class Bus:
    def __init__(self, model: str):
        self.model = model
        self.flags, self.lo, self.hi = BUS_MODELS[model]
        self.functions: dict[int, int] = {}
        self.aggregate: set[int] = set()

    def empty(self) -> bool:
        return not any(self.functions.get(s) for s in range(self.lo, self.hi + 1))


class AddressSet:
    """libvirt's virDomainPCIAddressSet: the buses, the functions in use, and (in a dry run) growth."""

    def __init__(self, models: list[str], dry: bool):
        self.buses = [Bus(m) for m in models]
        self.dry = dry

    def grow(self, bus: int, flags: int) -> int:
        """Add buses up to ``bus`` for a device needing ``flags``; returns the device's bus."""
        add = bus - len(self.buses) + 1
        if add <= 0:
            return bus
        new: list[Bus] = []
        if flags & PCI_DEV:
            model = "pci-bridge"
            if add == 1 and not any(b.flags & BRIDGE for b in self.buses):
                port = Bus("pcie-root-port")
                port.flags = PCIE_PCI        # only the bridge goes there, not the spare's dummy
                new += [port, Bus("pcie-to-pci-bridge")]
                add, bus = 0, bus + 1
        elif flags & (PCIE_DEV | UPSTREAM):
            model = "pcie-root-port"
        else:
            raise VshError("internal error: a PCI slot is needed to connect a PCI controller, but none is "
                           "available, and it cannot be automatically added")
        new += [Bus(model) for _ in range(add)]
        self.buses += new
        return bus

    @staticmethod
    def compatible(bus: int, bus_flags: int, dev: int, from_config: bool) -> bool:
        if dev & INTEGRATED:
            if bus != 0:
                return False
            bus_flags |= AUTO
        if from_config:
            if bus_flags & ENDPOINT:
                bus_flags |= ENDPOINT
            if dev & BRIDGE:
                dev |= PCI_DEV
        elif dev & AUTO and not bus_flags & AUTO:
            return False
        return bool(dev & bus_flags & TYPES)

    def validate(self, addr: tuple[int, int, int], dev: int, from_config: bool) -> None:
        """libvirt's virDomainPCIAddressValidate, with its messages."""
        bus, slot, fn = addr
        text = "0000:%02x:%02x.%d" % addr
        if bus >= len(self.buses):
            _fail(from_config, "Invalid PCI address %s. Only PCI buses up to %d are available"
                  % (text, len(self.buses) - 1))
        b = self.buses[bus]
        if dev & INTEGRATED and bus != 0:
            _fail(from_config, "The device at PCI address %s needs to be an integrated device (bus=0)" % text)
        if not self.compatible(bus, b.flags, dev, from_config):
            kind = next((name for flag, name in KIND_NAMES if dev & flag), "device")
            _fail(from_config, "The device at PCI address %s cannot be plugged into the PCI controller with "
                               "index='%d'. It requires a controller that accepts a %s." % (text, bus, kind))
        if slot < b.lo:
            _fail(from_config, "Invalid PCI address %s. slot must be >= %d" % (text, b.lo))
        if slot > b.hi:
            _fail(from_config, "Invalid PCI address %s. slot must be <= %d" % (text, b.hi))

    def reserve(self, addr: tuple[int, int, int], dev: int, from_config: bool = True) -> None:
        bus, slot, fn = addr
        if self.dry:
            bus = self.grow(bus, dev)
            addr = (bus, slot, fn)
        self.validate(addr, dev, from_config)
        b = self.buses[bus]
        used = b.functions.get(slot, 0)
        if used & (1 << fn):
            _fail(from_config, "Attempted double use of PCI Address 0000:%02x:%02x.%d" % addr)
        if not used and dev & AGGREGATE:
            b.aggregate.add(slot)
        b.functions[slot] = used | (1 << fn)

    def slot_in_use(self, bus: int, slot: int) -> bool:
        return bool(self.buses[bus].functions.get(slot))

    def _free_on(self, n: int, dev: int, function: int) -> tuple[int, int, int] | None:
        b = self.buses[n]
        if not self.compatible(n, b.flags, dev, False):
            return None
        fn0 = max(function, 0)
        for slot in range(b.lo, b.hi + 1):
            used = b.functions.get(slot, 0)
            if not used:
                return n, slot, fn0
            if dev & AGGREGATE and slot in b.aggregate:
                if not used & (1 << fn0):
                    return n, slot, fn0
                if function == -1:
                    for fn in range(8):
                        if not used & (1 << fn):
                            return n, slot, fn
        return None

    def reserve_next(self, dev: int, function: int = -1) -> tuple[int, int, int]:
        found = None
        for n in range(len(self.buses)):
            found = self._free_on(n, dev, function)
            if found:
                break
        if found is None:
            if not self.dry:
                raise VshError("internal error: No more available PCI slots")
            bus = self.grow(len(self.buses), dev)
            found = (bus, self.buses[bus].lo, max(function, 0))
        self.reserve(found, dev, from_config=False)
        return found
