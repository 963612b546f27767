"""The local driver: a guest-disk session over :class:`vsh.guestfs.session.GuestSession`.

The disk images are read in this process; a domain's disks are found in its XML,
read through the connection like any client would.
"""

from __future__ import annotations

from vsh.api.guestdisks import INSPECT_ITEMS, GuestDisks


def domain_disks(xml: str) -> list[tuple[str, str]]:
    """(source, format) of the disks of a domain's XML that a guest-disk session opens, in order:
    ``disk`` and ``lun`` devices with a source; libvirt's default for a disk without a driver
    type is raw (never probed)."""
    from vsh.core.domain import Domain

    out = []
    for disk in Domain.parse(xml).disks:
        if (disk.device or "disk") not in ("disk", "lun"):
            continue
        src = disk.source
        if not src:
            continue
        out.append((src, (disk.driver_type or "raw").lower()))
    return out


class LocalGuestDisks(GuestDisks):
    def __init__(self, conn, readonly: bool = True):
        from vsh.guestfs.session import GuestSession

        self.conn = conn
        self.readonly = readonly
        self.g = GuestSession()

    # --- drives and launch ------------------------------------------------------------

    def add_drive(self, path: str, format: str | None = None, readonly: bool | None = None) -> None:
        self.g.add_drive(path, format, readonly=self.readonly if readonly is None else readonly)

    def add_domain(self, name: str) -> list[str]:
        from vsh.core.errors import InvalidArgument

        dom = self.conn.lookup_domain(name)
        disks = domain_disks(dom.xml())
        if not disks:
            raise InvalidArgument(f"domain '{dom.name}' has no disks with a source")
        self.g.add_domain_disks(disks)
        return [path for path, _fmt in disks]

    def add_key(self, selector: str, key: str) -> None:
        self.g.add_key(selector, key)

    def drives(self) -> list[dict]:
        return [dict(d) for d in self.g.drives]

    def is_launched(self) -> bool:
        return self.g.launched

    def launch(self) -> None:
        self.g.launch()

    def close(self) -> None:
        self.g.close()

    # --- devices ----------------------------------------------------------------------

    def list_devices(self) -> list[str]:
        return self.g.list_devices()

    def list_partitions(self) -> list[str]:
        return self.g.list_partitions()

    def list_filesystems(self) -> dict[str, str]:
        return self.g.list_filesystems()

    def list_device_names(self) -> list[str]:
        return list(self.g.volumes.devices) if self.g.launched else []

    def vfs_type(self, device: str) -> str:
        return self.g.vfs_type(device)

    def vfs_label(self, device: str) -> str:
        return self.g.vfs_label(device)

    def vfs_uuid(self, device: str) -> str:
        return self.g.vfs_uuid(device)

    def blockdev_getsize64(self, device: str) -> int:
        return self.g.blockdev_getsize64(device)

    def part_list(self, device: str) -> list[dict]:
        return self.g.part_list(device)

    def part_get_parttype(self, device: str) -> str:
        return self.g.part_get_parttype(device)

    def pvs(self) -> list[str]:
        return self.g.pvs()

    def vgs(self) -> list[str]:
        return self.g.vgs()

    def lvs(self) -> list[str]:
        return self.g.lvs()

    def luks_open(self, device: str, key: str, mapname: str) -> str:
        return self.g.luks_open(device, key, mapname)

    # --- mounting ---------------------------------------------------------------------

    def mount_ro(self, device: str, mountpoint: str) -> None:
        self.g.mount_ro(device, mountpoint)

    def mount(self, device: str, mountpoint: str) -> None:
        self.g.mount(device, mountpoint)

    def mount_options(self, options: str, device: str, mountpoint: str) -> None:
        self.g.mount_options(options, device, mountpoint)

    def umount(self, target: str) -> None:
        self.g.umount(target)

    def umount_all(self) -> None:
        self.g.umount_all()

    def mountpoints(self) -> dict[str, str]:
        return self.g.mountpoints()

    # --- files ------------------------------------------------------------------------

    def ls(self, directory: str) -> list[str]:
        return self.g.ls(directory)

    def ll(self, directory: str) -> list[dict]:
        return self.g.ll(directory)

    def cat(self, path: str) -> bytes:
        return self.g.cat(path)

    def head(self, path: str, lines: int = 10) -> list[str]:
        return self.g.head_n(lines, path)

    def tail(self, path: str, lines: int = 10) -> list[str]:
        return self.g.tail_n(lines, path)

    def find(self, directory: str) -> list[str]:
        return self.g.find(directory)

    def stat(self, path: str, follow: bool = True) -> dict:
        return self.g.stat(path) if follow else self.g.lstat(path)

    def readlink(self, path: str) -> str:
        return self.g.readlink(path)

    def realpath(self, path: str) -> str:
        return self.g.realpath(path)

    def is_file(self, path: str, follow: bool = False) -> bool:
        return self.g.is_file(path, follow)

    def is_dir(self, path: str, follow: bool = False) -> bool:
        return self.g.is_dir(path, follow)

    def is_symlink(self, path: str) -> bool:
        return self.g.is_symlink(path)

    def exists(self, path: str) -> bool:
        return self.g.exists(path)

    def checksum(self, csumtype: str, path: str) -> str:
        return self.g.checksum(csumtype, path)

    def read_chunks(self, path: str):
        return self.g.iter_read(path)

    def download(self, remotefilename: str, filename: str) -> int:
        return self.g.download(remotefilename, filename)

    def copy_out(self, remote: str, localdir: str) -> list[str]:
        return self.g.copy_out(remote, localdir)

    def df(self) -> list[dict]:
        return self.g.df()

    def du(self, path: str) -> int:
        return self.g.du(path)

    def file(self, path: str) -> str:
        return self.g.file(path)

    def complete_path(self, prefix: str) -> list[str]:
        return self.g.complete_path(prefix)

    # --- inspection -------------------------------------------------------------------

    def inspect_os(self) -> list[str]:
        return self.g.inspect_os()

    def inspect_get_roots(self) -> list[str]:
        return self.g.inspect_get_roots()

    def inspect_get(self, root: str, item: str):
        from vsh.core.errors import InvalidArgument

        if item not in INSPECT_ITEMS:
            raise InvalidArgument(f"unknown inspection item {item!r} (known: {', '.join(INSPECT_ITEMS)})")
        return getattr(self.g, "inspect_get_" + item.replace("-", "_"))(root)

    def inspect_list_applications(self, root: str) -> list[dict]:
        return self.g.inspect_list_applications(root)

    def mount_inspected(self, root: str | None = None) -> str:
        return self.g.mount_inspected(root)

    def inspector_report(self, applications: bool = True) -> dict:
        return self.g.inspector_report(applications=applications)
