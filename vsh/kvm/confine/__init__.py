"""QEMU confinement (libvirt's DAC model): when vsh runs as root, QEMU runs as the system
user ``vsh-qemu`` (made by ``scripts/setup``, or here on first use), reaches exactly the
files its argv names, in a private mount namespace with a minimal /dev, without
capabilities and with no_new_privs; ``-sandbox`` (seccomp) is on its argv.  As any other
user QEMU simply runs as that user (session mode).

:func:`prepare` (the supervisor, before each QEMU start) grants QEMU's user the files of
its argv by ACL (:mod:`.acl`: counted, the original ACL and mode kept), search on
directories above them, and ``rwx`` plus the sticky bit on the runtime directory (QEMU
makes its sockets and logs there and can remove nothing vsh wrote).  What was granted is
listed in ``grants.json`` there; :func:`release` undoes it when the domain stops, or the
next start does if the supervisor died with QEMU.  :func:`grant_more` serves hot-plug,
snapshots and block copies (files QEMU opens while running).
"""

from __future__ import annotations

import json
import os
import stat

from vsh.core.errors import VshError
from vsh.core.runtime import GRANTS_FILE

QEMU_USER = "vsh-qemu"
USERADD_TIMEOUT = 30.0


def confined() -> bool:
    """QEMU runs as QEMU_USER exactly when vsh runs as root."""
    return os.geteuid() == 0


def qemu_ids() -> tuple[int, int]:
    """uid and gid of QEMU_USER, made (a system user and group, no home, no shell) if missing."""
    import pwd

    try:
        pw = pwd.getpwnam(QEMU_USER)
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        pass
    import subprocess

    try:
        proc = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                               "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                               "--comment", "vsh QEMU processes", QEMU_USER],
                              capture_output=True, text=True, timeout=USERADD_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VshError(f"internal error: cannot create the system user '{QEMU_USER}' QEMU runs as: {exc}") from None
    try:
        pw = pwd.getpwnam(QEMU_USER)        # made now, or by a vsh racing us
    except KeyError:
        raise VshError(f"internal error: cannot create the system user '{QEMU_USER}' QEMU runs as: "
                       f"{proc.stderr.strip() or 'useradd exited with status %d' % proc.returncode}") from None
    return pw.pw_uid, pw.pw_gid


def _ancestors(path: str) -> list[str]:
    out, cur = [], os.path.dirname(path)
    while cur and cur != "/":
        out.append(cur)
        cur = os.path.dirname(cur)
    return out[::-1]


def _wanted(needs) -> list[tuple[str, str]]:
    """(real path, perms) to grant for ``needs``: search on the directories above each file,
    then the file; device nodes are left to the private /dev."""
    out: dict[str, str] = {}
    for need in needs:
        if need.path.startswith("/dev/"):
            continue
        real = os.path.realpath(need.path)
        for d in _ancestors(need.path) + _ancestors(real):
            d = os.path.realpath(d)
            out.setdefault(d, "x")
        had = out.get(real, "")
        out[real] = "".join(c for c in "rwx" if c in need.perms or c in had)
    return list(out.items())


def _load(rundir) -> list[list[str]]:
    try:
        with open(os.path.join(rundir, GRANTS_FILE), "rb") as fh:
            return [list(item) for item in json.load(fh)]
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return []


def _record(rundir, items) -> None:
    from vsh.core.runtime import write_json_atomic

    # a list, not a dict: write_json_atomic takes any JSON value
    write_json_atomic(os.path.join(rundir, GRANTS_FILE), items)


def _grant_all(rundir, uid: int, wanted) -> None:
    from vsh.kvm.confine import acl

    done = _load(rundir)
    have = {(p, perms) for p, perms in done}
    for path, perms in wanted:
        try:
            if (path, perms) in have or any(p == path and set(perms) <= set(q) for p, q in done):
                acl.ensure(path, uid, perms)    # granted already this run; a chmod may have masked it
                continue
            counted = acl.grant(path, uid, perms)
        except FileNotFoundError:
            raise VshError(f"internal error: cannot grant {QEMU_USER} access to '{path}': "
                           "No such file or directory") from None
        except OSError as exc:
            raise VshError(f"internal error: cannot grant {QEMU_USER} access to '{path}': "
                           f"{exc.strerror or exc}") from None
        if counted:
            done.append([path, perms])
            have.add((path, perms))
            _record(rundir, done)


def _create(path: str) -> None:
    """An empty file QEMU will open (as libvirt prepares file chardevs and logs)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass        # there already: QEMU opens it as it is (a link is refused by the grant's stat)
    except OSError as exc:
        raise VshError(f"internal error: cannot create '{path}' for QEMU: {exc.strerror}") from None


def prepare(rundir, argv: list[str]):
    """Before QEMU starts: the grants for ``argv`` and the confinement plan for
    :func:`vsh.kvm.confine.sandbox.spawn`; None when vsh is not root (nothing to do)."""
    if not confined():
        return None
    from vsh.kvm.confine import needs as _needs, sandbox

    uid, gid = qemu_ids()
    rundir = os.path.realpath(rundir)
    found = _needs.needs(argv)
    for need in found:
        if need.create and not need.path.startswith("/dev/"):
            _create(need.path)
    above = [(os.path.realpath(d), "x") for d in _ancestors(rundir)]
    _grant_all(rundir, uid, above + [(rundir, "rwx")] + _wanted(found))
    st = os.stat(rundir)
    if not st.st_mode & stat.S_ISVTX:
        os.chmod(rundir, stat.S_IMODE(st.st_mode) | stat.S_ISVTX)
    return sandbox.Plan(uid, gid, sandbox.device_nodes([n.path for n in found]))


def grant_more(rundir, paths: list[tuple[str, str]]) -> None:
    """Grant QEMU's user of a running domain more files (``[(path, 'r'|'rw')]``), e.g. a disk
    to hot-plug or a snapshot overlay; nothing when the domain's QEMU is not confined."""
    if not confined() or not os.path.exists(os.path.join(rundir, GRANTS_FILE)):
        return
    from vsh.kvm.confine.needs import Need

    uid, _gid = qemu_ids()
    _grant_all(os.path.realpath(rundir), uid, _wanted([Need(p, perms, False) for p, perms in paths]))


def grant_blockdev(rundir, node: dict) -> None:
    """:func:`grant_more` for the files of a ``blockdev-add`` argument (hot-plug, new media)."""
    from vsh.kvm.confine.needs import blockdev_needs

    grant_more(rundir, [(n.path, n.perms) for n in blockdev_needs(node)])


def grant_output(rundir, path: str) -> None:
    """A file a running QEMU is about to write (a dump, a copy's destination): made empty here
    by vsh, then granted, so that QEMU needs no write access to its directory."""
    if not confined() or not os.path.exists(os.path.join(rundir, GRANTS_FILE)):
        return
    _create(path)
    grant_more(rundir, [(path, "rw")])


def release(rundir) -> list[str]:
    """Undo the grants of ``rundir``'s run (the domain stopped); the warnings, if any."""
    from vsh.kvm.confine import acl

    items = _load(rundir)
    warnings = []
    for path, _perms in reversed(items):
        try:
            acl.release(path)
        except OSError as exc:
            warnings.append(f"cannot restore the permissions of '{path}': {exc.strerror or exc}")
    try:
        os.unlink(os.path.join(rundir, GRANTS_FILE))
    except FileNotFoundError:
        pass
    return warnings
