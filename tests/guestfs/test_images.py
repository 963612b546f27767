"""Real answers from the cached test images, checked against their manifest."""

from __future__ import annotations

import hashlib
import os

import pytest

from vsh.core.errors import InvalidArgument, NotFound, Unsupported, VshError
from vsh.guestfs.session import GuestSession

GPT_KEYS = ["gpt", "gpt_qcow2", "gpt_overlay", "gpt_rawbase"]
MBR_KEYS = ["mbr", "mbr_vmdk", "mbr_vhdx"]


def session(images, key, fmt="manifest", **kw) -> GuestSession:
    g = GuestSession()
    g.add_drive(images.path(key), images[key]["format"] if fmt == "manifest" else fmt, **kw)
    g.launch()
    return g


@pytest.mark.parametrize("key", GPT_KEYS + MBR_KEYS + ["lvm", "xfs", "luks", "ntfs"])
def test_devices_partitions_filesystems(images, key):
    m = images[key]
    with session(images, key) as g:
        assert g.list_devices() == ["/dev/sda"]
        assert g.list_partitions() == m["partitions"]
        if m["parttype"]:
            assert g.part_get_parttype("/dev/sda") == m["parttype"]
        else:
            with pytest.raises(VshError):
                g.part_get_parttype("/dev/sda")
        listed = g.list_filesystems()
        for dev, exp in m["filesystems"].items():
            assert g.vfs_type(dev) == exp["type"]
            if "label" in exp:
                assert g.vfs_label(dev) == exp["label"]
            if "uuid" in exp:
                assert g.vfs_uuid(dev).lower() == exp["uuid"].lower()
            if exp["type"] != "LVM2_member":
                assert listed[dev] == exp["type"]
        assert not any(t == "LVM2_member" for t in listed.values())
        assert g.blockdev_getsize64("/dev/sda") == os.path.getsize(images.path(key)) or m["format"] != "raw"
        assert g.warnings == []


def test_part_list_gpt(images):
    with session(images, "gpt") as g:
        parts = g.part_list("/dev/sda")
        assert [p["part_num"] for p in parts] == [1, 2]
        assert parts[0]["part_start"] == 1 << 20
        assert parts[1]["part_end"] == parts[1]["part_start"] + parts[1]["part_size"] - 1
        assert g.part_get_gpt_type("/dev/sda", 1) == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
        assert g.part_get_name("/dev/sda", 2) == "root"
        assert g.part_to_dev("/dev/sda2") == "/dev/sda"
        assert g.part_to_partnum("/dev/vda2") == 2  # guestfish's alias for the same disk


def test_part_list_mbr_logical(images):
    with session(images, "mbr") as g:
        parts = {p["part_num"]: p for p in g.part_list("/dev/sda")}
        assert sorted(parts) == [1, 2, 5, 6]
        assert g.part_get_mbr_id("/dev/sda", 2) == 0x05
        assert g.part_get_mbr_id("/dev/sda", 5) == 0x0C
        assert g.part_get_mbr_id("/dev/sda", 6) == 0x82
        assert parts[5]["part_size"] == images["mbr"]["random"]["size"] * 5  # 100 MiB
        assert "/dev/sda2" not in g.list_filesystems()  # the extended partition


@pytest.mark.parametrize("key", GPT_KEYS + ["lvm"])
def test_inspection(images, key):
    exp = images[key]["os"]
    with session(images, key) as g:
        roots = g.inspect_os()
        assert roots == [exp["root"]]
        r = roots[0]
        assert g.inspect_get_type(r) == exp["type"]
        assert g.inspect_get_distro(r) == exp["distro"]
        assert g.inspect_get_product_name(r) == exp["product_name"]
        assert g.inspect_get_major_version(r) == exp["major_version"]
        assert g.inspect_get_minor_version(r) == exp["minor_version"]
        assert g.inspect_get_hostname(r) == exp["hostname"]
        assert g.inspect_get_arch(r) == exp["arch"]
        assert g.inspect_get_package_format(r) == exp["package_format"]
        assert g.inspect_get_package_management(r) == exp["package_management"]
        assert g.inspect_get_mountpoints(r) == exp["mountpoints"]
        assert sorted(g.inspect_get_filesystems(r)) == sorted(set(exp["mountpoints"].values()))
        apps = g.inspect_list_applications(r)
        assert len(apps) == exp["applications"]
        byname = {a["name"]: a for a in apps}
        assert byname["dpkg"]["arch"] == "amd64"
        assert set(byname["dpkg"]) >= {"name", "epoch", "version", "release", "arch"}


