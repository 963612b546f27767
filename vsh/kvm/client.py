"""The API that vsh commands use to run domains: start one, and talk to its supervisor.

A running domain is a supervisor process (``vsh.kvm.supervisor``) that owns the
QEMU process.  Everything it knows lives in the domain's runtime directory
(``RUNDIR``, created 0700 by the store):

``state.json``      the runtime state, rewritten atomically on every transition
``launch.json``     what was launched (argv, lifecycle actions), written by :func:`start`
``live.xml``        the live domain XML
``control.sock``    the supervisor's control socket (JSON lines, 0600)
``qmp.sock``        QEMU's QMP socket (bound by the supervisor, handed to QEMU as an fd)
``console.log``     the serial log (written by QEMU's chardev)
``supervisor.log``  the supervisor's log; ``qemu.log`` QEMU's own stdout/stderr
``supervisor.lock`` flock held by the live supervisor for its whole life

Control protocol: one JSON object per line each way.  A request is
``{"op": NAME, ...arguments}``; the reply is ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": {"type": "OperationInvalid", "lines": [...]}}``.  Several
requests may be sent on one connection; they are answered in order.

This module is imported by single-shot commands such as ``vsh list``: it must stay
light (no asyncio, no qemu.qmp, no subprocess).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import socket
import sys
import time

from vsh.core import errors as _errors
from vsh.core.errors import OperationInvalid, Timeout, VshError

STATE_FILE = "state.json"
LAUNCH_FILE = "launch.json"
LIVE_XML = "live.xml"
CONTROL_SOCKET = "control.sock"
QMP_SOCKET = "qmp.sock"
CONSOLE_LOG = "console.log"
SUPERVISOR_LOG = "supervisor.log"
QEMU_LOG = "qemu.log"
LOCK_FILE = "supervisor.lock"

#: States in which a QEMU process exists (or is being created).
ACTIVE_STATES = frozenset({"starting", "running", "paused", "shutdown", "crashed"})

LIFECYCLE_ACTIONS = frozenset({
    "destroy", "restart", "preserve", "rename-restart", "coredump-destroy", "coredump-restart",
})
DEFAULT_LIFECYCLE = {"on_poweroff": "destroy", "on_reboot": "restart", "on_crash": "destroy"}

class RunDir(str):
    """A directory path as a plain str with ``/`` joining (pathlib costs the supervisor 2 MiB)."""

    def __new__(cls, path):
        return super().__new__(cls, os.fspath(path))

    def __truediv__(self, name: str) -> str:
        return os.path.join(self, name)

    @property
    def name(self) -> str:
        return os.path.basename(self.rstrip("/"))


#: The longest path a unix socket can have (sockaddr_un.sun_path, less the final NUL).
_SUN_PATH_MAX = 107

#: How long a control request may take on top of the operation's own timeout.
_SLACK = 5.0


# --------------------------------------------------------------------------------------
# runtime files
# --------------------------------------------------------------------------------------

def boot_id() -> str:
    """This host boot's id (changes on every reboot; used to spot stale runtime files)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def proc_starttime(pid) -> int | None:
    """Start time (clock ticks since boot) of a live, non-zombie process, else None."""
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] in (b"Z", b"X", b"x"):
        return None
    return int(rest[19])


def pid_alive(pid, starttime: int | None = None) -> bool:
    """True if ``pid`` runs and (when known) is the same process that started at ``starttime``."""
    now = proc_starttime(pid)
    if now is None:
        return False
    return starttime is None or now == starttime


def write_json_atomic(path: RunDir, data: dict) -> None:
    """Write JSON to ``path`` atomically: temp file, fsync, rename; mode 0600."""
    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_text_atomic(path: RunDir, text: str) -> None:
    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_json(path: RunDir) -> dict | None:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read() or b"null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_stale(st: dict) -> bool:
    """An active-looking state whose processes are gone (or from an earlier host boot)."""
    if st.get("state") not in ACTIVE_STATES:
        return False
    if st.get("boot_id") and st.get("boot_id") != boot_id():
        return True
    return not (pid_alive(st.get("supervisor_pid"), st.get("supervisor_starttime"))
                or pid_alive(st.get("qemu_pid"), st.get("qemu_starttime")))


