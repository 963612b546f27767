"""What needs more of libvirt-python than one call: QEMU monitor events (libvirt's event loop and
the ``libvirt_qemu`` wrapper, whose callbacks the extension dispatches through) and running a
command in the namespaces of an LXC container."""

from __future__ import annotations

import time

from vsh.api.libvirt.lv import mod
from vsh.core.errors import VshError


def monitor_events(uri: str, name: str, event: str | None, timeout: float | None):
    """An iterator of ``{"event", "data", "timestamp"}`` for the QEMU monitor events of domain ``name``
    until it stops or ``timeout`` seconds pass. Events need libvirt's event loop running before the
    connection is opened: this opens its own connection."""
    import json

    mod()
    import libvirt
    import libvirt_qemu

    libvirt.virEventRegisterDefaultImpl()
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

    def ticks(_timer, _opaque):
        return None

    try:
        mon = libvirt_qemu.qemuMonitorEventRegister(conn, dom, event, on_event, None, 0)
        life = conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None)
    except libvirt.libvirtError as err:
        conn.close()
        raise VshError(str(err)) from None
    timer = libvirt.virEventAddTimeout(200, ticks, None)      # wakes the loop to check the deadline

    def events():
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                while queue:
                    yield queue.pop(0)
                if stopped or not dom.isActive():
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    return
                libvirt.virEventRunDefaultImpl()
        finally:
            libvirt.virEventRemoveTimeout(timer)
            for undo in (lambda: libvirt_qemu.qemuMonitorEventDeregister(conn, mon),
                         lambda: conn.domainEventDeregisterAny(life), conn.close):
                try:
                    undo()
                except libvirt.libvirtError:
                    pass

    return events()


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
