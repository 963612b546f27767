"""Hot-plug helpers, traffic accounting, media commands and statistics formats, without QEMU.

tests/integration/test_hotplug_stats.py runs the same commands against real guests.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
from pathlib import Path

import pytest
from lxml import etree

from vsh.core.errors import VshError

MAC = "52:54:00:12:34:56"


# -- traffic accounting (vsh.kvm.netacct) --------------------------------------------------------------


def _frame(dst: str, src: str, etype: int, payload: bytes) -> bytes:
    return bytes.fromhex(dst.replace(":", "")) + bytes.fromhex(src.replace(":", "")) + struct.pack(">H", etype) \
        + payload


def _ipv4(src: str, dst: str, proto: int, body: bytes) -> bytes:
    head = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, proto, 0,
                       bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    return head + body


def _dhcp_reply(yiaddr: str, mac: str) -> bytes:
    bootp = bytearray(240)
    bootp[0] = 2
    bootp[16:20] = bytes(map(int, yiaddr.split(".")))
    bootp[28:34] = bytes.fromhex(mac.replace(":", ""))
    udp = struct.pack(">HHHH", 67, 68, 8 + len(bootp), 0) + bytes(bootp)
    return _frame("ff:ff:ff:ff:ff:ff", "52:55:0a:00:02:02", 0x0800, _ipv4("10.0.2.2", "255.255.255.255", 17, udp))


def _arp(spa: str, mac: str) -> bytes:
    body = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + bytes.fromhex(mac.replace(":", "")) \
        + bytes(map(int, spa.split("."))) + bytes(6) + bytes([10, 0, 2, 2])
    return _frame("ff:ff:ff:ff:ff:ff", mac, 0x0806, body)


def _ipv6_from(mac: str, src: bytes) -> bytes:
    return _frame("33:33:00:00:00:16", mac, 0x86DD, struct.pack(">IHBB", 0x60000000, 0, 58, 1) + src + bytes(16)
                  + bytes(20))


def _record(frame: bytes, maxlen: int = 96, ts: int = 1000) -> bytes:
    cap = frame[:maxlen]
    return struct.pack("<IIII", ts, 0, len(cap), len(frame)) + cap


def _dump(rundir: Path, mac: str = MAC, identity=(11, 22)) -> Path:
    from vsh.kvm import netacct

    path = rundir / netacct.pcap_name(mac)
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 96, 1))
    (rundir / netacct.MAP_FILE).write_text(json.dumps(
        {mac: {"id": "net0", "netdev": "hostnet0", "file": path.name, "qemu": list(identity)}}))
    return path


def test_netacct_counts_and_finds_addresses(tmp_path):
    from vsh.kvm import netacct

    path = _dump(tmp_path)
    frames = [_frame("ff:ff:ff:ff:ff:ff", MAC, 0x0800, _ipv4("0.0.0.0", "255.255.255.255", 17, bytes(300))),
              _dhcp_reply("10.0.2.15", MAC),
              _dhcp_reply("10.0.2.16", "52:54:00:00:00:99"),     # someone else's lease
              _arp("10.0.2.15", MAC),
              _ipv6_from(MAC, bytes.fromhex("fe800000000000005054" + "00fffe123456")),
              _ipv6_from(MAC, bytes(16))]                         # unspecified source: DAD
    with open(path, "ab") as fh:
        for f in frames:
            fh.write(_record(f))
    st = netacct.read(tmp_path, MAC)
    tx = [f for f in frames if f[6:12] == bytes.fromhex(MAC.replace(":", ""))]
    rx = [f for f in frames if f not in tx]
    assert (st["tx_packets"], st["tx_bytes"]) == (len(tx), sum(map(len, tx)))
    assert (st["rx_packets"], st["rx_bytes"]) == (len(rx), sum(map(len, rx)))
    assert st["lease"]["address"] == "10.0.2.15"
    assert [s[:2] for s in st["seen"]] == [["10.0.2.15", "ipv4"], ["fe80::5054:ff:fe12:3456", "ipv6"]]
    assert st["id"] == "net0"
    # reading again counts nothing twice; new frames add up; half a record waits for the rest
    assert netacct.read(tmp_path, MAC)["tx_packets"] == len(tx)
    rec = _record(_arp("10.0.2.15", MAC))
    with open(path, "ab") as fh:
        fh.write(rec[:20])
    assert netacct.read(tmp_path, MAC)["tx_packets"] == len(tx)
    with open(path, "ab") as fh:
        fh.write(rec[20:])
    assert netacct.read(tmp_path, MAC)["tx_packets"] == len(tx) + 1


def test_netacct_frees_what_it_read_and_restarts_with_qemu(tmp_path):
    from vsh.kvm import netacct

    path = _dump(tmp_path)
    with open(path, "ab") as fh:
        for _ in range(2000):
            fh.write(_record(_frame("52:55:0a:00:02:02", MAC, 0x0800, bytes(1500))))
    st = netacct.read(tmp_path, MAC)
    assert st["tx_packets"] == 2000 and st["tx_bytes"] == 2000 * 1514
    size = os.stat(path).st_size
    assert st["punched"] > 0 and os.stat(path).st_blocks * 512 < size       # consumed blocks freed
    assert netacct.read(tmp_path, MAC)["tx_packets"] == 2000                 # and never read again
    _dump(tmp_path, identity=(12, 22))            # a new QEMU (crash restart) starts a new dump
    assert netacct.read(tmp_path, MAC)["tx_packets"] == 0


def test_netacct_unknown_mac(tmp_path):
    from vsh.kvm import netacct

    _dump(tmp_path)
    assert netacct.read(tmp_path, "52:54:00:00:00:01") is None


# -- argv: one device's QEMU objects ----------------------------------------------------------------------


def _domain(machine: str = "pc", devices: str = "") -> etree._Element:
    return etree.fromstring(f"<domain type='qemu'><name>x</name><memory>65536</memory><os>"
                            f"<type arch='x86_64' machine='{machine}'>hvm</type></os><devices>{devices}"
                            f"</devices></domain>")


def test_device_options_disk(tmp_path):
    from vsh.kvm.argv import device_options

    img = tmp_path / "a,b.img"
    img.write_bytes(bytes(4096))
    el = etree.fromstring(f"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
                          f"<source file='{img}'/><target dev='vdc' bus='virtio'/><serial>s,1</serial></disk>")
    opts = device_options(_domain(), el, index=4)
    assert opts["family"] == "pc" and opts["netdev"] is None
    assert [b["node-name"] for b in opts["blockdev"]] == ["disk4-file", "disk4-fmt"]
    assert opts["blockdev"][0]["filename"] == str(img) and opts["blockdev"][1]["driver"] == "raw"
    dev = opts["device"]
    assert (dev["driver"], dev["id"], dev["drive"], dev["serial"]) == ("virtio-blk-pci", "virtio-disk2",
                                                                       "disk4-fmt", "s,1")


def test_device_options_nic_and_errors(tmp_path):
    from vsh.core.errors import InvalidArgument, Unsupported
    from vsh.kvm.argv import device_options

    el = etree.fromstring(f"<interface type='user'><mac address='{MAC}'/><model type='e1000'/></interface>")
    opts = device_options(_domain("q35"), el, index=3)
    assert opts["netdev"].startswith("user,id=hostnet3")
    assert opts["device"]["driver"] == "e1000" and opts["device"]["netdev"] == "hostnet3"
    assert opts["device"]["id"] == "net3" and opts["device"]["mac"] == MAC
    # no format: raw, as libvirt reads it (never probed)
    disk = device_options(_domain(), etree.fromstring(
        f"<disk type='file'><source file='{tmp_path}'/><target dev='vdb'/></disk>"))
    assert disk["blockdev"][-1]["driver"] == "raw"
    with pytest.raises(InvalidArgument, match="no <source>"):
        device_options(_domain(), etree.fromstring("<disk type='file'><target dev='vdb'/></disk>"))
    with pytest.raises(Unsupported):
        device_options(_domain(), etree.fromstring("<shmem name='ivshmem0'/>"))


def test_split_opts():
    from vsh.kvm.argv import split_opts

    assert split_opts("virtio-blk-pci,serial=a,,b,id=x") == ["virtio-blk-pci", "serial=a,b", "id=x"]


# -- hot-plug helpers against a fake supervisor ----------------------------------------------------------


class FakeSup:
    def __init__(self, rundir: Path, answers: dict, fail: dict | None = None):
        self.rundir = type("R", (str,), {"__truediv__": lambda s, n: os.path.join(s, n)})(str(rundir))
        self.name = "vm1"
        self.answers = answers
        self.fail = fail or {}
        self.calls: list = []
        self.published: list = []
        self.qemu_pid, self.qemu_starttime = 1, 2

    def _publish(self, event):
        self.published.append(event)

    async def _exec(self, cmd, args=None, timeout=30.0):
        self.calls.append((cmd, args))
        if cmd in self.fail:
            raise VshError(f"internal error: unable to execute QEMU command '{cmd}': {self.fail[cmd]}")
        answer = self.answers.get(cmd)
        return answer(args) if callable(answer) else answer

    def _spawn_task(self, coro):
        return asyncio.ensure_future(coro)


INFO_NETWORK = ("net0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:56\r\n"
                " \\ hostnet0: index=0,type=user,net=10.0.2.0,restrict=off\r\n")


def test_network_clients_parse(tmp_path):
    from vsh.kvm.qemudevs import network_clients

    sup = FakeSup(tmp_path, {"human-monitor-command": INFO_NETWORK})
    assert asyncio.run(network_clients(sup)) == [
        {"id": "net0", "type": "nic", "mac": MAC, "model": "virtio-net-pci", "netdev": "hostnet0",
         "netdev_type": "user"}]


QUERY_PCI = [{"bus": 0, "devices": [
    {"slot": 2, "function": 0, "qdev_id": "virtio-disk0"},
    {"slot": 3, "function": 0, "qdev_id": "pci.1", "pci_bridge": {"bus": {"number": 1}, "devices": [
        {"slot": 0, "function": 0, "qdev_id": "virtio-disk1"}]}},
    {"slot": 4, "function": 0, "qdev_id": "pci.2", "pci_bridge": {"bus": {"number": 2}, "devices": []}}]}]


def test_pci_address_and_q35_placement(tmp_path):
    from vsh.core.domain import Domain
    from vsh.core.errors import OperationInvalid, Unsupported
    from vsh.kvm import qemudevs

    sup = FakeSup(tmp_path, {"query-pci": QUERY_PCI})
    assert asyncio.run(qemudevs.pci_address(sup, "virtio-disk1")) == {
        "type": "pci", "domain": "0x0000", "bus": "0x01", "slot": "0x00", "function": "0x0"}
    assert asyncio.run(qemudevs.pci_address(sup, "virtio-disk0"))["slot"] == "0x02"
    dom = Domain(_domain("q35", "<controller type='pci' index='1' model='pcie-root-port'/>"
                                "<controller type='pci' index='2' model='pcie-root-port'/>"))
    assert asyncio.run(qemudevs.pci_placement(sup, dom, "q35", "disk 'vdc'")) == {"bus": "pci.2", "addr": "0x0"}
    full = Domain(_domain("q35", "<controller type='pci' index='1' model='pcie-root-port'/>"))
    with pytest.raises(OperationInvalid, match="no free PCI hot-plug slot for disk 'vdc'"):
        asyncio.run(qemudevs.pci_placement(sup, full, "q35", "disk 'vdc'"))
    assert asyncio.run(qemudevs.pci_placement(sup, dom, "pc", "x")) == {"bus": "pci.0"}
    with pytest.raises(Unsupported, match="microvm"):
        asyncio.run(qemudevs.pci_placement(sup, dom, "microvm", "x"))


def _live(tmp_path: Path, devices: str = "") -> Path:
    xml = tmp_path / "live.xml"
    xml.write_text(etree.tostring(_domain("pc", devices), encoding="unicode"))
    return xml


def test_attach_rolls_back_when_device_add_fails(tmp_path):
    from vsh.kvm import hotplug

    img = tmp_path / "d.img"
    img.write_bytes(bytes(4096))
    live = _live(tmp_path)
    before = live.read_bytes()
    sup = FakeSup(tmp_path, {"query-named-block-nodes": [{"node-name": "disk0-fmt"}]},
                  fail={"device_add": "Bus 'scsi0.0' not found"})
    disk = (f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{img}'/>"
            f"<target dev='sda' bus='scsi'/></disk>")
    with pytest.raises(VshError, match="scsi0.0"):
        asyncio.run(hotplug.attach(sup, disk))
    cmds = [(c, (a or {}).get("node-name")) for c, a in sup.calls]
    assert cmds == [("query-named-block-nodes", None), ("blockdev-add", "disk1-file"), ("blockdev-add", "disk1-fmt"),
                    ("device_add", None), ("blockdev-del", "disk1-fmt"), ("blockdev-del", "disk1-file")]
    assert live.read_bytes() == before


def test_attach_disk_records_alias_and_address(tmp_path):
    from vsh.kvm import hotplug

    img = tmp_path / "d.img"
    img.write_bytes(bytes(4096))
    live = _live(tmp_path)
    sup = FakeSup(tmp_path, {"query-named-block-nodes": [], "device_add": {}, "blockdev-add": {},
                             "query-pci": [{"bus": 0, "devices": [{"slot": 5, "function": 0,
                                                                   "qdev_id": "virtio-disk1"}]}]})
    disk = (f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{img}'/>"
            f"<target dev='vdb' bus='virtio'/></disk>")
    assert asyncio.run(hotplug.attach(sup, disk))["alias"] == "virtio-disk1"
    add = [a for c, a in sup.calls if c == "device_add"][0]
    assert add["bus"] == "pci.0" and "addr" not in add            # QEMU picks the slot on pc
    text = live.read_text()
    assert "<alias name='virtio-disk1'/>" in text or '<alias name="virtio-disk1"/>' in text
    assert "slot='0x05'" in text or 'slot="0x05"' in text
    # listeners learn of it (libvirt's device-added)
    assert [(e["event"], e["data"]) for e in sup.published] == [("VSH_DEVICE_ADDED", {"device": "virtio-disk1"})]


def test_delete_nodes_top_down(tmp_path):
    from vsh.kvm import hotplug

    graph = {"nodes": [{"id": 1, "type": "block-driver", "name": "disk1-fmt"},
                       {"id": 2, "type": "block-driver", "name": "disk1-file"},
                       {"id": 3, "type": "block-driver", "name": "disk1-b1-fmt"},
                       {"id": 4, "type": "block-driver", "name": "disk1-b1-file"}],
             "edges": [{"parent": 1, "child": 2}, {"parent": 1, "child": 3}, {"parent": 3, "child": 4}]}
    sup = FakeSup(tmp_path, {"x-debug-query-block-graph": graph, "blockdev-del": {}})
    asyncio.run(hotplug.delete_nodes(sup, "disk1-fmt"))
    assert [a["node-name"] for c, a in sup.calls if c == "blockdev-del"] == [
        "disk1-fmt", "disk1-file", "disk1-b1-fmt", "disk1-b1-file"]


# -- change-media / update-device (persistent definition; live through a fake client) ----------------------


CDROM_DOMAIN = """<domain type='qemu'>
  <name>vm1</name>
  <memory unit='MiB'>64</memory>
  <vcpu cpuset='0'>2</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/var/tmp/vm1.img'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='/var/tmp/a.iso'/><target dev='hdc' bus='ide'/><readonly/></disk>
  </devices>
