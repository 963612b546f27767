"""vsh.kvm.host: parsing of what QEMU and the kernel report, the cache, the reports.

All tests use fake inputs or an injected HostInfo, except the one test of the
real probe at the end (time limit, and "unusable" only with a reason).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
from lxml import etree

from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm import host as H
from vsh.kvm.host import cache, hardware, kvmprobe
from vsh.kvm.host import qemu as hqemu

_spec = importlib.util.spec_from_file_location(
    "argv_materials", Path(__file__).resolve().parents[1] / "argv_materials.py")
am = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(am)

PAYLOAD_SRC = Path(__file__).resolve().parents[1] / "data" / "kvm-probe-payload.S"
QEMU = shutil.which("qemu-system-x86_64")

QMP_TRANSCRIPT = """\
{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}
{"return": {}, "id": "caps"}
{"return": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "id": "query-version"}
{"return": [{"hotpluggable-cpus": true, "name": "pc-q35-7.2", "numa-mem-supported": false, "default-cpu-type": "qemu64-x86_64-cpu", "cpu-max": 288, "deprecated": false, "alias": "q35"}, {"name": "pc-i440fx-7.2", "cpu-max": 255, "alias": "pc", "is-default": true}, {"name": "pc-i440fx-2.10", "cpu-max": 255, "deprecated": true}, {"name": "none", "cpu-max": 1}, {"name": "microvm", "cpu-max": 288}], "id": "query-machines"}
{"return": [{"name": "max", "unavailable-features": []}, {"name": "host", "unavailable-features": ["kvm"]}, {"name": "Skylake-Client", "unavailable-features": ["avx512f"], "deprecated": false}, {"name": "qemu64", "unavailable-features": []}], "id": "query-cpu-definitions"}
{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}
{"error": {"class": "GenericError", "desc": "nope"}, "id": "other"}
not json at all
{"return": {}, "id": "quit"}
"""


def test_parse_qmp_transcript():
    replies = hqemu.parse_qmp_replies(QMP_TRANSCRIPT)
    assert set(replies) == {"caps", "query-version", "query-machines", "query-cpu-definitions", "quit"}
    info = hqemu.parse_qemu_info(replies)
    assert info["version"] == "7.2.22" and info["version_tuple"] == [7, 2, 22]
    assert info["package"] == "Debian 1:7.2+dfsg-7+deb12u18+b3"
    names = [m["name"] for m in info["machines"]]
    assert names == ["microvm", "pc-i440fx-2.10", "pc-i440fx-7.2", "pc-q35-7.2"]   # 'none' dropped, sorted
    pc = info["machines"][2]
    assert pc == {"name": "pc-i440fx-7.2", "alias": "pc", "is_default": True, "cpu_max": 255, "deprecated": False}
    assert info["machines"][1]["deprecated"] is True
    models = {c["name"]: c["usable"] for c in info["cpu_models"]}
    assert models == {"Skylake-Client": False, "host": False, "max": True, "qemu64": True}


def test_parse_accel_help_and_version_text():
    assert hqemu.parse_accel_help("Accelerators supported in QEMU binary:\ntcg\nkvm\n") == ["tcg", "kvm"]
    assert hqemu.parse_accel_help("") == []
    text = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022 ..."
    assert hqemu.parse_version_text(text) == ("7.2.22", (7, 2, 22), "Debian 1:7.2+dfsg-7+deb12u18+b3")
    assert hqemu.parse_version_text("QEMU emulator version 8.1\n") == ("8.1.0", (8, 1, 0), "")
    assert hqemu.parse_version_text("garbage") == ("", (), "")


CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz
cpu MHz\t\t: 2399.998
flags\t\t: fpu vme vmx lm pdpe1gb pse

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz
cpu MHz\t\t: 1200.000
flags\t\t: fpu vme vmx lm pdpe1gb pse
"""


def test_parse_cpuinfo():
    ci = hardware.parse_cpuinfo(CPUINFO)
    assert ci["model_name"] == "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz"
    assert ci["vendor"] == "GenuineIntel" and ci["mhz"] == 2399 and "vmx" in ci["flags"]
    assert ci["processors"] == 2


