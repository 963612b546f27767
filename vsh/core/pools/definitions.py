"""The pools of a store: their definitions (libvirt's ``<pool>`` files), their state for this
boot, and the lookup of their volumes; see :mod:`vsh.core.pools` for the layout."""

from __future__ import annotations

import os
import stat as _stat

from vsh.core.definitions import DefinitionDir
from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, Unsupported, VshError
from vsh.core.pools.model import (CREATE_FORMATS, DEFAULT_POOL, MAX_CHAIN, Pool, check_pool_name, check_volume_name,
                                  new_uuid, parse_pool_xml, quick_pool, valid_name)
from vsh.core.pools.volumes import Volume
from vsh.core.qcow2 import read_header
from vsh.core.store import Lock, atomic_write, boot_id, ensure_private_dir, pid_alive, remove_file


class PoolStore(DefinitionDir):
    """The pools of one store: their definitions and state, and lookups of their volumes
    (what is done with volumes is in :class:`vsh.core.pools.volume_ops.Pools`)."""

    def __init__(self, store, init: bool = True):
        self.store = store
        self.dir = os.path.join(os.fspath(store.config_dir), "storage")
        self.autostart_dir = os.path.join(self.dir, "autostart")
        self.run_root = os.fspath(store.runtime_root)
        self.state_dir = os.path.join(self.run_root, ".pools")
        if init:
            self.ensure_default()

    # -- definitions ----------------------------------------------------------------------
    def lock(self, timeout: float = 30.0) -> Lock:
        return Lock(os.path.join(self.dir, ".lock"), timeout,
                    "storage pool definitions are locked by another vsh process")

    def _make_default(self, pools: list) -> None:
        """``default`` on <data>/images, unless a pool has that name or that directory."""
        images = os.fspath(self.store.data_dir / "images")
        if any(p.name == DEFAULT_POOL or same_dir(p.target, images) for p in pools):
            return
        ensure_private_dir(os.fspath(self.store.data_dir))
        ensure_private_dir(images)
        pool = Pool(DEFAULT_POOL, new_uuid(), images)
        self._write(pool)
        self._write_autostart(pool.name, True)

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.xml")

    def _transient_path(self, name: str) -> str:
        return os.path.join(self.state_dir, f"{name}.xml")

    def _load(self, name: str) -> Pool | None:
        if not valid_name(check_pool_name, name):
            return None
        persistent = True
        try:
            with open(self._path(name), "rb") as fh:
                data = fh.read()
        except (FileNotFoundError, NotADirectoryError):
            data = self._read_transient(name)
            if data is None:
                return None
            persistent = False
        pool = quick_pool(data)
        if pool is None:
            try:
                pool = parse_pool_xml(data, f"{name}.xml")
            except VshError:
                return None
        if pool.name != name:
            return None
        pool.persistent = persistent
        self._fill_state(pool)
        return pool

    def _read_transient(self, name: str) -> bytes | None:
        """The definition of the transient pool ``name`` when it is active in this boot."""
        if self._state_words(name) != ["active", boot_id()]:
            return None
        try:
            with open(self._transient_path(name), "rb") as fh:
                return fh.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _not_found(self, ident: str) -> NotFound:
        return NotFound(f"failed to get pool '{ident}'")

    def _load_all(self) -> list[Pool]:
        try:
            entries = os.listdir(self.dir)
        except FileNotFoundError:
            entries = []
        try:
            entries += [e for e in os.listdir(self.state_dir) if e not in entries]
        except FileNotFoundError:
            pass
        pools = []
        for entry in entries:
            if entry.endswith(".xml") and not entry.startswith("."):
                pool = self._load(entry[:-4])
                if pool is not None:
                    pools.append(pool)
        return pools

    def _write(self, pool: Pool) -> None:
        ensure_private_dir(os.fspath(self.store.config_dir))
        ensure_private_dir(self.dir)
        atomic_write(self._path(pool.name), pool.xml())

    def _check_conflicts(self, pool: Pool) -> Pool | None:
        """Refuse a UUID or directory another pool has; the pool of that name now, if any."""
        pools = self._load_all()
        old = next((p for p in pools if p.name == pool.name), None)
        for other in pools:
            if other.name == pool.name:
                continue
            if other.uuid == pool.uuid:
                raise OperationInvalid(f"operation failed: pool '{other.name}' already exists with uuid {pool.uuid}")
            if same_dir(other.target, pool.target):
                raise OperationInvalid(f"operation failed: Storage source conflict with pool: '{other.name}'")
        if old is not None and old.uuid != pool.uuid:
            raise OperationInvalid(f"operation failed: pool '{pool.name}' is already defined with uuid {old.uuid}")
        return old

    def define(self, pool: Pool) -> bool:
        """Store a definition (new, or a redefinition with the same UUID; a transient pool
        becomes persistent); True when it is new."""
        check_pool_name(pool.name)
        with self.lock():
            old = self._check_conflicts(pool)
            if old is not None and old.active and not same_dir(old.target, pool.target):
                raise OperationInvalid(f"Requested operation is not valid: storage pool '{pool.name}' is active; "
                                       "destroy it before changing its target path")
            self._write(pool)
            if old is not None and not old.persistent:
                remove_file(self._transient_path(pool.name))
        return old is None

    def create_transient(self, pool: Pool, build: bool = False) -> None:
        """Start ``pool`` as a transient pool (its definition lives only while it is active,
        in this boot's runtime directory); ``build`` makes its directory first."""
        check_pool_name(pool.name)
        with self.lock():
            old = self._check_conflicts(pool)
            if old is not None:
                raise OperationInvalid(f"operation failed: pool '{pool.name}' is already defined with uuid {old.uuid}")
            if build:
                self.build(pool)
            self._require_dir(pool)
            self._write_state(pool.name, True)
            atomic_write(self._transient_path(pool.name), pool.xml())
            pool.active, pool.persistent = True, False

    def undefine(self, pool: Pool) -> None:
        with self.lock():
            self._fill_state(pool)
            if pool.active:
                raise OperationInvalid(f"Requested operation is not valid: storage pool '{pool.name}' is still active")
            remove_file(self._path(pool.name))
            remove_file(os.path.join(self.autostart_dir, pool.name))
            remove_file(os.path.join(self.state_dir, pool.name))

    def set_autostart(self, pool: Pool, enabled: bool) -> None:
        if not pool.persistent:
            raise InvalidArgument("invalid argument: pool has no config file")
        with self.lock():
            self._write_autostart(pool.name, enabled)
            pool.autostart = enabled
            # an explicit mark keeps the pool as it is now for the rest of this boot
            self._write_state(pool.name, pool.active)

    # -- state ------------------------------------------------------------------------------
    def _state_words(self, name: str) -> list[str]:
        try:
            with open(os.path.join(self.state_dir, name), "rb") as fh:
                return fh.read(200).decode("ascii", "replace").split()
        except OSError:
            return []

    def _fill_state(self, pool: Pool) -> None:
        pool.autostart = pool.persistent and os.path.exists(os.path.join(self.autostart_dir, pool.name))
        words = self._state_words(pool.name)
        if len(words) == 2 and words[1] == boot_id() and words[0] in ("active", "inactive"):
            pool.active = words[0] == "active"
        else:
            pool.active = pool.autostart and os.path.isdir(pool.target)

    def _write_state(self, name: str, active: bool) -> None:
        ensure_private_dir(self.run_root)
        ensure_private_dir(self.state_dir)
        atomic_write(os.path.join(self.state_dir, name), f"{'active' if active else 'inactive'} {boot_id()}\n")

    def build(self, pool: Pool) -> None:
        """Make the pool's directory (0700 unless the definition says otherwise)."""
        target = pool.target
        try:
            if os.path.lexists(target) and not os.path.isdir(target):
                raise VshError(f"cannot create directory '{target}': it exists and is not a directory")
            created = not os.path.isdir(target)
            os.makedirs(target, mode=0o700, exist_ok=True)
            if pool.mode is not None or created:
                os.chmod(target, pool.mode if pool.mode is not None else 0o700)
            if pool.owner is not None or pool.group is not None:
                st = os.stat(target)
                uid = pool.owner if pool.owner is not None else st.st_uid
                gid = pool.group if pool.group is not None else st.st_gid
                if (uid, gid) != (st.st_uid, st.st_gid):
                    os.chown(target, uid, gid)
        except OSError as exc:
            raise VshError(f"cannot create directory '{target}': {exc.strerror}") from None

    def start(self, pool: Pool, build: bool = False) -> None:
        with self.lock():
            self._fill_state(pool)
            if pool.active:
                raise OperationInvalid(f"Requested operation is not valid: storage pool '{pool.name}' is already active")
            if build:
                self.build(pool)
            self._require_dir(pool)
            self._write_state(pool.name, True)
            pool.active = True

    @staticmethod
    def _require_dir(pool: Pool) -> None:
        if not os.path.isdir(pool.target):
            why = "Not a directory" if os.path.lexists(pool.target) else "No such file or directory"
            raise VshError(f"cannot open directory '{pool.target}': {why}")

    def destroy(self, pool: Pool) -> None:
        with self.lock():
            self._fill_state(pool)
            if not pool.active:
                raise OperationInvalid(f"Requested operation is not valid: storage pool '{pool.name}' is not active")
            if pool.persistent:
                self._write_state(pool.name, False)
            else:                   # a transient pool ends with its activity
                remove_file(self._transient_path(pool.name))
                remove_file(os.path.join(self.state_dir, pool.name))
            pool.active = False

    def require_active(self, pool: Pool) -> None:
        if not pool.active:
            raise OperationInvalid(f"Requested operation is not valid: storage pool '{pool.name}' is not active")

    def refresh(self, pool: Pool) -> int:
        """Volumes are read live: refreshing checks that the directory is still there and removes
        what creates killed mid-way left behind (hidden temporary files of dead processes).
        Returns how many leftovers went."""
        self.require_active(pool)
        try:
            entries = list(os.scandir(pool.target))
        except OSError as exc:
            raise VshError(f"cannot open directory '{pool.target}': {exc.strerror}") from None
        removed = 0
        for entry in entries:
            parts = entry.name.split("-")
            if not entry.name.startswith(".vsh-tmp-") or len(parts) != 4 or not parts[2].isdigit():
                continue
            if pid_alive(int(parts[2])):
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass
        return removed

    @staticmethod
    def sizes(pool: Pool) -> tuple[int, int, int]:
        """(capacity, allocation, available) of the filesystem under the pool, as libvirt counts them."""
        try:
            vfs = os.statvfs(pool.target)
        except OSError as exc:
            raise VshError(f"cannot statvfs path '{pool.target}': {exc.strerror}") from None
        frsize = vfs.f_frsize
        return (vfs.f_blocks * frsize, (vfs.f_blocks - vfs.f_bfree) * frsize, vfs.f_bavail * frsize)

    @staticmethod
    def target_perms(pool: Pool) -> tuple | None:
        try:
            st = os.stat(pool.target)
        except OSError:
            return None
        return (_stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)

    # -- volumes ------------------------------------------------------------------------------
    def volumes(self, pool: Pool) -> list[Volume]:
        """The volumes of an active pool, sorted by name (case-insensitive, like virsh)."""
        self.require_active(pool)
        out = []
        try:
            entries = list(os.scandir(pool.target))
        except OSError as exc:
            raise VshError(f"cannot open directory '{pool.target}': {exc.strerror}") from None
        for entry in entries:
            name = entry.name
            if not valid_name(check_volume_name, name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if _stat.S_ISREG(st.st_mode) or _stat.S_ISDIR(st.st_mode) or _stat.S_ISBLK(st.st_mode):
                out.append(Volume(pool, name, st))
        out.sort(key=lambda v: (v.name.lower(), v.name))
        return out

    def volume(self, pool: Pool, name: str) -> Volume | None:
        """A volume by name in a pool; None for a name that is not a valid volume name."""
        if not pool.active or not valid_name(check_volume_name, name):
            return None
        try:
            st = os.lstat(os.path.join(pool.target, name))
        except OSError:
            return None
        if _stat.S_ISREG(st.st_mode) or _stat.S_ISDIR(st.st_mode) or _stat.S_ISBLK(st.st_mode):
            return Volume(pool, name, st)
        return None

    def volume_by_path(self, path: str) -> Volume | None:
        """The volume at ``path`` (also its key) in an active pool, or None."""
        if not path or "\x00" in path:
            return None
        full = os.path.abspath(path)
        directory, name = os.path.split(full)
        if not valid_name(check_volume_name, name):
            return None
        try:
            real_dir = os.path.realpath(directory)
        except OSError:
            return None
        for pool in self._load_all():
            if pool.active and same_dir(pool.target, real_dir):
                return self.volume(pool, name)
        return None

    def lookup(self, ident: str, pool_ident: str | None = None, pool_option: str | None = "pool") -> Volume:
        """virsh's volume lookup: by name in ``--pool``, then by key, then by path."""
        pool = None
        vol = None
        if pool_ident is not None:
            pool = self.get(pool_ident)
            if not pool.active:
                raise OperationInvalid(f"pool '{pool_ident}' is not active")
            vol = self.volume(pool, ident)
        if vol is None:
            vol = self.volume_by_path(ident)
        if vol is None:
            if pool is not None or pool_option is None:
                raise NotFound(f"failed to get vol '{ident}'")
            raise NotFound(f"failed to get vol '{ident}', specifying --{pool_option} might help")
        if pool is not None and vol.pool.name != pool.name:
            raise NotFound(f"Requested volume '{ident}' is not in pool '{pool.name}'")
        return vol

    def check_chain(self, path: str, fmt: str, depth: int = 0) -> None:
        """Refuse a qcow2 chain that QEMU would have to probe or that leaves the pools.

        Every backing file must be recorded with its format in the header above it and
        be a volume of an active pool; no image may use an external data file.
        """
        if fmt != "qcow2":
            return
        if depth > MAX_CHAIN:
            raise Unsupported(f"backing chain of '{path}' is longer than {MAX_CHAIN} images")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            raise VshError(f"cannot open volume '{path}': {exc.strerror}") from None
        try:
            hdr = read_header(fd)
        finally:
            os.close(fd)
        if hdr is None:
            raise VshError(f"'{path}' is not a qcow2 image")
        if hdr.data_file:
            raise Unsupported(f"'{path}' uses an external data file, which vsh does not open")
        if not hdr.backing:
            return
        backing = os.path.normpath(os.path.join(os.path.dirname(path), hdr.backing))
        if not hdr.backing_format:
            raise Unsupported(f"'{path}' names its backing file '{backing}' without a format, "
                              "and vsh never probes a backing file's format")
        if hdr.backing_format not in CREATE_FORMATS:
            raise Unsupported(f"backing file '{backing}' of '{path}' is in format '{hdr.backing_format}'")
        if self.volume_by_path(backing) is None:
            raise Unsupported(f"backing file '{backing}' of '{path}' is not a volume of an active vsh pool")
        self.check_chain(backing, hdr.backing_format, depth + 1)


def same_dir(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)
