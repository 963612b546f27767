"""The Windows family of filesystem adapters (FAT12/16/32 and vfat, NTFS).

Their libraries name paths with ``\\`` and know no POSIX modes, owners or
link counts: the adapters make them up (0755 on FAT, 0777 on NTFS, uid and
gid 0, one link) and convert the on-disk times to seconds since 1970.
"""

from __future__ import annotations

import stat as st

from ..image import LIB_ERRORS
from .base import Filesystem, Node


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