</domain>
"""


@pytest.fixture
def cd(define):
    return define("vm1", xml=CDROM_DOMAIN)


def test_change_media_config(vsh, cd, vsh_env):
    res = vsh("change-media", "vm1", "hdc", "--eject", "--print-xml")
    assert res.out == ("<disk type='file' device='cdrom'>\n  <driver name='qemu' type='raw'/>\n"
                       "  <target dev='hdc' bus='ide'/>\n  <readonly/>\n"
                       "  <address type='drive' controller='0' bus='1' target='0' unit='0'/>\n</disk>\n\n")
    assert vsh("change-media", "vm1", "hdc", "--eject", "--config").out == "Successfully ejected media.\n"
    assert " hdc      -\n" in vsh("domblklist", "vm1").out
    res = vsh("change-media", "vm1", "hdc", "--eject", "--config")
    assert (res.status, res.err) == (1, "error: The disk device 'hdc' doesn't have media\n")
    res = vsh("change-media", "vm1", "hdc", "--insert", "--config")
    assert res.err == "error: New disk media source was not specified\n"
    assert vsh("change-media", "vm1", "hdc", "/var/tmp/b.iso", "--insert").out == "Successfully inserted media.\n"
    res = vsh("change-media", "vm1", "hdc", "/var/tmp/c.iso", "--insert")
    assert res.err == "error: The disk device 'hdc' already has media\n"
    assert vsh("change-media", "vm1", "/var/tmp/b.iso", "c.iso").out == "Successfully updated media.\n"
    assert f" hdc      {vsh_env.tmp}/c.iso\n" in vsh("domblklist", "vm1").out
    assert vsh("-q", "change-media", "vm1", "hdc", "--update").out == "Successfully ejected media."
    res = vsh("change-media", "vm1", "vda", "--eject")
    assert res.err == "error: No disk found whose source path or target is vda\n"
    res = vsh("change-media", "vm1", "hdc", "--eject", "--insert")
    assert res.err == "error: Options --eject and --insert are mutually exclusive\n"
    data = json.loads(vsh("change-media", "vm1", "hdc", "/var/tmp/d.iso", "--json").out)
    assert data["action"] == "update" and data["config"] is True and data["live"] is False


def test_change_media_running_domain_goes_to_the_supervisor(vsh, cd, vsh_env, monkeypatch, store_tree):
    from test_config_commands import fake_hotplug, make_running

    make_running(vsh_env)
    before = store_tree()
    calls = fake_hotplug(monkeypatch)
    assert vsh("change-media", "vm1", "hdc", "/var/tmp/b.iso", "--force").out == "Successfully updated media.\n"
    name, target, xml = calls[0]
    assert (name, target) == ("change_media", "hdc") and "/var/tmp/b.iso" in xml
    assert store_tree() == before              # --current on a running domain: live only
    assert vsh("change-media", "vm1", "hdc", "--eject", "--live", "--config").out == "Successfully ejected media.\n"
    assert calls[1] == ("change_media", "hdc", None)
    assert " hdc      -\n" in vsh("domblklist", "vm1", "--inactive").out
    fake_hotplug(monkeypatch, VshError("Requested operation is not valid: the guest keeps the tray locked"))
    res = vsh("change-media", "vm1", "/var/tmp/vm1.img", "--eject")
    assert res.err == "error: No disk found whose source path or target is /var/tmp/vm1.img\n"


def test_update_device_cdrom(vsh, cd, vsh_env, tmp_path):
    f = tmp_path / "cd.xml"
    f.write_text("<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
                 "<source file='/var/tmp/new.iso'/><target dev='hdc' bus='ide'/><readonly/></disk>")
    res = vsh("update-device", "vm1", str(f), "--config")
    assert res.out == "Device updated successfully\n\n"
    assert " hdc      /var/tmp/new.iso\n" in vsh("domblklist", "vm1").out
    g = tmp_path / "disk.xml"
    g.write_text("<disk type='file' device='disk'><source file='/x'/><target dev='vda'/></disk>")
    res = vsh("update-device", "vm1", str(g), "--config")
    assert res.status == 1 and res.err.startswith(f"error: Failed to update device from {g}\nerror: operation "
                                                  "not supported: update-device can change only the medium")
    h = tmp_path / "none.xml"
    h.write_text("<disk type='file' device='cdrom'><target dev='hdz'/></disk>")
    res = vsh("update-device", "vm1", str(h), "--config")
    assert res.err.endswith("error: device not found: no disk with target 'hdz'\n")


# -- statistics of a shut-off domain, formats ----------------------------------------------------------------


def test_pretty_capacity():
    """virsh's vshPrettyCapacity with three decimals (domblkinfo --human)."""
    from vsh.core.output import human_size

    assert human_size(1099506450432, 3) == "1023.995 GiB"
    assert human_size(1099511627776, 3) == "1.000 TiB"
    assert human_size(512, 3) == "512.000 B"
    assert human_size(4 << 20, 3) == "4.000 MiB"


