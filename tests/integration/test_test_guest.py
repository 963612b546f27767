"""The test guest built by scripts/build-test-guest boots and behaves.

Boots it once with raw QEMU (no vsh code involved) on microvm + PVH vmlinux
under TCG, waits for the ready line on the serial console, runs a command in
the guest shell, then presses the ACPI power button through QMP and expects
QEMU to exit.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build-test-guest"
QEMU = shutil.which("qemu-system-x86_64")

# The autouse fixture in tests/conftest.py points HOME and XDG_CACHE_HOME into
# each test's tmp_path.  The guest cache must outlive the test (building it
# downloads and unpacks a kernel package), so the script runs with the
# environment this module was imported with.
_ENV = dict(os.environ)

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed"),
]

BOOT_TIMEOUT = 120      # TCG on 2 shared cores; a boot normally takes 2-3 s
POWERDOWN_TIMEOUT = 30


@pytest.fixture(scope="module")
def manifest() -> dict:
    """Build the guest if it is not cached yet and return its manifest."""
    r = subprocess.run([str(SCRIPT)], env=_ENV, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=1800)
    assert r.returncode == 0, f"build-test-guest failed:\n{r.stderr[-4000:]}"
    cache_dir = Path(r.stdout.strip().splitlines()[-1])
    assert cache_dir.is_absolute() and ROOT not in cache_dir.parents
    with open(cache_dir / "manifest.json") as f:
        m = json.load(f)
    for key in ("kernel", "vmlinux", "initrd", "disk"):
        assert Path(m[key]).is_file(), key
    return m


class Serial:
    """The guest's serial console as QEMU's stdin/stdout pipes."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.buf = b""

    def expect(self, needle: bytes, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while needle not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {needle!r} within {timeout}s; serial output:\n"
                                     + self.buf[-3000:].decode(errors="replace"))
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"QEMU exited ({self.proc.wait()}) before {needle!r}; "
                                         "serial output:\n"
                                         + self.buf[-3000:].decode(errors="replace"))
                self.buf += chunk

    def send(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()


def qmp_command(sock: socket.socket, reader, command: str) -> dict:
    sock.sendall(json.dumps({"execute": command}).encode() + b"\n")
    while True:
        line = reader.readline()
        assert line, f"QMP connection closed while waiting for {command}"
        msg = json.loads(line)
        if "return" in msg or "error" in msg:
            assert "error" not in msg, msg
            return msg


def test_microvm_pvh_boot_shell_and_powerdown(manifest, tmp_path):
    # A unix socket path must fit in sun_path (108 bytes); tmp_path can be long.
    sockdir = tmp_path if len(str(tmp_path)) < 90 else Path(tempfile.mkdtemp(prefix="vsh-"))
    qmp_path = sockdir / "qmp.sock"
    cmdline = f"{manifest['cmdline']} {manifest['microvm_cmdline_extra']}".strip()
    args = [QEMU, "-machine", "microvm", "-accel", "tcg", "-m", "256", "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", manifest["vmlinux"], "-initrd", manifest["initrd"],
            "-append", cmdline, "-serial", "stdio",
            "-qmp", f"unix:{qmp_path},server=on,wait=off"]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        serial = Serial(proc)
        ready = manifest["ready_line"].encode()
        serial.expect(ready, BOOT_TIMEOUT)

        serial.send("echo hi-$((6*7))")
        serial.expect(b"hi-42", 30)          # the echoed command line shows no "hi-42"
        assert serial.buf.count(ready) == 1

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(str(qmp_path))
            reader = sock.makefile("rb")
            assert "QMP" in json.loads(reader.readline())
            qmp_command(sock, reader, "qmp_capabilities")
            start = time.monotonic()
            qmp_command(sock, reader, "system_powerdown")
            try:
                rc = proc.wait(timeout=POWERDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"QEMU still running {POWERDOWN_TIMEOUT}s after system_powerdown")
            elapsed = time.monotonic() - start
        assert rc == 0
        assert elapsed < POWERDOWN_TIMEOUT
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for f in (proc.stdin, proc.stdout):
            f.close()
        if sockdir != tmp_path:
            shutil.rmtree(sockdir, ignore_errors=True)
