"""Domain events (virsh's "events" group): ``event`` prints libvirt's domain events of the
running domains (``dom.events()``, vsh.api.lifecycle) in virsh's words, one line each
(``event 'lifecycle' for domain 'vm1': Stopped Destroyed``).

``event`` follows the domains that run when it starts and those that start later (or the one
named, running or not yet), until the timeout or an interrupt (``conn.domain_events``).
"""

from __future__ import annotations

from vsh.api.lifecycle import EVENT_NAMES
from vsh.core.errors import Failed, InvalidArgument
from vsh.core.escape import escape
from vsh.core.output import Text
from vsh.registry import Opt, command


def event_text(domain: str, ev: dict) -> str:
    """virsh's line (or lines) for one event of :meth:`vsh.api.lifecycle.DomainLifecycle.events`."""
    name = ev["event"]
    head = f"event '{name}' for domain '{escape(domain)}'"
    if name == "lifecycle":
        return f"{head}: {ev['type']} {ev['detail']}\n"
    if name == "rtc-change":
        return f"{head}: {ev['offset']}\n"
    if name == "watchdog":
        return f"{head}: {ev['action']}\n"
    if name == "balloon-change":
        return f"{head}: {ev['actual']}KiB\n"
    if name in ("device-removed", "device-added", "device-removal-failed"):
        return f"{head}: {escape(str(ev['alias']))}\n"
    if name == "tray-change":
        return f"{head} disk {escape(str(ev['alias']))}: {ev['tray']}\n"
    if name in ("block-job", "block-job-2"):
        return f"{head}: {ev['job']} for {escape(str(ev['disk']))} {ev['status']}\n"
    if name == "graphics":
        local, remote = ev["local"], ev["remote"]
        text = (f"{head}: {ev['phase']} local[{local['family']} {escape(local['node'])} {escape(local['service'])}] "
                f"remote[{remote['family']} {escape(remote['node'])} {escape(remote['service'])}] "
                f"{escape(ev['auth'])}\n")
        return text + "".join(f"\t{escape(kind)}={escape(value)}\n" for kind, value in ev["subject"])
    if name == "metadata-change":
        return f"{head}: type {ev['type']}, uri {escape(ev['uri']) if ev['uri'] is not None else '(null)'}\n"
    if name == "agent-lifecycle":
        return f"{head}: state: '{ev['state']}' reason: '{ev['reason']}'\n"
    if name in ("io-error", "io-error-reason"):
        text = f"{head}: {escape(str(ev['path']))} ({escape(str(ev['alias']))}) {ev['action']}"
        return text + (f" due to {escape(str(ev['reason']))}\n" if name == "io-error-reason" else "\n")
    if name == "block-threshold":
        path = "(null)" if ev.get("path") is None else escape(ev["path"])
        return f"{head}: dev: {escape(str(ev['dev']))}({path}) {ev['threshold']} {ev['excess']}\n"
    return f"{head}\n"


def timestamp_text(now: float) -> str:
    """libvirt's ``virTimeStringNowRaw``: UTC with milliseconds, ``2026-12-06 23:50:01.123+0000``."""
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}+0000"


@command("event", group="events", summary="Domain Events",
         opts=[Opt("domain", kind="domain", positional=True, help="filter by domain name, id or uuid"),
               Opt("event", kind="domevent", positional=True, help="which event type to wait for"),
               Opt("all", kind="bool", help="wait for all events instead of just one type"),
               Opt("loop", kind="bool", help="loop until timeout or interrupt, rather than one-shot"),
               Opt("timeout", kind="int", help="timeout seconds"),
               Opt("list", kind="bool", help="list valid event types"),
               Opt("timestamp", kind="bool", help="show timestamp for each printed event")],
         exclusive=(("all", "event"), ("list", "all"), ("list", "event")),
         examples=("event --list", "event vm1 --event lifecycle --loop --timeout 60", "event --all --loop"),
         description="List event types, or wait for domain events to occur: the first one, or all of\n"
                     "them with --loop, of every domain (or the one named) that runs or starts, until the\n"
                     "timeout or an interrupt. Then 'events received: N'; the exit\n"
                     "status is 1 when none came. With --json each event is one JSON line\n"
                     "({\"domain\", \"event\", ...}), then the count.")
def event(ctx, domain=None, event=None, all=False, loop=False, timeout=None, list=False, timestamp=False):
    import json

    if list:
        return Text("".join(f"{name}\n" for name in EVENT_NAMES), json_data=[*EVENT_NAMES])
    if not event and not all:
        raise InvalidArgument("one of --list, --all, or --event <type> is required")
    if event and event not in EVENT_NAMES:
        raise InvalidArgument(f"unknown event type {event}")
    if timeout is not None and timeout < 1:
        raise InvalidArgument("invalid timeout")
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    count, how = 0, None
    try:
        for name, ev in ctx.conn.domain_events(domain, timeout):
            if event and ev["event"] != event:
                continue
            count += 1          # before the line is out: an interrupt right after it must count it
            if ctx.json:
                ctx.out.write(json.dumps({"domain": name, **ev}) + "\n")
            else:
                stamp = f"{timestamp_text(ev['timestamp'])}: " if timestamp else ""
                ctx.out.write(stamp + event_text(name, ev))
            ctx.out.flush()
            if not loop:
                break
        else:
            if deadline is not None and time.monotonic() >= deadline - 0.1:
                how = "timeout"
    except KeyboardInterrupt:
        how = "interrupt"
    if not ctx.json and how == "interrupt":
        ctx.out.write("event loop interrupted\n")
    elif not ctx.json and how == "timeout":
        ctx.out.write("event loop timed out\n")
    if not count:
        ctx.out.write(f"events received: {count}\n")
        ctx.out.flush()
        raise Failed("no event was received")
    return Text(f"events received: {count}\n", json_data={"count": count})
