"""Block jobs on a running guest (TCG), through the commands: blockresize, blockpull,
blockcommit, blockcopy, blockjob, domblkerror, domjobinfo, domjobabort.

One guest (the cached test kernel + busybox initramfs, microvm) with a qcow2 data disk is
shared by the tests of this module, which run in order and build on each other's chains.
Run with ``flock /tmp/vsh-vm.lock``.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

import vmguest as VMGUEST

pytestmark = pytest.mark.vm

NAME = "bj1"


@pytest.fixture(scope="module")
def guest():
    found = VMGUEST.manifest()
    if not found:
        pytest.skip("no test guest (scripts/build-test-guest)")
    return found


class Box:
    def __init__(self, root: Path, guest: dict):
        self.root = root
        self.uri = f"vsh:///session?root={root / 'store'}"
        self.rundir = root / "store" / "run" / NAME
        self.disk = root / "data.qcow2"
        self.guest = guest
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(self.disk), "32M"], check=True)
        kernel = guest.get("vmlinux") or guest["kernel"]
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
        self.console = None

    def __call__(self, *argv):
        return self.vsh_fn("-c", self.uri, *[str(a) for a in argv])

    def ok(self, *argv) -> str:
        res = self(*argv)
        assert res.status == 0, (argv, res)
        return res.out

    def wait_ready(self) -> None:
        self.console = VMGUEST.Guest(self.root / "store", NAME, {})
        self.console.wait_log(self.guest["ready_line"], timeout=120.0)

    def sh(self, cmd: str) -> str:
        """Run a shell command in the guest over its serial console; its output."""
        return self.console.sh(cmd, timeout=120.0)

    def disk_el(self, inactive: bool = False) -> str:
        xml = self.ok("dumpxml", NAME, *(["--inactive"] if inactive else []))
        return re.search(r"<disk .*?</disk>", xml, re.S).group(0)

    def info(self, path) -> dict:
        out = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)], check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out)


@pytest.fixture(scope="module")
def box(guest, tmp_path_factory):
    b = Box(tmp_path_factory.mktemp("blockjobs"), guest)
    yield b
    if b.console is not None:
        b.console.close_console()
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


def test_blockresize_live(vm):
    res = vm("blockresize", NAME, "vda", "48M")
    assert (res.status, res.out) == (0, "Block device 'vda' is resized\n"), res
    assert vm.info(vm.disk)["virtual-size"] == 48 << 20
    res = vm("blockresize", NAME, "vdz", "1G")
    assert res.status == 1
    assert res.err == ("error: Failed to resize block device 'vdz'\n"
                       "error: invalid argument: disk 'vdz' not found in domain\n")


def test_domblkerror_and_no_job(vm):
    assert vm("domblkerror", NAME).out == "No errors found\n\n"
    assert vm("blockjob", NAME, "vda", "--info").out == "No current block job for vda\n"
    assert vm("blockjob", NAME, "vda").out == "No current block job for vda\n"
    assert vm("domjobinfo", NAME).out == "Job type:         None        \n\n"
    res = vm("domjobabort", NAME)
    assert res.status == 1 and res.err == "error: Requested operation is not valid: no job is active on the domain\n"
    res = vm("blockjob", NAME, "vda", "--abort")
    assert res.err == "error: invalid argument: disk vda does not have an active block job\n"


def test_blockpull_keeps_snapshot_images(vm):
    vm.sh("printf pulled-data | dd of=/dev/vda bs=512 seek=64 conv=notrunc,fsync 2>/dev/null")
    vm.ok("snapshot-create-as", NAME, "s1", "--disk-only")
    overlay = vm.root / "data.s1"
    assert f"<source file='{vm.disk}'/>" in vm.disk_el()
    res = vm("blockpull", NAME, "vda", "--wait", "--verbose")
    assert (res.status, res.out) == (0, "\nPull complete\n"), res
    assert res.err.endswith("\rBlock Pull: [100 %]"), res
    live = vm.disk_el()
    assert f"<source file='{overlay}'/>" in live and str(vm.disk) not in live, live
    assert str(vm.disk) not in vm.disk_el(inactive=True)
    assert "backing-filename" not in vm.info(overlay)
    # the snapshot still names the image it froze, and the image is still there
    assert str(vm.disk) in vm.ok("snapshot-dumpxml", NAME, "s1") and vm.disk.exists()
    assert vm.ok("snapshot-list", NAME, "--name") == "s1\n\n"
    assert "pulled-data" in vm.sh("dd if=/dev/vda bs=512 skip=64 count=1 2>/dev/null | head -c 11; echo")


def test_blockcommit_active_pivot_delete(vm):
    overlay = vm.root / "data.s1"
    vm.ok("snapshot-create-as", NAME, "s2", "--disk-only", "--no-metadata")
    top = vm.root / "data.s2"
    assert f"<source file='{top}'/>" in vm.disk_el()
    vm.sh("printf committed | dd of=/dev/vda bs=512 seek=80 conv=notrunc,fsync 2>/dev/null")
    res = vm("blockcommit", NAME, "vda", "--active", "--pivot", "--verbose", "--delete")
    assert (res.status, res.out) == (0, "\nSuccessfully pivoted\n"), res
    assert res.err.endswith("\rBlock commit: [100 %]"), res
    assert f"<source file='{overlay}'/>" in vm.disk_el() and str(top) not in vm.disk_el()
    assert f"<source file='{overlay}'/>" in vm.disk_el(inactive=True)
    assert not top.exists()
    assert vm("blockjob", NAME, "vda", "--info").out == "No current block job for vda\n"
    assert "committed" in vm.sh("dd if=/dev/vda bs=512 skip=80 count=1 2>/dev/null | head -c 9; echo")


def test_blockcommit_refuses_an_image_a_snapshot_keeps(vm):
    overlay = vm.root / "data.s1"
    vm.ok("snapshot-create-as", NAME, "s3", "--disk-only")
    res = vm("blockcommit", NAME, "vda", "--active", "--wait")
    assert res.status == 1
    assert res.err.startswith(f"error: Requested operation is not valid: image '{overlay}' is kept by snapshot "
                              "'s3' and cannot be written\n"), res
    assert vm("blockcommit", NAME, "vda", "--wait").err == \
        "error: invalid argument: commit of 'vda' active layer requires active flag\n"
    assert vm("blockpull", NAME, "vda", "--verbose").err == "error: Option --wait is required by option --verbose\n"
    # a pull without --wait: the job runs on; blockjob sees it end and records the chain
    res = vm("blockpull", NAME, "vda")
    assert (res.status, res.out) == (0, "Block Pull started\n"), res
    deadline = time.monotonic() + 120
    while vm("blockjob", NAME, "vda").out != "No current block job for vda\n":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert str(overlay) not in vm.disk_el()


def test_blockcopy_pivot(vm):
    dest = vm.root / "copy.qcow2"
    res = vm("blockcopy", NAME, "vda", "--dest", dest, "--wait", "--verbose", "--pivot")
    assert (res.status, res.out) == (0, "\nSuccessfully pivoted\n"), res
    assert res.err.endswith("\rBlock Copy: [100 %]"), res
    assert f"<source file='{dest}'/>" in vm.disk_el() and f"<source file='{dest}'/>" in vm.disk_el(inactive=True)
    assert "backing-filename" not in vm.info(dest)
    assert "committed" in vm.sh("dd if=/dev/vda bs=512 skip=80 count=1 2>/dev/null | head -c 9; echo")
    res = vm("blockcopy", NAME, "vda", "--dest", dest)
    assert res.status == 1 and "exists; use --reuse-external" in res.err


def test_blockcopy_slow_job_info_bandwidth_and_abort(vm):
    vm.sh("dd if=/dev/urandom of=/dev/vda bs=1M count=8 conv=fsync 2>/dev/null")
    before = vm.disk_el()
    dest = vm.root / "slow.qcow2"
    res = vm("blockcopy", NAME, "vda", "--dest", dest, "--bandwidth", "1")
    assert (res.status, res.out) == (0, "Block Copy started\n"), res
    res = vm("blockjob", NAME, "vda", "--info")
    assert res.out == "    Bandwidth limit: 1048576 bytes/s (1.000 MiB/s)\n\n", res
    assert re.fullmatch(r"\rBlock Copy: \[ *\d+ %\]", res.err), res
    assert vm.ok("blockjob", NAME, "vda", "--bandwidth", "32768", "--bytes") == "\n"     # slow: stays running
    raw = vm.ok("blockjob", NAME, "vda", "--raw", "--bytes")
    assert re.fullmatch(r" type=Block Copy\n bandwidth=32768\n cur=\d+\n end=\d+\n\n", raw), raw
    data = json.loads(vm.ok("blockjob", NAME, "vda", "--json"))
    assert data["job"]["type"] == "copy" and data["job"]["bandwidth"] == 32768
    info = vm.ok("domjobinfo", NAME)
    assert info.startswith("Job type:         Unbounded   \nOperation:        Unknown     \nTime elapsed:     "), info
    assert "\nData total:       " in info
    res = vm("blockcommit", NAME, "vda", "--active")
    assert res.err == "error: block copy still active: disk 'vda' already in active block job\n", res
    # domjobabort cancels it (running or mirroring): the disk keeps its image
    assert vm("domjobabort", NAME).status == 0
    assert vm("blockjob", NAME, "vda", "--info").out == "No current block job for vda\n"
    assert vm.disk_el() == before
    assert vm.ok("domjobinfo", NAME) == "Job type:         None        \n\n"
