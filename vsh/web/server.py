"""The web console's HTTP server: the security rules, the static page, the run loop.

Rules (each has an HTTP-level test in tests/web/test_security.py):
- a one-time random token (32 bytes) in the printed URL is exchanged once for an HttpOnly,
  SameSite=Strict session cookie, then the browser is sent to the clean URL; anything without
  the cookie gets 401;
- the Host header must name the listen address (a DNS rebinding page sends its own name): 421;
- every websocket upgrade and every state-changing request must come from the page's own
  Origin, and state-changing requests must also carry the CSRF header (its value is in a
  SameSite=Strict cookie the page reads): 403;
- every answer says ``Content-Security-Policy: default-src 'self'``: the page has no inline
  script or style, and its code inserts nothing from a guest or a user as HTML.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import secrets
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

STATIC = os.path.join(os.path.dirname(__file__), "static")
CSRF_HEADER = "X-VSH-CSRF"
CSP = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Guard:
    """The secrets of one server run and the checks made on every request."""

    def __init__(self, host: str, port: int):
        self.token = secrets.token_urlsafe(32)
        self.session = secrets.token_urlsafe(32)
        self.csrf = secrets.token_urlsafe(32)
        self.token_used = False
        self.host, self.port = host, port
        self.authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.origin = f"http://{self.authority}"
        # cookies are not kept apart by port: two servers on one host must not share one
        self.session_cookie = f"vsh_session_{port}"
        self.csrf_cookie = f"vsh_csrf_{port}"
        self.wildcard = host in ("0.0.0.0", "::")

    def url(self) -> str:
        return f"{self.origin}/?token={self.token}"

    def host_ok(self, value: str) -> bool:
        if value == self.authority:
            return True
        if not self.wildcard:
            return False
        # listening on every address: an IP literal with our port (a rebinding page has a name)
        host, _sep, port = value.rpartition(":")
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        return port == str(self.port)

    def origin_ok(self, request) -> bool:
        origin = request.headers.get("Origin")
        if origin == self.origin:
            return True
        return self.wildcard and origin == f"http://{request.headers.get('Host', '')}"

    def authenticated(self, request) -> bool:
        return hmac.compare_digest(request.cookies.get(self.session_cookie, ""), self.session)


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", content_type="text/plain")


@web.middleware
async def guard_middleware(request, handler):
    guard: Guard = request.app["guard"]
    response = await _guarded(guard, request, handler)
    for key, value in HEADERS.items():
        response.headers.setdefault(key, value)
    if request.path.startswith("/static/") and response.status in (200, 304):
        response.headers["Cache-Control"] = "no-cache"      # kept, revalidated (ETag) on each load
    return response


async def _guarded(guard: Guard, request, handler):
    if not guard.host_ok(request.headers.get("Host", "")):
        return _plain(421, "misdirected request: the Host header does not name this server")
    authed = guard.authenticated(request)
    token = request.query.get("token")
    if token is not None and request.method == "GET":
        if not authed:
            if guard.token_used or not hmac.compare_digest(token, guard.token):
                return _plain(401, "unauthorized: this token was used already or is wrong; "
                                   "start vsh web again for a new URL")
            guard.token_used = True
        response = web.HTTPSeeOther(location=request.path)
        response.set_cookie(guard.session_cookie, guard.session, httponly=True, samesite="Strict", path="/")
        response.set_cookie(guard.csrf_cookie, guard.csrf, samesite="Strict", path="/")
        return response
    if not authed:
        return _plain(401, "unauthorized: open the URL that vsh web printed (it carries a one-time token)")
    upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
    changing = request.method not in SAFE_METHODS
    if (upgrade or changing) and not guard.origin_ok(request):
        return _plain(403, "forbidden: the request does not come from this server's page (Origin)")
    if changing and not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), guard.csrf):
        return _plain(403, f"forbidden: the {CSRF_HEADER} header is missing or wrong")
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return exc


async def index(request):
    return web.FileResponse(os.path.join(STATIC, "index.html"))


def make_app(conn, guard: Guard, pool: ThreadPoolExecutor) -> web.Application:
    from vsh.web import consoles, devices, live, pages, routes

    app = web.Application(middlewares=[guard_middleware], client_max_size=8 * 1024 * 1024)
    app["guard"] = guard
    app["conn"] = conn
    app["pool"] = pool
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    routes.add_routes(app)
    devices.add_routes(app)
    pages.add_routes(app)
    live.add_routes(app)
    consoles.add_routes(app)
    return app


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6 and host == "::":
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(conn, sock: socket.socket, guard: Guard, ready=None) -> None:
    """Serve until SIGINT or SIGTERM (or until ``ready``'s stop event is set)."""
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="vsh-web")
    app = make_app(conn, guard, pool)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock, shutdown_timeout=1.0)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (RuntimeError, ValueError):
            pass                        # not the main thread (a test's server)
    if ready is not None:
        ready(loop, stop)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        pool.shutdown(wait=False, cancel_futures=True)


def _open_browser(url: str, err) -> None:
    import webbrowser

    try:
        opened = webbrowser.open(url)
    except (webbrowser.Error, OSError):
        opened = False
    if not opened:
        err.write("warning: could not open a web browser; open the URL above\n")
        err.flush()


def run(conn, host: str = "127.0.0.1", port: int = 0, print_url: bool = False,
        open_browser: bool = False, out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        sock = bind(host, port)
    except OSError as exc:
        err.write(f"error: cannot listen on {host}:{port}: {exc.strerror}\n")
        return 1
    guard = Guard(host, sock.getsockname()[1])

    def announce(_loop, _stop):
        # only now: the server accepts and SIGINT/SIGTERM stop it cleanly
        out.write(guard.url() + "\n")
        if not print_url:
            out.write("vsh web: serving the web console; SIGINT or SIGTERM stops it\n")
        out.flush()
        if not is_loopback(host):
            err.write(f"warning: listening on {guard.authority}, not on loopback: anyone who can reach it "
                      f"can try the page (the token and cookie are all that protect it, over plain HTTP)\n")
            err.flush()
        if open_browser:
            import threading

            # the user's browser ($BROWSER, else the desktop's): a command that runs until the
            # browser is closed must not hold up the server
            threading.Thread(target=_open_browser, args=(guard.url(), err), daemon=True).start()

    asyncio.run(serve(conn, sock, guard, announce))
    return 0
