"""vsh.api.local.starttune.cgroup_plan: what a start asks the supervisor to set on QEMU's cgroups
from <cputune>, <memtune>, <blkiotune> and restrictive <numatune> (units, unlimited, block
devices as MAJ:MIN), and what it refuses before QEMU starts, saying why. No VMs: the host's
hierarchies are asked through vsh.kvm.cgroup.usable, answered here per test."""

from __future__ import annotations

import os

import pytest

from tests.conftest import block_device
from vsh.api.local import starttune
from vsh.core.domain import Domain
from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm import cgroup


def dom(extra: str) -> Domain:
    return Domain.parse(f"<domain type='qemu'><name>x</name><memory>1048576</memory>{extra}</domain>")


@pytest.fixture
def hierarchies(monkeypatch):
    """The controllers the host offers vsh (all by default)."""
    have = {"cpu", "memory", "blkio", "cpuset"}
    monkeypatch.setattr(cgroup, "usable", lambda controller="cpu", mountinfo=None: controller in have)
    return have


def test_memtune_in_kib_whatever_the_unit_and_unlimited_as_none(hierarchies):
    plan = starttune.cgroup_plan(dom("<memtune><hard_limit unit='MiB'>512</hard_limit>"
                                     "<soft_limit>262144</soft_limit>"
                                     "<swap_hard_limit unit='KiB'>9007199254740991</swap_hard_limit></memtune>"))
    assert plan == {"memory": {"hard_limit": 524288, "soft_limit": 262144, "swap_hard_limit": None}}


def test_memtune_refusals(hierarchies):
    with pytest.raises(InvalidArgument, match="hard_limit tunable value must be lower"):
        starttune.cgroup_plan(dom("<memtune><hard_limit>2048</hard_limit><swap_hard_limit>1024</swap_hard_limit>"
                                  "</memtune>"))
    with pytest.raises(Unsupported, match="min_guarantee"):
        starttune.cgroup_plan(dom("<memtune><min_guarantee>1024</min_guarantee></memtune>"))
    hierarchies.discard("memory")
    with pytest.raises(Unsupported, match=r"<memtune><hard_limit> needs a cgroup of the domain's own with the "
                                          "memory controller"):
        starttune.cgroup_plan(dom("<memtune><hard_limit>2048</hard_limit></memtune>"))


def test_blkiotune_devices_become_maj_min_and_a_path_that_is_no_block_device_is_refused(hierarchies):
    dev = block_device()
    if dev is None:
        pytest.skip("no block device node here")
    rdev = os.stat(dev).st_rdev
    plan = starttune.cgroup_plan(dom(f"<blkiotune><weight>300</weight><device><path>{dev}</path>"
                                     "<read_bytes_sec>1048576</read_bytes_sec><write_iops_sec>0</write_iops_sec>"
                                     "</device></blkiotune>"))
    assert plan == {"blkio": {"weight": 300, "devices": {
        "device_read_bytes_sec": [[f"{os.major(rdev)}:{os.minor(rdev)}", 1048576]]}}}
    with pytest.raises(InvalidArgument, match="must be a block device"):
        starttune.cgroup_plan(dom("<blkiotune><device><path>/dev/null</path><weight>200</weight></device>"
                                  "</blkiotune>"))


def test_restrictive_numatune_is_cpuset_mems_and_no_memory_policy(hierarchies):
    d = dom("<numatune><memory mode='restrictive' nodeset='0'/></numatune>")
    assert starttune.cgroup_plan(d) == {"mems": "0"}
    assert starttune.memory_policy(d) is None
    strict = dom("<numatune><memory mode='strict' nodeset='0'/></numatune>")
    assert starttune.cgroup_plan(strict) == {}
    assert starttune.memory_policy(strict) == {"mode": "strict", "nodes": [0]}
    with pytest.raises(Unsupported, match="'restrictive' mode is required in memory element"):
        starttune.memory_policy(dom("<numatune><memory mode='strict' nodeset='0'/>"
                                    "<memnode cellid='0' mode='restrictive' nodeset='0'/></numatune>"))
    hierarchies.discard("cpuset")
    with pytest.raises(Unsupported, match="numatune mode 'restrictive' needs a cgroup"):
        starttune.cgroup_plan(d)


def test_cputune_goes_in_the_same_plan(hierarchies):
    assert starttune.cgroup_plan(dom("<cputune><shares>2048</shares></cputune>")) == {"cpu": {"shares": 2048}}
    assert starttune.cgroup_plan(dom("")) == {}
