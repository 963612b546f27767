"""The local driver: libvirt's domain events from the store's journal (definitions added,
changed, renamed, removed; metadata changed: :mod:`vsh.core.journal`) and from what a running
domain's supervisor publishes: its own state changes (``VSH_LIFECYCLE``) become ``lifecycle`` events, a device it
hot-plugged (``VSH_DEVICE_ADDED``) ``device-added``, QEMU's QMP events the others, as libvirt's
QEMU driver derives them (the guest agent's port opening or closing: ``agent-lifecycle``)."""

from __future__ import annotations

import time

from vsh.core.errors import VshError

#: supervisor reason → libvirt's detail, per libvirt event type
STARTED = {"booted": "Booted", "restored": "Restored", "from snapshot": "Snapshot", "migrated": "Migrated",
           "wakeup": "Event wakeup"}
SUSPENDED = {"ioerror": "I/O Error", "watchdog": "Watchdog", "snapshot": "Snapshot", "from snapshot": "Snapshot",
             "migration": "Migrated"}
RESUMED = {"from snapshot": "Snapshot", "migrated": "Migrated"}
STOPPED = {"shutdown": "Shutdown", "destroyed": "Destroyed", "crashed": "Crashed", "failed": "Failed",
           "saved": "Saved", "from snapshot": "Snapshot", "migrated": "Migrated"}
#: QMP block job types and events → virsh's words
JOB_TYPES = {"stream": "Block Pull", "mirror": "Block Copy", "commit": "Block Commit"}
JOB_STATUS = {"BLOCK_JOB_COMPLETED": "completed", "BLOCK_JOB_CANCELLED": "canceled", "BLOCK_JOB_READY": "ready"}
#: the QMP events this module turns into libvirt events (the supervisor's own come too)
QMP_EVENTS = ("SHUTDOWN", "RESET", "RTC_CHANGE", "WATCHDOG", "BALLOON_CHANGE", "DEVICE_DELETED",
              "DEVICE_TRAY_MOVED", "SUSPEND", "WAKEUP", "BLOCK_WRITE_THRESHOLD", "BLOCK_IO_ERROR",
              "VSERPORT_CHANGE", *JOB_STATUS, *(f"{proto}_{phase}" for proto in ("VNC", "SPICE")
                                                for phase in ("CONNECTED", "INITIALIZED", "DISCONNECTED")))
#: a VNC or SPICE client's QMP event → libvirt's graphics phase
GRAPHICS_PHASES = {"CONNECTED": "connect", "INITIALIZED": "initialize", "DISCONNECTED": "disconnect"}
#: QEMU's address families in virsh's words (libvirt takes an unknown one for IPv4)
FAMILIES = {"ipv4": "IPv4", "ipv6": "IPv6", "unix": "unix"}
#: the supervisor's own events besides its state changes
OWN_EVENTS = ("VSH_LIFECYCLE", "VSH_DEVICE_ADDED")
#: the virtio port the guest agent opens
AGENT_PORT = "org.qemu.guest_agent.0"
#: QEMU's BLOCK_IO_ERROR action → virsh's word for libvirt's
IO_ERROR_ACTIONS = {"ignore": "none", "stop": "pause", "report": "report"}


def lifecycle_events(data: dict) -> list[tuple[str, str]]:
    """(type, detail) of the lifecycle events one supervisor state change stands for."""
    state, reason, before = data.get("state"), data.get("reason"), data.get("previous")
    if state == "running":
        if before == "starting":
            return [("Started", STARTED.get(reason, "Booted"))]
        if before == "paused":
            return [("Resumed", RESUMED.get(reason, "Unpaused"))]
        if before == "crashed":
            return [("Started", "Booted")]
        if before == "pmsuspended":
            return [("Started", "Event wakeup")]
        return []               # back from "shutdown": the reboot event says it
    if state == "paused":
        out = [("Started", "Booted")] if before == "starting" else []
        return out + [("Suspended", SUSPENDED.get(reason, "Paused"))]
    if state == "shutoff":
        return [("Stopped", STOPPED.get(reason, "Destroyed"))]
    if state == "crashed":
        return [("Crashed", "Panicked")]
    if state == "pmsuspended":
        return [("PMSuspended", "Memory")]
    return []                   # starting, shutdown: QEMU's SHUTDOWN event has the detail


