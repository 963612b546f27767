"""Snapshots of one domain: create, list, revert, delete.

A snapshot is described by a dict: ``name``, ``creation_time`` (seconds since the
epoch), ``state`` (running, paused, shutoff, disk-snapshot), ``parent`` (None for a
root), ``current`` (bool), ``location`` (internal or external), ``description``,
``children`` and ``descendants`` (counts). Errors carry libvirt's wording
(``Domain snapshot not found: no domain snapshot with matching name 's1'``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class DomainSnapshots(ABC):
    """Snapshots of one domain (``dom.snapshots``)."""

    @abstractmethod
    def create(self, name: str | None = None, description: str | None = None, disk_only: bool = False,
               disks: list[dict] | None = None, no_metadata: bool = False, halt: bool = False) -> dict:
        """``virDomainSnapshotCreateXML`` from arguments: an internal snapshot (memory too when the
        domain runs), or with ``disk_only`` external qcow2 overlays. ``disks`` are dicts ``target``,
        ``snapshot`` (internal, external, no; optional) and ``file`` (the overlay's path; optional).
        Without a name, the current time in seconds. Returns ``name``, ``state``, ``location``."""

    @abstractmethod
    def create_xml(self, xml: str, origin: str = "domainsnapshot", disk_only: bool = False,
                   no_metadata: bool = False, halt: bool = False) -> dict:
        """Like :meth:`create` from a ``<domainsnapshot>`` document (``origin`` names it in errors):
        its name, description, ``<memory snapshot='no'/>`` and ``<disks>`` are used; external disks
        make it disk-only. InvalidArgument for what vsh cannot take (external memory)."""

    @abstractmethod
    def list(self, start: str | None = None, current: bool = False, descendants: bool = False,
             with_start: bool = False, roots: bool = False, leaves: bool = False, no_leaves: bool = False,
             metadata: bool = False, no_metadata: bool = False, inactive: bool = False,
             active: bool = False, disk_only: bool = False, internal: bool = False,
             external: bool = False, topological: bool = False) -> list[dict]:
        """``virDomainListAllSnapshots`` with its filters: the snapshots (described as in the
        module's docstring), by name or, with ``topological``, parents first. ``start`` (or the
        current snapshot with ``current``) limits them to its children (all ``descendants``;
        ``with_start`` puts it first); the other flags are virsh's snapshot-list filters.
        NotFound for an unknown ``start``; OperationInvalid when ``current`` has none."""

    @abstractmethod
    def current(self):
        """The current snapshot's :class:`Snapshot`, None when there is none."""

    @abstractmethod
    def snapshot(self, name: str):
        """The :class:`Snapshot` named ``name``; its methods raise NotFound if there is none."""


class Snapshot(ABC):
    """One snapshot of a domain (``virDomainSnapshotPtr``)."""

    name: str

    @abstractmethod
    def info(self) -> dict:
        """The snapshot described as in the module's docstring, plus ``domain`` and ``metadata``."""

    @abstractmethod
    def xml(self, with_domain: bool = True) -> str:
        """The ``<domainsnapshot>`` document (with the domain's XML inside unless not ``with_domain``)."""

    @abstractmethod
    def parent_name(self) -> str:
        """The parent's name; OperationInvalid ``snapshot 's1' has no parent`` for a root."""

    @abstractmethod
    def set_current(self) -> None:
        """Make this snapshot the current one (the next snapshot's parent)."""

    @abstractmethod
    def redefine(self, xml: str | bytes, current: bool = False, rename: bool = False, clone: bool = False) -> str:
        """``virDomainSnapshotCreateXML`` with ``REDEFINE`` (snapshot-edit): store ``xml`` (the
        snapshot's ``<domainsnapshot>`` as edited) as this snapshot's metadata; ``current`` makes
        it current. Returns the name. InvalidArgument ``Must use --rename or --clone to change A
        to B`` for a new name without ``rename``/``clone``; Unsupported for what the driver
        cannot change (the local driver: everything but the description, and the name)."""

    @abstractmethod
    def revert(self, running: bool = False, paused: bool = False, force: bool = False) -> dict:
        """``virDomainRevertToSnapshot``: disks, definition and (for a running snapshot) memory go
        back to it. OperationInvalid ("revert requires force: ...") in libvirt's risky cases unless
        ``force``: a snapshot without a domain definition, an ABI-incompatible running revert,
        starting an inactive snapshot over a running domain, a managed save image. Returns the domain's runtime state (empty when it does not run)."""

    @abstractmethod
    def delete(self, children: bool = False, children_only: bool = False,
               metadata_only: bool = False) -> list[str]:
        """``virDomainSnapshotDelete``: delete it (and its descendants with ``children``, only them
        with ``children_only``; only vsh's metadata with ``metadata_only``). The names deleted."""
