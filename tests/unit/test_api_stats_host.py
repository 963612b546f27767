"""The statistics (dom.stats) and host (conn.host) handles of the API: plain, serialisable
data, and the errors virsh words, without a running guest (tests/integration/
test_hotplug_stats_vm.py runs them against real guests through the commands)."""

from __future__ import annotations

import json
import os

import pytest

from vsh import api
from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, Unsupported


@pytest.fixture
def conn(tmp_path, make_xml):
    conn = api.connect(f"vsh:///session?root={tmp_path / 'store'}")
    from vsh.core.domain import Domain

    conn.store.define(Domain.parse(make_xml("vm1", vcpu="<vcpu cpuset='0'>2</vcpu>", devices=(
        "<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/></disk>"
        "<memballoon model='virtio'/>")).encode()))
    return conn


def test_stats_of_a_shut_off_domain_are_plain_data(conn):
    stats = conn.lookup_domain("vm1").stats
    data = stats.domain_stats()
    assert list(data)[:2] == ["state.state", "state.reason"]
    assert data["state.state"] == 5 and data["vcpu.current"] == 2 and data["block.count"] == 1
    assert "cpu.time" not in data and "net.count" not in data
    assert stats.domain_stats(["vcpu"]) == {"vcpu.current": 2, "vcpu.maximum": 2}
    assert stats.vcpu_info() == [{"vcpu": n, "cpu": None, "state": None, "cpu_time_ns": None, "affinity": [0]}
                                 for n in range(2)]
    assert stats.block_info_all() == [{"target": "hdc", "capacity": 0, "allocation": 0, "physical": 0}]
    assert stats.block_info("hdc") == stats.block_info_all()[0]
    json.dumps([data, stats.vcpu_info(), stats.block_info_all()])


def test_stats_that_need_the_running_domain(conn):
    stats = conn.lookup_domain("vm1").stats
    for call in (stats.memory_stats, stats.cpu_times, stats.block_stats, lambda: stats.block_stats("hdc"),
                 lambda: stats.interface_stats("net0"), stats.interface_addresses,
                 lambda: stats.interface_addresses("arp"), lambda: stats.interface_addresses("agent"),
                 stats.hostname):
        with pytest.raises(OperationInvalid, match="domain is not running"):
            call()
    agent = conn.lookup_domain("vm1").agent
    for call in (agent.fs_info, agent.get_time, agent.guest_vcpus, lambda: agent.guest_info(("os",))):
        with pytest.raises(OperationInvalid, match="domain is not running"):
            call()
    with pytest.raises(InvalidArgument, match="Unknown data source 'dns'"):
        stats.hostname("dns")
    with pytest.raises(InvalidArgument, match="Unknown data source 'dns'"):
        stats.interface_addresses("dns")
    with pytest.raises(InvalidArgument, match="invalid path vdz not assigned to domain"):
        stats.block_info("vdz")


def test_memory_stats_period_in_the_definition(conn):
    dom = conn.lookup_domain("vm1")
    assert dom.stats.set_memory_stats_period(7) == {"live": False, "config": True}
    assert "<stats period='7'/>" in conn.store.config_path("vm1").read_text().replace('"', "'")
    with pytest.raises(OperationInvalid, match="domain is not running"):
        dom.stats.set_memory_stats_period(3, live=True)


def test_host_facts(conn):
    host = conn.host
    assert host.hostname() == os.uname().nodename
    assert host.cpu_count() == (os.cpu_count() or 1)
    assert set(host.node_info()) >= {"CPU model", "CPU(s)", "Memory size"}
    assert isinstance(host.hypervisor_version(), (str, type(None)))
    with pytest.raises(InvalidArgument, match="architecture 'aarch64' is not supported"):
        host.domain_capabilities_xml(arch="aarch64")
    with pytest.raises(InvalidArgument, match="unknown virttype 'xen'"):
        host.domain_capabilities_xml(virttype="xen")


def test_domxml_to_native_takes_text_or_a_domain(conn, make_xml):
    host = conn.host
    by_name = host.domxml_to_native("qemu-argv", domain="vm1")
    assert by_name[0].endswith("qemu-system-x86_64") and "guest=vm1,debug-threads=on" in by_name
    by_text = host.domxml_to_native("qemu-argv", xml=make_xml("vm2"))
    assert "guest=vm2,debug-threads=on" in by_text
    json.dumps(by_text)
    with pytest.raises(InvalidArgument, match="unsupported config type xen-xm"):
        host.domxml_to_native("xen-xm", domain="vm1")
    for kwargs in ({}, {"domain": "vm1", "xml": make_xml("vm2")}):
        with pytest.raises(InvalidArgument, match="exactly one of"):
            host.domxml_to_native("qemu-argv", **kwargs)
    with pytest.raises(NotFound):
        host.domxml_to_native("qemu-argv", domain="nosuch")
