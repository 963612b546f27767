"""Devices of one domain: attach, detach, update, change media."""

from __future__ import annotations

from abc import ABC


class DomainDevices(ABC):
    """Devices of one domain: attach, detach, update, change media."""
