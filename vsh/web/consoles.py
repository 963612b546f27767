"""The consoles of the VM page: the serial console and the graphical (VNC) console over websockets.

Serial: a domain has one console session (``dom.open_console()``); one :class:`SerialHub` per
domain holds it and shares it with every tab that shows the console: guest output goes to all of
them (a new tab first gets the last :data:`BACKLOG` bytes), keystrokes from any of them go to the
guest. Binary frames carry the bytes; a text frame is a JSON notice for the page. When the domain
stops, the hub lets go and closes the tabs' sockets with :data:`ENDED`; the page opens a new socket
when the domain runs again (a reboot inside the same QEMU keeps the session).

Graphical: QEMU's VNC listens only on its unix socket; each websocket is relayed byte for byte to
a new connection to that socket (noVNC speaks RFB over it). The websocket upgrade passed the
Origin and cookie checks of :mod:`vsh.web.server`; QEMU's own websocket server is never used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import WSMsgType, web

from vsh.core.errors import OperationInvalid, VshError
from vsh.web.common import call

BACKLOG = 32 * 1024
ENDED = 4000            # websocket close code: the console ended (the domain stopped)
REFUSED = 4001          # the console could not be opened (the notice says why)


class SerialHub:
    """The one console session of a domain, shared by the tabs showing it."""

    def __init__(self, app: web.Application, name: str):
        self.app, self.name = app, name
        self.clients: set[web.WebSocketResponse] = set()
        self.stream = None
        self.backlog = bytearray()
        self.opening = asyncio.Lock()
        self.writing = asyncio.Lock()

    async def ensure_open(self) -> None:
        async with self.opening:
            if self.stream is not None:
                return
            loop = asyncio.get_running_loop()
            conn = self.app["conn"]
            self.stream = await loop.run_in_executor(
                self.app["pool"], lambda: conn.lookup_domain(self.name).open_console())
            self.backlog.clear()
            loop.add_reader(self.stream.fileno(), self._readable)

    def _readable(self) -> None:
        data = self.stream.read() if self.stream is not None else b""
        if data is None:
            return
        if not data:
            self.close_stream()
            for ws in list(self.clients):
                asyncio.ensure_future(ws.close(code=ENDED, message=b"console ended"))
            return
        self.backlog += data
        del self.backlog[:-BACKLOG]
        for ws in list(self.clients):
            if not ws.closed:
                asyncio.ensure_future(_send(ws, data))

    def close_stream(self) -> None:
        if self.stream is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self.stream.fileno())
            self.stream.close()
            self.stream = None

    async def write(self, data: bytes) -> None:
        async with self.writing:
            stream = self.stream
            if stream is not None:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self.app["pool"], stream.write, data)


async def _send(ws, data: bytes) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_bytes(data)


def _hub(app, name: str) -> SerialHub:
    hubs = app["serial_hubs"]
    if name not in hubs:
        hubs[name] = SerialHub(app, name)
    return hubs[name]


async def _refuse(ws, err: VshError):
    await ws.send_str(json.dumps({"type": "error", "error": "\n".join(err.lines)}))
    await ws.close(code=REFUSED, message=b"console unavailable")
    return ws


async def serial(request):
    name = request.match_info["name"]
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=1 << 20)
    await ws.prepare(request)
    hub = _hub(request.app, name)
    try:
        await hub.ensure_open()
    except VshError as err:
        return await _refuse(ws, err)
    hub.clients.add(ws)
    try:
        if hub.backlog:
            await ws.send_bytes(bytes(hub.backlog))
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await hub.write(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await hub.write(msg.data.encode("utf-8"))
            elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    except VshError as err:
        await _refuse(ws, err)
    finally:
        hub.clients.discard(ws)
        if not hub.clients:
            hub.close_stream()
    return ws


def vnc_socket(conn, name: str) -> str:
    dom = conn.lookup_domain(name)
    if dom.id is None:
        raise OperationInvalid("Domain is not running")
    for g in dom.display.graphics():
        if g["type"] == "vnc" and g.get("socket"):
            return g["socket"]
    raise OperationInvalid("No graphical display found")


async def vnc(request):
    name = request.match_info["name"]
    ws = web.WebSocketResponse(protocols=("binary",), heartbeat=30, max_msg_size=1 << 22)
    await ws.prepare(request)
    try:
        path = await call(request, vnc_socket, request.app["conn"], name)
        reader, writer = await asyncio.open_unix_connection(path)
    except VshError as err:
        return await _refuse(ws, err)
    except OSError as exc:
        return await _refuse(ws, VshError(f"cannot connect to the VNC socket: {exc.strerror}"))

    async def guest_to_page():
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            await ws.send_bytes(data)
        await ws.close(code=ENDED, message=b"display ended")

    pump = asyncio.ensure_future(guest_to_page())
    request.app["vnc_relays"].add(ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                writer.write(msg.data)
                await writer.drain()
            elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    except ConnectionError:
        pass
    finally:
        request.app["vnc_relays"].discard(ws)
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
            await pump
        writer.close()
    return ws


async def _shutdown(app):
    for hub in app["serial_hubs"].values():
        for ws in list(hub.clients):
            await ws.close(code=1001, message=b"server stopping")
        hub.close_stream()
    for ws in list(app["vnc_relays"]):
        await ws.close(code=1001, message=b"server stopping")


def add_routes(app: web.Application) -> None:
    app["serial_hubs"] = {}
    app["vnc_relays"] = set()
    app.on_shutdown.append(_shutdown)
    app.router.add_get("/api/domains/{name}/serial", serial)
    app.router.add_get("/api/domains/{name}/vnc", vnc)
