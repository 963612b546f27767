"""The local driver: snapshots of one domain: create, list, revert, delete."""

from __future__ import annotations

from vsh.api.snapshots import DomainSnapshots


class LocalDomainSnapshots(DomainSnapshots):
    def __init__(self, dom):
        self.dom = dom
