"""The local driver's :class:`~vsh.api.base.Domain`: a domain of the store."""

from __future__ import annotations

from vsh.api.base import Domain
from vsh.api.local.handles import sub_handle
from vsh.api.local.config import LocalDomainSettings
from vsh.api.local.domains import LocalDomainConfig, watched
from vsh.api.local.lifecycle import LocalDomainLifecycle


class LocalDomain(LocalDomainConfig, LocalDomainSettings, LocalDomainLifecycle, Domain):
    """A domain of ``conn``'s store; ``ref`` is its :class:`vsh.core.store.DomainRef` as last read."""

    def __init__(self, conn, ref):
        self.conn = conn
        self.store = conn.store
        self.ref = watched(conn.store, ref)
        self.name = ref.name

    def __repr__(self) -> str:
        return f"<LocalDomain {self.name!r}>"

    @property
    def id(self) -> int | None:
        return self.ref.id

    def refresh(self):
        """Read the domain's runtime state again (after an operation changed it)."""
        self.ref = watched(self.store, self.store.get(self.name))
        return self.ref

    @property
    def devices(self):
        return sub_handle(self, "devices", "vsh.api.local.devices", "LocalDomainDevices")

    @property
    def stats(self):
        return sub_handle(self, "stats", "vsh.api.local.stats", "LocalDomainStats")

    @property
    def snapshots(self):
        return sub_handle(self, "snapshots", "vsh.api.local.snapshots", "LocalDomainSnapshots")

    @property
    def display(self):
        return sub_handle(self, "display", "vsh.api.local.display", "LocalDomainDisplay")

    @property
    def block_jobs(self):
        return sub_handle(self, "block_jobs", "vsh.api.local.blockjobs", "LocalDomainBlockJobs")

    @property
    def tuning(self):
        return sub_handle(self, "tuning", "vsh.api.local.tuning", "LocalDomainTuning")

    @property
    def agent(self):
        return sub_handle(self, "agent", "vsh.api.local.agent", "LocalDomainAgent")
