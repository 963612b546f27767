"""Domain definitions: look up, list, define, undefine, read and change the XML.

Owned by the definitions concern (``vsh/commands/domain.py``, ``config.py``).

Where a change can touch the running domain, the persistent definition or both, the
methods take libvirt's ``VIR_DOMAIN_AFFECT_*`` flags as booleans: ``live``, ``config``,
``current`` (live when running, else config); none of them means what the plain libvirt
call means (said in each docstring). They return which definitions changed as
``{"live": bool, "config": bool}``.

States are virsh's words (``running``, ``shut off``, ``in shutdown``...), the same in
:meth:`DomainConfig.info`, :meth:`DomainConfig.state` and
:meth:`ConnectionDomains.list_domains`.
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
    def lookup_domain_by_id(self, id: int):
        """The running domain with id ``id`` (``virDomainLookupByID``); NotFound
        (``failed to get domain 'ID'``) when none has it."""

    @abstractmethod
    def lookup_domain_by_uuid(self, uuid: str):
        """The domain whose UUID is ``uuid`` (``virDomainLookupByUUIDString``); NotFound
        (``failed to get domain 'UUID'``) when none has it."""

    @abstractmethod
    def list_domains(self, active: bool | None = None, persistent: bool | None = None,
                     states: list[str] | None = None, autostart: bool | None = None,
                     managed_save: bool | None = None, snapshot: bool | None = None,
                     details: bool = False) -> list[dict]:
        """The domains ``virConnectListAllDomains`` would return for the same filters, sorted as
        ``virsh list`` sorts them (running ones by id, then the others by name).

        Each filter is None (no filter) or what the domain must be: ``active`` running (or not),
        ``persistent``, ``autostart`` enabled, with a ``managed_save`` image, with a ``snapshot``;
        ``states`` a list of ``running``, ``paused``, ``shutoff`` and ``other`` (any other state).
        Each dict has ``name``, ``id`` (None when inactive), ``state`` (virsh's words), ``reason``,
        ``active``, ``persistent``; with ``details`` also ``uuid`` and ``title`` (None when the
        definition cannot be read) and ``managed_save`` (bool).
        """

    @abstractmethod
    def define_xml(self, xml: str, validate: bool | str = False):
        """Define (or redefine) a persistent domain from its XML text (``virDomainDefineXML``);
        returns its :class:`~vsh.api.base.Domain`.

        ``validate`` True checks the XML against libvirt's RelaxNG schema first (Unsupported when
        the schema is not installed); ``"if-installed"`` checks only when it is (what ``edit``
        does). Raises XMLError for a malformed or invalid definition, or when another domain has
        the same name with another UUID, or the same UUID under another name.
        """


class DomainConfig(ABC):
    """Per-domain operations on the definition."""

    @abstractmethod
    def info(self) -> dict:
        """``virDomainGetInfo`` and friends: id, name, uuid, os_type, state, cpus, cpu_time (s or
        None), max_memory_kib, used_memory_kib, persistent, autostart, managed_save."""

    @property
    @abstractmethod
    def id(self) -> int | None:
        """The id of a running domain (``virDomainGetID``); None when it is inactive."""

    @abstractmethod
    def uuid(self) -> str | None:
        """The domain's UUID (``virDomainGetUUIDString``)."""

    @abstractmethod
    def state(self) -> tuple[str, str]:
        """``(state, reason)`` in virsh's words (``virDomainGetState``): ``("shut off", "saved")``
        for an inactive domain with a managed save image, ``"unknown"`` as the reason of a domain
        that never ran."""

    @abstractmethod
    def xml(self, inactive: bool = False) -> str:
        """The domain's XML (``virDomainGetXMLDesc``): the live definition of a running domain,
        or with ``inactive`` (and for an inactive domain) the persistent one."""

    @abstractmethod
    def undefine(self, managed_save: bool = False, snapshots_metadata: bool = False, nvram: bool = False,
                 keep_nvram: bool = False, remove_all_storage: bool = False, dry_run: bool = False) -> dict:
        """Forget the persistent definition (``virDomainUndefineFlags``, and virsh's storage removal).

        Refuses (OperationInvalid) a transient domain, a managed save image without
        ``managed_save``, snapshots without ``snapshots_metadata`` (whose metadata it then removes),
        and ``remove_all_storage`` of a running domain. ``remove_all_storage`` deletes the pool
        volumes of its disks that no other domain uses; ``dry_run`` only says which, and changes
        nothing. Returns ``{"name", "removed": [{"target", "path"}], "failed": [{"target", "path",
        "error"}], "kept": [{"target", "path", "reason"}]}``; ``reason`` is ``"unmanaged"`` for a
        file that is no pool's volume, else why it stays (``used by domain 'X'``); a driver whose
        volumes someone else manages names it as ``"manager"`` (``libvirt``; default ``vsh``).
        """

    @abstractmethod
    def set_autostart(self, enabled: bool) -> None:
        """Start the domain (or not) when the host boots (``virDomainSetAutostart``); OperationInvalid
        for a transient domain."""

    @abstractmethod
    def rename(self, new_name: str) -> None:
        """Give an inactive domain another name (``virDomainRename``); OperationInvalid when it
        runs or the name is taken, InvalidArgument for a name that cannot be stored."""

    @abstractmethod
    def metadata(self, title: bool = False, live: bool = False, config: bool = False) -> str | None:
        """The description (or with ``title`` the title) of the running domain, or with ``config``
        (and for an inactive domain) of the persistent definition; None when there is none.
        ``live`` of an inactive domain is OperationInvalid."""

    @abstractmethod
    def set_metadata(self, text: str | None, title: bool = False, live: bool = False,
                     config: bool = False) -> None:
        """Set (None or empty: remove) the description or title (``virDomainSetMetadata``). With no
        flag the persistent definition changes, and the live one too when the domain runs; a title
        cannot hold a newline (InvalidArgument)."""

    @abstractmethod
    def metadata_element(self, uri: str, live: bool = False, config: bool = False) -> str:
        """The custom ``<metadata>`` element of namespace ``uri`` (``virDomainGetMetadata`` with
        ``VIR_DOMAIN_METADATA_ELEMENT``) as XML text without its namespace, of the running domain or
        with ``config`` (and for an inactive domain) of the persistent definition. NotFound
        (``metadata not found: Requested metadata element is not present``) when there is none."""

    @abstractmethod
    def set_metadata_element(self, uri: str, key: str | None, xml: str | None, live: bool = False,
                             config: bool = False) -> dict:
        """Set (``xml``: one element, stored in namespace ``uri`` with prefix ``key``) or with ``xml``
        None remove the custom metadata element of namespace ``uri`` (``virDomainSetMetadata``). No
        flag: the persistent definition and the live one when running. XMLError for text that is not
        one element; InvalidArgument for a missing ``key`` or a bad ``uri``. Returns
        ``{"live", "config"}``."""

    @abstractmethod
    def set_lifecycle_action(self, event: str, action: str, live: bool = False, config: bool = False,
                             current: bool = False) -> dict:
        """``virDomainSetLifecycleAction``: what ``event`` (``poweroff``, ``reboot``, ``crash``) does
        (``destroy``, ``restart``, ``rename-restart``, ``preserve``, ``coredump-destroy``,
        ``coredump-restart``); no flag means current. A running domain's supervisor applies it from
        now on. InvalidArgument for an unknown event or action; Unsupported for an action the event
        cannot have. Returns ``{"live", "config"}``."""

    @abstractmethod
    def interface_link(self, iface: str, inactive: bool = False) -> dict:
        """The link state of the interface ``iface`` (its MAC address or host-side name) in the live
        definition or with ``inactive`` the persistent one: ``{"interface": iface, "mac", "state": "up"
        or "down"}``. NotFound when no interface matches; OperationInvalid when several do."""

    @abstractmethod
    def set_interface_link(self, iface: str, state: str, config: bool = False) -> dict:
        """Bring the link of interface ``iface`` ``up`` or ``down`` (``domif-setlink``): on the running
        domain (QMP ``set_link``) and its live definition, or with ``config`` (and for an inactive
        domain) in the persistent definition (``<link state=.../>``). InvalidArgument for another
        state. Returns ``{"live", "config"}``."""

    @abstractmethod
    def block_devices(self, inactive: bool = False) -> list[dict]:
        """The disks (``domblklist``): dicts with ``type``, ``device``, ``target``, ``source``
        (None for an empty drive) and ``bus``, of the live definition or with ``inactive`` the
        persistent one."""

    @abstractmethod
    def interfaces(self, inactive: bool = False) -> list[dict]:
        """The network interfaces (``domiflist``): dicts with ``interface`` (the host side's name,
        None when not running), ``type``, ``source``, ``model`` and ``mac``."""

    @abstractmethod
    def vcpu_counts(self, guest: bool = False) -> dict:
        """``virDomainGetVcpusFlags`` for every flag at once: ``{"config": {"maximum", "current"}
        or None (a transient domain), "live": {"maximum", "current"} or None (not running)}``.
        ``guest`` (ask the guest agent) is Unsupported where the driver has no agent."""

    @abstractmethod
    def set_memory(self, kib: int, live: bool = False, config: bool = False, current: bool = False) -> dict:
        """Set the memory the guest may use, its balloon target, in KiB (``virDomainSetMemoryFlags``);
        no flag means live. InvalidArgument for 0 or more than the maximum; OperationInvalid when
        the domain has no balloon. Returns ``{"live", "config"}``."""

    @abstractmethod
    def set_max_memory(self, kib: int, live: bool = False, config: bool = False, current: bool = False) -> dict:
        """Set the domain's memory size (``<memory>``) in KiB; no flag means current. A running
        domain cannot change it (OperationInvalid); a smaller size brings the current memory down
        too. Returns ``{"live", "config"}``."""

    @abstractmethod
    def set_vcpu(self, vcpus: list[int], enable: bool, live: bool = False, config: bool = False,
                 current: bool = False) -> dict:
        """``virDomainSetVcpu``: enable (hot-plug) or disable (unplug) the vCPUs numbered ``vcpus``.
        InvalidArgument (libvirt's words) for a vCPU the domain does not have, one already in that
        state, or vCPU 0; Unsupported where the driver cannot (the local driver keeps the enabled
        vCPUs numbered from 0 without gaps; a live unplug under TCG). Returns ``{"live", "config"}``."""

    @abstractmethod
    def set_vcpus(self, count: int, maximum: bool = False, live: bool = False, config: bool = False,
                  current: bool = False, guest: bool = False, hotpluggable: bool = False) -> dict:
        """Set the number of virtual CPUs (``virDomainSetVcpusFlags``); no flag means live. With
        ``maximum`` (config only) the most the domain can have. A running domain gets vCPUs
        hot-plugged; more than its maximum is InvalidArgument. Returns ``{"live", "config"}``."""