def test_domblkinfo_shut_off(vsh, define, tmp_path):
    img = tmp_path / "q.qcow2"
    img.write_bytes(b"QFI\xfb" + bytes(20) + (1 << 30).to_bytes(8, "big") + bytes(200))
    raw = tmp_path / "r.img"
    with open(raw, "wb") as fh:
        fh.truncate(2 << 20)
    define("d1", xml=f"""<domain type='qemu'><name>d1</name><memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>
  <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{img}'/><target dev='vda'/></disk>
  <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{raw}'/><target dev='vdb'/></disk>
  <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/></disk>
  </devices></domain>""")
    res = vsh("domblkinfo", "d1", "vda")
    alloc = os.stat(img).st_blocks * 512
    assert res.out == f"Capacity:       1073741824\nAllocation:     {alloc}\nPhysical:       232\n\n"
    assert vsh("domblkinfo", "d1", str(raw)).out.startswith("Capacity:       2097152\n")
    res = vsh("domblkinfo", "d1", "--all", "--human")
    lines = res.out.splitlines()
    assert lines[0] == " Target   Capacity    Allocation   Physical"
    assert lines[2].startswith(" vda      1.000 GiB   ")
    assert lines[3].startswith(" vdb      2.000 MiB   ") and lines[3].endswith("2.000 MiB")
    assert lines[4] == " hdc      -           -            -"
    assert vsh("domblkinfo", "d1").err == "error: command 'domblkinfo' requires <device> option\n"
    assert vsh("domblkinfo", "d1", "vdz").err == "error: invalid argument: invalid path vdz not assigned to domain\n"
    assert vsh("domblkinfo", "d1", "vda", "--all").err == "error: Options --all and --device are mutually exclusive\n"


