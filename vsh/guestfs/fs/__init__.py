"""Read-only filesystems inside guest devices, and the tree of mounted ones.

One small adapter per libyal filesystem library - libfsext (ext2/3/4),
libfsxfs (xfs), libfsfat (FAT12/16/32, vfat), libfsntfs (NTFS) - gives the
same node operations: lookup, children, kind, stat, readlink, read.  The
adapters come in two families: the POSIX ones on the generic base
(:mod:`.base`: ext, xfs) and the Windows ones, which make up modes, owners
and times (:mod:`.windows`: FAT, NTFS).  :func:`open_filesystem` picks one.

:class:`~.tree.MountTree` puts filesystems at guest mountpoints and resolves
guest paths component by component (:mod:`.paths` is the path syntax).
Symbolic links are followed by vsh (the libraries do not), always inside the
guest's tree: an absolute target restarts at the guest's ``/`` and ``..``
stops there, so no link can name a host file.

Bulk data of ext, xfs and FAT files is read from the file's extents straight
off the device (``pread`` or ``copy_file_range`` on a raw image), which is
what makes ``download`` run at the speed of the disk (:mod:`.data`).  Guest
names are untrusted: they never become host paths except in
:meth:`~.data.TreeData.copy_out`, which creates files relative to directory
descriptors it opened itself and refuses names like ``..``.
"""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, Unsupported, VshError

from ..image import LIB_ERRORS, lib_message
from .base import ExtFilesystem, Filesystem, FsError, XfsFilesystem
from .windows import FatFilesystem, NtfsFilesystem

SUPPORTED = ("ext2", "ext3", "ext4", "xfs", "vfat", "msdos", "ntfs")

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

