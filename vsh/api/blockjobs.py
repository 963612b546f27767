"""Block jobs of one domain: resize, pull, commit and copy a disk, follow and end the job, and
the domain's job and disk-error queries (``dom.block_jobs``).

A disk is named by its target (``vda``) or by the path of its top image, as virsh takes it;
images of its backing chain by their paths. Bandwidths are in bytes per second (0: no
limit). A block job runs in the hypervisor after the call that starts it returns; one disk
has at most one job. A job is described by a dict:

* ``type``: ``pull``, ``commit``, ``active-commit`` or ``copy``;
* ``state``: ``running``, ``ready`` (a copy or an active commit that mirrors the disk and
  waits for :meth:`DomainBlockJobs.abort` to pivot or to keep the old image), or, once,
  when the call that saw the job end reports it: ``completed``, ``failed`` (with
  ``error``) or ``cancelled``;
* ``cur`` and ``end`` (the progress, in bytes of work), ``bandwidth`` (bytes/s), ``disk``.

When a job ends well the domain's live definition (and the persistent one, when it uses
the same images) names the disk's new chain, as libvirt's does. Images that snapshot
metadata keeps are never written by a job (libvirt's wording for errors).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

#: virsh's names of the job types (``blockjob --info``, ``--raw``).
TYPE_NAMES = {"pull": "Block Pull", "copy": "Block Copy", "commit": "Block Commit",
              "active-commit": "Active Block Commit"}


class DomainBlockJobs(ABC):
    """Block jobs and job queries of one domain (``dom.block_jobs``)."""

    @abstractmethod
    def resize(self, disk: str, size: int) -> dict:
        """``virDomainBlockResize``: make the disk's top image ``size`` bytes (QEMU's
        block_resize when the domain runs, qemu-img when it is shut off). NotFound for no such
        disk; OperationInvalid for a disk without an image file. Returns ``disk``, ``target``,
        ``size``, ``live``."""

    @abstractmethod
    def pull(self, disk: str, base: str | None = None, bandwidth: int = 0) -> dict:
        """``virDomainBlockPull``/``Rebase``: start copying the data of the backing images
        (those above ``base``, all without it) into the top image; when it ends they leave the
        chain. The domain must run. Returns the job (see the module's docstring)."""

    @abstractmethod
    def commit(self, disk: str, base: str | None = None, top: str | None = None, shallow: bool = False,
               active: bool = False, delete: bool = False, bandwidth: int = 0) -> dict:
        """``virDomainBlockCommit``: start merging the images from ``top`` (default: the top) down
        to just above ``base`` (default: the bottom; ``shallow``: the image below ``top``) into
        ``base``. Committing the top image needs ``active``: that job becomes ready and waits
        for :meth:`abort`. ``delete`` removes the merged images once the chain no longer names
        them. InvalidArgument for images not in the chain. Returns the job."""

    @abstractmethod
    def copy(self, disk: str, dest: str, format: str | None = None, shallow: bool = False,
             reuse_external: bool = False, blockdev: bool = False, bandwidth: int = 0) -> dict:
        """``virDomainBlockCopy``: start mirroring the disk into the new image ``dest`` (format
        ``format``, default the top image's; a block device with ``blockdev``; an existing
        image with ``reuse_external``), the whole chain or with ``shallow`` only the top image
        over the same backing chain. The job becomes ready and waits for :meth:`abort`.
        Returns the job."""

    @abstractmethod
    def info(self, disk: str) -> dict | None:
        """``virDomainGetBlockJobInfo``: the disk's job, None when it has none. A job that has
        ended is finished here (its chain recorded) and reported once as completed, failed or
        cancelled."""

    @abstractmethod
    def set_speed(self, disk: str, bandwidth: int) -> None:
        """``virDomainBlockJobSetSpeed``: limit the disk's job to ``bandwidth`` bytes/s (0: none)."""

    @abstractmethod
    def abort(self, disk: str, pivot: bool = False, wait: bool = True) -> dict:
        """``virDomainBlockJobAbort``: cancel the disk's job, or with ``pivot`` switch a ready
        copy or active commit to its new image. A ready job cancelled keeps the old image (virsh's
        ``--finish``/``--keep-overlay``). Without ``wait`` return once asked. Returns the job
        with its final state. InvalidArgument when the disk has no job; OperationInvalid
        (``block copy still active``) to pivot a job that is not ready."""

    @abstractmethod
    def set_threshold(self, disk: str, threshold: int) -> None:
        """``virDomainSetBlockThreshold``: have a ``block-threshold`` event (see
        :meth:`vsh.api.lifecycle.DomainLifecycle.events`) sent once the guest writes past
        ``threshold`` bytes of ``disk`` (a target, ``vda[N]`` for the Nth image below the top, or
        an image path); 0 clears it. The domain must run; InvalidArgument for an unknown disk."""

    @abstractmethod
    def disk_errors(self) -> list[dict]:
        """``virDomainGetDiskErrors``: ``[{"disk": target, "error": "unspecified error"|"no
        space"}]`` for the disks whose I/O stopped on an error. The domain must run."""

    @abstractmethod
    def job_stats(self) -> dict:
        """``virDomainGetJobStats``: ``{"type": "none"}`` or ``{"type": "unbounded", "operation":
        "save"|"block", "time_elapsed" (ms), and the byte counters known: "data_processed",
        "data_remaining", "data_total", "memory_processed", "memory_remaining", "memory_total",
        "memory_bps", "memory_dirty_rate", "memory_page_size", "memory_iteration",
        "memory_constant", "memory_normal", "memory_normal_bytes"}``. The domain must run."""

    @abstractmethod
    def abort_job(self) -> dict:
        """``virDomainAbortJob``: cancel the running save, or every block job of the domain.
        OperationInvalid ``no job is active on the domain`` when there is none. Returns
        ``{"aborted": [what]}``."""
