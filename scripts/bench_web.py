"""Bench section `web` (issue 12): the web console.

Imported by scripts/bench.py, which calls run(). A store of its own with 100 defined domains and
one running test guest; `vsh web` on loopback; Debian's chromium through Playwright.

* first paint of the VM list with 100 defined VMs (goal <= 300 ms): a fresh tab, from the start
  of its navigation to the frame that painted the rows, as chromium itself reports it (Element
  Timing: the list's name cells carry `elementtiming`; the latest renderTime of the 100). Beside
  it, where the time went (medians): the document's response, the list's response (/api/domains,
  preloaded by index.html), the rows in the DOM (the page's `vsh-list-drawn` mark), and the
  server's own time for /api/domains (a fresh sample and the cached answer);
* serial-console keystroke echo through the server's websocket relay, p50 (goal <= 30 ms);
* 10 concurrent console tabs (websockets) on one VM: all see one command's answer;
* the server's RSS after all that (goal <= 60 MB).

Environment knob: VSH_BENCH_WEB_RUNS (page loads and keystrokes, default 9 / 60).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import ROOT, VSH, report
from bench_start import log, test_guest

DOMAIN = """<domain type='qemu'><name>{name}</name><memory unit='MiB'>{mib}</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>"""
GUEST = """<domain type='qemu'><name>bench-web</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><kernel>{kernel}</kernel><initrd>{initrd}</initrd>
<cmdline>{cmdline}</cmdline></os><features><acpi/></features>
<devices><serial type='pty'><target port='0'/></serial><console type='pty'><target type='serial' port='0'/></console>
</devices></domain>"""


# in the page, once its 100 rows are there: ms from navigation start to the document's response,
# the list's response, the rows in the DOM, and the latest paint of their names (Element Timing)
TIMINGS = """() => new Promise((done) => {
    const nav = performance.getEntriesByType("navigation")[0];
    const list = performance.getEntriesByType("resource").find((e) => e.name.endsWith("/api/domains"));
    const drawn = performance.getEntriesByName("vsh-list-drawn")[0];
    const answer = (painted) => done([nav.responseEnd, list ? list.responseEnd : null,
                                      drawn ? drawn.startTime : null, painted]);
    const seen = [];
    new PerformanceObserver((entries) => {
        seen.push(...entries.getEntries().filter((e) => e.identifier === "vsh-vm-name"));
        if (seen.length >= 100) answer(Math.max(...seen.map((e) => e.renderTime)));
    }).observe({type: "element", buffered: true});
    setTimeout(() => answer(null), 10000);
})"""


@contextlib.contextmanager
def _static_table(tmp: Path):
    """A static page holding the list's table as the page draws it (100 rows, the page's style
    sheet, no script), served on loopback: what chromium needs to paint that table at all."""
    import functools
    import http.server
    import threading

    site = tmp / "static-table"
    site.mkdir()
    shutil.copy(ROOT / "vsh" / "web" / "static" / "style.css", site / "style.css")
    rows = "".join(f"<tr><td class='name' elementtiming='vsh-vm-name'><a href='#'>vm{i:03d}</a></td>"
                   f"<td class='state'>shut off</td><td class='num'>1</td><td class='num'>{64 + i} MiB</td>"
                   f"<td class='num cpu'></td><td class='actions'><button class='act act-start'>Start</button>"
                   f"<button class='act act-delete'>Delete</button></td></tr>" for i in range(100))
    (site / "index.html").write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><link rel='stylesheet' href='style.css'></head>"
        "<body><header><a class='brand'>vsh</a></header><main><table class='vms'><thead><tr><th>Name</th>"
        "<th>State</th><th>vCPUs</th><th>Memory</th><th>CPU</th><th></th></tr></thead>"
        f"<tbody id='vm-rows'>{rows}</tbody></table></main></body></html>")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/index.html"
    finally:
        server.shutdown()
        server.server_close()


def _server_list_times(origin: str, cookie: dict) -> tuple[float, float]:
    """The server's time for /api/domains: with a fresh sample (the last is over a second old, as
    when no page listens) and with the cached one (taken less than a second ago)."""
    import http.client

    host = origin.removeprefix("http://")
    headers = {"Host": host, "Cookie": "; ".join(f"{k}={v}" for k, v in cookie.items())}
    fresh, cached = [], []
    for _ in range(5):
        time.sleep(1.2)
        for into in (fresh, cached):
            conn = http.client.HTTPConnection(host, timeout=30)
            t0 = time.perf_counter()
            conn.request("GET", "/api/domains", headers=headers)
            conn.getresponse().read()
            into.append((time.perf_counter() - t0) * 1000)
            conn.close()
    return statistics.median(fresh), statistics.median(cached)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _consoles(origin: str, cookie: dict, runs: int) -> tuple[float | None, int]:
    import aiohttp

    url = origin.replace("http://", "ws://") + "/api/domains/bench-web/serial"
    async with aiohttp.ClientSession(cookies=cookie) as session:
        async def open_tab():
            return await session.ws_connect(url, origin=origin)

        first = await open_tab()

        async def until(ws, text: bytes, timeout: float = 60.0) -> None:
            seen = b""
            deadline = time.monotonic() + timeout
            while text not in seen:
                msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
                if msg.type != aiohttp.WSMsgType.BINARY:
                    raise RuntimeError(f"console closed: {msg}")
                seen += msg.data

        await first.send_bytes(b"\nstty -a >/dev/null; echo BENCH$((1+1))READY\n")
        await until(first, b"BENCH2READY")
        echoes = []
        for i in range(runs):
            ch = b"abcdefghij"[i % 10:i % 10 + 1]
            t0 = time.perf_counter()
            await first.send_bytes(ch)
            await until(first, ch, 10)
            echoes.append(time.perf_counter() - t0)
        await first.send_bytes(b"\x15")           # ^U: forget the typed line
        tabs = [first] + [await open_tab() for _ in range(9)]
        await first.send_bytes(b"echo TABS$((5+5))SEEN\n")
        seen = 0
        for ws in tabs:
            try:
                await until(ws, b"TABS10SEEN", 30)
                seen += 1
            except (RuntimeError, asyncio.TimeoutError):
                pass
        for ws in tabs:
            await ws.close()
        return (statistics.median(echoes) if echoes else None), seen


def run() -> None:
    print("web: vsh web (aiohttp) with Debian's chromium", flush=True)
    if not shutil.which("/usr/bin/chromium"):
        log("chromium is missing: scripts/setup installs it")
        return
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        log("playwright is missing: pip install '.[test]'")
        return
    guest = test_guest()
    runs = int(os.environ.get("VSH_BENCH_WEB_RUNS", "9"))
    tmp = Path(tempfile.mkdtemp(prefix="vsh-bench-web-"))
    store = tmp / "store"
    env = dict(os.environ, VSH_DEFAULT_URI=f"vsh:///session?root={store}", HOME=str(tmp))
    env.pop("VSH_URI", None)
    sys.path.insert(0, str(ROOT))
    from vsh import api

    conn = api.connect(env["VSH_DEFAULT_URI"])
    for i in range(100):
        conn.define_xml(DOMAIN.format(name=f"vm{i:03d}", mib=64 + i))
    if guest:
        kernel = guest.get("vmlinux") or guest["kernel"]
        conn.define_xml(GUEST.format(kernel=kernel, initrd=guest["initrd"], cmdline=guest["cmdline"]))
    server = subprocess.Popen([VSH, "web", "--print-url"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        origin = re.match(r"(http://[^/]+)", url).group(1)
        with sync_playwright() as pw:
            args = ["--no-sandbox"] if os.geteuid() == 0 else []
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=args)
            context = browser.new_context()
            page = context.new_page()
            page.goto(url)
            page.wait_for_selector("#vm-rows tr:nth-child(100)")
            page.close()
            stages = {"document": [], "list response": [], "rows in the DOM": [], "painted": []}
            floor = []
            with _static_table(tmp) as static_url:
                for _ in range(runs):           # interleaved: both see the same machine load
                    page = context.new_page()
                    page.goto(origin + "/", wait_until="commit")
                    page.wait_for_selector("#vm-rows tr:nth-child(100)")
                    got = page.evaluate(TIMINGS)
                    for key, value in zip(stages, got):
                        stages[key].append(float("nan") if value is None else value)
                    page.close()
                    page = context.new_page()
                    page.goto(static_url, wait_until="commit")
                    page.wait_for_selector("#vm-rows tr:nth-child(100)")
                    floor.append(page.evaluate(TIMINGS)[3] or float("nan"))
                    page.close()
            cookie = {c["name"]: c["value"] for c in context.cookies()}
            browser.close()
        med = {key: statistics.median(values) for key, values in stages.items()}
        load = os.getloadavg()[0]
        report("web: first paint of the VM list, 100 VMs (goal <= 300 ms)",
               f"{med['painted']:.0f} ms (median of {runs} fresh tabs; load average {load:.1f} on {os.cpu_count()} cores)")
        report("web: first paint, where the time went (ms from navigation start, medians)",
               ", ".join(f"{key} {value:.0f}" for key, value in med.items()))
        report("web: the same 100-row table as a static HTML page (chromium's floor here)",
               f"{statistics.median(floor):.0f} ms; vsh web {med['painted'] / statistics.median(floor):.2f}x that")
        fresh, cached = _server_list_times(origin, cookie)
        report("web: GET /api/domains with 100 VMs, server side", f"fresh sample {fresh:.1f} ms, cached {cached:.1f} ms")
        if guest:
            subprocess.run([VSH, "start", "bench-web"], env=env, check=True, stdout=subprocess.DEVNULL)
            log_path = store / "run" / "bench-web" / "console.log"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and guest["ready_line"] not in (
                    log_path.read_text(errors="replace") if log_path.exists() else ""):
                time.sleep(0.2)
            echo, seen = asyncio.run(_consoles(origin, cookie, runs * 6))
            report("web: serial keystroke echo p50 through the relay (goal <= 30 ms)",
                   "n/a" if echo is None else f"{echo * 1000:.1f} ms")
            report("web: concurrent console tabs on one VM that saw the answer", f"{seen} of 10")
        else:
            log("no test guest: the console figures are skipped")
        report("web: server RSS after the above (goal <= 60 MB)", f"{_rss_mib(server.pid):.1f} MiB")
    finally:
        if guest:
            subprocess.run([VSH, "destroy", "bench-web"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
