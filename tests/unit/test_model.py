"""The domain-XML model (vsh/core/domain.py) against golden files.

Each case reads ``tests/data/golden/NAME-in.xml``, checks what the model's declared
properties read, changes some of them, and compares the model's XML with
``NAME-out.xml``. Regenerate the outputs after a deliberate change with::

    VSH_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_model.py

then review the diff. Other tests here check that every declared property is
exercised by some case, that every written XML validates against libvirt's RelaxNG
schema and against ``Domain.validate()``, that unknown elements survive, and the
semantic validation messages.
"""

from __future__ import annotations

import copy
import os
import re
import uuid as uuidlib
from pathlib import Path

import pytest

from vsh.core import domain as model
from vsh.core.domain import (Channel, Console, Controller, Disk, Domain, Graphics, HostDev, Input,
                             Interface, MemBalloon, Rng, Serial, Sound, Video, Watchdog, is_uuid)
from vsh.core.errors import InvalidArgument, OperationInvalid, VshError, XMLError

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
REGEN = os.environ.get("VSH_REGEN_GOLDEN") == "1"
SCHEMA_PATH = "/usr/share/libvirt/schemas/domain.rng"
# cases whose XML deliberately holds what libvirt's schema does not know
SCHEMA_EXEMPT = {"foreign": "keeps elements and attributes libvirt does not know, on purpose"}

CASES = {}


def case(fn):
    CASES[fn.__name__[len("case_"):].replace("_", "-")] = fn
    return fn


def by_tag(dom, tag):
    return dom.devices(tag)


# -- the cases --------------------------------------------------------------------------------


@case
def case_basic(dom):
    assert (dom.type, dom.id, dom.name) == ("kvm", None, "basic")
    assert dom.title == "A small guest"
    assert dom.description == "Two lines\nof description & an ampersand"
    meta = dom.metadata
    assert meta is not None and meta[0].tag == "{http://example.com/app/1.0}info"
    assert dom.uuid is None
    assert (dom.memory, dom.current_memory, dom.max_memory) == (65536, None, None)
    assert (dom.vcpus, dom.effective_vcpus) == (None, 1)
    assert dom.iothread_ids == []
    assert dom.features == [] and dom.boot_devs == []
    nic = dom.interfaces[0]
    assert (nic.type, nic.mac, nic.source) == ("user", None, None)
    dom.fill_defaults()
    # generated values are checked, then pinned so that the output is stable
    assert is_uuid(dom.uuid) and uuidlib.UUID(dom.uuid).version == 4
    assert re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", nic.mac)
    dom.uuid = "9a3c1f0e-2b4d-4e6f-8a1b-3c5d7e9f0a2b"
    nic.mac = "52:54:00:ab:cd:ef"
    assert (dom.current_memory, dom.vcpus, dom.vcpu_placement) == (65536, 1, "static")
    assert (dom.os_type, dom.os_arch) == ("hvm", "x86_64")
    dom.id = 3
    assert "<domain type='kvm' id='3'>" in dom.to_xml()
    assert dom.to_xml(inactive=True).startswith("<domain type='kvm'>")
    dom.id = None
    dom.title = "Renamed title"
    assert dom.copy().to_xml() == dom.to_xml()


