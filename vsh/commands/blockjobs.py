"""Block jobs and domain jobs: blockresize, blockpull, blockcommit, blockcopy, blockjob,
domblkerror, domjobinfo, domjobabort: thin over ``dom.block_jobs``
(:class:`vsh.api.blockjobs.DomainBlockJobs`).

Text is virsh's: ``Block Pull started``, with ``--wait`` the ``\\rBlock Pull: [ 42 %]`` line on
stderr (``--verbose``) and then ``Pull complete``; ``blockjob --info`` prints the progress line
on stderr and the bandwidth on stdout, ``--raw`` virsh's `` type=`` records; ``domjobinfo``
virsh's ``%-17s %-12s`` lines. Waiting polls the job as virsh does; ``--timeout`` and Ctrl-C
abort it.
"""

from __future__ import annotations

from vsh.api.blockjobs import TYPE_NAMES
from vsh.core.errors import InvalidArgument, VshError
from vsh.core.output import Lines, Message, Text
from vsh.registry import Opt, command

DOMAIN = Opt("domain", kind="domain", required=True, positional=True, help="domain name, id or uuid")
PATH = Opt("path", kind="device", required=True, positional=True, help="fully-qualified path of disk")
BANDWIDTH = Opt("bandwidth", kind="int", help="bandwidth limit in MiB/s")
BYTES = Opt("bytes", kind="bool", help="the bandwidth limit is in bytes/s rather than MiB/s")
VERBOSE = Opt("verbose", kind="bool", help="with --wait, display the progress")
ASYNC = Opt("async", kind="bool", help="with --wait, don't wait for cancel to finish")
POLL = 0.25     # seconds between two looks at a job that is waited for


def _bandwidth(value, in_bytes: bool) -> int:
    if value is None:
        return 0
    if value < 0:
        raise InvalidArgument("Numeric value for <bandwidth> option is malformed or out of range")
    return int(value) if in_bytes else int(value) << 20


def _timeout(value) -> float:
    if value is None:
        return 0.0
    if value <= 0:
        raise InvalidArgument("Numeric value for <timeout> option is malformed or out of range")
    return float(value)


def _wait(ctx, dom, path: str, label: str, verbose: bool, timeout: float, async_abort: bool):
    """virsh's virshBlockJobWait: follow the job until it ends or is ready; ``(state, job)``."""
    import time

    from vsh.ui.progress import JobProgress

    progress = JobProgress(ctx, label) if verbose else None
    start, last, job = time.monotonic(), None, None
    try:
        while True:
            job = dom.block_jobs.info(path)
            state = "completed" if job is None else job["state"]
            if state != "running":
                break
            if progress is not None and (job["cur"], job["end"]) != last:
                progress(job["cur"], job["end"])
            last = (job["cur"], job["end"])
            if timeout and time.monotonic() - start > timeout:
                dom.block_jobs.abort(path, wait=not async_abort)
                state = "cancelled"
                break
            time.sleep(POLL)
    except KeyboardInterrupt:
        dom.block_jobs.abort(path, wait=not async_abort)
        state = "cancelled"
    if progress is not None and state in ("completed", "ready"):
        progress.show(100)
    return state, job


def _ended_badly(ctx, state: str, job, word: str, path: str) -> None:
    """virsh's ``Pull aborted`` / ``Pull failed`` on stdout, then the reason as an error."""
    ctx.out.write(f"\n{word} {'aborted' if state == 'cancelled' else 'failed'}\n")
    if state == "cancelled":
        raise VshError(f"the block job of disk '{path}' was aborted")
    raise VshError(f"the block job of disk '{path}' failed: {(job or {}).get('error') or 'unknown error'}")


def _blocking_check(verbose: bool, async_: bool, blocking: bool, ends: str) -> None:
    if not blocking:
        for name, flag in (("verbose", verbose), ("async", async_)):
            if flag:
                raise InvalidArgument(f"--{name} requires at least one of --timeout, --wait, --pivot, or {ends}")


def _job_json(job) -> dict | None:
    return None if job is None else {k: job[k] for k in ("disk", "type", "state", "cur", "end", "bandwidth")
                                     if k in job}


# -- blockresize ----------------------------------------------------------------------------------


