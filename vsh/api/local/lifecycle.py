"""Running domains of the store: start, stop, pause, console, save and restore.

Each action is a thin layer over :mod:`vsh.kvm.client` (the domain's supervisor);
the supervisor's errors already speak libvirt's language, and this module adds
virsh's first line (``Failed to suspend domain 'vm1'``).
"""

from __future__ import annotations

import os

from vsh.api.lifecycle import ConnectionLifecycle, DomainLifecycle
from vsh.core.errors import InvalidArgument, OperationInvalid, Unsupported, VshError

CONSOLE_DEVICES = (None, "serial0", "console0")


def _client():
    from vsh.kvm import client

    return client


class LocalConnectionLifecycle(ConnectionLifecycle):
    store = None        # set by LocalConnection

    def create_xml(self, xml: str, paused: bool = False, validate: bool = False) -> dict:
        from vsh.api.local.launch import launch
        from vsh.api.local.saves import check_not_running
        from vsh.core.domain import Domain

        from vsh.api.local.domains import as_defined

        dom = Domain.parse(xml)
        as_defined(dom)
        if validate:
            from vsh.api.local.domains import check_schema

            check_schema(dom)
        persistent = check_not_running(self.store, dom)
        return launch(self.store, dom, transient=not persistent, paused=paused)

    def restore(self, path: str, xml: str | None = None, running: bool = False, paused: bool = False,
                bypass_cache: bool = False) -> dict:
        from vsh.api.local.saves import restore

        return restore(self.store, path, xml=xml, running=running, paused=paused, bypass_cache=bypass_cache)

    def save_image_xml(self, path: str) -> str:
        from vsh.kvm import saveimage

        return saveimage.read(path).xml

    def domain_events(self, domain: str | None = None, timeout: float | None = None):
        from vsh.api.local.events import connection_events

        return connection_events(self, domain, timeout)

    def qemu_attach(self, pid: int):
        from vsh.api.local.extras import not_supported

        raise not_supported("virDomainQemuAttach")

    def save_image_define(self, path: str, xml: str, running: bool = False, paused: bool = False) -> bool:
        from vsh.api.local.extras import define_image

        return define_image(self.store, path, xml, running, paused)


