"""The destination's side of a live migration, and the way the source's stream reaches it.

A live migration (``dom.migrate``, :mod:`vsh.api.lifecycle`) runs from the source's driver; the
destination is any connection, reached through these calls (libvirt's Prepare / Finish steps):
:meth:`ConnectionMigration.migrate_prepare` starts the incoming domain there,
:meth:`ConnectionMigration.forward_socket` gives the source a unix socket on its own machine
that leads to the incoming QEMU's, and :meth:`ConnectionMigration.migrate_finish` lets the
domain run there (or forgets it when the migration failed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class SocketForward(ABC):
    """A unix socket on the caller's machine (:attr:`path`) whose connections reach a socket on a
    connection's host, until :meth:`close` (which removes it; idempotent). ``contextlib.closing``
    makes it a context."""

    path: str

    @abstractmethod
    def close(self) -> None:
        """Stop forwarding."""

    def failure(self) -> str | None:
        """Why connections through the forward were refused on the far side, in words for an error
        (asked after a migration over it failed); None when it knows of no such refusal."""
        return None


class ConnectionMigration(ABC):
    """Connection-level operations of the destination of a migration."""

    @abstractmethod
    def migrate_prepare(self, xml: str, *, persistent_xml: str | None = None, paused: bool = False,
                        timeout: float = 3600.0, disks: list[dict] | None = None) -> dict:
        """``virDomainMigratePrepare3``: start the domain of the live ``xml`` (the source's, without
        its id) here, its QEMU waiting for a migration stream (``-incoming defer``) on a unix socket
        in the domain's runtime directory; return ``name``, ``socket`` (that socket's path on this
        connection's host) and ``persistent`` once it listens. ``persistent_xml`` defines the
        domain here first (unless a definition of the same UUID is there already); without it the
        domain runs transient here unless it is defined. ``paused``: it stays paused after the
        switch. The incoming QEMU waits ``timeout`` s for the stream. ``disks`` (``--copy-storage-all``:
        ``[{"target", "size", "dev", "ino"}]``, the source's writable disks, their virtual size and
        the source file's device and inode) are received here: each file the live XML names for
        that target is made when missing (its format, that size), refused when it is the source's
        own file or smaller, and exported writable by the incoming QEMU's NBD server on another
        unix socket, ``nbd_socket`` in the result (export names: the targets). A domain of that name
        already active here, another UUID, a disk or kernel this host cannot open: the error comes
        before anything is left here. Follow with :meth:`migrate_finish`."""

    @abstractmethod
    def migrate_finish(self, name: str, ok: bool = True) -> dict:
        """``virDomainMigrateFinish3``: end what :meth:`migrate_prepare` started for ``name``. ``ok``
        (the source's QEMU has sent the guest): wait until the domain runs here (``running
        (migrated)``, or paused) and return its runtime state; VshError when it did not take over.
        Not ``ok`` (the migration failed or was cancelled): stop the incoming QEMU, undefine what
        prepare defined, return ``{}``. OperationInvalid when no incoming migration of ``name`` is
        pending on this connection. Closing a connection abandons its pending ones (not ``ok``)."""

    @abstractmethod
    def forward_socket(self, path: str, local_path: str) -> SocketForward:
        """A :class:`SocketForward` on the caller's machine that reaches the unix socket ``path`` on
        this connection's host (where :meth:`migrate_prepare`'s QEMU listens). A store of this host
        needs none: its ``path`` is ``path`` itself; a remote vsh gets an OpenSSH forward of
        ``local_path`` to ``path`` (no TCP port anywhere). VshError when it cannot be set up."""
