"""The local driver: block jobs of one domain, over QMP through the domain's supervisor.

A job is one QEMU job named ``vsh-block-<target>`` (``block-stream``, ``block-commit``,
``drive-mirror``), started without auto-dismiss, so that the first vsh call that sees it
concluded (``info``, ``abort``, a ``--wait`` loop) reads its end and finishes it: the
disk's chain written into the live definition (and the persistent one when it names the
same top image), merged images deleted when asked. What each job will do to the chain is
recorded when it starts, in ``blockjobs.json`` of the domain's runtime directory, so that
any later vsh process can finish it the same way. Images that snapshot metadata keeps
frozen (:mod:`vsh.core.snapshots`) are never written, nor deleted while a snapshot names them.
"""

from __future__ import annotations

import os
import time

from vsh.api.blockjobs import DomainBlockJobs
from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, VshError
from vsh.kvm import confine

JOBS_FILE = "blockjobs.json"
FORMATS = ("qcow2", "raw")
JOB_TIMEOUT = 60.0      # how long abort waits for QEMU to end a job it asked to end


def _not_running() -> OperationInvalid:
    return OperationInvalid("Requested operation is not valid: domain is not running")


def _job_id(target: str) -> str:
    return f"vsh-block-{target}"


def _real(path: str) -> str:
    return os.path.realpath(path)


def set_chain(el, chain: list, block_top: bool = False) -> None:
    """Make the disk element ``el`` name ``chain`` ([[path, format]], top first): its source,
    driver type and ``<backingStore>`` elements (closed by an empty one under a qcow2 bottom)."""
    from vsh.core.lxmlload import etree

    from vsh.core.domain import normalize_order

    for bs in el.findall("backingStore"):
        el.remove(bs)
    src = el.find("source")
    if src is None:
        src = etree.SubElement(el, "source")
    for key in ("file", "dev"):
        src.attrib.pop(key, None)
    path, fmt = chain[0]
    el.set("type", "block" if block_top else "file")
    src.set("dev" if block_top else "file", path)
    drv = el.find("driver")
    if drv is None:
        drv = etree.SubElement(el, "driver", name="qemu")
    drv.set("type", fmt)
    parent, levels = None, []
    for bpath, bfmt in chain[1:]:
        bs = etree.Element("backingStore", type="file")
        etree.SubElement(bs, "format", type=bfmt or "raw")
        etree.SubElement(bs, "source", file=bpath)
        levels.append(bs)
    if chain[-1][1] == "qcow2":
        levels.append(etree.Element("backingStore"))
    for bs in levels:
        if parent is None:
            el.append(bs)
        else:
            parent.append(bs)
        parent = bs
    normalize_order(el)


