"""Domain definitions: look up, list, define, undefine, read and change the XML.

Owned by the definitions concern (``vsh/commands/domain.py``, ``config.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class ConnectionDomains(ABC):
    """Connection-level operations on definitions."""

    @abstractmethod
    def lookup_domain(self, ident: str):
        """The :class:`~vsh.api.base.Domain` named ``ident`` (name, id or UUID); NotFound otherwise
        (``failed to get domain 'x'``)."""

    @abstractmethod
    def list_domains(self) -> list[dict]:
        """Every domain, sorted as ``virsh list`` sorts them: dicts with at least
        ``name``, ``id`` (None when inactive), ``state``, ``reason``, ``active``, ``persistent``."""


class DomainConfig(ABC):
    """Per-domain operations on the definition."""

    @abstractmethod
    def info(self) -> dict:
        """``virDomainGetInfo`` and friends: id, name, uuid, os_type, state, cpus, cpu_time (s or
        None), max_memory_kib, used_memory_kib, persistent, autostart, managed_save."""

    @abstractmethod
    def xml(self, inactive: bool = False) -> str:
        """The domain's XML (``virDomainGetXMLDesc``): the live definition of a running domain,
        or with ``inactive`` (and for an inactive domain) the persistent one."""
