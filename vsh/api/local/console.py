"""The local driver's console stream: the domain's pty or socket, held under the
one-session lock of :mod:`vsh.kvm.console`."""

from __future__ import annotations

import os

from vsh.api.lifecycle import ConsoleStream


class LocalConsole(ConsoleStream):
    """The serial console named in runtime ``state`` of the domain whose runtime files are in
    ``rundir``; the session lock is taken (``force``: taken over) before the device is opened."""

    def __init__(self, state: dict, rundir, force: bool = False):
        from vsh.kvm.console import ConsoleLock, open_device

        self.name = state.get("name", "")
        self._lock = ConsoleLock(rundir)
        self._lock.acquire(force=force)
        try:
            self._fd = open_device(state)
        except BaseException:
            self._lock.release()
            raise

    def fileno(self) -> int:
        return self._fd

    def read(self, size: int = 65536) -> bytes | None:
        try:
            return os.read(self._fd, size)
        except BlockingIOError:
            return None
        except OSError:                 # EIO: QEMU closed the pty (the domain stopped)
            return b""

    def write(self, data: bytes) -> None:
        from vsh.kvm.console import write_all

        write_all(self._fd, data)

    @property
    def taken_over(self) -> bool:
        return self._lock.taken_over()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._lock.release()
