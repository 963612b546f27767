"""A guestfish-style session over disk images, read in-process.

The model is guestfish's: add drives, launch, then list devices, mount
filesystems (read-only) and work on paths in the mounted tree, or inspect
the operating systems.  Method names follow guestfish's commands with ``_``
for ``-``.  Methods return plain data (lists, dicts, bytes, ints, strings)
and never print; failures raise :class:`VshError` subclasses whose lines are
user-facing messages.  Strings from the guest are returned as they are:
escape them (:func:`vsh.core.escape.escape`) before showing them.

This module holds the session's state (drives, launch, keys), its devices,
its mounts and its inspection; the file commands on the mounted tree are
:class:`~.files.SessionFiles`, mixed in.

Nothing is ever mounted on the host kernel and nothing is written to the
images.  Writing (a read-write ``mount``) needs the appliance backend.
"""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, NotFound, Unsupported, VshError

from .files import SessionFiles
from .fs import open_filesystem
from .fs.base import Filesystem
from .fs.tree import MountTree
from .inspect import Inspector, sorted_mountpoints

__all__ = ["GuestSession"]


_APPLIANCE = "is done in the appliance VM (the API's write path), never in-process"


class GuestSession(SessionFiles):
    """One guestfish-like handle (see the module docstring)."""

    def __init__(self):
        self.drives: list[dict] = []
        self.keys: list[tuple[str, str]] = []
        self.images = []
        self.volumes = None
        self.tree = MountTree()
        self._fs: dict[str, Filesystem] = {}
        self._inspector: Inspector | None = None
        self._roots: list[str] | None = None
        self._warnings: list[str] = []

    # --- drives and launch ------------------------------------------------------

    @property
    def launched(self) -> bool:
        return self.volumes is not None

    def add_drive(self, path: str, format: str | None = None, readonly: bool = True) -> None:
        """Add a disk image (``add`` / ``add-drive``); *format* None means detect (conservatively)."""
        if self.launched:
            raise InvalidArgument("drives must be added before launch (run)")
        path = os.fspath(path)
        if not os.path.exists(path):
            raise NotFound(f"{path}: no such file")
        if format is not None:
            from .image import FORMATS

            if format.lower() not in FORMATS:
                raise InvalidArgument(f"unknown disk format {format!r} (known: {', '.join(FORMATS)})")
        self.drives.append({"path": path, "format": format.lower() if format else None, "readonly": bool(readonly)})

    add = add_drive
    add_drive_ro = add_drive

    def add_domain_disks(self, disks) -> None:
        """Add a domain's disks in order: an iterable of (path, format or None)."""
        for path, fmt in disks:
            self.add_drive(path, fmt, readonly=True)

    def add_key(self, selector: str, key: str) -> None:
        """A LUKS key for a device name or LUKS UUID (like ``--key``), used at launch."""
        self.keys.append((selector, key))

    def launch(self) -> None:
        from .image import open_image
        from .volumes import Volumes

        if self.launched:
            raise InvalidArgument("the session is already launched")
        if not self.drives:
            raise InvalidArgument("no drives have been added", hint="add a disk image first (add IMAGE)")
        images = []
        try:
            for d in self.drives:
                images.append(open_image(d["path"], d["format"]))
        except BaseException:
            for img in images:
                img.close()
            raise
        self.images = images
        self.volumes = Volumes(images)
        for dev in list(self.volumes.devices.values()):
            if dev.vfs_type != "crypto_LUKS":
                continue
            for sel, key in self.keys:
                if sel in (dev.name, dev.uuid, "all") or (sel.startswith("UUID=") and sel[5:] == dev.uuid):
                    try:
                        self.volumes.luks_open(dev.name, key, f"luks-{dev.uuid}")
                    except VshError as e:
                        self._warnings.append(f"{dev.name}: {e}")
                    break

    run = launch

    def _need(self):
        if self.volumes is None:
            raise InvalidArgument("call launch (run) first")
        return self.volumes

    @property
    def warnings(self) -> list[str]:
        out = list(self._warnings)
        if self.volumes is not None:
            out += [w for w in self.volumes.warnings if w not in out]
        if self._inspector is not None:
            out += [w for w in self._inspector.warnings if w not in out]
        return out

    def close(self) -> None:
        self.tree.umount_all()
        for f in self._fs.values():
            f.close()
        self._fs.clear()
        if self._inspector is not None:
            self._inspector.close()
            self._inspector = None
        if self.volumes is not None:
            self.volumes.close()
        for img in self.images:
            img.close()
        self.images = []
        self.volumes = None

    shutdown = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- devices -------------------------------------------------------------------

    def list_devices(self) -> list[str]:
        return self._need().list_devices()

    def list_partitions(self) -> list[str]:
        return self._need().list_partitions()

    def list_filesystems(self) -> dict[str, str]:
        return self._need().list_filesystems()

    def blockdev_getsize64(self, device: str) -> int:
        return self._need().get(device).size

    def blockdev_getss(self, device: str) -> int:
        self._need().get(device)
        return 512

    def _disk(self, device: str):
        dev = self._need().get(device)
        if dev.kind != "disk":
            raise InvalidArgument(f"{device}: not a whole disk device")
        return dev

    def part_get_parttype(self, device: str) -> str:
        dev = self._disk(device)
        if not dev.parttype:
            raise VshError(f"{dev.name}: unrecognised partition table (or no partitions)")
        return dev.parttype

    def part_list(self, device: str) -> list[dict]:
        dev = self._disk(device)
        self.part_get_parttype(device)
        return [{"part_num": p.partition.partno, "part_start": p.partition.start,
                 "part_end": p.partition.start + p.partition.size - 1, "part_size": p.partition.size}
                for p in self.volumes.partitions_of(dev.name)]

    def _part(self, partition: str):
        dev = self._need().get(partition)
        if dev.kind != "partition":
            raise InvalidArgument(f"{partition}: not a partition")
        return dev

    def part_to_dev(self, partition: str) -> str:
        return self._part(partition).disk

    def part_to_partnum(self, partition: str) -> int:
        return self._part(partition).partition.partno

    def part_get_mbr_id(self, device: str, partnum: int) -> int:
        p = self._part_by_num(device, partnum)
        if p.partition.mbr_id is None:
            raise InvalidArgument(f"{device}: not an MBR partition table")
        return p.partition.mbr_id

    def part_get_gpt_type(self, device: str, partnum: int) -> str:
        p = self._part_by_num(device, partnum)
        if p.partition.type_guid is None:
            raise InvalidArgument(f"{device}: not a GPT partition table")
        return p.partition.type_guid.upper()

    def part_get_gpt_guid(self, device: str, partnum: int) -> str:
        p = self._part_by_num(device, partnum)
        if self._disk(device).parttype != "gpt":
            raise InvalidArgument(f"{device}: not a GPT partition table")
        return (p.partition.uuid or "").upper()

    def part_get_name(self, device: str, partnum: int) -> str:
        return self._part_by_num(device, partnum).partition.name or ""

    def _part_by_num(self, device: str, partnum: int):
        disk = self._disk(device)
        for p in self.volumes.partitions_of(disk.name):
            if p.partition.partno == int(partnum):
                return p
        raise NotFound(f"{disk.name}: no partition number {partnum}")

    def pvs(self) -> list[str]:
        return self._need().pvs()

    def vgs(self) -> list[str]:
        return self._need().vgs_list()

    def lvs(self) -> list[str]:
        return self._need().lvs()

    def vfs_type(self, device: str) -> str:
        return self._need().get(device).vfs_type

    def vfs_label(self, device: str) -> str:
        return self._need().get(device).label

    def vfs_uuid(self, device: str) -> str:
        return self._need().get(device).uuid

    def luks_open(self, device: str, key: str, mapname: str) -> str:
        return self._need().luks_open(device, key, mapname).name

    cryptsetup_open = luks_open

    def luks_mappings(self) -> list[tuple[str, str, str | bytes]]:
        """(LUKS device, mapping name, key) of every unlocked LUKS volume."""
        return [(d.extra["luks_device"], d.name[len("/dev/mapper/"):], d.extra["luks_key"])
                for d in self._need().devices.values() if d.kind == "luks"]

    # --- mounting ---------------------------------------------------------------------

    def _filesystem(self, device: str) -> Filesystem:
        dev = self._need().get(device)
        fs = self._fs.get(dev.name)  # shared with the inspector
        if fs is None:
            fs = open_filesystem(dev)
            self._fs[dev.name] = fs
        return fs

    def _writable(self, device: str) -> bool:
        vols = self._need()
        dev = vols.get(device)
        if dev.kind in ("disk", "partition"):
            disk = vols.get(dev.disk or dev.name)
            idx = list(vols.list_devices()).index(disk.name)
            return not self.drives[idx]["readonly"]
        return any(not d["readonly"] for d in self.drives)

    def mount_ro(self, device: str, mountpoint: str) -> None:
        fs = self._filesystem(device)
        if any(f is fs for f in self.tree.mounts.values()):
            raise InvalidArgument(f"{fs.device.name}: is already mounted")
        self.tree.mount(fs, mountpoint)

    def mount(self, device: str, mountpoint: str) -> None:
        """guestfish ``mount``: read-only on drives added read-only; a write mount is unsupported."""
        if self._writable(device):
            raise Unsupported(f"mounting {device} for writing {_APPLIANCE}",
                              hint="add the drive read-only (--ro) or use mount-ro")
        self.mount_ro(device, mountpoint)

    def mount_options(self, options: str, device: str, mountpoint: str) -> None:
        opts = [o.strip() for o in (options or "").split(",") if o.strip()]
        if "ro" not in opts and ("rw" in opts or self._writable(device)):
            raise Unsupported(f"mounting {device} for writing {_APPLIANCE}", hint="use the ro option")
        self.mount_ro(device, mountpoint)

    def mount_vfs(self, options: str, vfstype: str, device: str, mountpoint: str) -> None:
        self.mount_options(options, device, mountpoint)

    def umount(self, target: str) -> None:
        from .volumes import canonical_device

        self._need()
        if target.startswith("/dev/"):
            target = self.volumes.get(canonical_device(target)).name
        self.tree.umount(target)

    def umount_all(self) -> None:
        self.tree.umount_all()

    def mounts(self) -> list[str]:
        return list(self.tree.mountpoints().values())

    def mountpoints(self) -> dict[str, str]:
        return self.tree.mountpoints()

    # --- inspection -------------------------------------------------------------------

    def _insp(self) -> Inspector:
        if self._inspector is None:
            self._inspector = Inspector(self._need(), fs_cache=self._fs)
        return self._inspector

    def inspect_os(self) -> list[str]:
        self._roots = self._insp().inspect_os()
        return list(self._roots)

    def inspect_get_roots(self) -> list[str]:
        if self._roots is None:
            return self.inspect_os()
        return list(self._roots)

    def _os(self, root: str) -> dict:
        if self._roots is None:
            self.inspect_os()
        info = self._insp().oses.get(root)
        if info is None:
            raise NotFound(f"{root}: not the root of an inspected operating system",
                           hint="run inspect-os to list the roots")
        return info

    def inspect_get_type(self, root): return self._os(root)["type"]
    def inspect_get_distro(self, root): return self._os(root)["distro"]
    def inspect_get_product_name(self, root): return self._os(root)["product_name"]
    def inspect_get_product_variant(self, root): return self._os(root)["product_variant"]
    def inspect_get_major_version(self, root): return self._os(root)["major_version"]
    def inspect_get_minor_version(self, root): return self._os(root)["minor_version"]
    def inspect_get_arch(self, root): return self._os(root)["arch"]
    def inspect_get_hostname(self, root): return self._os(root)["hostname"]
    def inspect_get_package_format(self, root): return self._os(root)["package_format"]
    def inspect_get_package_management(self, root): return self._os(root)["package_management"]
    def inspect_get_osinfo(self, root): return self._os(root)["osinfo"]
    def inspect_get_format(self, root): return self._os(root)["format"]

    def inspect_get_mountpoints(self, root) -> dict[str, str]:
        return dict(sorted_mountpoints(self._os(root)["mountpoints"]))

    def inspect_get_filesystems(self, root) -> list[str]:
        return list(self._os(root)["filesystems"])

    def inspect_get_warnings(self, root) -> list[str]:
        return list(self._os(root)["warnings"])

    def inspect_list_applications(self, root) -> list[dict]:
        self._os(root)
        return self._insp().list_applications(root)

    inspect_list_applications2 = inspect_list_applications

    def mount_inspected(self, root: str | None = None) -> str:
        """Mount an inspected OS's filesystems at its mountpoints (guestfish ``-i``)."""
        roots = self.inspect_get_roots()
        if root is None:
            if not roots:
                raise NotFound("no operating system was found on these disks")
            if len(roots) > 1:
                raise InvalidArgument(f"several operating systems found ({', '.join(roots)}); choose a root")
            root = roots[0]
        mps = self._os(root)["mountpoints"]
        for mp, dev in sorted_mountpoints(mps):
            try:
                self.mount_ro(dev, mp)
            except VshError as e:
                self._warnings.append(f"{dev} on {mp}: {e}")
        return root

    def inspector_report(self, applications: bool = True) -> dict:
        """Data for a virt-inspector report (``vsh inspect`` prints it as virt-inspector's XML)."""
        roots = self.inspect_get_roots()
        out = []
        vols = self._need()
        for root in roots:
            info = dict(self._os(root))
            fss = []
            for dev in info["filesystems"]:
                try:
                    d = vols.get(dev)
                except VshError:
                    continue
                fss.append({"dev": d.name, "type": d.vfs_type, "label": d.label, "uuid": d.uuid})
            entry = {k: info[k] for k in ("root", "type", "distro", "product_name", "product_variant",
                                          "major_version", "minor_version", "arch", "hostname",
                                          "package_format", "package_management", "osinfo", "format")}
            entry["mountpoints"] = [list(mp) for mp in sorted_mountpoints(info["mountpoints"])]
            entry["filesystems"] = fss
            if applications:
                try:
                    entry["applications"] = self.inspect_list_applications(root)
                except VshError as e:
                    info["warnings"].append(f"applications: {e}")
                    entry["applications"] = []
            entry["warnings"] = list(info["warnings"])
            out.append(entry)
        return {"operatingsystems": out, "warnings": self.warnings}