def test_inspection_warns_about_bad_fstab_line(images):
    with session(images, "gpt") as g:
        r = g.inspect_os()[0]
        warnings = g.inspect_get_warnings(r)
        assert any("fstab line 7" in w for w in warnings), warnings
        assert "/tmp" not in g.inspect_get_mountpoints(r)


def test_inspector_report_and_xml(images):
    from vsh.commands.guest import report_xml

    exp = images["gpt"]["os"]
    with session(images, "gpt") as g:
        rep = g.inspector_report()
        (o,) = rep["operatingsystems"]
        assert o["hostname"] == exp["hostname"]
        assert o["mountpoints"][0] == ["/", "/dev/sda2"]
        assert len(o["applications"]) == exp["applications"]
        fs = {f["dev"]: f for f in o["filesystems"]}
        assert fs["/dev/sda1"]["type"] == "vfat"
        xml = report_xml(rep)
        assert "<product_name>12." in xml and f"<hostname>{exp['hostname']}</hostname>" in xml
        assert '<mountpoint dev="/dev/sda1">/boot/efi</mountpoint>' in xml
        import xml.etree.ElementTree as ET

        top = ET.fromstring(xml.split("\n", 1)[1])
        assert len(top.findall("./operatingsystem/applications/application")) == exp["applications"]


def test_mount_inspected_paths(images):
    with session(images, "gpt_qcow2") as g:
        g.mount_inspected()
        assert g.mountpoints() == {"/": "/dev/sda2", "/boot/efi": "/dev/sda1"}
        assert g.cat("/etc/hostname") == b"vsh-gpt-guest\n"
        assert g.is_file("/etc/hostname") and g.is_dir("/etc") and not g.is_dir("/etc/hostname")
        assert g.is_symlink("/etc/os-release") and g.readlink("/etc/os-release") == "../usr/lib/os-release"
        assert g.is_file("/etc/os-release", followsymlinks=True)
        assert g.cat("/etc/os-release").startswith(b"PRETTY_NAME=")
        assert g.realpath("/bin/ls") == "/usr/bin/ls"
        assert g.stat("/bin/ls")["st_mode"] & 0o170000 == 0o100000
        assert g.lstat("/bin")["st_mode"] & 0o170000 == 0o120000
        assert "alice" in g.ls("/home") and "bob" in g.ls("/home")
        assert g.head_n(1, "/etc/passwd") == ["root:x:0:0:root:/root:/bin/bash"]
        assert g.tail_n(2, "/etc/passwd")[-1].startswith("bob:")
        assert "EFI/BOOT/BOOTX64.EFI" in g.find("/boot/efi")
        assert g.cat("/boot/efi/EFI/debian/grub.cfg") == b"set timeout=0\n"
        assert g.cat("/boot/efi/efi/debian/GRUB.CFG") == b"set timeout=0\n"  # vfat is case-insensitive
        rows = {r["name"]: r for r in g.ll("/etc")}
        assert rows["os-release"]["target"] == "../usr/lib/os-release"
        assert g.file("/etc") == "directory" and g.file("/etc/os-release") == "symbolic link"
        assert "ELF" in g.file("/usr/bin/ls")
        assert g.du("/etc") > 0
        df = {r["mountpoint"]: r for r in g.df()}
        assert df["/"]["size"] == 640 << 20 and 0 < df["/"]["used"] < df["/"]["size"]
        assert not g.exists("/nonexistent") and g.exists("/usr/lib/os-release")
        with pytest.raises(NotFound):
            g.cat("/etc/nonexistent")
        with pytest.raises(InvalidArgument):
            g.cat("/etc")
        with pytest.raises(InvalidArgument):
            g.ls("relative/path")


def test_overlays_win_over_backing(images):
    for key in ("gpt_overlay", "gpt_rawbase"):
        with session(images, key) as g:
            g.mount_inspected()
            assert g.cat("/etc/hostname") == b"vsh-ovl-guest\n"
            assert g.images[0].chain()[1][1] == ("qcow2" if key == "gpt_overlay" else "raw")
            assert g.checksum("sha256", "/etc/passwd") == _sha(images, "gpt", "/etc/passwd")


def _sha(images, key, path):
    with session(images, key) as g:
        g.mount_inspected()
        return g.checksum("sha256", path)


