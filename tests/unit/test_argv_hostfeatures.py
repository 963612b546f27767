"""9p shares, guest NUMA, UEFI firmware autoselection and TPMs, as libvirt's qemu driver runs them
(issue 14 §1): the QEMU options each becomes and the refusals with their reasons."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from vsh.core.domain import Domain
from vsh.core.errors import InvalidArgument, NotFound, Unsupported
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
