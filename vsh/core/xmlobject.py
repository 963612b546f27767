"""Declared properties over an XML element (virt-manager's xmlbuilder idea), for the domain model.

Each model class is a short list of declared properties; every property is an XPath
relative to the object's element with a converter. The lxml tree stays the source of
truth, so elements and attributes the model does not know survive define → dumpxml.
``node`` is the escape hatch. Also here: libvirt's element order (used when the model
creates an element) and its memory units.
"""

from __future__ import annotations

from vsh.core.errors import XMLError

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
    if not (text.isascii() and text.isdigit()):
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
               "iothreadids", "cputune", "numatune", "resource", "sysinfo", "bootloader", "os", "idmap", "features", "cpu", "clock",
               "on_poweroff", "on_reboot", "on_crash", "on_lockfailure", "pm", "perf", "devices",
               "seclabel", "keywrap", "launchSecurity"],
    "os": ["type", "firmware", "loader", "nvram", "kernel", "initrd", "cmdline", "dtb", "boot", "bootmenu",
           "smbios", "bios"],
    "disk": ["driver", "source", "backingStore", "geometry", "blockio", "target", "iotune", "readonly",
             "shareable", "transient", "serial", "wwn", "vendor", "product", "boot", "alias", "address"],
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


def insert_ordered(parent, child) -> None:
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
    import re

    from vsh.core.lxmlload import etree

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
            insert_ordered(current, found)
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

    def raw(self, obj) -> str | None:
        """The text at the path as the XML has it, without the converter."""
        el = obj.node if self.el_path in (".", "") else obj.node.find(self.el_path)
        if el is None:
            return None
        return el.get(self.attr) if self.attr else el.text

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        raw = self.raw(obj)
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
        text = self.fmt(value)
        if not text.isprintable():  # user text (a title, a path...): a clear error, not lxml's ValueError
            from vsh.core.xml import check_xml_text

            check_xml_text(text, getattr(self, "name", self.path).replace("_", " "))
        el = ensure(obj.node, self.el_path)
        if self.attr:
            el.set(self.attr, text)
        else:
            el.text = text


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
        from vsh.core.lxmlload import etree

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

    def raw(self, name: str) -> str | None:
        """The declared property ``name`` as the XML spells it, unconverted: for callers that check
        a value with their own messages (the argv builder)."""
        return getattr(type(self), name).raw(self)

    def xml(self, depth: int = 0) -> str:
        from vsh.core.xml import serialize_at

        return serialize_at(self.node, depth)
