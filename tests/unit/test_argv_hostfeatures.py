"""9p shares, guest NUMA, UEFI firmware autoselection and TPMs, as libvirt's qemu driver runs them
(issue 14 §1): the QEMU options each becomes and the refusals with their reasons."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from vsh.core.domain import Domain
from vsh.core.errors import InvalidArgument, NotFound, Unsupported, VshError
from vsh.kvm.argv import RuntimePaths, build_argv

_spec = importlib.util.spec_from_file_location("argv_materials", Path(__file__).resolve().parents[1]
                                               / "argv_materials.py")
am = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(am)


def argv(tmp_path, devices: str = "", machine: str = "pc", extra: str = "", os_extra: str = "",
         os_attrs: str = "", vcpu: int = 1) -> list[str]:
    xml = (f"<domain type='qemu'><name>t</name><memory unit='MiB'>64</memory><vcpu>{vcpu}</vcpu>{extra}"
           f"<os{os_attrs}><type arch='x86_64' machine='{machine}'>hvm</type>{os_extra}</os><devices>"
           + devices.replace("TMP", str(tmp_path)) + "</devices></domain>")
    dom = Domain.parse(xml)
    dom.fill_defaults()
    dom.validate()
    return build_argv(dom.node, am.fake_host(), RuntimePaths.for_rundir(str(tmp_path / "run")))


def values(out: list[str], opt: str) -> list[str]:
    return [out[i + 1] for i, a in enumerate(out) if a == opt]


def test_9p_share_is_a_local_fsdev_and_a_virtio_9p_device(tmp_path):
    out = argv(tmp_path, "<filesystem type='mount' accessmode='mapped'><source dir='TMP'/>"
                         "<target dir='share'/><readonly/></filesystem>"
                         "<filesystem><source dir='TMP'/><target dir='b,c'/></filesystem>")
    assert values(out, "-fsdev") == [f"local,security_model=mapped,id=fsdev-fs0,path={tmp_path},readonly=on",
                                     f"local,security_model=passthrough,id=fsdev-fs1,path={tmp_path}"]
    assert [d for d in values(out, "-device") if d.startswith("virtio-9p")] == [
        "virtio-9p-pci,id=fs0,fsdev=fsdev-fs0,mount_tag=share,bus=pci.0,addr=0x2",
        "virtio-9p-pci,id=fs1,fsdev=fsdev-fs1,mount_tag=b,,c,bus=pci.0,addr=0x3"]


@pytest.mark.parametrize("fs, err, text", [
    ("<filesystem type='block'><source dev='/dev/sda'/><target dir='x'/></filesystem>", Unsupported,
     "type='mount'"),
    ("<filesystem><driver type='virtiofs'/><source dir='TMP'/><target dir='x'/></filesystem>", Unsupported,
     "virtiofsd"),
    ("<filesystem><source dir='TMP/nope'/><target dir='x'/></filesystem>", NotFound, "nope"),
    ("<filesystem><source dir='TMP'/></filesystem>", InvalidArgument, "<target dir>"),
    ("<filesystem accessmode='squash' fmode='644'><source dir='TMP'/><target dir='x'/></filesystem>",
     InvalidArgument, "accessmode='mapped'"),
])
def test_9p_refusals_name_the_reason(tmp_path, fs, err, text):
    with pytest.raises(err, match=None) as e:
        argv(tmp_path, fs)
    assert text in str(e.value)


NUMA = ("<cpu><numa><cell id='0' cpus='0-1,3' memory='32' unit='MiB'><distances><sibling id='0' value='10'/>"
        "<sibling id='1' value='21'/></distances></cell>"
        "<cell id='1' cpus='2' memory='{}' unit='MiB' memAccess='shared'/></numa></cpu>")


def test_numa_cells_become_backends_and_nodes_and_memory_is_their_sum(tmp_path):
    out = argv(tmp_path, extra=NUMA.format(16), vcpu=4)
    assert values(out, "-m") == ["48"]
    assert values(out, "-object")[:2] == ["memory-backend-ram,id=ram-node0,size=33554432",
                                          "memory-backend-ram,id=ram-node1,size=16777216,share=on"]
    assert values(out, "-numa") == ["node,nodeid=0,cpus=0-1,cpus=3,memdev=ram-node0",
                                    "node,nodeid=1,cpus=2,memdev=ram-node1", "dist,src=0,dst=0,val=10",
                                    "dist,src=0,dst=1,val=21"]
    assert out.index("-numa") > out.index("-smp")


def test_numatune_policies_go_on_the_backends_as_libvirt_writes_them(tmp_path):
    # libvirt's qemuxml2argvdata/numatune-memnode: a cell's <memnode>, else the domain's <memory>
    tune = ("<numatune><memnode cellid='0' mode='preferred' nodeset='3'/><memory mode='strict' nodeset='0-7'/>"
            "<memnode cellid='2' mode='strict' nodeset='1-2,5-7,^6'/></numatune>")
    cells = ("<cpu><numa><cell id='0' cpus='0' memory='20' unit='MiB'/><cell id='1' cpus='1' memory='16' unit='MiB'/>"
             "<cell id='2' cpus='2' memory='16' unit='MiB'/></numa></cpu>")
    out = argv(tmp_path, extra=tune + cells, vcpu=3)
    assert values(out, "-object")[:3] == [
        "memory-backend-ram,id=ram-node0,size=20971520,host-nodes=3,policy=preferred",
        "memory-backend-ram,id=ram-node1,size=16777216,host-nodes=0-7,policy=bind",
        "memory-backend-ram,id=ram-node2,size=16777216,host-nodes=1-2,host-nodes=5,host-nodes=7,policy=bind"]


def test_numa_memfd_backing(tmp_path):
    out = argv(tmp_path, extra=NUMA.format(16) + "<memoryBacking><source type='memfd'/>"
                                                "<access mode='shared'/></memoryBacking>", vcpu=4)
    assert values(out, "-object")[0] == "memory-backend-memfd,id=ram-node0,size=33554432,share=on"


@pytest.mark.parametrize("cells, text", [
    ("<cell id='1' cpus='0' memory='32' unit='MiB'/>", "cell ids"),
    ("<cell id='0' cpus='0' memory='32' unit='MiB'/><cell id='1' cpus='0' memory='32' unit='MiB'/>",
     "more than one cell"),
    ("<cell id='0' cpus='0' memory='32' unit='MiB'><distances><sibling id='0' value='20'/></distances></cell>",
     "a distance is 10"),
])
def test_numa_refusals(tmp_path, cells, text):
    with pytest.raises(InvalidArgument, match=None) as e:
        argv(tmp_path, extra="<cpu><numa>%s</numa></cpu>" % cells, vcpu=2)
    assert text in str(e.value)


def test_define_sets_memory_to_the_sum_of_the_numa_cells(tmp_path):
    dom = Domain.parse("<domain type='qemu'><name>t</name><memory unit='GiB'>4</memory><vcpu>2</vcpu>"
                       "<cpu><numa><cell id='0' cpus='0' memory='32' unit='MiB'/><cell id='1' cpus='1' "
                       "memory='16384'/></numa></cpu><os><type>hvm</type></os></domain>")
    dom.fill_defaults()
    assert dom.memory == dom.current_memory == 49152
    assert [(c.get("memory"), c.get("unit")) for c in dom.node.findall("cpu/numa/cell")] == \
        [("32768", "KiB"), ("16384", "KiB")]


def descriptor(tmp_path, d: str, name: str, code: str, machines: list, features: list) -> None:
    import json

    (tmp_path / d).mkdir(exist_ok=True)
    (tmp_path / (code + ".fd")).write_bytes(b"C")
    (tmp_path / (code + "-vars.fd")).write_bytes(b"VARS-" + code.encode())
    (tmp_path / d / name).write_text(json.dumps({
        "interface-types": ["uefi"], "features": features,
        "mapping": {"device": "flash", "executable": {"filename": str(tmp_path / (code + ".fd")), "format": "raw"},
                    "nvram-template": {"filename": str(tmp_path / (code + "-vars.fd")), "format": "raw"}},
        "targets": [{"architecture": "x86_64", "machines": machines}]}))


@pytest.fixture
def fwdirs(tmp_path):
    descriptor(tmp_path, "a", "40-secure.json", "secure", ["pc-q35-*"], ["requires-smm", "secure-boot",
                                                                          "enrolled-keys"])
    descriptor(tmp_path, "a", "60-plain.json", "plain", ["pc-i440fx-*", "pc-q35-*"], ["acpi-s3"])
    descriptor(tmp_path, "a", "50-hidden.json", "hidden", ["pc-q35-*"], [])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "50-hidden.json").write_text("")            # an empty file masks it
    return [str(tmp_path / "a"), str(tmp_path / "b")]


def efi_domain(machine: str, os_extra: str = "", extra: str = ""):
    return Domain.parse(f"<domain type='qemu'><name>t</name><memory>65536</memory>{extra}<os firmware='efi'>"
                        f"<type arch='x86_64' machine='{machine}'>hvm</type>{os_extra}</os></domain>").node


def test_efi_autoselection_takes_the_first_descriptor_that_fits(tmp_path, fwdirs):
    from lxml import etree

    from vsh.kvm.host.firmware import fill

    root = efi_domain("q35")
    fill(root, "pc-q35-7.2", str(tmp_path / "nv" / "t_VARS.fd"), dirs=fwdirs)
    assert etree.tostring(root.find("os")).decode() == (
        "<os firmware=\"efi\"><type arch=\"x86_64\" machine=\"q35\">hvm</type><firmware>"
        "<feature enabled=\"yes\" name=\"enrolled-keys\"/><feature enabled=\"yes\" name=\"secure-boot\"/>"
        f"</firmware><loader readonly=\"yes\" type=\"pflash\" secure=\"yes\">{tmp_path}/secure.fd</loader>"
        f"<nvram template=\"{tmp_path}/secure-vars.fd\">{tmp_path}/nv/t_VARS.fd</nvram></os>")
    assert root.find("features/smm").get("state") == "on"
    assert (tmp_path / "nv" / "t_VARS.fd").read_bytes() == b"VARS-secure"
    out = build_argv(root, am.fake_host(), RuntimePaths.for_rundir(str(tmp_path / "run")))
    assert "smm=on" in values(out, "-machine")[0]
    assert "driver=cfi.pflash01,property=secure,value=on" in values(out, "-global")
    (tmp_path / "nv" / "t_VARS.fd").write_bytes(b"mine")
    again = efi_domain("q35")
    fill(again, "pc-q35-7.2", str(tmp_path / "nv" / "t_VARS.fd"), dirs=fwdirs)
    assert (tmp_path / "nv" / "t_VARS.fd").read_bytes() == b"mine"   # never over an existing store
    fill(efi_domain("q35"), "pc-q35-7.2", str(tmp_path / "nv" / "t_VARS.fd"), dirs=fwdirs, reset=True)
    assert (tmp_path / "nv" / "t_VARS.fd").read_bytes() == b"VARS-secure"   # start --reset-nvram


@pytest.mark.parametrize("machine, os_extra, extra, code", [
    ("pc-i440fx-7.2", "", "", "plain"),
    ("pc-q35-7.2", "<loader secure='no'/>", "", "plain"),
    ("pc-q35-7.2", "<firmware><feature enabled='no' name='secure-boot'/></firmware>", "", "plain"),
    ("pc-q35-7.2", "", "<features><smm state='off'/></features>", "plain"),
])
def test_efi_autoselection_follows_the_domain(tmp_path, fwdirs, machine, os_extra, extra, code):
    from vsh.kvm.host.firmware import fill

    root = efi_domain(machine, os_extra, extra)
    fill(root, machine, str(tmp_path / "v.fd"), dirs=fwdirs)
    assert root.findtext("os/loader") == str(tmp_path / (code + ".fd"))
    assert root.find("os/loader").get("secure") in (None, "no")


def test_efi_autoselection_says_why_nothing_fits(tmp_path, fwdirs):
    from vsh.kvm.host.firmware import fill

    with pytest.raises(Unsupported, match="none of the 2 firmware descriptors fits machine 'microvm'"):
        fill(efi_domain("microvm"), "microvm", str(tmp_path / "v.fd"), dirs=fwdirs)
    with pytest.raises(InvalidArgument, match="no firmware chosen yet"):
        argv(tmp_path, os_attrs=" firmware='efi'", extra="<features><acpi/></features>")


def test_undefine_with_an_nvram_needs_nvram_or_keep_nvram(tmp_path, vsh, vsh_env):
    nvram = tmp_path / "e_VARS.fd"
    (tmp_path / "e.xml").write_text(
        "<domain type='qemu'><name>e</name><memory>65536</memory><os><type machine='q35'>hvm</type>"
        "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"
        f"<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>{nvram}</nvram></os><features><acpi/></features>"
        "</domain>")
    assert vsh("define", tmp_path / "e.xml").status == 0
    assert vsh("undefine", "e").status == 0          # no nvram file yet: nothing to keep or remove
    assert vsh("define", tmp_path / "e.xml").status == 0
    nvram.write_bytes(b"vars")
    r = vsh("undefine", "e")
    assert r.status == 1 and r.err.startswith("error: Failed to undefine domain 'e'\n"
                                              "error: Requested operation is not valid: cannot undefine "
                                              "domain with nvram\n"), r
    assert vsh("undefine", "e", "--keep-nvram").status == 0 and nvram.exists()
    assert vsh("define", tmp_path / "e.xml").status == 0
    assert vsh("undefine", "e", "--nvram").out == "Domain 'e' has been undefined\n\n"
    assert not nvram.exists()


def test_an_emulated_tpm_talks_to_its_swtpm_socket(tmp_path):
    from vsh.kvm.argv.tpm import emulators

    out = argv(tmp_path, "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>", machine="q35")
    sock = f"{tmp_path}/run/tpm0-swtpm.sock"
    assert values(out, "-chardev")[-1] == f"socket,id=chrtpm0,path={sock}"
    assert values(out, "-tpmdev") == ["emulator,id=tpm-tpm0,chardev=chrtpm0"]
    assert "tpm-crb,tpmdev=tpm-tpm0,id=tpm0" in values(out, "-device")
    root = Domain.parse("<domain><devices><tpm model='tpm-tis'><backend type='emulator' version='1.2'/></tpm>"
                        "</devices></domain>").node
    assert emulators(root, RuntimePaths.for_rundir("/r")) == [{"socket": "/r/tpm0-swtpm.sock", "version": "1.2"}]


@pytest.mark.parametrize("tpm, err, text", [
    ("<tpm model='tpm-crb'><backend type='emulator' version='1.2'/></tpm>", InvalidArgument, "TPM 2.0 only"),
    ("<tpm model='tpm-spapr'><backend type='emulator'/></tpm>", Unsupported, "tpm-crb, tpm-tis"),
    ("<tpm><backend type='passthrough'><device path='TMP/tpm9'/></backend></tpm>", NotFound, "tpm9"),
    ("<tpm><backend type='emulator'/></tpm><tpm><backend type='emulator'/></tpm>", Unsupported, "one TPM"),
])
def test_tpm_refusals(tmp_path, tpm, err, text):
    with pytest.raises(err, match=None) as e:
        argv(tmp_path, tpm, machine="q35")
    assert text in str(e.value)


def test_tpm_passthrough_uses_the_host_device(tmp_path):
    (tmp_path / "tpm0").write_bytes(b"")
    out = argv(tmp_path, "<tpm model='tpm-tis'><backend type='passthrough'><device path='TMP/tpm0'/></backend></tpm>")
    assert values(out, "-tpmdev") == [f"passthrough,id=tpm-tpm0,path={tmp_path}/tpm0,"
                                      "cancel-path=/sys/class/tpm/tpm0/device/cancel"]


def test_define_writes_the_canonical_machine_type(tmp_path, vsh, vsh_env):
    from vsh.kvm.host.machines import machine_aliases

    aliases = machine_aliases()
    if "pc" not in aliases:
        pytest.skip("no qemu-system-x86_64 answering -machine help")
    for machine, want in (("pc", aliases["pc"]), ("q35", aliases["q35"]), ("pc-i440fx-7.1", "pc-i440fx-7.1")):
        (tmp_path / "m.xml").write_text(f"<domain type='qemu'><name>m</name><memory>65536</memory>"
                                        f"<os><type machine='{machine}'>hvm</type></os></domain>")
        assert vsh("define", tmp_path / "m.xml").status == 0
        assert f"machine='{want}'" in vsh("dumpxml", "m").out
        assert vsh("undefine", "m").status == 0
    assert aliases["pc"].startswith("pc-i440fx-") and aliases["q35"].startswith("pc-q35-")


def test_define_writes_libvirts_pci_addresses_on_pc(tmp_path, vsh, vsh_env):
    (tmp_path / "d.raw").write_bytes(b"")
    xml = ("<domain type='qemu'><name>{}</name><memory>65536</memory><os><type machine='{}'>hvm</type></os>"
           f"<devices><disk type='file'><source file='{tmp_path}/d.raw'/><target dev='vda' bus='virtio'/></disk>"
           f"<disk type='file'><source file='{tmp_path}/d.raw'/><target dev='hda' bus='ide'/></disk>"
           "<interface type='user'><model type='virtio'/></interface><video><model type='vga'/></video>"
           "</devices></domain>")
    (tmp_path / "p.xml").write_text(xml.format("p", "pc"))
    assert vsh("define", tmp_path / "p.xml").status == 0
    from lxml import etree

    root = etree.fromstring(vsh("dumpxml", "p").out.encode())
    slots = {(el.tag, el.get("type") or el.get("model") or ""):
             (el.find("address").get("slot"), el.find("address").get("function"))
             for el in root.find("devices") if el.find("address[@type='pci']") is not None}
    assert slots == {("controller", "ide"): ("0x01", "0x1"), ("controller", "usb"): ("0x01", "0x2"),
                     ("video", ""): ("0x02", "0x0"), ("interface", "user"): ("0x03", "0x0"),
                     ("disk", "file"): ("0x04", "0x0"), ("memballoon", "virtio"): ("0x05", "0x0")}
    assert dict(root.xpath("devices/disk[target/@dev='hda']/address")[0].attrib) == {
        "type": "drive", "controller": "0", "bus": "0", "target": "0", "unit": "0"}
    out = build_argv(root, am.fake_host(), RuntimePaths.for_rundir(str(tmp_path / "run")))
    assert "virtio-blk-pci" in " ".join(out) and "bus=pci.0,addr=0x4" in " ".join(values(out, "-device"))
    (tmp_path / "q.xml").write_text(xml.format("q", "q35"))
    assert vsh("define", tmp_path / "q.xml").status == 0
    q35 = vsh("dumpxml", "q").out
    assert "<address type='drive'" in q35
    # q35: each PCIe device behind a root port of its own (tests/unit/test_q35_addresses.py has the rules)
    assert "<target dev='vda' bus='virtio'/>\n      <address type='pci' domain='0x0000' bus='0x03' slot='0x00'" in q35
    assert "<controller type='pci' index='5' model='pcie-root-port'>" in q35


@pytest.mark.parametrize("driver, bus, props", [
    ("error_policy='stop'", "virtio", ",werror=stop,rerror=stop"),          # the read policy follows
    ("error_policy='report' rerror_policy='ignore'", "scsi", ",werror=report,rerror=ignore"),
    ("error_policy='enospace'", "sata", ",werror=enospc"),                    # no such read policy
    ("rerror_policy='stop'", "virtio", ",rerror=stop"),
    ("", "virtio", ""),                                                       # QEMU's defaults
])
def test_disk_error_policies_are_werror_and_rerror_as_libvirt_sets_them(tmp_path, driver, bus, props):
    (tmp_path / "d.img").write_bytes(b"\0" * 512)
    ctrl = "<controller type='scsi' model='virtio-scsi'/>" if bus == "scsi" else ""
    out = argv(tmp_path, f"{ctrl}<disk type='file' device='disk'><driver name='qemu' type='raw' {driver}/>"
                         f"<source file='TMP/d.img'/><target dev='sda' bus='{bus}'/></disk>", machine="q35")
    disk = next(d for d in values(out, "-device") if d.startswith(("virtio-blk", "scsi-hd", "ide-hd")))
    assert (",werror=" in disk or ",rerror=" in disk) == bool(props)
    if props:
        assert props + "," in disk + ",", disk
        assert disk.index(props) > disk.index("drive=")


@pytest.mark.parametrize("driver, text", [
    ("error_policy='panic'", "XML error: Invalid value for attribute 'error_policy' in element 'driver': 'panic'."),
    ("rerror_policy='default'", "XML error: Invalid value for attribute 'rerror_policy' in element 'driver': "
                                "'default'."),
    ("cache='bogus'", "XML error: Invalid value for attribute 'cache' in element 'driver': 'bogus'."),
    ("rerror_policy='enospace'", "unsupported configuration: Invalid disk read error policy: 'enospace'"),
])
def test_disk_driver_values_are_refused_at_define_in_libvirts_words(tmp_path, driver, text):
    with pytest.raises(VshError) as e:
        argv(tmp_path, f"<disk type='file'><driver name='qemu' type='raw' {driver}/><source file='TMP/d.img'/>"
                       "<target dev='vda' bus='virtio'/></disk>")
    assert str(e.value) == text
