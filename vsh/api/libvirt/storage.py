"""Storage pools and volumes through libvirt (``virStoragePoolPtr``, ``virStorageVolPtr``)."""

from __future__ import annotations

from vsh.api.libvirt.handles import Named, parse_xml
from vsh.api.libvirt.lv import call, mod
from vsh.api.libvirt.states import is_uuid
from vsh.api.storage import Pool, Storage, Volume
from vsh.core.errors import NotFound, OperationInvalid, Unsupported, VshError

# virStoragePoolState and virStorageVolType in virsh's words
POOL_STATES = ("inactive", "building", "running", "degraded", "inaccessible")
VOL_TYPES = ("file", "block", "dir", "network", "netdir", "ploop")
_CHUNK = 256 * 1024


def _text(xml: str) -> str:
    from xml.sax.saxutils import escape

    return escape(xml, {"'": "&apos;"})


def pool_xml(name: str, type: str, target: str) -> str:
    """The ``<pool>`` document virsh's pool-define-as writes for a pool of ``type`` on ``target``."""
    return (f"<pool type='{_text(type)}'>\n  <name>{_text(name)}</name>\n  <target>\n"
            f"    <path>{_text(target)}</path>\n  </target>\n</pool>\n")


def volume_xml(name: str, capacity: int, allocation: int | None = None, format: str | None = None,
               backing_path: str | None = None, backing_format: str | None = None) -> str:
    """The ``<volume>`` document virsh's vol-create-as writes."""
    out = [f"<volume>\n  <name>{_text(name)}</name>\n  <capacity>{capacity}</capacity>\n"]
    if allocation is not None:
        out.append(f"  <allocation>{allocation}</allocation>\n")
    if format:
        out.append(f"  <target>\n    <format type='{_text(format)}'/>\n  </target>\n")
    if backing_path:
        out.append(f"  <backingStore>\n    <path>{_text(backing_path)}</path>\n")
        if backing_format:
            out.append(f"    <format type='{_text(backing_format)}'/>\n")
        out.append("  </backingStore>\n")
    out.append("</volume>\n")
    return "".join(out)


def domain_volumes(conn, tree) -> tuple[list, list]:
    """The disks of a domain's XML ``tree`` that are volumes of a pool, ``(target, path, volume
    pointer)``, and the others, ``{"target", "path", "reason": "unmanaged"}``."""
    found, kept = [], []
    m = mod()
    for disk in tree.iter("disk"):
        src, target = disk.find("source"), disk.find("target")
        path = src.get("file") or src.get("dev") if src is not None else None
        if not path:
            continue
        dev = target.get("dev") if target is not None else ""
        vol = m.virStorageVolLookupByPath(conn.ptr, path)
        if vol is None:
            kept.append({"target": dev, "path": path, "reason": "unmanaged"})
        else:
            found.append((dev, path, vol))
    return found, kept


class LibvirtStorage(Storage):
    def __init__(self, conn):
        self.conn = conn

    def _pools(self, flags: int = 0) -> list:
        return call("virConnectListAllStoragePools", self.conn.ptr, flags, context=("Failed to list pools",))

    def list_pools(self, active=None, persistent=None, autostart=None, types=None, sizes=False) -> list[dict]:
        flags = 0
        for value, yes, no in ((active, 2, 1), (persistent, 4, 8), (autostart, 16, 32)):
            if value is not None:
                flags |= yes if value else no
        out = []
        for ptr in self._pools(flags):
            pool = LibvirtPool(self, ptr)
            info = pool.info(sizes=sizes)
            if types is None or info["type"] in types:
                out.append(info)
        return sorted(out, key=lambda p: p["name"])

    def pool_names(self) -> list[str]:
        return sorted(mod().virStoragePoolGetName(ptr) for ptr in self._pools())

    def volume_names(self, paths: bool = False) -> list[str]:
        out, seen = [], set()
        for ptr in self._pools(2):
            for vol in mod().virStoragePoolListAllVolumes(ptr, 0) or ():
                name = mod().virStorageVolGetPath(vol) if paths else mod().virStorageVolGetName(vol)
                if name not in seen:
                    seen.add(name)
                    out.append(name)
        return out

    def lookup_pool(self, ident: str) -> "Pool":
        ptr = mod().virStoragePoolLookupByUUIDString(self.conn.ptr, ident) if is_uuid(ident) else None
        return LibvirtPool(self, ptr) if ptr is not None else self.lookup_pool_by_name(ident)

    def lookup_pool_by_name(self, name: str) -> "Pool":
        return LibvirtPool(self, call("virStoragePoolLookupByName", self.conn.ptr, name,
                                      context=(f"failed to get pool '{name}'",)))

    def lookup_pool_by_uuid(self, uuid: str) -> "Pool":
        if not is_uuid(uuid):
            raise NotFound(f"failed to get pool '{uuid}'")
        return LibvirtPool(self, call("virStoragePoolLookupByUUIDString", self.conn.ptr, uuid,
                                      context=(f"failed to get pool '{uuid}'",)))

    def define_pool_xml(self, xml) -> "Pool":
        text = xml.decode() if isinstance(xml, bytes) else xml
        return LibvirtPool(self, call("virStoragePoolDefineXML", self.conn.ptr, text, 0))

    def define_pool_as(self, name: str, type: str, target: str) -> "Pool":
        return self.define_pool_xml(pool_xml(name, type, target))

    def pool_xml_as(self, name: str, type: str, target: str) -> str:
        return pool_xml(name, type, target)

    def lookup_volume(self, ident: str, pool: str | None = None) -> "Volume":
        m = mod()
        if pool is not None:
            obj = self.lookup_pool(pool)
            if m.virStoragePoolIsActive(obj.ptr) != 1:
                raise OperationInvalid(f"pool '{obj.name}' is not active")
            vol = m.virStorageVolLookupByName(obj.ptr, ident)
            if vol is not None:
                return LibvirtVolume(self, vol)
        vol = m.virStorageVolLookupByKey(self.conn.ptr, ident)
        if vol is None:
            vol = call("virStorageVolLookupByPath", self.conn.ptr, ident, context=(f"failed to get vol '{ident}'",))
        return LibvirtVolume(self, vol)

    def create_pool_xml(self, xml, build: bool = False) -> "Pool":
        text = xml.decode() if isinstance(xml, bytes) else xml
        # VIR_STORAGE_POOL_CREATE_WITH_BUILD 1
        return LibvirtPool(self, call("virStoragePoolCreateXML", self.conn.ptr, text, 1 if build else 0))

    def create_pool_as(self, name: str, type: str, target: str, build: bool = False) -> "Pool":
        return self.create_pool_xml(pool_xml(name, type, target), build=build)

