"""Graphics, screen, keyboard and NMI of one domain through libvirt."""

from __future__ import annotations

from vsh.api.display import GRAPHICS_TYPES, DomainDisplay
from vsh.api.libvirt.lv import call, mod
from vsh.core.errors import InvalidArgument, OperationInvalid


def _int(text):
    return int(text) if text and text.lstrip("-").isdigit() and int(text) > 0 else None


class LibvirtDomainDisplay(DomainDisplay):
    def __init__(self, dom):
        self.dom = dom

    def _running(self) -> None:
        if not self.dom.active():
            raise OperationInvalid("Requested operation is not valid: domain is not running")

    def graphics(self) -> list[dict]:
        self._running()
        found = []
        for el in self.dom._tree().iter("graphics"):
            if el.get("type") not in GRAPHICS_TYPES:
                continue
            listen = el.find("listen")
            socket = el.get("socket") or (listen.get("socket") if listen is not None else None)
            address = el.get("listen") or (listen.get("address") if listen is not None else None)
            found.append({"type": el.get("type"), "port": _int(el.get("port")), "tls_port": _int(el.get("tlsPort")),
                          "listen": address, "socket": socket, "password": el.get("passwd")})
        return sorted(found, key=lambda g: GRAPHICS_TYPES.index(g["type"]))

    def screenshot(self, screen: int = 0) -> dict:
        m = mod()
        stream = call("virStreamNew", self.dom.conn.ptr, 0)
        chunks = []
        try:
            mime = self.dom._call("virDomainScreenshot", stream, screen, 0)
            while True:
                data = call("virStreamRecv", stream, 262144)
                if not data:
                    break
                chunks.append(data)
            call("virStreamFinish", stream)
        except Exception:
            m.virStreamAbort(stream)
            raise
        finally:
            m.virStreamFree(stream)
        return {"mime": mime, "data": b"".join(chunks)}

    def send_key(self, codeset: str, keycodes: list[int], holdtime: int = 0) -> None:
        from vsh.core.keycodes import CODESETS

        if codeset not in CODESETS:
            raise InvalidArgument(f"invalid argument: unknown keycode set '{codeset}'")
        # virKeycodeSet numbers the sets in the order of CODESETS
        self.dom._call("virDomainSendKey", CODESETS.index(codeset), holdtime, list(keycodes), len(keycodes), 0)

    def inject_nmi(self) -> None:
        self.dom._call("virDomainInjectNMI", 0)