@command("blockresize", group="domain", summary="Resize block device of domain",
         opts=[DOMAIN, Opt("path", kind="device", required=True, positional=True,
                           help="Fully-qualified path of block device"),
               Opt("size", kind="string", required=True, positional=True,
                   help="New size of the block device, as scaled integer (default KiB)")],
         mutating=True, examples=("blockresize vm1 vda 20G",),
         description="Grow (or shrink) the top image of a disk: live through QEMU's block_resize, so\n"
                     "the guest sees the new capacity; for a shut-off domain with qemu-img resize.")
def blockresize(ctx, domain, path, size):
    from vsh.core.units import parse_scaled

    nbytes = parse_scaled(size, 1024, "size")
    dom = ctx.conn.lookup_domain(domain)
    try:
        done = dom.block_jobs.resize(path, nbytes)
    except VshError as err:
        raise err.with_context(f"Failed to resize block device '{path}'") from None
    return Message(f"Block device '{path}' is resized", newline=False, json_data=done)


# -- blockpull -------------------------------------------------------------------------------------


@command("blockpull", group="domain", summary="Populate a disk from its backing image",
         opts=[DOMAIN, PATH, BANDWIDTH,
               Opt("base", kind="file", help="path of backing file in chain for a partial pull"),
               Opt("wait", kind="bool", help="wait for job to finish"), VERBOSE,
               Opt("timeout", kind="int", help="with --wait, abort if pull exceeds timeout (in seconds)"),
               ASYNC, BYTES],
         mutating=True, examples=("blockpull vm1 vda --wait --verbose",),
         description="Copy the data of the disk's backing images (those above --base) into its top\n"
                     "image; when done they leave its backing chain (dumpxml shows the new chain).\n"
                     "Images that snapshots keep stay on disk.")
def blockpull(ctx, domain, path, bandwidth=None, base=None, wait=False, verbose=False, timeout=None,
              bytes=False, **flags):
    async_ = bool(flags.get("async"))
    for name, flag in (("verbose", verbose), ("async", async_)):
        if flag and not wait:
            raise InvalidArgument(f"Option --wait is required by option --{name}")
    seconds = _timeout(timeout)
    dom = ctx.conn.lookup_domain(domain)
    job = dom.block_jobs.pull(path, base=base, bandwidth=_bandwidth(bandwidth, bytes))
    if not wait:
        return Message("Block Pull started", newline=False, json_data=_job_json(job))
    state, job = _wait(ctx, dom, path, "Block Pull", verbose, seconds, async_)
    if state in ("cancelled", "failed"):
        _ended_badly(ctx, state, job, "Pull", path)
    return Message("\nPull complete", newline=False, json_data={"disk": path, "state": "completed"})


# -- blockcommit -----------------------------------------------------------------------------------


@command("blockcommit", group="domain", summary="Start a block commit operation",
         opts=[DOMAIN, PATH, BANDWIDTH,
               Opt("base", kind="file", help="path of base file to commit into (default bottom of chain)"),
               Opt("shallow", kind="bool", help="use backing file of top as base"),
               Opt("top", kind="file", help="path of top file to commit from (default top of chain)"),
               Opt("active", kind="bool", help="trigger two-stage active commit of top file"),
               Opt("delete", kind="bool", help="delete files that were successfully committed"),
               Opt("wait", kind="bool", help="wait for job to complete (with --active, wait for job to sync)"),
               VERBOSE,
               Opt("timeout", kind="int", help="implies --wait, abort if copy exceeds timeout (in seconds)"),
               Opt("pivot", kind="bool", help="implies --active --wait, pivot when commit is synced"),
               Opt("keep-overlay", kind="bool", help="implies --active --wait, quit when commit is synced"),
               ASYNC, BYTES],
         exclusive=(("pivot", "keep-overlay"),), mutating=True,
         examples=("blockcommit vm1 vda --active --pivot --verbose", "blockcommit vm1 vda --top /img/s1.qcow2 --wait"),
         description="Merge the images from --top down into --base. Committing the top image (--active)\n"
                     "mirrors it into the base until blockjob --pivot switches the disk to the base\n"
                     "(--pivot does both). An image that a snapshot keeps is never written.")
