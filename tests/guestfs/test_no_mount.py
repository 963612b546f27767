"""Inspection never mounts anything: run it under strace and look for mount syscalls."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

STRACE = shutil.which("strace")
SYSCALLS = "mount,umount2,fsopen,fsmount,fsconfig,move_mount,open_tree,mount_setattr"

SCRIPT = """
import sys
from vsh.guestfs.session import GuestSession
g = GuestSession()
for path, fmt in zip(sys.argv[1::2], sys.argv[2::2]):
    g.add_drive(path, fmt)
g.launch()
rep = g.inspector_report()
g.mount_inspected("/dev/sda2")
print(g.cat("/etc/hostname").decode().strip(), len(rep["operatingsystems"][0]["applications"]))
"""


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
def test_inspection_makes_no_mount_syscall(images, tmp_path):
    log = tmp_path / "strace.log"
    args = [images.path("gpt_overlay"), "qcow2", images.path("lvm"), "raw"]
    r = subprocess.run([STRACE, "-f", "-qq", "-e", f"trace={SYSCALLS}", "-o", str(log),
                        sys.executable, "-c", SCRIPT, *args],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    host, napps = r.stdout.split()
    assert host == images["gpt_overlay"]["os"]["hostname"]
    assert int(napps) == images["gpt_overlay"]["os"]["applications"]
    calls = [ln for ln in log.read_text().splitlines() if ln.strip() and "+++" not in ln and "---" not in ln]
    assert calls == [], calls


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
def test_the_strace_filter_sees_a_mount_attempt(tmp_path):
    """Control for the test above: a (failing) mount(2) call does show up in the log."""
    log = tmp_path / "strace.log"
    code = "import ctypes; ctypes.CDLL(None).mount(b'none', b'/nonexistent-vsh', b'tmpfs', 0, None)"
    subprocess.run([STRACE, "-f", "-qq", "-e", f"trace={SYSCALLS}", "-o", str(log), sys.executable, "-c", code],
                   capture_output=True, timeout=60)
    assert "mount(" in log.read_text()
