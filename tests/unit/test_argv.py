"""vsh.kvm.argv: domain XML → QEMU argv.

Golden files: tests/data/domains/NAME.argv holds the argv for NAME.xml, one
argument per line, with the temporary directory written as /VSHTEST and the
run directory as /run/vsh/NAME.  Regenerate them with VSH_REGEN_GOLDEN=1.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from pathlib import Path

import pytest
from lxml import etree

from vsh.core.errors import InvalidArgument, NotFound, Unsupported, VshError, XMLError
from vsh.kvm.argv import RuntimePaths, build_argv, console_chardev, qcow2_backing_file

_spec = importlib.util.spec_from_file_location(
    "argv_materials", Path(__file__).resolve().parents[1] / "argv_materials.py")
am = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(am)

pytestmark = pytest.mark.skipif(not am.have_qemu_img(), reason="needs qemu-img to create test images")

SCHEMA = "/usr/share/libvirt/schemas/domain.rng"
REGEN = os.environ.get("VSH_REGEN_GOLDEN") == "1"


def paths_for(name: str) -> RuntimePaths:
    return RuntimePaths.for_rundir("/run/vsh/" + name)


def host_for(name: str):
    return am.fake_host(iommu=name == "q35-hostdev", kvm_usable=name.startswith("kvm-"))


def argv_of(root, host=None, name="t") -> list[str]:
    return build_argv(root, host or am.fake_host(), paths_for(name))


def opt_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def devices(argv: list[str]) -> list[str]:
    return opt_values(argv, "-device")


def blockdevs(argv: list[str]) -> list[dict]:
    return [json.loads(v) for v in opt_values(argv, "-blockdev")]


# ---- the test XMLs themselves


@pytest.mark.skipif(not os.path.exists(SCHEMA), reason="libvirt's domain.rng is not installed (libvirt0)")
@pytest.mark.parametrize("name", am.DOMAIN_XMLS)
def test_test_xml_validates_against_libvirt_schema(name):
    rng = etree.RelaxNG(file=SCHEMA)
    doc = etree.parse(str(am.DATA / (name + ".xml")))
    assert rng.validate(doc), rng.error_log


@pytest.mark.parametrize("name", am.DOMAIN_XMLS)
def test_golden_argv(name, tmp_path):
    root = am.materialize(name, tmp_path)
    argv = build_argv(root, host_for(name), paths_for(name))
    got = [a.replace(str(tmp_path), am.PLACEHOLDER) for a in argv]
    golden = am.DATA / (name + ".argv")
    if REGEN or not golden.exists():
        golden.write_text("".join(a + "\n" for a in got))
        if not REGEN:
            pytest.fail("golden file %s was missing and has been written; check it in" % golden.name)
    assert got == golden.read_text().splitlines()
    # a pure function: same input, same output
    assert build_argv(root, host_for(name), paths_for(name)) == argv


def test_every_test_xml_has_a_golden_file():
    assert sorted(p.stem for p in am.DATA.glob("*.argv")) == am.DOMAIN_XMLS


# ---- what each XML feature maps to


@pytest.fixture
def q35(tmp_path):
    return argv_of(am.materialize("q35-virtio", tmp_path), name="q35-virtio"), tmp_path


def test_common_options(q35):
    argv, _ = q35
    assert argv[0] == "/usr/bin/qemu-system-x86_64"
    assert opt_values(argv, "-name") == ["guest=q35-virtio,debug-threads=on"]
    assert "-S" in argv and "-nodefaults" in argv and "-no-user-config" in argv
    assert opt_values(argv, "-uuid") == ["6e3a6f7c-2b1d-4f2c-9a41-0d5b8e1c7a02"]
    assert opt_values(argv, "-display") == ["none"]
    assert opt_values(argv, "-sandbox")[0].startswith("on,")
    assert opt_values(argv, "-accel") == ["tcg"]
    assert "-no-shutdown" not in argv and "-no-reboot" not in argv
    assert opt_values(argv, "-chardev")[0] == \
        "socket,id=charmonitor,path=/run/vsh/q35-virtio/qmp.sock,server=on,wait=off"
    assert opt_values(argv, "-mon") == ["chardev=charmonitor,id=monitor,mode=control"]


def test_memory_cpu_topology(q35):
    argv, _ = q35
    assert opt_values(argv, "-m") == ["512"]
    assert opt_values(argv, "-smp") == ["2,maxcpus=4,sockets=1,cores=2,threads=2"]
    assert opt_values(argv, "-cpu") == ["qemu64,sse4.2=on,svm=off"]
    assert opt_values(argv, "-machine") == ["pc-q35-7.2,usb=off,dump-guest-core=off,vmport=off"]


def test_virtio_devices_and_boot_order(q35):
    argv, tmp = q35
    devs = devices(argv)
    blk = [d for d in devs if d.startswith("virtio-blk-pci")]
    assert "bootindex=1" in blk[0] and "iothread=iothread1" in blk[0] and "write-cache=on" in blk[0]
    net = [d for d in devs if d.startswith("virtio-net-pci")][0]
    assert "mac=52:54:00:00:00:02" in net and "bootindex=2" in net
    assert opt_values(argv, "-netdev") == ["user,id=hostnet0,net=10.0.9.0/24"]
    assert any(d.startswith("virtio-rng-pci,rng=objrng0") for d in devs)
    assert "rng-random,id=objrng0,filename=/dev/urandom" in opt_values(argv, "-object")
    assert any(d.startswith("virtio-balloon-pci,id=balloon0,deflate-on-oom=on") for d in devs)
    assert any(d.startswith("virtconsole,bus=virtio-serial0.0,chardev=charconsole1") for d in devs)
    assert any(d.startswith("virtserialport,bus=virtio-serial0.0,chardev=charchannel0") and
               d.endswith("name=org.qemu.guest_agent.0") for d in devs)
    assert any(d.startswith("i6300esb,id=watchdog0") for d in devs)
    assert "pvpanic,id=panic0,ioport=1285" in devs
    assert opt_values(argv, "-vnc") == ["unix:/run/vsh/q35-virtio/vnc.sock"]
    assert opt_values(argv, "-action") == ["panic=pause,watchdog=reset"]
    # every PCI device has its own slot
    addrs = [d.split("addr=")[1].split(",")[0] for d in devs if "bus=pcie.0" in d]
    assert len(addrs) == len(set(addrs))


def test_qcow2_disk_format_is_explicit_and_backing_is_null(q35):
    argv, tmp = q35
    nodes = blockdevs(argv)
    root_fmt = [n for n in nodes if n["node-name"] == "disk0-fmt"][0]
    assert root_fmt == {"driver": "qcow2", "node-name": "disk0-fmt", "file": "disk0-file", "read-only": False,
                        "discard": "unmap", "cache": {"direct": True, "no-flush": False}, "backing": None}
    root_file = [n for n in nodes if n["node-name"] == "disk0-file"][0]
    assert root_file["filename"] == str(tmp / "root.qcow2") and root_file["aio"] == "native"
    raw = [n for n in nodes if n["node-name"] == "disk1-fmt"][0]
    assert raw["driver"] == "raw" and "backing" not in raw and raw["detect-zeroes"] == "unmap"


def test_console_log_for_serial_and_the_other_consoles(q35):
    argv, tmp = q35
    chardevs = opt_values(argv, "-chardev")
    serial = [c for c in chardevs if "id=charserial0" in c][0]
    assert serial == ("file,id=charserial0,path=%s/serial0.out,logfile=/run/vsh/q35-virtio/console.log,"
                      "logappend=on" % tmp)
    vcon = [c for c in chardevs if "id=charconsole1" in c][0]
    assert vcon == "pty,id=charconsole1,logfile=/run/vsh/q35-virtio/console1.log,logappend=on"
    chan = [c for c in chardevs if "id=charchannel0" in c][0]
    assert "logfile" not in chan and "path=/run/vsh/q35-virtio/channel0.sock,server=on,wait=off" in chan


def test_pc_ide_cdrom_e1000_and_boot_dev_order(tmp_path):
    argv = argv_of(am.materialize("pc-bios-ide", tmp_path))
    devs = devices(argv)
    cd = [d for d in devs if d.startswith("ide-cd")][0]
    hd = [d for d in devs if d.startswith("ide-hd")][0]
    assert "bus=ide.1,unit=0" in cd and "bootindex=1" in cd        # <boot dev='cdrom'/> first
    assert "bus=ide.0,unit=0" in hd and "bootindex=2" in hd and "serial=IDE-DISK-1" in hd
    assert any(d.startswith("e1000,netdev=hostnet0,id=net0,mac=52:54:00:00:00:01,bus=pci.0,addr=0x2")
               for d in devs)
    assert [n["read-only"] for n in blockdevs(argv) if n["node-name"].startswith("disk1")] == [True, True]
    assert opt_values(argv, "-action") == ["reboot=shutdown,panic=shutdown"]
    assert opt_values(argv, "-boot") == ["strict=on,menu=on,splash-time=3000"]
    assert opt_values(argv, "-rtc") == ["base=utc,driftfix=slew"]
    assert "hpet=off" in opt_values(argv, "-machine")[0]
    assert "acpi=off" not in opt_values(argv, "-machine")[0]
    assert "-device" in argv and "isa-serial,chardev=charserial0,id=serial0,index=0" in devs
    assert "pty,id=charserial0,logfile=/run/vsh/t/console.log,logappend=on" in opt_values(argv, "-chardev")


def test_sata_scsi_backing_chain_and_cache_modes(tmp_path):
    argv = argv_of(am.materialize("q35-sata-scsi", tmp_path))
    devs = devices(argv)
    assert "acpi=off" in opt_values(argv, "-machine")[0]          # no <features><acpi/>
    assert [d for d in devs if d.startswith("ide-hd")] == \
        ["ide-hd,bus=ide.0,drive=disk0-fmt,id=sata0-0-0,serial=SATA0,write-cache=off,bootindex=1"]
    assert "ide-cd,bus=ide.1,id=sata0-0-1,bootindex=2" in devs      # empty tray, no drive
    # libvirt's order: the NIC (00:01) before the controllers
    assert devs[0] == "virtio-scsi-pci,id=scsi0,num_queues=2,bus=pcie.0,addr=0x2"
    nodes = {n["node-name"]: n for n in blockdevs(argv)}
    assert nodes["disk2-fmt"]["backing"] == "disk2-b1-fmt"
    assert nodes["disk2-b1-fmt"]["driver"] == "qcow2" and nodes["disk2-b1-fmt"]["backing"] == "disk2-b2-fmt"
    assert nodes["disk2-b2-fmt"]["driver"] == "raw" and nodes["disk2-b1-fmt"]["read-only"] is True
    assert nodes["disk2-file"]["cache"] == {"direct": True, "no-flush": False}       # directsync
    assert nodes["disk4-file"]["cache"] == {"direct": False, "no-flush": True}       # unsafe
    assert nodes["disk0-file"]["cache"] == {"direct": False, "no-flush": False}      # writethrough
    # backing nodes come before the nodes that use them
    order = [n["node-name"] for n in blockdevs(argv)]
    assert order.index("disk2-b2-fmt") < order.index("disk2-b1-fmt") < order.index("disk2-fmt")
    scsi = [d for d in devs if d.startswith("scsi-")]
    assert scsi[0].startswith("scsi-hd,bus=scsi0.0,channel=0,scsi-id=0,lun=2,drive=disk2-fmt")
    assert scsi[1].startswith("scsi-cd,bus=scsi0.0,channel=0,scsi-id=0,lun=3,drive=disk3-fmt")
    assert "share-rw=on" in scsi[2] and "write-cache=on" in scsi[2]
    assert any(d.startswith("e1000e,") and d.endswith(",romfile=,bootindex=3") for d in devs)
    assert "ib700,id=watchdog0" in devs
    assert opt_values(argv, "-action") == ["shutdown=pause,panic=pause,watchdog=poweroff"]
    sock = [c for c in opt_values(argv, "-chardev") if "charserial0" in c][0]
    assert sock.startswith("socket,id=charserial0,path=%s/serial.sock,server=on,wait=off,logfile=" % tmp_path)
    assert not any("balloon" in d for d in devs)                    # <memballoon model='none'/>


def test_microvm_uses_virtio_mmio_and_no_pci(tmp_path):
    argv = argv_of(am.materialize("microvm-kernel", tmp_path))
    devs = devices(argv)
    assert opt_values(argv, "-machine") == ["microvm,dump-guest-core=off,isa-serial=off"]
    assert opt_values(argv, "-kernel") == [str(tmp_path / "vmlinuz")]
    assert opt_values(argv, "-initrd") == [str(tmp_path / "initrd.img")]
    assert opt_values(argv, "-append") == ["console=ttyS0 root=/dev/vda rw quiet"]
    assert opt_values(argv, "-cpu") == ["max"]
    assert not any("pci" in d for d in devs), devs
    assert {d.split(",")[0] for d in devs} == {"virtio-blk-device", "virtio-net-device", "isa-serial",
                                               "virtio-rng-device", "virtio-balloon-device"}
    assert "-boot" not in argv
    assert "rng-builtin,id=objrng0" in opt_values(argv, "-object")


def test_kernel_boot_console_only_and_implicit_scsi_controller(tmp_path):
    argv = argv_of(am.materialize("pc-kernel", tmp_path))
    devs = devices(argv)
    # libvirt's order: the NIC (00:02, no video) before the controllers
    assert devs[0] == "virtio-scsi-pci,id=scsi0,bus=pci.0,addr=0x3"
    assert devs[1] == "virtio-serial-pci,id=virtio-serial0,bus=pci.0,addr=0x4"
    assert "isa-serial,chardev=charserial0,id=serial0,index=0" in devs   # the <console> alone
    assert not any("bootindex" in d for d in devs)
    assert opt_values(argv, "-action") == ["shutdown=pause,panic=shutdown"]
    assert opt_values(argv, "-m") == ["1024"]
    assert any(d.startswith("rtl8139,") for d in devs)


def test_libvirt_style_pci_addresses_and_root_ports(tmp_path):
    argv = argv_of(am.materialize("q35-hostdev", tmp_path), host=am.fake_host(iommu=True))
    devs = devices(argv)
    assert devs[:3] == [
        "pcie-root-port,port=16,chassis=1,id=pci.1,bus=pcie.0,addr=0x2,multifunction=on",
        "pcie-root-port,port=17,chassis=2,id=pci.2,bus=pcie.0,addr=0x2.0x1",
        "pcie-root-port,port=18,chassis=3,id=pci.3,bus=pcie.0,addr=0x2.0x2",
    ]
    assert "virtio-blk-pci,drive=disk0-fmt,id=virtio-disk0,bus=pci.2,addr=0x0,bootindex=1" in devs
    assert "vfio-pci,host=0000:06:02.0,id=hostdev0,bus=pci.3,addr=0x0" in devs
    assert "virtio-balloon-pci,id=balloon0,bus=pcie.0,addr=0x5" in devs
    assert opt_values(argv, "-bios") == ["/usr/share/seabios/bios-256k.bin"]


def test_kvm_with_a_usable_kvm(tmp_path):
    argv = argv_of(am.materialize("kvm-host-passthrough", tmp_path), host=am.fake_host(kvm_usable=True))
    assert opt_values(argv, "-accel") == ["kvm"]
    assert opt_values(argv, "-cpu") == ["host"]
    assert opt_values(argv, "-global") == ["kvm-pit.lost_tick_policy=delay"]


def test_console_chardev(tmp_path):
    assert console_chardev(am.materialize("q35-virtio", tmp_path, create=False)) == "charserial0"
    assert console_chardev(am.materialize("pc-kernel", tmp_path, create=False)) == "charserial0"
    assert console_chardev(am.materialize("q35-hostdev", tmp_path, create=False)) is None
    root = am.materialize("q35-virtio", tmp_path, create=False)
    for s in root.xpath("devices/serial | devices/console[target/@type='serial']"):
        s.getparent().remove(s)
    assert console_chardev(root) == "charconsole0"


def test_console_chardev_is_the_chardev_that_logs_to_the_console_log(tmp_path):
    # a serial-type console after a virtio one stands in for serial port 0: the builder gives
    # it charserial0 and the console log, and console_chardev names that same chardev
    root = am.materialize("q35-virtio", tmp_path)
    devices = root.find("devices")
    for s in root.xpath("devices/serial | devices/console"):
        devices.remove(s)
    for ttype in ("virtio", "serial"):
        etree.SubElement(etree.SubElement(devices, "console", type="pty"), "target", type=ttype)
    argv = argv_of(root, name="x")
    assert console_chardev(root) == "charserial0"
    assert "pty,id=charserial0,logfile=/run/vsh/x/console.log,logappend=on" in opt_values(argv, "-chardev")


def test_runtime_paths():
    p = RuntimePaths.for_rundir("/run/vsh/x")
    assert (p.qmp_socket, p.console_log, p.vnc_socket) == \
        ("/run/vsh/x/qmp.sock", "/run/vsh/x/console.log", "/run/vsh/x/vnc.sock")
    assert p.log_for("serial1") == "/run/vsh/x/serial1.log"


def test_qmp_listen_fd(tmp_path):
    root = am.materialize("pc-kernel", tmp_path)
    argv = build_argv(root, am.fake_host(), RuntimePaths.for_rundir("/run/vsh/x", qmp_listen_fd=7))
    assert opt_values(argv, "-chardev")[0] == "socket,id=charmonitor,fd=7,server=on,wait=off"


# ---- errors: each names what is wrong


def edit(tmp_path, name="q35-virtio", create=True):
    return am.materialize(name, tmp_path, create=create)


def err(root, host=None) -> VshError:
    with pytest.raises(VshError) as ei:
        argv_of(root, host)
    return ei.value


def test_type_kvm_on_a_host_where_kvm_is_unusable(tmp_path):
    root = am.materialize("kvm-host-passthrough", tmp_path)
    e = err(root)
    assert isinstance(e, Unsupported)
    assert str(e) == ("domain type 'kvm' needs a usable KVM: KVM is present (module kvm_pvm) but cannot run "
                      "an ordinary guest: test reason; use type='qemu'")


def test_host_passthrough_under_tcg(tmp_path):
    root = am.materialize("kvm-host-passthrough", tmp_path)
    root.set("type", "qemu")
    e = err(root)
    assert isinstance(e, Unsupported) and "CPU mode 'host-passthrough' needs KVM" in str(e)
    root.find("cpu").set("mode", "host-model")
    assert "CPU mode 'host-model' needs KVM" in str(err(root))


def test_host_passthrough_where_kvm_refuses_the_host_cpu(tmp_path):
    root = am.materialize("kvm-host-passthrough", tmp_path)
    e = err(root, am.fake_host(kvm_usable=True, host_cpu=False))
    assert isinstance(e, Unsupported) and "MSR 0x10a" in str(e)


def test_missing_disk_file(tmp_path):
    root = edit(tmp_path, create=False)
    e = err(root)
    assert isinstance(e, NotFound)
    assert str(e) == "disk 'vda': cannot access '%s/root.qcow2': No such file or directory" % tmp_path


def test_missing_kernel(tmp_path):
    root = am.materialize("microvm-kernel", tmp_path, create=False)
    e = err(root)
    assert isinstance(e, NotFound) and str(tmp_path / "vmlinuz") in str(e) and "<os><kernel>" in str(e)


@pytest.mark.parametrize("itype", ["direct", "ethernet", "vhostuser"])
def test_other_interface_types_not_supported_yet(tmp_path, itype):
    root = edit(tmp_path)
    root.find("devices/interface").set("type", itype)
    e = err(root)
    assert isinstance(e, Unsupported)
    assert str(e) == "interface type '%s' is not supported yet (user, network, bridge)" % itype


def _tap_interface(root, itype: str, target: str | None):
    nic = root.find("devices/interface")
    nic.set("type", itype)
    for ip in nic.findall("ip"):
        nic.remove(ip)
    src = etree.SubElement(nic, "source")
    src.set("network" if itype == "network" else "bridge", "net1" if itype == "network" else "br0")
    if target:
        etree.SubElement(nic, "target").set("dev", target)
    return nic


@pytest.mark.parametrize("itype", ["network", "bridge"])
def test_tap_interfaces_become_tap_netdevs(tmp_path, itype):
    root = edit(tmp_path)
    _tap_interface(root, itype, "vnet7")
    argv = argv_of(root)
    assert opt_values(argv, "-netdev") == ["tap,id=hostnet0,ifname=vnet7,script=no,downscript=no"]
    assert any(d.startswith("virtio-net-pci,netdev=hostnet0,id=net0,mac=") for d in devices(argv))


def test_tap_interface_vhost_on_request_and_refusals(tmp_path):
    root = edit(tmp_path)
    nic = _tap_interface(root, "network", "vnet0")
    etree.SubElement(nic, "driver").set("name", "vhost")
    assert opt_values(argv_of(root), "-netdev")[0].endswith(",vhost=on")
    nic.find("driver").set("name", "vfio")
    assert "driver name='vfio'" in str(err(root))
    nic.remove(nic.find("driver"))
    etree.SubElement(nic, "ip").set("address", "10.0.0.5")
    e = err(root)
    assert isinstance(e, Unsupported) and "<ip> is not supported" in str(e)


def test_hostdev_without_iommu(tmp_path):
    root = am.materialize("q35-hostdev", tmp_path)
    e = err(root, am.fake_host(iommu=False))
    assert isinstance(e, Unsupported)
    assert "0000:06:02.0 needs VFIO, and this host has no IOMMU groups" in str(e)


def test_disk_without_a_format_is_raw_never_probed(tmp_path):
    root = edit(tmp_path)
    img = tmp_path / "root.qcow2"
    del root.find("devices/disk/driver").attrib["type"]
    nodes = {n["node-name"]: n for n in blockdevs(argv_of(root))}
    assert nodes["disk0-fmt"]["driver"] == "raw"          # a qcow2 file is opened as raw, not probed
    assert img.read_bytes()[:4] == b"QFI\xfb"


def test_undeclared_qcow2_backing_file_is_refused(tmp_path):
    root = edit(tmp_path)
    img = tmp_path / "root.qcow2"
    img.unlink()
    am._qemu_img("create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(img))
    assert qcow2_backing_file(str(img)) == "/etc/passwd"
    e = err(root)
    assert isinstance(e, InvalidArgument)
    assert "names a backing file '/etc/passwd' that the domain XML does not declare" in str(e)
    # declared empty: opened without its backing file
    disk = root.find("devices/disk")
    disk.insert(2, disk.makeelement("backingStore"))
    nodes = {n["node-name"]: n for n in blockdevs(argv_of(root))}
    assert nodes["disk0-fmt"]["backing"] is None


def test_qcow2_declared_but_file_is_raw(tmp_path):
    root = edit(tmp_path)
    (tmp_path / "root.qcow2").write_bytes(b"\0" * 4096)
    e = err(root)
    assert isinstance(e, InvalidArgument) and "is not a qcow2 image" in str(e)


def test_backing_store_needs_a_format(tmp_path):
    root = am.materialize("q35-sata-scsi", tmp_path)
    fmt = root.find("devices/disk/backingStore/format")
    fmt.getparent().remove(fmt)
    e = err(root)
    assert isinstance(e, InvalidArgument) and "middle.qcow2" in str(e) and "never probes" in str(e)


def test_nic_without_mac(tmp_path):
    root = edit(tmp_path)
    mac = root.find("devices/interface/mac")
    mac.getparent().remove(mac)
    assert "has no <mac address>" in str(err(root))


def test_microvm_needs_a_kernel_and_has_no_pci(tmp_path):
    root = am.materialize("microvm-kernel", tmp_path)
    root.find("devices/interface/model").set("type", "e1000")
    e = err(root)
    assert isinstance(e, Unsupported) and "needs PCI, which machine 'microvm' does not have" in str(e)
    root = am.materialize("microvm-kernel", tmp_path)
    for tag in ("kernel", "initrd", "cmdline"):
        root.find("os").remove(root.find("os/" + tag))
    assert "boots only a kernel" in str(err(root))


def test_ide_on_q35(tmp_path):
    root = am.materialize("q35-sata-scsi", tmp_path)
    root.find("devices/disk/target").set("bus", "ide")
    root.find("devices/disk/target").set("dev", "hda")
    e = err(root)
    assert isinstance(e, Unsupported) and "has no IDE controller; use bus='sata'" in str(e)


def test_cdrom_on_virtio(tmp_path):
    root = am.materialize("q35-sata-scsi", tmp_path)
    t = root.xpath("devices/disk[@device='cdrom']/target")[0]
    t.set("bus", "virtio")
    t.set("dev", "vdz")
    assert "a cdrom cannot be on bus 'virtio'" in str(err(root))


def test_boot_order_mixed_with_os_boot(tmp_path):
    root = edit(tmp_path)
    root.find("os").append(root.makeelement("boot", {"dev": "hd"}))
    assert "cannot be used together" in str(err(root))


def test_topology_must_match_vcpus(tmp_path):
    root = edit(tmp_path)
    root.find("cpu/topology").set("cores", "4")
    assert "does not match <vcpu> 4" in str(err(root))


def test_unknown_machine_and_cpu_model(tmp_path):
    root = edit(tmp_path)
    root.find("os/type").set("machine", "pc-q35-99.0")
    assert "machine type 'pc-q35-99.0' is not supported" in str(err(root))
    root = edit(tmp_path)
    root.find("cpu/model").text = "Pentium9000"
    assert "CPU model 'Pentium9000' is not known" in str(err(root))


def test_unsupported_device_element(tmp_path):
    root = edit(tmp_path)
    root.find("devices").append(etree.fromstring("<shmem name='ivshmem0'/>"))
    e = err(root)
    assert isinstance(e, Unsupported) and str(e) == "<devices><shmem> is not supported yet"


def test_duplicate_pci_address(tmp_path):
    root = am.materialize("q35-hostdev", tmp_path)
    addr = root.find("devices/memballoon/address")
    addr.set("bus", "0x01")
    addr.set("slot", "0x00")
    e = err(root, am.fake_host(iommu=True))
    assert "PCI address 01:00.0 is already in use" in str(e)


def test_long_socket_path_is_refused(tmp_path):
    root = edit(tmp_path)
    with pytest.raises(InvalidArgument, match="socket path is .* bytes long"):
        build_argv(root, am.fake_host(), RuntimePaths.for_rundir("/run/" + "x" * 120))


def test_memory_units_and_rounding(tmp_path):
    root = am.materialize("pc-kernel", tmp_path)
    mem = root.find("memory")
    for value, unit, mib in (("1025", "KiB", "2"), ("268435456", "b", "256"), ("2", "G", "2048"),
                             ("1000", "MB", "954")):
        mem.text, mem.attrib["unit"] = value, unit
        assert opt_values(argv_of(root), "-m") == [mib]
    mem.attrib["unit"] = "parsecs"
    assert "unknown unit" in str(err(root))


def test_commas_are_escaped(tmp_path):
    root = am.materialize("q35-sata-scsi", tmp_path)
    root.find("name").text = "a,b"
    sock = tmp_path / "se,rial.sock"
    root.find("devices/serial/source").set("path", str(sock))
    argv = argv_of(root)
    assert opt_values(argv, "-name") == ["guest=a,,b,debug-threads=on"]
    assert any(("path=%s" % sock).replace(",", ",,") in c for c in opt_values(argv, "-chardev"))


def test_lifecycle_actions(tmp_path):
    root = am.materialize("pc-kernel", tmp_path)

    def action(poweroff, reboot, crash):
        for tag, v in (("on_poweroff", poweroff), ("on_reboot", reboot), ("on_crash", crash)):
            el = root.find(tag)
            if el is None:
                el = etree.SubElement(root, tag)
            el.text = v
        return opt_values(argv_of(root), "-action")[0]

    assert action("destroy", "restart", "destroy") == "panic=shutdown"
    assert action("destroy", "destroy", "destroy") == "reboot=shutdown,panic=shutdown"
    assert action("restart", "restart", "restart") == "shutdown=pause,panic=pause"
    assert action("destroy", "preserve", "preserve") == "reboot=shutdown,shutdown=pause,panic=pause"
    assert action("rename-restart", "restart", "coredump-destroy") == "shutdown=pause,panic=shutdown"


def test_domain_type_must_be_kvm_or_qemu(tmp_path):
    root = edit(tmp_path)
    root.set("type", "xen")
    assert "domain type 'xen' is not supported" in str(err(root))
    with pytest.raises(XMLError):
        build_argv(etree.fromstring("<vm/>"), am.fake_host(), paths_for("x"))


def test_input_document_is_not_modified(tmp_path):
    root = edit(tmp_path)
    before = etree.tostring(root)
    argv_of(root)
    assert etree.tostring(root) == before
    assert copy.deepcopy(root) is not root


def test_sata_on_pc_adds_an_ahci_controller(tmp_path):
    root = am.materialize("q35-sata-scsi", tmp_path)
    root.find("os/type").set("machine", "pc")
    devs = devices(argv_of(root))
    assert "ich9-ahci,id=sata0,bus=pci.0,addr=0x4" in devs          # after the NIC and the SCSI controller
    assert any(d.startswith("ide-hd,bus=sata0.0,drive=disk0-fmt") for d in devs)
    assert any(d.startswith("ide-cd,bus=sata0.1,id=sata0-0-1") for d in devs)


def test_hotplugged_vcpus_are_not_on_smp(tmp_path):
    """Enabled hot-pluggable vCPUs of the <vcpus> list are added with device_add (as libvirt does)."""
    from lxml import etree

    from vsh.kvm.argv import hotplugged_vcpus

    root = am.materialize("q35-virtio", tmp_path)
    vcpu = root.find("vcpu")
    vcpu.set("current", "3")
    vlist = etree.Element("vcpus")
    for vid in range(4):
        etree.SubElement(vlist, "vcpu", id=str(vid), enabled="yes" if vid < 3 else "no",
                         hotpluggable="no" if vid < 2 else "yes")
    vcpu.addnext(vlist)
    assert hotplugged_vcpus(root) == 1
    assert opt_values(argv_of(root), "-smp") == ["2,maxcpus=4,sockets=1,cores=2,threads=2"]
