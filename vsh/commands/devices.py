"""Adding, removing and changing devices: attach-disk, detach-disk, attach-interface,
detach-interface, attach-device, detach-device, update-device, change-media.

The device XML is built the way virsh builds it (``--print-xml`` prints exactly
that), then checked against the domain (duplicate targets and MACs, ...) and
stored with the domain's defaults filled in, atomically and under the domain's
lock. A failure leaves the stored configuration as it was.

``--live``, ``--config``, ``--persistent`` and ``--current`` mean what they mean
for virsh (:func:`vsh.commands.config.impact`). A running domain's devices change
through its supervisor (:func:`hotplug`: ``vsh.kvm.client.attach_device`` /
``detach_device`` / ``change_media``, QMP underneath, see ``vsh.kvm.hotplug``).
The live change comes first and the persistent one only after it worked, with
the same device XML (defaults such as a NIC's MAC address filled in once), so a
failed hot-plug leaves both definitions as they were.
"""

from __future__ import annotations

import copy
import os

from vsh.commands.config import (CONFIG, CURRENT, DOMAIN, LIVE, change_config, check_config_change, check_readonly,
                                 impact)
from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, Unsupported, VshError, XMLError
from vsh.core.output import Message, Text
from vsh.registry import Opt, command

PERSISTENT = Opt("persistent", kind="bool", help="make live change persistent")
EXCLUSIVE = (("persistent", "current"), ("current", "live"), ("current", "config"))
FLAG_OPTS = [PERSISTENT, CONFIG, LIVE, CURRENT]


def _serialize(node) -> str:
    from vsh.core.xml import serialize

    return serialize(node)


def hotplug(ctx, ref, op: str, xml: str, command_name: str):
    """Plug a device into (or out of) a running domain through its supervisor.

    ``vsh.kvm.client.<op>(rundir, device_xml)`` with ``op`` ``attach_device`` or
    ``detach_device``. A vsh without such an operation says plainly what works instead.
    """
    try:
        from vsh.kvm import client
    except ImportError:
        client = None
    fn = getattr(client, op, None) if client is not None else None
    if fn is None:
        raise OperationInvalid(
            f"Requested operation is not valid: {command_name} needs --config while the domain is running; "
            "live hotplug is not supported yet",
            hint="add --config to change the configuration used at the next boot")
    return fn(ctx.store.runtime_dir(ref.name), xml)


def complete_device(node) -> None:
    """Fill in, once, the defaults the live and the persistent definition must share
    (a NIC's MAC address; a disk's type, device and bus), as libvirt's define does."""
    from lxml import etree

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


def _live_node(ctx, node):
    """The element as the running domain gets it: a network or bridge NIC gets its bridge
    and a free tap name (vsh.kvm.hostnet), which the configuration never keeps."""
    if node.tag != "interface" or node.get("type") not in ("network", "bridge"):
        return node
    from vsh.core.domain import Interface
    from vsh.core.networks import host_interfaces
    from vsh.kvm import hostnet

    live = copy.deepcopy(node)
    hostnet.plan_tap(ctx.store, Interface(live), host_interfaces() | hostnet.running_taps(ctx.store))
    return live


def _attach(ctx, ref, node, flags: dict, command_name: str) -> tuple[bool, bool]:
    """Attach the device element ``node``; returns (live, config)."""
    from vsh.core.domain import device_for

    def change(cfg):
        dev = device_for(copy.deepcopy(node))
        cfg.check_attach(dev)
        cfg.add_device(dev)

    do_live, do_config = impact(ref, **flags)
    complete_device(node)
    if do_live:
        if do_config:
            check_config_change(ctx.store, ref, change)
        livedom = ctx.store.load(ref)
        livedom.check_attach(device_for(copy.deepcopy(node)))
        hotplug(ctx, ref, "attach_device", _serialize(_live_node(ctx, node)), command_name)
    if do_config:
        try:
            change_config(ctx.store, ref, change)
        except VshError:
            if do_live:     # keep both definitions as they were: unplug what was just plugged
                try:
                    hotplug(ctx, ref, "detach_device", _serialize(node), command_name)
                except VshError:
                    pass
            raise
    return do_live, do_config


