"""define on q35 places PCI devices as libvirt's qemu driver does (vsh.kvm.argv.pcie, .q35).

The expected placements are those of libvirt's own test outputs (tests/qemuxmlconfdata:
q35-default-devices-only, q35-pcie-autoadd, q35-pcie, q35-virt-manager-basic, pcie-root-port)
for the same devices, checked address by address; the argv puts each device on its root port."""

from __future__ import annotations

import pytest
from lxml import etree

from vsh.core.errors import VshError

HEAD = ("<domain type='qemu'><name>q</name><memory unit='KiB'>65536</memory>"
        "<os><type arch='x86_64' machine='q35'>hvm</type></os><devices>")


def defined(devices: str):
    """The <devices> of a q35 domain after what define does to it."""
    from vsh.api.local.domains import as_defined
    from vsh.core.domain import Domain

    dom = Domain.parse((HEAD + devices + "</devices></domain>").encode(), "q.xml")
    as_defined(dom)
    return dom.node.find("devices")


def addr(el) -> str:
    """'BB:SS.F' (with '+' for multifunction='on') of an element's PCI address."""
    a = el.find("address[@type='pci']")
    assert a is not None, etree.tostring(el)
    return "%02x:%02x.%x%s" % (int(a.get("bus"), 16), int(a.get("slot"), 16), int(a.get("function"), 16),
                               "+" if a.get("multifunction") == "on" else "")


def root_ports(devs) -> dict[int, tuple[str, str, str]]:
    """index -> (address, chassis, port) of each pcie-root-port."""
    out = {}
    for c in devs.findall("controller[@model='pcie-root-port']"):
        assert c.find("model").get("name") == "pcie-root-port"
        t = c.find("target")
        out[int(c.get("index"))] = (addr(c), t.get("chassis"), t.get("port"))
    return out


def test_default_devices_only():
    devs = defined("")
    assert [(c.get("type"), c.get("index"), c.get("model")) for c in devs.findall("controller")] == [
        ("usb", "0", "qemu-xhci"), ("sata", "0", None), ("pci", "0", "pcie-root"),
        ("pci", "1", "pcie-root-port"), ("pci", "2", "pcie-root-port"), ("pci", "3", "pcie-root-port")]
    assert root_ports(devs) == {1: ("00:01.0+", "1", "0x8"), 2: ("00:01.1", "2", "0x9"), 3: ("00:01.2", "3", "0xa")}
    assert addr(devs.find("controller[@type='usb']")) == "01:00.0"
    assert addr(devs.find("controller[@type='sata']")) == "00:1f.2"
    assert addr(devs.find("memballoon")) == "02:00.0"          # root port 3 stays free: the spare


AUTOADD = """
<disk type='file'><driver name='qemu' type='raw'/><source file='/x.raw'/><target dev='vdb' bus='virtio'/></disk>
<controller type='virtio-serial' index='0'/>
<controller type='scsi' index='0' model='virtio-scsi'/>
<controller type='usb' index='0' model='nec-xhci'/>
<filesystem type='mount' accessmode='mapped'><source dir='/x'/><target dir='share'/></filesystem>
<interface type='user'><model type='virtio'/></interface>
<interface type='user'><model type='e1000e'/></interface>
<input type='mouse' bus='virtio'/><input type='keyboard' bus='virtio'/><input type='tablet' bus='virtio'/>
<video><model type='virtio' heads='1' primary='yes'/></video>
<memballoon model='virtio'/>
<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
"""


def test_pcie_autoadd_one_root_port_per_device_and_a_spare():
    devs = defined(AUTOADD)
    ports = root_ports(devs)
    assert sorted(ports) == list(range(1, 14))
    assert [ports[i][0] for i in (1, 2, 8, 9, 13)] == ["00:02.0+", "00:02.1", "00:02.7", "00:03.0+", "00:03.4"]
    assert ports[9][1:] == ("9", "0x18")
    placed = {
        "filesystem": "01", "interface[1]": "02", "interface[2]": "03", "controller[@type='virtio-serial']": "04",
        "controller[@type='scsi']": "05", "controller[@type='usb']": "06", "disk": "07", "memballoon": "08",
        "rng": "09", "input[@type='mouse'][@bus='virtio']": "0a", "input[@type='keyboard'][@bus='virtio']": "0b",
        "input[@type='tablet']": "0c"}
    assert {path: addr(devs.xpath(path)[0])[:2] for path in placed} == placed
    assert addr(devs.find("video")) == "00:01.0"


