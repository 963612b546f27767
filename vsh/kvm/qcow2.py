"""Read-only facts from a qcow2 image for the snapshot code, in pure Python (no qemu-img round trip).

The snapshot code asks small questions many times: which internal snapshots an
image holds, which backing file its header names, whether an overlay holds any
data yet, and whether the image still equals one of its internal snapshots.
Reading the header answers them in microseconds; every change to an image is
left to QEMU (``qemu-img`` or QMP). The header itself is read by
:mod:`vsh.core.qcow2`; this module adds the L1 and internal snapshot tables.

Format reference: QEMU's ``docs/interop/qcow2.txt``.
"""

from __future__ import annotations

import os
import struct

from vsh.core.errors import InvalidArgument
from vsh.core.qcow2 import MAGIC, read_header
from vsh.core.qcow2 import has_magic as is_qcow2

__all__ = ["MAGIC", "Info", "Snapshot", "equals_snapshot", "has_data", "is_qcow2", "read_info"]

L1E_OFFSET_MASK = 0x00FFFFFFFFFFFE00
_MAX_SNAPSHOTS = 65536
_MAX_L1_BYTES = 32 * 1024 * 1024
_MAX_BACKING_NAME = 1023


class Snapshot:
    """One entry of the internal snapshot table."""

    __slots__ = ("id", "name", "l1_offset", "l1_size", "vm_state_size", "date")

    def __init__(self, id: str, name: str, l1_offset: int, l1_size: int, vm_state_size: int, date: int):
        self.id = id
        self.name = name
        self.l1_offset = l1_offset
        self.l1_size = l1_size
        self.vm_state_size = vm_state_size
        self.date = date

    def __repr__(self) -> str:
        return f"Snapshot({self.name!r}, vm_state_size={self.vm_state_size})"


class Info:
    """What the header says, with the internal snapshot table."""

    def __init__(self, path: str):
        self.path = path
        self.version = 0
        self.size = 0
        self.cluster_bits = 16
        self.backing_file: str | None = None
        self.backing_format: str | None = None
        self.l1_offset = 0
        self.l1_size = 0
        self.snapshots: list[Snapshot] = []

    def snapshot(self, name: str) -> Snapshot | None:
        for snap in self.snapshots:
            if snap.name == name:
                return snap
        return None

    def tags(self) -> list[str]:
        return [s.name for s in self.snapshots]


def _bad(path: str, what: str) -> InvalidArgument:
    return InvalidArgument(f"'{path}' is not a usable qcow2 image: {what}")


def read_info(path: str) -> Info:
    """Parse the header, its extensions and the snapshot table of ``path``."""
    info = Info(os.fspath(path))
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise InvalidArgument(f"cannot read '{path}': {exc.strerror}") from None
    with fh:
        hdr = read_header(fh.fileno())
        if hdr is None:
            raise _bad(path, "no qcow2 (version 2 or 3) header")
        if not 9 <= hdr.cluster_bits <= 21:
            raise _bad(path, f"version {hdr.version}, cluster bits {hdr.cluster_bits}")
        if hdr.backing_length > _MAX_BACKING_NAME:
            raise _bad(path, "backing file name too long")
        info.version, info.size, info.cluster_bits = hdr.version, hdr.size, hdr.cluster_bits
        info.l1_offset, info.l1_size = hdr.l1_offset, hdr.l1_size
        info.backing_file, info.backing_format = hdr.backing, hdr.backing_format
        # snapshot table
        if hdr.nb_snapshots > _MAX_SNAPSHOTS:
            raise _bad(path, f"{hdr.nb_snapshots} snapshots")
        if hdr.nb_snapshots:
            fh.seek(hdr.snapshots_offset)
            for _ in range(hdr.nb_snapshots):
                entry = fh.read(40)
                if len(entry) < 40:
                    raise _bad(path, "truncated snapshot table")
                (s_l1_offset, s_l1_size, id_size, name_size, date_sec, _date_nsec, _vm_clock,
                 vm_state_size, extra_size) = struct.unpack(">QIHHIIQII", entry)
                extra = fh.read(extra_size)
                if extra_size >= 8:  # 64-bit vm state size (v3 extra data)
                    big = struct.unpack(">Q", extra[:8])[0]
                    vm_state_size = max(vm_state_size, big)
                sid = fh.read(id_size).decode("utf-8", "replace")
                name = fh.read(name_size).decode("utf-8", "replace")
                used = 40 + extra_size + id_size + name_size
                fh.seek((8 - used % 8) % 8, os.SEEK_CUR)
                info.snapshots.append(Snapshot(sid, name, s_l1_offset, s_l1_size, vm_state_size, date_sec))
    return info


def _l1(path: str, offset: int, size: int) -> list[int]:
    if size * 8 > _MAX_L1_BYTES:
        raise _bad(path, "L1 table too large")
    if not size:
        return []
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(size * 8)
    if len(data) < size * 8:
        raise _bad(path, "truncated L1 table")
    return [e & L1E_OFFSET_MASK for e in struct.unpack(f">{size}Q", data)]


def has_data(path: str) -> bool:
    """True when the image's active state maps any cluster (an overlay that was written)."""
    info = read_info(path)
    return any(_l1(path, info.l1_offset, info.l1_size))


def equals_snapshot(path: str, name: str) -> bool:
    """True when the active state still shares every L2 table with internal snapshot ``name``.

    After a snapshot is taken (or applied) both L1 tables point at the same L2
    tables; the first guest write copies an L2 table and so changes the active L1.
    """
    info = read_info(path)
    snap = info.snapshot(name)
    if snap is None:
        return False
    if snap.l1_size != info.l1_size:
        return False
    return _l1(path, info.l1_offset, info.l1_size) == _l1(path, snap.l1_offset, snap.l1_size)
