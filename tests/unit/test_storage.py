"""Storage pools and volumes (issue 5 §4): virsh's formats and messages, errors, hostile names,
qcow2 backing formats, upload/download, and undefine --remove-all-storage. Real qemu-img, no VMs."""

import hashlib
import io
import json
import os
import shutil
import struct
import subprocess

import pytest

from vsh.core.output import human_size

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")

GIB = 1 << 30
MIB = 1 << 20
FIXED_SIZES = (100 * GIB, 0, 100 * GIB)


@pytest.fixture
def images(vsh_env):
    return vsh_env.store / "data" / "images"


@pytest.fixture
def fixed_sizes(monkeypatch):
    """Pool sizes as the virsh reference shows them (statvfs of a shared disk moves)."""
    from vsh.core.pools import Pools

    monkeypatch.setattr(Pools, "sizes", staticmethod(lambda pool: FIXED_SIZES))


def ok(res, out=None):
    assert res.status == 0, res
    assert res.err == "", res
    if out is not None:
        assert res.out == out
    return res.out


def table(*lines):
    """A virsh table from its rendered lines: the dashed rule is the widest line + 2."""
    return lines[0] + "\n" + "-" * (max(len(line) for line in lines) + 2) + "\n" + "".join(
        line + "\n" for line in lines[1:]) + "\n"


def fails(res, *lines):
    assert res.status == 1, res
    assert res.err == "".join(f"error: {line}\n" for line in lines), res
    return res


def qemu_info(path) -> dict:
    proc = subprocess.run(["qemu-img", "info", "--output=json", str(path)], capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout)


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fake_running(vsh_env, name: str, dom_id: int) -> None:
    """Make the store believe ``name`` runs (state.json and live.xml as the supervisor writes them)."""
    from vsh.core.store import boot_id

    rundir = vsh_env.store / "run" / name
    rundir.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = {"state": "running", "reason": "booted", "id": dom_id, "supervisor_pid": os.getpid(),
             "boot_id": boot_id(), "transient": False}
    (rundir / "state.json").write_text(json.dumps(state))
    xml = (vsh_env.domains / f"{name}.xml").read_text()
    (rundir / "live.xml").write_text(xml.replace("<domain type='qemu'>", f"<domain type='qemu' id='{dom_id}'>", 1))


def disk(path=None, dev="vda", pool=None, volume=None, extra=""):
    if pool is not None:
        return (f"<disk type='volume' device='disk'><source pool='{pool}' volume='{volume}'/>"
                f"<target dev='{dev}' bus='virtio'/>{extra}</disk>")
    return f"<disk type='file' device='disk'><source file='{path}'/><target dev='{dev}' bus='virtio'/>{extra}</disk>"


# -- the default pool ------------------------------------------------------------------------------


def test_default_pool_made_on_first_use(vsh, images):
    assert not images.exists()
    ok(vsh("pool-list", "--all"), " Name      State    Autostart\n"
                                  "-------------------------------\n"
                                  " default   active   yes\n\n")
    assert images.is_dir() and (images.stat().st_mode & 0o777) == 0o700


def test_pool_list_details_reference_layout(vsh, fixed_sizes):
    ok(vsh("pool-list", "--all", "--details"), table(
       " Name      State     Autostart   Persistent   Capacity     Allocation   Available",
       " default   running   yes         yes          100.00 GiB   0.00 B       100.00 GiB"))


def test_pool_info_reference_layout(vsh, fixed_sizes):
    uuid = ok(vsh("pool-uuid", "default")).strip()
    ok(vsh("pool-info", "default"),
       f"Name:           default\nUUID:           {uuid}\nState:          running\nPersistent:     yes\n"
       f"Autostart:      yes\nCapacity:       100.00 GiB\nAllocation:     0.00 B\nAvailable:      100.00 GiB\n\n")
    assert ok(vsh("pool-info", "default", "--bytes")).endswith(
        f"Capacity:       {100 * GIB}\nAllocation:     0\nAvailable:      {100 * GIB}\n\n")


def test_pool_sizes_come_from_statvfs(vsh, images):
    vsh("pool-list")
    vfs = os.statvfs(images)
    out = ok(vsh("pool-info", "default", "--bytes"))
    assert f"Capacity:       {vfs.f_blocks * vfs.f_frsize}\n" in out


def test_default_pool_not_made_again_after_undefine(vsh):
    ok(vsh("-q", "pool-destroy", "default"))
    ok(vsh("-q", "pool-undefine", "default"))
    ok(vsh("pool-list", "--all"), table(" Name   State   Autostart"))


# -- pool lifecycle ---------------------------------------------------------------------------------


def test_pool_lifecycle_messages(vsh, vsh_env, fixed_sizes):
    target = vsh_env.tmp / "p2dir"
    ok(vsh("pool-define-as", "p2", "dir", "--target", str(target)), "Pool p2 defined\n\n")
    ok(vsh("pool-list", "--all"), " Name      State      Autostart\n"
                                  "---------------------------------\n"
                                  " default   active     yes\n"
                                  " p2        inactive   no\n\n")
    ok(vsh("pool-list", "--all", "--details"), table(
       " Name      State      Autostart   Persistent   Capacity     Allocation   Available",
       " default   running    yes         yes          100.00 GiB   0.00 B       100.00 GiB",
       " p2        inactive   no          yes          -            -            -"))
    uuid = ok(vsh("pool-uuid", "p2")).strip()
    ok(vsh("pool-info", "p2"), f"Name:           p2\nUUID:           {uuid}\nState:          inactive\n"
                               "Persistent:     yes\nAutostart:      no\n\n")
    fails(vsh("pool-start", "p2"), "Failed to start pool p2",
          f"cannot open directory '{target}': No such file or directory")
    ok(vsh("pool-build", "p2"), "Pool p2 built\n\n")
    assert target.is_dir() and (target.stat().st_mode & 0o777) == 0o700
    ok(vsh("pool-start", "p2"), "Pool p2 started\n\n")
    fails(vsh("pool-start", "p2"), "Failed to start pool p2",
          "Requested operation is not valid: storage pool 'p2' is already active")
    fails(vsh("pool-undefine", "p2"), "Failed to undefine pool p2",
          "Requested operation is not valid: storage pool 'p2' is still active")
    ok(vsh("pool-refresh", "p2"), "Pool p2 refreshed\n\n")
    ok(vsh("pool-autostart", "p2"), "Pool p2 marked as autostarted\n\n")
    ok(vsh("pool-autostart", "p2", "--disable"), "Pool p2 unmarked as autostarted\n\n")
    ok(vsh("pool-destroy", "p2"), "Pool p2 destroyed\n\n")
    fails(vsh("pool-destroy", "p2"), "Failed to destroy pool p2",
          "Requested operation is not valid: storage pool 'p2' is not active")
    fails(vsh("pool-refresh", "p2"), "Failed to refresh pool p2",
          "Requested operation is not valid: storage pool 'p2' is not active")
    ok(vsh("pool-undefine", "p2"), "Pool p2 has been undefined\n\n")
    assert target.is_dir()  # the directory and its volumes stay
    fails(vsh("pool-info", "p2"), "failed to get pool 'p2'")


def test_pool_start_build(vsh, vsh_env):
    target = vsh_env.tmp / "a" / "b"
    ok(vsh("-q", "pool-define-as", "p3", "dir", "-", "-", "-", "-", str(target)))
    ok(vsh("pool-start", "p3", "--build"), "Pool p3 started\n\n")
    assert target.is_dir()