def _detach(ctx, ref, find, flags: dict, command_name: str) -> tuple[bool, bool]:
    """Detach the device that ``find(domain)`` returns (or raises for); returns (live, config)."""
    def change(cfg):
        cfg.remove_device(find(cfg))

    do_live, do_config = impact(ref, **flags)
    if do_live:
        if do_config:
            check_config_change(ctx.store, ref, change)
        dev = find(ctx.store.load(ref))
        hotplug(ctx, ref, "detach_device", _serialize(dev.node), command_name)
    if do_config:
        change_config(ctx.store, ref, change)
    return do_live, do_config


def _lookup_doc(ctx, ref, config: bool, live: bool, current: bool, persistent: bool):
    """The definition virsh searches for the device: the inactive one with --config alone."""
    if config and not (live or current or persistent):
        return ctx.store.load(ref, inactive=True)
    return ctx.store.load(ref)


def _done(msg: str, ref, node, live: bool, config: bool) -> Message:
    return Message(msg, json_data={"domain": ref.name, "device": node.tag, "xml": _serialize(node),
                                   "live": live, "config": config})


# -- attach-disk / detach-disk -----------------------------------------------------------------


def disk_source_type(source: str, sourcetype: str | None, driver: str | None) -> str:
    """virsh's rule: a block device is ``block``, anything else ``file``."""
    import stat

    if sourcetype:
        return sourcetype
    if driver in ("file", "tap"):
        return "file"
    try:
        if stat.S_ISBLK(os.stat(source).st_mode):
            return "block"
    except OSError:
        pass
    return "file"


def build_disk(source: str, target: str, targetbus=None, driver=None, subdriver=None, cache=None,
               type=None, mode=None, sourcetype=None, serial=None):
    """The <disk> element virsh's attach-disk writes, in its order."""
    from lxml import etree

    stype = disk_source_type(source, sourcetype, driver)
    disk = etree.Element("disk", type=stype)
    if type:
        disk.set("device", type)
    if driver or subdriver or cache:
        drv = etree.SubElement(disk, "driver")
        if driver:
            drv.set("name", driver)
        if subdriver:
            drv.set("type", subdriver)
        if cache:
            drv.set("cache", cache)
    if source:
        etree.SubElement(disk, "source", {"file" if stype == "file" else "dev": source})
    tgt = etree.SubElement(disk, "target", dev=target)
    if targetbus:
        tgt.set("bus", targetbus)
    if mode:
        etree.SubElement(disk, mode)
    if serial:
        etree.SubElement(disk, "serial").text = serial
    return disk


@command("attach-disk", group="domain", summary="attach disk device",
         opts=[DOMAIN,
               Opt("source", kind="file", required=True, positional=True, help="source of disk device"),
               Opt("target", kind="device", required=True, positional=True, help="target of disk device"),
               Opt("targetbus", help="target bus of disk device"),
               Opt("driver", help="driver of disk device"),
               Opt("subdriver", help="subdriver of disk device"),
               Opt("cache", help="cache mode of disk device"),
               Opt("type", kind="enum", choices=("disk", "cdrom", "floppy", "lun"), help="target device type"),
               Opt("mode", kind="enum", choices=("readonly", "shareable"),
                   help="mode of device reading and writing"),
               Opt("sourcetype", kind="enum", choices=("file", "block"), help="type of source"),
               Opt("serial", help="serial of disk device"),
               Opt("print-xml", kind="bool", help="print XML document rather than attach the disk"),
               *FLAG_OPTS],
         exclusive=EXCLUSIVE,
         description="Add a disk to the domain. --live hot-plugs it into the running domain (through\n"
                     "QMP: blockdev-add with the format --subdriver names, never probed, then\n"
                     "device_add), --config adds it to the configuration used at the next boot,\n"
                     "--persistent does both (only --config on a shut-off domain), --current the one\n"
                     "that applies. Without a flag a running domain is changed, as virsh does.\n"
                     "Machine pc hot-plugs on its root bus; q35 needs an empty pcie-root-port.",
         examples=("attach-disk vm1 /var/lib/images/data.qcow2 vdb --subdriver qcow2 --config",
                   "attach-disk vm1 /tmp/x.img vdc --print-xml"))