def make_sysfs(root: Path, sockets=2, cores=2, threads=2, nodes=2, mem_kib=1000) -> Path:
    """A fake /sys with sockets x cores x threads CPUs spread over NUMA nodes."""
    cpu_dir = root / "devices/system/cpu"
    n = sockets * cores * threads
    cpu_dir.mkdir(parents=True)
    (cpu_dir / "online").write_text("0-%d\n" % (n - 1))
    for c in range(n):
        pkg, rest = divmod(c, cores * threads)
        core, thr = divmod(rest, threads)
        top = cpu_dir / ("cpu%d" % c) / "topology"
        top.mkdir(parents=True)
        (top / "physical_package_id").write_text("%d\n" % pkg)
        (top / "core_id").write_text("%d\n" % core)
        first = c - thr
        (top / "thread_siblings_list").write_text("%d-%d\n" % (first, first + threads - 1))
    per_node = n // nodes
    for nd in range(nodes):
        d = root / "devices/system/node" / ("node%d" % nd)
        d.mkdir(parents=True)
        (d / "cpulist").write_text("%d-%d\n" % (nd * per_node, nd * per_node + per_node - 1))
        (d / "meminfo").write_text("Node %d MemTotal:       %d kB\nNode %d MemFree: 1 kB\n" % (nd, mem_kib, nd))
    (root / "kernel/iommu_groups").mkdir(parents=True)
    return root


def test_read_topology(tmp_path):
    topo = hardware.read_topology(str(make_sysfs(tmp_path)))
    assert (topo["cpus"], topo["sockets"], topo["cores"], topo["threads"]) == (8, 2, 2, 2)
    assert [c["id"] for c in topo["cells"]] == [0, 1]
    assert topo["cells"][1] == {"id": 1, "cpus": [4, 5, 6, 7], "memory_kib": 1000}


def test_topology_that_does_not_multiply_out_falls_back(tmp_path):
    root = make_sysfs(tmp_path, sockets=1, cores=2, threads=1, nodes=1)
    (root / "devices/system/cpu/online").write_text("0-2\n")  # cpu2 has no topology dir
    topo = hardware.read_topology(str(root))
    assert (topo["cpus"], topo["sockets"], topo["cores"], topo["threads"]) == (3, 1, 3, 1)


def test_iommu_groups(tmp_path):
    root = make_sysfs(tmp_path)
    assert hardware.has_iommu_groups(str(root)) is False
    (root / "kernel/iommu_groups/0").mkdir()
    assert hardware.has_iommu_groups(str(root)) is True


def test_nodeinfo_keys_and_values():
    h = am.fake_host()
    h.arch, h.cpus, h.mhz, h.sockets, h.cores_per_socket, h.threads_per_core = "x86_64", 8, 2400, 2, 2, 2
    h.numa_cells = [{"id": 0, "cpus": [0, 1, 2, 3], "memory_kib": 1}, {"id": 1, "cpus": [4, 5, 6, 7], "memory_kib": 1}]
    h.memory_kib = 16384
    assert H.nodeinfo(h) == {"CPU model": "x86_64", "CPU(s)": 8, "CPU frequency": 2400, "CPU socket(s)": 1,
                             "Core(s) per socket": 2, "Thread(s) per core": 2, "NUMA cell(s)": 2,
                             "Memory size": 16384}


def test_default_domain_type():
    assert H.default_domain_type(am.fake_host(kvm_usable=False)) == "qemu"
    assert H.default_domain_type(am.fake_host(kvm_usable=True)) == "kvm"


# ---- the cache


@pytest.fixture
def fake_probe(monkeypatch):
    calls = []

    def probe_qemu_and_kvm(qemu):
        calls.append(qemu)
        return {"qemu": hqemu.parse_qemu_info(hqemu.parse_qmp_replies(QMP_TRANSCRIPT)), "accelerators": ["tcg", "kvm"],
                "tcg_usable": True,
                "kvm": {"present": True, "accessible": True, "usable": False, "decided": calls[-1] != "undecided",
                        "reason": "test verdict %d" % len(calls), "api_version": 12}}

    monkeypatch.setattr(cache, "probe_qemu_and_kvm", probe_qemu_and_kvm)
    return calls


