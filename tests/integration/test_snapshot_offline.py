"""Snapshots of shut-off domains on real qcow2 images (qemu-img, qemu-io; no guest boots).

The tree matrix (revert to a non-leaf, delete a middle node, internal and external
mixed), the data each snapshot keeps, libvirt's risky reverts that need --force, and crash
safety: every operation is killed (SIGKILL) after each of its steps through the
engine's ``hook`` parameter, recovered, and the images and metadata checked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not (shutil.which("qemu-img") and shutil.which("qemu-io")),
                                reason="qemu-img and qemu-io (qemu-utils) are needed")

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


# -- helpers -------------------------------------------------------------------------------------


def xml_for(name: str, disk: Path, fmt: str = "qcow2", extra_disk: str = "") -> str:
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='microvm'>hvm</type><kernel>/nonexistent/vmlinux</kernel></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='{fmt}'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>{extra_disk}
  </devices>
</domain>
"""


def qemu_io(path: str, cmd: str, readonly: bool = False) -> str:
    argv = ["qemu-io", "-f", "qcow2"] + (["-r"] if readonly else []) + ["-c", cmd, path]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def write(path: str, byte: int, offset: int = 0) -> None:
    qemu_io(path, f"write -P {byte:#x} {offset} 64k")


def byte_at(path: str, offset: int = 0) -> int:
    out = qemu_io(path, f"read -v {offset} 16", readonly=True)
    return int(re.search(r"^[0-9a-f]+:\s+([0-9a-f]{2})", out, re.M).group(1), 16)


