"""Adding, removing and changing devices: attach-disk, detach-disk, attach-interface,
detach-interface, attach-device, detach-device, detach-device-alias, update-device, change-media.

The device XML is built here the way virsh builds it (``--print-xml`` prints exactly
that; host paths made absolute), and the API (:mod:`vsh.api.devices`) attaches, detaches
or updates it: ``--live``, ``--config``, ``--persistent`` and ``--current`` become its
flags. detach-disk, detach-interface and change-media find the device in the domain's XML
first, as virsh does.
"""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, VshError, XMLError
from vsh.core.output import Message, Text
from vsh.registry import CONFIG_OPT, CURRENT_EXCLUSIVE, CURRENT_OPT, LIVE_OPT, Opt, check_readonly, command

DOMAIN = Opt("domain", kind="domain", required=True, positional=True, help="domain name, id or uuid")
PERSISTENT = Opt("persistent", kind="bool", help="make live change persistent")
CONFIG, LIVE, CURRENT = CONFIG_OPT, LIVE_OPT, CURRENT_OPT
EXCLUSIVE = (("persistent", "current"), *CURRENT_EXCLUSIVE)
FLAG_OPTS = [PERSISTENT, CONFIG, LIVE, CURRENT]
REMOVABLE = ("cdrom", "floppy")


def _serialize(node) -> str:
    from vsh.core.xml import serialize

    return serialize(node)


def _definition(dom, config: bool, live: bool = False, current: bool = False, persistent: bool = False):
    """The definition virsh searches for the device (the inactive one with --config alone), parsed."""
    from vsh.core.domain import Domain

    return Domain.parse(dom.xml(inactive=config and not (live or current or persistent)))


def _abs_sources(node) -> None:
    """A stored definition names files absolutely (what the path means here, and libvirt's schema)."""
    src = node.find("./source")
    if src is not None:
        for key in ("file", "dev"):
            if src.get(key) and not os.path.isabs(src.get(key)):
                src.set(key, os.path.abspath(src.get(key)))


def _done(msg: str, dom, node, done: dict) -> Message:
    return Message(msg, json_data={"domain": dom.name, "device": node.tag, "xml": done.get("xml") or _serialize(node),
                                   "live": done["live"], "config": done["config"]})


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
    from vsh.core.lxmlload import etree

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
    dom = ctx.conn.lookup_domain(domain)
    _abs_sources(disk)
    try:
        done = dom.devices.attach(_serialize(disk), persistent=persistent, config=config, live=live,
                                  current=current)
    except VshError as err:
        raise err.with_context("Failed to attach disk") from None
    return _done("Disk attached successfully", dom, disk, done)


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
    dom = ctx.conn.lookup_domain(domain)
    disk = _definition(dom, config, live, current, persistent).find_disk(target)
    if disk is None:
        raise NotFound(f"No disk found whose source path or target is {target}")
    text = _serialize(disk.node)
    if print_xml:
        return Text(text, json_data={"xml": text})
    check_readonly(ctx, "detach-disk")
    try:
        done = dom.devices.detach(text, persistent=persistent, config=config, live=live, current=current)
    except VshError as err:
        raise err.with_context("Failed to detach disk") from None
    return _done("Disk detached successfully", dom, disk.node, done)


# -- attach-interface / detach-interface ------------------------------------------------------


NET_TYPES = ("network", "bridge", "direct", "user", "ethernet")


def build_interface(type: str, source=None, target=None, mac=None, script=None, model=None,
                    source_mode=None):
    """The <interface> element virsh's attach-interface writes, in its order."""
    from vsh.core.lxmlload import etree

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
    dom = ctx.conn.lookup_domain(domain)
    from vsh.core.domain import normalize_order

    normalize_order(nic)
    try:
        done = dom.devices.attach(_serialize(nic), persistent=persistent, config=config, live=live,
                                  current=current)
    except VshError as err:
        raise err.with_context("Failed to attach interface") from None
    return _done("Interface attached successfully", dom, nic, done)


@command("detach-interface", group="domain", summary="detach network interface",
         opts=[DOMAIN,
               Opt("type", required=True, positional=True, help="network interface type"),
               Opt("mac", kind="interface", help="MAC address"),
               Opt("print-xml", kind="bool", help="print XML which would be used to detach the interface"),
               *FLAG_OPTS],
         exclusive=EXCLUSIVE,
         examples=("detach-interface vm1 network --mac 52:54:00:12:34:56 --config",))
