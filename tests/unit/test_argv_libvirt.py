"""Domain XML read as libvirt's qemu driver reads it (issue 14 §1): defaults written on define,
implicit controllers, libvirt's PCI address plan, the devices QEMU 7.2 runs, libvirt's checks."""

from __future__ import annotations

import pytest
from lxml import etree

from vsh.core.domain import Domain, parse_cpuset
from vsh.core.errors import InvalidArgument, Unsupported, VshError, XMLError
from vsh.kvm.argv import RuntimePaths, build_argv


def domain(tmp_path, devices: str, machine: str = "pc", extra: str = "") -> Domain:
    (tmp_path / "d.raw").write_bytes(b"\0" * 65536)
    xml = (f"<domain type='qemu'><name>t</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>{extra}"
           f"<os><type arch='x86_64' machine='{machine}'>hvm</type></os><devices>"
           + devices.replace("DISK", str(tmp_path / "d.raw")) + "</devices></domain>")
    return Domain.parse(xml)


def defined(tmp_path, devices: str, machine: str = "pc", extra: str = "") -> Domain:
    dom = domain(tmp_path, devices, machine, extra)
    dom.fill_defaults()
    dom.validate()
    return dom


def devs(dom: Domain) -> list[str]:
    out = _argv(dom)
    return [out[i + 1] for i, a in enumerate(out) if a in ("-device", "-audiodev", "-chardev")]


VDA = "<disk type='file' device='disk'><source file='DISK'/><target dev='vda' bus='virtio'/></disk>"


def test_define_writes_raw_and_drops_cache_default(tmp_path):
    dom = defined(tmp_path, "<disk type='file' device='disk'><driver cache='default' io='threads'/>"
                            "<source file='DISK'/><target dev='vda'/></disk>")
    drv = dom.node.find("devices/disk/driver")
    assert dict(drv.attrib) == {"name": "qemu", "type": "raw", "io": "threads"}
    assert etree.tostring(drv) == b'<driver name="qemu" type="raw" io="threads"/>'


def test_define_numbers_controllers_and_adds_the_implicit_ones(tmp_path):
    dom = defined(tmp_path, VDA + "<controller type='scsi' model='virtio-scsi'/>"
                  "<controller type='scsi' model='virtio-scsi'/>"
                  "<disk type='file' device='disk'><source file='DISK'/><target dev='hda'/></disk>"
                  "<channel type='unix'><target type='virtio' name='a.b'/></channel>")
    ctrls = [(c.get("type"), c.get("index"), c.get("model")) for c in dom.node.findall("devices/controller")]
    # libvirt 9.0's order: the machine's own (USB, PCI root), then those for the disks, virtio-serial
    assert ctrls == [("scsi", "0", "virtio-scsi"), ("scsi", "1", "virtio-scsi"), ("usb", "0", "piix3-uhci"),
                     ("pci", "0", "pci-root"), ("ide", "0", None), ("virtio-serial", "0", None)]
    q35 = defined(tmp_path, VDA, machine="q35")
    assert [(c.get("type"), c.get("model")) for c in q35.node.findall("devices/controller")] == \
        [("usb", "qemu-xhci"), ("sata", None), ("pci", "pcie-root")]
    again = q35.to_xml()
    q35.fill_defaults()
    assert q35.to_xml() == again                     # a fixed point


def test_pc_addresses_as_libvirt_plans_them(tmp_path):
    dom = defined(tmp_path, VDA + "<interface type='user'><model type='e1000'/></interface>"
                  "<video><model type='qxl'/></video><memballoon model='virtio'/>")
    d = devs(dom)
    assert "piix3-usb-uhci,id=usb,bus=pci.0,addr=0x1.0x2" in d
    # the sizes define writes for qxl (libvirt's defaults), as libvirt passes them
    assert "qxl-vga,id=video0,ram_size=67108864,vram_size=67108864,vgamem_mb=16,max_outputs=1,bus=pci.0,addr=0x2" in d
    assert any(x.startswith("e1000,") and x.endswith("bus=pci.0,addr=0x3") for x in d)
    assert any(x.startswith("virtio-blk-pci,") and "addr=0x4" in x for x in d)
    assert "virtio-balloon-pci,id=balloon0,bus=pci.0,addr=0x5" in d


