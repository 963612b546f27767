"""The mounted tree: filesystems at guest mountpoints, and guest paths resolved across them.

:meth:`MountTree.resolve` walks a path component by component, crossing
mountpoints and following symbolic links inside the guest (at most
``MAX_LINKS``); the queries (``exists``, ``ls``, ``stat``, ``find``, ``du``...)
are built on it, and the file data operations come from
:class:`~.data.TreeData`.
"""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, NotFound, VshError

from .base import Filesystem, FsError
from .data import TreeData
from .paths import join_path, split_path

MAX_LINKS = 40


class MountTree(TreeData):
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
                cfs, child = self.child(fs, node, gparts + (name,))
                if child is None:
                    continue
            row = {"name": shown, **cfs.stat(child)}
            row["target"] = cfs.readlink(child) if child.kind == "l" else None
            rows.append(row)
        return rows

    def child(self, fs: Filesystem, node, parts: tuple):
        """(filesystem, node) of the entry ``parts[-1]`` of the directory ``node`` (at ``parts[:-1]``
        on ``fs``): the root of what is mounted there, if anything; node None when it is gone."""
        mounted = self.mounts.get(parts)
        if mounted is not None:
            return mounted, mounted.root()
        return fs, fs.lookup(node, parts[-1])

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
            cfs, child = self.child(fs, node, nparts)
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

    def close(self):
        for fs in self.umount_all():
            fs.close()
