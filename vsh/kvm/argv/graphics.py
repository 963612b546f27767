"""What a person sees and types with: VNC, video adapters and input devices."""

from __future__ import annotations

from vsh.core.domain import device_for
from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.options import check_socket_path, esc, given, opts


def graphics(b: Builder, el, n: int) -> None:
    """<graphics type='vnc'>: VNC on a unix socket (never TCP)."""
    t = device_for(el).type
    if t != "vnc":
        raise Unsupported("<graphics type='%s'> is not supported (vnc, on a unix socket)" % t)
    if n:
        raise Unsupported("only one <graphics> is supported")
    if el.get("passwd"):
        raise Unsupported("VNC passwords are not supported; the VNC socket is private to its user")
    path = el.get("socket")
    lst = el.find("listen[@type='socket']")
    if lst is not None and lst.get("socket"):
        path = lst.get("socket")
    path = path or b.paths.vnc_socket
    check_socket_path(path, "<graphics type='vnc'>")
    b.add("-vnc", "unix:%s" % esc(path))


def video(b: Builder, el, n: int) -> None:
    """<video> number ``n``: VGA, virtio-vga/virtio-gpu or bochs-display (none: nothing)."""
    m = el.find("model")
    model = m.get("type") if m is not None else "vga"
    what = "<video model='%s'>" % model
    if model == "none":
        return
    b.need_pci(what)
    qdev = {"vga": "VGA", "virtio": "virtio-vga" if n == 0 else "virtio-gpu-pci",
            "bochs": "bochs-display"}.get(model)
    if qdev is None:
        raise Unsupported("%s is not supported (vga, virtio, bochs, none)" % what)
    b.add("-device", opts(qdev, ("id", "video%d" % n), *b.pci.props(el, what)))


def input_device(b: Builder, el, n: int) -> None:
    """<input> number ``n``: PS/2 is built in; USB and virtio keyboards, mice and tablets."""
    dev = device_for(el)
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
                                  ("bus", "%s.0" % b.usb_ctrls[0])))
    elif bus == "virtio":
        if t not in ("tablet", "mouse", "keyboard"):
            raise Unsupported("%s is not supported" % what)
        b.add("-device", opts(b.virtio(t), ("id", "input%d" % n), *b.dev_addr(el, what)))
    else:
        raise Unsupported("%s is not supported" % what)
