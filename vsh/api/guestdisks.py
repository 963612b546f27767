"""A guest-disk session (guestfish): add drives, inspect, read and (later) write files."""

from __future__ import annotations

from abc import ABC


class GuestDisks(ABC):
    """A guest-disk session (guestfish): add drives, inspect, read and (later) write files."""
