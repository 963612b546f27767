"""Bench section `web` (issue 12): the web console.

Imported by scripts/bench.py, which calls run(). A store of its own with 100 defined domains and
one running test guest; `vsh web` on loopback; Debian's chromium through Playwright.

* first paint of the VM list with 100 defined VMs: a fresh tab, from the start of its navigation
  to the frame that shows the 100 rows (the page's own performance mark; goal <= 300 ms);
* serial-console keystroke echo through the server's websocket relay, p50 (goal <= 30 ms);
* 10 concurrent console tabs (websockets) on one VM: all see one command's answer;
* the server's RSS after all that (goal <= 60 MB).

Environment knob: VSH_BENCH_WEB_RUNS (page loads and keystrokes, default 9 / 60).
"""

from __future__ import annotations

import asyncio
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
            paints = []
            for _ in range(runs):
                page = context.new_page()
                page.goto(origin + "/", wait_until="commit")
                page.wait_for_selector("#vm-rows tr:nth-child(100)")
                # the page's own clock: its mark after the frame that drew the list, in milliseconds
                # since its navigation started (Playwright's round trips are not counted)
                mark = None
                for _ in range(100):
                    mark = page.evaluate("() => performance.getEntriesByName('vsh-list-painted').map(e => e.startTime)[0]")
                    if mark is not None:
                        break
                    page.wait_for_timeout(20)
                paints.append((mark or float("nan")) / 1000)
                page.close()
            cookie = {c["name"]: c["value"] for c in context.cookies()}
            browser.close()
        report("web: first paint of the VM list, 100 VMs (goal <= 300 ms)",
               f"{statistics.median(paints) * 1000:.0f} ms (median of {runs} fresh tabs)")
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
