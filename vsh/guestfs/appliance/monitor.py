"""A blocking QMP client for the appliance's QEMU (one connection, one command at a time).

QEMU connects to a unix socket this process listens on (as the agent's port does), so the
monitor is there the moment QEMU runs. The appliance only needs a handful of commands
(``migrate``, ``migrate-incoming``, ``query-migrate``, ``blockdev-add``, ``device_add``,
``cont``) on its start path, where importing asyncio and ``qemu.qmp`` (~80 ms) would be a
tenth of a restored start; events are read and dropped.
"""

from __future__ import annotations

import json
import socket
import time

from vsh.core.errors import VshError


class MonitorError(VshError):
    """QEMU answered a command with an error (``cls`` is QMP's error class)."""

    def __init__(self, message: str, cls: str = ""):
        super().__init__(message)
        self.cls = cls


class Monitor:
    """QMP over an accepted unix socket: the greeting is read and capabilities negotiated."""

    def __init__(self, sock: socket.socket, timeout: float):
        self.sock = sock
        self.f = sock.makefile("rb", buffering=0)
        self.sock.settimeout(timeout)
        if "QMP" not in self._line():
            raise VshError("the appliance's QEMU sent no QMP greeting")
        self.execute("qmp_capabilities")

    def _line(self) -> dict:
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError("QEMU closed its monitor")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def execute(self, cmd: str, args: dict | None = None, timeout: float = 30.0):
        """Run ``cmd``; its ``return`` value, or :class:`MonitorError` with QEMU's words."""
        self.sock.settimeout(timeout)
        req = {"execute": cmd, **({"arguments": args} if args else {})}
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        reply = self._line()
        if "error" in reply:
            raise MonitorError(reply["error"].get("desc", "failed"), reply["error"].get("class", ""))
        return reply.get("return")

    def wait_migration(self, timeout: float) -> None:
        """Poll ``query-migrate`` until it completes; MonitorError when it fails or times out."""
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            info = self.execute("query-migrate") or {}
            status = info.get("status")
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                raise MonitorError(f"migration {status}: {info.get('error-desc', '')}".rstrip(": "))
            if time.monotonic() > deadline:
                raise MonitorError(f"migration did not complete within {timeout:g} s (status {status})")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def close(self) -> None:
        for thing in (self.f, self.sock):
            try:
                thing.close()
            except OSError:
                pass
