"""Issue 16's later domain commands on one real guest under TCG: event, iothreadadd/del/pin/set,
setvcpu, domblkthreshold, domdirtyrate-calc, memtune, blkiotune, numatune, perf.

One pc guest with 2 vCPUs (3 at most), an iothread and a qcow2 data disk (module fixture ``vm``)
serves the tests in file order; what vsh reports is checked against QEMU (QMP) and the kernel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

import vmguest as _vmguest

pytestmark = pytest.mark.vm

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
    with g.running(xml, m["ready_line"]):
        yield g


def test_event_lists_virsh_event_types(vm):
    out = vm.vsh("event", "--list").stdout.split()
    assert out[:3] == ["lifecycle", "reboot", "rtc-change"] and "block-threshold" in out and len(out) == 27
    res = vm.vsh("event", check=False)
    assert res.returncode == 1 and "one of --list, --all, or --event <type> is required" in res.stderr


def test_event_prints_lifecycle_events_of_suspend_and_resume(vm):
    before = _vmguest.subscribers(vm)
    proc = _vmguest.listen(vm, "--domain", "mo1", "--event", "lifecycle", "--loop", "--timeout", "20")
    try:
        _vmguest.subscribed(vm, before)
        vm.vsh("suspend", "mo1")
        vm.vsh("resume", "mo1")
        out, err = _vmguest.ended(proc)
    finally:
        proc.kill()
    assert out == ("event 'lifecycle' for domain 'mo1': Suspended Paused\n"
                   "event 'lifecycle' for domain 'mo1': Resumed Unpaused\n"
                   "event loop timed out\nevents received: 2\n\n"), (out, err)
    assert proc.returncode == 0


def test_event_one_shot_json_and_timestamp(vm):
    before = _vmguest.subscribers(vm)
    proc = _vmguest.listen(vm, "mo1", "--all", "--timestamp", "--timeout", "20")
    try:
        _vmguest.subscribed(vm, before)
        vm.vsh("suspend", "mo1")
        out, _ = _vmguest.ended(proc)
    finally:
        proc.kill()
        vm.vsh("resume", "mo1")
    first = out.splitlines()[0]
    assert first.endswith("+0000: event 'lifecycle' for domain 'mo1': Suspended Paused"), out
    assert out.endswith("events received: 1\n\n")
    before = _vmguest.subscribers(vm)
    proc = _vmguest.listen(vm, "--domain", "mo1", "--event", "reboot", "--json", "--timeout", "20")
    try:
        _vmguest.subscribed(vm, before)
        vm.vsh("reset", "mo1")
        out, _ = _vmguest.ended(proc)
    finally:
        proc.kill()
    ev = json.loads(out.splitlines()[0])
    assert ev["domain"] == "mo1" and ev["event"] == "reboot" and ev["timestamp"] > 0
    vm.wait_log(vm.m["ready_line"], count=2)
    vm.close_console()          # the shell of the new boot gets a new console


def test_event_times_out_without_events(vm):
    res = vm.vsh("event", "mo1", "--event", "watchdog", "--timeout", "1", check=False)
    assert res.returncode == 1
    assert res.stdout.startswith("event loop timed out\nevents received: 0\n")


def _iothread_ids(vm) -> list[int]:
    return sorted(int(t["id"][8:]) for t in vm.qmp("query-iothreads"))


def test_iothreadadd_pin_set_and_del_live_and_config(vm):
    assert _iothread_ids(vm) == [1]
    assert vm.vsh("iothreadadd", "mo1", "3", "--live", "--config").stdout == "\n"
    assert _iothread_ids(vm) == [1, 3]
    for flags in ((), ("--config",)):
        out = vm.vsh("iothreadinfo", "mo1", *flags).stdout
        assert [line.split()[0] for line in out.splitlines()[2:] if line.strip()] == ["1", "3"], out
    assert "<iothread id='3'/>" in vm.xml("--inactive")
    res = vm.vsh("iothreadadd", "mo1", "3", check=False)
    assert res.stderr == "error: invalid argument: an IOThread is already using iothread_id '3'\n"
    vm.vsh("iothreadpin", "mo1", "3", "0")
    tid = next(t["thread-id"] for t in vm.qmp("query-iothreads") if t["id"] == "iothread3")
    assert os.sched_getaffinity(tid) == {0}
    assert "<iothreadpin iothread='3' cpuset='0'/>" in vm.xml()
    vm.vsh("iothreadset", "mo1", "3", "--poll-max-ns", "12345", "--thread-pool-max", "16")
    got = {p["name"]: vm.qmp("qom-get", {"path": "/objects/iothread3", "property": p["name"]})
           for p in ({"name": "poll-max-ns"}, {"name": "thread-pool-max"})}
    assert got == {"poll-max-ns": 12345, "thread-pool-max": 16}
    vm.vsh("iothreadset", "mo1", "3", "--poll-grow", "2", "--config")
    assert "<poll grow='2'/>" in vm.xml("--inactive")
    res = vm.vsh("iothreadset", "mo1", "3", check=False)
    assert res.stderr == "error: Not enough arguments passed, nothing to set\n"
    vm.vsh("iothreaddel", "mo1", "3", "--live", "--config")
    assert _iothread_ids(vm) == [1]
    assert "iothread id='3'" not in vm.xml() and "iothread id='3'" not in vm.xml("--inactive")
    res = vm.vsh("iothreaddel", "mo1", "3", check=False)
    assert res.stderr == "error: invalid argument: cannot find IOThread '3' in iothreadids list\n"


def test_setvcpu_enables_the_next_vcpu(vm):
    assert len(vm.qmp("query-cpus-fast")) == 2
    res = vm.vsh("setvcpu", "mo1", "1", "--enable", check=False)
    assert res.stderr == "error: invalid argument: vcpu '1' is already in requested state\n"
    res = vm.vsh("setvcpu", "mo1", "7", "--enable", check=False)
    assert res.stderr == "error: invalid argument: vcpu '7' is not present in live config\n"
    res = vm.vsh("setvcpu", "mo1", "2", check=False)
    assert res.stderr == "error: one of --enable, --disable is required\n"
    vm.vsh("setvcpu", "mo1", "2", "--enable")
    assert len(vm.qmp("query-cpus-fast")) == 3
    assert vm.vsh("vcpucount", "mo1", "--live", "--active").stdout.strip() == "3"
    vm.vsh("setvcpu", "mo1", "2", "--enable", "--config")
    assert "<vcpu placement='static'>3</vcpu>" in vm.xml("--inactive")
    res = vm.vsh("setvcpu", "mo1", "2", "--disable", check=False)
    assert res.returncode == 1 and "TCG" in res.stderr          # QEMU 7.2 under TCG: no live unplug


def test_domblkthreshold_fires_a_block_threshold_event(vm):
    res = vm.vsh("domblkthreshold", "mo1", "vdz", "1M", check=False)
    assert res.returncode == 1 and "disk 'vdz' not found" in res.stderr
    vm.vsh("domblkthreshold", "mo1", "vdb", "1M")
    before = _vmguest.subscribers(vm)
    proc = _vmguest.listen(vm, "mo1", "--event", "block-threshold", "--timeout", "60")
    try:
        _vmguest.subscribed(vm, before)
        vm.sh("dd if=/dev/urandom of=/dev/vda bs=1M count=3 seek=1 conv=fsync 2>/dev/null; echo done")  # vdb is the guest's vda
        out, _ = proc.communicate(timeout=90)
    finally:
        proc.kill()
    line = out.splitlines()[0]
    assert line.startswith(f"event 'block-threshold' for domain 'mo1': dev: vdb({vm.disk}) 1048576 "), out
    assert int(line.rsplit(" ", 1)[1]) > 0


def test_domdirtyrate_calc_then_domstats(vm):
    res = vm.vsh("domdirtyrate-calc", "mo1", "--seconds", "1")
    assert res.stdout == "Start to calculate domain's memory dirty rate successfully.\n\n"
    stats = _vmguest.poll(lambda: (lambda s: s if "dirtyrate.calc_status=2" in s else None)(
        vm.vsh("domstats", "mo1", "--dirtyrate").stdout), timeout=30)
    assert "dirtyrate.calc_period=1" in stats and "dirtyrate.megabytes_per_second=" in stats, stats
    res = vm.vsh("domdirtyrate-calc", "mo1", "--seconds", "99", check=False)
    assert res.returncode == 1 and "[1, 60]" in res.stderr


def test_memtune_blkiotune_numatune_perf_on_a_running_domain(vm):
    # QEMU's own memory, blkio and cpuset groups (vsh runs as root here): live values are the
    # groups' (tests/integration/test_cgroup_limits_vm.py changes them)
    assert vm.vsh("memtune", "mo1").stdout == ("hard_limit     : unlimited\nsoft_limit     : unlimited\n"
                                               "swap_hard_limit: unlimited\n\n")
    assert vm.vsh("blkiotune", "mo1").stdout.startswith("weight         : ")
    assert vm.vsh("numatune", "mo1").stdout == "numa_mode      : strict\nnuma_nodeset   : \n\n"
    res = vm.vsh("numatune", "mo1", "--live", "--nodeset", "0", check=False)
    assert res.returncode == 1 and "requires restrictive numa mode" in res.stderr, res.stderr
    vm.vsh("memtune", "mo1", "--hard-limit", "1G", "--config")
    assert "<hard_limit unit='KiB'>1048576</hard_limit>" in vm.xml("--inactive")
    assert vm.vsh("perf", "mo1").stdout.count("disabled") == 22
    vm.vsh("perf", "mo1", "--enable", "task_clock")         # counted by the supervisor (test_perf_vm.py)
    assert "perf.task_clock=" in vm.vsh("domstats", "mo1", "--perf").stdout
    vm.vsh("perf", "mo1", "--disable", "task_clock")
    vm.vsh("perf", "mo1", "--enable", "cpu_cycles", "--config")
    assert "<event name='cpu_cycles' enabled='yes'/>" in vm.xml("--inactive")
    # put them back (a start refuses enabled perf events: tests/integration/test_starttune_vm.py)
    vm.vsh("memtune", "mo1", "--hard-limit", "-1", "--config")
    vm.vsh("perf", "mo1", "--disable", "cpu_cycles", "--config")
    assert "hard_limit" not in vm.xml("--inactive") and "enabled='yes'" not in vm.xml("--inactive")


def test_dompmwakeup_wakes_a_guest_suspended_to_ram(vm):
    res = vm.vsh("dompmwakeup", "mo1", check=False)
    assert res.returncode == 1 and res.stderr.startswith("error: Domain 'mo1' could not be woken up\n"), res.stderr
    before = _vmguest.subscribers(vm)
    proc = _vmguest.listen(vm, "mo1", "--event", "pm-suspend", "--timeout", "60")
    try:
        _vmguest.subscribed(vm, before)
        vm.sh("(sleep 1; echo mem > /sys/power/state) >/dev/null 2>&1 &")
        assert _vmguest.poll(lambda: vm.qmp("query-status")["status"] == "suspended", timeout=60)
        out, _ = _vmguest.ended(proc)
    finally:
        proc.kill()
    assert out.startswith("event 'pm-suspend' for domain 'mo1'\n"), out
    assert vm.vsh("dompmwakeup", "mo1").stdout == "Domain 'mo1' successfully woken up\n\n"
    assert _vmguest.poll(lambda: vm.qmp("query-status")["status"] == "running", timeout=60)
    # the supervisor follows (pmsuspended -> running (event wakeup)) once QEMU's WAKEUP event reaches it
    assert _vmguest.poll(lambda: vm.vsh("domstate", "mo1", "--reason").stdout == "running (event wakeup)\n\n",
                         timeout=30)


def test_event_outlives_the_domain_until_interrupted(vm):
    # as virsh's: a listener for one domain keeps listening after it stops (it may start again)
    before = _vmguest.subscribers(vm)
    proc = _vmguest.listen(vm, "--domain", "mo1", "--event", "lifecycle", "--loop")
    try:
        _vmguest.subscribed(vm, before)
        vm.vsh("destroy", "mo1")
        first = proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        out, _ = _vmguest.ended(proc)
    finally:
        proc.kill()
    assert first == "event 'lifecycle' for domain 'mo1': Stopped Destroyed\n"
    assert out == "event loop interrupted\nevents received: 1\n\n", out
    res = vm.vsh("event", "mo1", "--all", "--timeout", "1", check=False)
    assert res.returncode == 1 and res.stdout.startswith("event loop timed out\nevents received: 0\n")


def test_event_follows_domains_that_start_later(vm):
    # as virsh's: a listener started while no domain runs sees the next one start, pause and stop
    proc = _vmguest.listen(vm, "--all", "--loop", "--timeout", "20")
    try:
        # a start after the listener began counts, even before it is ready to subscribe
        vm.vsh("start", "mo1", "--paused")
        assert _vmguest.poll(lambda: vm.vsh("domstate", "mo1").stdout.strip() == "paused", 30)
        # a domain that came and went before the listener looked is missed, as by virsh's (which
        # registers once connected): destroy it only once the listener follows it
        _vmguest.subscribed(vm, 0)
        vm.vsh("destroy", "mo1")
        out, _ = _vmguest.ended(proc)
    finally:
        proc.kill()
    assert out == ("event 'lifecycle' for domain 'mo1': Started Booted\n"
                   "event 'lifecycle' for domain 'mo1': Suspended Paused\n"
                   "event 'lifecycle' for domain 'mo1': Stopped Destroyed\n"
                   "event loop timed out\nevents received: 3\n\n"), out
