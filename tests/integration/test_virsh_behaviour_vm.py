"""Everyday behaviours that must be virsh's (issue 14 §2), on one real guest under TCG:
the balloon target of ``<currentMemory>`` at boot, the first console and ``--devname``,
hot-plugged vCPUs counted and kept across save/restore.

One pc guest (the cached test guest of ``scripts/build-test-guest``) serves the tests in
file order; a second domain, started paused, checks a virtio console as the first console.
"""

from __future__ import annotations

import os
import re
import time

import pytest

import vmguest as _vmguest

pytestmark = pytest.mark.vm

Guest = _vmguest.Guest
NAME = "vb1"


def domain_xml(name: str, m: dict, consoles: str) -> str:
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <currentMemory unit='MiB'>192</currentMemory>
  <vcpu current='1'>2</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{m.get('vmlinux') or m['kernel']}</kernel>
    <initrd>{m['initrd']}</initrd>
    <cmdline>{m['cmdline']}</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    {consoles}
    <memballoon model='virtio'/>
  </devices>
</domain>
"""


SERIAL_AND_VIRTIO = """<serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <console type='pty'><target type='virtio' port='1'/></console>"""


@pytest.fixture(scope="module")
def env_store(tmp_path_factory):
    m, base, store, env = _vmguest.module_store(tmp_path_factory, "behaviour")
    return m, base, store, env


@pytest.fixture(scope="module")
def vm(env_store):
    m, base, store, env = env_store
    xml = base / f"{NAME}.xml"
    xml.write_text(domain_xml(NAME, m, SERIAL_AND_VIRTIO))
    g = Guest(store, NAME, env)
    with g.running(xml, m["ready_line"]):
        yield g


def _api(env_store):
    from vsh.api import connect

    return connect(env_store[3]["VSH_DEFAULT_URI"])


def _fd_target(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


# -- <currentMemory> -----------------------------------------------------------------------------


def test_current_memory_is_the_balloon_target_at_boot(vm):
    assert vm.qmp("query-balloon")["actual"] == 192 << 20
    deadline = time.monotonic() + 30            # dominfo follows the guest's BALLOON_CHANGE events
    while True:
        info = vm.vsh("dominfo", NAME).stdout
        if "196608 KiB" in info or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert re.search(r"^Max memory:\s+262144 KiB$", info, re.M)
    assert re.search(r"^Used memory:\s+196608 KiB$", info, re.M), info
    # the guest sees it: its balloon driver took the difference away
    deadline = time.monotonic() + 30
    while True:
        total = int(re.search(r"MemTotal:\s+(\d+) kB", vm.sh("cat /proc/meminfo")).group(1))
        if total <= 192 * 1024 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert total <= 192 * 1024, total


# -- consoles ------------------------------------------------------------------------------------


def test_first_console_and_devname(vm, env_store):
    chardevs = vm.state()["chardevs"]
    assert set(chardevs) >= {"serial0", "console1"}
    # with a serial port, the first console is serial port 0 (libvirt's console compat)
    assert vm.vsh("ttyconsole", NAME).stdout == f"{chardevs['serial0']['console_pty']}\n\n"
    vm.close_console()          # one console session at a time
    dom = _api(env_store).lookup_domain(NAME)
    for devname, alias in ((None, "serial0"), ("serial0", "serial0"), ("console1", "console1")):
        stream = dom.open_console(devname=devname)
        try:
            assert _fd_target(stream.fileno()) == chardevs[alias]["console_pty"], devname
        finally:
            stream.close()
    res = vm.vsh("console", NAME, "--devname", "serial7", check=False)
    assert res.returncode == 1
    assert res.stderr == "error: internal error: cannot find character device serial7\n"


def test_virtio_console_as_the_first_console(env_store):
    m, base, store, env = env_store
    name = "vb2"
    xml = base / f"{name}.xml"
    xml.write_text(domain_xml(name, m, "<console type='pty'><target type='virtio' port='0'/></console>"))
    g = Guest(store, name, env)
    g.vsh("define", xml)
    g.vsh("start", name, "--paused")
    try:
        chardevs = g.state()["chardevs"]
        assert "serial0" not in chardevs
        pty = chardevs["console0"]["console_pty"]
        assert g.vsh("ttyconsole", name).stdout == f"{pty}\n\n"
        for devname in (None, "console0"):
            stream = _api(env_store).lookup_domain(name).open_console(devname=devname)
            try:
                assert _fd_target(stream.fileno()) == pty
            finally:
                stream.close()
        res = g.vsh("console", name, "--devname", "serial0", check=False)
        assert res.stderr == "error: internal error: cannot find character device serial0\n"
    finally:
        g.vsh("destroy", name, check=False)


# -- hot-plugged vCPUs ---------------------------------------------------------------------------


def _counts(vm) -> dict:
    out = vm.vsh("vcpucount", NAME).stdout
    return {tuple(line.split()[:2]): int(line.split()[2]) for line in out.splitlines() if line.strip()}


def test_hotplugged_vcpus_are_counted_and_survive_save_restore(vm):
    assert len(vm.qmp("query-cpus-fast")) == 1
    vm.vsh("setvcpus", NAME, "2", "--live")
    assert len(vm.qmp("query-cpus-fast")) == 2
    assert _counts(vm)[("current", "live")] == 2
    assert _counts(vm)[("current", "config")] == 1           # --live only
    assert re.search(r"^CPU\(s\):\s+2$", vm.vsh("dominfo", NAME).stdout, re.M)
    assert vm.vsh("vcpuinfo", NAME).stdout.count("VCPU:") == 2
    vm.sh("echo SAVED-SHELL > /tmp/marker")
    image = vm.store.parent / "vcpus.save"
    vm.close_console()
    assert vm.vsh("save", NAME, image).returncode == 0
    assert "<vcpu placement='static' current='2'>2</vcpu>" in vm.vsh("save-image-dumpxml", image).stdout \
        or re.search(r"<vcpu[^>]*>2</vcpu>", vm.vsh("save-image-dumpxml", image).stdout)
    res = vm.vsh("restore", image, check=False)
    assert res.returncode == 0, res.stderr
    assert len(vm.qmp("query-cpus-fast")) == 2
    assert _counts(vm)[("current", "live")] == 2
    assert "SAVED-SHELL" in vm.sh("cat /tmp/marker")


def test_unplug_under_tcg_is_refused_and_save_stays_safe(vm):
    # QEMU 7.2 under TCG keeps an unplugged vCPU's memory listener: after setvcpus up then
    # down and suspend/resume, save died of heap corruption (SIGSEGV / SIGABRT). vsh refuses
    # the unplug of a TCG domain instead.
    assert len(vm.qmp("query-cpus-fast")) == 2
    vm.sh("echo 1 > /sys/devices/system/cpu/cpu1/online; cat /sys/devices/system/cpu/online")
    res = vm.vsh("setvcpus", NAME, "1", "--live", check=False)
    assert res.returncode == 1
    assert res.stderr.endswith("error: Operation not supported: QEMU cannot unplug a vCPU of a TCG (type='qemu') "
                               "domain safely: the unplugged vCPU's memory listener stays behind and a later "
                               "save or memory map change crashes QEMU; use --config and restart the domain\n"), \
        res.stderr
    assert len(vm.qmp("query-cpus-fast")) == 2 and _counts(vm)[("current", "live")] == 2
    vm.vsh("suspend", NAME)
    vm.vsh("resume", NAME)
    image = vm.store.parent / "after-suspend.save"
    vm.close_console()
    res = vm.vsh("save", NAME, image, check=False)
    assert res.returncode == 0, res.stderr
    assert vm.vsh("restore", image).returncode == 0
    assert vm.state()["state"] == "running"
    assert _counts(vm)[("current", "live")] == 2
    assert "ALIVE" in vm.sh("echo AL''IVE")
