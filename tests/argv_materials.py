"""Shared by tests/unit/test_argv.py and tests/integration/test_argv_qemu.py.

Turns the test domain XMLs in tests/data/domains/ into domains whose files
exist: every path under ``/VSHTEST`` is rewritten into a temporary directory
and the files it names are created there (raw and iso files, qcow2 images
with qemu-img, a kernel QEMU's loader accepts).  Also a fake HostInfo, so no
test depends on the host probe.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from lxml import etree

from vsh.kvm.host import CpuModel, HostInfo, KvmInfo, MachineType

DATA = Path(__file__).resolve().parent / "data" / "domains"
PLACEHOLDER = "/VSHTEST"
DOMAIN_XMLS = sorted(p.stem for p in DATA.glob("*.xml"))


def fake_host(kvm_usable: bool = False, iommu: bool = False, host_cpu: bool | None = None,
              qemu_path: str = "/usr/bin/qemu-system-x86_64") -> HostInfo:
    """A host like this machine: QEMU 7.2, KVM present but unusable, no IOMMU."""
    kvm = KvmInfo(present=True, accessible=True, usable=kvm_usable, api_version=12,
                  reason="a 64-bit test guest ran to its end under KVM" if kvm_usable else
                  "KVM is present (module kvm_pvm) but cannot run an ordinary guest: test reason",
                  host_cpu_usable=kvm_usable if host_cpu is None else host_cpu,
                  host_cpu_reason="" if (host_cpu if host_cpu is not None else kvm_usable)
                  else "QEMU aborted (error: failed to set MSR 0x10a to 0x69)")
    machines = [
        MachineType("microvm", None, False, 288),
        MachineType("pc-i440fx-7.1", None, False, 255),
        MachineType("pc-i440fx-7.2", "pc", True, 255),
        MachineType("pc-q35-7.1", None, False, 288),
        MachineType("pc-q35-7.2", "q35", False, 288),
    ]
    cpus = [CpuModel(n) for n in ("EPYC", "Skylake-Client", "base", "host", "kvm64", "max", "qemu64")]
    return HostInfo(qemu_path=qemu_path, qemu_version="7.2.22", qemu_version_tuple=(7, 2, 22),
                    machines=machines, accelerators=["tcg", "kvm"], cpu_models=cpus, tcg_usable=True,
                    kvm=kvm, iommu_groups=iommu, cpus=2, memory_kib=4 * 1024 * 1024)


def fake_bzimage(path: str | os.PathLike, size: int = 64 * 1024) -> None:
    """A file QEMU's x86 Linux loader accepts as a bzImage (boot protocol 2.15, header only)."""
    img = bytearray(size)
    img[0x1F1] = 4                                   # setup_sects
    img[0x1FE:0x200] = b"\x55\xaa"                   # boot_flag
    img[0x202:0x206] = b"HdrS"
    img[0x206:0x208] = (0x020F).to_bytes(2, "little")  # protocol version
    img[0x211] = 0x01                                # loadflags: LOADED_HIGH
    img[0x22C:0x230] = (0x7FFFFFFF).to_bytes(4, "little")  # initrd_addr_max
    img[0x238:0x23C] = (4096).to_bytes(4, "little")        # cmdline_size
    Path(path).write_bytes(bytes(img))


def _qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def create_file(path: Path) -> None:
    name = path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    if name in ("serial0.out",) or name.endswith(".sock"):
        return  # QEMU creates these
    if name == "vmlinuz":
        fake_bzimage(path)
    elif name == "overlay.qcow2":
        create_file(path.parent / "middle.qcow2")
        _qemu_img("create", "-q", "-f", "qcow2", "-b", str(path.parent / "middle.qcow2"), "-F", "qcow2",
                  str(path))
    elif name == "middle.qcow2":
        create_file(path.parent / "base.raw")
        _qemu_img("create", "-q", "-f", "qcow2", "-b", str(path.parent / "base.raw"), "-F", "raw", str(path))
    elif name.endswith(".qcow2"):
        _qemu_img("create", "-q", "-f", "qcow2", str(path), "16M")
    else:
        with open(path, "wb") as f:
            f.truncate(1024 * 1024)


def materialize(name: str, tmp: Path, create: bool = True):
    """The <domain> root of tests/data/domains/NAME.xml with /VSHTEST → tmp, files created."""
    text = (DATA / (name + ".xml")).read_text()
    text = text.replace(PLACEHOLDER, str(tmp))
    if create:
        for p in sorted(set(re.findall(re.escape(str(tmp)) + r"/[^'<\"]+", text))):
            if not Path(p).exists():
                create_file(Path(p))
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False)
    return etree.fromstring(text.encode(), parser)


def have_qemu_img() -> bool:
    return shutil.which("qemu-img") is not None
