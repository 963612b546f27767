"""The store's event journal: the domain events no supervisor sees, for ``vsh event``.

libvirtd tells its event listeners when a definition is added, changed, renamed or removed and
when a domain's metadata changes, running or not. vsh has no daemon: the command that makes the
change appends the event to ``events.log`` in the store's runtime directory, and each listener
reads what was appended since it began (:class:`Follower`), beside the events of the running
domains' supervisors.

One line per event, written with one ``write`` on an ``O_APPEND`` descriptor (whole lines, in
order, whatever the number of writers)::

    TIME <TAB> DOMAIN <TAB> EVENT <TAB> FIELD1 <TAB> FIELD2

the text fields in Python's ``unicode_escape`` (no tab or newline inside them). Past 1 MiB the
writer that finds the file too long renames it to ``events.log.old`` (under ``flock``) and
starts a new one; a listener finishes the old file first. The runtime directory is a tmpfs:
like libvirt's, the events do not outlive a boot. A listener makes the runtime directory (as
vsh makes it: 0700, refused when another user planted it); a writer finds none when nobody
listens and writes nothing then. Recording is best effort: a journal that cannot be written
never fails the change itself.
"""

from __future__ import annotations

import os
import time

FILE = "events.log"
LIMIT = 1 << 20


def _esc(text: str) -> str:
    return text.encode("unicode_escape").decode("ascii")


def _unesc(text: str) -> str:
    return text.encode("ascii").decode("unicode_escape")


def record(run_root: str, domain: str, event: str, *fields: str) -> None:
    """Append one event of ``domain`` to the journal of the store whose runtime directory is
    ``run_root``; ``fields`` are the event's own (strings)."""
    import fcntl

    if not _ours(run_root):
        return      # no runtime directory yet (no listener: it makes one), or another user planted it
    line = "\t".join((repr(time.time()), _esc(domain), event, *map(_esc, fields))) + "\n"
    path = os.path.join(run_root, FILE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size > LIMIT:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.fstat(fd).st_ino == os.stat(path).st_ino:      # no other writer moved it yet
                    os.replace(path, path + ".old")
                os.close(fd)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.write(fd, line.encode("ascii"))
        finally:
            os.close(fd)
    except OSError:
        pass


def _ours(path: str) -> bool:
    """Whether ``path`` is a directory of this user's, through links of this user's only. Its
    mode is left as it is: a running QEMU's user may have been granted search on it (ACL)."""
    try:
        return os.lstat(path).st_uid == os.geteuid() and os.stat(path).st_uid == os.geteuid() and \
            os.path.isdir(path)
    except OSError:
        return False


def parse(line: str) -> tuple[float, str, str, list[str]] | None:
    """(time, domain, event, fields) of one journal line; None for one that is not whole."""
    parts = line.rstrip("\n").split("\t")
    if len(parts) < 3 or not line.endswith("\n"):
        return None
    try:
        return float(parts[0]), _unesc(parts[1]), parts[2], [_unesc(p) for p in parts[3:]]
    except (ValueError, UnicodeError):
        return None


class Follower:
    """Reads the events appended to a store's journal after it was made."""

    def __init__(self, run_root: str):
        from vsh.core.errors import VshError
        from vsh.core.files import ensure_private_dir

        if not os.path.lexists(run_root):
            ensure_private_dir(run_root)    # where writers look for listeners: made as vsh makes it
        elif not _ours(run_root):
            raise VshError(f"directory '{run_root}' belongs to another user")
        self.path = os.path.join(run_root, FILE)
        try:
            st = os.stat(self.path)
            self.ino, self.pos = st.st_ino, st.st_size
        except OSError:
            self.ino, self.pos = None, 0

    def poll(self) -> list[tuple[float, str, str, list[str]]]:
        """The events appended since the last call, oldest first."""
        try:
            ino = os.stat(self.path).st_ino
        except OSError:
            ino = None
        out = []
        if self.ino is not None and ino != self.ino:           # rotated: the rest of the old file
            out += self._read(self.path + ".old")
            self.ino, self.pos = ino, 0
        elif self.ino is None and ino is not None:
            self.ino, self.pos = ino, 0
        if ino is not None:
            out += self._read(self.path)
        return out

    def _read(self, path: str) -> list:
        try:
            with open(path, "rb") as fh:
                if os.fstat(fh.fileno()).st_ino != self.ino:
                    return []
                fh.seek(self.pos)
                data = fh.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1                 # a line still being written waits for the next poll
        self.pos += end
        events = (parse(line) for line in data[:end].decode("ascii", "replace").splitlines(keepends=True))
        return [ev for ev in events if ev is not None]
