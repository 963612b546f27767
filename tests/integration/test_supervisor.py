"""The supervisor and client against a real QEMU under TCG.

Guests come from ``scripts/build-test-guest`` (an uncompressed vmlinux booted on
microvm through PVH, a busybox initramfs that prints VSH-GUEST-READY and powers
off on the ACPI power button).  Tests that need a guest are skipped when it
cannot be built; the rest use QEMU with no guest (``-S``, started paused).

One guest (module fixture ``shared``) serves the tests that leave it running;
they run in file order and each leaves it running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vsh.core.errors import OperationInvalid, Timeout, VshError
from vsh.kvm import client

pytestmark = pytest.mark.vm


def attach_console(state: dict, rundir, force: bool = False, **kw) -> str:
    """A console session on ``rundir``'s domain (the stream, then the terminal side)."""
    from vsh.api.local.console import LocalConsole
    from vsh.ui.console import session

    with LocalConsole(state, rundir, force=force) as stream:
        return session(stream, stream.name, **kw)

ROOT = Path(__file__).resolve().parents[2]
REAL_ENV = dict(os.environ)          # before conftest points HOME/XDG into tmp dirs
QEMU = "qemu-system-x86_64"


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

def _manifest() -> dict | None:
    script = ROOT / "scripts" / "build-test-guest"
    if not script.exists():
        return None
    try:
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              env=REAL_ENV, timeout=900)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    path = Path(proc.stdout.strip().splitlines()[-1]) / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture(scope="module")
def guest():
    m = _manifest()
    if m is None:
        pytest.skip("no test guest: scripts/build-test-guest failed or is missing")
    return m


def guest_argv(m: dict, rundir: Path, mem: int = 256) -> list[str]:
    append = f"{m['cmdline']} {m.get('microvm_cmdline_extra', '')}".strip()
    return [QEMU, "-machine", "microvm", "-accel", "tcg", "-nodefaults", "-no-user-config",
            "-display", "none", "-m", str(mem), "-smp", "1",
            "-kernel", m.get("vmlinux") or m["kernel"], "-initrd", m["initrd"], "-append", append,
            "-chardev", f"pty,id=charserial0,logfile={rundir}/console.log",
            "-serial", "chardev:charserial0",
            "-qmp", f"unix:{rundir}/qmp.sock,server=on,wait=off"]


def bare_argv(rundir: Path) -> list[str]:
    """QEMU with no guest at all (meant to be started paused)."""
    return [QEMU, "-machine", "microvm", "-accel", "tcg", "-nodefaults", "-no-user-config",
            "-display", "none", "-m", "32",
            "-qmp", f"unix:{rundir}/qmp.sock,server=on,wait=off"]


def xml(name: str) -> str:
    return f"<domain type='qemu'><name>{name}</name></domain>\n"


