"""The web console's security rules at the HTTP level, against a real `vsh web` process."""

from __future__ import annotations

import base64
import os
import signal

import pytest


DOMAIN = """<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>"""


@pytest.fixture
def webserver(web_helpers):
    pytest.importorskip("aiohttp")
    return web_helpers.webserver


@pytest.fixture
def server(vsh_env, webserver):
    srv = webserver.Server(dict(os.environ))
    yield srv
    srv.stop()


def upgrade_headers(origin: str | None) -> dict:
    hdrs = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
    if origin:
        hdrs["Origin"] = origin
    return hdrs


def test_first_line_is_the_url_and_print_url_prints_nothing_else(server):
    assert server.url.startswith("http://127.0.0.1:")
    assert server.stop() == 0
    assert server.rest_stdout == ""
    assert len(base64.urlsafe_b64decode(server.token + "=")) == 32


def test_without_print_url_a_second_line_says_how_to_stop(vsh_env, webserver):
    srv = webserver.Server(dict(os.environ), print_url=False)
    assert srv.stop(signal.SIGINT) == 0
    assert srv.rest_stdout == "vsh web: serving the web console; SIGINT or SIGTERM stops it\n"


def test_sigint_and_sigterm_exit_zero(vsh_env, webserver):
    for signum in (signal.SIGINT, signal.SIGTERM):
        srv = webserver.Server(dict(os.environ))
        assert srv.stop(signum) == 0


def test_the_token_is_exchanged_once_for_a_strict_httponly_cookie(server):
    resp = server.login()
    assert resp.status == 303
    assert resp.headers["Location"] == "/"
    cookies = resp.headers.get_all("Set-Cookie")
    session = next(c for c in cookies if c.startswith(f"vsh_session_{server.port}="))
    assert "HttpOnly" in session and "SameSite=Strict" in session
    assert f"vsh_session_{server.port}=" not in server.url
    # the page and the API now answer
    resp, body = server.request("GET", "/")
    assert resp.status == 200 and b"<main" in body
    resp, body = server.request("GET", "/api/domains")
    assert resp.status == 200 and body.startswith(b"[")
    # the token does not work twice
    resp, _ = server.request("GET", f"/?token={server.token}", cookies=False)
    assert resp.status == 401


@pytest.mark.parametrize("path", ["/", "/api/domains", "/static/js/app.js", "/api/host"])
def test_without_the_cookie_everything_is_401(server, path):
    resp, _ = server.request("GET", path)
    assert resp.status == 401
    resp, _ = server.request("GET", "/?token=" + "A" * 43)
    assert resp.status == 401


def test_a_wrong_cookie_is_401(server):
    server.login()
    server.cookies[f"vsh_session_{server.port}"] = "x" * 43
    resp, _ = server.request("GET", "/api/domains")
    assert resp.status == 401


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "localhost:{port}", "127.0.0.1:1", ""])
def test_a_foreign_host_header_is_refused(server, host):
    """DNS rebinding: a page from another name reaching our address sends its own Host."""
    server.login()
    resp, _ = server.request("GET", "/api/domains", headers={"Host": host.format(port=server.port)})
    assert resp.status == 421
    resp, _ = server.request("GET", f"/?token={server.token}", headers={"Host": host.format(port=server.port)},
                             cookies=False)
    assert resp.status == 421


def test_state_changing_requests_need_the_origin_and_the_csrf_header(server, vsh_env):
    from vsh import api

    api.connect(vsh_env.uri).define_xml(DOMAIN.format(name="vm1"))
    server.login()
    good = server.changing_headers()
    path = "/api/domains/vm1/settings"
    body = b'{"autostart": true}'
    for drop in ("Origin", "X-VSH-CSRF"):
        hdrs = {k: v for k, v in good.items() if k != drop}
        resp, _ = server.request("PUT", path, headers=hdrs, body=body)
        assert resp.status == 403, drop
    resp, _ = server.request("PUT", path, headers={**good, "Origin": "http://evil.example"}, body=body)
    assert resp.status == 403
    resp, _ = server.request("PUT", path, headers={**good, "X-VSH-CSRF": "x" * 43}, body=body)
    assert resp.status == 403
    assert api.connect(vsh_env.uri).lookup_domain("vm1").info()["autostart"] is False
    resp, data = server.request("PUT", path, headers=good, body=body)
    assert resp.status == 200, data
    assert api.connect(vsh_env.uri).lookup_domain("vm1").info()["autostart"] is True


@pytest.mark.parametrize("path", ["/api/events", "/api/domains/vm1/serial", "/api/domains/vm1/vnc"])
def test_websocket_upgrades_need_the_origin(server, path):
    server.login()
    for origin in (None, "http://evil.example", f"http://localhost:{server.port}"):
        resp, _ = server.request("GET", path, headers=upgrade_headers(origin))
        assert resp.status == 403, origin
    resp, _ = server.request("GET", "/api/events", headers=upgrade_headers(server.origin))
    assert resp.status == 101


def test_every_answer_carries_the_content_security_policy(server):
    answers = [server.request("GET", "/")[0]]
    server.login()
    answers += [server.request("GET", p)[0] for p in ("/", "/api/domains", "/static/js/app.js", "/nothing")]
    answers.append(server.request("GET", "/", headers={"Host": "evil.example"})[0])
    for resp in answers:
        assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_the_page_has_no_inline_script_or_style(webserver):
    static = webserver.ROOT / "vsh" / "web" / "static"
    html = (static / "index.html").read_text()
    assert "<style" not in html and " style=" not in html
    assert all("src=" in tag for tag in html.split("<script")[1:])
    for js in (static / "js").glob("*.js"):
        text = js.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{js.name} uses {sink}"


def test_errors_come_back_as_json(server):
    server.login()
    resp, data = server.request("GET", "/api/domains/nosuch")
    assert resp.status == 404
    assert b"nosuch" in data and data.startswith(b'{"error"')
