"""Bench section `start` (issue 3 §7): start → guest ready through raw QEMU, vsh and libvirt.

Imported by scripts/bench.py, which calls run().  Everything is paired: each round starts
the same guest once through each path (in rotating order), and medians are reported.

* raw QEMU: qemu-system-x86_64 -machine microvm -accel tcg, the PVH vmlinux of the test
  guest, 256 MiB, 1 vCPU, serial to a file; time from spawn to the ready line in that file.
* libvirt 9.0 (the peer): scripts/libvirt-peer runs virtlogd + libvirtd as root in a
  private mount + PID namespace with their own /etc/libvirt, /run and /var (it is the
  only way libvirt runs here without libvirt-daemon-system and systemd; see
  /work/shared/reference/machine-notes.md). virsh talks to it through
  qemu+unix:///system?socket=<dir>/run/libvirt/libvirt-sock.  Same guest as a microvm
  domain (<address type='virtio-mmio'/> on the virtio disk, serial to a file).
* raw QEMU again with vsh's own argv (`vsh domxml-to-native qemu-argv`, runtime paths moved,
  without -S): the "same argv" baseline of the 1.05x goal.
* vsh: the same domain XML, defined in a throw-away store (VSH_DEFAULT_URI=
  vsh:///session?root=<tmp>/store), `vsh start` / `vsh destroy`, ready line read from
  <runtime>/NAME/console.log (or the serial file).

Environment knobs: VSH_BENCH_START_RUNS (rounds, default 5), VSH_BENCH_MANY (guests for
the `list` figure, default 20).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import PY, ROOT, VSH, ratio, report, timed  # noqa: F401  (PY kept for callers)

QEMU = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
PEER = ROOT / "scripts" / "libvirt-peer"
RUNS = int(os.environ.get("VSH_BENCH_START_RUNS", "5"))
MANY = int(os.environ.get("VSH_BENCH_MANY", "20"))
BOOT_TIMEOUT = 60.0
APT = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]

DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{mem}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{qemu}</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
      <readonly/>
      <address type='virtio-mmio'/>
    </disk>
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='{serial}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def _q(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")


def domain_xml(name: str, guest: dict, serial: Path, mem: int = 256) -> str:
    return DOMAIN_XML.format(name=name, mem=mem, kernel=_q(guest["vmlinux"]), initrd=_q(guest["initrd"]),
                             cmdline=_q(guest["cmdline_full"]), qemu=_q(QEMU), disk=_q(guest["disk"]),
                             serial=_q(str(serial)))


def raw_argv(guest: dict, serial: Path, mem: int = 256) -> list[str]:
    """The same machine as DOMAIN_XML, written by hand (what `qemu-system-x86_64` alone does)."""
    return [QEMU, "-machine", "microvm", "-accel", "tcg", "-cpu", "qemu64", "-m", str(mem),
            "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
            "-kernel", guest["vmlinux"], "-initrd", guest["initrd"], "-append", guest["cmdline_full"],
            "-blockdev", f"driver=file,filename={guest['disk']},node-name=f0,read-only=on",
            "-blockdev", "driver=raw,file=f0,node-name=d0,read-only=on",
            "-device", "virtio-blk-device,drive=d0",
            "-chardev", f"file,id=ser0,path={serial}", "-serial", "chardev:ser0"]


# --------------------------------------------------------------------------------------------
# helpers

def log(msg: str) -> None:
    print(f"    ({msg})", flush=True)


def med(xs):
    return statistics.median(xs) if xs else None


def fmt_s(x) -> str:
    return "n/a" if x is None else f"{x:.3f} s"


def fmt_ms(x) -> str:
    return "n/a" if x is None else f"{x * 1000:.0f} ms"


def fmt_kib(k) -> str:
    return f"{k / 1024:.1f} MiB ({k * 1024 / 1e6:.1f} MB)"


def wait_ready(paths, needle: bytes, deadline: float, proc=None) -> float | None:
    """Poll the files until one holds `needle`; perf_counter() at that moment, or None."""
    offsets = {p: 0 for p in paths}
    tails = {p: b"" for p in paths}
    while time.perf_counter() < deadline:
        for p in paths:
            try:
                with open(p, "rb") as f:
                    f.seek(offsets[p])
                    data = f.read()
            except OSError:
                continue
            if data:
                offsets[p] += len(data)
                buf = tails[p] + data
                if needle in buf:
                    return time.perf_counter()
                tails[p] = buf[-len(needle):]
        if proc is not None and proc.poll() is not None:
            return None
        time.sleep(0.004)
    return None


def run_cmd(argv, env=None, timeout=120, check=False):
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=env, timeout=timeout)
    dt = time.perf_counter() - t0
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({p.returncode}): {(p.stderr or p.stdout).strip()}")
    return p, dt


def vm_rss_kib(pid) -> int | None:
    try:
        with open(f"/proc/{int(pid)}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, TypeError):
        return None
    return None


def kill_pid(pid, sig=signal.SIGKILL) -> None:
    try:
        os.kill(int(pid), sig)
    except (OSError, ValueError, TypeError):
        pass


def pids_mentioning(text: str) -> list[int]:
    """Processes whose command line contains `text` (a unique temp path of this run)."""
    out = []
    needle = text.encode()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if needle in f.read():
                    out.append(int(d))
        except OSError:
            pass
    return out


# --------------------------------------------------------------------------------------------
# the test guest

def test_guest() -> dict | None:
    script = ROOT / "scripts" / "build-test-guest"
    deadline = time.monotonic() + float(os.environ.get("VSH_BENCH_GUEST_WAIT", "600"))
    while not script.exists():
        if time.monotonic() > deadline:
            log(f"{script} does not exist")
            return None
        log("waiting for scripts/build-test-guest to appear")
        time.sleep(15)
    try:
        argv = [str(script)] if os.access(script, os.X_OK) else [sys.executable, str(script)]
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        log("build-test-guest timed out")
        return None
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    if p.returncode != 0 or not lines:
        log(f"build-test-guest failed ({p.returncode}): {p.stderr.strip()[-400:]}")
        return None
    manifest = Path(lines[-1].strip()) / "manifest.json"
    try:
        guest = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        log(f"cannot read {manifest}: {exc}")
        return None
    guest["cmdline_full"] = " ".join(x for x in (guest.get("cmdline", "console=ttyS0 quiet"),
                                                  guest.get("microvm_cmdline_extra", "")) if x)
    guest.setdefault("ready_line", "VSH-GUEST-READY")
    return guest


# --------------------------------------------------------------------------------------------
# libvirt peer

def ensure_libvirt() -> bool:
    need = []
    if not (shutil.which("libvirtd") and shutil.which("virtlogd")):
        need.append("libvirt-daemon")
    if not Path("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so").exists():
        need.append("libvirt-daemon-driver-qemu")
    if not shutil.which("virsh"):
        need.append("libvirt-clients")
    if not need:
        return True
    log(f"installing {' '.join(need)} (no services are started)")
    # policy-rc.d 101 keeps maintainer scripts from starting services; use one only if
    # the machine has none, and remove it again.
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        made_policy = True
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        argv = APT + ["install", "-y", "--no-install-recommends"] + need
        p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            subprocess.run(APT + ["update", "-qq"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            log(f"apt-get install failed: {p.stderr.strip()[-300:]}")
            return False
    finally:
        if made_policy:
            policy.unlink(missing_ok=True)
    return bool(shutil.which("libvirtd") and shutil.which("virtlogd") and shutil.which("virsh"))


class LibvirtPeer:
    def __init__(self, base: Path, prefix: tuple = ()):
        self.base = base
        self.prefix = list(prefix)      # e.g. ["ip", "netns", "exec", NS]: libvirtd in that netns
        self.proc = None
        self.uri = None

    def start(self) -> bool:
        self.base.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([*self.prefix, sys.executable, str(PEER), "--stdin-eof", str(self.base)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(self.base / "peer.err", "wb"), text=True)
        line = self.proc.stdout.readline()  # "READY <socket>" or EOF on failure
        if not line.startswith("READY "):
            log(f"libvirt-peer did not come up: {(self.base / 'peer.err').read_text().strip()[-400:]}")
            self.stop()
            return False
        self.uri = f"qemu+unix:///system?socket={line.split(' ', 1)[1].strip()}"
        return True

    def virsh(self, *args, check=False, timeout=120):
        return run_cmd(["virsh", "-q", "-c", self.uri, *args], timeout=timeout, check=check)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.uri:
            try:
                p, _ = self.virsh("list", "--name", timeout=30)
                for name in p.stdout.split():
                    self.virsh("destroy", name, timeout=30)
            except Exception:  # noqa: BLE001 - the namespace teardown below kills QEMUs anyway
                pass
        try:
            self.proc.stdin.close()  # --stdin-eof: the peer stops everything in its namespace
        except OSError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# --------------------------------------------------------------------------------------------
# vsh

def vsh_has(command: str, flag: str | None = None, env=None) -> bool:
    try:
        p = subprocess.run([VSH, "help", command], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True, env=env, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0 and (flag is None or flag in p.stdout)


def vsh_state(store: Path, name: str) -> dict:
    try:
        return json.loads((store / "run" / name / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def vsh_kill_leftovers(store: Path, env) -> None:
    """Destroy whatever still runs in the throw-away store; then kill by pid what remains."""
    run_dir = store / "run"
    if not run_dir.is_dir():
        return
    for d in sorted(run_dir.iterdir()):
        st = vsh_state(store, d.name)
        if not st:
            continue
        try:
            run_cmd([VSH, "destroy", d.name], env=env, timeout=30)
        except Exception:  # noqa: BLE001
            pass
    time.sleep(0.2)
    for d in sorted(run_dir.iterdir()):
        st = vsh_state(store, d.name)
        for key in ("qemu_pid", "supervisor_pid"):
            pid = st.get(key)
            if pid and Path(f"/proc/{pid}").exists():
                kill_pid(pid)
    for pid in pids_mentioning(str(store)):
        kill_pid(pid)


# --------------------------------------------------------------------------------------------
# one start of each kind

def once_raw(guest, tmp: Path, i: int) -> dict | None:
    serial = tmp / f"raw-{i}.log"
    serial.unlink(missing_ok=True)
    t0 = time.perf_counter()
    p = subprocess.Popen(raw_argv(guest, serial), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    t = wait_ready([serial], guest["ready_line"].encode(), t0 + BOOT_TIMEOUT, proc=p)
    p.terminate()
    try:
        _, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    if t is None:
        log(f"raw QEMU run {i}: no ready line ({err.decode(errors='replace').strip()[-200:]})")
        return None
    return {"ready": t - t0}


def once_libvirt(peer: LibvirtPeer, guest, tmp: Path, name: str, i: int) -> dict | None:
    serial = tmp / f"{name}.serial.log"
    serial.unlink(missing_ok=True)
    t0 = time.perf_counter()
    p, dt = peer.virsh("start", name)
    if p.returncode != 0:
        log(f"virsh start {name}: {p.stderr.strip()}")
        return None
    t = wait_ready([serial], guest["ready_line"].encode(), t0 + BOOT_TIMEOUT)
    pd, ddt = peer.virsh("destroy", name)
    if pd.returncode != 0:
        log(f"virsh destroy {name}: {pd.stderr.strip()}")
    if t is None:
        log(f"libvirt run {i}: no ready line")
        return None
    return {"ready": t - t0, "cmd": dt, "destroy": ddt if pd.returncode == 0 else None}


def once_vsh(store: Path, env, guest, tmp: Path, name: str, i: int) -> dict | None:
    serial = tmp / f"{name}.serial.log"
    serial.unlink(missing_ok=True)
    console = store / "run" / name / "console.log"
    console.unlink(missing_ok=True)
    t0 = time.perf_counter()
    p, dt = run_cmd([VSH, "start", name], env=env)
    if p.returncode != 0:
        log(f"vsh start {name}: {(p.stderr or p.stdout).strip()[-300:]}")
        return None
    t = wait_ready([console, serial], guest["ready_line"].encode(), t0 + BOOT_TIMEOUT)
    st = vsh_state(store, name)
    rss = vm_rss_kib(st.get("supervisor_pid"))
    pd, ddt = run_cmd([VSH, "destroy", name], env=env)
    if pd.returncode != 0:
        log(f"vsh destroy {name}: {(pd.stderr or pd.stdout).strip()[-300:]}")
    if t is None:
        log(f"vsh run {i}: no ready line in {console} or {serial}")
        return None
    return {"ready": t - t0, "cmd": dt, "destroy": ddt if pd.returncode == 0 else None, "rss_kib": rss}


# --------------------------------------------------------------------------------------------

def vsh_native_argv(env, name: str) -> list[str] | None:
    """vsh's own QEMU argv for the domain (`domxml-to-native qemu-argv`), or None."""
    try:
        p, _ = run_cmd([VSH, "domxml-to-native", "qemu-argv", "--domain", name], env=env, timeout=60)
    except subprocess.TimeoutExpired:
        return None
    if p.returncode != 0 or not p.stdout.strip():
        return None
    return shlex.split(p.stdout.strip())


