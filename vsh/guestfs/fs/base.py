"""The filesystem adapter over a libyal library, and the POSIX family on it (ext2/3/4, xfs).

A :class:`Filesystem` answers node operations (lookup, children, kind, stat,
readlink, read, extents) for one device; the library does the parsing, the
adapter turns its answers into guestfish's and its failures into
:class:`FsError`.  Nodes are looked up by path and kept in a small LRU cache.
"""

from __future__ import annotations

import os
import stat as st
from collections import OrderedDict

from vsh.core.errors import VshError

from ..image import LIB_ERRORS, lib_message
from .paths import join_path, safe_name

_KIND = {st.S_IFDIR: "d", st.S_IFREG: "f", st.S_IFLNK: "l", st.S_IFCHR: "c",
         st.S_IFBLK: "b", st.S_IFIFO: "p", st.S_IFSOCK: "s"}


class FsError(VshError):
    """A filesystem-level failure (unreadable metadata, damaged inode)."""


class Node:
    __slots__ = ("entry", "parts", "kind")

    def __init__(self, entry, parts: tuple, kind: str):
        self.entry = entry
        self.parts = parts
        self.kind = kind


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
    """XFS.  The library reports an extent's start as the raw XFS block number times the block
    size; that number is (allocation group << agblklog) | block within the group, so extents
    outside the first group would point at the wrong bytes.  :meth:`extents` turns them into
    byte offsets on the device from the superblock's geometry."""

    vfs_type = "xfs"
    library = "pyfsxfs"
    root_by_path = True

    def _open(self):
        super()._open()
        sb = self.block.read_exact(128, 0)
        if sb[:4] != b"XFSB":
            raise FsError(f"{self.device.name}: not an XFS superblock")
        self._bsize = int.from_bytes(sb[4:8], "big")
        self._agblocks = int.from_bytes(sb[84:88], "big")
        self._agblklog = sb[124]
        if not self._bsize or not self._agblocks or self._agblocks > 1 << self._agblklog:
            raise FsError(f"{self.device.name}: inconsistent XFS superblock geometry")

    def extents(self, node: Node):
        ext = super().extents(node)
        if ext is None:
            return None
        out, mask = [], (1 << self._agblklog) - 1
        for off, size, flags in ext:
            if not flags & 1:
                fsblock, rest = divmod(off, self._bsize)
                agno, agbno = fsblock >> self._agblklog, fsblock & mask
                if agbno >= self._agblocks:
                    raise FsError(f"{self.device.name}:{join_path(node.parts)}: an extent names block "
                                  f"{agbno} of allocation group {agno}, which has {self._agblocks} blocks")
                off = (agno * self._agblocks + agbno) * self._bsize + rest
            out.append((off, size, flags))
        return out

