"""Character devices: serial ports, consoles and virtio channels, their chardevs and logs.

The primary console (serial port 0, else the first virtio console) logs to
``paths.console_log``; the other serial ports and consoles to ``<rundir>/<alias>.log``.
``console_chardev(root)`` names the primary console's chardev for the supervisor.
"""

from __future__ import annotations

from vsh.core.domain import Domain
from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.options import check_socket_path, given, number, opts, usb_port


def serial_plan(dom) -> list:
    """The serial ports to create: the <serial> devices, or the first <console> standing in for one."""
    serials = dom.devices("serial")
    if serials:
        return serials
    for c in dom.devices("console"):
        if c.target_type in (None, "serial"):
            return [c]
    return []


def primary_console_alias(dom, serials: list) -> str | None:
    """QEMU alias of the primary console: serial0 when there are serial ports, else the first
    virtio console (``serials`` from serial_plan)."""
    if serials:
        return "serial0"
    for n, c in enumerate(dom.devices("console")):
        if c.target_type == "virtio":
            return "console%d" % n
    return None


def console_chardev(root) -> str | None:
    """QEMU id of the chardev behind the domain's primary console (for query-chardev), or None."""
    dom = Domain(root)
    alias = primary_console_alias(dom, serial_plan(dom))
    return "char" + alias if alias else None


def chardev(b: Builder, ch, cid: str, alias: str, what: str, log: bool) -> str:
    """The -chardev option of a serial port, console or channel (``log``: write a logfile)."""
    t = given(ch.type, "pty")
    pairs: list[tuple[str, object]] = [("id", cid)]
    if t == "pty":
        head = "pty"
    elif t == "null":
        head = "null"
    elif t == "stdio":      # QEMU's stdout is the domain's qemu.log, as libvirt's is the domain log
        head = "stdio"
    elif t == "spicevmc" and any(g.type == "spice" for g in b.dom.devices("graphics")):
        return opts("spicevmc", ("id", cid), ("name", "vdagent"))       # the SPICE agent's channel
    elif t == "file":
        if not ch.source_path:
            raise InvalidArgument("%s: type='file' needs <source path=...>" % what)
        head = "file"
        pairs.append(("path", ch.source_path))
        if ch.source_append == "on":
            pairs.append(("append", True))
    elif t == "unix":
        head = "socket"
        path = ch.source_path
        if not path:
            path = b.paths.socket_for(alias)
        check_socket_path(path, what)
        pairs.append(("path", path))
        mode = given(ch.source_mode, "bind")
        if mode == "bind":
            pairs += [("server", True), ("wait", False)]
        elif mode == "connect":
            pairs.append(("server", False))
            if ch.reconnect_enabled == "yes":
                pairs.append(("reconnect", number(ch.reconnect_timeout, what + " reconnect timeout", 1)))
        else:
            raise InvalidArgument("%s: unknown unix source mode '%s'" % (what, mode))
    elif t == "tcp":
        head = "socket"
        pairs += network_source(ch.source, what, "tcp")
        mode = given(ch.source_mode, "bind")
        if mode not in ("bind", "connect"):
            raise InvalidArgument("%s: unknown tcp source mode '%s'" % (what, mode))
        proto = given(ch.protocol_type, "raw")
        if proto not in ("raw", "telnet"):
            raise Unsupported("%s: protocol '%s' is not supported (raw, telnet)" % (what, proto))
        if proto == "telnet":
            pairs.append(("telnet", True))
        pairs += [("server", True), ("wait", False)] if mode == "bind" else [("server", False)]
    elif t == "udp":
        head = "udp"
        sources = {given(s.mode, "connect"): s for s in ch.sources}
        if "connect" not in sources:
            raise InvalidArgument("%s: type='udp' needs <source mode='connect' host=... service=...>" % what)
        pairs += network_source(sources["connect"], what, "udp")
        if "bind" in sources:
            local = network_source(sources["bind"], what, "udp")
            pairs += [("localaddr", local[0][1]), ("localport", local[1][1])]
    elif t in ("pipe", "dev"):
        if not ch.source_path:
            raise InvalidArgument("%s: type='%s' needs <source path=...>" % (what, t))
        head = "pipe" if t == "pipe" else "serial"
        pairs.append(("path", ch.source_path))
    elif t in REFUSED_CHARDEVS:
        raise Unsupported("%s: character device type '%s' is not supported: %s" % (what, t, REFUSED_CHARDEVS[t]))
    else:
        raise Unsupported("%s: character device type '%s' is not supported (pty, file, unix, null, tcp, udp, "
                          "pipe, dev)" % (what, t))
    if log:
        primary = alias == primary_console_alias(b.dom, b.serials)
        logfile = b.paths.console_log if primary else b.paths.log_for(alias)
        pairs += [("logfile", logfile), ("logappend", True)]
    return opts(head, *pairs)


