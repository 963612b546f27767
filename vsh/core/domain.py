"""A typed model over libvirt domain XML.

Each class is a short list of declared properties; every property is an XPath
relative to the object's element with a converter (virt-manager's xmlbuilder
idea). The lxml tree stays the source of truth, so elements and attributes the
model does not know survive define → dumpxml. ``node`` is the escape hatch.
"""

from __future__ import annotations

import re

from vsh.core.errors import InvalidArgument, OperationInvalid, XMLError

# -- units -------------------------------------------------------------------------


def unit_scale(unit: str | None) -> int:
    """Bytes per unit, libvirt's rules (KiB default for memory)."""
    from vsh.core.units import scale_for_unit

    if unit is None or unit == "":
        return 1024
    scale = scale_for_unit(unit)
    if scale is None:
        raise XMLError(f"invalid unit '{unit}'")
    return scale


def to_kib(value: str, unit: str | None, what: str) -> int:
    text = (value or "").strip()
    if not re.fullmatch(r"\d+", text):
        raise XMLError(f"invalid value '{value}' for {what}: expected a non-negative integer")
    try:
        scale = unit_scale(unit)
    except XMLError:
        raise XMLError(f"invalid unit '{unit}' for {what}") from None
    total = int(text) * scale
    return (total + 1023) // 1024


# -- declared properties ---------------------------------------------------------


def _split(path: str) -> tuple[str, str | None]:
    """'./a/b/@c' → ('./a/b', 'c'); './a' → ('./a', None)."""
    if "/@" in path:
        el, attr = path.rsplit("/@", 1)
        return el, attr
    if path.startswith("@"):
        return ".", path[1:]
    return path, None


# libvirt's element order, used when the model creates an element
ORDER = {
    "domain": ["name", "uuid", "genid", "title", "description", "metadata", "maxMemory", "memory",
               "currentMemory", "blkiotune", "memtune", "memoryBacking", "vcpu", "vcpus", "iothreads",
               "cputune", "resource", "sysinfo", "bootloader", "os", "idmap", "features", "cpu", "clock",
               "on_poweroff", "on_reboot", "on_crash", "on_lockfailure", "pm", "perf", "devices",
               "seclabel", "keywrap", "launchSecurity"],
    "os": ["type", "firmware", "loader", "nvram", "kernel", "initrd", "cmdline", "dtb", "boot", "bootmenu",
           "smbios", "bios"],
    "disk": ["driver", "source", "backingStore", "target", "iotune", "boot", "readonly", "shareable",
             "serial", "wwn", "alias", "address"],
    "interface": ["mac", "source", "virtualport", "ip", "route", "script", "target", "guest", "model",
                  "driver", "backend", "link", "mtu", "bandwidth", "boot", "rom", "alias", "address"],
    "cpu": ["model", "vendor", "topology", "cache", "feature", "numa"],
    "hostdev": ["driver", "source", "boot", "rom", "readonly", "shareable", "alias", "address"],
    "filesystem": ["driver", "binary", "source", "target", "readonly", "alias", "address"],
    "devices": ["emulator", "disk", "controller", "lease", "filesystem", "interface", "smartcard", "serial",
                "parallel", "console", "channel", "input", "tpm", "graphics", "sound", "audio", "video",
                "hostdev", "redirdev", "redirfilter", "hub", "watchdog", "memballoon", "rng", "panic",
                "shmem", "memory", "iommu", "vsock", "crypto"],
}

# every element libvirt accepts inside <devices> (attach-device / detach-device)
DEVICE_TAGS = frozenset(ORDER["devices"]) - {"emulator", "redirfilter"}


def normalize_order(node) -> None:
    """Sort the children of ``node`` into libvirt's order (stable; unknown elements go last)."""
    order = ORDER.get(node.tag)
    if not order:
        return
    children = list(node)
    rank = {tag: i for i, tag in enumerate(order)}
    ordered = sorted(children, key=lambda el: rank.get(el.tag, len(order)) if isinstance(el.tag, str)
                     else len(order))
    for el in children:
        node.remove(el)
    for el in ordered:
        node.append(el)


