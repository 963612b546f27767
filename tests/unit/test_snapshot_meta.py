"""Snapshot metadata, the tree printer, the save image header and the snapshot/save commands'
texts and errors that need no QEMU."""

from __future__ import annotations

import os
import struct

import pytest

from vsh.core.errors import InvalidArgument, OperationInvalid
from vsh.core.snapshots import SnapshotDef, SnapshotStore, DiskSpec, check_name, tree_text


def defs_of(**parents):
    return {name: SnapshotDef(name, parent=parent) for name, parent in parents.items()}


# -- the tree, as virsh 9.0 prints it (outputs recorded from virsh -c test:///default) -----------------


def test_tree_two_levels():
    defs = defs_of(snap1=None, snap2="snap1")
    assert tree_text(defs, list(defs)) == "snap1\n  |\n  +- snap2\n    \n"


def test_tree_branches():
    defs = defs_of(a=None, b="a", d="b", c="a")
    assert tree_text(defs, list(defs)) == "a\n  |\n  +- b\n  |   |\n  |   +- d\n  |     \n  +- c\n    \n"


def test_tree_siblings_and_lone_root():
    defs = defs_of(a=None, c="a", d="a")
    assert tree_text(defs, list(defs)) == "a\n  |\n  +- c\n  +- d\n    \n"
    assert tree_text(defs_of(a=None), ["a"]) == "a\n\n"


def test_tree_from_a_subtree_root():
    defs = defs_of(a=None, b="a", c="b")
    assert tree_text({n: defs[n] for n in ("b", "c")}, ["b", "c"], root="b") == "b\n  |\n  +- c\n    \n"


# -- metadata -------------------------------------------------------------------------------------------


def test_snapshot_xml_round_trip():
    from vsh.core.xml import parse

    dom = parse("<domain type='qemu'><name>vm1</name><devices/></domain>")
    d = SnapshotDef("s1", description="first", state="running", parent="s0", creation_time=1700000000,
                    memory="internal", disks=[DiskSpec("vda", "internal"), DiskSpec("hdc", "no")], domain=dom)
    text = d.to_xml()
    assert text == ("<domainsnapshot>\n  <name>s1</name>\n  <description>first</description>\n"
                    "  <state>running</state>\n  <parent>\n    <name>s0</name>\n  </parent>\n"
                    "  <creationTime>1700000000</creationTime>\n  <memory snapshot='internal'/>\n"
                    "  <disks>\n    <disk name='vda' snapshot='internal'/>\n    <disk name='hdc' snapshot='no'/>\n"
                    "  </disks>\n  <domain type='qemu'>\n    <name>vm1</name>\n    <devices/>\n  </domain>\n"
                    "</domainsnapshot>\n")
    back = SnapshotDef.parse(text)
    assert (back.name, back.description, back.state, back.parent, back.creation_time, back.memory) == \
        ("s1", "first", "running", "s0", 1700000000, "internal")
    assert back.to_xml() == text
    assert back.location == "internal"
    ext = SnapshotDef("e1", state="disk-snapshot", disks=[DiskSpec("vda", "external", "/i/vm.e1", "qcow2")])
    assert "<disk name='vda' snapshot='external' type='file'>\n      <driver type='qcow2'/>\n" \
           "      <source file='/i/vm.e1'/>\n" in ext.to_xml()
    assert SnapshotDef.parse(ext.to_xml()).location == "external"


@pytest.mark.parametrize("bad", ["", "a/b", ".hidden", "tab\there", "x" * 201])
def test_snapshot_names_are_checked(bad):
    with pytest.raises(InvalidArgument):
        check_name(bad)


def test_metadata_files(vsh_env):
    from vsh.core.store import Store

    meta = SnapshotStore(Store.open(), "vm1")
    assert meta.names() == [] and meta.current() is None and meta.intent() is None
    meta.write(SnapshotDef("s1"))
    meta.write_state({"current": "s1", "owned": ["/b", "/a", "/a"]})
    assert meta.names() == ["s1"] and meta.current() == "s1"
    assert meta.state()["owned"] == ["/a", "/b"]
    assert oct(os.stat(meta.path("s1")).st_mode & 0o777) == "0o600"
    meta.write_intent({"op": "create"})
    assert meta.intent() == {"op": "create"}
    assert meta.names() == ["s1"]            # hidden files are not snapshots
    meta.clear_intent()
    meta.remove("s1")
    assert meta.current() is None            # the current snapshot must exist


# -- the save image header --------------------------------------------------------------------------------


def test_save_image_header(tmp_path):
    from vsh.kvm import saveimage

    path = str(tmp_path / "x.save")
    offset = saveimage.create(path, "<domain><name>é</name></domain>", running=True)
    assert offset % 4096 == 0 and os.path.getsize(path) == offset
    with pytest.raises(OperationInvalid, match="save image is incomplete"):
        saveimage.read(path)
    fd = os.open(path, os.O_RDWR)
    try:
        saveimage.complete(fd)
    finally:
        os.close(fd)
    img = saveimage.read(path)
    assert (img.xml, img.running, img.data_offset) == ("<domain><name>é</name></domain>", True, offset)
    with pytest.raises(OperationInvalid, match="image magic is incorrect"):
        (tmp_path / "bad").write_bytes(b"LibvirtQemudSave" + b"\0" * 64)
        saveimage.read(str(tmp_path / "bad"))
    with pytest.raises(InvalidArgument, match="No such file"):
        saveimage.read(str(tmp_path / "missing"))
    data = bytearray(open(path, "rb").read())
    data[16:20] = struct.pack(">I", 9)
    (tmp_path / "v9").write_bytes(bytes(data))
    with pytest.raises(OperationInvalid, match="not supported"):
        saveimage.read(str(tmp_path / "v9"))


