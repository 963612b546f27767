"""Runtime state that no longer describes a live domain (no QEMU needed).

A state.json from an earlier host boot, or naming processes that are gone or whose
pids now belong to other processes, reads as shut off in every query command; the
next start cleans the directory (tests/integration/test_runtime_state.py).
"""

from __future__ import annotations

import os
import subprocess

from vsh.core import runtime
from vsh.core import store as store_mod
from vsh.kvm import client, launch


def _starttime(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        return int(fh.read().rsplit(b")", 1)[1].split()[19])


def _write_state(vsh_env, name: str, **over) -> None:
    rd = vsh_env.store / "run" / name
    rd.mkdir(parents=True, exist_ok=True, mode=0o700)
    me = os.getpid()
    data = {"name": name, "state": "running", "reason": "booted", "id": 7,
            "boot_id": runtime.boot_id(), "qemu_pid": me, "qemu_starttime": _starttime(me),
            "supervisor_pid": me, "supervisor_starttime": _starttime(me), "transient": False}
    data.update(over)
    client.write_json_atomic(rd / "state.json", data)


def test_pid_alive_checks_the_start_time():
    me = os.getpid()
    assert runtime.pid_alive(me) and runtime.pid_alive(me, _starttime(me))
    assert not runtime.pid_alive(me, _starttime(me) + 1)
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert not runtime.pid_alive(dead.pid)
    assert not runtime.pid_alive(None) and not runtime.pid_alive(0)
    zombie = subprocess.Popen(["true"])
    try:
        os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)    # exited, not reaped
        assert not runtime.pid_alive(zombie.pid)
    finally:
        zombie.wait()


def test_live_looking_state_reads_running(vsh, define, vsh_env):
    define("d1")
    _write_state(vsh_env, "d1")
    assert vsh("domstate", "d1", "--reason").out.strip() == "running (booted)"


def test_state_from_an_earlier_boot_reads_shut_off(vsh, define, vsh_env):
    define("d1")
    # the pids are alive (ours) and even match: only the boot differs
    _write_state(vsh_env, "d1", boot_id="00000000-0000-4000-8000-000000000000")
    assert vsh("domstate", "d1", "--reason").out.strip() == "shut off (unknown)"
    listing = vsh("list", "--all").out
    assert " -    d1     shut off" in listing, listing
    assert "d1" not in vsh("list").out
    info = vsh("dominfo", "d1").out
    assert "State:          shut off" in info and "CPU time" not in info and "Id:             -" in info
    res = vsh("destroy", "d1")
    assert res.status == 1 and "domain is not running" in res.err
    assert client.read_state(vsh_env.store / "run" / "d1")["state"] == "shutoff"


def test_reused_pids_read_shut_off(vsh, define, vsh_env):
    """Same boot, both pids alive but started at other times: other processes now."""
    define("d1")
    me = os.getpid()
    _write_state(vsh_env, "d1", qemu_pid=me, qemu_starttime=_starttime(me) + 1,
                 supervisor_pid=1, supervisor_starttime=_starttime(1) + 1)
    assert vsh("domstate", "d1").out.strip() == "shut off"
    assert "d1" not in vsh("list").out
    assert client.read_state(vsh_env.store / "run" / "d1")["state"] == "shutoff"


def test_stale_transient_domain_is_gone(vsh, vsh_env):
    _write_state(vsh_env, "t1", transient=True, boot_id="00000000-0000-4000-8000-000000000000")
    assert "t1" not in vsh("list", "--all").out
    res = vsh("domstate", "t1")
    assert res.status == 1 and "failed to get domain 't1'" in res.err


def test_clear_previous_run(tmp_path):
    rd = tmp_path / "d1"
    rd.mkdir()
    for name in ("control.sock", "qmp.sock", "vnc.sock", ".state.json.77.tmp", "supervisor.log",
                 "console.log", "serial1.log", "state.json", "supervisor.lock"):
        (rd / name).write_text("old\n")
    (rd / "keep-dir").mkdir()
    same_boot = {"state": "shutoff", "boot_id": runtime.boot_id()}
    launch.clear_previous_run(runtime.RunDir(rd), same_boot)
    assert sorted(p.name for p in rd.iterdir()) == [
        "console.log", "keep-dir", "serial1.log", "state.json", "supervisor.lock", "supervisor.log"]
    launch.clear_previous_run(runtime.RunDir(rd), dict(same_boot, boot_id="another-boot"))
    assert sorted(p.name for p in rd.iterdir()) == ["keep-dir", "supervisor.lock"]
    launch.clear_previous_run(runtime.RunDir(tmp_path / "missing"), None)      # no directory: nothing to do


def test_private_dir_refuses_another_users_link(tmp_path):
    target = tmp_path / "mine"
    target.mkdir(mode=0o755)
    own_link = tmp_path / "own-link"
    own_link.symlink_to(target)
    assert store_mod.ensure_private_dir(str(own_link)) == str(own_link)        # the user's own link
    assert oct(os.stat(target).st_mode & 0o777) == "0o700"
    if os.geteuid() != 0:
        return                  # only root can make a link that belongs to someone else
    target.chmod(0o755)
    planted = tmp_path / "planted"
    planted.symlink_to(target)
    os.chown(planted, 65534, -1, follow_symlinks=False)
    try:
        store_mod.ensure_private_dir(str(planted))
    except store_mod.VshError as exc:
        assert "symbolic link" in str(exc) and "belongs to another user (uid 65534)" in str(exc)
    else:
        raise AssertionError("a link owned by another user was accepted")
    assert oct(os.stat(target).st_mode & 0o777) == "0o755"


