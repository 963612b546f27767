"""The host: node facts, capabilities, domain capabilities, validation."""

from __future__ import annotations

from abc import ABC


class Host(ABC):
    """The host: node facts, capabilities, domain capabilities, validation."""
