"""The local driver's :class:`~vsh.api.base.Connection`: one embedded store."""

from __future__ import annotations

from vsh.api.base import Connection
from vsh.api.local.domain import LocalDomain
from vsh.api.local.domains import LocalConnectionDomains
from vsh.api.local.lifecycle import LocalConnectionLifecycle


class LocalConnection(LocalConnectionDomains, LocalConnectionLifecycle, Connection):
    """A connection to one store (:class:`vsh.core.store.Store`)."""

    def __init__(self, store, readonly: bool = False):
        self.store = store
        self.uri = store.uri
        self.readonly = readonly
        self._sub: dict = {}

    def lookup_domain(self, ident: str):
        return LocalDomain(self, self.store.get(ident))

    def _handle(self, key: str, module: str, cls: str):
        """A sub-handle, made (and its module imported) on first use."""
        handle = self._sub.get(key)
        if handle is None:
            from importlib import import_module

            handle = self._sub[key] = getattr(import_module(module), cls)(self)
        return handle

    @property
    def storage(self):
        return self._handle("storage", "vsh.api.local.storage", "LocalStorage")

    @property
    def networks(self):
        return self._handle("networks", "vsh.api.local.networks", "LocalNetworks")

    @property
    def host(self):
        return self._handle("host", "vsh.api.local.host", "LocalHost")

    @property
    def installer(self):
        return self._handle("installer", "vsh.api.local.install", "LocalInstaller")

    def guest_disks(self, readonly: bool = True):
        from vsh.api.local.guestdisks import LocalGuestDisks

        return LocalGuestDisks(self, readonly=readonly)
