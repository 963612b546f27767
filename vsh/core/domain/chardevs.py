"""Character devices: serial ports, consoles and channels (``<serial>``, ``<console>``,
``<channel>``), with their sources (a udp one has two: ``mode='connect'`` and ``mode='bind'``)."""

from __future__ import annotations

from vsh.core.domain.devices import Device
from vsh.core.xmlobject import XMLObject, XProp


class CharSource(XMLObject):
    tag = "source"
    path = XProp("./@path")
    mode = XProp("./@mode")
    host = XProp("./@host")
    service = XProp("./@service")
    append = XProp("./@append")


class CharDevice(Device):
    """serial, console, channel, parallel."""

    type = XProp("./@type")
    source_path = XProp("./source/@path")
    source_mode = XProp("./source/@mode")
    source_append = XProp("./source/@append")
    reconnect_enabled = XProp("./source/reconnect/@enabled")
    reconnect_timeout = XProp("./source/reconnect/@timeout")
    protocol_type = XProp("./protocol/@type")
    target_type = XProp("./target/@type")
    target_name = XProp("./target/@name")
    target_port = XProp("./target/@port", int)

    @property
    def sources(self) -> list[CharSource]:
        return [CharSource(el) for el in self.node.findall("source")]

    @property
    def source(self) -> CharSource | None:
        """The first <source> (the only one but for udp)."""
        el = self.node.find("source")
        return CharSource(el) if el is not None else None


class Serial(CharDevice):
    tag = "serial"


class Console(CharDevice):
    tag = "console"


class Channel(CharDevice):
    tag = "channel"
