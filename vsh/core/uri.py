"""Connection URIs, parsed as libvirt parses them:
``driver[+transport]://[user@][host][:port]/[path][?query]``.

Which URI is used when none is given: ``VSH_DEFAULT_URI``, then ``VSH_URI``, then
``vsh:///system`` for root and ``vsh:///session`` for everyone else.
"""

from __future__ import annotations

import os

from vsh.core.errors import VshError


def unsupported(text: str) -> VshError:
    """The error for a URI no driver takes."""
    return VshError("failed to connect to the hypervisor",
                    f"unsupported connection URI '{text}': vsh knows vsh:///session and vsh:///system"
                    " (with an optional ?root=DIR)")


class Uri:
    """The parts of a connection URI; ``text`` is the URI as given (or chosen by default)."""

    __slots__ = ("text", "scheme", "transport", "user", "host", "port", "path", "query")

    def __init__(self, text: str, scheme: str, transport: str | None, user: str | None, host: str,
                 port: int | None, path: str, query: dict):
        self.text = text
        self.scheme = scheme
        self.transport = transport
        self.user = user
        self.host = host
        self.port = port
        self.path = path
        self.query = query

    @staticmethod
    def default_text() -> str:
        text = os.environ.get("VSH_DEFAULT_URI") or os.environ.get("VSH_URI")
        return text or ("vsh:///system" if os.geteuid() == 0 else "vsh:///session")

    @classmethod
    def parse(cls, text: str | None) -> "Uri":
        if not text:
            text = cls.default_text()
        scheme_part, sep, rest = text.partition("://")
        if not sep or not scheme_part:
            raise VshError("failed to connect to the hypervisor", f"malformed connection URI '{text}'")
        scheme, _plus, transport = scheme_part.partition("+")
        netloc, _slash, path_query = rest.partition("/")
        path, _q, query_text = path_query.partition("?")
        user, _at, hostport = netloc.rpartition("@")
        host, port = hostport, None
        if hostport.startswith("["):                       # [v6]:port
            close = hostport.find("]")
            host, tail = hostport[1:close], hostport[close + 1:]
            if tail.startswith(":"):
                port = tail[1:]
        elif ":" in hostport:
            host, _colon, port = hostport.partition(":")
        if port is not None:
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise VshError("failed to connect to the hypervisor",
                               f"invalid port '{port}' in connection URI '{text}'")
            port = int(port)
        query = {}
        for item in query_text.split("&"):
            key, _eq, value = item.partition("=")
            if key:
                if "%" in value:
                    from urllib.parse import unquote

                    value = unquote(value)
                query[key] = value
        return cls(text, scheme, transport or None, user or None, host, port, "/" + path, query)
