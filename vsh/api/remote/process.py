"""The ssh child process of a remote connection, without :mod:`subprocess`.

``subprocess`` imports threading, selectors, signal, locale (and through them enum and re): ~10 ms
of a single-shot remote command's start-up. A channel needs little of it: a child with pipes on
its stdin, stdout and stderr in a session of its own, its exit waited for with a timeout.
"""

from __future__ import annotations

import _thread
import os


class Child:
    """``argv`` started (``$PATH`` searched) by ``posix_spawn`` in a new session; ``stdin`` and
    ``stdout``/``stderr`` are our ends of its pipes (descriptors). OSError when it cannot start."""

    def __init__(self, argv: list[str]):
        made: list[int] = []
        try:
            for _ in range(3):
                made += [_above_stdio(fd) for fd in os.pipe2(os.O_CLOEXEC)]
            in_r, in_w, out_r, out_w, err_r, err_w = made
            # dup2 onto 0, 1, 2 clears close-on-exec there: only those reach the child
            actions = [(os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate((in_r, out_w, err_w))]
            self.pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions, setsid=True)
        except BaseException:
            for fd in made:
                os.close(fd)
            raise
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        self.stdin, self.stdout, self.stderr = in_w, out_r, err_r
        self.returncode: int | None = None
        self._reap = _thread.allocate_lock()    # the channel's reader thread waits too: one reaps

    def close_stdin(self) -> None:
        fd, self.stdin = self.stdin, -1
        if fd >= 0:
            os.close(fd)

    def poll(self) -> int | None:
        """The exit status once it ended (reaped), else None; -N for a signal N, as subprocess."""
        with self._reap:
            if self.returncode is None:
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:       # reaped outside this object: its status is lost
                    pid, status = self.pid, None
                if pid:
                    self.returncode = -1 if status is None else os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status, waiting at most ``timeout`` s (None: for ever); None at the timeout.
        A pidfd wakes us when it ends (no polling)."""
        if self.poll() is not None:
            return self.returncode
        if timeout is None:
            while self.poll() is None:          # blocks in select on a pidfd, not holding the lock
                self.wait(3600.0)
            return self.returncode
        import select

        fd = os.pidfd_open(self.pid)
        try:
            select.select([fd], [], [], timeout)
        finally:
            os.close(fd)
        return self.poll()

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, 9)                # SIGKILL (the signal module imports enum)

    def close(self) -> None:
        """Our ends of the pipes closed (the child reaped by :meth:`wait` first)."""
        self.close_stdin()
        for name in ("stdout", "stderr"):
            fd = getattr(self, name)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)


def _above_stdio(fd: int) -> int:
    """``fd``, moved above 2 when it is one of 0, 1, 2 (ours were closed): dup2 onto itself would
    keep it close-on-exec and the child would start without it."""
    if fd > 2:
        return fd
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return moved