class World:
    """A store with one defined domain, driven through the engine or the CLI."""

    def __init__(self, root: Path, name: str = "vm1", fmt: str = "qcow2", second_disk: bool = False):
        from vsh.core.domain import Domain
        from vsh.core.store import Store

        self.root = root
        self.uri = f"vsh:///session?root={root / 'store'}"
        self.name = name
        self.images = root / "images"
        self.images.mkdir(parents=True, exist_ok=True)
        self.base = self.images / f"{name}.{'qcow2' if fmt == 'qcow2' else 'img'}"
        subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(self.base), "64M"], check=True)
        extra = ""
        if second_disk:
            second = self.images / f"{name}-data.qcow2"
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(second), "16M"], check=True)
            extra = (f"\n    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                     f"<source file='{second}'/><target dev='vdb' bus='virtio'/></disk>")
        self.store = Store.open(self.uri)
        self.store.define(Domain.parse(xml_for(name, self.base, fmt, extra)))

    def engine(self, hook=None):
        from vsh.kvm.snapshot import Engine

        return Engine(self.store, self.name, hook=hook)

    def config(self):
        return self.store.load(self.store.get(self.name), inactive=True)

    def top(self, target: str = "vda") -> str:
        from vsh.kvm.snapshot import chain, disk_element

        return chain(disk_element(self.config().node, target))[0][0]

    def data(self, offset: int = 0) -> int:
        return byte_at(self.top(), offset)

    def write(self, byte: int, offset: int = 0) -> None:
        write(self.top(), byte, offset)

    def files(self) -> set:
        return {p.name for p in self.images.iterdir()}


def check_no_dangling(world: World) -> None:
    """What must hold at every instant, even right after a crash: metadata and the domain's
    definition name only images (and internal snapshots) that exist."""
    from vsh.core.snapshots import SnapshotStore
    from vsh.kvm import qcow2
    from vsh.kvm.snapshot import chains

    defs = SnapshotStore(world.store, world.name).load_all()
    for dom_el, defn in [(d.domain, d) for d in defs.values()] + [(world.config().node, None)]:
        for target, ch in chains(dom_el).items():
            for path, _fmt in ch:
                assert os.path.exists(path), (defn, path)
            if defn is not None and defn.disk(target) and defn.disk(target).snapshot == "internal":
                assert defn.name in qcow2.read_info(ch[0][0]).tags(), (defn.name, ch[0][0])


def check_consistent(world: World) -> None:
    """Metadata only names data that exists; chains agree with the qcow2 headers; no leftovers."""
    from vsh.core.snapshots import SnapshotStore
    from vsh.kvm import qcow2
    from vsh.kvm.snapshot import chains

    meta = SnapshotStore(world.store, world.name)
    assert meta.intent() is None
    defs = meta.load_all()
    doms = [(d.domain, d) for d in defs.values()] + [(world.config().node, None)]
    referenced = set()
    for dom_el, defn in doms:
        for target, ch in chains(dom_el).items():
            for i, (path, fmt) in enumerate(ch):
                assert os.path.exists(path), (defn, path)
                referenced.add(os.path.realpath(path))
                if fmt == "qcow2":
                    backing = qcow2.read_info(path).backing_file
                    below = ch[i + 1][0] if i + 1 < len(ch) else None
                    if below is None:
                        assert backing is None, (path, backing)
                    else:
                        # the header may name an image the XML skips only if that image
                        # was merged away: never; they must agree
                        assert os.path.realpath(backing) == os.path.realpath(below), (path, backing, below)
            if defn is not None and defn.disk(target) and defn.disk(target).snapshot == "internal":
                assert defn.name in qcow2.read_info(ch[0][0]).tags(), (defn.name, ch[0][0])
    state = meta.state()
    assert state["current"] in (None, *defs)
    # no internal snapshot that no metadata names (the current one may sit in the current top)
    allowed: dict = {}
    for defn in defs.values():
        for target, ch in chains(defn.domain).items():
            if defn.disk(target) and defn.disk(target).snapshot == "internal":
                allowed.setdefault(os.path.realpath(ch[0][0]), set()).add(defn.name)
    for ch in chains(world.config().node).values():
        allowed.setdefault(os.path.realpath(ch[0][0]), set()).add(state["current"])
    for path in referenced:
        if qcow2.is_qcow2(path):
            extra = set(qcow2.read_info(path).tags()) - allowed.get(path, set())
            assert not extra, f"{path} holds internal snapshots nothing names: {extra}"
    for path in state["owned"]:
        assert os.path.realpath(path) in referenced, f"owned image {path} is left over"
    for name in world.files():
        path = os.path.realpath(world.images / name)
        assert path in referenced, f"image {name} is not referred to by anything"


# -- the tree matrix, internal ----------------------------------------------------------------------


def test_internal_tree(tmp_path, vsh, monkeypatch):
    world = World(tmp_path)
    monkeypatch.setenv("VSH_DEFAULT_URI", world.uri)
    world.write(0xA1)
    res = vsh("snapshot-create-as", "vm1", "s1", "first snapshot")
    assert (res.status, res.out) == (0, "Domain snapshot s1 created\n"), res
    world.write(0xB2)
    assert vsh("snapshot-create-as", "vm1", "--name", "s2", "--description", "second").status == 0
    world.write(0xC3)
    # s2 is current and the disk changed since: as with virsh, reverting discards the change
    # without --force (libvirt asks for it only in its risky cases)
    res = vsh("snapshot-revert", "vm1", "s1")
    assert (res.status, res.out) == (0, "Domain snapshot s1 reverted\n\n"), res
    assert world.data() == 0xA1
    assert vsh("snapshot-revert", "vm1", "s2").status == 0
    assert world.data() == 0xB2
    assert vsh("snapshot-revert", "vm1", "s1").status == 0
    world.write(0xD4)
    assert vsh("snapshot-create-as", "vm1", "s3").status == 0      # a second child of s1
    tree = vsh("snapshot-list", "vm1", "--tree").out
    assert tree == "s1\n  |\n  +- s2\n  +- s3\n    \n\n"
    res = vsh("snapshot-list", "vm1", "--parent")
    lines = res.out.splitlines()
    assert lines[0].split() == ["Name", "Creation", "Time", "State", "Parent"]
    assert re.fullmatch(r" s1     \d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}   shutoff   ", lines[2])
    assert lines[3].endswith("shutoff   s1")
    info = vsh("snapshot-info", "vm1", "s1").out
    assert info == ("Name:           s1\nDomain:         vm1\nCurrent:        no\nState:          shutoff\n"
                    "Location:       internal\nParent:         -\nChildren:       2\nDescendants:    2\n"
                    "Metadata:       yes\n\n")
    assert vsh("snapshot-current", "vm1", "--name").out == "s3\n"
    assert vsh("snapshot-parent", "vm1", "s3").out == "s1\n"
    res = vsh("snapshot-parent", "vm1", "s1")
    assert (res.status, res.err) == (1, "error: snapshot 's1' has no parent\n")
    xml = vsh("snapshot-dumpxml", "vm1", "s2").out
    assert xml.startswith("<domainsnapshot>\n  <name>s2</name>\n  <description>second</description>\n"
                          "  <state>shutoff</state>\n  <parent>\n    <name>s1</name>\n  </parent>\n"
                          "  <creationTime>")
    assert "  <memory snapshot='no'/>\n  <disks>\n    <disk name='vda' snapshot='internal'/>\n" in xml
    assert "  <domain type='qemu'>\n    <name>vm1</name>" in xml
    # delete the middle node: its children move up, its data goes, theirs stays
    res = vsh("snapshot-delete", "vm1", "s1")
    assert (res.status, res.out) == (0, "Domain snapshot s1 deleted\n\n")
    from vsh.kvm import qcow2

    assert sorted(qcow2.read_info(world.top()).tags()) == ["s2", "s3"]
    assert vsh("snapshot-list", "vm1", "--roots", "--name").out == "s2\ns3\n\n"
    assert vsh("snapshot-revert", "vm1", "s2").status == 0
    assert world.data() == 0xB2
    assert vsh("snapshot-revert", "vm1", "--current").status == 0
    assert vsh("snapshot-revert", "vm1", "s3").status == 0
    assert world.data() == 0xD4
    check_consistent(world)
    res = vsh("snapshot-delete", "vm1", "s2", "--children")
    assert res.status == 0
    assert vsh("snapshot-list", "vm1", "--name").out == "s3\n\n"
    res = vsh("snapshot-info", "vm1", "nope")
    assert res.err == "error: Domain snapshot not found: no domain snapshot with matching name 'nope'\n"
    check_consistent(world)


def test_risky_reverts_need_force(tmp_path, vsh, monkeypatch):
    """libvirt's risky cases (VIR_ERR_SNAPSHOT_REVERT_RISKY) of a shut-off domain."""
    world = World(tmp_path)
    monkeypatch.setenv("VSH_DEFAULT_URI", world.uri)
    world.write(0xA1)
    assert vsh("snapshot-create-as", "vm1", "s1").status == 0
    world.write(0xB2)
    # a managed save image and a snapshot without memory state
    managed = world.store.data_file("managedsave", "vm1.save")
    os.makedirs(os.path.dirname(managed), exist_ok=True)
    Path(managed).write_bytes(b"state")
    res = vsh("snapshot-revert", "vm1", "s1")
    assert (res.status, res.err) == (1, "error: revert requires force: snapshot without memory state, removal "
                                        "of existing managed saved state strongly recommended to avoid "
                                        "corruption\n")
    assert world.data() == 0xB2 and os.path.exists(managed)
    res = vsh("snapshot-revert", "vm1", "s1", "--force")
    assert (res.status, res.out) == (0, "Domain snapshot s1 reverted\n\n"), res
    assert world.data() == 0xA1 and not os.path.exists(managed)
    # a snapshot without a domain definition: the disks go back, the definition stays
    meta = world.engine().meta
    defn = meta.load("s1")
    defn.domain = None
    meta.write(defn)
    world.write(0xC3)
    res = vsh("snapshot-revert", "vm1", "s1")
    assert (res.status, res.err) == (1, "error: revert requires force: snapshot 's1' lacks domain 'vm1' "
                                        "rollback info\n")
    assert world.data() == 0xC3
    before = world.config().to_xml(inactive=True)
    assert vsh("snapshot-revert", "vm1", "s1", "--force").status == 0
    assert world.data() == 0xA1 and world.config().to_xml(inactive=True) == before


def test_abi_difference():
    from lxml import etree

    from vsh.kvm.snapshot.abi import abi_difference

    def dom(memory="64", vcpu="1", mac="52:54:00:00:00:01", disks=("vda",)):
        return etree.fromstring(
            f"<domain type='kvm'><memory unit='MiB'>{memory}</memory><vcpu>{vcpu}</vcpu>"
            "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>"
            + "".join(f"<disk device='disk'><target dev='{d}' bus='virtio'/></disk>" for d in disks)
            + f"<interface type='user'><mac address='{mac}'/><model type='virtio'/></interface>"
            "</devices></domain>")

    assert abi_difference(dom(), dom()) is None
    assert abi_difference(dom(memory="128"), dom()) == "Target domain max memory 131072 does not match source 65536"
    assert abi_difference(dom(vcpu="2"), dom()) == "Target domain vCPU max 2 does not match source 1"
    assert abi_difference(dom(disks=("vda", "vdb")), dom()) == "Target domain disk count 2 does not match source 1"
    assert abi_difference(dom(disks=("vdb",)), dom()) == "Target disk vdb does not match source vda"
    assert (abi_difference(dom(mac="52:54:00:00:00:02"), dom())
            == "Target network card mac 52:54:00:00:00:02 does not match source 52:54:00:00:00:01")


def test_raw_disk_refuses_internal_but_takes_external(tmp_path, vsh, monkeypatch):
    world = World(tmp_path, fmt="raw")
    monkeypatch.setenv("VSH_DEFAULT_URI", world.uri)
    res = vsh("snapshot-create-as", "vm1", "s1")
    assert res.status == 1
    assert "internal snapshot for disk vda unsupported for storage type raw" in res.err
    assert vsh("snapshot-list", "vm1", "--name").out == "\n"
    res = vsh("snapshot-create-as", "vm1", "e1", "--disk-only")
    assert res.status == 0, res
    assert world.top() == str(world.images / "vm1.e1")
    assert vsh("snapshot-info", "vm1", "e1").out.splitlines()[3:5] == ["State:          disk-snapshot",
                                                                        "Location:       external"]
    check_consistent(world)


# -- the tree matrix, external and mixed --------------------------------------------------------------


def test_external_chain_middle_delete_and_non_leaf_revert(tmp_path, vsh, monkeypatch):
    world = World(tmp_path)
    monkeypatch.setenv("VSH_DEFAULT_URI", world.uri)
    world.write(0x10, 0)
    for i, name in enumerate(("e1", "e2", "e3"), 1):
        assert vsh("snapshot-create-as", "vm1", name, "--disk-only").status == 0
        world.write(0x10 + i, i * MiB)        # each layer writes its own region
    assert world.files() == {"vm1.qcow2", "vm1.e1", "vm1.e2", "vm1.e3"}
    assert world.top().endswith("vm1.e3")
    # delete the middle one: e2 froze vm1.e1 (made by vsh, used only by vm1.e2) → merged away
    assert vsh("snapshot-delete", "vm1", "e2").status == 0
    assert world.files() == {"vm1.qcow2", "vm1.e2", "vm1.e3"}
    assert vsh("snapshot-parent", "vm1", "e3").out == "e1\n"
    assert [world.data(i * MiB) for i in range(4)] == [0x10, 0x11, 0x12, 0x13]
    check_consistent(world)
    # revert to a non-leaf: a new overlay on its frozen image; later snapshots keep theirs
    res = vsh("snapshot-revert", "vm1", "e1")
    assert (res.status, res.out) == (0, "Domain snapshot e1 reverted\n\n"), res
    assert [world.data(i * MiB) for i in range(4)] == [0x10, 0, 0, 0]
    assert os.path.realpath(world.top()) not in {str(world.images / n) for n in ("vm1.e2", "vm1.e3")}
    world.write(0x77, 0)
    assert vsh("snapshot-create-as", "vm1", "e4", "--disk-only").status == 0
    assert vsh("snapshot-list", "vm1", "--tree").out == "e1\n  |\n  +- e3\n  +- e4\n    \n\n"
    assert vsh("snapshot-revert", "vm1", "e3").status == 0
    assert [world.data(i * MiB) for i in range(4)] == [0x10, 0x11, 0x12, 0]
    assert vsh("snapshot-revert", "vm1", "e4").status == 0
    assert [world.data(i * MiB) for i in range(4)] == [0x77, 0, 0, 0]
    check_consistent(world)
    # the root: its frozen image is the user's disk, which vsh never removes
    assert vsh("snapshot-delete", "vm1", "e1").status == 0
    assert "vm1.qcow2" in world.files()
    assert vsh("snapshot-list", "vm1", "--roots", "--name").out == "e3\ne4\n\n"
    assert vsh("snapshot-revert", "vm1", "e3").status == 0
    assert [world.data(i * MiB) for i in range(4)] == [0x10, 0x11, 0x12, 0]
    check_consistent(world)
    # everything goes: only the user's image and the current chain stay
    assert vsh("snapshot-delete", "vm1", "e3").status == 0
    assert vsh("snapshot-delete", "vm1", "e4").status == 0
    assert vsh("snapshot-list", "vm1", "--name").out == "\n"
    assert [world.data(i * MiB) for i in range(4)] == [0x10, 0x11, 0x12, 0]
    check_consistent(world)


def test_mixed_internal_then_external(tmp_path, vsh, monkeypatch):
    """An internal snapshot in an image that an external snapshot froze later: reverting to it
    works on a copy, and the external snapshot's data stays intact."""
    world = World(tmp_path)
    monkeypatch.setenv("VSH_DEFAULT_URI", world.uri)
    world.write(0x01)
    assert vsh("snapshot-create-as", "vm1", "i1").status == 0
    world.write(0x02)
    assert vsh("snapshot-create-as", "vm1", "x1", "--disk-only").status == 0      # freezes vm1.qcow2
    world.write(0x03)
    assert vsh("snapshot-create-as", "vm1", "i2").status == 0                    # inside vm1.x1
    assert vsh("snapshot-revert", "vm1", "i1").status == 0
    assert world.data() == 0x01
    assert world.top().endswith("vm1.i1-copy")
    assert vsh("snapshot-revert", "vm1", "x1").status == 0
    assert world.data() == 0x02
    assert vsh("snapshot-revert", "vm1", "i2").status == 0
    assert world.data() == 0x03
    check_consistent(world)
    assert vsh("snapshot-delete", "vm1", "i1").status == 0
    from vsh.kvm import qcow2

    assert "i1" not in qcow2.read_info(str(world.images / "vm1.qcow2")).tags()
    assert not any(n.startswith("vm1.i1-copy") for n in world.files())      # nothing refers to it
    assert vsh("snapshot-revert", "vm1", "x1").status == 0
    assert world.data() == 0x02
    check_consistent(world)


def test_metadata_only_delete_and_no_metadata_create(tmp_path, vsh, monkeypatch):
    world = World(tmp_path)
    monkeypatch.setenv("VSH_DEFAULT_URI", world.uri)
    assert vsh("snapshot-create-as", "vm1", "hidden", "--no-metadata").status == 0
    assert vsh("snapshot-list", "vm1", "--name").out == "\n"
    from vsh.kvm import qcow2

    assert qcow2.read_info(world.top()).tags() == ["hidden"]
    assert vsh("snapshot-create-as", "vm1", "s1").status == 0
    assert vsh("snapshot-delete", "vm1", "s1", "--metadata").status == 0
    assert sorted(qcow2.read_info(world.top()).tags()) == ["hidden", "s1"]
    res = vsh("snapshot-current", "vm1")
    assert (res.status, res.err) == (1, "error: domain 'vm1' has no current snapshot\n")


def test_snapshot_create_from_xml_and_print_xml(tmp_path, vsh, monkeypatch):
    world = World(tmp_path)
    monkeypatch.setenv("VSH_DEFAULT_URI", world.uri)
    res = vsh("snapshot-create-as", "vm1", "--print-xml", "b", "desc")
    assert res.out == "<domainsnapshot>\n  <name>b</name>\n  <description>desc</description>\n</domainsnapshot>\n\n\n"
    assert vsh("snapshot-list", "vm1", "--name").out == "\n"
    overlay = world.images / "custom.qcow2"
    doc = tmp_path / "snap.xml"
    doc.write_text(f"<domainsnapshot><name>x</name><description>from xml</description>"
                   f"<memory snapshot='no'/><disks><disk name='vda' snapshot='external'>"
                   f"<source file='{overlay}'/></disk></disks></domainsnapshot>")
    res = vsh("snapshot-create", "vm1", str(doc))
    assert (res.status, res.out) == (0, f"Domain snapshot x created from '{doc}'\n"), res
    assert world.top() == str(overlay)
    res = vsh("snapshot-create", "vm1", str(doc))
    assert res.err == "error: operation failed: domain moment x already exists\n"
    res = vsh("snapshot-create-as", "vm1", "y", "--diskspec", "vda,snapshot=external,file=relative.qcow2")
    assert res.status == 1 and "absolute path" in res.err
    check_consistent(world)


# -- crash safety -----------------------------------------------------------------------------------


KILLER = r"""
import json, os, signal, sys
from vsh.core.store import Store
from vsh.kvm.snapshot import Engine
args = json.loads(sys.argv[1])
count = 0
def hook(step):
    global count
    count += 1
    if count == args["kill_at"]:
        os.kill(os.getpid(), signal.SIGKILL)
engine = Engine(Store.open(args["uri"]), args["domain"], hook=hook)
getattr(engine, args["op"])(*args["args"], **args["kwargs"])
"""


def _scenario(root: Path, kind: str) -> tuple[World, str, list, dict, dict]:
    """A world before the operation; (world, op, args, kwargs, expected data after)."""
    world = World(root, second_disk=kind.endswith("-2disks"))
    eng = world.engine()
    world.write(0x01)
    if kind == "create-internal-2disks":
        return world, "create", ["s1"], {}, {0: 0x01}
    if kind == "create-external-2disks":
        return world, "create", ["e1"], {"disk_only": True}, {0: 0x01}
    if kind == "revert-external-2disks":
        eng.create("e1", disk_only=True)
        world.write(0x02)
        eng.create("e2", disk_only=True)
        return world, "revert", ["e1"], {"force": True}, {0: 0x01}
    if kind == "create-internal":
        return world, "create", ["s1"], {}, {0: 0x01}
    if kind == "create-external":
        return world, "create", ["e1"], {"disk_only": True}, {0: 0x01}
    eng.create("s1")
    world.write(0x02)
    eng.create("s2")
    if kind == "revert-internal":
        return world, "revert", ["s1"], {}, {0: 0x01}
    if kind == "delete-internal":
        return world, "delete", ["s1"], {}, {0: 0x02}
    eng.create("e1", disk_only=True)
    world.write(0x03)
    eng.create("e2", disk_only=True)
    world.write(0x04)
    eng.create("e3", disk_only=True)
    if kind == "revert-external":
        return world, "revert", ["e2"], {}, {0: 0x03}
    if kind == "revert-copy":
        return world, "revert", ["s2"], {}, {0: 0x02}
    if kind == "delete-merge":
        return world, "delete", ["e3"], {}, {0: 0x04}
    if kind == "delete-children":
        return world, "delete", ["e1"], {"children": True}, {0: 0x04}
    raise AssertionError(kind)


def _snapshot_data(world: World) -> dict:
    """What each snapshot holds at offset 0 (revert to each, in-process)."""
    out = {}
    eng = world.engine()
    for name in eng.meta.names():
        eng.revert(name, force=True)
        out[name] = world.data()
    return out


@pytest.mark.parametrize("kind", ["create-internal", "create-external", "create-internal-2disks",
                                  "create-external-2disks", "revert-external-2disks",
                                  "revert-internal", "revert-external",
                                  "revert-copy", "delete-internal", "delete-merge", "delete-children"])
def test_kill_at_every_step(tmp_path, kind):
    """vsh killed after any step: the next command finishes or undoes the operation, and
    metadata, images and data agree (the domain holds either the old or the new state)."""
    # a reference run without a kill: the step count and the final data
    ref_world, op, args, kwargs, expected = _scenario(tmp_path / "ref", kind)
    before = {0: ref_world.data()}
    before_snaps = _snapshot_data(_scenario(tmp_path / "ref-snaps", kind)[0])
    steps = []
    getattr(ref_world.engine(hook=steps.append), op)(*args, **kwargs)
    assert ref_world.data() == expected[0]
    assert steps, "the operation reports its steps"
    for k in range(1, len(steps) + 1):
        world, op, args, kwargs, _ = _scenario(tmp_path / f"k{k}", kind)
        proc = subprocess.run([sys.executable, "-c", KILLER, json.dumps(
            {"uri": world.uri, "domain": world.name, "op": op, "args": args, "kwargs": kwargs, "kill_at": k})],
            capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == -signal.SIGKILL, (k, steps[k - 1], proc.stderr)
        check_no_dangling(world)
        world.engine().recover()
        check_consistent(world)
        now = world.data()
        assert now in (before[0], expected[0]), (k, steps[k - 1], hex(now))
        names = set(world.engine().meta.names())
        snaps = _snapshot_data(world)
        for name, value in snaps.items():
            if name in before_snaps:
                assert value == before_snaps[name], (k, steps[k - 1], name)
        if op == "create":
            assert names in (set(), {args[0]}), (k, steps[k - 1], names)
        if op == "delete" and not kwargs:
            assert names in (set(before_snaps), set(before_snaps) - {args[0]})
        check_consistent(world)


def test_start_finishes_an_interrupted_operation(tmp_path, vsh, monkeypatch):
    world = World(tmp_path)
    monkeypatch.setenv("VSH_DEFAULT_URI", world.uri)
    proc = subprocess.run([sys.executable, "-c", KILLER, json.dumps(
        {"uri": world.uri, "domain": world.name, "op": "create", "args": ["e1"],
         "kwargs": {"disk_only": True}, "kill_at": 2})], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert world.engine().meta.intent() is not None
    check_no_dangling(world)
    vsh("start", "vm1")            # fails later (the kernel does not exist), after the recovery
    assert world.engine().meta.intent() is None
    check_consistent(world)


def test_missing_data_is_refused_before_anything_changes(tmp_path, vsh, monkeypatch):
    world = World(tmp_path)
    monkeypatch.setenv("VSH_DEFAULT_URI", world.uri)
    assert vsh("snapshot-create-as", "vm1", "s1").status == 0
    assert vsh("snapshot-create-as", "vm1", "s2").status == 0
    subprocess.run(["qemu-img", "snapshot", "-d", "s1", world.top()], check=True)   # behind vsh's back
    res = vsh("snapshot-revert", "vm1", "s1", "--force")
    assert res.status == 1
    assert f"image '{world.top()}' does not hold internal snapshot 's1'" in res.err
    assert world.engine().meta.intent() is None and world.engine().meta.current() == "s2"
    # an interrupted operation that cannot be finished says so, and how to get out
    meta = world.engine().meta
    meta.write_intent({"op": "revert", "name": "s2", "phase": "commit", "tags": [["/nonexistent.qcow2", "s2"]],
                       "config": world.config().to_xml(inactive=True), "new_files": []})
    res = vsh("snapshot-create-as", "vm1", "s3")
    assert res.status == 1
    assert res.err.startswith("error: cannot finish an interrupted snapshot operation (revert of 's2') of "
                              "domain 'vm1'\n")
    assert f"delete {meta.dir}/.intent.json to abandon" in res.err
    os.unlink(os.path.join(meta.dir, ".intent.json"))
    assert vsh("snapshot-create-as", "vm1", "s3").status == 0
