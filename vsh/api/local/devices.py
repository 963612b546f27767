"""The local driver: devices of one domain: attach, detach, update, change media.

The device is checked against the domain (duplicate targets and MACs, ...) and stored
with the domain's defaults filled in, atomically and under the domain's lock. A running
domain's devices change through its supervisor (``vsh.kvm.client.attach_device`` /
``detach_device`` / ``change_media``, QMP underneath, see ``vsh.kvm.hotplug``). The live
change comes first and the persistent one only after it worked, with the same device XML
(defaults such as a NIC's MAC address filled in once), so a failed hot-plug leaves both
definitions as they were.
"""

from __future__ import annotations

from vsh.api.devices import DomainDevices
from vsh.api.local.changes import change_config, check_config_change, impact, supervisor_call
from vsh.core.errors import NotFound, OperationInvalid, Unsupported, VshError, XMLError

REMOVABLE = ("cdrom", "floppy")


def _parse(xml: str):
    """One device element from XML text (safely: no DTD, no entities, a size cap)."""
    from vsh.core.domain import DEVICE_TAGS
    from vsh.core.xml import parse

    node = parse(xml, "device_definition", root_tag=None)
    if not isinstance(node.tag, str) or node.tag not in DEVICE_TAGS:
        raise XMLError(f"XML error: unknown device type '{node.tag}'")
    return node


def _serialize(node) -> str:
    from vsh.core.xml import serialize

    return serialize(node)


def complete_device(node) -> None:
    """Fill in, once, the defaults the live and the persistent definition must share
    (a NIC's MAC address; a disk's type, device and bus), as libvirt's define does."""
    from vsh.core.lxmlload import etree

    from vsh.core.domain import default_bus, normalize_order, random_mac

    if node.tag == "interface":
        mac = node.find("mac")
        if mac is None or not mac.get("address"):
            if mac is not None:
                node.remove(mac)
            node.append(etree.Element("mac", address=random_mac()))
            normalize_order(node)
    elif node.tag == "disk":
        if node.get("type") is None:
            node.set("type", "file")
        if node.get("device") is None:
            node.set("device", "disk")
        target = node.find("target")
        if target is not None and target.get("dev") and not target.get("bus"):
            target.set("bus", default_bus(target.get("dev"), node.get("device")))


def set_media(disk_node, new_node) -> None:
    """Give ``disk_node`` the medium of ``new_node`` (its type, <driver> and <source>), or none."""
    import copy

    from vsh.core.domain import normalize_order

    src = disk_node.find("source")
    if src is not None:
        disk_node.remove(src)
    for bs in disk_node.findall("backingStore"):
        disk_node.remove(bs)
    if new_node is None:
        return
    disk_node.set("type", new_node.get("type", "file"))
    new_src = new_node.find("source")
    if new_src is not None:
        disk_node.append(copy.deepcopy(new_src))
    new_drv = new_node.find("driver")
    if new_drv is not None:
        old = disk_node.find("driver")
        if old is not None:
            disk_node.remove(old)
        disk_node.append(copy.deepcopy(new_drv))
    normalize_order(disk_node)


def _not_found(node, name: str) -> NotFound:
    if node.tag == "disk":
        target = node.find("./target")
        return NotFound(f"device not found: no target device {target.get('dev') if target is not None else None}")
    if node.tag == "interface":
        mac = node.find("./mac")
        if mac is not None and mac.get("address"):
            return NotFound(f"device not found: no interface matching MAC address {mac.get('address')} found")
        return NotFound("device not found: no matching interface found")
    return NotFound(f"device not found: no <{node.tag}> device of domain '{name}' matches the XML")


