"""Running domains through libvirt: start, stop, pause, console, save and restore.

Each action is one libvirt call; errors carry virsh's first line (``Failed to suspend domain
'vm1'``) and then libvirt's message, as virsh prints them.
"""

from __future__ import annotations

from vsh.api.lifecycle import DUMP_FORMATS, ConsoleStream, DomainLifecycle
from vsh.api.libvirt.lv import call, mod, unsupported
from vsh.core.errors import InvalidArgument, OperationInvalid, Unsupported

# virDomainShutdownFlagValues / virDomainRebootFlagValues
_MODES = {"acpi": 1, "agent": 2, "initctl": 4, "signal": 8, "paravirt": 16}
# virDomainCoreDumpFormat (libvirt 9.0 has no kdump-zstd)
_DUMP_FORMATS = {"elf": 0, "kdump-zlib": 1, "kdump-lzo": 2, "kdump-snappy": 3, "win-dmp": 4}


def _mode_flags(mode: str | None) -> int:
    flags = 0
    for word in (mode or "").split(","):
        if word:
            if word not in _MODES:
                raise InvalidArgument(f"Unknown mode {word} value, expecting 'acpi', 'agent', 'initctl', "
                                      "'signal' or 'paravirt'")
            flags |= _MODES[word]
    return flags


