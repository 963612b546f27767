"""guestfish's writes through the appliance VM, on copies of the test images (boots the appliance: VM lock).

One session (one appliance) for the module holds copies of the GPT ext4 Debian image
(/ and /boot/efi), the MBR image (ext4 at /mnt, vfat at /media), the XFS image (/srv), the
LVM image (its root LV at /opt) and a blank qcow2 disk for partitioning and mkfs. Every
write is read back through vsh's in-process read path once the appliance has unmounted, and
each filesystem is checked by its own checker on the host (e2fsck -fn, xfs_repair -n,
fsck.vfat -n) on the partition extracted at its offset.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile

import pytest

pytestmark = pytest.mark.vm

SRC = {"gpt": "/dev/sda", "mbr": "/dev/sdb", "xfs": "/dev/sdc", "lvm": "/dev/sdd"}
# the appliance is cached with the other test artefacts, not in each test's temporary HOME
REAL_CACHE = os.environ.get("VSH_CACHE_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vsh")


@pytest.fixture(autouse=True)
def _appliance_cache(monkeypatch):
    monkeypatch.setenv("VSH_CACHE_DIR", REAL_CACHE)


def _copy(src: str, dest: str) -> str:
    subprocess.run(["cp", "--sparse=always", src, dest], check=True)
    return dest


@pytest.fixture(scope="module")
def disks(images, tmp_path_factory):
    d = tmp_path_factory.mktemp("writes")
    paths = {k: _copy(images.path(k), str(d / f"{k}.img")) for k in SRC}
    paths["blank"] = str(d / "blank.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", paths["blank"], "64M"], check=True)
    paths["big"] = str(d / "big.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", paths["big"], "1G"], check=True)
    return paths


@pytest.fixture(scope="module")
def g(disks):
    from vsh import api

    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("no QEMU")
    mp = pytest.MonkeyPatch()
    mp.setenv("VSH_CACHE_DIR", REAL_CACHE)
    conn = api.connect("vsh:///session?root=" + os.path.dirname(disks["gpt"]) + "/store")
    s = conn.guest_disks(readonly=False)
    for k in SRC:
        s.add_drive(disks[k], "raw")
    s.add_drive(disks["blank"], "qcow2")
    s.add_drive(disks["big"], "qcow2")
    s.launch()
    s.mount("/dev/sda2", "/")
    s.mount("/dev/sda1", "/boot/efi")
    s.mount("/dev/sdb1", "/mnt")
    s.mount("/dev/sdb5", "/media")
    s.mount("/dev/sdc", "/srv")
    s.mount("/dev/vshvg/root", "/opt")
    yield s
    s.close()
    conn.close()
    mp.undo()


def _extract(g, image: str, device: str, dest: str) -> str:
    """The bytes of partition ``device`` (of the disk image ``image``) as a file of their own."""
    disk = device.rstrip("0123456789")
    num = int(device[len(disk):])
    part = next(p for p in g.part_list(disk) if p["part_num"] == num)
    with open(image, "rb") as f, open(dest, "wb") as out:
        f.seek(part["part_start"])
        left = part["part_size"]
        while left:
            chunk = f.read(min(left, 8 << 20))
            out.write(chunk)
            left -= len(chunk)
    return dest


def _check(argv: list[str]):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0, f"{argv[0]}: {r.stdout}"


def test_files_on_every_filesystem(g, disks, tmp_path):
    big = os.urandom(3 << 20)
    (tmp_path / "big.bin").write_bytes(big)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f.txt").write_text("in a tree\n")
    os.symlink("sub/f.txt", tree / "link")
    with tarfile.open(tmp_path / "t.tar.gz", "w:gz") as t:
        info = tarfile.TarInfo("from-tar.txt")
        info.size = 4
        import io

        t.addfile(info, io.BytesIO(b"tar\n"))

    g.write("/etc/hostname", b"written\n")
    g.write("/etc/hostname", b"more\n", append=True)
    for top in ("/mnt", "/media", "/srv", "/opt", "/boot/efi"):
        g.mkdir(f"{top}/d1/d2", parents=True)
        g.write(f"{top}/d1/d2/f.txt", b"hello " + top.encode())
        g.cp(f"{top}/d1/d2/f.txt", f"{top}/copy.txt")
        g.mv(f"{top}/copy.txt", f"{top}/moved.txt")
        g.upload(str(tmp_path / "big.bin"), f"{top}/big.bin")
        g.touch(f"{top}/empty")
        g.mkdir(f"{top}/gone")
        g.rm(f"{top}/gone", directory=True)
    g.chmod(0o600, "/etc/hostname")
    g.chown(1000, 1000, "/mnt/moved.txt")
    g.ln_s("../etc/hostname", "/hostlink")
    g.ln_s("/etc/hostname", "/hostlink", force=True)
    g.truncate("/srv/big.bin", 10)
    g.cp("/etc", "/opt/etc-copy", archive=True)
    g.rm("/opt/etc-copy", recursive=True)
    g.copy_in(str(tree), "/mnt")
    g.tar_in(str(tmp_path / "t.tar.gz"), "/srv")
    assert g.cat("/etc/hostname") == b"written\nmore\n"      # read from the appliance
    assert g.ls("/mnt/tree") == ["link", "sub"]

    # in-process reads from here: the appliance unmounts, the images are read again
    assert g.checksum("sha256", "/media/big.bin") == hashlib.sha256(big).hexdigest()
    assert g.cat("/etc/hostname") == b"written\nmore\n"
    assert g.stat("/etc/hostname")["st_mode"] & 0o777 == 0o600
    assert g.readlink("/hostlink") == "/etc/hostname"
    assert g.stat("/mnt/moved.txt")["st_uid"] == 1000
    for top in ("/mnt", "/media", "/srv", "/opt", "/boot/efi"):
        assert g.cat(f"{top}/d1/d2/f.txt") == b"hello " + top.encode()
        assert g.cat(f"{top}/moved.txt") == b"hello " + top.encode()
        assert g.stat(f"{top}/empty")["st_size"] == 0
        assert not g.exists(f"{top}/gone")
    assert g.stat("/srv/big.bin")["st_size"] == 10
    assert not g.exists("/opt/etc-copy")
    assert g.cat("/mnt/tree/sub/f.txt") == b"in a tree\n"
    assert g.readlink("/mnt/tree/link") == "sub/f.txt"
    assert g.cat("/srv/from-tar.txt") == b"tar\n"

    _check(["e2fsck", "-fn", _extract(g, disks["gpt"], "/dev/sda2", str(tmp_path / "root.ext4"))])
    _check(["fsck.vfat", "-n", _extract(g, disks["gpt"], "/dev/sda1", str(tmp_path / "esp.fat"))])
    _check(["e2fsck", "-fn", _extract(g, disks["mbr"], "/dev/sdb1", str(tmp_path / "data.ext4"))])
    _check(["fsck.vfat", "-n", _extract(g, disks["mbr"], "/dev/sdb5", str(tmp_path / "data.fat"))])
    _check(["xfs_repair", "-n", "-f", disks["xfs"]])


def test_paths_stay_inside_the_guest(g):
    g.mkdir("/hostile", parents=True)
    g.ln_s("/", "/hostile/root")
    g.ln_s("../../../../..", "/hostile/up")
    g.ln_s("/etc", "/hostile/etc")
    g.write("/hostile/root/escape-root", b"1")
    g.write("/hostile/up/escape-up", b"2")
    g.write("/../../../escape-dotdot", b"3")
    g.write("/hostile/etc/escape-etc", b"4")
    for path in ("/escape-root", "/escape-up", "/escape-dotdot", "/etc/escape-etc"):
        assert not os.path.exists(path)
    assert g.cat("/escape-root") == b"1"
    assert g.cat("/escape-up") == b"2"
    assert g.cat("/escape-dotdot") == b"3"
    assert g.cat("/etc/escape-etc") == b"4"


def test_errors_name_the_cause(g):
    from vsh.core.errors import NotFound, VshError

    with pytest.raises(NotFound, match="No such file or directory"):
        g.write("/no/such/dir/f", b"x")
    with pytest.raises(VshError, match="File exists"):
        g.mkdir("/etc")
    with pytest.raises(VshError, match="Is a directory"):
        g.rm("/etc")
    # the vfat partition is small: growing a file past its free space fills it (vfat has no holes)
    free = next(r for r in g.df() if r["mountpoint"] == "/media")["available"]
    g.touch("/media/huge")
    with pytest.raises(VshError, match="No space left on device"):
        g.truncate("/media/huge", free + (4 << 20))
    g.rm("/media/huge")


def test_partitions_and_filesystems(g, disks, tmp_path):
    g.part_init("/dev/sde", "gpt")
    g.part_add("/dev/sde", "p", 2048, 40959)
    g.part_add("/dev/sde", "p", 40960, -1)
    assert g.list_partitions()[-2:] == ["/dev/sde1", "/dev/sde2"]
    assert [p["part_start"] for p in g.part_list("/dev/sde")] == [2048 * 512, 40960 * 512]
    g.mkfs("ext4", "/dev/sde1", label="first")
    g.mkfs("vfat", "/dev/sde2")
    g.set_label("/dev/sde2", "SECOND")
    g.set_uuid("/dev/sde1", "0b3f0c5e-1d7a-4c9e-8f00-1234567890ab")
    assert g.vfs_type("/dev/sde1") == "ext4"
    assert g.vfs_label("/dev/sde1") == "first"
    assert g.vfs_uuid("/dev/sde1") == "0b3f0c5e-1d7a-4c9e-8f00-1234567890ab"
    assert g.vfs_type("/dev/sde2") == "vfat"
    assert g.vfs_label("/dev/sde2") == "SECOND"
    raw = str(tmp_path / "blank.raw")
    subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", disks["blank"], raw], check=True)
    _check(["e2fsck", "-fn", _extract(g, raw, "/dev/sde1", str(tmp_path / "p1"))])
    _check(["fsck.vfat", "-n", _extract(g, raw, "/dev/sde2", str(tmp_path / "p2"))])
    g.part_set_name("/dev/sde", 1, "vsh data")
    assert g.part_get_name("/dev/sde", 1) == "vsh data"
    assert g.part_get_name("/dev/sde", 2) == ""
    g.part_del("/dev/sde", 2)
    assert g.list_partitions()[-1] == "/dev/sde1"


def test_lvm_create_and_grow(g, disks, tmp_path):
    """pvcreate, vgcreate, lvcreate, lvresize; xfs_growfs and resize2fs on the grown volumes."""
    g.pvcreate("/dev/sdf")
    g.vgcreate("tvg", ["/dev/sdf"])
    g.lvcreate("xlv", "tvg", 320)
    assert "/dev/tvg/xlv" in g.lvs()
    assert "tvg" in g.vgs()
    g.mkfs("xfs", "/dev/tvg/xlv")
    g.mkdir("/lvtest")
    g.mount("/dev/tvg/xlv", "/lvtest")
    g.write("/lvtest/before", b"written before growing\n")
    before = next(r for r in g.df() if r["mountpoint"] == "/lvtest")["size"]
    g.lvresize("/dev/tvg/xlv", 480)
    g.xfs_growfs("/lvtest")
    after = next(r for r in g.df() if r["mountpoint"] == "/lvtest")["size"]
    assert after > before * 1.4
    assert g.cat("/lvtest/before") == b"written before growing\n"
    g.umount("/lvtest")
    g.lvcreate("elv", "tvg", 64)
    g.mkfs("ext4", "/dev/tvg/elv")
    g.lvresize("/dev/tvg/elv", 96)
    g.e2fsck_f("/dev/tvg/elv")
    g.resize2fs("/dev/tvg/elv")
    assert g.blockdev_getsize64("/dev/tvg/elv") == 96 << 20
    g.sync()
    # the LVs are linear and in order on the PV (data from 1 MiB): check each at its offset
    raw = str(tmp_path / "big.raw")
    subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", disks["big"], raw], check=True)
    for name, start, size in (("xlv", 1, 480), ("elv", 481, 96)):
        out = str(tmp_path / name)
        subprocess.run(["dd", f"if={raw}", f"of={out}", "bs=1M", f"skip={start}", f"count={size}", "status=none"],
                       check=True)
        _check(["xfs_repair", "-n", "-f", out] if name == "xlv" else ["e2fsck", "-fn", out])
    r = subprocess.run(["dumpe2fs", "-h", str(tmp_path / "elv")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       text=True)
    counts = dict(ln.split(":", 1) for ln in r.stdout.splitlines() if ":" in ln)
    assert int(counts["Block count"]) * int(counts["Block size"]) == 96 << 20


def test_selinux_relabel_needs_selinux_in_the_guest(g):
    from vsh.core.errors import VshError

    with pytest.raises(VshError, match="no setfiles"):
        g.selinux_relabel("/etc/selinux/targeted/contexts/files/file_contexts", "/")


def test_read_only_sessions_refuse(images, tmp_path):
    from vsh import api
    from vsh.core.errors import OperationInvalid

    conn = api.connect(f"vsh:///session?root={tmp_path}/store")
    s = conn.guest_disks(readonly=True)
    try:
        s.add_drive(images.path("xfs"), "raw")
        s.launch()
        s.mount("/dev/sda", "/")
        with pytest.raises(OperationInvalid, match="read-only"):
            s.write("/x", b"x")
    finally:
        s.close()


def test_an_appliance_that_never_answers(tmp_path):
    """The boot watchdog gives up (after one retry) with a clear error and leaves no QEMU."""
    from vsh.guestfs.appliance import build
    from vsh.guestfs.appliance.vm import Appliance, ApplianceError

    real = build.ensure()
    initrd = tmp_path / "silent-initrd"
    with open(initrd, "wb") as f:
        c = build.Cpio(f)
        with open("/bin/busybox", "rb") as bb:
            c.file("bin/busybox", bb.read(), 0o755)
        c.file("init", b"#!/bin/busybox sh\n/bin/busybox sleep 100000\n", 0o755)
        c.trailer()
    app = Appliance([], boot_timeout=8, manifest=dict(real, initrd=str(initrd)))
    with pytest.raises(ApplianceError, match="did not answer within 8 s"):
        app.start()
    assert not app.running
    left = subprocess.run(["pgrep", "-f", str(initrd)], stdout=subprocess.PIPE, text=True).stdout
    assert left == ""


def test_a_running_domains_disk_is_refused(images, tmp_path):
    import vmguest

    from vsh import api
    from vsh.core.errors import OperationInvalid

    m = vmguest.manifest()
    if m is None:
        pytest.skip("no test guest")
    store = tmp_path / "store"
    env = vmguest.store_env(tmp_path, store)
    disk = _copy(images.path("xfs"), str(tmp_path / "busy.img"))
    xml = vmguest.guest_domain_xml("busy", m, f"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
                                              f"<source file='{disk}'/><target dev='vda' bus='virtio'/></disk>")
    (tmp_path / "busy.xml").write_text(xml)

    def vsh(*args):
        r = subprocess.run([os.sys.executable, "-m", "vsh", *args], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    vsh("define", str(tmp_path / "busy.xml"))
    vsh("start", "busy")
    conn = api.connect(f"vsh:///session?root={store}")
    try:
        for add in (lambda s: s.add_domain("busy"), lambda s: s.add_drive(disk, "raw")):
            s = conn.guest_disks(readonly=False)
            try:
                add(s)
                s.launch()
                s.mount("/dev/sda", "/")
                assert s.cat("/hello.txt") == b"hello from xfs\n"     # reading still works
                with pytest.raises(OperationInvalid, match="running domain 'busy'"):
                    s.write("/x", b"x")
            finally:
                s.close()
    finally:
        vsh("destroy", "busy")
        conn.close()
