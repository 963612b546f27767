"""Devices of a running domain (hot-plug, unplug, cdrom media) and the statistics commands,
on real guests under TCG.

One pc guest (module fixture ``vm``, PVH vmlinux + the busybox initramfs from
``scripts/build-test-guest``) serves the tests in file order: they talk to its
shell through the serial console (written to the pty, read back from console.log)
and leave it running.  A second, q35, guest checks root-port placement.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

import vmguest as _vmguest

pytestmark = pytest.mark.vm

REAL_ENV = dict(os.environ)          # before conftest points HOME/XDG into tmp dirs
Guest = _vmguest.Guest


def domain_xml(name: str, m: dict, images: Path, machine: str = "pc", extra: str = "",
               boot: str = "boot.img") -> str:
    cdrom = "" if machine != "pc" else f"""
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='{images}/cd1.iso'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>"""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='{machine}'>hvm</type>
    <kernel>{m.get('vmlinux') or m['kernel']}</kernel>
    <initrd>{m['initrd']}</initrd>
    <cmdline>{m['cmdline']}</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{images}/{boot}'/>
      <target dev='vda' bus='virtio'/>
    </disk>{cdrom}
    <interface type='user'>
      <mac address='52:54:00:12:34:56'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='virtio'/>{extra}
  </devices>
</domain>
"""


def _image(path: Path, marker: str, size: int = 4 << 20) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
        fh.write(marker.encode().ljust(512, b"\0"))
    return path


@pytest.fixture(scope="module")
def env_store(tmp_path_factory):
    m = _vmguest.manifest()
    if m is None:
        pytest.skip("no test guest: scripts/build-test-guest failed or is missing")
    base = tmp_path_factory.mktemp("hotplug")
    images = base / "images"
    images.mkdir()
    _image(images / "boot.img", "BOOT-DISK-VDA")
    _image(images / "boot2.img", "BOOT-DISK-VDA")
    _image(images / "data1.img", "HOTPLUG-MARKER-ONE")
    _image(images / "data2.img", "HOTPLUG-MARKER-TWO")
    _image(images / "cd1.iso", "CDROM-MEDIUM-ONE", 1 << 20)
    _image(images / "cd2.iso", "CDROM-MEDIUM-TWO", 1 << 20)
    store = base / "store"
    env = dict(REAL_ENV, VSH_DEFAULT_URI=f"vsh:///session?root={store}", HOME=str(base))
    env.pop("VSH_URI", None)
    return m, base, images, store, env


@pytest.fixture(scope="module")
def vm(env_store):
    m, base, images, store, env = env_store
    xml = base / "hp1.xml"
    xml.write_text(domain_xml("hp1", m, images))
    g = Guest(store, "hp1", env)
    with g.running(xml, m["ready_line"]):
        yield g


# -- hot-plug -----------------------------------------------------------------------------------


def test_attach_disk_live_while_the_guest_reads(vm, env_store):
    images = env_store[2]
    # the guest keeps reading its boot disk while the new one arrives
    vm.sh("(while :; do dd if=/dev/vda of=/dev/null bs=64k 2>/dev/null; done) & echo $! >/tmp/reader")
    res = vm.vsh("attach-disk", "hp1", images / "data1.img", "vdb", "--subdriver", "raw", "--live")
    assert res.stdout == "Disk attached successfully\n\n"
    live = vm.xml()
    assert "data1.img" in live and "<alias name='virtio-disk1'/>" in live
    assert re.search(r"<address type='pci' domain='0x0000' bus='0x00' slot='0x[0-9a-f]{2}' function='0x0'/>",
                     live)
    assert "data1.img" not in vm.xml("--inactive")          # --live only
    assert str(images / "data1.img") in vm.open_files()
    deadline = time.monotonic() + 30
    while "PRESENT" not in vm.sh("[ -e /sys/block/vdb ] && echo PRE''SENT") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "HOTPLUG-MARKER-ONE" in vm.sh("dd if=/dev/vdb bs=512 count=1 2>/dev/null | head -c 18; echo")
    out = vm.vsh("domblkstat", "hp1", "vdb").stdout
    assert re.fullmatch(r"vdb rd_req (\d+)\nvdb rd_bytes (\d+)\nvdb wr_req 0\nvdb wr_bytes 0\n"
                        r"vdb flush_operations \d+\nvdb rd_total_times \d+\nvdb wr_total_times 0\n"
                        r"vdb flush_total_times \d+\n\n", out), out
    assert int(re.search(r"rd_bytes (\d+)", out).group(1)) >= 512
    vm.sh("kill $(cat /tmp/reader)")