def test_one_reader_of_the_runtime_state(vsh, define, vsh_env):
    """The store (list, domstate, dominfo) and the supervisor's clients read state.json the
    same way: processes gone in this boot read as shut off, reason unknown, everywhere."""
    define("d1")
    dead = subprocess.Popen(["true"])
    dead.wait()
    _write_state(vsh_env, "d1", qemu_pid=dead.pid, supervisor_pid=dead.pid,
                 qemu_starttime=None, supervisor_starttime=None)
    assert vsh("domstate", "d1", "--reason").out.strip() == "shut off (unknown)"
    rd = vsh_env.store / "run" / "d1"
    st = client.read_state(rd)
    assert (st["state"], st["reason"], st["stale"]) == ("shutoff", "unknown", True)
    rt = runtime.read_runtime(rd)
    assert (rt.state, rt.reason, rt.active, rt.id) == ("shutoff", "unknown", False, None)
    assert store_mod.read_runtime is runtime.read_runtime and client.read_state is runtime.read_state
    assert store_mod.ACTIVE_STATES is client.ACTIVE_STATES is runtime.ACTIVE_STATES


def test_unsupervised_and_recorded_stops(tmp_path):
    """A live QEMU with a dead supervisor is flagged (a query re-attaches); with both gone the
    reason is the one recorded before QEMU was told to stop, for that QEMU only."""
    rd = tmp_path / "d"
    rd.mkdir()
    me = os.getpid()
    dead = subprocess.Popen(["true"])
    dead.wait()
    base = {"name": "d", "state": "running", "reason": "booted", "boot_id": runtime.boot_id(),
            "qemu_pid": me, "qemu_starttime": _starttime(me), "supervisor_pid": dead.pid}
    client.write_json_atomic(rd / "state.json", base)
    st = runtime.read_state(rd)
    assert st["state"] == "running" and st["unsupervised"] and runtime.unsupervised(base)
    client.write_json_atomic(rd / "state.json", dict(base, supervisor_pid=me,
                                                     supervisor_starttime=_starttime(me)))
    assert "unsupervised" not in runtime.read_state(rd)
    gone = dict(base, qemu_pid=dead.pid, qemu_starttime=5)
    client.write_json_atomic(rd / "state.json", gone)
    assert runtime.read_state(rd)["reason"] == "unknown"
    runtime.record_stop(rd, "destroyed", dead.pid, 6)           # another QEMU's record
    assert runtime.read_state(rd)["reason"] == "unknown"
    runtime.record_stop(rd, "destroyed", dead.pid, 5)
    st = runtime.read_state(rd)
    assert (st["state"], st["reason"], st["stale"]) == ("shutoff", "destroyed", True)
    assert client.cleanup_stale(rd) and client.load_json(rd / "state.json")["reason"] == "destroyed"
    runtime.forget_stop(rd)
    assert not (rd / "stop.json").exists()


def test_pid_stopped():
    import signal
    import time

    child = subprocess.Popen(["sleep", "30"])
    try:
        start = _starttime(child.pid)
        assert not runtime.pid_stopped(child.pid, start)
        os.kill(child.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        while not runtime.pid_stopped(child.pid, start) and time.monotonic() - t0 < 5:
            time.sleep(0.01)
        assert runtime.pid_stopped(child.pid, start)
        assert not runtime.pid_stopped(child.pid, start + 1)
    finally:
        child.kill()
        child.wait()


def test_queries_start_a_supervisor_only_for_an_unwatched_qemu(vsh, define, vsh_env, monkeypatch):
    """list, domstate and dominfo ask for a new supervisor when QEMU runs without one, and
    never when the supervisor lives or the domain is shut off."""
    define("d1")
    define("d2")
    calls = []

    def supervise(rundir, timeout=10.0):
        calls.append(os.path.basename(rundir))
        st = client.load_json(os.path.join(rundir, "state.json"))
        me = os.getpid()
        client.write_json_atomic(os.path.join(rundir, "state.json"), dict(   # "a new supervisor"
            st, supervisor_pid=me, supervisor_starttime=_starttime(me), reason="unpaused"))
    monkeypatch.setattr(client, "supervise", supervise)
    _write_state(vsh_env, "d1")
    for args in (("list", "--all"), ("domstate", "d1"), ("dominfo", "d1")):
        assert vsh(*args).status == 0
    assert calls == []
    dead = subprocess.Popen(["true"])
    dead.wait()
    for args in (("list", "--all"), ("domstate", "d1", "--reason"), ("dominfo", "d1")):
        _write_state(vsh_env, "d1", supervisor_pid=dead.pid, supervisor_starttime=None)
        res = vsh(*args)
        assert res.status == 0 and "running" in res.out, res
    assert calls == ["d1", "d1", "d1"]
    assert vsh("domstate", "d1", "--reason").out.strip() == "running (unpaused)"