class _Live:
    """What an event needs of the running domain (its disks, its ports), read when first needed."""

    def __init__(self, dom, rundir):
        self.dom, self.rundir, self._by_target = dom, rundir, None

    def targets(self) -> dict:
        """target → list of image paths, top first."""
        if self._by_target is None:
            from vsh.kvm.snapshot.chains import chain, disk_elements, disk_target

            self._by_target = {}
            try:
                live = self.dom.store.load(self.dom.refresh())
                for el in disk_elements(live.node):
                    self._by_target[disk_target(el)] = [path for path, _ in chain(el)]
            except (VshError, OSError):     # the domain went away meanwhile: events keep raw names
                self._by_target = {}
        return self._by_target

    def node_dev(self, node: str) -> tuple[str, str | None]:
        """libvirt's ``dev`` (``vda``, or ``vda[2]`` below the top) and path of a block node."""
        import os

        from vsh.kvm import client

        try:
            nodes = client.qmp(self.rundir, "query-named-block-nodes", {"flat": True})
        except (VshError, OSError):
            return node, None
        path = next((n.get("file") for n in nodes if n.get("node-name") == node), None)
        if path is None:
            return node, None
        for target, paths in self.targets().items():
            for i, p in enumerate(paths):
                if os.path.realpath(p) == os.path.realpath(path):
                    return (target if i == 0 else f"{target}[{i}]"), path
        return node, path


    def backend(self, node: str, device: str) -> tuple[str, str]:
        """libvirt's (source path, device alias) of the disk whose image is block node ``node``
        (or, without a node name, block backend ``device``); empty strings for one QEMU no longer
        knows, as libvirt's."""
        from vsh.kvm import client

        try:
            blocks = client.qmp(self.rundir, "query-block")
        except (VshError, OSError):
            return "", ""
        for blk in blocks:
            inserted = blk.get("inserted") or {}
            if (node and inserted.get("node-name") == node) or (not node and device and blk.get("device") == device):
                qdev = blk.get("qdev") or ""
                if qdev.startswith("/machine/peripheral/"):    # a virtio disk's backend: its device's id
                    qdev = qdev.split("/")[3]
                return inserted.get("file", ""), qdev
        return "", ""

    def port_name(self, port_id: str) -> str | None:
        """The name of the virtio-serial port with QEMU id ``port_id``."""
        from vsh.kvm import client

        try:
            return client.qmp(self.rundir, "qom-get", {"path": f"/machine/peripheral/{port_id}", "property": "name"})
        except (VshError, OSError):
            return None


def _translate(msg: dict, live: _Live) -> list[dict]:
    name, data = msg.get("event"), msg.get("data") or {}
    if name == "VSH_LIFECYCLE":
        return [{"event": "lifecycle", "type": t, "detail": d} for t, d in lifecycle_events(data)]
    if name == "VSH_DEVICE_ADDED":
        return [{"event": "device-added", "alias": data["device"]}] if data.get("device") else []
    if name == "VSERPORT_CHANGE":
        if not data.get("id") or live.port_name(data["id"]) != AGENT_PORT:
            return []
        return [{"event": "agent-lifecycle", "state": "connected" if data.get("open") else "disconnected",
                 "reason": "channel event"}]
    proto, _, phase = (name or "").partition("_")
    if proto in ("VNC", "SPICE") and phase in GRAPHICS_PHASES:
        return [_graphics(GRAPHICS_PHASES[phase], data)]
    if name == "SHUTDOWN":
        if data.get("reason") in ("guest-reset", "host-qmp-system-reset"):
            return []                   # a reset: the RESET event follows
        if data.get("reason") in ("host-qmp-quit", "host-signal"):
            return []                   # destroy: only its Stopped Destroyed, as libvirt
        detail = "Finished after guest request" if data.get("guest") else "Finished after host request"
        return [{"event": "lifecycle", "type": "Shutdown", "detail": detail}]
    if name == "RESET":
        return [{"event": "reboot"}]
    if name == "RTC_CHANGE":
        return [{"event": "rtc-change", "offset": data.get("offset", 0)}]
    if name == "WATCHDOG":
        return [{"event": "watchdog", "action": data.get("action", "unknown")}]
    if name == "BALLOON_CHANGE":
        return [{"event": "balloon-change", "actual": int(data.get("actual", 0)) // 1024}]
    if name == "DEVICE_DELETED":
        return [{"event": "device-removed", "alias": data["device"]}] if data.get("device") else []
    if name == "DEVICE_TRAY_MOVED":
        return [{"event": "tray-change", "alias": data.get("id") or data.get("device"),
                 "tray": "opened" if data.get("tray-open") else "closed"}]
    if name == "SUSPEND":
        return [{"event": "pm-suspend"}]
    if name == "WAKEUP":
        return [{"event": "pm-wakeup"}]
    if name == "BLOCK_WRITE_THRESHOLD":
        dev, path = live.node_dev(data.get("node-name", ""))
        return [{"event": "block-threshold", "dev": dev, "path": path, "threshold": data.get("write-threshold", 0),
                 "excess": data.get("amount-exceeded", 0)}]
    if name == "BLOCK_IO_ERROR":
        path, alias = live.backend(data.get("node-name") or "", data.get("device") or "")
        action = IO_ERROR_ACTIONS.get(data.get("action"), "none")
        reason = "enospc" if data.get("nospace") else ""
        return [{"event": "io-error", "path": path, "alias": alias, "action": action},
                {"event": "io-error-reason", "path": path, "alias": alias, "action": action, "reason": reason}]
    if name in JOB_STATUS:
        target = str(data.get("device", "")).removeprefix("vsh-block-")
        status = "failed" if data.get("error") else JOB_STATUS[name]
        job = JOB_TYPES.get(data.get("type"), "Block Commit")
        top = (live.targets().get(target) or [target])[0]
        return [{"event": "block-job", "job": job, "disk": top, "status": status},
                {"event": "block-job-2", "job": job, "disk": target, "status": status}]
    return []


def _graphics(phase: str, data: dict) -> dict:
    """libvirt's graphics event from QEMU's VNC_* or SPICE_* one (server and client addresses,
    the server's authentication, the client's x509 name and SASL user as identities)."""
    def address(info: dict) -> dict:
        return {"family": FAMILIES.get(str(info.get("family")), "IPv4"), "node": str(info.get("host", "")),
                "service": str(info.get("service", info.get("port", "")))}    # VNC: service, SPICE: port

    server, client = data.get("server") or {}, data.get("client") or {}
    subject = [[kind, str(client[key])]
               for kind, key in (("x509dname", "x509_dname"), ("saslUsername", "sasl_username")) if client.get(key)]
    return {"event": "graphics", "phase": phase, "local": address(server), "remote": address(client),
            "auth": str(server.get("auth", "")), "subject": subject}


def domain_events(dom, timeout: float | None, seen_start=None):
    """The events of the running domain ``dom`` (its supervisor's stream); ``seen_start()`` true:
    the caller has reported the domain's start itself, so the stream's own start event is dropped."""
    from vsh.api.local.extras import running_rundir
    from vsh.kvm import client

    rundir = running_rundir(dom)
    stream = client.events(rundir, [*OWN_EVENTS, *QMP_EVENTS], timeout=timeout)
    live = _Live(dom, rundir)

    def gen():
        for msg in stream:
            if seen_start is not None and seen_start() and msg.get("event") == "VSH_LIFECYCLE" and \
                    (msg.get("data") or {}).get("previous") == "starting":
                continue
            stamp = msg.get("timestamp")
            if isinstance(stamp, dict):
                stamp = stamp.get("seconds", 0) + stamp.get("microseconds", 0) / 1e6
            for ev in _translate(msg, live):
                ev["timestamp"] = stamp if isinstance(stamp, (int, float)) else time.time()
                yield ev
    return gen()


#: how often connection_events looks for domains that started
_SCAN = 0.2


def connection_events(conn, name: str | None, timeout: float | None):
    """``(domain, event)`` of every running domain (or the one named), and of those that start
    while this runs (a start seen only once the domain runs is reported as its Started event, as
    the supervisor's own would have been), until ``timeout`` seconds pass."""
    import queue
    import threading

    from vsh.core.runtime import ACTIVE_STATES

    if name is not None:
        name = conn.lookup_domain(name).name            # NotFound for an unknown domain
    q: queue.Queue = queue.Queue()
    done = object()
    deadline = None if timeout is None else time.monotonic() + timeout
    following: set[str] = set()

    def follow(dom_name: str, was_running: bool) -> None:
        reported: list[bool] = []
        try:
            dom = conn.lookup_domain(dom_name)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            stream = domain_events(dom, left, seen_start=lambda: bool(reported))
            if not was_running:
                # it started since we began: if it runs already, its start event may have gone by
                # before we subscribed; say so once from its state (and drop the stream's own)
                ref = dom.refresh()
                if ref.state in ("running", "paused", "pmsuspended"):
                    reported.append(True)
                    for kind, detail in lifecycle_events({"state": ref.state, "reason": ref.reason,
                                                          "previous": "starting"}):
                        q.put((dom_name, {"event": "lifecycle", "type": kind, "detail": detail,
                                          "timestamp": time.time()}))
            for ev in stream:
                q.put((dom_name, ev))
        except VshError:
            pass                        # it stopped (or its supervisor went) meanwhile
        finally:
            q.put((dom_name, done))

    since = _process_start()
    from vsh.core.journal import Follower

    journal = Follower(conn.store.run_root)        # definitions and metadata: no supervisor tells

    def scan(first: bool) -> None:
        refs = [conn.store.get(name)] if name is not None else conn.store.refs()
        for ref in refs:
            if ref is None or ref.name in following or ref.state not in ACTIVE_STATES:
                continue
            following.add(ref.name)
            # a domain that started after this command did (before it was ready to listen) is new
            started = (ref.runtime.data.get("started_at") if ref.runtime is not None else None) or 0
            old = first and ref.state != "starting" and not (isinstance(started, (int, float)) and started >= since)
            threading.Thread(target=follow, args=(ref.name, old), daemon=True).start()

    scan(True)
    scanned = time.monotonic()
    while True:
        now = time.monotonic()
        if now - scanned >= _SCAN:
            scan(False)
            scanned = now
            for stamp, dom_name, kind, fields in journal.poll():
                ev = _journal_event(kind, fields)
                if ev is not None and (name is None or dom_name == name):
                    yield dom_name, {**ev, "timestamp": stamp}
        wait = _SCAN if deadline is None else min(_SCAN, deadline - now)
        if wait <= 0:
            return
        try:
            dom_name, ev = q.get(timeout=wait)
        except queue.Empty:
            continue
        if ev is done:
            following.discard(dom_name)
            continue
        yield dom_name, ev


def _journal_event(kind: str, fields: list) -> dict | None:
    """The event of one line of the store's journal (:mod:`vsh.core.journal`)."""
    if kind == "lifecycle" and len(fields) == 2:
        return {"event": "lifecycle", "type": fields[0], "detail": fields[1]}
    if kind == "metadata-change" and len(fields) == 2:
        return {"event": "metadata-change", "type": fields[0], "uri": fields[1] or None}
    return None


def _process_start() -> float:
    """When this process started (seconds since the epoch; now when /proc cannot say)."""
    import os

    try:
        with open("/proc/self/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith("btime "))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()
