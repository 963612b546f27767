"""QEMU confinement's pure parts (vsh.kvm.confine): the files an argv opens, ACL entries
counted and undone on real files, tap -netdev rewriting, <qemu:commandline>."""

from __future__ import annotations

import json
import os

import pytest

from vsh.core.errors import InvalidArgument
from vsh.core.xml import parse
from vsh.kvm.argv.custom import custom_commandline
from vsh.kvm.confine import acl, taps
from vsh.kvm.confine.needs import Need, needs


def test_needs_reads_every_file_the_argv_opens():
    argv = ["qemu", "-kernel", "/k", "-initrd", "/i", "-bios", "/b",
            "-blockdev", json.dumps({"driver": "file", "filename": "/d.img", "node-name": "a", "read-only": False}),
            "-blockdev", json.dumps({"driver": "qcow2", "node-name": "f", "file": "a"}),
            "-blockdev", json.dumps({"driver": "file", "filename": "/cd.iso", "node-name": "c", "read-only": True}),
            "-chardev", "pty,id=s0,logfile=/run/x/console.log,logappend=on",
            "-chardev", "file,id=f1,path=/var/log/g,,1.log",
            "-chardev", "socket,id=u1,path=/run/x/s.sock,server=on,wait=off",
            "-chardev", "socket,id=u2,path=/srv/peer.sock,server=off",
            "-chardev", "pipe,id=p1,path=/srv/pipe",
            "-object", "rng-random,id=rng0,filename=/dev/hwrng",
            "-netdev", "user,id=n0", "-kernel", "/k"]
    assert needs(argv) == [
        Need("/k", "r", False), Need("/i", "r", False), Need("/b", "r", False),
        Need("/d.img", "rw", False), Need("/cd.iso", "r", False),
        Need("/run/x/console.log", "rw", True), Need("/var/log/g,1.log", "rw", True),
        Need("/srv/peer.sock", "rw", False), Need("/srv/pipe", "rw", False), Need("/dev/hwrng", "r", False)]


def test_needs_keeps_the_widest_perms_of_a_path_named_twice():
    ro = json.dumps({"driver": "file", "filename": "/d", "node-name": "a", "read-only": True})
    rw = json.dumps({"driver": "file", "filename": "/d", "node-name": "b", "read-only": False})
    assert needs(["q", "-blockdev", ro, "-blockdev", rw]) == [Need("/d", "rw", False)]


def test_acl_encoding_round_trips_and_recomputes_the_mask():
    entries = acl.from_mode(0o640)
    added = acl.with_user(entries, 994, acl.perm_bits("rw"))
    assert acl.parse(acl.encode(added)) == sorted(added, key=lambda e: (acl._ORDER[e[0]], e[2]))
    assert acl.user_bits(added, 994) == 6 and acl.user_bits(added, 995) == 0
    assert (acl._MASK, 6, acl._UNDEFINED) in added
    with pytest.raises(ValueError):
        acl.parse(b"\x01\x00\x00\x00")


@pytest.mark.skipif(os.geteuid() != 0, reason="trusted.* attributes need root")
def test_grant_is_counted_and_the_last_release_restores_acl_and_mode(tmp_path, monkeypatch):
    monkeypatch.setattr(acl, "LOCK_PATH", str(tmp_path / "acl.lock"))
    f = tmp_path / "disk.img"
    f.write_bytes(b"x")
    os.chmod(f, 0o600)
    assert acl.grant(str(f), 4242, "rw") and acl.grant(str(f), 4242, "r")
    assert acl.holders(str(f)) == 2
    assert acl.user_bits(acl.parse(os.getxattr(f, acl.ACL_XATTR)), 4242) == 6
    acl.release(str(f))
    assert acl.holders(str(f)) == 1 and os.getxattr(f, acl.ACL_XATTR)
    acl.release(str(f))
    assert acl.holders(str(f)) == 0
    with pytest.raises(OSError):
        os.getxattr(f, acl.ACL_XATTR)
    assert os.stat(f).st_mode & 0o7777 == 0o600
    os.chmod(f, 0o644)
    assert not acl.grant(str(f), 4242, "r")     # everyone may read it: nothing to grant


@pytest.mark.skipif(os.geteuid() != 0, reason="trusted.* attributes need root")
def test_ensure_puts_back_a_grant_a_chmod_masked(tmp_path, monkeypatch):
    monkeypatch.setattr(acl, "LOCK_PATH", str(tmp_path / "acl.lock"))
    d = tmp_path / "dir"
    d.mkdir(mode=0o700)
    assert acl.grant(str(d), 4242, "x")
    os.chmod(d, 0o700)                          # what pytest does to its base directory
    assert acl.user_bits(acl.parse(os.getxattr(d, acl.ACL_XATTR)), 4242) == 0
    acl.ensure(str(d), 4242, "x")
    assert acl.user_bits(acl.parse(os.getxattr(d, acl.ACL_XATTR)), 4242) == 1
    acl.release(str(d))
    assert acl.holders(str(d)) == 0 and os.stat(d).st_mode & 0o777 == 0o700


def test_tap_netdev_by_name_becomes_fds():
    text = "tap,id=hostnet0,ifname=vnet0,script=no,downscript=no,vhost=on"
    assert taps.tap_name(text) == "vnet0" and taps.wants_vhost(text)
    assert taps.with_fds(text, 7, 8) == "tap,id=hostnet0,fd=7,vhost=on,vhostfd=8"
    assert taps.with_fds("tap,id=n1,ifname=vnet1,script=no", 9) == "tap,id=n1,fd=9"
    assert taps.tap_name("user,id=n0") is None


def test_qemu_commandline_args_and_env():
    dom = parse(b"<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><name>a</name>"
                b"<qemu:commandline><qemu:arg value='-set'/><qemu:arg value='device.x.y=1'/>"
                b"<qemu:env name='FOO' value='bar'/></qemu:commandline></domain>", "d.xml")
    assert custom_commandline(dom) == (["-set", "device.x.y=1"], {"FOO": "bar"})
    assert custom_commandline(parse(b"<domain><name>a</name></domain>", "d.xml")) == ([], {})
    bad = parse(b"<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><name>a</name>"
                b"<qemu:commandline><qemu:env name='A=B' value='x'/></qemu:commandline></domain>", "d.xml")
    with pytest.raises(InvalidArgument):
        custom_commandline(bad)
