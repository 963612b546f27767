"""The API that vsh commands use to run domains: start one, and talk to its supervisor.

A running domain is a supervisor process (``vsh.kvm.supervisor``) that owns the
QEMU process.  Everything it knows lives in the domain's runtime directory
(``RUNDIR``, created 0700 by the store; its files are listed in
:mod:`vsh.core.runtime`, which also reads ``state.json``).  :func:`start` is in
:mod:`vsh.kvm.launch`; this module talks to a running supervisor.

Control protocol: one JSON object per line each way.  A request is
``{"op": NAME, ...arguments}``; the reply is ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": {"type": "OperationInvalid", "lines": [...]}}``.  Several
requests may be sent on one connection; they are answered in order.

This module is imported by single-shot commands such as ``vsh list``: it must stay
light (no asyncio, no qemu.qmp, no subprocess).
"""

from __future__ import annotations

import json
import os
import select
import socket
import time

from vsh.core.errors import OperationInvalid, Timeout, VshError
# the runtime files, states and readers (vsh.core.runtime) and the start of a domain
# (vsh.kvm.launch) keep their names here too: commands call them as vsh.kvm.client.*
from vsh.core.runtime import (  # noqa: F401
    ACTIVE_STATES, CONSOLE_LOG, CONTROL_SOCKET, LAUNCH_FILE, LIVE_XML, LOCK_FILE, QEMU_LOG,
    QMP_SOCKET, STATE_FILE, STOP_FILE, SUPERVISOR_LOG, RunDir, boot_id, forget_stop, is_stale,
    load_json, pid_alive, pid_stopped, proc_starttime, qemu_alive, read_state, record_stop,
    recorded_stop, stale_reason, tail, unsupervised, write_json_atomic, write_text_atomic)
from vsh.kvm.launch import (  # noqa: F401
    SLACK, clean_sockets, clear_previous_run, error_from, name_of, not_running, spawn_supervisor,
    start, try_lock)
from vsh.kvm.supervisor.lifecycle import DEFAULT_LIFECYCLE, LIFECYCLE_ACTIONS  # noqa: F401


# --------------------------------------------------------------------------------------
# talking to the supervisor
# --------------------------------------------------------------------------------------

