"""Commands of issue 16 that need no running guest: save-image-define/-edit,
managedsave-define/-edit, domxml-from-native, send-process-signal, lxc-enter-namespace,
domlaunchsecinfo, domsetlaunchsecstate, detach-device-alias --config, and the argument
checks of dump and qemu-monitor-event (tests/integration/test_misc_vm.py runs them on a guest)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import domain_xml

NIC = "<interface type='user'><mac address='52:54:00:12:34:56'/><model type='virtio'/></interface>"


def _image(path, xml: str, running: bool = True) -> None:
    from vsh.kvm import saveimage

    saveimage.create(str(path), xml, running)
    fd = os.open(str(path), os.O_RDWR)
    try:
        os.write(fd, b"")
        os.lseek(fd, 0, os.SEEK_END)
        os.write(fd, b"QEVM-stream")
        saveimage.complete(fd)
    finally:
        os.close(fd)


@pytest.fixture
def saved(vsh, define, tmp_path):
    define(xml=domain_xml("vm1", uuid="11111111-2222-3333-4444-555555555555", devices=NIC))
    xml = vsh("dumpxml", "vm1", "--inactive").out
    path = tmp_path / "vm1.save"
    _image(path, xml)
    return path, xml


def test_save_image_define_replaces_the_xml_and_the_state(vsh, saved, tmp_path):
    from vsh.kvm import saveimage

    path, xml = saved
    before = saveimage.read(str(path))
    new = tmp_path / "new.xml"
    new.write_text(xml.replace("<domain type='qemu'>", "<domain type='qemu'>\n  <title>edited</title>"))
    r = vsh("save-image-define", path, new, "--paused")
    assert (r.status, r.out, r.err) == (0, f"State file {path} updated.\n\n", "")
    img = saveimage.read(str(path))
    assert "<title>edited</title>" in img.xml and img.running is False
    assert img.data_offset == before.data_offset
    with open(path, "rb") as fh:
        fh.seek(img.data_offset)
        assert fh.read() == b"QEVM-stream"
    assert "<title>edited</title>" in vsh("save-image-dumpxml", path).out


def test_save_image_define_refuses_another_machine(vsh, saved, tmp_path):
    path, xml = saved
    new = tmp_path / "new.xml"
    new.write_text(xml.replace("<memory unit='KiB'>65536</memory>", "<memory unit='KiB'>131072</memory>")
                   .replace("<currentMemory unit='KiB'>65536</currentMemory>",
                            "<currentMemory unit='KiB'>131072</currentMemory>"))
    r = vsh("save-image-define", path, new)
    assert r.status == 1
    assert r.err == (f"error: Failed to update {path}\nerror: unsupported configuration: Target domain max "
                     "memory 131072 does not match source 65536\n")
    new.write_text(xml.replace("<name>vm1</name>", "<name>vm2</name>"))
    r = vsh("save-image-define", path, new)
    assert "Target domain name 'vm2' does not match source 'vm1'" in r.err
    r = vsh("save-image-define", path, new, "--running", "--paused")
    assert r.status == 1 and "running" in r.err and "paused" in r.err


def test_save_image_edit(vsh, saved, tmp_path, monkeypatch):
    path, _ = saved
    monkeypatch.setenv("EDITOR", "true")
    r = vsh("save-image-edit", path)
    assert (r.status, r.out) == (0, f"Saved image {path} XML configuration not changed.\n\n")
    script = tmp_path / "ed.sh"
    script.write_text("#!/bin/sh\nsed -i 's|</name>|</name><description>d</description>|' \"$1\"\n")
    script.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(script))
    r = vsh("save-image-edit", path)
    assert (r.status, r.out, r.err) == (0, f"State file {path} edited.\n\n", "")
    assert "<description>d</description>" in vsh("save-image-dumpxml", path).out


def test_managedsave_define_and_edit(vsh, saved, tmp_path, monkeypatch, vsh_env):
    from vsh import api

    r = vsh("managedsave-define", "vm1", tmp_path / "missing.xml")
    assert r.status == 1
    path, xml = saved
    new = tmp_path / "new.xml"
    new.write_text(xml)
    r = vsh("managedsave-define", "vm1", new)
    assert r.err == ("error: Failed to update vm1 XML configuration\nerror: Requested operation is not valid: "
                     "domain does not have managed save image\n")
    conn = api.connect(vsh_env.uri)
    from vsh.api.local.domains import managed_save_path

    target = managed_save_path(conn.store, "vm1")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    new.write_text(xml.replace("<name>vm1</name>", "<name>vm1</name><title>t</title>"))
    r = vsh("managedsave-define", "vm1", new, "--running")
    assert (r.status, r.out) == (0, "Managed save state file of domain 'vm1' updated.\n\n")
    assert "<title>t</title>" in vsh("managedsave-dumpxml", "vm1").out
    monkeypatch.setenv("EDITOR", "true")
    r = vsh("managedsave-edit", "vm1")
    assert r.out == "Managed save image of domain 'vm1' XML configuration not changed.\n\n"


ARGV = r"""LC_ALL=C /usr/bin/qemu-system-x86_64 -name guest=web,debug-threads=on -uuid 0f0e0d0c-0b0a-0908-0706-050403020100 \
  -machine pc-q35-7.2,accel=kvm -cpu host -m 1G -smp 2,maxcpus=4 \
  -drive file=/var/lib/img/web.qcow2,format=qcow2,if=virtio,cache=none \
  -blockdev driver=file,filename=/var/lib/img/data.raw,node-name=f1 -blockdev driver=raw,file=f1,node-name=d1 \
  -device virtio-blk-pci,drive=d1 -cdrom /isos/boot.iso \
  -netdev user,id=n0 -device virtio-net-pci,netdev=n0,mac=52:54:00:aa:bb:cc \
  -kernel /boot/vmlinuz -initrd /boot/initrd.img -append 'console=ttyS0 root=/dev/vda1' \
  -serial pty -serial file:/tmp/s1.log -nographic -boot order=dc
