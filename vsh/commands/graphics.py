"""What a person sees and types on a running domain: domdisplay, vncdisplay, screenshot,
send-key, inject-nmi.

The operations are the display sub-handle's (:mod:`vsh.api.display`); here virsh's options,
its key names (:mod:`vsh.core.keycodes`), its URIs and its messages. vsh's VNC is always on a
unix socket, so ``domdisplay`` prints ``vnc+unix:///path`` as virsh does for such a display.
"""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, OperationInvalid, VshError
from vsh.core.output import Lines, Message, Text
from vsh.registry import Opt, command

DOMAIN = Opt("domain", kind="domain", required=True, positional=True, help="domain name, id or uuid")
MAX_KEYS = 16


def _running(ctx, domain):
    """virsh's check before it reads the display: ``Domain is not running``."""
    dom = ctx.conn.lookup_domain(domain)
    if dom.id is None:
        raise OperationInvalid("Domain is not running")
    return dom


def display_uri(g: dict, include_password: bool = False) -> str:
    """virsh domdisplay's URI for one graphics dict of :meth:`DomainDisplay.graphics`."""
    scheme = g["type"]
    sock = g.get("socket") if not g.get("port") and not g.get("tls_port") else None
    uri = f"{scheme}+unix://" if sock else f"{scheme}://"
    if include_password and g.get("password") and scheme == "vnc":
        uri += f":{g['password']}@"
    if not sock:
        listen = g.get("listen")
        if not listen or listen in ("0.0.0.0", "::"):
            uri += "localhost"
        else:
            uri += f"[{listen}]" if ":" in listen else listen
    port = g.get("port")
    if port:
        uri += f":{port - 5900 if scheme == 'vnc' else port}"
    elif g.get("tls_port") and not sock:
        uri += ":-1"
    if sock:
        uri += sock
    if g.get("tls_port"):
        uri += f"?tls-port={g['tls_port']}"
    return uri


@command("domdisplay", group="domain", summary="domain display connection URI",
         opts=[DOMAIN,
               Opt("include-password", kind="bool", help="includes the password into the connection URI if available"),
               Opt("type", kind="string", help='select particular graphical display (e.g. "vnc", "spice", "rdp")'),
               Opt("all", kind="bool", help="show all possible graphical displays")],
         description="Print the URI of the running domain's graphical display. vsh's VNC listens on a\n"
                     "unix socket only (never TCP): the URI is vnc+unix:///path/to/vnc.sock, which\n"
                     "VNC viewers that take a socket (or a proxy such as websockify) can use.",
         examples=("domdisplay vm1", "domdisplay vm1 --type vnc"))
def domdisplay(ctx, domain, include_password=False, type=None, all=False):
    dom = _running(ctx, domain)
    found = dom.display.graphics()
    if type:
        found = [g for g in found if g["type"] == type]
    if not found:
        raise VshError(f"No graphical display with type '{type}' found" if type else "No graphical display found")
    if not all:
        found = found[:1]
    uris = [display_uri(g, include_password) for g in found]
    return Lines(uris, json_data=[{"type": g["type"], "uri": u, "socket": g["socket"]}
                                  for g, u in zip(found, uris)])


@command("vncdisplay", group="domain", summary="vnc display", opts=[DOMAIN],
         description="Print the VNC display (:N) of a running domain listening on TCP. vsh's VNC is on\n"
                     "a unix socket, which has no display number: domdisplay prints its URI.",
         examples=("vncdisplay vm1",))
def vncdisplay(ctx, domain):
    dom = _running(ctx, domain)
    vnc = next((g for g in dom.display.graphics() if g["type"] == "vnc"), None)
    if vnc is None or not vnc["port"]:
        raise VshError("Failed to get VNC port. Is this domain using VNC?",
                       hint=f"its VNC display is the unix socket {vnc['socket']}: see 'domdisplay {dom.name}'"
                       if vnc is not None and vnc["socket"] else None)
    listen = vnc["listen"]
    text = f":{vnc['port'] - 5900}" if not listen or listen == "0.0.0.0" else f"{listen}:{vnc['port'] - 5900}"
    return Lines([text], json_data={"listen": listen, "display": vnc["port"] - 5900})