def detach_interface(ctx, domain, type, mac=None, print_xml=False, persistent=False, config=False,
                     live=False, current=False):
    dom = ctx.conn.lookup_domain(domain)
    doc = _definition(dom, config, live, current, persistent)
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
    text = _serialize(nic.node)
    if print_xml:
        return Text(text, json_data={"xml": text})
    check_readonly(ctx, "detach-interface")
    try:
        done = dom.devices.detach(text, persistent=persistent, config=config, live=live, current=current)
    except VshError as err:
        raise err.with_context(context) from None
    return _done("Interface detached successfully", dom, nic.node, done)


# -- attach-device / detach-device -------------------------------------------------------------


def read_device(file: str):
    """A function that parses the file holding one device element (safely: no DTD, no entities,
    a size cap); errors come when it is called."""
    from vsh.core.domain import DEVICE_TAGS
    from vsh.core.inputfile import read_input_file
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
    dom = ctx.conn.lookup_domain(domain)
    try:
        node = parsed()
        done = dom.devices.attach(_serialize(node), persistent=persistent, config=config, live=live,
                                  current=current)
    except VshError as err:
        raise err.with_context(f"Failed to attach device from {file}") from None
    return _done("Device attached successfully", dom, node, done)


@command("detach-device", group="domain", summary="detach device from an XML file",
         opts=[DOMAIN, Opt("file", kind="file", required=True, positional=True, help="XML file"), *FLAG_OPTS],
         exclusive=EXCLUSIVE, mutating=True,
         description="Remove the device described by the XML file. A disk is found by its target,\n"
                     "an interface by its MAC address; other devices must match everything the file\n"
                     "gives (attributes, text and child elements).",
         examples=("detach-device vm1 rng.xml --config",))
def detach_device(ctx, domain, file, persistent=False, config=False, live=False, current=False):
    parsed = read_device(file)
    dom = ctx.conn.lookup_domain(domain)
    try:
        node = parsed()
        done = dom.devices.detach(_serialize(node), persistent=persistent, config=config, live=live,
                                  current=current)
    except VshError as err:
        raise err.with_context(f"Failed to detach device from {file}") from None
    return _done("Device detached successfully", dom, node, done)


@command("detach-device-alias", group="domain", summary="detach device from an alias",
         opts=[DOMAIN, Opt("alias", required=True, positional=True, help="device alias"), CURRENT, CONFIG, LIVE],
         exclusive=EXCLUSIVE[1:], mutating=True,
         description="Remove the device with that alias: a user alias (<alias name='ua-...'/>) kept in\n"
                     "the definition, or, in a running domain, the name QEMU knows the device by.",
         examples=("detach-device-alias vm1 ua-rng0 --config", "detach-device-alias vm1 net1 --live"))
def detach_device_alias(ctx, domain, alias, current=False, config=False, live=False):
    dom = ctx.conn.lookup_domain(domain)
    try:
        done = dom.devices.detach_alias(alias, live=live, config=config, current=current)
    except VshError as err:
        raise err.with_context(f"Failed to detach device with alias {alias}") from None
    return Message("Device detach request sent successfully", json_data={"domain": dom.name, "alias": alias, **done})


# -- update-device / change-media (cdrom and floppy media) -------------------------------------------


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
    dom = ctx.conn.lookup_domain(domain)
    try:
        node = parsed()
        _abs_sources(node)
        done = dom.devices.update(_serialize(node), persistent=persistent, config=config, live=live,
                                  current=current, force=force)
    except VshError as err:
        raise err.with_context(f"Failed to update device from {file}") from None
    return Message("Device updated successfully", json_data={"domain": dom.name, "target": done["target"],
                                                             "live": done["live"], "config": done["config"]})


@command("update-memory-device", group="domain", summary="update memory device of a domain",
         opts=[DOMAIN, Opt("print-xml", kind="bool", help="print updated memory device XML instead of executing "
                                                         "the change"),
               Opt("alias", help="memory device alias"), Opt("node", kind="int", help="memory device target node"),
               Opt("requested-size", help="new value of <requested/> size, as scaled integer (default KiB)"),
               CONFIG, LIVE, CURRENT],
         exclusive=CURRENT_EXCLUSIVE + (("node", "alias"),), mutating=True,
         description="Change the requested size of a virtio-mem memory device (picked by --alias or\n"
                     "--node when there are several). vsh starts no domain with virtio-mem, so this\n"
                     "changes the definition (--config).",
         examples=("update-memory-device vm1 --requested-size 1G --config",))
