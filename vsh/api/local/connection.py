"""The local driver's :class:`~vsh.api.base.Connection`: one embedded store."""

from __future__ import annotations

from vsh.api.base import Connection
from vsh.api.local.handles import sub_handle
from vsh.api.local.domains import LocalConnectionDomains
from vsh.api.local.incoming import LocalConnectionMigration
from vsh.api.local.lifecycle import LocalConnectionLifecycle


class LocalConnection(LocalConnectionDomains, LocalConnectionLifecycle, LocalConnectionMigration, Connection):
    """A connection to one store (:class:`vsh.core.store.Store`)."""

    def __init__(self, store, readonly: bool = False):
        self.store = store
        self.uri = store.uri
        self.readonly = readonly
        self.fd_groups: dict = {}       # (domain UUID, group) -> descriptors (dom-fd-associate)
        self.incoming: dict = {}        # domain name -> its pending incoming migration (migrate_prepare)

    def close(self) -> None:
        from vsh.api.local.fdgroups import close_all

        close_all(self)
        if self.incoming:
            self.abandon_incoming()

    def lookup_domain(self, ident: str):
        from vsh.api.local.domain import LocalDomain     # (not on the way to `list`)

        return LocalDomain(self, self.store.get(ident))

    @property
    def storage(self):
        return sub_handle(self, "storage", "vsh.api.local.storage", "LocalStorage")

    @property
    def networks(self):
        return sub_handle(self, "networks", "vsh.api.local.networks", "LocalNetworks")

    @property
    def host(self):
        return sub_handle(self, "host", "vsh.api.local.host", "LocalHost")

    @property
    def installer(self):
        return sub_handle(self, "installer", "vsh.api.local.install", "LocalInstaller")

    def guest_disks(self, readonly: bool = True):
        from vsh.api.local.guestdisks import LocalGuestDisks

        return LocalGuestDisks(self, readonly=readonly)
