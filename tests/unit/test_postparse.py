"""Define's libvirt defaults (vsh.core.domain.postparse, usb) in the cases the corpus does not
start here (KVM-only CPU modes, VNC on TCP); each expected text is what libvirtd 9.0 wrote for
the same input (dumpxml --inactive, measured with tests/libvirt_dumps.py's peer)."""

from __future__ import annotations

import pytest
from lxml import etree

from vsh.core.domain import Domain


def defined(devices: str = "", extra: str = "", dtype: str = "qemu", machine: str = "q35") -> Domain:
    dom = Domain.parse(f"<domain type='{dtype}'><name>p</name><memory unit='MiB'>64</memory>{extra}<os>"
                       f"<type arch='x86_64' machine='{machine}'>hvm</type></os><devices>{devices}</devices></domain>")
    dom.fill_defaults()
    return dom


def text(dom: Domain, path: str) -> str:
    return etree.tostring(dom.node.find(path)).decode().replace('"', "'")


@pytest.mark.parametrize("dtype,cpu,want", [
    ("kvm", "", "<cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model></cpu>"),
    ("kvm", "<cpu mode='custom' match='exact'><model>qemu64</model></cpu>",
     "<cpu mode='custom' match='exact' check='partial'><model fallback='allow'>qemu64</model></cpu>"),
    ("qemu", "<cpu><model>Skylake-Client</model><feature name='vmx' policy='disable'/></cpu>",
     "<cpu mode='custom' match='exact' check='none'><model fallback='allow'>Skylake-Client</model>"
     "<feature policy='disable' name='vmx'/></cpu>"),
    ("kvm", "<cpu mode='host-passthrough'/>", "<cpu mode='host-passthrough' check='none' migratable='on'/>"),
    ("kvm", "<cpu mode='host-model'/>", "<cpu mode='host-model' check='partial'/>"),
    ("qemu", "<cpu mode='maximum'/>", "<cpu mode='maximum' check='none'/>"),
])
def test_cpu_model_and_check(dtype, cpu, want):
    assert text(defined(extra=cpu, dtype=dtype), "cpu") == want


def test_boot_device_unless_one_is_named():
    assert text(defined(), "os/boot") == "<boot dev='hd'/>"
    named = defined("<disk type='file' device='disk'><source file='/d'/><target dev='vda' bus='virtio'/>"
                    "<boot order='1'/></disk>")
    assert named.node.find("os/boot") is None


def test_vnc_and_spice_listen_and_the_video_a_display_gets():
    dom = defined("<graphics type='vnc'/><graphics type='vnc' port='5901' listen='127.0.0.1'/>")
    vnc = dom.node.findall("devices/graphics")
    assert [etree.tostring(g).decode().replace('"', "'") for g in vnc] == [
        "<graphics type='vnc' port='-1' autoport='yes'><listen type='address'/></graphics>",
        "<graphics type='vnc' port='5901' autoport='no' listen='127.0.0.1'>"
        "<listen type='address' address='127.0.0.1'/></graphics>"]
    assert text(dom, "devices/video") == "<video><model type='cirrus' vram='16384' heads='1' primary='yes'/></video>"
    assert text(dom, "devices/audio") == "<audio id='1' type='none'/>"
    spice = defined("<graphics type='spice'/><video><model type='virtio'/></video>")
    assert text(spice, "devices/graphics") == "<graphics type='spice'><listen type='none'/></graphics>"
    assert text(spice, "devices/audio") == "<audio id='1' type='spice'/>"


def test_video_sizes_given_are_kept():
    dom = defined("<video><model type='vga' vram='8192'/></video><video><model type='virtio' heads='2'/></video>"
                  "<video><model type='qxl' vram='32768'/></video>")
    assert [text(dom, f"devices/video[{i}]/model") for i in (1, 2, 3)] == [
        "<model type='vga' vram='8192' heads='1' primary='yes'/>", "<model type='virtio' heads='2'/>",
        "<model type='qxl' ram='65536' vram='32768' vgamem='16384' heads='1'/>"]


def test_serial_ports_follow_the_highest_given_and_the_console_mirrors_serial_0():
    dom = defined("<console type='pty'/><serial type='pty'><target port='3'/></serial>")
    assert text(dom, "devices/serial/target") == \
        "<target type='isa-serial' port='3'><model name='isa-serial'/></target>"
    assert text(dom, "devices/console") == "<console type='pty'><target type='serial' port='3'/></console>"
    pci = defined("<serial type='pty'><target type='pci-serial'/></serial>"
                  "<serial type='pty'><target type='usb-serial'/></serial><console type='pty'/>")
    assert [text(pci, f"devices/serial[{i}]") for i in (1, 2)] == [
        "<serial type='pty'><target type='pci-serial' port='0'><model name='pci-serial'/></target></serial>",
        "<serial type='pty'><target type='usb-serial' port='1'><model name='usb-serial'/></target>"
        "<address type='usb' bus='0' port='1'/></serial>"]


def test_scsi_controllers_without_a_model_are_lsilogic():
    dom = defined("<controller type='scsi'/><controller type='scsi' index='1' model='virtio-scsi'/>")
    assert [c.get("model") for c in dom.node.findall("devices/controller[@type='scsi']")] == \
        ["lsilogic", "virtio-scsi"]


def test_no_usb_ports_without_a_usb_controller():
    dom = defined("<controller type='usb' model='none'/><input type='tablet' bus='usb'/>")
    assert dom.node.find("devices/input[@bus='usb']/address") is None
