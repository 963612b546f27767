"""What a person sees and types with: VNC, video adapters and input devices."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.options import check_socket_path, esc, given, number, opts, usb_port


def graphics(b: Builder, gfx, n: int) -> None:
    """<graphics type='vnc'> or type='spice': on a unix socket (never TCP)."""
    t = gfx.type
    if t == "spice" and not n:
        spice(b, gfx)
        return
    if t != "vnc":
        raise Unsupported("<graphics type='%s'> is not supported (vnc or spice, on a unix socket)" % t)
    if n:
        raise Unsupported("only one <graphics> is supported")
    if gfx.passwd:
        raise Unsupported("VNC passwords are not supported; the VNC socket is private to its user")
    path = gfx.listen_socket or gfx.socket or b.paths.vnc_socket
    check_socket_path(path, "<graphics type='vnc'>")
    b.add("-vnc", "unix:%s" % esc(path))


def spice(b: Builder, gfx) -> None:
    """SPICE on a unix socket (the listen socket, else spice.sock in the run directory; the address
    and port libvirt would listen on are not used: like VNC, never TCP), no password."""
    if gfx.passwd:
        raise Unsupported("SPICE passwords are not supported; the SPICE socket is private to its user")
    path = gfx.listen_socket or b.paths.socket_for("spice")
    check_socket_path(path, "<graphics type='spice'>")
    b.add("-spice", opts("unix=on", ("addr", path), ("disable-ticketing", True), ("seamless-migration", True)))


#: libvirt's video models -> QEMU's device for the primary adapter and for another one.
VIDEO_MODELS = {"vga": ("VGA", "VGA"), "cirrus": ("cirrus-vga", "cirrus-vga"), "qxl": ("qxl-vga", "qxl"),
                "virtio": ("virtio-vga", "virtio-gpu-pci"), "bochs": ("bochs-display", "bochs-display"),
                "ramfb": ("ramfb", "ramfb")}


def video(b: Builder, vid, n: int) -> None:
    """<video> number ``n``: VGA, Cirrus, QXL, virtio-vga/virtio-gpu, bochs-display, ramfb (none: nothing)."""
    model = vid.model if vid.has_model else "vga"
    what = "<video model='%s'>" % model
    if model == "none":
        if len(b.dom.devices("video")) > 1:
            raise InvalidArgument("a 'none' video type must be the only video device defined for the domain")
        return
    if model not in VIDEO_MODELS:
        raise Unsupported("%s is not supported (%s, none)" % (what, ", ".join(VIDEO_MODELS)))
    qdev = VIDEO_MODELS[model][0 if n == 0 else 1]
    pairs: list[tuple[str, object]] = [("id", "video%d" % n)]
    if model == "ramfb":
        if vid.address is not None:
            raise InvalidArgument("address not supported for video type ramfb")
        b.add("-device", opts(qdev, *pairs))
        return
    b.need_pci(what)
    vram = vid.vram
    if model == "qxl":
        for attr, prop, scale in (("ram", "ram_size", 1024), ("vram", "vram_size", 1024),
                                  ("vram64", "vram64_size_mb", 1 / 1024), ("vgamem", "vgamem_mb", 1 / 1024)):
            if getattr(vid, attr):
                pairs.append((prop, int(number(getattr(vid, attr), "%s %s" % (what, attr)) * scale)))
        if vid.heads:
            pairs.append(("max_outputs", number(vid.heads, what + " heads")))
    elif model == "vga" and vram:
        pairs.append(("vgamem_mb", number(vram, what + " vram") // 1024))
    elif model == "bochs" and vram:
        pairs.append(("vgamem", number(vram, what + " vram") * 1024))
    elif model == "virtio" and vid.heads:
        pairs.append(("max_outputs", number(vid.heads, what + " heads")))
    b.add("-device", opts(qdev, *pairs, *b.pci.props(vid, what)))


def input_device(b: Builder, dev, n: int) -> None:
    """<input> number ``n``: PS/2 is built in; USB and virtio keyboards, mice and tablets."""
    t, bus = dev.type, given(dev.bus, "ps2")
    what = "<input type='%s' bus='%s'>" % (t, bus)
    if bus == "ps2":
        if t not in ("mouse", "keyboard"):
            raise Unsupported("%s is not supported" % what)
        return  # built into the pc/q35 chipsets; microvm has none to add
    if bus == "usb":
        if t not in ("tablet", "mouse", "keyboard"):
            raise Unsupported("%s is not supported" % what)
        if 0 not in b.usb_ctrls:
            raise InvalidArgument("%s needs a <controller type='usb'> with a model other than none" % what)
        b.add("-device", opts("usb-%s" % ("kbd" if t == "keyboard" else t), ("id", "input%d" % n),
                              ("bus", "%s.0" % b.usb_ctrls[0]), usb_port(dev)))
    elif bus == "virtio":
        if t not in ("tablet", "mouse", "keyboard"):
            raise Unsupported("%s is not supported" % what)
        b.add("-device", opts(b.virtio(t), ("id", "input%d" % n), *b.dev_addr(dev, what)))
    else:
        raise Unsupported("%s is not supported" % what)
