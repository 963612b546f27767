"""Running domains: start, stop, pause, console, save and restore.

Owned by the lifecycle concern (``vsh/commands/lifecycle.py``, ``snapshot.py``).
"""

from __future__ import annotations

from abc import ABC


class ConnectionLifecycle(ABC):
    """Connection-level operations that make running domains (create from XML, restore)."""


class DomainLifecycle(ABC):
    """Per-domain operations on a running (or to be run) domain."""