def test_diskspec_parsing():
    from vsh.commands.snapshot import parse_diskspec

    req = parse_diskspec("vda,snapshot=external,file=/x/a,,b.qcow2")
    assert (req["target"], req["snapshot"], req["file"]) == ("vda", "external", "/x/a,b.qcow2")
    assert parse_diskspec("vdb,snapshot=no")["snapshot"] == "no"
    with pytest.raises(InvalidArgument):
        parse_diskspec("vda,bogus=1")


# -- command texts without a guest --------------------------------------------------------------------------


def test_snapshot_commands_on_a_domain_without_snapshots(vsh, define):
    define("vm1")
    res = vsh("snapshot-list", "vm1")
    assert (res.status, res.out) == (0, " Name   Creation Time   State\n-------------------------------\n\n")
    assert vsh("snapshot-list", "vm1", "--name").out == "\n"
    assert vsh("snapshot-list", "vm1", "--json").out.strip() == "[]"
    for argv in (("snapshot-current", "vm1"), ("snapshot-current", "vm1", "--name"),
                 ("snapshot-info", "vm1", "--current"), ("snapshot-parent", "vm1", "--current")):
        res = vsh(*argv)
        assert (res.status, res.err) == (1, "error: domain 'vm1' has no current snapshot\n"), argv
    for argv in (("snapshot-info", "vm1", "s9"), ("snapshot-dumpxml", "vm1", "s9"),
                 ("snapshot-revert", "vm1", "s9"), ("snapshot-delete", "vm1", "s9"),
                 ("snapshot-current", "vm1", "s9")):
        res = vsh(*argv)
        assert res.err == "error: Domain snapshot not found: no domain snapshot with matching name 's9'\n", argv
    res = vsh("snapshot-list", "vm1", "--tree", "--parent")
    assert res.err == "error: Options --parent and --tree are mutually exclusive\n"
    res = vsh("snapshot-create-as", "vm1", "a/b")
    assert res.status == 1 and "invalid snapshot name 'a/b'" in res.err
    res = vsh("snapshot-info", "nosuch", "s1")
    assert res.err.startswith("error: failed to get domain 'nosuch'")


def test_save_commands_on_a_shut_off_domain(vsh, define, vsh_env, tmp_path):
    define("vm1")
    res = vsh("save", "vm1", str(tmp_path / "x.save"))
    assert (res.status, res.err) == (1, f"error: Failed to save domain 'vm1' to {tmp_path / 'x.save'}\n"
                                        "error: Requested operation is not valid: domain is not running\n")
    assert not (tmp_path / "x.save").exists() and not any(tmp_path.glob(".vsh-save-*"))
    res = vsh("managedsave", "vm1")
    assert res.err.splitlines() == ["error: Failed to save domain 'vm1' state",
                                    "error: Requested operation is not valid: domain is not running"]
    res = vsh("managedsave-remove", "vm1")
    assert (res.status, res.out) == (0, "Domain 'vm1' has no manage save image; removal skipped\n\n")
    res = vsh("restore", str(tmp_path / "missing.save"))
    assert res.err.splitlines() == [f"error: Failed to restore domain from {tmp_path / 'missing.save'}",
                                    f"error: Failed to open file '{tmp_path / 'missing.save'}': "
                                    "No such file or directory"]
    (tmp_path / "junk.save").write_bytes(b"\0" * 100)
    res = vsh("restore", str(tmp_path / "junk.save"))
    assert res.err.splitlines()[1] == "error: operation failed: image magic is incorrect"
    res = vsh("save", "vm1", str(tmp_path / "x.save"), "--running", "--paused")
    assert res.err == "error: Options --running and --paused are mutually exclusive\n"
    res = vsh("-r", "managedsave-remove", "vm1")
    assert res.status == 1 and "read only" in res.err


def test_undefine_with_snapshots(vsh, define, vsh_env):
    from vsh.core.store import Store

    define("vm1")
    meta = SnapshotStore(Store.open(), "vm1")
    meta.write(SnapshotDef("s1"))
    meta.write(SnapshotDef("s2", parent="s1"))
    res = vsh("undefine", "vm1")
    assert res.err.splitlines()[:2] == ["error: Failed to undefine domain 'vm1'",
                                        "error: Requested operation is not valid: cannot delete inactive "
                                        "domain with 2 snapshots"]
    assert vsh("list", "--all", "--with-snapshot", "--name").out == "vm1\n\n"
    res = vsh("undefine", "vm1", "--snapshots-metadata")
    assert (res.status, res.out) == (0, "Domain 'vm1' has been undefined\n\n")
    assert meta.names() == [] and not os.path.exists(meta.dir)


def test_restore_refuses_a_uuid_that_another_domain_has(vsh, define, tmp_path):
    from vsh.kvm import saveimage

    uuid = "3c7f1a52-93b6-4c44-8f6b-0d3d2a9f5e11"
    define("vm1", uuid=uuid)
    path = str(tmp_path / "other.save")
    saveimage.create(path, f"<domain type='qemu'><name>other</name><uuid>{uuid}</uuid></domain>", running=True)
    fd = os.open(path, os.O_RDWR)
    try:
        saveimage.complete(fd)
    finally:
        os.close(fd)
    res = vsh("restore", path)
    assert res.err.splitlines() == [f"error: Failed to restore domain from {path}",
                                    f"error: operation failed: domain 'vm1' already exists with uuid {uuid}"]
    assert "other" not in vsh("list", "--all").out
