"""The two handles every driver provides: :class:`Connection` and :class:`Domain`.

Each is assembled from the abstract classes of one concern each (definitions in
:mod:`vsh.api.domains`, running domains in :mod:`vsh.api.lifecycle`, the destination's side of
a migration in :mod:`vsh.api.migration`); the rarer
families hang off them as sub-handles, imported only when used:

=====================  ==========================================
``conn.storage``       pools and volumes (:mod:`vsh.api.storage`)
``conn.networks``      virtual networks (:mod:`vsh.api.networks`)
``conn.host``          host facts and capabilities (:mod:`vsh.api.host`)
``conn.installer``     the install planner (:mod:`vsh.api.install`)
``conn.guest_disks()`` a guest-disk session (:mod:`vsh.api.guestdisks`)
``dom.devices``        live and persistent devices (:mod:`vsh.api.devices`)
``dom.stats``          statistics (:mod:`vsh.api.stats`)
``dom.snapshots``      snapshots (:mod:`vsh.api.snapshots`)
``dom.display``        graphics, screen, keys, NMI (:mod:`vsh.api.display`)
``dom.tuning``         pinning, scheduler, I/O limits, bandwidth (:mod:`vsh.api.tuning`)
``dom.block_jobs``     block jobs, job and disk-error queries (:mod:`vsh.api.blockjobs`)
``dom.agent``          the guest agent (:mod:`vsh.api.agent`)
=====================  ==========================================

A driver subclasses these and implements every abstract method; Python refuses to
instantiate a handle that misses one, and ``tests/unit/test_api.py`` checks every
driver the same way. Methods take plain arguments (str, int, bool, lists, dicts) and
return plain data (the same, or small read-only handles); they raise
:class:`vsh.core.errors.VshError` with libvirt's wording, never print, and never
read a terminal.
"""

from __future__ import annotations

from abc import abstractmethod

from vsh.api.domains import ConnectionDomains, DomainConfig
from vsh.api.lifecycle import ConnectionLifecycle, DomainLifecycle
from vsh.api.migration import ConnectionMigration


class Connection(ConnectionDomains, ConnectionLifecycle, ConnectionMigration):
    """One open connection (``virConnectPtr``)."""

    uri: str            # the URI it was opened with (or the default one)
    readonly: bool      # opened read-only: every operation that changes something is refused
    #: the backend itself refuses changes on a read-only connection (libvirt does, in its words);
    #: otherwise the front end refuses commands that change something before they run
    enforces_readonly: bool = False

    def close(self) -> None:
        """Release what the connection holds (sessions, channels); idempotent."""

    def settle(self) -> None:
        """Raise the error of a call that the connection sent on without waiting for its reply (the
        remote driver pipelines lookups) and that failed, unless the caller met it already; a
        front end asks after each command, whose error that is. Drivers that wait for every
        call have nothing to settle."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    @abstractmethod
    def storage(self):
        """Storage pools and volumes: a :class:`vsh.api.storage.Storage`."""

    @property
    @abstractmethod
    def networks(self):
        """Virtual networks: a :class:`vsh.api.networks.Networks`."""

    @property
    @abstractmethod
    def host(self):
        """Host facts: a :class:`vsh.api.host.Host`."""

    @property
    @abstractmethod
    def installer(self):
        """Creating domains from media: a :class:`vsh.api.install.Installer`."""

    @abstractmethod
    def guest_disks(self, readonly: bool = True):
        """A new guest-disk session (:class:`vsh.api.guestdisks.GuestDisks`); add drives to it."""


class Domain(DomainConfig, DomainLifecycle):
    """One domain, looked up by name, id or UUID (``virDomainPtr``).

    A handle names the domain; its facts (state, XML) are read when asked for, so a
    handle stays valid while the domain changes.
    """

    name: str

    @property
    @abstractmethod
    def devices(self):
        """Devices: a :class:`vsh.api.devices.DomainDevices`."""

    @property
    @abstractmethod
    def stats(self):
        """Statistics: a :class:`vsh.api.stats.DomainStats`."""

    @property
    @abstractmethod
    def snapshots(self):
        """Snapshots: a :class:`vsh.api.snapshots.DomainSnapshots`."""

    @property
    @abstractmethod
    def display(self):
        """Graphics, screen, keyboard and NMI: a :class:`vsh.api.display.DomainDisplay`."""

    @property
    @abstractmethod
    def block_jobs(self):
        """Block jobs: a :class:`vsh.api.blockjobs.DomainBlockJobs`."""

    @property
    @abstractmethod
    def tuning(self):
        """CPU pinning, scheduler, I/O limits, bandwidth: a :class:`vsh.api.tuning.DomainTuning`."""

    @property
    @abstractmethod
    def agent(self):
        """The guest agent: a :class:`vsh.api.agent.DomainAgent`."""
