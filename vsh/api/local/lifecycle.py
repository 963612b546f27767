"""Running domains of the store: start, stop, pause, console, save and restore."""

from __future__ import annotations

from vsh.api.lifecycle import ConnectionLifecycle, DomainLifecycle


class LocalConnectionLifecycle(ConnectionLifecycle):
    pass


class LocalDomainLifecycle(DomainLifecycle):
    pass
