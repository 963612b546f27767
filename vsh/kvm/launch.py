"""Starting a domain: launch its supervisor (``vsh.kvm.supervisor``) and wait for its report.

:func:`start` takes the supervisor lock of the runtime directory, clears what an
earlier run left there, writes ``live.xml`` and ``launch.json`` and spawns a
detached supervisor (``python -I -S -c ...``) that reports on a pipe once the
guest runs or failed to.  :mod:`vsh.kvm.client` uses :func:`spawn_supervisor` to
re-attach a supervisor to a QEMU whose supervisor died.

Imported by ``vsh start``: it must stay light (no asyncio, no qemu.qmp, no subprocess).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import sys
import time

from vsh.core import errors as _errors
from vsh.core.errors import OperationInvalid, Timeout, VshError
from vsh.core.runtime import (ACTIVE_STATES, CONTROL_SOCKET, LAUNCH_FILE, LIVE_XML, LOCK_FILE,
                              QMP_SOCKET, STATE_FILE, STOP_FILE, SUPERVISOR_LOG, GRANTS_FILE, RunDir, load_json,
                              other_boot, pid_alive, qemu_alive, read_state, tail, write_json_atomic,
                              write_text_atomic)
from vsh.kvm.supervisor.lifecycle import DEFAULT_LIFECYCLE, LIFECYCLE_ACTIONS

#: The longest path a unix socket can have (sockaddr_un.sun_path, less the final NUL).
_SUN_PATH_MAX = 107

#: How long a control request may take on top of the operation's own timeout.
SLACK = 5.0
#: Seconds an incoming QEMU waits for its stream (a restore's image, a migration) unless told
INCOMING_TIMEOUT = 600.0


def name_of(rundir: RunDir, st: dict | None = None) -> str:
    return (st or {}).get("name") or RunDir(rundir).name


def not_running(name: str) -> OperationInvalid:
    return OperationInvalid(f"internal error: domain '{name}' not running")


def error_from(payload) -> VshError:
    """Rebuild the VshError the supervisor reported."""
    if not isinstance(payload, dict):
        return VshError(f"internal error: {payload}")
    cls = getattr(_errors, str(payload.get("type", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, VshError)):
        cls = VshError
    return cls(*(payload.get("lines") or ["internal error: unknown supervisor error"]))


def try_lock(rundir: RunDir) -> int | None:
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
                    "from vsh.kvm.supervisor.entry import main; sys.exit(main())" % _PATH_VAR)


def _package_root() -> str:
    """The directory that holds the ``vsh`` package this module belongs to (vsh/kvm/launch.py)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def spawn_supervisor(rundir: RunDir, lock_fd: int, attach: bool, timeout: float, pass_fds=()) -> dict:
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
    for fd in pass_fds:
        os.set_inheritable(fd, True)
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
        for fd in pass_fds:
            os.set_inheritable(fd, False)
    try:
        msg = _read_report(r, timeout)
    finally:
        os.close(r)
        try:
            os.waitpid(pid, 0)      # the middle process; it exits right after forking
        except ChildProcessError:
            pass
    if msg is None:
        name = name_of(rundir, load_json(RunDir(rundir) / LAUNCH_FILE))
        lines = tail(RunDir(rundir) / SUPERVISOR_LOG, 10)
        raise VshError(f"internal error: the supervisor of domain '{name}' exited without "
                       f"reporting; see {RunDir(rundir) / SUPERVISOR_LOG}", *lines)
    if msg == "timeout":
        name = name_of(rundir, load_json(RunDir(rundir) / LAUNCH_FILE))
        raise Timeout(f"domain '{name}' did not start within {timeout:g} s; "
                      f"see {RunDir(rundir) / SUPERVISOR_LOG}, and use destroy to clean up")
    if not msg.get("ok"):
        raise error_from(msg.get("error"))
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


def clean_sockets(rundir: RunDir) -> None:
    for name in (CONTROL_SOCKET, QMP_SOCKET):
        try:
            os.unlink(RunDir(rundir) / name)
        except FileNotFoundError:
            pass


def clear_previous_run(rundir: RunDir, st: dict | None) -> None:
    """Remove what an earlier run left in ``rundir`` (the caller holds the lock; no QEMU runs).

    Everything from an earlier host boot goes, as a reboot empties /run; from this
    boot, the sockets, half-written temporary files and the last run's stop record go,
    and the logs stay until the new run replaces them.
    """
    earlier = other_boot(st)
    try:
        entries = os.listdir(rundir)
    except FileNotFoundError:
        return
    if GRANTS_FILE in entries:      # the last run's supervisor died with its QEMU: undo its grants
        from vsh.kvm import confine

        confine.release(rundir)
    for entry in entries:
        if entry == LOCK_FILE:
            continue
        if earlier or entry.endswith(".sock") or entry == STOP_FILE \
                or (entry.startswith(".") and entry.endswith(".tmp")):
            path = RunDir(rundir) / entry
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    continue        # vsh makes no directories here; leave what it did not make
                os.unlink(path)
            except FileNotFoundError:
                pass


