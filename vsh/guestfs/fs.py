"""Read-only filesystems inside guest devices, and the tree of mounted ones.

One small adapter per libyal filesystem library - libfsext (ext2/3/4),
libfsxfs (xfs), libfsfat (FAT12/16/32, vfat), libfsntfs (NTFS) - gives the
same node operations: lookup, children, kind, stat, readlink, read.  Bulk
data of ext, xfs and FAT files is read from the file's extents straight off
the device (``pread`` or ``copy_file_range`` on a raw image), which is what
makes ``download`` run at the speed of the disk.

:class:`MountTree` puts filesystems at guest mountpoints and resolves guest
paths component by component.  Symbolic links are followed by vsh (the
libraries do not), always inside the guest's tree: an absolute target
restarts at the guest's ``/`` and ``..`` stops there, so no link can name a
host file.  Guest names are untrusted: they never become host paths except
in :meth:`MountTree.copy_out`, which creates files relative to directory
descriptors it opened itself and refuses names like ``..``.
"""

from __future__ import annotations

import hashlib
import os
import stat as st
from collections import OrderedDict

from vsh.core.errors import InvalidArgument, NotFound, Unsupported, VshError

from .image import LIB_ERRORS, lib_message

CHUNK = 1 << 20
MAX_LINKS = 40
MAX_CAT = 256 << 20
FAST_MIN = 64 << 10
SUPPORTED = ("ext2", "ext3", "ext4", "xfs", "vfat", "msdos", "ntfs")
HASHES = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")

_KIND = {st.S_IFDIR: "d", st.S_IFREG: "f", st.S_IFLNK: "l", st.S_IFCHR: "c",
         st.S_IFBLK: "b", st.S_IFIFO: "p", st.S_IFSOCK: "s"}


class FsError(VshError):
    """A filesystem-level failure (unreadable metadata, damaged inode)."""


def split_path(path: str) -> list[str]:
    """Components of an absolute guest path ('' and '.' dropped, '..' kept)."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidArgument(f"{path!r}: guest paths must be absolute (start with /)")
    if "\0" in path:
        raise InvalidArgument("guest paths cannot contain NUL characters")
    return [p for p in path.split("/") if p not in ("", ".")]


def join_path(parts) -> str:
    return "/" + "/".join(parts)


def safe_name(name: str) -> bool:
    """A single directory-entry name that may become a host file name."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


class Node:
    __slots__ = ("entry", "parts", "kind")

    def __init__(self, entry, parts: tuple, kind: str):
        self.entry = entry
        self.parts = parts
        self.kind = kind


# --- filesystem adapters -------------------------------------------------------


