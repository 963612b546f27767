"""Writes on NTFS, btrfs and exfat through the appliance; btrfs and exfat also read through it
(boots the appliance: VM lock).

The btrfs and exfat images are made here with the host's mkfs tools; the NTFS one is a copy of
the test image. Every write is read back through vsh, then each filesystem is checked by its
own checker on the host (ntfsfix -n, btrfs check --readonly, fsck.exfat -n).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.vm
REAL_CACHE = os.environ.get("VSH_CACHE_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vsh")
TOOLS = ("mkfs.btrfs", "btrfs", "mkfs.exfat", "fsck.exfat", "ntfsfix")


@pytest.fixture(autouse=True)
def _appliance_cache(monkeypatch):
    monkeypatch.setenv("VSH_CACHE_DIR", REAL_CACHE)


def _image(path, size: str, *mkfs) -> str:
    subprocess.run(["truncate", "-s", size, path], check=True)
    if mkfs:
        subprocess.run([*mkfs, path], check=True, stdout=subprocess.DEVNULL)
    return path


def _check(argv: list[str]):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0, f"{argv[0]}: {r.stdout}"
    return r.stdout


@pytest.fixture
def disks(images, tmp_path):
    if shutil.which("qemu-system-x86_64") is None or not all(shutil.which(t) for t in TOOLS):
        pytest.skip(f"needs QEMU and {', '.join(TOOLS)} (scripts/setup)")
    ntfs = str(tmp_path / "ntfs.img")
    subprocess.run(["cp", "--sparse=always", images.path("ntfs"), ntfs], check=True)
    return {"ntfs": ntfs,
            "btrfs": _image(str(tmp_path / "btrfs.img"), "256M", "mkfs.btrfs", "-q", "-L", "hostbtrfs"),
            "exfat": _image(str(tmp_path / "exfat.img"), "64M", "mkfs.exfat", "-L", "hostexfat"),
            "blank": _image(str(tmp_path / "blank.img"), "256M")}


def _session(conn, disks, readonly=False, keys=("ntfs", "btrfs", "exfat", "blank")):
    s = conn.guest_disks(readonly=readonly)
    for k in keys:
        s.add_drive(disks[k], "raw")
    s.launch()
    return s


def test_write_and_read_ntfs_btrfs_exfat(disks, tmp_path):
    from vsh import api
    from vsh.core.errors import Unsupported

    big = os.urandom(5 << 20)
    (tmp_path / "big.bin").write_bytes(big)
    conn = api.connect(f"vsh:///session?root={tmp_path}/store")
    s = _session(conn, disks)
    try:
        s.mount("/dev/sda", "/")                      # NTFS: read here, written by ntfs-3g in the appliance
        s.mkdir("/b")
        s.mkdir("/x")
        s.mount("/dev/sdb", "/b")                     # btrfs and exfat: the appliance does both
        s.mount("/dev/sdc", "/x")
        assert s.mountpoints() == {"/": "/dev/sda", "/b": "/dev/sdb", "/x": "/dev/sdc"}
        for top in ("", "/b", "/x"):
            s.mkdir(f"{top}/d1/d2", parents=True)
            s.write(f"{top}/d1/d2/f.txt", b"hello " + (top or "/").encode())
            s.write(f"{top}/d1/d2/f.txt", b" again\n", append=True)
            s.cp(f"{top}/d1/d2/f.txt", f"{top}/copy.txt")
            s.mv(f"{top}/copy.txt", f"{top}/moved.txt")
            s.upload(str(tmp_path / "big.bin"), f"{top}/big.bin")
            s.truncate(f"{top}/big.bin", 3 << 20)
            s.touch(f"{top}/empty")
            s.mkdir(f"{top}/gone")
            s.rm(f"{top}/gone", directory=True)
        s.ln_s("d1/d2/f.txt", "/b/link")
        s.write("/hello.txt", b"changed on ntfs\r\n")
        for top in ("", "/b", "/x"):
            assert s.cat(f"{top}/d1/d2/f.txt") == b"hello " + (top or "/").encode() + b" again\n"
            assert s.cat(f"{top}/moved.txt") == s.cat(f"{top}/d1/d2/f.txt")
            assert s.stat(f"{top}/big.bin")["st_size"] == 3 << 20
            assert s.checksum("sha256", f"{top}/big.bin") == hashlib.sha256(big[:3 << 20]).hexdigest()
            assert s.stat(f"{top}/empty")["st_size"] == 0
            assert not s.exists(f"{top}/gone")
            assert "moved.txt" in s.ls(top or "/")
        assert s.readlink("/b/link") == "d1/d2/f.txt"
        assert s.cat("/b/link").startswith(b"hello /b")
        assert s.head("/x/d1/d2/f.txt", 1) == ["hello /x again"]
        s.download("/x/big.bin", str(tmp_path / "back.bin"))
        assert (tmp_path / "back.bin").read_bytes() == big[:3 << 20]
        with pytest.raises(Unsupported, match="through the appliance"):
            s.find("/b")
        # vsh's mkfs of the three, and labels
        s.mkfs("btrfs", "/dev/sdd", label="vshbtrfs")
        assert (s.vfs_type("/dev/sdd"), s.vfs_label("/dev/sdd")) == ("btrfs", "vshbtrfs")
        s.set_label("/dev/sdc", "NEWEXFAT")
        s.set_label("/dev/sdb", "newbtrfs")
        assert s.vfs_label("/dev/sdc") == "NEWEXFAT"
        assert s.vfs_label("/dev/sdb") == "newbtrfs"
        s.umount_all()
        # NTFS read back in this process (libfsntfs), once the appliance has unmounted it
        s.mount_ro("/dev/sda", "/")
        assert s.cat("/hello.txt") == b"changed on ntfs\r\n"
        assert s.cat("/moved.txt") == b"hello / again\n"
        assert s.checksum("sha256", "/big.bin") == hashlib.sha256(big[:3 << 20]).hexdigest()
    finally:
        s.close()
        conn.close()
    _check(["ntfsfix", "-n", disks["ntfs"]])
    _check(["btrfs", "check", "--readonly", disks["btrfs"]])
    _check(["btrfs", "check", "--readonly", disks["blank"]])
    _check(["fsck.exfat", "-n", disks["exfat"]])


def test_mkfs_exfat_and_ntfs_then_read_only_reads(disks, tmp_path):
    """vsh's mkfs of exfat and NTFS pass their checkers; a read-only session reads btrfs and
    exfat through the appliance, and cannot write."""
    from vsh import api
    from vsh.core.errors import OperationInvalid

    conn = api.connect(f"vsh:///session?root={tmp_path}/store")
    s = _session(conn, disks, keys=("exfat", "blank"))
    try:
        s.mkfs("ntfs", "/dev/sdb", label="vshntfs2")
        s.mount("/dev/sdb", "/")
        s.write("/made.txt", b"on a new ntfs\n")
        s.umount_all()
        s.mkfs("exfat", "/dev/sda", label="VSHEXFAT")
        s.mount("/dev/sda", "/")
        s.write("/made.txt", b"on a new exfat\n")
    finally:
        s.close()
    _check(["ntfsfix", "-n", disks["blank"]])
    _check(["fsck.exfat", "-n", disks["exfat"]])
    s = _session(conn, disks, readonly=True, keys=("exfat", "btrfs"))
    try:
        s.mount_ro("/dev/sda", "/")
        assert s.cat("/made.txt") == b"on a new exfat\n"
        assert s.vfs_label("/dev/sda") == "VSHEXFAT"
        s.umount_all()
        s.mount_ro("/dev/sdb", "/")
        assert s.ls("/") == []
        with pytest.raises(OperationInvalid, match="read-only"):
            s.write("/x", b"x")
    finally:
        s.close()
        conn.close()


def test_writes_inside_luks(images, tmp_path):
    """The LUKS volume vsh unlocked is unlocked in the appliance under the same name (the key
    goes over the channel, never on a command line); the write is read back here, and the
    filesystem, decrypted on the host with the volume key, is clean."""
    from vsh import api

    if shutil.which("qemu-system-x86_64") is None or shutil.which("cryptsetup") is None:
        pytest.skip("needs QEMU and cryptsetup (for the volume key)")
    m = images["luks"]
    disk = str(tmp_path / "luks.img")
    subprocess.run(["cp", "--sparse=always", images.path("luks"), disk], check=True)
    conn = api.connect(f"vsh:///session?root={tmp_path}/store")
    s = conn.guest_disks(readonly=False)
    try:
        s.add_drive(disk, "raw")
        s.launch()
        s.luks_open("/dev/sda", m["key"], "cr")
        s.mount("/dev/mapper/cr", "/")
        s.write("/written.txt", b"written inside LUKS\n")
        s.mkdir("/dir")
        assert s.cat("/hello.txt") == b"hello from inside LUKS\n"
        assert s.find("/") == ["dir", "hello.txt", "lost+found", "written.txt"]   # read here again
        assert s.cat("/written.txt") == b"written inside LUKS\n"
    finally:
        s.close()
        conn.close()
    key = tmp_path / "key"
    key.write_text(m["key"])
    mk = tmp_path / "mk"
    subprocess.run(["cryptsetup", "luksDump", "--dump-volume-key", "--volume-key-file", str(mk), "--key-file",
                    str(key), "-q", disk], check=True, stdout=subprocess.DEVNULL)
    dump = subprocess.run(["cryptsetup", "luksDump", disk], stdout=subprocess.PIPE, text=True, check=True).stdout
    payload = int(next(ln.split()[-1] for ln in dump.splitlines() if ln.startswith("Payload offset:")))
    enc, plain = tmp_path / "enc", tmp_path / "plain"
    with open(disk, "rb") as f, open(enc, "wb") as out:
        f.seek(payload * 512)
        out.write(f.read())
    subprocess.run(["openssl", "enc", "-d", "-aes-256-ecb", "-nopad", "-K", mk.read_bytes().hex(), "-in", str(enc),
                    "-out", str(plain)], check=True)
    _check(["e2fsck", "-fn", str(plain)])


def test_a_crafted_image_makes_the_appliance_tools_fail(tmp_path):
    """An ext4 this process reads but whose journal (marked as needing recovery) is gone: the
    appliance's mount fails, the error says why, and the appliance goes on serving the session;
    a tool that fails (mkfs.xfs on a too small device) gives its own reason."""
    from vsh import api
    from vsh.core.errors import VshError

    if shutil.which("qemu-system-x86_64") is None or shutil.which("debugfs") is None:
        pytest.skip("needs QEMU and debugfs")
    bad = _image(str(tmp_path / "bad.img"), "32M", "mkfs.ext4", "-q", "-F", "-b", "1024")
    (tmp_path / "h.txt").write_text("hi\n")
    debugfs = ["debugfs", "-w", "-R"]
    subprocess.run(debugfs + [f"write {tmp_path}/h.txt hello.txt", bad], check=True, capture_output=True)
    block = int(subprocess.run(["debugfs", "-R", "bmap <8> 0", bad], check=True, capture_output=True,
                               text=True).stdout)
    subprocess.run(debugfs + ["feature needs_recovery", bad], check=True, capture_output=True)
    with open(bad, "r+b") as f:                  # the journal's superblock is zeros now
        f.seek(block * 1024)
        f.write(bytes(1024))
    small = _image(str(tmp_path / "small.img"), "16M")
    conn = api.connect(f"vsh:///session?root={tmp_path}/store")
    s = conn.guest_disks(readonly=False)
    try:
        s.add_drive(bad, "raw")
        s.add_drive(small, "raw")
        s.launch()
        s.mount("/dev/sda", "/")
        assert s.cat("/hello.txt") == b"hi\n"                      # read here: no journal needed
        with pytest.raises(VshError, match=r"write: .*(journal|wrong fs type|bad superblock)"):
            s.write("/x", b"x")
        with pytest.raises(VshError, match=r"mkfs: /dev/sdb: Filesystem must be larger than"):
            s.mkfs("xfs", "/dev/sdb")
        s.mkfs("ext4", "/dev/sdb", label="stillok")                 # the appliance still serves
        assert s.vfs_label("/dev/sdb") == "stillok"
    finally:
        s.close()
        conn.close()
    left = subprocess.run(["pgrep", "-f", f"file={bad}"], stdout=subprocess.PIPE, text=True).stdout
    assert left == ""
