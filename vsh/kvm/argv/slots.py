"""PCI addresses for the devices the XML gives none, planned as libvirt's qemu driver plans them
(qemu_domain_address.c): the chipset's own places first (pc: the USB controller at 00:01.2, the
primary video at 00:02.0; q35: the primary video at 00:01.0, USB2 at 00:1d, the DMI-to-PCI bridge
at 00:1e, ICH9 audio at 00:1b), then one slot each, from the lowest free one, in libvirt's order:
PCI controllers, filesystems, network interfaces, sound cards, the other controllers, virtio disks,
host PCI devices, the balloon, RNGs, watchdogs, further videos, virtio inputs, PCI serial ports,
pvpanic.  Everything lands on the root bus; addresses the XML gives are reserved before."""

from __future__ import annotations

from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.options import given

#: libvirt's order of controller types (its controllers are sorted by type, then index).
CONTROLLER_ORDER = ("ide", "fdc", "scsi", "sata", "virtio-serial", "ccid", "usb", "pci")

#: USB2 companion controllers: model -> (function, multifunction) in their shared slot.
USB2 = {"ich9-ehci1": (7, False), "ich9-uhci1": (0, True), "ich9-uhci2": (1, False), "ich9-uhci3": (2, False)}

NO_VIDEO_SLOT = ("none", "ramfb")


def wanted(dev) -> bool:
    """A device with no address, or with ``<address type='pci'/>`` lacking a slot."""
    a = dev.address
    return a is None or (a.type == "pci" and a.slot is None)


def _take(b: Builder, key, addr: tuple[int, int, int, bool]) -> None:
    b.pci.used.add(addr[:3])
    b.pci.assigned[key] = addr


def _video_model(vid) -> str:
    return given(vid.model, "vga") if vid.has_model else "vga"


def chipset(b: Builder, ctrls: list) -> None:
    """The places the chipset gives (libvirt's qemuDomainValidateDevicePCISlots{PIIX3,Q35})."""
    pci = b.pci
    if b.family == "pc":
        for key, el, ctype, idx in ctrls:
            if ctype == "usb" and idx == 0 and (el is None or el.model in (None, "piix3-uhci")) \
                    and (el is None or wanted(el)):
                _take(b, key, (0, 1, 2, False))
    else:
        for slot, match in ((0x1D, "ich9-uhci1"), (0x1E, "dmi-to-pci-bridge")):
            for key, el, ctype, idx in ctrls:
                if el is None or el.model != match or not wanted(el):
                    continue
                place = slot if pci.slot_free(0, slot) else (0x1A if match == "ich9-uhci1" else None)
                if place is not None and pci.slot_free(0, place):
                    _take(b, key, (0, place, 0, match == "ich9-uhci1"))
                if match == "dmi-to-pci-bridge":
                    break
    videos = b.dom.devices("video")
    if videos and _video_model(videos[0]) not in NO_VIDEO_SLOT and wanted(videos[0]):
        slot = 2 if b.family == "pc" else 1
        key = videos[0].key
        if pci.slot_free(0, slot):
            _take(b, key, (0, slot, 0, False))
            for fn in range(8):
                pci.used.add((0, slot, fn))
        else:
            pci.assigned[key] = pci.next_slot("<video>")
    if b.family == "q35" and pci.slot_free(0, 0x1B):
        for el in b.dom.devices("sound"):
            if el.model == "ich9" and wanted(el):
                _take(b, el.key, (0, 0x1B, 0, False))
                break


def controllers_in_order(b: Builder, implicit: list[tuple[str, int]]) -> list:
    """(key, controller or None, type, index) of every controller, declared and implied, in libvirt's order."""
    out = []
    for el in b.dom.devices("controller"):
        try:
            idx = int(given(el.raw("index"), "0"), 0)
        except ValueError:
            idx = 0
        out.append((el.key, el, el.type, idx))
    for ctype, idx in implicit:
        out.append((("implicit", ctype, idx), None, ctype, idx))
    rank = {t: i for i, t in enumerate(CONTROLLER_ORDER)}
    return sorted(out, key=lambda c: (rank.get(c[2] or "", len(rank)), c[3]))


def assign(b: Builder, implicit: list[tuple[str, int]]) -> None:
    """Plan the address of every PCI device the XML leaves without one (see the module docstring)."""
    if b.microvm or b.pci is None:
        return
    pci = b.pci
    ctrls = controllers_in_order(b, implicit)
    chipset(b, ctrls)

    def next_for(el, key=None) -> None:
        key = key if key is not None else el.key
        if key not in pci.assigned and (el is None or wanted(el)):
            pci.assigned[key] = pci.next_slot("<%s>" % (el.kind if el is not None else "controller"))

    for key, el, ctype, idx in ctrls:
        if ctype == "pci" and el is not None and el.model not in ("pci-root", "pcie-root", None):
            next_for(el, key)
    for el in b.dom.devices("filesystem"):
        next_for(el)
    for el in b.dom.devices("interface"):
        if el.type != "hostdev":
            next_for(el)
    for el in b.dom.devices("sound"):
        if el.model not in ("sb16", "pcspk", "usb"):
            next_for(el)
    usb2_slots: dict[int, int] = {}
    for key, el, ctype, idx in ctrls:
        if ctype == "usb" and el is not None and el.model in USB2:
            placed = pci.assigned.get(key) or pci.parse(el.address, "<controller type='usb'>")
            if placed is not None:
                usb2_slots.setdefault(idx, placed[1])
    for key, el, ctype, idx in ctrls:
        model = el.model if el is not None else None
        if ctype in ("pci", "fdc", "ccid") or (ctype == "usb" and model == "none") \
                or (ctype == "ide" and idx == 0) or (ctype == "sata" and idx == 0 and b.family == "q35") \
                or (el is not None and pci.builtin(el, "<controller>")):
            continue
        if ctype == "usb" and model in USB2:
            fn, multi = USB2[model]
            if key in pci.assigned or (el is not None and not wanted(el)):
                continue
            if idx not in usb2_slots:
                usb2_slots[idx] = pci.next_slot("<controller type='usb'>")[1]
            _take(b, key, (0, usb2_slots[idx], fn, multi))
            continue
        next_for(el, key)
    for el in b.dom.disks:
        bus = el.target_bus
        if bus == "virtio" or (bus is None and (el.target_dev or "").startswith("vd")):
            next_for(el)
    for el in b.dom.devices("hostdev"):
        if el.type == "pci":
            next_for(el)
    for el in b.dom.devices("memballoon"):
        if el.model == "virtio":
            next_for(el)
    for tag, test in (("rng", None), ("watchdog", lambda e: e.model == "i6300esb"),
                      ("video", lambda e: _video_model(e) not in NO_VIDEO_SLOT),
                      ("input", lambda e: e.bus == "virtio"),
                      ("serial", lambda e: e.target_type == "pci-serial"),
                      ("vsock", None), ("panic", lambda e: e.model == "pvpanic")):
        for el in b.dom.devices(tag):
            if test is None or test(el):
                next_for(el)
