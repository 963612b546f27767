"""The state one argv build carries between the device families, and the helpers they share.

A ``Builder`` holds the domain (the typed model of ``vsh.core.domain``, through which
every family reads it), the host facts, the runtime paths and what the
build has decided so far: accelerator, machine family, PCI address book, boot
indexes, iothreads, declared controllers, port forwards.  The family modules
(``machine``, ``boot``, ``controllers``, ``disks``, ``network``, ``chardevs``,
``graphics``, ``devices``) are functions of a Builder; ``build`` runs them in
command-line order.
"""

from __future__ import annotations

from vsh.core.domain import Domain
from vsh.core.errors import InvalidArgument, Unsupported, XMLError
from vsh.kvm.argv.options import need_file, number
from vsh.kvm.argv.paths import RuntimePaths
from vsh.kvm.argv.pci import PciAddresses

#: The machine type of a domain whose ``<os><type>`` names none.
DEFAULT_MACHINE = "q35"


class Builder:
    """One domain's argv under construction (see the module docstring)."""

    def __init__(self, root, host, paths: RuntimePaths):
        if root is None or not isinstance(root.tag, str) or root.tag != "domain":
            raise XMLError("expected a <domain> element, got <%s>" % getattr(root, "tag", None))
        self.dom = Domain(root)
        self.host = host
        self.paths = paths
        self.fdsets: dict[str, int] = {}    # fd group -> QEMU fd set (disks with <source fdgroup>)
        self.argv: list[str] = []
        self.kvm = False
        self.family = "q35"
        self.machine = DEFAULT_MACHINE
        self.pci: PciAddresses | None = None
        self.bootindex: dict[str, int] = {}   # element path -> bootindex
        self.iothreads = 0
        self.iothread_ids: list[int] = []
        self.scsi_ctrls: dict[int, str] = {}  # index -> model (declared)
        self.sata_ctrls: set[int] = set()
        self.vser_ctrls: set[int] = set()
        self.usb_ctrls: dict[int, str] = {}
        self.audiodevs: set[str] = set()      # -audiodev ids already added (sound)
        self.serials: list = []               # the devices that become serial ports (chardevs.serial_plan)
        self.forwards: list | None = None     # the domain's port forwards, read on first use
        self.forwards_used: set[int] = set()

    def add(self, *args: str) -> None:
        self.argv.extend(args)

    @property
    def microvm(self) -> bool:
        return self.family == "microvm"

    def virtio(self, kind: str) -> str:
        """virtio-KIND-pci, or virtio-KIND-device (virtio-mmio) on microvm."""
        return "virtio-%s-%s" % (kind, "device" if self.microvm else "pci")

    def need_pci(self, what: str) -> None:
        if self.microvm:
            raise Unsupported("%s needs PCI, which machine 'microvm' does not have" % what)

    def dev_addr(self, dev, what: str, key: object = None) -> list[tuple[str, object]]:
        """Bus placement for a virtio device (PCI address, or nothing on microvm); ``key`` names an
        implicit controller (``dev`` None) whose address slots.assign planned."""
        if self.microvm:
            a = dev.address if dev is not None else None
            if a is not None and a.type not in (None, "virtio-mmio"):
                raise InvalidArgument("%s: machine 'microvm' has no PCI; use <address type='virtio-mmio'/>" % what)
            return []
        return self.pci.props(dev, what, key)

    def iothread(self, value: str | None, what: str) -> tuple[str, str] | None:
        """The ``iothread=`` property for a device's iothread number (checked against <iothreads>)."""
        if value is None:
            return None
        i = number(value, what + " iothread")
        if i not in self.iothread_ids:
            raise InvalidArgument("%s: iothread %d does not exist (<iothreads>%d</iothreads>)"
                                  % (what, i, self.iothreads))
        return ("iothread", "iothread%d" % i)

    def bootprop(self, dev) -> tuple[str, object] | None:
        """The ``bootindex=`` property of a device, if boot() gave it one."""
        i = self.bootindex.get(dev.key)
        return ("bootindex", i) if i is not None else None

    def rom(self, dev, what: str) -> tuple[str, object] | None:
        """The ``romfile=`` property from a device's <rom> (NICs and PCI host devices)."""
        if not dev.has_rom or self.microvm:
            return None
        if dev.rom_enabled == "no" or dev.rom_bar == "off":
            return ("romfile", "")
        if dev.rom_file:
            return ("romfile", need_file(dev.rom_file, what + " <rom file>"))
        return None
