#!/usr/bin/env python3
"""What libvirtd 9.0's qemu driver writes on define for each corpus XML, kept in
tests/data/libvirt-dumps/NAME.xml (``dumpxml --inactive``, normalised by corpus.normalize_dump;
NAME.err when libvirtd refuses the XML) for tests/unit/test_libvirt_dumps.py to compare vsh with.

    flock /tmp/vsh-vm.lock python tests/libvirt_dumps.py

runs a private libvirtd (scripts/libvirt-peer: root, its own namespaces), defines and dumps every
corpus XML (given as corpus.for_libvirt writes it), undefines it, and stops the daemon.
"""

from __future__ import annotations

import select
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def virsh(uri: str, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["virsh", "-c", uri, *args], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:       # libvirtd 9.0 spins on a disk target like 'hdaxxxxxxxxxx'
        return subprocess.CompletedProcess(args, 1, "", "error: libvirtd did not answer within 30 s")


def capture(uri: str, tmp: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in corpus.NAMES:
        (tmp / name).mkdir()
        path = corpus.materialize(name, tmp / name)
        given = corpus.for_libvirt(path.read_text())
        path.write_text(given)
        for old in (out / (name + ".xml"), out / (name + ".err")):
            old.unlink(missing_ok=True)
        r = virsh(uri, "define", str(path))
        if r.returncode != 0:
            (out / (name + ".err")).write_text(r.stderr.strip().replace(str(tmp / name), corpus.am.PLACEHOLDER) + "\n")
            print(f"{name}: refused: {r.stderr.strip()}")
            continue
        dom = corpus.domain_name(name)
        dump = virsh(uri, "dumpxml", "--inactive", dom).stdout
        virsh(uri, "undefine", "--nvram", dom)
        (out / (name + ".xml")).write_text(corpus.normalize_dump(dump, name, tmp / name, given))
        print(f"{name}: ok")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="lvd") as base:
        base = Path(base)
        with open(base / "peer.err", "wb") as err:
            proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "libvirt-peer"), "--stdin-eof",
                                     str(base / "d")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=err, text=True)
            try:
                line = proc.stdout.readline() if select.select([proc.stdout], [], [], 60)[0] else ""
                if not line.startswith("READY "):
                    print("libvirtd did not come up:", (base / "peer.err").read_text()[-400:], file=sys.stderr)
                    return 1
                uri = f"qemu+unix:///system?socket={line.split(' ', 1)[1].strip()}"
                (base / "x").mkdir()
                capture(uri, base / "x", corpus.LIBVIRT_DUMPS)
            finally:
                proc.stdin.close()
                proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
