"""The q35 placement define writes: libvirt's two passes over a domain's ``<devices>`` (see
``vsh.kvm.argv.pcie`` for the buses and the rules)."""

from __future__ import annotations

from vsh.core.domain import Controller
from vsh.core.errors import InvalidArgument, Unsupported, VshError, XMLError
from vsh.kvm.argv.pcie import (CONTROLLER_NEEDS, MODEL_NAMES, NO_VIDEO_SLOT, PCI_DEV, PCIE_DEV, PCIE_FLAGS, USB2,
                               AddressSet, needs)

ROOTS = ("pci-root", "pcie-root")


def _num(value: str | None, what: str) -> int:
    try:
        return int(value or "0", 0)
    except ValueError:
        raise InvalidArgument("%s: invalid PCI address value '%s'" % (what, value)) from None


def present(el) -> tuple[int, int, int] | None:
    """The PCI address a device gives (None for none, another type, or an empty one)."""
    a = el.address
    if a is None or a.type != "pci":
        return None
    what = el.describe()
    domain = _num(a.domain, what)
    addr = (_num(a.bus, what), _num(a.slot, what), _num(a.function, what))
    if domain != 0:
        raise XMLError("XML error: Invalid PCI address %04x:%02x:%02x.%d. Only PCI domain 0 is available"
                       % (domain, *addr))
    if addr == (0, 0, 0):
        return None
    if not (0 <= addr[0] < 256 and 0 <= addr[1] < 32 and 0 <= addr[2] < 8):
        raise InvalidArgument("%s: PCI address 0000:%02x:%02x.%x is out of range" % (what, *addr))
    return addr


def wanted(el) -> bool:
    a = el.address
    return a is None or (a.type == "pci" and present(el) is None)


def set_addr(el, addr: tuple[int, int, int], multi: bool = False) -> None:
    el.set_address(type="pci", domain="0x0000", bus="0x%02x" % addr[0], slot="0x%02x" % addr[1],
                   function="0x%x" % addr[2], multifunction="on" if multi else None)


def _index(el) -> int:
    return _num(el.raw("index"), el.describe())


def _pci_controllers(dom) -> list:
    return [c for c in dom.devices("controller") if c.type == "pci"]


def _models(dom, nbuses: int) -> list[str]:
    models: list[str | None] = [None] * nbuses
    for c in _pci_controllers(dom):
        idx = _index(c)
        models[idx] = c.model or ("pcie-root" if idx == 0 else "pcie-root-port")
    return [m or ("pci-root" if i == 0 else "pcie-root-port") for i, m in enumerate(models)]


def collect(dom, aset: AddressSet) -> None:
    """Take the addresses the definition gives."""
    for el in dom.devices():
        a = present(el)
        if a is not None:
            aset.reserve(a, needs(el) or PCI_DEV)


def chipset(dom, aset: AddressSet) -> None:
    """q35's own places (libvirt's qemuDomainValidateDevicePCISlotsQ35)."""
    for c in dom.devices("controller"):
        t, model = c.type, c.model
        if t == "sata" and _index(c) == 0:
            a = present(c)
            if a is not None and a != (0, 0x1F, 2):
                raise VshError("internal error: Primary SATA controller must have PCI address 0:0:1f.2")
            if a is None:
                set_addr(c, (0, 0x1F, 2))
        elif (t == "usb" and model == "ich9-uhci1") or (t == "pci" and model == "dmi-to-pci-bridge"):
            if c.address is not None:
                continue
            uhci = t == "usb"
            for slot in ((0x1D, 0x1A) if uhci else (0x1E,)):
                if not aset.slot_in_use(0, slot):
                    aset.reserve((0, slot, 0), PCIE_DEV)
                    set_addr(c, (0, slot, 0), multi=uhci)
                    break
    aset.reserve((0, 0x1F, 0), PCIE_DEV)      # the LPC bridge
    aset.reserve((0, 0x1F, 3), PCIE_DEV)      # the SMBus
    videos = dom.devices("video")
    if videos and (not videos[0].has_model or videos[0].model not in NO_VIDEO_SLOT) and wanted(videos[0]):
        if aset.slot_in_use(0, 1):
            a = aset.reserve_next(needs(videos[0]))
            if not aset.dry:
                set_addr(videos[0], a)
        else:
            aset.reserve((0, 1, 0), PCIE_DEV)
            set_addr(videos[0], (0, 1, 0))
    if not aset.slot_in_use(0, 0x1B):
        for s in dom.devices("sound"):
            if s.model == "ich9" and wanted(s):
                aset.reserve((0, 0x1B, 0), PCIE_DEV)
                set_addr(s, (0, 0x1B, 0))
                break


def _take(el, aset: AddressSet) -> None:
    flags = needs(el)
    if flags and wanted(el):
        a = aset.reserve_next(flags)
        if not aset.dry:
            set_addr(el, a)


