"""PCI slots: the XML's addresses are kept; the others get the address ``slots.assign`` planned
the way libvirt does, or (for a device plugged later) the next free root-bus slot."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm.argv.options import given, number

#: Root-bus functions the chipset itself occupies: the host bridge (slot 0), PIIX3's ISA bridge,
#: IDE and power management (pc, 00:01.0, .1, .3; its USB function 00:01.2 is the USB controller
#: the XML declares), ICH9's LPC, SATA and SMBus (q35, 00:1f.0, .2, .3).
RESERVED = {"pc": [(0, 0, f) for f in range(8)] + [(0, 1, 0), (0, 1, 1), (0, 1, 3)],
            "q35": [(0, 0, f) for f in range(8)] + [(0, 0x1F, 0), (0, 0x1F, 2), (0, 0x1F, 3)]}

#: Controllers built into the chipset: (family, type, index) -> the address they must have.
BUILTIN = {("pc", "ide", "0"): (0, 1, 1), ("q35", "sata", "0"): (0, 0x1F, 2)}


class PciAddresses:
    """The PCI address book of one machine (``family`` pc or q35)."""

    def __init__(self, family: str):
        self.family = family
        self.root = "pcie.0" if family == "q35" else "pci.0"
        self.used: set[tuple[int, int, int]] = set()
        self.buses: dict[int, str] = {0: self.root}
        self.used.update(RESERVED.get(family, ()))
        self.assigned: dict[object, tuple[int, int, int, bool]] = {}   # device key -> planned address

    def builtin(self, dev, what: str) -> bool:
        """True for a controller the chipset has (its address, if given, must be the chipset's)."""
        if dev.kind != "controller":
            return False
        where = BUILTIN.get((self.family, dev.type, given(dev.raw("index"), "0")))
        if where is None:
            return False
        a = self.parse(dev.address, what)
        if a is not None and a[:3] != where:
            raise InvalidArgument("%s: the chipset's controller must have PCI address %02x:%02x.%x"
                                  % (what, *where))
        return True

    def slot_free(self, bus: int, slot: int) -> bool:
        return not any((bus, slot, fn) in self.used for fn in range(8))

    def next_slot(self, what: str, first: int = 1) -> tuple[int, int, int, bool]:
        """Take the next free root-bus slot (all its functions), as libvirt's allocator does."""
        for slot in range(first, 32):
            if self.slot_free(0, slot):
                for fn in range(8):
                    self.used.add((0, slot, fn))
                return 0, slot, 0, False
        raise InvalidArgument("%s: no free PCI slot left on the root bus" % what)

    def parse(self, addr, what: str) -> tuple[int, int, int, bool] | None:
        """(bus, slot, function, multifunction) of an ``<address type='pci'>`` (an Address), or None."""
        if addr is None or addr.type != "pci":
            return None
        if number(addr.domain, what + " PCI domain", 0) != 0:
            raise Unsupported("%s: PCI domain other than 0 is not supported" % what)
        bus = number(addr.bus, what + " PCI bus", 0)
        slot = number(addr.slot, what + " PCI slot", 0)
        fn = number(addr.function, what + " PCI function", 0)
        if not (0 <= slot < 32 and 0 <= fn < 8):
            raise InvalidArgument("%s: PCI address slot %#x function %#x is out of range" % (what, slot, fn))
        return bus, slot, fn, addr.multifunction == "on"

    def reserve(self, dev, what: str) -> None:
        """Mark the address the device ``dev`` gives as taken (twice is an error)."""
        a = self.parse(dev.address, what)
        if a is None or self.builtin(dev, what):
            return
        key = a[:3]
        if key in self.used:
            raise InvalidArgument("%s: PCI address %02x:%02x.%x is already in use" % (what, *key))
        self.used.add(key)

    def props(self, dev, what: str, key: object = None) -> list[tuple[str, object]]:
        """bus=, addr= (and multifunction=) for a device's -device option: the XML's address, the
        one planned for ``key`` (the device's, or an implicit controller's), else the next free slot."""
        a = self.parse(dev.address, what) if dev is not None else None
        if a is None:
            if key is None and dev is not None:
                key = dev.key
            a = self.assigned.get(key) or self.next_slot(what)
        bus, slot, fn, multi = a
        if bus not in self.buses:
            raise InvalidArgument("%s: PCI bus %#x has no <controller type='pci' index='%d'>" % (what, bus, bus))
        out: list[tuple[str, object]] = [("bus", self.buses[bus]),
                                         ("addr", "%#x.%#x" % (slot, fn) if fn else "%#x" % slot)]
        if multi:
            out.append(("multifunction", "on"))
        return out
