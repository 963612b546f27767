"""save / restore / managedsave and snapshots of a running guest (TCG), through the commands.

One guest (the cached test kernel + busybox initramfs, microvm) with a qcow2 data disk is
shared by the tests of this module. The guest's own state is checked from inside, over its
serial console: a marker file in its RAM-backed root (tmpfs) and bytes on /dev/vda.
Run with ``flock /tmp/vsh-vm-tests.lock``.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
import tty
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]
REAL_ENV = dict(os.environ)
NAME = "sv1"


@pytest.fixture(scope="module")
def guest():
    script = ROOT / "scripts" / "build-test-guest"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=REAL_ENV,
                          timeout=900)
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.skip(f"no test guest: {proc.stderr.strip()[-300:]}")
    return json.loads((Path(proc.stdout.strip().splitlines()[-1]) / "manifest.json").read_text())


class Box:
    """The module's store, domain and data disk; runs vsh in-process against them."""

    def __init__(self, root: Path, guest: dict):
        self.root = root
        self.uri = f"vsh:///session?root={root / 'store'}"
        self.rundir = root / "store" / "run" / NAME
        self.disk = root / "data.qcow2"
        self.guest = guest
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(self.disk), "32M"], check=True)
        kernel = guest.get("vmlinux") or guest["kernel"]
        # no_timer_check: on a loaded host the kernel's IO-APIC timer check fails now and then under TCG
        cmdline = f"{guest['cmdline']} {guest.get('microvm_cmdline_extra', '')} no_timer_check".strip()
        self.xml = root / f"{NAME}.xml"
        self.xml.write_text(f"""<domain type='qemu'>
  <name>{NAME}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{guest['initrd']}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{self.disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>
""")
        self.vsh_fn = None

    def __call__(self, *argv):
        return self.vsh_fn("-c", self.uri, *[str(a) for a in argv])

    def ok(self, *argv) -> str:
        res = self(*argv)
        assert res.status == 0, (argv, res)
        return res.out

    def state(self) -> str:
        return self.ok("domstate", NAME, "--reason").strip()

    def wait_ready(self, timeout: float = 90.0) -> None:
        log = self.rundir / "console.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if log.exists() and guest_ready(log.read_bytes(), self.guest["ready_line"]):
                return
            time.sleep(0.05)
        raise AssertionError("the guest did not get ready")

    def sh(self, cmd: str, timeout: float = 60.0) -> str:
        """Run a shell command in the guest over its serial console; its output."""
        st = json.loads((self.rundir / "state.json").read_text())
        fd = os.open(st["console_pty"], os.O_RDWR | os.O_NOCTTY)
        try:
            tty.setraw(fd)
            n = int.from_bytes(os.urandom(3), "big")
            begin, end = f"B{n + 1}B", f"E{n + 1}E"
            os.write(fd, f"\necho B$(({n}+1))B; {cmd}; echo E$(({n}+1))E\n".encode())
            buf = b""
            deadline = time.monotonic() + timeout
            while True:
                text = buf.decode(errors="replace")
                m = re.search(re.escape(begin) + r"\r?\n(.*?)" + re.escape(end), text, re.S)
                if m:
                    return m.group(1).replace("\r\n", "\n")
                left = deadline - time.monotonic()
                if left <= 0:
                    log = (self.rundir / "console.log").read_bytes()[-600:]
                    raise AssertionError(f"no answer from the guest to {cmd!r}: read {text[-300:]!r}; "
                                         f"console.log ends with {log!r}")
                if select.select([fd], [], [], min(left, 5.0))[0]:
                    buf += os.read(fd, 65536)
                elif begin not in text:
                    os.write(fd, b"\n")        # nothing at all for 5 s: nudge the shell
        finally:
            os.close(fd)

    def marker(self) -> str:
        return self.sh("cat /tmp/marker 2>/dev/null || echo none").strip()

    def set_marker(self, value: str) -> None:
        self.sh(f"echo {value} > /tmp/marker")

    def disk_write(self, text: str, sector: int = 64) -> None:
        self.sh(f"printf '{text}' | dd of=/dev/vda bs=512 seek={sector} conv=notrunc,fsync 2>/dev/null")

    def disk_read(self, length: int, sector: int = 64) -> str:
        return self.sh(f"dd if=/dev/vda bs=512 skip={sector} count=1 2>/dev/null | head -c {length} "
                       "| tr -d '\\000'; echo").strip()

    def ensure_running(self) -> None:
        if not self.state().startswith("running"):
            self("destroy", NAME)
            self.ok("start", NAME)
            self.wait_ready()