"""


def test_domxml_from_native_reads_the_common_options(vsh, tmp_path):
    from lxml import etree

    args = tmp_path / "web.args"
    args.write_text(ARGV)
    r = vsh("domxml-from-native", "qemu-argv", args)
    assert r.status == 0, r.err
    root = etree.fromstring(r.out.encode())
    assert root.get("type") == "kvm"
    assert root.findtext("name") == "web"
    assert root.findtext("uuid") == "0f0e0d0c-0b0a-0908-0706-050403020100"
    assert root.findtext("memory") == str(1024 * 1024)
    assert root.findtext("vcpu") == "4" and root.find("vcpu").get("current") == "2"
    assert root.find("os/type").get("machine") == "pc-q35-7.2"
    assert root.findtext("os/kernel") == "/boot/vmlinuz" and root.findtext("os/initrd") == "/boot/initrd.img"
    assert root.findtext("os/cmdline") == "console=ttyS0 root=/dev/vda1"
    assert [b.get("dev") for b in root.findall("os/boot")] == ["cdrom", "hd"]
    assert root.find("cpu").get("mode") == "host-passthrough"
    disks = [(d.get("device"), d.find("source").get("file"), d.find("target").get("dev"),
              d.find("driver").get("type")) for d in root.findall("devices/disk")]
    assert disks == [("disk", "/var/lib/img/web.qcow2", "vda", "qcow2"),
                     ("disk", "/var/lib/img/data.raw", "vdb", "raw"),
                     ("cdrom", "/isos/boot.iso", "hdc", "raw")]
    nic = root.find("devices/interface")
    assert nic.get("type") == "user" and nic.find("mac").get("address") == "52:54:00:aa:bb:cc"
    assert nic.find("model").get("type") == "virtio"
    serials = root.findall("devices/serial")
    assert [s.get("type") for s in serials] == ["pty", "file"]
    assert serials[1].find("source").get("path") == "/tmp/s1.log"
    out = tmp_path / "web.xml"
    out.write_text(r.out)
    assert vsh("define", out).status == 0


def test_domxml_from_native_legacy_net_and_errors(vsh, tmp_path):
    args = tmp_path / "a.args"
    args.write_text("qemu-system-x86_64 -m 256 -hda /img/a.img -net nic,model=e1000 -net user -name a")
    r = vsh("domxml-from-native", "qemu-argv", args)
    assert r.status == 0 and "<model type='e1000'/>" in r.out and "<interface type='user'>" in r.out
    args.write_text("qemu-system-x86_64 -m")
    r = vsh("domxml-from-native", "qemu-argv", args)
    assert r.err == "error: internal error: missing value for -m argument\n"
    r = vsh("domxml-from-native", "xen-xm", args)
    assert r.status == 1


def test_send_process_signal_is_refused_as_libvirts_qemu_driver(vsh, define):
    define(xml=domain_xml("vm1"))
    r = vsh("send-process-signal", "vm1", "1", "sigterm")
    assert (r.status, r.err) == (1, "error: this function is not supported by the connection driver: "
                                    "virDomainSendProcessSignal\n")
    r = vsh("send-process-signal", "vm1", "1", "bogus")
    assert r.err == "error: malformed signal name: bogus\n"
    r = vsh("send-process-signal", "nosuch", "1", "term")
    assert "failed to get domain 'nosuch'" in r.err


def test_signal_names():
    from vsh.commands.lifecycle import signal_number

    assert [signal_number(s) for s in ("SIGTERM", "sig_kill", "hup", "9", "rt0")] == [15, 9, 1, 9, 32]


def test_lxc_and_launch_security(vsh, define, tmp_path):
    define(xml=domain_xml("vm1"))
    r = vsh("lxc-enter-namespace", "vm1", "--", "/bin/true")
    assert r.err == "error: this function is not supported by the connection driver: virDomainLxcOpenNamespace\n"
    r = vsh("domlaunchsecinfo", "vm1")
    assert (r.status, r.out, r.err) == (0, "\n", "")
    hdr, sec = tmp_path / "hdr", tmp_path / "sec"
    hdr.write_text("aGRy\n")
    sec.write_text("c2Vj\n")
    r = vsh("domsetlaunchsecstate", "vm1", "--secrethdr", hdr, "--secret", sec)
    assert r.err == ("error: Unable to set launch security state\nerror: Requested operation is not valid: "
                     "domain is not running\n")


def test_detach_device_alias_config(vsh, define):
    define(xml=domain_xml("vm1", devices="<rng model='virtio'><backend model='random'>/dev/urandom</backend>"
                                          "<alias name='ua-rng0'/></rng>"))
    r = vsh("detach-device-alias", "vm1", "ua-nosuch", "--config")
    assert r.err == ("error: Failed to detach device with alias ua-nosuch\nerror: device not found: no device "
                     "found with alias ua-nosuch\n")
    r = vsh("detach-device-alias", "vm1", "ua-rng0")
    assert (r.status, r.out) == (0, "Device detach request sent successfully\n\n")
    assert "<rng" not in vsh("dumpxml", "vm1", "--inactive").out
    r = vsh("detach-device-alias", "vm1", "x", "--live")
    assert "domain is not running" in r.err


def test_dump_and_events_need_a_running_domain(vsh, define, tmp_path):
    define(xml=domain_xml("vm1"))
    r = vsh("dump", "vm1", tmp_path / "core", "--memory-only")
    assert r.err == (f"error: Failed to core dump domain 'vm1' to {tmp_path / 'core'}\nerror: Requested operation "
                     "is not valid: domain is not running\n")
    r = vsh("dump", "vm1", tmp_path / "core", "--format", "elf")
    assert r.err == "error: --format only works with --memory-only\n"
    r = vsh("dump", "vm1", tmp_path / "core", "--crash", "--live")
    assert "Flags 'VIR_DUMP_CRASH' and 'VIR_DUMP_LIVE' are mutually exclusive" in r.err
    r = vsh("qemu-monitor-event", "vm1")
    assert "domain is not running" in r.err
    r = vsh("qemu-monitor-event", "--timeout", "1")
    assert (r.status, r.out) == (0, "event loop timed out\nevents received: 0\n\n")
    # event fails when nothing came, as virsh's: status 1, its count on stdout, no error line
    r = vsh("event", "--all", "--timeout", "1")
    assert (r.status, r.out, r.err) == (1, "event loop timed out\nevents received: 0\n\n", "")


def test_event_lines():
    from vsh.commands.lifecycle import _event_line

    ev = {"event": "STOP", "data": None, "timestamp": {"seconds": 12, "microseconds": 34}}
    assert _event_line("vm1", ev, False, False) == "event STOP at 12.000034 for domain 'vm1': <null>\n"
    ev = {"event": "RESET", "data": {"guest": True, "reason": "guest-reset"}, "timestamp": {"seconds": 1,
                                                                                            "microseconds": 0}}
    assert _event_line("vm1", ev, False, False) == ("event RESET at 1.000000 for domain 'vm1': "
                                                    "{\"guest\":true,\"reason\":\"guest-reset\"}\n")
    assert "{\n  \"guest\": true,\n" in _event_line("vm1", ev, True, False)
    assert _event_line("vm1", ev, False, True).split(": event RESET for domain 'vm1': ")[1].startswith("{")


def test_qemu_monitor_event_json_mode(vsh):
    r = vsh("qemu-monitor-event", "--timeout", "1", "--json")
    assert r.status == 0 and '"count": 0' in r.out and "timed out" not in r.out
