"""A real OpenSSH server in a private network namespace, for the remote tests and scripts/bench.

:class:`SshPeer` makes a host key, client keys and an authorized_keys in its directory, starts
``sshd -D`` under ``unshare -n`` (a namespace with only a loopback, brought up) listening on
127.0.0.1:PORT there, and says how a client joins that namespace (:attr:`SshPeer.prefix`,
``nsenter -n``) and which ssh command line uses its keys (:meth:`SshPeer.ssh`). Nothing is
opened on the host's own network. Load it by path, as tests load vmguest.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def missing() -> str | None:
    """Why an sshd peer cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in (SSHD, "ssh", "ssh-keygen", "unshare", "nsenter", "ip"):
        if not shutil.which(tool):
            return f"needs {tool} (scripts/setup installs openssh-server)"
    return None


class SshPeer:
    """sshd in its own network namespace; ``keys`` are the client keys made (the first is authorized)."""

    def __init__(self, base: Path, port: int = 2222, keys: tuple = ("client", "stranger")):
        self.base, self.port = Path(base), port
        self.keys = self.base / "keys"
        self.keys.mkdir(mode=0o700, parents=True)
        for name in ("host", *keys):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", self.keys / name],
                           check=True, timeout=60)
        (self.keys / "authorized_keys").write_text((self.keys / f"{keys[0]}.pub").read_text())
        host_pub = (self.keys / "host.pub").read_text().split()
        (self.keys / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        self.log = self.base / "sshd.log"
        config = self.base / "sshd_config"
        config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {self.keys / 'host'}
AuthorizedKeysFile {self.keys / 'authorized_keys'}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile {self.base / 'sshd.pid'}
LogLevel VERBOSE
""")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)     # sshd's privilege separation directory
        self.proc = subprocess.Popen(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
                                      SSHD, "-D", "-f", config, "-E", self.log], stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while "Server listening on 127.0.0.1" not in self._log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sshd did not start: {self._log()}")
            time.sleep(0.05)

    def _log(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def ssh(self, key: str = "client") -> str:
        """An ssh command line (words) that logs in with ``key`` and checks the host key."""
        config = self.base / f"ssh_config.{key}"
        config.write_text(f"""Host *
  IdentityFile {self.keys / key}
  IdentitiesOnly yes
  UserKnownHostsFile {self.keys / 'known_hosts'}
  StrictHostKeyChecking yes
  LogLevel ERROR
""")
        return f"ssh -F {config}"

    @property
    def prefix(self) -> list[str]:
        """What runs a command inside the namespace."""
        return ["nsenter", "-t", str(self.proc.pid), "-n", "--"]

    def sessions(self, user: str = "root") -> int:
        """How many logins sshd has accepted so far."""
        return self._log().count(f"Accepted publickey for {user}")

    def stop(self) -> None:
        """sshd goes (SIGTERM, SIGKILL after 10 s); the sessions it forked end with their clients."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                return
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
