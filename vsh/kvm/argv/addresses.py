"""The addresses libvirt writes into a definition on define.

Virtio channels get their virtio-serial port (``<address type='virtio-serial' controller='0'
bus='0' port='1'/>``: the first free port from 1, port 0 being a virtio console's, which keeps
no address in the XML, as in libvirt).

IDE, SATA and SCSI disks get their drive address (``<address type='drive' controller='0'
bus='0' target='0' unit='0'/>``, from the target name, as the argv builder places them).

PCI: every PCI device (and implicit
controller) the XML leaves without one gets the address ``slots.assign`` plans, the chipset's
built-in controllers theirs, written as ``<address type='pci' domain='0x0000' bus='0x00'
slot='0x01' function='0x2'/>``.  A start then places each device where its definition says.

On q35 machines ``q35.plan`` does it libvirt's way: each PCIe device behind a ``pcie-root-port``
controller it adds, conventional PCI devices behind a ``pcie-to-pci-bridge`` (``vsh.kvm.argv.pcie``);
an address the XML gives that q35 cannot honour fails the define, as in libvirt."""

from __future__ import annotations

from vsh.core.errors import VshError
from vsh.kvm.argv import controllers, disks, machine, slots
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.options import given, number
from vsh.kvm.argv.paths import RuntimePaths
from vsh.kvm.argv.pci import BUILTIN


def write_addresses(root) -> None:
    """Give each disk and PCI device of the domain ``root`` without an address the one a start
    would give it (see the module docstring; a domain whose machine vsh cannot run is left for
    start to refuse)."""
    try:
        b = Builder(root, None, RuntimePaths.for_rundir("/nonexistent"))
        machine.machine_type(b)
        drive_addresses(b)
        if b.family == "pc":
            controllers.reserve_pci(b)
            slots.assign(b, controllers.implied(b))
    except VshError:
        return
    virtio_serial_addresses(b.dom)
    if b.family == "q35":
        from vsh.kvm.argv.q35 import plan

        plan(b.dom)
        return
    if b.family != "pc":
        return
    for el in b.dom.devices():
        if not slots.wanted(el):
            continue
        where = None
        if el.kind == "controller":
            builtin = BUILTIN.get((b.family, el.type, given(el.raw("index"), "0")))
            if builtin is not None:
                where = (*builtin, False)
        if where is None:
            where = b.pci.assigned.get(el.key)
        if where is None:
            continue
        bus, slot, fn, multi = where
        el.set_address(in_place=False, type="pci", domain="0x0000", bus="0x%02x" % bus, slot="0x%02x" % slot,
                       function="0x%x" % fn, multifunction="on" if multi else None)


def drive_addresses(b: Builder) -> None:
    """``<address type='drive'>`` for each IDE, SATA and SCSI disk that has no address."""
    for d in b.dom.disks:
        if d.address is not None or disks.disk_bus(b, d) not in ("ide", "sata", "scsi"):
            continue
        ctrl, bus, target, unit = disks.drive_address(b, d)
        d.set_address(type="drive", controller=str(ctrl), bus=str(bus), target=str(target), unit=str(unit))


def virtio_serial_addresses(dom) -> None:
    """libvirt's qemuDomainAssignVirtioSerialAddresses: the ports the XML gives are taken, each
    virtio console takes the first free port (from 0, not written), each virtio channel the first
    free one from 1 on the lowest-numbered controller with room (written)."""
    from vsh.core.errors import XMLError

    ports: dict[int, int] = {}      # controller index -> its port count
    for c in dom.devices("controller"):
        if c.type == "virtio-serial":
            ports[number(c.raw("index"), "<controller type='virtio-serial'> index", 0)] = \
                number(c.ports, "<controller type='virtio-serial'> ports", 31)
    used: dict[int, set[int]] = {i: set() for i in ports}
    for dev in dom.devices():
        a = dev.address
        if a is None or a.type != "virtio-serial" or a.port in (None, "0"):
            continue
        ctrl, port = number(a.controller, "virtio-serial controller", 0), number(a.port, "port", 0)
        if ctrl not in ports:
            raise XMLError("XML error: virtio serial controller %d is missing" % ctrl)
        if port >= ports[ctrl]:
            raise XMLError("XML error: virtio serial controller %d does not have port %d" % (ctrl, port))
        if port in used[ctrl]:
            raise XMLError("XML error: virtio serial port %d on controller %d is already occupied" % (port, ctrl))
        used[ctrl].add(port)
    targets = [d for d in dom.devices() if d.kind in ("console", "channel") and d.target_type == "virtio"]
    for el in sorted(targets, key=lambda e: e.kind != "console"):      # libvirt: consoles first
        a = el.address
        if a is not None and (a.type != "virtio-serial" or a.port not in (None, "0")):
            continue
        console = el.kind == "console"
        named = number(a.controller, "virtio-serial controller", 0) if a is not None else None
        for ctrl in sorted(ports) if named is None else [named]:
            free = [p for p in range(0 if console and named is None else 1, ports.get(ctrl, 0))
                    if p not in used.get(ctrl, ())]
            if free:
                used[ctrl].add(free[0])
                if not console:
                    if a is None:
                        a = el.set_address(in_place=False)
                    a.type, a.controller, a.bus, a.port = "virtio-serial", str(ctrl), "0", str(free[0])
                break
        else:
            raise XMLError("XML error: Unable to find a free virtio-serial port")