def once_raw_vsh_argv(argv, rundir: str, guest, tmp: Path, i: int) -> dict | None:
    """vsh's argv run by hand: its runtime directory moved to a private one, and without -S
    (nobody sends `cont`), so QEMU runs at once, exactly as `raw` does."""
    own = tmp / "raw-vsh-argv"
    shutil.rmtree(own, ignore_errors=True)
    own.mkdir(mode=0o700)
    serial = tmp / "raw-vsh-argv.serial.log"
    serial.unlink(missing_ok=True)
    xml_serial = str(tmp / "bench-vsh.serial.log")
    argv = [a.replace(rundir, str(own)).replace(xml_serial, str(serial)) for a in argv if a != "-S"]
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t = wait_ready([serial, own / "console.log"], guest["ready_line"].encode(), t0 + BOOT_TIMEOUT, proc=p)
    p.terminate()
    try:
        _, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    if t is None:
        log(f"raw QEMU with vsh's argv, run {i}: no ready line ({err.decode(errors='replace').strip()[-200:]})")
        return None
    return {"ready": t - t0}


LABELS = {"raw": "raw QEMU (hand-written argv)", "rawv": "raw QEMU (vsh's own argv, no -S)",
          "vsh": "vsh", "libvirt": "libvirt"}


def paired_starts(guest, tmp: Path, peer: LibvirtPeer | None, vsh_env, store: Path) -> None:
    kinds = ["raw"]
    vargv = None
    if vsh_env is not None:
        vargv = vsh_native_argv(vsh_env, "bench-vsh")
        if vargv:
            kinds.append("rawv")
        else:
            log("vsh domxml-to-native qemu-argv gave nothing: no raw run with vsh's own argv")
        kinds.append("vsh")
    if peer is not None:
        kinds.append("libvirt")
    rundir = str(store / "run" / "bench-vsh")
    res = {k: [] for k in kinds}
    rounds = []

    def one(kind, i):
        if kind == "raw":
            return once_raw(guest, tmp, i)
        if kind == "rawv":
            return once_raw_vsh_argv(vargv, rundir, guest, tmp, i)
        if kind == "vsh":
            return once_vsh(store, vsh_env, guest, tmp, "bench-vsh", i)
        return once_libvirt(peer, guest, tmp, "bench-lv", i)

    # one warm-up start each (page cache, libvirt's capability cache); not counted
    for kind in list(kinds):
        if one(kind, -1) is None and kind != "raw":
            log(f"{LABELS[kind]}: warm-up start failed; leaving it out")
            kinds.remove(kind)
    for i in range(RUNS):
        order = kinds[i % len(kinds):] + kinds[:i % len(kinds)]
        r = {}
        for kind in order:
            r[kind] = one(kind, i)
            if r[kind] is not None:
                res[kind].append(r[kind])
        rounds.append(r)

    def ready(kind):
        return med([r["ready"] for r in res.get(kind, [])])

    def paired(kind, base):
        d = [r[kind]["ready"] - r[base]["ready"] for r in rounds if r.get(kind) and r.get(base)]
        return "n/a" if not d else f"{statistics.median(d) * 1000:+.0f} ms"

    report(f"raw QEMU start -> ready line (microvm, PVH, 256 MiB, TCG; n={len(res['raw'])})", fmt_s(ready("raw")))
    if "rawv" in kinds and res["rawv"]:
        report(f"{LABELS['rawv']} start -> ready (n={len(res['rawv'])})", fmt_s(ready("rawv")))
    for kind in ("vsh", "libvirt"):
        if kind not in kinds or not res[kind]:
            continue
        xs = res[kind]
        report(f"{kind} start -> ready line (n={len(xs)})", fmt_s(ready(kind)))
        report(f"{kind} start command wall time", fmt_s(med([r["cmd"] for r in xs])))
        report(f"{kind} destroy command wall time",
               fmt_s(med([r["destroy"] for r in xs if r.get("destroy") is not None])))
        report(f"{kind} added over raw QEMU (median of paired differences)", paired(kind, "raw"))
        report(f"ratio start->ready {kind}/raw" + (" (goal <= 1.05x)" if kind == "vsh" and "rawv" not in kinds
                                                   else ""), ratio(ready(kind), ready("raw")))
        if kind == "vsh" and "rawv" in kinds and res["rawv"]:
            report("vsh added over raw QEMU with vsh's own argv (paired)", paired("vsh", "rawv"))
            report("ratio start->ready vsh/raw with the same argv (goal <= 1.05x)", ratio(ready("vsh"), ready("rawv")))
    if "vsh" in kinds and "libvirt" in kinds and res["vsh"] and res["libvirt"]:
        report("ratio start command vsh/libvirt (goal <= 0.7x)",
               ratio(med([r["cmd"] for r in res["vsh"]]), med([r["cmd"] for r in res["libvirt"]])))
        report("ratio start->ready vsh/libvirt", ratio(ready("vsh"), ready("libvirt")))
    if "vsh" in kinds and res["vsh"]:
        rss = [r["rss_kib"] for r in res["vsh"] if r.get("rss_kib")]
        report("vsh supervisor VmRSS after ready (goal <= 15 MB)",
               "n/a (no supervisor_pid in state.json)" if not rss else fmt_kib(med(rss)))


