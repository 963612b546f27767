"""POSIX ACL entries for QEMU's user, counted and undone (libvirt's DAC driver with
``remember_owner``, by ACL instead of ownership).

:func:`grant` adds ``user:UID:PERMS`` to a file's access ACL (the kernel's
``system.posix_acl_access`` attribute, written here directly: no setfacl) and
remembers, in the file's ``trusted.vsh.grant`` attribute, the ACL and mode it had
and how many running domains hold the grant.  :func:`release` counts down and puts
the original ACL and mode back when the last holder lets go.  Both take one host-wide
lock, so two domains starting at once that share a backing file count correctly.

A file that already lets everyone do what is asked (``other`` bits, no ACL) is left
alone: ``/``, ``/tmp`` and the like are never touched.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import struct

ACL_XATTR = "system.posix_acl_access"
MARK_XATTR = "trusted.vsh.grant"
LOCK_PATH = "/run/lock/vsh-acl.lock"

_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_UNDEFINED = 0xFFFFFFFF
_ORDER = {_USER_OBJ: 0, _USER: 1, _GROUP_OBJ: 2, _GROUP: 3, _MASK: 4, _OTHER: 5}


def perm_bits(perms: str) -> int:
    """'rwx' letters to ACL permission bits (r=4, w=2, x=1)."""
    return (4 if "r" in perms else 0) | (2 if "w" in perms else 0) | (1 if "x" in perms else 0)


def parse(blob: bytes) -> list[tuple[int, int, int]]:
    """The entries (tag, perm, id) of an ACL attribute value."""
    if len(blob) < 4 or struct.unpack_from("<I", blob)[0] != _VERSION or (len(blob) - 4) % 8:
        raise ValueError("not a POSIX ACL (version 2)")
    return [struct.unpack_from("<HHI", blob, off) for off in range(4, len(blob), 8)]


def encode(entries: list[tuple[int, int, int]]) -> bytes:
    entries = sorted(entries, key=lambda e: (_ORDER[e[0]], e[2]))
    return struct.pack("<I", _VERSION) + b"".join(struct.pack("<HHI", *e) for e in entries)


def from_mode(mode: int) -> list[tuple[int, int, int]]:
    """The minimal ACL equal to a file mode."""
    return [(_USER_OBJ, mode >> 6 & 7, _UNDEFINED), (_GROUP_OBJ, mode >> 3 & 7, _UNDEFINED),
            (_OTHER, mode & 7, _UNDEFINED)]


def with_user(entries: list[tuple[int, int, int]], uid: int, bits: int) -> list[tuple[int, int, int]]:
    """``entries`` plus ``user:uid:bits`` (merged with an entry already there), mask recomputed."""
    out, have = [], 0
    for tag, perm, ident in entries:
        if tag == _MASK:
            continue
        if tag == _USER and ident == uid:
            have |= perm
            continue
        out.append((tag, perm, ident))
    out.append((_USER, have | bits, uid))
    mask = 0
    for tag, perm, _ident in out:
        if tag in (_USER, _GROUP, _GROUP_OBJ):
            mask |= perm
    out.append((_MASK, mask, _UNDEFINED))
    return out


def user_bits(entries: list[tuple[int, int, int]], uid: int) -> int:
    """What ``user:uid`` is granted by name in ``entries`` (through the mask), 0 if no entry."""
    mask = next((perm for tag, perm, _ in entries if tag == _MASK), 7)
    return next((perm & mask for tag, perm, ident in entries if tag == _USER and ident == uid), 0)


def _getxattr(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP):
            return None
        raise


class _Lock:
    def __enter__(self):
        os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
        self.fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def needed(st: os.stat_result, bits: int) -> bool:
    """False when the file's mode already lets anyone do ``bits``."""
    return (st.st_mode & 7) & bits != bits


def grant(path: str, uid: int, perms: str) -> bool:
    """Let ``uid`` do ``perms`` on ``path`` (counted); True if an entry was added or counted,
    False if the file let everyone do it already (nothing to undo)."""
    bits = perm_bits(perms)
    with _Lock():
        st = os.stat(path)
        mark = _getxattr(path, MARK_XATTR)
        if mark is None and not needed(st, bits):
            return False
        current = _getxattr(path, ACL_XATTR)
        entries = parse(current) if current else from_mode(st.st_mode)
        if mark is not None:
            record = json.loads(mark)
            record["refs"] = int(record.get("refs", 0)) + 1
        else:
            record = {"refs": 1, "acl": current.hex() if current else None,
                      "mode": stat.S_IMODE(st.st_mode)}
        if user_bits(entries, uid) & bits != bits:
            os.setxattr(path, ACL_XATTR, encode(with_user(entries, uid, bits)))
        os.setxattr(path, MARK_XATTR, json.dumps(record, sort_keys=True).encode())
    return True


def ensure(path: str, uid: int, perms: str) -> None:
    """Put back a granted entry that a ``chmod`` masked since (it rewrites the ACL mask), without
    counting: a running domain's grants are checked again before QEMU opens more files."""
    bits = perm_bits(perms)
    with _Lock():
        if _getxattr(path, MARK_XATTR) is None:
            return
        current = _getxattr(path, ACL_XATTR)
        entries = parse(current) if current else from_mode(os.stat(path).st_mode)
        if user_bits(entries, uid) & bits != bits:
            os.setxattr(path, ACL_XATTR, encode(with_user(entries, uid, bits)))


def release(path: str) -> None:
    """Count one holder of ``path``'s grant down; the last one restores the ACL and mode."""
    with _Lock():
        try:
            mark = _getxattr(path, MARK_XATTR)
        except FileNotFoundError:
            return
        if mark is None:
            return
        record = json.loads(mark)
        refs = int(record.get("refs", 1)) - 1
        if refs > 0:
            record["refs"] = refs
            os.setxattr(path, MARK_XATTR, json.dumps(record, sort_keys=True).encode())
            return
        if record.get("acl"):
            os.setxattr(path, ACL_XATTR, bytes.fromhex(record["acl"]))
        else:
            try:
                os.removexattr(path, ACL_XATTR)
            except OSError as exc:
                if exc.errno != errno.ENODATA:
                    raise
        os.chmod(path, int(record["mode"]))
        os.removexattr(path, MARK_XATTR)


def holders(path: str) -> int:
    """How many running domains hold a grant on ``path`` (0 when none)."""
    mark = _getxattr(path, MARK_XATTR)
    return int(json.loads(mark).get("refs", 0)) if mark else 0
