"""dom-fd-associate (vsh/api/local/fdgroups.py): descriptors kept by the connection, an fd set in
QEMU's argv for the disks that name the group, nothing for QEMU's user to be granted, and the
refusals in libvirt's words. The start itself is in tests/integration/test_fdgroup_vm.py."""

from __future__ import annotations

import json
import os

import pytest

from vsh import api
from vsh.api.local.fdgroups import fdsets, groups_of
from vsh.core.domain import Domain
from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm.argv import RuntimePaths, build_argv
from vsh.kvm.confine.needs import needs

import argv_materials as am

DISK = ("<disk type='file' device='disk'><driver name='qemu' type='{fmt}'/>"
        "<source file='{path}' fdgroup='data'/><target dev='vda' bus='virtio'/></disk>")


def _xml(path, fmt="raw") -> str:
    return ("<domain type='qemu'><name>t</name><memory unit='MiB'>64</memory><os><type arch='x86_64' "
            "machine='pc'>hvm</type></os><devices>" + DISK.format(path=path, fmt=fmt) + "</devices></domain>")


def _argv(tmp_path, sets, fmt="raw"):
    dom = Domain.parse(_xml(tmp_path / "nowhere.img", fmt))
    dom.fill_defaults()
    return build_argv(dom.node, am.fake_host(), RuntimePaths.for_rundir(str(tmp_path / "run")), fdsets=sets)


def test_the_disk_opens_the_fd_set_and_qemus_user_needs_no_grant(tmp_path):
    out = _argv(tmp_path, {"data": 1})
    nodes = [json.loads(a) for a in out if a.startswith("{") and '"filename"' in a]
    assert [n["filename"] for n in nodes] == ["/dev/fdset/1"]       # the path itself is never opened
    assert not [n for n in needs(out) if "fdset" in n.path]


def test_refusals(tmp_path):
    with pytest.raises(InvalidArgument, match="file descriptor group 'data' was not associated with the domain"):
        _argv(tmp_path, {})
    with pytest.raises(Unsupported, match="must be raw"):
        _argv(tmp_path, {"data": 1}, fmt="qcow2")


def test_the_connection_keeps_duplicates_until_it_closes(tmp_path):
    conn = api.connect(f"vsh:///session?root={tmp_path}")
    (tmp_path / "d.xml").write_text(_xml(tmp_path / "d.img"))
    conn.store.define(Domain.parse((tmp_path / "d.xml").read_bytes()))
    dom = conn.lookup_domain("t")
    r, w = os.pipe()
    dom.fd_associate("data", [r, w])
    os.close(r)
    os.close(w)
    groups = groups_of(conn, dom.uuid())
    assert list(groups) == ["data"] and all(os.fstat(fd) for fd in groups["data"])
    sets, args, passed = fdsets(groups, Domain.parse((tmp_path / "d.xml").read_bytes()).node)
    assert sets == {"data": 1} and passed == groups["data"]
    assert args == ["-add-fd", f"fd={passed[0]},set=1,opaque=fdgroup-data",
                    "-add-fd", f"fd={passed[1]},set=1,opaque=fdgroup-data"]
    with pytest.raises(InvalidArgument, match="file descriptor 9999 cannot be passed"):
        dom.fd_associate("other", [9999])
    conn.close()
    for fd in passed:
        with pytest.raises(OSError):
            os.fstat(fd)
    assert groups_of(conn, dom.uuid()) == {}
