"""Property tests over the code vsh owns: path resolution, detection, escaping, guest text parsers."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as S

from vsh.core.errors import VshError
from vsh.core.escape import escape
from vsh.guestfs.fs.base import Filesystem, Node
from vsh.guestfs.fs.paths import join_path, split_path
from vsh.guestfs.fs.tree import MountTree
from vsh.guestfs.image import FORMATS, detect_format
from vsh.guestfs.inspect import Inspector, elf_arch, parse_dpkg_status, parse_os_release, split_deb_version
from vsh.guestfs.volumes import canonical_device, disk_name

NAMES = S.sampled_from(["a", "b", "c", "..", ".", "etc", "x y", "ü"])
TARGET = S.lists(S.sampled_from(["a", "b", "c", "..", ".", "", "etc", "nope"]), min_size=0, max_size=6).map(
    lambda parts: "/".join(parts))


class FakeBlock:
    size = 1 << 30
    name = "fake"

    def direct(self):
        return None


class FakeDevice:
    def __init__(self, name):
        self.name = name
        self.block = FakeBlock()


class FakeFs(Filesystem):
    """An in-memory filesystem: {parts: ("d",) | ("f", data) | ("l", target)}."""

    vfs_type = "fake"

    def __init__(self, entries, name="/dev/fake"):
        self.entries = entries
        self.device = FakeDevice(name)
        self.block = self.device.block
        self._cache = {}
        self.root_node = Node(("d",), (), "d")

    def lookup(self, parent, name):
        parts = parent.parts + (name,)
        e = self.entries.get(parts)
        return None if e is None else Node(e, parts, e[0])

    def children(self, node):
        n = len(node.parts)
        return sorted({p[n] for p in self.entries if len(p) == n + 1 and p[:n] == node.parts})

    def readlink(self, node):
        return node.entry[1]

    def ident(self, node):
        return hash(node.parts)

    def size(self, node):
        return len(node.entry[1]) if node.kind == "f" else 0

    def extents(self, node):
        return None

    def read_lib(self, node, offset, length):
        return node.entry[1][offset:offset + length]


@S.composite
def fake_trees(draw):
    entries = {("etc",): ("d",), ("etc", "hostname"): ("f", b"h\n")}
    for _ in range(draw(S.integers(0, 12))):
        parent = draw(S.sampled_from(sorted(k for k, v in entries.items() if v[0] == "d") + [()]))
        name = draw(S.sampled_from(["a", "b", "c", "d", "link", "x"]))
        parts = parent + (name,)
        if parts in entries:
            continue
        kind = draw(S.sampled_from("dfl"))
        entries[parts] = ("d",) if kind == "d" else ("f", b"data") if kind == "f" else ("l", draw(TARGET))
    return entries


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(fake_trees(), S.lists(NAMES, max_size=8), S.booleans())
def test_resolution_stays_inside_the_guest(entries, comps, follow):
    tree = MountTree()
    tree.mounts[()] = FakeFs(entries)
    path = "/" + "/".join(comps)
    try:
        fs, node, gparts = tree.resolve(path, follow=follow)
    except VshError:
        return
    assert ".." not in gparts and "." not in gparts and "" not in gparts
    if gparts:
        assert gparts in entries  # a real entry of the guest tree, nothing else
        assert node.entry == entries[gparts]
        if follow:
            assert node.kind != "l"
    # resolving the canonical path again gives the same node
    assert tree.resolve(join_path(gparts), follow=follow)[2] == gparts


@settings(max_examples=200, deadline=None)
@given(fake_trees())
def test_walk_terminates_and_lists_each_entry_once(entries):
    tree = MountTree()
    tree.mounts[()] = FakeFs(entries)
    found = tree.find("/")
    assert len(found) == len(set(found))
    assert set(found) == {"/".join(p) for p in entries}


@given(S.text(max_size=60))
def test_split_path(text):
    path = "/" + text
    if "\0" in text:
        try:
            split_path(path)
        except VshError:
            return
        raise AssertionError("NUL accepted")
    parts = split_path(path)
    assert all(p and p != "." and "/" not in p for p in parts)
    assert split_path(join_path(parts)) == parts


@given(S.text(max_size=30))
def test_relative_paths_are_refused(text):
    if text.startswith("/"):
        return
    try:
        split_path(text)
    except VshError:
        return
    raise AssertionError("relative path accepted")


@settings(max_examples=200, deadline=None)
@given(S.binary(max_size=600))
def test_detect_format_is_conservative(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("det") / "img"
    p.write_bytes(data)
    fmt = detect_format(str(p))
    assert fmt in FORMATS
    magic = {b"QFI\xfb": "qcow2", b"KDMV": "vmdk", b"vhdxfile": "vhdx", b"conectix": "vpc",
             b"# Disk DescriptorFile": "vmdk"}
    if not any(data.startswith(m) for m in magic):
        assert fmt == "raw"


_BAD = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


@given(S.one_of(S.text(), S.binary()), S.booleans())
def test_escape_leaves_no_control_characters(value, unambiguous):
    out = escape(value, unambiguous=unambiguous)
    assert not _BAD.search(out)
    if isinstance(value, str) and not _BAD.search(value) and "\\" not in value:
        assert out == value


@given(S.text(alphabet=S.characters(blacklist_categories=("Cs",)), max_size=40))
def test_unambiguous_escape_is_injective(value):
    # decoding the escapes gives the original back
    out = escape(value, unambiguous=True)
    back = re.sub(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|n|t|r|\\)",
                  lambda m: {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}.get(m.group(1))
                  or chr(int(m.group(1)[1:], 16)), out)
    assert back == value


@given(S.text())
def test_guest_text_parsers_never_raise(text):
    parse_os_release(text)
    apps = parse_dpkg_status(text)
    assert all(isinstance(a["epoch"], int) for a in apps)
    split_deb_version(text)


@given(S.binary(max_size=64))
def test_elf_arch_never_raises(data):
    arch = elf_arch(data)
    assert arch is None or isinstance(arch, str)


def test_elf_arch_known():
    head = bytearray(64)
    head[:4] = b"\x7fELF"
    head[4], head[5] = 2, 1
    head[18:20] = (62).to_bytes(2, "little")
    assert elf_arch(bytes(head)) == "x86_64"
    head[18:20] = (183).to_bytes(2, "little")
    assert elf_arch(bytes(head)) == "aarch64"


class FakeVolumes:
    def __init__(self):
        self.devices = {}

    def find_by(self, key, value):
        return None

    def get(self, name):
        raise VshError("no such device")


@settings(max_examples=200, deadline=None)
@given(S.lists(S.text(alphabet=S.sampled_from(list("UID=LABEL/dev/sda1 #\t\\0swapnone.") + ["\n"]), max_size=80),
               max_size=10))
def test_fstab_parsing_is_fault_tolerant(lines):
    text = "\n".join(lines)
    entries = {("etc",): ("d",), ("etc", "fstab"): ("f", text.encode())}
    tree = MountTree()
    tree.mounts[()] = FakeFs(entries)
    insp = Inspector(FakeVolumes())
    info = {"mountpoints": {"/": "/dev/fake"}, "filesystems": ["/dev/fake"], "warnings": []}
    insp._fstab("/dev/fake", tree, info)
    assert info["mountpoints"]["/"] == "/dev/fake"
    assert all(isinstance(w, str) for w in info["warnings"])
    assert all(not _BAD.search(w) for w in info["warnings"])


@given(S.integers(0, 5000))
def test_disk_names(i):
    name = disk_name(i)
    assert re.fullmatch(r"/dev/sd[a-z]+", name)
    if i:
        assert disk_name(i - 1) != name
    assert canonical_device(name.replace("/dev/sd", "/dev/vd")) == name


def test_disk_name_examples():
    assert [disk_name(i) for i in (0, 1, 25, 26, 27, 701, 702)] == [
        "/dev/sda", "/dev/sdb", "/dev/sdz", "/dev/sdaa", "/dev/sdab", "/dev/sdzz", "/dev/sdaaa"]
    assert canonical_device("/dev/hdb3") == "/dev/sdb3" and canonical_device("/dev/xvda") == "/dev/sda"
