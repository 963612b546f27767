"""The QEMU guest agent's wire protocol, spoken over the host end of a domain's
``org.qemu.guest_agent.0`` virtio channel (a unix socket QEMU listens on; one client at a time).

A call takes the channel's lock (a file next to the socket: two vsh processes never interleave
on the one channel), connects, resynchronises and sends one command:

1. a 0xFF byte (resets the agent's JSON parser, whatever a killed earlier client left half-sent),
   then ``guest-sync-delimited`` with a random id; the agent answers with 0xFF and then the id:
   every byte before that answer (stale replies) is dropped;
2. the command as one JSON line; its reply is the next JSON object.

libvirt speaks the same protocol from libvirtd (src/qemu/qemu_agent.c); vsh has no daemon, so the
command that needs the agent connects for the length of the call.

Timeouts (in seconds, as libvirt's): ``BLOCK`` (-2) waits as long as the agent takes, ``DEFAULT``
(-1) waits :data:`WAIT_TIME`, ``NOWAIT`` (0) sends the command and reads no reply. The sync
itself waits at most :data:`WAIT_TIME` (less when a positive timeout is shorter).
"""

from __future__ import annotations

import json
import os
import random
import select
import socket
import time

from vsh.core.errors import VshError

#: The virtio-serial port name the agent listens on in the guest.
CHANNEL_NAME = "org.qemu.guest_agent.0"
BLOCK, DEFAULT, NOWAIT = -2, -1, 0
#: libvirt's QEMU_AGENT_WAIT_TIME: what DEFAULT means, and the longest a sync waits.
WAIT_TIME = 5
_LOCK_WAIT = 30.0           # another vsh command on the same channel: wait this long for it


class AgentUnresponsive(VshError):
    """The agent did not answer (libvirt's VIR_ERR_AGENT_UNRESPONSIVE); see :func:`unresponsive`."""


def unresponsive(detail: str) -> AgentUnresponsive:
    return AgentUnresponsive(f"Guest agent is not responding: {detail}")


class AgentCommandError(VshError):
    """The agent answered with an error; ``klass`` is its error class (``CommandNotFound``...)."""

    def __init__(self, command: str, klass: str | None, desc: str | None):
        detail = desc or _CLASS_TEXT.get(klass or "", "unknown QEMU command error")
        super().__init__(f"internal error: unable to execute QEMU agent command '{command}': {detail}")
        self.command = command
        self.klass = klass


# libvirt's words for an error that comes without a description
_CLASS_TEXT = {
    "GenericError": "unknown QEMU command error",
    "CommandNotFound": "the requested command has not been found",
    "CommandDisabled": "the requested command has been disabled",
    "DeviceNotActive": "device not active",
    "DeviceNotFound": "device not found",
}


def timeout_seconds(timeout: int) -> float | None:
    """Seconds to wait for a reply for a libvirt-style ``timeout`` (None: without limit)."""
    if timeout == BLOCK:
        return None
    if timeout == DEFAULT:
        return float(WAIT_TIME)
    if timeout < BLOCK:
        raise VshError(f"invalid argument: guest agent timeout '{timeout}' is less than the minimum '{BLOCK}'")
    return float(timeout)