class LocalDomainDevices(DomainDevices):
    def __init__(self, dom):
        self.dom = dom

    def _live_node(self, node):
        """The element as the running domain gets it: a network or bridge NIC gets its bridge
        and a free tap name (vsh.kvm.hostnet), which the configuration never keeps."""
        if node.tag != "interface" or node.get("type") not in ("network", "bridge"):
            return node
        import copy

        from vsh.core.domain import Interface
        from vsh.core.networks import host_interfaces
        from vsh.kvm import hostnet

        store = self.dom.store
        live = copy.deepcopy(node)
        hostnet.plan_tap(store, Interface(live), host_interfaces() | hostnet.running_taps(store))
        return live

    def attach(self, xml: str, live=False, config=False, current=False, persistent=False) -> dict:
        import copy

        from vsh.core.domain import device_for

        store, ref = self.dom.store, self.dom.ref
        node = _parse(xml)

        def change(cfg):
            dev = device_for(copy.deepcopy(node))
            cfg.check_attach(dev)
            cfg.add_device(dev)

        do_live, do_config = impact(ref, live=live, config=config, current=current, persistent=persistent)
        complete_device(node)
        if do_live:
            if do_config:
                check_config_change(store, ref, change)
            store.load(ref).check_attach(device_for(copy.deepcopy(node)))
            if node.find("source[@fdgroup]") is not None:
                from vsh.core.errors import Unsupported

                raise Unsupported("operation not supported: a disk opened through an fd group can be plugged "
                                  "in at start only (QEMU gets the group's descriptors when it starts)",
                                  hint="attach it with --config, then start the domain in the session that "
                                       "ran dom-fd-associate")
            supervisor_call(store, ref, "attach_device", _serialize(self._live_node(node)))
        if do_config:
            try:
                change_config(store, ref, change)
            except VshError:
                if do_live:     # keep both definitions as they were: unplug what was just plugged
                    try:
                        supervisor_call(store, ref, "detach_device", _serialize(node))
                    except VshError:
                        pass
                raise
        return {"live": do_live, "config": do_config, "device": node.tag, "xml": _serialize(node)}

    def detach(self, xml: str, live=False, config=False, current=False, persistent=False) -> dict:
        store, ref = self.dom.store, self.dom.ref
        node = _parse(xml)

        def find(dom):
            matches = dom.matching_devices(node)
            if not matches:
                raise _not_found(node, ref.name)
            if len(matches) > 1 and node.tag not in ("disk", "interface"):
                raise OperationInvalid(f"operation failed: {len(matches)} <{node.tag}> devices match the XML; add "
                                       "details (such as <address> or <alias>) that pick one")
            return matches[0]

        def change(cfg):
            cfg.remove_device(find(cfg))

        do_live, do_config = impact(ref, live=live, config=config, current=current, persistent=persistent)
        if do_live:
            if do_config:
                check_config_change(store, ref, change)
            supervisor_call(store, ref, "detach_device", _serialize(find(store.load(ref)).node))
        if do_config:
            change_config(store, ref, change)
        return {"live": do_live, "config": do_config}

    def update(self, xml: str, live=False, config=False, current=False, persistent=False, force=False) -> dict:
        store, ref = self.dom.store, self.dom.ref
        node = _parse(xml)
        if node.tag == "memory" and node.get("model") == "virtio-mem":
            return self._update_memory(node, live, config, current, persistent)
        if node.tag != "disk" or node.get("device") not in REMOVABLE:
            raise Unsupported("operation not supported: update-device can change only the medium (<source>) "
                              "of a cdrom or floppy <disk>; detach other devices and attach the new ones")
        target = node.find("target").get("dev") if node.find("target") is not None else None
        if not target:
            raise XMLError("missing disk target (<target dev='...'/>)")
        do_live, do_config = impact(ref, live=live, config=config, current=current, persistent=persistent,
                                    default="current")
        for flag, inactive in ((do_live, False), (do_config, True)):
            if not flag:
                continue
            disk = next((d for d in store.load(ref, inactive=inactive).disks if d.target_dev == target), None)
            if disk is None:
                raise NotFound(f"device not found: no disk with target '{target}'")
            if disk.device != node.get("device"):
                raise Unsupported(f"operation not supported: disk '{target}' is a {disk.device}, the XML "
                                  f"describes a {node.get('device')}")
        src = node.find("source")
        new_node = node if src is not None and (src.get("file") or src.get("dev")) else None
        self._media_change(target, new_node, do_live, do_config, force)
        return {"live": do_live, "config": do_config, "target": target}

    def _update_memory(self, node, live, config, current, persistent) -> dict:
        """A virtio-mem device's new requested size (the one change libvirt allows), in the
        definitions that have the device (a running domain never does: start refuses virtio-mem)."""
        store, ref = self.dom.store, self.dom.ref
        alias = node.find("alias").get("name") if node.find("alias") is not None else None
        target_node = node.findtext("target/node")
        requested = node.find("target/requested")
        if requested is None:
            raise XMLError("XML error: virtio-mem device is missing <requested/>")
        do_live, do_config = impact(ref, live=live, config=config, current=current, persistent=persistent,
                                    default="current")

        def find(d):
            mems = d.node.xpath("./devices/memory[@model='virtio-mem']")
            if alias is not None:
                mems = [m for m in mems if m.find("alias") is not None and m.find("alias").get("name") == alias]
            elif target_node is not None:
                mems = [m for m in mems if m.findtext("target/node") == target_node]
            if len(mems) != 1 or mems[0].find("target/requested") is None:
                raise NotFound("device not found: matching memory device was not found")
            return mems[0]

        def change(d):
            el = find(d).find("target/requested")
            el.text = (requested.text or "").strip()
            el.set("unit", requested.get("unit", "KiB"))

        if do_live:
            find(store.load(ref))
        if do_config:
            change_config(store, ref, change)
        return {"live": do_live, "config": do_config, "target": alias or target_node}

    def change_media(self, target: str, xml: str | None, live=False, config=False, current=False,
                     force=False) -> dict:
        do_live, do_config = impact(self.dom.ref, live=live, config=config, current=current, default="current")
        self._media_change(target, _parse(xml) if xml is not None else None, do_live, do_config, force)
        return {"live": do_live, "config": do_config}

    def _media_change(self, target: str, new_node, do_live: bool, do_config: bool, force: bool) -> None:
        """Put the medium of ``new_node`` (None: eject) into the removable disk ``target``,
        live first, then in the persistent definition."""
        store, ref = self.dom.store, self.dom.ref

        def change(cfg):
            disk = next((d for d in cfg.disks if d.target_dev == target), None)
            if disk is None:
                raise NotFound(f"No disk found whose source path or target is {target}")
            if disk.device not in REMOVABLE:
                raise OperationInvalid(f"The disk device '{target}' is not removable")
            set_media(disk.node, new_node)

        if do_live:
            if do_config:
                check_config_change(store, ref, change)
            supervisor_call(store, ref, "change_media", target,
                            _serialize(new_node) if new_node is not None else None, force=force)
        if do_config:
            change_config(store, ref, change)

    def detach_alias(self, alias: str, live=False, config=False, current=False) -> dict:
        store, ref = self.dom.store, self.dom.ref
        do_live, do_config = impact(ref, live=live, config=config, current=current, default="current")
        if do_config:
            check_config_change(store, ref, lambda cfg: cfg.remove_device(_by_alias(cfg, alias)))
        if do_live:
            dev = _by_alias(store.load(ref), alias, store.runtime_dir(ref.name))
            supervisor_call(store, ref, "detach_device", _serialize(dev.node))
        if do_config:
            change_config(store, ref, lambda cfg: cfg.remove_device(_by_alias(cfg, alias)))
        return {"live": do_live, "config": do_config}


def _by_alias(dom, alias: str, rundir=None):
    """The device of ``dom`` whose <alias name> is ``alias``; in a running domain's live XML
    also the device QEMU knows by that id (libvirt's live XML names every device)."""
    for dev in dom.devices():
        el = dev.node.find("alias")
        name = el.get("name") if el is not None else None
        if name == alias:
            return dev
        if rundir is not None and name is None and dev.node.tag != "emulator" and _qemu_id(dom, dev, rundir) == alias:
            return dev
    raise NotFound(f"device not found: no device found with alias {alias}")


def _qemu_id(dom, dev, rundir) -> str:
    from vsh.kvm.qemudevs import device_id

    try:
        return device_id(dom, dev.node, rundir)
    except VshError:
        return ""
