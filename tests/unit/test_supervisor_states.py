"""The supervisor's lifecycle state machine, and its event handling against a fake QMP peer."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess

import pytest

from vsh.core.errors import OperationInvalid
from vsh.kvm import client, supervisor
from vsh.kvm.supervisor import REASONS, STATES, TRANSITIONS, Lifecycle, TransitionError


# --------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------

def test_table_covers_every_state():
    assert set(TRANSITIONS) == set(STATES) == set(REASONS)
    for src, targets in TRANSITIONS.items():
        assert targets <= set(STATES), src
        assert src not in targets, f"{src} -> {src} must not be a transition"


def test_every_state_reachable_from_shutoff_and_back():
    seen, todo = {"shutoff"}, ["shutoff"]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(STATES)
    for state in STATES:
        if state != "shutoff":
            assert "shutoff" in TRANSITIONS[state], f"{state} cannot stop"


def test_active_states_match_client():
    assert client.ACTIVE_STATES == set(STATES) - {"shutoff"}


@pytest.mark.parametrize("src,dst", [
    ("shutoff", "running"), ("shutoff", "paused"), ("shutoff", "shutoff"),
    ("running", "starting"), ("paused", "starting"), ("crashed", "paused"),
    ("running", "running"),
])
def test_invalid_moves_name_from_and_to(src, dst):
    lc = Lifecycle(src, "unknown")
    with pytest.raises(TransitionError) as info:
        lc.transition(dst, "booted")
    msg = str(info.value)
    assert f"from '{src}'" in msg and f"to '{dst}'" in msg
    assert isinstance(info.value, OperationInvalid)
    assert lc.state == src


def test_transition_records_reason_and_notifies():
    calls = []
    lc = Lifecycle(on_change=lambda *a: calls.append(a))
    lc.transition("starting", "booted")
    lc.transition("running", "booted")
    lc.transition("paused", "user")
    lc.transition("running", "unpaused")
    lc.transition("shutoff", "shutdown")
    assert (lc.state, lc.reason) == ("shutoff", "shutdown")
    assert calls == [("shutoff", "starting", "booted"), ("starting", "running", "booted"),
                     ("running", "paused", "user"), ("paused", "running", "unpaused"),
                     ("running", "shutoff", "shutdown")]


def test_wrong_reason_is_refused():
    lc = Lifecycle("running", "booted")
    with pytest.raises(TransitionError, match="not a reason"):
        lc.transition("paused", "destroyed")
    with pytest.raises(TransitionError, match="unknown domain state"):
        lc.transition("exploded", "unknown")


def test_move_is_idempotent_but_still_checked():
    lc = Lifecycle("running", "booted")
    assert lc.move("running", "unpaused") is False
    assert lc.reason == "booted"
    assert lc.move("paused", "user") is True
    with pytest.raises(TransitionError):
        Lifecycle("shutoff").move("running", "booted")


def test_lifecycle_action_kinds():
    for action in client.LIFECYCLE_ACTIONS:
        assert supervisor.ACTION_KIND[action] in ("destroy", "restart", "preserve")


# --------------------------------------------------------------------------------------
# runtime files
# --------------------------------------------------------------------------------------

def test_read_state_reports_stale_as_shutoff(tmp_path):
    rd = tmp_path / "d"
    rd.mkdir()
    assert client.read_state(rd) is None
    dead = subprocess.Popen(["true"])
    dead.wait()
    base = {"name": "d", "state": "running", "reason": "booted", "boot_id": client.boot_id(),
            "qemu_pid": dead.pid, "supervisor_pid": dead.pid}
    client.write_json_atomic(rd / "state.json", base)
    assert oct(os.stat(rd / "state.json").st_mode & 0o777) == "0o600"
    st = client.read_state(rd)
    assert st["state"] == "shutoff" and st["reason"] == "unknown" and st["stale"]
    # alive (our own pid) but from another boot: stale as well
    client.write_json_atomic(rd / "state.json", dict(base, qemu_pid=os.getpid(), boot_id="x"))
    assert client.read_state(rd)["state"] == "shutoff"
    # alive, this boot, but the pid was reused (start time differs): stale
    client.write_json_atomic(rd / "state.json", dict(base, qemu_pid=os.getpid(), qemu_starttime=1))
    assert client.read_state(rd)["state"] == "shutoff"
    client.write_json_atomic(rd / "state.json", dict(
        base, qemu_pid=os.getpid(), qemu_starttime=client.proc_starttime(os.getpid())))
    assert client.read_state(rd)["state"] == "running"
    assert client.cleanup_stale(rd) is False
    client.write_json_atomic(rd / "state.json", base)
    assert client.cleanup_stale(rd) is True
    assert client.load_json(rd / "state.json")["state"] == "shutoff"


def test_operations_on_a_stopped_domain(tmp_path):
    rd = tmp_path / "vm1"
    rd.mkdir()
    with pytest.raises(OperationInvalid, match="domain 'vm1' not running"):
        client.suspend(rd)
    with pytest.raises(OperationInvalid, match="domain is not running"):
        client.destroy(rd)
    client.write_json_atomic(rd / "state.json", {"name": "vm1", "state": "shutoff",
                                                 "reason": "shutdown"})
    with pytest.raises(OperationInvalid, match="domain 'vm1' not running"):
        client.shutdown(rd)
    assert client.status(rd)["reason"] == "shutdown"
    assert client.wait_state(rd, ["shutoff"], timeout=1)["state"] == "shutoff"


def test_qmp_argv_rewrites_the_monitor():
    from vsh.kvm.qmp import qmp_argv
    out = qmp_argv(["qemu", "-m", "64", "-qmp", "unix:/r/qmp.sock,server=on,wait=off"], "/r/qmp.sock", 7)
    assert out[:2] == ["qemu", "-S"]
    assert "-qmp" not in out and "socket,id=vsh-qmp,fd=7,server=on,wait=off" in out
    out = qmp_argv(["qemu", "-S", "-chardev", "socket,id=mon0,path=/r/qmp.sock,server=on,wait=off",
                    "-mon", "chardev=mon0,mode=control"], "/r/qmp.sock", 9)
    assert out.count("-S") == 1
    assert out[3] == "socket,id=mon0,fd=9,server=on,wait=off"
    out = qmp_argv(["qemu"], "/r/qmp.sock", 5)
    assert out[-1] == "chardev=vsh-qmp,mode=control"
    with pytest.raises(Exception, match="daemonize"):
        qmp_argv(["qemu", "-daemonize"], "/r/qmp.sock", 5)


def test_qmp_socket_path_follows_the_control_monitor():
    from vsh.kvm.qmp import qmp_socket_path
    argv = ["qemu", "-chardev", "socket,id=other,path=/r/x.sock,server=on",
            "-chardev", "socket,id=charmonitor,path=/r/monitor.sock,server=on,wait=off",
            "-mon", "chardev=charmonitor,id=monitor,mode=control"]
    assert qmp_socket_path(argv, "/r/qmp.sock") == "/r/monitor.sock"
    assert qmp_socket_path(["qemu", "-qmp", "unix:/r/q.sock,server,nowait"], "/d") == "/r/q.sock"
    assert qmp_socket_path(["qemu", "-chardev", "socket,id=c,path=/r/c.sock"], "/d") == "/d"


def test_parse_chardevs():
    from vsh.kvm.qmp import parse_chardevs
    devs = [{"label": "vsh-qmp", "filename": "unix:/r/qmp.sock,server=on"},
            {"label": "charchannel0", "filename": "pty:/dev/pts/3"},
            {"label": "charserial0", "filename": "pty:/dev/pts/5"}]
    assert parse_chardevs(devs)["console_pty"] == "/dev/pts/5"
    # every device by its alias, for console --devname
    assert parse_chardevs(devs)["chardevs"] == {"channel0": {"console_pty": "/dev/pts/3"},
                                                "serial0": {"console_pty": "/dev/pts/5"}}
    devs = [{"label": "charserial0", "filename": "disconnected:unix:/r/console.sock,server=on"}]
    assert parse_chardevs(devs) == {"console_pty": None, "console_socket": "/r/console.sock",
                                    "chardevs": {"serial0": {"console_socket": "/r/console.sock"}}}


# --------------------------------------------------------------------------------------
# event handling against a fake QMP peer (a socketpair) and a stand-in "QEMU" process
# --------------------------------------------------------------------------------------

class FakeQemu:
    """Answers QMP on one end of a socketpair; ``proc`` plays the QEMU process."""

    def __init__(self, sock: socket.socket, proc: subprocess.Popen):
        self.sock = sock
        self.proc = proc
        self.commands: list[str] = []
        self.status = "prelaunch"
        self.shutdown_action = "poweroff"
        self.writer = None

    async def serve(self):
        reader, self.writer = await asyncio.open_connection(sock=self.sock)
        self._send({"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0},
                                        "package": ""}, "capabilities": []}})
        async for msg in self._messages(reader):
            cmd = msg["execute"]
            self.commands.append(cmd)
            reply = {}
            if cmd == "query-chardev":
                reply = [{"label": "charserial0", "filename": "pty:/dev/pts/99"}]
            elif cmd == "query-status":
                reply = {"status": self.status, "running": self.status == "running"}
            elif cmd == "cont":
                self.status = "running"
            elif cmd == "stop":
                self.status = "paused"
            elif cmd == "set-action":
                self.shutdown_action = msg["arguments"].get("shutdown", self.shutdown_action)
            self._send({"return": reply, **({"id": msg["id"]} if "id" in msg else {})})
            if cmd == "cont":
                self.emit("RESUME")
            elif cmd == "stop":
                self.emit("STOP")
            elif cmd == "quit":
                self.emit("SHUTDOWN", {"guest": False, "reason": "host-qmp-quit"})
                self.proc.send_signal(signal.SIGTERM)
                return

    @staticmethod
    async def _messages(reader):
        # QMP is a stream of JSON objects, not lines (qemu.qmp sends no newline)
        decoder, buf = json.JSONDecoder(), ""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            buf += chunk.decode()
            while buf.strip():
                try:
                    msg, end = decoder.raw_decode(buf.lstrip())
                except ValueError:
                    break
                buf = buf.lstrip()[end:]
                yield msg

    def guest_poweroff(self):
        """The guest powers off: SHUTDOWN, then QEMU exits or pauses (its shutdown action)."""
        self.emit("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"})
        if self.shutdown_action == "poweroff":
            self.proc.send_signal(signal.SIGTERM)
        else:
            self.status = "shutdown"
            self.emit("STOP")

    def _send(self, obj):
        self.writer.write(json.dumps(obj).encode() + b"\r\n")

    def emit(self, name, data=None):
        self._send({"event": name, "data": data or {},
                    "timestamp": {"seconds": 0, "microseconds": 0}})


async def _boot(tmp_path, **lifecycle):
    rd = tmp_path / "fake"
    rd.mkdir(exist_ok=True)
    spec = {"name": "fake", "id": 3, "uuid": None, "argv": ["qemu-system-x86_64"],
            "lifecycle": dict(client.DEFAULT_LIFECYCLE, **lifecycle)}
    sup = supervisor.Supervisor(rd, spec=spec)
    sup.init_async()
    proc = subprocess.Popen(["sleep", "60"])
    ours, theirs = socket.socketpair()
    fake = FakeQemu(theirs, proc)
    serve = asyncio.ensure_future(fake.serve())
    sup.lc.transition("starting", "booted")
    sup.qemu_pid, sup.is_child, sup.pidfd = proc.pid, True, os.pidfd_open(proc.pid)
    sup._qmp_sock = ours
    await sup._finish_launch()
    return sup, fake, proc, serve


async def _until(sup, *states, timeout=5.0):
    await sup._wait_for(states, timeout)
    await asyncio.sleep(0.01)


def _tail(commands):
    """The last commands, without query-status (after STOP/RESUME) and set-action."""
    return [c for c in commands if c not in ("query-status", "set-action")][-2:]


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_fake_boot_and_guest_poweroff(tmp_path):
    async def main():
        sup, fake, proc, serve = await _boot(tmp_path)
        assert (sup.lc.state, sup.lc.reason) == ("running", "booted")
        assert fake.commands[:3] == ["qmp_capabilities", "set-action", "query-chardev"], fake.commands
        assert sup.console["console_pty"] == "/dev/pts/99"
        on_disk = client.load_json(sup.rundir / "state.json")
        assert on_disk["state"] == "running" and on_disk["id"] == 3
        fake.emit("STOP")                   # stale: QEMU still runs
        await asyncio.sleep(0.1)
        assert sup.lc.state == "running"
        fake.status = "paused"
        fake.emit("STOP")
        await _until(sup, "paused")
        assert sup.lc.reason == "user"
        fake.status = "running"
        fake.emit("RESUME")
        await _until(sup, "running")
        assert sup.lc.reason == "unpaused"
        assert fake.shutdown_action == "pause"      # QEMU waits for us, even with on_poweroff=destroy
        fake.guest_poweroff()
        await _until(sup, "shutoff")
        assert sup.lc.reason == "shutdown"
        assert fake.commands[-1] == "quit"          # we apply on_poweroff=destroy
        assert sup._final.is_set()
        assert client.load_json(sup.rundir / "state.json")["reason"] == "shutdown"
        await serve
    _run(main())


def test_fake_poweroff_with_restart_and_fake_reboot(tmp_path):
    async def main():
        sup, fake, proc, serve = await _boot(tmp_path, on_poweroff="restart")
        assert fake.shutdown_action == "pause"
        fake.guest_poweroff()
        await asyncio.sleep(0.2)
        assert sup.lc.state == "running"
        assert _tail(fake.commands) == ["system_reset", "cont"]
        serve.cancel()
        proc.kill()

    _run(main())


def test_fake_acpi_reboot_is_a_reset_even_with_on_poweroff_destroy(tmp_path):
    async def main():
        sup, fake, proc, serve = await _boot(tmp_path)
        await sup.op_reboot({})
        assert fake.commands[-1] == "system_powerdown"
        assert fake.shutdown_action == "pause"          # the power-off must not end QEMU
        assert client.load_json(sup.rundir / "state.json")["pending"] == "reboot"
        fake.guest_poweroff()
        await asyncio.sleep(0.2)
        assert (sup.lc.state, sup.lc.reason) == ("running", "booted")
        assert _tail(fake.commands) == ["system_reset", "cont"]
        assert client.load_json(sup.rundir / "state.json")["pending"] is None
        await sup.op_destroy({})
        assert (sup.lc.state, sup.lc.reason) == ("shutoff", "destroyed")
        serve.cancel()
    _run(main())


def test_fake_panic_preserve_then_destroy(tmp_path):
    async def main():
        sup, fake, proc, serve = await _boot(tmp_path, on_crash="preserve")
        fake.emit("GUEST_PANICKED", {"action": "pause"})
        await _until(sup, "crashed")
        assert sup.lc.reason == "panicked"
        with pytest.raises(OperationInvalid, match="not paused"):
            await sup.op_resume({})
        await sup.op_destroy({})
        assert (sup.lc.state, sup.lc.reason) == ("shutoff", "destroyed")
        serve.cancel()
    _run(main())


def test_fake_qemu_dies_is_a_crash(tmp_path):
    async def main():
        sup, fake, proc, serve = await _boot(tmp_path)
        proc.kill()
        await _until(sup, "shutoff")
        assert sup.lc.reason == "crashed"
        assert sup.exit_signal == signal.SIGKILL
        assert client.load_json(sup.rundir / "state.json")["signal"] == signal.SIGKILL
        serve.cancel()
    _run(main())


def test_fake_suspend_resume_and_events_fan_out(tmp_path):
    async def main():
        sup, fake, proc, serve = await _boot(tmp_path)
        q1, q2 = asyncio.Queue(), asyncio.Queue()
        sup._subscribers.update({q1, q2})
        await sup.op_suspend({})
        assert (sup.lc.state, sup.lc.reason) == ("paused", "user")
        await sup.op_suspend({})            # already paused: fine
        await sup.op_resume({})
        assert (sup.lc.state, sup.lc.reason) == ("running", "unpaused")
        with pytest.raises(OperationInvalid, match="not paused"):
            await sup.op_resume({})
        fake.emit("BALLOON_CHANGE", {"actual": 64 << 20})
        await asyncio.sleep(0.1)
        assert sup.balloon_kib == 65536
        names1 = [q1.get_nowait()["event"] for _ in range(q1.qsize())]
        names2 = [q2.get_nowait()["event"] for _ in range(q2.qsize())]
        assert names1 == names2                     # both listeners see every event
        assert "BALLOON_CHANGE" in names1 and "VSH_LIFECYCLE" in names1
        await sup.op_destroy({})
        serve.cancel()
    _run(main())


# --------------------------------------------------------------------------------------
# a supervisor that re-attaches catches up; a recorded stop is believed
# --------------------------------------------------------------------------------------

async def _attach(tmp_path, status: str, prev: dict | None = None, **lifecycle):
    """A supervisor re-attaching (``--attach``) to a "QEMU" in run state ``status`` whose
    previous supervisor wrote ``prev`` (over a running state) before it died."""
    rd = tmp_path / "fake"
    rd.mkdir(exist_ok=True)
    proc = subprocess.Popen(["sleep", "60"])
    client.write_json_atomic(rd / "state.json", {
        "name": "fake", "state": "running", "reason": "booted", "boot_id": client.boot_id(),
        "qemu_pid": proc.pid, "qemu_starttime": client.proc_starttime(proc.pid),
        "qmp_socket": str(rd / "qmp.sock"), **(prev or {})})
    spec = {"name": "fake", "id": 3, "uuid": None, "argv": ["qemu-system-x86_64"],
            "lifecycle": dict(client.DEFAULT_LIFECYCLE, **lifecycle)}
    sup = supervisor.Supervisor(rd, spec=spec, attach=True)
    sup.init_async()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(rd / "qmp.sock"))
    listener.listen(1)
    listener.setblocking(False)
    fake = FakeQemu(None, proc)
    fake.status = status

    async def serve():
        fake.sock, _ = await asyncio.get_running_loop().sock_accept(listener)
        await fake.serve()
    task = asyncio.ensure_future(serve())
    await sup._attach()
    return sup, fake, proc, task


def test_fake_attach_finishes_a_pending_acpi_reboot(tmp_path):
    async def main():
        sup, fake, proc, task = await _attach(tmp_path, "shutdown", {"pending": "reboot"})
        assert (sup.lc.state, sup.lc.reason) == ("running", "booted")
        assert _tail(fake.commands) == ["system_reset", "cont"]
        assert client.load_json(sup.rundir / "state.json")["pending"] is None
        task.cancel()
        proc.kill()
    _run(main())


def test_fake_attach_finishes_an_unwatched_poweroff(tmp_path):
    async def main():
        sup, fake, proc, task = await _attach(tmp_path, "shutdown")
        assert (sup.lc.state, sup.lc.reason) == ("shutoff", "shutdown")
        assert "quit" in fake.commands
        assert client.load_json(sup.rundir / "state.json")["reason"] == "shutdown"
        task.cancel()
    _run(main())


def test_fake_attach_keeps_running_and_the_pending_request(tmp_path):
    async def main():
        sup, fake, proc, task = await _attach(tmp_path, "running", {"pending": "reboot"})
        assert (sup.lc.state, sup.lc.reason) == ("running", "booted")
        assert client.load_json(sup.rundir / "state.json")["pending"] == "reboot"
        fake.guest_poweroff()           # the guest reacts to the button only now
        await asyncio.sleep(0.2)
        assert (sup.lc.state, sup.lc.reason) == ("running", "booted")
        assert _tail(fake.commands) == ["system_reset", "cont"]
        task.cancel()
        proc.kill()
    _run(main())


def test_fake_recorded_destroy_is_not_a_crash(tmp_path):
    """A vsh that found the supervisor unresponsive recorded a destroy and killed QEMU:
    the supervisor says destroyed and does not apply on_crash=restart."""
    async def main():
        sup, fake, proc, serve = await _boot(tmp_path, on_crash="restart")
        sup.qemu_starttime = client.proc_starttime(proc.pid)
        client.record_stop(sup.rundir, "destroyed", proc.pid, sup.qemu_starttime)
        proc.kill()
        await _until(sup, "shutoff")
        assert sup.lc.reason == "destroyed" and not sup.restarts
        assert sup._final.is_set()
        serve.cancel()
    _run(main())
