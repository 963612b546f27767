"""Statistics of one running domain: domstats and the per-device counters."""

from __future__ import annotations

from abc import ABC


class DomainStats(ABC):
    """Statistics of one running domain: domstats and the per-device counters."""