def read_state(rundir) -> dict | None:
    """The runtime state of a domain, for read-only commands; never blocks, never writes.

    Returns None when there is no state file.  A state file left over from a
    previous host boot, or whose supervisor and QEMU are both gone, is reported
    as ``shutoff`` (reason ``unknown``) with ``"stale": True``.
    """
    st = load_json(RunDir(rundir) / STATE_FILE)
    if st is None:
        return None
    if is_stale(st):
        st = dict(st, state="shutoff", reason="unknown", stale=True,
                  qemu_pid=None, supervisor_pid=None, console_pty=None)
    return st


def qemu_alive(st: dict | None) -> bool:
    return bool(st) and st.get("boot_id", boot_id()) == boot_id() and \
        pid_alive(st.get("qemu_pid"), st.get("qemu_starttime"))


def tail(path: RunDir, lines: int = 20) -> list[str]:
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


def _name(rundir: RunDir, st: dict | None = None) -> str:
    return (st or {}).get("name") or RunDir(rundir).name


def _not_running(name: str) -> OperationInvalid:
    return OperationInvalid(f"internal error: domain '{name}' not running")


def _error_from(payload) -> VshError:
    """Rebuild the VshError the supervisor reported."""
    if not isinstance(payload, dict):
        return VshError(f"internal error: {payload}")
    cls = getattr(_errors, str(payload.get("type", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, VshError)):
        cls = VshError
    return cls(*(payload.get("lines") or ["internal error: unknown supervisor error"]))


# --------------------------------------------------------------------------------------
# locks and spawning the supervisor
# --------------------------------------------------------------------------------------

def _try_lock(rundir: RunDir) -> int | None:
    """Take the supervisor lock without waiting; the fd, or None if a supervisor holds it."""
    fd = os.open(RunDir(rundir) / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _wait_pid_exit(pid: int, starttime, timeout: float) -> bool:
    """Wait (without polling) for a process to exit; True if it did within ``timeout``."""
    if not pid_alive(pid, starttime):
        return True
    try:
        pfd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return True
    try:
        if not pid_alive(pid, starttime):
            return True
        r, _, _ = select.select([pfd], [], [], timeout)
        return bool(r)
    finally:
        os.close(pfd)


_PATH_VAR = "VSH_SUPERVISOR_PATH"
_SUPERVISOR_MAIN = ("import json, os, sys; sys.path[:0] = json.loads(os.environ.pop('%s')); "
                    "from vsh.kvm.supervisor import main; sys.exit(main())" % _PATH_VAR)


def _package_root() -> str:
    import vsh
    return os.path.dirname(os.path.dirname(os.path.realpath(vsh.__file__)))


def _spawn_supervisor(rundir: RunDir, lock_fd: int, attach: bool, timeout: float) -> dict:
    """Start a detached supervisor and wait for its first report (running, or an error).

    The supervisor forks once more and the middle process exits at once, so the
    supervisor is never our child; it inherits ``lock_fd`` and keeps the lock.
    It reports on a pipe; we wait on that pipe, not on files.
    """
    r, w = os.pipe()
    log_fd = os.open(RunDir(rundir) / SUPERVISOR_LOG,
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    # The supervisor imports from exactly the path this vsh imports from, and nothing
    # else: -I ignores PYTHON* variables (no PYTHONASYNCIODEBUG or PYTHONDEVMODE in a
    # long-lived process) and the user's site-packages, -S skips site's start-up hooks
    # (~0.1 MB of its RSS).  The path travels in the environment; the supervisor drops it.
    path = [_package_root()] + [p for p in sys.path if p and os.path.isabs(p)]
    env[_PATH_VAR] = json.dumps(list(dict.fromkeys(path)))
    argv = [sys.executable, "-I", "-S"] + (["-B"] if sys.dont_write_bytecode else []) + [
        "-c", _SUPERVISOR_MAIN, "--rundir", str(rundir), "--notify-fd", str(w), "--lock-fd", str(lock_fd)]
    if attach:
        argv.append("--attach")
    os.set_inheritable(w, True)
    os.set_inheritable(lock_fd, True)
    try:
        pid = os.posix_spawn(sys.executable, argv, env, setsid=True, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1),
            (os.POSIX_SPAWN_DUP2, log_fd, 2),
        ])
    finally:
        os.close(w)
        os.close(log_fd)
        os.set_inheritable(lock_fd, False)
    try:
        msg = _read_report(r, timeout)
    finally:
        os.close(r)
        try:
            os.waitpid(pid, 0)      # the middle process; it exits right after forking
        except ChildProcessError:
            pass
    if msg is None:
        name = _name(rundir, load_json(RunDir(rundir) / LAUNCH_FILE))
        lines = tail(RunDir(rundir) / SUPERVISOR_LOG, 10)
        raise VshError(f"internal error: the supervisor of domain '{name}' exited without "
                       f"reporting; see {RunDir(rundir) / SUPERVISOR_LOG}", *lines)
    if msg == "timeout":
        name = _name(rundir, load_json(RunDir(rundir) / LAUNCH_FILE))
        raise Timeout(f"domain '{name}' did not start within {timeout:g} s; "
                      f"see {RunDir(rundir) / SUPERVISOR_LOG}, and use destroy to clean up")
    if not msg.get("ok"):
        raise _error_from(msg.get("error"))
    return msg.get("state") or {}


def _read_report(fd: int, timeout: float):
    """One JSON line from the supervisor's report pipe; None on EOF, 'timeout' on timeout."""
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return "timeout"
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
    if not buf.strip():
        return None
    try:
        return json.loads(buf.split(b"\n", 1)[0])
    except ValueError:
        return None


def _clean_sockets(rundir: RunDir) -> None:
    for name in (CONTROL_SOCKET, QMP_SOCKET):
        try:
            os.unlink(RunDir(rundir) / name)
        except FileNotFoundError:
            pass


def _clear_previous_run(rundir: RunDir, st: dict | None) -> None:
    """Remove what an earlier run left in ``rundir`` (the caller holds the lock; no QEMU runs).

    Everything from an earlier host boot goes, as a reboot empties /run; from this
    boot, the sockets and half-written temporary files go, and the logs stay until
    the new run replaces them.
    """
    other_boot = bool(st) and st.get("boot_id") not in (None, "", boot_id())
    try:
        entries = os.listdir(rundir)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry == LOCK_FILE:
            continue
        if other_boot or entry.endswith(".sock") or (entry.startswith(".") and entry.endswith(".tmp")):
            path = RunDir(rundir) / entry
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    continue        # vsh makes no directories here; leave what it did not make
                os.unlink(path)
            except FileNotFoundError:
                pass


# --------------------------------------------------------------------------------------
# start
# --------------------------------------------------------------------------------------

def start(rundir, name: str, domid: int, argv: list[str], live_xml_str: str,
          lifecycle: dict | None = None, transient: bool = False, paused: bool = False,
          timeout: float = 30.0, uuid: str | None = None, first_run: dict | None = None,
          taps: list | None = None) -> dict:
    """Launch QEMU under a new supervisor; return the state once the guest runs (or is paused).

    ``argv`` is QEMU's full command line; its QMP socket must be ``RUNDIR/qmp.sock``
    (the supervisor binds it and hands QEMU the listening fd; if the argv names no
    QMP socket one is added).  Raises ``OperationInvalid`` if the domain is already
    active or being started by another process, and ``VshError`` with QEMU's argv,
    exit status and last output if QEMU fails to start.

    ``first_run`` applies to this launch only (not to a crash restart):
    ``incoming`` ({"path", "offset", "drop_cache", "timeout"}: load the guest from a
    save image; the argv must hold ``-incoming defer``), ``running_reason`` /
    ``paused_reason`` (the state's reason once started) and ``drop_argv`` (argv
    items to remove afterwards, e.g. ``["-incoming", "defer"]``).

    ``taps`` (``[{"dev", "bridge", "mtu"}]``, see :func:`vsh.kvm.hostnet.plan_taps`)
    are plugged into their bridges while QEMU is still stopped, on every launch.
    """
    rundir = RunDir(rundir)
    control = os.fsencode(rundir / CONTROL_SOCKET)
    if len(control) > _SUN_PATH_MAX:
        raise _errors.InvalidArgument(
            f"the supervisor's control socket would be {len(control)} bytes long, the limit is "
            f"{_SUN_PATH_MAX}: {rundir / CONTROL_SOCKET} (use a shorter domain name or store path)")
    os.makedirs(rundir, mode=0o700, exist_ok=True)
    lock_fd = _try_lock(rundir)
    if lock_fd is None:
        st = read_state(rundir)
        if st and st.get("state") == "shutoff" and st.get("supervisor_pid"):
            # a supervisor that just stopped its domain and is about to exit
            _wait_pid_exit(st["supervisor_pid"], st.get("supervisor_starttime"), 5.0)
            lock_fd = _try_lock(rundir)
        if lock_fd is None:
            st = read_state(rundir)
            if st and st.get("state") in ACTIVE_STATES and st.get("state") != "starting":
                raise OperationInvalid("Domain is already active")
            raise OperationInvalid(f"domain '{name}' is being started by another process")
    try:
        st = load_json(rundir / STATE_FILE)
        if st and st.get("state") in ACTIVE_STATES and qemu_alive(st):
            raise OperationInvalid("Domain is already active")
        if uuid is None:
            uuid = _uuid_from(argv, live_xml_str)
        lc = dict(DEFAULT_LIFECYCLE)
        for key, value in (lifecycle or {}).items():
            if value:
                if value not in LIFECYCLE_ACTIONS:
                    raise _errors.InvalidArgument(f"unknown lifecycle action '{value}' for {key}")
                lc[key] = value
        _clear_previous_run(rundir, st)
        write_text_atomic(rundir / LIVE_XML, live_xml_str)
        write_json_atomic(rundir / LAUNCH_FILE, {
            "name": name, "uuid": uuid, "id": int(domid), "argv": [str(a) for a in argv],
            "lifecycle": lc, "transient": bool(transient), "paused": bool(paused),
            "timeout": float(timeout),
            **({"first_run": first_run} if first_run else {}),
            **({"taps": list(taps)} if taps else {}),
        })
        return _spawn_supervisor(rundir, lock_fd, attach=False, timeout=timeout + _SLACK)
    finally:
        os.close(lock_fd)


def _uuid_from(argv, xml: str) -> str | None:
    for i, arg in enumerate(argv[:-1]):
        if arg == "-uuid":
            return argv[i + 1]
    start = xml.find("<uuid>")
    if start >= 0:
        end = xml.find("</uuid>", start)
        if end > 0:
            return xml[start + 6:end].strip()
    return None


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
            reply = self.receive(timeout + _SLACK)
        except socket.timeout:
            raise Timeout(f"the supervisor of domain '{_name(self.rundir)}' did not answer "
                          f"'{op}' within {timeout + _SLACK:g} s; see "
                          f"{self.rundir / SUPERVISOR_LOG}") from None
        if reply is None:
            raise _Gone()
        if not reply.get("ok"):
            raise _error_from(reply.get("error"))
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
            raise _not_running(_name(rundir, st))
        lock_fd = _try_lock(rundir)
        if lock_fd is None:
            # A supervisor holds the lock but has no socket yet (it is starting, or a
            # concurrent client is re-attaching one); it binds the socket within ms.
            if time.monotonic() > deadline:
                raise Timeout(f"the supervisor of domain '{_name(rundir, st)}' does not answer "
                              f"on {rundir / CONTROL_SOCKET}; see {rundir / SUPERVISOR_LOG}")
            time.sleep(0.02)
            continue
        try:
            st = load_json(rundir / STATE_FILE)
            if not st or not qemu_alive(st):
                raise _not_running(_name(rundir, st))
            _clean_sockets_control(rundir)
            _spawn_supervisor(rundir, lock_fd, attach=True, timeout=max(5.0, timeout))
        finally:
            os.close(lock_fd)


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
            raise VshError(f"internal error: the supervisor of domain '{_name(rundir, st)}' "
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
        raise OperationInvalid(f"internal error: domain '{_name(rundir, st)}' stopped "
                               f"({st.get('state')}, {st.get('reason')}) while waiting "
                               f"for {'/'.join(states)}") from None


def shutdown(rundir, wait: bool = False, timeout: float = 60.0) -> dict:
    """Press the ACPI power button; with ``wait``, return only once the domain is shut off."""
    rundir = RunDir(rundir)
    with connect(rundir) as conn:
        try:
            st = conn.call("shutdown", timeout=10.0)
        except _Gone:
            return read_state(rundir) or {"state": "shutoff"}
        if not wait:
            return st
        name = _name(rundir, st)
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
    """Stop QEMU: SIGTERM, then SIGKILL after ``timeout`` s (``graceful``: SIGTERM only)."""
    rundir = RunDir(rundir)
    st = read_state(rundir)
    if not st or st.get("state") not in ACTIVE_STATES:
        raise OperationInvalid("Requested operation is not valid: domain is not running")
    try:
        with connect(rundir, timeout=5.0) as conn:
            try:
                return conn.call("destroy", timeout=2 * timeout + 5.0, graceful=graceful,
                                 timeout_s=timeout)
            except _Gone:
                st = read_state(rundir) or {}
                if st.get("state") == "shutoff":
                    return st
                raise VshError(f"internal error: the supervisor of domain '{_name(rundir, st)}' "
                               f"exited during destroy; see {rundir / SUPERVISOR_LOG}") from None
    except OperationInvalid:
        st = read_state(rundir)
        if st and st.get("state") == "shutoff":
            raise OperationInvalid("Requested operation is not valid: domain is not running")
        raise
    except VshError as exc:
        # no supervisor could be attached: kill QEMU ourselves so nothing is left behind
        st = load_json(rundir / STATE_FILE)
        if st and qemu_alive(st):
            return _kill_unsupervised(rundir, st, graceful, timeout, exc)
        raise


def _kill_unsupervised(rundir: RunDir, st: dict, graceful: bool, timeout: float, cause) -> dict:
    import signal
    pid = st["qemu_pid"]
    lock_fd = _try_lock(rundir)
    try:
        pfd = os.pidfd_open(pid)
    except ProcessLookupError:
        pfd = None
    if pfd is not None:
        try:
            if not pid_alive(pid, st.get("qemu_starttime")):
                raise cause
            signal.pidfd_send_signal(pfd, signal.SIGTERM)
            if not select.select([pfd], [], [], timeout)[0]:
                if graceful:
                    raise Timeout(f"QEMU (pid {pid}) did not exit within {timeout:g} s of SIGTERM; "
                                  "use destroy without --graceful")
                signal.pidfd_send_signal(pfd, signal.SIGKILL)
                if not select.select([pfd], [], [], timeout)[0]:
                    raise Timeout(f"QEMU (pid {pid}) did not exit after SIGKILL")
        finally:
            os.close(pfd)
    if lock_fd is not None:
        try:
            new = dict(st, state="shutoff", reason="destroyed", qemu_pid=None,
                       supervisor_pid=None, console_pty=None, stopped_at=time.time())
            write_json_atomic(rundir / STATE_FILE, new)
            _clean_sockets(rundir)
            return new
        finally:
            os.close(lock_fd)
    return dict(st, state="shutoff", reason="destroyed")


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


def set_vcpus(rundir, count: int) -> dict:
    """Hot-plug (or unplug) vCPUs until ``count`` are online, where the machine allows it."""
    return call(rundir, "setvcpus", timeout=30.0, count=int(count))


def events(rundir, names=None, timeout: float | None = None):
    """Subscribe to a running domain's events now; return an iterator over them.

    Yields QMP events (``{"event", "data", "timestamp"}``) and the supervisor's own
    ``VSH_LIFECYCLE`` events (``data``: state, reason, previous), filtered by
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
    lock_fd = _try_lock(rundir)
    if lock_fd is None:
        return False
    try:
        st = load_json(rundir / STATE_FILE)
        if not st or not is_stale(st):
            return False
        write_json_atomic(rundir / STATE_FILE, dict(
            st, state="shutoff", reason="unknown", qemu_pid=None, supervisor_pid=None,
            console_pty=None))
        _clean_sockets(rundir)
        return True
    finally:
        os.close(lock_fd)


__all__ = [
    "ACTIVE_STATES", "read_state", "start", "status", "wait_state", "shutdown", "reboot",
    "reset", "destroy", "suspend", "resume", "qmp", "qmp_raw", "hmp", "save", "job", "set_balloon", "set_vcpus",
    "attach_device", "detach_device", "change_media",
    "events", "connect", "call", "cleanup_stale",
]
