"""Live updates: one sampler for the whole server, pushed to every page over ``/api/events``.

The sampler reads the domain list (and each running domain's counters) in the thread pool once a
second while a page listens, and sends the rows only when they changed, plus one usage sample per
running domain (CPU %, memory, disk and network bytes per second) that the VM page draws as
graphs. The last :data:`HISTORY` samples of each domain are kept so a graph opens already drawn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque

from aiohttp import WSMsgType, web

from vsh.core.errors import VshError
from vsh.web.common import api, call

HISTORY = 300           # samples (seconds) of usage kept per domain
PERIOD = 1.0


def _rates(prev: dict | None, now: dict) -> dict:
    """Usage from two raw samples: CPU % of the domain's vCPUs, bytes/s of disk and network."""
    out = {"t": now["t"], "memory_kib": now["memory_kib"], "cpu": None, "disk_rd": None,
           "disk_wr": None, "net_rx": None, "net_tx": None}
    if prev is None or now["t"] <= prev["t"]:
        return out
    span = now["t"] - prev["t"]
    if now["cpu_ns"] is not None and prev["cpu_ns"] is not None:
        pct = (now["cpu_ns"] - prev["cpu_ns"]) / 1e9 / span * 100 / max(1, now["vcpus"])
        out["cpu"] = round(min(100.0, max(0.0, pct)), 1)
    for key in ("disk_rd", "disk_wr", "net_rx", "net_tx"):
        out[key] = max(0, round((now[key] - prev[key]) / span))
    return out


def raw_sample(dom, vcpus: int) -> dict:
    stats = dom.stats.domain_stats(["cpu-total", "balloon", "interface", "block"])
    raw = {"t": time.time(), "cpu_ns": stats.get("cpu.time"), "vcpus": vcpus,
           "memory_kib": stats.get("balloon.current")}
    for key, pattern in (("disk_rd", "block.{}.rd.bytes"), ("disk_wr", "block.{}.wr.bytes")):
        raw[key] = sum(int(stats.get(pattern.format(i), 0)) for i in range(int(stats.get("block.count", 0))))
    for key, pattern in (("net_rx", "net.{}.rx.bytes"), ("net_tx", "net.{}.tx.bytes")):
        raw[key] = sum(int(stats.get(pattern.format(i), 0)) for i in range(int(stats.get("net.count", 0))))
    return raw


class Live:
    """The sampler and the pages listening to it."""

    def __init__(self, app: web.Application):
        self.app = app
        self.clients: set[web.WebSocketResponse] = set()
        self.rows: list[dict] | None = None
        self.taken = 0.0
        self.raw: dict[str, dict] = {}
        self.history: dict[str, deque] = {}
        self.cpu: dict[str, float | None] = {}
        self.wake = asyncio.Event()
        self.task = None

    def poke(self) -> None:
        """Something changed: sample now rather than at the next tick."""
        self.wake.set()

    def sample(self) -> tuple[list[dict], list[dict]]:
        """(rows of the domain list, usage samples of the running domains); runs in the pool."""
        conn = self.app["conn"]
        rows, usage = [], []
        for item in conn.list_domains():
            try:
                dom = conn.lookup_domain(item["name"])
                info = dom.info()
            except VshError:
                continue            # gone meanwhile
            row = {"name": item["name"], "state": item["state"], "id": item["id"], "active": item["active"],
                   "persistent": item["persistent"], "vcpus": info.get("cpus"),
                   "memory_kib": info.get("used_memory_kib"), "max_memory_kib": info.get("max_memory_kib"),
                   "autostart": info.get("autostart"), "cpu": None}
            if item["active"]:
                try:
                    now = raw_sample(dom, info.get("cpus") or 1)
                except VshError:
                    now = None
                if now is not None:
                    point = _rates(self.raw.get(item["name"]), now)
                    self.raw[item["name"]] = now
                    self.history.setdefault(item["name"], deque(maxlen=HISTORY)).append(point)
                    row["cpu"] = point["cpu"]
                    usage.append({"name": item["name"], "point": point})
            else:
                self.raw.pop(item["name"], None)
            rows.append(row)
        return rows, usage

    async def refresh(self) -> tuple[list[dict], list[dict]]:
        loop = asyncio.get_running_loop()
        rows, usage = await loop.run_in_executor(self.app["pool"], self.sample)
        changed = rows != self.rows
        self.rows, self.taken = rows, time.monotonic()
        if changed:
            await self.broadcast({"type": "domains", "domains": rows})
        for item in usage:
            await self.broadcast({"type": "usage", **item})
        return rows, usage

    async def broadcast(self, message: dict) -> None:
        text = json.dumps(message, default=str)
        for ws in list(self.clients):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(text)

    async def loop(self) -> None:
        while True:
            if self.clients:
                with contextlib.suppress(VshError):
                    await self.refresh()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), PERIOD)
            self.wake.clear()


@api
async def list_domains(request):
    live: Live = request.app["live"]
    if live.rows is None or time.monotonic() - live.taken > PERIOD:
        await live.refresh()
    return live.rows


@api
async def usage(request):
    name = request.match_info["name"]
    await call(request, request.app["conn"].lookup_domain, name)
    return list(request.app["live"].history.get(name, ()))


async def events(request):
    live: Live = request.app["live"]
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    live.clients.add(ws)
    try:
        if live.rows is not None:
            await ws.send_str(json.dumps({"type": "domains", "domains": live.rows}, default=str))
        live.poke()
        async for msg in ws:
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        live.clients.discard(ws)
    return ws


async def _start(app):
    app["live"].task = asyncio.get_running_loop().create_task(app["live"].loop())


async def _stop(app):
    live: Live = app["live"]
    for ws in list(live.clients):
        await ws.close(code=1001, message=b"server stopping")
    if live.task is not None:
        live.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await live.task


def add_routes(app: web.Application) -> None:
    app["live"] = Live(app)
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
    app.router.add_get("/api/domains", list_domains)
    app.router.add_get("/api/domains/{name}/usage", usage)
    app.router.add_get("/api/events", events)