def attach_disk(ctx, domain, source, target, targetbus=None, driver=None, subdriver=None, cache=None,
                type=None, mode=None, sourcetype=None, serial=None, print_xml=False, persistent=False,
                config=False, live=False, current=False):
    disk = build_disk(source, target, targetbus, driver, subdriver, cache, type, mode, sourcetype, serial)
    if print_xml:
        text = _serialize(disk)
        return Text(text, json_data={"xml": text})
    check_readonly(ctx, "attach-disk")
    ref = ctx.store.get(domain)
    src = disk.find("./source")
    if src is not None:
        # a stored definition names files absolutely (what the path means now, and libvirt's schema)
        for key in ("file", "dev"):
            if src.get(key) and not os.path.isabs(src.get(key)):
                src.set(key, os.path.abspath(src.get(key)))
    try:
        done = _attach(ctx, ref, disk, dict(persistent=persistent, config=config, live=live, current=current),
                       "attach-disk")
    except VshError as err:
        raise err.with_context("Failed to attach disk") from None
    return _done("Disk attached successfully", ref, disk, *done)


@command("detach-disk", group="domain", summary="detach disk device",
         opts=[DOMAIN,
               Opt("target", kind="device", required=True, positional=True,
                   help="target of disk device (or its source path)"),
               Opt("print-xml", kind="bool", help="print XML which would be used to detach the disk"),
               *FLAG_OPTS],
         exclusive=EXCLUSIVE,
         examples=("detach-disk vm1 vdb --config",))
def detach_disk(ctx, domain, target, print_xml=False, persistent=False, config=False, live=False,
                current=False):
    ref = ctx.store.get(domain)
    doc = _lookup_doc(ctx, ref, config, live, current, persistent)
    disk = doc.find_disk(target)
    if disk is None:
        raise NotFound(f"No disk found whose source path or target is {target}")
    if print_xml:
        text = _serialize(disk.node)
        return Text(text, json_data={"xml": text})
    check_readonly(ctx, "detach-disk")
    dst = disk.target_dev

    def find(dom):
        found = dom.find_disk(dst) if dst else None
        if found is None or found.target_dev != dst:
            raise NotFound(f"device not found: no target device {dst}")
        return found

    try:
        done = _detach(ctx, ref, find, dict(persistent=persistent, config=config, live=live, current=current),
                       "detach-disk")
    except VshError as err:
        raise err.with_context("Failed to detach disk") from None
    return _done("Disk detached successfully", ref, disk.node, *done)


# -- attach-interface / detach-interface ------------------------------------------------------


NET_TYPES = ("network", "bridge", "direct", "user", "ethernet")


def build_interface(type: str, source=None, target=None, mac=None, script=None, model=None,
                    source_mode=None):
    """The <interface> element virsh's attach-interface writes, in its order."""
    from lxml import etree

    from vsh.core.domain import Interface

    nic = etree.Element("interface", type=type)
    attr = Interface.SOURCE_ATTR.get(type)
    if attr is not None:
        if not source:
            raise InvalidArgument(f"command 'attach-interface' requires <source> option for interface "
                                  f"type '{type}'")
        src = etree.SubElement(nic, "source", {attr: source})
        if source_mode and type == "direct":
            src.set("mode", source_mode)
    elif source:
        raise InvalidArgument(f"interface type '{type}' takes no source (got '{source}')")
    if source_mode and type != "direct":
        raise InvalidArgument("--source-mode is only valid with interface type 'direct'")
    if target:
        etree.SubElement(nic, "target", dev=target)
    if mac:
        etree.SubElement(nic, "mac", address=mac)
    if script:
        etree.SubElement(nic, "script", path=script)
    if model:
        etree.SubElement(nic, "model", type=model)
    return nic


