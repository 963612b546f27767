"""Storage pools and their volumes."""

from __future__ import annotations

from abc import ABC


class Storage(ABC):
    """Storage pools and their volumes."""
