"""The q35 placement define writes: libvirt's two passes over a domain's ``<devices>`` (see
``vsh.kvm.argv.pcie`` for the buses and the rules)."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, Unsupported, VshError, XMLError
from vsh.kvm.argv.pcie import (CONTROLLER_NEEDS, MODEL_NAMES, NO_VIDEO_SLOT, PCI_DEV, PCIE_DEV, PCIE_FLAGS, USB2,
                               AddressSet, needs)

ROOTS = ("pci-root", "pcie-root")


def _num(value: str | None, what: str) -> int:
    try:
        return int(value or "0", 0)
    except ValueError:
        raise InvalidArgument("%s: invalid PCI address value '%s'" % (what, value)) from None


def _what(el) -> str:
    extra = "".join(" %s='%s'" % (k, el.get(k)) for k in ("type", "index", "model") if el.get(k))
    return "<%s%s>" % (el.tag, extra)


def present(el) -> tuple[int, int, int] | None:
    """The PCI address a device element gives (None for none, another type, or an empty one)."""
    a = el.find("address")
    if a is None or a.get("type") != "pci":
        return None
    what = _what(el)
    domain = _num(a.get("domain"), what)
    addr = (_num(a.get("bus"), what), _num(a.get("slot"), what), _num(a.get("function"), what))
    if domain != 0:
        raise XMLError("XML error: Invalid PCI address %04x:%02x:%02x.%d. Only PCI domain 0 is available"
                       % (domain, *addr))
    if addr == (0, 0, 0):
        return None
    if not (0 <= addr[0] < 256 and 0 <= addr[1] < 32 and 0 <= addr[2] < 8):
        raise InvalidArgument("%s: PCI address 0000:%02x:%02x.%x is out of range" % (what, *addr))
    return addr


def wanted(el) -> bool:
    a = el.find("address")
    return a is None or (a.get("type") == "pci" and present(el) is None)


def set_addr(el, addr: tuple[int, int, int], multi: bool = False) -> None:
    from lxml import etree

    new = etree.Element("address", type="pci", domain="0x0000", bus="0x%02x" % addr[0], slot="0x%02x" % addr[1],
                        function="0x%x" % addr[2])
    if multi:
        new.set("multifunction", "on")
    old = el.find("address")
    if old is not None:
        old.addprevious(new)
        el.remove(old)
    else:
        el.append(new)


def _index(el) -> int:
    return _num(el.get("index"), _what(el))


def _pci_controllers(devs) -> list:
    return [c for c in devs.findall("controller") if c.get("type") == "pci"]


def _models(devs, nbuses: int) -> list[str]:
    models: list[str | None] = [None] * nbuses
    for c in _pci_controllers(devs):
        idx = _index(c)
        models[idx] = c.get("model") or ("pcie-root" if idx == 0 else "pcie-root-port")
    return [m or ("pci-root" if i == 0 else "pcie-root-port") for i, m in enumerate(models)]


def _devices(devs):
    return [el for el in devs if isinstance(el.tag, str)]


def collect(devs, aset: AddressSet) -> None:
    """Take the addresses the definition gives."""
    for el in _devices(devs):
        a = present(el)
        if a is not None:
            aset.reserve(a, needs(el) or PCI_DEV)


def chipset(devs, aset: AddressSet) -> None:
    """q35's own places (libvirt's qemuDomainValidateDevicePCISlotsQ35)."""
    for c in devs.findall("controller"):
        t, model = c.get("type"), c.get("model")
        if t == "sata" and _index(c) == 0:
            a = present(c)
            if a is not None and a != (0, 0x1F, 2):
                raise VshError("internal error: Primary SATA controller must have PCI address 0:0:1f.2")
            if a is None:
                set_addr(c, (0, 0x1F, 2))
        elif (t == "usb" and model == "ich9-uhci1") or (t == "pci" and model == "dmi-to-pci-bridge"):
            if c.find("address") is not None:
                continue
            uhci = t == "usb"
            for slot in ((0x1D, 0x1A) if uhci else (0x1E,)):
                if not aset.slot_in_use(0, slot):
                    aset.reserve((0, slot, 0), PCIE_DEV)
                    set_addr(c, (0, slot, 0), multi=uhci)
                    break
    aset.reserve((0, 0x1F, 0), PCIE_DEV)      # the LPC bridge
    aset.reserve((0, 0x1F, 3), PCIE_DEV)      # the SMBus
    videos = devs.findall("video")
    if videos and (videos[0].find("model") is None or videos[0].find("model").get("type") not in NO_VIDEO_SLOT) \
            and wanted(videos[0]):
        if aset.slot_in_use(0, 1):
            a = aset.reserve_next(needs(videos[0]))
            if not aset.dry:
                set_addr(videos[0], a)
        else:
            aset.reserve((0, 1, 0), PCIE_DEV)
            set_addr(videos[0], (0, 1, 0))
    if not aset.slot_in_use(0, 0x1B):
        for s in devs.findall("sound"):
            if s.get("model") == "ich9" and wanted(s):
                aset.reserve((0, 0x1B, 0), PCIE_DEV)
                set_addr(s, (0, 0x1B, 0))
                break


def _take(el, aset: AddressSet) -> None:
    flags = needs(el)
    if flags and wanted(el):
        a = aset.reserve_next(flags)
        if not aset.dry:
            set_addr(el, a)


def _usb2(devs, c, aset: AddressSet) -> None:
    fn, multi = USB2[c.get("model")]
    idx = _index(c)
    for o in devs.findall("controller[@type='usb']"):
        if o.get("model") in USB2 and _index(o) == idx and present(o) is not None:
            bus, slot, _fn = present(o)
            aset.reserve((bus, slot, fn), needs(c))
            set_addr(c, (bus, slot, fn), multi)
            return
    a = aset.reserve_next(needs(c), fn)
    if not aset.dry:
        set_addr(c, a, multi)


def assign(devs, aset: AddressSet) -> None:
    """Every device without an address, in libvirt's order (qemuDomainAssignDevicePCISlots)."""
    for c in _pci_controllers(devs):
        if c.get("model") not in ROOTS:
            _take(c, aset)
    for tag in ("filesystem", "interface", "sound"):
        for el in devs.findall(tag):
            _take(el, aset)
    for c in devs.findall("controller"):
        t, model = c.get("type"), c.get("model")
        if t in ("pci", "fdc", "ccid") or (t == "usb" and model == "none") or (t == "ide" and _index(c) == 0) \
                or not wanted(c):
            continue
        if t == "usb" and model in USB2:
            _usb2(devs, c, aset)
        else:
            _take(c, aset)
    for tag in ("disk", "hostdev", "memballoon", "rng", "watchdog", "video", "shmem", "input", "serial", "iommu",
                "vsock", "memory", "crypto", "panic"):
        for el in devs.findall(tag):
            _take(el, aset)