@command("attach-interface", group="domain", summary="attach network interface",
         opts=[DOMAIN,
               Opt("type", kind="enum", required=True, positional=True, choices=NET_TYPES,
                   help="network interface type"),
               Opt("source", kind="network", positional=True,
                   help="source of network interface (network, bridge or host device; none for user)"),
               Opt("target", help="target network name"),
               Opt("mac", help="MAC address"),
               Opt("script", help="script used to bridge network interface"),
               Opt("model", help="model type"),
               Opt("source-mode", kind="enum", choices=("bridge", "vepa", "private", "passthrough"),
                   help="mode of a direct interface"),
               Opt("print-xml", kind="bool", help="print XML document rather than attach the interface"),
               *FLAG_OPTS],
         exclusive=EXCLUSIVE,
         examples=("attach-interface vm1 network default --model virtio --config",
                   "attach-interface vm1 user --config"))
def attach_interface(ctx, domain, type, source=None, target=None, mac=None, script=None, model=None,
                     source_mode=None, print_xml=False, persistent=False, config=False, live=False,
                     current=False):
    nic = build_interface(type, source, target, mac, script, model, source_mode)
    if print_xml:
        text = _serialize(nic)
        return Text(text, json_data={"xml": text})
    check_readonly(ctx, "attach-interface")
    ref = ctx.store.get(domain)
    stored = copy.deepcopy(nic)
    from vsh.core.domain import normalize_order

    normalize_order(stored)
    try:
        done = _attach(ctx, ref, stored, dict(persistent=persistent, config=config, live=live, current=current),
                       "attach-interface")
    except VshError as err:
        raise err.with_context("Failed to attach interface") from None
    return _done("Interface attached successfully", ref, stored, *done)


@command("detach-interface", group="domain", summary="detach network interface",
         opts=[DOMAIN,
               Opt("type", required=True, positional=True, help="network interface type"),
               Opt("mac", help="MAC address"),
               Opt("print-xml", kind="bool", help="print XML which would be used to detach the interface"),
               *FLAG_OPTS],
         exclusive=EXCLUSIVE,
         examples=("detach-interface vm1 network --mac 52:54:00:12:34:56 --config",))
def detach_interface(ctx, domain, type, mac=None, print_xml=False, persistent=False, config=False,
                     live=False, current=False):
    ref = ctx.store.get(domain)
    doc = _lookup_doc(ctx, ref, config, live, current, persistent)
    context = "Failed to detach interface"
    candidates = [nic for nic in doc.interfaces if nic.type == type]
    if mac:
        candidates = [nic for nic in candidates if (nic.mac or "").lower() == mac.lower()]
        if not candidates:
            raise NotFound(f"No interface with MAC address {mac} was found", context)
    if not candidates:
        raise NotFound("No interface found", context)
    if len(candidates) > 1:
        if mac:
            raise OperationInvalid(f"multiple interfaces with MAC address {mac} were found", context)
        raise OperationInvalid(f"Domain has {len(candidates)} interfaces. Please specify which one to detach "
                               "using --mac", context)
    nic = candidates[0]
    if print_xml:
        text = _serialize(nic.node)
        return Text(text, json_data={"xml": text})
    check_readonly(ctx, "detach-interface")
    want_mac = nic.mac

    def find(dom):
        if want_mac:
            found = [n for n in dom.interfaces if (n.mac or "").lower() == want_mac.lower()]
        else:
            found = dom.matching_devices(nic.node)
        if not found:
            raise NotFound(f"device not found: no interface matching MAC address {want_mac} found"
                           if want_mac else "device not found: no matching interface found")
        return found[0]

    try:
        done = _detach(ctx, ref, find, dict(persistent=persistent, config=config, live=live, current=current),
                       "detach-interface")
    except VshError as err:
        raise err.with_context(context) from None
    return _done("Interface detached successfully", ref, nic.node, *done)