def test_pool_quiet_and_names(vsh, vsh_env):
    ok(vsh("-q", "pool-define-as", "Zed", "dir", "--target", str(vsh_env.tmp / "z")))
    ok(vsh("-q", "pool-define-as", "alpha", "dir", "--target", str(vsh_env.tmp / "a")))
    # sorted case-insensitively; virsh pads names to 20 columns
    ok(vsh("pool-list", "--all", "--name"), "alpha               \ndefault             \nZed                 \n\n")
    ok(vsh("pool-list", "--name"), "default             \n\n")
    ok(vsh("pool-list", "--inactive", "--name"), "alpha               \nZed                 \n\n")
    ok(vsh("pool-list", "--all", "--autostart", "--name"), "default             \n\n")
    ok(vsh("pool-list", "--all", "--no-autostart", "--name"), "alpha               \nZed                 \n\n")
    ok(vsh("pool-list", "--all", "--transient", "--name"), "\n")
    ok(vsh("pool-list", "--all", "--type", "dir,logical", "--name"),
       "alpha               \ndefault             \nZed                 \n\n")
    ok(vsh("pool-list", "--all", "--type", "logical", "--name"), "\n")
    uuid = ok(vsh("pool-uuid", "alpha")).strip()
    ok(vsh("pool-list", "--inactive", "--uuid"), "".join(
        f"{u:<36}\n" for u in (uuid, ok(vsh("pool-uuid", "Zed")).strip())) + "\n")
    ok(vsh("pool-list", "--inactive", "--uuid", "--name"), f"{uuid} alpha               \n"
       f"{ok(vsh('pool-uuid', 'Zed')).strip()} Zed                 \n\n")
    ok(vsh("pool-name", uuid), "alpha\n\n")
    assert ok(vsh("pool-info", uuid)).startswith("Name:           alpha\n")
    fails(vsh("pool-name", "alpha"), "failed to get pool 'alpha'")
    fails(vsh("pool-list", "--type", "bogus"), "Invalid pool type 'bogus'")
    fails(vsh("pool-list", "--all", "--inactive"), "Options --all and --inactive are mutually exclusive")
    fails(vsh("pool-list", "--details", "--name"), "Options --details and --name are mutually exclusive")


def test_pool_dumpxml(vsh, vsh_env, images, fixed_sizes):
    vsh("pool-list")
    uuid = ok(vsh("pool-uuid", "default")).strip()
    st = images.stat()
    body = (f"  <source>\n  </source>\n  <target>\n    <path>{images}</path>\n")
    ok(vsh("pool-dumpxml", "default"),
       f"<pool type='dir'>\n  <name>default</name>\n  <uuid>{uuid}</uuid>\n"
       f"  <capacity unit='bytes'>{100 * GIB}</capacity>\n  <allocation unit='bytes'>0</allocation>\n"
       f"  <available unit='bytes'>{100 * GIB}</available>\n" + body +
       f"    <permissions>\n      <mode>0700</mode>\n      <owner>{st.st_uid}</owner>\n"
       f"      <group>{st.st_gid}</group>\n    </permissions>\n  </target>\n</pool>\n\n")
    ok(vsh("pool-dumpxml", "default", "--inactive"),
       f"<pool type='dir'>\n  <name>default</name>\n  <uuid>{uuid}</uuid>\n"
       "  <capacity unit='bytes'>0</capacity>\n  <allocation unit='bytes'>0</allocation>\n"
       "  <available unit='bytes'>0</available>\n" + body + "  </target>\n</pool>\n\n")
    ok(vsh("pool-dumpxml", "default", "--xpath", "/pool/target/path/text()"), f"{images}\n\n")


def test_pool_define_from_xml(vsh, vsh_env):
    target = vsh_env.tmp / "xmlpool"
    uuid = "0f4c3c1a-2b1b-4e5e-9a6f-1d2c3b4a5e6f"
    xml = vsh_env.tmp / "pool.xml"
    xml.write_text(f"<pool type='dir'><name>xp</name><uuid>{uuid}</uuid><target><path>{target}/</path>"
                   "<permissions><mode>0750</mode></permissions></target></pool>")
    ok(vsh("pool-define", str(xml)), f"Pool xp defined from {xml}\n\n")
    ok(vsh("pool-uuid", "xp"), f"{uuid}\n\n")
    out = ok(vsh("pool-dumpxml", "xp"))
    assert f"<path>{target}</path>" in out and "<mode>0750</mode>" in out
    ok(vsh("-q", "pool-build", "xp"))
    assert (target.stat().st_mode & 0o777) == 0o750
    # the same name and uuid redefine; another uuid is refused
    ok(vsh("pool-define", str(xml)))
    xml.write_text(f"<pool type='dir'><name>xp</name><target><path>{target}</path></target></pool>")
    res = fails(vsh("pool-define", str(xml)), f"Failed to define pool from {xml}",
                f"operation failed: pool 'xp' is already defined with uuid {uuid}")
    assert res.out == "\n"


def test_stored_definitions_read_without_lxml_agree(vsh, vsh_env):
    from vsh.core.pools import parse_pool_xml
    from vsh.core.pools.model import quick_pool

    xml = vsh_env.tmp / "pool.xml"
    xml.write_text(f"<pool type='dir'><name>q&amp;p</name><target><path>{vsh_env.tmp / 'q'}</path>"
                   "<permissions><mode>0750</mode><owner>0</owner></permissions></target></pool>")
    ok(vsh("-q", "pool-define", str(xml)))
    stored = (vsh_env.store / "config" / "storage" / "q&p.xml").read_bytes()
    quick, full = quick_pool(stored), parse_pool_xml(stored)
    assert quick is not None
    assert vars(quick) == vars(full) and quick.name == "q&p" and quick.mode == 0o750 and quick.owner == 0
    for odd in (stored.replace(b"<source>", b"<source><extra/>"), b"<!DOCTYPE pool>" + stored,
                stored.replace(b"type='dir'", b"type='logical'"), stored.replace(b"<name>", b"<name>a/")):
        assert quick_pool(odd) is None  # the full parser decides
    assert ok(vsh("pool-info", "q&p")).startswith("Name:           q&p\n")


@pytest.mark.parametrize("content, message", [
    ("<pool type='logical'><name>x</name><target><path>/x</path></target></pool>",
     "unsupported configuration: vsh supports storage pools of type 'dir' only, not 'logical' "
     "(libvirt's pool types: dir, fs, netfs, logical, disk, iscsi, iscsi-direct, scsi, mpath, rbd, sheepdog, "
     "gluster, zfs, vstorage)"),
    ("<pool type='bogus'><name>x</name><target><path>/x</path></target></pool>",
     "XML error: unknown storage pool type bogus"),
    ("<pool><name>x</name><target><path>/x</path></target></pool>", "XML error: missing storage pool type"),
    ("<pool type='dir'><target><path>/x</path></target></pool>", "XML error: missing pool name element"),
    ("<pool type='dir'><name>x</name></pool>", "XML error: missing storage pool target path"),
    ("<pool type='dir'><name>x</name><target><path>rel/dir</path></target></pool>",
     "XML error: storage pool target path 'rel/dir' must be absolute"),
    ("<pool type='dir'><name>x</name><uuid>nope</uuid><target><path>/x</path></target></pool>",
     "XML error: malformed uuid element 'nope'"),
    ("<pool type='dir'><name>a/b</name><target><path>/x</path></target></pool>",
     "pool name 'a/b' cannot contain '/'"),
    ("<pool type='dir'><name>..</name><target><path>/x</path></target></pool>", "pool name '..' is not allowed"),
    ("<domain/>", "XML error: expecting root element of 'pool', not 'domain'"),
])
def test_pool_define_errors(vsh, vsh_env, store_tree, content, message):
    vsh("pool-list")
    xml = vsh_env.tmp / "bad.xml"
    xml.write_text(content)
    before = store_tree()
    fails(vsh("pool-define", str(xml)), f"Failed to define pool from {xml}", message)
    assert store_tree() == before


