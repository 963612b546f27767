"""dump, qemu-monitor-event and detach-device-alias on one real guest under TCG."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

import vmguest as _vmguest

pytestmark = pytest.mark.vm

Guest = _vmguest.Guest


BOOT_DISK = "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{}'/>" \
            "<target dev='vdc' bus='virtio'/></disk>"


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    m, base, store, env = _vmguest.module_store(tmp_path_factory, "misc")
    xml = base / "mx1.xml"
    disk = base / "boot-disk.img"
    disk.write_bytes(b"\0" * 1024 * 1024)
    xml.write_text(_vmguest.guest_domain_xml("mx1", m, BOOT_DISK.format(disk), memory_mib=128))
    g = Guest(store, "mx1", env)
    g.base = base
    with g.running(xml, m["ready_line"]):
        yield g


def test_dump_memory_only_writes_an_elf_core(vm):
    core = vm.base / "mx1.core"
    res = vm.vsh("dump", "mx1", core, "--memory-only", "--bypass-cache")
    assert res.stdout == f"\nDomain 'mx1' dumped to {core}\n\n"
    data = core.read_bytes()
    assert data[:4] == b"\x7fELF" and len(data) > 64 * 1024 * 1024
    assert vm.vsh("domstate", "mx1").stdout.startswith("running")
    core.unlink()
    res = vm.vsh("dump", "mx1", core, "--memory-only", "--format", "kdump-zlib", check=False)
    if res.returncode == 0:      # QEMU built with zlib kdump support
        assert core.read_bytes()[:12] == b"makedumpfile"     # QEMU writes kdump flattened
        core.unlink()


def test_qemu_monitor_event_streams_stop_and_resume(vm):
    proc = subprocess.Popen([sys.executable, "-m", "vsh", "qemu-monitor-event", "mx1", "--loop",
                             "--timeout", "8", "--regex", "--event", "^(STOP|RESUME)$"],
                            env=vm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2.0)
        vm.vsh("suspend", "mx1")
        vm.vsh("resume", "mx1")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = out.splitlines()
    assert re.fullmatch(r"event STOP at \d+\.\d{6} for domain 'mx1': <null>", lines[0]), out
    assert re.fullmatch(r"event RESUME at \d+\.\d{6} for domain 'mx1': <null>", lines[1]), out
    assert lines[2:] == ["event loop timed out", "events received: 2", ""], out
    res = vm.vsh("qemu-monitor-event", "mx1", "--timeout", "1", "--event", "RESET")
    assert res.stdout == "event loop timed out\nevents received: 0\n\n"


def test_detach_device_alias_unplugs_a_hot_plugged_device(vm):
    img = vm.base / "extra.img"
    img.write_bytes(b"\0" * 1024 * 1024)
    vm.vsh("attach-disk", "mx1", img, "vdb", "--live")
    alias = re.search(r"<target dev='vdb'.*?<alias name='([^']+)'/>", vm.xml(), re.S).group(1)
    res = vm.vsh("detach-device-alias", "mx1", "nosuch", "--live", check=False)
    assert res.stderr == ("error: Failed to detach device with alias nosuch\n"
                          "error: device not found: no device found with alias nosuch\n")
    res = vm.vsh("detach-device-alias", "mx1", alias)
    assert res.stdout == "Device detach request sent successfully\n\n"
    assert "vdb" not in vm.xml()


def test_detach_device_alias_finds_a_boot_device_by_its_qemu_id(vm):
    res = vm.vsh("detach-device-alias", "mx1", "virtio-disk2", "--live")
    assert res.stdout == "Device detach request sent successfully\n\n"
    assert "vdc" not in vm.xml()
    assert "vdc" in vm.xml("--inactive")


def test_save_image_define_then_restore(vm):
    image = vm.base / "mx1.save"
    vm.vsh("save", "mx1", image)
    xml = vm.vsh("save-image-dumpxml", image).stdout
    new = vm.base / "new.xml"
    new.write_text(xml.replace("</name>", "</name>\n  <title>from save-image-define</title>", 1))
    res = vm.vsh("save-image-define", image, new, "--paused")
    assert res.stdout == f"State file {image} updated.\n\n"
    vm.vsh("restore", image)
    assert vm.vsh("domstate", "mx1").stdout.startswith("paused")
    assert "<title>from save-image-define</title>" in vm.xml()
    vm.vsh("resume", "mx1")
