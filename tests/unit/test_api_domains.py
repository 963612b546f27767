"""The definitions and devices of the operations API (vsh.api.domains, vsh.api.devices) called
directly, as a front end other than the shell would: plain arguments in, plain data out."""

from __future__ import annotations

import json

import pytest

from vsh import api
from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, XMLError
from tests.conftest import domain_xml

UUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


@pytest.fixture
def conn(vsh_env):
    return api.connect(vsh_env.uri)


@pytest.fixture
def vm1(conn):
    return conn.define_xml(domain_xml("vm1", uuid=UUID, title="first"))


def run(vsh_env, name: str, id: int) -> None:
    """Pretend a supervisor runs ``name`` with ``id`` (state.json naming this live process)."""
    from vsh.core.store import boot_id

    rundir = vsh_env.store / "run" / name
    rundir.mkdir(parents=True, mode=0o700)
    (rundir / "state.json").write_text(json.dumps({"state": "running", "reason": "booted", "id": id,
                                                   "qemu_pid": __import__("os").getpid(), "boot_id": boot_id()}))
    (rundir / "live.xml").write_text((vsh_env.domains / f"{name}.xml").read_text())


def test_define_returns_a_handle(conn, vm1):
    assert (vm1.name, vm1.uuid(), vm1.id) == ("vm1", UUID, None)
    assert vm1.state() == ("shut off", "unknown")
    assert "<title>first</title>" in vm1.xml(inactive=True)
    with pytest.raises(XMLError):
        conn.define_xml(domain_xml("other", uuid=UUID))     # the UUID is vm1's


def test_lookups_by_id_and_uuid(conn, vm1, vsh_env):
    assert conn.lookup_domain_by_uuid(UUID.upper()).name == "vm1"
    with pytest.raises(NotFound, match="failed to get domain '7'"):
        conn.lookup_domain_by_id(7)
    run(vsh_env, "vm1", 7)
    assert conn.lookup_domain_by_id(7).name == "vm1"


def test_list_filters_and_details(conn, vm1, vsh_env):
    conn.define_xml(domain_xml("vm2"))
    conn.lookup_domain("vm2").set_autostart(True)
    run(vsh_env, "vm1", 3)
    names = lambda **kw: [d["name"] for d in conn.list_domains(**kw)]  # noqa: E731
    assert names() == ["vm1", "vm2"]
    assert names(active=True) == ["vm1"] and names(active=False) == ["vm2"]
    assert names(states=["shutoff"]) == ["vm2"] and names(states=["other"]) == []
    assert names(autostart=True) == ["vm2"] and names(autostart=False) == ["vm1"]
    assert names(managed_save=True) == [] and names(snapshot=False) == ["vm1", "vm2"]
    row = conn.list_domains(active=True, details=True)[0]
    assert row == {"name": "vm1", "id": 3, "state": "running", "reason": "booted", "active": True,
                   "persistent": True, "uuid": UUID, "title": "first", "managed_save": False}


def test_undefine_dry_run_changes_nothing(conn, vm1):
    done = vm1.undefine(remove_all_storage=True, dry_run=True)
    assert done["name"] == "vm1" and done["failed"] == []
    assert conn.lookup_domain("vm1").name == "vm1"
    assert vm1.undefine() == {"name": "vm1", "removed": [], "failed": [], "kept": []}
    with pytest.raises(NotFound):
        conn.lookup_domain("vm1")


def test_settings(conn, vm1):
    assert vm1.vcpu_counts() == {"config": {"maximum": 1, "current": 1}, "live": None}
    assert vm1.set_vcpus(2, maximum=True, config=True) == {"live": False, "config": True}
    assert vm1.set_vcpus(2, config=True) == {"live": False, "config": True}
    assert conn.lookup_domain("vm1").vcpu_counts()["config"] == {"maximum": 2, "current": 2}
    with pytest.raises(OperationInvalid, match="domain is not running"):
        vm1.set_memory(65536)                               # no flag: live
    assert vm1.set_max_memory(131072) == {"live": False, "config": True}
    with pytest.raises(InvalidArgument):
        vm1.set_memory(0, config=True)
    vm1.set_metadata("a\nb")
    assert vm1.metadata() == "a\nb" and vm1.metadata(title=True) == "first"
    with pytest.raises(InvalidArgument):
        vm1.set_metadata("a\nb", title=True)
    vm1.rename("vm3")
    assert vm1.name == "vm3" and conn.lookup_domain("vm3").uuid() == UUID


def test_devices_round_trip(conn, vm1):
    disk = "<disk type='file' device='cdrom'><target dev='sdb' bus='sata'/></disk>"
    done = vm1.devices.attach(disk, config=True)
    assert (done["live"], done["config"], done["device"]) == (False, True, "disk")
    assert [d["target"] for d in vm1.block_devices(inactive=True)][-1] == "sdb"
    media = "<disk type='file' device='cdrom'><source file='/isos/a.iso'/><target dev='sdb'/></disk>"
    assert vm1.devices.change_media("sdb", media) == {"live": False, "config": True}   # no flag: current
    assert [d["source"] for d in vm1.block_devices()][-1] == "/isos/a.iso"
    assert vm1.devices.update(disk, config=True)["target"] == "sdb"                   # no <source>: eject
    assert [d["source"] for d in vm1.block_devices()][-1] is None
    nic = vm1.devices.attach("<interface type='user'/>", config=True)
    assert "<mac address=" in nic["xml"]                                               # filled in once
    assert vm1.interfaces()[-1]["type"] == "user"
    assert vm1.devices.detach(nic["xml"], config=True) == {"live": False, "config": True}
    with pytest.raises(NotFound, match="no target device sdx"):
        vm1.devices.detach("<disk><target dev='sdx'/></disk>", config=True)
