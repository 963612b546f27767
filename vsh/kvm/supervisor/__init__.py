"""The per-domain supervisor: one detached process per running domain.

It owns QEMU as its direct child (QEMU sits in its own process group and never
dies with the supervisor), holds the QMP connection (``qemu.qmp``), writes
``state.json`` on every transition, applies on_poweroff / on_reboot / on_crash,
and serves the control socket described in :mod:`vsh.kvm.client`.

Started by :func:`vsh.kvm.launch.start` as ``python -I -S -c '...main()' --rundir
DIR --notify-fd N --lock-fd N [--attach]`` (``python -m vsh.kvm.supervisor`` takes the
same arguments); it forks once more (so the starting vsh never has to reap it),
keeps the flock on ``supervisor.lock`` for its whole
life, and reports ``{"ok": true, "state": ...}`` or ``{"ok": false, "error": ...}``
on the notify fd once the guest runs (or failed to).

``--attach`` re-adopts a QEMU whose supervisor died (any command that notices starts it,
queries included: :func:`vsh.kvm.client.supervise`): it watches QEMU through a pidfd,
reconnects to ``qmp.sock`` (QEMU keeps listening on it) and catches up before it reports:
QEMU's run state (``query-status``) against the recorded state, a guest power-off that
QEMU paused on (a pending ACPI reboot, kept in state.json, makes it a reset; else
on_poweroff), a panic (on_crash).  A QEMU that dies after that is a crash (on_crash
applies) unless someone recorded why it was stopped (``stop.json``: a destroy done
past an unresponsive supervisor).

Lifecycle actions (QEMU runs with ``set-action shutdown=pause``, so a guest
power-off leaves QEMU paused until a supervisor decides, even one that re-attaches later):

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

By concern: :mod:`.lifecycle` the state machine (the table, the lifecycle actions,
the reactions to QEMU's events), :mod:`.qemu` the QEMU process (launch, attach,
exit), :mod:`.control` the control server (the socket and its requests),
:mod:`.jobs` the long operations (save, restore, QMP jobs), :mod:`.core` the
Supervisor that holds them together, :mod:`.entry` the process's ``main()``.

Only a running supervisor imports asyncio / qemu.qmp (:mod:`.aio`); importing this
package for its state table is cheap (``Supervisor`` and ``main`` load on first use).
"""

from __future__ import annotations

from vsh.kvm.supervisor.lifecycle import (  # noqa: F401
    ACTION_KIND, DEFAULT_LIFECYCLE, LIFECYCLE_ACTIONS, REASONS, STATES, TRANSITIONS, Lifecycle,
    TransitionError)
from vsh.kvm.supervisor.log import log  # noqa: F401


def __getattr__(name: str):
    if name == "Supervisor":
        from vsh.kvm.supervisor.core import Supervisor
        return Supervisor
    if name == "main":
        from vsh.kvm.supervisor.entry import main
        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
