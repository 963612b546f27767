"""The local driver: devices of one domain: attach, detach, update, change media."""

from __future__ import annotations

from vsh.api.devices import DomainDevices


class LocalDomainDevices(DomainDevices):
    def __init__(self, dom):
        self.dom = dom
