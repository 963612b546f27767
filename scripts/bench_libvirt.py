"""Bench section `libvirt` (issue 11 §1): vsh's libvirt driver against virsh on the same URI.

Imported by scripts/bench.py, which calls run().

* ``test:///default`` (libvirt's test driver, in the client process): single-shot ``list --all``
  and ``dominfo test``, vsh and virsh run alternately (goal: vsh <= 1.2x virsh).
* a private libvirtd (scripts/libvirt-peer, in its own mount and PID namespaces, as root):
  ``list --all`` and ``dominfo`` of a defined microvm guest, and ``start`` of it (each start is
  followed by an untimed destroy), alternately through vsh and virsh with
  ``-c qemu+unix:///system?socket=…``; then ``define`` of a q35 domain whose 12 PCIe devices get
  root ports (vsh into a local store, virsh into libvirtd: both place them the same way).

Both clients load libvirt's shared library (~60 libraries, ~20,000 symbol relocations: ~16-20 ms
of CPU here, in virsh's start-up as in vsh's ``dlopen``). What vsh pays beyond virsh is the Python
interpreter's own start (~10-12 ms) and, far less, vsh itself: the ``floor`` figure is a bare
``python -S`` that imports ``libvirtmod``, opens the URI and lists the domains, so the report
shows how much of the gap is vsh (vsh/floor) and how much is any Python client (floor/virsh).

Environment knobs: VSH_BENCH_LIBVIRT_RUNS (single-shot pairs, default 30),
VSH_BENCH_LIBVIRT_STARTS (start pairs, default 5).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench import PY, VSH, paired, ratio, report

RUNS = int(os.environ.get("VSH_BENCH_LIBVIRT_RUNS", "30"))
STARTS = int(os.environ.get("VSH_BENCH_LIBVIRT_STARTS", "5"))
#: the least a Python client of libvirt pays for `list --all` (the interpreter, libvirtmod, the
#: connection, one call per domain, the table written, no teardown): vsh's floor
FLOOR = """
import os, sys
sys.path.append(PURELIB)
sys.setdlopenflags(os.RTLD_LAZY)
import libvirtmod
c = libvirtmod.virConnectOpen("test:///default")
rows = [(libvirtmod.virDomainGetID(d), libvirtmod.virDomainGetName(d), libvirtmod.virDomainGetState(d, 0))
        for d in libvirtmod.virConnectListAllDomains(c, 0)]