def test_pool_define_as_errors(vsh, vsh_env, images, store_tree):
    vsh("pool-list")
    before = store_tree()
    unsupported = ("unsupported configuration: vsh supports storage pools of type 'dir' only, not 'logical' "
                   "(libvirt's pool types: dir, fs, netfs, logical, disk, iscsi, iscsi-direct, scsi, mpath, rbd, sheepdog, "
                   "gluster, zfs, vstorage)")
    fails(vsh("pool-define-as", "p", "logical", "--target", "/x"), "Failed to define pool p", unsupported)
    # the type is what is refused, not the source options the type needs
    fails(vsh("pool-define-as", "p", "logical", "--source-name", "vg0", "--target", "/dev/vg0"),
          "Failed to define pool p", unsupported)
    fails(vsh("pool-define-as", "p", "netfs", "h", "/export", "--target", "/mnt/x"), "Failed to define pool p",
          unsupported.replace("'logical' (", "'netfs' ("))
    fails(vsh("pool-define-as", "p", "bogus", "--target", "/x"), "Failed to define pool p",
          "unknown storage pool type bogus")
    fails(vsh("pool-define-as", "p", "dir"), "Failed to define pool p", "XML error: missing storage pool target path")
    fails(vsh("pool-define-as", "p", "dir", "--source-host", "h", "--target", "/x"), "Failed to define pool p",
          "unsupported configuration: --source-host is not used by 'dir' pools")
    fails(vsh("pool-define-as", "default", "dir", "--target", str(vsh_env.tmp / "other")),
          "Failed to define pool default", "operation failed: pool 'default' is already defined with uuid "
          + ok(vsh("pool-uuid", "default")).strip())
    fails(vsh("pool-define-as", "dup", "dir", "--target", str(images)), "Failed to define pool dup",
          "operation failed: Storage source conflict with pool: 'default'")
    for name, msg in (("a/b", "pool name 'a/b' cannot contain '/'"), (".hid", "pool name '.hid' cannot start with '.'"),
                      ("x\ny", "pool name 'x\\ny' cannot contain control characters")):
        fails(vsh("pool-define-as", name, "dir", "--target", "/x"), f"Failed to define pool {name}", msg)
    assert store_tree() == before
    ok(vsh("pool-define-as", "p", "dir", "--target", "/x", "--print-xml"),
       "<pool type='dir'>\n  <name>p</name>\n  <target>\n    <path>/x</path>\n  </target>\n</pool>\n\n")
    assert store_tree() == before


def test_pool_state_follows_autostart_after_a_reboot(vsh, vsh_env):
    """With no state for this boot, a pool is active exactly when it is autostarted (a daemon's boot)."""
    target = vsh_env.tmp / "p"
    ok(vsh("-q", "pool-define-as", "p", "dir", "--target", str(target)))
    ok(vsh("-q", "pool-start", "p", "--build"))
    ok(vsh("-q", "pool-autostart", "default", "--disable"))
    ok(vsh("-q", "pool-destroy", "default"))
    ok(vsh("-q", "pool-autostart", "p"))
    states = vsh_env.store / "run" / ".pools"
    for entry in states.iterdir():  # an old boot's state
        entry.write_text(entry.read_text().split()[0] + " 00000000-old-boot\n")
    ok(vsh("pool-list", "--all"), " Name      State      Autostart\n"
                                  "---------------------------------\n"
                                  " default   inactive   no\n"
                                  " p         active     yes\n\n")


# -- volumes ---------------------------------------------------------------------------------------


def test_vol_create_as_and_list(vsh, images):
    ok(vsh("vol-create-as", "default", "vol1.img", "1G"), "Vol vol1.img created\n\n")
    ok(vsh("vol-create-as", "default", "data.qcow2", "10M", "--format", "qcow2"), "Vol data.qcow2 created\n\n")
    ok(vsh("vol-create-as", "default", "Big.raw", "3M", "--allocation", "0"), "Vol Big.raw created\n\n")
    vol1 = images / "vol1.img"
    assert vol1.stat().st_size == GIB and vol1.stat().st_blocks * 512 >= GIB  # fully allocated, like libvirt
    assert (vol1.stat().st_mode & 0o777) == 0o600
    assert (images / "Big.raw").stat().st_blocks == 0  # sparse
    assert qemu_info(images / "data.qcow2")["format"] == "qcow2"
    rows = [("Big.raw", images / "Big.raw"), ("data.qcow2", images / "data.qcow2"), ("vol1.img", vol1)]
    ok(vsh("vol-list", "default"), table(" Name         Path", *(f" {n:<10}   {p}" for n, p in rows)))

    def alloc(p):
        return human_size(p.stat().st_blocks * 512)

    details = [(n, str(p), "file", cap, alloc(p)) for (n, p), cap in zip(rows, ("3.00 MiB", "10.00 MiB", "1.00 GiB"))]
    headers = ("Name", "Path", "Type", "Capacity", "Allocation")
    widths = [max(len(r[i]) for r in details + [headers]) for i in range(5)]

    def line(cells):
        return " " + "   ".join(c.ljust(w) for c, w in zip(cells[:-1], widths)) + "   " + cells[-1] + "\n"

    ok(vsh("vol-list", "default", "--details"),
       line(headers) + "-" * (1 + sum(widths) + 12 + 2) + "\n" + "".join(line(r) for r in details) + "\n")


def test_vol_list_empty_reference_layout(vsh):
    ok(vsh("vol-list", "default"), " Name   Path\n--------------\n\n")
    ok(vsh("vol-list", "default", "--details"),
       " Name   Path   Type   Capacity   Allocation\n" + "-" * 45 + "\n\n")


def test_vol_info_path_key_name_pool(vsh, images):
    ok(vsh("-q", "vol-create-as", "default", "vol1.img", "10M"))
    path = images / "vol1.img"
    alloc = path.stat().st_blocks * 512
    ok(vsh("vol-info", "vol1.img", "--pool", "default"),
       f"Name:           vol1.img\nType:           file\nCapacity:       10.00 MiB\n"
       f"Allocation:     {human_size(alloc)}\n\n")
    ok(vsh("vol-info", str(path), "--bytes"),
       f"Name:           vol1.img\nType:           file\nCapacity:       {10 * MIB} bytes\n"
       f"Allocation:     {alloc} bytes\n\n")
    assert ok(vsh("vol-info", str(path), "--physical")).endswith("Physical:       10.00 MiB\n\n")
    ok(vsh("vol-path", "vol1.img", "--pool", "default"), f"{path}\n\n")
    ok(vsh("vol-key", "vol1.img", "--pool", "default"), f"{path}\n\n")
    ok(vsh("vol-name", str(path)), "vol1.img\n\n")
    ok(vsh("vol-pool", str(path)), "default\n\n")
    ok(vsh("vol-pool", str(path), "--uuid"), ok(vsh("pool-uuid", "default")))
    # a path through a symlinked directory or with dot segments finds the same volume
    os.symlink(images, images.parent / "alias")
    ok(vsh("vol-name", str(images.parent / "alias" / "vol1.img")), "vol1.img\n\n")
    ok(vsh("vol-name", str(images / ".." / "images" / "vol1.img")), "vol1.img\n\n")
    data = json.loads(ok(vsh("vol-info", "vol1.img", "--pool", "default", "--json")))
    assert data["capacity"] == 10 * MIB and data["format"] == "raw" and data["pool"] == "default"
    data = json.loads(ok(vsh("--json", "vol-list", "default")))
    assert data == [{"name": "vol1.img", "path": str(path), "key": str(path), "pool": "default"}]