# -- attach-device / detach-device -------------------------------------------------------------


def read_device(file: str):
    """Parse a file holding one device element (safely: no DTD, no entities, a size cap)."""
    from vsh.core.domain import DEVICE_TAGS
    from vsh.core.store import read_input_file
    from vsh.core.xml import parse

    data = read_input_file(file)

    def parsed():
        node = parse(data, "device_definition", root_tag=None)
        if not isinstance(node.tag, str) or node.tag not in DEVICE_TAGS:
            raise XMLError(f"XML error: unknown device type '{node.tag}'")
        return node

    return parsed


@command("attach-device", group="domain", summary="attach device from an XML file",
         opts=[DOMAIN, Opt("file", kind="file", required=True, positional=True, help="XML file"), *FLAG_OPTS],
         exclusive=EXCLUSIVE, mutating=True,
         description="Add the device described by the XML file (one element such as <disk>,\n"
                     "<interface>, <serial>, <rng>...) to the domain.",
         examples=("attach-device vm1 rng.xml --config",))
def attach_device(ctx, domain, file, persistent=False, config=False, live=False, current=False):
    parsed = read_device(file)
    ref = ctx.store.get(domain)
    try:
        node = parsed()
        done = _attach(ctx, ref, node, dict(persistent=persistent, config=config, live=live, current=current),
                       "attach-device")
    except VshError as err:
        raise err.with_context(f"Failed to attach device from {file}") from None
    return _done("Device attached successfully", ref, node, *done)


@command("detach-device", group="domain", summary="detach device from an XML file",
         opts=[DOMAIN, Opt("file", kind="file", required=True, positional=True, help="XML file"), *FLAG_OPTS],
         exclusive=EXCLUSIVE, mutating=True,
         description="Remove the device described by the XML file. A disk is found by its target,\n"
                     "an interface by its MAC address; other devices must match everything the file\n"
                     "gives (attributes, text and child elements).",
         examples=("detach-device vm1 rng.xml --config",))
def detach_device(ctx, domain, file, persistent=False, config=False, live=False, current=False):
    parsed = read_device(file)
    ref = ctx.store.get(domain)

    def find(dom):
        matches = dom.matching_devices(node)
        if not matches:
            raise NotFound(f"device not found: no <{node.tag}> device of domain '{ref.name}' matches the XML")
        if len(matches) > 1:
            raise OperationInvalid(f"operation failed: {len(matches)} <{node.tag}> devices match the XML; add "
                                   "details (such as <address> or <alias>) that pick one")
        return matches[0]

    try:
        node = parsed()
        done = _detach(ctx, ref, find, dict(persistent=persistent, config=config, live=live, current=current),
                       "detach-device")
    except VshError as err:
        raise err.with_context(f"Failed to detach device from {file}") from None
    return _done("Device detached successfully", ref, node, *done)


# -- update-device / change-media (cdrom and floppy media) -------------------------------------------


REMOVABLE = ("cdrom", "floppy")


def set_media(disk_node, new_node) -> None:
    """Give ``disk_node`` the medium of ``new_node`` (its type, <driver> and <source>), or none."""
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


