"""libblkid (util-linux) through ctypes: what is on a block, as Linux sees it.

libblkid is the library guestfish itself uses for ``vfs-type``, ``vfs-label``
and ``vfs-uuid``, and the one udev runs on every device a machine sees, so its
names ("ext4", "vfat", "LVM2_member", "crypto_LUKS", "swap" ...) and its
partition numbering are the ones users expect.  It reads from a file
descriptor: a block that is a plain range of a host file is handed over as
(fd, offset, size); any other block (qcow2, an LV, a LUKS payload) is copied
into a sparse memfd - the first HEAD bytes and the last TAIL bytes, which is
where superblocks, partition tables and their backups live.  Logical
partitions of an MBR disk are chained across the disk, so volumes.py takes
those from libvsmbr instead.
"""

from __future__ import annotations

import ctypes
import os

from vsh.core.errors import Unsupported, VshError

HEAD = 1 << 20
TAIL = 512 << 10

_SUBLKS_LABEL = 1 << 1
_SUBLKS_UUID = 1 << 3
_SUBLKS_TYPE = 1 << 5
_SUBLKS_SECTYPE = 1 << 6
_SUBLKS_USAGE = 1 << 7
_SUBLKS_VERSION = 1 << 8
_PARTS_ENTRY_DETAILS = 1 << 2

_lib = None