class Agent:
    """One connection to the agent of a channel socket; use as a context manager."""

    def __init__(self, socket_path: str, lock_path: str):
        self.socket_path = socket_path
        self.lock_path = lock_path
        self._sock: socket.socket | None = None
        self._lock_fd: int | None = None
        self._buf = b""

    def __enter__(self):
        self._lock()
        try:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.connect(self.socket_path)
        except OSError as err:
            self.close()
            raise unresponsive(f"cannot connect to the agent channel: {err.strerror or err}") from None
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _lock(self) -> None:
        import fcntl

        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise unresponsive("another command is using the guest agent") from None
                time.sleep(0.05)
        self._lock_fd = fd

    # -- the wire ---------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as err:
            raise unresponsive(f"Guest agent disappeared while executing command ({err.strerror})") from None

    def _fill(self, deadline: float | None) -> None:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _w, _x = select.select([self._sock], [], [], wait)
        if not ready:
            raise unresponsive("Guest agent not available for now")
        chunk = self._sock.recv(65536)
        if not chunk:
            raise unresponsive("Guest agent disappeared while executing command")
        self._buf += chunk

    def _read_object(self, deadline: float | None) -> dict:
        """The next JSON object the agent sends (one per line)."""
        while True:
            line, sep, rest = self._buf.partition(b"\n")
            if sep:
                self._buf = rest
                line = line.strip().strip(b"\xff")
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue                # a fragment of a stale reply
                if isinstance(obj, dict):
                    return obj
                continue
            if len(self._buf) > (64 << 20):
                raise unresponsive("the guest agent's reply is too large")
            self._fill(deadline)

    def sync(self, seconds: float | None) -> None:
        """Resynchronise (guest-sync-delimited): after it, the next object read is our reply."""
        wait = WAIT_TIME if seconds is None or seconds <= 0 else min(float(WAIT_TIME), seconds)
        deadline = time.monotonic() + wait
        sync_id = random.randrange(1, 1 << 31)
        self._send(b"\xff" + json.dumps({"execute": "guest-sync-delimited",
                                         "arguments": {"id": sync_id}}).encode() + b"\n")
        while True:
            mark = self._buf.find(b"\xff")
            if mark >= 0:
                self._buf = self._buf[mark + 1:]
                obj = self._read_object(deadline)
                if obj.get("return") == sync_id:
                    return
                continue
            self._buf = b""
            self._fill(deadline)

    def execute(self, command: str, arguments: dict | None = None, timeout: int = DEFAULT,
                reply: bool = True) -> dict | None:
        """Run ``command``; its whole reply object (``{"return": ...}``), or None when ``reply`` is
        False or the timeout is NOWAIT. AgentCommandError for an ``error`` reply."""
        return self.execute_text(_request(command, arguments), timeout, reply, command)

    def execute_text(self, text: str, timeout: int = DEFAULT, reply: bool = True,
                     name: str | None = None) -> dict | None:
        """Send one command given as JSON text (qemu-agent-command); its reply object as
        :meth:`execute`."""
        seconds = timeout_seconds(timeout)
        self.sync(seconds)
        self._send(text.encode() + b"\n")
        if not reply or timeout == NOWAIT:
            return None
        deadline = None if seconds is None else time.monotonic() + seconds
        obj = self._read_object(deadline)
        if "error" in obj:
            err = obj.get("error") if isinstance(obj.get("error"), dict) else {}
            raise AgentCommandError(name or _command_name(text), err.get("class"), err.get("desc"))
        if "return" not in obj:
            raise VshError(f"internal error: unable to execute QEMU agent command '{name or _command_name(text)}'")
        return obj


    def execute_unanswered(self, command: str, arguments: dict | None = None, wait: float = 1.0) -> None:
        """Run a command the agent answers only when it cannot act (guest-shutdown, the
        guest-suspend-* family): wait ``wait`` seconds for such an error; silence, or the channel
        closing as the guest goes down, is success."""
        self.sync(float(WAIT_TIME))
        self._send(_request(command, arguments).encode() + b"\n")
        try:
            obj = self._read_object(time.monotonic() + wait)
        except AgentUnresponsive:
            return
        if "error" in obj:
            err = obj.get("error") if isinstance(obj.get("error"), dict) else {}
            raise AgentCommandError(command, err.get("class"), err.get("desc"))


def _request(command: str, arguments: dict | None) -> str:
    """One command as the agent reads it (compact JSON)."""
    msg: dict = {"execute": command}
    if arguments:
        msg["arguments"] = arguments
    return json.dumps(msg, separators=(",", ":"))


def _command_name(text: str) -> str:
    try:
        name = json.loads(text).get("execute")
    except (ValueError, AttributeError):
        name = None
    return name if isinstance(name, str) else "<unknown>"
