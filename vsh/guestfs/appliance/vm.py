"""Start the appliance VM and talk to its agent.

QEMU runs the cached kernel (uncompressed, PVH) and initramfs on q35 with KVM where the
host probe says KVM really runs guests, TCG otherwise; its serial console goes to a log
file in a private directory; the agent's virtio-serial port and QEMU's QMP monitor are
unix sockets this process listens on, so QEMU connects to us and nothing waits for a file
to appear.

The machine starts without the user's disks. The first time, it boots (the watchdog,
:data:`BOOT_TIMEOUT`, runs to the agent's first frame), is saved (:mod:`.state`: QEMU's
migration to a file beside the initrd) and goes on; later starts restore that state with
``-incoming defer`` + ``migrate-incoming`` instead of booting (about a second instead of
eight under TCG). Either way the disks are then hot-added by QMP, each with its explicit
format (``blockdev-add``, read-only drives read-only and without image locks) as a
``scsi-hd`` with serial ``vsh-dN`` on the machine's virtio-scsi controller, and the agent's
``attach`` sets the clock to the host's, reseeds the kernel's RNG with fresh host
randomness and waits for the disks. A state QEMU refuses, or a restored appliance that
misbehaves, is deleted and the appliance boots cold. The start has one retry; every call
has a timeout, after which the VM is killed and the session is over. Appliances with
networking always boot cold (their NIC's user-mode network is not saved).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

from vsh.core.errors import NotFound, VshError

BOOT_TIMEOUT = 60.0
CALL_TIMEOUT = 600.0
ATTACH_WAIT = 30.0          # for hot-added disks to show up in the appliance
MEMORY_MIB = 768


class ApplianceError(VshError):
    """The appliance failed to start or stopped answering (``final``: a retry cannot help)."""

    def __init__(self, message: str, final: bool = False):
        super().__init__(message)
        self.final = final


def _accel() -> str:
    from vsh.kvm.host import probe

    try:
        return "kvm" if probe().kvm.usable else "tcg"
    except Exception:      # a host the probe cannot read still has TCG
        return "tcg"


def _die_with_parent() -> None:
    """In the child: SIGKILL when vsh dies, however it dies (PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


def _listen(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    return s


class Appliance:
    """One running appliance VM with its drives (:meth:`start`, :meth:`call`, :meth:`close`)."""

    def __init__(self, drives: list[dict], boot_timeout: float = BOOT_TIMEOUT, manifest: dict | None = None,
                 network: bool = False):
        self.drives = drives            # [{"path", "format", "readonly"}]
        self.network = network          # QEMU user networking (the agent configures 10.0.2.15)
        self.boot_timeout = boot_timeout
        self.manifest = manifest
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.mon = None                 # the QMP Monitor
        self.f = None
        self.dir: str | None = None
        self.disks: dict = {}
        self.restored: str | None = None    # the state file this run was restored from
        self.deadline = 0.0                 # of the current boot or restore (monotonic)

    # --- life ----------------------------------------------------------------------------

    def argv(self, qemu: str, rundir: str) -> list[str]:
        """The machine, without the user's disks (the same for every start: a saved state fits)."""
        m = self.manifest
        argv = [qemu, "-M", "q35", "-accel", _accel(), "-m", str(MEMORY_MIB), "-smp", "1",
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-kernel", m["vmlinux"], "-initrd", m["initrd"],
                "-append", "console=ttyS0 quiet panic=-1 8250.nr_uarts=1 rootfstype=ramfs",
                "-serial", f"file:{rundir}/console.log",
                "-chardev", f"socket,id=agent,path={rundir}/agent.sock",
                "-chardev", f"socket,id=qmp,path={rundir}/qmp.sock", "-mon", "chardev=qmp,mode=control",
                "-device", "virtio-serial-pci,id=vser", "-device", "virtio-rng-pci",
                "-device", "virtserialport,bus=vser.0,chardev=agent,name=org.vsh.appliance.0",
                "-device", "virtio-scsi-pci,id=scsi"]
        if self.network:
            argv += ["-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0"]
        return argv

    def start(self) -> None:
        """Start the appliance (restored or booted) and attach the drives; one retry."""
        from vsh.guestfs.appliance import build, state
        from vsh.kvm.host import find_qemu

        if self.manifest is None:
            self.manifest = build.ensure()
        qemu = find_qemu()
        if not qemu:
            raise ApplianceError("qemu-system-x86_64 was not found")
        for d in self.drives:
            if not os.path.exists(d["path"]):
                raise NotFound(f"{d['path']}: No such file or directory")
        last = None
        for _attempt in range(2):
            try:
                self._boot(qemu)
                self._attach()
                return
            except ApplianceError as e:
                last = e
                if self.restored and not e.final:       # the state is suspect: boot cold next
                    state.discard(self.restored)
                self.close(kill=True)
                if e.final:
                    break
            except BaseException:                       # nothing left running, whatever happened
                self.close(kill=True)
                raise
        raise last

    def _boot(self, qemu: str) -> None:
        """Restore the saved state if there is one (deleted when QEMU refuses it), else boot
        and save the state."""
        from vsh.guestfs.appliance import state

        self.restored = None
        self.dir = tempfile.mkdtemp(prefix="vsh-appliance-")
        argv = self.argv(qemu, self.dir)
        saved = None if self.network else state.path_for(argv, self.dir, self.manifest["initrd"],
                                                           self.manifest["vmlinux"])
        if saved and os.path.exists(saved):
            try:
                self._restore(argv, saved)
                return
            except ApplianceError:
                state.discard(saved)
                self.close(kill=True)
                self.restored = None
                self.dir = tempfile.mkdtemp(prefix="vsh-appliance-")
                argv = self.argv(qemu, self.dir)
        self._spawn(argv)
        from vsh.guestfs.appliance.agent import recv

        self.sock.settimeout(max(1.0, self.deadline - time.monotonic()))
        try:
            recv(self.f)
        except (OSError, EOFError, ValueError):
            raise ApplianceError(self._why(f"did not answer within {self.boot_timeout:g} s"))
        if saved:
            self._save(saved)

    def _spawn(self, argv: list[str]) -> None:
        """Run QEMU and take its two connections (monitor, agent port) before the deadline."""
        import select

        from vsh.guestfs.appliance.monitor import Monitor

        self.deadline = time.monotonic() + self.boot_timeout
        listeners = [_listen(os.path.join(self.dir, n)) for n in ("qmp.sock", "agent.sock")]
        conns = []
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, start_new_session=True,
                                         preexec_fn=_die_with_parent)
            for listener in listeners:
                while True:
                    left = self.deadline - time.monotonic()
                    if left <= 0 or self.proc.poll() is not None:
                        raise ApplianceError(self._why("did not start"))
                    if select.select([listener], [], [], min(left, 0.1))[0]:
                        conns.append(listener.accept()[0])
                        break
        except BaseException:
            for c in conns:
                c.close()
            raise
        finally:
            for listener in listeners:
                listener.close()
        try:
            self.mon = Monitor(conns[0], max(1.0, self.deadline - time.monotonic()))
        except (OSError, EOFError, ValueError, VshError):
            conns[1].close()
            raise ApplianceError(self._why("did not start"))
        self.sock = conns[1]
        self.f = self.sock.makefile("rwb", buffering=0)

    def _restore(self, argv: list[str], saved: str) -> None:
        import shlex

        from vsh.guestfs.appliance.monitor import MonitorError

        self._spawn(argv + ["-incoming", "defer"])
        self.restored = saved
        try:
            self.mon.execute("migrate-incoming", {"uri": "exec:cat " + shlex.quote(saved)})
            self.mon.wait_migration(max(1.0, self.deadline - time.monotonic()))
            self.mon.execute("cont")
        except (MonitorError, OSError, EOFError, ValueError) as e:
            raise ApplianceError(self._why(f"could not be restored ({e})"))

    def _save(self, path: str) -> None:
        """Save the booted appliance (best effort: if that fails it goes on, unsaved)."""
        import shlex

        from vsh.guestfs.appliance import build, state

        try:
            tmp = state.temp_for(path)
        except OSError:
            return
        try:
            self.call("settle", modules=list(build.PRELOAD), timeout=300)
            self.mon.execute("stop")
            try:
                self.mon.execute("migrate-set-parameters", {"max-bandwidth": 1 << 40})
                self.mon.execute("migrate", {"uri": "exec:cat > " + shlex.quote(tmp)})
                self.mon.wait_migration(300)
                state.commit(tmp, path)
            finally:
                self.mon.execute("cont")
        except ApplianceError:
            raise
        except (VshError, OSError, EOFError, ValueError):
            pass
        finally:
            state.discard(tmp)

    def _attach(self) -> None:
        """Hot-add the drives, then the agent's ``attach``: the host's clock, fresh
        randomness, and the disks to wait for."""
        from vsh.guestfs.appliance.monitor import MonitorError

        for i, d in enumerate(self.drives):
            path = os.path.abspath(d["path"])
            proto = {"driver": "host_device" if stat.S_ISBLK(os.stat(path).st_mode) else "file", "filename": path}
            node = {"driver": d["format"], "node-name": f"d{i}", "file": proto}
            if d.get("readonly"):           # no lock: reading a running domain's disk
                for n in (node, proto):
                    n.update({"read-only": True, "force-share": True})
            try:
                self.mon.execute("blockdev-add", node)
                self.mon.execute("device_add", {"driver": "scsi-hd", "id": f"disk{i}", "bus": "scsi.0",
                                                "scsi-id": i, "lun": 0, "drive": f"d{i}",
                                                "serial": f"vsh-d{i}", "write-cache": "on"})
            except MonitorError as e:
                raise ApplianceError(self._disk_error(d, str(e)), final=True)
            except (OSError, EOFError, ValueError) as e:
                raise ApplianceError(self._why(f"stopped answering ({e or 'timed out'})"))
        try:
            result, _ = self.call("attach", os.urandom(64), timeout=ATTACH_WAIT + 30, clock_ns=time.time_ns(),
                                  count=len(self.drives), wait=ATTACH_WAIT)
        except ApplianceError:
            raise
        except VshError as e:
            raise ApplianceError(f"the appliance did not see its disks: {e}")
        self.disks = result["disks"]

    @staticmethod
    def _disk_error(d: dict, text: str) -> str:
        if "lock" in text:
            return f"the disk image is in use by another process (a running domain?): {d['path']}: {text}"
        return f"the appliance could not open {d['path']} ({d['format']}): {text}"

    def _why(self, what: str) -> str:
        err = b""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            try:
                err = self.proc.stderr.read() or b""
            except (OSError, ValueError):
                err = b""
        text = err.decode("utf-8", "replace").strip()
        if "lock" in text:
            return ("the disk image is in use by another process (a running domain?): "
                    + text.splitlines()[-1])
        tail = ""
        try:
            with open(os.path.join(self.dir, "console.log"), "rb") as f:
                tail = f.read()[-400:].decode("utf-8", "replace").strip()
        except OSError:
            pass
        return f"the appliance {what}" + (f": {text.splitlines()[-1]}" if text else "") + \
            (f" (console: {tail.splitlines()[-1]})" if tail else "")

    def close(self, kill: bool = False) -> None:
        """Shut the appliance down (the agent syncs and powers off), killing QEMU if it does not end."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if not kill and self.f is not None:
                try:
                    self.sock.settimeout(30)
                    self._exchange({"op": "quit"}, b"")
                except (OSError, EOFError, ValueError, VshError):
                    pass
            try:
                proc.wait(timeout=0 if kill else 15)
            except subprocess.TimeoutExpired:
                pass
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=15)
            if proc.stderr:
                proc.stderr.close()
        if self.mon is not None:
            self.mon.close()
            self.mon = None
        for thing in (self.f, self.sock):
            if thing is not None:
                try:
                    thing.close()
                except OSError:
                    pass
        self.f = self.sock = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # --- calls ---------------------------------------------------------------------------

    def _exchange(self, req: dict, data: bytes):
        from vsh.guestfs.appliance.agent import recv, send

        send(self.f, req, data)
        return recv(self.f)

    def call(self, op: str, data: bytes = b"", timeout: float = CALL_TIMEOUT, **args):
        """Run one request; returns (result, payload). VshError with the agent's error text,
        ApplianceError (and the VM killed) when it does not answer within ``timeout``."""
        if not self.running or self.f is None:
            raise ApplianceError("the appliance is not running")
        self.sock.settimeout(timeout)
        try:
            reply, payload = self._exchange({"op": op, **args}, data)
        except (OSError, EOFError, ValueError) as e:
            self.close(kill=True)
            raise ApplianceError(f"the appliance stopped answering ({op}: {e or 'timed out'})")
        if not reply.get("ok"):
            raise AgentError(reply.get("error") or "failed", reply.get("errno"))
        return reply.get("result"), payload


class AgentError(VshError):
    """An operation the agent ran failed; ``errno`` is the guest's errno when there is one."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno
