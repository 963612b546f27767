"""What needs more of libvirt-python than one call: domain events and QEMU monitor events
(libvirt's event loop and the ``libvirt``/``libvirt_qemu`` wrappers, whose callbacks the extension
dispatches through, on a connection of their own opened after the loop is registered, as virsh's
``event`` has one) and running a command in the namespaces of an LXC container."""

from __future__ import annotations

import time

from vsh.api.libvirt.lv import mod
from vsh.core.errors import NotFound, OperationInvalid, VshError

#: libvirt's lifecycle event types and their details, in virsh's words (virsh-domain-event.c)
LIFECYCLE = (("Defined", ("Added", "Updated", "Renamed", "Snapshot")),
             ("Undefined", ("Removed", "Renamed")),
             ("Started", ("Booted", "Migrated", "Restored", "Snapshot", "Event wakeup")),
             ("Suspended", ("Paused", "Migrated", "I/O Error", "Watchdog", "Restored", "Snapshot", "API error",
                            "Post-copy", "Post-copy Error")),
             ("Resumed", ("Unpaused", "Migrated", "Snapshot", "Post-copy", "Post-copy Error")),
             ("Stopped", ("Shutdown", "Destroyed", "Crashed", "Migrated", "Saved", "Failed", "Snapshot")),
             ("Shutdown", ("Finished", "Finished after guest request", "Finished after host request")),
             ("PMSuspended", ("Memory", "Disk")),
             ("Crashed", ("Panicked", "Crashloaded")))
WATCHDOG = ("none", "pause", "reset", "poweroff", "shutdown", "debug", "inject-nmi")
JOBS = ("Unknown job", "Block Pull", "Block Copy", "Block Commit", "Active Block Commit", "Backup")
JOB_STATUS = ("completed", "failed", "canceled", "ready")
TRAY = ("opened", "closed")
#: virConnectDomainEventAgentLifecycleState and ...Reason in virsh's words
AGENT_STATES = ("unknown", "connected", "disconnected")
AGENT_REASONS = ("unknown", "domain started", "channel event")
#: virDomainEventGraphicsPhase and ...AddressType in virsh's words
GRAPHICS_PHASES = ("connect", "initialize", "disconnect")
GRAPHICS_FAMILIES = ("IPv4", "IPv6", "unix")
#: virDomainMetadataType in virsh's words
METADATA_TYPES = ("description", "title", "element")
#: virDomainEventIOErrorAction in virsh's words
IO_ERROR_ACTIONS = ("none", "pause", "report")
_loop_ready = False


def _event_loop():
    """libvirt's default event loop, registered once per process (before any connection that
    should deliver events opens); the ``libvirt`` wrapper module."""
    global _loop_ready
    mod()
    import libvirt

    if not _loop_ready:
        libvirt.virEventRegisterDefaultImpl()
        _loop_ready = True
    return libvirt


def _word(words, n: int) -> str:
    return words[n] if 0 <= n < len(words) else "unknown"


def _converters(libvirt) -> dict:
    """{event ID: (event name, callback arguments → the event's fields)} for the events virsh
    prints whole and :mod:`vsh.commands.events` renders (vsh.api.lifecycle's event shapes)."""
    def lifecycle(kind, detail):
        name, details = LIFECYCLE[kind] if 0 <= kind < len(LIFECYCLE) else ("Unknown", ())
        return {"type": name, "detail": _word(details, detail)}

    def job(disk, kind, status):
        return {"job": _word(JOBS, kind), "disk": disk, "status": _word(JOB_STATUS, status)}

    def graphics(phase, local, remote, auth, subject):
        def address(a):
            return {"family": _word(GRAPHICS_FAMILIES, int(a.get("family", 0))), "node": a.get("node") or "",
                    "service": a.get("service") or ""}
        return {"phase": _word(GRAPHICS_PHASES, phase), "local": address(local), "remote": address(remote),
                "auth": auth or "", "subject": [[kind, name] for kind, name in subject or ()]}

    none = lambda *_args: {}     # noqa: E731 - events with nothing more to say
    return {
        libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE: ("lifecycle", lifecycle),
        libvirt.VIR_DOMAIN_EVENT_ID_REBOOT: ("reboot", none),
        libvirt.VIR_DOMAIN_EVENT_ID_RTC_CHANGE: ("rtc-change", lambda offset: {"offset": offset}),
        libvirt.VIR_DOMAIN_EVENT_ID_WATCHDOG: ("watchdog", lambda action: {"action": _word(WATCHDOG, action)}),
        libvirt.VIR_DOMAIN_EVENT_ID_GRAPHICS: ("graphics", graphics),
        libvirt.VIR_DOMAIN_EVENT_ID_IO_ERROR: ("io-error", lambda path, alias, action: {
            "path": path, "alias": alias, "action": _word(IO_ERROR_ACTIONS, action)}),
        libvirt.VIR_DOMAIN_EVENT_ID_IO_ERROR_REASON: ("io-error-reason", lambda path, alias, action, reason: {
            "path": path, "alias": alias, "action": _word(IO_ERROR_ACTIONS, action), "reason": reason}),
        libvirt.VIR_DOMAIN_EVENT_ID_CONTROL_ERROR: ("control-error", none),
        libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB: ("block-job", job),
        libvirt.VIR_DOMAIN_EVENT_ID_TRAY_CHANGE: ("tray-change", lambda alias, reason: {
            "alias": alias, "tray": _word(TRAY, reason)}),
        libvirt.VIR_DOMAIN_EVENT_ID_PMWAKEUP: ("pm-wakeup", none),
        libvirt.VIR_DOMAIN_EVENT_ID_PMSUSPEND: ("pm-suspend", none),
        libvirt.VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE: ("balloon-change", lambda actual: {"actual": actual}),
        libvirt.VIR_DOMAIN_EVENT_ID_PMSUSPEND_DISK: ("pm-suspend-disk", none),
        libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED: ("device-removed", lambda alias: {"alias": alias}),
        libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2: ("block-job-2", job),
        libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED: ("device-added", lambda alias: {"alias": alias}),
        libvirt.VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE: ("agent-lifecycle", lambda state, reason: {
            "state": _word(AGENT_STATES, state), "reason": _word(AGENT_REASONS, reason)}),
        libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED: ("device-removal-failed",
                                                           lambda alias: {"alias": alias}),
        libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE: ("metadata-change", lambda kind, uri: {
            "type": _word(METADATA_TYPES, kind), "uri": uri}),
        libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_THRESHOLD: ("block-threshold", lambda dev, path, threshold, excess: {
            "dev": dev, "path": path, "threshold": threshold, "excess": excess}),
    }


def domain_events(uri: str, name: str | None, timeout: float | None, one_run: bool = False):
    """An iterator of ``(domain name, event)`` (the shapes of :meth:`vsh.api.lifecycle.DomainLifecycle.events`)
    for domain ``name`` (None: every domain) from now on, until ``timeout`` seconds pass; with
    ``one_run``, only while that domain runs (OperationInvalid at once when it does not; the
    iterator ends after its lifecycle Stopped event)."""
    libvirt = _event_loop()
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as err:
        raise VshError(str(err)) from None
    dom = None
    try:
        if name is not None:
            dom = conn.lookupByName(name)
            if one_run and not dom.isActive():
                raise OperationInvalid("Requested operation is not valid: domain is not running")
    except libvirt.libvirtError as err:
        conn.close()
        raise NotFound(str(err)) from None
    except VshError:
        conn.close()
        raise
    queue: list = []

    def deliver(event_name, convert):
        def callback(_conn, source, *args):
            fields = convert(*args[:-1])                # the last is the opaque value
            queue.append((source.name(), {"event": event_name, "timestamp": time.time(), **fields}))
        return callback

    undo = [conn.close]
    try:
        for event_id, (event_name, convert) in _converters(libvirt).items():
            callback_id = conn.domainEventRegisterAny(dom, event_id, deliver(event_name, convert), None)
            undo.insert(0, lambda callback_id=callback_id: conn.domainEventDeregisterAny(callback_id))
    except libvirt.libvirtError as err:
        _undo(libvirt, undo)
        raise VshError(str(err)) from None

    def done(item) -> bool:
        if item is None:            # nothing queued: stopped before its event could come?
            return one_run and not dom.isActive()
        return one_run and item[1]["event"] == "lifecycle" and item[1]["type"] == "Stopped"

    return _pump(libvirt, queue, timeout, done, undo)


def _pump(libvirt, queue: list, timeout: float | None, done, undo: list):
    """Run libvirt's event loop and yield what its callbacks put in ``queue``, until ``done(item)``
    says so after an item, or ``done(None)`` when the queue is empty, or ``timeout`` seconds pass;
    then call the ``undo`` steps (deregistrations, the connection's close)."""
    timer = libvirt.virEventAddTimeout(200, lambda _timer, _opaque: None, None)   # wakes the loop: deadline
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            while queue:
                item = queue.pop(0)
                yield item
                if done(item):
                    return
            if done(None) or (deadline is not None and time.monotonic() >= deadline):
                return
            if libvirt.virEventRunDefaultImpl() < 0:
                raise VshError("internal error: libvirt's event loop failed")
    finally:
        libvirt.virEventRemoveTimeout(timer)
        _undo(libvirt, undo)


def _undo(libvirt, steps: list) -> None:
    for step in steps:
        try:
            step()
        except libvirt.libvirtError:
            pass


def monitor_events(uri: str, name: str, event: str | None, timeout: float | None):
    """An iterator of ``{"event", "data", "timestamp"}`` for the QEMU monitor events of domain ``name``
    until it stops or ``timeout`` seconds pass. Events need libvirt's event loop running before the
    connection is opened: this opens its own connection."""
    import json

    import libvirt_qemu

    libvirt = _event_loop()
    try:
        conn = libvirt.open(uri)
        dom = conn.lookupByName(name)
    except libvirt.libvirtError as err:
        raise VshError(str(err)) from None
    queue: list = []
    stopped = []

    def on_event(_conn, _dom, ev, seconds, micros, details, _opaque):
        try:
            data = json.loads(details) if details else {}
        except ValueError:
            data = details
        queue.append({"event": ev, "data": data, "timestamp": {"seconds": seconds, "microseconds": micros}})

    def on_lifecycle(_conn, _dom, ev, _detail, _opaque):
        if ev == libvirt.VIR_DOMAIN_EVENT_STOPPED:
            stopped.append(True)

    try:
        mon = libvirt_qemu.qemuMonitorEventRegister(conn, dom, event, on_event, None, 0)
        life = conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None)
    except libvirt.libvirtError as err:
        conn.close()
        raise VshError(str(err)) from None
    undo = [lambda: libvirt_qemu.qemuMonitorEventDeregister(conn, mon),
            lambda: conn.domainEventDeregisterAny(life), conn.close]
    return _pump(libvirt, queue, timeout, lambda item: item is None and (bool(stopped) or not dom.isActive()), undo)


def run_in_namespaces(fds: list[int], argv: list[str]) -> int:
    """Run ``argv`` in a child that joined the namespaces ``fds`` (virDomainLxcOpenNamespace's);
    its exit status."""
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    pid = os.fork()
    if pid == 0:
        try:
            for fd in fds:
                if libc.setns(fd, 0) != 0:
                    os.write(2, f"error: setns: {os.strerror(ctypes.get_errno())}\n".encode())
                    os._exit(1)
            os.execvp(argv[0], argv)
        except OSError as err:
            os.write(2, f"error: {argv[0]}: {err.strerror}\n".encode())
        os._exit(127)
    for fd in fds:
        os.close(fd)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
