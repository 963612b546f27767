"""QEMU confinement (issue 15 §2) on a real TCG guest started by root: QEMU runs as vsh-qemu
with no capabilities, no_new_privs, seccomp and a private /dev; it reaches the disk its
domain names and not a root-only file beside it (a compromised QEMU simulated by the human
monitor opening that file); the grants go when the domain stops; QEMU runs in a cgroup of its own, removed with it; <qemu:commandline>
arguments reach QEMU and taint the domain in its log."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
import vmguest as _vmguest      # tests/ is on the path (conftest.py's directory)

pytestmark = pytest.mark.vm
Guest = _vmguest.Guest

DISK = "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{}'/>" \
       "<target dev='vdc' bus='virtio'/></disk>"
QEMU_NS = "xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'"
EXTRA = "<qemu:commandline><qemu:arg value='-name'/><qemu:arg value='guest=confined-one'/>" \
        "<qemu:env name='VSH_TEST_ENV' value='tainted'/></qemu:commandline>"

if os.geteuid() != 0:
    pytest.skip("confinement applies when vsh runs as root", allow_module_level=True)


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    m, base, store, env = _vmguest.module_store(tmp_path_factory, "confine")
    disk = base / "data.img"
    disk.write_bytes(b"\0" * 1024 * 1024)
    os.chmod(disk, 0o600)
    secret = base / "secret.img"
    secret.write_bytes(b"root only\n" + b"\0" * 4086)
    os.chmod(secret, 0o600)
    xml = _vmguest.guest_domain_xml("cf1", m, DISK.format(disk), memory_mib=128)
    xml = xml.replace("<domain type='qemu'>", f"<domain type='qemu' {QEMU_NS}>", 1)
    xml = xml.replace("</domain>", EXTRA + "\n</domain>")
    (base / "cf1.xml").write_text(xml)
    g = Guest(store, "cf1", env)
    g.base, g.disk, g.secret = base, disk, secret
    g.disk_mode = os.stat(disk).st_mode
    g.vsh("define", base / "cf1.xml")
    g.vsh("start", "cf1")
    try:
        g.wait_log(m["ready_line"])
        yield g
    finally:
        g.close_console()
        g.vsh("destroy", "cf1", check=False)


def status(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.split()
    return out


def test_qemu_runs_unprivileged_without_capabilities(vm):
    uid = pwd.getpwnam("vsh-qemu").pw_uid
    st = status(vm.state()["qemu_pid"])
    assert st["Uid"] == [str(uid)] * 4 and st["Gid"][0] != "0"
    assert st["Groups"] == []
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[cap][0], 16) == 0, (cap, st[cap])
    assert st["NoNewPrivs"] == ["1"]
    assert st["Seccomp"] == ["2"]       # -sandbox on: a seccomp filter


def test_qemu_sees_a_private_minimal_dev(vm):
    dev = Path(f"/proc/{vm.state()['qemu_pid']}/root/dev")
    names = set(os.listdir(dev))
    assert {"null", "zero", "urandom", "ptmx", "pts"} <= names
    assert not names & {"sda", "vda", "mem", "kmsg", "net", "vhost-net", "shm"}
    assert names <= {"null", "zero", "full", "random", "urandom", "ptmx", "pts", "kvm",
                     "fd", "stdin", "stdout", "stderr"}
    assert os.readlink(f"/proc/{vm.state()['qemu_pid']}/ns/mnt") != os.readlink("/proc/self/ns/mnt")


def test_the_named_disk_is_granted_and_a_file_it_does_not_name_is_not(vm):
    uid = pwd.getpwnam("vsh-qemu").pw_uid
    acl = os.getxattr(vm.disk, "system.posix_acl_access")
    assert uid.to_bytes(4, "little") in acl
    assert str(vm.disk) in vm.open_files()
    # a compromised QEMU: make it open a root-only file the domain does not name
    res = vm.vsh("qemu-monitor-command", "cf1", "--hmp",
                 f"drive_add 0 if=none,id=stolen,format=raw,file={vm.secret}", check=False)
    assert "Permission denied" in res.stdout + res.stderr, res
    assert str(vm.secret) not in vm.open_files()
    # the guest itself reads and writes its disk
    out = vm.sh("echo confined > /dev/vda && head -c 8 /dev/vda")
    assert "confined" in out


def test_qemu_commandline_is_passed_and_taints_the_domain(vm):
    pid = vm.state()["qemu_pid"]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert argv[-3:-1] == [b"-name", b"guest=confined-one"]
    assert b"VSH_TEST_ENV=tainted" in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    log = (vm.rundir / "qemu.log").read_text()
    assert "is tainted: custom-argv" in log


def test_qemu_runs_in_a_cgroup_of_its_own(vm):
    st = vm.state()
    pid = st["qemu_pid"]
    dirs = _vmguest.qemu_cgroups(pid)
    assert dirs, Path(f"/proc/{pid}/cgroup").read_text()
    for d in dirs:
        assert (d / "cgroup.procs").read_text().split() == [str(pid)]
    sup = Path(f"/proc/{st['supervisor_pid']}/cgroup").read_text()
    assert "vsh.slice" not in sup           # the control plane stays outside the guests' group
    vm.cgroups = dirs


def test_grants_are_undone_when_the_domain_stops(vm):
    vm.close_console()
    groups = getattr(vm, "cgroups", None) or _vmguest.qemu_cgroups(vm.state()["qemu_pid"])
    assert groups and all(d.is_dir() for d in groups)
    vm.vsh("destroy", "cf1")
    assert not any(d.exists() for d in groups)      # the group goes with QEMU
    with pytest.raises(OSError):
        os.getxattr(vm.disk, "system.posix_acl_access")
    assert os.stat(vm.disk).st_mode == vm.disk_mode
    assert not (vm.rundir / "grants.json").exists()
    assert os.stat(vm.rundir).st_mode & 0o7777 == 0o700