def test_vol_dumpxml(vsh, images):
    ok(vsh("-q", "vol-create-as", "default", "v.qcow2", "10M", "--format", "qcow2"))
    path = images / "v.qcow2"
    st = path.stat()
    out = ok(vsh("vol-dumpxml", "v.qcow2", "--pool", "default"))
    assert out.startswith(
        f"<volume type='file'>\n  <name>v.qcow2</name>\n  <key>{path}</key>\n"
        f"  <capacity unit='bytes'>{10 * MIB}</capacity>\n  <allocation unit='bytes'>{st.st_blocks * 512}</allocation>\n"
        f"  <physical unit='bytes'>{st.st_size}</physical>\n  <target>\n    <path>{path}</path>\n"
        f"    <format type='qcow2'/>\n    <permissions>\n      <mode>0600</mode>\n      <owner>{st.st_uid}</owner>\n"
        f"      <group>{st.st_gid}</group>\n    </permissions>\n    <timestamps>\n")
    assert out.endswith("    </timestamps>\n    <compat>1.1</compat>\n    <clusterSize unit='B'>65536</clusterSize>\n"
                        "    <features/>\n  </target>\n</volume>\n\n")
    ok(vsh("vol-dumpxml", "v.qcow2", "--pool", "default", "--xpath", "/volume/target/format/@type"),
       ' type="qcow2"\n\n')


def test_vol_create_print_xml(vsh, images, store_tree):
    vsh("pool-list")
    ok(vsh("-q", "vol-create-as", "default", "base.qcow2", "1M", "--format", "qcow2"))
    before = store_tree()
    ok(vsh("vol-create-as", "default", "o.qcow2", "2M", "--format", "qcow2", "--allocation", "0",
           "--backing-vol", "base.qcow2", "--backing-vol-format", "qcow2", "--print-xml"),
       f"<volume>\n  <name>o.qcow2</name>\n  <capacity>{2 * MIB}</capacity>\n  <allocation>0</allocation>\n"
       f"  <target>\n    <format type='qcow2'/>\n  </target>\n  <backingStore>\n"
       f"    <path>{images / 'base.qcow2'}</path>\n    <format type='qcow2'/>\n  </backingStore>\n</volume>\n\n")
    assert store_tree() == before


def test_qcow2_backing_volume_records_its_format(vsh, images):
    ok(vsh("-q", "vol-create-as", "default", "base.img", "4M"))
    ok(vsh("vol-create-as", "default", "top.qcow2", "4M", "--format", "qcow2", "--backing-vol", "base.img",
           "--backing-vol-format", "raw"), "Vol top.qcow2 created\n\n")
    info = qemu_info(images / "top.qcow2")
    assert info["backing-filename"] == str(images / "base.img")
    assert info["backing-filename-format"] == "raw"
    out = ok(vsh("vol-dumpxml", "top.qcow2", "--pool", "default"))
    assert (f"  <backingStore>\n    <path>{images / 'base.img'}</path>\n    <format type='raw'/>\n" in out)
    # by path too, and a qcow2 chain
    ok(vsh("-q", "vol-create-as", "default", "top2.qcow2", "4M", "--format", "qcow2",
           "--backing-vol", str(images / "top.qcow2"), "--backing-vol-format", "qcow2"))
    assert qemu_info(images / "top2.qcow2")["backing-filename-format"] == "qcow2"


def test_backing_volume_without_format_is_refused(vsh, images, store_tree):
    ok(vsh("-q", "vol-create-as", "default", "base.img", "4M"))
    before = store_tree()
    fails(vsh("vol-create-as", "default", "top.qcow2", "4M", "--format", "qcow2", "--backing-vol", "base.img"),
          "Failed to create vol top.qcow2",
          "a backing volume needs its format (--backing-vol-format): vsh never probes a backing file's format")
    fails(vsh("vol-create-as", "default", "top.img", "4M", "--backing-vol", "base.img", "--backing-vol-format", "raw"),
          "Failed to create vol top.img",
          "unsupported configuration: a backing volume needs the format qcow2, not 'raw'")
    fails(vsh("vol-create-as", "default", "top.qcow2", "4M", "--format", "qcow2", "--backing-vol", "nosuch",
              "--backing-vol-format", "raw"), "failed to get vol 'nosuch'")
    fails(vsh("vol-create-as", "default", "x", "4M", "--backing-vol-format", "vmdk"),
          "invalid value 'vmdk' for --backing-vol-format; expected one of: raw, qcow2")
    assert store_tree() == before


def _drop_backing_format(path):
    """Rewrite a qcow2 header so that its backing file has no recorded format (an old or hostile image)."""
    data = bytearray(path.read_bytes()[:65536])
    pos = data.find(struct.pack(">I", 0xE2792ACA))
    assert pos > 0
    with open(path, "r+b") as fh:
        fh.seek(pos)
        fh.write(struct.pack(">I", 0x0BADF00D))  # an unknown extension: QEMU skips it, and so does vsh


def test_chain_without_backing_format_is_never_opened(vsh, images):
    ok(vsh("-q", "vol-create-as", "default", "base.img", "4M"))
    ok(vsh("-q", "vol-create-as", "default", "top.qcow2", "4M", "--format", "qcow2", "--backing-vol", "base.img",
           "--backing-vol-format", "raw"))
    _drop_backing_format(images / "top.qcow2")
    msg = (f"'{images / 'top.qcow2'}' names its backing file '{images / 'base.img'}' without a format, "
           "and vsh never probes a backing file's format")
    fails(vsh("vol-clone", "top.qcow2", "c.qcow2", "--pool", "default"), "Failed to clone vol from top.qcow2", msg)
    fails(vsh("vol-resize", "top.qcow2", "8M", "--pool", "default"),
          "Failed to change size of volume 'top.qcow2' to 8M", msg)
    fails(vsh("vol-create-as", "default", "t2.qcow2", "4M", "--format", "qcow2", "--backing-vol", "top.qcow2",
              "--backing-vol-format", "qcow2"), "Failed to create vol t2.qcow2", msg)
    assert not (images / "c.qcow2").exists() and not (images / "t2.qcow2").exists()


def test_backing_file_outside_the_pools_is_never_opened(vsh, images, vsh_env):
    secret = vsh_env.tmp / "secret.raw"
    secret.write_bytes(b"secret" * 1000)
    ok(vsh("-q", "vol-list", "default"))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(secret), "-F", "raw",
                    str(images / "evil.qcow2"), "1M"], check=True)
    fails(vsh("vol-clone", "evil.qcow2", "copy.qcow2", "--pool", "default"), "Failed to clone vol from evil.qcow2",
          f"backing file '{secret}' of '{images / 'evil.qcow2'}' is not a volume of an active vsh pool")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={vsh_env.tmp / 'df.raw'}",
                    str(images / "ext.qcow2"), "1M"], check=True)
    fails(vsh("vol-clone", "ext.qcow2", "copy.qcow2", "--pool", "default"), "Failed to clone vol from ext.qcow2",
          f"'{images / 'ext.qcow2'}' uses an external data file, which vsh does not open")
    assert sorted(os.listdir(images)) == ["evil.qcow2", "ext.qcow2"]


