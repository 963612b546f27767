"""A running domain's runtime state: the one home for reading it.

Each running domain has a runtime directory (``<runtime>/NAME/``, see
:mod:`vsh.core.store`) that its supervisor (:mod:`vsh.kvm.supervisor`) keeps:

``state.json``      the runtime state, rewritten atomically on every transition
``launch.json``     what was launched (argv, lifecycle actions), written by ``vsh.kvm.launch``
``live.xml``        the live domain XML
``control.sock``    the supervisor's control socket (JSON lines, 0600)
``qmp.sock``        QEMU's QMP socket (bound by the supervisor, handed to QEMU as an fd)
``console.log``     the serial log (written by QEMU's chardev)
``supervisor.log``  the supervisor's log; ``qemu.log`` QEMU's own stdout/stderr
``supervisor.lock`` flock held by the live supervisor for its whole life
``stop.json``       why QEMU is being stopped (``destroyed``, ``shutdown``...), written before
                    it is told to stop, so whoever finds it gone knows why
``grants.json``     the files QEMU's user was granted for this run (:mod:`vsh.kvm.confine`),
                    undone when the domain stops

This module owns the file names, the domain states the supervisor writes, the
host's boot id, process liveness and the reading of ``state.json`` (a state left
by an earlier boot or by processes that are gone reads as shut off).  It is
imported by single-shot commands and by the supervisor itself: only ``os`` and
``json`` (imported when a file is read).
"""

from __future__ import annotations

import os

STATE_FILE = "state.json"
LAUNCH_FILE = "launch.json"
LIVE_XML = "live.xml"
CONTROL_SOCKET = "control.sock"
QMP_SOCKET = "qmp.sock"
CONSOLE_LOG = "console.log"
SUPERVISOR_LOG = "supervisor.log"
QEMU_LOG = "qemu.log"
LOCK_FILE = "supervisor.lock"
STOP_FILE = "stop.json"
GRANTS_FILE = "grants.json"

#: Every state the supervisor writes (its transition table, vsh.kvm.supervisor.lifecycle,
#: has exactly these).  "shutdown" means "shutting down"; "crashed" is a panicked guest
#: kept for inspection (on_crash=preserve); "pmsuspended" a guest that suspended itself to RAM.
STATES = ("starting", "running", "paused", "shutdown", "shutoff", "crashed", "pmsuspended")

#: States in which a QEMU process exists (or is being created).
ACTIVE_STATES = frozenset(STATES) - {"shutoff"}


class RunDir(str):
    """A directory path as a plain str with ``/`` joining (pathlib costs the supervisor 2 MiB)."""

    def __new__(cls, path):
        return super().__new__(cls, os.fspath(path))

    def __truediv__(self, name: str) -> str:
        return os.path.join(self, name)

    @property
    def name(self) -> str:
        return os.path.basename(self.rstrip("/"))


# --------------------------------------------------------------------------------------
# the host and its processes
# --------------------------------------------------------------------------------------

_BOOT_ID: str | None = None


def boot_id() -> str:
    """This host boot's id (changes on every reboot; used to spot stale runtime files)."""
    global _BOOT_ID
    if _BOOT_ID is None:
        try:
            with open("/proc/sys/kernel/random/boot_id") as fh:
                _BOOT_ID = fh.read().strip()
        except OSError:
            _BOOT_ID = ""
    return _BOOT_ID