def guest_ready(log: bytes, line: str) -> bool:
    return line.encode() in log


@pytest.fixture(scope="module")
def box(guest, tmp_path_factory):
    b = Box(tmp_path_factory.mktemp("snapvm"), guest)
    yield b
    if b.vsh_fn is not None:
        b("destroy", NAME)


@pytest.fixture
def vm(box, vsh):
    box.vsh_fn = vsh
    if not (box.root / "store" / "config" / "domains" / f"{NAME}.xml").exists():
        box.ok("define", box.xml)
        box.ok("start", NAME)
        box.wait_ready()
    return box


# -- save / restore ------------------------------------------------------------------------------


def test_save_restore_round_trip(vm):
    vm.ensure_running()
    vm.set_marker("before-save-1")
    target = vm.root / "sv1.save"
    res = vm(*["save", NAME, target])
    assert (res.status, res.out) == (0, f"\nDomain '{NAME}' saved to {target}\n\n"), res
    assert vm.state() == "shut off (saved)"
    assert target.exists() and not list(vm.root.glob(".vsh-save-*"))
    assert vm.ok("save-image-dumpxml", target).startswith("<domain type='qemu'>\n  <name>sv1</name>")
    res = vm("restore", target)
    assert (res.status, res.out) == (0, f"Domain restored from {target}\n\n"), res
    assert vm.state() == "running (restored)"
    assert vm.marker() == "before-save-1"
    # restoring over a running domain is refused and changes nothing
    res = vm("restore", target)
    assert res.status == 1 and "is already active" in res.err
    # a save taken with --paused comes back paused
    vm.set_marker("before-save-2")
    assert vm("save", NAME, target, "--paused", "--bypass-cache").status == 0
    assert vm("restore", target).status == 0
    assert vm.state() == "paused (user)"
    assert vm.ok("resume", NAME)
    assert vm.marker() == "before-save-2"


def test_managedsave_and_start(vm):
    vm.ensure_running()
    vm.set_marker("managed-1")
    res = vm("managedsave", NAME)
    assert (res.status, res.out) == (0, f"\nDomain '{NAME}' state saved by libvirt\n\n"), res
    assert vm.state() == "shut off (saved)"
    assert vm.ok("list", "--all", "--managed-save").splitlines()[2].split() == ["-", NAME, "saved"]
    assert vm.ok("list", "--all").splitlines()[2].endswith("shut off")
    assert "Managed save:   yes" in vm.ok("dominfo", NAME)
    assert "<name>sv1</name>" in vm.ok("managedsave-dumpxml", NAME)
    res = vm("start", NAME)
    assert (res.status, res.out) == (0, f"Domain '{NAME}' started\n\n")
    assert vm.state() == "running (restored)"
    assert vm.marker() == "managed-1"
    assert "Managed save:   no" in vm.ok("dominfo", NAME)
    # --verbose shows virsh's progress on stderr; start --force-boot discards the image
    vm.set_marker("managed-2")
    res = vm("managedsave", NAME, "--verbose")
    assert res.status == 0 and res.err.endswith("Save: [100 %]\n"), res
    (vm.rundir / "console.log").unlink()
    assert vm("start", NAME, "--force-boot").status == 0
    assert vm.state() == "running (booted)"
    assert not (vm.root / "store" / "data" / "managedsave" / f"{NAME}.save").exists()
    vm.wait_ready()
    assert vm.marker() == "none"
    # managedsave-remove: the next start boots afresh
    assert vm("managedsave", NAME).status == 0
    res = vm("managedsave-remove", NAME)
    assert (res.status, res.out) == (0, f"Removed managedsave image for domain '{NAME}'\n\n")
    assert vm.state() == "shut off (saved)" or vm.state().startswith("shut off")
    (vm.rundir / "console.log").unlink()
    vm.ok("start", NAME)
    assert vm.state() == "running (booted)"
    vm.wait_ready()
    assert vm.marker() == "none"


# -- snapshots of the running guest --------------------------------------------------------------


