"""PCI slots: the XML's addresses are kept, the other devices get the next free root-bus slot."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm.argv.options import number

#: Root-bus slots the machine itself occupies (all eight functions of each).
RESERVED_SLOTS = {"pc": (0, 1), "q35": (0, 0x1F)}


class PciAddresses:
    """The PCI address book of one machine (``family`` pc or q35)."""

    def __init__(self, family: str):
        self.family = family
        self.root = "pcie.0" if family == "q35" else "pci.0"
        self.used: set[tuple[int, int, int]] = set()
        self.buses: dict[int, str] = {0: self.root}
        for s in RESERVED_SLOTS.get(family, ()):
            for fn in range(8):
                self.used.add((0, s, fn))

    def parse(self, addr, what: str) -> tuple[int, int, int, bool] | None:
        """(bus, slot, function, multifunction) of an ``<address type='pci'>``, or None."""
        if addr is None or addr.get("type") != "pci":
            return None
        if number(addr.get("domain"), what + " PCI domain", 0) != 0:
            raise Unsupported("%s: PCI domain other than 0 is not supported" % what)
        bus = number(addr.get("bus"), what + " PCI bus", 0)
        slot = number(addr.get("slot"), what + " PCI slot", 0)
        fn = number(addr.get("function"), what + " PCI function", 0)
        if not (0 <= slot < 32 and 0 <= fn < 8):
            raise InvalidArgument("%s: PCI address slot %#x function %#x is out of range" % (what, slot, fn))
        return bus, slot, fn, addr.get("multifunction") == "on"

    def reserve(self, elem, what: str) -> None:
        """Mark the address the device element ``elem`` gives as taken (twice is an error)."""
        a = self.parse(elem.find("address"), what)
        if a is None:
            return
        key = a[:3]
        if key in self.used:
            raise InvalidArgument("%s: PCI address %02x:%02x.%x is already in use" % (what, *key))
        self.used.add(key)

    def props(self, elem, what: str) -> list[tuple[str, object]]:
        """bus=, addr= (and multifunction=) for a device's -device option."""
        a = self.parse(elem.find("address"), what) if elem is not None else None
        if a is None:
            for slot in range(1, 32):
                if (0, slot, 0) not in self.used:
                    for fn in range(8):
                        self.used.add((0, slot, fn))
                    return [("bus", self.root), ("addr", "%#x" % slot)]
            raise InvalidArgument("%s: no free PCI slot left on the root bus" % what)
        bus, slot, fn, multi = a
        if bus not in self.buses:
            raise InvalidArgument("%s: PCI bus %#x has no <controller type='pci' index='%d'>" % (what, bus, bus))
        out: list[tuple[str, object]] = [("bus", self.buses[bus]),
                                         ("addr", "%#x.%#x" % (slot, fn) if fn else "%#x" % slot)]
        if multi:
            out.append(("multifunction", "on"))
        return out