def _stat_fields(pid) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first); None if the
    process does not exist; [] if /proc hides it (hidepid) but the kernel knows it."""
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return None
    except OSError:         # /proc hides other users' processes (hidepid): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return []
    rest = stat[stat.rfind(b")") + 2:].split()
    if not rest or rest[0] in (b"Z", b"X", b"x"):
        return None         # a zombie has exited
    return rest


def proc_starttime(pid) -> int | None:
    """Start time (clock ticks since boot, ``/proc/PID/stat`` field 22) of a live, non-zombie
    process, else None."""
    rest = _stat_fields(pid)
    if not rest or len(rest) <= 19:
        return None
    return int(rest[19])


_WHY_UNRESPONSIVE = {"T": "it is stopped (SIGSTOP); SIGCONT resumes it",
                     "t": "it is stopped by a debugger (ptrace)",
                     "D": "it is blocked in the kernel (uninterruptible sleep, often I/O)"}


def why_unresponsive(pid) -> str | None:
    """Why a live process cannot answer, from its scheduler state in ``/proc/PID/stat``
    (stopped by a signal or a debugger, blocked in the kernel), or None."""
    rest = _stat_fields(pid)
    if not rest:
        return None
    return _WHY_UNRESPONSIVE.get(rest[0].decode("ascii", "replace"))


def pid_alive(pid, starttime: int | None = None) -> bool:
    """True if ``pid`` runs (a zombie does not) and, when ``starttime`` is given, is the
    process that started then: a reused pid is not alive."""
    rest = _stat_fields(pid)
    if rest is None:
        return False
    if starttime is None:
        return True
    return len(rest) > 19 and rest[19] == str(starttime).encode()


# --------------------------------------------------------------------------------------
# reading and writing runtime files
# --------------------------------------------------------------------------------------

def load_json(path) -> dict | None:
    """A JSON object from a file; None if it is missing, unreadable or not an object."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return None             # (no json import for a domain that is not running: the query path)
    import json

    try:
        data = json.loads(raw or b"null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _write_atomic(path, data: bytes) -> None:
    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    # A confined QEMU may create files in its runtime directory: never follow or reuse one.
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_json_atomic(path, data: dict) -> None:
    """Write JSON to ``path`` atomically: temp file, fsync, rename; mode 0600."""
    import json

    _write_atomic(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def write_text_atomic(path, text: str) -> None:
    """Write text to ``path`` atomically (as :func:`write_json_atomic`)."""
    _write_atomic(path, text.encode())


def tail(path, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a (log) file; empty if it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-lines:]


def other_boot(st: dict | None) -> bool:
    """True if the state was written during an earlier boot of this host."""
    return bool(st) and st.get("boot_id") not in (None, "", boot_id())


def is_stale(st: dict) -> bool:
    """An active-looking state whose processes are gone (or from an earlier host boot)."""
    if st.get("state") not in ACTIVE_STATES:
        return False
    if other_boot(st):
        return True
    return not (pid_alive(st.get("supervisor_pid"), st.get("supervisor_starttime"))
                or pid_alive(st.get("qemu_pid"), st.get("qemu_starttime")))


def unsupervised(st: dict | None) -> bool:
    """An active state whose QEMU runs but whose supervisor is gone: nobody watches it."""
    return (bool(st) and st.get("state") in ACTIVE_STATES and not other_boot(st)
            and not pid_alive(st.get("supervisor_pid"), st.get("supervisor_starttime"))
            and pid_alive(st.get("qemu_pid"), st.get("qemu_starttime")))


def pid_stopped(pid, starttime: int | None = None) -> bool:
    """True if ``pid`` (the process that started at ``starttime``) is stopped (SIGSTOP, ptrace)."""
    rest = _stat_fields(pid)
    if not rest or (starttime is not None and (len(rest) <= 19 or rest[19] != str(starttime).encode())):
        return False
    return rest[0] in (b"T", b"t")


def qemu_alive(st: dict | None) -> bool:
    """True if the QEMU a state names runs (in this boot, the same process)."""
    return bool(st) and not other_boot(st) and pid_alive(st.get("qemu_pid"), st.get("qemu_starttime"))


def record_stop(rundir, reason: str, qemu_pid, qemu_starttime) -> None:
    """Say durably why the QEMU ``qemu_pid`` is about to stop (``destroyed``, ``shutdown``,
    ``crashed``, ``saved``), before anyone tells it to: a supervisor that finds it gone, or
    a reader that finds both gone, reports that reason (and never restarts it)."""
    import time

    write_json_atomic(os.path.join(rundir, STOP_FILE), {
        "reason": reason, "qemu_pid": qemu_pid, "qemu_starttime": qemu_starttime, "at": time.time()})


def forget_stop(rundir) -> None:
    """The stop :func:`record_stop` announced did not happen (a graceful destroy timed out)."""
    try:
        os.unlink(os.path.join(rundir, STOP_FILE))
    except FileNotFoundError:
        pass


def recorded_stop(rundir, qemu_pid, qemu_starttime) -> str | None:
    """The reason :func:`record_stop` wrote for this very QEMU (pid and start time), else None."""
    rec = load_json(os.path.join(rundir, STOP_FILE))
    if not rec or not qemu_pid or rec.get("qemu_pid") != qemu_pid \
            or rec.get("qemu_starttime") != qemu_starttime:
        return None
    reason = rec.get("reason")
    return reason if isinstance(reason, str) else None


def stale_reason(rundir, st: dict) -> str:
    """How a stale state's run ended: the stop recorded for its QEMU (this boot), else ``unknown``."""
    if other_boot(st):
        return "unknown"
    return recorded_stop(rundir, st.get("qemu_pid"), st.get("qemu_starttime")) or "unknown"


def read_state(rundir) -> dict | None:
    """The runtime state of a domain, for read-only commands; never blocks, never writes.

    Returns None when there is no state file.  A state file left over from a
    previous host boot, or whose supervisor and QEMU are both gone, is reported
    as ``shutoff`` with ``"stale": True``, reason the one recorded before QEMU was told
    to stop (:func:`record_stop`), else ``unknown`` (nobody saw how it ended).  A state
    whose QEMU runs without a supervisor has ``"unsupervised": True`` (a command starts a
    new supervisor: :func:`vsh.kvm.client.supervise`).  A live supervisor costs one read
    of ``/proc/PID/stat``; a domain that is shut off costs nothing more than the file.
    """
    st = load_json(os.path.join(rundir, STATE_FILE))
    if st is None or st.get("state") not in ACTIVE_STATES:
        return st
    if not other_boot(st) and pid_alive(st.get("supervisor_pid"), st.get("supervisor_starttime")):
        return st
    if qemu_alive(st):
        return dict(st, unsupervised=True)
    return dict(st, state="shutoff", reason=stale_reason(rundir, st), stale=True,
                qemu_pid=None, supervisor_pid=None, console_pty=None)


class Runtime:
    """What a domain's supervisor last wrote in ``state.json`` (checked for staleness)."""

    def __init__(self, data: dict | None = None, rundir=None):
        self.data = data or {}
        self._rundir = None if rundir is None else os.fspath(rundir)

    @property
    def rundir(self):
        """The runtime directory as a Path (or None)."""
        if self._rundir is None:
            return None
        from pathlib import Path

        return Path(self._rundir)

    @rundir.setter
    def rundir(self, value) -> None:
        self._rundir = None if value is None else os.fspath(value)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def state(self) -> str:
        return self.data.get("state", "shutoff")

    @property
    def reason(self) -> str:
        return self.data.get("reason", "unknown")

    @property
    def id(self) -> int | None:
        return self.data.get("id") if self.active else None

    @property
    def transient(self) -> bool:
        return bool(self.data.get("transient"))


def read_runtime(rundir) -> Runtime | None:
    """:func:`read_state` as a :class:`Runtime`; None when there is no state file."""
    st = read_state(rundir)
    return None if st is None else Runtime(data=st, rundir=rundir)
