"""The per-domain supervisor: one detached process per running domain.

It owns QEMU as its direct child (QEMU sits in its own process group and never
dies with the supervisor), holds the QMP connection (``qemu.qmp``), writes
``state.json`` on every transition, applies on_poweroff / on_reboot / on_crash,
and serves the control socket described in :mod:`vsh.kvm.client`.

Started by :func:`vsh.kvm.client.start` as ``python -I -S -c '...main()' --rundir
DIR --notify-fd N --lock-fd N [--attach]`` (``python -m vsh.kvm.supervisor`` takes the
same arguments); it forks once more (so the starting vsh never has to reap it),
keeps the flock on ``supervisor.lock`` for its whole
life, and reports ``{"ok": true, "state": ...}`` or ``{"ok": false, "error": ...}``
on the notify fd once the guest runs (or failed to).

``--attach`` re-adopts a QEMU whose supervisor died: it watches QEMU through a
pidfd and reconnects to ``qmp.sock`` (QEMU keeps listening on it).

Lifecycle actions (QEMU runs with ``set-action shutdown=pause``, so a guest
power-off leaves QEMU paused until the supervisor decides):

* on_poweroff: destroy → quit QEMU, ``shut off (shutdown)``; restart → reset +
  continue, ``running (booted)``; preserve → stays ``paused (shutdown)``.
* on_reboot: restart → QEMU resets in place (``reboot=reset``); destroy →
  ``reboot=shutdown`` and the domain stops as ``shut off (shutdown)``.
* on_crash (guest panic, needs a pvpanic device; or QEMU dying on its own):
  destroy → ``shut off (crashed)``; restart → reset (panic) or a new QEMU with the
  same argv and id (QEMU died; at most 3 restarts a minute); preserve → state
  ``crashed (panicked)`` with QEMU kept paused.  rename-restart and coredump-* map
  to restart / destroy.
* ``reboot`` requests (mode ``acpi``): the ACPI power button is pressed and the
  next guest power-off becomes a reset (libvirt's "fake reboot"); mode ``reset``
  resets at once.  A guest that ignores ACPI does not reboot (use reset).

Only the ``main()`` path and the :class:`Supervisor` import asyncio / qemu.qmp;
importing this module for its state table is cheap.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from vsh.core.errors import InvalidArgument, OperationInvalid, Timeout, VshError
from vsh.kvm import client as rt

asyncio = None      # imported by _load_async(): keeps "import vsh.kvm.supervisor" light
_qmp = None         # vsh.kvm.qmp
_qmplib = None      # qemu.qmp

# --------------------------------------------------------------------------------------
# the lifecycle state machine
# --------------------------------------------------------------------------------------

STATES = ("starting", "running", "paused", "shutdown", "shutoff", "crashed")

#: The one table of allowed moves.  "shutdown" means "shutting down" (the guest has
#: powered off, the lifecycle action is being applied); "crashed" is a panicked guest
#: kept for inspection (on_crash=preserve).
TRANSITIONS: dict[str, frozenset[str]] = {
    "shutoff": frozenset({"starting"}),
    "starting": frozenset({"running", "paused", "shutdown", "shutoff", "crashed"}),
    "running": frozenset({"paused", "shutdown", "shutoff", "crashed"}),
    "paused": frozenset({"running", "shutdown", "shutoff", "crashed"}),
    "shutdown": frozenset({"running", "paused", "shutoff", "crashed"}),
    "crashed": frozenset({"running", "shutoff"}),
}

#: libvirt's reasons, per state (what ``domstate --reason`` prints).
REASONS: dict[str, frozenset[str]] = {
    "starting": frozenset({"booted", "unknown"}),
    "running": frozenset({"unknown", "booted", "unpaused", "crashed", "restored", "migrated",
                          "from snapshot", "wakeup"}),
    "paused": frozenset({"unknown", "user", "shutdown", "ioerror", "watchdog", "crashed",
                         "starting up", "migration", "snapshot", "saving", "from snapshot"}),
    "shutdown": frozenset({"unknown", "user"}),
    "shutoff": frozenset({"unknown", "shutdown", "destroyed", "crashed", "failed", "saved",
                          "migrated", "from snapshot", "daemon"}),
    "crashed": frozenset({"unknown", "panicked"}),
}

#: How each lifecycle action behaves.
ACTION_KIND = {
    "destroy": "destroy", "coredump-destroy": "destroy",
    "restart": "restart", "rename-restart": "restart", "coredump-restart": "restart",
    "preserve": "preserve",
}


class TransitionError(OperationInvalid):
    """A lifecycle move that the transition table does not allow."""


class Lifecycle:
    """The domain's state and reason; every change goes through :meth:`transition`."""

    def __init__(self, state: str = "shutoff", reason: str = "unknown", on_change=None):
        if state not in TRANSITIONS:
            raise ValueError(f"unknown domain state '{state}'")
        self.state = state
        self.reason = reason
        self.on_change = on_change

    def can(self, to: str) -> bool:
        return to in TRANSITIONS[self.state]

    def transition(self, to: str, reason: str) -> None:
        if to not in TRANSITIONS:
            raise TransitionError(f"internal error: unknown domain state '{to}'")
        if to not in TRANSITIONS[self.state]:
            raise TransitionError(f"internal error: invalid domain state transition "
                                  f"from '{self.state}' to '{to}'")
        if reason not in REASONS[to]:
            raise TransitionError(f"internal error: '{reason}' is not a reason for state '{to}'")
        old = self.state
        self.state, self.reason = to, reason
        if self.on_change is not None:
            self.on_change(old, to, reason)

    def move(self, to: str, reason: str) -> bool:
        """Transition unless already in ``to`` (events and replies race); True if moved."""
        if self.state == to:
            return False
        self.transition(to, reason)
        return True


# --------------------------------------------------------------------------------------
# logging (stderr is supervisor.log)
# --------------------------------------------------------------------------------------