def test_chipset_controllers_keep_their_places(tmp_path):
    addr = "<address type='pci' domain='0' bus='0' slot='0x01' function='0x%d'/>"
    ok = defined(tmp_path, VDA + "<controller type='ide' index='0'>" + addr % 1 + "</controller>"
                 "<controller type='usb' index='0' model='piix3-uhci'>" + addr % 2 + "</controller>")
    assert "piix3-usb-uhci,id=usb,bus=pci.0,addr=0x1.0x2" in devs(ok)
    bad = defined(tmp_path, VDA + "<controller type='ide' index='0'>" + addr % 3 + "</controller>")
    with pytest.raises(InvalidArgument, match="must have PCI address 00:01.1"):
        devs(bad)
    taken = defined(tmp_path, VDA + "<interface type='user'><model type='e1000'/>" + addr % 3 + "</interface>")
    with pytest.raises(InvalidArgument, match="00:01.3 is already in use"):
        devs(taken)


def test_usb2_companions_share_a_slot(tmp_path):
    dom = defined(tmp_path, VDA + "".join("<controller type='usb' index='0' model='%s'/>" % m
                                          for m in ("ich9-ehci1", "ich9-uhci1", "ich9-uhci2", "ich9-uhci3")))
    d = devs(dom)
    assert "ich9-usb-ehci1,id=usb,bus=pci.0,addr=0x2.0x7" in d
    assert "ich9-usb-uhci1,masterbus=usb.0,firstport=0,bus=pci.0,addr=0x2,multifunction=on" in d
    assert "ich9-usb-uhci3,masterbus=usb.0,firstport=4,bus=pci.0,addr=0x2.0x2" in d


def test_video_sound_hub_usb_disk(tmp_path):
    dom = defined(tmp_path, VDA + "<video><model type='virtio'/></video><video><model type='ramfb'/></video>"
                  "<sound model='ich6'><codec type='micro'/></sound><sound model='usb'/><hub type='usb'/>"
                  "<disk type='file' device='disk'><source file='DISK'/><target dev='sdb' bus='usb'/></disk>")
    d = devs(dom)
    assert "virtio-vga,id=video0,max_outputs=1,bus=pci.0,addr=0x2" in d and "ramfb,id=video1" in d
    assert d.count("none,id=audio1") == 1
    assert "hda-micro,id=sound0-codec0,bus=sound0.0,cad=0,audiodev=audio1" in d
    # USB ports as define gives them (libvirt's order: the hub, the disk, then the sound card on the hub)
    hub = d.index("usb-hub,id=hub0,bus=usb.0,port=1")
    assert hub < d.index("usb-audio,id=sound1,audiodev=audio1,bus=usb.0,port=1.1")
    assert any(x.startswith("usb-storage,bus=usb.0,port=2,drive=disk1-fmt,id=usb-disk1") for x in d)
    with pytest.raises(Unsupported, match="<audio type='pa'> is not supported"):
        devs(defined(tmp_path, "<sound model='ac97'/><audio id='1' type='pa'/>"))
    with pytest.raises(InvalidArgument, match="'none' video type must be the only"):
        devs(defined(tmp_path, "<video><model type='none'/></video><video><model type='vga'/></video>"))


