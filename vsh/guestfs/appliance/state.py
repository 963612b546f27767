"""The appliance's saved state: a booted appliance (no user disks yet), saved by QEMU's
migration to a file, which later starts restore instead of booting.

The file lives next to the appliance's initrd (``<cache>/appliance/<key>/state-<hash>``),
mode 0600 in a 0700 directory. ``<hash>`` covers everything a restore needs to match: the
QEMU command line (accelerator, memory, kernel, initrd, devices; the per-run socket and
log paths left out), the identity of the QEMU binary (path, inode, size, mtime: an upgrade
changes it) and of the kernel and initrd files, and :data:`REVISION`. A file is written
under a temporary name and renamed into place (two processes saving at once each rename a
whole file); saving one removes the directory's other states, so there is one per
appliance. A state QEMU refuses is deleted and the appliance boots cold (and saves again).
"""

from __future__ import annotations

import hashlib
import json
import os

from vsh.core.runtime import pid_alive

REVISION = 1
PREFIX = "state-"


def _identity(path: str) -> list:
    st = os.stat(path)
    return [path, st.st_ino, st.st_size, st.st_mtime_ns]


def path_for(argv: list[str], private_dir: str, initrd: str, vmlinux: str) -> str:
    """The state file for the appliance started with ``argv`` (``private_dir`` is the run's
    own directory, whose paths do not count)."""
    stable = [a.replace(private_dir, "@") for a in argv]
    h = hashlib.sha256(json.dumps([REVISION, stable, _identity(argv[0]), _identity(initrd),
                                   _identity(vmlinux)]).encode())
    return os.path.join(os.path.dirname(initrd), PREFIX + h.hexdigest()[:16])


def temp_for(path: str) -> str:
    """A new empty file (0600) beside ``path`` for QEMU to write the state into."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.close(fd)
    return tmp


def commit(tmp: str, path: str) -> None:
    """Rename the written state into place and remove the directory's other states (and
    the temporary files of saves whose process is gone)."""
    os.rename(tmp, path)
    top = os.path.dirname(path)
    for name in os.listdir(top):
        if name.startswith(PREFIX) and name != os.path.basename(path):
            discard(os.path.join(top, name))
        elif name.startswith("." + PREFIX) and name.endswith(".tmp"):
            pid = name.split(".")[-2]
            if not (pid.isdigit() and pid_alive(int(pid))):
                discard(os.path.join(top, name))


def discard(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