class LibvirtPool(Named, Pool):
    KIND = "virStoragePool"

    def __init__(self, storage: LibvirtStorage, ptr):
        self.storage = storage
        self._take(ptr)

    def info(self, sizes: bool = True) -> dict:
        m = mod()
        state, capacity, allocation, available = self._call("virStoragePoolGetInfo")
        tree = parse_xml(self._call("virStoragePoolGetXMLDesc", 0))
        active = m.virStoragePoolIsActive(self.ptr) == 1
        data = {"name": self.name, "uuid": self.uuid, "type": tree.get("type"),
                "target": tree.findtext("target/path"),
                "state": POOL_STATES[state] if 0 <= state < len(POOL_STATES) else "unknown", "active": active,
                "persistent": m.virStoragePoolIsPersistent(self.ptr) == 1,
                "autostart": m.virStoragePoolGetAutostart(self.ptr) == 1}
        if active and sizes:
            data.update(capacity=capacity, allocation=allocation, available=available)
        return data

    def xml(self, inactive: bool = False) -> str:
        return self._call("virStoragePoolGetXMLDesc", 1 if inactive else 0)

    def build(self) -> None:
        self._call("virStoragePoolBuild", 0)

    def start(self, build: bool = False) -> None:
        self._call("virStoragePoolCreate", 1 if build else 0)       # VIR_STORAGE_POOL_CREATE_WITH_BUILD

    def destroy(self) -> None:
        self._call("virStoragePoolDestroy")

    def undefine(self) -> None:
        self._call("virStoragePoolUndefine")

    def refresh(self) -> int:
        self._call("virStoragePoolRefresh", 0)
        return 0

    def set_autostart(self, enabled: bool) -> None:
        self._call("virStoragePoolSetAutostart", 1 if enabled else 0)

    def list_volumes(self, details: bool = False) -> list[dict]:
        vols = [LibvirtVolume(self.storage, ptr) for ptr in self._call("virStoragePoolListAllVolumes", 0)]
        out = [v.info() if details else {"name": v.name, "path": v.path, "key": v.key, "pool": self.name}
               for v in vols]
        return sorted(out, key=lambda v: v["name"])

    def lookup_volume(self, name: str) -> "Volume":
        return LibvirtVolume(self.storage, call("virStorageVolLookupByName", self.ptr, name,
                                                context=(f"failed to get vol '{name}'",)))

    def create_volume_xml(self, xml, prealloc_metadata: bool = False) -> "Volume":
        text = xml.decode() if isinstance(xml, bytes) else xml
        return LibvirtVolume(self.storage, self._call("virStorageVolCreateXML", text, 1 if prealloc_metadata else 0))

    def create_volume_as(self, name, capacity, allocation=None, format=None, backing_path=None,
                         backing_format=None, prealloc_metadata=False) -> "Volume":
        return self.create_volume_xml(volume_xml(name, capacity, allocation, format, backing_path, backing_format),
                                      prealloc_metadata)

    def volume_xml_as(self, name, capacity, allocation=None, format=None, backing_path=None,
                      backing_format=None) -> str:
        return volume_xml(name, capacity, allocation, format, backing_path, backing_format)


