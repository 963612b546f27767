"""The guest-disk API (vsh.api.guestdisks) on the local driver: what needs no disk image.

Reads of real images, through the API and the commands, are in tests/guestfs.
"""

from __future__ import annotations

import pytest

from vsh import api
from vsh.api.local.guestdisks import domain_disks
from vsh.core.errors import InvalidArgument, NotFound
from tests.conftest import domain_xml


def _disk(path, device="disk", fmt=None, target="vda"):
    driver = f"<driver name='qemu' type='{fmt}'/>" if fmt else ""
    source = f"<source file='{path}'/>" if path else ""
    return f"<disk type='file' device='{device}'>{driver}{source}<target dev='{target}' bus='virtio'/></disk>"


def test_domain_disks_are_the_disks_with_a_source_raw_unless_named():
    xml = domain_xml("g", devices="".join([
        _disk("/img/cd.iso", device="cdrom", target="hdc"),
        _disk("/img/a.qcow2", fmt="QCOW2", target="vda"),
        _disk(None, target="vdb"),
        _disk("/img/b.img", device="lun", target="vdc"),
        _disk("/img/c.img", target="vdd")]))
    assert domain_disks(xml) == [("/img/a.qcow2", "qcow2"), ("/img/b.img", "raw"), ("/img/c.img", "raw")]


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(1 << 16))
    return str(path)


def test_add_domain_reads_the_domain_through_the_connection(define, vsh_env, image):
    define("gvm", devices=_disk(image, fmt="raw"))
    uuid = api.connect(vsh_env.uri).lookup_domain("gvm").info()["uuid"]
    g = api.connect(vsh_env.uri).guest_disks()
    assert g.add_domain(uuid) == [image]
    assert g.drives() == [{"path": image, "format": "raw", "readonly": True}]
    assert not g.is_launched() and g.list_device_names() == []
    g.close()


def test_add_domain_errors(define, vsh_env):
    define("nodisk")
    g = api.connect(vsh_env.uri).guest_disks()
    with pytest.raises(NotFound, match="failed to get domain 'nosuch'"):
        g.add_domain("nosuch")
    with pytest.raises(InvalidArgument, match="domain 'nodisk' has no disks with a source"):
        g.add_domain("nodisk")
    assert g.drives() == []


def test_drives_take_the_sessions_access_unless_told(vsh_env, image):
    conn = api.connect(vsh_env.uri)
    g = conn.guest_disks(readonly=False)
    g.add_drive(image)
    g.add_drive(image, "raw", readonly=True)
    assert [(d["format"], d["readonly"]) for d in g.drives()] == [(None, False), ("raw", True)]
    ro = conn.guest_disks()
    ro.add_drive(image)
    assert ro.drives()[0]["readonly"] is True


def test_session_errors_before_launch(vsh_env, image):
    g = api.connect(vsh_env.uri).guest_disks()
    with pytest.raises(InvalidArgument, match="no drives have been added"):
        g.launch()
    with pytest.raises(NotFound):
        g.add_drive(image + ".missing")
    with pytest.raises(InvalidArgument, match="unknown disk format"):
        g.add_drive(image, "iso")
    with pytest.raises(InvalidArgument, match="unknown inspection item 'colour'"):
        g.inspect_get("/dev/sda1", "colour")
    assert g.complete_path("/") == []


def test_domain_xml_through_the_api(define, vsh_env):
    define("gvm")
    xml = api.connect(vsh_env.uri).lookup_domain("gvm").xml()
    assert "<name>gvm</name>" in xml and xml.lstrip().startswith("<domain")