def _add_controller(devs, idx: int, model: str):
    from lxml import etree

    el = etree.Element("controller", type="pci", index=str(idx), model=model)
    last = devs.findall("controller")        # appended to the controllers, as libvirt appends it
    if last:
        last[-1].addnext(el)
    else:
        devs.append(el)
    return el


def dry_run(devs) -> int:
    """Pass 1: the buses the devices need; adds their controllers, returns the bus count."""
    idxs = [_index(c) for c in _pci_controllers(devs)]
    max_idx = max(idxs, default=-1)
    aset = AddressSet(_models(devs, max_idx + 1), dry=True)
    collect(devs, aset)
    chipset(devs, aset)
    assign(devs, aset)
    if max_idx <= 0 and len(aset.buses) > max_idx + 1:
        aset.reserve_next(PCIE_FLAGS)
    have = set(idxs)
    i = 1
    while i < len(aset.buses):
        if i not in have:
            model = aset.buses[i].model
            _add_controller(devs, i, model)
            if model not in ROOTS:
                aset.reserve_next(CONTROLLER_NEEDS[model])
        i += 1
    return len(aset.buses)


def all_multi(devs) -> None:
    """multifunction='on' on function 0 of each slot with more functions in use (unless set)."""
    at = {}
    for el in _devices(devs):
        a = present(el)
        if a is not None:
            at.setdefault(a, el)
    for (bus, slot, fn) in list(at):
        if fn:
            first = at.get((bus, slot, 0))
            if first is not None and first.find("address").get("multifunction") is None:
                first.find("address").set("multifunction", "on")


#: libvirt's order of a PCI controller's <target> attributes.
TARGET_ORDER = ("chassisNr", "chassis", "port", "busNr", "index", "hotplug", "memReserve")


def controller_defaults(devs) -> None:
    """<model name> and <target> of each PCI controller, as libvirt fills them."""
    from lxml import etree

    for c in _pci_controllers(devs):
        model, idx = c.get("model"), _index(c)
        if model in ROOTS or model not in MODEL_NAMES:
            continue
        m = c.find("model")
        if m is None:
            m = etree.Element("model")
            c.insert(0, m)
        if m.get("name") is None:
            m.set("name", MODEL_NAMES[model])
        addr = present(c) or (0, 0, 0)
        values: dict[str, str] = {}
        tgt = c.find("target")
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
            continue
        if tgt is None:
            tgt = etree.Element("target")
            m.addnext(tgt)
        given = dict(tgt.attrib)
        for k in ("chassisNr", "chassis", "busNr", "index"):
            if k in given:
                given[k] = str(_num(given[k], _what(c) + " <target %s>" % k))
        if "port" in given:
            given["port"] = "0x%x" % _num(given["port"], _what(c) + " <target port>")
        values.update(given)
        tgt.attrib.clear()
        for k in TARGET_ORDER:
            if k in values:
                tgt.set(k, values.pop(k))
        for k, v in values.items():
            tgt.set(k, v)


def plan(devs) -> None:
    """Give every PCI device of a q35 ``<devices>`` element its address (see the module docstring)."""
    nbuses = dry_run(devs)
    aset = AddressSet(_models(devs, nbuses), dry=False)
    collect(devs, aset)
    chipset(devs, aset)
    assign(devs, aset)
    all_multi(devs)
    controller_defaults(devs)