class Filesystem:
    """Base adapter.  *device* is a volumes.Device; ``library`` names the libyal binding
    (a module with a ``volume()`` that opens a file object) that reads the filesystem."""

    vfs_type = ""
    library = ""
    sep = "/"
    fast_read = True
    root_by_path = False        # the library's root entry is the entry of "/"

    def __init__(self, device):
        self.device = device
        self.block = device.block
        self.vol = None
        self._cache: OrderedDict = OrderedDict()
        self._open()
        self.root_node = self._node(self._root_entry(), ())

    def _open(self):
        import importlib

        self.vol = importlib.import_module(self.library).volume()
        self.vol.open_file_object(self.block.fileobj())

    def _root_entry(self):
        if self.root_by_path:
            return self.vol.get_file_entry_by_path("/")
        return self.vol.get_root_directory()

    def _entry_by_path(self, parts):
        return self.vol.get_file_entry_by_path(self.sep + self.sep.join(parts))

    def _kind(self, entry) -> str:
        return _KIND.get(st.S_IFMT(entry.get_file_mode() or 0), "?")

    def _names(self, entry) -> list[str]:
        return [entry.get_sub_file_entry(i).get_name() for i in range(entry.get_number_of_sub_file_entries())]

    # common
    def _fail(self, what: str, parts, e: BaseException):
        raise FsError(f"{self.device.name}:{join_path(parts)}: cannot {what}: {lib_message(e)}") from None

    def _node(self, entry, parts) -> Node:
        return Node(entry, tuple(parts), self._kind(entry))

    def root(self) -> Node:
        return self.root_node

    def lookup(self, parent: Node, name: str) -> Node | None:
        parts = parent.parts + (name,)
        node = self._cache.get(parts)
        if node is not None:
            self._cache.move_to_end(parts)
            return node
        if not safe_name(name) or (self.sep != "/" and self.sep in name):
            return None
        try:
            entry = self._entry_by_path(parts)
        except LIB_ERRORS as e:
            self._fail("look up", parts, e)
        if entry is None:
            return None
        try:
            node = self._node(entry, parts)
        except LIB_ERRORS as e:
            self._fail("read the inode of", parts, e)
        self._cache[parts] = node
        if len(self._cache) > 4096:
            self._cache.popitem(last=False)
        return node

    def children(self, node: Node) -> list[str]:
        try:
            names = self._names(node.entry)
        except LIB_ERRORS as e:
            self._fail("list", node.parts, e)
        return [n for n in names if n is not None and n not in (".", "..")]

    def readlink(self, node: Node) -> str:
        try:
            t = node.entry.get_symbolic_link_target()
        except LIB_ERRORS as e:
            self._fail("read the link", node.parts, e)
        return t or ""

    def ident(self, node: Node) -> int:
        return node.entry.get_inode_number()

    def size(self, node: Node) -> int:
        try:
            return node.entry.get_size() or 0
        except LIB_ERRORS as e:
            self._fail("read the size of", node.parts, e)

    def stat(self, node: Node) -> dict:
        e = node.entry
        try:
            mode = e.get_file_mode() or 0
            size = e.get_size() or 0
            dev = e.get_device_number() if node.kind in ("c", "b") else None
            times = {k: self._time(getattr(e, f"get_{k}_as_integer")) for k in
                     ("access_time", "modification_time", "inode_change_time")}
            out = {
                "st_dev": 0, "st_ino": e.get_inode_number(), "st_mode": mode,
                "st_nlink": e.get_number_of_links() or 1,
                "st_uid": e.get_owner_identifier() or 0, "st_gid": e.get_group_identifier() or 0,
                "st_rdev": os.makedev(*dev) if dev else 0, "st_size": size,
                "st_blksize": 4096, "st_blocks": (self.allocated(node) + 511) // 512,
            }
        except LIB_ERRORS as ex:
            self._fail("stat", node.parts, ex)
        for src, dst in (("access_time", "st_atime"), ("modification_time", "st_mtime"),
                         ("inode_change_time", "st_ctime")):
            ns = times[src]
            out[dst + "_sec"], out[dst + "_nsec"] = divmod(ns, 1_000_000_000)
        return out

    @staticmethod
    def _time(getter) -> int:
        try:
            v = getter()
        except LIB_ERRORS:
            return 0
        return int(v or 0)

    def extents(self, node: Node):
        """[(device_offset, size, sparse)] covering the file in order, or None."""
        e = node.entry
        try:
            n = e.get_number_of_extents()
            return [e.get_extent(i) for i in range(n)]
        except LIB_ERRORS:
            return None

    def allocated(self, node: Node) -> int:
        if node.kind != "f":
            return 4096 if node.kind == "d" else 0
        ext = self.extents(node)
        if ext is None:
            return (self.size(node) + 4095) // 4096 * 4096
        return sum(size for _off, size, flags in ext if not flags & 1)

    def read_lib(self, node: Node, offset: int, length: int) -> bytes:
        try:
            return node.entry.read_buffer_at_offset(length, offset)
        except LIB_ERRORS as e:
            self._fail("read", node.parts, e)

    def close(self):
        try:
            if self.vol is not None:
                self.vol.close()
        except Exception:  # noqa: BLE001
            pass
        self.vol = None
        self._cache.clear()


class ExtFilesystem(Filesystem):
    vfs_type = "ext4"
    library = "pyfsext"
    root_by_path = True


class XfsFilesystem(Filesystem):
    vfs_type = "xfs"
    library = "pyfsxfs"
    root_by_path = True


