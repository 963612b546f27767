"""Files of the caller's machine that a remote call names (``Volume.upload``/``download``)."""

from __future__ import annotations

import os

from vsh.core.errors import VshError


class LocalFile:
    """A file on the caller's machine that a call names (``Volume.upload``/``download``): sent to
    the server before the call (``fd``, at most ``length`` bytes), or with ``out`` received into
    :attr:`path` as the server sends it back (made 0600 when new, truncated when it exists)."""

    def __init__(self, fd: int | None = None, length: int | None = None, sparse: bool = False,
                 out: str | None = None):
        self.fd, self.length, self.sparse, self.path = fd, length, sparse, out
        self.out_fd = None
        self.created = False

    def receive(self, frame: dict) -> None:
        from vsh.api.protocol import write_file_frame

        if self.out_fd is None:
            try:
                self.out_fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                self.created = True
            except FileExistsError:
                try:
                    self.out_fd = os.open(self.path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
                except OSError as exc:
                    raise VshError(f"cannot create {self.path}: {exc.strerror}") from None
            except OSError as exc:
                raise VshError(f"cannot create {self.path}: {exc.strerror}") from None
        try:
            done = write_file_frame(self.out_fd, frame)
        except OSError as exc:
            raise VshError(f"cannot write to {self.path}: {exc.strerror}") from None
        if done:
            os.close(self.out_fd)
            self.out_fd = -1

    def abandon(self) -> None:
        """The call failed: a file made for it goes again."""
        if self.out_fd is not None and self.out_fd >= 0:
            os.close(self.out_fd)
            self.out_fd = -1
        if self.created:
            try:
                os.unlink(self.path)
            except OSError:
                pass