class LocalDomainLifecycle(DomainLifecycle):
    store = None        # set by LocalDomain, with ref, name and refresh()
    ref = None
    name = ""

    def _rundir(self) -> str:
        return self.store.runtime_path(self.name)       # a str: no pathlib on the command path

    def runtime(self) -> dict | None:
        ref = self.refresh()
        if not ref.active:
            return None
        return _client().read_state(self._rundir()) or {}

    def _act(self, verb: str, op, inactive_message: str | None = None) -> dict:
        """Run ``op(rundir)`` on the running domain; virsh's two-line errors."""
        ref = self.refresh()
        context = f"Failed to {verb} domain '{ref.name}'"
        if not ref.active:
            raise OperationInvalid(inactive_message or f"internal error: domain '{ref.name}' not running") \
                .with_context(context)
        try:
            return op(self._rundir())
        except VshError as err:
            raise err.with_context(context) from None

    # -- start ---------------------------------------------------------------------------------

    def start(self, paused: bool = False, force_boot: bool = False, bypass_cache: bool = False,
              reset_nvram: bool = False) -> dict:
        from vsh.api.local.domains import has_managed_save, managed_save_path

        store = self.store
        ref = self.refresh()
        if ref.active:
            raise OperationInvalid("Domain is already active")
        try:
            self.snapshots.recover_pending()        # an interrupted snapshot operation first
            if has_managed_save(store, ref.name):
                if force_boot:
                    managed_save_path(store, ref.name).unlink()
                else:   # resume the saved guest (running (restored)); the image goes once it runs
                    from vsh.api.local.saves import start_from_managed_save

                    return start_from_managed_save(store, ref, paused=paused, bypass_cache=bypass_cache)
            from vsh.api.local.launch import launch

            from vsh.api.local.fdgroups import groups_of

            dom = store.load(ref, inactive=True)
            dom.fill_defaults()
            return launch(store, dom, transient=not ref.persistent, paused=paused, reset_nvram=reset_nvram,
                          fd_groups=groups_of(self.conn, dom.uuid))
        except VshError as err:
            if err.lines == ("Domain is already active",):      # raced with another start: as virsh says it
                raise
            raise err.with_context(f"Failed to start domain '{ref.name}'") from None

    # -- stop / pause --------------------------------------------------------------------------

    def shutdown(self, mode: str | None = None) -> dict:
        modes = _modes(mode, "shutdown")
        if "agent" in modes:
            done = self._agent_power("shutdown", "powerdown", fallback="acpi" in modes)
            if done is not None:
                return done
        self._check_acpi("shutdown")
        return self._act("shutdown", lambda rd: _client().shutdown(rd))

    def reboot(self, mode: str | None = None) -> dict:
        modes = _modes(mode, "reboot")
        if "agent" in modes:
            done = self._agent_power("reboot", "reboot", fallback=bool({"acpi", "reset"} & modes))
            if done is not None:
                return done
        how = "reset" if modes == {"reset"} else "acpi"
        if how == "acpi":
            self._check_acpi("reboot")
        return self._act("reboot", lambda rd: _client().reboot(rd, mode=how))

    def _agent_power(self, verb: str, agent_mode: str, fallback: bool) -> dict | None:
        """guest-shutdown through the guest agent; None when it failed and another mode of the
        list may act (libvirt tries the agent first, then ACPI)."""
        def op(rundir):
            self.agent.guest_shutdown(agent_mode)
            return _client().status(rundir) or {"state": "shutoff"}
        try:
            return self._act(verb, op)
        except VshError:
            if fallback:
                return None
            raise

    def _check_acpi(self, verb: str) -> None:
        """A guest without <features><acpi/> has no power button to press: say so instead of waiting."""
        ref = self.store.find(self.name)
        if ref is None or not ref.active:
            return  # the action reports the usual error
        try:
            dom = self.store.load(ref)
        except VshError:
            return
        if "acpi" not in dom.features:
            raise OperationInvalid(f"Failed to {verb} domain '{ref.name}'",
                                   "Requested operation is not valid: ACPI is not enabled for this domain, "
                                   "so the guest has no power button to press",
                                   hint=f"add <features><acpi/></features> to its XML, or use "
                                        f"{'destroy' if verb == 'shutdown' else 'reboot --mode reset'}")

    def reset(self) -> dict:
        return self._act("reset", lambda rd: _client().reset(rd))

    def destroy(self, graceful: bool = False) -> dict:
        return self._act("destroy", lambda rd: _client().destroy(rd, graceful=graceful),
                         "Requested operation is not valid: domain is not running")

    def suspend(self) -> dict:
        return self._act("suspend", lambda rd: _client().suspend(rd))

    def resume(self) -> dict:
        return self._act("resume", lambda rd: _client().resume(rd))

    # -- the monitor ---------------------------------------------------------------------------

    def monitor_command(self, cmd: str, hmp: bool = False) -> dict | str:
        return self._act("run monitor command on", lambda rd: _monitor(rd, cmd, hmp),
                         "Requested operation is not valid: domain is not running")

    # -- the console ---------------------------------------------------------------------------

    def open_console(self, devname: str | None = None, force: bool = False):
        from vsh.api.local.console import LocalConsole

        return LocalConsole(self._console_device(devname), self._rundir(), force=force)

    def console_pty(self) -> str | None:
        return self._console_device(None).get("console_pty")

    def _console_device(self, devname: str | None) -> dict:
        """The pty or socket of character device ``devname`` (an alias; None: the first console,
        as libvirt picks it), as ``{"console_pty": ...}`` or ``{"console_socket": ...}``."""
        ref = self.refresh()
        if not ref.active:
            raise OperationInvalid("Requested operation is not valid: domain is not running")
        state = _client().read_state(self._rundir())
        if not state or state.get("state") not in _client().ACTIVE_STATES:
            raise OperationInvalid("Requested operation is not valid: domain is not running")
        chardevs = state.get("chardevs")
        if chardevs is None:            # a supervisor that records only the first console
            if devname not in CONSOLE_DEVICES:
                raise OperationInvalid(f"internal error: cannot find character device {devname}")
            return state
        if devname is None or (devname == "console0" and devname not in chardevs):
            from vsh.kvm.argv import console_chardev

            chardev = console_chardev(self.store.load(ref).node)    # console0 stands for serial0
            alias = chardev[4:] if chardev else None
        else:
            alias = devname
        if alias not in chardevs:
            raise OperationInvalid(f"internal error: cannot find character device {devname or '<null>'}")
        return chardevs[alias]

    def console_log(self, follow: bool = False, timeout: float | None = None):
        from vsh.kvm.console import log_chunks

        ref = self.refresh()
        rundir = self._rundir()
        if not os.path.exists(os.path.join(rundir, _client().CONSOLE_LOG)):
            raise OperationInvalid(f"Requested operation is not valid: domain '{ref.name}' has no console log yet")
        return log_chunks(rundir, follow=follow, timeout=timeout)

    def migrate(self, dest_uri: str, *, live: bool = False, offline: bool = False, persistent: bool = False,
                undefine_source: bool = False, copy_storage: bool = False, suspend: bool = False,
                timeout: float | None = None, auto_converge: bool = False, progress=None,
                dest_xml: str | None = None) -> dict:
        from vsh.api.local.migrate import migrate

        return migrate(self, dest_uri, live=live, offline=offline, persistent=persistent,
                       undefine_source=undefine_source, copy_storage=copy_storage, suspend=suspend,
                       timeout=timeout, auto_converge=auto_converge, progress=progress, dest_xml=dest_xml)

    def migration_parameters(self, names: list[str] | None = None) -> dict:
        from vsh.api.local.migrate import parameters

        found = parameters(self)
        return {k: v for k, v in found.items() if names is None or k in names}

    def set_migration_parameters(self, downtime_ms: int | None = None, bandwidth_mib: int | None = None,
                                 postcopy_bandwidth_mib: int | None = None,
                                 compression_cache: int | None = None) -> None:
        from vsh.api.local.migrate import set_parameters

        set_parameters(self, downtime_ms=downtime_ms, bandwidth_mib=bandwidth_mib,
                       postcopy_bandwidth_mib=postcopy_bandwidth_mib, compression_cache=compression_cache)

    def start_postcopy(self) -> None:
        from vsh.api.local.migrate import start_postcopy

        start_postcopy(self)

    # -- saved state ---------------------------------------------------------------------------

    def save(self, path: str, xml: str | None = None, running: bool = False, paused: bool = False,
             bypass_cache: bool = False, progress=None) -> dict:
        from vsh.api.local.saves import save

        return save(self.store, self.refresh(), path, running=running, paused=paused,
                    bypass_cache=bypass_cache, xml=xml, progress=progress)

    def managed_save(self, running: bool = False, paused: bool = False, bypass_cache: bool = False,
                     progress=None) -> dict:
        from vsh.api.local.domains import managed_save_path
        from vsh.api.local.saves import save
        from vsh.core.store import ensure_private_dir

        ref = self.refresh()
        if not ref.persistent:
            raise OperationInvalid("Requested operation is not valid: cannot do managed save for transient domain")
        ensure_private_dir(self.store.data_file())
        ensure_private_dir(self.store.data_file("managedsave"))
        return save(self.store, ref, str(managed_save_path(self.store, ref.name)), running=running,
                    paused=paused, bypass_cache=bypass_cache, progress=progress)

    def managed_save_remove(self) -> bool:
        from vsh.api.local.domains import has_managed_save, managed_save_path

        if not has_managed_save(self.store, self.name):
            return False
        try:
            managed_save_path(self.store, self.name).unlink()
        except OSError as exc:
            raise VshError(f"Failed to remove managed save image for domain '{self.name}'", exc.strerror) from None
        return True

    def managed_save_xml(self) -> str:
        from vsh.api.local.domains import has_managed_save, managed_save_path

        if not has_managed_save(self.store, self.name):
            raise OperationInvalid("Requested operation is not valid: domain does not have managed save image")
        from vsh.kvm import saveimage

        return saveimage.read(str(managed_save_path(self.store, self.name))).xml

    def managed_save_define(self, xml: str, running: bool = False, paused: bool = False) -> bool:
        from vsh.api.local.extras import managed_define

        return managed_define(self, xml, running, paused)

    # -- dumps, monitor events, and what libvirt's QEMU driver refuses ----------------------------

    def dump(self, path: str, fmt: str | None = None, memory_only: bool = False, live: bool = False,
             crash: bool = False, reset: bool = False, bypass_cache: bool = False) -> dict:
        from vsh.api.local.extras import dump

        return dump(self, path, fmt, memory_only, live, crash, reset, bypass_cache)

    def monitor_events(self, event: str | None = None, timeout: float | None = None):
        from vsh.api.local.extras import monitor_events

        return monitor_events(self, event, timeout)

    def events(self, timeout: float | None = None):
        from vsh.api.local.events import domain_events

        return domain_events(self, timeout)

    def fd_associate(self, name: str, fds: list[int], seclabel_writable: bool = False,
                     seclabel_restore: bool = False) -> None:
        from vsh.api.local.fdgroups import associate

        self.refresh()                      # NotFound for a domain gone meanwhile
        associate(self.conn, self.uuid(), name, fds)

    def pm_wakeup(self) -> None:
        from vsh.api.local.extras import running_rundir
        from vsh.kvm import client

        client.qmp(running_rundir(self), "system_wakeup")

    def send_process_signal(self, pid: int, signum: int) -> None:
        from vsh.api.local.extras import not_supported

        self.refresh()
        raise not_supported("virDomainSendProcessSignal")

    def lxc_enter_namespace(self, argv: list[str], noseclabel: bool = False) -> int:
        from vsh.api.local.extras import not_supported

        self.refresh()
        raise not_supported("virDomainLxcOpenNamespace")

    def launch_security_info(self) -> dict:
        from vsh.api.local.extras import launch_security_info

        return launch_security_info(self)

    def set_launch_security_state(self, secret_header: str, secret: str, set_address: int | None = None) -> None:
        from vsh.api.local.extras import set_launch_security_state

        set_launch_security_state(self)


