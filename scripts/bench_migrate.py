"""Bench section `migrate` (issue 11 §3): live migration of a running 256 MiB TCG test guest.

Imported by scripts/bench.py, which calls run().

* vsh: the test guest (pc machine, PVH vmlinux + busybox initramfs, 1 vCPU, 256 MiB) defined
  and started in store A, then `vsh migrate --live --json` to store B and back, RUNS times;
  wall time of the command, and QEMU's own total time and downtime from the result.
* vsh to a remote vsh: the same, each migration to the other store through
  `vsh+ssh://root@127.0.0.1/session?root=STORE` (an sshd in a network namespace, tests/sshpeer.py;
  both "hosts" are this machine): the remote protocol prepares the destination, the stream goes
  through an OpenSSH unix-socket forward on a second ssh connection.
* raw QEMU with the same parameters: the same kernel, initrd, machine, memory and vCPU on two
  QEMU processes started by hand (the destination with `-incoming unix:PATH`), migrated over
  that unix socket through QMP (bandwidth unlimited as vsh sets it), the same number of
  times; wall time from spawning the destination QEMU to its guest running (as vsh's wall
  time includes starting the destination), total time and downtime from `query-migrate`.

libvirt's `virsh migrate` between two namespaced libvirtds is not measured: both daemons
would manage the same host's QEMU and the peer script runs one per namespace.

Environment knob: VSH_BENCH_MIGRATE_RUNS (default 3).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import ROOT, VSH, report

RUNS = int(os.environ.get("VSH_BENCH_MIGRATE_RUNS", "3"))
QEMU = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"


def _manifest() -> dict | None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "build-test-guest")], capture_output=True,
                          text=True, timeout=900)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    return json.loads((Path(proc.stdout.strip().splitlines()[-1]) / "manifest.json").read_text())


def _env(store: Path) -> dict:
    env = dict(os.environ)
    env["VSH_DEFAULT_URI"] = f"vsh:///session?root={store}"
    return env


def _wait_file(path: Path, text: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text.encode() in path.read_bytes():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{text} not seen in {path} within {timeout:g} s")


def bench_vsh(m: dict, tmp: Path, dest=None, prefix: tuple = (), extra_env: dict | None = None) -> list[dict]:
    """``vsh migrate`` of the guest between stores a and b, RUNS times; ``dest(store)`` is the URI
    that reaches a store (default: ``vsh:///session?root=STORE``), ``prefix`` what runs the command
    (``nsenter`` into sshd's namespace for ``vsh+ssh``)."""
    a, b = tmp / "a", tmp / "b"
    dest = dest or (lambda store: f"vsh:///session?root={store}")
    tmp.mkdir(parents=True, exist_ok=True)
    xml = tmp / "mig.xml"
    xml.write_text(f"""<domain type='qemu'><name>mig</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{m['vmlinux']}</kernel><initrd>{m['initrd']}</initrd>
  <cmdline>{m['cmdline']}</cmdline></os><features><acpi/></features>
  <devices><serial type='pty'><target port='0'/></serial><console type='pty'><target type='serial' port='0'/></console>
  </devices></domain>""")
    subprocess.run([VSH, "define", str(xml)], env=_env(a), check=True, capture_output=True)
    subprocess.run([VSH, "start", "mig"], env=_env(a), check=True, capture_output=True)
    results = []
    try:
        _wait_file(a / "run" / "mig" / "console.log", m["ready_line"])
        src, dst = a, b
        for _ in range(RUNS):
            t0 = time.perf_counter()
            p = subprocess.run([*prefix, VSH, "migrate", "--live", "--persistent", "--undefinesource", "--json", "mig",
                                dest(dst)], env=dict(_env(src), **(extra_env or {})), capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if p.returncode != 0:
                report("vsh migrate", f"FAILED: {p.stderr.strip()[-200:]}")
                return results
            data = json.loads(p.stdout)
            results.append({"wall": wall, "total_ms": data["total_ms"], "downtime_ms": data["downtime_ms"]})
            src, dst = dst, src
    finally:
        for store in (a, b):
            subprocess.run([VSH, "destroy", "mig"], env=_env(store), capture_output=True)
            subprocess.run([VSH, "undefine", "mig"], env=_env(store), capture_output=True)
    return results


def bench_remote(m: dict, tmp: Path) -> list[dict]:
    """The same, each migration to the other store through ``vsh+ssh://`` (sshd in a network
    namespace, tests/sshpeer.py): the destination prepared over the remote protocol, the stream
    through an OpenSSH unix-socket forward. Both "hosts" are this machine."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sshpeer", ROOT / "tests" / "sshpeer.py")
    sshpeer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sshpeer)
    why = sshpeer.missing()
    if why:
        report("vsh migrate --live to vsh+ssh://", f"skipped: {why}")
        return []
    peer = sshpeer.SshPeer(tmp / "ssh", port=2222)
    try:
        return bench_vsh(m, tmp, dest=lambda store: f"vsh+ssh://root@127.0.0.1:2222/session?root={store}&command={VSH}",
                         prefix=tuple(peer.prefix), extra_env={"VSH_SSH": peer.ssh("client")})
    finally:
        peer.stop()


def _qemu(m: dict, tmp: Path, tag: str, incoming: str | None):
    qmp = tmp / f"{tag}.qmp"
    argv = [QEMU, "-machine", "pc", "-accel", "tcg", "-m", "256", "-smp", "1", "-nodefaults", "-nographic",
            "-kernel", m["vmlinux"], "-initrd", m["initrd"], "-append", m["cmdline"],
            "-serial", f"file:{tmp / (tag + '.serial')}", "-qmp", f"unix:{qmp},server=on,wait=off"]
    if incoming:
        argv += ["-incoming", incoming]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not qmp.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return proc, str(qmp)


def bench_raw(m: dict, tmp: Path) -> list[dict]:
    import asyncio

    from qemu.qmp import QMPClient

    async def one(src_qmp: str, dst_qmp: str, sock: str, t0: float) -> dict:
        src, dst = QMPClient("src"), QMPClient("dst")
        await src.connect(src_qmp)
        await dst.connect(dst_qmp)
        try:
            await src.execute("migrate-set-parameters", {"max-bandwidth": 1 << 62})
            await src.execute("migrate", {"uri": f"unix:{sock}"})
            while True:
                info = await src.execute("query-migrate")
                if info.get("status") in ("completed", "failed", "cancelled"):
                    break
                await asyncio.sleep(0.01)
            while not (await dst.execute("query-status")).get("running"):
                await asyncio.sleep(0.005)
            wall = time.perf_counter() - t0
            if info.get("status") != "completed":
                raise RuntimeError(f"raw migration {info.get('status')}: {info.get('error-desc')}")
            return {"wall": wall, "total_ms": info.get("total-time"), "downtime_ms": info.get("downtime")}
        finally:
            await src.disconnect()
            await dst.disconnect()

    results = []
    src, src_qmp = _qemu(m, tmp, "raw0", None)
    procs = [src]
    try:
        _wait_file(tmp / "raw0.serial", m["ready_line"])
        for i in range(RUNS):
            sock = str(tmp / f"raw{i + 1}.sock")
            t0 = time.perf_counter()        # as for vsh: the destination QEMU starts within the measure
            dst, dst_qmp = _qemu(m, tmp, f"raw{i + 1}", f"unix:{sock}")
            procs.append(dst)
            deadline = time.monotonic() + 30
            while not os.path.exists(sock) and time.monotonic() < deadline:
                time.sleep(0.01)
            results.append(asyncio.run(one(src_qmp, dst_qmp, sock, t0)))
            src.kill()
            src.wait()
            src, src_qmp = dst, dst_qmp
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


def _summary(label: str, rows: list[dict]) -> dict | None:
    if not rows:
        return None
    med = {k: statistics.median(r[k] for r in rows if r[k] is not None) for k in ("wall", "total_ms", "downtime_ms")}
    report(f"{label}: migrate a running 256 MiB guest (median of {len(rows)})",
           f"{med['wall'] * 1000:.0f} ms wall, QEMU total {med['total_ms']:.0f} ms, downtime {med['downtime_ms']:.0f} ms")
    return med


def run() -> None:
    print("== migrate: live migration of a 256 MiB TCG guest between two stores, here and over ssh (issue 11)",
          flush=True)
    m = _manifest()
    if m is None:
        report("migrate", "skipped: no test guest (scripts/build-test-guest)")
        return
    tmp = Path(tempfile.mkdtemp(prefix="vsh-bench-migrate-"))
    try:
        v = _summary("vsh migrate --live", bench_vsh(m, tmp / "local"))
        s = _summary("vsh migrate --live to vsh+ssh://", bench_remote(m, tmp / "remote"))
        r = _summary("raw QEMU migrate (unix socket, same guest)", bench_raw(m, tmp))
        if v and r:
            report("ratio vsh/raw QEMU: wall time of a migration", f"{v['wall'] / r['wall']:.2f}x")
            report("ratio vsh/raw QEMU: downtime", f"{v['downtime_ms'] / max(r['downtime_ms'], 1):.2f}x")
        if v and s:
            report("ratio vsh+ssh/local store: wall time of a migration", f"{s['wall'] / v['wall']:.2f}x")
            report("ratio vsh+ssh/local store: QEMU total time, downtime",
                   f"{s['total_ms'] / max(v['total_ms'], 1):.2f}x, {s['downtime_ms'] / max(v['downtime_ms'], 1):.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
