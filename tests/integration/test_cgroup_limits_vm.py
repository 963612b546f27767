"""memtune, blkiotune and restrictive numatune on QEMU's own cgroups (vsh/kvm/cgroup.py,
vsh/kvm/cgtune.py), with a real TCG guest started paused: the definition's limits are in the
files of the groups QEMU is in at start, the live commands change those files and print
virsh's text, and the groups are gone after destroy.  On a cgroup v1 host (as here) the
groups are in the memory, blkio and cpuset hierarchies; on v2 in the unified one.

Needs root (vsh makes QEMU's groups only then) and hierarchies that accept a child group;
the test says so and skips otherwise.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import vmguest
from tests.conftest import block_device
from vsh.kvm import cgroup

pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86_64"),
              pytest.mark.skipif(not all(cgroup.usable(c) for c in ("memory", "blkio", "cpuset")),
                                 reason="vsh makes QEMU memory, blkio and cpuset groups only as root on a host "
                                        "with those hierarchies")]

GIB = 1024 * 1024      # KiB


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return vmguest.module_store(tmp_path_factory, "cglimits")


def _group(pid: int, leaf: str) -> Path:
    """QEMU's own group that has the file ``leaf`` (v1: that controller's hierarchy)."""
    for group in vmguest.qemu_cgroups(pid):
        if (group / leaf).exists():
            return group
    raise AssertionError(f"QEMU {pid} is in no group of its own with {leaf}: {vmguest.qemu_cgroups(pid)}")


def _memtune(g, *args) -> dict:
    out = g.vsh("memtune", g.name, *args).stdout
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def test_memtune_and_restrictive_numatune_at_start_then_live_and_gone_after_destroy(env):
    g = vmguest.defined_guest(env, "cg1", "<memtune><hard_limit unit='KiB'>1048576</hard_limit>"
                                          "<soft_limit unit='MiB'>512</soft_limit>"
                                          "<swap_hard_limit unit='GiB'>2</swap_hard_limit></memtune>\n"
                                          "  <numatune><memory mode='restrictive' nodeset='0'/></numatune>")
    g.vsh("start", "cg1", "--paused")
    pid = g.state()["qemu_pid"]
    groups = vmguest.qemu_cgroups(pid)
    try:
        if (_group(pid, "cgroup.procs") / "memory.max").exists():       # cgroup v2
            mem = _group(pid, "memory.max")
            assert (mem / "memory.max").read_text().strip() == str(GIB * 1024)
            assert (mem / "memory.swap.max").read_text().strip() == str(GIB * 1024)
        else:
            mem = _group(pid, "memory.limit_in_bytes")
            assert (mem / "memory.limit_in_bytes").read_text().strip() == str(GIB * 1024)
            assert (mem / "memory.soft_limit_in_bytes").read_text().strip() == str(512 * 1024 * 1024)
            assert (mem / "memory.memsw.limit_in_bytes").read_text().strip() == str(2 * GIB * 1024)
        assert (mem / "cgroup.procs").read_text().split() == [str(pid)]
        assert g.vsh("memtune", "cg1", "--live").stdout == (
            "hard_limit     : 1048576\nsoft_limit     : 524288\nswap_hard_limit: 2097152\n\n")

        g.vsh("memtune", "cg1", "--live", "--hard-limit", "786432")
        limit = "memory.max" if (mem / "memory.max").exists() else "memory.limit_in_bytes"
        assert (mem / limit).read_text().strip() == str(786432 * 1024)
        assert _memtune(g)["hard_limit"] == "786432"
        assert "<hard_limit unit='KiB'>786432</hard_limit>" in g.xml()
        assert "<hard_limit unit='KiB'>1048576</hard_limit>" in g.xml("--inactive")    # --live only
        g.vsh("memtune", "cg1", "--live", "--hard-limit", "3G", "--swap-hard-limit", "4G")   # both up
        assert _memtune(g) == {"hard_limit": "3145728", "soft_limit": "524288", "swap_hard_limit": "4194304"}
        g.vsh("memtune", "cg1", "--soft-limit", "-1")
        assert _memtune(g)["soft_limit"] == "unlimited"
        res = g.vsh("memtune", "cg1", "--hard-limit", "5G", check=False)
        assert res.returncode == 1 and "must be lower than or equal to swap_hard_limit" in res.stderr

        cpuset = _group(pid, "cpuset.mems")
        assert (cpuset / "cpuset.mems").read_text().strip() == "0"
        assert g.vsh("numatune", "cg1").stdout == "numa_mode      : restrictive\nnuma_nodeset   : 0\n\n"
        g.vsh("numatune", "cg1", "--live", "--nodeset", "0")
        res = g.vsh("numatune", "cg1", "--live", "--mode", "strict", check=False)
        assert res.returncode == 1 and "can't change numatune mode for running domain" in res.stderr
    finally:
        g.vsh("destroy", "cg1")
    assert not [d for d in groups if d.exists()], groups


def test_blkiotune_live_on_qemus_blkio_group(env):
    g = vmguest.defined_guest(env, "cg2", "")
    g.vsh("start", "cg2", "--paused")
    pid = g.state()["qemu_pid"]
    groups = vmguest.qemu_cgroups(pid)
    try:
        v2 = (_group(pid, "cgroup.procs") / "io.max").exists()
        blkio = _group(pid, "io.max" if v2 else "blkio.throttle.read_bps_device")
        weight = [f for f in ("blkio.bfq.weight", "blkio.weight", "io.bfq.weight", "io.weight")
                  if (blkio / f).exists()]
        res = g.vsh("blkiotune", "cg2", "--live", "--weight", "500", check=False)
        if weight:
            assert res.returncode == 0, res.stderr
            assert "500" in (blkio / weight[0]).read_text()
            assert g.vsh("blkiotune", "cg2").stdout.startswith("weight         : 500\n")
        else:           # this host: no CFQ/BFQ, so the v1 blkio controller has no weight file
            assert res.returncode == 1
            assert "blkio device weight is valid only for bfq or cfq scheduler" in res.stderr, res.stderr
            assert "<blkiotune>" not in g.xml()         # nothing half-written
        dev = block_device()
        if dev is None:
            pytest.skip("no block device node here for the per-device throttles")
        rdev = os.stat(dev).st_rdev
        majmin = f"{os.major(rdev)}:{os.minor(rdev)}"
        g.vsh("blkiotune", "cg2", "--live", "--device-read-bytes-sec", f"{dev},1048576",
              "--device-write-iops-sec", f"{dev},50")
        if v2:
            line = next(l for l in (blkio / "io.max").read_text().splitlines() if l.startswith(majmin))
            assert "rbps=1048576" in line and "wiops=50" in line
        else:
            assert f"{majmin} 1048576" in (blkio / "blkio.throttle.read_bps_device").read_text()
            assert f"{majmin} 50" in (blkio / "blkio.throttle.write_iops_device").read_text()
        out = g.vsh("blkiotune", "cg2").stdout
        assert f"device_read_bytes_sec: {dev},1048576\n" in out and f"device_write_iops_sec: {dev},50\n" in out
        g.vsh("blkiotune", "cg2", "--live", "--device-read-bytes-sec", f"{dev},0")
        if not v2:
            assert majmin not in (blkio / "blkio.throttle.read_bps_device").read_text()
        assert "device_read_bytes_sec: \n" in g.vsh("blkiotune", "cg2").stdout
    finally:
        g.vsh("destroy", "cg2")
    assert not [d for d in groups if d.exists()], groups


def test_blkiotune_at_start_applies_throttles_and_refuses_a_weight_the_host_cannot_set(env):
    dev = block_device()
    if dev is None:
        pytest.skip("no block device node here")
    g = vmguest.defined_guest(env, "cg3", f"<blkiotune><device><path>{dev}</path>"
                                          "<read_iops_sec>200</read_iops_sec></device></blkiotune>")
    g.vsh("start", "cg3", "--paused")
    pid = g.state()["qemu_pid"]
    rdev = os.stat(dev).st_rdev
    try:
        blkio = _group(pid, "cgroup.procs")
        for group in vmguest.qemu_cgroups(pid):
            if (group / "blkio.throttle.read_iops_device").exists():
                blkio = group
                limits = (group / "blkio.throttle.read_iops_device").read_text()
                assert f"{os.major(rdev)}:{os.minor(rdev)} 200" in limits
            elif (group / "io.max").exists():
                assert "riops=200" in (group / "io.max").read_text()
        assert (blkio / "cgroup.procs").read_text().split() == [str(pid)]
    finally:
        g.vsh("destroy", "cg3")
    weighted = vmguest.defined_guest(env, "cg4", "<blkiotune><weight>300</weight></blkiotune>")
    res = weighted.vsh("start", "cg4", "--paused", check=False)
    if res.returncode == 0:     # a host whose disks use CFQ or BFQ
        weighted.vsh("destroy", "cg4")
        return
    assert res.stderr.startswith("error: Failed to start domain 'cg4'\nerror: unsupported configuration: cannot "
                                 "apply <blkiotune> to QEMU's cgroup: blkio device weight is valid only for bfq or "
                                 "cfq scheduler"), res.stderr
    assert weighted.vsh("domstate", "cg4").stdout.strip() == "shut off"