def test_dmi_and_pci_bridge_given():
    devs = defined("<controller type='pci' index='0' model='pcie-root'/>"
                   "<controller type='pci' index='1' model='dmi-to-pci-bridge'/>"
                   "<controller type='pci' index='2' model='pci-bridge'/>" + AUTOADD)
    dmi = devs.find("controller[@model='dmi-to-pci-bridge']")
    bridge = devs.find("controller[@model='pci-bridge']")
    assert (addr(dmi), dmi.find("model").get("name")) == ("00:1e.0", "i82801b11-bridge")
    assert (addr(bridge), bridge.find("target").get("chassisNr")) == ("01:00.0", "2")
    assert sorted(root_ports(devs)) == list(range(3, 15))         # no spare: the XML had PCI controllers
    assert addr(devs.find("filesystem")) == "03:00.0" and addr(devs.find("disk")) == "09:00.0"


def test_virt_manager_basic_places_ich9_audio_and_usb():
    devs = defined("<disk type='file'><source file='/x.qcow2'/><driver name='qemu' type='qcow2'/>"
                   "<target dev='vda' bus='virtio'/></disk>"
                   "<controller type='usb' index='0' model='nec-xhci'/><controller type='sata' index='0'/>"
                   "<controller type='virtio-serial' index='0'/>"
                   "<interface type='user'><model type='virtio'/></interface>"
                   "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
                   "<sound model='ich9'/><video><model type='qxl' primary='yes'/></video>")
    got = {tag: addr(devs.find(tag)) for tag in ("interface", "controller[@type='usb']",
                                                 "controller[@type='virtio-serial']", "disk", "memballoon",
                                                 "sound", "video")}
    assert got == {"interface": "01:00.0", "controller[@type='usb']": "02:00.0",
                   "controller[@type='virtio-serial']": "03:00.0", "disk": "04:00.0", "memballoon": "05:00.0",
                   "sound": "00:1b.0", "video": "00:01.0"}
    assert sorted(root_ports(devs)) == [1, 2, 3, 4, 5, 6]


def test_root_ports_given_keep_their_names_and_targets():
    devs = defined("<controller type='pci' index='0' model='pcie-root'/>"
                   "<controller type='pci' index='1' model='pcie-root-port'/>"
                   "<controller type='pci' index='2' model='pcie-root-port'><model name='ioh3420'/>"
                   "<target chassis='40' port='0x1a'/></controller>"
                   "<video><model type='vga'/></video><memballoon model='none'/>")
    two = devs.find("controller[@index='2']")
    assert (addr(devs.find("controller[@index='1']")), addr(two)) == ("00:02.0+", "00:02.1")
    assert two.find("model").get("name") == "ioh3420" and dict(two.find("target").attrib) == {
        "chassis": "40", "port": "0x1a"}
    assert addr(devs.find("controller[@type='usb']")) == "01:00.0"
    assert len(devs.findall("controller[@type='pci']")) == 3      # nothing added: each device has its port


def test_conventional_pci_devices_go_behind_a_pcie_to_pci_bridge():
    devs = defined("<interface type='user'><model type='rtl8139'/></interface>"
                   "<interface type='user'><model type='e1000'/></interface><sound model='ich6'/>")
    bridge = devs.find("controller[@model='pcie-to-pci-bridge']")
    assert bridge.get("index") == "2" and bridge.find("model").get("name") == "pcie-pci-bridge"
    assert addr(bridge) == "01:00.0"
    assert [addr(el) for el in devs.xpath("interface | sound")] == ["02:01.0", "02:02.0", "02:03.0"]


def test_addresses_given_are_kept():
    devs = defined("<disk type='file'><source file='/x.raw'/><target dev='vda' bus='virtio'/>"
                   "<address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/></disk>"
                   "<controller type='pci' index='1' model='pcie-root-port'>"
                   "<address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></controller>"
                   "<interface type='user'><model type='virtio'/>"
                   "<address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></interface>"
                   "<interface type='user'><model type='virtio'/></interface>")
    assert addr(devs.find("disk")) == "00:07.0"
    assert addr(devs.find("controller[@index='1']")) == "00:05.0"
    assert root_ports(devs)[1][2] == "0x28"                          # its port from its own slot
    assert [addr(el) for el in devs.findall("interface")] == ["01:00.0", "02:00.0"]
    assert devs.find("controller[@type='pci'][@index='0']").get("model") == "pcie-root"