def test_detach_disk_waits_for_the_guest(vm, env_store):
    images = env_store[2]
    # the guest is reading the disk that goes away
    vm.sh("(while :; do dd if=/dev/vdb of=/dev/null bs=64k 2>/dev/null || break; done) &")
    nodes_before = {n["node-name"] for n in vm.qmp("query-named-block-nodes", {"flat": True})}
    assert any(n.startswith("disk") for n in nodes_before)
    events = []
    from vsh.kvm import client

    stream = client.events(str(vm.rundir), ["DEVICE_DELETED"], timeout=60)
    res = vm.vsh("detach-disk", "hp1", "vdb", "--live")
    assert res.stdout == "Disk detached successfully\n\n", res
    for ev in stream:
        events.append(ev)
        if ev["data"].get("device") == "virtio-disk1":
            break
    stream.close()
    assert any(ev["data"].get("device") == "virtio-disk1" for ev in events)
    assert "data1.img" not in vm.xml()
    assert str(images / "data1.img") not in vm.open_files()
    nodes_after = {n["node-name"] for n in vm.qmp("query-named-block-nodes", {"flat": True})}
    assert len(nodes_after) == len(nodes_before) - 2
    assert "ABSENT" in vm.sh("[ -e /sys/block/vdb ] || echo AB''SENT")


def test_detach_timeout_says_what_to_do_and_finishes_later(vm, env_store):
    """A paused guest cannot release a device: detach gives up after its timeout with a
    message, and the supervisor completes the removal once the guest lets go."""
    from vsh.core.errors import Timeout
    from vsh.kvm import client

    images = env_store[2]
    vm.vsh("attach-disk", "hp1", images / "data1.img", "vdb", "--subdriver", "raw", "--live")
    deadline = time.monotonic() + 30
    while "PRESENT" not in vm.sh("[ -e /sys/block/vdb ] && echo PRE''SENT") and time.monotonic() < deadline:
        time.sleep(0.5)
    disk = re.search(r"<disk type='file' device='disk'>(?:(?!</disk>).)*data1\.img.*?</disk>", vm.xml(), re.S).group(0)
    vm.vsh("suspend", "hp1")
    try:
        with pytest.raises(Timeout) as err:
            client.detach_device(str(vm.rundir), disk, timeout=2.0)
        assert err.value.lines[0].startswith("the guest did not release device 'virtio-disk1' within 2 s")
        assert "the persistent configuration was not changed" in err.value.lines[1]
        assert "data1.img" in vm.xml()
    finally:
        vm.vsh("resume", "hp1")
    deadline = time.monotonic() + 60
    while "data1.img" in vm.xml() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "data1.img" not in vm.xml()
    assert str(images / "data1.img") not in vm.open_files()


def test_persistent_attach_and_detach_keep_live_and_config_together(vm, env_store, tmp_path):
    images = env_store[2]
    events = tmp_path / "events.txt"
    before = _vmguest.subscribers(vm)
    listener = _vmguest.listen(vm, "hp1", "--all", "--loop", "--timeout", "180", stdout=open(events, "w"))
    try:
        _vmguest.subscribed(vm, before)
        _attach_and_detach(vm, images)
    finally:
        listener.send_signal(signal.SIGINT)
        _vmguest.ended(listener)
    # libvirt's device-added after each hot-plug, device-removed after each unplug, by the QEMU ids
    lines = [line for line in events.read_text().splitlines() if "'device-" in line]
    assert lines == ["event 'device-added' for domain 'hp1': virtio-disk2",
                     "event 'device-added' for domain 'hp1': net1",
                     "event 'device-removed' for domain 'hp1': net1",
                     "event 'device-removed' for domain 'hp1': virtio-disk2"], events.read_text()


