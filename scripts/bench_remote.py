"""Bench section `remote` (issue 11 §2): vsh+ssh:// against plain ssh and against the local store.

Imported by scripts/bench.py, which calls run(). An sshd runs in a network namespace the bench
makes (tests/sshpeer.py); every client runs inside it. Figures:

* `vsh -c vsh+ssh://root@127.0.0.1/session list --all` against `ssh root@127.0.0.1 vsh list --all`
  (the same remote vsh, the same store), paired rounds, medians — goal <= 1.2x;
* 1,000 query lines (list --all, dominfo, domstate, domid) in one remote batch, in commands/s —
  goal >= 2,000/s — against the same batch on the local store. Each query is one round trip (the
  domain lookup is pipelined with the call that follows it, docs/remote-protocol.md); the floor of
  one is measured too: a line sent to ``ssh host cat`` and read back, 1,000 times.

Environment knob: VSH_BENCH_REMOTE_RUNS (rounds, default 15).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench import ROOT, VSH, paired, ratio, report, timed

QUERIES = ("list --all", "dominfo {name}", "domstate {name}", "domid {name}")


def _peer_module():
    spec = importlib.util.spec_from_file_location("sshpeer", ROOT / "tests" / "sshpeer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PING = """
import os, subprocess, sys, time
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
line = b"x" * 100 + b"\\n"
times = []
for i in range(1100):
    t = time.perf_counter()
    os.write(p.stdin.fileno(), line)
    got = b""
    while not got.endswith(b"\\n"):
        got += os.read(p.stdout.fileno(), 4096)
    if i >= 100:
        times.append(time.perf_counter() - t)
p.stdin.close()
p.wait()
print(sum(times) / len(times))
"""


def _ssh_round_trip(peer, ssh: list, env: dict) -> float | None:
    """Mean time of one line sent through ssh to a remote ``cat`` and read back (None: failed)."""
    import sys

    proc = subprocess.run([*peer.prefix, sys.executable, "-c", PING, *ssh, "-T", "-p", "2222", "root@127.0.0.1",
                           "cat"], env=env, capture_output=True, text=True, timeout=120)
    try:
        return float(proc.stdout.strip())
    except ValueError:
        return None


def run() -> None:
    print("remote (vsh+ssh:// through a real sshd in a network namespace)")
    sshpeer = _peer_module()
    why = sshpeer.missing()
    if why:
        report("remote", f"skipped: {why}")
        return
    runs = int(os.environ.get("VSH_BENCH_REMOTE_RUNS", "15"))
    tmp = Path(tempfile.mkdtemp(prefix="vsh-bench-remote-"))
    peer = None
    try:
        store = tmp / "store"
        local_uri = f"vsh:///session?root={store}"
        for i in range(10):
            xml = tmp / f"r{i}.xml"
            xml.write_text(f"<domain type='qemu'><name>r{i}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
                           "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices/></domain>\n")
            subprocess.run([VSH, "-c", local_uri, "define", xml], check=True, capture_output=True)
        peer = sshpeer.SshPeer(tmp / "ssh", port=2222)
        ssh = peer.ssh("client").split()
        env = dict(os.environ, VSH_SSH=" ".join(ssh))
        remote_uri = f"vsh+ssh://root@127.0.0.1:2222/session?root={store}&command={VSH}"
        plain_ssh = [*peer.prefix, *ssh, "-p", "2222", "root@127.0.0.1", f"{VSH} -c '{local_uri}' list --all"]
        via_vsh = [*peer.prefix, VSH, "-c", remote_uri, "list", "--all"]
        for argv in (plain_ssh, via_vsh):
            proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
            if proc.returncode != 0 or "r9" not in proc.stdout:
                report("remote", f"failed: {' '.join(map(str, argv))}: {proc.stderr.strip()}")
                return
        t_vsh, t_ssh = paired({"argv": via_vsh, "env": env}, {"argv": plain_ssh, "env": env}, runs=runs)
        report("remote list --all: vsh+ssh:// / ssh host vsh (goal <= 1.2x)",
               f"{t_vsh * 1000:.1f} ms / {t_ssh * 1000:.1f} ms = {ratio(t_vsh, t_ssh)}")
        batch = tmp / "batch.vsh"
        batch.write_text("".join(QUERIES[i % 4].format(name=f"r{i % 10}") + "\n" for i in range(1000)))
        one = tmp / "one.vsh"
        one.write_text(QUERIES[0] + "\n")
        before = peer.sessions()
        t_remote = timed([*peer.prefix, VSH, "-c", remote_uri, "-f", batch], runs=3, env=env, warmup=1)
        sessions = (peer.sessions() - before) / 4
        t_setup = timed([*peer.prefix, VSH, "-c", remote_uri, "-f", one], runs=5, env=env, warmup=1)
        t_local = timed([VSH, "-c", local_uri, "-f", batch], runs=3, warmup=1)
        report("remote batch of 1,000 queries, one ssh session (goal >= 2,000/s)",
               f"{1000 / t_remote:.0f} commands/s with the ssh set-up, "
               f"{999 / max(t_remote - t_setup, 1e-6):.0f}/s after it ({sessions:g} ssh session per run)")
        report("the same batch on the local store", f"{1000 / t_local:.0f} commands/s "
               f"(remote: {(t_remote - t_setup - t_local) * 1e3 / 1000:.2f} ms more per command)")
        floor = _ssh_round_trip(peer, ssh, env)
        if floor:
            report("one round trip through ssh (to `cat`), the floor per query",
                   f"{floor * 1e3:.3f} ms (at most {1 / floor:.0f} round trips/s)")
    finally:
        if peer is not None:
            peer.stop()
        shutil.rmtree(tmp, ignore_errors=True)