class FatFilesystem(Filesystem):
    vfs_type = "vfat"
    library = "pyfsfat"
    sep = "\\"

    def _kind(self, entry) -> str:
        return "d" if (entry.get_file_attribute_flags() or 0) & 0x10 or not entry.get_name() else "f"

    def ident(self, node: Node) -> int:
        return node.entry.get_identifier() or 0

    def readlink(self, node: Node) -> str:
        return ""

    def stat(self, node: Node) -> dict:
        e = node.entry
        mode = (st.S_IFDIR if node.kind == "d" else st.S_IFREG) | 0o755
        out = {"st_dev": 0, "st_ino": self.ident(node), "st_mode": mode, "st_nlink": 1,
               "st_uid": 0, "st_gid": 0, "st_rdev": 0,
               "st_size": 0 if node.kind == "d" else self.size(node),
               "st_blksize": 4096, "st_blocks": (self.allocated(node) + 511) // 512}
        for src, dst in (("access_time", "st_atime"), ("modification_time", "st_mtime"),
                         ("modification_time", "st_ctime")):
            try:
                dt = getattr(e, f"get_{src}")()
                secs = int(dt.replace(tzinfo=__import__("datetime").timezone.utc).timestamp()) if dt else 0
                ns = dt.microsecond * 1000 if dt else 0
            except (*LIB_ERRORS, AttributeError):
                secs, ns = 0, 0
            out[dst + "_sec"], out[dst + "_nsec"] = secs, ns
        return out


class NtfsFilesystem(Filesystem):
    vfs_type = "ntfs"
    library = "pyfsntfs"
    sep = "\\"
    fast_read = False
    _HIDDEN = {"$MFT", "$MFTMirr", "$LogFile", "$Volume", "$AttrDef", "$Bitmap", "$Boot",
               "$BadClus", "$Secure", "$UpCase", "$Extend"}

    def _kind(self, entry) -> str:
        try:
            if entry.get_symbolic_link_target():
                return "l"
        except LIB_ERRORS:
            pass
        return "d" if entry.has_directory_entries_index() else "f"

    def children(self, node: Node) -> list[str]:
        names = super().children(node)
        if not node.parts:
            names = [n for n in names if n not in self._HIDDEN]
        return sorted(set(names))

    def ident(self, node: Node) -> int:
        return (node.entry.get_file_reference() or 0) & 0xFFFFFFFFFFFF

    def stat(self, node: Node) -> dict:
        e = node.entry
        mode = {"d": st.S_IFDIR, "l": st.S_IFLNK}.get(node.kind, st.S_IFREG) | 0o777
        out = {"st_dev": 0, "st_ino": self.ident(node), "st_mode": mode, "st_nlink": 1,
               "st_uid": 0, "st_gid": 0, "st_rdev": 0,
               "st_size": self.size(node) if node.kind == "f" else 0,
               "st_blksize": 4096, "st_blocks": (self.allocated(node) + 511) // 512}
        for src, dst in (("access_time", "st_atime"), ("modification_time", "st_mtime"),
                         ("entry_modification_time", "st_ctime")):
            try:
                v = int(getattr(e, f"get_{src}_as_integer")() or 0)  # FILETIME, 100 ns since 1601
                secs, rem = divmod(v - 116444736000000000, 10_000_000)
                out[dst + "_sec"], out[dst + "_nsec"] = (secs, rem * 100) if v else (0, 0)
            except LIB_ERRORS:
                out[dst + "_sec"], out[dst + "_nsec"] = 0, 0
        return out


_ADAPTERS = {"ext2": ExtFilesystem, "ext3": ExtFilesystem, "ext4": ExtFilesystem,
             "xfs": XfsFilesystem, "vfat": FatFilesystem, "msdos": FatFilesystem,
             "ntfs": NtfsFilesystem}


def open_filesystem(device) -> Filesystem:
    """Open the filesystem on *device* (a volumes.Device) read-only."""
    if getattr(device.block, "beyond_end", False):
        raise VshError(f"{device.name}: the partition extends past the end of the disk "
                       f"(a truncated image or a damaged partition table)")
    t = device.vfs_type
    cls = _ADAPTERS.get(t)
    if cls is None:
        if not t:
            raise VshError(f"{device.name}: no filesystem was recognised on this device")
        if t in ("swap", "LVM2_member", "crypto_LUKS"):
            raise InvalidArgument(f"{device.name}: is {t}, not a filesystem that can be mounted")
        raise Unsupported(f"{device.name}: {t} filesystems need the appliance backend (not readable in-process)")
    try:
        fs = cls(device)
    except LIB_ERRORS as e:
        raise FsError(f"{device.name}: cannot open the {t} filesystem: {lib_message(e)}") from None
    fs.vfs_type = t
    return fs


# --- the mounted tree -------------------------------------------------------------


class MountTree:
    """Filesystems mounted at guest paths; path operations on the result."""

    def __init__(self):
        self.mounts: dict[tuple, Filesystem] = {}

    # mounting
    def mount(self, fs: Filesystem, mountpoint: str) -> None:
        parts = tuple(split_path(mountpoint))
        if ".." in parts:
            raise InvalidArgument(f"{mountpoint}: mountpoints cannot contain '..'")
        if parts in self.mounts:
            raise InvalidArgument(f"{join_path(parts)}: something is already mounted here")
        if parts:
            if () not in self.mounts:
                raise InvalidArgument(f"{join_path(parts)}: mount something on / first")
            _fs, node, _p = self.resolve(join_path(parts))
            if node.kind != "d":
                raise InvalidArgument(f"{join_path(parts)}: mountpoint is not a directory")
        self.mounts[parts] = fs

    def umount(self, target: str) -> Filesystem:
        """Unmount by mountpoint or by device name."""
        for parts, fs in list(self.mounts.items()):
            if fs.device.name == target or (target.startswith("/") and not target.startswith("/dev/")
                                              and parts == tuple(split_path(target))):
                below = [p for p in self.mounts if len(p) > len(parts) and p[:len(parts)] == parts]
                if below:
                    raise InvalidArgument(f"{join_path(parts)}: {join_path(below[0])} is mounted below it")
                del self.mounts[parts]
                return fs
        raise NotFound(f"{target}: not mounted")

    def umount_all(self) -> list[Filesystem]:
        out = list(self.mounts.values())
        self.mounts.clear()
        return out

    def mountpoints(self) -> dict[str, str]:
        return {join_path(p): fs.device.name for p, fs in sorted(self.mounts.items())}

    # resolution
    def resolve(self, path: str, follow: bool = True):
        """(filesystem, node, guest path parts) for *path*."""
        if () not in self.mounts:
            raise InvalidArgument("no filesystem is mounted on /", hint="mount one first (mount-ro DEVICE /) or use -i")
        todo = split_path(path)
        root_fs = self.mounts[()]
        stack = [(root_fs, root_fs.root(), ())]
        links = 0
        while todo:
            comp = todo.pop(0)
            if comp in ("", "."):
                continue
            if comp == "..":
                if len(stack) > 1:
                    stack.pop()
                continue
            fs, node, gparts = stack[-1]
            if node.kind != "d":
                raise InvalidArgument(f"{join_path(gparts)}: not a directory")
            nparts = gparts + (comp,)
            mfs = self.mounts.get(nparts)
            if mfs is not None:
                stack.append((mfs, mfs.root(), nparts))
                continue
            child = fs.lookup(node, comp)
            if child is None:
                raise NotFound(f"{join_path(nparts)}: no such file or directory")
            if child.kind == "l" and (follow or todo):
                links += 1
                if links > MAX_LINKS:
                    raise VshError(f"{path}: too many levels of symbolic links")
                target = fs.readlink(child)
                if not target:
                    raise NotFound(f"{join_path(nparts)}: empty symbolic link")
                if target.startswith("/"):
                    del stack[1:]
                todo[:0] = [p for p in target.split("/") if p not in ("", ".")]
                continue
            stack.append((fs, child, nparts))
        return stack[-1]

    def realpath(self, path: str) -> str:
        return join_path(self.resolve(path)[2])

    # queries
    def exists(self, path: str) -> bool:
        try:
            self.resolve(path)
            return True
        except (NotFound, InvalidArgument):
            return False
        except VshError:
            return False

    def is_kind(self, path: str, kind: str, follow: bool = True) -> bool:
        try:
            return self.resolve(path, follow)[1].kind == kind
        except VshError:
            return False

    def listdir(self, path: str) -> list[str]:
        fs, node, gparts = self.resolve(path)
        if node.kind != "d":
            raise InvalidArgument(f"{path}: not a directory")
        return sorted(fs.children(node))

    def stat(self, path: str, follow: bool = True) -> dict:
        fs, node, _ = self.resolve(path, follow)
        return fs.stat(node)

    def readlink(self, path: str) -> str:
        fs, node, _ = self.resolve(path, follow=False)
        if node.kind != "l":
            raise InvalidArgument(f"{path}: not a symbolic link")
        return fs.readlink(node)

    def ll(self, path: str) -> list[dict]:
        """Rows of a long listing: name, stat, link target."""
        fs, node, gparts = self.resolve(path)
        if node.kind != "d":
            names = [None]
        else:
            names = sorted(fs.children(node))
        rows = []
        for name in names:
            if name is None:
                cfs, child = fs, node
                shown = join_path(gparts)
            else:
                shown = name
                nparts = gparts + (name,)
                if nparts in self.mounts:
                    cfs, child = self.mounts[nparts], self.mounts[nparts].root()
                else:
                    cfs, child = fs, fs.lookup(node, name)
                if child is None:
                    continue
            row = {"name": shown, **cfs.stat(child)}
            row["target"] = cfs.readlink(child) if child.kind == "l" else None
            rows.append(row)
        return rows

    # data
    def _file(self, path: str, *, max_size: int | None = None, force: bool = False):
        fs, node, gparts = self.resolve(path)
        if node.kind == "d":
            raise InvalidArgument(f"{path}: is a directory")
        if node.kind != "f":
            raise InvalidArgument(f"{path}: is not a regular file")
        size = fs.size(node)
        if not force and size > max(fs.block.size, 1 << 30):
            raise FsError(
                f"{path}: the inode claims {size} bytes, more than its whole "
                f"{fs.block.size}-byte filesystem: damaged or hostile metadata; refusing to read it")
        if max_size is not None and size > max_size:
            raise InvalidArgument(f"{path}: is {size} bytes, more than {max_size} bytes", hint="use download")
        return fs, node, size

    def _mapping(self, fs: Filesystem, node: Node, size: int):
        """Extents as [(file_offset, device_offset, length, sparse)], or None to use the library."""
        if not fs.fast_read or size < FAST_MIN:
            return None
        ext = fs.extents(node)
        if not ext:
            return None
        out, pos, dev_size = [], 0, fs.block.size
        for off, length, flags in ext:
            if flags & ~1 or length <= 0:
                return None
            sparse = bool(flags & 1)
            if not sparse and (off < 0 or off + length > dev_size):
                raise FsError(f"{fs.device.name}:{join_path(node.parts)}: an extent points past the end of the filesystem")
            out.append((pos, off, length, sparse))
            pos += length
            if pos >= size:
                break
        if pos < size:
            return None
        return out

    def iter_read(self, path: str, offset: int = 0, length: int | None = None, *, force: bool = False,
                  chunk: int = CHUNK):
        """Yield the bytes of a guest file in chunks (streaming)."""
        fs, node, size = self._file(path, force=force)
        end = size if length is None else min(size, offset + max(0, length))
        yield from self._iter(fs, node, size, offset, end, chunk)

    def _iter(self, fs, node, size, offset, end, chunk):
        mapping = self._mapping(fs, node, size)
        pos = offset
        if mapping is None:
            while pos < end:
                n = min(chunk, end - pos)
                data = fs.read_lib(node, pos, n)
                if len(data) != n:
                    raise FsError(f"{fs.device.name}:{join_path(node.parts)}: short read at offset {pos}")
                yield data
                pos += n
            return
        for fstart, dev_off, length, sparse in mapping:
            if fstart + length <= pos:
                continue
            while pos < end and pos < fstart + length:
                n = min(chunk, end - pos, fstart + length - pos)
                yield bytes(n) if sparse else fs.block.read_exact(n, dev_off + pos - fstart)
                pos += n
            if pos >= end:
                break

    def read(self, path: str, max_size: int = MAX_CAT) -> bytes:
        fs, node, size = self._file(path, max_size=max_size)
        return b"".join(self._iter(fs, node, size, 0, size, CHUNK))

    def copy_to_fd(self, path: str, out_fd: int, *, force: bool = False) -> int:
        """Write the whole file to *out_fd*; returns the number of bytes."""
        fs, node, size = self._file(path, force=force)
        mapping = self._mapping(fs, node, size)
        direct = fs.block.direct()
        if mapping is not None and direct is not None:
            src_fd, base = direct
            pos = 0
            for fstart, dev_off, length, sparse in mapping:
                n = min(length, size - fstart)
                if n <= 0:
                    break
                if sparse:
                    _write_zeros(out_fd, n)
                else:
                    _copy_range(src_fd, base + dev_off, out_fd, n)
                pos += n
            return pos
        total = 0
        for data in self._iter(fs, node, size, 0, size, CHUNK):
            _write_all(out_fd, data)
            total += len(data)
        return total

    def checksum(self, kind: str, path: str) -> str:
        kind = kind.lower()
        if kind not in HASHES:
            raise InvalidArgument(f"unknown checksum type {kind!r} (known: {', '.join(HASHES)})")
        h = hashlib.new(kind)
        for data in self.iter_read(path):
            h.update(data)
        return h.hexdigest()

    def head(self, path: str, n: int = 10) -> list[str]:
        lines: list[bytes] = []
        buf = b""
        for data in self.iter_read(path, chunk=64 << 10):
            buf += data
            parts = buf.split(b"\n")
            buf = parts.pop()
            lines.extend(parts)
            if len(lines) >= n:
                break
        if len(lines) < n and buf:
            lines.append(buf)
        return [ln.decode("utf-8", "replace") for ln in lines[:n]]

    def tail(self, path: str, n: int = 10) -> list[str]:
        fs, node, size = self._file(path)
        data = b""
        pos = size
        step = 64 << 10
        while pos > 0 and data.count(b"\n") <= n:
            start = max(0, pos - step)
            data = b"".join(self._iter(fs, node, size, start, pos, step)) + data
            pos = start
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        return [ln.decode("utf-8", "replace") for ln in lines[-n:]] if n else []

    def walk(self, path: str, follow_root: bool = True):
        """Yield (relative path, fs, node) for everything under *path* (not following links).

        A directory that contains itself (a hard-linked directory loop on a damaged
        filesystem) raises a VshError instead of recursing for ever.
        """
        fs, node, gparts = self.resolve(path, follow_root)
        if node.kind != "d":
            raise InvalidArgument(f"{path}: not a directory")
        active = {(id(fs), fs.ident(node))}
        yield from self._walk(fs, node, gparts, "", active)

    def _walk(self, fs, node, gparts, rel, active):
        for name in sorted(fs.children(node)):
            nparts = gparts + (name,)
            crel = f"{rel}/{name}" if rel else name
            if nparts in self.mounts:
                cfs = self.mounts[nparts]
                child = cfs.root()
            else:
                cfs, child = fs, fs.lookup(node, name)
                if child is None:
                    continue
            yield crel, cfs, child
            if child.kind == "d":
                key = (id(cfs), cfs.ident(child))
                if key in active:
                    raise FsError(f"{join_path(nparts)}: directory loop (this directory contains itself); "
                                  "the filesystem is damaged")
                active.add(key)
                try:
                    yield from self._walk(cfs, child, nparts, crel, active)
                finally:
                    active.discard(key)

    def find(self, path: str) -> list[str]:
        return [rel for rel, _fs, _node in self.walk(path)]

    def du(self, path: str) -> int:
        """Disk usage in KiB (like ``du -s``; hard links counted once)."""
        fs, node, _ = self.resolve(path)
        seen = set()
        total = fs.allocated(node)
        if node.kind == "d":
            for _rel, cfs, child in self.walk(path):
                key = (id(cfs), cfs.ident(child))
                if child.kind != "d" and key in seen:
                    continue
                seen.add(key)
                total += cfs.allocated(child)
        return (total + 1023) // 1024

    def copy_out(self, path: str, localdir: str) -> list[str]:
        """Copy a guest file or directory tree into the host directory *localdir*.

        Returns warnings (skipped special files, unsafe names).
        """
        warnings: list[str] = []
        fs, node, gparts = self.resolve(path)
        try:
            dfd = os.open(localdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise VshError(f"{localdir}: {e.strerror}") from None
        try:
            name = gparts[-1] if gparts else None
            if node.kind == "d":
                if name is not None:
                    os.mkdir(name, 0o700, dir_fd=dfd)
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                else:
                    sub = os.dup(dfd)
                try:
                    self._copy_dir(fs, node, gparts, sub, warnings, {(id(fs), fs.ident(node))})
                finally:
                    os.close(sub)
                if name is not None:
                    os.chmod(name, fs.stat(node)["st_mode"] & 0o777 | 0o700, dir_fd=dfd, follow_symlinks=False)
            else:
                self._copy_entry(fs, node, gparts, name, dfd, warnings, set())
        except FileExistsError as e:
            raise VshError(f"{localdir}: {e.filename or 'target'} already exists") from None
        finally:
            os.close(dfd)
        return warnings

    def _copy_dir(self, fs, node, gparts, dfd, warnings, active):
        for name in sorted(fs.children(node)):
            nparts = gparts + (name,)
            if not safe_name(name):
                warnings.append(f"{join_path(nparts)}: unsafe name, skipped")
                continue
            if nparts in self.mounts:
                cfs = self.mounts[nparts]
                child = cfs.root()
            else:
                cfs, child = fs, fs.lookup(node, name)
                if child is None:
                    continue
            self._copy_entry(cfs, child, nparts, name, dfd, warnings, active)

    def _copy_entry(self, fs, node, gparts, name, dfd, warnings, active):
        if node.kind == "d":
            key = (id(fs), fs.ident(node))
            if key in active:
                raise FsError(f"{join_path(gparts)}: directory loop (this directory contains itself)")
            os.mkdir(name, 0o700, dir_fd=dfd)
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            active.add(key)
            try:
                self._copy_dir(fs, node, gparts, sub, warnings, active)
            finally:
                active.discard(key)
                os.close(sub)
            os.chmod(name, fs.stat(node)["st_mode"] & 0o777 | 0o700, dir_fd=dfd, follow_symlinks=False)
        elif node.kind == "l":
            os.symlink(fs.readlink(node), name, dir_fd=dfd)
        elif node.kind == "f":
            mode = fs.stat(node)["st_mode"] & 0o777
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o600, dir_fd=dfd)
            try:
                size = fs.size(node)
                for data in self._iter(fs, node, size, 0, size, CHUNK):
                    _write_all(out, data)
                os.fchmod(out, mode)
            finally:
                os.close(out)
        else:
            warnings.append(f"{join_path(gparts)}: special file ({node.kind}), skipped")

    def close(self):
        for fs in self.umount_all():
            fs.close()


# --- helpers ----------------------------------------------------------------------


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _write_zeros(fd: int, n: int) -> None:
    try:
        os.lseek(fd, n, os.SEEK_CUR)  # leave a hole on a regular file
        os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR))
        return
    except OSError:
        pass
    zero = bytes(min(n, CHUNK))
    while n > 0:
        k = min(n, len(zero))
        _write_all(fd, zero[:k])
        n -= k


def _copy_range(src_fd: int, src_off: int, out_fd: int, n: int) -> None:
    """Copy n bytes from src_fd at src_off to out_fd's position."""
    while n > 0:
        try:
            k = os.copy_file_range(src_fd, out_fd, min(n, 1 << 30), src_off)
        except OSError:
            k = -1
        if k <= 0:
            break
        src_off += k
        n -= k
    while n > 0:
        data = os.pread(src_fd, min(n, CHUNK), src_off)
        if not data:
            raise VshError("the disk image is shorter than its filesystem says (truncated image?)")
        _write_all(out_fd, data)
        src_off += len(data)
        n -= len(data)