def test_domstats_shut_off_and_filters(vsh, cd, define, make_xml):
    define("other", xml=make_xml("other"))
    out = vsh("domstats", "vm1", "--state", "--vcpu", "--balloon").out
    assert out == ("Domain: 'vm1'\n  state.state=5\n  state.reason=0\n  balloon.current=65536\n"
                   "  balloon.maximum=65536\n  vcpu.current=2\n  vcpu.maximum=2\n\n")
    out = vsh("domstats", "--state").out
    assert out == ("Domain: 'other'\n  state.state=5\n  state.reason=0\n\n"
                   "Domain: 'vm1'\n  state.state=5\n  state.reason=0\n\n")
    assert vsh("domstats", "--list-running").out == "\n"
    assert vsh("domstats", "--list-shutoff", "--list-persistent", "--state", "other").out.startswith(
        "Domain: 'other'\n")
    data = json.loads(vsh("domstats", "vm1", "--block", "--json").out)
    assert data == [{"domain": "vm1", "stats": {"block.count": 2, "block.0.name": "vda",
                                                "block.0.path": "/var/tmp/vm1.img", "block.1.name": "hdc",
                                                "block.1.path": "/var/tmp/a.iso"}}]
    assert vsh("domstats", "nosuch").err == "error: failed to get domain 'nosuch'\n"