def test_vol_create_from_xml(vsh, vsh_env, images):
    ok(vsh("-q", "vol-create-as", "default", "base.qcow2", "1M", "--format", "qcow2"))
    xml = vsh_env.tmp / "vol.xml"
    xml.write_text(f"<volume><name>x.qcow2</name><capacity unit='MiB'>5</capacity>"
                   f"<target><format type='qcow2'/></target><backingStore><path>{images / 'base.qcow2'}</path>"
                   "<format type='qcow2'/></backingStore></volume>")
    ok(vsh("vol-create", "default", str(xml)), f"Vol x.qcow2 created from {xml}\n\n")
    info = qemu_info(images / "x.qcow2")
    assert info["virtual-size"] == 5 * MIB and info["backing-filename-format"] == "qcow2"
    xml.write_text("<volume><name>y.img</name><capacity>4096</capacity><allocation>0</allocation></volume>")
    ok(vsh("vol-create", "default", str(xml)))
    assert (images / "y.img").stat().st_size == 4096
    xml.write_text(f"<volume><name>z.qcow2</name><capacity>1048576</capacity><target><format type='qcow2'/></target>"
                   f"<backingStore><path>{images / 'base.qcow2'}</path></backingStore></volume>")
    fails(vsh("vol-create", "default", str(xml)), f"Failed to create vol from {xml}",
          "a backing volume needs its format (--backing-vol-format): vsh never probes a backing file's format")
    xml.write_text("<volume><name>../z</name><capacity>1</capacity></volume>")
    fails(vsh("vol-create", "default", str(xml)), f"Failed to create vol from {xml}",
          "volume name '../z' cannot contain '/'")
    xml.write_text("<volume><name>z</name></volume>")
    fails(vsh("vol-create", "default", str(xml)), f"Failed to create vol from {xml}",
          "XML error: missing capacity element")
    xml.write_text("<volume><name>z</name><capacity>1</capacity><target><format type='vmdk'/></target></volume>")
    fails(vsh("vol-create", "default", str(xml)), f"Failed to create vol from {xml}",
          "unsupported configuration: vsh creates volumes in the formats raw, qcow2, not 'vmdk'")
    assert sorted(os.listdir(images)) == ["base.qcow2", "x.qcow2", "y.img"]


def test_vol_clone(vsh, images):
    ok(vsh("-q", "vol-create-as", "default", "a.img", "2M", "--allocation", "0"))
    ok(vsh("-q", "vol-upload", "a.img", "/dev/null", "--pool", "default"))
    with open(images / "a.img", "r+b") as fh:
        fh.seek(MIB)
        fh.write(b"payload" * 100)
    ok(vsh("vol-clone", "a.img", "b.img", "--pool", "default"), "Vol b.img cloned from a.img\n\n")
    assert sha256(images / "a.img") == sha256(images / "b.img")
    assert ((images / "b.img").stat().st_mode & 0o777) == 0o600
    fails(vsh("vol-clone", "a.img", "b.img", "--pool", "default"), "Failed to clone vol from a.img",
          "operation failed: storage vol 'b.img' already exists")
    # a qcow2 overlay keeps its backing file and format
    ok(vsh("-q", "vol-create-as", "default", "o.qcow2", "2M", "--format", "qcow2", "--backing-vol", "a.img",
           "--backing-vol-format", "raw"))
    ok(vsh("vol-clone", str(images / "o.qcow2"), "o2.qcow2"), "Vol o2.qcow2 cloned from o.qcow2\n\n")
    info = qemu_info(images / "o2.qcow2")
    assert info["backing-filename"] == str(images / "a.img") and info["backing-filename-format"] == "raw"


def test_vol_delete_and_lookup_errors(vsh, vsh_env, images):
    ok(vsh("-q", "vol-create-as", "default", "v.img", "1M"))
    target = vsh_env.tmp / "p2"
    ok(vsh("-q", "pool-define-as", "p2", "dir", "--target", str(target)))
    ok(vsh("-q", "pool-start", "p2", "--build"))
    fails(vsh("vol-info", "v.img"), "failed to get vol 'v.img', specifying --pool might help")
    fails(vsh("vol-info", "v.img", "--pool", "p2"), "failed to get vol 'v.img'")
    fails(vsh("vol-info", str(images / "v.img"), "--pool", "p2"),
          f"Requested volume '{images / 'v.img'}' is not in pool 'p2'")
    fails(vsh("vol-info", "v.img", "--pool", "nosuch"), "failed to get pool 'nosuch'")
    fails(vsh("vol-name", "v.img"), "failed to get vol 'v.img'")
    ok(vsh("-q", "pool-destroy", "p2"))
    fails(vsh("vol-list", "p2"), "Failed to list volumes",
          "Requested operation is not valid: storage pool 'p2' is not active")
    fails(vsh("vol-info", "x", "--pool", "p2"), "pool 'p2' is not active")
    fails(vsh("vol-create-as", "p2", "x", "1M"), "Failed to create vol x",
          "Requested operation is not valid: storage pool 'p2' is not active")
    ok(vsh("vol-delete", "v.img", "--pool", "default"), "Vol v.img deleted\n\n")
    assert not (images / "v.img").exists()
    fails(vsh("vol-delete", "v.img", "--pool", "default"), "failed to get vol 'v.img'")
    ok(vsh("-q", "vol-create-as", "default", "w.img", "1M"))
    ok(vsh("vol-delete", str(images / "w.img")), f"Vol {images / 'w.img'} deleted\n\n")


def test_vol_create_errors(vsh, images, store_tree):
    ok(vsh("-q", "vol-create-as", "default", "v.img", "1M"))
    before = store_tree()
    fails(vsh("vol-create-as", "default", "v.img", "1M"), "Failed to create vol v.img",
          "operation failed: storage vol 'v.img' already exists")
    fails(vsh("vol-create-as", "default", "x", "12Q"), "Malformed size 12Q")
    fails(vsh("vol-create-as", "default", "x", "abc"), "Malformed size abc")
    fails(vsh("vol-create-as", "default", "x", "1M", "--allocation", "z"), "Malformed size z")
    fails(vsh("vol-create-as", "default", "x", "1M", "--format", "vmdk"),
          "invalid value 'vmdk' for --format; expected one of: raw, qcow2")
    fails(vsh("vol-create-as", "nosuch", "x", "1M"), "failed to get pool 'nosuch'")
    assert store_tree() == before


@pytest.mark.parametrize("name, message", [
    ("../escape.img", "volume name '../escape.img' cannot contain '/'"),
    ("a/b", "volume name 'a/b' cannot contain '/'"),
    ("..", "volume name '..' is not allowed"),
    (".", "volume name '.' is not allowed"),
    (".hidden", "volume name '.hidden' cannot start with '.'"),
    ("new\nline", "volume name 'new\\nline' cannot contain control characters"),
    ("esc\x1b[31m", "volume name 'esc\\x1b[31m' cannot contain control characters"),
    ("x" * 256, "volume name is too long (256 bytes; the limit is 255)"),
])
def test_hostile_volume_names(vsh, vsh_env, store_tree, name, message):
    vsh("pool-list")
    before = store_tree()
    from vsh.core.escape import escape

    # the context line quotes the name as given, through the terminal rule (errors keep their newlines)
    fails(vsh("vol-create-as", "default", name, "1M"), f"Failed to create vol {escape(name, keep_newlines=True)}",
          message)
    assert store_tree() == before
    assert not (vsh_env.store / "data" / "escape.img").exists()