def test_character_devices(tmp_path):
    dom = defined(tmp_path, "<serial type='tcp'><source mode='bind' host='127.0.0.1' service='4555'/>"
                  "<protocol type='telnet'/><target port='0'/></serial>"
                  "<serial type='udp'><source mode='bind' host='0.0.0.0' service='1111'/>"
                  "<source mode='connect' host='10.0.0.1' service='2222'/><target port='1'/></serial>"
                  "<serial type='dev'><source path='/dev/ttyS9'/><target port='2'/></serial>")
    d = [x for x in devs(dom) if "charmonitor" not in x and not x.startswith("piix3")]
    assert d[0].startswith("socket,id=charserial0,host=127.0.0.1,port=4555,telnet=on,server=on,wait=off,")
    assert d[2].startswith("udp,id=charserial1,host=10.0.0.1,port=2222,localaddr=0.0.0.0,localport=1111,")
    assert d[4].startswith("serial,id=charserial2,path=/dev/ttyS9,")
    # stdio: QEMU's stdout, which is the domain's qemu.log (libvirt: the domain log)
    stdio = devs(defined(tmp_path, "<serial type='stdio'/>"))
    assert any(x.startswith("stdio,id=charserial0,logfile=") for x in stdio)
    with pytest.raises(Unsupported, match="'vc' is not supported: it needs a graphical display"):
        devs(defined(tmp_path, "<serial type='vc'/>"))


def test_per_queue_iothreads_are_refused_not_dropped(tmp_path):
    dom = defined(tmp_path, "<disk type='file' device='disk'><driver name='qemu' type='raw'><iothreads>"
                  "<iothread id='1'><queue id='0'/></iothread></iothreads></driver>"
                  "<source file='DISK'/><target dev='vda'/></disk>", extra="<iothreads>1</iothreads>")
    with pytest.raises(Unsupported, match="per-queue <iothreads> mapping"):
        devs(dom)


@pytest.mark.parametrize("text", ["aaa", "1-", "-1", "0,,2", "3-1", "^"])
def test_cpusets_are_checked_as_libvirt_does(tmp_path, text):
    with pytest.raises(InvalidArgument, match="Failed to parse bitmap '%s'" % text.replace("^", r"\^")):
        parse_cpuset(text)
    with pytest.raises(VshError, match="Failed to parse bitmap"):
        _with_cpuset(tmp_path, text).validate()
    assert parse_cpuset("0-3,^2,8") == {0, 1, 3, 8}


def _with_cpuset(tmp_path, text: str) -> Domain:
    dom = domain(tmp_path, VDA)
    dom.node.find("vcpu").set("cpuset", text)
    return dom


@pytest.mark.parametrize("target", ["hdaxxxxxxxxxx", "vd1", "hda-", "xyz"])
def test_disk_targets_that_are_no_disk_name(tmp_path, target):
    with pytest.raises(XMLError, match="Unknown disk name '%s' and no address specified" % target):
        defined(tmp_path, "<disk type='file' device='disk'><source file='DISK'/>"
                          "<target dev='%s' bus='ide'/></disk>" % target)


@pytest.mark.parametrize("date,ok", [("01/31/2020", True), ("12/15/23", True), ("13/01/2020", False),
                                     ("01/32/2020", False), ("01/01/1899", False), ("2020-01-01", False)])
def test_smbios_bios_date(tmp_path, date, ok):
    extra = "<sysinfo type='smbios'><bios><entry name='date'>%s</entry></bios></sysinfo>" % date
    if ok:
        defined(tmp_path, VDA, extra=extra)
    else:
        with pytest.raises(XMLError, match="Invalid BIOS 'date' format"):
            defined(tmp_path, VDA, extra=extra)


def test_root_ports_and_dmi_bridge_on_q35(tmp_path):
    dom = defined(tmp_path, VDA + "<controller type='pci' index='1' model='pcie-root-port'/>"
                  "<controller type='pci' index='2' model='dmi-to-pci-bridge'/>", machine="q35")
    d = devs(dom)
    assert "pcie-root-port,port=8,chassis=1,id=pci.1,bus=pcie.0,addr=0x1" in d      # port from its slot
    assert "i82801b11-bridge,id=pci.2,bus=pcie.0,addr=0x1e" in d                   # where ICH9 has it
    with pytest.raises(InvalidArgument, match="dmi-to-pci-bridge needs machine q35"):
        devs(defined(tmp_path, "<controller type='pci' index='1' model='dmi-to-pci-bridge'/>"))