#: Character device types vsh refuses, and why.
REFUSED_CHARDEVS = {
    "vc": "it needs a graphical display window; vsh runs QEMU with -display none (use type='pty')",
    "spicevmc": "it needs <graphics type='spice'>", "spiceport": "vsh does not run SPICE ports",
    "qemu-vdagent": "vsh has no SPICE or VNC clipboard agent", "nmdm": "it exists only on FreeBSD",
}


def network_source(src, what: str, t: str) -> list[tuple[str, object]]:
    """host= and port= from a tcp/udp <source host service>."""
    if src is None or not src.service:
        raise InvalidArgument("%s: type='%s' needs <source host=... service=...>" % (what, t))
    return [("host", src.host or ("0.0.0.0" if t == "udp" else "localhost")),
            ("port", number(src.service, what + " service"))]


def serial(b: Builder, ch, n: int) -> None:
    """Serial port ``n``: its chardev and an isa-serial or pci-serial device."""
    what = "<serial> #%d" % n
    ttype = given(ch.target_type, "isa-serial")
    if ch.kind == "console":
        ttype = "isa-serial"  # <console><target type='serial'> standing in for serial port 0
    port = number(ch.raw("target_port"), what + " port", n)
    alias = "serial%d" % n
    b.add("-chardev", chardev(b, ch, "char" + alias, alias, what, log=True))
    if ttype == "isa-serial":
        if port > 3:
            raise InvalidArgument("%s: ISA serial port %d is out of range (0-3)" % (what, port))
        b.add("-device", opts("isa-serial", ("chardev", "char" + alias), ("id", alias), ("index", port)))
    elif ttype == "pci-serial":
        b.need_pci(what)
        b.add("-device", opts("pci-serial", ("chardev", "char" + alias), ("id", alias),
                              *b.pci.props(ch, what)))
    elif ttype == "usb-serial":
        if 0 not in b.usb_ctrls:
            raise InvalidArgument("%s needs a <controller type='usb'> with a model other than none" % what)
        b.add("-device", opts("usb-serial", ("chardev", "char" + alias), ("id", alias),
                              ("bus", "%s.0" % b.usb_ctrls[0]), usb_port(ch)))
    else:
        raise Unsupported("%s: target type '%s' is not supported (isa-serial, pci-serial, usb-serial)"
                          % (what, ttype))


def console(b: Builder, ch, n: int) -> None:
    """<console> number ``n``: serial port 0 (made once), or a virtio console."""
    what = "<console> #%d" % n
    ttype = given(ch.target_type, "serial")
    if ttype == "serial":
        if b.serials and b.serials[0].key == ch.key:
            serial(b, ch, 0)  # a console standing in for serial0
        return  # otherwise it is the view of serial0, already created
    if ttype != "virtio":
        raise Unsupported("%s: target type '%s' is not supported (serial, virtio)" % (what, ttype))
    alias = "console%d" % n
    b.add("-chardev", chardev(b, ch, "char" + alias, alias, what, log=True))
    pairs: list[tuple[str, object]] = [("chardev", "char" + alias), ("id", alias)]
    b.add("-device", opts("virtconsole", *vser_port(b, ch, what, console=True), *pairs))


def vser_port(b: Builder, ch, what: str, console: bool = False) -> list[tuple[str, object]]:
    """The virtio-serial bus (and port number) of a virtio console or channel."""
    a = ch.address
    if a is not None and a.type == "virtio-serial":
        ctrl = number(a.controller, what + " controller", 0)
        if ctrl not in b.vser_ctrls:
            raise InvalidArgument("%s: virtio-serial controller %d is not declared" % (what, ctrl))
        out: list[tuple[str, object]] = [("bus", "virtio-serial%d.%d" % (ctrl, number(a.bus, what, 0)))]
        if a.port:
            out.append(("nr", number(a.port, what + " port")))
        return out
    return [("bus", "virtio-serial0.0")]


def channel(b: Builder, ch, n: int) -> None:
    """<channel> number ``n``: a virtio-serial port with its chardev."""
    what = "<channel> #%d" % n
    if ch.target_type != "virtio":
        raise Unsupported("%s: only virtio channels are supported" % what)
    name = ch.target_name
    from vsh.kvm.channels import alias as channel_alias

    alias = channel_alias(n)
    b.add("-chardev", chardev(b, ch, "char" + alias, alias, what, log=False))
    pairs: list[tuple[str, object]] = [("chardev", "char" + alias), ("id", alias)]
    if name:
        pairs.append(("name", name))
    b.add("-device", opts("virtserialport", *vser_port(b, ch, what), *pairs))
