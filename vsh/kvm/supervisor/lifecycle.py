"""The supervisor's state machine: the table of domain states and allowed moves, the
lifecycle actions, and how the supervisor reacts to what QEMU reports (power-off,
reset, panic, its own exit) by applying on_poweroff / on_reboot / on_crash.

The table and :class:`Lifecycle` import nothing heavy (``vsh.kvm.launch`` uses the
lifecycle actions); the reactions are methods of the supervisor
(:class:`LifecycleEvents`, mixed into :class:`vsh.kvm.supervisor.core.Supervisor`).
"""

from __future__ import annotations

import time

from vsh.core import runtime as rt
from vsh.core.errors import OperationInvalid, VshError
from vsh.core.runtime import STATES  # noqa: F401 (the states are the runtime's; the table is here)
from vsh.kvm.supervisor import aio
from vsh.kvm.supervisor.log import log

__all__ = ["STATES", "TRANSITIONS", "REASONS", "ACTION_KIND", "LIFECYCLE_ACTIONS", "DEFAULT_LIFECYCLE",
           "TransitionError", "Lifecycle", "LifecycleEvents"]

#: The one table of allowed moves.  "shutdown" means "shutting down" (the guest has
#: powered off, the lifecycle action is being applied); "crashed" is a panicked guest
#: kept for inspection (on_crash=preserve).
TRANSITIONS: dict[str, frozenset[str]] = {
    "shutoff": frozenset({"starting"}),
    "starting": frozenset({"running", "paused", "shutdown", "shutoff", "crashed"}),
    "running": frozenset({"paused", "shutdown", "shutoff", "crashed", "pmsuspended"}),
    "paused": frozenset({"running", "shutdown", "shutoff", "crashed"}),
    "pmsuspended": frozenset({"running", "paused", "shutdown", "shutoff", "crashed"}),
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
    "pmsuspended": frozenset({"unknown"}),
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

#: The actions a domain's on_poweroff / on_reboot / on_crash may name.
LIFECYCLE_ACTIONS = frozenset(ACTION_KIND)
DEFAULT_LIFECYCLE = {"on_poweroff": "destroy", "on_reboot": "restart", "on_crash": "destroy"}

#: query-status run states → libvirt's paused reasons.
PAUSE_REASONS = {"io-error": "ioerror", "watchdog": "watchdog", "prelaunch": "user",
                 "internal-error": "unknown", "debug": "user", "suspended": "user",
                 "save-vm": "snapshot", "restore-vm": "from snapshot",
                 "finish-migrate": "migration", "postmigrate": "migration"}
#: SHUTDOWN reasons after which QEMU exits even with ``set-action shutdown=pause``.
QUITTING = frozenset({"host-qmp-quit", "host-signal"})
#: SHUTDOWN reasons that are resets (with ``set-action reboot=shutdown``).
RESETS = frozenset({"guest-reset", "host-qmp-system-reset"})


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


class LifecycleEvents:
    """The supervisor's reactions to QEMU's events and exit (a mixin of the Supervisor)."""

    async def _pump_events(self, qmp) -> None:
        listener = aio.qmplib.EventListener()
        qmp.register_listener(listener)
        try:
            async for msg in listener:
                event = dict(msg)
                self._publish(event)
                try:
                    await self._on_event(event.get("event"), event.get("data") or {})
                except aio.asyncio.CancelledError:
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
        elif name in ("STOP", "RESUME", "SUSPEND", "WAKEUP"):
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
        elif name == "VSERPORT_CHANGE":
            from vsh.kvm import channels

            # in its own task: the live XML's lock may be held by a hot-unplug that waits for an event
            self._spawn_task(self.channel_states(channels.from_event(data)))

    async def channel_states(self, opened: dict) -> None:
        """The virtio channels' state in the live XML (:mod:`vsh.kvm.channels`)."""
        if not opened:
            return
        from vsh.kvm import channels, livexml

        async with livexml.live_lock(self):
            try:
                dom = livexml.read_live(self)
                if channels.set_states(dom, opened):
                    livexml.write_live(self, dom)
            except (VshError, OSError) as exc:
                log(f"warning: channel state not recorded: {exc}")

    async def _sync_runstate(self) -> None:
        """Make running/paused/pmsuspended agree with QEMU's run state (query-status): a guest
        that suspended itself (S3, dompmsuspend) is pmsuspended until it wakes up."""
        if self.lc.state not in ("running", "paused", "pmsuspended"):
            return
        status = (await self._exec("query-status")).get("status")
        if self.lc.state not in ("running", "paused", "pmsuspended"):
            return
        if status == "running":
            self.lc.move("running", "wakeup" if self.lc.state == "pmsuspended" else "unpaused")
        elif status == "suspended" and self.lc.state == "running":
            self.lc.move("pmsuspended", "unknown")
        elif status == "suspended" and self.lc.state == "pmsuspended":
            return
        elif status not in ("shutdown", "guest-panicked"):   # those have their own events
            self.lc.move("paused", PAUSE_REASONS.get(status, "user"))

    async def _on_shutdown(self, data: dict) -> None:
        reason = data.get("reason", "")
        if reason in QUITTING:
            return      # QEMU exits whatever the shutdown action: _after_exit() finishes
        if self.lc.state in ("running", "paused"):
            requested = self._shutdown_requested or self._reboot_requested
            self.lc.transition("shutdown", "user" if requested else "unknown")
        if reason in RESETS:       # a reset turned into a shutdown (on_reboot is not restart)
            action = self.lifecycle["on_reboot"]
        elif self._reboot_requested:
            self._reboot_requested = False
            action = "restart"
        else:
            action = self.lifecycle["on_poweroff"]
        self._shutdown_requested = False
        if self._shutdown_action == "poweroff":
            # QEMU exits by itself (set-action failed: the argv's own action holds)
            self._stopping("shutdown")
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
            self._stopping(stop_reason)
            await self._quit()
        elif kind == "restart":
            await self._exec("system_reset")
            await self._exec("cont")
            self._shutdown_event = None         # the shutdown is over: a later exit is new
            self.lc.move("running", restart_reason)
        else:
            self.lc.move(*preserve)

    async def _after_exit(self, code) -> None:
        """QEMU is gone (not during launch): settle the state, restart on crash if asked.

        Why it went: what this supervisor told it, else what anyone recorded before telling
        it (a destroy by a vsh that found us unresponsive), else its SHUTDOWN event, else a crash.
        """
        reason = self._stop_reason or rt.recorded_stop(self.rundir, self.qemu_pid, self.qemu_starttime)
        if reason is None:
            sd = self._shutdown_event
            if sd is not None and code in (0, None):
                reason = "shutdown" if sd.get("guest") else "destroyed"
            else:
                reason = "crashed"
        await self._drop_qmp()
        self._release_what_qemu_held()
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
