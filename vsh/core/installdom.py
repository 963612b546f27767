"""virt-install's options on the domain itself: --events, --metadata, --features, --clock,
--memorybacking, --iothreads, --panic, --serial, and --xml (XPath edits of the final XML).

Each ``apply_*`` takes the domain's root element (lxml) and the text of one option as given on
the command line, and changes the element; it reads and creates nothing. Keys use
virt-install's spellings (``on_poweroff=``, ``title=``, ``hugepages=on``...).
"""

from __future__ import annotations

from vsh.core.errors import InvalidArgument
from vsh.core.installopts import onoff, split_options, unknown_option

EVENT_KEYS = ("on_poweroff", "on_reboot", "on_crash")
EVENT_ACTIONS = ("destroy", "restart", "preserve", "rename-restart", "coredump-destroy", "coredump-restart")
FEATURES = ("acpi", "apic", "pae", "hap", "pmu", "vmport", "smm", "vmcoreinfo", "ioapic", "kvm_hidden")
CLOCK_OFFSETS = ("utc", "localtime", "timezone", "variable")
PANIC_MODELS = ("isa", "pvpanic", "hyperv", "s390", "pseries")


def _child(root, tag: str, before: tuple = ()):
    """``root``'s ``tag`` child, made if missing (placed before the first of ``before`` found)."""
    from vsh.core.lxmlload import etree

    el = root.find(tag)
    if el is None:
        el = etree.Element(tag)
        for name in before:
            anchor = root.find(name)
            if anchor is not None:
                anchor.addprevious(el)
                break
        else:
            root.append(el)
    return el


def apply_events(root, text: str) -> None:
    """``on_poweroff=ACTION,on_reboot=ACTION,on_crash=ACTION``."""
    for key, value in split_options(text, "--events"):
        if key not in EVENT_KEYS:
            raise unknown_option(key, value, "events", tuple(f"{k}=" for k in EVENT_KEYS))
        if value not in EVENT_ACTIONS:
            raise InvalidArgument(f"--events: {key} action '{value}' is not one of {', '.join(EVENT_ACTIONS)}")
        _child(root, key).text = value


def apply_metadata(root, text: str) -> None:
    """``title=TEXT,description=TEXT`` (also ``name=``, ``uuid=`` as virt-install takes them)."""
    for key, value in split_options(text, "--metadata"):
        if key == "title":
            _child(root, "title", before=("description", "metadata", "memory")).text = value
        elif key == "description":
            _child(root, "description", before=("metadata", "memory")).text = value
        elif key in ("name", "uuid"):
            current = root.findtext(key)
            if value != current:
                raise InvalidArgument(f"--metadata {key}= must match --{key} ('{current}')")
        else:
            raise unknown_option(key, value, "metadata", ("title=", "description="))


def apply_description(root, text: str) -> None:
    """``--description TEXT``: the domain's <description>, the text as given (commas too)."""
    _child(root, "description", before=("metadata", "memory")).text = text


def apply_features(root, text: str) -> None:
    """``FEATURE=on|off,...`` (``acpi=off`` removes ACPI); ``kvm_hidden=on`` hides KVM from the guest."""
    from vsh.core.lxmlload import etree

    features = _child(root, "features", before=("cpu", "clock", "on_poweroff", "devices"))
    for key, value in split_options(text, "--features"):
        if key is None or key not in FEATURES:
            raise unknown_option(key, value, "features", tuple(f"{f}=on|off" for f in FEATURES[:4]))
        on = onoff(value, f"--features {key}")
        if key == "kvm_hidden":
            kvm = _child(features, "kvm")
            hidden = _child(kvm, "hidden")
            hidden.set("state", "on" if on else "off")
            continue
        old = features.find(key)
        if on and old is None:
            etree.SubElement(features, key)
        elif not on and old is not None:
            features.remove(old)


