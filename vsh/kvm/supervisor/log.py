"""The supervisor's log (its stderr is ``supervisor.log``) and the words it uses there.

Imported by everything that runs inside the supervisor (hot-plug, traffic
accounting): it imports nothing of vsh.
"""

from __future__ import annotations

import os
import signal
import sys
import time


def log(msg: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    try:
        sys.stderr.write(f"{stamp}.{int(time.time() * 1000) % 1000:03d} [{os.getpid()}] {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def describe_exit(code) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def shell_join(argv) -> str:
    import shlex

    return shlex.join(str(a) for a in argv)


def spawn_logged(argv: list[str], log_fd: int) -> int:
    """Start ``argv`` (``argv[0]`` looked up on PATH) in its own process group, stdin from
    /dev/null and stdout/stderr into ``log_fd``; its pid.  QEMU and swtpm start this way."""
    return os.posix_spawnp(argv[0], argv, os.environ, setpgroup=0,
                           file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                                         (os.POSIX_SPAWN_DUP2, log_fd, 1),
                                         (os.POSIX_SPAWN_DUP2, log_fd, 2)])
