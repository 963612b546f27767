"""The defaults libvirt 9.0's qemu driver writes into a pc/q35 definition on define beyond
implicit.py's, as measured against libvirtd 9.0 (tests/libvirt_dumps.py keeps its output for the
corpus): the boot device, the CPU model and its check, the audio backend, the video device and its
model's sizes, the serial ports' targets and the console that mirrors the first one, the SCSI
controller's model, the VNC/SPICE listen element, USB ports (usb.py) and libvirt's order of elements."""

from __future__ import annotations

from vsh.core.lxmlload import etree

from vsh.core.xmlobject import ORDER, insert_ordered, normalize_order

#: What libvirt writes for a video model's sizes it is not given (KiB), by model type.
VIDEO_SIZES = {
    "vga": (("vram", "16384"),), "cirrus": (("vram", "16384"),), "bochs": (("vram", "16384"),),
    "qxl": (("ram", "65536"), ("vram", "65536"), ("vgamem", "16384")),
}

#: libvirt's attribute order of a video <model>.
VIDEO_ATTRS = ("type", "ram", "vram", "vram64", "vgamem", "heads", "primary")


def with_attrs(el, pairs) -> None:
    """Give ``el`` its attributes in the order of ``pairs`` ((name, default) with None for no
    default), the ones not named there after them."""
    attrs = dict(el.attrib)
    el.attrib.clear()
    for name, default in pairs:
        value = attrs.pop(name, default)
        if value is not None:
            el.set(name, value)
    el.attrib.update(attrs)


def default_boot(dom) -> None:
    """``<boot dev='hd'/>`` when neither <os> nor a device names a boot device."""
    os_ = dom.node.find("os")
    if os_ is None or os_.find("boot") is not None or dom.node.xpath("devices/*/boot[@order]"):
        return
    insert_ordered(os_, etree.Element("boot", dev="hd"))


def default_cpu(dom) -> None:
    """The CPU model QEMU's machine defaults to (qemu64) written out, and each mode's check."""
    cpu = dom.node.find("cpu")
    if cpu is None:
        cpu = etree.Element("cpu")
        insert_ordered(dom.node, cpu)
    mode = cpu.get("mode") or "custom"
    if mode == "custom":
        model = cpu.find("model")
        defaulted = model is None
        if defaulted:
            model = etree.Element("model", fallback="forbid")
            model.text = "qemu64"
            cpu.insert(0, model)
        with_attrs(model, (("fallback", "allow"),))
        check = "none" if defaulted or dom.type != "kvm" else "partial"
        with_attrs(cpu, (("mode", "custom"), ("match", "exact"), ("check", check)))
    elif mode == "host-passthrough":
        with_attrs(cpu, (("mode", None), ("check", "none"), ("migratable", "on")))
    elif mode == "host-model":
        with_attrs(cpu, (("mode", None), ("check", "partial")))
    elif mode == "maximum":
        with_attrs(cpu, (("mode", None), ("check", "none")))
    for feature in cpu.findall("feature"):
        with_attrs(feature, (("policy", "require"), ("name", None)))
    normalize_order(cpu)


def default_audio(dom, devs) -> None:
    """An ``<audio>`` backend when there is none: the SPICE session's where the first display is
    SPICE, else none (a confined QEMU plays into no host sound system)."""
    if devs.find("audio") is not None:
        return
    first = devs.find("graphics")
    kind = "spice" if first is not None and first.get("type") == "spice" else "none"
    insert_ordered(devs, etree.Element("audio", id="1", type=kind))


def video_defaults(dom, devs) -> None:
    """A video device for a display without one, the model (cirrus) and its sizes and heads as
    libvirt fills them, the first one primary."""
    videos = devs.findall("video")
    if not videos and devs.find("graphics") is not None:
        video = etree.Element("video")
        insert_ordered(devs, video)
        videos = [video]
    for i, video in enumerate(videos):
        model = video.find("model")
        if model is None:
            model = etree.Element("model")
            video.insert(0, model)
        kind = model.get("type") or "cirrus"
        if kind == "none":
            continue
        pairs = [("type", kind), *VIDEO_SIZES.get(kind, ()), ("heads", "1")]
        if i == 0 and not any(v.find("model[@primary='yes']") is not None for v in videos):
            pairs.append(("primary", "yes"))
        with_attrs(model, [(a, dict(pairs).get(a)) for a in VIDEO_ATTRS])


def _chr_copy(src, tag: str):
    """A <serial>/<console> carrying ``src``'s type and source (not its target, alias or address)."""
    el = etree.Element(tag, type=src.get("type") or "pty")
    for child in src:
        if isinstance(child.tag, str) and child.tag not in ("target", "alias", "address"):
            el.append(etree.fromstring(etree.tostring(child)))
    return el


