"""What a start does with <numatune>, <memtune>, <blkiotune>, <perf> and <cputune>
(vsh/api/local/starttune.py): the memory policy is QEMU's (checked in /proc/PID/numa_maps), the
CPU weight and bandwidth its cgroup's (memory, I/O and restrictive numatune too:
test_cgroup_limits_vm.py); what vsh cannot apply is refused before QEMU starts, with the element
named. The guests start paused (nothing needs to boot)."""

from __future__ import annotations

import shutil

import pytest

import vmguest

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86_64")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    m, base, store, env = vmguest.module_store(tmp_path_factory, "starttune")
    return m, base, store, env


def test_numatune_strict_binds_qemus_memory(env):
    g = vmguest.defined_guest(env, "nt1", "<numatune><memory mode='strict' nodeset='0'/></numatune>")
    g.vsh("start", "nt1", "--paused")
    try:
        maps = open(f"/proc/{g.state()['qemu_pid']}/numa_maps").read()
        assert " bind:0 " in maps, maps[:2000]
        assert g.vsh("numatune", "nt1", "--config").stdout.splitlines()[:2] == \
            ["numa_mode      : strict", "numa_nodeset   : 0"]
    finally:
        g.vsh("destroy", "nt1")


def test_a_node_the_host_lacks_and_what_vsh_cannot_apply_are_refused(env):
    cases = [("nt2", "<numatune><memory mode='strict' nodeset='63'/></numatune>",
              "NUMA node 63 is unavailable"),
             ("nt3", "<memtune><min_guarantee unit='KiB'>1048576</min_guarantee></memtune>",
              "<memtune><min_guarantee> is an ESX setting"),
             ("nt5", "<numatune><memory mode='strict' nodeset='0'/><memnode cellid='0' mode='restrictive' "
                     "nodeset='0'/></numatune>", "'restrictive' mode is required in memory element"),
             ("nt7", "<cputune><quota>5000</quota></cputune>", "<cputune><quota> needs a cgroup per thread")]
    for name, extra, words in cases:
        g = vmguest.defined_guest(env, name, extra)
        res = g.vsh("start", name, "--paused", check=False)
        assert res.returncode == 1, (name, res.stdout)
        assert res.stderr.startswith(f"error: Failed to start domain '{name}'\nerror: unsupported configuration: ")
        assert words in res.stderr, res.stderr
        assert g.vsh("domstate", name).stdout.strip() == "shut off"
        assert not g.rundir.exists() or not (g.rundir / "qmp.sock").exists()


def test_cputune_weight_and_bandwidth_go_to_qemus_cgroup(env):
    g = vmguest.defined_guest(env, "ct1", "<cputune><shares>2048</shares><global_period>100000</global_period>"
                                          "<global_quota>40000</global_quota></cputune>")
    g.vsh("start", "ct1", "--paused")
    try:
        groups = vmguest.qemu_cgroups(g.state()["qemu_pid"])
        cpu = next(d for d in groups if (d / "cpu.shares").exists() or (d / "cpu.weight").exists())
        if (cpu / "cpu.shares").exists():          # cgroup v1
            assert (cpu / "cpu.shares").read_text().strip() == "2048"
            assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "40000"
        else:
            assert (cpu / "cpu.weight").read_text().strip() == "2048"
            assert (cpu / "cpu.max").read_text().split() == ["40000", "100000"]
        assert "cpu_shares     : 2048\n" in g.vsh("schedinfo", "ct1").stdout
    finally:
        g.vsh("destroy", "ct1")
