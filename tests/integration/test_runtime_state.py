"""Runtime state through the real commands (issue 3 §3): stale files and live values.

* A runtime directory left by an earlier host boot (written by hand here: a
  state.json with another boot_id, sockets, temp files, logs) reads as shut off,
  and the next ``vsh start`` empties it before the new run.
* ``list`` and ``dominfo`` show live values of a running domain: its id and state,
  the CPU time of its QEMU process, and the balloon size the supervisor recorded
  from QEMU's BALLOON_CHANGE events after ``setmem --live``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]
REAL_ENV = dict(os.environ)
OTHER_BOOT = "00000000-0000-4000-8000-000000000000"


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


def domain_xml(name: str, m: dict) -> str:
    cmdline = f"{m['cmdline']} {m.get('microvm_cmdline_extra', '')}".strip()
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{m.get('vmlinux') or m['kernel']}</kernel>
    <initrd>{m['initrd']}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='virtio'/>
  </devices>
</domain>
"""


def wait_until(pred, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def info(vsh, name: str) -> dict:
    res = vsh("dominfo", name)
    assert res.status == 0, res
    return dict((k.strip(), v.strip()) for k, v in
                (line.split(":", 1) for line in res.out.splitlines() if ":" in line))


def _sock(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()


def test_runtime_files_from_an_earlier_boot(vsh, vsh_env, guest, tmp_path):
    xml = tmp_path / "s1.xml"
    xml.write_text(domain_xml("s1", guest))
    assert vsh("define", xml).status == 0
    rd = vsh_env.store / "run" / "s1"
    rd.mkdir(parents=True, mode=0o700)
    me = os.getpid()
    (rd / "state.json").write_text(json.dumps({
        "name": "s1", "state": "running", "reason": "booted", "id": 41, "boot_id": OTHER_BOOT,
        "qemu_pid": me, "supervisor_pid": 1, "transient": False}))
    for name in ("control.sock", "qmp.sock", "vnc.sock"):
        _sock(rd / name)
    for name in ("supervisor.log", "console.log", "qemu.log", "serial1.log", ".state.json.4242.tmp",
                 "console.lock"):
        (rd / name).write_text("OLD-BOOT\n")

    assert vsh("domstate", "s1", "--reason").out.strip() == "shut off (unknown)"
    assert " -    s1     shut off" in vsh("list", "--all").out
    assert "s1" not in vsh("list").out
    assert info(vsh, "s1")["State"] == "shut off"
    res = vsh("console", "s1")
    assert res.status == 1 and "not running" in res.err

    res = vsh("start", "s1", "--paused")
    assert res.status == 0, res
    try:
        names = sorted(p.name for p in rd.iterdir())
        for gone in ("vnc.sock", "serial1.log", ".state.json.4242.tmp", "console.lock"):
            assert gone not in names, names
        for name in ("supervisor.log", "console.log", "qemu.log"):
            assert b"OLD-BOOT" not in (rd / name).read_bytes(), name
        st = json.loads((rd / "state.json").read_text())
        assert (st["state"], st["boot_id"]) == ("paused", Path("/proc/sys/kernel/random/boot_id")
                                                .read_text().strip())
        assert st["id"] != 41
        assert vsh("domstate", "s1", "--reason").out.strip() == "paused (user)"
    finally:
        vsh("destroy", "s1")
    assert vsh("domstate", "s1", "--reason").out.strip() == "shut off (destroyed)"


def test_list_and_dominfo_show_live_values(vsh, vsh_env, guest, tmp_path):
    xml = tmp_path / "l1.xml"
    xml.write_text(domain_xml("l1", guest))
    assert vsh("define", xml).status == 0
    res = vsh("start", "l1")
    assert res.status == 0, res
    rd = vsh_env.store / "run" / "l1"
    try:
        wait_until(lambda: guest["ready_line"].encode() in (rd / "console.log").read_bytes(), 90,
                   "the guest's ready line")
        domid = json.loads((rd / "state.json").read_text())["id"]
        assert f" {domid}    l1     running" in vsh("list").out

        first = info(vsh, "l1")
        assert (first["Id"], first["State"]) == (str(domid), "running")
        cpu1 = float(first["CPU time"].rstrip("s"))
        assert cpu1 > 0                 # booting a kernel under TCG takes CPU time
        assert first["Used memory"] == first["Max memory"] == "262144 KiB"

        # the guest's balloon driver gives memory back; QEMU reports it (BALLOON_CHANGE,
        # at most once a second) and the supervisor records it in state.json
        res = vsh("setmem", "l1", "200M", "--live")
        assert res.status == 0, res
        wait_until(lambda: info(vsh, "l1")["Used memory"] == "204800 KiB", 60,
                   "dominfo to show the balloon at 200 MiB")
        data = json.loads(vsh("dominfo", "l1", "--json").out)
        assert data["used_memory_kib"] == 204800 and data["max_memory_kib"] == 262144
        assert json.loads((rd / "state.json").read_text())["balloon_kib"] == 204800
        cpu2 = float(info(vsh, "l1")["CPU time"].rstrip("s"))
        assert cpu2 >= cpu1

        # the supervisor runs isolated (-I -S); its import path does not leak into QEMU
        st = json.loads((rd / "state.json").read_text())
        cmdline = Path(f"/proc/{st['supervisor_pid']}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:3] == [b"-I", b"-S"], cmdline
        assert b"VSH_SUPERVISOR_PATH" not in Path(f"/proc/{st['qemu_pid']}/environ").read_bytes()

        # a supervisor killed -9 is replaced by the next command; the live values stay
        os.kill(st["supervisor_pid"], signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{st['supervisor_pid']}").exists()
                   or Path(f"/proc/{st['supervisor_pid']}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z",
                   10, "the supervisor to die")
        assert vsh("suspend", "l1").status == 0
        assert f" {domid}    l1     paused" in vsh("list").out
        again = info(vsh, "l1")
        assert (again["State"], again["Used memory"]) == ("paused", "204800 KiB")
        st2 = json.loads((rd / "state.json").read_text())
        assert st2["supervisor_pid"] != st["supervisor_pid"] and st2["qemu_pid"] == st["qemu_pid"]
    finally:
        vsh("destroy", "l1")
    after = info(vsh, "l1")
    assert after["State"] == "shut off" and "CPU time" not in after and after["Id"] == "-"
    assert after["Used memory"] == "262144 KiB"