class LibvirtVolume(Volume):
    def __init__(self, storage: LibvirtStorage, ptr):
        m = mod()
        self.storage = storage
        self.ptr = ptr
        self.name = m.virStorageVolGetName(ptr)
        self.key = m.virStorageVolGetKey(ptr)
        self.path = m.virStorageVolGetPath(ptr)

    def __repr__(self) -> str:
        return f"<LibvirtVolume {self.path!r}>"

    def _call(self, name: str, *args):
        return call(name, self.ptr, *args)

    def info(self) -> dict:
        kind, capacity, allocation = self._call("virStorageVolGetInfo")
        try:
            physical = self._call("virStorageVolGetInfoFlags", 1)[2]    # VIR_STORAGE_VOL_GET_PHYSICAL
        except Unsupported:
            physical = allocation       # a driver without the flag: what it allocates is what there is
        tree = parse_xml(self.xml())
        fmt = tree.find("target/format")
        backing = tree.find("backingStore")
        bfmt = backing.find("format") if backing is not None else None
        return {"name": self.name, "path": self.path, "key": self.key, "pool": self.pool().name,
                "type": VOL_TYPES[kind] if 0 <= kind < len(VOL_TYPES) else "unknown",
                "format": fmt.get("type") if fmt is not None else None, "capacity": capacity,
                "allocation": allocation, "physical": physical,
                "backing": backing.findtext("path") if backing is not None else None,
                "backing_format": bfmt.get("type") if bfmt is not None else None}

    def pool(self) -> Pool:
        return LibvirtPool(self.storage, self._call("virStoragePoolLookupByVolume"))

    def xml(self) -> str:
        return self._call("virStorageVolGetXMLDesc", 0)

    def delete(self) -> None:
        self._call("virStorageVolDelete", 0)

    def wipe(self, progress=None) -> None:
        self._call("virStorageVolWipe", 0)

    def resize(self, capacity: int, delta: bool = False, shrink: bool = False, allocate: bool = False) -> int:
        flags = (1 if allocate else 0) | (2 if delta else 0) | (4 if shrink else 0)
        self._call("virStorageVolResize", capacity, flags)
        return self._call("virStorageVolGetInfo")[1]

    def clone(self, new_name: str, prealloc_metadata: bool = False, progress=None) -> "Volume":
        from xml.etree import ElementTree

        tree = parse_xml(self.xml())
        tree.find("name").text = new_name
        for tag in ("key", "target/path"):
            el = tree.find(tag)
            if el is not None:
                parent = tree if "/" not in tag else tree.find("target")
                parent.remove(el)
        pool = self.pool()
        ptr = call("virStorageVolCreateXMLFrom", pool.ptr, ElementTree.tostring(tree, encoding="unicode"), self.ptr,
                   1 if prealloc_metadata else 0)
        return LibvirtVolume(self.storage, ptr)

    def upload(self, file: str, offset: int = 0, length: int | None = None, sparse: bool = False,
               progress=None) -> int:
        import os

        try:
            fh = open(file, "rb")
        except OSError as err:
            raise VshError(f"cannot read {file}: {err.strerror}") from None
        with fh:
            total = os.fstat(fh.fileno()).st_size if length is None else min(length, os.fstat(fh.fileno()).st_size)
            stream = call("virStreamNew", self.storage.conn.ptr, 0)
            try:
                call("virStorageVolUpload", self.ptr, stream, offset, total, 0,
                     context=(f"cannot upload to volume {self.name}",))
                done = 0
                if progress is not None:
                    progress.start(total)
                while done < total:
                    data = fh.read(min(_CHUNK, total - done))
                    if not data:
                        break
                    view = memoryview(data)
                    while view:
                        sent = call("virStreamSend", stream, bytes(view))
                        view = view[sent:]
                    done += len(data)
                    if progress is not None:
                        progress.update(done)
                call("virStreamFinish", stream)
            except VshError:
                mod().virStreamAbort(stream)
                raise
            finally:
                mod().virStreamFree(stream)
        if progress is not None:
            progress.finish()
        return done

    def download(self, file: str, offset: int = 0, length: int | None = None, sparse: bool = False,
                 progress=None) -> int:
        import os

        created = not os.path.exists(file)
        try:
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as err:
            raise VshError(f"cannot create {file}: {err.strerror}") from None
        stream = call("virStreamNew", self.storage.conn.ptr, 0)
        done = 0
        try:
            call("virStorageVolDownload", self.ptr, stream, offset, length or 0, 0,
                 context=(f"cannot download from volume {self.name}",))
            if progress is not None:
                progress.start(length)
            while True:
                data = call("virStreamRecv", stream, _CHUNK)
                if not data:
                    break
                if sparse and not data.strip(b"\0"):
                    os.lseek(fd, len(data), os.SEEK_CUR)
                else:
                    os.write(fd, data)
                done += len(data)
                if progress is not None:
                    progress.update(done)
            os.ftruncate(fd, done)
            call("virStreamFinish", stream)
        except VshError:
            mod().virStreamAbort(stream)
            os.close(fd)
            fd = -1
            if created:
                os.unlink(file)
            raise
        finally:
            mod().virStreamFree(stream)
            if fd >= 0:
                os.close(fd)
        if progress is not None:
            progress.finish()
        return done