def test_vsock_where_the_host_has_vhost_vsock(tmp_path, monkeypatch):
    from vsh.kvm.argv import devices as argv_devices

    vsock = "<vsock model='virtio'><cid auto='no' address='7'/></vsock>"
    monkeypatch.setattr(argv_devices, "VHOST_VSOCK", str(tmp_path / "absent"))
    with pytest.raises(Unsupported, match="needs .*absent, which this host does not have"):
        devs(defined(tmp_path, vsock, machine="q35"))
    (tmp_path / "vhost-vsock").write_bytes(b"")
    monkeypatch.setattr(argv_devices, "VHOST_VSOCK", str(tmp_path / "vhost-vsock"))
    assert "vhost-vsock-pci,id=vsock0,guest-cid=7,bus=pcie.0,addr=0x3" in devs(defined(tmp_path, vsock, "q35"))


def test_smbios_from_sysinfo_only_in_mode_sysinfo(tmp_path):
    info = ("<sysinfo type='smbios'><bios><entry name='vendor'>A, B</entry></bios>"
            "<system><entry name='serial'>42</entry></system><oemStrings><entry>x=1</entry></oemStrings>"
            "</sysinfo>")
    dom = defined(tmp_path, VDA, extra=info)
    assert "-smbios" not in _argv(dom)                           # mode 'emulate': QEMU's own tables
    dom.node.find("os").append(etree.fromstring("<smbios mode='sysinfo'/>"))
    argv = _argv(dom)
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-smbios"] == \
        ["type=0,vendor=A,, B", "type=1,serial=42", "type=11,value=x=1"]
    dom.node.find("os/smbios").set("mode", "host")
    with pytest.raises(Unsupported, match="does not copy the host's SMBIOS tables"):
        _argv(dom)


def _argv(dom: Domain) -> list[str]:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("argv_materials", Path(__file__).resolve().parents[1]
                                                  / "argv_materials.py")
    am = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(am)
    return build_argv(dom.node, am.fake_host(), RuntimePaths.for_rundir("/run/vsh/t"))


def test_define_adds_the_clock_ps2_inputs_and_balloon_libvirt_adds(tmp_path):
    dom = defined(tmp_path, VDA + "<graphics type='vnc'/><rng model='virtio'><backend model='random'>"
                               "/dev/urandom</backend></rng>")
    tags = [(el.tag, el.get("type") or el.get("model")) for el in dom.node.find("devices")]
    assert tags == [("disk", "file"), ("controller", "usb"), ("controller", "pci"), ("input", "mouse"),
                    ("input", "keyboard"), ("graphics", "vnc"), ("audio", "none"), ("video", None),
                    ("memballoon", "virtio"), ("rng", "virtio")]
    assert etree.tostring(dom.node.find("devices/video/model")) == \
        b'<model type="cirrus" vram="16384" heads="1" primary="yes"/>'      # a display gets a video device
    assert etree.tostring(dom.node.find("clock")) == b'<clock offset="utc"/>'
    assert dom.node.find("clock").getprevious().tag == "cpu"      # os, cpu (qemu64 written out), clock
    off = defined(tmp_path, VDA + "<memballoon model='none'/>", extra="<features><ps2 state='off'/></features>")
    assert [el.tag for el in off.node.find("devices")] == ["disk", "controller", "controller", "audio", "memballoon"]
    assert not defined(tmp_path, "", machine="microvm").node.findall("devices/*")


def test_spice_on_a_unix_socket_with_the_agent_channel_and_spice_audio(tmp_path):
    dom = defined(tmp_path, "<graphics type='spice' autoport='yes'/><channel type='spicevmc'><target type='virtio' "
                            "name='com.redhat.spice.0'/></channel><sound model='ich9'/>", machine="q35")
    out = _argv(dom)
    assert out[out.index("-spice") + 1] == ("unix=on,addr=/run/vsh/t/spice.sock,disable-ticketing=on,"
                                           "seamless-migration=on")
    d = devs(dom)
    assert "spicevmc,id=charchannel0,name=vdagent" in d and "spice,id=audio1" in d   # <audio type='spice'> by define
    with pytest.raises(Unsupported, match="'spicevmc' is not supported: it needs <graphics type='spice'>"):
        devs(defined(tmp_path, "<channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>"))
