"""A 9p share, an emulated TPM (swtpm), guest NUMA cells and UEFI autoselection, seen from
inside real test guests under TCG (issue 14 §1)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import vmguest as _vmguest

pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(shutil.which("swtpm") is None, reason="needs swtpm (scripts/setup installs it)")]

Guest = _vmguest.Guest

# accessmode 'mapped': QEMU runs as an unprivileged user (vsh-qemu), which cannot give a file the
# guest user's owner as 'passthrough' would (the guest's create fails with EPERM, as under libvirt)
DEVICES = """<filesystem type='mount' accessmode='mapped'><source dir='{share}'/><target dir='hostshare'/></filesystem>
<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"""
NUMA = ("<vcpu>2</vcpu><cpu><numa><cell id='0' cpus='0' memory='128' unit='MiB'/>"
        "<cell id='1' cpus='1' memory='128' unit='MiB'/></numa></cpu>")


def swtpm_pids(sock: str) -> list[int]:
    """The swtpm processes that serve ``sock`` (found through /proc: their fd's socket name)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "swtpm":
                continue
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        inodes = set()
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 8 and parts[6] in inodes and parts[7] == sock:
                out.append(int(pid))
                break
    return out


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    m, base, store, env = _vmguest.module_store(tmp_path_factory, "hostfeat")
    share = base / "share"
    share.mkdir()
    (share / "hello.txt").write_text("greetings from the host\n")
    # the bzImage: booted as an ELF (PVH), the kernel finds no ACPI tables, so neither the TPM nor SRAT
    xml = _vmguest.guest_domain_xml("hf1", dict(m, vmlinux=None), DEVICES.format(share=share), memory_mib=256,
                                    machine="q35")
    (base / "hf1.xml").write_text(xml.replace("<vcpu>1</vcpu>", NUMA))
    g = Guest(store, "hf1", env)
    g.base, g.share = base, share
    with g.running(base / "hf1.xml", m["ready_line"]):
        yield g


def test_the_guest_reads_and_writes_the_host_directory_over_9p(vm):
    out = vm.sh("modprobe 9pnet_virtio; modprobe 9p; mkdir -p /mnt/h && "
                "mount -t 9p -o trans=virtio,version=9p2000.L hostshare /mnt/h && cat /mnt/h/hello.txt && "
                "echo written-by-the-guest > /mnt/h/back.txt && sync && echo DONE9P")
    assert "greetings from the host" in out and "\nDONE9P" in out and "not permitted" not in out, out
    assert (vm.share / "back.txt").read_text() == "written-by-the-guest\n"


def test_the_guest_has_a_tpm2_served_by_swtpm(vm):
    out = vm.sh("cat /sys/class/tpm/tpm0/tpm_version_major; ls /dev/tpm0 /dev/tpmrm0")
    assert "2" in out.split() and "/dev/tpm0" in out and "/dev/tpmrm0" in out, out
    sock = str(vm.rundir / "tpm0-swtpm.sock")
    assert len(swtpm_pids(sock)) == 1
    state = vm.store / "data" / "swtpm"
    assert list(state.glob("*/tpm2/tpm2-00.permall")), list(state.rglob("*"))
    [tpm] = vm.qmp("query-tpm")
    assert (tpm["model"], tpm["id"], tpm["options"]["type"]) == ("tpm-crb", "tpm-tpm0", "emulator")


def test_the_guest_sees_two_numa_nodes_with_one_cpu_each(vm):
    out = vm.sh("for n in /sys/devices/system/node/node*; do echo $n $(cat $n/cpulist); done")
    assert "/sys/devices/system/node/node0 0" in out and "/sys/devices/system/node/node1 1" in out, out
    assert "<memory unit='KiB'>262144</memory>" in vm.xml()


def test_destroy_ends_swtpm_too(vm):
    sock = str(vm.rundir / "tpm0-swtpm.sock")
    pids = swtpm_pids(sock)
    assert pids
    vm.vsh("destroy", "hf1")
    assert _vmguest.poll(lambda: not any(os.path.exists(f"/proc/{p}") for p in pids), 10.0), pids
    vm.vsh("start", "hf1")              # the TPM's state is kept across runs
    assert len(swtpm_pids(sock)) == 1
    vm.vsh("destroy", "hf1")
    assert _vmguest.poll(lambda: not swtpm_pids(sock), 10.0)
    assert not os.path.exists(sock)


def test_efi_autoselection_boots_the_guest_under_ovmf(tmp_path_factory):
    m, base, store, env = _vmguest.module_store(tmp_path_factory, "efi")
    xml = _vmguest.guest_domain_xml("ef1", dict(m, vmlinux=None), "", memory_mib=256, machine="q35")
    xml = xml.replace("<os>", "<os firmware='efi'><firmware><feature enabled='no' name='secure-boot'/>"
                              "</firmware>")
    (base / "ef1.xml").write_text(xml)
    g = Guest(store, "ef1", env)
    g.vsh("define", base / "ef1.xml")
    g.vsh("start", "ef1")
    try:
        g.wait_log(m["ready_line"], timeout=240)
        assert "EFI" in g.sh("ls -d /sys/firmware/efi && echo EFI-PRESENT")
        live = g.xml()
        assert "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>" in live, live
        nvram = store / "data" / "nvram" / "ef1_VARS.fd"
        assert f"<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>{nvram}</nvram>" in live, live
        assert nvram.stat().st_size == Path("/usr/share/OVMF/OVMF_VARS_4M.fd").stat().st_size
        assert "<loader" not in g.xml("--inactive")       # chosen at start, as libvirt 9.0 does
    finally:
        g.close_console()
        g.vsh("destroy", "ef1", check=False)
    r = g.vsh("undefine", "ef1", check=False)
    assert r.returncode == 1 and "cannot undefine domain with nvram" in r.stderr
    g.vsh("undefine", "ef1", "--nvram")
    assert not (store / "data" / "nvram" / "ef1_VARS.fd").exists()
