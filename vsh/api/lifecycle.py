"""Running domains: start, stop, pause, console, save and restore.

Owned by the lifecycle concern (``vsh/commands/lifecycle.py``, ``snapshot.py``).

The runtime state a method returns is a dict with at least ``name``, ``uuid``, ``id``,
``state``, ``reason``, ``qemu_pid``, ``console_pty`` and ``transient``. Errors of a
method that acts on one domain carry virsh's first line of context (``Failed to
suspend domain 'vm1'``), as virsh prints them; the command adds nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

# QEMU's dump-guest-memory formats, as virsh's dump --format names them
DUMP_FORMATS = ("elf", "kdump-zlib", "kdump-lzo", "kdump-snappy", "kdump-zstd", "win-dmp")


#: virsh's domain event names (``event --list``), in libvirt's order of event IDs
EVENT_NAMES = ("lifecycle", "reboot", "rtc-change", "watchdog", "io-error", "graphics", "io-error-reason",
               "control-error", "block-job", "disk-change", "tray-change", "pm-wakeup", "pm-suspend",
               "balloon-change", "pm-suspend-disk", "device-removed", "block-job-2", "tunable",
               "agent-lifecycle", "device-added", "migration-iteration", "job-completed",
               "device-removal-failed", "metadata-change", "block-threshold", "memory-failure",
               "memory-device-size-change")


class ConnectionLifecycle(ABC):
    """Connection-level operations that make running domains (create from XML, restore)."""

    @abstractmethod
    def create_xml(self, xml: str, paused: bool = False, validate: bool = False) -> dict:
        """``virDomainCreateXML``: start a transient domain from ``xml`` (a persistent one of the
        same name and UUID is started with this XML instead). ``validate`` checks the XML against
        libvirt's schema first. Returns the runtime state as the domain started (its ``name``
        names the domain for :meth:`lookup_domain`). Raises XMLError, OperationInvalid (already
        active, UUID clash) and the start's errors, without context."""

    @abstractmethod
    def restore(self, path: str, xml: str | None = None, running: bool = False, paused: bool = False,
                bypass_cache: bool = False) -> dict:
        """``virDomainRestoreFlags``: start the domain the save image at host ``path`` describes
        (``xml`` replaces its definition; same devices only) and load its state; running (restored)
        unless the image or ``paused`` says paused. Returns the runtime state. Errors without
        context."""

    @abstractmethod
    def domain_events(self, domain: str | None = None, timeout: float | None = None):
        """``virConnectDomainEventRegisterAny``, for one domain or (None) all: an iterator of
        ``(domain name, event)`` (events as :meth:`DomainLifecycle.events` gives them) from now on,
        following every domain that runs now or starts later (a domain named here need not run
        yet), until ``timeout`` seconds pass (None: until the caller stops reading).
        NotFound for an unknown ``domain``."""

    @abstractmethod
    def qemu_attach(self, pid: int):
        """``virDomainQemuAttach``: adopt the QEMU process ``pid`` started outside the driver as a
        domain. libvirt's QEMU driver no longer can (libvirt 5.5 removed it), nor the local
        driver: Unsupported with libvirt's wording."""

    @abstractmethod
    def save_image_xml(self, path: str) -> str:
        """The domain XML recorded in the save image at host ``path``."""

    @abstractmethod
    def save_image_define(self, path: str, xml: str, running: bool = False, paused: bool = False) -> bool:
        """``virDomainSaveImageDefineXML``: replace the domain XML recorded in the save image at
        host ``path``; the new XML must describe the same machine (libvirt's ABI check: same name,
        UUID, memory, vCPUs, disks, NICs...). ``running`` / ``paused`` change the state restore
        gives. Returns False when the XML and state were already those. Raises OperationInvalid
        (no valid image), XMLError, Unsupported (an ABI difference, in libvirt's words)."""


