"""The Supervisor: one object per running domain that owns QEMU (:mod:`.qemu`), applies
the lifecycle (:mod:`.lifecycle`), serves the control socket (:mod:`.control`) and runs
long jobs (:mod:`.jobs`); here its state, its reports and its event loop.
"""

from __future__ import annotations

import json
import os
import signal
import time

from vsh.core import runtime as rt
from vsh.core.errors import OperationInvalid, VshError
from vsh.kvm import perf
from vsh.kvm.supervisor import aio
from vsh.kvm.supervisor.control import ControlServer
from vsh.kvm.supervisor.jobs import Jobs
from vsh.kvm.supervisor.lifecycle import DEFAULT_LIFECYCLE, REASONS, TRANSITIONS, Lifecycle, LifecycleEvents
from vsh.kvm.supervisor.log import log
from vsh.kvm.supervisor.qemu import QemuProcess


class Supervisor(QemuProcess, LifecycleEvents, ControlServer, Jobs):
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
        self.lifecycle = dict(DEFAULT_LIFECYCLE, **(self.spec.get("lifecycle") or {}))
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
        self.swtpm_pids: list[tuple[int, str]] = []   # (pid, socket) of this run's swtpm children
        self.cgroups: list[str] = []       # QEMU's cgroup directories (vsh.kvm.cgroup)
        self._cgroup_error: str | None = None     # why QEMU got no cgroup of its own (logged)
        self.perf = perf.Counters()        # the perf counters held on QEMU (vsh.kvm.perf)
        self.is_child = False
        self.argv: list[str] = list(self.spec["argv"])
        self.started_at = self.prev.get("started_at")
        self.exit_status = None
        self.exit_signal = None
        self.console = {"console_pty": self.prev.get("console_pty"),
                        "console_socket": self.prev.get("console_socket"),
                        "chardevs": self.prev.get("chardevs")}
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
        # a shutdown or ACPI reboot asked for and not yet seen through (kept in state.json:
        # a supervisor that re-attaches finishes it)
        pending = self.prev.get("pending") if attach else None
        self._shutdown_requested = pending == "shutdown"
        self._reboot_requested = pending == "reboot"
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
                self._qmp_path = aio.qmp_helpers().qmp_socket_path(self.spec["argv"],
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
            "chardevs": self.console.get("chardevs") if active else None,
            "transient": bool(self.spec.get("transient")),
            "persistent": not self.spec.get("transient"),
            "exit_status": self.exit_status, "signal": self.exit_signal,
            "balloon_kib": self.balloon_kib, "lifecycle": self.lifecycle,
            "restarts": len(self.restarts), "updated_at": time.time(),
            "job": getattr(self, "job", None),
            "perf": self.perf.enabled if active else [],
            "pending": "reboot" if self._reboot_requested else
                       "shutdown" if self._shutdown_requested else None,
        }

    def write_state(self) -> None:
        rt.write_json_atomic(self.rundir / rt.STATE_FILE, self.state_dict())

    def _stopping(self, reason: str | None) -> None:
        """QEMU is about to be told to stop for ``reason`` (None: it is not, after all): say so
        in memory and durably (:func:`vsh.core.runtime.record_stop`), before it happens."""
        self._stop_reason = reason
        if self.qemu_pid is None:
            return
        try:
            if reason is None:
                rt.forget_stop(self.rundir)
            else:
                rt.record_stop(self.rundir, reason, self.qemu_pid, self.qemu_starttime)
        except OSError as exc:
            log(f"warning: cannot record why QEMU stops: {exc}")

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

    # ---- the event loop -----------------------------------------------------------------

    def init_async(self) -> None:
        """Prepare the parts that need a running event loop (run() calls this)."""
        aio.load()
        self._final = aio.asyncio.Event()

    async def run(self) -> int:
        self.init_async()
        loop = aio.asyncio.get_running_loop()
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

    def _detach(self, sig) -> None:
        """SIGTERM/SIGINT: the supervisor leaves; QEMU keeps running (a later vsh re-attaches)."""
        log(f"{signal.Signals(sig).name}: supervisor exits, QEMU keeps running")
        self._detaching = True
        self._final.set()

    def _spawn_task(self, coro):
        task = aio.asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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
            except aio.asyncio.QueueFull:
                pass
        if self._inflight:
            await aio.asyncio.wait(list(self._inflight), timeout=3.0)
        await aio.asyncio.sleep(0)
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
                self._release_what_qemu_held()      # done already unless QEMU's exit went unseen
        try:
            os.unlink(self.rundir / rt.CONTROL_SOCKET)
        except OSError:
            pass        # gone already (or never ours: a start that could not serve it)
        log("supervisor exits" + (" (QEMU left running)" if self._detaching else ""))
