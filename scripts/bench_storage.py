"""Bench section `storage` (issue 5 §4, §7): vol-upload / vol-download throughput vs `cp`.

Imported by scripts/bench.py, which calls run().

A 512 MiB file of random bytes is copied into a raw volume (vol-upload: over the volume's
existing data, and into a new sparse volume) and out of it (vol-download), and the same
bytes are copied with `cp` between two files on the same filesystem (cp truncates its
destination; here it writes a new file each time, like the upload into a new volume).
vsh and cp runs alternate, each after a sync, and the medians are compared (goal: vsh
throughput >= 0.8x cp); on a shared, busy machine single runs vary a lot, so raise
VSH_BENCH_STORAGE_RUNS for steadier medians. The vsh figures include its start-up (one single-shot
process per copy), as cp's include its own.

Environment knobs: VSH_BENCH_STORAGE_MIB (file size, default 512), VSH_BENCH_STORAGE_RUNS
(runs per command, default 5), VSH_BENCH_STORAGE_DIR (where the files go, default the
system temporary directory).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench import VSH, ratio, report, timed

SIZE_MIB = int(os.environ.get("VSH_BENCH_STORAGE_MIB", "512"))
RUNS = int(os.environ.get("VSH_BENCH_STORAGE_RUNS", "5"))


def _once(argv, env) -> float:
    os.sync()
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _same(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 22), fb.read(1 << 22)
            if x != y:
                return False
            if not x:
                return True


def run() -> None:
    print(f"== storage: vol-upload / vol-download vs cp, {SIZE_MIB} MiB (issue 5)", flush=True)
    if shutil.which("cp") is None or not Path(VSH).exists():
        report("storage section", "skipped: cp or .venv/bin/vsh missing")
        return
    tmp = Path(tempfile.mkdtemp(prefix="vsh-bench-storage-", dir=os.environ.get("VSH_BENCH_STORAGE_DIR")))
    env = dict(os.environ, VSH_DEFAULT_URI=f"vsh:///session?root={tmp / 'store'}")
    try:
        src = tmp / "src.bin"
        with open(src, "wb") as fh:
            for _ in range(SIZE_MIB // 8):
                fh.write(os.urandom(8 << 20))
        size = src.stat().st_size
        subprocess.run([VSH, "-q", "vol-create-as", "default", "bench.img", str(size), "--allocation", "0"],
                       env=env, check=True)
        vol = tmp / "store" / "data" / "images" / "bench.img"
        up = [VSH, "-q", "vol-upload", "bench.img", str(src), "--pool", "default"]
        down = [VSH, "-q", "vol-download", "bench.img", str(tmp / "down.bin"), "--pool", "default"]
        cp_in = ["cp", str(src), str(tmp / "cp-in.bin")]
        cp_out = ["cp", str(vol), str(tmp / "cp-out.bin")]
        fresh = [VSH, "-q", "vol-upload", "fresh.img", str(src), "--pool", "default"]
        recreate = [[VSH, "-q", "vol-delete", "fresh.img", "--pool", "default"],
                    [VSH, "-q", "vol-create-as", "default", "fresh.img", str(size), "--allocation", "0"]]
        subprocess.run(recreate[1], env=env, check=True)
        steps = (("up", up), ("fresh", fresh), ("cp_in", cp_in), ("down", down), ("cp_out", cp_out))
        times: dict[str, list[float]] = {key: [] for key, _argv in steps}
        for key, argv in steps:
            _once(argv, env)  # warm-up: page cache, allocation of the destination
        for _ in range(RUNS):
            for key, argv in steps:
                if key == "fresh":  # a new, empty volume each time: the upload allocates as cp does
                    for step in recreate:
                        subprocess.run(step, env=env, check=True)
                elif key == "cp_in":  # and cp writes a new file each time
                    (tmp / "cp-in.bin").unlink(missing_ok=True)
                times[key].append(_once(argv, env))
        if not (_same(src, vol) and _same(src, tmp / "down.bin")):
            report("storage section", "FAILED: the copies differ from the source")
            return
        med = {k: statistics.median(v) for k, v in times.items()}
        mib = size / (1 << 20)
        for key, label in (("up", "vsh vol-upload (over the volume's data)"),
                           ("fresh", "vsh vol-upload (into a new sparse volume)"),
                           ("cp_in", "cp file -> new file (upload peer)"),
                           ("down", "vsh vol-download"), ("cp_out", "cp volume -> file (download peer)")):
            report(f"{label}, {SIZE_MIB} MiB (median of {RUNS})", f"{med[key] * 1000:.0f} ms ({mib / med[key]:,.0f} MiB/s)")
        report("throughput vol-upload into a new volume / cp (goal >= 0.8x)", ratio(med["cp_in"], med["fresh"]))
        report("throughput vol-upload over old data / cp", ratio(med["cp_in"], med["up"]))
        report("throughput vol-download / cp (goal >= 0.8x)", ratio(med["cp_out"], med["down"]))
        listing = timed([VSH, "vol-list", "default", "--details"], runs=10, env=env)
        report("vsh vol-list default --details (single-shot)", f"{listing * 1000:.1f} ms")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
