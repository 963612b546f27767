"""Load and scale figures (issue 15 §4), run through ``scripts/bench scale``:

* 10,000 defined domains: the time to define them (one batch), ``list --all``, one more
  ``define`` (beside the same define into an empty store), a lookup by UUID, the UUID
  index's rebuild, and the store's size on disk; as root, the same configs in a private
  libvirtd (scripts/libvirt-peer): ``list --all`` and one more ``define``, vsh against virsh;
* 40 tiny guests (microvm, 64 MiB, TCG) supervised at once: start time, the RSS of each
  supervisor and of all of them, QEMU's RSS; domstate / suspend / resume / destroy under that
  load; then kill -9 of 10 random supervisors and 10 random QEMUs, and how many domains
  still answer with a true state and can be destroyed (nothing wedged).

Figures are printed, never asserted.  ``VSH_BENCH_SCALE_DOMAINS`` / ``VSH_BENCH_SCALE_GUESTS``
make the runs smaller (0 guests: the defined-domains part alone).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench import DOMAIN_XML, VSH, paired, ratio, report, store_env, timed
from bench_start import fmt_ms, kill_pid, log, med, run_cmd, test_guest, vm_rss_kib

DOMAINS = int(os.environ.get("VSH_BENCH_SCALE_DOMAINS", "10000"))
GUESTS = int(os.environ.get("VSH_BENCH_SCALE_GUESTS", "40"))
KILLS = 10


def du_kib(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks // 2
            except OSError:
                pass
    return total


def define_one(env: dict, tmp: Path, name: str) -> float:
    path = tmp / "xml" / f"{name}.xml"
    path.write_text(DOMAIN_XML.format(name=name))
    return run_cmd([VSH, "define", str(path)], env=env, check=True)[1]


def many_domains(tmp: Path) -> None:
    """10,000 defined domains: what a listing and one more define cost, against the goals, and
    beside the same define into an empty store (the UUID index makes it independent of the
    number of domains; the rest is start-up: Python, lxml, the model)."""
    env = store_env(tmp / "store")
    (tmp / "xml").mkdir(exist_ok=True)
    lines = []
    for i in range(DOMAINS):
        path = tmp / "xml" / f"d{i}.xml"
        path.write_text(DOMAIN_XML.format(name=f"dom{i:05d}"))
        lines.append(f"define {path}\n")
    (tmp / "define.txt").write_text("".join(lines))
    t0 = time.perf_counter()
    subprocess.run([VSH, "-q", "-f", str(tmp / "define.txt")], env=env, check=True, stdout=subprocess.DEVNULL)
    batch = time.perf_counter() - t0
    report(f"define {DOMAINS} domains (one batch)", f"{batch:.1f} s ({batch / DOMAINS * 1000:.1f} ms each)")
    report(f"vsh list --all with {DOMAINS} domains (goal <= 100 ms)",
           f"{timed([VSH, 'list', '--all'], env=env, runs=10, warmup=2) * 1000:.0f} ms")
    report(f"vsh list --all --name with {DOMAINS} domains",
           f"{timed([VSH, 'list', '--all', '--name'], env=env, runs=10, warmup=2) * 1000:.0f} ms")
    empty_env = store_env(tmp / "empty")
    one_more, into_empty = [], []
    for i in range(7):          # alternately, so that a busy spell of the machine weighs on both
        one_more.append(define_one(env, tmp, f"extra{i}"))
        into_empty.append(define_one(empty_env, tmp, f"alone{i}"))
        run_cmd([VSH, "undefine", f"alone{i}"], env=empty_env, check=True)
    report(f"define one more with {DOMAINS} (goal <= 50 ms)", fmt_ms(med(one_more)))
    report("define into an empty store (the same command)", fmt_ms(med(into_empty)))
    uuid = run_cmd([VSH, "domuuid", f"dom{DOMAINS // 2:05d}"], env=env, check=True)[0].stdout.strip()
    by_uuid = [run_cmd([VSH, "dominfo", uuid], env=env, check=True)[1] for _ in range(5)]
    report(f"dominfo by UUID with {DOMAINS} (UUID index)", fmt_ms(med(by_uuid)))
    stamp = tmp / "store" / "config" / ".index" / ".stamp"
    stamp.unlink()          # what a writer killed at work leaves: the index is rebuilt
    report(f"UUID index rebuilt from {DOMAINS} configs (once, after a crash)",
           fmt_ms(run_cmd([VSH, "dominfo", uuid], env=env, check=True)[1]))
    report(f"store size with {DOMAINS + 7} domains", f"{du_kib(tmp / 'store') / 1024:.1f} MiB on disk")
    libvirtd_peer(tmp, env)


def libvirtd_peer(tmp: Path, env: dict) -> None:
    """The same store in a private libvirtd (scripts/libvirt-peer, root only): its define of the
    DOMAINS configs, then list --all and one more define, vsh and virsh alternately."""
    import bench_start

    virsh = shutil.which("virsh")
    if os.geteuid() != 0 or virsh is None or not bench_start.ensure_libvirt():
        log("no libvirtd peer (needs root and libvirt): no virsh figures at this scale")
        return
    peer = bench_start.LibvirtPeer(tmp / "peer")
    if not peer.start():
        return
    try:
        uri = peer.uri
        paths = [tmp / "xml" / f"d{i}.xml" for i in range(DOMAINS)]
        t0 = time.perf_counter()
        for at in range(0, DOMAINS, 500):       # virsh runs ';'-separated commands in one connection
            script = "; ".join(f"define {p}" for p in paths[at:at + 500])
            subprocess.run([virsh, "-q", "-c", uri, script], check=True, stdout=subprocess.DEVNULL, timeout=1800)
        report(f"libvirtd: define {DOMAINS} (virsh, 500 a connection)", f"{time.perf_counter() - t0:.1f} s")
        v, p = paired({"argv": [VSH, "list", "--all"], "env": env}, {"argv": [virsh, "-c", uri, "list", "--all"]},
                      runs=5, warmup=1)
        report(f"list --all with {DOMAINS}: vsh store vs virsh on libvirtd",
               f"vsh {v * 1e3:.0f} ms, virsh {p * 1e3:.0f} ms ({ratio(v, p)})")
        ours, theirs = [], []
        for i in range(5):
            ours.append(define_one(env, tmp, f"more{i}"))
            path = tmp / "xml" / f"lv{i}.xml"
            path.write_text(DOMAIN_XML.format(name=f"lv{i}"))
            theirs.append(run_cmd([virsh, "-c", uri, "define", str(path)], check=True)[1])
        v, p = med(ours), med(theirs)
        report(f"define one more with {DOMAINS}: vsh vs virsh on libvirtd",
               f"vsh {v * 1e3:.0f} ms, virsh {p * 1e3:.0f} ms ({ratio(v, p)})")
    finally:
        peer.stop()


def tiny_xml(name: str, g: dict) -> str:
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{g.get('vmlinux') or g['kernel']}</kernel>
    <initrd>{g['initrd']}</initrd>
    <cmdline>{g['cmdline_full']}</cmdline>
  </os>
  <on_crash>destroy</on_crash>
  <devices><serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console></devices>
</domain>
"""