def many_guests(guest, tmp: Path, peer: LibvirtPeer | None, vsh_env, store: Path) -> None:
    """`list --all` with MANY running guests (paused where the tool can start them paused)."""
    if vsh_env is not None:
        paused = vsh_has("start", "--paused", env=vsh_env)
        mem = 64 if paused else 128
        names = [f"many{i:02d}" for i in range(MANY)]
        started = []
        try:
            for n in names:
                x = tmp / f"{n}.xml"
                x.write_text(domain_xml(n, guest, tmp / f"{n}.serial.log", mem=mem))
                run_cmd([VSH, "define", str(x)], env=vsh_env, check=True)
            t0 = time.perf_counter()
            for n in names:
                p, _ = run_cmd([VSH, "start", n] + (["--paused"] if paused else []), env=vsh_env)
                if p.returncode != 0:
                    log(f"vsh start {n}: {(p.stderr or p.stdout).strip()[-200:]}")
                    break
                started.append(n)
            how = "paused" if paused else f"running, {mem} MiB"
            report(f"vsh start {len(started)} guests ({how}), total", f"{time.perf_counter() - t0:.2f} s")
            if started:
                if not paused:
                    time.sleep(2)
                t = timed([VSH, "list", "--all"], env=vsh_env, runs=20)
                report(f"vsh list --all with {len(started)} running guests", fmt_ms(t))
                rss = [vm_rss_kib(vsh_state(store, n).get("supervisor_pid")) for n in started]
                rss = [r for r in rss if r]
                if rss:
                    report(f"vsh supervisor VmRSS over {len(rss)} guests (median / max)",
                           f"{fmt_kib(med(rss))} / {fmt_kib(max(rss))}")
        finally:
            for n in started:
                run_cmd([VSH, "destroy", n], env=vsh_env, timeout=60)
    if peer is not None:
        names = [f"lvmany{i:02d}" for i in range(MANY)]
        started = []
        try:
            for n in names:
                x = tmp / f"{n}.xml"
                x.write_text(domain_xml(n, guest, tmp / f"{n}.serial.log", mem=64))
                peer.virsh("define", str(x), check=True)
            t0 = time.perf_counter()
            for n in names:
                p, _ = peer.virsh("start", "--paused", n)
                if p.returncode != 0:
                    log(f"virsh start --paused {n}: {p.stderr.strip()[-200:]}")
                    break
                started.append(n)
            report(f"virsh start --paused {len(started)} guests, total", f"{time.perf_counter() - t0:.2f} s")
            if started:
                t = timed(["virsh", "-c", peer.uri, "list", "--all"], runs=20)
                report(f"virsh list --all with {len(started)} running guests", fmt_ms(t))
        finally:
            for n in started:
                peer.virsh("destroy", n, timeout=60)


