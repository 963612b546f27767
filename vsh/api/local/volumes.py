"""The local driver: volumes of the store's pools, over :mod:`vsh.core.pools`."""

from __future__ import annotations

from vsh.api.storage import Volume


def volume_info(vol, details: bool = True) -> dict:
    """What :meth:`vsh.api.storage.Volume.info` reports for a :class:`vsh.core.pools.Volume`
    (without ``details``: its identity only, which reads no header)."""
    data = {"name": vol.name, "path": vol.path, "key": vol.key, "pool": vol.pool.name}
    if details:
        data.update(type=vol.type, format=vol.format, capacity=vol.capacity, allocation=vol.allocation,
                    physical=vol.physical, backing=vol.backing, backing_format=vol.backing_format)
    return data


def _terminal_fd(progress) -> int | None:
    """The descriptor of the terminal a progress stands for, for qemu-img -p to draw on."""
    fileno = getattr(progress, "fileno", None)
    if fileno is None:
        return None
    try:
        return fileno()
    except (AttributeError, ValueError, OSError):
        return None


class LocalVolume(Volume):
    """A volume of the store; ``vol`` is its :class:`vsh.core.pools.Volume` as last read."""

    def __init__(self, storage, pools, vol):
        self.storage = storage
        self.pools = pools
        self.vol = vol
        self.name = vol.name
        self.key = vol.key
        self.path = vol.path

    def __repr__(self) -> str:
        return f"<LocalVolume {self.path!r}>"

    def info(self) -> dict:
        return volume_info(self.vol)

    def pool(self):
        return self.storage.pool_handle(self.pools, self.vol.pool)

    def xml(self) -> str:
        return self.vol.xml()

    def _check_not_in_use(self, what: str) -> None:
        """Refuse to change a volume that a running domain uses (directly or as a backing file)."""
        import os

        from vsh.core.errors import OperationInvalid
        from vsh.core.pools import paths_in_use

        users = paths_in_use(self.storage.conn.store, self.pools, active_only=True)
        user = users.get(os.path.realpath(self.path))
        if user is not None:
            raise OperationInvalid(f"Requested operation is not valid: cannot {what} volume '{self.name}': "
                                   f"it is in use by running domain '{user}'")

    def _reread(self) -> None:
        """Read the volume again after an operation changed it (its size, its header)."""
        self.vol = self.pools.volume(self.vol.pool, self.name) or self.vol

    def delete(self) -> None:
        self._check_not_in_use("delete")
        self.pools.delete(self.vol)

    def wipe(self, progress=None) -> None:
        self._check_not_in_use("wipe")
        self.pools.wipe(self.vol, progress=progress)
        self._reread()

    def resize(self, capacity: int, delta: bool = False, shrink: bool = False, allocate: bool = False) -> int:
        from vsh.core.errors import InvalidArgument

        self._check_not_in_use("resize")
        new = capacity
        if delta:
            current = self.vol.capacity
            new = current - capacity if shrink else current + capacity
            if new < 0:
                raise InvalidArgument(f"invalid argument: can't shrink capacity below zero (it is {current} bytes)")
        self.pools.resize(self.vol, new, shrink=shrink, allocate=allocate)
        self._reread()
        return new

    def clone(self, new_name: str, prealloc_metadata: bool = False, progress=None):
        new = self.pools.clone(self.vol, new_name, prealloc_metadata=prealloc_metadata,
                               progress_fd=_terminal_fd(progress))
        return LocalVolume(self.storage, self.pools, new)

    def upload(self, file: str, offset: int = 0, length: int | None = None, sparse: bool = False,
               progress=None) -> int:
        self._check_not_in_use("upload to")
        done = self.pools.upload(self.vol, file, offset, length, sparse=sparse, progress=progress)
        self._reread()
        return done

    def download(self, file: str, offset: int = 0, length: int | None = None, sparse: bool = False,
                 progress=None) -> int:
        return self.pools.download(self.vol, file, offset, length, sparse=sparse, progress=progress)
