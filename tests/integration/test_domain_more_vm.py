"""Issue 16's later domain commands on one real guest under TCG: event, iothreadadd/del/pin/set,
setvcpu, domblkthreshold, domdirtyrate-calc, memtune, blkiotune, numatune, perf.

One pc guest with 2 vCPUs (3 at most), an iothread and a qcow2 data disk (module fixture ``vm``)
serves the tests in file order; what vsh reports is checked against QEMU (QMP) and the kernel.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("vmguest", ROOT / "tests" / "vmguest.py")
_vmguest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_vmguest)
Guest = _vmguest.Guest


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    m, base, store, env = _vmguest.module_store(tmp_path_factory, "more")
    disk = base / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    devices = f"""<disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='vdb' bus='virtio'/>
    </disk>"""
    xml = base / "mo1.xml"
    text = _vmguest.guest_domain_xml("mo1", m, devices).replace(
        "<vcpu>1</vcpu>", "<vcpu current='2'>3</vcpu>\n  <iothreads>1</iothreads>")
    xml.write_text(text)
    g = Guest(store, "mo1", env)
    g.base, g.disk, g.m = base, disk, m
    g.vsh("define", xml)
    g.vsh("start", "mo1")
    try:
        yield g
    finally:
        g.close_console()
        g.vsh("destroy", "mo1", check=False)


def listen(vm, *args) -> subprocess.Popen:
    """``vsh event ...`` in the background; it has subscribed once it printed nothing yet and the
    supervisor counts it (the caller waits for that with :func:`subscribed`)."""
    return subprocess.Popen([sys.executable, "-m", "vsh", "event", *map(str, args)], env=vm.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def subscribed(vm, before: int) -> None:
    """Wait until the supervisor has one more event subscriber than ``before``."""
    _vmguest.poll(lambda: _subscribers(vm) > before, timeout=30)


def _subscribers(vm) -> int:
    """Connections to the domain's control socket (each event listener holds one)."""
    sock = str(vm.rundir / "control.sock")
    out = subprocess.run(["ss", "-x", "-H"], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if sock in line)


def test_event_lists_virsh_event_types(vm):
    out = vm.vsh("event", "--list").stdout.split()
    assert out[:3] == ["lifecycle", "reboot", "rtc-change"] and "block-threshold" in out and len(out) == 28
    res = vm.vsh("event", check=False)
    assert res.returncode == 1 and "one of --list, --all, or --event <type> is required" in res.stderr


def test_event_prints_lifecycle_events_of_suspend_and_resume(vm):
    before = _subscribers(vm)
    proc = listen(vm, "--domain", "mo1", "--event", "lifecycle", "--loop", "--timeout", "20")
    try:
        subscribed(vm, before)
        vm.vsh("suspend", "mo1")
        vm.vsh("resume", "mo1")
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert out == ("event 'lifecycle' for domain 'mo1': Suspended Paused\n"
                   "event 'lifecycle' for domain 'mo1': Resumed Unpaused\n"
                   "event loop timed out\nevents received: 2\n\n"), (out, err)
    assert proc.returncode == 0


def test_event_one_shot_json_and_timestamp(vm):
    before = _subscribers(vm)
    proc = listen(vm, "mo1", "--all", "--timestamp", "--timeout", "20")
    try:
        subscribed(vm, before)
        vm.vsh("suspend", "mo1")
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
        vm.vsh("resume", "mo1")
    first = out.splitlines()[0]
    assert first.endswith("+0000: event 'lifecycle' for domain 'mo1': Suspended Paused"), out
    assert out.endswith("events received: 1\n\n")
    before = _subscribers(vm)
    proc = listen(vm, "--domain", "mo1", "--event", "reboot", "--json", "--timeout", "20")
    try:
        subscribed(vm, before)
        vm.vsh("reset", "mo1")
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    ev = json.loads(out.splitlines()[0])
    assert ev["domain"] == "mo1" and ev["event"] == "reboot" and ev["timestamp"] > 0
    vm.wait_log(vm.m["ready_line"], count=2)


def test_event_times_out_without_events(vm):
    res = vm.vsh("event", "mo1", "--event", "watchdog", "--timeout", "1", check=False)
    assert res.returncode == 1
    assert res.stdout.startswith("event loop timed out\nevents received: 0\n")
