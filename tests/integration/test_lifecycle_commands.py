"""The lifecycle commands (vsh/commands/lifecycle.py) on a real guest under TCG.

QEMU's argv comes from the real builder (``vsh.kvm.argv``) when it can run the
test domain; otherwise from a raw argv equivalent to it, so the commands' own
behaviour (messages, errors, states) is tested either way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]
REAL_ENV = dict(os.environ)


@pytest.fixture(scope="module")
def guest():
    script = ROOT / "scripts" / "build-test-guest"
    if not script.exists():
        pytest.skip("scripts/build-test-guest is missing")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=REAL_ENV, timeout=900)
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.skip(f"no test guest: {proc.stderr.strip()[-300:]}")
    return json.loads((Path(proc.stdout.strip().splitlines()[-1]) / "manifest.json").read_text())


@pytest.fixture(autouse=True)
def lifecycle_commands():
    """Make sure the commands are reachable even before the entry point is registered."""
    from vsh.registry import registry

    if registry().get("start") is None:
        registry()._load_module("vsh.commands.lifecycle")


def domain_xml(name: str, m: dict) -> str:
    kernel = m.get("vmlinux") or m["kernel"]
    cmdline = f"{m['cmdline']} {m.get('microvm_cmdline_extra', '')}".strip()
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{m['initrd']}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>
"""


def raw_argv(m: dict, rundir: Path) -> list[str]:
    cmdline = f"{m['cmdline']} {m.get('microvm_cmdline_extra', '')}".strip()
    return ["qemu-system-x86_64", "-machine", "microvm", "-accel", "tcg", "-nodefaults",
            "-no-user-config", "-display", "none", "-m", "256",
            "-kernel", m.get("vmlinux") or m["kernel"], "-initrd", m["initrd"], "-append", cmdline,
            "-chardev", f"pty,id=charserial0,logfile={rundir}/console.log",
            "-serial", "chardev:charserial0",
            "-qmp", f"unix:{rundir}/qmp.sock,server=on,wait=off"]


@pytest.fixture
def argv_source(guest, monkeypatch):
    """'builder' when vsh.kvm.argv builds the argv, else 'raw' (patched in)."""
    try:
        from vsh.kvm import argv as _argv  # noqa: F401
        return "builder"
    except ImportError:
        import vsh.api.local.launch as launch

        monkeypatch.setattr(launch, "build_argv", lambda dom, rundir: raw_argv(guest, rundir))
        return "raw"


def _ready(vsh_env, name: str, line: str, timeout: float = 60.0, count: int = 1) -> None:
    rd = vsh_env.store / "run" / name
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        log = rd / "console.log"
        if log.exists() and log.read_bytes().count(line.encode()) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{line} not seen on {name}'s console")


def test_commands_on_a_running_domain(vsh, vsh_env, guest, argv_source, tmp_path):
    xml = tmp_path / "vm1.xml"
    xml.write_text(domain_xml("vm1", guest))
    assert vsh("define", xml).status == 0

    res = vsh("suspend", "vm1")
    assert res.status == 1
    assert res.err == "error: Failed to suspend domain 'vm1'\nerror: internal error: domain 'vm1' not running\n"
    res = vsh("destroy", "vm1")
    assert res.err.splitlines() == ["error: Failed to destroy domain 'vm1'",
                                    "error: Requested operation is not valid: domain is not running"]

    res = vsh("start", "vm1")
    assert res.status == 0, res
    assert res.out.startswith("Domain 'vm1' started\n")
    res = vsh("start", "vm1")
    assert (res.status, res.err) == (1, "error: Domain is already active\n")
    assert vsh("domstate", "vm1", "--reason").out.strip() == "running (booted)"
    try:
        _ready(vsh_env, "vm1", guest["ready_line"])

        assert vsh("suspend", "vm1").out.startswith("Domain 'vm1' suspended\n")
        assert vsh("domstate", "vm1", "--reason").out.strip() == "paused (user)"
        assert vsh("resume", "vm1").out.startswith("Domain 'vm1' resumed\n")
        assert vsh("domstate", "vm1", "--reason").out.strip() == "running (unpaused)"
        res = vsh("resume", "vm1")
        assert res.err.splitlines() == ["error: Failed to resume domain 'vm1'",
                                        "error: internal error: domain 'vm1' not paused"]

        tty = vsh("ttyconsole", "vm1").out.strip()
        assert tty.startswith("/dev/pts/")
        res = vsh("qemu-monitor-command", "vm1", '{"execute":"query-status"}')
        assert json.loads(res.out)["return"]["status"] == "running"
        res = vsh("qemu-monitor-command", "vm1", "--pretty", "--return-value", '{"execute":"query-status"}')
        assert res.out.startswith("{\n  ")
        res = vsh("qemu-monitor-command", "vm1", '{"execute":"nope"}')
        assert json.loads(res.out)["error"]["class"] == "CommandNotFound"
        assert vsh("qemu-monitor-command", "vm1", "--hmp", "info", "status").out.strip() == "VM status: running"

        res = vsh("console-log", "vm1")
        assert guest["ready_line"] in res.out and "\x1b[6n" not in res.out

        assert vsh("reset", "vm1").out.startswith("Domain 'vm1' was reset\n")
        _ready(vsh_env, "vm1", guest["ready_line"], count=2)
        assert vsh("shutdown", "vm1").out.startswith("Domain 'vm1' is being shutdown\n")
        t0 = time.monotonic()
        while vsh("domstate", "vm1").out.strip() != "shut off" and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        assert vsh("domstate", "vm1", "--reason").out.strip() == "shut off (shutdown)"
    finally:
        vsh("destroy", "vm1")


def test_create_is_transient_and_destroy(vsh, vsh_env, guest, argv_source, tmp_path):
    xml = tmp_path / "d1.xml"
    xml.write_text(domain_xml("d1", guest))
    res = vsh("create", xml)
    assert res.status == 0, res
    assert res.out.startswith(f"Domain 'd1' created from {xml}\n")
    try:
        listing = vsh("list", "--all").out
        assert "d1" in listing and "running" in listing
        res = vsh("reboot", "vm9")
        assert res.status == 1
    finally:
        res = vsh("destroy", "d1")
    assert res.out.startswith("Domain 'd1' destroyed\n"), res
    assert "d1" not in vsh("list", "--all").out            # transient: gone once stopped


def test_console_command_in_a_pipe(guest, argv_source, vsh_env, tmp_path):
    """``vsh console`` with stdin/stdout as pipes (a script), in a separate process."""
    if argv_source != "builder":
        pytest.skip("needs the real argv builder (a subprocess cannot use the patched one)")
    from importlib.metadata import entry_points

    from vsh import _index
    if "console" not in _index.COMMANDS and not any(
            ep.value.startswith("vsh.commands.lifecycle") for ep in entry_points(group="vsh.commands")):
        pytest.skip("vsh.commands.lifecycle is not registered yet (pyproject entry point)")
    env = dict(os.environ)
    xml = tmp_path / "c1.xml"
    xml.write_text(domain_xml("c1", guest))
    run = lambda *a, **kw: subprocess.run([sys.executable, "-m", "vsh", *map(str, a)], env=env,  # noqa: E731
                                          capture_output=True, text=True, timeout=60, **kw)
    assert run("create", xml).returncode == 0
    try:
        _ready(vsh_env, "c1", guest["ready_line"])
        res = run("console", "c1", input="echo cons-$((3*3))\n")
        assert "Connected to domain 'c1'" in res.stdout and "cons-9" in res.stdout, res
    finally:
        run("destroy", "c1")
