"""vsh benchmarks (run through scripts/bench). Prints figures and ratios against peers."""

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

ROOT = Path(__file__).resolve().parent.parent
VSH = str(ROOT / ".venv" / "bin" / "vsh")
PY = str(ROOT / ".venv" / "bin" / "python")
RESULTS: list[tuple[str, str]] = []


def report(name: str, text: str) -> None:
    RESULTS.append((name, text))
    print(f"  {name:<58} {text}", flush=True)


def timed(argv, runs=30, env=None, stdin_path=None, warmup=3) -> float:
    """Median wall time of a command in seconds."""
    times = []
    for i in range(runs + warmup):
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=stdin, env=env)
        dt = time.perf_counter() - t0
        if stdin_path:
            stdin.close()
        if i >= warmup:
            times.append(dt)
    return statistics.median(times)


def paired(a: dict, b: dict, runs: int = 40, warmup: int = 3) -> tuple[float, float]:
    """Medians of two commands run alternately (a, b, a, b...), so that a busy spell of the
    machine weighs on both; each dict is ``timed``'s keyword arguments plus ``argv``."""
    ta, tb = [], []
    for i in range(runs + warmup):
        for spec, out in ((a, ta), (b, tb)):
            t = timed(spec["argv"], runs=1, env=spec.get("env"), stdin_path=spec.get("stdin_path"), warmup=0)
            if i >= warmup:
                out.append(t)
    return statistics.median(ta), statistics.median(tb)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def store_env(root: Path) -> dict:
    env = dict(os.environ)
    env["VSH_DEFAULT_URI"] = f"vsh:///session?root={root}"
    return env


DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><source file='/var/lib/vsh/{name}.img'/><target dev='vda' bus='virtio'/></disk>
  </devices>
</domain>
"""


def bench_shell() -> None:
    print("== shell: single-shot, batch, list with 1000 domains (issue 2)")
    virsh = shutil.which("virsh")
    tmp = Path(tempfile.mkdtemp(prefix="vsh-bench-"))
    try:
        env = store_env(tmp / "store")
        xml = tmp / "test.xml"
        xml.write_text(DOMAIN_XML.format(name="test"))
        subprocess.run([VSH, "define", str(xml)], env=env, check=True, stdout=subprocess.DEVNULL)
        if virsh:
            v_list, p_list = paired({"argv": [VSH, "list", "--all"], "env": env},
                                    {"argv": [virsh, "-c", "test:///default", "list", "--all"]})
            v_info, p_info = paired({"argv": [VSH, "dominfo", "test"], "env": env},
                                    {"argv": [virsh, "-c", "test:///default", "dominfo", "test"]})
        else:
            v_list = timed([VSH, "list", "--all"], env=env)
            v_info = timed([VSH, "dominfo", "test"], env=env)
        report("vsh list --all (single-shot)", f"{v_list * 1000:.1f} ms")
        report("vsh dominfo test (single-shot)", f"{v_info * 1000:.1f} ms")
        if virsh:
            report("virsh -c test:///default list --all", f"{p_list * 1000:.1f} ms")
            report("virsh -c test:///default dominfo test", f"{p_info * 1000:.1f} ms")
            report("ratio list --all vsh/virsh (goal <= 1.0x)", ratio(v_list, p_list))
            report("ratio dominfo vsh/virsh (goal <= 1.0x)", ratio(v_info, p_info))
        batch = tmp / "batch.txt"
        batch.write_text("".join(["dominfo test\n", "domstate test\n", "list --all\n"][i % 3] for i in range(1000)))
        if virsh:
            v_batch, p_batch = paired({"argv": [VSH], "env": env, "stdin_path": str(batch)},
                                      {"argv": [virsh, "-c", "test:///default"], "stdin_path": str(batch)}, runs=10)
        else:
            v_batch = timed([VSH], env=env, stdin_path=str(batch), runs=10)
        v_rate = 1000 / v_batch
        report("vsh batch, 1000 mixed query lines", f"{v_batch * 1000:.1f} ms ({v_rate:,.0f} cmds/s)")
        if virsh:
            p_rate = 1000 / p_batch
            report("virsh batch, same 1000 lines", f"{p_batch * 1000:.1f} ms ({p_rate:,.0f} cmds/s)")
            report("ratio cmds/s vsh/virsh (goal >= 1.1x)", f"{v_rate / p_rate:.2f}x")
        # 1000 defined domains
        many = tmp / "many"
        env_many = store_env(many)
        lines = []
        for i in range(1000):
            path = tmp / f"d{i}.xml"
            path.write_text(DOMAIN_XML.format(name=f"dom{i:04d}"))
            lines.append(f"define {path}\n")
        (tmp / "define.txt").write_text("".join(lines))
        t0 = time.perf_counter()
        subprocess.run([VSH, "-q", "-f", str(tmp / "define.txt")], env=env_many, check=True,
                       stdout=subprocess.DEVNULL)
        report("define 1000 domains (one batch)", f"{time.perf_counter() - t0:.2f} s")
        v_many = timed([VSH, "list", "--all"], env=env_many, runs=10)
        report("vsh list --all with 1000 defined domains (goal <= 100 ms)", f"{v_many * 1000:.1f} ms")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str]) -> int:
    which = argv[0] if argv else "all"
    sections = {"shell": bench_shell}
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    for extra in ("start", "guestfs", "storage", "snapshot", "network", "migrate", "libvirt", "remote", "web", "scale"):
        try:
            module = __import__(f"bench_{extra}")
        except ImportError as exc:
            print(f"(section {extra} unavailable: {exc})", file=sys.stderr)
            continue
        sections[extra] = getattr(module, "run")
    if which != "all" and which not in sections:
        print(f"error: unknown section '{which}' (choose from {', '.join(sections)}, all)", file=sys.stderr)
        return 1
    for name, fn in sections.items():
        if which in ("all", name):
            fn()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