def test_probe_is_cached_and_the_cache_is_private(tmp_path, fake_probe):
    qemu = tmp_path / "qemu-system-x86_64"
    qemu.write_text("#!/bin/sh\n")
    cache = tmp_path / "cache"
    h1 = H.probe(str(cache), qemu=str(qemu))
    assert len(fake_probe) == 1 and h1.from_cache is False
    assert h1.qemu_version == "7.2.22" and h1.machine("pc").name == "pc-i440fx-7.2"
    assert h1.kvm.reason == "test verdict 1" and h1.tcg
    f = cache / H.CACHE_FILE
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert [p.name for p in cache.iterdir()] == [H.CACHE_FILE]   # no temp file left behind
    h2 = H.probe(str(cache), qemu=str(qemu))
    assert len(fake_probe) == 1 and h2.from_cache is True and h2.kvm.reason == "test verdict 1"
    assert h2.machines == h1.machines
    H.probe(str(cache), refresh=True, qemu=str(qemu))
    assert len(fake_probe) == 2


def test_cache_is_keyed_by_the_qemu_binary(tmp_path, fake_probe):
    qemu = tmp_path / "qemu-system-x86_64"
    qemu.write_text("#!/bin/sh\n")
    H.probe(str(tmp_path), qemu=str(qemu))
    qemu.write_text("#!/bin/sh\n# upgraded\n")            # size (and mtime) change
    H.probe(str(tmp_path), qemu=str(qemu))
    assert len(fake_probe) == 2
    doc = json.loads((tmp_path / H.CACHE_FILE).read_text())
    assert doc["key"]["qemu"][0] == str(qemu) and doc["key"]["kernel"] == os.uname().release


def test_cache_with_another_key_or_garbage_is_ignored(tmp_path, fake_probe):
    qemu = tmp_path / "q"
    qemu.write_text("x")
    f = tmp_path / H.CACHE_FILE
    f.write_text("{not json")
    H.probe(str(tmp_path), qemu=str(qemu))
    doc = json.loads(f.read_text())
    doc["key"]["kernel"] = "0.0.1-other"
    f.write_text(json.dumps(doc))
    H.probe(str(tmp_path), qemu=str(qemu))
    assert len(fake_probe) == 2


def test_an_undecided_verdict_is_not_cached(tmp_path, fake_probe):
    H.probe(str(tmp_path), qemu="undecided")
    assert not (tmp_path / H.CACHE_FILE).exists()


def test_unwritable_cache_dir_only_costs_speed(tmp_path, fake_probe):
    blocker = tmp_path / "file"
    blocker.write_text("")
    h = H.probe(str(blocker / "sub"), qemu="/nonexistent/qemu")
    assert h.kvm.reason == "test verdict 1"


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.default_cache_dir() == str(tmp_path / "vsh")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.default_cache_dir() == str(tmp_path / "home/.cache/vsh")


# ---- the KVM test guest


@pytest.mark.skipif(shutil.which("as") is None or shutil.which("objcopy") is None, reason="needs GNU binutils")
def test_embedded_payload_matches_its_source(tmp_path):
    obj, binary = tmp_path / "p.o", tmp_path / "p.bin"
    subprocess.run(["as", "--32", "-o", str(obj), str(PAYLOAD_SRC)], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj), str(binary)], check=True)
    assert binary.read_bytes() == kvmprobe.payload_image()


@pytest.mark.skipif(QEMU is None, reason="needs qemu-system-x86_64")
def test_payload_runs_to_its_end_under_tcg(tmp_path):
    bios = tmp_path / "payload.bin"
    bios.write_bytes(kvmprobe.payload_image())
    r = kvmprobe.Run("tcg", kvmprobe.payload_argv(QEMU, str(bios), "tcg", None))
    kvmprobe.run_parallel([r], 10)
    assert r.out == b"123456789*"
    ok, why = kvmprobe.judge_payload_run(r, "TCG")
    assert ok, why


