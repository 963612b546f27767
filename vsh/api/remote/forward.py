"""The stream of a migration to a remote vsh: an OpenSSH forward of a unix socket.

``ssh -L LOCAL:REMOTE host 'cat >/dev/null'`` on a second ssh connection (the same command line,
options and keys as the protocol's): every connection to the socket ``LOCAL`` on this machine
becomes a channel to the socket ``REMOTE`` on the host (OpenSSH's stream-local forwarding, which
sshd allows unless ``AllowStreamLocalForwarding no``). No TCP port is opened on either side.
The remote ``cat`` reads ssh's stdin, our pipe: if this process dies without closing the forward,
the pipe ends, ``cat`` ends, and ssh exits once the forwarded connections are done (``-N`` would
leave it running for ever).
"""

from __future__ import annotations

import os
import time

from vsh.api.migration import SocketForward
from vsh.core.errors import VshError

#: Seconds ssh has to log in and listen on the local socket (its ConnectTimeout is 8 s).
READY_WAIT = 20.0
#: The remote command that holds the session while our end of ssh's stdin is open.
HOLD = "cat >/dev/null"


#: /proc/net/unix's flag of a socket that listens (the kernel's __SO_ACCEPTCON)
_ACCEPTING = 0x10000


def _listening(path: str) -> bool:
    """Whether a unix socket listens on ``path``: ssh binds the path before it listens, and a
    connection in between would be refused (without /proc: whether the path exists)."""
    if not os.path.exists(path):
        return False
    try:
        with open("/proc/net/unix", encoding="utf-8", errors="replace") as fh:
            next(fh, None)
            for line in fh:
                fields = line.rstrip("\n").split(None, 7)
                if len(fields) == 8 and fields[7] == path and int(fields[3], 16) & _ACCEPTING:
                    return True
    except (OSError, ValueError):
        return True
    return False


class SshForward(SocketForward):
    """``local_path`` here → ``remote_path`` on the host ``protocol_argv`` (the channel's ssh
    command line) reaches; ``target`` names that host in errors."""

    def __init__(self, protocol_argv: list[str], remote_path: str, local_path: str, target: str):
        from vsh.api.remote.process import Child

        for path in (remote_path, local_path):
            if ":" in path or not path.startswith("/"):
                raise VshError(f"cannot forward the unix socket '{path}' through ssh (it must be an absolute "
                               "path without ':')")
        if len(os.fsencode(local_path)) > 107:
            raise VshError(f"the local end of the ssh forward is too deep for a unix socket: {local_path}")
        try:
            os.unlink(local_path)           # what an earlier forward left behind
        except FileNotFoundError:
            pass
        cut = protocol_argv.index("--")
        # LogLevel INFO: ssh reports a channel the far side refused ("open failed") only at that level
        argv = protocol_argv[:cut] + ["-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=INFO",
                                      "-L", f"{local_path}:{remote_path}",
                                      "--", protocol_argv[cut + 1], HOLD]
        self.path = local_path
        self.target = target
        try:
            self.proc = Child(argv)
        except OSError as exc:
            raise VshError(f"cannot run '{argv[0]}': {exc.strerror}") from None
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        """Wait until ssh listens on :attr:`path` (it binds it once logged in) or gives up."""
        deadline = time.monotonic() + READY_WAIT
        while not _listening(self.path):
            status = self.proc.wait(0.02)
            if status is not None:
                said = _read_all(self.proc.stderr).strip().replace("\n", "; ")
                raise VshError(f"cannot forward the migration stream through ssh to '{self.target}'"
                               + (f": {said}" if said else f" (ssh exit status {status})"))
            if time.monotonic() > deadline:
                raise VshError(f"cannot forward the migration stream through ssh to '{self.target}': ssh did "
                               f"not listen on {self.path} within {READY_WAIT:g} s")

    def failure(self) -> str | None:
        """ssh's report of a forwarded connection the far side refused: sshd opens no unix socket
        for a session that may not forward (``AllowStreamLocalForwarding no``, a key with
        ``no-port-forwarding``), and says it as it says a socket that is not there."""
        if self.proc is None:
            return None
        import select

        select.select([self.proc.stderr], [], [], 0.5)      # ssh may say it a moment after the close
        os.set_blocking(self.proc.stderr, False)
        said = _read_all(self.proc.stderr)
        refused = [line.strip() for line in said.splitlines() if "open failed" in line]
        if not refused:
            return None
        return (f"the ssh server of '{self.target}' did not open the forwarded unix socket ({refused[0]}): "
                "it must allow stream-local forwarding (sshd's AllowStreamLocalForwarding, and no "
                "no-port-forwarding on the key)")

    def close(self) -> None:
        proc, self.proc = getattr(self, "proc", None), None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, 15)           # SIGTERM: ssh removes nothing itself, we do below
            if proc.wait(5.0) is None:
                proc.kill()
                proc.wait()
        proc.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:             # BlockingIOError too: nothing more for now
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode(errors="replace")