@pytest.mark.parametrize("devices, message", [
    ("<interface type='user'><address type='pci' bus='0x00' slot='0x03' function='0x0'/></interface>"
     "<interface type='user'><address type='pci' bus='0x00' slot='0x03' function='0x0'/></interface>",
     "XML error: Attempted double use of PCI Address 0000:00:03.0"),
    ("<controller type='sata' index='0'><address type='pci' bus='0x00' slot='0x04' function='0x0'/></controller>",
     "internal error: Primary SATA controller must have PCI address 0:0:1f.2"),
    ("<interface type='user'><address type='pci' bus='0x00' slot='0x1f' function='0x0'/></interface>",
     "XML error: Attempted double use of PCI Address 0000:00:1f.0"),
    ("<interface type='user'><address type='pci' bus='0x01' slot='0x03' function='0x0'/></interface>",
     "XML error: Invalid PCI address 0000:01:03.0. slot must be <= 0"),
])
def test_impossible_addresses_fail_the_define(devices, message):
    with pytest.raises(VshError, match=message.replace(".", r"\.")):
        defined(devices)


def test_argv_plugs_root_ports_into_pcie0_and_devices_into_them(tmp_path):
    import argv_materials as am
    from vsh.kvm.argv import RuntimePaths, build_argv

    (tmp_path / "d.raw").write_bytes(b"")
    devs = defined(f"<disk type='file'><source file='{tmp_path}/d.raw'/><target dev='vda' bus='virtio'/></disk>"
                   "<interface type='user'><model type='virtio'/></interface>"
                   "<interface type='user'><model type='rtl8139'/></interface>")
    argv = build_argv(devs.getparent(), am.fake_host(), RuntimePaths.for_rundir(str(tmp_path / "run")))
    devices = [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]
    assert "pcie-root-port,port=8,chassis=1,id=pci.1,bus=pcie.0,addr=0x1,multifunction=on" in devices
    assert "pcie-root-port,port=10,chassis=4,id=pci.4,bus=pcie.0,addr=0x1.0x2" in devices
    # the bridge (index 3, added behind root port 2 in the dry run) takes the first free root port
    assert "pcie-pci-bridge,id=pci.3,bus=pci.1,addr=0x0" in devices
    assert any(d.startswith("virtio-net-pci,") and d.endswith(",bus=pci.2,addr=0x0") for d in devices)
    assert any(d.startswith("rtl8139,") and d.endswith(",bus=pci.3,addr=0x1") for d in devices)
    assert any(d.startswith("virtio-blk-pci,") and "bus=pci.5,addr=0x0" in d for d in devices)


def test_attach_config_takes_the_spare_root_port_then_adds_one(tmp_path, vsh):
    nic = "<interface type='user'><model type='virtio'/></interface>"
    (tmp_path / "q.xml").write_text(HEAD + nic + "</devices></domain>")
    (tmp_path / "nic.xml").write_text(nic)
    assert vsh("define", tmp_path / "q.xml").status == 0
    ports = len(defined(nic).findall("controller[@model='pcie-root-port']"))   # NIC, xHCI, balloon, spare
    assert ports == 4
    for n in (1, 2):
        assert vsh("attach-device", "q", tmp_path / "nic.xml", "--config").status == 0
        devs = etree.fromstring(vsh("dumpxml", "q").out.encode()).find("devices")
        assert addr(devs.findall("interface")[-1]) == "%02x:00.0" % (ports + n - 1)
        assert len(devs.findall("controller[@model='pcie-root-port']")) == max(ports, ports + n - 1)


def test_virtio_channels_get_their_virtio_serial_ports():
    devs = defined("<console type='pty'><target type='virtio'/></console>"
                   "<channel type='unix'><target type='virtio' name='a.0'/></channel>"
                   "<channel type='unix'><target type='virtio' name='b.0'/>"
                   "<address type='virtio-serial' controller='0' bus='0' port='2'/></channel>"
                   "<channel type='unix'><target type='virtio' name='c.0'/></channel>")
    assert devs.find("console/address") is None                  # port 0, kept out of the XML as libvirt does
    assert [a.get("port") for a in devs.findall("channel/address")] == ["1", "2", "3"]
    with pytest.raises(VshError, match="virtio serial port 1 on controller 0 is already occupied"):
        defined("<channel type='unix'><target type='virtio' name='a.0'/>"
                "<address type='virtio-serial' controller='0' bus='0' port='1'/></channel>"
                "<channel type='unix'><target type='virtio' name='b.0'/>"
                "<address type='virtio-serial' controller='0' bus='0' port='1'/></channel>")