def screenshot_file_name(name: str, mime: str) -> str:
    """virsh's default file name: ``NAME-YYYY-MM-DD-HH:MM:SS.ppm`` (local time)."""
    import time

    ext = {"image/x-portable-pixmap": ".ppm", "image/png": ".png"}.get(mime, "")
    return f"{name}-{time.strftime('%Y-%m-%d-%H:%M:%S', time.localtime())}{ext}"


@command("screenshot", group="domain", summary="take a screenshot of a current domain console and store it into a file",
         opts=[DOMAIN,
               Opt("file", kind="file", positional=True, help="where to store the screenshot"),
               Opt("screen", kind="int", help="ID of a screen to take screenshot of")],
         mutating=False,
         description="Save what the domain's display shows now (QMP screendump) as a PPM image, to\n"
                     "FILE or to NAME-DATE-TIME.ppm in the current directory.",
         examples=("screenshot vm1", "screenshot vm1 --file /tmp/vm1.ppm"))
def screenshot(ctx, domain, file=None, screen=None):
    import os

    dom = ctx.conn.lookup_domain(domain)
    shot = dom.display.screenshot(screen=screen or 0)
    path = file or screenshot_file_name(dom.name, shot["mime"])
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    except OSError:
        raise VshError(f"cannot create file {path}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(shot["data"])
    return Message(f"Screenshot saved to {path}, with type of {shot['mime']}", newline=False,
                   json_data={"domain": dom.name, "file": path, "mime": shot["mime"], "size": len(shot["data"])})


def parse_keycode(codeset: str, word: str) -> int:
    """A key name of ``codeset`` or a number (C's base 0: 0x1c, 034, 28); virsh's error otherwise."""
    from vsh.core import keycodes

    code = keycodes.by_name(codeset, word)
    if code is not None:
        return code
    text = word.strip()
    try:
        if text[:2].lower() == "0x":
            value = int(text[2:], 16)
        elif len(text) > 1 and text[0] == "0":
            value = int(text[1:], 8)
        elif text.isdigit():
            value = int(text, 10)
        else:
            raise ValueError(text)
    except ValueError:
        raise InvalidArgument(f"invalid keycode: '{word}'") from None
    if value > 0xffff:
        raise InvalidArgument(f"invalid keycode: '{word}'")
    return value


@command("send-key", group="domain", summary="Send keycodes to the guest",
         opts=[DOMAIN,
               Opt("codeset", kind="string", help="the codeset of keycodes, default:linux"),
               Opt("holdtime", kind="int", help="the time (in milliseconds) how long the keys will be held"),
               Opt("keycode", kind="argv", required=True, help="the key code")],
         mutating=True,
         description="Press keys on the guest's keyboard together, hold them, release them. A key is a\n"
                     "name of its codeset (linux: KEY_A, KEY_LEFTCTRL; win32: VK_RETURN) or a number;\n"
                     "the codesets vsh translates are linux, xt, atset1, usb, win32, rfb and qnum.",
         examples=("send-key vm1 KEY_LEFTCTRL KEY_LEFTALT KEY_DELETE", "send-key vm1 --codeset xt 0x1c",
                   "send-key vm1 --holdtime 1000 KEY_A"))
def send_key(ctx, domain, keycode, codeset=None, holdtime=None):
    from vsh.core import keycodes

    codeset = codeset or "linux"
    if codeset not in keycodes.CODESETS:
        raise InvalidArgument(f"unknown codeset: '{codeset}'")
    codes = []
    for word in keycode:
        if len(codes) == MAX_KEYS:
            raise InvalidArgument("too many keycodes")
        codes.append(parse_keycode(codeset, word))
    dom = ctx.conn.lookup_domain(domain)
    dom.display.send_key(codeset, codes, holdtime=holdtime or 0)
    return Text("", json_data={"domain": dom.name, "codeset": codeset, "keycodes": codes,
                               "holdtime": holdtime or 0})


@command("inject-nmi", group="domain", summary="Inject NMI to the guest", opts=[DOMAIN], mutating=True,
         description="Raise a non-maskable interrupt on the guest's CPUs (a Linux guest logs it; with\n"
                     "kernel.unknown_nmi_panic or a crash kernel it dumps).",
         examples=("inject-nmi vm1",))
def inject_nmi(ctx, domain):
    dom = ctx.conn.lookup_domain(domain)
    dom.display.inject_nmi()
    return Text("", json_data={"domain": dom.name})