def _attach_and_detach(vm, images):
    res = vm.vsh("attach-disk", "hp1", images / "data2.img", "vdc", "--subdriver", "raw", "--persistent")
    assert res.stdout == "Disk attached successfully\n\n"
    live, config = vm.xml(), vm.xml("--inactive")
    assert "data2.img" in live and "data2.img" in config
    assert "<alias" not in config and "<target dev='vdc' bus='virtio'/>" in config
    res = vm.vsh("attach-interface", "hp1", "user", "--model", "virtio", "--persistent")
    assert res.stdout == "Interface attached successfully\n\n"
    macs_live = re.findall(r"<mac address='([0-9a-f:]+)'/>", vm.xml())
    macs_config = re.findall(r"<mac address='([0-9a-f:]+)'/>", vm.xml("--inactive"))
    assert len(macs_live) == 2 and macs_live == macs_config           # one MAC, chosen once
    deadline = time.monotonic() + 30
    while "PRESENT" not in vm.sh("[ -e /sys/class/net/eth1 ] && echo PRE''SENT") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "PRESENT" in vm.sh("[ -e /sys/class/net/eth1 ] && echo PRE''SENT")
    out = vm.vsh("domiflist", "hp1").stdout
    assert macs_live[1] in out
    res = vm.vsh("detach-interface", "hp1", "user", "--mac", macs_live[1], "--persistent")
    assert res.stdout == "Interface detached successfully\n\n", res
    assert macs_live[1] not in vm.xml() and macs_live[1] not in vm.xml("--inactive")
    network = vm.qmp("human-monitor-command", {"command-line": "info network"})
    assert macs_live[1] not in network and "hostnet1" not in network
    res = vm.vsh("detach-disk", "hp1", "vdc", "--persistent")
    assert res.stdout == "Disk detached successfully\n\n"
    assert "data2.img" not in vm.xml() and "data2.img" not in vm.xml("--inactive")


def test_failed_hotplug_leaves_both_definitions_unchanged(vm, env_store):
    images = env_store[2]
    config, live = vm.config_bytes(), vm.live_bytes()
    nodes = {n["node-name"] for n in vm.qmp("query-named-block-nodes", {"flat": True})}
    # a SCSI disk on a machine without a SCSI controller: blockdev-add works, device_add fails
    res = vm.vsh("attach-disk", "hp1", images / "data2.img", "sdb", "--subdriver", "raw", "--targetbus", "scsi",
                 "--persistent", check=False)
    assert res.returncode == 1
    assert res.stderr.startswith("error: Failed to attach disk\nerror: internal error: unable to execute QEMU "
                                 "command 'device_add': "), res.stderr
    assert (vm.config_bytes(), vm.live_bytes()) == (config, live)
    assert {n["node-name"] for n in vm.qmp("query-named-block-nodes", {"flat": True})} == nodes
    # a NIC at a PCI slot that is taken: netdev_add works, device_add fails
    network = vm.qmp("human-monitor-command", {"command-line": "info network"})
    dev = images.parent / "nic.xml"
    dev.write_text("<interface type='user'><mac address='52:54:00:99:99:01'/><model type='virtio'/>"
                   "<address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/></interface>")
    res = vm.vsh("attach-device", "hp1", dev, "--live", check=False)
    assert res.returncode == 1 and res.stderr.startswith(f"error: Failed to attach device from {dev}\n"), res
    assert vm.qmp("human-monitor-command", {"command-line": "info network"}) == network
    assert (vm.config_bytes(), vm.live_bytes()) == (config, live)
    # a format vsh is told but the image does not have: refused before QEMU is asked
    res = vm.vsh("attach-disk", "hp1", images / "data2.img", "vdd", "--subdriver", "qcow2", "--persistent",
                 check=False)
    assert res.returncode == 1 and "is not a qcow2 image" in res.stderr
    assert (vm.config_bytes(), vm.live_bytes()) == (config, live)


# -- cdrom media ------------------------------------------------------------------------------------


