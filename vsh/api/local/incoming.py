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
#: Its NBD server's socket (--copy-storage-all), in the same directory.
NBD_SOCKET = "nbd.sock"
#: Seconds the incoming QEMU has to listen.
SOCKET_WAIT = 60.0
#: Seconds the destination has to take over once the source's QEMU has sent everything.
TAKE_OVER_WAIT = 120.0


class _Pending:
    """One incoming migration: the launch thread, what it gave, what prepare defined."""

    def __init__(self, defined_here: bool):
        self.defined_here = defined_here
        self.created: list[str] = []    # disk files made for a storage copy (removed if it fails)
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
                        timeout: float = 3600.0, disks: list[dict] | None = None) -> dict:
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
        exports = _receiving(live, disks) if disks else []
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
        nbd = os.path.join(os.path.dirname(sock), NBD_SOCKET)
        if exports:
            try:
                pending.created = _make_disks(exports)
            except BaseException:
                self._abandon(live.name)
                raise
            first_run["incoming"]["nbd"] = {"socket": nbd, "exports": [
                {"path": e["path"], "name": e["target"]} for e in exports]}
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
        return {"name": live.name, "socket": sock, "persistent": not transient,
                **({"nbd_socket": nbd} if exports else {})}

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
        for path in pending.created:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def abandon_incoming(self) -> None:
        """Every pending incoming migration abandoned (the connection closes)."""
        for name in list(self.incoming):
            self._abandon(name)


def disk_files(dom, writable: bool = False) -> dict:
    """target → (file or device, format) of each disk of ``dom`` that has a source; ``writable``:
    only those the guest writes (not read-only, not shareable, not a CD-ROM or floppy), the
    disks a storage copy moves, as libvirt's --copy-storage-all does."""
    out = {}
    for disk in dom.node.findall("./devices/disk"):
        target, source = disk.find("target"), disk.find("source")
        path = (source.get("file") or source.get("dev")) if source is not None else None
        if target is None or not path:
            continue
        if writable and (disk.get("device", "disk") not in ("disk", "lun") or disk.find("readonly") is not None
                         or disk.find("shareable") is not None):
            continue
        driver = disk.find("driver")
        out[target.get("dev")] = (path, (driver.get("type") if driver is not None else None) or "raw")
    return out


def _receiving(live, disks: list[dict]) -> list[dict]:
    """The disks of a storage copy, with the file and format the live XML names for each target:
    ``[{"target", "path", "format", "size", "exists"}]``; refused when one is the source's own file
    (shared storage: nothing to copy) or smaller than the source's."""
    by_target = disk_files(live)
    out = []
    for want in disks:
        path, fmt = by_target.get(want["target"], (None, None))
        if not path:
            raise InvalidArgument(f"the destination's XML has no file for disk '{want['target']}' to copy into")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            out.append({"target": want["target"], "path": path, "format": fmt, "size": int(want["size"]),
                        "exists": False})
            continue
        if (st.st_dev, st.st_ino) == (want.get("dev"), want.get("ino")):
            raise OperationInvalid(f"Requested operation is not valid: disk '{want['target']}' of the destination "
                                   f"is the source's own file {path} (shared storage): migrate without "
                                   "--copy-storage-all, or name other files with --xml")
        size = virtual_size(path, fmt)
        if size < int(want["size"]):
            raise OperationInvalid(f"Requested operation is not valid: the destination's disk {path} "
                                   f"({size} bytes) is smaller than the source's ({want['size']} bytes)")
        out.append({"target": want["target"], "path": path, "format": fmt, "size": size, "exists": True})
    return out


def virtual_size(path: str, fmt: str) -> int:
    """The size of the disk the guest sees in the image ``path`` of format ``fmt`` (raw or qcow2)."""
    if fmt == "qcow2":
        from vsh.core.qcow2 import read_header_at

        header = read_header_at(path)
        return header.size if header is not None else 0
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def _make_disks(exports: list[dict]) -> list[str]:
    """Make the disk files that are missing (qemu-img, the format and size given); their paths."""
    import subprocess

    made = []
    try:
        for e in exports:
            if e["exists"]:
                continue
            proc = subprocess.run(["qemu-img", "create", "-q", "-f", e["format"], e["path"], str(e["size"])],
                                  capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                raise VshError(f"cannot create the destination's disk {e['path']}",
                               *proc.stderr.strip().splitlines())
            made.append(e["path"])
    except BaseException:
        for path in made:
            os.unlink(path)
        raise
    return made


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
