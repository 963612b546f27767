"""The tuning commands on one real guest under TCG: vcpupin, emulatorpin, iothreadinfo, schedinfo,
blkdeviotune, domiftune.

One pc guest with 2 vCPUs, an iothread, a qcow2 data disk and a user-mode NIC (module fixture
``vm``) serves the tests; what vsh reports is checked against the kernel (the affinity of QEMU's
threads) and QEMU (QMP query-block, query-iothreads).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

import vmguest as _vmguest

pytestmark = pytest.mark.vm

Guest = _vmguest.Guest

MAC = "52:54:00:12:34:78"
NCPU = os.cpu_count() or 1


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    m, base, store, env = _vmguest.module_store(tmp_path_factory, "tuning")
    disk = base / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    devices = f"""<disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <interface type='user'>
      <mac address='{MAC}'/>
      <model type='virtio'/>
    </interface>"""
    xml = base / "tu1.xml"
    text = _vmguest.guest_domain_xml("tu1", m, devices).replace("<vcpu>1</vcpu>",
                                                                  "<vcpu>2</vcpu>\n  <iothreads>1</iothreads>")
    xml.write_text(text)
    g = Guest(store, "tu1", env)
    g.base, g.disk = base, disk
    g.vsh("define", xml)
    g.vsh("start", "tu1")
    try:
        yield g
    finally:
        g.vsh("destroy", "tu1", check=False)


def _vcpu_threads(vm) -> dict:
    return {c["cpu-index"]: c["thread-id"] for c in vm.qmp("query-cpus-fast")}


def test_vcpupin_sets_the_affinity_of_the_vcpu_thread(vm):
    out = vm.vsh("vcpupin", "tu1").stdout
    whole = "0" if NCPU == 1 else f"0-{NCPU - 1}"
    assert out == f" VCPU   CPU Affinity\n----------------------\n 0      {whole}\n 1      {whole}\n\n"
    vm.vsh("vcpupin", "tu1", "1", "0")
    threads = _vcpu_threads(vm)
    assert os.sched_getaffinity(threads[1]) == {0}
    assert os.sched_getaffinity(threads[0]) == set(range(NCPU))
    assert json.loads(vm.vsh("vcpupin", "tu1", "--json").stdout)[1] == {"vcpu": 1, "cpus": [0]}
    assert "<vcpupin vcpu='1' cpuset='0'/>" in vm.xml()
    assert "vcpupin" not in vm.xml("--inactive")          # live only: the default is --current
    vm.vsh("vcpupin", "tu1", "--vcpu", "0", "--cpulist", "0", "--config")
    assert "<vcpupin vcpu='0' cpuset='0'/>" in vm.xml("--inactive")
    assert os.sched_getaffinity(threads[0]) == set(range(NCPU))
    res = vm.vsh("vcpupin", "tu1", "7", "0", check=False)
    assert res.returncode == 1 and "vcpu 7 is out of range of live cpu count 2" in res.stderr


def test_emulatorpin_pins_qemu_threads_but_not_vcpus_or_iothreads(vm):
    pid = vm.state()["qemu_pid"]
    vm.vsh("vcpupin", "tu1", "1", "r")
    cpu = NCPU - 1
    vm.vsh("emulatorpin", "tu1", str(cpu))
    assert os.sched_getaffinity(pid) == {cpu}
    keep = set(_vcpu_threads(vm).values()) | {t["thread-id"] for t in vm.qmp("query-iothreads")}
    for tid in keep:
        assert os.sched_getaffinity(tid) == set(range(NCPU))
    assert vm.vsh("emulatorpin", "tu1").stdout == \
        f"emulator: CPU Affinity\n----------------------------------\n       *: {cpu}\n\n"
    assert vm.vsh("-q", "emulatorpin", "tu1").stdout == f"{cpu}\n"
    assert "<emulatorpin cpuset=" in vm.xml()


def test_iothreadinfo_shows_qemu_s_iothread(vm):
    threads = vm.qmp("query-iothreads")
    assert [t["id"] for t in threads] == ["iothread1"]
    whole = "0" if NCPU == 1 else f"0-{NCPU - 1}"
    assert vm.vsh("iothreadinfo", "tu1").stdout == \
        f" IOThread ID   CPU Affinity\n-----------------------------\n 1             {whole}\n\n"
    assert json.loads(vm.vsh("iothreadinfo", "tu1", "--config", "--json").stdout) == \
        [{"id": 1, "cpus": list(range(NCPU))}]


def cpu_file(pid: int, v1: str, v2: str) -> str:
    """A file of QEMU's own cgroup in the cpu hierarchy (cgroup v1 name, v2 name)."""
    for group in _vmguest.qemu_cgroups(pid):
        for name in (v1, v2):
            if (group / name).exists():
                return (group / name).read_text().strip()
    raise AssertionError(f"QEMU {pid} has no cgroup with {v1} or {v2}")


