"""Adding and removing devices: attach-disk, detach-disk, attach-interface, detach-interface,
attach-device, detach-device.

The device XML is built the way virsh builds it (``--print-xml`` prints exactly
that), then checked against the domain (duplicate targets and MACs, ...) and
stored with the domain's defaults filled in, atomically and under the domain's
lock. A failure leaves the stored configuration as it was.

Changing a running domain's devices (hotplug) goes through :func:`hotplug`,
which uses ``vsh.kvm.client.attach_device`` / ``detach_device`` when the
client offers them; until then it is a clear error that points to ``--config``.
"""

from __future__ import annotations

import copy
import os

from vsh.commands.config import (CONFIG, CURRENT, DOMAIN, LIVE, change_config, check_config_change, check_readonly,
                                 impact)
from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, VshError, XMLError
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

    The call site for live hotplug: ``vsh.kvm.client.<op>(rundir, device_xml)``
    with ``op`` ``attach_device`` or ``detach_device``. While the client has no
    such operation, say plainly what works instead.
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


def _attach(ctx, ref, node, flags: dict, command_name: str) -> tuple[bool, bool]:
    """Attach the device element ``node``; returns (live, config)."""
    from vsh.core.domain import device_for

    def change(cfg):
        dev = device_for(copy.deepcopy(node))
        cfg.check_attach(dev)
        cfg.add_device(dev)

    do_live, do_config = impact(ref, **flags)
    if do_live:
        if do_config:
            check_config_change(ctx.store, ref, change)
        livedom = ctx.store.load(ref)
        livedom.check_attach(device_for(copy.deepcopy(node)))
        hotplug(ctx, ref, "attach_device", _serialize(node), command_name)
    if do_config:
        change_config(ctx.store, ref, change)
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
         description="Add a disk to the domain. With --config (or --persistent on a shut-off domain)\n"
                     "the persistent configuration gets it; a running domain cannot get disks\n"
                     "hot-plugged yet.",
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
