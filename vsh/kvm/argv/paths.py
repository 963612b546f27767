"""Where a running domain's files live: the paths the argv builder writes into QEMU's options."""

from __future__ import annotations

import os
from collections import namedtuple


class RuntimePaths(namedtuple("RuntimePaths", "rundir qmp_socket console_log vnc_socket qmp_listen_fd",
                              defaults=(None,))):
    """Where a running domain's files live (``rundir`` is a 0700 directory owned by vsh).

    ``qmp_listen_fd``: a unix socket the caller already bound (at ``qmp_socket``)
    and listens on, passed to QEMU with ``pass_fds``; None lets QEMU bind the path.
    """

    __slots__ = ()

    @classmethod
    def for_rundir(cls, rundir: str | os.PathLike, qmp_listen_fd: int | None = None) -> "RuntimePaths":
        """The standard layout: qmp.sock, console.log, vnc.sock in ``rundir``."""
        rundir = os.fspath(rundir)
        return cls(rundir, os.path.join(rundir, "qmp.sock"), os.path.join(rundir, "console.log"),
                   os.path.join(rundir, "vnc.sock"), qmp_listen_fd)

    def log_for(self, alias: str) -> str:
        return os.path.join(self.rundir, alias + ".log")

    def socket_for(self, alias: str) -> str:
        return os.path.join(self.rundir, alias + ".sock")
