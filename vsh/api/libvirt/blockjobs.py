"""Block jobs and job queries of one domain through libvirt."""

from __future__ import annotations

from vsh.api.blockjobs import DomainBlockJobs
from vsh.api.libvirt.lv import call
from vsh.core.errors import InvalidArgument

_TYPES = {1: "pull", 2: "copy", 3: "commit", 4: "active-commit", 5: "backup"}
_JOB_TYPES = ("none", "bounded", "unbounded", "completed", "failed", "cancelled")
_OPERATIONS = ("unknown", "start", "save", "restore", "migration in", "migration out", "snapshot",
               "snapshot revert", "dump", "backup", "snapshot delete")
_DISK_ERRORS = {1: "unspecified error", 2: "no space"}


def _esc(text: str) -> str:
    from xml.sax.saxutils import escape

    return escape(text, {"'": "&apos;"})


class LibvirtDomainBlockJobs(DomainBlockJobs):
    def __init__(self, dom):
        self.dom = dom

    def _call(self, name: str, *args, context: tuple = ()):
        return call(name, self.dom.ptr, *args, context=context)

    def _started(self, disk: str) -> dict:
        return self.info(disk) or {"type": None, "state": "completed", "cur": 0, "end": 0, "bandwidth": 0,
                                   "disk": disk}

    def resize(self, disk: str, size: int) -> dict:
        self._call("virDomainBlockResize", disk, size, 1)        # VIR_DOMAIN_BLOCK_RESIZE_BYTES
        return {"disk": disk, "target": disk, "size": size, "live": self.dom.active()}

    def pull(self, disk: str, base: str | None = None, bandwidth: int = 0) -> dict:
        if base:
            self._call("virDomainBlockRebase", disk, base, bandwidth, 64)   # _REBASE_BANDWIDTH_BYTES
        else:
            self._call("virDomainBlockPull", disk, bandwidth, 64)           # _PULL_BANDWIDTH_BYTES
        return self._started(disk)

    def commit(self, disk: str, base=None, top=None, shallow=False, active=False, delete=False, bandwidth=0) -> dict:
        flags = (1 if shallow else 0) | (2 if delete else 0) | (4 if active else 0) | 16   # _BANDWIDTH_BYTES
        self._call("virDomainBlockCommit", disk, base, top, bandwidth, flags)
        return self._started(disk)

    def copy(self, disk: str, dest: str, format=None, shallow=False, reuse_external=False, blockdev=False,
             bandwidth=0) -> dict:
        kind, attr = ("block", "dev") if blockdev else ("file", "file")
        xml = f"<disk type='{kind}'><source {attr}='{_esc(dest)}'/>"
        if format:
            xml += f"<driver type='{_esc(format)}'/>"
        xml += "</disk>"
        params = {"bandwidth": bandwidth} if bandwidth else {}
        self._call("virDomainBlockCopy", disk, xml, params, (1 if shallow else 0) | (2 if reuse_external else 0))
        return self._started(disk)

    def info(self, disk: str) -> dict | None:
        job = self._call("virDomainGetBlockJobInfo", disk, 1)      # _INFO_BANDWIDTH_BYTES
        if not job:
            return None
        kind = _TYPES.get(job.get("type"), "unknown")
        cur, end = job.get("cur", 0), job.get("end", 0)
        ready = kind in ("copy", "active-commit") and end > 0 and cur == end
        return {"type": kind, "state": "ready" if ready else "running", "cur": cur, "end": end,
                "bandwidth": job.get("bandwidth", 0), "disk": disk}

    def set_speed(self, disk: str, bandwidth: int) -> None:
        self._call("virDomainBlockJobSetSpeed", disk, bandwidth, 1)   # _SPEED_BANDWIDTH_BYTES

    def abort(self, disk: str, pivot: bool = False, wait: bool = True) -> dict:
        job = self.info(disk)
        if job is None:
            raise InvalidArgument(f"invalid argument: disk '{disk}' does not have an active block job")
        flags = (2 if pivot else 0) | (0 if wait else 1)              # _ABORT_PIVOT, _ABORT_ASYNC
        self._call("virDomainBlockJobAbort", disk, flags)
        job["state"] = "completed" if pivot else "cancelled"
        return job

    def disk_errors(self) -> list[dict]:
        errors = self._call("virDomainGetDiskErrors", 0) or {}
        return [{"disk": disk, "error": _DISK_ERRORS.get(code, "unspecified error")}
                for disk, code in errors.items() if code]

    def job_stats(self) -> dict:
        from vsh.api.libvirt.lv import code_of
        from vsh.core.errors import Unsupported

        try:
            stats = dict(self._call("virDomainGetJobStats", 0))
        except Unsupported as err:
            if code_of(err) != 3:
                raise
            # as virsh: the older call where the driver lacks the typed one
            info = self._call("virDomainGetJobInfo")
            keys = ("type", "time_elapsed", "time_remaining", "data_total", "data_processed", "data_remaining",
                    "memory_total", "memory_processed", "memory_remaining")
            stats = {k: v for k, v in zip(keys, info) if k == "type" or v}
        kind = stats.pop("type", 0)
        out = {"type": _JOB_TYPES[kind] if 0 <= kind < len(_JOB_TYPES) else "none"}
        if out["type"] == "none":
            return out
        op = stats.pop("operation", 0)
        out["operation"] = _OPERATIONS[op] if 0 <= op < len(_OPERATIONS) else "unknown"
        out.update(stats)
        out.setdefault("time_elapsed", 0)
        return out

    def abort_job(self) -> dict:
        self._call("virDomainAbortJob")
        return {"aborted": ["job"]}

    def set_threshold(self, disk: str, threshold: int) -> None:
        self._call("virDomainSetBlockThreshold", disk, threshold, 0)