def _usb2(dom, c, aset: AddressSet) -> None:
    fn, multi = USB2[c.model]
    idx = _index(c)
    for o in dom.devices("controller"):
        if o.type == "usb" and o.model in USB2 and _index(o) == idx and present(o) is not None:
            bus, slot, _fn = present(o)
            aset.reserve((bus, slot, fn), needs(c))
            set_addr(c, (bus, slot, fn), multi)
            return
    a = aset.reserve_next(needs(c), fn)
    if not aset.dry:
        set_addr(c, a, multi)


def assign(dom, aset: AddressSet) -> None:
    """Every device without an address, in libvirt's order (qemuDomainAssignDevicePCISlots)."""
    for c in _pci_controllers(dom):
        if c.model not in ROOTS:
            _take(c, aset)
    for tag in ("filesystem", "interface", "sound"):
        for el in dom.devices(tag):
            _take(el, aset)
    for c in dom.devices("controller"):
        t, model = c.type, c.model
        if t in ("pci", "fdc", "ccid") or (t == "usb" and model == "none") or (t == "ide" and _index(c) == 0) \
                or not wanted(c):
            continue
        if t == "usb" and model in USB2:
            _usb2(dom, c, aset)
        else:
            _take(c, aset)
    for tag in ("disk", "hostdev", "memballoon", "rng", "watchdog", "video", "shmem", "input", "serial", "iommu",
                "vsock", "memory", "crypto", "panic"):
        for el in dom.devices(tag):
            _take(el, aset)


def dry_run(dom) -> int:
    """Pass 1: the buses the devices need; adds their controllers, returns the bus count."""
    idxs = [_index(c) for c in _pci_controllers(dom)]
    max_idx = max(idxs, default=-1)
    aset = AddressSet(_models(dom, max_idx + 1), dry=True)
    collect(dom, aset)
    chipset(dom, aset)
    assign(dom, aset)
    if max_idx <= 0 and len(aset.buses) > max_idx + 1:
        aset.reserve_next(PCIE_FLAGS)
    have = set(idxs)
    i = 1
    while i < len(aset.buses):
        if i not in have:
            model = aset.buses[i].model
            dom.add_device(Controller.new(type="pci", index=i, model=model))   # after the controllers
            if model not in ROOTS:
                aset.reserve_next(CONTROLLER_NEEDS[model])
        i += 1
    return len(aset.buses)


def all_multi(dom) -> None:
    """multifunction='on' on function 0 of each slot with more functions in use (unless set)."""
    at = {}
    for el in dom.devices():
        a = present(el)
        if a is not None:
            at.setdefault(a, el)
    for (bus, slot, fn) in list(at):
        if fn:
            first = at.get((bus, slot, 0))
            if first is not None and first.address.multifunction is None:
                first.address.multifunction = "on"


#: libvirt's order of a PCI controller's <target> attributes.
TARGET_ORDER = ("chassisNr", "chassis", "port", "busNr", "index", "hotplug", "memReserve")


def controller_defaults(dom) -> None:
    """<model name> and <target> of each PCI controller, as libvirt fills them."""
    for c in _pci_controllers(dom):
        model, idx = c.model, _index(c)
        if model in ROOTS or model not in MODEL_NAMES:
            continue
        addr = present(c) or (0, 0, 0)
        values: dict[str, str] = {}
        if model == "pci-bridge":
            values["chassisNr"] = str(idx)
            if idx <= addr[0]:
                raise Unsupported("unsupported configuration: PCI controller at index %d (0x%02x) has "
                                  "bus='0x%02x', but index must be larger than bus" % (idx, idx, addr[0]))
        elif model in ("pcie-root-port", "pcie-switch-downstream-port"):
            values["chassis"] = str(idx)
            port = (addr[1] << 3) + addr[2] if model == "pcie-root-port" else addr[1]
            values["port"] = "0x%x" % port
        if not values:
            c.set_pci_target(MODEL_NAMES[model], {}, TARGET_ORDER, target=False)
            continue
        given = c.target_attrs
        for k in ("chassisNr", "chassis", "busNr", "index"):
            if k in given:
                given[k] = str(_num(given[k], c.describe() + " <target %s>" % k))
        if "port" in given:
            given["port"] = "0x%x" % _num(given["port"], c.describe() + " <target port>")
        values.update(given)
        c.set_pci_target(MODEL_NAMES[model], values, TARGET_ORDER)


def plan(dom) -> None:
    """Give every PCI device of a q35 domain its address (see the module docstring)."""
    nbuses = dry_run(dom)
    aset = AddressSet(_models(dom, nbuses), dry=False)
    collect(dom, aset)
    chipset(dom, aset)
    assign(dom, aset)
    all_multi(dom)
    controller_defaults(dom)