class LibvirtDomainLifecycle(DomainLifecycle):
    """Mixed into :class:`~vsh.api.libvirt.domain.LibvirtDomain` (``ptr``, ``name``, ``conn``)."""

    def runtime(self) -> dict | None:
        m = mod()
        dom_id = m.virDomainGetID(self.ptr)
        if dom_id == -1:
            return None
        from vsh.api.libvirt.states import state_words

        state, reason = state_words(*(m.virDomainGetState(self.ptr, 0) or (0, 0)))
        return {"name": self.name, "uuid": m.virDomainGetUUIDString(self.ptr), "id": dom_id, "state": state,
                "reason": reason, "qemu_pid": None, "console_pty": self._console_pty(),
                "transient": m.virDomainIsPersistent(self.ptr) != 1}

    def _act(self, verb: str, name: str, *args) -> dict:
        self._call(name, *args, context=(f"Failed to {verb} domain '{self.name}'",))
        return self.runtime() or {}

    def start(self, paused: bool = False, force_boot: bool = False, bypass_cache: bool = False,
              reset_nvram: bool = False) -> dict:
        if self.id is not None:
            raise OperationInvalid("Domain is already active")
        # VIR_DOMAIN_START_PAUSED 1, BYPASS_CACHE 4, FORCE_BOOT 8, RESET_NVRAM 32
        flags = (1 if paused else 0) | (4 if bypass_cache else 0) | (8 if force_boot else 0) | \
            (32 if reset_nvram else 0)
        # as virsh: the call without flags when there are none (its name is in a refusal's message)
        return self._act("start", "virDomainCreateWithFlags", flags) if flags else self._act("start", "virDomainCreate")

    def shutdown(self, mode: str | None = None) -> dict:
        flags = _mode_flags(mode)
        return self._act("shutdown", "virDomainShutdownFlags", flags) if flags else \
            self._act("shutdown", "virDomainShutdown")

    def reboot(self, mode: str | None = None) -> dict:
        return self._act("reboot", "virDomainReboot", _mode_flags(mode))

    def reset(self) -> dict:
        return self._act("reset", "virDomainReset", 0)

    def destroy(self, graceful: bool = False) -> dict:
        return self._act("destroy", "virDomainDestroyFlags", 1) if graceful else self._act("destroy", "virDomainDestroy")

    def suspend(self) -> dict:
        return self._act("suspend", "virDomainSuspend")

    def resume(self) -> dict:
        return self._act("resume", "virDomainResume")

    def fd_associate(self, name: str, fds: list[int], seclabel_writable: bool = False,
                     seclabel_restore: bool = False) -> None:
        # VIR_DOMAIN_FD_ASSOCIATE_SECLABEL_RESTORE = 1, _WRITABLE = 2
        self._call("virDomainFDAssociate", name, list(fds), (1 if seclabel_restore else 0) |
                   (2 if seclabel_writable else 0))

    def pm_wakeup(self) -> None:
        self._call("virDomainPMWakeup", 0)

    def events(self, timeout: float | None = None):
        from vsh.api.libvirt.events import domain_events

        return (ev for _name, ev in domain_events(self.conn.uri, self.name, timeout, one_run=True))

    # --- migration -----------------------------------------------------------------------------

    def migrate(self, dest_uri: str, *, live: bool = False, offline: bool = False, persistent: bool = False,
                undefine_source: bool = False, copy_storage: bool = False, suspend: bool = False,
                timeout: float | None = None, auto_converge: bool = False, progress=None,
                dest_xml: str | None = None) -> dict:
        """virsh's (non-peer-to-peer) migration: this client opens the destination and calls
        ``virDomainMigrate3``; ``timeout`` suspends the guest when the migration runs longer."""
        import threading

        flags = sum(bit for bit, on in ((1, live), (8, persistent), (16, undefine_source), (32, suspend),
                                        (64, copy_storage), (1024, offline), (8192, auto_converge)) if on)
        m = mod()
        dconn = call("virConnectOpen", dest_uri, context=("failed to connect to the destination hypervisor",))
        done = threading.Event()
        timeout_hit: list = []

        def watch():
            waited = 0.0
            while not done.wait(0.1):
                waited += 0.1
                if timeout is not None and waited >= timeout:
                    m.virDomainSuspend(self.ptr)
                    timeout_hit.append(True)
                    return
                if progress is not None:
                    info = m.virDomainGetJobInfo(self.ptr) or []
                    if len(info) > 6 and info[6]:       # memTotal, memRemaining
                        progress(max(0, min(99, int(100 * (info[6] - info[8]) / info[6]))))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            params = {"destination_xml": dest_xml} if dest_xml is not None else {}
            call("virDomainMigrate3", self.ptr, dconn, params, flags, context=("migration failed",))
        finally:
            done.set()
            watcher.join(timeout=5.0)
            m.virConnectClose(dconn)
        if progress is not None:
            progress(100)
        return {"name": self.name, "offline": bool(offline), "persistent": bool(persistent),
                "source_undefined": bool(undefine_source), "downtime_ms": None, "total_ms": None,
                "transferred": None, "iterations": None, "suspended_after_timeout": bool(timeout_hit)}

    def migration_parameters(self, names: list[str] | None = None) -> dict:
        getters = {"downtime_ms": ("virDomainMigrateGetMaxDowntime", 0),
                   "bandwidth_mib": ("virDomainMigrateGetMaxSpeed", 0),
                   "postcopy_bandwidth_mib": ("virDomainMigrateGetMaxSpeed", 1),
                   "compression_cache": ("virDomainMigrateGetCompressionCache", 0)}
        return {key: self._call(api, flags) for key, (api, flags) in getters.items()
                if names is None or key in names}

    def set_migration_parameters(self, downtime_ms: int | None = None, bandwidth_mib: int | None = None,
                                 postcopy_bandwidth_mib: int | None = None,
                                 compression_cache: int | None = None) -> None:
        if downtime_ms is not None:
            self._call("virDomainMigrateSetMaxDowntime", downtime_ms, 0)
        if bandwidth_mib is not None:
            self._call("virDomainMigrateSetMaxSpeed", bandwidth_mib, 0)
        if postcopy_bandwidth_mib is not None:
            self._call("virDomainMigrateSetMaxSpeed", postcopy_bandwidth_mib, 1)
        if compression_cache is not None:
            self._call("virDomainMigrateSetCompressionCache", compression_cache, 0)

    def start_postcopy(self) -> None:
        self._call("virDomainMigrateStartPostCopy", 0)

    def monitor_command(self, cmd: str, hmp: bool = False) -> dict | str:
        import libvirtmod_qemu

        mod()
        if not hmp:
            import json

            try:
                request = json.loads(cmd)
            except ValueError:
                request = None
            if not isinstance(request, dict):
                raise InvalidArgument(f"QMP command '{cmd}' is not a JSON object")
        m = mod()
        m.virResetLastError()
        reply = libvirtmod_qemu.virDomainQemuMonitorCommand(self.ptr, cmd, 1 if hmp else 0)
        if reply is None:
            from vsh.api.libvirt.lv import last_error

            raise last_error()
        if hmp:
            return reply
        import json

        return json.loads(reply)

    # --- the console -------------------------------------------------------------------------------

    def open_console(self, devname: str | None = None, force: bool = False) -> ConsoleStream:
        m = mod()
        stream = call("virStreamNew", self.conn.ptr, 0)
        try:
            # VIR_DOMAIN_CONSOLE_FORCE 1, VIR_DOMAIN_CONSOLE_SAFE 2
            self._call("virDomainOpenConsole", devname, stream, (1 if force else 0) | 2)
        except Exception:
            m.virStreamFree(stream)
            raise
        return LibvirtConsole(self.name, stream)

    def _console_pty(self) -> str | None:
        from vsh.api.libvirt.handles import parse_xml

        for dev in parse_xml(self.xml()).iter("console"):
            return dev.get("tty") if dev.get("type") == "pty" else None
        return None

    def console_pty(self) -> str | None:
        if self.id is None:
            raise OperationInvalid("Requested operation is not valid: domain is not running")
        return self._console_pty()

    def console_log(self, follow: bool = False, timeout: float | None = None):
        raise unsupported("virDomainConsoleLog (libvirt keeps no serial console log it would hand a client)")

    # --- save, restore, dump -------------------------------------------------------------------------

    def save(self, path: str, xml: str | None = None, running: bool = False, paused: bool = False,
             bypass_cache: bool = False, progress=None) -> dict:
        flags = (1 if bypass_cache else 0) | (2 if running else 0) | (4 if paused else 0)
        self._call("virDomainSaveFlags", path, xml, flags)
        return {"name": self.name, "path": path}

    def managed_save(self, running: bool = False, paused: bool = False, bypass_cache: bool = False,
                     progress=None) -> dict:
        flags = (1 if bypass_cache else 0) | (2 if running else 0) | (4 if paused else 0)
        self._call("virDomainManagedSave", flags)
        return {"name": self.name}

    def managed_save_remove(self) -> bool:
        if mod().virDomainHasManagedSaveImage(self.ptr, 0) != 1:
            return False
        self._call("virDomainManagedSaveRemove", 0,
                   context=(f"Failed to remove managed save image for domain '{self.name}'",))
        return True

    def managed_save_xml(self) -> str:
        return self._call("virDomainManagedSaveGetXMLDesc", 0)

    def managed_save_define(self, xml: str, running: bool = False, paused: bool = False) -> bool:
        self._call("virDomainManagedSaveDefineXML", xml, (2 if running else 0) | (4 if paused else 0))
        return True

    def dump(self, path: str, fmt: str | None = None, memory_only: bool = False, live: bool = False,
             crash: bool = False, reset: bool = False, bypass_cache: bool = False) -> dict:
        fmt = fmt or "elf"
        if fmt not in DUMP_FORMATS:
            raise InvalidArgument(f"format '{fmt}' is not supported, expecting 'kdump-zlib', 'kdump-lzo', "
                                  "'kdump-snappy', 'win-dmp' or 'elf'")
        if fmt not in _DUMP_FORMATS:
            raise Unsupported(f"unsupported dumpformat '{fmt}'")
        flags = (1 if crash else 0) | (2 if live else 0) | (4 if bypass_cache else 0) | (8 if reset else 0) \
            | (16 if memory_only else 0)
        self._call("virDomainCoreDumpWithFormat", path, _DUMP_FORMATS[fmt], flags)
        return {"path": path, "format": fmt}

    def monitor_events(self, event: str | None = None, timeout: float | None = None):
        from vsh.api.libvirt.events import monitor_events

        if self.id is None:
            raise OperationInvalid("Requested operation is not valid: domain is not running")
        return monitor_events(self.conn.uri, self.name, event, timeout)

    # --- what only some of libvirt's drivers have ------------------------------------------------------

    def send_process_signal(self, pid: int, signum: int) -> None:
        self._call("virDomainSendProcessSignal", pid, signum, 0)

    def lxc_enter_namespace(self, argv: list[str], noseclabel: bool = False) -> int:
        import libvirtmod_lxc

        m = mod()
        m.virResetLastError()
        fds = libvirtmod_lxc.virDomainLxcOpenNamespace(self.ptr, 0)
        if fds is None:
            from vsh.api.libvirt.lv import last_error

            raise last_error()
        from vsh.api.libvirt.events import run_in_namespaces

        return run_in_namespaces(fds, argv)

    def launch_security_info(self) -> dict:
        return self._call("virDomainGetLaunchSecurityInfo", 0)

    def set_launch_security_state(self, secret_header: str, secret: str, set_address: int | None = None) -> None:
        params = {"sev-secret-header": secret_header, "sev-secret": secret}
        if set_address is not None:
            params["sev-secret-set-address"] = set_address
        self._call("virDomainSetLaunchSecurityState", params, 0)