def update_memory_device(ctx, domain, print_xml=False, alias=None, node=None, requested_size=None, config=False,
                         live=False, current=False):
    from vsh.core.units import parse_scaled
    from vsh.core.xml import parse, serialize

    dom = ctx.conn.lookup_domain(domain)
    root = parse(dom.xml(inactive=config), "domain")
    mems = root.xpath("./devices/memory")
    if alias is not None:
        mems = [m for m in mems if m.find("alias") is not None and m.find("alias").get("name") == alias]
    elif node is not None:
        mems = [m for m in mems if m.findtext("target/node") == str(node)]
    if not mems:
        raise NotFound("no memory device found")
    if len(mems) > 1:
        raise InvalidArgument("multiple memory devices found, use --alias or --node to select one")
    mem = mems[0]
    if requested_size is not None:
        el = mem.find("target/requested")
        if el is None:
            raise XMLError("virtio-mem device is missing <requested/>")
        el.text = str(-(-parse_scaled(requested_size, 1024, "requested-size") // 1024))
        el.set("unit", "KiB")
    mem.tail = None
    text = serialize(mem)
    if print_xml:
        return Text(text, json_data={"xml": text})
    try:
        done = dom.devices.update(text, config=config, live=live, current=current)
    except VshError as err:
        raise err.with_context("Failed to update memory device") from None
    return Text("", json_data={"domain": dom.name, **done})


def media_disk_xml(disk_node, source: str | None, block: bool, path: str, action: str):
    """virsh's virshUpdateDiskXML: the disk element with its medium ejected, inserted or updated."""
    import copy

    from vsh.core.lxmlload import etree

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
    dom = ctx.conn.lookup_domain(domain)
    doc = _definition(dom, config)
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
        done = dom.devices.change_media(target, _serialize(node) if node.find("source") is not None else None,
                                        live=live, config=config, current=current, force=force)
    except VshError as err:
        raise err.with_context(f"Failed to complete action {action} on media") from None
    return Text(msg, json_data={"domain": dom.name, "target": target, "action": action,
                                "source": os.path.abspath(source) if source else None,
                                "live": done["live"], "config": done["config"]})


# -- domif-setlink / domif-getlink -------------------------------------------------------------


IFACE = Opt("interface", kind="interface", required=True, positional=True, help="interface device (MAC Address)")


@command("domif-setlink", group="domain", summary="set link state of a virtual interface",
         opts=[DOMAIN, IFACE,
               Opt("state", required=True, positional=True, help="new state of the device"),
               Opt("config", kind="bool", help="affect next boot"),
               Opt("persistent", kind="bool", help="alias of --config")],
         mutating=True,
         description="Bring the link of an interface (named by its MAC address or target device) up or\n"
                     "down: on the running domain (the guest sees the cable plugged or unplugged), or\n"
                     "with --config (and for an inactive domain) in the persistent <link state=.../>.",
         examples=("domif-setlink vm1 52:54:00:12:34:56 down", "domif-setlink vm1 52:54:00:12:34:56 up --config"))
def domif_setlink(ctx, domain, interface, state, config=False, persistent=False):
    if state.lower() not in ("up", "down"):
        raise InvalidArgument(f"Invalid link state '{state}'")
    dom = ctx.conn.lookup_domain(domain)
    done = dom.set_interface_link(interface, state.lower(), config=config or persistent)
    return Message("Device updated successfully", json_data={"domain": dom.name, "interface": interface,
                                                             "state": state.lower(), **done})


@command("domif-getlink", group="monitor", summary="get link state of a virtual interface",
         opts=[DOMAIN, IFACE, Opt("config", kind="bool", help="Get persistent interface state")],
         description="Print an interface's link state (up or down) in the live definition, or with\n"
                     "--config in the persistent one.",
         examples=("domif-getlink vm1 52:54:00:12:34:56",))
def domif_getlink(ctx, domain, interface, config=False):
    dom = ctx.conn.lookup_domain(domain)
    link = dom.interface_link(interface, inactive=config)
    # virsh prints the pair without a newline (its own blank line after the command ends it)
    return Text(f"{interface} {link['state']}", json_data=link)