def blockcommit(ctx, domain, path, bandwidth=None, base=None, shallow=False, top=None, active=False, delete=False,
                wait=False, verbose=False, timeout=None, pivot=False, keep_overlay=False, bytes=False, **flags):
    async_ = bool(flags.get("async"))
    active = active or pivot or keep_overlay
    seconds = _timeout(timeout)
    blocking = wait or pivot or keep_overlay or bool(seconds)
    _blocking_check(verbose, async_, blocking, "--keep-overlay")
    dom = ctx.conn.lookup_domain(domain)
    job = dom.block_jobs.commit(path, base=base, top=top, shallow=shallow, active=active, delete=delete,
                                bandwidth=_bandwidth(bandwidth, bytes))
    if not blocking:
        return Message("Active Block Commit started" if active else "Block Commit started", newline=False,
                       json_data=_job_json(job))
    state, job = _wait(ctx, dom, path, "Block commit", verbose, seconds, async_)
    if state in ("cancelled", "failed"):
        _ended_badly(ctx, state, job, "Commit", path)
    if not active:
        return Message("\nCommit complete", newline=False, json_data={"disk": path, "state": "completed"})
    if pivot:
        _end_ready(dom, path, True, "pivot")
        return Message("\nSuccessfully pivoted", newline=False, json_data={"disk": path, "state": "pivoted"})
    if keep_overlay:
        _end_ready(dom, path, False, "finish")
        return Message("\nCommit complete, overlay image kept", newline=False,
                       json_data={"disk": path, "state": "finished"})
    return Message("\nNow in synchronized phase", newline=False, json_data={"disk": path, "state": "ready"})


def _end_ready(dom, path: str, pivot: bool, what: str) -> None:
    try:
        dom.block_jobs.abort(path, pivot=pivot)
    except VshError as err:
        raise err.with_context(f"failed to {what} job for disk {path}") from None


# -- blockcopy -------------------------------------------------------------------------------------


@command("blockcopy", group="domain", summary="Start a block copy operation",
         opts=[DOMAIN, PATH, Opt("dest", kind="file", help="path of the copy to create"), BANDWIDTH,
               Opt("shallow", kind="bool", help="make the copy share a backing chain"),
               Opt("reuse-external", kind="bool", help="reuse existing destination"),
               Opt("blockdev", kind="bool", help="copy destination is block device instead of regular file"),
               Opt("wait", kind="bool", help="wait for job to reach mirroring phase"), VERBOSE,
               Opt("timeout", kind="int", help="implies --wait, abort if copy exceeds timeout (in seconds)"),
               Opt("pivot", kind="bool", help="implies --wait, pivot when mirroring starts"),
               Opt("finish", kind="bool", help="implies --wait, quit when mirroring starts"),
               ASYNC, Opt("format", kind="enum", choices=("raw", "qcow2"), help="format of the destination file"),
               Opt("raw", kind="bool", help="format=raw"), BYTES],
         exclusive=(("pivot", "finish"), ("raw", "format")), mutating=True,
         examples=("blockcopy vm1 vda --dest /img/new.qcow2 --wait --verbose --pivot",),
         description="Mirror the disk into a new image; once the copy is in step (the mirroring\n"
                     "phase) --pivot switches the disk to it (dumpxml names it), --finish ends the copy\n"
                     "and keeps the disk as it was. --shallow copies only the top image.")
def blockcopy(ctx, domain, path, dest=None, bandwidth=None, shallow=False, reuse_external=False, blockdev=False,
              wait=False, verbose=False, timeout=None, pivot=False, finish=False, format=None,
              raw=False, bytes=False, **flags):
    async_ = bool(flags.get("async"))
    seconds = _timeout(timeout)
    blocking = wait or pivot or finish or bool(seconds)
    if not dest:
        raise InvalidArgument("need either --dest or --xml")
    _blocking_check(verbose, async_, blocking, "--finish")
    dom = ctx.conn.lookup_domain(domain)
    job = dom.block_jobs.copy(path, dest, format="raw" if raw else format, shallow=shallow,
                              reuse_external=reuse_external, blockdev=blockdev, bandwidth=_bandwidth(bandwidth, bytes))
    if not blocking:
        return Message("Block Copy started", newline=False, json_data=_job_json(job))
    state, job = _wait(ctx, dom, path, "Block Copy", verbose, seconds, async_)
    if state in ("cancelled", "failed"):
        _ended_badly(ctx, state, job, "Copy", path)
    if pivot:
        _end_ready(dom, path, True, "pivot")
        return Message("\nSuccessfully pivoted", newline=False,
                       json_data={"disk": path, "state": "pivoted", "dest": dest})
    if finish:
        _end_ready(dom, path, False, "finish")
        return Message("\nSuccessfully copied", newline=False,
                       json_data={"disk": path, "state": "finished", "dest": dest})
    return Message("\nNow in mirroring phase", newline=False, json_data={"disk": path, "state": "ready", "dest": dest})