def start(rundir, name: str, domid: int, argv: list[str], live_xml_str: str,
          lifecycle: dict | None = None, transient: bool = False, paused: bool = False,
          timeout: float = 30.0, uuid: str | None = None, first_run: dict | None = None,
          taps: list | None = None, balloon_kib: int | None = None, vcpus_hotplug: int = 0,
          swtpm: list | None = None, env: dict | None = None, tainted: list | None = None,
          mempolicy: dict | None = None, cgroup_tune: dict | None = None, perf=(), pass_fds=()) -> dict:
    """Launch QEMU under a new supervisor; return the state once the guest runs (or is paused).

    ``argv`` is QEMU's full command line; its QMP socket must be ``RUNDIR/qmp.sock``
    (the supervisor binds it and hands QEMU the listening fd; if the argv names no
    QMP socket one is added).  Raises ``OperationInvalid`` if the domain is already
    active or being started by another process, and ``VshError`` with QEMU's argv,
    exit status and last output if QEMU fails to start.

    ``first_run`` applies to this launch only (not to a crash restart):
    ``incoming`` ({"path", "offset", "drop_cache", "timeout"}: load the guest from a
    save image, or {"uri", "timeout"}: take it from a migrating QEMU; the argv must hold
    ``-incoming defer``; the start is reported once the guest is in, so it may take that
    ``timeout``, INCOMING_TIMEOUT by default, on top of ``timeout``), ``running_reason`` /
    ``paused_reason`` (the state's reason once started) and ``drop_argv`` (argv
    items to remove afterwards, e.g. ``["-incoming", "defer"]``).

    ``taps`` (``[{"dev", "bridge", "mtu"}]``, see :func:`vsh.kvm.hostnet.plan_taps`)
    are plugged into their bridges while QEMU is still stopped, on every launch.

    ``balloon_kib`` (the domain's ``<currentMemory>`` when it has a balloon device and it is
    below ``<memory>``) is set as the balloon target before the CPUs first run, on every
    launch but a restore (the save image carries the balloon's state), as libvirt does.
    ``vcpus_hotplug`` vCPUs are added with device_add before the guest runs or loads a save
    image (the argv's -smp has only the others).
    ``swtpm`` (``[{"socket", "version", "state", "log"}]``, see :mod:`vsh.kvm.swtpm`): the
    emulated TPMs whose swtpm the supervisor starts before QEMU on every launch.

    ``env`` is added to QEMU's environment; ``tainted`` names why the domain is tainted
    (libvirt's words, e.g. ``custom-argv``), written to ``qemu.log`` at each start.
    ``mempolicy`` (``{"mode": strict|preferred|interleave, "nodes": [...]}``) is QEMU's NUMA memory
    policy, set before it executes (:func:`vsh.kvm.confine.sandbox.spawn`). ``cgroup_tune``
    (``{"cpu", "memory", "blkio", "mems"}``, see :func:`vsh.kvm.cgtune.apply`) are the limits set on
    QEMU's own cgroups while it is still stopped, on every launch; ``perf`` names the perf events
    the supervisor counts on QEMU (:mod:`vsh.kvm.perf`). ``pass_fds`` are
    descriptors the supervisor, and QEMU after it, inherit under the same numbers (fd sets).
    """
    rundir = RunDir(rundir)
    control = os.fsencode(rundir / CONTROL_SOCKET)
    if len(control) > _SUN_PATH_MAX:
        raise _errors.InvalidArgument(
            f"the supervisor's control socket would be {len(control)} bytes long, the limit is "
            f"{_SUN_PATH_MAX}: {rundir / CONTROL_SOCKET} (use a shorter domain name or store path)")
    os.makedirs(rundir, mode=0o700, exist_ok=True)
    lock_fd = try_lock(rundir)
    if lock_fd is None:
        st = read_state(rundir)
        if st and st.get("state") == "shutoff" and st.get("supervisor_pid"):
            # a supervisor that just stopped its domain and is about to exit
            _wait_pid_exit(st["supervisor_pid"], st.get("supervisor_starttime"), 5.0)
            lock_fd = try_lock(rundir)
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
        incoming = (first_run or {}).get("incoming")
        if incoming is not None:        # the launch is reported once the stream is in: wait for that too
            incoming = dict(incoming, timeout=float(incoming.get("timeout") or INCOMING_TIMEOUT))
            first_run = dict(first_run, incoming=incoming)
        clear_previous_run(rundir, st)
        write_text_atomic(rundir / LIVE_XML, live_xml_str)
        write_json_atomic(rundir / LAUNCH_FILE, {
            "name": name, "uuid": uuid, "id": int(domid), "argv": [str(a) for a in argv],
            "lifecycle": lc, "transient": bool(transient), "paused": bool(paused),
            "timeout": float(timeout),
            **({"first_run": first_run} if first_run else {}),
            **({"taps": list(taps)} if taps else {}),
            **({"balloon_kib": int(balloon_kib)} if balloon_kib else {}),
            **({"vcpus_hotplug": int(vcpus_hotplug)} if vcpus_hotplug else {}),
            **({"swtpm": list(swtpm)} if swtpm else {}),
            **({"env": {str(k): str(v) for k, v in env.items()}} if env else {}),
            **({"tainted": list(tainted)} if tainted else {}),
            **({"mempolicy": dict(mempolicy)} if mempolicy else {}),
            **({"cgroup_tune": dict(cgroup_tune)} if cgroup_tune else {}),
            **({"perf": [str(n) for n in perf]} if perf else {}),
        })
        wait = timeout + SLACK + (incoming["timeout"] if incoming is not None else 0.0)
        return spawn_supervisor(rundir, lock_fd, attach=False, timeout=wait, pass_fds=pass_fds)
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
