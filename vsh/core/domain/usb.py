"""USB ports as libvirt 9.0 gives them on define (``<address type='usb' bus='0' port='1.2'/>``):
hubs first, then the other USB devices by kind, each on the first free port of the controller's
root hub, else on the first free port of a hub on it (depth first).  Ports a device names are kept."""

from __future__ import annotations

from vsh.core.lxmlload import etree

#: Ports of a controller's root hub, by model, as libvirt counts them (xHCI: 4 unless ports='N').
ROOT_PORTS = {"piix3-uhci": 2, "piix4-uhci": 2, "ich9-uhci1": 2, "ich9-uhci2": 2, "ich9-uhci3": 2,
              "vt82c686b-uhci": 2, "pci-ohci": 3, "ehci": 6, "ich9-ehci1": 6, "qemu-xhci": 4, "nec-xhci": 4,
              "qusb1": 4, "qusb2": 4}

#: A usb-hub's ports.
HUB_PORTS = 8

#: The devices that sit on USB, in the order libvirt gives them ports (after the hubs).
USB_DEVICES = ("hostdev[@type='usb']", "disk[target/@bus='usb']", "input[@bus='usb']",
               "serial[target/@type='usb-serial']", "smartcard", "redirdev[@bus='usb']", "sound[@model='usb']")


class Hub:
    def __init__(self, ports: int):
        self.ports: list[object] = [None] * ports     # None free, True taken, Hub a hub

    def free(self, path: tuple[int, ...]) -> tuple[int, ...] | None:
        """The first free port here, else on the hubs below (depth first), as a path of 1-based ports."""
        for i, used in enumerate(self.ports):
            if used is None:
                return (*path, i + 1)
        for i, used in enumerate(self.ports):
            if isinstance(used, Hub):
                found = used.free((*path, i + 1))
                if found:
                    return found
        return None

    def take(self, path: tuple[int, ...], what: object) -> bool:
        """Mark the port at ``path`` used by ``what`` (True, or a Hub); False when there is none."""
        hub = self
        for p in path[:-1]:
            nxt = hub.ports[p - 1] if 0 < p <= len(hub.ports) else None
            if not isinstance(nxt, Hub):
                return False
            hub = nxt
        if not 0 < path[-1] <= len(hub.ports) or hub.ports[path[-1] - 1] is not None:
            return False
        hub.ports[path[-1] - 1] = what
        return True


def _given(el) -> tuple[int, tuple[int, ...]] | None:
    a = el.find("address")
    if a is None or a.get("type") != "usb" or not a.get("port"):
        return None
    try:
        return int(a.get("bus") or "0"), tuple(int(p) for p in a.get("port").split("."))
    except ValueError:
        return None


def usb_addresses(devs) -> None:
    """Give each USB device without a port the one libvirt would."""
    buses: dict[int, Hub] = {}
    for c in devs.findall("controller[@type='usb']"):
        model = c.get("model")
        if model == "none" or not (c.get("index") or "0").isdigit():
            continue
        idx = int(c.get("index") or "0")
        ports = int(c.get("ports")) if (c.get("ports") or "").isdigit() else ROOT_PORTS.get(model or "", 2)
        if idx not in buses or len(buses[idx].ports) < ports:
            buses[idx] = Hub(ports)
    if not buses:
        return
    hubs = devs.findall("hub[@type='usb']")
    others = [el for kind in USB_DEVICES for el in devs.xpath("./" + kind)]
    for el in hubs + others:             # ports given first, then the rest in libvirt's order
        given = _given(el)
        if given and given[0] in buses:
            buses[given[0]].take(given[1], Hub(HUB_PORTS) if el.tag == "hub" else True)
    for el in hubs + others:
        if el.find("address") is not None:
            continue
        for bus, root in sorted(buses.items()):
            path = root.free(())
            if path:
                root.take(path, Hub(HUB_PORTS) if el.tag == "hub" else True)
                el.append(etree.Element("address", type="usb", bus=str(bus), port=".".join(map(str, path))))
                break
