"""The operations API: URIs reach their driver, and every driver implements every
abstract method of vsh.api (a handle that lacks one cannot be made)."""

from __future__ import annotations

import inspect

import pytest

from vsh import api
from vsh.core.errors import NotFound, VshError
from vsh.core.uri import Uri
from tests.conftest import domain_xml


@pytest.fixture
def conn(tmp_path):
    return api.connect(f"vsh:///session?root={tmp_path}")


def test_uri_parts():
    uri = Uri.parse("qemu+ssh://root@host.example:2222/system?keyfile=/k&no_verify=1")
    assert (uri.scheme, uri.transport, uri.user, uri.host, uri.port, uri.path) == \
        ("qemu", "ssh", "root", "host.example", 2222, "/system")
    assert uri.query == {"keyfile": "/k", "no_verify": "1"}
    assert Uri.parse("vsh+ssh://[::1]:22/session").host == "::1"


def test_uri_default(monkeypatch):
    monkeypatch.setenv("VSH_DEFAULT_URI", "vsh:///session?root=/tmp/x")
    assert Uri.parse(None).text == "vsh:///session?root=/tmp/x"


@pytest.mark.parametrize("text", ["nope:///system", "vsh://otherhost/system", "vsh:///elsewhere", "qemu"])
def test_unknown_uris_are_refused(text):
    with pytest.raises(VshError) as err:
        api.connect(text)
    assert "failed to connect to the hypervisor" in str(err.value)


def test_lookup_of_a_missing_domain(conn):
    with pytest.raises(NotFound):
        conn.lookup_domain("nosuch")


def _abstract_methods(cls) -> set[str]:
    return {name for name, value in inspect.getmembers(cls) if getattr(value, "__isabstractmethod__", False)}


def test_local_driver_implements_everything(conn, tmp_path):
    xml = tmp_path / "d.xml"
    xml.write_text(domain_xml("vm1"))
    from vsh.core.domain import Domain

    conn.store.define(Domain.parse(xml.read_bytes()))
    dom = conn.lookup_domain("vm1")
    handles = [conn, dom, dom.devices, dom.stats, dom.snapshots, dom.display, dom.block_jobs, dom.tuning, dom.agent,
               conn.storage, conn.networks, conn.host,
               conn.installer, conn.guest_disks()]
    for handle in handles:
        assert not _abstract_methods(type(handle)), f"{type(handle).__name__} lacks {_abstract_methods(type(handle))}"
    info = dom.info()
    assert (info["name"], info["state"], info["id"]) == ("vm1", "shut off", None)
    assert [d["name"] for d in conn.list_domains()] == ["vm1"]