MEMORY_UNITS = [  # (unit, value, KiB) — libvirt's units; decimal ones round up to whole KiB
    ("b", "1024", 1), ("bytes", "2048", 2), ("b", "1000", 1), ("KB", "1024", 1000), ("k", "5", 5),
    ("KiB", "7", 7), ("M", "1", 1024), ("MB", "1", 977), ("MiB", "3", 3072), ("G", "1", 1048576),
    ("GB", "1", 976563), ("GiB", "2", 2097152), ("T", "1", 1073741824), ("TB", "1", 976562500),
    ("TiB", "1", 1073741824), ("P", "1", 1024 ** 4), ("PB", "1", 10 ** 15 // 1024), ("PiB", "1", 1024 ** 4),
    ("E", "1", 1024 ** 5), ("EB", "1", -(-10 ** 18 // 1024)), ("EiB", "1", 1024 ** 5), (None, "42", 42),
]


@case
def case_memory_units(dom):
    assert dom.max_memory == 1073741824 and dom.max_memory_slots == 16
    assert dom.memory == 1048576
    assert dom.current_memory == 500000  # 512 MB = 512,000,000 bytes
    mem = dom.node.find("memory")
    for unit, value, kib in MEMORY_UNITS:
        if unit is None:
            mem.attrib.pop("unit", None)
        else:
            mem.set("unit", unit)
        mem.text = value
        assert dom.memory == kib, unit
    mem.set("unit", "G")
    mem.text = "1"
    dom.fill_defaults()  # libvirt writes every size in KiB
    assert dom.node.find("maxMemory").get("unit") == "KiB"
    dom.max_memory_slots = 8
    dom.set_memory_config(2097152)
    dom.set_current_memory_config(524288)
    assert (dom.memory, dom.current_memory) == (2097152, 524288)
    with pytest.raises(InvalidArgument, match="cannot set memory higher than max memory"):
        dom.set_current_memory_config(4194304)
    with pytest.raises(InvalidArgument, match="greater than the maximum memory size"):
        dom.set_memory_config(2 * 1073741824)
    dom.set_memory_config(262144)  # below current: current comes down too
    assert dom.current_memory == 262144
    dom.set_memory_config(1048576)


@case
def case_cpu(dom):
    assert (dom.vcpus, dom.vcpu_placement, dom.vcpu_current, dom.effective_vcpus) == (4, "auto", 2, 2)
    assert (dom.cpu_mode, dom.cpu_model) == ("custom", "qemu64")
    assert (dom.cpu_sockets, dom.cpu_dies, dom.cpu_cores, dom.cpu_threads) == (1, 1, 2, 2)
    dom.set_vcpus_config(3)
    assert dom.vcpu_current == 3
    with pytest.raises(InvalidArgument, match=r"requested cpu amount exceeds maximum \(5 > 4\)"):
        dom.set_vcpus_config(5)
    with pytest.raises(InvalidArgument, match="CPU topology doesn't match"):
        dom.set_vcpus_config(6, maximum=True)
    dom.cpu_cores = 4
    dom.set_vcpus_config(8, maximum=True)
    assert (dom.vcpus, dom.vcpu_current) == (8, 3)
    dom.vcpu_placement = "static"
    dom.cpu_model = "Skylake-Client"
    dom.cpu_mode = "custom"


@case
def case_os_boot(dom):
    assert (dom.os_type, dom.os_arch, dom.os_machine) == ("hvm", "x86_64", "pc-q35-7.2")
    assert (dom.os_loader, dom.os_loader_readonly, dom.os_loader_type) == \
        ("/usr/share/OVMF/OVMF_CODE_4M.fd", "yes", "pflash")
    assert dom.os_nvram == "/var/lib/vsh/nvram/os-boot_VARS.fd"
    assert (dom.os_kernel, dom.os_initrd) == ("/boot/vmlinuz", "/boot/initrd.img")
    assert dom.os_cmdline == "console=ttyS0 root=/dev/vda1"
    assert dom.boot_devs == ["hd", "network"]
    assert (dom.os_bootmenu, dom.os_firmware) == (False, None)
    dom.boot_devs = ["cdrom", "hd"]
    dom.os_cmdline = "console=ttyS0 quiet"
    dom.os_initrd = None
    dom.os_machine = "q35"
    dom.os_bootmenu = True
    dom.os_firmware = "efi"
    assert dom.node.find("os").get("firmware") == "efi"
    dom.os_firmware = None
    dom.os_loader_type = "pflash"
    dom.os_loader_readonly = "yes"
    dom.os_nvram = "/var/lib/vsh/nvram/os-boot.fd"
    dom.os_kernel = "/boot/vmlinuz-6.1"


@case
def case_features_clock_lifecycle(dom):
    assert dom.features == ["acpi", "apic", "pae", "hyperv"]
    assert (dom.feature_acpi, dom.feature_apic, dom.feature_pae) == (True, True, True)
    dom.feature_pae = False
    dom.feature_apic = True
    dom.feature_acpi = True
    dom.set_feature("smm")
    dom.set_feature("hyperv", False)
    assert dom.features == ["acpi", "apic", "smm"]
    assert (dom.clock_offset, dom.clock_timezone, dom.clock_adjustment) == ("timezone", "Europe/Paris", None)
    dom.clock_offset = "variable"
    dom.clock_timezone = None
    dom.clock_adjustment = "3600"
    assert (dom.on_poweroff, dom.on_reboot, dom.on_crash) == ("destroy", "restart", "destroy")
    dom.on_reboot = "destroy"
    dom.on_crash = "coredump-restart"
    dom.on_poweroff = "preserve"


@case
def case_storage_devices(dom):
    root, data, cdrom = dom.disks
    assert (root.type, root.device, root.driver_name, root.driver_type) == ("file", "disk", "qemu", "qcow2")
    assert (root.driver_cache, root.driver_discard, root.driver_io) == ("none", "unmap", "native")
    assert (root.source_file, root.source, root.source_dev) == ("/var/lib/vsh/images/root.qcow2",) * 2 + (None,)
    assert (root.target_dev, root.target_bus, root.boot_order, root.serial) == ("vda", "virtio", 1, "ROOT-0001")
    assert (root.alias, root.readonly, root.shareable, root.wwn, root.address_type) == \
        ("ua-root", False, False, None, None)
    assert (data.type, data.source_dev, data.source, data.shareable) == \
        ("block", "/dev/vg0/data", "/dev/vg0/data", True)
    assert (data.wwn, data.address_type, data.target_bus) == ("5000c50015ea71ac", "drive", "scsi")
    assert (cdrom.device, cdrom.readonly, cdrom.target_bus) == ("cdrom", True, "sata")
    assert dom.find_disk("sdc").node is cdrom.node
    assert dom.find_disk("/dev/vg0/data").node is data.node
    assert dom.find_disk("vdz") is None
    root.driver_type = "raw"
    root.driver_cache = "writeback"
    root.driver_io = "threads"
    root.driver_discard = "ignore"
    assert (root.driver_error_policy, root.driver_rerror_policy) == (None, None)
    root.driver_error_policy = "report"
    root.driver_rerror_policy = "ignore"
    root.boot_order = 2
    root.serial = None
    root.alias = "ua-system"
    data.set_source("/dev/vg0/data2")
    data.wwn = "5000c50015ea71ad"
    data.shareable = False
    cdrom.set_source(None)  # eject
    new = Disk.new(type="file", device="disk")
    new.set_source("/var/lib/vsh/images/extra.img")
    new.target_dev = "vdb"
    new.target_bus = "virtio"
    new.driver_name = "qemu"
    new.driver_type = "qcow2"
    new.readonly = True
    dom.check_attach(new)
    dom.add_device(new)
    with pytest.raises(OperationInvalid, match="target vda already exists"):
        dom.check_attach(Disk.new(target_dev="vda"))
    ctrl_scsi, ctrl_usb = by_tag(dom, "controller")
    assert (ctrl_scsi.type, ctrl_scsi.index, ctrl_scsi.model) == ("scsi", 0, "virtio-scsi")
    with pytest.raises(OperationInvalid, match="controller type='scsi' index='0' already exists"):
        dom.check_attach(Controller.new(type="scsi", index=0))
    ctrl_usb.model = "nec-xhci"
    ctrl_usb.index = 0
    fs = by_tag(dom, "filesystem")[0]
    assert (fs.type, fs.accessmode, fs.driver_type, fs.source_dir, fs.target_dir) == \
        ("mount", "passthrough", "path", "/srv/share", "share")
    fs.target_dir = "data"
    fs.accessmode = "mapped"
    host = by_tag(dom, "hostdev")[0]
    assert (host.mode, host.type, host.managed) == ("subsystem", "pci", True)
    assert (host.address_domain, host.address_bus, host.address_slot, host.address_function) == \
        ("0x0000", "0x03", "0x00", "0x0")
    with pytest.raises(OperationInvalid, match="already in the domain configuration"):
        dom.check_attach(HostDev(copy.deepcopy(host.node)))
    host.managed = False
    host.address_slot = "0x01"
    assert [d.node.tag for d in dom.matching_devices(Controller.new(type="usb").node)] == ["controller"]
    dom.remove_device(ctrl_usb)


@case
def case_net_char_devices(dom):
    user, net, bridge, eth = dom.interfaces
    assert (user.type, user.mac, user.model, user.source) == ("user", "52:54:00:00:00:01", "virtio", None)
    assert (net.source_network, net.source, net.target_dev, net.model, net.link_state) == \
        ("default", "default", "vnet0", "e1000", "up")
    assert (bridge.source_bridge, bridge.source, bridge.driver_name, bridge.boot_order) == ("br0", "br0", "vhost", 2)
    assert (eth.script_path, eth.target_dev, eth.source) == ("/etc/qemu-ifup", "tap7", None)
    net.link_state = "down"
    bridge.source_bridge = "br1"
    user.model = "e1000e"
    eth.script_path = "/etc/qemu-ifup2"
    direct = Interface.new(type="direct")
    direct.set_source("eth0", mode="vepa")
    direct.mac = "52:54:00:00:00:05"
    direct.model = "virtio"
    assert (direct.source_dev, direct.source_mode, direct.source) == ("eth0", "vepa", "eth0")
    dom.check_attach(direct)
    dom.add_device(direct)
    with pytest.raises(OperationInvalid, match="MAC address 52:54:00:00:00:02 already exists"):
        dom.check_attach(Interface.new(type="user", mac="52:54:00:00:00:02"))
    pty, logfile, sock = by_tag(dom, "serial")
    assert (pty.type, pty.target_port, pty.source_path) == ("pty", 0, None)
    assert (logfile.type, logfile.source_path, logfile.target_port) == \
        ("file", "/var/log/vsh/net-char-devices.serial1.log", 1)
    assert (sock.type, sock.source_mode, sock.source_path) == ("unix", "bind", "/run/vsh/net-char-devices/serial2.sock")
    sock.source_mode = "connect"
    console = by_tag(dom, "console")[0]
    assert isinstance(console, Console)
    assert (console.type, console.target_type, console.target_port) == ("pty", "serial", 0)
    channel = by_tag(dom, "channel")[0]
    assert isinstance(channel, Channel)
    assert (channel.target_type, channel.target_name) == ("virtio", "org.qemu.guest_agent.0")
    channel.target_name = "org.qemu.guest_agent.0"
    inp = by_tag(dom, "input")[0]
    assert isinstance(inp, Input) and (inp.type, inp.bus) == ("tablet", "usb")
    inp.type = "mouse"
    gfx = by_tag(dom, "graphics")[0]
    assert isinstance(gfx, Graphics) and (gfx.type, gfx.port, gfx.listen) == ("vnc", 5901, "127.0.0.1")
    gfx.port = 5902
    snd = by_tag(dom, "sound")[0]
    assert isinstance(snd, Sound) and snd.model == "ich9"
    vid = by_tag(dom, "video")[0]
    assert isinstance(vid, Video) and vid.model == "virtio"
    vid.model = "virtio"
    dog = by_tag(dom, "watchdog")[0]
    assert isinstance(dog, Watchdog) and (dog.model, dog.action) == ("i6300esb", "reset")
    dog.action = "poweroff"
    with pytest.raises(OperationInvalid, match="already has a watchdog"):
        dom.check_attach(Watchdog.new(model="itco"))
    balloon = by_tag(dom, "memballoon")[0]
    assert isinstance(balloon, MemBalloon) and balloon.model == "virtio"
    rng = by_tag(dom, "rng")[0]
    assert isinstance(rng, Rng) and (rng.model, rng.backend_model, rng.backend) == ("virtio", "random", "/dev/urandom")
    rng.backend = "/dev/random"
    assert [s.target_port for s in dom.matching_devices(Serial.new(type="file").node)] == [1]
    assert len(dom.matching_devices(Serial.new(type="pty").node)) == 1
    dom.remove_device(logfile)


@case
def case_machine_parts(dom):
    """What starting a domain reads: the platform parts and every device family (the argv builder)."""
    assert (dom.emulator, dom.has_loader, dom.os_loader_secure, dom.os_loader_format) == \
        ("/usr/bin/qemu-system-x86_64", True, "yes", None)
    assert (dom.has_nvram, dom.os_nvram_type, dom.os_nvram_template) == (True, None, "/usr/share/OVMF/OVMF_VARS.fd")
    assert (dom.has_kernel, dom.os_dtb, dom.os_boot_list) == (True, "/boot/board.dtb", ["hd", "network"])
    assert (dom.os_bootmenu_timeout, dom.os_bios_reboot_timeout, dom.os_smbios_mode) == ("3000", "5000", "sysinfo")
    assert (dom.feature_state("smm"), dom.feature_state("vmport"), dom.feature_state("acpi"),
            dom.feature_state("hap")) == (True, False, True, None)
    assert (dom.has_cpu, dom.has_topology, dom.raw("cpu_sockets")) == (True, True, "1")
    assert dom.cpu_features == [("x2apic", "require"), ("svm", "optional"), ("vmx", "disable")]
    assert (dom.memory_value, dom.memory_unit, dom.has_memory, dom.has_max_memory) == ("1024", "MiB", True, False)
    assert (dom.hugepages, dom.memory_source_type, dom.memory_access_mode) == (True, "memfd", "shared")
    assert (dom.iothreads, dom.hotplugged_vcpu_count(), dom.raw("vcpus"), dom.raw("vcpu_current")) == \
        ("2", 1, "4", "2")
    io = dom.iothread(1)
    assert (io.id, io.thread_pool_min, io.thread_pool_max) == ("1", "1", "4")
    assert (io.poll_max, io.poll_grow, io.poll_shrink) == (None, None, None)
    assert dom.iothread(2) is None
    cell0, cell1 = dom.numa_cells
    assert (cell0.id, cell0.cpus, cell0.memory, cell0.unit, cell0.mem_access, cell0.discard) == \
        ("0", "0-1", "512", "MiB", "shared", "yes")
    assert cell0.distances == [("0", "10"), ("1", "21")] and cell1.distances == []
    tune0, tune1 = dom.numatune_for(0), dom.numatune_for(1)
    assert (tune0.mode, tune0.nodeset, tune0.placement) == ("strict", "0", None)
    assert (tune1.mode, tune1.nodeset) == ("interleave", "0-1")
    assert [(t.name, t.present, t.tickpolicy) for t in dom.timers] == \
        [("rtc", None, "catchup"), ("hpet", "no", None), ("pit", None, "delay")]
    info = dom.smbios_sysinfo
    assert info.blocks("system") == [[("manufacturer", "Example Corp"), ("product", "Model 1")]]
    assert info.blocks("chassis") == [] and info.oem_strings == ["app:one"]
    assert dom.qemu_commandline == [("arg", None, "-trace"), ("arg", None, "events=/tmp/events"),
                                    ("env", "QEMU_AUDIO_DRV", "none")]
    top, cd = dom.disks
    assert (top.transient, top.has_source, top.source_fdgroup, top.source_startup_policy) == \
        (True, True, None, "optional")
    assert (top.driver_queues, top.driver_iothread, top.driver_detect_zeroes, top.iothread_mapping) == \
        ("2", "1", "unmap", False)
    assert (top.logical_block_size, top.physical_block_size, cd.logical_block_size) == ("512", "4096", None)
    mid = top.backing_store
    assert (mid.type, mid.format, mid.source_file, mid.has_source) == \
        ("file", "qcow2", "/var/lib/vsh/images/mid.qcow2", True)
    base = mid.backing_store
    assert (base.type, base.format, base.source_dev, base.source_file) == ("block", "raw", "/dev/vg/base", None)
    assert (base.backing_store.has_source, base.backing_store.backing_store, cd.backing_store) == (False, None, None)
    a = top.address
    assert (a.type, a.domain, a.bus, a.slot, a.function, a.multifunction) == \
        ("pci", "0x0000", "0x01", "0x00", "0x0", None)
    d = cd.address
    assert (d.type, d.controller, d.bus, d.target, d.unit) == ("drive", "0", "0", "0", "0")
    assert (top.kind, top.key) == ("disk", "/domain/devices/disk[1]")
    root, port, ehci, uhci, scsi, vser = dom.devices("controller")
    assert root.address is None and port.describe() == "<controller type='pci' index='1' model='pcie-root-port'>"
    assert (port.model_name, port.target_chassis, port.target_port, port.target_attrs) == \
        ("pcie-root-port", "1", "0x10", {"chassis": "1", "port": "0x10"})
    assert (port.target_chassis_nr, root.model_name, port.raw("index")) == (None, None, "1")
    assert (uhci.master_startport, ehci.master_startport) == ("0", None)
    assert (scsi.driver_queues, scsi.driver_iothread, vser.ports, vser.vectors) == ("4", "1", "16", "4")
    port.set_pci_target("ioh3420", {"port": "0x10", "chassis": "1"}, ("port", "chassis"))
    assert list(port.target_attrs) == ["port", "chassis"] and port.model_name == "pcie-root-port"
    uhci.set_address(type="pci", domain="0x0000", bus="0x00", slot="0x1d", function="0x0", multifunction="on")
    assert uhci.address.multifunction == "on" and uhci.address.port is None
    port.address.multifunction = None
    fs = dom.devices("filesystem")[0]
    assert (fs.multidevs, fs.fmode, fs.dmode, fs.driver_wrpolicy, fs.readonly) == \
        ("remap", "644", "755", "immediate", True)
    nic = dom.interfaces[0]
    assert (nic.backend_type, nic.has_model, nic.port_forward, nic.has("ip"), nic.has("route")) == \
        (None, True, False, True, False)
    assert [(ip.family, ip.address, ip.prefix) for ip in nic.ips] == [("ipv4", "10.0.2.0", "24")]
    assert (nic.has_rom, nic.rom_file, nic.rom_enabled, nic.rom_bar, nic.raw("boot_order")) == \
        (True, "/usr/share/qemu/pxe.rom", "yes", "on", "1")
    udp, tcp, logfile = dom.devices("serial")
    assert [(s.mode, s.host, s.service) for s in udp.sources] == [("bind", "127.0.0.1", "4556"),
                                                                   ("connect", "127.0.0.1", "4555")]
    assert (tcp.protocol_type, tcp.source.service, tcp.raw("target_port")) == ("telnet", "4557", "1")
    assert (logfile.source_append, logfile.source.append, logfile.source.path) == \
        ("on", "on", "/var/log/vsh/machine-parts.log")
    console = dom.devices("console")[0]
    assert (console.reconnect_enabled, console.reconnect_timeout, console.protocol_type) == ("yes", "10", None)
    tpm = dom.devices("tpm")[0]
    assert (tpm.model, tpm.backend_type, tpm.backend_version, tpm.backend_encrypted) == \
        ("tpm-crb", "passthrough", None, False)
    assert (tpm.backend_device, tpm.backend_device_path) == (True, "/dev/tpm0")
    gfx = dom.devices("graphics")[0]
    assert (gfx.passwd, gfx.socket, gfx.listen_socket) == ("secret", "/run/vsh/machine-parts/vnc.sock",
                                                           "/run/vsh/machine-parts/vnc2.sock")
    snd, audio = dom.devices("sound")[0], dom.devices("audio")[0]
    assert (snd.audio_id, snd.codecs, audio.id, audio.type) == ("1", ["micro", "duplex"], "1", "none")
    vid = dom.devices("video")[0]
    assert (vid.has_model, vid.ram, vid.vram, vid.vram64, vid.vgamem, vid.heads) == \
        (True, "65536", "65536", "0", "16384", "1")
    host = dom.devices("hostdev")[0]
    assert (host.has_source_address, host.driver_name, host.rom_bar) == (True, "vfio", "off")
    hub = dom.devices("hub")[0]
    assert (hub.type, hub.address.port) == ("usb", "2")
    balloon = dom.devices("memballoon")[0]
    assert (balloon.autodeflate, balloon.free_page_reporting) == ("on", "on")
    rng = dom.devices("rng")[0]
    assert (rng.has_rate, rng.rate_bytes, rng.rate_period, rng.virtio_model, rng.has_backend) == \
        (True, "1234", "2000", "virtio", True)
    panic = dom.devices("panic")[0]
    assert (panic.model, panic.address.iobase) == ("isa", "0x505")
    vsock = dom.devices("vsock")[0]
    assert (vsock.model, vsock.cid_address) == ("virtio", "3")


@case
def case_unmodeled(dom):
    # nothing here is modeled; it must come out as it went in, also after edits nearby
    before = dom.to_xml()
    dom.description = "edited"
    dom.description = None
    dom.vcpus = 2
    assert dom.to_xml() == before
    dom.description = "now with a description"
    assert dom.node.find("description").getprevious().tag == "genid"


@case
def case_foreign(dom):
    assert dom.node.get("future-attr") == "1"
    dom.fill_defaults()
    dom.validate()
    dom.set_current_memory_config(32768)
    dom.disks[0].driver_type = "raw"


# -- golden comparison ---------------------------------------------------------------------------------


def run_case(name: str) -> str:
    dom = Domain.parse((GOLDEN / f"{name}-in.xml").read_bytes(), f"{name}-in.xml")
    CASES[name](dom)
    return dom.to_xml()


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name):
    out = run_case(name)
    path = GOLDEN / f"{name}-out.xml"
    if REGEN:
        path.write_text(out)
    assert path.exists(), f"missing {path.name}; run with VSH_REGEN_GOLDEN=1 to create it"
    assert out == path.read_text()


def test_golden_files_and_cases_match():
    inputs = {p.name[: -len("-in.xml")] for p in GOLDEN.glob("*-in.xml")}
    outputs = {p.name[: -len("-out.xml")] for p in GOLDEN.glob("*-out.xml")}
    assert inputs == set(CASES), "every NAME-in.xml needs a case in test_model.py and the reverse"
    assert outputs == set(CASES)
    assert {p.name for p in GOLDEN.iterdir()} == {f"{n}-{k}.xml" for n in CASES for k in ("in", "out")}


def _schema():
    if not os.path.exists(SCHEMA_PATH):
        pytest.skip("libvirt's RelaxNG schema is not installed (Debian package libvirt0)")
    from lxml import etree

    if not hasattr(_schema, "rng"):
        _schema.rng = etree.RelaxNG(etree.parse(SCHEMA_PATH))
    return _schema.rng


GOLDEN_FILES = sorted(p.name for p in GOLDEN.glob("*.xml"))


@pytest.mark.parametrize("filename", GOLDEN_FILES)
def test_golden_xml_validates_against_libvirt_schema(filename):
    name = filename.rsplit("-", 1)[0]
    if name in SCHEMA_EXEMPT:
        pytest.skip(SCHEMA_EXEMPT[name])
    from lxml import etree

    rng = _schema()
    doc = etree.parse(str(GOLDEN / filename))
    assert rng.validate(doc), str(rng.error_log)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_output_is_valid_and_stable(name):
    text = (GOLDEN / f"{name}-out.xml").read_text()
    dom = Domain.parse(text)
    dom.validate()
    assert dom.to_xml() == text  # parsing what vsh wrote and writing it again changes nothing


def test_fresh_definitions_validate_against_schema():
    """What fill_defaults makes of a minimal definition is schema-valid."""
    from lxml import etree

    dom = Domain.parse("<domain type='qemu'><name>m</name><memory>1024</memory><devices>"
                       "<disk><source file='/a.img'/><target dev='vdb'/></disk><interface type='user'/>"
                       "</devices></domain>")
    dom.fill_defaults()
    dom.validate()
    rng = _schema()
    assert rng.validate(etree.fromstring(dom.to_xml().encode())), str(rng.error_log)


# -- every declared property is exercised -------------------------------------------------------------


def model_classes():
    out, todo = [], [model.XMLObject]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith(model.__name__ + "."):
                out.append(sub)
    return out


def declared_properties():
    for cls in model_classes():
        for name, value in vars(cls).items():
            if isinstance(value, (model.XProp, model.XFlag, property)) and not name.startswith("_"):
                yield cls, name


class Spy:
    """Wraps a declared property and records that it was read or written."""

    def __init__(self, inner, key, seen):
        self.inner, self.key, self.seen = inner, key, seen

    def __get__(self, obj, owner=None):
        if obj is None:
            return self.inner
        self.seen.add(self.key)
        return self.inner.__get__(obj, owner)

    def __set__(self, obj, value):
        self.seen.add(self.key)
        self.inner.__set__(obj, value)


def test_every_declared_property_is_exercised(monkeypatch):
    props = list(declared_properties())
    assert len(props) > 80
    seen: set = set()
    for cls, name in props:
        monkeypatch.setattr(cls, name, Spy(vars(cls)[name], (cls.__name__, name), seen))
    for name in CASES:
        run_case(name)
    missing = sorted(f"{cls.__name__}.{name}" for cls, name in props if (cls.__name__, name) not in seen)
    assert not missing, f"declared properties no golden case reads or writes: {', '.join(missing)}"


def test_every_device_class_has_a_golden_device():
    tags = set()
    for name in CASES:
        tags |= {el.tag for el in Domain.parse((GOLDEN / f"{name}-in.xml").read_bytes()).devices_node}
    assert set(model.DEVICE_CLASSES) <= tags


# -- units, unknown content, validation -----------------------------------------------------------------


@pytest.mark.parametrize("unit,value,kib", MEMORY_UNITS)
def test_memory_units(unit, value, kib):
    attr = f" unit='{unit}'" if unit else ""
    dom = Domain.parse(f"<domain type='qemu'><name>u</name><memory{attr}>{value}</memory></domain>")
    assert dom.memory == kib


@pytest.mark.parametrize("unit,value", [("kg", "1"), ("Mi", "1"), ("KiB", "-1"), ("KiB", "1.5"), ("KiB", "")])
def test_bad_memory_units(unit, value):
    dom = Domain.parse(f"<domain type='qemu'><name>u</name><memory unit='{unit}'>{value}</memory></domain>")
    with pytest.raises(XMLError):
        dom.memory


def test_unknown_content_survives_define_and_dumpxml(vsh):
    res = vsh("define", str(GOLDEN / "foreign-in.xml"))
    assert res.status == 0, res
    out = vsh("dumpxml", "foreign").out
    for piece in ("<domain type='qemu' future-attr='1'>", "<future-element level='3'>", "<child>text</child>",
                  "<newthing/>", "newattr='x'", "extra='y'", "<mystery/>", "<gizmo model='z'/>",
                  "<!-- a comment in the devices -->"):
        assert piece in out


def test_mixed_content_round_trip():
    text = ("<domain type='qemu'><name>a</name><metadata><v:n xmlns:v='urn:x'>kept <v:b>as</v:b> tail</v:n>"
            "</metadata><memory>1</memory></domain>")
    once = Domain.parse(text).to_xml()
    assert Domain.parse(once).to_xml() == once
    assert Domain.parse(once).metadata[0].text == "kept "


VALID = "<domain type='qemu'><name>{name}</name><memory>1024</memory>{extra}</domain>"


@pytest.mark.parametrize("name,message", [
    ("", "missing name information"), ("a/b", "cannot contain '/'"), (".hidden", "cannot start with '.'"),
    ("tab\tname", "control characters"), ("x" * 256, "too long"),
])
def test_bad_names(name, message):
    dom = Domain.parse(VALID.format(name=name, extra=""))
    with pytest.raises(VshError, match=message):
        dom.validate()


@pytest.mark.parametrize("extra,message", [
    ("<currentMemory>2048</currentMemory>", r"currentMemory \(2048 KiB\) cannot be larger than memory \(1024 KiB\)"),
    ("<vcpu current='3'>2</vcpu>", r"current vcpus \(3\) cannot exceed maximum vcpus \(2\)"),
    ("<devices><disk><target dev='vda'/></disk><disk><target dev='vda'/></disk></devices>",
     "target 'vda' duplicated"),
    ("<uuid>not-a-uuid</uuid>", "malformed uuid"),
    ("<on_crash>explode</on_crash>", "invalid on_crash action 'explode'"),
    ("<vcpu>4</vcpu><cpu><topology sockets='1' cores='2' threads='1'/></cpu>", "topology doesn't match"),
    ("<devices><interface type='user'><mac address='52:54:00:00:00:01'/></interface>"
     "<interface type='user'><mac address='52:54:00:00:00:01'/></interface></devices>", "duplicate MAC"),
])
def test_semantic_validation(extra, message):
    dom = Domain.parse(VALID.format(name="v", extra=extra))
    with pytest.raises(VshError, match=message):
        dom.validate()


def test_missing_name_and_type():
    with pytest.raises(XMLError, match="missing name information"):
        Domain.parse("<domain type='qemu'><memory>1</memory></domain>").validate()
    with pytest.raises(XMLError, match="missing domain type"):
        Domain.parse("<domain><name>x</name><memory>1</memory></domain>").validate()


def test_subset_match_and_normalize_order():
    from lxml import etree

    have = etree.fromstring("<rng model='virtio'><backend model='random'>/dev/urandom</backend>"
                            "<address type='pci' slot='0x05'/></rng>")
    assert model.subset_match(etree.fromstring("<rng model='virtio'/>"), have)
    assert model.subset_match(etree.fromstring("<rng><backend>/dev/urandom</backend></rng>"), have)
    assert not model.subset_match(etree.fromstring("<rng model='virtio-non-transitional'/>"), have)
    assert not model.subset_match(etree.fromstring("<rng><backend>/dev/random</backend></rng>"), have)
    nic = etree.fromstring("<interface type='bridge'><model type='virtio'/><mac address='52:54:00:00:00:01'/>"
                           "<x-unknown/><source bridge='br0'/></interface>")
    model.normalize_order(nic)
    assert [el.tag for el in nic] == ["mac", "source", "model", "x-unknown"]
    assert model.parse_cpuset("0-3,^2,8") == {0, 1, 3, 8}


def test_uuid_rules_are_libvirts():
    from vsh.core.names import is_uuid, is_uuid_arg, normal_uuid

    canon = "97c337bf-e241-4906-9a5f-79c3046b44f9"
    # virUUIDParse: 16 pairs of hex digits, '-' or ' ' between pairs, white space around
    for text in (canon, canon.upper(), canon.replace("-", ""), f" {canon}\n", "97c337bfe241 4906-9a5f79c3046b44f9"):
        assert is_uuid(text) and normal_uuid(text) == canon, text
    for text in ("", None, canon[:-1], canon + "0", canon + "-", "9-7c337bfe24149069a5f79c3046b44f9", "g" * 32):
        assert not is_uuid(text), text
    # virsh tries an argument as a UUID only when it is 36 characters long
    assert is_uuid_arg(canon) and is_uuid_arg(canon.upper())
    assert not is_uuid_arg(canon.replace("-", "")) and not is_uuid_arg(f" {canon}")
