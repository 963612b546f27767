"""The serial console of a running domain, and its console log: the stream side.

The terminal side (raw mode, the escape character, the output filter, the relay
loop) is :mod:`vsh.ui.console`; this module only reaches the guest:

* :class:`ConsoleLock`: one console session per domain; a lock file in RUNDIR holds
  the holder's pid. ``force`` notes the taker in the file, signals the holder
  (SIGTERM), waits for it to let go and takes over; :meth:`ConsoleLock.taken_over`
  tells the holder that is what happened.
* :func:`open_device` opens the guest's serial console (the pty or unix socket named
  in the runtime state), non-blocking; :func:`write_all` writes to such a descriptor.
* :func:`log_chunks` yields ``console.log`` (the serial output of the current or last
  run), and with ``follow`` keeps yielding as it grows (inotify, no polling) until the
  domain stops.
"""

from __future__ import annotations

import os
import select
import signal
import time

from vsh.core.errors import OperationInvalid, Timeout

CONSOLE_LOCK = "console.lock"


# --------------------------------------------------------------------------------------
# the one-session lock
# --------------------------------------------------------------------------------------

class ConsoleLock:
    """``RUNDIR/console.lock``: flock + the holder's pid (and, during a take-over, the taker's)."""

    def __init__(self, rundir):
        self.path = os.path.join(os.fspath(rundir), CONSOLE_LOCK)
        self.fd: int | None = None

    def acquire(self, force: bool = False, timeout: float = 5.0) -> None:
        import fcntl
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not force:
                    raise OperationInvalid("operation failed: Active console session exists "
                                           "for this domain (use --force to take it over)") from None
                self._take_over(fd, timeout)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def _take_over(self, fd: int, timeout: float) -> None:
        import fcntl
        try:
            holder = int(os.pread(fd, 32, 0).split()[0])
        except (ValueError, IndexError):
            holder = None
        pidfd = None
        if holder and holder != os.getpid():
            os.pwrite(fd, f"{holder}\n{os.getpid()}\n".encode(), 0)    # tells the holder why it is asked to go
            try:
                pidfd = os.pidfd_open(holder)
                signal.pidfd_send_signal(pidfd, signal.SIGTERM)
            except ProcessLookupError:
                pidfd = None
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    pass
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout(f"the console session of process {holder} did not end within "
                                  f"{timeout:g} s; kill it or try again")
                if pidfd is not None:
                    select.select([pidfd], [], [], left)    # wake when the holder exits
                    os.close(pidfd)
                    pidfd = None
                else:
                    time.sleep(min(left, 0.05))             # holder unknown: brief retries
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def taken_over(self) -> bool:
        """Whether another session has asked for the console (a forced attach)."""
        if self.fd is None:
            return False
        try:
            return len(os.pread(self.fd, 64, 0).split()) > 1
        except OSError:
            return False

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None


# --------------------------------------------------------------------------------------
# the device
# --------------------------------------------------------------------------------------

def open_device(state: dict) -> int:
    """A non-blocking descriptor on the console named in the runtime ``state`` (pty or socket)."""
    pty = state.get("console_pty")
    sock_path = state.get("console_socket")
    if pty:
        try:
            return os.open(pty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise OperationInvalid(f"internal error: cannot open console {pty}: {exc.strerror}") from None
    if sock_path:
        import socket
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(sock_path)
        except OSError as exc:
            sock.close()
            raise OperationInvalid(f"internal error: cannot connect to console {sock_path}: "
                                   f"{exc.strerror}") from None
        sock.setblocking(False)
        return sock.detach()
    raise OperationInvalid("internal error: cannot find character device <null>")


def write_all(fd: int, data: bytes, timeout: float = 10.0) -> None:
    """Write all of ``data`` to a (possibly non-blocking) descriptor."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
            view = view[n:]
        except BlockingIOError:
            if not select.select([], [fd], [], timeout)[1]:
                raise Timeout("the console did not accept input within "
                              f"{timeout:g} s") from None


# --------------------------------------------------------------------------------------
# the console log
# --------------------------------------------------------------------------------------

class _Inotify:
    """Just enough inotify (through libc) to wake up when files in a directory change."""

    IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x2, 0x8, 0x80, 0x100

    def __init__(self, directory: str):
        import ctypes
        import ctypes.util
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        mask = self.IN_MODIFY | self.IN_CLOSE_WRITE | self.IN_MOVED_TO | self.IN_CREATE
        if libc.inotify_add_watch(self.fd, os.fsencode(directory), mask) < 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(err, "inotify_add_watch")

    def wait(self, timeout: float) -> None:
        if select.select([self.fd], [], [], timeout)[0]:
            try:
                while os.read(self.fd, 65536):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        os.close(self.fd)


def log_chunks(rundir, follow: bool = False, timeout: float | None = None):
    """Yield ``console.log`` in chunks; with ``follow`` keep going until the domain stops.

    ``timeout`` bounds a follow (None: until the domain stops).  A log that shrinks
    (a new run truncated it) is read again from its start.
    """
    from vsh.kvm import client as rt
    rundir = os.fspath(rundir)
    path = os.path.join(rundir, rt.CONSOLE_LOG)
    pos = [0]
    watcher = _Inotify(rundir) if follow else None
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            yield from _read_from(path, pos)
            if not follow:
                return
            st = rt.read_state(rundir)
            if not st or (st.get("state") not in rt.ACTIVE_STATES and
                          not rt.pid_alive(st.get("supervisor_pid"), st.get("supervisor_starttime"))):
                yield from _read_from(path, pos)
                return
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            # inotify wakes us on writes; the 1 s cap also notices a domain stopped
            # by a host reboot or a supervisor that died without writing state
            watcher.wait(1.0 if left is None else min(1.0, left))
    finally:
        if watcher is not None:
            watcher.close()


def _read_from(path: str, pos: list):
    """Yield what ``path`` holds from ``pos[0]`` on, advancing it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        pos[0] = 0
        return
    try:
        if os.fstat(fd).st_size < pos[0]:
            pos[0] = 0
        while True:
            data = os.pread(fd, 65536, pos[0])
            if not data:
                return
            pos[0] += len(data)
            yield data
    finally:
        os.close(fd)