class LibvirtConsole(ConsoleStream):
    """A ``virStreamPtr`` of virDomainOpenConsole. A thread moves what the stream receives into a
    socket pair, whose other end is what :meth:`fileno` gives the front end to poll."""

    def __init__(self, name: str, stream):
        import socket
        import threading

        self.name = name
        self.stream = stream
        self._theirs, self._ours = socket.socketpair()
        self._ours.setblocking(False)
        self._closed = False
        self._ended = False
        self._thread = threading.Thread(target=self._pump, name=f"console {name}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        m = mod()
        try:
            while not self._closed:
                data = m.virStreamRecv(self.stream, 65536)
                if isinstance(data, int):
                    if data == -2:
                        continue
                    break           # -1: the stream failed (the domain went away)
                if not data:
                    break           # end of stream
                self._theirs.sendall(data)
        except OSError:
            pass
        finally:
            self._ended = True
            try:
                self._theirs.shutdown(2)
            except OSError:
                pass

    def fileno(self) -> int:
        return self._ours.fileno()

    def read(self, size: int = 65536) -> bytes | None:
        try:
            return self._ours.recv(size)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            sent = call("virStreamSend", self.stream, bytes(view), context=("console write failed",))
            if sent == -2:
                import time

                time.sleep(0.01)
                continue
            view = view[sent:]

    @property
    def taken_over(self) -> bool:
        return False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        m = mod()
        m.virStreamAbort(self.stream)
        self._thread.join(timeout=5)
        m.virStreamFree(self.stream)
        self._ours.close()
        self._theirs.close()