def test_change_media_eject_insert_update(vm, env_store):
    images = env_store[2]
    res = vm.vsh("change-media", "hp1", "hdc", "--eject")
    assert res.stdout == "Successfully ejected media.\n"
    info = [b for b in vm.qmp("query-block") if "inserted" not in b and b.get("removable")]
    assert info, vm.qmp("query-block")
    assert " hdc      -" in vm.vsh("domblklist", "hp1").stdout
    assert "cd1.iso" in vm.xml("--inactive")                  # --current on a running domain: live only
    res = vm.vsh("change-media", "hp1", "hdc", "--eject", check=False)
    assert res.stderr == "error: The disk device 'hdc' doesn't have media\n"
    res = vm.vsh("change-media", "hp1", "hdc", images / "cd2.iso", "--insert")
    assert res.stdout == "Successfully inserted media.\n"
    assert str(images / "cd2.iso") in vm.open_files()
    vm.sh("modprobe ata_piix 2>/dev/null; sleep 2")
    assert "CDROM-MEDIUM-TWO" in vm.sh("dd if=/dev/sr0 bs=2048 count=1 2>/dev/null | head -c 16; echo")
    res = vm.vsh("change-media", "hp1", "hdc", images / "cd1.iso", "--update", "--live", "--config")
    assert res.stdout == "Successfully updated media.\n"
    assert str(images / "cd1.iso") in vm.xml() and str(images / "cd1.iso") in vm.xml("--inactive")
    assert str(images / "cd2.iso") not in vm.open_files()
    upd = images.parent / "cd.xml"
    upd.write_text(f"<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
                   f"<source file='{images}/cd2.iso'/><target dev='hdc' bus='ide'/><readonly/></disk>")
    res = vm.vsh("update-device", "hp1", upd, "--live")
    assert res.stdout == "Device updated successfully\n\n"
    assert str(images / "cd2.iso") in vm.xml() and str(images / "cd1.iso") in vm.xml("--inactive")
    # the guest's first access after a change reports "medium changed"; it reads on the next one
    read = ("for i in 1 2 3 4 5; do v=$(dd if=/dev/sr0 bs=2048 count=1 2>/dev/null | head -c 16); "
            "[ -n \"$v\" ] && break; sleep 1; done; echo \"$v\"")
    assert "CDROM-MEDIUM-TWO" in vm.sh(read)
    res = vm.vsh("change-media", "hp1", "vda", "--eject", check=False)
    assert res.stderr == "error: No disk found whose source path or target is vda\n"


# -- statistics -------------------------------------------------------------------------------------


def test_domstats_format(vm):
    out = vm.vsh("domstats", "hp1").stdout
    # running (1), unpaused (5) after the suspend/resume above
    assert out.startswith("Domain: 'hp1'\n  state.state=1\n  state.reason=5\n  cpu.time=")
    for key in ("cpu.user", "cpu.system", "balloon.current=262144", "balloon.maximum=262144", "balloon.rss",
                "vcpu.current=1", "vcpu.maximum=1", "vcpu.0.state=1", "vcpu.0.time", "net.count=1",
                "net.0.name=net0", "net.0.rx.bytes", "net.0.tx.pkts", "block.count=2", "block.0.name=vda",
                "block.0.rd.reqs", "block.0.capacity=4194304", "block.1.name=hdc"):
        assert re.search(rf"^  {re.escape(key)}", out, re.M), key
    assert all(re.fullmatch(r"  [a-z0-9._-]+=\S.*", line) for line in out.splitlines()[1:] if line)
    data = json.loads(vm.vsh("domstats", "hp1", "--block", "--json").stdout)
    assert data[0]["domain"] == "hp1" and data[0]["stats"]["block.count"] == 2
    assert "state.state" not in data[0]["stats"]
    out = vm.vsh("domstats", "--list-running", "--state").stdout
    assert out == "Domain: 'hp1'\n  state.state=1\n  state.reason=5\n\n"
    assert vm.vsh("domstats", "--list-shutoff", "--state").stdout == "\n"


def test_vcpuinfo_and_cpu_stats(vm):
    out = vm.vsh("vcpuinfo", "hp1").stdout
    assert re.fullmatch(r"VCPU:           0\nCPU:            \d+\nState:          running\n"
                        r"CPU time:       \d+\.\ds\nCPU Affinity:   [y-]+\n\n", out), out
    out = vm.vsh("cpu-stats", "hp1", "--total").stdout
    assert re.fullmatch(r"Total:\n\tcpu_time     +\d+\.\d{9} seconds\n\tuser_time    +\d+\.\d{9} seconds\n"
                        r"\tsystem_time  +\d+\.\d{9} seconds\n\n", out), out
    out = vm.vsh("cpu-stats", "hp1").stdout       # per host CPU: QEMU's cgroup's accounting (v1, root)
    assert _vmguest.qemu_cgroups(vm.state()["qemu_pid"])
    ncpu = len(Path("/sys/fs/cgroup/cpuacct/cpuacct.usage_percpu").read_text().split())
    per_cpu = "".join(rf"CPU{n}:\n\tcpu_time     +\d+\.\d{{9}} seconds\n" for n in range(ncpu))
    assert re.fullmatch(per_cpu + r"Total:\n(\t.*\n){3}\n", out), out
    out = vm.vsh("cpu-stats", "hp1", "--start", "1", "--count", "1").stdout
    assert re.fullmatch(r"CPU1:\n\tcpu_time     +\d+\.\d{9} seconds\n\n", out), out