@pytest.mark.parametrize("key", MBR_KEYS)
def test_fat_logical_partition_files(images, key):
    m = images[key]
    with session(images, key) as g:
        g.mount_ro("/dev/sda5", "/")
        for path, content in m["files"]["/dev/sda5"].items():
            assert g.cat(path) == content.encode()
        rnd = m["random"]
        assert g.stat(rnd["path"])["st_size"] == rnd["size"]
        assert g.checksum("sha256", rnd["path"]) == rnd["sha256"]
        expected_line = g.cat("/random.bin.sha256").decode().split()[0]
        assert expected_line == rnd["sha256"]
        for kind in ("md5", "sha1", "sha512"):
            data = b"".join(g.iter_read("/HELLO.TXT"))
            assert g.checksum(kind, "/hello.txt") == hashlib.new(kind, data).hexdigest()


def test_ext4_symlinks_stay_inside_the_guest(images):
    m = images["mbr"]
    with session(images, "mbr") as g:
        g.mount_ro("/dev/sda1", "/")
        files = m["files"]["/dev/sda1"]
        for link, target in files["symlinks"].items():
            assert g.readlink(link) == target
        assert g.cat("/link-rel") == g.cat("/link-abs") == b"hello from ext4\n"
        assert g.cat("/deep/a/b/c/d/e/f/g/h/i/j/deep.txt") == b"deep in ext4\n"
        assert g.ls("/link-dir") == ["c"]
        assert g.realpath("/link-dir/../b/c") == "/deep/a/b/c"
        # ../../../../../../etc/passwd from / is /etc/passwd *in the guest*, which does not exist
        assert not g.exists("/link-escape")
        with pytest.raises(NotFound):
            g.cat("/link-escape")
        with pytest.raises(VshError, match="too many levels of symbolic links"):
            g.cat("/loop1")


def test_mount_a_second_filesystem_and_umount(images):
    with session(images, "mbr") as g:
        g.mount_ro("/dev/sda1", "/")
        g.mount_ro("/dev/sda5", "/deep")
        assert "HELLO.TXT" in g.ls("/deep")
        with pytest.raises(VshError):
            g.umount("/")  # something is mounted below it
        g.umount("/dev/sda5")
        assert g.ls("/deep") == ["a"]
        g.umount_all()
        with pytest.raises(InvalidArgument):
            g.ls("/")


def test_download_and_copy_out(images, tmp_path):
    m = images["mbr"]
    with session(images, "mbr") as g:
        g.mount_ro("/dev/sda5", "/")
        out = tmp_path / "random.bin"
        assert g.download("/random.bin", str(out)) == m["random"]["size"]
        assert hashlib.sha256(out.read_bytes()).hexdigest() == m["random"]["sha256"]
        dest = tmp_path / "copy"
        dest.mkdir()
        assert g.copy_out("/deep", str(dest)) == []
        assert (dest / "deep/a/b/c/d/e/f/g/h/deep.txt").read_text() == "deep in fat\n"
    with session(images, "mbr") as g:
        g.mount_ro("/dev/sda1", "/")
        dest = tmp_path / "copy2"
        dest.mkdir()
        g.copy_out("/", str(dest))
        assert os.readlink(dest / "link-escape") == "../../../../../../etc/passwd"
        assert (dest / "hello.txt").read_bytes() == b"hello from ext4\n"


def test_extent_reads_match_library_reads(images):
    """The fast path (extents read off the device) gives the library's bytes."""
    from vsh.guestfs.fs.data import FAST_MIN

    with session(images, "gpt_qcow2") as g:
        g.mount_inspected()
        tree = g.tree
        checked = 0
        for rel in g.find("/usr/bin"):
            path = "/usr/bin/" + rel
            f, node, _ = tree.resolve(path, follow=False)
            if node.kind != "f":
                continue
            size = f.size(node)
            fast = b"".join(tree.iter_read(path))
            assert fast == f.read_lib(node, 0, size), path
            if tree._mapping(f, node, size) is not None:
                checked += 1
        assert checked > 10
    with session(images, "mbr") as g:
        g.mount_ro("/dev/sda5", "/")
        f, node, _ = g.tree.resolve("/random.bin")
        assert g.tree._mapping(f, node, f.size(node)) is not None
        assert b"".join(g.iter_read("/random.bin", 12345, 100000)) == f.read_lib(node, 12345, 100000)
        assert FAST_MIN < f.size(node)