def test_schedinfo_config_and_live(vm):
    vm.vsh("schedinfo", "tu1", "--config", "cpu_shares=512")
    out = vm.vsh("schedinfo", "tu1", "--config").stdout
    assert out.startswith("Scheduler      : posix\ncpu_shares     : 512\nvcpu_period    : 0\n")
    assert "<shares>512</shares>" in vm.xml("--inactive")
    pid = vm.state()["qemu_pid"]
    live = vm.vsh("schedinfo", "tu1").stdout        # QEMU's own cgroup (vsh runs as root here)
    assert f"cpu_shares     : {cpu_file(pid, 'cpu.shares', 'cpu.weight')}\n" in live
    vm.vsh("schedinfo", "tu1", "--live", "cpu_shares=300", "global_period=100000", "global_quota=50000")
    assert cpu_file(pid, "cpu.shares", "cpu.weight") == "300"
    assert cpu_file(pid, "cpu.cfs_quota_us", "cpu.max").split()[0] == "50000"
    live = vm.vsh("schedinfo", "tu1").stdout
    assert "cpu_shares     : 300\n" in live and "global_quota   : 50000\n" in live
    vm.vsh("schedinfo", "tu1", "--live", "global_quota=-1")      # the limit lifted
    assert "global_quota   : -1\n" in vm.vsh("schedinfo", "tu1").stdout
    res = vm.vsh("schedinfo", "tu1", "--live", "vcpu_quota=5000", check=False)
    assert res.returncode == 1 and "'vcpu_quota' needs a cgroup per thread" in res.stderr


def test_blkdeviotune_throttles_the_drive_in_qemu(vm):
    out = vm.vsh("blkdeviotune", "tu1", "vdb").stdout
    assert out.startswith("total_bytes_sec: 0\nread_bytes_sec : 0\n")
    assert "group_name     : \n" in out
    vm.vsh("blkdeviotune", "tu1", "vdb", "--total-iops-sec", "200", "--read-bytes-sec", "1M")
    entry = next(b for b in vm.qmp("query-block") if (b.get("inserted") or {}).get("file") == str(vm.disk))
    assert entry["inserted"]["iops"] == 200 and entry["inserted"]["bps_rd"] == 1 << 20
    data = json.loads(vm.vsh("blkdeviotune", "tu1", "vdb", "--json").stdout)
    assert data["total_iops_sec"] == 200 and data["read_bytes_sec"] == 1 << 20
    assert "<total_iops_sec>200</total_iops_sec>" in vm.xml()
    vm.vsh("blkdeviotune", "tu1", "vdb", "--write-iops-sec", "50")      # replaces the iops group only
    entry = next(b for b in vm.qmp("query-block") if (b.get("inserted") or {}).get("file") == str(vm.disk))
    assert (entry["inserted"]["iops"], entry["inserted"]["iops_wr"], entry["inserted"]["bps_rd"]) == (0, 50, 1 << 20)
    vm.vsh("blkdeviotune", "tu1", "vdb", "--total-bytes-sec", "10M", "--config")
    assert "<total_bytes_sec>10485760</total_bytes_sec>" in vm.xml("--inactive")
    res = vm.vsh("blkdeviotune", "tu1", "vdb", "--total-iops-sec", "5", "--read-iops-sec", "2", check=False)
    assert res.returncode == 1 and res.stderr.startswith("error: Unable to change block I/O throttle\n")


def test_domiftune_writes_the_config_and_refuses_live(vm):
    res = vm.vsh("domiftune", "tu1", MAC, "--inbound", "100", check=False)
    assert res.returncode == 1
    assert res.stderr.startswith("error: Unable to set interface parameters\nerror: operation not supported: "
                                 "setting bandwidth on a running domain needs tc shaping")
    vm.vsh("domiftune", "tu1", MAC, "--inbound", "100,200,300", "--outbound", "50", "--config")
    assert "<inbound average='100' peak='200' burst='300'/>" in vm.xml("--inactive")
    out = vm.vsh("domiftune", "tu1", MAC, "--config").stdout
    assert out == ("inbound.average: 100\ninbound.peak   : 200\ninbound.burst  : 300\ninbound.floor  : 0\n"
                   "outbound.average: 50\noutbound.peak  : 0\noutbound.burst : 0\n\n")
    assert vm.vsh("domiftune", "tu1", MAC).stdout.startswith("inbound.average: 0\n")     # live: none


def test_a_start_applies_the_pinning_and_io_limits_of_the_definition(vm):
    vm.vsh("emulatorpin", "tu1", "0", "--config")
    vm.vsh("destroy", "tu1")
    vm.vsh("start", "tu1")
    threads = _vcpu_threads(vm)
    assert os.sched_getaffinity(threads[0]) == {0}                # <vcpupin vcpu='0' cpuset='0'/>
    assert os.sched_getaffinity(threads[1]) == set(range(NCPU))
    assert os.sched_getaffinity(vm.state()["qemu_pid"]) == {0}     # <emulatorpin cpuset='0'/>
    entry = next(b for b in vm.qmp("query-block") if (b.get("inserted") or {}).get("file") == str(vm.disk))
    assert entry["inserted"]["bps"] == 10 << 20                  # <iotune><total_bytes_sec>
    assert vm.vsh("blkdeviotune", "tu1", "vdb").stdout.startswith("total_bytes_sec: 10485760\n")