def wait_for_text(path: Path, text: bytes, timeout: float = 60.0, after: int = 0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if text in path.read_bytes()[after:]:
                return time.monotonic() - t0
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    tail = path.read_bytes()[-2000:] if path.exists() else b"(no log)"
    raise AssertionError(f"{text!r} not in {path} after {timeout} s; log ends:\n{tail.decode(errors='replace')}")


def wait_until(pred, timeout: float = 30.0, what: str = "condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def processes_using(rundir: Path) -> list[int]:
    """Live (non-zombie) processes whose command line or open files name ``rundir``.

    (QEMU's argv need not name it: its QMP socket is an inherited fd, but its
    stdout/stderr go to RUNDIR/qemu.log.)
    """
    found = []
    needle = str(rundir) + "/"
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                names = [f.read().decode(errors="replace")]
            fd_dir = f"/proc/{entry}/fd"
            for fd in os.listdir(fd_dir):
                try:
                    names.append(os.readlink(f"{fd_dir}/{fd}"))
                except OSError:
                    pass
        except OSError:
            continue
        if any(needle in n or n.endswith(str(rundir)) for n in names) \
                and client.proc_starttime(int(entry)) is not None:
            found.append(int(entry))
    return found


def destroy_quietly(rundir: Path) -> None:
    try:
        client.destroy(rundir)
    except VshError:
        pass


# --------------------------------------------------------------------------------------
# failures that need no guest
# --------------------------------------------------------------------------------------

def test_failed_launch_reports_argv_status_and_output(tmp_path):
    rd = tmp_path / "bad"
    argv = bare_argv(rd) + ["-no-such-option"]
    with pytest.raises(VshError) as info:
        client.start(rd, "bad", 1, argv, xml("bad"))
    text = "\n".join(info.value.lines)
    assert "QEMU exited while starting domain 'bad' (exit status 1)" in text
    assert "-no-such-option" in text and "command: qemu-system-x86_64 -S" in text
    assert "invalid option" in text
    st = client.read_state(rd)
    assert (st["state"], st["reason"]) == ("shutoff", "failed")
    wait_until(lambda: processes_using(rd) == [], 5, "QEMU and supervisor to go")


def test_missing_emulator(tmp_path):
    rd = tmp_path / "noemu"
    with pytest.raises(VshError, match="cannot execute 'no-such-qemu'"):
        client.start(rd, "noemu", 1, ["no-such-qemu"], xml("noemu"))


def test_paused_start_resume_destroy_without_guest(tmp_path):
    rd = tmp_path / "bare"
    t0 = time.monotonic()
    st = client.start(rd, "bare", 7, bare_argv(rd), xml("bare"), paused=True)
    elapsed = time.monotonic() - t0
    assert (st["state"], st["reason"], st["id"]) == ("paused", "user", 7)
    print(f"start (paused, no guest): {elapsed * 1000:.0f} ms")
    assert oct(os.stat(rd / "control.sock").st_mode & 0o777) == "0o600"
    assert oct(os.stat(rd / "state.json").st_mode & 0o777) == "0o600"
    with pytest.raises(OperationInvalid, match="Domain is already active"):
        client.start(rd, "bare", 8, bare_argv(rd), xml("bare"))
    assert client.qmp(rd, "query-status")["status"] == "prelaunch"
    st = client.destroy(rd)
    assert (st["state"], st["reason"]) == ("shutoff", "destroyed")
    wait_until(lambda: processes_using(rd) == [], 5, "QEMU and supervisor to go")
    with pytest.raises(OperationInvalid, match="domain is not running"):
        client.destroy(rd)


RACER = """
import sys, time
from vsh.kvm import client
rd, go = sys.argv[1], float(sys.argv[2])
argv = {argv!r}
time.sleep(max(0.0, go - time.time()))
try:
    st = client.start(rd, "race", 1, argv, "<domain><name>race</name></domain>", paused=True)
    print("WON", st["state"])
except Exception as exc:
    print("LOST", type(exc).__name__, exc)
"""


def test_racing_starts_exactly_one_wins(tmp_path):
    rd = tmp_path / "race"
    code = RACER.format(argv=bare_argv(rd))
    go = time.time() + 1.0
    procs = [subprocess.Popen([sys.executable, "-c", code, str(rd), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        outs = [p.communicate(timeout=60)[0].strip() for p in procs]
        winners = [o for o in outs if o.startswith("WON")]
        losers = [o for o in outs if o.startswith("LOST")]
        assert len(winners) == 1 and len(losers) == 2, outs
        for lost in losers:
            assert ("Domain is already active" in lost
                    or "is being started by another process" in lost), lost
        qemus = [p for p in processes_using(rd) if b"qemu" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(qemus) == 1
    finally:
        destroy_quietly(rd)
    wait_until(lambda: processes_using(rd) == [], 5, "QEMU and supervisor to go")


# --------------------------------------------------------------------------------------
# one shared guest
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared(guest, tmp_path_factory):
    rd = tmp_path_factory.mktemp("sup") / "shared"
    argv = guest_argv(guest, rd)
    t0 = time.monotonic()
    st = client.start(rd, "shared", 3, argv, xml("shared"),
                      lifecycle={"on_crash": "restart", "on_poweroff": "destroy"})
    start_s = time.monotonic() - t0
    ready_s = wait_for_text(rd / "console.log", guest["ready_line"].encode())
    print(f"start: {start_s * 1000:.0f} ms, ready after {ready_s:.2f} s more")
    yield {"rundir": rd, "state": st, "start_s": start_s, "manifest": guest}
    destroy_quietly(rd)


def test_start_reports_running(shared):
    st = shared["state"]
    assert (st["state"], st["reason"], st["id"]) == ("running", "booted", 3)
    assert st["console_pty"] and os.path.exists(st["console_pty"])
    assert client.pid_alive(st["qemu_pid"]) and client.pid_alive(st["supervisor_pid"])
    assert st["boot_id"] == client.boot_id()
    on_disk = client.read_state(shared["rundir"])
    assert on_disk["state"] == "running" and on_disk["qemu_pid"] == st["qemu_pid"]
    assert shared["start_s"] < 5.0      # generous: this is a test, the bench measures


def test_qmp_and_hmp_passthrough(shared):
    rd = shared["rundir"]
    assert client.qmp(rd, "query-status")["status"] == "running"
    assert "VM status: running" in client.hmp(rd, "info status")
    with pytest.raises(VshError, match="unable to execute QEMU command 'no-such-command'"):
        client.qmp(rd, "no-such-command")
    assert client.status(rd)["state"] == "running"


def test_suspend_resume(shared):
    rd = shared["rundir"]
    st = client.suspend(rd)
    assert (st["state"], st["reason"]) == ("paused", "user")
    assert client.read_state(rd)["state"] == "paused"
    assert client.qmp(rd, "query-status")["status"] == "paused"
    st = client.resume(rd)
    assert (st["state"], st["reason"]) == ("running", "unpaused")
    with pytest.raises(OperationInvalid, match="internal error: domain 'shared' not paused"):
        client.resume(rd)


def test_suspend_of_a_stopped_qemu_names_qemu(shared):
    rd = shared["rundir"]
    pid = client.read_state(rd)["qemu_pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises(Timeout) as exc:
            client.suspend(rd)
        took = time.monotonic() - t0
        assert client.status(rd)["state"] == "running"      # the supervisor itself answers
    finally:
        os.kill(pid, signal.SIGCONT)
    msg = str(exc.value)
    assert msg.startswith(f"QEMU (pid {pid}) of domain 'shared' did not answer the QMP command 'stop' "
                          "within 10 s: it is stopped (SIGSTOP); SIGCONT resumes it"), msg
    assert "supervisor" not in msg
    assert took < 10 + client.SLACK
    # the queued stop runs once QEMU continues, and the supervisor follows QEMU's STOP event
    wait_until(lambda: client.status(rd)["state"] == "paused", 15, "the queued stop to pause the guest")
    st = client.resume(rd)
    assert (st["state"], st["reason"]) == ("running", "unpaused")


def test_console_in_a_pipe(shared):
    rd = shared["rundir"]
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    os.write(w_in, b"\necho vsh-$((6*7))-ok\n")
    os.close(w_in)
    reason = attach_console(client.read_state(rd), rd, stdin_fd=r_in, stdout_fd=w_out, linger=3.0)
    os.close(w_out)
    os.close(r_in)
    out = b""
    while chunk := os.read(r_out, 65536):
        out += chunk
    os.close(r_out)
    assert reason == "eof"
    assert b"vsh-42-ok" in out, out[-500:]


CONSOLE_DRIVER = """
import sys
from vsh.api.local.console import LocalConsole
from vsh.kvm import client
from vsh.ui.console import session
rd = sys.argv[1]
with LocalConsole(client.read_state(rd), rd, force=len(sys.argv) > 2) as stream:
    reason = session(stream, stream.name)
print("LEFT:" + reason)
"""


def _console_session(rd: Path, force: bool = False):
    pexpect = pytest.importorskip("pexpect")
    args = ["-c", CONSOLE_DRIVER, str(rd)] + (["force"] if force else [])
    child = pexpect.spawn(sys.executable, args, timeout=30, dimensions=(24, 80),
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    child.expect_exact("Escape character is ^] (Ctrl + ])")
    return child, pexpect


def test_console_on_a_terminal_both_escapes_and_force(shared):
    rd = shared["rundir"]
    child, pexpect = _console_session(rd)
    child.send("echo pex-$((20+3))\r")
    child.expect_exact("pex-23")
    child.send("\x1d")                          # ^]
    child.expect_exact("LEFT:escape")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    # keyboard-independent escape: "~." right after a newline
    child, pexpect = _console_session(rd)
    child.send("echo tilde-$((2*3))\r")
    child.expect_exact("tilde-6")
    child.send("~.")
    child.expect_exact("LEFT:escape")
    child.expect(pexpect.EOF)
    # one session at a time; --force takes over
    first, pexpect = _console_session(rd)
    with pytest.raises(OperationInvalid, match="Active console session"):
        attach_console(client.read_state(rd), rd, stdin_fd=os.open(os.devnull, os.O_RDONLY))
    second, _ = _console_session(rd, force=True)
    first.expect_exact("LEFT:taken over")
    first.expect(pexpect.EOF)
    second.send("echo second-$((1+1))\r")
    second.expect_exact("second-2")
    second.send("\x1d")
    second.expect_exact("LEFT:escape")
    second.expect(pexpect.EOF)


def test_kill_supervisor_then_reattach(shared):
    rd = shared["rundir"]
    before = client.read_state(rd)
    os.kill(before["supervisor_pid"], signal.SIGKILL)
    wait_until(lambda: not client.pid_alive(before["supervisor_pid"], before["supervisor_starttime"]),
               5, "the supervisor to die")
    assert client.pid_alive(before["qemu_pid"], before["qemu_starttime"]), "QEMU died with its supervisor"
    assert client.read_state(rd)["state"] == "running"
    t0 = time.monotonic()
    st = client.status(rd)           # re-attaches a new supervisor
    print(f"re-attach: {(time.monotonic() - t0) * 1000:.0f} ms")
    assert st["state"] == "running"
    assert st["supervisor_pid"] != before["supervisor_pid"]
    assert st["qemu_pid"] == before["qemu_pid"]
    assert st["console_pty"] == before["console_pty"]
    assert client.suspend(rd)["state"] == "paused"
    assert client.resume(rd)["state"] == "running"
    shared["state"] = st


def test_acpi_reboot_restarts_in_place(shared):
    rd = shared["rundir"]
    st0 = client.read_state(rd)
    size = (rd / "console.log").stat().st_size
    client.reboot(rd)
    wait_for_text(rd / "console.log", b"Power down", after=size, timeout=30)
    wait_for_text(rd / "console.log", shared["manifest"]["ready_line"].encode(), after=size,
                  timeout=60)
    st = client.read_state(rd)
    assert (st["state"], st["reason"]) == ("running", "booted")
    assert st["qemu_pid"] == st0["qemu_pid"]      # same QEMU, reset in place


def test_kill_qemu_is_a_crash_and_on_crash_restart(shared):
    rd = shared["rundir"]
    before = client.read_state(rd)
    events = client.events(rd, names=["VSH_LIFECYCLE"], timeout=60)
    os.kill(before["qemu_pid"], signal.SIGKILL)
    seen = []
    for ev in events:
        seen.append((ev["data"]["state"], ev["data"]["reason"]))
        if ev["data"]["state"] == "running":
            break
    assert seen[0] == ("shutoff", "crashed"), seen
    assert seen[-1] == ("running", "booted"), seen
    st = client.read_state(rd)
    assert st["state"] == "running" and st["id"] == before["id"]
    assert st["qemu_pid"] != before["qemu_pid"] and st["signal"] is None
    assert st["restarts"] == 1
    wait_for_text(rd / "console.log", shared["manifest"]["ready_line"].encode())


def test_destroy_leaves_no_qemu(shared):
    rd = shared["rundir"]
    st0 = client.read_state(rd)
    t0 = time.monotonic()
    st = client.destroy(rd)
    print(f"destroy: {(time.monotonic() - t0) * 1000:.0f} ms")
    assert (st["state"], st["reason"]) == ("shutoff", "destroyed")
    assert not client.pid_alive(st0["qemu_pid"])
    wait_until(lambda: not client.pid_alive(st0["supervisor_pid"]), 5, "the supervisor to exit")
    wait_until(lambda: processes_using(rd) == [], 5, "QEMU and supervisor to go")
    assert not (rd / "control.sock").exists() and not (rd / "qmp.sock").exists()
    assert client.read_state(rd)["state"] == "shutoff"
    with pytest.raises(OperationInvalid, match="not running"):
        client.suspend(rd)


# --------------------------------------------------------------------------------------
# lifecycles with their own guest
# --------------------------------------------------------------------------------------

def test_acpi_shutdown(guest, tmp_path):
    rd = tmp_path / "down"
    client.start(rd, "down", 4, guest_argv(guest, rd), xml("down"))
    try:
        wait_for_text(rd / "console.log", guest["ready_line"].encode())
        t0 = time.monotonic()
        st = client.shutdown(rd, wait=True, timeout=30)
        print(f"shutdown → shut off: {(time.monotonic() - t0) * 1000:.0f} ms")
        assert (st["state"], st["reason"]) == ("shutoff", "shutdown")
        assert st["exit_status"] == 0
        wait_until(lambda: processes_using(rd) == [], 5, "QEMU and supervisor to go")
    finally:
        destroy_quietly(rd)


def test_guest_reboot_with_on_reboot_destroy(guest, tmp_path):
    rd = tmp_path / "reb"
    client.start(rd, "reb", 5, guest_argv(guest, rd), xml("reb"), lifecycle={"on_reboot": "destroy"})
    try:
        wait_for_text(rd / "console.log", guest["ready_line"].encode())
        r_in, w_in = os.pipe()
        r_out, w_out = os.pipe()
        os.write(w_in, b"\nreboot\n")
        os.close(w_in)
        attach_console(client.read_state(rd), rd, stdin_fd=r_in, stdout_fd=w_out, linger=2.0)
        os.close(w_out)
        os.close(r_in)
        os.close(r_out)
        st = client.wait_state(rd, ["shutoff"], timeout=30)
        assert (st["state"], st["reason"]) == ("shutoff", "shutdown")
    finally:
        destroy_quietly(rd)
    wait_until(lambda: processes_using(rd) == [], 5, "QEMU and supervisor to go")


def test_shutdown_timeout_message(tmp_path):
    """A paused guest cannot react to the power button: the wait says what to do."""
    rd = tmp_path / "deaf"
    client.start(rd, "deaf", 6, bare_argv(rd), xml("deaf"), paused=True)
    try:
        with pytest.raises(VshError, match=r"did not react to the ACPI power button within 1 s; use destroy"):
            client.shutdown(rd, wait=True, timeout=1)
    finally:
        destroy_quietly(rd)
