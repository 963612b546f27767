"""Supervision gaps (issue 15 §1) on real guests under TCG, through the real commands.

* A query (``list``, ``domstate``, ``dominfo``, ``console``) that finds a QEMU whose
  supervisor died starts a new one, which catches up with what QEMU did meanwhile
  (a guest power-off is ``shut off (shutdown)``) and applies on_crash=restart if QEMU
  dies afterwards.
* kill -9 of the supervisor during an ACPI reboot: the next supervisor finishes it.
* destroy past a stopped (SIGSTOP) supervisor: ``shut off (destroyed)``, now and after
  SIGCONT, and the guest is not restarted.

Two guests of one store serve the tests in file order (each leaves them running).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

import vmguest as _vmguest

pytestmark = pytest.mark.vm

Guest = _vmguest.Guest


def domain_xml(name: str, m: dict, on_crash: str) -> str:
    return _vmguest.microvm_xml(name, m, extra=f"""
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>{on_crash}</on_crash>""")


def pid_alive(pid, starttime=None) -> bool:
    from vsh.core.runtime import pid_alive as alive

    return alive(pid, starttime)


def wait_until(pred, timeout: float, what: str):
    value = _vmguest.poll(pred, timeout)
    if not value:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
    return value


def kill_supervisor(g) -> dict:
    """SIGKILL the guest's supervisor; the state as it was (QEMU keeps running)."""
    st = g.state()
    os.kill(st["supervisor_pid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(st["supervisor_pid"], st["supervisor_starttime"]), 10,
               "the supervisor to die")
    assert pid_alive(st["qemu_pid"], st["qemu_starttime"]), "QEMU died with its supervisor"
    return st


def supervised_by_a_new_one(g, before: dict) -> dict:
    st = g.state()
    assert st["supervisor_pid"] != before["supervisor_pid"], "nobody re-attached"
    assert pid_alive(st["supervisor_pid"], st["supervisor_starttime"])
    return st


def qmp_direct(rundir: Path, command: str) -> dict:
    """One QMP command on QEMU's own socket, as if nobody supervised it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(rundir / "qmp.sock"))
        f = sock.makefile("rwb")
        json.loads(f.readline())                    # the greeting
        reply = None
        for cmd in ("qmp_capabilities", command):
            f.write(json.dumps({"execute": cmd}).encode() + b"\n")
            f.flush()
            while True:
                reply = json.loads(f.readline())
                if "return" in reply or "error" in reply:
                    break
        return reply


def domstate(g) -> str:
    return g.vsh("domstate", g.name, "--reason").stdout.strip()


def console_count(g, text: str) -> int:
    return g.log().count(text)


@pytest.fixture(scope="module")
def env_store(tmp_path_factory):
    m, base, store, env = _vmguest.module_store(tmp_path_factory, "supervision")
    return m, base, store, env


def _guest(env_store, name: str, on_crash: str):
    m, base, store, env = env_store
    xml = base / f"{name}.xml"
    xml.write_text(domain_xml(name, m, on_crash))
    g = Guest(store, name, env)
    g.vsh("define", xml)
    g.vsh("start", name)
    g.ready = m["ready_line"]
    g.wait_log(g.ready)
    return g


@pytest.fixture(scope="module")
def sa(env_store):
    g = _guest(env_store, "sa", "restart")
    yield g
    g.close_console()
    g.vsh("destroy", g.name, check=False)


@pytest.fixture(scope="module")
def sb(env_store):
    g = _guest(env_store, "sb", "restart")
    yield g
    g.vsh("destroy", g.name, check=False)


# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("query", ["list", "domstate", "dominfo", "console"])
def test_a_query_reattaches_a_supervisor(sa, query):
    before = kill_supervisor(sa)
    args = {"list": ["list", "--all"], "domstate": ["domstate", "sa", "--reason"],
            "dominfo": ["dominfo", "sa"], "console": ["console", "sa"]}[query]
    t0 = time.monotonic()
    if query == "console":
        import subprocess
        import sys

        res = subprocess.run([sys.executable, "-m", "vsh", *args], env=sa.env, input="\n",
                             capture_output=True, text=True, timeout=60)
        assert "Connected to domain 'sa'" in res.stdout, res
    else:
        res = sa.vsh(*args)
        assert "running" in res.stdout, res.stdout
    print(f"{query} with re-attach: {(time.monotonic() - t0) * 1000:.0f} ms")
    st = supervised_by_a_new_one(sa, before)
    assert st["qemu_pid"] == before["qemu_pid"] and st["state"] == "running"
    # and the new supervisor is a full one: it controls the guest
    assert sa.vsh("suspend", "sa").returncode == 0 and domstate(sa) == "paused (user)"
    assert sa.vsh("resume", "sa").returncode == 0 and domstate(sa) == "running (unpaused)"


def test_a_crash_after_reattach_is_restarted(sa):
    before = kill_supervisor(sa)
    assert domstate(sa) == "running (unpaused)"         # re-attached
    st = supervised_by_a_new_one(sa, before)
    n = console_count(sa, sa.ready)
    os.kill(st["qemu_pid"], signal.SIGKILL)             # not the new supervisor's child
    wait_until(lambda: sa.state()["qemu_pid"] not in (None, st["qemu_pid"])
               and sa.state()["state"] == "running", 30, "on_crash=restart")
    assert domstate(sa) == "running (booted)" and sa.state()["restarts"] == 1
    sa.wait_log(sa.ready, count=n + 1)


def test_a_guest_poweroff_while_unwatched_is_a_shutdown(sa):
    before = kill_supervisor(sa)
    groups = _vmguest.qemu_cgroups(before["qemu_pid"])
    sa.open_console()
    os.write(sa.pty, b"\npoweroff -f\n")
    # QEMU pauses on the power-off and waits for a supervisor
    wait_until(lambda: qmp_direct(sa.rundir, "query-status")["return"]["status"] == "shutdown",
               30, "the guest to power off")
    sa.close_console()
    assert pid_alive(before["qemu_pid"], before["qemu_starttime"])
    assert domstate(sa) == "shut off (shutdown)"
    wait_until(lambda: not pid_alive(before["qemu_pid"], before["qemu_starttime"]), 10, "QEMU to go")
    # the supervisor that re-attached removes the group the dead one made
    wait_until(lambda: not any(d.exists() for d in groups), 10, "QEMU's cgroup to go")
    assert "sa" in sa.vsh("list", "--all").stdout
    sa.vsh("start", "sa")
    sa.wait_log(sa.ready)


def test_kill_supervisor_during_acpi_reboot_finishes_the_reboot(sa):
    # Deterministic: the guest sees the power button only once it runs again, and by
    # then its supervisor is dead (QEMU is resumed on its own QMP socket).
    assert sa.vsh("suspend", "sa").returncode == 0
    assert sa.vsh("reboot", "sa").returncode == 0
    assert sa.state()["pending"] == "reboot"
    before = kill_supervisor(sa)
    n = console_count(sa, sa.ready)
    assert qmp_direct(sa.rundir, "cont") == {"return": {}}
    wait_until(lambda: qmp_direct(sa.rundir, "query-status")["return"]["status"] == "shutdown",
               30, "the guest to power off")           # wedged, as issue 15 found it ...
    assert domstate(sa) == "running (booted)"           # ... until a query re-attaches
    st = supervised_by_a_new_one(sa, before)
    assert st["qemu_pid"] == before["qemu_pid"] and st["pending"] is None
    sa.wait_log(sa.ready, count=n + 1)                  # the guest booted again
    assert sa.qmp("query-status")["status"] == "running"


def test_destroy_with_a_stopped_supervisor(sb):
    st = sb.state()
    os.kill(st["supervisor_pid"], signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        res = sb.vsh("destroy", "sb")
        print(f"destroy past a stopped supervisor: {(time.monotonic() - t0) * 1000:.0f} ms")
        assert res.stdout.startswith("Domain 'sb' destroyed\n"), res
        assert not pid_alive(st["qemu_pid"], st["qemu_starttime"])
        assert domstate(sb) == "shut off (destroyed)"
    finally:
        os.kill(st["supervisor_pid"], signal.SIGCONT)
    # the supervisor wakes up, finds QEMU gone, reads the destroy: no on_crash=restart
    wait_until(lambda: not pid_alive(st["supervisor_pid"], st["supervisor_starttime"]), 15,
               "the supervisor to exit")
    after = sb.state()
    assert (after["state"], after["reason"]) == ("shutoff", "destroyed"), after
    assert domstate(sb) == "shut off (destroyed)"
    time.sleep(1.0)
    assert domstate(sb) == "shut off (destroyed)"
    log = (sb.rundir / "supervisor.log").read_text()
    assert "on_crash=restart" not in log.split("supervisor for domain 'sb'")[-1]