def log(msg: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    try:
        sys.stderr.write(f"{stamp}.{int(time.time() * 1000) % 1000:03d} [{os.getpid()}] {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _describe_exit(code) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _load_async(no_ssl: bool = False) -> None:
    global asyncio, _qmp, _qmplib
    if asyncio is not None:
        return
    from vsh.kvm import qmp as qmp_helpers
    _qmplib = qmp_helpers.load(no_ssl=no_ssl)
    import asyncio as aio
    asyncio = aio
    _qmp = qmp_helpers


# --------------------------------------------------------------------------------------
# the supervisor
# --------------------------------------------------------------------------------------

class Supervisor:
    """Owns one QEMU process and its QMP connection; serves the control socket."""

    MAX_RESTARTS = 3            # crash restarts ...
    RESTART_WINDOW = 60.0       # ... per this many seconds
    QUIT_TIMEOUT = 5.0          # QMP quit → exit, before SIGKILL

    def __init__(self, rundir, spec: dict | None = None, notify_fd: int | None = None,
                 lock_fd: int | None = None, attach: bool = False):
        self.rundir = rt.RunDir(rundir)
        self.spec = spec if spec is not None else rt.load_json(self.rundir / rt.LAUNCH_FILE)
        if not self.spec or not self.spec.get("argv"):
            raise VshError(f"internal error: no launch description in {self.rundir / rt.LAUNCH_FILE}")
        self.name = self.spec["name"]
        self.lifecycle = dict(rt.DEFAULT_LIFECYCLE, **(self.spec.get("lifecycle") or {}))
        self.notify_fd = notify_fd
        self.lock_fd = lock_fd
        self.attach = attach
        self.pid = os.getpid()
        self.starttime = rt.proc_starttime(self.pid)
        self.boot_id = rt.boot_id()
        prev = rt.load_json(self.rundir / rt.STATE_FILE) if attach else None
        self.prev = prev or {}
        state, reason = "shutoff", "unknown"
        if prev and prev.get("state") in TRANSITIONS:
            state, reason = prev["state"], prev.get("reason", "unknown")
            if reason not in REASONS[state]:
                reason = "unknown"
        self.lc = Lifecycle(state, reason, on_change=self._on_transition)
        self.qemu_pid: int | None = None
        self.qemu_starttime: int | None = None
        self.pidfd: int | None = None
        self.is_child = False
        self.argv: list[str] = list(self.spec["argv"])
        self.started_at = self.prev.get("started_at")
        self.exit_status = None
        self.exit_signal = None
        self.console = {"console_pty": self.prev.get("console_pty"),
                        "console_socket": self.prev.get("console_socket")}
        self.balloon_kib = self.prev.get("balloon_kib")
        self.restarts: list[float] = []
        self._qmp_path: str | None = None
        self._qmp_sock = None
        self._qmp = None
        self._shutdown_action = "pause"
        self._events_task = None
        self._exit_fut = None
        self._stop_reason: str | None = None
        self._shutdown_event: dict | None = None
        self._shutdown_requested = False
        self._reboot_requested = False
        self._launching = False
        self._detaching = False
        self._final = None
        self._server = None
        self._waiters: list = []
        self._subscribers: set = set()
        self._inflight: set = set()
        self._tasks: set = set()

    # ---- state ------------------------------------------------------------------------

    @property
    def qmp_path(self) -> str:
        """QEMU's QMP socket: the argv's control monitor (bound by us), or RUNDIR/qmp.sock."""
        if self._qmp_path is None:
            self._qmp_path = self.prev.get("qmp_socket") if self.attach else None
            if not self._qmp_path:
                self._qmp_path = _qmp_helpers().qmp_socket_path(self.spec["argv"],
                                                                self.rundir / rt.QMP_SOCKET)
        return self._qmp_path

    def state_dict(self) -> dict:
        active = self.lc.state in rt.ACTIVE_STATES
        return {
            "name": self.name, "uuid": self.spec.get("uuid"), "id": self.spec.get("id"),
            "state": self.lc.state, "reason": self.lc.reason,
            "qemu_pid": self.qemu_pid if active else None,
            "qemu_starttime": self.qemu_starttime if active else None,
            "supervisor_pid": self.pid, "supervisor_starttime": self.starttime,
            "started_at": self.started_at, "boot_id": self.boot_id,
            "qmp_socket": str(self.qmp_path), "control_socket": str(self.rundir / rt.CONTROL_SOCKET),
            "console_log": str(self.rundir / rt.CONSOLE_LOG),
            "console_pty": self.console.get("console_pty") if active else None,
            "console_socket": self.console.get("console_socket") if active else None,
            "transient": bool(self.spec.get("transient")),
            "persistent": not self.spec.get("transient"),
            "exit_status": self.exit_status, "signal": self.exit_signal,
            "balloon_kib": self.balloon_kib, "lifecycle": self.lifecycle,
            "restarts": len(self.restarts), "updated_at": time.time(),
        }

    def write_state(self) -> None:
        rt.write_json_atomic(self.rundir / rt.STATE_FILE, self.state_dict())

    def _on_transition(self, old: str, new: str, reason: str) -> None:
        log(f"state {old} -> {new} ({reason})")
        self.write_state()
        for states, fut in list(self._waiters):
            if new in states and not fut.done():
                fut.set_result(None)
        self._publish({"event": "VSH_LIFECYCLE", "data": {"state": new, "reason": reason,
                                                          "previous": old},
                       "timestamp": time.time()})

    def _publish(self, event: dict) -> None:
        for sub in list(self._subscribers):
            if sub.full():
                continue        # a stalled listener loses events; others are unaffected
            sub.put_nowait(event)

    def report(self, error: VshError | None = None) -> None:
        """Tell the vsh that started us how the start went (once)."""
        if self.notify_fd is None:
            return
        if error is None:
            msg = {"ok": True, "state": self.state_dict()}
        else:
            msg = {"ok": False, "error": {"type": type(error).__name__, "lines": list(error.lines)}}
        try:
            os.write(self.notify_fd, (json.dumps(msg) + "\n").encode())
        except OSError:
            pass
        os.close(self.notify_fd)
        self.notify_fd = None

    # ---- launching QEMU (synchronous part; runs before asyncio is imported) -----------

    def spawn_qemu(self) -> None:
        """Start QEMU stopped (-S) as our child, with the QMP listener fd it inherits."""
        first = self.lc.state == "shutoff" and not self.restarts
        self.lc.transition("starting", "booted")
        self._stop_reason = None
        self._shutdown_event = None
        self._shutdown_requested = self._reboot_requested = False
        listener, self._qmp_sock = _qmp_helpers().listening_socket(self.qmp_path)
        try:
            self.argv = _qmp_helpers().qmp_argv(self.spec["argv"], self.qmp_path, listener.fileno())
            os.set_inheritable(listener.fileno(), True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_TRUNC if first else os.O_APPEND)
            log_fd = os.open(self.rundir / rt.QEMU_LOG, flags, 0o600)
            if first:   # console.log holds the current run (QEMU may be told to append)
                os.close(os.open(self.rundir / rt.CONSOLE_LOG,
                                 os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600))
            try:
                pid = os.posix_spawnp(self.argv[0], self.argv, os.environ, setpgroup=0,
                                      file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                                                    (os.POSIX_SPAWN_DUP2, log_fd, 1),
                                                    (os.POSIX_SPAWN_DUP2, log_fd, 2)])
            finally:
                os.close(log_fd)
        except OSError as exc:
            self._qmp_sock.close()
            self._qmp_sock = None
            self.lc.transition("shutoff", "failed")
            raise VshError(f"internal error: cannot execute '{self.argv[0]}': {exc.strerror}",
                           f"command: {_shell_join(self.argv)}") from None
        finally:
            listener.close()
        self.qemu_pid = pid
        self.is_child = True
        self.qemu_starttime = rt.proc_starttime(pid)
        self.started_at = time.time()
        self.exit_status = self.exit_signal = None
        self.pidfd = os.pidfd_open(pid)
        log(f"QEMU started, pid {pid}: {_shell_join(self.argv)}")
        self.write_state()

    # ---- the event loop -----------------------------------------------------------------

    def init_async(self) -> None:
        """Prepare the parts that need a running event loop (run() calls this)."""
        _load_async()
        self._final = asyncio.Event()

    async def run(self) -> int:
        self.init_async()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._detach, sig)
        try:
            await self._serve_control()
            if self.attach:
                await self._attach()
            else:
                await self._finish_launch()
        except VshError as exc:
            log("start failed: " + " | ".join(exc.lines))
            await self._abandon_launch()
            self.report(exc)
            await self._cleanup()
            return 1
        except Exception as exc:   # noqa: BLE001 - report anything rather than die silently
            import traceback
            log("start failed:\n" + traceback.format_exc())
            await self._abandon_launch()
            self.report(VshError(f"internal error: supervisor failed: {exc}"))
            await self._cleanup()
            return 1
        self.report()
        await self._final.wait()
        await self._cleanup()
        return 0

    async def _abandon_launch(self) -> None:
        """A launch that failed before _finish_launch() took QEMU over (e.g. the control
        socket could not be served): QEMU goes too, nothing is left running."""
        if self.attach or self.pidfd is None or self._exit_fut is not None:
            return      # re-attached QEMU stays; _finish_launch() cleans up after itself
        self._launching = True
        try:
            self._watch_qemu()
            log(f"killing QEMU pid {self.qemu_pid}: the launch failed")
            await self._kill_qemu(signal.SIGKILL)
        finally:
            self._launching = False
        await self._drop_qmp()
        if self.lc.state != "shutoff":
            self.lc.transition("shutoff", "failed")

    def _detach(self, sig) -> None:
        """SIGTERM/SIGINT: the supervisor leaves; QEMU keeps running (a later vsh re-attaches)."""
        log(f"{signal.Signals(sig).name}: supervisor exits, QEMU keeps running")
        self._detaching = True
        self._final.set()

    def _spawn_task(self, coro):
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _watch_qemu(self) -> None:
        loop = asyncio.get_running_loop()
        self._exit_fut = loop.create_future()
        loop.add_reader(self.pidfd, self._on_pidfd)

    def _on_pidfd(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.pidfd)
        os.close(self.pidfd)
        self.pidfd = None
        code = None
        if self.is_child:
            try:
                _, status = os.waitpid(self.qemu_pid, 0)
                code = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                pass
        if code is not None:
            self.exit_status = code if code >= 0 else None
            self.exit_signal = -code if code < 0 else None
        log(f"QEMU (pid {self.qemu_pid}) exited: {_describe_exit(code)}")
        if not self._exit_fut.done():
            self._exit_fut.set_result(code)
        if not self._launching:
            self._spawn_task(self._after_exit(code))

    async def _finish_launch(self, running_reason: str = "booted") -> None:
        """Connect QMP to the QEMU spawn_qemu() started, set the actions, and let it run."""
        self._launching = True
        ok = False
        try:
            self._watch_qemu()
            sock, self._qmp_sock = self._qmp_sock, None
            timeout = float(self.spec.get("timeout") or 30.0)
            try:
                self._qmp = await _qmp.connect(sock, timeout=timeout, name=self.name,
                                               abort=self._exit_fut)
            except _qmp.Aborted as exc:
                raise self._launch_failed(exc.args[0]) from None
            except Timeout:
                await self._kill_qemu()
                raise Timeout(f"QEMU for domain '{self.name}' did not answer on its QMP socket "
                              f"within {timeout:g} s", f"command: {_shell_join(self.argv)}",
                              *self._qemu_output()) from None
            except (_qmplib.QMPError, OSError) as exc:
                if await self._exited_within(2.0):
                    raise self._launch_failed(self._exit_fut.result()) from None
                await self._kill_qemu()
                raise VshError(f"internal error: cannot connect to QEMU's QMP socket: {exc}",
                               f"command: {_shell_join(self.argv)}") from None
            self._events_task = self._spawn_task(self._pump_events(self._qmp))
            await self._setup_qemu()
            self._plug_taps()
            first = self.spec.get("first_run") or {}      # restore / revert: once only
            if first.get("incoming"):
                await self._incoming(first["incoming"])
            if self.spec.get("paused"):
                self.lc.transition("paused", first.get("paused_reason") or "user")
            else:
                await self._exec("cont")
                self.lc.transition("running", first.get("running_reason") or running_reason)
            ok = True
            if first:
                self._forget_first_run()
        except Exception:
            if self._exit_fut.done() or await self._exited_within(0.2):
                err = self._launch_failed(self._exit_fut.result())
            else:
                err = None
                await self._kill_qemu()
            await self._drop_qmp()
            if self.lc.state != "shutoff":
                self.lc.transition("shutoff", self._stop_reason or "failed")
            if err is not None:
                raise err from None
            raise
        finally:
            self._launching = False
            if ok and self._exit_fut.done():       # QEMU died right after starting
                self._spawn_task(self._after_exit(self._exit_fut.result()))

    async def _setup_qemu(self) -> None:
        # on_poweroff=destroy: QEMU exits on guest power-off by itself (even if we are
        # gone); otherwise it pauses and we apply the action.  Panics always pause.
        reboot = "reset" if ACTION_KIND.get(self.lifecycle["on_reboot"]) == "restart" else "shutdown"
        shutdown = "poweroff" if ACTION_KIND.get(self.lifecycle["on_poweroff"]) == "destroy" else "pause"
        try:
            await self._exec("set-action", {"shutdown": shutdown, "reboot": reboot, "panic": "pause"})
            self._shutdown_action = shutdown
        except VshError as exc:
            log(f"warning: set-action failed, lifecycle actions limited: {exc}")
        try:
            self.console = _qmp.parse_chardevs(await self._exec("query-chardev"))
        except VshError as exc:
            log(f"warning: query-chardev failed: {exc}")
        try:
            from vsh.kvm import netacct     # traffic of user-mode NICs (domifstat, domifaddr)
            await netacct.setup(self)
        except Exception as exc:   # noqa: BLE001 - accounting must never stop a start
            log(f"warning: traffic accounting unavailable: {exc}")

    def _plug_taps(self) -> None:
        """Plug the taps QEMU made into their bridges before the guest runs (a failure fails the start)."""
        taps = self.spec.get("taps") or []
        if not taps:
            return
        from vsh.kvm import hostnet

        for tap in taps:
            hostnet.attach_tap(tap["dev"], tap["bridge"], tap.get("mtu"))
            log(f"tap {tap['dev']} plugged into bridge {tap['bridge']}")

    async def _set_shutdown_action(self, action: str) -> None:
        if action != self._shutdown_action:
            await self._exec("set-action", {"shutdown": action})
            self._shutdown_action = action

    def _launch_failed(self, code) -> VshError:
        out = self._qemu_output()
        last = next((line.strip() for line in reversed(out[1:]) if line.strip()), "")
        first = f"internal error: QEMU exited while starting domain '{self.name}' ({_describe_exit(code)})"
        if last:
            first += f": {last}"
        return VshError(first, f"command: {_shell_join(self.argv)}", *out)

    def _qemu_output(self) -> list[str]:
        lines = [line for line in rt.tail(self.rundir / rt.QEMU_LOG, 20)
                 if not line.startswith("char device redirected to")]
        if not lines:
            return []
        return ["QEMU printed (last lines):"] + ["  " + line for line in lines]

    async def _exited_within(self, timeout: float) -> bool:
        if self._exit_fut is None:
            return False
        try:
            await asyncio.wait_for(asyncio.shield(self._exit_fut), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def _kill_qemu(self, sig=signal.SIGKILL, timeout: float = 5.0) -> bool:
        """Signal QEMU and wait for it to exit; True if it did."""
        if self._exit_fut is None or self._exit_fut.done() or self.pidfd is None:
            return True
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass
        return await self._exited_within(timeout)

    async def _drop_qmp(self) -> None:
        if self._events_task is not None:
            self._events_task.cancel()
            self._events_task = None
        qmp, self._qmp = self._qmp, None
        if qmp is not None:
            try:
                await asyncio.wait_for(qmp.disconnect(), 2.0)
            except BaseException as exc:   # noqa: BLE001 - the peer is gone; nothing to save
                if isinstance(exc, asyncio.CancelledError):
                    raise
        if self._qmp_sock is not None:
            self._qmp_sock.close()
            self._qmp_sock = None

    async def _exec(self, cmd: str, args: dict | None = None, timeout: float = 30.0):
        if self._qmp is None:
            raise self._not_running()
        return await _qmp.execute(self._qmp, cmd, args, timeout)

    # ---- attaching to a QEMU whose supervisor died --------------------------------------

    async def _attach(self) -> None:
        st = self.prev
        pid = st.get("qemu_pid")
        if not rt.pid_alive(pid, st.get("qemu_starttime")):
            raise self._not_running()
        try:
            self.pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            raise self._not_running() from None
        self.qemu_pid, self.qemu_starttime = pid, st.get("qemu_starttime")
        self.is_child = False
        if not rt.pid_alive(pid, self.qemu_starttime):
            raise self._not_running()
        log(f"attaching to QEMU pid {pid} (previous supervisor {st.get('supervisor_pid')} is gone)")
        self._launching = True
        try:
            self._watch_qemu()
            try:
                self._qmp = await _qmp.connect(str(self.qmp_path), timeout=10.0, name=self.name,
                                               abort=self._exit_fut)
            except _qmp.Aborted:
                raise self._not_running() from None
            except (_qmplib.QMPError, OSError, Timeout) as exc:
                raise VshError(f"internal error: cannot re-attach to domain '{self.name}': "
                               f"QMP socket {self.qmp_path}: {exc}") from None
            self._events_task = self._spawn_task(self._pump_events(self._qmp))
            await self._setup_qemu()
            status = (await self._exec("query-status")).get("status")
        except VshError:
            await self._drop_qmp()
            if self._exit_fut.done():
                self._launching = False
                self._spawn_task(self._after_exit(self._exit_fut.result()))
            raise
        finally:
            self._launching = False
        if self._exit_fut.done():
            self._spawn_task(self._after_exit(self._exit_fut.result()))
            return
        log(f"attached; QEMU status '{status}', recorded state '{self.lc.state}'")
        if status == "running":
            self.lc.move("running", "unpaused" if self.lc.state == "paused" else
                         (self.lc.reason if self.lc.state == "running" else "booted"))
        elif status == "prelaunch" and self.lc.state == "starting" and not self.spec.get("paused"):
            await self._exec("cont")
            self.lc.move("running", "booted")
        elif status == "shutdown":
            self._shutdown_event = {"guest": True, "reason": "guest-shutdown"}
            self._spawn_task(self._on_shutdown(self._shutdown_event))
        elif status == "guest-panicked":
            self._spawn_task(self._on_panic({}))
        elif self.lc.state != "paused":
            self.lc.move("paused", "user")
        self.write_state()

    # ---- QEMU events ---------------------------------------------------------------------

    async def _pump_events(self, qmp) -> None:
        listener = _qmplib.EventListener()
        qmp.register_listener(listener)
        try:
            async for msg in listener:
                event = dict(msg)
                self._publish(event)
                try:
                    await self._on_event(event.get("event"), event.get("data") or {})
                except asyncio.CancelledError:
                    raise
                except VshError as exc:
                    log(f"handling {event.get('event')}: " + " | ".join(exc.lines))
                except Exception:   # noqa: BLE001 - one bad event must not stop the pump
                    import traceback
                    log(f"handling {event.get('event')}:\n" + traceback.format_exc())
        finally:
            qmp.remove_listener(listener)

    async def _on_event(self, name: str, data: dict) -> None:
        if name == "SHUTDOWN":
            log(f"event SHUTDOWN {data}")
            self._shutdown_event = data
            await self._on_shutdown(data)
        elif name in ("STOP", "RESUME"):
            # Events may be stale by the time they are handled (the pump waits while a
            # lifecycle action resets and continues the guest): ask QEMU what is true.
            await self._sync_runstate()
        elif name == "GUEST_PANICKED":
            log(f"event GUEST_PANICKED {data}")
            await self._on_panic(data)
        elif name == "RESET":
            log(f"event RESET {data}")
        elif name == "BALLOON_CHANGE":
            self.balloon_kib = int(data.get("actual", 0)) // 1024
            self.write_state()
        elif name == "DEVICE_DELETED":
            log(f"event DEVICE_DELETED {data}")

    async def _sync_runstate(self) -> None:
        """Make running/paused agree with QEMU's run state (query-status)."""
        if self.lc.state not in ("running", "paused"):
            return
        status = (await self._exec("query-status")).get("status")
        if self.lc.state not in ("running", "paused"):
            return
        if status == "running":
            self.lc.move("running", "unpaused")
        elif status not in ("shutdown", "guest-panicked"):   # those have their own events
            self.lc.move("paused", _PAUSE_REASONS.get(status, "user"))

    async def _on_shutdown(self, data: dict) -> None:
        reason = data.get("reason", "")
        if reason in _QUITTING:
            return      # QEMU exits whatever the shutdown action: _after_exit() finishes
        if self.lc.state in ("running", "paused"):
            requested = self._shutdown_requested or self._reboot_requested
            self.lc.transition("shutdown", "user" if requested else "unknown")
        if reason in _RESETS:       # a reset turned into a shutdown (on_reboot is not restart)
            action = self.lifecycle["on_reboot"]
        elif self._reboot_requested:
            self._reboot_requested = False
            action = "restart"
        else:
            action = self.lifecycle["on_poweroff"]
        self._shutdown_requested = False
        if self._shutdown_action == "poweroff":
            # QEMU exits by itself (on_poweroff=destroy, or on_reboot=destroy)
            self._stop_reason = "shutdown"
            log(f"{reason or 'shutdown'}: QEMU powers off")
            return
        log(f"{reason or 'shutdown'}: applying '{action}'")
        await self._apply(action, stop_reason="shutdown", restart_reason="booted",
                          preserve=("paused", "shutdown"))

    async def _on_panic(self, data: dict) -> None:
        action = self.lifecycle["on_crash"]
        log(f"guest panicked: applying on_crash '{action}'")
        await self._apply(action, stop_reason="crashed", restart_reason="crashed",
                          preserve=("crashed", "panicked"))

    async def _apply(self, action: str, stop_reason: str, restart_reason: str, preserve) -> None:
        kind = ACTION_KIND.get(action, "destroy")
        if kind == "destroy":
            self._stop_reason = stop_reason
            await self._quit()
        elif kind == "restart":
            await self._exec("system_reset")
            await self._exec("cont")
            self._shutdown_event = None         # the shutdown is over: a later exit is new
            self.lc.move("running", restart_reason)
            if ACTION_KIND.get(self.lifecycle["on_poweroff"]) == "destroy":
                await self._set_shutdown_action("poweroff")     # after a fake reboot
        else:
            self.lc.move(*preserve)

    async def _quit(self) -> None:
        """Ask QEMU to quit (QMP), SIGKILL if it has not exited after QUIT_TIMEOUT."""
        try:
            await self._exec("quit", timeout=self.QUIT_TIMEOUT)
        except VshError:
            pass        # the reply races the exit
        if not await self._exited_within(self.QUIT_TIMEOUT):
            log("QEMU did not quit; SIGKILL")
            await self._kill_qemu(signal.SIGKILL)

    async def _after_exit(self, code) -> None:
        """QEMU is gone (not during launch): settle the state, restart on crash if asked."""
        reason = self._stop_reason
        if reason is None:
            sd = self._shutdown_event
            if sd is not None and code in (0, None):
                reason = "shutdown" if sd.get("guest") else "destroyed"
            else:
                reason = "crashed"
        await self._drop_qmp()
        if self.lc.state != "shutoff":
            self.lc.transition("shutoff", reason)
        if reason == "crashed" and ACTION_KIND.get(self.lifecycle["on_crash"]) == "restart" \
                and not self._detaching:
            now = time.monotonic()
            self.restarts = [t for t in self.restarts if now - t < self.RESTART_WINDOW]
            if len(self.restarts) >= self.MAX_RESTARTS:
                log(f"QEMU crashed {len(self.restarts) + 1} times within "
                    f"{self.RESTART_WINDOW:g} s; not restarting it again")
            else:
                self.restarts.append(now)
                log("on_crash=restart: starting QEMU again")
                try:
                    self.spawn_qemu()
                    await self._finish_launch(running_reason="booted")
                    return
                except VshError as exc:
                    log("restart failed: " + " | ".join(exc.lines))
        self._final.set()

    # ---- the control socket -------------------------------------------------------------

    async def _serve_control(self) -> None:
        path = self.rundir / rt.CONTROL_SOCKET
        old = os.umask(0o177)
        try:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            self._server = await asyncio.start_unix_server(self._handle, path=str(path),
                                                           limit=1 << 20)
            os.chmod(path, 0o600)
        except OSError as exc:
            raise VshError(f"internal error: cannot serve the control socket {path}: "
                           f"{exc.strerror or exc}") from None
        finally:
            os.umask(old)

    async def _handle(self, reader, writer) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    req = json.loads(line)
                    op = str(req["op"])
                except (ValueError, KeyError, TypeError):
                    writer.write(_reply_error(InvalidArgument("malformed control request")))
                    await writer.drain()
                    continue
                if op == "subscribe":
                    await self._subscribe(req, writer)
                    break
                fut = asyncio.get_running_loop().create_future()
                self._inflight.add(fut)
                try:
                    handler = getattr(self, "op_" + op, None)
                    if handler is None:
                        raise InvalidArgument(f"unknown control operation '{op}'")
                    result = await handler(req)
                    data = json.dumps({"ok": True, "result": result}).encode() + b"\n"
                except VshError as exc:
                    data = _reply_error(exc)
                except Exception as exc:   # noqa: BLE001
                    import traceback
                    log(f"op {op} failed:\n" + traceback.format_exc())
                    data = _reply_error(VshError(f"internal error: {op}: {exc}"))
                finally:
                    self._inflight.discard(fut)
                    fut.set_result(None)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    async def _subscribe(self, req: dict, writer) -> None:
        names = set(req.get("events") or ())
        queue = asyncio.Queue(maxsize=1000)
        self._subscribers.add(queue)
        try:
            writer.write(json.dumps({"ok": True, "result": self.state_dict()}).encode() + b"\n")
            await writer.drain()
            while True:
                event = await queue.get()
                if event is None:
                    break
                if names and event.get("event") not in names:
                    continue
                writer.write(json.dumps(event).encode() + b"\n")
                await writer.drain()
        finally:
            self._subscribers.discard(queue)

    # ---- operations ---------------------------------------------------------------------

    def _not_running(self) -> OperationInvalid:
        return OperationInvalid(f"internal error: domain '{self.name}' not running")

    def _require(self, *states: str) -> None:
        if self.lc.state == "starting":
            raise OperationInvalid(f"internal error: domain '{self.name}' is still starting")
        if self.lc.state not in states or self._qmp is None:
            raise self._not_running()

    async def _wait_for(self, states, timeout: float) -> None:
        if self.lc.state in states:
            return
        fut = asyncio.get_running_loop().create_future()
        entry = (frozenset(states), fut)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"domain '{self.name}' did not reach state {'/'.join(states)} within "
                          f"{timeout:g} s (it is {self.lc.state})") from None
        finally:
            self._waiters.remove(entry)

    async def op_status(self, req):
        return self.state_dict()

    async def op_wait(self, req):
        states = req.get("states") or ["shutoff"]
        unknown = [s for s in states if s not in TRANSITIONS]
        if unknown:
            raise InvalidArgument(f"unknown domain state '{unknown[0]}'")
        await self._wait_for(states, float(req.get("timeout_s") or 60.0))
        return self.state_dict()

    async def op_shutdown(self, req):
        self._require("running", "paused", "shutdown")
        self._shutdown_requested = True
        await self._exec("system_powerdown")
        return self.state_dict()

    async def op_reboot(self, req):
        self._require("running", "paused")
        mode = req.get("mode") or "acpi"
        if mode == "reset":
            await self._exec("system_reset")
        elif mode == "acpi":
            await self._set_shutdown_action("pause")    # the power-off must not end QEMU
            self._reboot_requested = True
            await self._exec("system_powerdown")
        else:
            raise InvalidArgument(f"unknown reboot mode '{mode}' (use acpi or reset)")
        return self.state_dict()

    async def op_reset(self, req):
        self._require("running", "paused", "shutdown", "crashed")
        await self._exec("system_reset")
        if self.lc.state in ("crashed", "shutdown"):
            await self._exec("cont")
            self.lc.move("running", "crashed" if self.lc.state == "crashed" else "booted")
        return self.state_dict()

    async def op_suspend(self, req):
        self._require("running", "paused")
        if self.lc.state == "running":
            await self._exec("stop")
            self.lc.move("paused", "user")
        return self.state_dict()

    async def op_resume(self, req):
        self._require("running", "paused", "crashed", "shutdown")
        if self.lc.state != "paused":
            raise OperationInvalid(f"internal error: domain '{self.name}' not paused")
        await self._exec("cont")
        self.lc.move("running", "unpaused")
        return self.state_dict()

    async def op_destroy(self, req):
        if self.lc.state == "shutoff":
            raise OperationInvalid("Requested operation is not valid: domain is not running")
        graceful = bool(req.get("graceful"))
        timeout = float(req.get("timeout_s") or 10.0)
        if self._exit_fut is not None and not self._exit_fut.done():
            self._stop_reason = "destroyed"
            log(f"destroy{' (graceful)' if graceful else ''}: SIGTERM to QEMU pid {self.qemu_pid}")
            if not await self._kill_qemu(signal.SIGTERM, timeout):
                if graceful:
                    self._stop_reason = None
                    raise Timeout(f"QEMU (pid {self.qemu_pid}) did not exit within {timeout:g} s "
                                  "of SIGTERM; use destroy without --graceful")
                log("QEMU ignored SIGTERM; SIGKILL")
                if not await self._kill_qemu(signal.SIGKILL, 5.0):
                    raise VshError(f"internal error: QEMU (pid {self.qemu_pid}) did not exit "
                                   "after SIGKILL (stuck in the kernel?)")
        await self._wait_for(["shutoff"], 10.0)
        return self.state_dict()

    async def op_qmp(self, req):
        self._require("running", "paused", "shutdown", "crashed")
        cmd, args = str(req.get("command")), req.get("arguments") or None
        timeout = float(req.get("timeout_s") or 30.0)
        if not req.get("raw"):
            return await self._exec(cmd, args, timeout=timeout)
        # passthrough: QEMU's reply as it is, errors included (qemu-monitor-command)
        try:
            return {"return": await asyncio.wait_for(self._qmp.execute(cmd, args), timeout)}
        except _qmplib.ExecuteError as exc:
            return {"error": {"class": exc.error_class, "desc": str(exc)}}
        except asyncio.TimeoutError:
            raise Timeout(f"QEMU did not answer the QMP command '{cmd}' within {timeout:g} s") from None
        except _qmplib.QMPError as exc:
            raise OperationInvalid(f"internal error: QMP connection lost during '{cmd}': "
                                   f"{exc or type(exc).__name__}") from None

    async def op_hmp(self, req):
        self._require("running", "paused", "shutdown", "crashed")
        return await self._exec("human-monitor-command", {"command-line": str(req.get("line", ""))},
                                timeout=float(req.get("timeout_s") or 30.0))

    async def op_balloon(self, req):
        self._require("running", "paused")
        kib = int(req.get("kib", 0))
        if kib <= 0:
            raise InvalidArgument(f"invalid memory size {kib} KiB")
        await self._exec("balloon", {"value": kib * 1024})
        return self.state_dict()

    async def op_setvcpus(self, req):
        self._require("running", "paused")
        count = int(req.get("count", 0))
        slots = await self._exec("query-hotpluggable-cpus")
        if count < 1 or count > len(slots):
            raise InvalidArgument(f"requested vcpus is greater than max allowable vcpus for the "
                                  f"live domain: {count} > {len(slots)}" if count > 1 else
                                  f"invalid vCPU count {count}")
        online = [s for s in slots if s.get("qom-path")]
        offline = [s for s in slots if not s.get("qom-path")]
        if count > len(online):
            for slot in offline[:count - len(online)]:
                props = slot.get("props") or {}
                dev_id = "vsh-vcpu" + "-".join(str(props[k]) for k in sorted(props))
                await self._exec("device_add", dict(props, driver=slot["type"], id=dev_id))
        elif count < len(online):
            removable = [s for s in online if "/peripheral/" in s["qom-path"]]
            need = len(online) - count
            if len(removable) < need:
                raise OperationInvalid(f"internal error: only {len(removable)} hot-plugged vCPUs "
                                       f"can be unplugged")
            for slot in removable[-need:]:
                await self._exec("device_del", {"id": slot["qom-path"].rsplit("/", 1)[1]})
        return {"vcpus": count, "max": len(slots)}

    # ---- save to a file, restore from one, QMP jobs (vsh.commands.snapshot) ------------

    async def _send_fd(self, fd: int, name: str) -> None:
        """Hand QEMU a file descriptor (SCM_RIGHTS) under ``name`` (QMP ``getfd``)."""
        if getattr(self, "_fd_lock", None) is None:
            self._fd_lock = asyncio.Lock()
        async with self._fd_lock:
            self._qmp.send_fd_scm(fd)
            await self._exec("getfd", {"fdname": name})

    async def _migrate(self, fd: int, outgoing: bool, timeout: float) -> None:
        """Migrate the guest into ``fd`` (save) or out of it (restore); wait for the end."""
        what = "save" if outgoing else "restore"
        listener = _qmplib.EventListener(("MIGRATION",))
        with self._qmp.listen(listener):
            await self._exec("migrate-set-capabilities",
                             {"capabilities": [{"capability": "events", "state": True}]})
            if outgoing:        # QEMU's default limit (32 MiB/s) is meant for networks
                await self._exec("migrate-set-parameters", {"max-bandwidth": 1 << 62})
            await self._send_fd(fd, "vsh-migration")
            await self._exec("migrate" if outgoing else "migrate-incoming", {"uri": "fd:vsh-migration"})
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            status = None
            while status not in ("completed", "failed", "cancelled"):
                left = deadline - loop.time()
                getter = asyncio.ensure_future(listener.get())
                waits = {getter} | ({self._exit_fut} if self._exit_fut is not None else set())
                done, _ = await asyncio.wait(waits, timeout=max(left, 0),
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    if self._exit_fut is not None and self._exit_fut.done():
                        raise VshError(f"operation failed: {what} of domain '{self.name}' failed: QEMU "
                                       f"exited ({_describe_exit(self._exit_fut.result())})",
                                       *self._qemu_output())
                    if outgoing:
                        await self._exec("migrate_cancel")
                    raise Timeout(f"the {what} of domain '{self.name}' did not finish within "
                                  f"{timeout:g} s")
                status = (getter.result().get("data") or {}).get("status")
        if status != "completed":
            info = await self._exec("query-migrate")
            raise VshError(f"operation failed: {what} of domain '{self.name}' failed: "
                           f"{info.get('error-desc') or status}")

    async def _incoming(self, spec: dict) -> None:
        """Load the guest from a save image (QEMU was started with ``-incoming defer``)."""
        from vsh.kvm import saveimage
        path = str(spec["path"])
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise VshError(f"Failed to open file '{path}': {exc.strerror}") from None
        try:
            os.lseek(fd, int(spec.get("offset") or 0), os.SEEK_SET)
            await self._migrate(fd, outgoing=False, timeout=float(spec.get("timeout") or 600.0))
            if spec.get("drop_cache"):
                saveimage.drop_page_cache(fd)
        finally:
            os.close(fd)

    def _forget_first_run(self) -> None:
        """A restore or revert happens once: a crash restart boots the plain argv."""
        first = self.spec.pop("first_run", None) or {}
        drop = list(first.get("drop_argv") or [])
        argv = list(self.spec["argv"])
        for i in range(len(argv) - len(drop) + 1) if drop else ():
            if argv[i:i + len(drop)] == drop:
                del argv[i:i + len(drop)]
                break
        self.spec["argv"] = argv
        try:
            rt.write_json_atomic(self.rundir / rt.LAUNCH_FILE, self.spec)
        except OSError as exc:
            log(f"warning: cannot rewrite {rt.LAUNCH_FILE}: {exc}")

    def _settle(self, state: str, reason: str) -> None:
        """Move to ``state`` with ``reason`` (or only change the reason if already there)."""
        if self.lc.state != state:
            self.lc.transition(state, reason)
        elif self.lc.reason != reason and reason in REASONS[state]:
            self.lc.reason = reason
            self.write_state()

    async def op_save(self, req):
        """Save the guest into a save image and stop: pause, migrate into the file (whose
        header vsh wrote), make it durable and complete, rename it into place, quit QEMU."""
        self._require("running", "paused")
        from vsh.kvm import saveimage
        tmp, final = str(req["tmp"]), str(req["final"])
        timeout = float(req.get("timeout_s") or 600.0)
        was_running = self.lc.state == "running"
        if was_running:
            await self._exec("stop")
            self._settle("paused", "saving")
        fd = None
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CLOEXEC)
            os.lseek(fd, int(req["offset"]), os.SEEK_SET)
            await self._migrate(fd, outgoing=True, timeout=timeout)
            saveimage.complete(fd, drop_cache=bool(req.get("bypass_cache")))
            os.close(fd)
            fd = None
            os.rename(tmp, final)
            dfd = os.open(os.path.dirname(final) or ".", os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except BaseException:
            if fd is not None:
                os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if was_running and self._qmp is not None:
                try:
                    await self._exec("cont")
                    self._settle("running", "unpaused")
                except VshError as exc:
                    log("resuming after a failed save: " + " | ".join(exc.lines))
            raise
        log(f"saved to {final}")
        self._stop_reason = "saved"
        await self._quit()
        await self._wait_for(["shutoff"], 10.0)
        return self.state_dict()

    async def op_job(self, req):
        """Start a QMP job (``command`` with ``arguments`` that name its ``job-id``) and wait
        until it ends; dismiss it; raise its error.  ``existing``: only wait for a job of
        that id if there is one (result ``{"status": "absent"}`` if not).  ``stop``: pause
        the guest first.  ``complete``: send job-complete when the job is ready.
        ``after``: ``{"state": "running"|"paused", "reason": ...}`` to end in."""
        self._require("running", "paused")
        args = dict(req.get("arguments") or {})
        job_id = str(req.get("job_id") or args.get("job-id"))
        timeout = float(req.get("timeout_s") or 600.0)
        loop = asyncio.get_running_loop()
        listener = _qmplib.EventListener(("JOB_STATUS_CHANGE",))
        with self._qmp.listen(listener):
            if req.get("stop") and self.lc.state == "running":
                await self._exec("stop")
                self._settle("paused", str(req.get("stop_reason") or "user"))
            if not req.get("existing"):
                await self._exec(str(req["command"]), args)
            status = next((j.get("status") for j in await self._exec("query-jobs")
                           if j.get("id") == job_id), None)
            if status is None:
                return {"status": "absent" if req.get("existing") else "null"}
            deadline = loop.time() + timeout
            while status not in ("concluded", "null"):
                if status == "ready" and req.get("complete"):
                    await self._exec("job-complete", {"id": job_id})
                left = deadline - loop.time()
                try:
                    if left <= 0:
                        raise asyncio.TimeoutError
                    event = await asyncio.wait_for(listener.get(), left)
                except asyncio.TimeoutError:
                    raise Timeout(f"the QEMU job '{job_id}' did not finish within {timeout:g} s") from None
                data = event.get("data") or {}
                if data.get("id") == job_id:
                    status = data.get("status")
        error = None
        for job in await self._exec("query-jobs"):
            if job.get("id") == job_id:
                error = job.get("error")
                if job.get("status") == "concluded":
                    await self._exec("job-dismiss", {"id": job_id})
        if error:
            raise VshError(f"internal error: {req.get('what') or job_id}: {error}")
        after = req.get("after") or {}
        if after.get("state") in ("running", "paused"):
            running = (await self._exec("query-status")).get("running")
            if after["state"] == "running" and not running:
                await self._exec("cont")
            elif after["state"] == "paused" and running:
                await self._exec("stop")
            self._settle(after["state"], str(after.get("reason") or
                                            ("unpaused" if after["state"] == "running" else "user")))
        return {"status": "concluded", "state": self.state_dict()}

    # ---- devices of the running domain (vsh.kvm.hotplug) --------------------------------

    async def op_attach_device(self, req):
        self._require("running", "paused")
        from vsh.kvm import hotplug
        return await hotplug.attach(self, str(req.get("xml") or ""))

    async def op_detach_device(self, req):
        self._require("running", "paused")
        from vsh.kvm import hotplug
        return await hotplug.detach(self, str(req.get("xml") or ""),
                                    float(req.get("wait_s") or hotplug.DETACH_TIMEOUT))

    async def op_change_media(self, req):
        self._require("running", "paused")
        from vsh.kvm import hotplug
        return await hotplug.change_media(self, str(req.get("target") or ""), req.get("xml") or None,
                                          force=bool(req.get("force")),
                                          timeout=float(req.get("wait_s") or hotplug.TRAY_TIMEOUT))

    # ---- ending -------------------------------------------------------------------------

    async def _cleanup(self) -> None:
        if self._server is not None:
            self._server.close()
        for states, fut in list(self._waiters):
            if not fut.done():
                fut.set_exception(OperationInvalid(
                    f"internal error: domain '{self.name}' stopped "
                    f"({self.lc.state}, {self.lc.reason})" if not self._detaching else
                    f"internal error: the supervisor of domain '{self.name}' is exiting"))
        for sub in list(self._subscribers):
            try:
                sub.put_nowait(None)
            except asyncio.QueueFull:
                pass
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=3.0)
        await asyncio.sleep(0)
        if self._detaching:
            if self._events_task is not None:
                self._events_task.cancel()
        else:
            await self._drop_qmp()
            if self.lc.state == "shutoff":
                try:
                    os.unlink(self.qmp_path)
                except FileNotFoundError:
                    pass
        try:
            os.unlink(self.rundir / rt.CONTROL_SOCKET)
        except OSError:
            pass        # gone already (or never ours: a start that could not serve it)
        log("supervisor exits" + (" (QEMU left running)" if self._detaching else ""))