def _media_change(ctx, ref, target: str, new_node, do_live: bool, do_config: bool, force: bool) -> None:
    """Put the medium of ``new_node`` (None: eject) into the removable disk ``target``,
    live first, then in the persistent definition."""

    def change(cfg):
        disk = next((d for d in cfg.disks if d.target_dev == target), None)
        if disk is None:
            raise NotFound(f"No disk found whose source path or target is {target}")
        if disk.device not in REMOVABLE:
            raise OperationInvalid(f"The disk device '{target}' is not removable")
        set_media(disk.node, new_node)

    if do_live:
        if do_config:
            check_config_change(ctx.store, ref, change)
        try:
            from vsh.kvm import client
        except ImportError:
            client = None
        fn = getattr(client, "change_media", None)
        if fn is None:
            raise OperationInvalid("Requested operation is not valid: changing the media of a running domain "
                                   "is not supported by this vsh", hint="use --config")
        fn(ctx.store.runtime_dir(ref.name), target, _serialize(new_node) if new_node is not None else None,
           force=force)
    if do_config:
        change_config(ctx.store, ref, change)


@command("update-device", group="domain", summary="update device from an XML file",
         opts=[DOMAIN, Opt("file", kind="file", required=True, positional=True, help="XML file"), *FLAG_OPTS,
               Opt("force", kind="bool", help="force device update (open a tray the guest has locked)")],
         exclusive=EXCLUSIVE, mutating=True,
         description="Change a device as the XML file describes it. vsh can change the medium of a cdrom\n"
                     "or floppy disk: the file is the <disk> element (found by its <target dev>) with the\n"
                     "new <source> (and <driver type>), or without <source> to eject. Other changes are\n"
                     "refused: detach the device and attach the new one.",
         examples=("update-device vm1 cdrom.xml --live", "update-device vm1 cdrom.xml --persistent"))
def update_device(ctx, domain, file, persistent=False, config=False, live=False, current=False, force=False):
    parsed = read_device(file)
    ref = ctx.store.get(domain)
    context = f"Failed to update device from {file}"
    try:
        node = parsed()
        if node.tag != "disk" or node.get("device") not in REMOVABLE:
            raise Unsupported("operation not supported: update-device can change only the medium (<source>) "
                              "of a cdrom or floppy <disk>; detach other devices and attach the new ones")
        target = node.find("target").get("dev") if node.find("target") is not None else None
        if not target:
            raise XMLError("missing disk target (<target dev='...'/>)")
        do_live, do_config = impact(ref, live=live, config=config, current=current, persistent=persistent,
                                    default="current")
        for flag, dom in ((do_live, ctx.store.load(ref) if do_live else None),
                          (do_config, ctx.store.load(ref, inactive=True) if do_config else None)):
            if not flag:
                continue
            disk = next((d for d in dom.disks if d.target_dev == target), None)
            if disk is None:
                raise NotFound(f"device not found: no disk with target '{target}'")
            if disk.device != node.get("device"):
                raise Unsupported(f"operation not supported: disk '{target}' is a {disk.device}, the XML "
                                  f"describes a {node.get('device')}")
        src = node.find("source")
        if src is not None:
            for key in ("file", "dev"):
                if src.get(key) and not os.path.isabs(src.get(key)):
                    src.set(key, os.path.abspath(src.get(key)))
        new_node = node if src is not None and (src.get("file") or src.get("dev")) else None
        _media_change(ctx, ref, target, new_node, do_live, do_config, force)
    except VshError as err:
        raise err.with_context(context) from None
    return Message("Device updated successfully", json_data={"domain": ref.name, "target": target,
                                                             "live": do_live, "config": do_config})


