"""Start the appliance VM and talk to its agent.

QEMU runs the cached kernel (uncompressed, PVH) and initramfs on q35 with KVM where the
host probe says KVM really runs guests, TCG otherwise; its serial console goes to a log
file in a private directory; the agent's virtio-serial port is a unix socket this process
listens on, so QEMU connects to us and nothing waits for a file to appear. Each disk is
attached with its explicit format (``-drive ...,format=,if=none`` + ``virtio-blk`` with
serial ``vsh-dN``). The boot has a watchdog (:data:`BOOT_TIMEOUT`) and one retry; every
call has a timeout, after which the VM is killed and the session is over.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from vsh.core.errors import NotFound, VshError

BOOT_TIMEOUT = 60.0
CALL_TIMEOUT = 600.0
MEMORY_MIB = 768


class ApplianceError(VshError):
    """The appliance failed to start or stopped answering."""


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
        self.f = None
        self.dir: str | None = None
        self.disks: dict = {}

    # --- life ----------------------------------------------------------------------------

    def argv(self, qemu: str, sock_path: str, log_path: str) -> list[str]:
        m = self.manifest
        argv = [qemu, "-M", "q35", "-accel", _accel(), "-m", str(MEMORY_MIB), "-smp", "1",
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-kernel", m["vmlinux"], "-initrd", m["initrd"],
                "-append", "console=ttyS0 quiet panic=-1 8250.nr_uarts=1 rootfstype=ramfs",
                "-serial", f"file:{log_path}",
                "-chardev", f"socket,id=agent,path={sock_path}",
                "-device", "virtio-serial-pci,id=vser", "-device", "virtio-rng-pci",
                "-device", "virtserialport,bus=vser.0,chardev=agent,name=org.vsh.appliance.0"]
        if self.network:
            argv += ["-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0"]
        for i, d in enumerate(self.drives):
            path = d["path"].replace(",", ",,")
            ro = ",readonly=on,force-share=on" if d.get("readonly") else ""     # no lock: reading a running domain's disk
            argv += ["-drive", f"file={path},format={d['format']},if=none,id=d{i},cache=writeback{ro}",
                     "-device", f"virtio-blk-pci,drive=d{i},serial=vsh-d{i}"]
        return argv

    def start(self) -> None:
        """Boot the appliance; one retry when the first boot does not answer in time."""
        from vsh.guestfs.appliance import build
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
                return
            except ApplianceError as e:
                last = e
                self.close(kill=True)
                if "lock" in str(e) or "format" in str(e):
                    break
        raise last

    def _boot(self, qemu: str) -> None:
        import selectors

        from vsh.guestfs.appliance.agent import recv

        self.dir = tempfile.mkdtemp(prefix="vsh-appliance-")
        sock_path = os.path.join(self.dir, "agent.sock")
        log_path = os.path.join(self.dir, "console.log")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(sock_path)
            listener.listen(1)
            argv = self.argv(qemu, sock_path, log_path)
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, start_new_session=True, preexec_fn=_die_with_parent)
            deadline = time.monotonic() + self.boot_timeout
            sel = selectors.DefaultSelector()
            sel.register(listener, selectors.EVENT_READ)
            sel.register(self.proc.stderr, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    break
                if any(key.fileobj is listener for key, _ in sel.select(min(left, 0.5))):
                    self.sock, _ = listener.accept()
                    break
            sel.close()
            if self.sock is None:
                raise ApplianceError(self._why("did not start"))
        finally:
            listener.close()
        self.sock.settimeout(max(1.0, deadline - time.monotonic()))
        self.f = self.sock.makefile("rwb", buffering=0)
        try:
            hello, _ = recv(self.f)
        except (OSError, EOFError, ValueError):
            raise ApplianceError(self._why(f"did not answer within {self.boot_timeout:g} s"))
        self.disks = hello.get("disks", {})

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
