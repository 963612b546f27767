"""Disk I/O errors in a real guest under TCG, as libvirt reports them.

The guest's two data disks are qcow2 images on a 3 MiB tmpfs, mounted in a mount namespace the
test makes (QEMU is started from inside it, so the host never sees the mount). The guest writes
until the tmpfs is full: the disk with ``error_policy='report'`` hands the guest the error and the
domain keeps running; the one with ``error_policy='stop'`` pauses it. Checked: the io-error and
io-error-reason events (the disk's source and alias, the action, ``enospc`` where QEMU says it),
the lifecycle event and domstate's reason of the pause, and domblkerror.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

import vmguest as _vmguest

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    m, base, store, env = _vmguest.module_store(tmp_path_factory, "ioerr")
    small = base / "small"
    small.mkdir()
    script = (f"mount -t tmpfs -o size=3m vsh-ioerr {small} && "
              f"qemu-img create -q -f qcow2 {small}/report.qcow2 64M && "
              f"qemu-img create -q -f qcow2 {small}/stop.qcow2 64M && echo ready && exec sleep 3600")
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "ready\n", "the tmpfs for the disks could not be made"
        devices = "".join(f"""<disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' error_policy='{policy}'/>
      <source file='{small}/{policy}.qcow2'/>
      <target dev='{dev}' bus='virtio'/>
    </disk>""" for policy, dev in (("report", "vdb"), ("stop", "vdc")))
        xml = base / "io1.xml"
        xml.write_text(_vmguest.guest_domain_xml("io1", m, devices))
        g = _vmguest.Guest(store, "io1", env, prefix=("nsenter", f"--mount=/proc/{holder.pid}/ns/mnt"))
        g.small = small
        with g.running(xml, m["ready_line"]):
            yield g
    finally:
        holder.kill()
        holder.wait()


def listen(vm) -> subprocess.Popen:
    """``vsh event io1 --all --loop`` in the background, subscribed, its output going to a file."""
    out = vm.small.parent / f"events-{time.monotonic_ns()}.txt"
    before = _vmguest.subscribers(vm)
    proc = _vmguest.listen(vm, "io1", "--all", "--loop", "--timeout", "90", stdout=open(out, "w"))
    proc.out = out
    _vmguest.subscribed(vm, before)
    return proc


def lines_until(proc: subprocess.Popen, wanted: list[str], timeout: float = 90) -> list[str]:
    """The listener's lines once all of ``wanted`` came (it is interrupted then) or it ended."""
    def lines():
        return proc.out.read_text().splitlines()

    try:
        _vmguest.poll(lambda: all(w in lines() for w in wanted) or proc.poll() is not None, timeout=timeout)
    finally:
        proc.send_signal(signal.SIGINT)
        _vmguest.ended(proc)
    return lines()


def test_report_policy_hands_the_error_to_the_guest_and_says_so(vm):
    proc = listen(vm)
    try:
        out = vm.sh("dd if=/dev/zero of=/dev/vda bs=64k count=128 conv=fsync 2>&1; echo rc=$?", timeout=120)
    except BaseException:
        proc.kill()
        raise
    path = f"{vm.small}/report.qcow2"
    wanted = [f"event 'io-error' for domain 'io1': {path} (virtio-disk1) report",
              # QEMU says whether the disk is full only where it keeps an I/O status (stop policies):
              # libvirt's reason is empty here
              f"event 'io-error-reason' for domain 'io1': {path} (virtio-disk1) report due to "]
    seen = lines_until(proc, wanted)
    assert "rc=0" not in out, out                      # the guest's dd saw the error
    assert all(w in seen for w in wanted), seen
    assert not [line for line in seen if "lifecycle" in line], seen
    assert vm.vsh("domstate", "io1", "--reason").stdout == "running (booted)\n\n"
    assert vm.vsh("domblkerror", "io1").stdout == "No errors found\n\n"  # QEMU keeps no status for 'report'


def test_stop_policy_pauses_the_guest_with_the_reason(vm):
    proc = listen(vm)
    try:
        vm.sh("echo start", timeout=30)
        os.write(vm.pty, b"dd if=/dev/zero of=/dev/vdb bs=64k count=64 conv=fsync\n")   # the guest stops in it
    except BaseException:
        proc.kill()
        raise
    path = f"{vm.small}/stop.qcow2"
    wanted = [f"event 'io-error' for domain 'io1': {path} (virtio-disk2) pause",
              f"event 'io-error-reason' for domain 'io1': {path} (virtio-disk2) pause due to enospc",
              "event 'lifecycle' for domain 'io1': Suspended I/O Error"]
    seen = lines_until(proc, wanted)
    assert all(w in seen for w in wanted), seen
    assert vm.vsh("domstate", "io1", "--reason").stdout == "paused (I/O error)\n\n"
    assert vm.vsh("domblkerror", "io1").stdout == "vdc: no space\n\n"
    assert vm.qmp("query-status")["status"] == "io-error"
