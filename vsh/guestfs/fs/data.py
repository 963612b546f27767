"""File data in the mounted tree: read, stream, checksum, head and tail, and copies to the host.

A file's bytes come from its extents straight off the device when the
filesystem gives them (``copy_file_range`` into a host file when the image
is raw), from the library otherwise.  ``copy_out`` is the only place where
guest names become host names: relative to directory descriptors it opened,
``O_NOFOLLOW`` and ``O_EXCL``, unsafe names skipped.
"""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, VshError

from .base import Filesystem, FsError, Node
from .paths import join_path, safe_name

CHUNK = 1 << 20
MAX_CAT = 256 << 20
FAST_MIN = 64 << 10
HASHES = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")


class TreeData:
    """The data half of :class:`~.tree.MountTree` (which provides ``resolve`` and ``child``)."""

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
            write_all(out_fd, data)
            total += len(data)
        return total

    def checksum(self, kind: str, path: str) -> str:
        kind = kind.lower()
        if kind not in HASHES:
            raise InvalidArgument(f"unknown checksum type {kind!r} (known: {', '.join(HASHES)})")
        import hashlib

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
            cfs, child = self.child(fs, node, nparts)
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
                    write_all(out, data)
                os.fchmod(out, mode)
            finally:
                os.close(out)
        else:
            warnings.append(f"{join_path(gparts)}: special file ({node.kind}), skipped")


# --- helpers ----------------------------------------------------------------------


def write_all(fd: int, data) -> None:
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
        write_all(fd, zero[:k])
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
        write_all(out_fd, data)
        src_off += len(data)
        n -= len(data)
