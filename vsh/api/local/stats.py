"""The local driver: statistics of one running domain: domstats and the per-device counters."""

from __future__ import annotations

from vsh.api.stats import DomainStats


class LocalDomainStats(DomainStats):
    def __init__(self, dom):
        self.dom = dom
