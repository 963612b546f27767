"""Snapshots of one domain: create, list, revert, delete."""

from __future__ import annotations

from abc import ABC


class DomainSnapshots(ABC):
    """Snapshots of one domain: create, list, revert, delete."""
