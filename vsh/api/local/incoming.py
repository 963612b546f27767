"""The local driver as the destination of a live migration (:mod:`vsh.api.migration`).

:meth:`migrate_prepare` launches the domain's live XML under a supervisor with ``-incoming
defer`` (the launch runs in a thread of this process: it returns only once the incoming QEMU
has the guest) and returns when that QEMU listens on ``migrate.sock`` in the domain's runtime
directory; :meth:`migrate_finish` waits for that launch, or stops it and forgets what prepare
defined. The pending launches are the connection's own (``LocalConnection.incoming``), so over
``vsh serve`` they live in the server's process, and a connection that closes (an ssh session
that drops) abandons them.
"""

from __future__ import annotations

import os
import time

from vsh.api.migration import ConnectionMigration, SocketForward
from vsh.core.errors import InvalidArgument, OperationInvalid, Timeout, VshError

#: The name of the incoming QEMU's socket in the destination's runtime directory.
MIGRATE_SOCKET = "migrate.sock"
#: Seconds the incoming QEMU has to listen.
SOCKET_WAIT = 60.0
#: Seconds the destination has to take over once the source's QEMU has sent everything.
TAKE_OVER_WAIT = 120.0


class _Pending:
    """One incoming migration: the launch thread, what it gave, what prepare defined."""

    def __init__(self, defined_here: bool):
        self.defined_here = defined_here
        self.outcome: dict = {}
        self.thread = None          # the launch's threading.Thread


class SameHost(SocketForward):
    """A socket of this host needs no forward: its own path."""

    def __init__(self, path: str):
        self.path = path

    def close(self) -> None:
        pass


class LocalConnectionMigration(ConnectionMigration):
    """Mixed into :class:`~vsh.api.local.connection.LocalConnection` (``store``, ``incoming``)."""

    def migrate_prepare(self, xml: str, *, persistent_xml: str | None = None, paused: bool = False,
                        timeout: float = 3600.0) -> dict:
        import threading

        from vsh.api.local.launch import launch
        from vsh.api.local.saves import check_not_running
        from vsh.core.domain import Domain

        live = Domain.parse(xml)
        live.id = None
        if live.name in self.incoming:
            raise OperationInvalid(f"Requested operation is not valid: domain '{live.name}' is already "
                                   "being migrated here")
        was_persistent = check_not_running(self.store, live)
        sock = os.path.join(self.store.runtime_path(live.name), MIGRATE_SOCKET)
        if len(os.fsencode(sock)) > 107:
            raise InvalidArgument(f"the destination's runtime directory is too deep for a unix socket: {sock}")
        defined_here = False
        if persistent_xml is not None and not was_persistent:
            config = Domain.parse(persistent_xml)
            if (config.uuid or "").lower() != (live.uuid or "").lower() or config.name != live.name:
                raise InvalidArgument("the persistent definition names another domain than the live XML")
            self.store.define(config)
            defined_here = True
        try:
            os.unlink(sock)                 # a socket an earlier incoming migration left behind
        except FileNotFoundError:
            pass
        pending = self.incoming[live.name] = _Pending(defined_here)
        first_run = {"incoming": {"uri": f"unix:{sock}", "timeout": timeout}, "running_reason": "migrated",
                     "paused_reason": "migration", "drop_argv": ["-incoming", "defer"]}
        transient = not (defined_here or was_persistent)

        def run():
            try:
                pending.outcome["state"] = launch(self.store, live, transient=transient, paused=paused,
                                                  extra_argv=["-incoming", "defer"], first_run=first_run)
            except BaseException as exc:        # reported by migrate_finish (or the wait below)
                pending.outcome["error"] = exc

        pending.thread = threading.Thread(target=run, name=f"vsh-incoming-{live.name}", daemon=True)
        pending.thread.start()
        try:
            _wait_for_socket(sock, pending)
        except BaseException:
            self._abandon(live.name)
            raise
        return {"name": live.name, "socket": sock, "persistent": not transient}

    def migrate_finish(self, name: str, ok: bool = True) -> dict:
        pending = self.incoming.get(name)
        if pending is None:
            raise OperationInvalid(f"Requested operation is not valid: no incoming migration of domain '{name}'")
        if not ok:
            self._abandon(name)
            return {}
        del self.incoming[name]
        pending.thread.join(TAKE_OVER_WAIT)
        if pending.thread.is_alive() or "error" in pending.outcome:
            err = pending.outcome.get("error")
            lines = err.lines if isinstance(err, VshError) else [str(err)] if err else \
                [f"it did not run within {TAKE_OVER_WAIT:g} s"]
            raise VshError("operation failed: the destination did not take over the migrated domain", *lines)
        return pending.outcome["state"]

    def forward_socket(self, path: str, local_path: str) -> SocketForward:
        return SameHost(path)

    def _abandon(self, name: str) -> None:
        """A migration that failed: stop the half-started domain, forget what prepare defined."""
        from vsh.kvm import client

        pending = self.incoming.pop(name, None)
        if pending is None:
            return
        ref = self.store.find(name)
        if ref is not None and ref.active:
            try:
                client.destroy(self.store.runtime_dir(name))
            except VshError:
                pass
        if pending.thread is not None:
            pending.thread.join(60.0)
        if pending.defined_here:
            try:
                self.store.undefine(self.store.get(name))
            except VshError:
                pass

    def abandon_incoming(self) -> None:
        """Every pending incoming migration abandoned (the connection closes)."""
        for name in list(self.incoming):
            self._abandon(name)


def _wait_for_socket(sock: str, pending: _Pending) -> None:
    """Wait until the incoming QEMU listens (or its launch failed)."""
    deadline = time.monotonic() + SOCKET_WAIT
    while not os.path.exists(sock):
        if not pending.thread.is_alive():
            pending.thread.join()
            err = pending.outcome.get("error")
            if isinstance(err, VshError):
                raise err.with_context("operation failed: the destination could not start the domain")
            raise VshError("operation failed: the destination could not start the domain", str(err))
        if time.monotonic() > deadline:
            raise Timeout(f"the destination's QEMU did not listen on {sock} within {SOCKET_WAIT:g} s")
        time.sleep(0.02)