def test_running_snapshot_tree(vm):
    vm.ensure_running()
    for name in vm.ok("snapshot-list", NAME, "--name").split():
        vm.ok("snapshot-delete", NAME, name, "--metadata")
    vm.set_marker("m1")
    vm.disk_write("DISK-1")
    res = vm("snapshot-create-as", NAME, "s1", "first")
    assert (res.status, res.out) == (0, "Domain snapshot s1 created\n"), res
    assert vm.state().startswith("running")
    vm.set_marker("m2")
    vm.disk_write("DISK-2")
    assert vm("snapshot-create-as", NAME, "s2").status == 0
    vm.set_marker("m3")
    vm.disk_write("DISK-3")
    info = vm.ok("snapshot-info", NAME, "s1").splitlines()
    assert info[3:5] == ["State:          running", "Location:       internal"]
    # as with virsh, a running guest reverts without --force (same ABI: loaded in place)
    res = vm("snapshot-revert", NAME, "s1")        # a non-leaf
    assert (res.status, res.out) == (0, "Domain snapshot s1 reverted\n\n"), res
    assert vm.state() == "running (from snapshot)"
    assert vm.marker() == "m1"
    assert vm.disk_read(6) == "DISK-1"
    vm.set_marker("m4")
    assert vm("snapshot-create-as", NAME, "s3").status == 0          # a new branch from s1
    assert vm.ok("snapshot-list", NAME, "--tree") == "s1\n  |\n  +- s2\n  +- s3\n    \n\n"
    # delete the middle node while the guest runs; the others keep their state
    assert vm("snapshot-delete", NAME, "s1").status == 0
    assert vm.ok("snapshot-list", NAME, "--roots", "--name") == "s2\ns3\n\n"
    assert vm("snapshot-revert", NAME, "s2").status == 0
    assert vm.marker() == "m2" and vm.disk_read(6) == "DISK-2"
    # a paused revert target
    assert vm("snapshot-revert", NAME, "s3", "--paused").status == 0
    assert vm.state() == "paused (from snapshot)"
    vm.ok("resume", NAME)
    assert vm.marker() == "m4" and vm.disk_read(6) == "DISK-1"


def test_revert_after_restore(vm):
    vm.ensure_running()
    vm.set_marker("r1")
    assert vm("snapshot-create-as", NAME, "before-save").status == 0
    vm.set_marker("r2")
    target = vm.root / "again.save"
    assert vm("save", NAME, target).status == 0
    assert vm("restore", target).status == 0
    assert vm.marker() == "r2"
    assert vm("snapshot-revert", NAME, "before-save").status == 0
    assert vm.state() == "running (from snapshot)"
    assert vm.marker() == "r1"
    assert vm("snapshot-delete", NAME, "before-save").status == 0


def test_live_external_snapshots_and_middle_delete(vm):
    vm.ensure_running()
    for name in vm.ok("snapshot-list", NAME, "--name").split():
        vm.ok("snapshot-delete", NAME, name)
    vm.disk_write("EXT-0")
    for i, name in enumerate(("e1", "e2", "e3"), 1):
        res = vm("snapshot-create-as", NAME, name, "--disk-only", "--atomic")
        assert (res.status, res.out) == (0, f"Domain snapshot {name} created\n"), res
        vm.disk_write(f"EXT-{i}", sector=64 + 8 * i)
    blk = vm.ok("domblklist", NAME)
    assert re.search(r"vda\s+\S+\.e3$", blk, re.M), blk
    assert vm.ok("snapshot-info", NAME, "e2").splitlines()[3:5] == ["State:          disk-snapshot",
                                                                    "Location:       external"]
    before = set(os.listdir(vm.root))
    res = vm("snapshot-delete", NAME, "e2")               # merges e1's overlay live (block-stream)
    assert res.status == 0, res
    gone = before - set(os.listdir(vm.root))
    assert gone == {"data.e1"}, gone
    assert [vm.disk_read(5, 64 + 8 * i) for i in range(4)] == ["EXT-0", "EXT-1", "EXT-2", "EXT-3"]
    # starting an inactive snapshot over a running domain is one of libvirt's risky reverts
    res = vm("snapshot-revert", NAME, "e1", "--running")
    assert (res.status, res.err) == (1, "error: revert requires force: must respawn qemu to start "
                                        "inactive snapshot\n"), res
    assert vm.state().startswith("running")
    # back to a non-leaf disk-only snapshot: the domain is shut off with that disk state
    assert vm("snapshot-revert", NAME, "e1").status == 0
    assert vm.state().startswith("shut off")
    vm.ok("start", NAME)
    vm.wait_ready()
    assert [vm.disk_read(5, 64 + 8 * i) for i in range(2)] == ["EXT-0", ""]
    assert vm("snapshot-delete", NAME, "e1", "--children").status == 0
    assert vm.ok("snapshot-list", NAME, "--name") == "\n"