def serial_targets(dom, devs) -> None:
    """Each serial's target (isa-serial unless told, its port: the next after the highest given)
    with its model; the first console as a mirror of the first serial (the serial made from the
    console when there is none, the console made from an ISA serial when there is none); the other
    consoles' ports numbered by their place."""
    consoles = devs.findall("console")
    first = consoles[0] if consoles else None
    first_target = first.find("target") if first is not None else None
    serial_console = first is not None and (first_target is None or first_target.get("type") in (None, "serial"))
    serials = devs.findall("serial")
    if serial_console and not serials:
        serial = _chr_copy(first, "serial")
        insert_ordered(devs, serial)
        serials = [serial]
    ports = [int(t.get("port")) for t in devs.xpath("serial/target[@port]") if t.get("port").isdigit()]
    for serial in serials:
        target = serial.find("target")
        if target is None:
            target = etree.Element("target")
            children = [c for c in serial if isinstance(c.tag, str) and c.tag not in ("alias", "address")]
            (children[-1].addnext if children else lambda e: serial.insert(0, e))(target)
        kind = target.get("type") or "isa-serial"
        if target.get("port") is None:
            target.set("port", str(max(ports, default=-1) + 1))
            ports.append(int(target.get("port")))
        with_attrs(target, (("type", kind), ("port", None)))
        if target.find("model") is None and kind in ("isa-serial", "usb-serial", "pci-serial"):
            etree.SubElement(target, "model", name=kind)
    for i, console in enumerate(consoles[1:] if serial_console else consoles, start=1 if serial_console else 0):
        target = console.find("target")
        if target is not None and target.get("port") is None:
            target.set("port", str(i))
    if not serials:
        return
    mirror = _chr_copy(serials[0], "console")
    etree.SubElement(mirror, "target", type="serial", port=serials[0].find("target").get("port"))
    if serial_console:
        first.addprevious(mirror)
        devs.remove(first)
    elif not consoles and serials[0].find("target").get("type") == "isa-serial":
        insert_ordered(devs, mirror)


def scsi_model(devs) -> None:
    """A SCSI controller without a model is an LSI Logic one on pc and q35."""
    for c in devs.findall("controller[@type='scsi']"):
        if c.get("model") is None:
            with_attrs(c, (("type", None), ("index", None), ("model", "lsilogic")))


def graphics_listen(devs) -> None:
    """VNC and SPICE: the listen element libvirt writes for the address or socket they listen on,
    and VNC's automatic port."""
    for g in devs.findall("graphics"):
        kind = g.get("type")
        if kind not in ("vnc", "spice"):
            continue
        if g.find("listen") is None:
            if g.get("socket"):
                listen = etree.Element("listen", type="socket", socket=g.get("socket"))
            elif g.get("listen"):
                listen = etree.Element("listen", type="address", address=g.get("listen"))
            elif kind == "spice" and g.get("autoport") is None and g.get("port") is None:
                listen = etree.Element("listen", type="none")
            else:
                listen = etree.Element("listen", type="address")
            g.insert(0, listen)
        if kind == "vnc" and g.get("socket") is None and g.find("listen[@type='socket']") is None:
            port = g.get("port")
            auto = g.get("autoport") or ("yes" if port in (None, "-1") else "no")
            with_attrs(g, (("type", None), ("port", "-1" if auto == "yes" else port), ("autoport", auto)))


def libvirt_order(node) -> None:
    """Sort the children of ``node`` into libvirt's order (stable); an element libvirt does not
    know stays behind the one it follows."""
    order = ORDER.get(node.tag)
    if not order:
        return
    rank = {tag: i for i, tag in enumerate(order)}
    keyed, last = [], -1
    for el in node:
        if isinstance(el.tag, str) and el.tag in rank:
            last = rank[el.tag]
        keyed.append((last, el))
    for _r, el in sorted(keyed, key=lambda p: p[0]):
        node.append(el)


def element_order(dom, devs) -> None:
    """libvirt's order of the domain's elements, of the devices, and inside each device it orders."""
    libvirt_order(dom.node)
    libvirt_order(devs)
    for el in devs:
        if isinstance(el.tag, str) and el.tag in ORDER:
            libvirt_order(el)


def fill_postparse(dom) -> None:
    """Everything of this module, for pc and q35 machines."""
    devs = dom.node.find("devices")
    if devs is None:
        return
    default_boot(dom)
    default_cpu(dom)
    scsi_model(devs)
    serial_targets(dom, devs)
    graphics_listen(devs)
    video_defaults(dom, devs)
    default_audio(dom, devs)
    from vsh.core.domain.usb import usb_addresses

    usb_addresses(devs)
    element_order(dom, devs)
