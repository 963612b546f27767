"""Virtual networks (``virNetworkPtr``).

Owned by the network concern (``vsh/commands/network.py``). ``conn.networks`` is a
:class:`Networks`; it hands out :class:`Network` handles, which keep their network
as last read (as a domain handle does): ``info()`` reports that, and an operation
through the handle updates it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class Networks(ABC):
    """The virtual networks of a connection."""

    @abstractmethod
    def list(self, active: bool | None = None, persistent: bool | None = None,
             autostart: bool | None = None) -> list[dict]:
        """Every network (``virConnectListAllNetworks``), sorted by name as virsh sorts, kept when it
        matches each filter that is not None; each is the dict :meth:`Network.info` returns."""

    @abstractmethod
    def names(self) -> list[str]:
        """The names of the networks, sorted; cheap and without side effects (for completion)."""

    @abstractmethod
    def lookup(self, ident: str) -> "Network":
        """The network with UUID ``ident``, else named ``ident``; NotFound ``Network not found: no
        network with matching name 'x'``."""

    @abstractmethod
    def lookup_by_name(self, name: str) -> "Network":
        """The network named ``name``; NotFound as :meth:`lookup`."""

    @abstractmethod
    def lookup_by_uuid(self, uuid: str) -> "Network":
        """The network with UUID ``uuid``; NotFound ``Network not found: no network with matching
        uuid 'x'`` when ``uuid`` is not spelled as a UUID, as :meth:`lookup` otherwise."""

    @abstractmethod
    def define_xml(self, xml: str | bytes) -> "Network":
        """Define a persistent network from libvirt's ``<network>`` XML (``virNetworkDefineXML``),
        filling in what libvirt fills in (UUID, bridge name, bridge MAC); the same name and UUID
        redefine it, and a running network keeps its old configuration until restarted.
        XMLError or Unsupported for a document it would not honour, OperationInvalid for a UUID
        or bridge another network holds."""

    @abstractmethod
    def create_xml(self, xml: str | bytes) -> "Network":
        """Start a transient network from ``<network>`` XML (``virNetworkCreateXML``). Errors as
        :meth:`define_xml` and :meth:`Network.start`; VshError ``network 'x' already exists``."""


class Network(ABC):
    """One network. ``name`` and ``uuid`` are its identity."""

    name: str
    uuid: str

    @abstractmethod
    def info(self) -> dict:
        """``name``, ``uuid``, ``active``, ``persistent``, ``autostart``, ``bridge`` (or None),
        ``forward`` (the forward mode, ``isolated`` without one), ``ip`` (its IPv4 address with
        prefix, or None)."""

    @abstractmethod
    def xml(self, inactive: bool = False) -> str:
        """libvirt's ``<network>`` XML: as it runs, or with ``inactive`` (or when it does not run)
        as it is defined."""

    @abstractmethod
    def start(self) -> None:
        """Bring the network up (bridge, firewall rules, DHCP and DNS) and plug the running
        domains on it back in; OperationInvalid when it is active, VshError when the host
        refuses (privileges, a bridge or subnet in use)."""

    @abstractmethod
    def destroy(self) -> None:
        """Take the network down; a transient one is gone afterwards. OperationInvalid when it is
        not active."""

    @abstractmethod
    def undefine(self) -> None:
        """Remove the definition; a running network keeps running as a transient one.
        OperationInvalid when it is not persistent."""

    @abstractmethod
    def set_autostart(self, enabled: bool) -> None:
        """Mark (or unmark) the network to be started after the host boots; OperationInvalid for a
        transient network."""

    @abstractmethod
    def redefine(self, xml: str | bytes) -> None:
        """Replace the persistent definition by ``xml`` (net-edit), which must keep the network's
        name (InvalidArgument otherwise); errors as :meth:`Networks.define_xml`."""

    @abstractmethod
    def update(self, command: str, section: str, xml: str | bytes, parent_index: int | None = None,
               live: bool = False, config: bool = False) -> dict:
        """``virNetworkUpdate`` (net-update): ``command`` (add, add-first, add-last, delete,
        modify) one ``<host>``/``<range>`` element of ``section`` (virsh's names: ip-dhcp-host,
        ip-dhcp-range, dns-host, ...; ``parent_index`` picks the ``<ip>``) in the running network
        (``live``), its persistent definition (``config``), or, with neither, the running
        network when it is active, else the definition. Returns ``{"live", "config"}``: what
        changed. InvalidArgument for an unknown command or section, OperationInvalid with
        libvirt's wording for an entry that is missing or already there, Unsupported for a
        section that cannot be updated."""

    @abstractmethod
    def dhcp_leases(self, mac: str | None = None) -> list[dict]:
        """The unexpired DHCP leases of the active network (none when inactive), for ``mac`` only
        when given, sorted by MAC and address: dicts with ``expiry`` (epoch seconds, 0 for
        never), ``mac``, ``type`` (``ipv4``), ``ip``, ``prefix``, ``hostname``, ``clientid``
        (None when unknown)."""