sys.stdout.write("".join(f" {i}  {n}  {s}\\n" for i, n, s in rows) + "\\n")
sys.stdout.flush()
os._exit(0)
"""


def _pair(label: str, ours: list, theirs: list) -> None:
    v, p = paired({"argv": ours}, {"argv": theirs}, runs=RUNS)
    report(label, f"vsh {v * 1e3:.1f} ms, virsh {p * 1e3:.1f} ms ({ratio(v, p)})")


def _start_once(argv_start: list, argv_destroy: list) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv_start, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    took = time.perf_counter() - t0
    subprocess.run(argv_destroy, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return took


def _peer_section(virsh: str) -> None:
    import bench_start

    if os.geteuid() != 0:
        print("    (the libvirtd figures need root: skipped)")
        return
    if not bench_start.ensure_libvirt():
        print("    (libvirtd is not available: skipped)")
        return
    m = bench_start.test_guest()
    if m is None:
        print("    (no test guest: the libvirtd figures are skipped)")
        return
    tmp = Path(tempfile.mkdtemp(prefix="vsh-bench-libvirt-"))
    peer = bench_start.LibvirtPeer(tmp / "peer")
    try:
        if not peer.start():
            return
        uri = peer.uri
        xml = tmp / "g.xml"
        xml.write_text(bench_start.DOMAIN_XML.format(**_guest_params(bench_start, m, tmp)))
        subprocess.run([virsh, "-c", uri, "define", str(xml)], check=True, stdout=subprocess.DEVNULL, timeout=300)
        _pair("libvirtd: list --all", [VSH, "-c", uri, "list", "--all"], [virsh, "-c", uri, "list", "--all"])
        _pair("libvirtd: dominfo", [VSH, "-c", uri, "dominfo", "lvbench"], [virsh, "-c", uri, "dominfo", "lvbench"])
        ours, theirs = [], []
        for _ in range(STARTS):
            ours.append(_start_once([VSH, "-c", uri, "start", "lvbench"], [VSH, "-c", uri, "destroy", "lvbench"]))
            theirs.append(_start_once([virsh, "-c", uri, "start", "lvbench"],
                                      [virsh, "-c", uri, "destroy", "lvbench"]))
        v, p = statistics.median(ours), statistics.median(theirs)
        report("libvirtd: start (microvm guest)", f"vsh {v * 1e3:.0f} ms, virsh {p * 1e3:.0f} ms ({ratio(v, p)})")
        _q35_define(virsh, uri, tmp)
    finally:
        peer.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _q35_define(virsh: str, uri: str, tmp: Path) -> None:
    """define (again) of the corpus's q35-pcie-autoadd domain: vsh into its own store (placing 12
    devices behind 13 pcie-root-ports it adds) against virsh into libvirtd, which does the same."""
    from bench import store_env

    xml = tmp / "q35.xml"
    corpus = Path(__file__).resolve().parent.parent / "tests" / "data" / "libvirt-corpus" / "q35-pcie-autoadd.xml"
    text = corpus.read_text().replace("/VSHTEST", str(tmp))      # a uuid, so that each define updates it
    xml.write_text(text.replace("</name>", "</name>\n  <uuid>0d3c9a5e-7f43-4d39-9a8e-2b6f0f3b9c11</uuid>", 1))
    (tmp / "disk.raw").write_bytes(b"")
    v, p = paired({"argv": [VSH, "define", str(xml)], "env": store_env(tmp / "store")},
                  {"argv": [virsh, "-c", uri, "define", str(xml)]}, runs=RUNS)
    report("define q35 (PCIe root ports placed)", f"vsh {v * 1e3:.1f} ms, virsh {p * 1e3:.1f} ms ({ratio(v, p)})")


def _guest_params(bench_start, m: dict, tmp: Path) -> dict:
    """The microvm guest of bench_start's DOMAIN_XML: the test guest's kernel, initrd and disk."""
    return {"name": "lvbench", "mem": 256, "kernel": m.get("vmlinux") or m["kernel"], "initrd": m["initrd"],
            "cmdline": m["cmdline_full"], "qemu": bench_start.QEMU, "disk": m["disk"],
            "serial": str(tmp / "serial.log")}


def run() -> None:
    print("== libvirt: the libvirt driver against virsh on the same URI (issue 11)")
    virsh = shutil.which("virsh")
    if virsh is None:
        print("    (virsh is not installed: skipped)")
        return
    probe = subprocess.run([VSH, "-c", "test:///default", "list", "--all"], capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"    (vsh cannot open test:///default: {probe.stderr.strip()[:200]})")
        return
    _pair("test:///default: list --all", [VSH, "-c", "test:///default", "list", "--all"],
          [virsh, "-c", "test:///default", "list", "--all"])
    import sysconfig

    floor_code = FLOOR.replace("PURELIB", repr(sysconfig.get_paths()["purelib"]))
    floor, vsh = paired({"argv": [PY, "-S", "-c", floor_code]},
                        {"argv": [VSH, "-c", "test:///default", "list", "--all"]}, runs=RUNS)
    report("test:///default: list --all, Python floor", f"python + libvirtmod {floor * 1e3:.1f} ms, vsh "
           f"{vsh * 1e3:.1f} ms (vsh/floor {ratio(vsh, floor)})")
    floor, theirs = paired({"argv": [PY, "-S", "-c", floor_code]},
                           {"argv": [virsh, "-c", "test:///default", "list", "--all"]}, runs=RUNS)
    report("test:///default: list --all, Python floor vs virsh", f"floor {floor * 1e3:.1f} ms, virsh "
           f"{theirs * 1e3:.1f} ms (floor/virsh {ratio(floor, theirs)}: the least any Python client pays)")
    _pair("test:///default: dominfo test", [VSH, "-c", "test:///default", "dominfo", "test"],
          [virsh, "-c", "test:///default", "dominfo", "test"])
    _peer_section(virsh)
