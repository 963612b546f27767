"""The local driver: a guest-disk session over :class:`vsh.guestfs.session.GuestSession`.

The disk images are read in this process; a domain's disks are found in its XML,
read through the connection like any client would.
"""

from __future__ import annotations

from vsh.api.guestdisks import INSPECT_ITEMS, GuestDisks
from vsh.api.local.guestwrites import APPLIANCE_ONLY, LocalGuestWrites
from vsh.core.errors import VshError


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


class LocalGuestDisks(LocalGuestWrites, GuestDisks):
    def __init__(self, conn, readonly: bool = True):
        from vsh.guestfs.session import GuestSession

        self.conn = conn
        self.readonly = readonly
        self.g = GuestSession()

    def running_disks(self) -> dict[str, str]:
        """Real path → domain name of the disks of every running domain of the connection."""
        import os

        out = {}
        for row in self.conn.list_domains(active=True):
            try:
                for path, _fmt in domain_disks(self.conn.lookup_domain(row["name"]).xml()):
                    out[os.path.realpath(path)] = row["name"]
            except VshError:
                continue
        return out

    # --- drives and launch ------------------------------------------------------------

    def add_drive(self, path: str, format: str | None = None, readonly: bool | None = None) -> None:
        ro = self.readonly if readonly is None else readonly
        self.g.add_drive(path, format, readonly=ro)
        if not ro:
            self.refuse_running(path)

    def add_domain(self, name: str) -> list[str]:
        from vsh.core.errors import InvalidArgument

        dom = self.conn.lookup_domain(name)
        disks = domain_disks(dom.xml())
        if not disks:
            raise InvalidArgument(f"domain '{dom.name}' has no disks with a source")
        running = dom.state()[0] != "shut off"
        for path, fmt in disks:
            self.g.add_drive(path, fmt, readonly=self.readonly or running)
            if running and not self.readonly:
                self._refused = dict(self._refused, **{path: dom.name})
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
        try:
            self.close_appliance()
        finally:
            self.g.close()

    # --- devices ----------------------------------------------------------------------

    def list_devices(self) -> list[str]:
        self._settle()
        return self.g.list_devices()

    def list_partitions(self) -> list[str]:
        self._settle()
        return self.g.list_partitions()

    def list_filesystems(self) -> dict[str, str]:
        self._settle()
        return self.g.list_filesystems()

    def list_device_names(self) -> list[str]:
        return list(self.g.volumes.devices) if self.g.launched else []

    def vfs_type(self, device: str) -> str:
        self._settle()
        return self.g.vfs_type(device)

    def vfs_label(self, device: str) -> str:
        self._settle()
        return self.g.vfs_label(device)

    def vfs_uuid(self, device: str) -> str:
        self._settle()
        return self.g.vfs_uuid(device)

    def blockdev_getsize64(self, device: str) -> int:
        self._settle()
        return self.g.blockdev_getsize64(device)

    def part_list(self, device: str) -> list[dict]:
        self._settle()
        return self.g.part_list(device)

    def part_get_parttype(self, device: str) -> str:
        self._settle()
        return self.g.part_get_parttype(device)

    def pvs(self) -> list[str]:
        self._settle()
        return self.g.pvs()

    def vgs(self) -> list[str]:
        self._settle()
        return self.g.vgs()

    def lvs(self) -> list[str]:
        self._settle()
        return self.g.lvs()

    def luks_open(self, device: str, key: str, mapname: str) -> str:
        return self.g.luks_open(device, key, mapname)

    # --- mounting ---------------------------------------------------------------------

    def mount_ro(self, device: str, mountpoint: str) -> None:
        self._settle()
        self._ro_mps = self._ro_mps | {mountpoint}
        self._mount_here(self.g.mount_ro, device, mountpoint)

    def mount(self, device: str, mountpoint: str) -> None:
        self.mount_options("", device, mountpoint)

    def mount_options(self, options: str, device: str, mountpoint: str) -> None:
        self._settle()
        if "ro" in [o.strip() for o in (options or "").split(",")] or not self.g._writable(device):
            self._ro_mps = self._ro_mps | {mountpoint}
            self._mount_here(lambda d, m: self.g.mount_options(options or "ro", d, m), device, mountpoint)
        else:
            self._mount_here(self.g.mount_ro, device, mountpoint)
        self._app_mounted = False if self._app is None else self._remount()

    def _mount_here(self, mount, device: str, mountpoint: str) -> None:
        """Mount in this process; a filesystem only the appliance reads (btrfs, exfat) is
        mounted there instead, and every read goes to the appliance from then on."""
        from vsh.core.errors import InvalidArgument, Unsupported

        try:
            mount(device, mountpoint)
        except Unsupported:
            if self.g.vfs_type(device) not in APPLIANCE_ONLY:
                raise
            mps = self.mountpoints()
            if mountpoint in mps or device in mps.values():
                raise InvalidArgument(f"{device}: is already mounted, or {mountpoint} is in use") from None
            if mountpoint != "/" and not self.is_dir(mountpoint, follow=True):
                raise InvalidArgument(f"mount: {mountpoint}: not a directory in the guest") from None
            self._app_only = dict(self._app_only, **{mountpoint: device})

    def _remount(self) -> bool:
        """The appliance's mounts no longer match the session's: unmount there (mounted again on
        the next write)."""
        if self._app_mounted and self._app.running:
            self._call(self._app, "mount", "umount_all")
        return False

    def umount(self, target: str) -> None:
        self._settle()
        mp = next((m for m, d in self._app_only.items() if target in (m, d)), None)
        if mp is not None:
            self._app_only = {m: d for m, d in self._app_only.items() if m != mp}
        else:
            self.g.umount(target)
        if self._app is not None:
            self._app_mounted = self._remount()

    def umount_all(self) -> None:
        self._settle()
        self.g.umount_all()
        self._app_only = {}
        if self._app is not None:
            self._app_mounted = self._remount()

    def mountpoints(self) -> dict[str, str]:
        return dict(self.g.mountpoints(), **self._app_only)

    # --- files ------------------------------------------------------------------------

    def ls(self, directory: str) -> list[str]:
        if self._live():
            return self._fs("ls", "ls", directory, path=directory)[0]
        return self.g.ls(directory)

    def ll(self, directory: str) -> list[dict]:
        self._here("ll", directory)
        return self.g.ll(directory)

    def cat(self, path: str) -> bytes:
        if self._live():
            return b"".join(self._read_live("cat", path))
        return self.g.cat(path)

    def _read_live(self, what: str, path: str):
        offset = 0
        while True:
            data = self._fs(what, "read", path, path=path, offset=offset, size=1 << 22)[1]
            if not data:
                return
            offset += len(data)
            yield data

    def head(self, path: str, lines: int = 10) -> list[str]:
        if self._app_only:
            return self.cat(path).decode("utf-8", "replace").splitlines()[:lines]
        self._settle()
        return self.g.head_n(lines, path)

    def tail(self, path: str, lines: int = 10) -> list[str]:
        if self._app_only:
            return self.cat(path).decode("utf-8", "replace").splitlines()[-lines:] if lines else []
        self._settle()
        return self.g.tail_n(lines, path)

    def find(self, directory: str) -> list[str]:
        self._here("find", directory)
        return self.g.find(directory)

    def stat(self, path: str, follow: bool = True) -> dict:
        if self._live():
            return self._fs("stat", "stat", path, path=path, follow=follow)[0]
        return self.g.stat(path) if follow else self.g.lstat(path)

    def readlink(self, path: str) -> str:
        if self._live():
            return self._fs("readlink", "readlink", path, path=path)[0]
        return self.g.readlink(path)

    def realpath(self, path: str) -> str:
        self._here("realpath", path)
        return self.g.realpath(path)

    def is_file(self, path: str, follow: bool = False) -> bool:
        if self._live():
            return self._test(path, follow, "S_ISREG")
        return self.g.is_file(path, follow)

    def is_dir(self, path: str, follow: bool = False) -> bool:
        if self._live():
            return self._test(path, follow, "S_ISDIR")
        return self.g.is_dir(path, follow)

    def is_symlink(self, path: str) -> bool:
        if self._live():
            return self._test(path, False, "S_ISLNK")
        return self.g.is_symlink(path)

    def exists(self, path: str) -> bool:
        if self._live():
            return self._test(path, True, None)
        return self.g.exists(path)

    def _test(self, path: str, follow: bool, kind: str | None) -> bool:
        import stat as st

        try:
            mode = self.stat(path, follow)["st_mode"]
        except VshError:
            return False
        return kind is None or getattr(st, kind)(mode)

    def checksum(self, csumtype: str, path: str) -> str:
        if self._app_only:
            import hashlib

            if csumtype not in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512"):
                self._here("checksum", path)
            h = hashlib.new(csumtype)
            for chunk in self._read_live("checksum", path):
                h.update(chunk)
            return h.hexdigest()
        self._settle()
        return self.g.checksum(csumtype, path)

    def read_chunks(self, path: str):
        if self._app_only:
            return self._read_live("download", path)
        self._settle()
        return self.g.iter_read(path)

    def download(self, remotefilename: str, filename: str) -> int:
        if self._app_only:
            total = 0
            with open(filename, "wb") as f:
                for chunk in self._read_live("download", remotefilename):
                    f.write(chunk)
                    total += len(chunk)
            return total
        self._settle()
        return self.g.download(remotefilename, filename)

    def copy_out(self, remote: str, localdir: str) -> list[str]:
        self._here("copy-out", remote)
        return self.g.copy_out(remote, localdir)

    def df(self) -> list[dict]:
        self._here("df")
        return self.g.df()

    def du(self, path: str) -> int:
        self._here("du", path)
        return self.g.du(path)

    def file(self, path: str) -> str:
        self._here("file", path)
        return self.g.file(path)

    def complete_path(self, prefix: str) -> list[str]:
        return self.g.complete_path(prefix)

    # --- inspection -------------------------------------------------------------------

    def inspect_os(self) -> list[str]:
        self._settle()
        return self.g.inspect_os()

    def inspect_get_roots(self) -> list[str]:
        self._settle()
        return self.g.inspect_get_roots()

    def inspect_get(self, root: str, item: str):
        self._settle()
        from vsh.core.errors import InvalidArgument

        if item not in INSPECT_ITEMS:
            raise InvalidArgument(f"unknown inspection item {item!r} (known: {', '.join(INSPECT_ITEMS)})")
        return getattr(self.g, "inspect_get_" + item.replace("-", "_"))(root)

    def inspect_list_applications(self, root: str) -> list[dict]:
        self._settle()
        return self.g.inspect_list_applications(root)

    def mount_inspected(self, root: str | None = None) -> str:
        self._settle()
        return self.g.mount_inspected(root)

    def inspector_report(self, applications: bool = True) -> dict:
        self._settle()
        return self.g.inspector_report(applications=applications)