def subset_match(given, candidate) -> bool:
    """True when every attribute, text and child of ``given`` is also in ``candidate``.

    detach-device uses it: the XML a user gives may leave out what libvirt added
    (addresses, aliases, defaults) and still name one device.
    """
    if given.tag != candidate.tag:
        return False
    for key, value in given.attrib.items():
        if candidate.get(key) != value:
            return False
    text = (given.text or "").strip()
    if text and text != (candidate.text or "").strip():
        return False
    for child in given:
        if not isinstance(child.tag, str):
            continue
        if not any(subset_match(child, other) for other in candidate if other.tag == child.tag):
            return False
    return True


def _insert_ordered(parent, child) -> None:
    order = ORDER.get(parent.tag)
    if not order or child.tag not in order:
        parent.append(child)
        return
    rank = order.index(child.tag)
    for existing in parent:
        if isinstance(existing.tag, str) and existing.tag in order and order.index(existing.tag) > rank:
            existing.addprevious(child)
            return
    parent.append(child)


def ensure(node, path: str):
    """Find or create the element at a simple relative path like ``./os/type``."""
    from lxml import etree

    if path in (".", ""):
        return node
    current = node
    for step in path.split("/"):
        if step in (".", ""):
            continue
        found = current.find(step)
        if found is None:
            tag = re.sub(r"\[.*\]$", "", step)
            found = etree.Element(tag)
            _insert_ordered(current, found)
            for key, value in re.findall(r"\[@([\w-]+)='([^']*)'\]", step):
                found.set(key, value)
        current = found
    return current


class XProp:
    """A property stored at an XPath: ``./name``, ``./target/@dev``."""

    def __init__(self, path: str, conv=None, fmt=None,
                 doc: str = ""):
        self.path = path
        self.el_path, self.attr = _split(path)
        self.conv = conv
        self.fmt = fmt or (lambda v: str(v))
        self.__doc__ = doc

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        el = obj.node if self.el_path in (".", "") else obj.node.find(self.el_path)
        if el is None:
            return None
        raw = el.get(self.attr) if self.attr else el.text
        if raw is None:
            return None
        if self.conv is None:
            return raw
        try:
            return self.conv(raw)
        except (ValueError, TypeError):
            raise XMLError(f"invalid value '{raw}' for {self.path.lstrip('./')}") from None

    def __set__(self, obj, value):
        if value is None:
            el = obj.node if self.el_path in (".", "") else obj.node.find(self.el_path)
            if el is None:
                return
            if self.attr:
                el.attrib.pop(self.attr, None)
            elif el is not obj.node:
                el.getparent().remove(el)
            return
        el = ensure(obj.node, self.el_path)
        if self.attr:
            el.set(self.attr, self.fmt(value))
        else:
            el.text = self.fmt(value)


class XFlag:
    """Presence of an empty element (``<readonly/>``)."""

    def __init__(self, path: str):
        self.path = path

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return obj.node.find(self.path) is not None

    def __set__(self, obj, value):
        el = obj.node.find(self.path)
        if value and el is None:
            ensure(obj.node, self.path)
        elif not value and el is not None:
            el.getparent().remove(el)


def yesno(value: str) -> bool:
    if value not in ("yes", "no", "on", "off"):
        raise ValueError(value)
    return value in ("yes", "on")


class XMLObject:
    """An object backed by one element."""

    tag = ""

    def __init__(self, node):
        self.node = node

    @classmethod
    def new(cls, **props):
        from lxml import etree

        obj = cls(etree.Element(cls.tag))
        for key, value in props.items():
            setattr(obj, key, value)
        return obj

    @classmethod
    def properties(cls) -> dict:
        out = {}
        for klass in reversed(cls.__mro__):
            for key, value in vars(klass).items():
                if isinstance(value, (XProp, XFlag)):
                    out[key] = value
        return out

    def xml(self, depth: int = 0) -> str:
        from vsh.core.xml import serialize_at

        return serialize_at(self.node, depth)