class Connection:
    """One control-socket connection (several requests may share it)."""

    def __init__(self, sock: socket.socket, rundir: RunDir):
        self.sock = sock
        self.rundir = rundir
        self._buf = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, op: str, **args) -> None:
        self.sock.settimeout(None)
        self.sock.sendall((json.dumps(dict(args, op=op)) + "\n").encode())

    def receive(self, timeout: float | None):
        """One reply line as a dict; None if the supervisor closed the connection."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buf:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout()
                self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, op: str, timeout: float = 30.0, **args):
        self.send(op, **args)
        try:
            reply = self.receive(timeout + SLACK)
        except socket.timeout:
            from vsh.core.runtime import why_unresponsive

            st = read_state(self.rundir) or {}
            why = why_unresponsive(st.get("supervisor_pid"))
            raise Timeout(f"the supervisor of domain '{name_of(self.rundir, st)}' did not answer "
                          f"'{op}' within {timeout + SLACK:g} s"
                          + (f": {why}" if why else "") + f"; see {self.rundir / SUPERVISOR_LOG}") from None
        if reply is None:
            raise _Gone()
        if not reply.get("ok"):
            raise error_from(reply.get("error"))
        return reply.get("result")


class _Gone(Exception):
    """The supervisor closed the connection before answering (it exited)."""


def _connect_socket(rundir: RunDir) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(rundir / CONTROL_SOCKET)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    return sock


def connect(rundir, timeout: float = 10.0) -> Connection:
    """Connect to the domain's supervisor, re-attaching a new one if it died.

    Raises ``OperationInvalid`` (``domain 'x' not running``) if no QEMU runs.
    """
    rundir = RunDir(rundir)
    deadline = time.monotonic() + timeout
    while True:
        sock = _connect_socket(rundir)
        if sock is not None:
            return Connection(sock, rundir)
        st = load_json(rundir / STATE_FILE)
        if not st or st.get("state") not in ACTIVE_STATES or is_stale(st):
            raise not_running(name_of(rundir, st))
        lock_fd = try_lock(rundir)
        if lock_fd is None:
            # A supervisor holds the lock but has no socket yet (it is starting, or a
            # concurrent client is re-attaching one); it binds the socket within ms.
            if time.monotonic() > deadline:
                raise Timeout(f"the supervisor of domain '{name_of(rundir, st)}' does not answer "
                              f"on {rundir / CONTROL_SOCKET}; see {rundir / SUPERVISOR_LOG}")
            time.sleep(0.02)
            continue
        try:
            st = load_json(rundir / STATE_FILE)
            if not st or not qemu_alive(st):
                raise not_running(name_of(rundir, st))
            _clean_sockets_control(rundir)
            spawn_supervisor(rundir, lock_fd, attach=True, timeout=max(5.0, timeout))
        finally:
            os.close(lock_fd)


def supervise(rundir, timeout: float = 10.0) -> dict | None:
    """Start a new supervisor for a QEMU whose supervisor died (:func:`unsupervised`); return
    the state once it has taken over and caught up with what QEMU did meanwhile (its run
    state; a shutdown, reboot or panic it finishes), or the state as it is if nothing
    needed doing.  A concurrent vsh doing the same is waited for, not raced (the lock)."""
    rundir = RunDir(rundir)
    if not unsupervised(load_json(rundir / STATE_FILE)):
        return read_state(rundir)
    try:
        connect(rundir, timeout=timeout).close()
    except OperationInvalid:
        pass            # QEMU went meanwhile: the state file says how
    return read_state(rundir)


def _clean_sockets_control(rundir: RunDir) -> None:
    try:
        os.unlink(rundir / CONTROL_SOCKET)
    except FileNotFoundError:
        pass


def call(rundir, op: str, timeout: float = 30.0, **args):
    """Send one request to the supervisor (re-attaching if needed) and return its result."""
    rundir = RunDir(rundir)
    with connect(rundir) as conn:
        try:
            return conn.call(op, timeout=timeout, timeout_s=timeout, **args)
        except _Gone:
            st = read_state(rundir)
            raise VshError(f"internal error: the supervisor of domain '{name_of(rundir, st)}' "
                           f"exited while handling '{op}'; see {rundir / SUPERVISOR_LOG}") from None


# --------------------------------------------------------------------------------------
# operations
# --------------------------------------------------------------------------------------

def status(rundir) -> dict | None:
    """Live state from the supervisor (re-attaching if needed); the state file if not running."""
    rundir = RunDir(rundir)
    st = read_state(rundir)
    if not st or st.get("state") not in ACTIVE_STATES:
        return st
    try:
        return call(rundir, "status", timeout=5.0)
    except OperationInvalid:
        return read_state(rundir)


def wait_state(rundir, states, timeout: float = 60.0, message: str | None = None) -> dict:
    """Wait until the domain is in one of ``states``; raise Timeout with ``message`` if not."""
    rundir = RunDir(rundir)
    states = [states] if isinstance(states, str) else list(states)
    st = read_state(rundir)
    if st is None or st.get("state") in states:
        return st or {"state": "shutoff", "reason": "unknown"}
    try:
        with connect(rundir) as conn:
            return _wait_on(conn, rundir, states, timeout, message)
    except OperationInvalid:
        st = read_state(rundir) or {"state": "shutoff", "reason": "unknown"}
        if st.get("state") in states:
            return st
        raise


def _wait_on(conn: Connection, rundir: RunDir, states, timeout: float, message) -> dict:
    try:
        return conn.call("wait", timeout=timeout, states=states, timeout_s=timeout)
    except Timeout as exc:
        if message:
            raise Timeout(message) from None
        raise exc
    except _Gone:
        # the supervisor exited (the domain stopped); the state file says how
        st = read_state(rundir) or {"state": "shutoff", "reason": "unknown"}
        if st.get("state") in states:
            return st
        raise OperationInvalid(f"internal error: domain '{name_of(rundir, st)}' stopped "
                               f"({st.get('state')}, {st.get('reason')}) while waiting "
                               f"for {'/'.join(states)}") from None


def shutdown(rundir, wait: bool = False, timeout: float = 60.0) -> dict:
    """Press the ACPI power button; with ``wait``, return only once the domain is shut off."""
    rundir = RunDir(rundir)
    with connect(rundir) as conn:
        try:
            st = conn.call("shutdown", timeout=10.0, timeout_s=10.0)
        except _Gone:
            return read_state(rundir) or {"state": "shutoff"}
        if not wait:
            return st
        name = name_of(rundir, st)
        return _wait_on(conn, rundir, ["shutoff"], timeout,
                        f"the guest of domain '{name}' did not react to the ACPI power button "
                        f"within {timeout:g} s; use destroy")


def reboot(rundir, mode: str = "acpi") -> dict:
    """Reboot: ``acpi`` presses the power button and restarts the guest when it powers off
    (libvirt's "fake reboot"); ``reset`` resets the machine at once."""
    return call(rundir, "reboot", timeout=10.0, mode=mode)


def reset(rundir) -> dict:
    return call(rundir, "reset", timeout=10.0)


def destroy(rundir, graceful: bool = False, timeout: float = 10.0) -> dict:
    """Stop QEMU: SIGTERM, then SIGKILL after ``timeout`` s (``graceful``: SIGTERM only).

    The supervisor does it; one that cannot answer (stopped, hung) is not waited for
    (stopped) or is given up on, and QEMU is killed here, after the destroy is recorded
    (:func:`record_stop`) so that the supervisor reads it when it wakes up.
    """
    rundir = RunDir(rundir)
    st = read_state(rundir)
    if not st or st.get("state") not in ACTIVE_STATES:
        raise OperationInvalid("Requested operation is not valid: domain is not running")
    if pid_stopped(st.get("supervisor_pid"), st.get("supervisor_starttime")) and qemu_alive(st):
        return _kill_unsupervised(rundir, load_json(rundir / STATE_FILE) or st, graceful, timeout)
    try:
        with connect(rundir, timeout=5.0) as conn:
            try:
                return conn.call("destroy", timeout=2 * timeout + 5.0, graceful=graceful,
                                 timeout_s=timeout)
            except _Gone:
                st = read_state(rundir) or {}
                if st.get("state") == "shutoff":
                    return st
                raise VshError(f"internal error: the supervisor of domain '{name_of(rundir, st)}' "
                               f"exited during destroy; see {rundir / SUPERVISOR_LOG}") from None
    except OperationInvalid:
        st = read_state(rundir)
        if st and st.get("state") == "shutoff":
            raise OperationInvalid("Requested operation is not valid: domain is not running")
        raise
    except VshError:
        # no supervisor answered: kill QEMU ourselves so nothing is left behind
        st = load_json(rundir / STATE_FILE)
        if st and qemu_alive(st):
            return _kill_unsupervised(rundir, st, graceful, timeout)
        raise


def _kill_unsupervised(rundir: RunDir, st: dict, graceful: bool, timeout: float) -> dict:
    """Destroy QEMU without its supervisor: record why, signal it, write ``shut off (destroyed)``.

    Without the lock (a stopped supervisor holds it) the state is written all the same;
    the supervisor, once it runs again, finds QEMU gone, reads the record and agrees.
    """
    import signal
    pid, starttime = st["qemu_pid"], st.get("qemu_starttime")
    lock_fd = try_lock(rundir)
    try:
        try:
            pfd = os.pidfd_open(pid)
        except ProcessLookupError:
            pfd = None
        if pfd is not None:
            try:
                if pid_alive(pid, starttime):
                    record_stop(rundir, "destroyed", pid, starttime)
                    signal.pidfd_send_signal(pfd, signal.SIGTERM)
                    if not select.select([pfd], [], [], timeout)[0]:
                        if graceful:
                            forget_stop(rundir)
                            raise Timeout(f"QEMU (pid {pid}) did not exit within {timeout:g} s of "
                                          "SIGTERM; use destroy without --graceful")
                        signal.pidfd_send_signal(pfd, signal.SIGKILL)
                        if not select.select([pfd], [], [], timeout)[0]:
                            raise Timeout(f"QEMU (pid {pid}) did not exit after SIGKILL")
            finally:
                os.close(pfd)
        new = dict(st, state="shutoff", reason=recorded_stop(rundir, pid, starttime) or "destroyed",
                   qemu_pid=None, console_pty=None, stopped_at=time.time())
        if lock_fd is not None:
            new["supervisor_pid"] = None
            clean_sockets(rundir)
        write_json_atomic(rundir / STATE_FILE, new)
        return new
    finally:
        if lock_fd is not None:
            os.close(lock_fd)


def suspend(rundir) -> dict:
    return call(rundir, "suspend", timeout=10.0)


def resume(rundir) -> dict:
    return call(rundir, "resume", timeout=10.0)


def qmp(rundir, cmd: str, args: dict | None = None, timeout: float = 30.0):
    """Run one QMP command through the supervisor's connection; return its result."""
    return call(rundir, "qmp", timeout=timeout, command=cmd, arguments=args or {})


def qmp_raw(rundir, cmd: str, args: dict | None = None, timeout: float = 30.0) -> dict:
    """Run one QMP command; return QEMU's reply as is: ``{"return": ...}`` or ``{"error": ...}``."""
    return call(rundir, "qmp", timeout=timeout, command=cmd, arguments=args or {}, raw=True)


def hmp(rundir, line: str, timeout: float = 30.0) -> str:
    """Run one human-monitor (HMP) command; return its text output."""
    return call(rundir, "hmp", timeout=timeout, line=line)


def save(rundir, tmp: str, final: str, offset: int, bypass_cache: bool = False,
         timeout: float = 600.0) -> dict:
    """Save the guest into ``tmp`` (a save image header of ``offset`` bytes written by the
    caller), rename it to ``final`` once complete and stop the domain (``shut off (saved)``)."""
    return call(rundir, "save", timeout=timeout, tmp=str(tmp), final=str(final), offset=int(offset),
                bypass_cache=bool(bypass_cache))


def migrate_out(rundir, uri: str, live: bool = True, auto_converge: bool = False,
                suspend_after: float | None = None, timeout: float = 600.0, mirror: dict | None = None) -> dict:
    """Migrate the running domain to the QEMU listening on ``uri`` and stop it (``shut off
    (migrated)``); QEMU's figures of the migration (see ``op_migrate_out``). ``mirror``
    (``{"socket", "disks": [{"path", "export"}]}``): copy those disks into the destination's NBD
    exports first (``--copy-storage-all``)."""
    return call(rundir, "migrate_out", timeout=timeout, uri=uri, live=bool(live),
                auto_converge=bool(auto_converge), suspend_after=suspend_after,
                **({"mirror": mirror} if mirror else {}))


def job(rundir, command: str | None, arguments: dict | None = None, job_id: str | None = None,
        existing: bool = False, stop: bool = False, stop_reason: str | None = None,
        complete: bool = False, after: dict | None = None, what: str | None = None,
        timeout: float = 600.0) -> dict:
    """Run a QMP job to its end through the supervisor (see ``op_job``); its error is raised."""
    return call(rundir, "job", timeout=timeout, command=command, arguments=arguments or {},
                job_id=job_id, existing=existing, stop=stop, stop_reason=stop_reason,
                complete=complete, after=after, what=what)


def attach_device(rundir, device_xml: str, timeout: float = 60.0) -> dict:
    """Hot-plug the device element ``device_xml`` into the running domain (``vsh.kvm.hotplug``).

    On success the live XML holds the device (with its ``<alias>`` and ``<address>``);
    on failure QEMU and the live XML are as they were.
    """
    return call(rundir, "attach_device", timeout=timeout, xml=str(device_xml))


def detach_device(rundir, device_xml: str, timeout: float = 20.0) -> dict:
    """Unplug the device ``device_xml`` names (a disk by target, a NIC by MAC): ``device_del``,
    then wait up to ``timeout`` s for the guest to release it (QEMU's DEVICE_DELETED)."""
    return call(rundir, "detach_device", timeout=timeout + 30.0, xml=str(device_xml), wait_s=float(timeout))


def change_media(rundir, target: str, disk_xml: str | None, force: bool = False,
                 timeout: float = 5.0) -> dict:
    """Eject the medium of the cdrom ``target`` (``disk_xml`` None) or put in the one
    ``disk_xml`` (a ``<disk>`` with the new ``<source>``) describes; ``force`` opens a
    tray the guest has locked."""
    return call(rundir, "change_media", timeout=timeout + 30.0, target=str(target),
                xml=str(disk_xml) if disk_xml else None, force=bool(force), wait_s=float(timeout))


def set_balloon(rundir, kib: int) -> dict:
    """Ask the balloon driver for ``kib`` KiB of guest memory."""
    return call(rundir, "balloon", timeout=10.0, kib=int(kib))


def set_lifecycle(rundir, event: str, action: str) -> dict:
    """Make the supervisor apply ``action`` on ``event`` (``on_poweroff``, ``on_reboot``, ``on_crash``)
    from now on; QEMU's own reactions (``set-action``) follow."""
    return call(rundir, "set_lifecycle", timeout=10.0, event=str(event), action=str(action))


def perf(rundir, enable=(), disable=()) -> dict:
    """Open (``enable``) and close (``disable``) perf counters on QEMU (:mod:`vsh.kvm.perf`, held
    by the supervisor): ``{"events": the open ones, "values": {event: count}}``."""
    return call(rundir, "perf", timeout=10.0, enable=list(enable), disable=list(disable))


def set_vcpus(rundir, count: int) -> dict:
    """Hot-plug (or unplug) vCPUs until ``count`` are online, where the machine allows it."""
    return call(rundir, "setvcpus", timeout=30.0, count=int(count))


def events(rundir, names=None, timeout: float | None = None):
    """Subscribe to a running domain's events now; return an iterator over them.

    Yields QMP events (``{"event", "data", "timestamp"}``) and the supervisor's own:
    ``VSH_LIFECYCLE`` (``data``: state, reason, previous) and ``VSH_DEVICE_ADDED``
    (``data``: device, the QEMU id of a device it hot-plugged), filtered by
    ``names``, until the domain stops or ``timeout`` seconds have passed.  Every
    subscriber gets every event; none takes events from another.
    """
    rundir = RunDir(rundir)
    conn = connect(rundir)
    try:
        conn.call("subscribe", timeout=5.0, events=list(names) if names else None)
    except BaseException:
        conn.close()
        raise
    return _event_stream(conn, timeout)


def _event_stream(conn: Connection, timeout: float | None):
    with conn:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            try:
                msg = conn.receive(left)
            except socket.timeout:
                return
            if msg is None:
                return
            yield msg


def cleanup_stale(rundir) -> bool:
    """Mark a stale active state (previous boot, or processes gone) as shut off; True if done.

    Takes the supervisor lock, so it never races a live supervisor.
    """
    rundir = RunDir(rundir)
    st = load_json(rundir / STATE_FILE)
    if not st or not is_stale(st):
        return False
    lock_fd = try_lock(rundir)
    if lock_fd is None:
        return False
    try:
        st = load_json(rundir / STATE_FILE)
        if not st or not is_stale(st):
            return False
        write_json_atomic(rundir / STATE_FILE, dict(
            st, state="shutoff", reason=stale_reason(rundir, st), qemu_pid=None, supervisor_pid=None,
            console_pty=None))
        clean_sockets(rundir)
        return True
    finally:
        os.close(lock_fd)


__all__ = [
    "ACTIVE_STATES", "read_state", "start", "status", "wait_state", "shutdown", "reboot",
    "reset", "destroy", "suspend", "resume", "qmp", "qmp_raw", "hmp", "save", "job", "set_balloon", "set_vcpus",
    "set_lifecycle",
    "attach_device", "detach_device", "change_media",
    "events", "connect", "call", "cleanup_stale", "supervise",
]