# -- blockjob --------------------------------------------------------------------------------------


@command("blockjob", group="domain", summary="Manage active block operations",
         opts=[DOMAIN, PATH,
               Opt("abort", kind="bool", help="abort the active job on the specified disk"),
               Opt("async", kind="bool", help="implies --abort; request but don't wait for job end"),
               Opt("pivot", kind="bool", help="implies --abort; conclude and pivot a copy or commit job"),
               Opt("info", kind="bool", help="get active job information for the specified disk"),
               Opt("bytes", kind="bool", help="get/set bandwidth in bytes rather than MiB/s"),
               Opt("raw", kind="bool", help="implies --info; output details rather than human summary"),
               Opt("bandwidth", kind="int", help="set the bandwidth limit in MiB/s")],
         exclusive=(("raw", "abort"), ("raw", "pivot"), ("raw", "async"), ("raw", "bandwidth"), ("info", "abort"),
                    ("info", "pivot"), ("info", "async"), ("info", "bandwidth"), ("bytes", "abort"),
                    ("bytes", "pivot"), ("bytes", "async")),
         examples=("blockjob vm1 vda --info", "blockjob vm1 vda --pivot", "blockjob vm1 vda --bandwidth 10"),
         description="Without an action, show the disk's job: its progress line (on stderr) and its\n"
                     "bandwidth limit. --abort cancels it (a copy or active commit in its mirroring\n"
                     "phase then keeps the old image); --pivot switches the disk to the new image.")
def blockjob(ctx, domain, path, abort=False, pivot=False, info=False, bytes=False, raw=False, bandwidth=None,
             **flags):
    async_ = bool(flags.get("async"))
    dom = ctx.conn.lookup_domain(domain)
    if bandwidth is not None:
        dom.block_jobs.set_speed(path, _bandwidth(bandwidth, bytes))
        return Text("", json_data={"disk": path, "bandwidth": _bandwidth(bandwidth, bytes)})
    if abort or pivot or async_:
        job = dom.block_jobs.abort(path, pivot=pivot, wait=not async_)
        return Text("", json_data=_job_json(job))
    job = dom.block_jobs.info(path)
    if job is not None and job["state"] not in ("running", "ready"):
        job = None
    if ctx.json:
        return Text("", json_data={"disk": path, "job": _job_json(job)})
    if job is None:
        return Text("" if raw else f"No current block job for {path}")
    name = TYPE_NAMES.get(job["type"], "Unknown job")
    if raw:
        speed = job["bandwidth"] if bytes else job["bandwidth"] >> 20
        return Text(f" type={name}\n bandwidth={speed}\n cur={job['cur']}\n end={job['end']}\n")
    from vsh.ui.progress import JobProgress

    JobProgress(ctx, name)(job["cur"], job["end"])
    if job["bandwidth"]:
        from vsh.core.output import human_size

        return Text(f"    Bandwidth limit: {job['bandwidth']} bytes/s ({human_size(job['bandwidth'], 3)}/s)\n")
    return Text("\n")


# -- domain jobs and disk errors -----------------------------------------------------------------


@command("domblkerror", group="monitor", summary="Show errors on block devices", opts=[DOMAIN],
         examples=("domblkerror vm1",),
         description="List the disks whose I/O stopped on an error (no space left, or another error),\n"
                     "as 'vda: no space'; 'No errors found' when there is none.")
def domblkerror(ctx, domain):
    errors = ctx.conn.lookup_domain(domain).block_jobs.disk_errors()
    if not errors:
        return Text("No errors found\n", json_data=[])
    return Lines([f"{e['disk']}: {e['error']}" for e in errors], json_data=errors)


JOB_TYPES = {"none": "None", "bounded": "Bounded", "unbounded": "Unbounded"}
OPERATIONS = {"save": "Save", "block": "Unknown", "start": "Start", "restore": "Restore",
              "migration in": "Incoming migration", "migration out": "Outgoing migration", "snapshot": "Snapshot",
              "snapshot revert": "Snapshot revert", "dump": "Dump", "backup": "Backup",
              "snapshot delete": "Snapshot delete"}
SIZES = (("data_processed", "Data processed:"), ("data_remaining", "Data remaining:"), ("data_total", "Data total:"),
         ("memory_processed", "Memory processed:"), ("memory_remaining", "Memory remaining:"),
         ("memory_total", "Memory total:"))
