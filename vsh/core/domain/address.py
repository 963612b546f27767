"""A device's ``<address>``: where it sits on its bus (PCI, drive, virtio-serial, USB, ISA, ...).

The values stay the strings the XML gives (``0x1f``, ``2``): each bus reads the attributes it
has and checks them with its own messages."""

from __future__ import annotations

from vsh.core.xmlobject import XMLObject, XProp


class Address(XMLObject):
    tag = "address"
    type = XProp("./@type")
    domain = XProp("./@domain")
    bus = XProp("./@bus")
    slot = XProp("./@slot")
    function = XProp("./@function")
    multifunction = XProp("./@multifunction")
    controller = XProp("./@controller")
    target = XProp("./@target")
    unit = XProp("./@unit")
    port = XProp("./@port")
    iobase = XProp("./@iobase")


def device_address(node) -> Address | None:
    """The ``<address>`` child of a device element, or None."""
    el = node.find("address")
    return Address(el) if el is not None else None


def place_address(node, in_place: bool = True, **attrs: str) -> Address:
    """Give the device element ``node`` a new ``<address>`` with ``attrs`` (in that order),
    instead of its old one: where the old one was (``in_place``), else as its last child."""
    from vsh.core.lxmlload import etree

    new = etree.Element("address", {k: v for k, v in attrs.items() if v is not None})
    old = node.find("address")
    if old is not None and in_place:
        old.addprevious(new)
        node.remove(old)
        return Address(new)
    if old is not None:
        node.remove(old)
    node.append(new)
    return Address(new)
