"""What is done with the volumes of a pool: create (raw by hand, qcow2 with qemu-img), clone,
delete, resize, wipe, upload and download.

A new volume is made under a hidden temporary name in the pool directory and
hard-linked to its name, which never replaces an existing file; an interrupted
create leaves nothing behind (pool-refresh removes what a killed one left).
"""

from __future__ import annotations

import os
import stat as _stat

from vsh.core import qemuimg
from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, Unsupported, VshError
from vsh.core.pools.definitions import PoolStore
from vsh.core.pools.model import CREATE_FORMATS, Pool, check_volume_name
from vsh.core.pools.volumes import Volume, VolumeSpec
from vsh.core.sparsecopy import copy_data, data_segments
from vsh.core.store import fsync_dir, remove_file


class Pools(PoolStore):
    """The pools of one store, and what can be done with them and their volumes."""

    def _temp(self, pool: Pool) -> str:
        """A new empty private file in the pool directory, hidden from listings."""
        while True:
            path = os.path.join(pool.target, f".vsh-tmp-{os.getpid()}-{os.urandom(6).hex()}")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                continue
            except OSError as exc:
                raise VshError(f"cannot create a file in '{pool.target}': {exc.strerror}") from None
            os.close(fd)
            return path

    @staticmethod
    def _publish(tmp: str, final: str, name: str) -> None:
        """Give the finished temporary file its name, never replacing an existing file."""
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise OperationInvalid(f"operation failed: storage vol '{name}' already exists") from None
        except OSError:
            # a filesystem without hard links: the check and the rename are two steps there
            if os.path.lexists(final):
                raise OperationInvalid(f"operation failed: storage vol '{name}' already exists") from None
            os.rename(tmp, final)
        remove_file(tmp)
        fsync_dir(os.path.dirname(final))

    def create(self, pool: Pool, spec: VolumeSpec, prealloc_metadata: bool = False,
               progress_fd: int | None = None) -> Volume:
        """Create a volume (raw by hand, qcow2 with qemu-img); the new Volume."""
        self.require_active(pool)
        check_volume_name(spec.name)
        fmt = spec.format
        if fmt not in CREATE_FORMATS:
            raise Unsupported(f"unsupported configuration: vsh creates volumes in the formats "
                              f"{', '.join(CREATE_FORMATS)}, not '{fmt}'")
        if spec.capacity < 0 or (spec.allocation is not None and spec.allocation < 0):
            raise InvalidArgument("volume sizes must not be negative")
        final = os.path.join(pool.target, spec.name)
        if os.path.lexists(final):
            raise OperationInvalid(f"operation failed: storage vol '{spec.name}' already exists")
        backing = None
        if spec.backing_path:
            if fmt != "qcow2":
                raise Unsupported(f"unsupported configuration: a backing volume needs the format qcow2, not '{fmt}'")
            if not spec.backing_format:
                raise InvalidArgument("a backing volume needs its format (--backing-vol-format): "
                                      "vsh never probes a backing file's format")
            if spec.backing_format not in CREATE_FORMATS:
                raise Unsupported(f"unsupported configuration: backing format '{spec.backing_format}' "
                                  f"(vsh uses {', '.join(CREATE_FORMATS)})")
            backing = self.volume_by_path(spec.backing_path)
            if backing is None:
                raise NotFound(f"backing volume '{spec.backing_path}' is not a volume of an active pool")
            self.check_chain(backing.path, spec.backing_format)
        tmp = self._temp(pool)
        try:
            if fmt == "raw":
                _create_raw(tmp, spec.capacity, spec.capacity if spec.allocation is None else spec.allocation)
            else:
                args = ["create", "-q", "-f", "qcow2"]
                opts = []
                if spec.allocation is not None and spec.allocation >= spec.capacity > 0:
                    opts.append("preallocation=falloc")
                elif prealloc_metadata:
                    opts.append("preallocation=metadata")
                if opts:
                    args += ["-o", ",".join(opts)]
                if backing is not None:
                    args += ["-b", backing.path, "-F", spec.backing_format]
                qemuimg.qemu_img(args + [tmp, str(spec.capacity)])
            self._publish(tmp, final, spec.name)
        finally:
            remove_file(tmp)
        return self.volume(pool, spec.name)

    def clone(self, vol: Volume, new_name: str, prealloc_metadata: bool = False,
              progress_fd: int | None = None) -> Volume:
        """A copy of ``vol`` in its pool (``qemu-img convert`` with explicit formats).

        A qcow2 overlay keeps its backing file: only its own data is copied.
        """
        pool = vol.pool
        self.require_active(pool)
        check_volume_name(new_name)
        final = os.path.join(pool.target, new_name)
        if os.path.lexists(final):
            raise OperationInvalid(f"operation failed: storage vol '{new_name}' already exists")
        if vol.type != "file":
            raise Unsupported(f"cannot clone volume '{vol.name}' of type '{vol.type}'")
        fmt = vol.qemu_format()
        self.check_chain(vol.path, fmt)
        args = ["convert", "-f", fmt, "-O", fmt]
        if fmt == "qcow2" and vol.backing:
            args += ["-B", vol.backing, "-F", vol.backing_format]
        if prealloc_metadata and fmt == "qcow2":
            args += ["-o", "preallocation=metadata"]
        args.append("-p" if progress_fd is not None else "-q")
        tmp = self._temp(pool)
        try:
            qemuimg.qemu_img(args + [vol.path, tmp], progress_fd=progress_fd)
            os.chmod(tmp, 0o600)
            self._publish(tmp, final, new_name)
        finally:
            remove_file(tmp)
        return self.volume(pool, new_name)

    def delete(self, vol: Volume) -> None:
        try:
            if vol.type == "dir":
                os.rmdir(vol.path)
            else:
                os.unlink(vol.path)
        except OSError as exc:
            raise VshError(f"cannot remove '{vol.path}': {exc.strerror}") from None
        fsync_dir(vol.pool.target)

    def resize(self, vol: Volume, capacity: int, shrink: bool = False, allocate: bool = False) -> None:
        """``qemu-img resize -f FMT`` to ``capacity`` bytes."""
        if vol.type != "file":
            raise Unsupported(f"cannot resize volume '{vol.name}' of type '{vol.type}'")
        fmt = vol.qemu_format()
        current = vol.capacity
        if capacity < current and not shrink:
            raise InvalidArgument("invalid argument: Can't shrink capacity below current capacity unless "
                                  "shrink flag explicitly specified")
        if shrink and capacity > current:
            raise InvalidArgument("invalid argument: Can't expand capacity with the shrink flag")
        self.check_chain(vol.path, fmt)
        args = ["resize", "-q", "-f", fmt]
        if allocate and capacity > current:
            args.append("--preallocation=falloc")
        if shrink:
            args.append("--shrink")
        qemuimg.qemu_img(args + [vol.path, str(capacity)])

    def wipe(self, vol: Volume, progress=None) -> None:
        """Zero the volume's data: raw data extents are overwritten with zeroes; a qcow2
        volume is made again empty (same size, cluster size, compat and backing file)."""
        if vol.type == "dir":
            raise Unsupported(f"cannot wipe volume '{vol.name}' of type 'dir'")
        hdr = vol.header if vol.format == "qcow2" else None
        if hdr is not None:
            self.check_chain(vol.path, "qcow2")
            args = ["create", "-q", "-f", "qcow2", "-o", f"cluster_size={1 << hdr.cluster_bits},compat={hdr.compat}"]
            if vol.backing:
                args += ["-b", vol.backing, "-F", vol.backing_format]
            tmp = self._temp(vol.pool)
            try:
                qemuimg.qemu_img(args + [tmp, str(hdr.size)])
                os.chmod(tmp, _stat.S_IMODE(vol.st.st_mode))
                os.rename(tmp, vol.path)
                fsync_dir(vol.pool.target)
            finally:
                remove_file(tmp)
            return
        fd = _open_volume(vol, os.O_WRONLY)
        try:
            size = vol.st.st_size if vol.type == "file" else os.lseek(fd, 0, os.SEEK_END)
            segments = list(data_segments(fd, 0, size))
            total = sum(end - start for start, end in segments)
            if progress is not None:
                progress.start(total)
            zeros = bytes(4 << 20)
            view = memoryview(zeros)
            done = 0
            for start, end in segments:
                pos = start
                while pos < end:
                    n = os.pwrite(fd, view[:min(len(zeros), end - pos)], pos)
                    pos += n
                    done += n
                    if progress is not None:
                        progress.update(done)
            os.fsync(fd)
        except OSError as exc:
            raise VshError(f"cannot write to '{vol.path}': {exc.strerror}") from None
        finally:
            os.close(fd)
            if progress is not None:
                progress.finish()

    def upload(self, vol: Volume, file: str, offset: int = 0, length: int | None = None,
               sparse: bool = False, progress=None) -> int:
        """Copy ``file`` into the volume at ``offset`` (the volume is not truncated); bytes copied."""
        if vol.type == "dir":
            raise Unsupported(f"cannot upload to volume '{vol.name}' of type 'dir'")
        try:
            src = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise VshError(f"cannot read {file}: {exc.strerror}") from None
        try:
            dst = _open_volume(vol, os.O_WRONLY)
            try:
                done = copy_data(src, dst, 0, offset, length, sparse=sparse, punch=True, progress=progress)
            except OSError as exc:
                raise VshError(f"cannot send data to volume {vol.name}: {exc.strerror}") from None
            finally:
                os.close(dst)
        finally:
            os.close(src)
        return done

    def download(self, vol: Volume, file: str, offset: int = 0, length: int | None = None,
                 sparse: bool = False, progress=None) -> int:
        """Copy the volume (from ``offset``) into ``file``, made 0600 if new; bytes copied."""
        if vol.type == "dir":
            raise Unsupported(f"cannot download from volume '{vol.name}' of type 'dir'")
        src = _open_volume(vol, os.O_RDONLY)
        created = False
        try:
            try:
                dst = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                created = True
            except FileExistsError:
                try:
                    dst = os.open(file, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
                except OSError as exc:
                    raise VshError(f"cannot create {file}: {exc.strerror}") from None
            except OSError as exc:
                raise VshError(f"cannot create {file}: {exc.strerror}") from None
            ok = False
            try:
                done = copy_data(src, dst, offset, 0, length, sparse=sparse, punch=False, progress=progress)
                ok = True
            except OSError as exc:
                raise VshError(f"cannot receive data from volume {vol.name}: {exc.strerror}") from None
            finally:
                os.close(dst)
                if not ok and created:
                    remove_file(file)
        finally:
            os.close(src)
        return done


def _open_volume(vol: Volume, flags: int) -> int:
    try:
        return os.open(vol.path, flags | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        raise VshError(f"cannot open volume '{vol.path}': {exc.strerror}") from None


def _create_raw(path: str, capacity: int, allocation: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        alloc = min(max(allocation, 0), capacity)
        if alloc > 0:
            try:
                os.posix_fallocate(fd, 0, alloc)
            except OSError as exc:
                raise VshError(f"cannot allocate {alloc} bytes in file '{path}': {exc.strerror}") from None
        os.ftruncate(fd, capacity)
        os.fsync(fd)
    finally:
        os.close(fd)
