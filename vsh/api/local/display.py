"""The local driver: graphics, screen, keyboard and NMI of a running domain, through QMP.

VNC is always on a unix socket (``vsh/kvm/argv/graphics.py``); the live definition names it
(``<listen type='socket'>``, written at launch as libvirt does).
"""

from __future__ import annotations

import os

from vsh.api.display import GRAPHICS_TYPES, DomainDisplay
from vsh.core.errors import InvalidArgument, OperationInvalid, Unsupported, VshError

MAX_KEYS = 16       # VIR_DOMAIN_SEND_KEY_MAX_KEYS
VNC_SOCKET = "vnc.sock"


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def graphics_of(node, rundir: str) -> list[dict]:
    """The ``<graphics>`` of the domain element ``node`` as :meth:`DomainDisplay.graphics` says."""
    found = []
    for el in node.findall("./devices/graphics"):
        gtype = el.get("type")
        if gtype not in GRAPHICS_TYPES:
            continue
        listen = el.find("listen[@type='socket']")
        sock = listen.get("socket") if listen is not None and listen.get("socket") else el.get("socket")
        address = el.get("listen")
        if address is None:
            addr_el = el.find("listen[@type='address']")
            address = addr_el.get("address") if addr_el is not None else None
        if gtype == "vnc" and not sock:
            sock = os.path.join(rundir, VNC_SOCKET)     # what the argv builder gives QEMU
        port = _int(el.get("port"))
        found.append({"type": gtype, "port": port if port and port > 0 else None,
                      "tls_port": _int(el.get("tlsPort")) or None, "listen": address, "socket": sock,
                      "password": el.get("passwd")})
    found.sort(key=lambda g: GRAPHICS_TYPES.index(g["type"]))
    return found


class LocalDomainDisplay(DomainDisplay):
    """``dom.display`` of a :class:`~vsh.api.local.domain.LocalDomain`."""

    def __init__(self, domain):
        self.domain = domain

    def _rundir(self) -> str:
        dom = self.domain
        ref = dom.refresh()
        if not ref.active:
            raise OperationInvalid("Requested operation is not valid: domain is not running")
        return dom.store.runtime_path(dom.name)

    def _qmp(self, cmd: str, args: dict | None = None):
        from vsh.kvm import client

        return client.qmp(self._rundir(), cmd, args)

    def graphics(self) -> list[dict]:
        from vsh.core.domain import Domain

        rundir = self._rundir()
        return graphics_of(Domain.parse(self.domain.xml()).node, rundir)

    def screenshot(self, screen: int = 0) -> dict:
        rundir = self._rundir()
        if screen < 0:
            raise InvalidArgument(f"invalid argument: invalid screen ID {screen}")
        path = os.path.join(rundir, f"screendump-{os.getpid()}.ppm")
        args = {"filename": path}
        if screen:
            args["head"] = screen
        try:
            self._qmp("screendump", args)
            with open(path, "rb") as fh:
                data = fh.read()
        except VshError as err:
            text = " ".join(err.lines)
            if "no console" in text.lower() or "no graphic" in text.lower() or "there is no" in text.lower():
                raise OperationInvalid(f"Requested operation is not valid: domain '{self.domain.name}' has no "
                                       f"display adapter to take a screenshot of",
                                       hint="add a <video> device (and <graphics type='vnc'/>) to its XML") \
                    from None
            raise
        finally:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        return {"mime": "image/x-portable-pixmap", "data": data}

    def send_key(self, codeset: str, keycodes: list[int], holdtime: int = 0) -> None:
        from vsh.core import keycodes as kc

        if codeset not in kc.CODESETS:
            raise InvalidArgument(f"invalid argument: unknown keycode set '{codeset}'")
        if codeset not in kc.SUPPORTED:
            raise Unsupported(f"unsupported configuration: keycode set '{codeset}' cannot be translated by vsh",
                              hint="use one of " + ", ".join(kc.SUPPORTED))
        if not keycodes or len(keycodes) > MAX_KEYS:
            raise InvalidArgument(f"invalid argument: nkeycodes must be between 1 and {MAX_KEYS}")
        if holdtime < 0:
            raise InvalidArgument("invalid argument: holdtime must not be negative")
        keys = []
        for code in keycodes:
            qnum = kc.to_qnum(codeset, int(code))
            if qnum is None:
                raise InvalidArgument(f"invalid argument: cannot translate keycode {code} of {codeset} "
                                      "codeset to qnum keycode")
            keys.append({"type": "number", "data": qnum})
        args = {"keys": keys}
        if holdtime:
            args["hold-time"] = int(holdtime)
        self._qmp("send-key", args)

    def inject_nmi(self) -> None:
        self._qmp("inject-nmi")