def _modes(mode, verb: str) -> set[str]:
    """The modes of virsh's ``--mode`` list (``acpi,agent``): acpi, agent and, for a reboot, reset."""
    if mode is None:
        return {"acpi"}
    modes = set()
    for word in str(mode).split(","):
        if word in ("acpi", "agent") or (word == "reset" and verb == "reboot"):
            modes.add(word)
        elif word in ("initctl", "signal", "paravirt"):
            raise Unsupported(f"Failed to {verb} domain", f"{verb} mode '{word}' is not supported by vsh "
                              "(containers and Xen only); use acpi or agent")
        else:
            raise InvalidArgument(f"Unknown mode {word} value, expecting 'acpi', 'agent', 'initctl', "
                                  "'signal' or 'paravirt'")
    return modes


def _monitor(rundir: str, line: str, hmp: bool):
    """One monitor command: HMP text, or QMP's reply to a JSON request."""
    import json

    if hmp:
        return _client().hmp(rundir, line)
    try:
        request = json.loads(line)
    except ValueError as exc:
        raise InvalidArgument(f"invalid QMP command (not JSON; add --hmp for a monitor "
                              f"command): {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("execute"), str):
        raise InvalidArgument("a QMP command is a JSON object with an \"execute\" member")
    reply = _client().qmp_raw(rundir, request["execute"], request.get("arguments"))
    if "id" in request:
        reply = dict(reply, id=request["id"])
    return reply
