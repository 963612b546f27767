"""Copying file data at disk speed, holes kept: copy_file_range, then sendfile, then read and write.

vol-upload, vol-download and vol-wipe use it; a copy reports to an optional progress
object (``start(total)``, ``update(done)``, ``finish()``).
"""

from __future__ import annotations

import os
import stat as _stat

CHUNK = 64 << 20
_FALLBACK_ERRNOS = None


def _fallback_errnos() -> tuple:
    global _FALLBACK_ERRNOS
    if _FALLBACK_ERRNOS is None:
        import errno

        _FALLBACK_ERRNOS = (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF,
                            errno.ETXTBSY, errno.ESPIPE, errno.EPERM)
    return _FALLBACK_ERRNOS


def data_segments(fd: int, start: int, end: int):
    """(start, end) ranges holding data in [start, end), by SEEK_DATA/SEEK_HOLE (all of it if unsupported)."""
    import errno

    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return
            yield (pos, end)
            return
        if data >= end:
            return
        try:
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        except OSError:
            hole = end
        yield (data, hole)
        pos = hole


def _punch(fd: int, offset: int, length: int) -> None:
    """Make [offset, offset+length) read as zeroes: punch a hole, or write zeroes."""
    if length <= 0:
        return
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        if libc.fallocate(fd, 0x02 | 0x01, offset, length) == 0:  # PUNCH_HOLE | KEEP_SIZE
            return
    except (OSError, AttributeError):
        pass
    zeros = memoryview(bytes(min(length, 4 << 20)))
    pos = offset
    end = offset + length
    while pos < end:
        pos += os.pwrite(fd, zeros[:min(len(zeros), end - pos)], pos)


def _seekable(fd: int) -> bool:
    try:
        os.lseek(fd, 0, os.SEEK_CUR)
        return True
    except OSError:
        return False


def copy_data(src: int, dst: int, src_off: int, dst_off: int, length: int | None, sparse: bool = False,
              punch: bool = False, progress=None) -> int:
    """Copy ``length`` bytes (None: to the end of ``src``) at disk speed; bytes covered.

    Uses copy_file_range, then sendfile, then read/write. With ``sparse``, holes in a
    regular ``src`` are skipped (``punch``: made holes in ``dst`` too, for a ``dst``
    that holds old data); the destination ends at least at ``dst_off + length``.
    """
    st_src = os.fstat(src)
    src_regular = _stat.S_ISREG(st_src.st_mode)
    if src_regular:
        available = max(0, st_src.st_size - src_off)
        length = available if length is None else min(length, available)
    elif _stat.S_ISBLK(st_src.st_mode):
        size = os.lseek(src, 0, os.SEEK_END)
        available = max(0, size - src_off)
        length = available if length is None else min(length, available)
    dst_seekable = _seekable(dst)
    if not dst_seekable and dst_off:
        raise OSError(29, "Illegal seek")  # ESPIPE
    if progress is not None:
        progress.start(length)
    done = 0
    try:
        if sparse and src_regular and dst_seekable and length:
            pos = src_off
            end = src_off + length
            for start, stop in data_segments(src, src_off, end):
                if start > pos and punch:
                    _punch(dst, dst_off + pos - src_off, start - pos)
                done += start - pos
                done = _copy_span(src, dst, start, dst_off + start - src_off, stop - start, progress, done)
                pos = stop
            if pos < end and punch:
                _punch(dst, dst_off + pos - src_off, end - pos)
            done += end - pos
        else:
            done = _copy_span(src, dst, src_off, dst_off if dst_seekable else None, length, progress, done,
                              src_seekable=src_regular or _stat.S_ISBLK(st_src.st_mode))
        if dst_seekable and length is not None:
            st_dst = os.fstat(dst)
            if _stat.S_ISREG(st_dst.st_mode) and st_dst.st_size < dst_off + length:
                os.ftruncate(dst, dst_off + length)
    finally:
        if progress is not None:
            progress.finish()
    return done


def _copy_span(src: int, dst: int, soff: int, doff: int | None, length: int | None, progress, done: int,
               src_seekable: bool = True) -> int:
    """Copy one span; ``doff`` None writes sequentially (a pipe); ``length`` None runs to EOF."""
    copied = 0

    def left() -> int:
        return CHUNK if length is None else min(CHUNK, length - copied)

    def pump(step) -> int:
        nonlocal copied, done
        while length is None or copied < length:
            n = step()
            if n == 0:
                break
            copied += n
            done += n
            if progress is not None:
                progress.update(done)
        return done

    # 1. copy_file_range: in the kernel, reflinks where the filesystem can
    if doff is not None and src_seekable and hasattr(os, "copy_file_range"):
        try:
            return pump(lambda: os.copy_file_range(src, dst, left(), soff + copied, doff + copied))
        except OSError as exc:
            if exc.errno not in _fallback_errnos():
                raise
    # 2. sendfile: from a regular file to anything
    if src_seekable:
        try:
            if doff is not None:
                os.lseek(dst, doff + copied, os.SEEK_SET)
            return pump(lambda: os.sendfile(dst, src, soff + copied, left()))
        except OSError as exc:
            if exc.errno not in _fallback_errnos():
                raise
    # 3. read and write
    buf_size = 1 << 20
    while length is None or copied < length:
        want = buf_size if length is None else min(buf_size, length - copied)
        data = os.pread(src, want, soff + copied) if src_seekable else os.read(src, want)
        if not data:
            return done
        view = memoryview(data)
        while view:
            if doff is not None:
                n = os.pwrite(dst, view, doff + copied)
            else:
                n = os.write(dst, view)
            view = view[n:]
            copied += n
            done += n
        if progress is not None:
            progress.update(done)
    return done