def test_hostile_names_never_become_paths(vsh, vsh_env, images):
    vsh("pool-list")
    (vsh_env.store / "data" / "outside.img").write_bytes(b"x" * 10)
    for ident in ("../outside.img", "..", ".", "/etc/passwd", str(images), "", "a\x00b"):
        res = vsh("vol-info", ident, "--pool", "default")
        assert res.status == 1 and res.out == "\n", (ident, res)
    fails(vsh("vol-delete", "../outside.img", "--pool", "default"), "failed to get vol '../outside.img'")
    fails(vsh("vol-clone", "x", "../y", "--pool", "default"), "failed to get vol 'x'")
    assert (vsh_env.store / "data" / "outside.img").exists()


def test_symlinks_and_odd_entries_are_not_volumes(vsh, vsh_env, images):
    ok(vsh("-q", "vol-create-as", "default", "real.img", "1M"))
    secret = vsh_env.tmp / "secret"
    secret.write_text("top secret")
    os.symlink(secret, images / "link.img")
    (images / "bad\nname").write_bytes(b"")
    (images / ".vsh-tmp-123").write_bytes(b"")
    ok(vsh("vol-list", "default"), table(" Name       Path", f" real.img   {images / 'real.img'}"))
    fails(vsh("vol-info", "link.img", "--pool", "default"), "failed to get vol 'link.img'")
    fails(vsh("vol-wipe", "link.img", "--pool", "default"), "failed to get vol 'link.img'")
    fails(vsh("vol-upload", str(images / "link.img"), "/dev/null"),
          f"failed to get vol '{images / 'link.img'}', specifying --pool might help")
    assert secret.read_text() == "top secret"


def test_vol_resize(vsh, images):
    ok(vsh("-q", "vol-create-as", "default", "r.img", "10M", "--allocation", "0"))
    ok(vsh("vol-resize", "r.img", "20M", "--pool", "default"), "Size of volume 'r.img' successfully changed to 20M\n\n")
    assert (images / "r.img").stat().st_size == 20 * MIB
    fails(vsh("vol-resize", "r.img", "5M", "--pool", "default"), "Failed to change size of volume 'r.img' to 5M",
          "invalid argument: Can't shrink capacity below current capacity unless shrink flag explicitly specified")
    fails(vsh("vol-resize", "r.img", "-5M", "--pool", "default"), "negative size requires --shrink")
    ok(vsh("vol-resize", "r.img", "-5M", "--pool", "default", "--shrink"),
       "Size of volume 'r.img' successfully changed by 5M\n\n")
    assert (images / "r.img").stat().st_size == 15 * MIB
    ok(vsh("vol-resize", "r.img", "1M", "--pool", "default", "--delta"),
       "Size of volume 'r.img' successfully changed by 1M\n\n")
    assert (images / "r.img").stat().st_size == 16 * MIB
    ok(vsh("vol-resize", "r.img", "8M", "--pool", "default", "--shrink"),
       "Size of volume 'r.img' successfully changed to 8M\n\n")
    assert (images / "r.img").stat().st_size == 8 * MIB
    fails(vsh("vol-resize", "r.img", "1X", "--pool", "default"), "Malformed size 1X")
    ok(vsh("-q", "vol-create-as", "default", "q.qcow2", "10M", "--format", "qcow2"))
    ok(vsh("-q", "vol-resize", "q.qcow2", "30M", "--pool", "default"))
    assert qemu_info(images / "q.qcow2")["virtual-size"] == 30 * MIB
    out = ok(vsh("vol-info", "q.qcow2", "--pool", "default"))
    assert out.startswith("Name:           q.qcow2\nType:           file\nCapacity:       30.00 MiB\n")


def test_vol_wipe_raw_keeps_holes(vsh, images):
    ok(vsh("-q", "vol-create-as", "default", "w.img", "8M", "--allocation", "0"))
    with open(images / "w.img", "r+b") as fh:
        fh.seek(2 * MIB)
        fh.write(os.urandom(MIB))
    ok(vsh("vol-wipe", "w.img", "--pool", "default"), "Vol w.img wiped\n\n")
    assert (images / "w.img").read_bytes() == bytes(8 * MIB)
    assert (images / "w.img").stat().st_blocks * 512 <= 2 * MIB  # the holes stayed holes
    ok(vsh("vol-wipe", "w.img", "--pool", "default", "--algorithm", "zero"))
    fails(vsh("vol-wipe", "w.img", "--pool", "default", "--algorithm", "nnsa"),
          "invalid value 'nnsa' for --algorithm; expected one of: zero")


def test_vol_wipe_qcow2_is_made_empty(vsh, images, vsh_env):
    ok(vsh("-q", "vol-create-as", "default", "base.img", "4M"))
    ok(vsh("-q", "vol-create-as", "default", "q.qcow2", "4M", "--format", "qcow2", "--backing-vol", "base.img",
           "--backing-vol-format", "raw"))
    out = vsh_env.tmp / "flat.raw"

    def flat() -> bytes:
        subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(images / "q.qcow2"), str(out)],
                       check=True)
        return out.read_bytes()

    if shutil.which("qemu-io"):
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x55 0 1M", str(images / "q.qcow2")],
                       check=True, capture_output=True)
        assert flat()[:MIB] == b"\x55" * MIB
    ok(vsh("vol-wipe", "q.qcow2", "--pool", "default"), "Vol q.qcow2 wiped\n\n")
    info = qemu_info(images / "q.qcow2")
    assert info["virtual-size"] == 4 * MIB and info["backing-filename-format"] == "raw"
    assert flat() == bytes(4 * MIB)
    assert ((images / "q.qcow2").stat().st_mode & 0o777) == 0o600


def test_upload_download_round_trip(vsh, vsh_env, images):
    src = vsh_env.tmp / "src.bin"
    src.write_bytes(os.urandom(3 * MIB + 12345))
    ok(vsh("-q", "vol-create-as", "default", "v.img", "4M", "--allocation", "0"))
    ok(vsh("vol-upload", "v.img", str(src), "--pool", "default"), "\n")
    dst = vsh_env.tmp / "dst.bin"
    ok(vsh("vol-download", "v.img", str(dst), "--pool", "default", "--length", str(src.stat().st_size)), "\n")
    assert sha256(dst) == sha256(src)
    assert (dst.stat().st_mode & 0o777) == 0o600
    # the whole volume: the upload did not truncate it
    ok(vsh("vol-download", str(images / "v.img"), str(dst)))
    assert dst.stat().st_size == 4 * MIB
    assert dst.read_bytes()[:src.stat().st_size] == src.read_bytes()
    # --offset and --length, both ways
    ok(vsh("vol-upload", "v.img", str(src), "--pool", "default", "--offset", "1000", "--length", "5000"))
    ok(vsh("vol-download", "v.img", str(dst), "--pool", "default", "--offset", "1000", "--length", "5000"))
    assert dst.read_bytes() == src.read_bytes()[:5000]
    data = json.loads(ok(vsh("--json", "vol-download", "v.img", str(dst), "--pool", "default", "--offset",
                             str(4 * MIB - 10))))
    assert data == {"name": "v.img", "bytes": 10}
    fails(vsh("vol-upload", "v.img", str(vsh_env.tmp / "nosuch"), "--pool", "default"),
          f"cannot read {vsh_env.tmp / 'nosuch'}: No such file or directory")
    fails(vsh("vol-download", "v.img", str(vsh_env.tmp / "nodir" / "f"), "--pool", "default"),
          f"cannot create {vsh_env.tmp / 'nodir' / 'f'}: No such file or directory")
    fails(vsh("vol-upload", "v.img", str(src), "--pool", "default", "--offset", "-1"),
          "Numeric value '-1' for <offset> option is malformed or out of range")


