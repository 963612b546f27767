"""The devices of a domain (``<devices>`` children) as declared properties: what every device
has, disks and network interfaces, and the bus libvirt gives a new disk.  The other families:
:mod:`.chardevs` (serial ports, consoles, channels), :mod:`.hardware` (controllers, display,
sound, host devices and the rest); :mod:`.kinds` maps an element to its class."""

from __future__ import annotations

from vsh.core.domain.address import Address, device_address, place_address
from vsh.core.xmlobject import XFlag, XMLObject, XProp, ensure


class Device(XMLObject):
    alias = XProp("./alias/@name")
    address_type = XProp("./address/@type")
    boot_order = XProp("./boot/@order", int)
    virtio_model = XProp("./@model")    # virtio, virtio-transitional... (a controller's, a sound card's model)
    rom_file = XProp("./rom/@file")
    rom_enabled = XProp("./rom/@enabled")
    rom_bar = XProp("./rom/@bar")
    has_rom = XFlag("./rom")

    @property
    def kind(self) -> str:
        """The element's name: disk, interface, controller..."""
        return self.node.tag

    @property
    def key(self) -> str:
        """A stable identity within its domain (its path: lxml proxies have no stable id())."""
        return self.node.getroottree().getpath(self.node)

    @property
    def address(self) -> Address | None:
        return device_address(self.node)

    def set_address(self, in_place: bool = True, **attrs: str) -> Address:
        """Replace the <address> by one with ``attrs`` (see address.place_address)."""
        return place_address(self.node, in_place, **attrs)

    def has(self, tag: str) -> bool:
        """Whether the element has a child ``tag`` (for children the model does not declare)."""
        return self.node.find(tag) is not None

    def describe(self) -> str:
        """``<controller type='pci' index='1' model='...'>``: the element and its naming attributes."""
        extra = "".join(" %s='%s'" % (k, self.node.get(k)) for k in ("type", "index", "model") if self.node.get(k))
        return "<%s%s>" % (self.node.tag, extra)


def backing_store(node) -> "BackingStore | None":
    el = node.find("backingStore")
    return BackingStore(el) if el is not None else None


class BackingStore(XMLObject):
    """One level of a disk's declared backing chain (``<backingStore/>`` empty: none)."""

    tag = "backingStore"
    type = XProp("./@type")
    format = XProp("./format/@type")
    source_file = XProp("./source/@file")
    source_dev = XProp("./source/@dev")
    has_source = XFlag("./source")

    @property
    def backing_store(self) -> "BackingStore | None":
        return backing_store(self.node)


class Disk(Device):
    tag = "disk"
    type = XProp("./@type")
    device = XProp("./@device")
    driver_name = XProp("./driver/@name")
    driver_type = XProp("./driver/@type")
    driver_cache = XProp("./driver/@cache")
    driver_discard = XProp("./driver/@discard")
    source_file = XProp("./source/@file")
    source_dev = XProp("./source/@dev")
    target_dev = XProp("./target/@dev")
    target_bus = XProp("./target/@bus")
    driver_io = XProp("./driver/@io")
    readonly = XFlag("./readonly")
    shareable = XFlag("./shareable")
    serial = XProp("./serial")
    wwn = XProp("./wwn")
    transient = XFlag("./transient")
    has_source = XFlag("./source")
    source_fdgroup = XProp("./source/@fdgroup")
    source_startup_policy = XProp("./source/@startupPolicy")
    driver_queues = XProp("./driver/@queues")
    driver_iothread = XProp("./driver/@iothread")
    driver_detect_zeroes = XProp("./driver/@detect_zeroes")
    driver_error_policy = XProp("./driver/@error_policy")
    driver_rerror_policy = XProp("./driver/@rerror_policy")
    iothread_mapping = XFlag("./driver/iothreads")
    logical_block_size = XProp("./blockio/@logical_block_size")
    physical_block_size = XProp("./blockio/@physical_block_size")

    @property
    def backing_store(self) -> BackingStore | None:
        return backing_store(self.node)

    @property
    def source(self) -> str | None:
        src = self.node.find("./source")
        if src is None:
            return None
        return src.get("file") or src.get("dev") or src.get("name") or src.get("dir") or src.get("volume")

    def set_source(self, path: str | None) -> None:
        src = self.node.find("./source")
        if path is None:
            if src is not None:
                self.node.remove(src)
            return
        src = ensure(self.node, "./source")
        src.attrib.clear()
        src.set("dev" if self.type == "block" else "file", path)


class Interface(Device):
    tag = "interface"
    type = XProp("./@type")
    mac = XProp("./mac/@address")
    model = XProp("./model/@type")
    source_network = XProp("./source/@network")
    source_bridge = XProp("./source/@bridge")
    source_dev = XProp("./source/@dev")
    source_mode = XProp("./source/@mode")
    target_dev = XProp("./target/@dev")
    script_path = XProp("./script/@path")
    driver_name = XProp("./driver/@name")
    link_state = XProp("./link/@state")
    backend_type = XProp("./backend/@type")
    has_model = XFlag("./model")
    port_forward = XFlag("./portForward")

    @property
    def ips(self) -> list["NetIP"]:
        return [NetIP(el) for el in self.node.findall("ip")]

    # interface type -> attribute of <source> that names what it connects to
    SOURCE_ATTR = {"network": "network", "bridge": "bridge", "direct": "dev", "ethernet": None,
                   "user": None}

    def set_source(self, value: str | None, mode: str | None = None) -> None:
        """Point the interface at ``value`` (network name, bridge, host device) for its type."""
        src = self.node.find("./source")
        if src is not None:
            self.node.remove(src)
        attr = self.SOURCE_ATTR.get(self.type or "")
        if value is None or attr is None:
            return
        src = ensure(self.node, "./source")
        src.set(attr, value)
        if mode is not None:
            src.set("mode", mode)

    @property
    def source(self) -> str | None:
        src = self.node.find("./source")
        if src is None:
            return None
        for key in ("network", "bridge", "dev"):
            if src.get(key):
                return src.get(key)
        return None


class NetIP(XMLObject):
    """An ``<ip>`` of an interface (user-mode networking: the guest's subnet)."""

    tag = "ip"
    family = XProp("./@family")
    address = XProp("./@address")
    prefix = XProp("./@prefix")


def default_bus(target: str, device: str | None = None) -> str:
    if target.startswith("vd"):
        return "virtio"
    if target.startswith("sd"):
        return "scsi"
    if target.startswith("hd"):
        return "ide"
    if target.startswith("fd"):
        return "fdc"
    if target.startswith("xvd"):
        return "xen"
    return "virtio"