def test_dommemstat(vm):
    out = vm.vsh("dommemstat", "hp1").stdout
    assert re.fullmatch(r"actual 262144\n(.*\n)*rss \d+\n\n", out), out
    assert vm.vsh("dommemstat", "hp1", "--period", "1", "--live").stdout == "\n"
    deadline = time.monotonic() + 30
    while "last_update" not in out and time.monotonic() < deadline:
        time.sleep(0.5)
        out = vm.vsh("dommemstat", "hp1").stdout
    keys = [line.split()[0] for line in out.splitlines() if line]
    assert keys[0] == "actual" and keys[-1] == "rss"
    for key in ("swap_in", "unused", "available", "last_update"):
        assert key in keys, out


def test_domblkinfo(vm, env_store):
    out = vm.vsh("domblkinfo", "hp1", "vda").stdout
    assert re.fullmatch(r"Capacity:       4194304\nAllocation:     \d+\nPhysical:       4194304\n\n", out), out
    out = vm.vsh("domblkinfo", "hp1", "--all", "--human").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["Target", "Capacity", "Allocation", "Physical"]
    assert re.match(r" vda +4\.000 MiB +\d+\.\d{3} [KMG]?i?B +4\.000 MiB$", lines[2]), out
    assert len(lines[1]) == len(max(lines[:1] + lines[2:], key=len)) + 2


def test_domifstat_and_domifaddr(vm):
    vm.sh("ping -c 1 -W 2 10.0.2.2 >/dev/null 2>&1")
    out = vm.vsh("domifstat", "hp1", "net0").stdout
    m = re.fullmatch(r"net0 rx_bytes (\d+)\nnet0 rx_packets (\d+)\nnet0 tx_bytes (\d+)\nnet0 tx_packets (\d+)\n\n",
                     out)
    assert m and all(int(v) > 0 for v in m.groups()), out
    assert vm.vsh("domifstat", "hp1", "52:54:00:12:34:56").stdout.replace("52:54:00:12:34:56", "net0") == out
    res = vm.vsh("domifstat", "hp1", "eth9", check=False)
    assert res.stderr.startswith("error: Failed to get interface stats hp1 eth9\n")
    out = vm.vsh("domifaddr", "hp1").stdout
    assert out == (" Name       MAC address          Protocol     Address\n" + "-" * 79 + "\n"
                   " net0       52:54:00:12:34:56    ipv4         10.0.2.15/24\n\n"), out
    out = vm.vsh("domifaddr", "hp1", "--source", "arp").stdout
    assert " net0       52:54:00:12:34:56    ipv4         10.0.2.15/24\n" in out, out
    data = json.loads(vm.vsh("domifaddr", "hp1", "--json").stdout)
    assert data == [{"name": "net0", "mac": "52:54:00:12:34:56",
                     "addresses": [{"type": "ipv4", "address": "10.0.2.15", "prefix": 24}]}]


# -- q35: root ports -----------------------------------------------------------------------------


def test_q35_hotplug_uses_a_free_root_port(env_store):
    m, base, images, store, env = env_store
    xml = base / "hp2.xml"
    # define gives the NIC, the xHCI controller, the disk and the balloon root ports 1-4, and one
    # spare (5) for hot-plug, as libvirt does
    xml.write_text(domain_xml("hp2", m, images, machine="q35", boot="boot2.img"))
    g = Guest(store, "hp2", env)
    g.vsh("define", xml)
    g.vsh("start", "hp2")
    try:
        g.wait_log(m["ready_line"])
        res = g.vsh("attach-disk", "hp2", images / "data2.img", "vdb", "--subdriver", "raw")
        assert res.stdout == "Disk attached successfully\n\n"
        assert "<address type='pci' domain='0x0000' bus='0x05' slot='0x00' function='0x0'/>" in g.xml()
        config, live = g.config_bytes(), g.live_bytes()
        res = g.vsh("attach-disk", "hp2", images / "data1.img", "vdc", "--subdriver", "raw", "--persistent",
                    check=False)
        assert res.returncode == 1
        assert "no free PCI hot-plug slot" in res.stderr and "pcie-root-port" in res.stderr, res.stderr
        assert (g.config_bytes(), g.live_bytes()) == (config, live)
        res = g.vsh("detach-disk", "hp2", "vdb")
        assert res.stdout == "Disk detached successfully\n\n"
    finally:
        g.vsh("destroy", "hp2", check=False)
