"""Virtual networks."""

from __future__ import annotations

from abc import ABC


class Networks(ABC):
    """Virtual networks."""
