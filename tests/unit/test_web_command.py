"""`vsh web`'s declaration and the pure parts of its server: the listen address, the Host rule."""

from __future__ import annotations

import pytest

from vsh.commands.web import parse_listen, web
from vsh.core.errors import InvalidArgument
from vsh.core.output import FrontEnd


@pytest.mark.parametrize("text, expected", [
    (None, ("127.0.0.1", 0)), ("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:9000", ("::1", 9000)),
    ("0.0.0.0:0", ("0.0.0.0", 0)), ("localhost", ("localhost", 0)),
])
def test_listen_addresses(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:http", ":80", "127.0.0.1:70000"])
def test_bad_listen_addresses(text):
    with pytest.raises(InvalidArgument, match="is not HOST:PORT"):
        parse_listen(text)


def test_the_command_hands_the_process_to_the_web_front_end():
    out = web(None, listen="127.0.0.1:8000", print_url=True)
    assert isinstance(out, FrontEnd)
    assert (out.name, out.options) == ("web", {"host": "127.0.0.1", "port": 8000, "print_url": True,
                                               "open_browser": False})


def test_the_host_rule():
    server = pytest.importorskip("vsh.web.server")
    g = server.Guard("127.0.0.1", 8000)
    assert g.host_ok("127.0.0.1:8000")
    assert not g.host_ok("localhost:8000") and not g.host_ok("evil.example:8000") and not g.host_ok("")
    wild = server.Guard("0.0.0.0", 8000)
    assert wild.host_ok("192.0.2.7:8000") and wild.host_ok("[2001:db8::1]:8000")
    assert not wild.host_ok("rebind.example:8000") and not wild.host_ok("192.0.2.7:8001")
    v6 = server.Guard("::1", 8000)
    assert v6.authority == "[::1]:8000" and v6.host_ok("[::1]:8000")
    assert server.is_loopback("127.0.0.2") and server.is_loopback("::1") and not server.is_loopback("0.0.0.0")
    assert len(g.token) == 43 and g.token != g.session != g.csrf
