"""The guest-agent commands against a real qemu-ga: the test guest's agent initramfs
(scripts/build-test-guest: initrd-agent.img) runs Debian's qemu-ga on the channel
org.qemu.guest_agent.0, and vsh speaks to it over the channel's unix socket.

One guest (pc, 2 vCPUs, an ext4 data disk the guest mounts) serves the whole module; the
tests that change it put it back. The last test shuts it down through the agent.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest

import vmguest

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or shutil.which("mkfs.ext4") is None,
                                reason="needs qemu-system-x86_64 and mkfs.ext4")

CHANNEL = "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
AGENT_TARGET = "<target type='virtio' name='org.qemu.guest_agent.0' state='{}'/>"
#: the guest's shell starts qemu-ga again as its /init does
RESTART_AGENT = ("for p in /sys/class/virtio-ports/*; do [ \"$(cat $p/name)\" = org.qemu.guest_agent.0 ] && "
                 "(qemu-ga -m virtio-serial -p /dev/${p##*/} -t /run -l /var/log/qemu-ga.log </dev/null >/dev/null "
                 "2>&1 &); done; echo RE''STARTED")


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    m, base, store, env = vmguest.module_store(tmp_path_factory, "agent")
    if "initrd_agent" not in m:
        pytest.skip("the test guest has no agent initramfs")
    data = base / "data.img"
    with open(data, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "agentdata", str(data)], check=True, capture_output=True)
    disk = (f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{data}'/>"
            "<target dev='vdb' bus='virtio'/></disk>")
    xml = vmguest.guest_domain_xml("ag", dict(m, initrd=m["initrd_agent"]), disk + CHANNEL)
    xml = xml.replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>")
    path = base / "ag.xml"
    path.write_text(xml)
    g = vmguest.Guest(store, "ag", env)
    with g.running(path, m["ready_line"]):
        # qemu-ga opens its port a moment after the shell is up
        assert vmguest.poll(lambda: g.vsh("domhostname", "ag", check=False).returncode == 0, 60, 0.5), \
            g.vsh("domhostname", "ag", check=False).stderr
        out = g.sh("modprobe -a crc32c_generic ext4; mkdir -p /mnt/data; "
                   "mount -t ext4 /dev/vda /mnt/data && echo MOUNT$((1+1))ED")
        assert "MOUNT2ED" in out, out
        yield g


def test_hostname_and_guestinfo(guest):
    assert guest.vsh("domhostname", "ag").stdout == "vshguest\n\n"
    assert guest.vsh("domhostname", "ag", "--source", "agent").stdout == "vshguest\n\n"
    out = guest.vsh("guestinfo", "ag", "--hostname", "--os", "--timezone").stdout
    lines = out.splitlines()
    assert "hostname            : vshguest" in lines
    assert "os.id               : vshguest" in lines
    assert "os.name             : vsh test guest" in lines
    assert "timezone.name       : UTC" in lines
    assert "timezone.offset     : 0" in lines
    # all categories when none is named: users (the console's root login) and interfaces too
    full = guest.vsh("guestinfo", "ag").stdout
    assert "user.0.name         : root\n" in full
    assert "if.0.name           : lo\n" in full and "if.0.addr.0.addr    : 127.0.0.1\n" in full
    assert guest.vsh("--json", "guestinfo", "ag", "--hostname").stdout.strip() == '{\n  "hostname": "vshguest"\n}'


def test_filesystems_freeze_thaw_trim(guest):
    out = guest.vsh("domfsinfo", "ag").stdout
    rows = [line.split() for line in out.splitlines()[2:] if line.strip()]
    assert ["/mnt/data", "vda", "ext4", "vdb"] in rows, out       # the guest's vda is the domain's vdb
    assert guest.vsh("domfsfreeze", "ag").stdout == "Froze 1 filesystem(s)\n\n"
    try:
        assert guest.vsh("qemu-agent-command", "ag", '{"execute":"guest-fsfreeze-status"}').stdout == \
            '{"return":"frozen"}\n\n'
    finally:
        assert guest.vsh("domfsthaw", "ag").stdout == "Thawed 1 filesystem(s)\n\n"
    assert guest.vsh("domfsfreeze", "ag", "/mnt/data").stdout == "Froze 1 filesystem(s)\n\n"
    assert guest.vsh("domfsthaw", "ag").stdout == "Thawed 1 filesystem(s)\n\n"
    bad = guest.vsh("domfsthaw", "ag", "/mnt/data", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("error: Unable to thaw filesystems\n")
    guest.vsh("domfstrim", "ag", "--minimum", "4096")
    disks = guest.vsh("guestinfo", "ag", "--filesystem").stdout
    assert "fs.0.mountpoint     : /mnt/data\n" in disks and "fs.0.disk.0.alias   : vdb\n" in disks


def test_vcpus_on_and_offline(guest):
    assert guest.vsh("guestvcpus", "ag").stdout == "vcpus          : 0-1\nonline         : 0-1\nofflinable     : 1\n\n"
    guest.vsh("guestvcpus", "ag", "--cpulist", "1", "--disable")
    try:
        assert "online         : 0\n" in guest.vsh("guestvcpus", "ag").stdout
        assert "ONLINE=0=" in guest.sh("echo ONLINE=$(cat /sys/devices/system/cpu/cpu1/online)=")
    finally:
        guest.vsh("guestvcpus", "ag", "--cpulist", "1", "--enable")
    assert "online         : 0-1\n" in guest.vsh("guestvcpus", "ag").stdout
    bad = guest.vsh("guestvcpus", "ag", "--cpulist", "0", "--disable", check=False)
    assert bad.returncode == 1 and "vCPU '0' is not offlinable" in bad.stderr


def test_ssh_keys_and_password(guest, tmp_path):
    k1, k2 = tmp_path / "k1.pub", tmp_path / "k2.pub"
    k1.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIONE one@test\n")
    k2.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITWO two@test\n")
    guest.vsh("set-user-sshkeys", "ag", "root", "--reset")
    guest.vsh("set-user-sshkeys", "ag", "root", "--file", k1)
    guest.vsh("set-user-sshkeys", "ag", "root", "--file", k2)
    keys = guest.vsh("get-user-sshkeys", "ag", "root").stdout.splitlines()
    assert sorted(k for k in keys if k) == sorted([k1.read_text().strip(), k2.read_text().strip()])
    assert "one@test" in guest.sh("cat /root/.ssh/authorized_keys")
    guest.vsh("set-user-sshkeys", "ag", "root", "--remove", "--file", k1)
    assert [k for k in guest.vsh("get-user-sshkeys", "ag", "root").stdout.splitlines() if k] == \
        [k2.read_text().strip()]
    bad = guest.vsh("set-user-sshkeys", "ag", "root", check=False)
    assert bad.returncode == 1 and "Option --file is required" in bad.stderr

    out = guest.vsh("set-user-password", "ag", "root", "s3cret")
    assert out.stdout.startswith("Password set successfully for root in ag")
    assert "HASH=$6$" in guest.sh("echo HASH=$(grep '^root:' /etc/passwd | cut -d: -f2)")


def test_time(guest):
    secs = int(guest.vsh("domtime", "ag").stdout.split()[1])
    assert abs(secs - time.time()) < 600
    guest.vsh("domtime", "ag", "--time", "1700000000")
    try:
        got = int(guest.vsh("domtime", "ag").stdout.split()[1])
        assert 1700000000 <= got < 1700000000 + 120
        assert guest.vsh("domtime", "ag", "--pretty").stdout.startswith("Time: 2023-11-14 22:")
    finally:
        guest.vsh("domtime", "ag", "--now")
    assert abs(int(guest.vsh("domtime", "ag").stdout.split()[1]) - time.time()) < 120


def test_raw_command_timeout_and_addresses(guest):
    assert guest.vsh("qemu-agent-command", "ag", '{"execute":"guest-ping"}').stdout == '{"return":{}}\n\n'
    pretty = guest.vsh("qemu-agent-command", "ag", "--pretty", '{"execute":"guest-get-host-name"}').stdout
    assert pretty == '{\n  "return": {\n    "host-name": "vshguest"\n  }\n}\n\n'
    bad = guest.vsh("qemu-agent-command", "ag", '{"execute":"no-such-command"}', check=False)
    assert bad.returncode == 1
    assert "unable to execute QEMU agent command 'no-such-command'" in bad.stderr
    guest.vsh("guest-agent-timeout", "ag", "--timeout", "10")
    assert (guest.rundir / "agent-timeout").read_text().strip() == "10"
    guest.vsh("guest-agent-timeout", "ag", "--timeout", "-1")
    out = guest.vsh("domifaddr", "ag", "--source", "agent").stdout
    assert " lo         00:00:00:00:00:00    ipv4         127.0.0.1/8\n" in out


def test_pm_suspend_and_wakeup(guest):
    out = guest.vsh("dompmsuspend", "ag", "mem")
    assert out.stdout.startswith("Domain 'ag' successfully suspended")
    assert vmguest.poll(lambda: guest.qmp("query-status")["status"] == "suspended", 30)
    assert vmguest.poll(lambda: guest.vsh("domstate", "ag", "--reason").stdout == "pmsuspended (unknown)\n\n", 10)
    asleep = guest.vsh("domtime", "ag", check=False)
    assert asleep.returncode == 1 and "domain is not running" in asleep.stderr
    guest.vsh("dompmwakeup", "ag")
    assert vmguest.poll(lambda: guest.qmp("query-status")["status"] == "running", 30)
    assert vmguest.poll(lambda: guest.vsh("domstate", "ag", "--reason").stdout == "running (event wakeup)\n\n", 10)
    # the agent answers again once the guest has resumed its devices
    assert vmguest.poll(lambda: guest.vsh("domhostname", "ag", check=False).returncode == 0, 60, 0.5)


def test_errors_without_an_agent(guest, tmp_path):
    bad = guest.vsh("dompmsuspend", "ag", "mem", "--duration", "5", check=False)
    assert bad.returncode == 1 and "Duration not supported" in bad.stderr
    m = vmguest.manifest()
    # "plain" has no agent channel; "deaf" has one, but its guest (the plain initramfs) runs no agent
    for name, devices in (("plain", ""), ("deaf", CHANNEL)):
        xml = tmp_path / f"{name}.xml"
        xml.write_text(vmguest.guest_domain_xml(name, m, devices))
        guest.vsh("define", xml)
    try:
        off = guest.vsh("domtime", "plain", check=False)
        assert off.returncode == 1 and "domain is not running" in off.stderr
        guest.vsh("start", "plain", "--paused")
        paused = guest.vsh("guestinfo", "plain", check=False)
        assert paused.returncode == 1 and "domain is not running" in paused.stderr
        guest.vsh("resume", "plain")
        none = guest.vsh("domfsinfo", "plain", check=False)
        assert none.returncode == 1
        assert none.stderr == ("error: Unable to get filesystem information\n"
                               "error: argument unsupported: QEMU guest agent is not configured\n")
        guest.vsh("start", "deaf")
        deaf = guest.vsh("guestinfo", "deaf", check=False)
        assert deaf.returncode == 1
        assert deaf.stderr == "error: Guest agent is not responding: QEMU guest agent is not connected\n"
    finally:
        for name in ("plain", "deaf"):
            guest.vsh("destroy", name, check=False)
            guest.vsh("undefine", name, check=False)


def test_agent_lifecycle_events_when_qemu_ga_restarts(guest, tmp_path):
    events = tmp_path / "events.txt"
    before = vmguest.subscribers(guest)
    listener = vmguest.listen(guest, "ag", "--event", "agent-lifecycle", "--loop", "--timeout", "90",
                              stdout=open(events, "w"))
    want = ["event 'agent-lifecycle' for domain 'ag': state: 'disconnected' reason: 'channel event'",
            "event 'agent-lifecycle' for domain 'ag': state: 'connected' reason: 'channel event'"]
    try:
        vmguest.subscribed(guest, before)
        # qemu-ga closes its port when it ends and opens it again when it starts
        guest.sh("killall qemu-ga; sleep 1; " + RESTART_AGENT)
        assert vmguest.poll(lambda: events.read_text().splitlines()[:2] == want, 30), events.read_text()
    finally:
        listener.send_signal(signal.SIGINT)
        vmguest.ended(listener)
    # the live XML says so too, as libvirt's (what scripts wait on)
    assert vmguest.poll(lambda: AGENT_TARGET.format("connected") in guest.xml(), 10), guest.xml()
    assert "state=" not in guest.xml("--inactive")
    guest.sh("killall qemu-ga; echo STO''PPED")
    assert vmguest.poll(lambda: AGENT_TARGET.format("disconnected") in guest.xml(), 10), guest.xml()
    guest.sh(RESTART_AGENT)
    assert vmguest.poll(lambda: guest.vsh("domhostname", "ag", "--source", "agent", check=False).returncode == 0,
                        30, 0.5)


def test_zz_shutdown_through_the_agent(guest):
    assert guest.vsh("shutdown", "ag", "--mode", "agent").stdout.startswith("Domain 'ag' is being shutdown")
    assert vmguest.poll(lambda: guest.vsh("domstate", "ag").stdout.strip() == "shut off", 60, 0.5)
