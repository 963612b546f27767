"""The supervisor's long operations: save the guest into a file (and stop), load it
back from one (``-incoming defer``), and run QMP block jobs to their end.

A mixin of :class:`vsh.kvm.supervisor.core.Supervisor`.
"""

from __future__ import annotations

import os

from vsh.core.errors import Timeout, VshError
from vsh.kvm.supervisor import aio
from vsh.kvm.supervisor.lifecycle import REASONS
from vsh.kvm.supervisor.log import describe_exit, log


#: QEMU's own migration bandwidth limit (bytes/s; MAX_THROTTLE) until someone sets one
QEMU_DEFAULT_BANDWIDTH = 128 << 20


class Jobs:
    """Save, restore and QMP jobs (a mixin of the Supervisor)."""

    async def _send_fd(self, fd: int, name: str) -> None:
        """Hand QEMU a file descriptor (SCM_RIGHTS) under ``name`` (QMP ``getfd``)."""
        if getattr(self, "_fd_lock", None) is None:
            self._fd_lock = aio.asyncio.Lock()
        async with self._fd_lock:
            self._qmp.send_fd_scm(fd)
            await self._exec("getfd", {"fdname": name})

    async def _migrate(self, fd: int | None, outgoing: bool, timeout: float, *, uri: str | None = None,
                       capabilities: tuple = (), suspend_after: float | None = None,
                       what: str | None = None, before_switchover=None) -> dict:
        """Migrate the guest into ``fd`` (save) or out of it (restore), or over ``uri`` (a live
        migration to or from another supervisor's QEMU); wait for the end and return QEMU's last
        ``query-migrate``. ``suspend_after`` (outgoing): pause the guest after that many seconds
        so that the migration converges (virsh migrate --timeout). ``before_switchover`` (with the
        capability ``pause-before-switchover``): awaited once the guest is paused for the switch,
        before QEMU sends the rest (a storage copy's mirrors end there)."""
        what = what or ("save" if outgoing else "restore")
        listener = aio.qmplib.EventListener(("MIGRATION",))
        with self._qmp.listen(listener):
            caps = [{"capability": "events", "state": True}]
            caps += [{"capability": name, "state": True} for name in capabilities]
            await self._exec("migrate-set-capabilities", {"capabilities": caps})
            if outgoing:        # QEMU's default limit (128 MiB/s) is meant for networks; keep a limit
                params = await self._exec("query-migrate-parameters")    # someone set (migrate-setspeed)
                if uri is None or params.get("max-bandwidth") == QEMU_DEFAULT_BANDWIDTH:
                    await self._exec("migrate-set-parameters", {"max-bandwidth": 1 << 62})
            if uri is None:
                await self._send_fd(fd, "vsh-migration")
                uri = "fd:vsh-migration"
            elif outgoing and uri.startswith("unix:"):
                peer = self._connect_peer(uri[5:], what)
                try:
                    await self._send_fd(peer.fileno(), "vsh-migration")
                finally:
                    peer.close()            # QEMU has its own descriptor of it now
                uri = "fd:vsh-migration"
            await self._exec("migrate" if outgoing else "migrate-incoming", {"uri": uri})
            loop = aio.asyncio.get_running_loop()
            deadline = loop.time() + timeout
            suspend_at = None if suspend_after is None else loop.time() + suspend_after
            status = None
            while status not in ("completed", "failed", "cancelled"):
                left = deadline - loop.time()
                if suspend_at is not None:
                    left = min(left, max(suspend_at - loop.time(), 0))
                getter = aio.asyncio.ensure_future(listener.get())
                waits = {getter} | ({self._exit_fut} if self._exit_fut is not None else set())
                done, _ = await aio.asyncio.wait(waits, timeout=max(left, 0),
                                             return_when=aio.asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    if self._exit_fut is not None and self._exit_fut.done():
                        raise VshError(f"operation failed: {what} of domain '{self.name}' failed: QEMU "
                                       f"exited ({describe_exit(self._exit_fut.result())})",
                                       *self._qemu_output())
                    if suspend_at is not None and loop.time() >= suspend_at and loop.time() < deadline:
                        suspend_at = None
                        if self.lc.state == "running":
                            log(f"{what}: suspending the guest so that it converges")
                            await self._exec("stop")
                            self._settle("paused", "migration")
                        continue
                    if outgoing:
                        await self._exec("migrate_cancel")
                    raise Timeout(f"the {what} of domain '{self.name}' did not finish within "
                                  f"{timeout:g} s")
                status = (getter.result().get("data") or {}).get("status")
                if status == "pre-switchover" and before_switchover is not None:
                    await before_switchover()
                    await self._exec("migrate-continue", {"state": "pre-switchover"})
        info = await self._exec("query-migrate")
        if status != "completed":
            raise VshError(f"operation failed: {what} of domain '{self.name}' failed: "
                           f"{info.get('error-desc') or status}")
        return info

    async def _format_nodes(self) -> dict:
        """realpath of each image QEMU has open → its format node's name."""
        out = {}
        for node in await self._exec("query-named-block-nodes", {"flat": True}):
            if node.get("drv") in ("raw", "qcow2") and node.get("file"):
                out.setdefault(os.path.realpath(node["file"]), node["node-name"])
        return out

    async def _serve_disks(self, nbd: dict) -> None:
        """Export the disks ``nbd["exports"]`` (``[{"path", "name"}]``) writable over NBD on the unix
        socket ``nbd["socket"]`` (the incoming side of a storage copy)."""
        nodes = await self._format_nodes()
        await self._exec("nbd-server-start", {"addr": {"type": "unix", "data": {"path": str(nbd["socket"])}}})
        for export in nbd["exports"]:
            node = nodes.get(os.path.realpath(str(export["path"])))
            if node is None:
                raise VshError(f"internal error: QEMU has no block node for the disk {export['path']}")
            await self._exec("block-export-add", {"type": "nbd", "id": f"vsh-nbd-{export['name']}",
                                                  "node-name": node, "name": str(export["name"]),
                                                  "writable": True})

    def _connect_peer(self, path: str, what: str):
        """A socket connected to the unix socket ``path`` (where the destination's QEMU, or a
        forward to it, listens). The supervisor connects, not QEMU: a confined QEMU may not reach
        the socket (another owner, another mount namespace)."""
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(10.0)
        failed = sock.connect_ex(path)
        if failed:
            sock.close()
            raise VshError(f"operation failed: {what} of domain '{self.name}' failed: cannot connect to "
                           f"the destination's socket {path}: {os.strerror(failed)}")
        sock.setblocking(True)
        return sock

    async def _incoming(self, spec: dict) -> None:
        """Load the guest from a save image, or take it over ``uri`` from a migrating QEMU (QEMU
        was started with ``-incoming defer``)."""
        from vsh.kvm import saveimage
        if spec.get("uri"):
            nbd = spec.get("nbd")
            if nbd:                 # --copy-storage-all: the source mirrors the disks into these exports
                await self._serve_disks(nbd)
            await self._migrate(None, outgoing=False, timeout=float(spec.get("timeout") or 600.0),
                                uri=str(spec["uri"]), what="incoming migration")
            if nbd:
                await self._exec("nbd-server-stop")
            return
        path = str(spec["path"])
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise VshError(f"Failed to open file '{path}': {exc.strerror}") from None
        try:
            os.lseek(fd, int(spec.get("offset") or 0), os.SEEK_SET)
            await self._migrate(fd, outgoing=False, timeout=float(spec.get("timeout") or 600.0))
            if spec.get("drop_cache"):
                saveimage.drop_page_cache(fd)
        finally:
            os.close(fd)


    def _settle(self, state: str, reason: str) -> None:
        """Move to ``state`` with ``reason`` (or only change the reason if already there)."""
        if self.lc.state != state:
            self.lc.transition(state, reason)
        elif self.lc.reason != reason and reason in REASONS[state]:
            self.lc.reason = reason
            self.write_state()

    async def _resume_after(self, what: str) -> None:
        """Let the guest run again after a failed ``what`` that had paused it (failures logged)."""
        if self._qmp is None:
            return
        try:
            await self._exec("cont")
            self._settle("running", "unpaused")
        except VshError as exc:
            log(f"resuming after a failed {what}: " + " | ".join(exc.lines))

    async def op_save(self, req):
        """Save the guest into a save image and stop: pause, migrate into the file (whose
        header vsh wrote), make it durable and complete, rename it into place, quit QEMU."""
        self._require("running", "paused")
        from vsh.kvm import saveimage
        tmp, final = str(req["tmp"]), str(req["final"])
        timeout = float(req.get("timeout_s") or 600.0)
        was_running = self.lc.state == "running"
        if was_running:
            await self._exec("stop")
            self._settle("paused", "saving")
        fd = None
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CLOEXEC)
            os.lseek(fd, int(req["offset"]), os.SEEK_SET)
            await self._migrate(fd, outgoing=True, timeout=timeout)
            saveimage.complete(fd, drop_cache=bool(req.get("bypass_cache")))
            os.close(fd)
            fd = None
            os.rename(tmp, final)
            dfd = os.open(os.path.dirname(final) or ".", os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except BaseException:
            if fd is not None:
                os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if was_running:
                await self._resume_after("save")
            raise
        log(f"saved to {final}")
        self._stopping("saved")
        await self._quit()
        await self._wait_for(["shutoff"], 10.0)
        return self.state_dict()

    async def op_migrate_out(self, req):
        """Migrate the guest to the QEMU listening on ``uri`` (``unix:PATH``: another supervisor's
        incoming QEMU), then quit: ``shut off (migrated)``. Not ``live``: the guest is paused for
        the transfer. ``suspend_after``: pause it after that many seconds. ``auto_converge``:
        QEMU throttles the vCPUs until the migration converges. On failure the guest goes on as
        before (resumed if vsh paused it) and the error is raised."""
        self._require("running", "paused")
        timeout = float(req.get("timeout_s") or 600.0)
        was_running = self.lc.state == "running"
        self.job = "migration_out"
        self.write_state()
        mirrors: list[str] = []
        try:
            if was_running and not req.get("live"):
                await self._exec("stop")
                self._settle("paused", "migration")
            caps = ("auto-converge",) if req.get("auto_converge") else ()
            if req.get("mirror"):
                await self._start_mirrors(req["mirror"], mirrors, timeout)
                caps += ("pause-before-switchover",)
            suspend = req.get("suspend_after")
            info = await self._migrate(None, outgoing=True, timeout=timeout, uri=str(req["uri"]),
                                       capabilities=caps, what="migration",
                                       suspend_after=float(suspend) if suspend else None,
                                       before_switchover=(lambda: self._end_mirrors(mirrors, timeout))
                                       if mirrors else None)
        except BaseException:
            if mirrors:
                await self._end_mirrors(mirrors, 30.0, force=True)
            if was_running and self.lc.state == "paused":
                await self._resume_after("migration")
            raise
        finally:
            self.job = None
            self.write_state()
        log(f"migrated to {req['uri']}")
        self._stopping("migrated")
        await self._quit()
        await self._wait_for(["shutoff"], 10.0)
        ram = info.get("ram") or {}
        return {"state": self.state_dict(), "downtime_ms": info.get("downtime"),
                "total_ms": info.get("total-time"), "setup_ms": info.get("setup-time"),
                "transferred": ram.get("transferred"), "iterations": ram.get("dirty-sync-count")}

    async def _start_mirrors(self, mirror: dict, jobs: list, timeout: float) -> None:
        """A storage copy: mirror each disk ``mirror["disks"]`` (``[{"path", "export"}]``) into the
        destination's NBD export of that name behind the unix socket ``mirror["socket"]``, and wait
        until every mirror is in sync (``ready``); the job ids are added to ``jobs`` as they start."""
        from vsh.kvm import confine

        sock = str(mirror["socket"])
        confine.grant_more(self.rundir, [(sock, "rw")])        # QEMU connects to it itself
        nodes = await self._format_nodes()
        listener = aio.qmplib.EventListener(("JOB_STATUS_CHANGE",))
        with self._qmp.listen(listener):
            for disk in mirror["disks"]:
                node = nodes.get(os.path.realpath(str(disk["path"])))
                if node is None:
                    raise VshError(f"internal error: QEMU has no block node for the disk {disk['path']}")
                job = f"vsh-mirror-{disk['export']}"
                await self._exec("drive-mirror", {"job-id": job, "device": node, "format": "raw", "sync": "full",
                                                  "mode": "existing",
                                                  "target": f"nbd+unix:///{disk['export']}?socket={sock}"})
                jobs.append(job)
            await self._wait_jobs(listener, set(jobs), ("ready",), timeout, "copy of the disks")

    async def _wait_jobs(self, listener, waiting: set, wanted: tuple, timeout: float, what: str) -> None:
        """Wait until each job of ``waiting`` reaches a status of ``wanted``; an error when one ends
        (or fails) before."""
        loop = aio.asyncio.get_running_loop()
        deadline = loop.time() + timeout
        status = {j.get("id"): j.get("status") for j in await self._exec("query-jobs")}
        for job in list(waiting):
            if status.get(job) in wanted or (job not in status and "null" in wanted):
                waiting.discard(job)
        while waiting:
            try:
                event = await aio.asyncio.wait_for(listener.get(), max(deadline - loop.time(), 0))
            except aio.asyncio.TimeoutError:
                raise Timeout(f"the {what} of domain '{self.name}' did not finish within {timeout:g} s") from None
            data = event.get("data") or {}
            job, now = data.get("id"), data.get("status")
            if job not in waiting:
                continue
            if now in ("aborting", "concluded", "null"):       # it ends: with an error?
                error = next((j.get("error") for j in await self._exec("query-jobs") if j.get("id") == job), None)
                if error or now == "aborting" or "null" not in wanted:
                    raise VshError(f"operation failed: the {what} of domain '{self.name}' failed: "
                                   f"{error or 'the job ' + str(job) + ' ended early'}")
            if now in wanted:
                waiting.discard(job)

    async def _end_mirrors(self, jobs: list, timeout: float, force: bool = False) -> None:
        """End the mirrors ``jobs``: at the switch (the guest is paused, the copies are in sync) a
        cancel completes each, leaving the destination's disk whole; ``force`` (a failed
        migration) drops them as they are. Errors of a forced end are ignored."""
        listener = aio.qmplib.EventListener(("JOB_STATUS_CHANGE",))
        with self._qmp.listen(listener):
            live = {j.get("id") for j in await self._exec("query-jobs")}
            for job in jobs:
                if job in live:
                    try:
                        await self._exec("block-job-cancel", {"device": job, "force": force})
                    except VshError:
                        if not force:
                            raise
            try:
                await self._wait_jobs(listener, set(jobs) & live, ("null",), timeout, "copy of the disks")
            except VshError:
                if not force:
                    raise
        jobs.clear()

    async def op_job(self, req):
        """Start a QMP job (``command`` with ``arguments`` that name its ``job-id``) and wait
        until it ends; dismiss it; raise its error.  ``existing``: only wait for a job of
        that id if there is one (result ``{"status": "absent"}`` if not).  ``stop``: pause
        the guest first.  ``complete``: send job-complete when the job is ready.
        ``after``: ``{"state": "running"|"paused", "reason": ...}`` to end in."""
        self._require("running", "paused")
        args = dict(req.get("arguments") or {})
        job_id = str(req.get("job_id") or args.get("job-id"))
        timeout = float(req.get("timeout_s") or 600.0)
        loop = aio.asyncio.get_running_loop()
        listener = aio.qmplib.EventListener(("JOB_STATUS_CHANGE",))
        with self._qmp.listen(listener):
            if req.get("stop") and self.lc.state == "running":
                await self._exec("stop")
                self._settle("paused", str(req.get("stop_reason") or "user"))
            if not req.get("existing"):
                await self._exec(str(req["command"]), args)
            status = next((j.get("status") for j in await self._exec("query-jobs")
                           if j.get("id") == job_id), None)
            if status is None:
                return {"status": "absent" if req.get("existing") else "null"}
            deadline = loop.time() + timeout
            while status not in ("concluded", "null"):
                if status == "ready" and req.get("complete"):
                    await self._exec("job-complete", {"id": job_id})
                left = deadline - loop.time()
                try:
                    if left <= 0:
                        raise aio.asyncio.TimeoutError
                    event = await aio.asyncio.wait_for(listener.get(), left)
                except aio.asyncio.TimeoutError:
                    raise Timeout(f"the QEMU job '{job_id}' did not finish within {timeout:g} s") from None
                data = event.get("data") or {}
                if data.get("id") == job_id:
                    status = data.get("status")
        error = None
        for job in await self._exec("query-jobs"):
            if job.get("id") == job_id:
                error = job.get("error")
                if job.get("status") == "concluded":
                    await self._exec("job-dismiss", {"id": job_id})
        if error:
            raise VshError(f"internal error: {req.get('what') or job_id}: {error}")
        after = req.get("after") or {}
        if after.get("state") in ("running", "paused"):
            running = (await self._exec("query-status")).get("running")
            if after["state"] == "running" and not running:
                await self._exec("cont")
            elif after["state"] == "paused" and running:
                await self._exec("stop")
            self._settle(after["state"], str(after.get("reason") or
                                            ("unpaused" if after["state"] == "running" else "user")))
        return {"status": "concluded", "state": self.state_dict()}