# -- devices -------------------------------------------------------------------------


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


# -- the domain --------------------------------------------------------------------


def _mem_get(path: str):
    def getter(self) -> int | None:
        el = self.node.find(path)
        if el is None:
            return None
        return to_kib(el.text or "", el.get("unit"), path.lstrip("./"))

    def setter(self, kib: int | None) -> None:
        el = self.node.find(path)
        if kib is None:
            if el is not None:
                el.getparent().remove(el)
            return
        el = ensure(self.node, path)
        el.set("unit", "KiB")
        el.text = str(int(kib))

    return property(getter, setter)


class Domain(XMLObject):
    tag = "domain"

    type = XProp("./@type")
    id = XProp("./@id", int)
    name = XProp("./name")
    uuid = XProp("./uuid")
    title = XProp("./title")
    description = XProp("./description")
    memory = _mem_get("./memory")
    current_memory = _mem_get("./currentMemory")
    max_memory = _mem_get("./maxMemory")
    max_memory_slots = XProp("./maxMemory/@slots", int)
    vcpus = XProp("./vcpu", int)
    vcpu_placement = XProp("./vcpu/@placement")
    vcpu_current = XProp("./vcpu/@current", int)
    cpu_mode = XProp("./cpu/@mode")
    cpu_model = XProp("./cpu/model")
    cpu_sockets = XProp("./cpu/topology/@sockets", int)
    cpu_dies = XProp("./cpu/topology/@dies", int)
    cpu_cores = XProp("./cpu/topology/@cores", int)
    cpu_threads = XProp("./cpu/topology/@threads", int)
    os_type = XProp("./os/type")
    os_arch = XProp("./os/type/@arch")
    os_machine = XProp("./os/type/@machine")
    os_kernel = XProp("./os/kernel")
    os_initrd = XProp("./os/initrd")
    os_cmdline = XProp("./os/cmdline")
    os_loader = XProp("./os/loader")
    os_loader_readonly = XProp("./os/loader/@readonly")
    os_loader_type = XProp("./os/loader/@type")
    os_nvram = XProp("./os/nvram")
    clock_offset = XProp("./clock/@offset")
    on_poweroff = XProp("./on_poweroff")
    on_reboot = XProp("./on_reboot")
    on_crash = XProp("./on_crash")
    os_firmware = XProp("./os/@firmware")
    os_bootmenu = XProp("./os/bootmenu/@enable", yesno, lambda v: "yes" if v else "no")
    clock_timezone = XProp("./clock/@timezone")
    clock_adjustment = XProp("./clock/@adjustment")
    feature_acpi = XFlag("./features/acpi")
    feature_apic = XFlag("./features/apic")
    feature_pae = XFlag("./features/pae")

    LIFECYCLE_ACTIONS = ("destroy", "restart", "preserve", "rename-restart", "coredump-destroy",
                         "coredump-restart")

    @classmethod
    def parse(cls, data: bytes | str, origin: str = "domain_definition") -> "Domain":
        from vsh.core.xml import parse

        return cls(parse(data, origin, "domain"))

    def to_xml(self, inactive: bool = False) -> str:
        from vsh.core.xml import serialize

        if inactive and self.node.get("id") is not None:
            import copy

            node = copy.deepcopy(self.node)
            node.attrib.pop("id", None)
            return serialize(node)
        return serialize(self.node)

    def copy(self) -> "Domain":
        import copy

        return Domain(copy.deepcopy(self.node))

    # devices
    @property
    def devices_node(self):
        return ensure(self.node, "./devices")

    def devices(self, tag: str | None = None) -> list[Device]:
        devs = self.node.find("./devices")
        if devs is None:
            return []
        return [device_for(el) for el in devs if isinstance(el.tag, str) and (tag is None or el.tag == tag)]

    @property
    def disks(self) -> list[Disk]:
        return self.devices("disk")  # type: ignore[return-value]

    @property
    def interfaces(self) -> list[Interface]:
        return self.devices("interface")  # type: ignore[return-value]

    @property
    def boot_devs(self) -> list[str]:
        return [el.get("dev") for el in self.node.findall("./os/boot") if el.get("dev")]

    @boot_devs.setter
    def boot_devs(self, devs) -> None:
        from lxml import etree

        for el in self.node.findall("./os/boot"):
            el.getparent().remove(el)
        if not devs:
            return
        os_el = ensure(self.node, "./os")
        for dev in devs:
            _insert_ordered(os_el, etree.Element("boot", dev=dev))

    @property
    def features(self) -> list[str]:
        feats = self.node.find("./features")
        return [el.tag for el in feats if isinstance(el.tag, str)] if feats is not None else []

    def set_feature(self, name: str, enabled: bool = True) -> None:
        """Add or remove an empty feature element (``<acpi/>``, ``<apic/>``, ``<pae/>``...)."""
        feats = self.node.find("./features")
        el = feats.find(name) if feats is not None else None
        if enabled and el is None:
            ensure(self.node, f"./features/{name}")
        elif not enabled and el is not None:
            feats.remove(el)
            if len(feats) == 0:
                self.node.remove(feats)

    @property
    def metadata(self):
        return self.node.find("./metadata")

    def add_device(self, dev: Device) -> None:
        devs = self.devices_node
        # keep devices of one kind together, as libvirt does
        same = [el for el in devs if el.tag == dev.node.tag]
        if same:
            same[-1].addnext(dev.node)
        else:
            _insert_ordered(devs, dev.node)

    def remove_device(self, dev: Device) -> None:
        dev.node.getparent().remove(dev.node)

    @property
    def effective_vcpus(self) -> int:
        return self.vcpu_current or self.vcpus or 1

    # -- changes of the persistent configuration (setmem, setmaxmem, setvcpus --config) ----------
    # The checks and messages are libvirt's (qemuDomainSetMemoryFlags, qemuDomainSetVcpusFlags).

    def set_current_memory_config(self, kib: int) -> None:
        """``setmem --config``: the balloon target, at most <memory>."""
        if kib <= 0:
            raise InvalidArgument("invalid argument: memory size must not be zero")
        if kib > (self.memory or 0):
            raise InvalidArgument("invalid argument: cannot set memory higher than max memory")
        self.current_memory = kib

    def set_memory_config(self, kib: int) -> None:
        """``setmaxmem --config``: <memory>; a larger <currentMemory> comes down with it."""
        if kib <= 0:
            raise InvalidArgument("invalid argument: memory size must not be zero")
        if self.node.find("./cpu/numa/cell") is not None:
            raise OperationInvalid("Requested operation is not valid: initial memory size of a domain "
                                   "with NUMA nodes cannot be modified with this API")
        maxmem = self.max_memory
        if maxmem is not None and kib > maxmem:
            raise InvalidArgument("invalid argument: cannot set initial memory size greater than the "
                                  "maximum memory size")
        self.memory = kib
        current = self.current_memory
        if current is not None and current > kib:
            self.current_memory = kib

    def set_vcpus_config(self, count: int, maximum: bool = False, hotpluggable: bool = False) -> None:
        """``setvcpus --config`` (``--maximum``: the <vcpu> count; else its ``current``)."""
        if count < 1:
            raise InvalidArgument("invalid argument: vcpu count must not be zero")
        top = self.vcpus or 1
        current = self.effective_vcpus
        if maximum:
            topo = (self.cpu_sockets, self.cpu_cores, self.cpu_threads)
            if all(t is not None for t in topo):
                product = topo[0] * topo[1] * topo[2] * (self.cpu_dies or 1)
                if product != count:
                    raise InvalidArgument("invalid argument: CPU topology doesn't match the desired vcpu count")
            numa_cpus = 0
            for cell in self.node.findall("./cpu/numa/cell"):
                numa_cpus += len(parse_cpuset(cell.get("cpus") or ""))
            if numa_cpus > count:
                raise InvalidArgument("invalid argument: Number of CPUs in <numa> exceeds the desired "
                                      "maximum vcpu count")
            top = count
            current = min(current, count)
        else:
            if count > top:
                raise InvalidArgument(f"invalid argument: requested cpu amount exceeds maximum ({count} > {top})")
            current = count
        self.vcpus = top
        self.vcpu_current = current if current < top else None
        self._sync_vcpu_list(hotpluggable)

    def _sync_vcpu_list(self, hotpluggable: bool) -> None:
        """Keep an explicit <vcpus> list consistent with <vcpu> (ids, enabled count)."""
        from lxml import etree

        vlist = self.node.find("./vcpus")
        if vlist is None:
            return
        top, current = self.vcpus or 1, self.effective_vcpus
        by_id = {}
        for el in vlist.findall("vcpu"):
            try:
                by_id[int(el.get("id", ""))] = el
            except ValueError:
                continue
        for vid, el in list(by_id.items()):
            if vid >= top:
                vlist.remove(el)
                del by_id[vid]
        for vid in range(top):
            if vid not in by_id:
                el = etree.SubElement(vlist, "vcpu", id=str(vid), enabled="no", hotpluggable="yes")
                by_id[vid] = el
        for vid in sorted(by_id):
            el = by_id[vid]
            was = el.get("enabled") == "yes"
            now = vid < current
            el.set("enabled", "yes" if now else "no")
            if now and not was and hotpluggable:
                el.set("hotpluggable", "yes")
            el.attrib.pop("order", None)
        # ids in order, as libvirt writes them
        for vid in sorted(by_id):
            vlist.append(by_id[vid])

    # -- device lookup for attach / detach ------------------------------------------------------

    def find_disk(self, ident: str) -> Disk | None:
        """The disk whose target or source path is ``ident`` (virsh's detach-disk lookup)."""
        for disk in self.disks:
            if disk.target_dev == ident:
                return disk
        for disk in self.disks:
            src = disk.node.find("./source")
            if src is not None and ident in (src.get("file"), src.get("dev"), src.get("dir"), src.get("name")):
                return disk
        return None

    def matching_devices(self, node) -> list[Device]:
        """Devices of this domain that the device element ``node`` describes (detach-device).

        A disk is named by its target, an interface by its MAC address when the
        XML has one; anything else (and an interface without a MAC) matches when
        every attribute, text and child given is present in the domain's device.
        """
        found = []
        for dev in self.devices(node.tag):
            if node.tag == "disk":
                target = node.find("./target")
                want = target.get("dev") if target is not None else None
                if want is not None and dev.node.find("./target") is not None \
                        and dev.node.find("./target").get("dev") == want:
                    found.append(dev)
                continue
            if node.tag == "interface":
                mac_el = node.find("./mac")
                mac = mac_el.get("address") if mac_el is not None else None
                if mac:
                    if (getattr(dev, "mac", None) or "").lower() == mac.lower():
                        found.append(dev)
                    continue
            if subset_match(node, dev.node):
                found.append(dev)
        return found

    def check_attach(self, dev: Device) -> None:
        """Refuse a device that would collide with one already there (libvirt's checks)."""
        tag = dev.node.tag
        if tag == "disk":
            target = dev.node.find("./target")
            dst = target.get("dev") if target is not None else None
            if not dst:
                raise XMLError("missing disk target (<target dev='...'/>)")
            if any(d.target_dev == dst for d in self.disks):
                raise OperationInvalid(f"Requested operation is not valid: target {dst} already exists")
        elif tag == "interface":
            mac = dev.node.find("./mac")
            mac = mac.get("address") if mac is not None else None
            if mac and any((n.mac or "").lower() == mac.lower() for n in self.interfaces):
                raise OperationInvalid(f"Requested operation is not valid: an interface with MAC address "
                                       f"{mac} already exists")
        elif tag == "controller":
            ctype, index = dev.node.get("type"), dev.node.get("index")
            if index is not None and any(c.node.get("type") == ctype and c.node.get("index") == index
                                         for c in self.devices("controller")):
                raise OperationInvalid(f"Requested operation is not valid: controller type='{ctype}' "
                                       f"index='{index}' already exists")
        elif tag == "filesystem":
            target = dev.node.find("./target")
            dst = target.get("dir") if target is not None else None
            if dst and any((f.node.find("./target") is not None and f.node.find("./target").get("dir") == dst)
                           for f in self.devices("filesystem")):
                raise OperationInvalid(f"Requested operation is not valid: a filesystem with target '{dst}' "
                                       "already exists")
        elif tag == "hostdev":
            if any(subset_match(dev.node.find("./source"), h.node.find("./source"))
                   for h in self.devices("hostdev")
                   if dev.node.find("./source") is not None and h.node.find("./source") is not None):
                raise OperationInvalid("Requested operation is not valid: device is already in the domain "
                                       "configuration")
        elif tag in ("memballoon", "watchdog"):
            if self.devices(tag):
                raise OperationInvalid(f"Requested operation is not valid: domain already has a {tag} device")

    # -- defaults and validation -------------------------------------------------
    def fill_defaults(self) -> None:
        """What libvirt adds on define: uuid, KiB units, currentMemory, placement, actions, MACs."""
        if not self.uuid:
            import uuid as _uuid

            self.uuid = str(_uuid.uuid4())
        for prop in ("memory", "current_memory", "max_memory"):
            value = getattr(self, prop)
            if value is not None:
                slots = self.max_memory_slots if prop == "max_memory" else None
                setattr(self, prop, value)
                if slots is not None:
                    self.max_memory_slots = slots
        if self.memory is not None and self.current_memory is None:
            mem = self.node.find("./memory")
            from lxml import etree

            cur = etree.Element("currentMemory", unit="KiB")
            cur.text = str(self.memory)
            mem.addnext(cur)
        if self.node.find("./vcpu") is None:
            self.vcpus = 1
        if self.vcpu_placement is None:
            self.vcpu_placement = "static"
        if self.os_type is None:
            self.os_type = "hvm"
        if self.os_arch is None:
            self.os_arch = "x86_64"
        for key, default in (("on_poweroff", "destroy"), ("on_reboot", "restart"), ("on_crash", "destroy")):
            if getattr(self, key) is None:
                setattr(self, key, default)
        for disk in self.disks:
            if disk.type is None:
                disk.type = "file"
            if disk.device is None:
                disk.device = "disk"
            if disk.target_dev and not disk.target_bus:
                disk.target_bus = default_bus(disk.target_dev, disk.device)
        for nic in self.interfaces:
            if not nic.mac:
                nic.mac = random_mac()
        for el in self.node.findall("./devices/memballoon"):
            pass

    def validate(self) -> None:
        """Semantic checks with precise messages."""
        name = self.name
        if name is None:
            raise XMLError("missing name information")
        check_name(name)
        if self.uuid is not None:
            import uuid as _uuid

            try:
                _uuid.UUID(self.uuid)
            except ValueError:
                raise XMLError(f"malformed uuid element: '{self.uuid}'") from None
        if self.type is None:
            raise XMLError("missing domain type attribute (expected type='kvm' or type='qemu')")
        if self.type not in ("kvm", "qemu"):
            raise XMLError(f"unsupported domain type '{self.type}': vsh runs type='kvm' and type='qemu'")
        memory = self.memory
        if memory is None:
            raise XMLError("missing memory element: a domain needs <memory>")
        if memory == 0:
            raise XMLError("memory size must be greater than zero")
        current = self.current_memory
        if current is not None and current > memory:
            raise XMLError(f"currentMemory ({current} KiB) cannot be larger than memory ({memory} KiB)")
        maxmem = self.max_memory
        if maxmem is not None and maxmem < memory:
            raise XMLError(f"maxMemory ({maxmem} KiB) cannot be smaller than memory ({memory} KiB)")
        vcpus = self.vcpus
        if vcpus is not None and vcpus < 1:
            raise XMLError("vcpu count must be at least 1")
        cur = self.vcpu_current
        if cur is not None and vcpus is not None and cur > vcpus:
            raise XMLError(f"current vcpus ({cur}) cannot exceed maximum vcpus ({vcpus})")
        if cur is not None and cur < 1:
            raise XMLError("current vcpu count must be at least 1")
        topo = [self.cpu_sockets, self.cpu_cores, self.cpu_threads]
        if all(t is not None for t in topo) and vcpus is not None:
            product = topo[0] * topo[1] * topo[2] * (self.cpu_dies or 1)
            if product != vcpus:
                raise XMLError(f"CPU topology doesn't match maximum vcpu count ({product} != {vcpus})")
        for key in ("on_poweroff", "on_reboot", "on_crash"):
            value = getattr(self, key)
            if value is not None and value not in self.LIFECYCLE_ACTIONS:
                raise XMLError(f"invalid {key} action '{value}'")
        targets: dict[str, int] = {}
        for disk in self.disks:
            dev = disk.target_dev
            if not dev:
                raise XMLError("missing disk target (<target dev='...'/>)")
            if dev in targets:
                raise XMLError(f"target '{dev}' duplicated for disk sources")
            targets[dev] = 1
            if disk.device not in (None, "disk", "cdrom", "floppy", "lun"):
                raise XMLError(f"unknown disk device '{disk.device}'")
        macs: dict[str, int] = {}
        for nic in self.interfaces:
            mac = nic.mac
            if mac:
                if not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", mac):
                    raise XMLError(f"unable to parse mac address '{mac}'")
                if int(mac.split(":")[0], 16) & 1:
                    raise XMLError(f"expected unicast mac address, found multicast '{mac}'")
                if mac.lower() in macs:
                    raise XMLError(f"duplicate MAC address {mac}")
                macs[mac.lower()] = 1
        if self.node.find("./metadata") is not None:
            from vsh.core.portfwd import forwards

            forwards(self.node)  # vsh's user-mode port forwards, if any, must be well-formed


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


