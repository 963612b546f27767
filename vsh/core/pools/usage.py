"""Which files the domains use (disks, with their backing chains), and which volumes
``undefine --remove-all-storage`` may delete."""

from __future__ import annotations

import os
import stat as _stat

from vsh.core.errors import VshError
from vsh.core.pools.model import MAX_CHAIN
from vsh.core.pools.volume_ops import Pools
from vsh.core.qcow2 import read_header


def disk_paths(pools: Pools, dom) -> list[tuple]:
    """(target, path, disk) for each disk with a local source; ``type='volume'`` disks resolved."""
    out = []
    for disk in dom.disks:
        path = None
        if disk.type == "volume":
            src = disk.node.find("source")
            if src is not None and src.get("pool") and src.get("volume"):
                try:
                    vol = pools.volume(pools.get(src.get("pool")), src.get("volume"))
                except VshError:
                    vol = None
                path = vol.path if vol is not None else None
        else:
            path = disk.source_file or disk.source_dev
        if path:
            out.append((disk.target_dev or "-", path, disk))
    return out


def _chain_paths(path: str, seen: set) -> None:
    """Add ``path`` and, through qcow2 headers, its backing files (a generous notion of use)."""
    for _ in range(MAX_CHAIN + 1):
        try:
            real = os.path.realpath(path)
        except OSError:
            return
        if real in seen:
            return
        seen.add(real)
        try:
            fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return
        try:
            if not _stat.S_ISREG(os.fstat(fd).st_mode):
                return
            hdr = read_header(fd)
        except OSError:
            return
        finally:
            os.close(fd)
        if hdr is None or not hdr.backing:
            return
        path = os.path.join(os.path.dirname(real), hdr.backing)


def paths_in_use(store, pools: Pools, exclude: str | None = None, active_only: bool = False) -> dict[str, str]:
    """{real path: domain name} for every disk (with backing chains) of every domain but ``exclude``.

    ``active_only``: running domains only, as they run now.
    """
    users: dict[str, str] = {}
    for ref in store.refs():
        if ref.name == exclude or (active_only and not ref.active):
            continue
        docs = []
        if active_only:
            variants = (False,)
        elif ref.active and ref.persistent:
            variants = (False, True)
        else:
            variants = (not ref.active,)
        for inactive in variants:
            try:
                docs.append(store.load(ref, inactive=inactive))
            except VshError:
                continue
        for dom in docs:
            paths = [p for _t, p, _d in disk_paths(pools, dom)]
            paths += [p for p in dom.node.xpath(".//devices/disk//backingStore/source/@file")]
            for path in paths:
                seen: set = set()
                _chain_paths(path, seen)
                for real in seen:
                    users.setdefault(real, ref.name)
    return users


def removable_storage(store, name: str, dom) -> tuple[list, list]:
    """What ``undefine --remove-all-storage`` may delete for domain ``name``.

    Returns (remove, keep): ``remove`` holds (target, path, Volume) for pool volumes that no other
    domain uses (through its disks or their backing chains); ``keep`` holds (target, path, reason)
    with reason ``'unmanaged'`` (not a volume of an active pool) or ``"used by domain 'X'"``.
    CD-ROMs, read-only and shareable disks are never removed. The default pool is set up
    first if it never was (a disk made in <data>/images is one of its volumes).
    """
    pools = Pools(store)
    users = None
    remove, keep = [], []
    seen = set()
    for target, path, disk in disk_paths(pools, dom):
        if disk.device in ("cdrom", "floppy") or disk.readonly or disk.shareable:
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        vol = pools.volume_by_path(path)
        if vol is None or vol.type != "file":
            keep.append((target, path, "unmanaged"))
            continue
        if users is None:
            users = paths_in_use(store, pools, exclude=name)
        other = users.get(real)
        if other is not None:
            keep.append((target, path, f"used by domain '{other}'"))
            continue
        remove.append((target, path, vol))
    return remove, keep