def _run(**kw) -> "kvmprobe.Run":
    r = kvmprobe.Run("kvm", ["qemu"])
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def test_judging_test_guest_runs():
    ok, why = kvmprobe.judge_payload_run(_run(status=85, out=b"123456789*", seconds=0.05))
    assert ok and "ran to its end" in why
    ok, why = kvmprobe.judge_payload_run(_run(status=-9, internal_error=True, out=b"123456",
                                       err=b"KVM internal error. Suberror: 1\nextra data[0]: 0x1\n"))
    assert not ok and why == ("a 64-bit test guest hit a KVM internal error (emulation failure) in 64-bit mode, "
                              "at its first exception delivered through the IDT")
    ok, why = kvmprobe.judge_payload_run(_run(status=-9, timed_out=True, out=b"12345", seconds=1.5))
    assert not ok and "made no progress under KVM for 1.5 s; it stopped after turning paging on" in why
    ok, why = kvmprobe.judge_payload_run(_run(status=-6, err=b"qemu-system-x86_64: warning: x\n"
                                                  b"qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n"))
    assert not ok and why == "QEMU aborted (error: failed to set MSR 0x10a to 0x69)"
    ok, why = kvmprobe.judge_payload_run(_run(status=0, out=b"1234"))
    assert not ok and "reset (triple fault)" in why
    ok, why = kvmprobe.judge_payload_run(_run(spawn_error="No such file"))
    assert not ok and "could not start QEMU" in why


def test_no_dev_kvm(tmp_path):
    info, tcg = kvmprobe.probe_kvm(None, dev=str(tmp_path / "kvm"))
    assert not info.present and not info.usable and "does not exist" in info.reason


# ---- reports


def test_host_validate_lines():
    h = am.fake_host(kvm_usable=False)
    h.cpu_flags = ["fpu", "lm"]
    res = H.host_validate(h)
    by = {c: (v, r) for c, v, r in res}
    assert all(c.startswith("QEMU: ") for c, _, _ in res)
    assert all(v in ("PASS", "WARN", "FAIL") for _, v, _ in res)
    assert by["QEMU: Checking for hardware virtualization"][0] == "WARN"
    assert by["QEMU: Checking if device /dev/kvm exists"] == ("PASS", "")
    v, reason = by["QEMU: Checking if KVM can run an ordinary guest"]
    assert v == "FAIL" and "test reason" in reason and "type='qemu'" in reason
    assert by["QEMU: Checking for TCG (emulation) support"][0] == "PASS"
    assert by["QEMU: Checking if IOMMU is enabled by kernel"][0] == "WARN"
    good = {c: v for c, v, _ in H.host_validate(am.fake_host(kvm_usable=True, iommu=True))}
    assert good["QEMU: Checking if KVM can run an ordinary guest"] == "PASS"
    assert good["QEMU: Checking if IOMMU is enabled by kernel"] == "PASS"


@pytest.mark.skipif(not os.path.exists("/usr/share/libvirt/schemas/capability.rng"), reason="no libvirt schemas")
def test_capabilities_xml_is_libvirts_format():
    h = am.fake_host(kvm_usable=False)
    h.cpu_model_name, h.cpu_vendor, h.cpu_flags = "AMD EPYC", "AuthenticAMD", ["fpu", "pse", "lm"]
    h.numa_cells = [{"id": 0, "cpus": [0, 1], "memory_kib": 4096}]
    text = H.capabilities_xml(h)
    assert not text.startswith("<?xml") and "  <host>\n" in text and "='" in text and '="' not in text
    rng = etree.RelaxNG(file="/usr/share/libvirt/schemas/capability.rng")
    doc = etree.fromstring(text)
    assert rng.validate(doc), rng.error_log
    assert doc.xpath("guest/arch/domain/@type") == ["qemu"]           # no kvm: it cannot run guests here
    assert doc.xpath("guest/arch/machine[.='q35']/@canonical") == ["pc-q35-7.2"]
    assert doc.xpath("host/cpu/vendor/text()") == ["AMD"]
    kvm = etree.fromstring(H.capabilities_xml(am.fake_host(kvm_usable=True)))
    assert kvm.xpath("guest/arch/domain/@type") == ["qemu", "kvm"]