def state_of(store: Path, name: str) -> dict:
    try:
        return json.loads((store / "run" / name / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def many_guests(tmp: Path, g: dict) -> None:
    store = tmp / "gstore"
    env = store_env(store)
    names = [f"t{i:02d}" for i in range(GUESTS)]
    for name in names:
        path = tmp / f"{name}.xml"
        path.write_text(tiny_xml(name, g))
        run_cmd([VSH, "define", str(path)], env=env, check=True)
    try:
        t0 = time.perf_counter()
        for name in names:
            run_cmd([VSH, "start", name], env=env, check=True)
        report(f"start {GUESTS} tiny guests one after another (TCG)", f"{time.perf_counter() - t0:.1f} s")
        time.sleep(5)
        sup = [vm_rss_kib(state_of(store, n).get("supervisor_pid")) or 0 for n in names]
        qemu = [vm_rss_kib(state_of(store, n).get("qemu_pid")) or 0 for n in names]
        report("supervisor RSS, median / max", f"{med(sup) / 1024:.1f} / {max(sup) / 1024:.1f} MiB")
        report(f"supervisors' RSS, all {GUESTS}", f"{sum(sup) / 1024:.0f} MiB")
        report(f"QEMUs' RSS, all {GUESTS}", f"{sum(qemu) / 1024:.0f} MiB")
        sample = random.sample(names, min(5, len(names)))
        for op in ("domstate", "suspend", "resume"):
            times = [run_cmd([VSH, op, n], env=env, check=True)[1] for n in sample]
            report(f"{op} under load (median of {len(sample)}, goal <= 1 s)", fmt_ms(med(times)))
        victims_sup = random.sample(names, min(KILLS, len(names)))
        victims_qemu = random.sample(names, min(KILLS, len(names)))
        for n in victims_sup:
            kill_pid(state_of(store, n).get("supervisor_pid"))
        for n in victims_qemu:
            kill_pid(state_of(store, n).get("qemu_pid"))
        time.sleep(2)
        truthful = 0
        for n in names:
            p, _dt = run_cmd([VSH, "domstate", n, "--reason"], env=env)
            want = "shut off" if n in victims_qemu else "running"
            truthful += p.stdout.strip().startswith(want)
        report(f"after kill -9 of {KILLS} supervisors and {KILLS} QEMUs: domstate true", f"{truthful}/{GUESTS}")
    finally:
        times, stopped = [], 0
        for name in names:
            p, dt = run_cmd([VSH, "destroy", name], env=env)
            if "destroyed" in p.stdout:
                times.append(dt)
            p, _dt = run_cmd([VSH, "domstate", name], env=env)
            stopped += p.stdout.startswith("shut off")
        report("destroy under load (median)", fmt_ms(med(times)))
        report("domains shut off at the end (nothing wedged)", f"{stopped}/{GUESTS}")


def run() -> None:
    print(f"== scale: {DOMAINS} defined domains, {GUESTS} running tiny guests (issue 15 §4)")
    tmp = Path(tempfile.mkdtemp(prefix="vsh-bench-scale-"))
    try:
        many_domains(tmp)
        if GUESTS <= 0:
            return
        g = test_guest()
        if g is None:
            log("no test guest: the running-guests part is skipped")
            return
        many_guests(tmp, g)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
