"""The emulated TPM of a domain (``<tpm><backend type='emulator'>``): one ``swtpm`` process per
TPM, which the supervisor starts before QEMU and stops after it, as libvirt does.

The supervisor binds the TPM's control socket itself and hands swtpm the listening fd
(``--ctrl type=unixio,fd=N``), so QEMU can connect the moment it starts: no waiting for a
socket to appear.  ``--terminate`` makes swtpm end when QEMU's connection closes, so a QEMU
that outlives its supervisor still takes its swtpm with it when it ends.  The TPM's state
lives in a directory that outlives the runs (made by ``swtpm_setup`` on first use, with an
endorsement key); its log is in the run directory.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess

from vsh.core.errors import Timeout, Unsupported, VshError
from vsh.kvm.supervisor.log import spawn_logged

#: How long swtpm_setup may take to manufacture a TPM.
SETUP_TIMEOUT = 60.0


def state_file(state_dir: str, version: str) -> str:
    return os.path.join(state_dir, "tpm2-00.permall" if version == "2.0" else "tpm-00.permall")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise Unsupported(f"<tpm><backend type='emulator'> needs {name}, which this host lacks "
                          "(Debian: apt install swtpm swtpm-tools)")
    return path


def _plain(path: str, what: str) -> str:
    if "," in path:
        raise VshError(f"internal error: the TPM's {what} path must not contain a comma: {path}")
    return path


def setup_state(state_dir: str, version: str, log_path: str, vmid: str) -> None:
    """Manufacture the TPM (an endorsement key, NVRAM locked) unless its state exists."""
    from vsh.core.store import ensure_private_dir

    ensure_private_dir(state_dir)
    if os.path.exists(state_file(state_dir, version)):
        return
    argv = [_tool("swtpm_setup"), "--tpm-state", state_dir, "--vmid", vmid, "--logfile", log_path,
            "--createek", "--lock-nvram", "--not-overwrite"]
    if version == "2.0":
        argv.append("--tpm2")
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=SETUP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Timeout(f"swtpm_setup did not finish within {SETUP_TIMEOUT:g} s", " ".join(argv)) from None
    if proc.returncode != 0:
        raise VshError(f"internal error: swtpm_setup failed (exit {proc.returncode}); see {log_path}",
                       *(proc.stderr.strip().splitlines()[-3:]))


def spawn(tpm: dict, name: str, uuid: str | None) -> int:
    """Start the swtpm of one TPM (``{"socket", "version", "state", "log"}``); its pid (our child)."""
    version, state, log_path, path = tpm["version"], tpm["state"], tpm["log"], tpm["socket"]
    setup_state(state, version, log_path, f"{name}:{uuid or ''}")
    binary = _tool("swtpm")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(4)
        fd = listener.fileno()
        os.set_inheritable(fd, True)
        argv = [binary, "socket", "--ctrl", f"type=unixio,fd={fd}",
                "--tpmstate", f"dir={_plain(state, 'state directory')},mode=0600",
                "--log", f"file={_plain(log_path, 'log')}", "--terminate"]
        if version == "2.0":
            argv.append("--tpm2")
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            return spawn_logged(argv, log_fd)
        finally:
            os.close(log_fd)
    except OSError as exc:
        raise VshError(f"internal error: cannot start swtpm for the TPM at {path}: {exc.strerror}") from None
    finally:
        listener.close()


def stop(pid: int, sock: str) -> None:
    """Reap our swtpm child: it ends by itself once QEMU is gone (``--terminate``); else
    SIGTERM, then SIGKILL (a second each).  Its control socket goes too."""
    try:
        os.unlink(sock)
    except FileNotFoundError:
        pass
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        try:
            if sig is not None:
                os.kill(pid, sig)
            pfd = os.pidfd_open(pid)
        except ProcessLookupError:
            break
        try:
            select.select([pfd], [], [], 1.0)
        finally:
            os.close(pfd)
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