def apply_clock(root, text: str) -> None:
    """``offset=utc|localtime|timezone|variable[,timezone=ZONE]``."""
    clock = _child(root, "clock", before=("on_poweroff", "devices"))
    for key, value in split_options(text, "--clock"):
        if key == "offset":
            if value not in CLOCK_OFFSETS:
                raise InvalidArgument(f"--clock: offset '{value}' is not one of {', '.join(CLOCK_OFFSETS)}")
            clock.set("offset", value)
        elif key == "timezone":
            clock.set("timezone", value)
        else:
            raise unknown_option(key, value, "clock", ("offset=", "timezone="))
    if clock.get("offset") == "timezone" and not clock.get("timezone"):
        raise InvalidArgument("--clock offset=timezone needs timezone=ZONE")


def apply_memorybacking(root, text: str) -> None:
    """``hugepages=on``, ``source.type=memfd|file|anonymous``, ``access.mode=shared|private``,
    ``locked=on``, ``nosharepages=on``, ``discard=on``."""
    from vsh.core.lxmlload import etree

    mb = _child(root, "memoryBacking", before=("vcpu",))
    for key, value in split_options(text, "--memorybacking"):
        key = None if key is None else key.replace(".", "_")
        if key in ("hugepages", "locked", "nosharepages", "discard"):
            if onoff(value, f"--memorybacking {key}") and mb.find(key) is None:
                etree.SubElement(mb, key)
        elif key == "source_type":
            if value not in ("memfd", "file", "anonymous"):
                raise InvalidArgument(f"--memorybacking: source type '{value}' is not memfd, file or anonymous")
            _child(mb, "source").set("type", value)
        elif key == "access_mode":
            if value not in ("shared", "private"):
                raise InvalidArgument(f"--memorybacking: access mode '{value}' is not shared or private")
            _child(mb, "access").set("mode", value)
        else:
            raise unknown_option(key, value, "memorybacking", ("hugepages=on", "source.type=", "access.mode=",
                                                               "locked=on"))


def apply_iothreads(root, text: str) -> None:
    """``N`` or ``iothreads=N``: the number of I/O threads the domain has."""
    words = split_options(text, "--iothreads")
    if len(words) != 1 or words[0][0] not in (None, "iothreads") or not words[0][1].isdigit():
        raise InvalidArgument(f"--iothreads: expected a number of I/O threads, got '{text}'")
    _child(root, "iothreads", before=("cputune", "os")).text = str(int(words[0][1]))


def panic_xml(text: str):
    """``isa`` (the default: pvpanic on the ISA bus), ``pvpanic``, or ``model=MODEL``."""
    from vsh.core.lxmlload import etree

    model = None
    for key, value in split_options(text, "--panic"):
        if key in (None, "model") and model is None:
            model = "isa" if value == "default" else value
        else:
            raise unknown_option(key, value, "panic", PANIC_MODELS[:2])
    if model not in PANIC_MODELS:
        raise InvalidArgument(f"--panic: model '{model}' is not one of {', '.join(PANIC_MODELS)}")
    return etree.Element("panic", model=model)


def serial_xml(text: str, port: int):
    """``pty``, ``file,path=FILE``, ``unix,path=SOCKET[,mode=bind]``, ``null``: one more serial port."""
    import os

    from vsh.core.lxmlload import etree

    kind = path = None
    mode = "bind"
    for key, value in split_options(text, "--serial"):
        if key in (None, "type") and kind is None:
            if value not in ("pty", "file", "unix", "null"):
                raise InvalidArgument(f"--serial: type '{value}' is not pty, file, unix or null")
            kind = value
        elif key in ("path", "source_path", "source.path"):
            path = os.path.abspath(os.path.expanduser(value))
        elif key in ("mode", "source_mode", "source.mode"):
            if value not in ("bind", "connect"):
                raise InvalidArgument(f"--serial: mode '{value}' is not bind or connect")
            mode = value
        else:
            raise unknown_option(key, value, "serial", ("pty", "file,path=", "unix,path=", "null"))
    if kind is None:
        raise InvalidArgument("--serial: the type comes first (pty, file, unix or null)")
    if kind in ("file", "unix") and not path:
        raise InvalidArgument(f"--serial {kind}: path= is needed")
    serial = etree.Element("serial", type=kind)
    if kind == "file":
        etree.SubElement(serial, "source", path=path)
    elif kind == "unix":
        etree.SubElement(serial, "source", mode=mode, path=path)
    etree.SubElement(serial, "target", port=str(port))
    return serial


def apply_xml_edit(root, text: str) -> None:
    """virt-install's ``--xml``: ``XPATH=VALUE`` sets an attribute or an element's text (made if
    missing), ``xpath.delete=XPATH`` removes what it selects, ``xpath.create=XPATH`` makes an
    empty element, ``xpath.set=XPATH=VALUE`` is the long form of the first. Paths are relative to
    <domain> (``./devices/disk/driver/@cache=none``)."""
    key, sep, value = _split_outside(text)
    if key in ("xpath.delete", "xpath.create", "xpath.set", "xpath.value") and sep:
        action, expr = key.split(".", 1)[1], value
        if action in ("set", "value"):
            expr, sep2, value = _split_outside(value)
            if not sep2:
                raise InvalidArgument(f"--xml xpath.set: expected XPATH=VALUE, got '{text}'")
    elif sep and key:
        action, expr = "set", key
    else:
        raise InvalidArgument(f"--xml: expected XPATH=VALUE, xpath.delete=XPATH or xpath.create=XPATH, got '{text}'")
    expr = expr.strip()
    if not expr.startswith("./"):
        raise InvalidArgument(f"--xml: the path '{expr}' must start with ./ (relative to <domain>)")
    if action == "delete":
        for el in _select(root, expr):
            if isinstance(el, str):
                raise InvalidArgument(f"--xml xpath.delete: '{expr}' selects an attribute value; delete its element")
            el.getparent().remove(el)
        return
    attr = None
    path = expr
    if "/@" in expr:
        path, attr = expr.rsplit("/@", 1)
    target = _make_path(root, path)
    if action == "create":
        return
    if attr is not None:
        target.set(attr, value)
    else:
        target.text = value


def _split_outside(text: str) -> tuple[str, str, str]:
    """``text`` split at its first ``=`` outside ``[...]`` predicates and quotes (as partition)."""
    depth, quote = 0, None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "=" and depth == 0:
            return text[:i], "=", text[i + 1:]
    return text, "", ""


def _select(root, expr: str) -> list:
    from vsh.core.lxmlload import etree

    try:
        found = root.xpath(expr)
    except etree.XPathError as exc:
        raise InvalidArgument(f"--xml: '{expr}' is not a valid XPath: {exc}") from None
    return found if isinstance(found, list) else []


def _make_path(root, path: str):
    """The element ``path`` selects, made step by step (``./a/b[@x='y']`` style steps: plain
    names and ``[N]`` indexes) where missing."""
    import re

    from vsh.core.lxmlload import etree

    found = _select(root, path)
    if found and not isinstance(found[0], str):
        return found[0]
    node = root
    for step in path.split("/")[1:]:
        m = re.fullmatch(r"([A-Za-z_][\w.-]*)(?:\[(\d+)\])?", step)
        if m is None:
            raise InvalidArgument(f"--xml: vsh makes missing elements only for plain steps; '{step}' is not one")
        name, index = m.group(1), int(m.group(2) or 1)
        children = node.findall(name)
        if len(children) >= index:
            node = children[index - 1]
        elif len(children) == index - 1:
            node = etree.SubElement(node, name)
        else:
            raise InvalidArgument(f"--xml: '{step}' is past the last <{name}> of <{node.tag}>")
    return node


#: option name (as in the options dict) → the function applying one of its values to <domain>
DOMAIN_OPTIONS = (("events", apply_events), ("metadata", apply_metadata), ("features", apply_features),
                  ("clock", apply_clock), ("memorybacking", apply_memorybacking), ("iothreads", apply_iothreads))
