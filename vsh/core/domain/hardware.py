"""The other devices: controllers, display (graphics, video, input), sound and audio, host
devices, shared directories, TPMs and the small ones (rng, balloon, watchdog, panic, hub, vsock).
Values the builder checks itself stay the XML's strings."""

from __future__ import annotations

from vsh.core.domain.devices import Device
from vsh.core.xmlobject import XFlag, XProp, yesno


class Controller(Device):
    tag = "controller"
    type = XProp("./@type")
    index = XProp("./@index", int)
    model = XProp("./@model")
    ports = XProp("./@ports")
    vectors = XProp("./@vectors")
    model_name = XProp("./model/@name")
    driver_queues = XProp("./driver/@queues")
    driver_iothread = XProp("./driver/@iothread")
    target_chassis = XProp("./target/@chassis")
    target_chassis_nr = XProp("./target/@chassisNr")
    target_port = XProp("./target/@port")
    master_startport = XProp("./master/@startport")

    def set_pci_target(self, name: str, values: dict, order: tuple, target: bool = True) -> None:
        """Write ``<model name>`` (kept when given) and (``target``) ``<target>`` with ``values``, the
        attributes in ``order`` first, as libvirt fills a PCI controller."""
        from vsh.core.lxmlload import etree

        m = self.node.find("model")
        if m is None:
            m = etree.Element("model")
            self.node.insert(0, m)
        if m.get("name") is None:
            m.set("name", name)
        if not target:
            return
        tgt = self.node.find("target")
        if tgt is None:
            tgt = etree.Element("target")
            m.addnext(tgt)
        values = dict(values)
        tgt.attrib.clear()
        for k in order:
            if k in values:
                tgt.set(k, values.pop(k))
        for k, v in values.items():
            tgt.set(k, v)

    @property
    def target_attrs(self) -> dict:
        """The attributes of <target>, as given."""
        tgt = self.node.find("target")
        return dict(tgt.attrib) if tgt is not None else {}


class Rng(Device):
    tag = "rng"
    model = XProp("./@model")
    backend_model = XProp("./backend/@model")
    backend = XProp("./backend")
    has_backend = XFlag("./backend")
    rate_bytes = XProp("./rate/@bytes")
    rate_period = XProp("./rate/@period")
    has_rate = XFlag("./rate")


class MemBalloon(Device):
    tag = "memballoon"
    model = XProp("./@model")
    autodeflate = XProp("./@autodeflate")
    free_page_reporting = XProp("./@freePageReporting")


class HostDev(Device):
    tag = "hostdev"
    mode = XProp("./@mode")
    type = XProp("./@type")
    managed = XProp("./@managed", yesno, lambda v: "yes" if v else "no")
    address_domain = XProp("./source/address/@domain")
    address_bus = XProp("./source/address/@bus")
    address_slot = XProp("./source/address/@slot")
    address_function = XProp("./source/address/@function")
    has_source_address = XFlag("./source/address")
    driver_name = XProp("./driver/@name")


class Filesystem(Device):
    tag = "filesystem"
    type = XProp("./@type")
    accessmode = XProp("./@accessmode")
    multidevs = XProp("./@multidevs")
    fmode = XProp("./@fmode")
    dmode = XProp("./@dmode")
    driver_type = XProp("./driver/@type")
    driver_wrpolicy = XProp("./driver/@wrpolicy")
    source_dir = XProp("./source/@dir")
    target_dir = XProp("./target/@dir")
    readonly = XFlag("./readonly")


class Watchdog(Device):
    tag = "watchdog"
    model = XProp("./@model")
    action = XProp("./@action")


class Panic(Device):
    tag = "panic"
    model = XProp("./@model")


class Graphics(Device):
    tag = "graphics"
    type = XProp("./@type")
    listen = XProp("./@listen")
    port = XProp("./@port", int)
    passwd = XProp("./@passwd")
    socket = XProp("./@socket")

    @property
    def listen_socket(self) -> str | None:
        """The socket of the first ``<listen type='socket'>``."""
        el = self.node.find("listen[@type='socket']")
        return el.get("socket") if el is not None else None


class Video(Device):
    tag = "video"
    model = XProp("./model/@type")
    has_model = XFlag("./model")
    vram = XProp("./model/@vram")
    ram = XProp("./model/@ram")
    vram64 = XProp("./model/@vram64")
    vgamem = XProp("./model/@vgamem")
    heads = XProp("./model/@heads")


class Input(Device):
    tag = "input"
    type = XProp("./@type")
    bus = XProp("./@bus")


class Sound(Device):
    tag = "sound"
    model = XProp("./@model")
    audio_id = XProp("./audio/@id")

    @property
    def codecs(self) -> list[str | None]:
        """The <codec type> of each codec (None where it gives no type)."""
        return [el.get("type") for el in self.node.findall("codec")]


class Audio(Device):
    tag = "audio"
    id = XProp("./@id")
    type = XProp("./@type")


class Tpm(Device):
    tag = "tpm"
    model = XProp("./@model")
    backend_type = XProp("./backend/@type")
    backend_version = XProp("./backend/@version")
    backend_encrypted = XFlag("./backend/encryption")
    backend_device = XFlag("./backend/device")
    backend_device_path = XProp("./backend/device/@path")


class Hub(Device):
    tag = "hub"
    type = XProp("./@type")


class Vsock(Device):
    tag = "vsock"
    model = XProp("./@model")
    cid_address = XProp("./cid/@address")
