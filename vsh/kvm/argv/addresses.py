"""The PCI addresses libvirt writes into a definition on define: every PCI device (and implicit
controller) the XML leaves without one gets the address ``slots.assign`` plans, the chipset's
built-in controllers theirs, written as ``<address type='pci' domain='0x0000' bus='0x00'
slot='0x01' function='0x2'/>``.  A start then places each device where its definition says.

Only on pc machines, where that plan is libvirt's: on q35 libvirt puts each PCIe device behind
a ``pcie-root-port`` controller it adds, which vsh does not do yet (its q35 devices sit on the
root bus), so a q35 definition keeps its devices unaddressed rather than show other addresses."""

from __future__ import annotations

from vsh.core.errors import VshError
from vsh.kvm.argv import controllers, machine, slots
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.paths import RuntimePaths
from vsh.kvm.argv.pci import BUILTIN


def write_pci_addresses(root) -> None:
    """Give each PCI device of the domain ``root`` without an address the one a start would give
    it (nothing on microvm; a domain whose machine vsh cannot run is left for start to refuse)."""
    from lxml import etree

    try:
        b = Builder(root, None, RuntimePaths.for_rundir("/nonexistent"))
        machine.machine_type(b)
        if b.family != "pc":
            return
        controllers.reserve_pci(b)
        slots.assign(b, controllers.implied(b))
    except VshError:
        return
    for el in b.devices:
        if not isinstance(el.tag, str) or not slots.wanted(el):
            continue
        where = None
        if el.tag == "controller":
            builtin = BUILTIN.get((b.family, el.get("type"), el.get("index", "0")))
            if builtin is not None:
                where = (*builtin, False)
        if where is None:
            where = b.pci.assigned.get(b.key(el))
        if where is None:
            continue
        bus, slot, fn, multi = where
        old = el.find("address")
        if old is not None:
            el.remove(old)
        addr = etree.SubElement(el, "address", type="pci", domain="0x0000", bus="0x%02x" % bus,
                                slot="0x%02x" % slot, function="0x%x" % fn)
        if multi:
            addr.set("multifunction", "on")