COUNTS = (("memory_dirty_rate", "Dirty rate:", " pages/s"), ("memory_page_size", "Page size:", " bytes"),
          ("memory_iteration", "Iteration:", ""), ("memory_constant", "Constant pages:", ""),
          ("memory_normal", "Normal pages:", ""))


@command("domjobinfo", group="domain", summary="domain job information",
         opts=[DOMAIN, Opt("completed", kind="bool", help="return statistics of a recently completed job"),
               Opt("keep-completed", kind="bool", help="don't destroy statistics of a recently completed job when "
                                                        "reading"),
               Opt("anystats", kind="bool", help="print statistics for any kind of job (even failed ones)"),
               Opt("rawstats", kind="bool", help="print the raw data returned by libvirt")],
         examples=("domjobinfo vm1",),
         description="Show the job the domain runs: a save or managedsave (Operation: Save, with the\n"
                     "memory counters), a migration (Operation: Outgoing migration) or its block jobs\n"
                     "(the data copied so far). vsh keeps no\n"
                     "statistics of finished jobs: --completed shows 'Job type: None'.")
def domjobinfo(ctx, domain, completed=False, keep_completed=False, anystats=False, rawstats=False):
    if keep_completed and not completed:
        raise InvalidArgument("Option --completed is required by option --keep-completed")
    from vsh.core.output import human_size

    stats = {"type": "none"} if completed else ctx.conn.lookup_domain(domain).block_jobs.job_stats()
    if rawstats:
        code = {"none": 0, "bounded": 1, "unbounded": 2}[stats["type"]]
        lines = [f"Job type: {code}", ""] + [f"{k}: {v}" for k, v in stats.items() if k not in ("type", "disks")]
        return Lines(lines, json_data=stats)
    out = [f"{'Job type:':<17} {JOB_TYPES[stats['type']]:<12}"]
    if stats["type"] != "none":
        out.append(f"{'Operation:':<17} {OPERATIONS.get(stats['operation'], 'Unknown'):<12}")
        out.append(f"{'Time elapsed:':<17} {stats['time_elapsed']:<12} ms")
        for key, label in SIZES:
            if key in stats:
                out.append(f"{label:<17} {human_size(stats[key], 3)}")
        if stats.get("memory_bps"):
            out.append(f"{'Memory bandwidth:':<17} {human_size(stats['memory_bps'], 3)}/s")
        for key, label, unit in COUNTS:
            if key in stats:
                out.append(f"{label:<17} {stats[key]:<12}{unit}")
        if "memory_normal_bytes" in stats:
            out.append(f"{'Normal data:':<17} {human_size(stats['memory_normal_bytes'], 3)}")
    return Lines(out, json_data=stats)


@command("domjobabort", group="domain", summary="abort active domain job",
         opts=[DOMAIN, Opt("postcopy", kind="bool", help="interrupt post-copy migration")], mutating=True,
         examples=("domjobabort vm1",),
         description="Abort the job the domain runs: a save, managedsave or migration (the guest goes\n"
                     "on running here) or its block jobs. vsh does not migrate in post-copy mode, so\n"
                     "--postcopy finds no job to interrupt.")
def domjobabort(ctx, domain, postcopy=False):
    dom = ctx.conn.lookup_domain(domain)
    if postcopy:
        raise VshError("Requested operation is not valid: current job is not outgoing migration in post-copy mode")
    return Text("", json_data=dom.block_jobs.abort_job())


@command("domblkthreshold", group="domain",
         summary="set the threshold for block-threshold event for a given block device or it's backing chain "
                 "element",
         opts=[DOMAIN, Opt("dev", kind="device", required=True, positional=True, help="device to set threshold for"),
               Opt("threshold", kind="string", required=True, positional=True,
                   help="threshold as a scaled number (by default bytes)")],
         mutating=True, examples=("domblkthreshold vm1 vda 1G", "domblkthreshold vm1 'vda[1]' 512M"),
         description="Once the guest writes past the threshold of the disk's image (vda, or vda[N] for the\n"
                     "Nth image below the top), QEMU sends one block-threshold event (see 'event'); 0 clears it.")
def domblkthreshold(ctx, domain, dev, threshold):
    from vsh.core.units import parse_scaled

    nbytes = parse_scaled(threshold, 1, "threshold")
    dom = ctx.conn.lookup_domain(domain)
    dom.block_jobs.set_threshold(dev, nbytes)
    return Text("", json_data={"dev": dev, "threshold": nbytes})