def _load():
    global _lib
    if _lib is not None:
        return _lib
    try:
        lib = ctypes.CDLL("libblkid.so.1", use_errno=True)
    except OSError:
        raise Unsupported("libblkid.so.1 (Debian package libblkid1) is not installed") from None
    vp, i, i64, cp = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_char_p
    sig = {
        "blkid_new_probe": (vp, []),
        "blkid_free_probe": (None, [vp]),
        "blkid_probe_set_device": (i, [vp, i, i64, i64]),
        "blkid_probe_enable_superblocks": (i, [vp, i]),
        "blkid_probe_set_superblocks_flags": (i, [vp, i]),
        "blkid_probe_enable_partitions": (i, [vp, i]),
        "blkid_probe_set_partitions_flags": (i, [vp, i]),
        "blkid_do_safeprobe": (i, [vp]),
        "blkid_probe_numof_values": (i, [vp]),
        "blkid_probe_get_value": (i, [vp, i, ctypes.POINTER(cp), ctypes.POINTER(cp), ctypes.POINTER(ctypes.c_size_t)]),
        "blkid_probe_get_partitions": (vp, [vp]),
        "blkid_partlist_numof_partitions": (i, [vp]),
        "blkid_partlist_get_table": (vp, [vp]),
        "blkid_partlist_get_partition": (vp, [vp, i]),
        "blkid_parttable_get_type": (cp, [vp]),
        "blkid_parttable_get_id": (cp, [vp]),
        "blkid_partition_get_table": (vp, [vp]),
        "blkid_partition_get_start": (i64, [vp]),
        "blkid_partition_get_size": (i64, [vp]),
        "blkid_partition_get_partno": (i, [vp]),
        "blkid_partition_get_type": (i, [vp]),
        "blkid_partition_get_type_string": (cp, [vp]),
        "blkid_partition_get_uuid": (cp, [vp]),
        "blkid_partition_get_name": (cp, [vp]),
        "blkid_partition_is_extended": (i, [vp]),
        "blkid_partition_is_logical": (i, [vp]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    _lib = lib
    return lib


# plain classes, not dataclasses: importing dataclasses (and the inspect module it loads)
# is a cost every guest-disk command would pay at start-up


class Partition:
    """One entry of a partition table; offsets and sizes in bytes."""

    __slots__ = ("partno", "start", "size", "mbr_id", "type_guid", "uuid", "name", "extended", "logical")

    def __init__(self, *, partno: int, start: int, size: int, mbr_id: int | None, type_guid: str | None,
                 uuid: str | None, name: str | None, extended: bool, logical: bool):
        self.partno = partno
        self.start = start
        self.size = size
        self.mbr_id = mbr_id            # MBR type byte, None on GPT
        self.type_guid = type_guid
        self.uuid = uuid
        self.name = name
        self.extended = extended
        self.logical = logical

    def __repr__(self) -> str:
        return f"Partition({', '.join(f'{k}={getattr(self, k)!r}' for k in self.__slots__)})"


class ProbeResult:
    """What libblkid found on a device."""

    __slots__ = ("values", "ambivalent", "pttype", "ptuuid", "partitions")

    def __init__(self):
        self.values: dict = {}          # TYPE, LABEL, UUID, USAGE, VERSION ...
        self.ambivalent = False
        self.pttype: str | None = None  # "dos" / "gpt"
        self.ptuuid: str | None = None
        self.partitions: list = []

    def __repr__(self) -> str:
        return f"ProbeResult({', '.join(f'{k}={getattr(self, k)!r}' for k in self.__slots__)})"


def _s(b: bytes | None) -> str | None:
    return None if b is None else b.decode("utf-8", "replace")


class _Source:
    """An fd (plus offset and size) libblkid can read a block through."""

    def __init__(self, block):
        d = block.direct()
        self.size = block.size
        self.own = False
        if d is not None:
            self.fd, self.offset = d
            return
        self.fd = os.memfd_create("vsh-blkid", os.MFD_CLOEXEC)
        self.own = True
        self.offset = 0
        try:
            os.ftruncate(self.fd, block.size)
            head = min(block.size, HEAD)
            if head:
                os.pwrite(self.fd, block.read_exact(head, 0), 0)
            if block.size > HEAD:
                tail = max(HEAD, block.size - TAIL)
                os.pwrite(self.fd, block.read_exact(block.size - tail, tail), tail)
        except OSError as e:
            self.close()
            raise VshError(f"{block.name}: cannot prepare a probe: {e.strerror or e}") from None
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.own and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def probe(block, *, partitions: bool = False) -> ProbeResult:
    """Superblock values of *block*, and its partition table when asked."""
    lib = _load()
    src = _Source(block)
    res = ProbeResult()
    try:
        pr = lib.blkid_new_probe()
        if not pr:
            raise VshError("libblkid: cannot create a probe")
        try:
            if lib.blkid_probe_set_device(pr, src.fd, src.offset, src.size) != 0:
                raise VshError(f"{block.name}: libblkid cannot read this device")
            lib.blkid_probe_enable_superblocks(pr, 1)
            lib.blkid_probe_set_superblocks_flags(
                pr, _SUBLKS_LABEL | _SUBLKS_UUID | _SUBLKS_TYPE | _SUBLKS_SECTYPE | _SUBLKS_USAGE | _SUBLKS_VERSION)
            lib.blkid_probe_enable_partitions(pr, 0)
            rc = lib.blkid_do_safeprobe(pr)
            if rc == -2:
                res.ambivalent = True
            elif rc == 0:
                name, data, size = ctypes.c_char_p(), ctypes.c_char_p(), ctypes.c_size_t()
                for n in range(lib.blkid_probe_numof_values(pr)):
                    if lib.blkid_probe_get_value(pr, n, ctypes.byref(name), ctypes.byref(data), ctypes.byref(size)) == 0:
                        raw = ctypes.string_at(data, size.value).rstrip(b"\0") if data else b""
                        res.values[_s(name.value)] = raw.decode("utf-8", "replace")
        finally:
            lib.blkid_free_probe(pr)
        if partitions:
            _probe_partitions(lib, src, res)
    finally:
        src.close()
    return res


def _probe_partitions(lib, src: _Source, res: ProbeResult) -> None:
    pr = lib.blkid_new_probe()
    try:
        if lib.blkid_probe_set_device(pr, src.fd, src.offset, src.size) != 0:
            return
        lib.blkid_probe_enable_superblocks(pr, 0)
        lib.blkid_probe_enable_partitions(pr, 1)
        lib.blkid_probe_set_partitions_flags(pr, _PARTS_ENTRY_DETAILS)
        ls = lib.blkid_probe_get_partitions(pr)
        if not ls:
            return
        tab = lib.blkid_partlist_get_table(ls)
        if not tab:
            return
        res.pttype = _s(lib.blkid_parttable_get_type(tab))
        res.ptuuid = _s(lib.blkid_parttable_get_id(tab))
        for n in range(lib.blkid_partlist_numof_partitions(ls)):
            par = lib.blkid_partlist_get_partition(ls, n)
            if not par or lib.blkid_partition_get_table(par) != tab:
                continue  # nested tables (BSD labels ...) are not followed
            gpt = res.pttype == "gpt"
            res.partitions.append(Partition(
                partno=lib.blkid_partition_get_partno(par),
                start=lib.blkid_partition_get_start(par) * 512,
                size=lib.blkid_partition_get_size(par) * 512,
                mbr_id=None if gpt else lib.blkid_partition_get_type(par),
                type_guid=_s(lib.blkid_partition_get_type_string(par)) if gpt else None,
                uuid=_s(lib.blkid_partition_get_uuid(par)),
                name=_s(lib.blkid_partition_get_name(par)),
                extended=bool(lib.blkid_partition_is_extended(par)),
                logical=bool(lib.blkid_partition_is_logical(par)),
            ))
    finally:
        lib.blkid_free_probe(pr)