@pytest.mark.skipif(not os.path.exists("/usr/share/libvirt/schemas/domaincaps.rng"), reason="no libvirt schemas")
@pytest.mark.parametrize("machine", [None, "pc", "microvm", "pc-q35-7.2"])
def test_domcapabilities_xml(machine):
    h = am.fake_host(kvm_usable=False)
    text = H.domcapabilities_xml(h, machine=machine)
    rng = etree.RelaxNG(file="/usr/share/libvirt/schemas/domaincaps.rng")
    doc = etree.fromstring(text)
    assert rng.validate(doc), rng.error_log
    assert doc.findtext("domain") == "qemu"
    assert doc.findtext("machine") == {None: "pc-q35-7.2", "pc": "pc-i440fx-7.2"}.get(machine, machine)
    assert doc.xpath("cpu/mode[@name='host-passthrough']/@supported") == ["no"]
    assert doc.xpath("devices/hostdev/@supported") == ["no"]
    buses = doc.xpath("devices/disk/enum[@name='bus']/value/text()")
    assert ("ide" in buses) == (machine == "pc") and ("virtio" in buses)


def test_domcapabilities_refuses_kvm_where_unusable_and_unknown_machines():
    with pytest.raises(Unsupported, match="KVM is not usable on this host: .*test reason"):
        H.domcapabilities_xml(am.fake_host(kvm_usable=False), domtype="kvm")
    with pytest.raises(InvalidArgument, match="machine type 'pc-99'"):
        H.domcapabilities_xml(am.fake_host(), machine="pc-99")
    text = H.domcapabilities_xml(am.fake_host(kvm_usable=True, iommu=True), domtype="kvm")
    doc = etree.fromstring(text)
    assert doc.xpath("cpu/mode[@name='host-passthrough']/@supported") == ["yes"]
    assert doc.xpath("devices/hostdev/@supported") == ["yes"]


# ---- the real probe (the one test that is allowed to look at this host)


@pytest.mark.skipif(QEMU is None, reason="needs qemu-system-x86_64")
def test_real_probe_decides_and_explains_itself(tmp_path):
    """(How long the probe takes is scripts/bench's business, not a test's.)"""
    h = H.probe(str(tmp_path), refresh=True)
    assert h.qemu_path and h.qemu_version_tuple >= (2, 0, 0) and h.machine("pc") and h.machine("q35")
    assert h.tcg, "TCG must run the test guest"
    k = h.kvm
    if not k.usable:
        assert k.reason, "KVM is called unusable without a reason"
    if k.present and k.accessible and k.decided:
        assert k.api_version == 12
    again = H.probe(str(tmp_path))
    assert again.from_cache and again.kvm == h.kvm


def test_freecell_and_sysinfo_facts_from_sysfs(tmp_path):
    from vsh.core.errors import InvalidArgument
    from vsh.kvm.host import free_memory, numa_cells, sysinfo_xml

    for cell, free in ((0, 1000), (1, 3000)):
        node = tmp_path / "devices" / "system" / "node" / f"node{cell}"
        node.mkdir(parents=True)
        (node / "meminfo").write_text(f"Node {cell} MemTotal:       9999 kB\nNode {cell} MemFree:        {free} kB\n")
    assert numa_cells(str(tmp_path)) == [0, 1]
    assert free_memory(None, str(tmp_path)) == 4000 * 1024
    assert free_memory(1, str(tmp_path)) == 3000 * 1024
    with pytest.raises(InvalidArgument, match="Range exceeds available cells"):
        free_memory(2, str(tmp_path))
    dmi = tmp_path / "dmi"
    dmi.mkdir()
    (dmi / "bios_vendor").write_text("ACME & Co\n")
    (dmi / "product_name").write_text("Box\n")
    assert sysinfo_xml(str(dmi)) == ("<sysinfo type='smbios'>\n  <bios>\n    <entry name='vendor'>ACME &amp; Co</entry>\n"
                                     "  </bios>\n  <system>\n    <entry name='product'>Box</entry>\n  </system>\n"
                                     "</sysinfo>\n")