class ConsoleStream(ABC):
    """An open serial console of a running domain (``virStreamPtr`` of ``virDomainOpenConsole``).

    It holds the domain's one console session until :meth:`close`. The front end polls
    :meth:`fileno` for reading, then calls :meth:`read`; it drives the terminal itself.
    """

    name: str           # the domain's name

    @abstractmethod
    def fileno(self) -> int:
        """A descriptor that becomes readable when :meth:`read` has something (or the end)."""

    @abstractmethod
    def read(self, size: int = 65536) -> bytes | None:
        """Guest output: bytes, ``b""`` once the guest side closed (the domain stopped), None when
        nothing is there right now."""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send ``data`` to the guest (all of it; Timeout if the guest does not take it)."""

    @property
    @abstractmethod
    def taken_over(self) -> bool:
        """True once another session forced its way onto this console (this one should end)."""

    @abstractmethod
    def close(self) -> None:
        """Let go of the device and the session; idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DomainLifecycle(ABC):
    """Per-domain operations on a running (or to be run) domain."""

    @abstractmethod
    def runtime(self) -> dict | None:
        """The runtime state of the running domain (see the module's docstring; empty if the domain
        is starting and has none yet); None when it is not running."""

    @abstractmethod
    def start(self, paused: bool = False, force_boot: bool = False, bypass_cache: bool = False,
              reset_nvram: bool = False) -> dict:
        """``virDomainCreateWithFlags``: boot the defined domain, or resume it from its managed save
        image (``force_boot`` discards the image; ``bypass_cache`` reads it past the page cache;
        ``reset_nvram`` makes the UEFI variable store afresh from its template);
        an interrupted snapshot operation is finished first. Returns the runtime state.
        OperationInvalid ``Domain is already active`` (without context) when it runs."""

    @abstractmethod
    def shutdown(self, mode: str | None = None) -> dict:
        """``virDomainShutdownFlags``: press the ACPI power button (``mode`` acpi or None; the
        others are Unsupported). OperationInvalid when the guest has no ACPI or does not run."""

    @abstractmethod
    def reboot(self, mode: str | None = None) -> dict:
        """``virDomainReboot``: ``acpi`` (default: power button, then boot again) or ``reset``."""

    @abstractmethod
    def reset(self) -> dict:
        """``virDomainReset``: reset the machine at once."""

    @abstractmethod
    def destroy(self, graceful: bool = False) -> dict:
        """``virDomainDestroyFlags``: stop QEMU (SIGTERM, then SIGKILL unless ``graceful``)."""

    @abstractmethod
    def suspend(self) -> dict:
        """``virDomainSuspend``: pause the guest's CPUs."""

    @abstractmethod
    def resume(self) -> dict:
        """``virDomainResume``: let a paused guest run again."""

    @abstractmethod
    def migrate(self, dest_uri: str, *, live: bool = False, offline: bool = False, persistent: bool = False,
                undefine_source: bool = False, copy_storage: bool = False, suspend: bool = False,
                timeout: float | None = None, auto_converge: bool = False, progress=None,
                dest_xml: str | None = None) -> dict:
        """``virDomainMigrateToURI3``: move the domain to the connection ``dest_uri``. A running
        domain moves with its memory (``live``: the guest keeps running during the transfer;
        else it is paused for it; ``timeout``: paused after that many seconds; ``auto_converge``:
        its vCPUs are throttled until the transfer converges), ends ``shut off (migrated)`` here
        and runs (``suspend``: stays paused) there as ``running (migrated)``, transient there
        unless ``persistent``; ``undefine_source`` removes the definition here. ``offline``
        (needs ``persistent``) copies the definition only. ``dest_xml``: the domain's XML there
        (same name, UUID and devices; its disks may name other files). ``copy_storage`` copies
        the writable disks into the destination's files (made there when missing) while the
        guest runs; else both ends must see the same disk files (shared storage).
        ``progress(percent)`` is called during the transfer. Returns ``name``, ``offline``,
        ``persistent``, ``source_undefined`` and QEMU's figures: ``downtime_ms``, ``total_ms``,
        ``transferred`` (bytes), ``iterations``. A failed migration leaves the domain running
        here as before. Unsupported for a destination this driver cannot reach."""

    @abstractmethod
    def migration_parameters(self, names: list[str] | None = None) -> dict:
        """The running domain's migration tunables (those in ``names``, or all): ``downtime_ms``
        (the longest pause tolerated at the switch), ``bandwidth_mib`` and
        ``postcopy_bandwidth_mib`` (MiB/s; 0 for no limit) and ``compression_cache`` (bytes).
        OperationInvalid when it does not run."""

    @abstractmethod
    def set_migration_parameters(self, downtime_ms: int | None = None, bandwidth_mib: int | None = None,
                                 postcopy_bandwidth_mib: int | None = None,
                                 compression_cache: int | None = None) -> None:
        """Change the tunables of :meth:`migration_parameters` that are not None (they apply to the
        next migration, and to one that runs). OperationInvalid when the domain does not run."""

    @abstractmethod
    def start_postcopy(self) -> None:
        """``virDomainMigrateStartPostCopy``: switch a running migration to post-copy.
        OperationInvalid when no migration runs or it was not started for post-copy."""

    @abstractmethod
    def monitor_command(self, cmd: str, hmp: bool = False) -> dict | str:
        """``virDomainQemuMonitorCommand``: with ``hmp`` the human-monitor line's text output;
        otherwise ``cmd`` is a QMP command in JSON and the result QEMU's reply as a dict (with the
        request's ``id``). InvalidArgument for a command that is not a QMP object."""

    @abstractmethod
    def open_console(self, devname: str | None = None, force: bool = False) -> ConsoleStream:
        """``virDomainOpenConsole``: a :class:`ConsoleStream` on the character device whose alias
        is ``devname`` (serial0, serial1, console0, channel0...; None: the first console, which is
        serial port 0 if there is one, else the first virtio console). OperationInvalid
        ``cannot find character device`` for an unknown alias. One session per domain:
        OperationInvalid ``Active console session exists`` unless ``force`` takes it over."""

    @abstractmethod
    def console_pty(self) -> str | None:
        """The pty path of the domain's first console (virsh ``ttyconsole``), None when that
        console is not a pty. OperationInvalid when the domain is not running."""

    @abstractmethod
    def console_log(self, follow: bool = False, timeout: float | None = None):
        """An iterator of bytes: what the guest wrote on its serial console in the current (or
        last) run; with ``follow`` it goes on until the domain stops or ``timeout`` s pass.
        OperationInvalid (at once, not when iterated) when there is no log yet."""

    @abstractmethod
    def save(self, path: str, xml: str | None = None, running: bool = False, paused: bool = False,
             bypass_cache: bool = False, progress=None) -> dict:
        """``virDomainSaveFlags``: write the guest's state to the host file ``path`` and stop it.
        ``xml`` replaces the definition recorded in the image (same name and UUID); ``running`` /
        ``paused`` choose the state restore gives it. ``progress`` is called with a percentage
        (0-99) as the migration goes. Errors without context."""

    @abstractmethod
    def managed_save(self, running: bool = False, paused: bool = False, bypass_cache: bool = False,
                     progress=None) -> dict:
        """``virDomainManagedSave``: like :meth:`save` into the store; the next :meth:`start` resumes
        from it. OperationInvalid for a transient domain. Errors without context."""

    @abstractmethod
    def managed_save_remove(self) -> bool:
        """``virDomainManagedSaveRemove``: drop the managed save image; False when there was none."""

    @abstractmethod
    def managed_save_xml(self) -> str:
        """The domain XML recorded in the managed save image; OperationInvalid when there is none."""

    @abstractmethod
    def managed_save_define(self, xml: str, running: bool = False, paused: bool = False) -> bool:
        """``virDomainManagedSaveDefineXML``: :meth:`ConnectionLifecycle.save_image_define` on the
        managed save image; OperationInvalid when there is none."""

    @abstractmethod
    def dump(self, path: str, fmt: str | None = None, memory_only: bool = False, live: bool = False,
             crash: bool = False, reset: bool = False, bypass_cache: bool = False) -> dict:
        """``virDomainCoreDumpWithFormat``: write the guest's memory to the host file ``path``
        (QEMU's ``dump-guest-memory``; ``fmt`` one of elf, kdump-zlib, kdump-lzo, kdump-snappy,
        kdump-zstd, win-dmp, only with ``memory_only``). The guest is paused while it is written
        unless ``live``; ``crash`` stops it afterwards, ``reset`` resets it; ``bypass_cache`` drops the
        file from the host page cache once written. Without ``memory_only`` the file is the same
        ELF core (libvirt writes its save format there). Returns ``{"path",
        "format"}``. OperationInvalid when not running, InvalidArgument for a bad combination."""

    @abstractmethod
    def monitor_events(self, event: str | None = None, timeout: float | None = None):
        """``virConnectDomainQemuMonitorEventRegister``: an iterator over the QEMU monitor events of
        the running domain from now on (``{"event", "data", "timestamp": {"seconds",
        "microseconds"}}``), only those named ``event`` when given, until the domain stops or
        ``timeout`` seconds pass. OperationInvalid (at once) when the domain is not running."""

    @abstractmethod
    def events(self, timeout: float | None = None):
        """``virConnectDomainEventRegisterAny`` for every event ID: an iterator over the running
        domain's events from now on, each a dict with ``event`` (a name of :data:`EVENT_NAMES`)
        and ``timestamp`` (seconds), and per event: lifecycle ``type``, ``detail`` (virsh's words,
        e.g. Stopped / Destroyed); rtc-change ``offset``; watchdog ``action``; balloon-change
        ``actual`` (KiB); device-removed ``alias``; tray-change ``alias``, ``tray`` (opened,
        closed); block-job and block-job-2 ``job`` (Block Pull, ...), ``disk`` (top image path,
        resp. target), ``status`` (completed, failed, canceled, ready); block-threshold ``dev``,
        ``path``, ``threshold``, ``excess``; reboot, pm-suspend, pm-wakeup nothing more. It ends
        after the domain stops (lifecycle Stopped) or ``timeout`` seconds. OperationInvalid (at
        once) when the domain is not running."""

    @abstractmethod
    def fd_associate(self, name: str, fds: list[int], seclabel_writable: bool = False,
                     seclabel_restore: bool = False) -> None:
        """``virDomainFDAssociate``: the caller's open file descriptors ``fds`` become the domain's
        fd group ``name`` for as long as the connection is open; a disk whose ``<source>`` says
        ``fdgroup='name'`` then uses them instead of opening its path when the domain starts (the
        first descriptor of the group, opened read-write unless the disk is read-only). The
        seclabel flags are libvirt's (no security labels here). Unsupported where descriptors
        cannot reach the driver (a remote connection)."""

    @abstractmethod
    def pm_wakeup(self) -> None:
        """``virDomainPMWakeup``: wake a guest that suspended itself to RAM (QMP system_wakeup).
        OperationInvalid when the domain is not running; QEMU's error when the guest is not
        suspended."""

    @abstractmethod
    def send_process_signal(self, pid: int, signum: int) -> None:
        """``virDomainSendProcessSignal``: signal a process inside the domain. libvirt's QEMU
        driver has no such operation, and neither has vsh: Unsupported, in libvirt's words."""

    @abstractmethod
    def lxc_enter_namespace(self, argv: list[str], noseclabel: bool = False) -> int:
        """``virDomainLxcEnterNamespace``: run ``argv`` in the namespaces of an LXC container.
        Only libvirt's LXC driver has containers; for a QEMU domain this is Unsupported, in
        libvirt's words, as with libvirt's QEMU driver."""

    @abstractmethod
    def launch_security_info(self) -> dict:
        """``virDomainGetLaunchSecurityInfo``: the SEV measurement and policy of a domain with
        ``<launchSecurity>``; an empty dict for any other domain (as libvirt's QEMU driver).
        Unsupported for an SEV domain: vsh runs none (no SEV hardware)."""

    @abstractmethod
    def set_launch_security_state(self, secret_header: str, secret: str, set_address: int | None = None) -> None:
        """``virDomainSetLaunchSecurityState``: inject a launch secret (base64 texts) into an SEV
        guest. OperationInvalid when not running; Unsupported otherwise (libvirt's wording for a
        domain without SEV; vsh runs none)."""
