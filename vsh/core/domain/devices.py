"""The devices of a domain (``<devices>`` children), as declared properties, and the
bus libvirt gives a new disk."""

from __future__ import annotations

from vsh.core.xmlobject import XFlag, XMLObject, XProp, ensure, yesno


class Device(XMLObject):
    alias = XProp("./alias/@name")
    address_type = XProp("./address/@type")
    boot_order = XProp("./boot/@order", int)


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


class CharDevice(Device):
    """serial, console, channel, parallel."""

    type = XProp("./@type")
    source_path = XProp("./source/@path")
    source_mode = XProp("./source/@mode")
    target_type = XProp("./target/@type")
    target_name = XProp("./target/@name")
    target_port = XProp("./target/@port", int)


class Serial(CharDevice):
    tag = "serial"


class Console(CharDevice):
    tag = "console"


class Channel(CharDevice):
    tag = "channel"


class Rng(Device):
    tag = "rng"
    model = XProp("./@model")
    backend_model = XProp("./backend/@model")
    backend = XProp("./backend")


class MemBalloon(Device):
    tag = "memballoon"
    model = XProp("./@model")


class Controller(Device):
    tag = "controller"
    type = XProp("./@type")
    index = XProp("./@index", int)
    model = XProp("./@model")


class HostDev(Device):
    tag = "hostdev"
    mode = XProp("./@mode")
    type = XProp("./@type")
    managed = XProp("./@managed", yesno, lambda v: "yes" if v else "no")
    address_domain = XProp("./source/address/@domain")
    address_bus = XProp("./source/address/@bus")
    address_slot = XProp("./source/address/@slot")
    address_function = XProp("./source/address/@function")


class Filesystem(Device):
    tag = "filesystem"
    type = XProp("./@type")
    accessmode = XProp("./@accessmode")
    driver_type = XProp("./driver/@type")
    source_dir = XProp("./source/@dir")
    target_dir = XProp("./target/@dir")


class Watchdog(Device):
    tag = "watchdog"
    model = XProp("./@model")
    action = XProp("./@action")


class Graphics(Device):
    tag = "graphics"
    type = XProp("./@type")
    listen = XProp("./@listen")
    port = XProp("./@port", int)


class Video(Device):
    tag = "video"
    model = XProp("./model/@type")


class Input(Device):
    tag = "input"
    type = XProp("./@type")
    bus = XProp("./@bus")


class Sound(Device):
    tag = "sound"
    model = XProp("./@model")


DEVICE_CLASSES = {cls.tag: cls for cls in (Disk, Interface, Serial, Console, Channel, Rng, MemBalloon,
                                           Controller, HostDev, Filesystem, Watchdog, Graphics, Video,
                                           Input, Sound)}


def device_for(node) -> Device:
    return DEVICE_CLASSES.get(node.tag, Device)(node)


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