class LocalDomainBlockJobs(DomainBlockJobs):
    def __init__(self, dom):
        self.dom = dom

    # -- the domain, its disks and its QEMU nodes --------------------------------------------
    def _rundir(self):
        return self.dom.store.runtime_dir(self.dom.name)

    def _qmp(self, cmd: str, args: dict | None = None):
        from vsh.kvm import client

        return client.qmp(self._rundir(), cmd, args)

    def _running(self):
        ref = self.dom.refresh()
        if not ref.active:
            raise _not_running()
        return ref

    def _find(self, dom, disk: str):
        """(target, element, chain) of the disk named by target or top image path."""
        from vsh.kvm.snapshot.chains import chain, disk_elements, disk_target

        for el in disk_elements(dom.node):
            ch = chain(el)
            if disk_target(el) == disk or (ch and (ch[0][0] == disk or _real(ch[0][0]) == _real(disk))):
                return disk_target(el), el, [list(level) for level in ch]
        raise InvalidArgument(f"invalid argument: disk '{disk}' not found in domain")

    def _live_disk(self, disk: str):
        ref = self._running()
        return self._find(self.dom.store.load(ref), disk)

    def _nodes(self) -> dict:
        """realpath of each image QEMU has open → its format node's name."""
        out = {}
        for node in self._qmp("query-named-block-nodes", {"flat": True}):
            if node.get("drv") in FORMATS and node.get("file"):
                out.setdefault(_real(node["file"]), node["node-name"])
        return out

    def _node(self, nodes: dict, path: str, target: str) -> str:
        name = nodes.get(_real(path))
        if name is None:
            raise VshError(f"internal error: QEMU has no block node for image '{path}' of disk '{target}'")
        return name

    @staticmethod
    def _index(chain: list, path: str, target: str, what: str = "") -> int:
        for i, (p, _) in enumerate(chain):
            if p == path or _real(p) == _real(path):
                return i
        raise InvalidArgument(f"invalid argument: could not find image '{path}' {what}in chain for '{target}'")

    def _frozen(self) -> dict:
        """realpath → the snapshot that keeps that image unchanged (libvirt's external snapshots
        freeze the old top; every snapshot freezes the backing images it records)."""
        from vsh.core.snapshots import SnapshotStore
        from vsh.kvm.snapshot.chains import chains

        out = {}
        for name, defn in sorted(SnapshotStore(self.dom.store, self.dom.name).load_all().items()):
            if defn.domain is None:
                continue
            for target, ch in chains(defn.domain).items():
                spec = defn.disk(target)
                keep = ch if spec is not None and spec.snapshot == "external" else ch[1:]
                for path, _ in keep:
                    out.setdefault(_real(path), name)
        return out

    def _check_unfrozen(self, paths, doing: str) -> None:
        frozen = self._frozen()
        for path in paths:
            if _real(path) in frozen:
                raise OperationInvalid(f"Requested operation is not valid: image '{path}' is kept by snapshot "
                                       f"'{frozen[_real(path)]}' and cannot be {doing}",
                                       hint="delete the snapshot first (snapshot-delete merges its images)")

    # -- the records of running jobs -----------------------------------------------------------
    def _records(self) -> dict:
        from vsh.core import runtime as rt

        return rt.load_json(self._rundir() / JOBS_FILE) or {}

    def _save_records(self, records: dict) -> None:
        from vsh.core import runtime as rt

        rt.write_json_atomic(self._rundir() / JOBS_FILE, records)

    def _check_idle(self, target: str) -> None:
        """OperationInvalid when the disk has a job (call with the domain's lock)."""
        job = self._poll(target)
        if job is not None and job["state"] in ("running", "ready"):
            raise OperationInvalid(f"block copy still active: disk '{target}' already in active block job")

    def _start(self, target: str, record: dict, command: str, args: dict) -> dict:
        with self.dom.store.lock(self.dom.name):
            self._check_idle(target)
            args = dict(args, **{"job-id": _job_id(target), "auto-dismiss": False})
            if record.get("bandwidth"):
                args["speed"] = int(record["bandwidth"])
            records = self._records()
            records[target] = dict(record, started=time.time())
            self._save_records(records)
            try:
                self._qmp(command, args)
            except VshError:
                records.pop(target, None)
                self._save_records(records)
                raise
            return self._poll(target) or {"disk": target, "type": record["type"], "state": "completed"}

    def _poll(self, target: str) -> dict | None:
        """The disk's job now; a concluded one is finished here (call with the domain's lock)."""
        rec = self._records().get(target)
        jid = _job_id(target)
        job = next((j for j in self._qmp("query-jobs") if j.get("id") == jid), None)
        if job is None:
            if rec is not None:
                records = self._records()
                records.pop(target, None)
                self._save_records(records)
            return None
        kind = (rec or {}).get("type") or {"stream": "pull", "mirror": "copy"}.get(job.get("type"), "commit")
        if job.get("status") in ("concluded", "null"):
            return self._finish(target, rec or {"type": kind}, job)
        bj = next((b for b in self._qmp("query-block-jobs") if b.get("device") == jid), {})
        return {"disk": target, "type": kind,
                "state": "ready" if job.get("status") == "ready" else "running",
                "cur": int(bj.get("offset", job.get("current-progress", 0))),
                "end": int(bj.get("len", job.get("total-progress", 0))),
                "bandwidth": int(bj.get("speed", 0)),
                "elapsed_ms": int((time.time() - float((rec or {}).get("started") or time.time())) * 1000)}

    def _finish(self, target: str, rec: dict, job: dict) -> dict:
        """Dismiss a concluded job; when it ended well, record the disk's new chain."""
        jid = _job_id(target)
        error = job.get("error")
        try:
            self._qmp("job-dismiss", {"id": jid})
        except VshError:
            pass
        records = self._records()
        records.pop(target, None)
        self._save_records(records)
        end = int(job.get("total-progress", 0))
        out = {"disk": target, "type": rec.get("type"), "cur": end, "end": end, "bandwidth": 0}
        ending = rec.get("ending")
        if ending == "cancel":
            return dict(out, state="cancelled")
        if error:
            return dict(out, state="failed", error=str(error))
        if rec.get("after") and (rec.get("type") in ("pull", "commit") or ending == "pivot"):
            self._rewrite(target, rec)
            self._drop_nodes([p for p, _ in rec.get("before") or [] if _real(p) not in
                              {_real(q) for q, _ in rec["after"]}])
        elif rec.get("type") == "copy":
            self._drop_nodes([rec["after"][0][0]])
        return dict(out, state="completed")

    def _drop_nodes(self, paths: list) -> None:
        """``blockdev-del`` the nodes of images the disk no longer uses (format node, then file node);
        a node something still uses stays."""
        gone = {_real(p) for p in paths}
        if not gone:
            return
        named = self._qmp("query-named-block-nodes", {"flat": True})
        for drivers in (FORMATS, ("file", "host_device")):
            for node in named:
                if node.get("drv") in drivers and node.get("file") and _real(node["file"]) in gone:
                    try:
                        self._qmp("blockdev-del", {"node-name": node["node-name"]})
                    except VshError:
                        pass

    def _rewrite(self, target: str, rec: dict) -> None:
        """Write the disk's chain after the job into the live and the persistent definition, and
        delete the images a commit merged (``--delete``)."""
        from vsh.core import runtime as rt
        from vsh.kvm.snapshot.chains import chain, disk_element

        store = self.dom.store
        ref = store.get(self.dom.name)
        old_top = _real(rec["old_top"])
        targets = []
        if ref.active:
            targets.append((store.load(ref), lambda d: rt.write_text_atomic(self._rundir() / rt.LIVE_XML, d.to_xml())))
        if ref.persistent:
            targets.append((store.load(ref, inactive=True), store.write_config))
        for dom, write in targets:
            el = disk_element(dom.node, target)
            if el is None or not chain(el) or _real(chain(el)[0][0]) != old_top:
                continue
            set_chain(el, rec["after"], block_top=bool(rec.get("block_top")))
            write(dom)
        for path in rec.get("delete") or []:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    # -- operations ------------------------------------------------------------------------------
    def resize(self, disk: str, size: int) -> dict:
        ref = self.dom.refresh()
        store = self.dom.store
        if ref.active:
            target, _, ch = self._find(store.load(ref), disk)
        else:
            target, _, ch = self._find(store.load(ref, inactive=True), disk)
        if not ch:
            raise OperationInvalid(f"Requested operation is not valid: disk '{target}' has no image to resize")
        path, fmt = ch[0]
        if ref.active:
            self._qmp("block_resize", {"node-name": self._node(self._nodes(), path, target), "size": int(size)})
        else:
            from vsh.core.qemuimg import qemu_img

            qemu_img(["resize", "-q", "-f", fmt or "raw", path, str(int(size))], what=f"resizing '{path}'")
        return {"disk": disk, "target": target, "size": int(size), "live": ref.active}

    def pull(self, disk: str, base: str | None = None, bandwidth: int = 0) -> dict:
        target, _, ch = self._live_disk(disk)
        nodes = self._nodes()
        args = {"device": self._node(nodes, ch[0][0], target)}
        after = ch[:1]
        if base is not None:
            i = self._index(ch[1:], base, target, f"beneath '{ch[0][0]}' ") + 1
            args["base-node"] = self._node(nodes, ch[i][0], target)
            after = ch[:1] + ch[i:]
        return self._start(target, {"type": "pull", "old_top": ch[0][0], "before": ch, "after": after,
                                    "bandwidth": bandwidth},
                           "block-stream", args)

    def commit(self, disk: str, base: str | None = None, top: str | None = None, shallow: bool = False,
               active: bool = False, delete: bool = False, bandwidth: int = 0) -> dict:
        target, _, ch = self._live_disk(disk)
        with self.dom.store.lock(self.dom.name):
            self._check_idle(target)
        t = self._index(ch, top, target) if top is not None else 0
        if t == len(ch) - 1:
            raise InvalidArgument(f"invalid argument: top '{ch[t][0]}' in chain for '{target}' has no backing file")
        if shallow:
            b = t + 1
        elif base is not None:
            b = self._index(ch[t + 1:], base, target, f"beneath '{ch[t][0]}' ") + t + 1
        else:
            b = len(ch) - 1
        if t == 0 and not active:
            raise InvalidArgument(f"invalid argument: commit of '{target}' active layer requires active flag")
        if t != 0 and active:
            raise InvalidArgument(f"invalid argument: active commit requested but '{ch[t][0]}' is not active")
        merged = [p for p, _ in ch[t:b]]
        self._check_unfrozen([ch[b][0]], "written")
        if delete:
            self._check_unfrozen(merged, "deleted")
        nodes = self._nodes()
        self._writable(nodes, ch, b, target)
        args = {"device": self._node(nodes, ch[0][0], target), "top-node": self._node(nodes, ch[t][0], target),
                "base-node": self._node(nodes, ch[b][0], target)}
        record = {"type": "active-commit" if t == 0 else "commit", "old_top": ch[0][0], "before": ch,
                  "after": ch[:t] + ch[b:], "bandwidth": bandwidth, "delete": merged if delete else []}
        return self._start(target, record, "block-commit", args)

    def _writable(self, nodes: dict, ch: list, b: int, target: str) -> None:
        """Reopen the backing image ``ch[b]`` read-write (QEMU opened it read-only) so that a
        commit can write into it."""
        path, fmt = ch[b]
        fmt_node = self._node(nodes, path, target)
        file_node = next((n["node-name"] for n in self._qmp("query-named-block-nodes", {"flat": True})
                          if n.get("drv") == "file" and n.get("file") and _real(n["file"]) == _real(path)), None)
        opts = {"driver": fmt, "node-name": fmt_node, "read-only": False}
        if file_node is not None:
            opts["file"] = file_node
        if fmt == "qcow2":
            opts["backing"] = self._node(nodes, ch[b + 1][0], target) if b + 1 < len(ch) else None
        options = [opts]
        if file_node is not None:
            options.insert(0, {"driver": "file", "node-name": file_node, "filename": path, "read-only": False})
        confine.grant_more(self._rundir(), [(path, "rw")])
        self._qmp("blockdev-reopen", {"options": options})

    def copy(self, disk: str, dest: str, format: str | None = None, shallow: bool = False,
             reuse_external: bool = False, blockdev: bool = False, bandwidth: int = 0) -> dict:
        target, _, ch = self._live_disk(disk)
        with self.dom.store.lock(self.dom.name):
            self._check_idle(target)
        if not os.path.isabs(dest):
            raise InvalidArgument(f"invalid argument: the copy destination '{dest}' must be an absolute path")
        fmt = format or ch[0][1] or "raw"
        if fmt not in FORMATS:
            raise InvalidArgument(f"invalid argument: unsupported destination format '{fmt}' (raw or qcow2)")
        if reuse_external or blockdev:
            if not os.path.exists(dest):
                raise InvalidArgument(f"invalid argument: missing destination file for disk {target}: {dest}")
            self._check_unfrozen([dest], "written")
        elif os.path.lexists(dest):
            raise OperationInvalid(f"Requested operation is not valid: destination file '{dest}' exists; "
                                   "use --reuse-external")
        nodes = self._nodes()
        confine.grant_output(self._rundir(), dest)
        args = {"device": self._node(nodes, ch[0][0], target), "target": dest, "format": fmt,
                "sync": "top" if shallow else "full",
                "mode": "existing" if (reuse_external or blockdev) else "absolute-paths"}
        after = [[dest, fmt]] + (ch[1:] if shallow else [])
        return self._start(target, {"type": "copy", "old_top": ch[0][0], "before": ch, "after": after,
                                    "bandwidth": bandwidth,
                                    "block_top": blockdev}, "drive-mirror", args)

    def info(self, disk: str) -> dict | None:
        target, _, _ = self._live_disk(disk)
        with self.dom.store.lock(self.dom.name):
            return self._poll(target)

    def set_speed(self, disk: str, bandwidth: int) -> None:
        target, _, _ = self._live_disk(disk)
        with self.dom.store.lock(self.dom.name):
            if self._poll(target) is None:
                raise self._no_job(target)
            self._qmp("block-job-set-speed", {"device": _job_id(target), "speed": int(bandwidth)})

    @staticmethod
    def _no_job(target: str) -> InvalidArgument:
        return InvalidArgument(f"invalid argument: disk {target} does not have an active block job")

    def abort(self, disk: str, pivot: bool = False, wait: bool = True) -> dict:
        target, _, _ = self._live_disk(disk)
        with self.dom.store.lock(self.dom.name):
            job = self._poll(target)
            if job is None or job["state"] not in ("running", "ready"):
                raise self._no_job(target)
            records = self._records()
            rec = records.setdefault(target, {"type": job["type"]})
            if pivot:
                if job["type"] not in ("copy", "active-commit"):
                    raise OperationInvalid(f"Requested operation is not valid: pivot of disk '{target}' requires "
                                           "an active copy job")
                if job["state"] != "ready":
                    raise OperationInvalid(f"block copy still active: disk '{target}' not ready for pivot yet")
            rec["ending"] = "pivot" if pivot else "cancel"
            self._save_records(records)
            if pivot:
                self._qmp("job-complete", {"id": _job_id(target)})
            else:
                self._qmp("block-job-cancel", {"device": _job_id(target)})
        if not wait and not pivot:
            return dict(job, state="aborting")
        return self._wait_end(target)

    def _wait_end(self, target: str) -> dict:
        deadline = time.monotonic() + JOB_TIMEOUT
        while True:
            with self.dom.store.lock(self.dom.name):
                job = self._poll(target)
            if job is None or job["state"] not in ("running", "ready"):
                return job or {"disk": target, "state": "completed"}
            if time.monotonic() > deadline:
                from vsh.core.errors import Timeout

                raise Timeout(f"the block job of disk '{target}' did not end within {JOB_TIMEOUT:g} s")
            time.sleep(0.05)

    def set_threshold(self, disk: str, threshold: int) -> None:
        import re

        if threshold < 0:
            raise InvalidArgument("invalid argument: threshold must not be negative")
        m = re.fullmatch(r"(.+)\[(\d+)\]", disk)
        target, _el, chain = self._live_disk(m.group(1) if m else disk)
        index = int(m.group(2)) if m else 0
        if not chain:
            raise InvalidArgument(f"invalid argument: disk '{target}' has no image")
        if index >= len(chain):
            raise InvalidArgument(f"invalid argument: failed to find backing store index '{index}' in chain of "
                                  f"'{target}'")
        path = chain[index][0]
        # as libvirt: the threshold is on the image's storage node, where the host allocation grows
        node = next((n["node-name"] for n in self._qmp("query-named-block-nodes", {"flat": True})
                     if n.get("drv") in ("file", "host_device") and _real(n.get("file") or "") == _real(path)),
                    None)
        if node is None:
            raise VshError(f"internal error: QEMU has no storage node for image '{path}' of disk '{target}'")
        self._qmp("block-set-write-threshold", {"node-name": node, "write-threshold": threshold})

    def disk_errors(self) -> list[dict]:
        from vsh.kvm.snapshot.chains import chains

        ref = self._running()
        tops = {_real(ch[0][0]): t for t, ch in chains(self.dom.store.load(ref).node).items()}
        words = {"failed": "unspecified error", "nospace": "no space"}
        out = []
        for dev in self._qmp("query-block"):
            status = dev.get("io-status", "ok")
            path = (dev.get("inserted") or {}).get("file")
            if status in words and path:
                out.append({"disk": tops.get(_real(path), dev.get("device") or path), "error": words[status]})
        return out

    def job_stats(self) -> dict:
        self._running()
        mig = self._qmp("query-migrate")
        if mig.get("status") in ("setup", "active", "pre-switchover", "device", "cancelling"):
            ram = mig.get("ram") or {}
            out = {"type": "unbounded", "operation": self._migration_kind(), "time_elapsed": int(mig.get("total-time", 0)),
                   "data_processed": ram.get("transferred", 0), "data_remaining": ram.get("remaining", 0),
                   "data_total": ram.get("total", 0), "memory_processed": ram.get("transferred", 0),
                   "memory_remaining": ram.get("remaining", 0), "memory_total": ram.get("total", 0),
                   "memory_bps": int(float(ram.get("mbps", 0)) * 1000000 / 8)}
            for key, name in (("dirty-pages-rate", "memory_dirty_rate"), ("page-size", "memory_page_size"),
                              ("dirty-sync-count", "memory_iteration"), ("duplicate", "memory_constant"),
                              ("normal", "memory_normal"), ("normal-bytes", "memory_normal_bytes")):
                if key in ram:
                    out[name] = int(ram[key])
            return out
        jobs = []
        with self.dom.store.lock(self.dom.name):
            for target in sorted(self._records()):
                job = self._poll(target)
                if job is not None and job["state"] in ("running", "ready"):
                    jobs.append(job)
        if not jobs:
            return {"type": "none"}
        done, total = sum(j["cur"] for j in jobs), sum(j["end"] for j in jobs)
        return {"type": "unbounded", "operation": "block", "time_elapsed": max(j["elapsed_ms"] for j in jobs),
                "data_processed": done, "data_remaining": total - done, "data_total": total,
                "disks": [j["disk"] for j in jobs]}

    def _migration_kind(self) -> str:
        """What QEMU's migration job is for: ``migration out`` (vsh migrate) or ``save``."""
        from vsh.kvm import client

        st = client.read_state(self.dom.store.runtime_dir(self.dom.name)) or {}
        return "migration out" if st.get("job") == "migration_out" else "save"

    def abort_job(self) -> dict:
        self._running()
        mig = self._qmp("query-migrate")
        if mig.get("status") in ("setup", "active", "pre-switchover", "device"):
            self._qmp("migrate_cancel")
            return {"aborted": [self._migration_kind()]}
        aborted = []
        for target in sorted(self._records()):
            try:
                self.abort(target)
                aborted.append(target)
            except (InvalidArgument, NotFound):
                continue
        if not aborted:
            raise OperationInvalid("Requested operation is not valid: no job is active on the domain")
        return {"aborted": aborted}