def test_sparse_transfers(vsh, vsh_env, images):
    ok(vsh("-q", "vol-create-as", "default", "s.img", "16M", "--allocation", "0"))
    chunk = os.urandom(MIB)
    with open(images / "s.img", "r+b") as fh:
        fh.seek(4 * MIB)
        fh.write(chunk)
    dst = vsh_env.tmp / "s.bin"
    ok(vsh("vol-download", "s.img", str(dst), "--pool", "default", "--sparse"))
    assert dst.stat().st_size == 16 * MIB and dst.stat().st_blocks * 512 <= 2 * MIB
    assert sha256(dst) == sha256(images / "s.img")
    # a sparse upload makes the source's holes holes (zeroes) in the volume, even over old data
    ok(vsh("-q", "vol-create-as", "default", "full.img", "16M"))
    with open(images / "full.img", "r+b") as fh:
        fh.write(b"\xff" * 16 * MIB)
    ok(vsh("vol-upload", "full.img", str(dst), "--pool", "default", "--sparse"))
    assert sha256(images / "full.img") == sha256(dst)
    assert (images / "full.img").stat().st_blocks * 512 <= 2 * MIB


def test_progress_only_on_a_terminal(vsh, vsh_env):
    from vsh.commands.storage import ProgressBar
    from vsh.core.sparsecopy import copy_data

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    src = vsh_env.tmp / "p.bin"
    src.write_bytes(os.urandom(MIB))
    bar = ProgressBar(stream, "upload p")
    fd_in = os.open(src, os.O_RDONLY)
    fd_out = os.open(vsh_env.tmp / "p.out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert copy_data(fd_in, fd_out, 0, 0, None, progress=bar) == MIB
    finally:
        os.close(fd_in)
        os.close(fd_out)
    text = stream.getvalue()
    assert text.startswith("\rupload p [") and " 100%    1.0 MiB/1.0 MiB " in text and text.endswith("\n")
    # in a script (stderr is not a terminal) nothing but the command's own output appears
    ok(vsh("-q", "vol-create-as", "default", "v.img", "1M"))
    res = vsh("vol-upload", "v.img", str(src), "--pool", "default")
    assert (res.status, res.out, res.err) == (0, "\n", "")


def test_failed_create_leaves_nothing(vsh, images, monkeypatch):
    import vsh.core.qemuimg as qemuimg_mod
    from vsh.core.errors import VshError

    vsh("pool-list")

    def broken(args, progress_fd=None):
        raise VshError("qemu-img create failed: simulated")

    monkeypatch.setattr(qemuimg_mod, "qemu_img", broken)
    fails(vsh("vol-create-as", "default", "q.qcow2", "1M", "--format", "qcow2"), "Failed to create vol q.qcow2",
          "qemu-img create failed: simulated")
    assert os.listdir(images) == []


def test_refresh_removes_leftovers_of_killed_creates(vsh, images):
    vsh("pool-list")
    dead = _dead_pid()
    (images / f".vsh-tmp-{dead}-0123456789ab").write_bytes(b"half")
    (images / f".vsh-tmp-{os.getpid()}-0123456789ab").write_bytes(b"in progress")
    ok(vsh("pool-refresh", "default"), "Pool default refreshed\n\n")
    assert os.listdir(images) == [f".vsh-tmp-{os.getpid()}-0123456789ab"]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_readonly_refuses_changes(vsh, images):
    vsh("pool-list")
    res = vsh("-r", "vol-create-as", "default", "v.img", "1M")
    assert res.status == 1 and "read only access prevents vol-create-as" in res.err
    assert os.listdir(images) == []
    ok(vsh("-r", "vol-list", "default"))


def test_completion(vsh, vsh_env):
    ok(vsh("-q", "vol-create-as", "default", "alpha.img", "1M"))
    ok(vsh("-q", "vol-create-as", "default", "beta.img", "1M"))
    ok(vsh("-q", "pool-define-as", "other", "dir", "--target", str(vsh_env.tmp / "o")))
    assert vsh("complete", "--", "vol-list", "").out.splitlines()[:2] == ["default", "other"]
    assert vsh("complete", "--", "vol-info", "--pool", "d").out == "default\n\n"
    assert vsh("complete", "--", "vol-info", "a").out == "alpha.img\n\n"
    images = vsh_env.store / "data" / "images"
    assert vsh("complete", "--", "vol-path", str(images) + "/b").out == f"{images / 'beta.img'}\n\n"


# -- undefine --remove-all-storage ------------------------------------------------------------------


def test_shared_volume_survives_remove_all_storage(vsh, define, images, vsh_env):
    ok(vsh("-q", "vol-create-as", "default", "shared.img", "1M"))
    ok(vsh("-q", "vol-create-as", "default", "own.img", "1M"))
    ok(vsh("-q", "vol-create-as", "default", "own2.qcow2", "1M", "--format", "qcow2"))
    outside = vsh_env.tmp / "outside.img"
    outside.write_bytes(b"")
    define("vm1", devices=disk(images / "shared.img") + disk(dev="vdb", pool="default", volume="own.img")
           + disk(images / "own2.qcow2", dev="vdc") + disk(outside, dev="vdd"))
    define("vm2", devices=disk(images / "shared.img"))
    res = vsh("undefine", "vm1", "--remove-all-storage", "--dry-run")
    assert res.status == 0
    assert res.out == f"{images / 'own.img'}\n{images / 'own2.qcow2'}\n\n"
    assert res.err == f"error: Storage volume 'vdd'({outside}) is not managed by vsh. Remove it manually.\n\n"
    assert (vsh_env.domains / "vm1.xml").exists() and (images / "own.img").exists()
    res = vsh("undefine", "vm1", "--remove-all-storage")
    assert res.status == 0
    assert res.out == ("Domain 'vm1' has been undefined\n"
                       f"Volume 'vda'({images / 'shared.img'}) kept: used by domain 'vm2'.\n"
                       f"Volume 'vdb'({images / 'own.img'}) removed.\n"
                       f"Volume 'vdc'({images / 'own2.qcow2'}) removed.\n\n")
    assert res.err == f"error: Storage volume 'vdd'({outside}) is not managed by vsh. Remove it manually.\n\n"
    assert sorted(os.listdir(images)) == ["shared.img"] and outside.exists()
    # the last user takes it with it
    res = vsh("undefine", "vm2", "--remove-all-storage")
    assert res.out == f"Domain 'vm2' has been undefined\nVolume 'vda'({images / 'shared.img'}) removed.\n\n"
    assert os.listdir(images) == []


def test_disk_in_the_images_directory_is_a_default_pool_volume(vsh, define, vsh_env):
    """A disk made in <data>/images before any pool command ran (vsh install does that) is managed."""
    images = vsh_env.store / "data" / "images"
    images.mkdir(parents=True, mode=0o700)
    (images / "vm1.img").write_bytes(b"")
    define("vm1", devices=disk(images / "vm1.img"))
    res = vsh("undefine", "vm1", "--remove-all-storage")
    assert (res.status, res.err) == (0, "")
    assert res.out == f"Domain 'vm1' has been undefined\nVolume 'vda'({images / 'vm1.img'}) removed.\n\n"


def test_backing_volume_of_another_domain_survives(vsh, define, images):
    ok(vsh("-q", "vol-create-as", "default", "base.img", "1M"))
    ok(vsh("-q", "vol-create-as", "default", "top.qcow2", "1M", "--format", "qcow2", "--backing-vol", "base.img",
           "--backing-vol-format", "raw"))
    define("owner", devices=disk(images / "base.img"))
    define("user", devices=disk(images / "top.qcow2"))
    res = vsh("--json", "undefine", "owner", "--remove-all-storage", "--dry-run")
    assert json.loads(res.out) == {"would_remove": [], "kept": [
        {"target": "vda", "path": str(images / "base.img"), "reason": "used by domain 'user'"}]}


def test_remove_all_storage_refused_while_running(vsh, define, images, vsh_env):
    ok(vsh("-q", "vol-create-as", "default", "v.img", "1M"))
    define("vm1", devices=disk(images / "v.img"))
    fake_running(vsh_env, "vm1", 3)
    fails(vsh("undefine", "vm1", "--remove-all-storage"), "Storage volume deletion is supported only on stopped domains")
    assert (vsh_env.domains / "vm1.xml").exists() and (images / "v.img").exists()


def test_volumes_of_running_domains_are_not_changed(vsh, define, images, vsh_env):
    ok(vsh("-q", "vol-create-as", "default", "v.img", "1M"))
    define("vm1", devices=disk(images / "v.img"))
    fake_running(vsh_env, "vm1", 3)
    msg = "Requested operation is not valid: cannot {} volume 'v.img': it is in use by running domain 'vm1'"
    fails(vsh("vol-delete", "v.img", "--pool", "default"), "Failed to delete vol v.img", msg.format("delete"))
    fails(vsh("vol-wipe", "v.img", "--pool", "default"), "Failed to wipe vol v.img", msg.format("wipe"))
    fails(vsh("vol-resize", "v.img", "2M", "--pool", "default"), "Failed to change size of volume 'v.img' to 2M",
          msg.format("resize"))
    fails(vsh("vol-upload", "v.img", "/dev/null", "--pool", "default"), msg.format("upload to"))
    ok(vsh("vol-download", "v.img", str(vsh_env.tmp / "copy"), "--pool", "default"))
    assert (images / "v.img").exists()


# -- the API (vsh.api.storage) ------------------------------------------------------------------------


def _abstract(handle) -> set:
    import inspect

    return {name for name, value in inspect.getmembers(type(handle)) if getattr(value, "__isabstractmethod__", False)}


def test_api_handles_take_and_return_plain_data(vsh_env, images):
    from vsh import api
    from vsh.core.errors import NotFound

    conn = api.connect(vsh_env.uri)
    storage = conn.storage
    assert storage.pool_names() == []               # a cheap listing sets nothing up
    pool = storage.lookup_pool("default")
    assert storage.pool_names() == ["default"]
    base = pool.create_volume_as("base.img", MIB)
    top = pool.create_volume_as("top.qcow2", 2 * MIB, format="qcow2", backing_path=base.path, backing_format="raw")
    for handle in (storage, pool, base, top):
        assert not _abstract(handle), f"{type(handle).__name__} lacks {_abstract(handle)}"
    assert storage.volume_names() == ["base.img", "top.qcow2"]
    assert storage.volume_names(paths=True) == [str(images / "base.img"), str(images / "top.qcow2")]
    info = storage.lookup_volume(str(images / "top.qcow2")).info()
    assert (info["format"], info["capacity"], info["backing"], info["backing_format"]) == \
        ("qcow2", 2 * MIB, str(images / "base.img"), "raw")
    assert top.pool().name == "default" and top.pool().uuid == pool.uuid
    assert [v["name"] for v in pool.list_volumes()] == ["base.img", "top.qcow2"]
    assert "<backingStore>" in pool.volume_xml_as("x.qcow2", MIB, format="qcow2", backing_path=base.path,
                                                  backing_format="raw")
    assert base.resize(MIB, delta=True) == 2 * MIB and base.info()["capacity"] == 2 * MIB
    clone = base.clone("copy.img")
    assert clone.info()["capacity"] == 2 * MIB
    clone.delete()
    with pytest.raises(NotFound):
        pool.lookup_volume("copy.img")
    assert storage.lookup_pool_by_uuid(pool.uuid).name == "default"
    with pytest.raises(NotFound, match="failed to get pool 'default'"):
        storage.lookup_pool_by_uuid("default")
    other = storage.define_pool_xml(f"<pool type='dir'><name>o</name><target><path>{vsh_env.tmp / 'o'}</path>"
                                    "</target></pool>")
    other.start(build=True)
    assert other.info()["active"] and "capacity" in other.info()
    assert [p["name"] for p in storage.list_pools(active=False)] == []
    other.destroy()
    assert [p["name"] for p in storage.list_pools(active=False)] == ["o"]
    other.undefine()
    assert storage.pool_names() == ["default"]


def test_qcow2_header_is_read_once_for_everyone(tmp_path):
    """core.qcow2 is the one header parser: pools, the QEMU argv checks and the snapshot code read it."""
    from vsh.core.qcow2 import read_header_at
    from vsh.kvm import qcow2
    from vsh.kvm.argv import qcow2_backing_file, qcow2_data_file

    base, top = tmp_path / "base.img", tmp_path / "top.qcow2"
    base.write_bytes(b"")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on,cluster_size=4096",
                    "-b", str(base), "-F", "raw", str(top), "1M"], check=True)
    hdr = read_header_at(str(top))
    assert (hdr.version, hdr.size, hdr.cluster_bits, hdr.compat) == (3, MIB, 12, "1.1")
    assert (hdr.backing, hdr.backing_format, hdr.lazy_refcounts, hdr.data_file) == (str(base), "raw", True, False)
    assert qcow2_backing_file(str(top)) == str(base) and qcow2_data_file(str(top)) is None
    info = qcow2.read_info(str(top))
    assert (info.backing_file, info.backing_format, info.size, info.snapshots) == (str(base), "raw", MIB, [])
    assert read_header_at(str(base)) is None and not qcow2.is_qcow2(str(base))


def test_one_lock_times_out_with_its_holder_named(tmp_path):
    from vsh.core.errors import OperationInvalid
    from vsh.core.store import Lock

    path = str(tmp_path / "defs" / ".lock")
    with Lock(path, 5, "storage pool definitions are locked by another vsh process"):
        with pytest.raises(OperationInvalid) as err:
            with Lock(path, 0, "storage pool definitions are locked by another vsh process"):
                pass
    assert str(err.value) == "storage pool definitions are locked by another vsh process (waited 0 s)"
    assert oct(os.stat(tmp_path / "defs").st_mode & 0o777) == "0o700"
    with Lock(path, 0, "free again"):
        pass


def test_qemu_img_runner_quotes_its_last_complaint(tmp_path):
    from vsh.core.errors import VshError
    from vsh.core.qemuimg import qemu_img

    out = qemu_img(["create", "-q", "-f", "raw", str(tmp_path / "x.img"), "1M"])
    assert out == b"" and os.path.getsize(tmp_path / "x.img") == MIB
    with pytest.raises(VshError) as err:
        qemu_img(["info", str(tmp_path / "missing")], what="probing 'missing'")
    assert str(err.value).startswith("probing 'missing' failed: qemu-img: ")
    assert "No such file or directory" in str(err.value)