def test_vcpuinfo_shut_off(vsh, cd):
    maxcpu = os.cpu_count()
    aff = "y" + "-" * (maxcpu - 1)
    rec = "VCPU:           {}\nCPU:            N/A\nState:          N/A\nCPU time        N/A\nCPU Affinity:   " + aff
    assert vsh("vcpuinfo", "vm1").out == rec.format(0) + "\n\n" + rec.format(1) + "\n\n"
    assert f"CPU Affinity:   0 (out of {maxcpu})\n" in vsh("vcpuinfo", "vm1", "--pretty").out


def test_queries_of_a_shut_off_domain_fail_clearly(vsh, cd):
    cases = [(("dommemstat", "vm1"), "error: Failed to get memory statistics for domain vm1\n"),
             (("cpu-stats", "vm1"), "error: Failed to retrieve CPU statistics for domain 'vm1'\n"),
             (("domifaddr", "vm1"), "error: Failed to query for interfaces addresses\n"),
             (("domifstat", "vm1", "net0"), "error: Failed to get interface stats vm1 net0\n"),
             (("domblkstat", "vm1", "vda"), "")]
    for argv, first in cases:
        res = vsh(*argv)
        assert res.status == 1
        assert res.err == first + "error: Requested operation is not valid: domain is not running\n", argv
    assert vsh("domifaddr", "vm1", "--source", "dns").err == "error: Unknown data source 'dns'\n"
    res = vsh("domifaddr", "vm1", "--source", "agent")
    assert res.err == ("error: Failed to query for interfaces addresses\n"
                       "error: Requested operation is not valid: domain is not running\n")
    res = vsh("dommemstat", "vm1", "--period", "5", "--config")      # the default balloon takes it
    assert res.status == 0 and "<stats period='5'/>" in vsh("dumpxml", "vm1", "--inactive").out
