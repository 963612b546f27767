"""The file primitives of the store: private directories, atomic writes, vsh's one lock.

Everything is private to its user (directories 0700, files 0600). Writes are atomic
(temporary file, fsync, rename, fsync of the directory): readers see the old or the new
content, and a killed writer leaves at most a ``.tmp-PID-*`` file that the next write sweeps.
Only ``os`` at import time: every single-shot command opens the store.
"""

from __future__ import annotations

import os

from vsh.core.errors import OperationInvalid, VshError
from vsh.core.runtime import pid_alive


def ensure_private_dir(path):
    """Create a directory 0700 (and its parents); refuse one owned by someone else.

    A symbolic link there counts as someone else's unless this user owns the link
    too (another user's link in /tmp could point vsh anywhere, and swap its target).
    Takes and returns a str or a Path.
    """
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise VshError(f"cannot create directory '{path}': {exc.strerror}") from None
    link = os.lstat(path)
    if link.st_uid != os.geteuid():
        raise VshError(f"{'symbolic link' if os.path.islink(path) else 'directory'} '{path}' belongs "
                       f"to another user (uid {link.st_uid})")
    st = os.stat(path)
    if st.st_uid != os.geteuid():
        raise VshError(f"directory '{path}' belongs to another user (uid {st.st_uid})")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


TMP_PREFIX = ".tmp-"  # atomic_write's temporary files: .tmp-PID-RANDOM


def atomic_write(path, data: bytes | str, mode: int = 0o600, durable: bool = True, sweep: bool = True) -> None:
    """Write a file so that readers see the old or the new content, never a mix (str or Path).

    ``durable`` also fsyncs the file and its directory (what must survive a power loss; a
    killed writer never loses a renamed file either way). Temporary files that a killed
    writer left in the directory are removed afterwards (:func:`remove_stale_tmp`) unless
    ``sweep`` is false (the caller knows when a writer died: the UUID index's rebuild).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(os.fspath(path)) or "."
    # a short hidden temp name: listings skip it, and it fits however long the final name is
    tmp = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        remove_file(tmp)
        raise
    os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        remove_file(tmp)
        raise
    if durable:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    if sweep:
        remove_stale_tmp(directory)


def remove_stale_tmp(directory) -> int:
    """Remove the ``.tmp-PID-*`` files of writers that died before their rename (PID no longer
    runs); a live writer's (this process's included) are left alone. Returns how many went."""
    me = os.getpid()
    try:
        with os.scandir(directory) as entries:
            names = [e.name for e in entries if e.name.startswith(TMP_PREFIX)]
    except OSError:
        return 0
    removed = 0
    for name in names:
        pid = name[len(TMP_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == me or pid_alive(int(pid)):
            continue
        removed += remove_file(os.path.join(directory, name))
    return removed


def remove_file(path) -> bool:
    """Remove a file if it is there; True when it was."""
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


def fsync_dir(path) -> None:
    """Make a rename or unlink in ``path`` durable (best effort: errors are ignored)."""
    try:
        fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Lock:
    """An exclusive flock on a file, as a context manager: vsh's one lock.

    ``with Lock(path, timeout, busy):`` makes the file's directory (and that
    directory's parent) private first, waits at most ``timeout`` seconds, then
    fails with ``BUSY (waited N s)``. Closing the descriptor releases the lock.
    """

    def __init__(self, path: str, timeout: float, busy: str):
        self.path = path
        self.timeout = timeout
        self.busy = busy
        self.fd: int | None = None

    def __enter__(self) -> "Lock":
        import fcntl
        import time

        directory = os.path.dirname(self.path)
        ensure_private_dir(os.path.dirname(directory))
        ensure_private_dir(directory)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline = time.monotonic() + self.timeout
            delay = 0.005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise OperationInvalid(f"{self.busy} (waited {self.timeout:.0f} s)") from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None