def test_xfs(images):
    m = images["xfs"]
    with session(images, "xfs", fmt=None) as g:
        assert g.images[0].format == "raw"
        g.mount_ro("/dev/sda", "/")
        for path, content in m["files"]["/dev/sda"].items():
            if path != "symlinks":
                assert g.cat(path) == content.encode()
        assert g.readlink("/link") == "hello.txt" and g.cat("/link") == b"hello from xfs\n"
        assert g.stat("/sub/deeper/deep.txt")["st_uid"] == 1000
        assert g.find("/") == ["hello.txt", "link", "sub", "sub/deeper", "sub/deeper/deep.txt"]
        (row,) = g.df()
        assert row["type"] == "xfs" and row["size"] > 0 and not row["estimated"]


def test_lvm(images):
    m = images["lvm"]
    with session(images, "lvm") as g:
        assert g.vgs() == m["vgs"]
        assert g.lvs() == m["lvs"]
        assert g.pvs() == ["/dev/sda1"]
        assert g.vfs_type("/dev/mapper/vshvg-root") == "ext4"
        g.mount_ro("/dev/vshvg/data", "/")
        assert g.cat("/index.txt") == b"served from an LV\n"


def test_luks(images):
    m = images["luks"]
    with session(images, "luks") as g:
        assert g.vfs_type("/dev/sda") == "crypto_LUKS"
        with pytest.raises(VshError, match="wrong key"):
            g.luks_open("/dev/sda", "not-the-key", "bad")
        assert g.luks_open("/dev/sda", m["key"], "cr") == "/dev/mapper/cr"
        assert g.vfs_label("/dev/mapper/cr") == m["inner"]["label"]
        g.mount_ro("/dev/mapper/cr", "/")
        assert g.cat("/hello.txt") == m["files"]["/hello.txt"].encode()
    g = GuestSession()
    g.add_drive(images.path("luks"), "raw")
    g.add_key("/dev/sda", m["key"])
    g.launch()
    assert g.list_filesystems()[f"/dev/mapper/luks-{m['luks_uuid']}"] == "ext4"
    g.close()


def test_ntfs(images):
    with session(images, "ntfs") as g:
        g.mount_ro("/dev/sda", "/")
        assert g.ls("/") == ["hello.txt"]  # NTFS metadata files are hidden
        assert g.cat("/hello.txt") == b"hello from ntfs\r\n"
        assert g.cat("/HELLO.TXT") == b"hello from ntfs\r\n"


def test_writes_need_the_appliance(images):
    g = GuestSession()
    g.add_drive(images.path("mbr"), "raw", readonly=False)
    g.launch()
    with pytest.raises(Unsupported, match="appliance"):
        g.mount("/dev/sda1", "/")
    with pytest.raises(Unsupported, match="appliance"):
        g.mount_options("rw", "/dev/sda1", "/")
    g.mount_options("ro", "/dev/sda1", "/")
    assert g.cat("/hello.txt") == b"hello from ext4\n"
    g.close()
    with session(images, "mbr") as g:
        g.mount("/dev/sda1", "/")  # read-only drive: mount is a read-only mount
        assert g.exists("/hello.txt")


def test_swap_and_unknown_cannot_be_mounted(images):
    with session(images, "mbr") as g:
        with pytest.raises(InvalidArgument, match="swap"):
            g.mount_ro("/dev/sda6", "/")
        with pytest.raises(VshError):
            g.mount_ro("/dev/sda2", "/")  # the extended partition
        with pytest.raises(NotFound):
            g.mount_ro("/dev/sdb1", "/")


def test_multiple_disks_are_named_in_order(images):
    g = GuestSession()
    g.add_domain_disks([(images.path("xfs"), "raw"), (images.path("mbr"), None)])
    g.launch()
    assert g.list_devices() == ["/dev/sda", "/dev/sdb"]
    assert "/dev/sdb5" in g.list_partitions()
    assert g.vfs_type("/dev/sda") == "xfs"
    g.close()


def test_probed_format(images):
    for key in ("gpt_qcow2", "mbr_vmdk", "mbr_vhdx", "luks"):
        with session(images, key, fmt=None) as g:
            assert g.images[0].format == images[key]["format"]
    # a probed overlay must not follow its backing file
    g = GuestSession()
    g.add_drive(images.path("gpt_overlay"))
    with pytest.raises(InvalidArgument, match="backing"):
        g.launch()
