"""Devices of one domain through libvirt: attach, detach, update, change media."""

from __future__ import annotations

from vsh.api.devices import DomainDevices
from vsh.api.libvirt.handles import AFFECT_CONFIG, AFFECT_LIVE, affect, changed, parse_xml
from vsh.core.errors import NotFound, OperationInvalid

_FORCE = 4      # VIR_DOMAIN_DEVICE_MODIFY_FORCE


class LibvirtDomainDevices(DomainDevices):
    def __init__(self, dom):
        self.dom = dom

    def _flags(self, live: bool, config: bool, persistent: bool) -> tuple[int, bool]:
        """virsh's flags: ``persistent`` is config, and live too when the domain runs."""
        active = self.dom.active()
        flags = affect(live, config or persistent)
        if persistent and active:
            flags |= AFFECT_LIVE
        return flags, active

    def _done(self, flags: int, active: bool, current: bool) -> dict:
        return changed(active, self.dom.persistent(), bool(flags & AFFECT_LIVE), bool(flags & AFFECT_CONFIG),
                       current)

    def attach(self, xml: str, live=False, config=False, current=False, persistent=False) -> dict:
        flags, active = self._flags(live, config, persistent)
        self.dom._call("virDomainAttachDeviceFlags", xml, flags)
        return {**self._done(flags, active, current), "device": parse_xml(xml).tag, "xml": xml}

    def detach(self, xml: str, live=False, config=False, current=False, persistent=False) -> dict:
        flags, active = self._flags(live, config, persistent)
        self.dom._call("virDomainDetachDeviceFlags", xml, flags)
        return self._done(flags, active, current)

    def update(self, xml: str, live=False, config=False, current=False, persistent=False, force=False) -> dict:
        flags, active = self._flags(live, config, persistent)
        self.dom._call("virDomainUpdateDeviceFlags", xml, flags | (_FORCE if force else 0))
        target = parse_xml(xml).find("target")
        return {**self._done(flags, active, current), "target": target.get("dev") if target is not None else None}

    def change_media(self, target: str, xml: str | None, live=False, config=False, current=False,
                     force=False) -> dict:
        from xml.etree import ElementTree

        active = self.dom.active()
        inactive = config and not live or not active
        disk = next((d for d in self.dom._tree(inactive).iter("disk")
                     if d.find("target") is not None and d.find("target").get("dev") == target), None)
        if disk is None:
            raise NotFound(f"No disk found whose source path or target is {target}")
        if disk.get("device") not in ("cdrom", "floppy"):
            raise OperationInvalid(f"The disk device '{target}' is not removable")
        for tag in ("source", "driver"):
            for el in disk.findall(tag):
                disk.remove(el)
        if xml:
            new = parse_xml(xml)
            for tag in ("driver", "source"):
                el = new.find(tag)
                if el is not None:
                    disk.insert(0, el)
        flags = affect(live, config) | (_FORCE if force else 0)
        self.dom._call("virDomainUpdateDeviceFlags", ElementTree.tostring(disk, encoding="unicode"), flags)
        return changed(active, self.dom.persistent(), live, config, current)

    def detach_alias(self, alias: str, live=False, config=False, current=False) -> dict:
        flags = affect(live, config)
        self.dom._call("virDomainDetachDeviceAlias", alias, flags)
        return changed(self.dom.active(), self.dom.persistent(), live, config, current)