def media_disk_xml(disk_node, source: str | None, block: bool, path: str, action: str):
    """virsh's virshUpdateDiskXML: the disk element with its medium ejected, inserted or updated."""
    from lxml import etree

    node = copy.deepcopy(disk_node)
    for bs in node.findall("backingStore"):
        node.remove(bs)
    if node.get("device") not in REMOVABLE:
        raise OperationInvalid(f"The disk device '{path}' is not removable")
    src = node.find("source")
    if action == "eject":
        if src is None:
            raise OperationInvalid(f"The disk device '{path}' doesn't have media")
        source, block = None, False
    elif not source:
        raise InvalidArgument("New disk media source was not specified")
    policy = None
    if src is not None:
        if action == "insert" and (src.get("file") or src.get("dev") or src.get("name")):
            raise OperationInvalid(f"The disk device '{path}' already has media")
        policy = src.get("startupPolicy")
        node.remove(src)
    node.set("type", "block" if block else "file")
    if source:
        new = etree.Element("source", {"dev" if block else "file": os.path.abspath(source)})
        if policy:
            new.set("startupPolicy", policy)
        target = node.find("target")
        if target is not None:
            target.addprevious(new)
        else:
            node.append(new)
    return node


@command("change-media", group="domain", summary="Change media of CD or floppy drive",
         opts=[DOMAIN,
               Opt("path", kind="device", required=True, positional=True,
                   help="Fully-qualified path or target of disk device"),
               Opt("source", kind="file", positional=True, help="source of the media"),
               Opt("eject", kind="bool", help="Eject the media"),
               Opt("insert", kind="bool", help="Insert the media"),
               Opt("update", kind="bool", help="Update the media"),
               Opt("current", kind="bool", help="can be either or both of --live and --config, depends on "
                                                "implementation hypervisor driver"),
               Opt("live", kind="bool", help="alter live configuration of running domain"),
               Opt("config", kind="bool", help="alter persistent configuration, effect observed on next boot"),
               Opt("force", kind="bool", help="force media changing"),
               Opt("print-xml", kind="bool", help="print XML document rather than change media"),
               Opt("block", kind="bool", help="source media is a block device")],
         exclusive=(("eject", "insert"), ("eject", "update"), ("insert", "update"), ("eject", "block"),
                    ("current", "live"), ("current", "config")),
         description="Eject, insert or replace the medium of a cdrom or floppy disk (found by target\n"
                     "or by its current source path). Without --eject or --insert the medium is\n"
                     "updated (--update with no source ejects). On a running domain the tray is opened\n"
                     "first; a guest that locked it keeps it closed unless --force is given.",
         examples=("change-media vm1 sda --eject", "change-media vm1 sda /isos/new.iso --insert",
                   "change-media vm1 sda /isos/other.iso --update --config"))
def change_media(ctx, domain, path, source=None, eject=False, insert=False, update=False, current=False,
                 live=False, config=False, force=False, print_xml=False, block=False):
    if update and not source:
        update, eject = False, True
    if eject:
        action, msg = "eject", "Successfully ejected media."
    elif insert:
        action, msg = "insert", "Successfully inserted media."
    else:
        action, msg = "update", "Successfully updated media."
    ref = ctx.store.get(domain)
    doc = ctx.store.load(ref, inactive=True) if config else ctx.store.load(ref)
    disk = next((d for d in doc.disks if d.device in REMOVABLE and (d.target_dev == path or (
        d.node.find("source") is not None and path in (d.node.find("source").get("file"),
                                                       d.node.find("source").get("dev"))))), None)
    if disk is None:
        raise NotFound(f"No disk found whose source path or target is {path}")
    node = media_disk_xml(disk.node, source, block, path, action)
    if print_xml:
        text = _serialize(node)
        return Text(text, json_data={"xml": text})
    check_readonly(ctx, "change-media")
    target = disk.target_dev
    try:
        do_live, do_config = impact(ref, live=live, config=config, current=current, default="current")
        new_node = node if node.find("source") is not None else None
        _media_change(ctx, ref, target, new_node, do_live, do_config, force)
    except VshError as err:
        raise err.with_context(f"Failed to complete action {action} on media") from None
    return Text(msg, json_data={"domain": ref.name, "target": target, "action": action,
                                "source": os.path.abspath(source) if source else None,
                                "live": do_live, "config": do_config})