def run() -> None:
    print("== start: raw QEMU vs vsh vs libvirt, start -> guest ready (issue 3)", flush=True)
    if not Path(QEMU).exists():
        report("start section", "skipped: qemu-system-x86_64 not installed")
        return
    guest = test_guest()
    if guest is None:
        report("start section", "skipped: no test guest (scripts/build-test-guest)")
        return
    tmp = Path(tempfile.mkdtemp(prefix="vsh-bench-start-"))
    store = tmp / "store"
    vsh_env = dict(os.environ, VSH_DEFAULT_URI=f"vsh:///session?root={store}")
    peer = None
    try:
        # vsh
        if not (Path(VSH).exists() and vsh_has("start", env=vsh_env) and vsh_has("destroy", env=vsh_env)):
            log("vsh has no start/destroy command yet: vsh figures skipped")
            vsh_env = None
        else:
            x = tmp / "bench-vsh.xml"
            x.write_text(domain_xml("bench-vsh", guest, tmp / "bench-vsh.serial.log"))
            p, _ = run_cmd([VSH, "define", str(x)], env=vsh_env)
            if p.returncode != 0:
                log(f"vsh define: {(p.stderr or p.stdout).strip()}: vsh figures skipped")
                vsh_env = None
        # libvirt
        if os.geteuid() != 0:
            log("not root: the libvirt peer needs root; libvirt figures skipped")
        elif ensure_libvirt():
            peer = LibvirtPeer(tmp / "libvirt")
            t0 = time.perf_counter()
            if not peer.start():
                peer = None
            else:
                p, _ = peer.virsh("capabilities", timeout=300)  # first call probes QEMU (cold cache)
                report("libvirtd up + first hypervisor call (capabilities probe)",
                       f"{time.perf_counter() - t0:.2f} s")
                x = tmp / "bench-lv.xml"
                x.write_text(domain_xml("bench-lv", guest, tmp / "bench-lv.serial.log"))
                p, _ = peer.virsh("define", str(x))
                if p.returncode != 0:
                    log(f"virsh define: {p.stderr.strip()}: libvirt figures skipped")
                    peer.stop()
                    peer = None
        else:
            log("libvirt could not be installed: libvirt figures skipped")
        paired_starts(guest, tmp, peer, vsh_env, store)
        many_guests(guest, tmp, peer, vsh_env, store)
    finally:
        if peer is not None:
            peer.stop()
        if vsh_env is not None or (store / "run").exists():
            vsh_kill_leftovers(store, dict(os.environ, VSH_DEFAULT_URI=f"vsh:///session?root={store}"))
        for pid in pids_mentioning(str(tmp)):
            kill_pid(pid)
        shutil.rmtree(tmp, ignore_errors=True)
