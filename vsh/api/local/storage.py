"""The local driver: storage pools, over :mod:`vsh.core.pools` (directory pools of the store).

Volumes are in :mod:`vsh.api.local.volumes`.
"""

from __future__ import annotations

from vsh.api.storage import Pool, Storage


def pool_info(pool, sizes=None) -> dict:
    """What :meth:`vsh.api.storage.Pool.info` reports for a :class:`vsh.core.pools.Pool`;
    ``sizes`` (capacity, allocation, available) when known."""
    data = {"name": pool.name, "uuid": pool.uuid, "type": pool.type, "target": pool.target,
            "state": pool.state, "active": pool.active, "persistent": pool.persistent,
            "autostart": pool.autostart}
    if sizes is not None:
        data.update(capacity=sizes[0], allocation=sizes[1], available=sizes[2])
    return data


class LocalStorage(Storage):
    def __init__(self, conn):
        self.conn = conn

    def pools(self, init: bool = True):
        """The store's pools (:class:`vsh.core.pools.Pools`); ``init`` defines ``default`` the first
        time."""
        from vsh.core.pools import Pools

        return Pools(self.conn.store, init=init)

    def pool_handle(self, pools, pool) -> "LocalPool":
        """The handle of ``pool`` (a :class:`vsh.core.pools.Pool` of ``pools``)."""
        return LocalPool(self, pools, pool)

    def list_pools(self, active=None, persistent=None, autostart=None, types=None, sizes=False) -> list[dict]:
        from vsh.core.errors import VshError

        pools = self.pools()
        out = []
        for pool in pools.list():
            if ((active is not None and pool.active != active)
                    or (persistent is not None and pool.persistent != persistent)
                    or (autostart is not None and pool.autostart != autostart)
                    or (types is not None and pool.type not in types)):
                continue
            size = None
            if sizes and pool.active:
                try:
                    size = pools.sizes(pool)
                except VshError:
                    size = None
            out.append(pool_info(pool, size))
        return out

    def pool_names(self) -> list[str]:
        return self.pools(init=False).names()

    def volume_names(self, paths: bool = False) -> list[str]:
        from vsh.core.errors import VshError

        pools = self.pools(init=False)
        out = []
        for pool in pools.list():
            if not pool.active:
                continue
            try:
                vols = pools.volumes(pool)
            except VshError:
                continue
            for vol in vols:
                word = vol.path if paths else vol.name
                if word not in out:
                    out.append(word)
        return out

    def lookup_pool(self, ident: str):
        pools = self.pools()
        return self.pool_handle(pools, pools.get(ident))

    def lookup_pool_by_name(self, name: str):
        pools = self.pools()
        return self.pool_handle(pools, pools.by_name(name))

    def lookup_pool_by_uuid(self, uuid: str):
        from vsh.core.errors import NotFound
        from vsh.core.names import is_uuid_arg

        if not is_uuid_arg(uuid):
            raise NotFound(f"failed to get pool '{uuid}'")
        return self.lookup_pool(uuid)

    def _define(self, pool):
        pools = self.pools()
        pools.define(pool)
        return self.pool_handle(pools, pool)

    def define_pool_xml(self, xml):
        from vsh.core.pools import parse_pool_xml

        return self._define(parse_pool_xml(xml))

    def define_pool_as(self, name: str, type: str, target: str):
        from vsh.core.pools import pool_from_args

        return self._define(pool_from_args(name, type, target))

    def _create(self, pool, build: bool):
        pools = self.pools()
        pools.create_transient(pool, build=build)
        return self.pool_handle(pools, pool)

    def create_pool_xml(self, xml, build: bool = False):
        from vsh.core.pools import parse_pool_xml

        return self._create(parse_pool_xml(xml), build)

    def create_pool_as(self, name: str, type: str, target: str, build: bool = False):
        from vsh.core.pools import pool_from_args

        return self._create(pool_from_args(name, type, target), build)

    def pool_xml_as(self, name: str, type: str, target: str) -> str:
        from vsh.core.pools import pool_from_args
        from vsh.core.xml import escape_attr, escape_text

        pool = pool_from_args(name, type, target)
        return (f"<pool type='{escape_attr(pool.type)}'>\n  <name>{escape_text(pool.name)}</name>\n  <target>\n"
                f"    <path>{escape_text(pool.target)}</path>\n  </target>\n</pool>\n")

    def lookup_volume(self, ident: str, pool: str | None = None):
        from vsh.api.local.volumes import LocalVolume

        pools = self.pools()
        return LocalVolume(self, pools, pools.lookup(ident, pool, pool_option=None))


class LocalPool(Pool):
    """A pool of the store; ``pool`` is its :class:`vsh.core.pools.Pool` as last read."""

    def __init__(self, storage: LocalStorage, pools, pool):
        self.storage = storage
        self.pools = pools
        self.pool = pool
        self.name = pool.name
        self.uuid = pool.uuid

    def __repr__(self) -> str:
        return f"<LocalPool {self.name!r}>"

    def info(self) -> dict:
        return pool_info(self.pool, self.pools.sizes(self.pool) if self.pool.active else None)

    def xml(self, inactive: bool = False) -> str:
        pool = self.pool
        if pool.active and not inactive:
            return pool.xml(self.pools.sizes(pool), self.pools.target_perms(pool))
        return pool.xml()

    def build(self) -> None:
        self.pools.build(self.pool)

    def start(self, build: bool = False) -> None:
        self.pools.start(self.pool, build=build)

    def destroy(self) -> None:
        self.pools.destroy(self.pool)

    def undefine(self) -> None:
        self.pools.undefine(self.pool)

    def refresh(self) -> int:
        return self.pools.refresh(self.pool)

    def set_autostart(self, enabled: bool) -> None:
        self.pools.set_autostart(self.pool, enabled)

    def _volume(self, vol):
        from vsh.api.local.volumes import LocalVolume

        return LocalVolume(self.storage, self.pools, vol)

    def list_volumes(self, details: bool = False) -> list[dict]:
        from vsh.api.local.volumes import volume_info

        return [volume_info(vol, details) for vol in self.pools.volumes(self.pool)]

    def lookup_volume(self, name: str):
        from vsh.core.errors import NotFound

        vol = self.pools.volume(self.pool, name)
        if vol is None:
            raise NotFound(f"failed to get vol '{name}'")
        return self._volume(vol)

    def create_volume_xml(self, xml, prealloc_metadata: bool = False):
        from vsh.core.pools import parse_volume_xml

        spec = parse_volume_xml(xml)
        return self._volume(self.pools.create(self.pool, spec, prealloc_metadata=prealloc_metadata))

    def create_volume_as(self, name, capacity, allocation=None, format=None, backing_path=None,
                         backing_format=None, prealloc_metadata=False):
        from vsh.core.pools import VolumeSpec

        spec = VolumeSpec(name, capacity, allocation, format, backing_path, backing_format)
        return self._volume(self.pools.create(self.pool, spec, prealloc_metadata=prealloc_metadata))

    def volume_xml_as(self, name, capacity, allocation=None, format=None, backing_path=None,
                      backing_format=None) -> str:
        from vsh.core.pools import VolumeSpec, volume_spec_xml

        spec = VolumeSpec(name, capacity, allocation, format, backing_path, backing_format)
        spec.format = format        # the document names a format only when one was given
        return volume_spec_xml(spec)