#: query-status run states → libvirt's paused reasons.
_PAUSE_REASONS = {"io-error": "ioerror", "watchdog": "watchdog", "prelaunch": "user",
                  "internal-error": "unknown", "debug": "user", "suspended": "user",
                  "save-vm": "snapshot", "restore-vm": "from snapshot",
                  "finish-migrate": "migration", "postmigrate": "migration"}
#: SHUTDOWN reasons after which QEMU exits even with ``set-action shutdown=pause``.
_QUITTING = frozenset({"host-qmp-quit", "host-signal"})
#: SHUTDOWN reasons that are resets (with ``set-action reboot=shutdown``).
_RESETS = frozenset({"guest-reset", "host-qmp-system-reset"})


def _reply_error(exc: VshError) -> bytes:
    return json.dumps({"ok": False, "error": {"type": type(exc).__name__,
                                              "lines": list(exc.lines)}}).encode() + b"\n"


def _shell_join(argv) -> str:
    import shlex
    return shlex.join(str(a) for a in argv)


def _qmp_helpers():
    from vsh.kvm import qmp as helpers
    return helpers


# --------------------------------------------------------------------------------------
# process entry
# --------------------------------------------------------------------------------------

def _parse(args: list[str]) -> dict:
    opts = {"attach": False, "notify_fd": None, "lock_fd": None, "rundir": None, "foreground": False}
    it = iter(args)
    for arg in it:
        if arg == "--attach":
            opts["attach"] = True
        elif arg == "--foreground":
            opts["foreground"] = True
        elif arg in ("--rundir", "--notify-fd", "--lock-fd"):
            value = next(it)
            key = arg[2:].replace("-", "_")
            opts[key] = value if key == "rundir" else int(value)
        else:
            raise SystemExit(f"vsh.kvm.supervisor: unknown argument {arg!r}")
    if not opts["rundir"]:
        raise SystemExit("vsh.kvm.supervisor: --rundir is required")
    return opts


def main(args: list[str] | None = None) -> int:
    opts = _parse(sys.argv[1:] if args is None else args)
    if not opts["foreground"] and os.fork() > 0:
        os._exit(0)         # the middle process: lets the starting vsh reap it at once
    os.umask(0o077)
    for fd in (opts["notify_fd"], opts["lock_fd"]):
        if fd is not None:
            os.set_inheritable(fd, False)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        sup = Supervisor(opts["rundir"], notify_fd=opts["notify_fd"], lock_fd=opts["lock_fd"],
                         attach=opts["attach"])
    except VshError as exc:
        if opts["notify_fd"] is not None:
            os.write(opts["notify_fd"], _reply_error(exc))
        log(" | ".join(exc.lines))
        return 1
    log(f"supervisor for domain '{sup.name}' ({'attach' if sup.attach else 'launch'})")
    if not sup.attach:
        try:
            sup.spawn_qemu()        # QEMU initialises while we import asyncio and qemu.qmp
        except VshError as exc:
            log(" | ".join(exc.lines))
            sup.report(exc)
            return 1
    _load_async(no_ssl=True)
    return asyncio.run(sup.run())


if __name__ == "__main__":
    sys.exit(main())