def random_mac() -> str:
    import os

    b = os.urandom(3)
    return "52:54:00:%02x:%02x:%02x" % (b[0], b[1], b[2])


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_name(name: str) -> None:
    """Domain names become paths: refuse what could escape or confuse."""
    if name is None or name == "":
        raise InvalidArgument("domain name must not be empty")
    if "/" in name:
        raise InvalidArgument(f"name '{name}' cannot contain '/'")
    if name.startswith("."):
        raise InvalidArgument(f"name '{name}' cannot start with '.'")
    if _CONTROL.search(name):
        raise InvalidArgument(f"name {name!r} cannot contain control characters")
    if len(name.encode("utf-8")) > 255:
        raise InvalidArgument(f"name is too long ({len(name.encode('utf-8'))} bytes; the limit is 255)")
    if name.strip() != name and not name.strip():
        raise InvalidArgument("domain name must not be blank")


def parse_cpuset(text: str) -> set[int]:
    """libvirt's cpuset syntax: ``0-3,^2,8``."""
    cpus: set[int] = set()
    excluded: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        target = cpus
        if part.startswith("^"):
            target, part = excluded, part[1:]
        if "-" in part:
            lo, hi = part.split("-", 1)
            target.update(range(int(lo), int(hi) + 1))
        else:
            target.add(int(part))
    return cpus - excluded


def is_uuid(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", text))
