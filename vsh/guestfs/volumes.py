"""Block devices inside disk images, named as guestfish names them.

Disks are ``/dev/sda``, ``/dev/sdb`` ... in the order they were added;
partitions ``/dev/sda1`` ... with the kernel's numbering (MBR primary slots
1-4, the extended partition included, logical partitions from 5; GPT entry
numbers); LVM2 logical volumes ``/dev/VG/LV``; unlocked LUKS volumes
``/dev/mapper/NAME``.

Libraries: libblkid (partition tables, superblock type/label/uuid; see
blkid.py), libvsmbr (the chain of logical MBR partitions), libvslvm (LVM2
volume groups, linear logical volumes) and libluksde (LUKS1).  A device that
cannot be read adds a warning to :attr:`Volumes.warnings`; it never stops the
scan of the others.
"""

from __future__ import annotations

import re

from vsh.core.errors import InvalidArgument, NotFound, Unsupported, VshError

from . import blkid
from .image import LIB_ERRORS, Block, LibBlock, SliceBlock, lib_message

_ALIAS_RE = re.compile(r"^/dev/(?:[hv]d|xvd)([a-z]+)(\d*)$")
EXTENDED_IDS = (0x05, 0x0F, 0x85)


def disk_name(index: int) -> str:
    """0 → /dev/sda, 25 → /dev/sdz, 26 → /dev/sdaa (the kernel's scheme)."""
    letters = ""
    n = index + 1
    while n > 0:
        n, r = divmod(n - 1, 26)
        letters = chr(ord("a") + r) + letters
    return "/dev/sd" + letters


def canonical_device(name: str) -> str:
    """guestfish accepts /dev/vda, /dev/hda, /dev/xvda for /dev/sda."""
    m = _ALIAS_RE.match(name)
    if m:
        return f"/dev/sd{m.group(1)}{m.group(2)}"
    return name


class Device:
    """One device of the session: a disk, a partition, a logical volume or an unlocked LUKS volume."""

    __slots__ = ("name", "kind", "block", "disk", "partition", "parttype", "probe", "extra")

    def __init__(self, name: str, kind: str, block: Block, disk: str | None = None,
                 partition: blkid.Partition | None = None, parttype: str | None = None,
                 probe: blkid.ProbeResult | None = None, extra: dict | None = None):
        self.name = name
        self.kind = kind                # disk | partition | lv | luks
        self.block = block
        self.disk = disk                # the whole disk a partition is on
        self.partition = partition
        self.parttype = parttype        # disks: "gpt" / "msdos" / None
        self.probe = probe
        self.extra = {} if extra is None else extra

    def __repr__(self) -> str:
        return f"Device(name={self.name!r}, kind={self.kind!r}, disk={self.disk!r}, parttype={self.parttype!r})"

    @property
    def size(self) -> int:
        return self.block.size

    @property
    def vfs_type(self) -> str:
        return (self.probe.values.get("TYPE") if self.probe else None) or ""

    @property
    def label(self) -> str:
        if not self.probe:
            return ""
        # A FAT label lives in the root directory, which a probe of a non-raw
        # device does not see (blkid.HEAD); the boot-sector copy is the fallback.
        return self.probe.values.get("LABEL") or self.probe.values.get("LABEL_FATBOOT") or ""

    @property
    def uuid(self) -> str:
        return (self.probe.values.get("UUID") if self.probe else None) or ""


class Volumes:
    """All devices found on a list of opened disk images."""

    def __init__(self, disks: list[Block]):
        self.devices: dict[str, Device] = {}
        self.warnings: list[str] = []
        self.vgs: dict[str, dict] = {}
        self._lvm_handles = []
        for i, img in enumerate(disks):
            name = disk_name(i)
            self.devices[name] = Device(name, "disk", img)
        for name in [n for n, d in self.devices.items() if d.kind == "disk"]:
            self._scan_disk(self.devices[name])
        self._scan_lvm()

    # --- scanning -----------------------------------------------------------

    def _warn(self, msg: str) -> None:
        self.warnings.append(msg)

    def _probe(self, dev: Device, partitions: bool = False) -> None:
        try:
            dev.probe = blkid.probe(dev.block, partitions=partitions)
        except VshError as e:
            dev.probe = blkid.ProbeResult()
            self._warn(f"{dev.name}: cannot be read: {e}")

    def _scan_disk(self, disk: Device) -> None:
        self._probe(disk, partitions=True)
        pr = disk.probe
        if not pr.pttype or (pr.values.get("TYPE") and not pr.partitions):
            return
        disk.parttype = "msdos" if pr.pttype == "dos" else pr.pttype
        parts = [p for p in pr.partitions if not p.logical]
        if any(p.extended or p.mbr_id in EXTENDED_IDS for p in parts):
            parts += self._logical_partitions(disk, parts)
        parts.sort(key=lambda p: p.partno)
        for p in parts:
            name = f"{disk.name}{p.partno}"
            if p.start >= disk.size:
                self._warn(f"{name}: the partition starts past the end of the disk; ignored")
                continue
            block = SliceBlock(disk.block, p.start, p.size, name)
            if block.beyond_end:
                self._warn(f"{name}: the partition extends past the end of the disk")
            dev = Device(name, "partition", block, disk=disk.name, partition=p)
            self.devices[name] = dev
            if p.extended or p.mbr_id in EXTENDED_IDS:
                dev.probe = blkid.ProbeResult()
                continue
            if block.beyond_end:
                dev.probe = blkid.ProbeResult()
                continue
            self._probe(dev)

    def _logical_partitions(self, disk: Device, primaries) -> list:
        import pyvsmbr

        starts = {p.start for p in primaries}
        vol = pyvsmbr.volume()
        try:
            vol.open_file_object(disk.block.fileobj())
            found = []
            for i in range(vol.get_number_of_partitions()):
                part = vol.get_partition(i)
                start, size, ptype = part.get_volume_offset(), part.get_size(), part.get_type()
                if start in starts:
                    continue
                found.append(blkid.Partition(
                    partno=5 + len(found), start=start, size=size, mbr_id=ptype, type_guid=None,
                    uuid=None, name=None, extended=False, logical=True))
            return found
        except LIB_ERRORS as e:
            self._warn(f"{disk.name}: cannot read the logical partitions: {lib_message(e)}")
            return []
        finally:
            try:
                vol.close()
            except Exception:  # noqa: BLE001
                pass

    def _scan_lvm(self) -> None:
        """Find volume groups on every LVM2_member device not already used."""
        import pyvslvm

        used = {pv for vg in self.vgs.values() for pv in vg["pvs"]}
        pvs = [d for d in self.devices.values() if d.vfs_type == "LVM2_member" and d.name not in used]
        groups: dict[str, dict] = {}
        for dev in pvs:
            h = pyvslvm.handle()
            try:
                h.open_file_object(dev.block.fileobj())
                vg = h.get_volume_group()
                key = vg.get_identifier()
                g = groups.setdefault(key, {"name": vg.get_name(), "handle": h, "first": dev,
                                            "order": [vg.get_physical_volume(i).get_identifier()
                                                      for i in range(vg.get_number_of_physical_volumes())],
                                            "devs": {}})
                g["devs"][dev.uuid] = dev
                if g["handle"] is not h:
                    h.close()
            except LIB_ERRORS as e:
                self._warn(f"{dev.name}: unreadable LVM physical volume: {lib_message(e)}")
        for key, g in groups.items():
            name = g["name"]
            if name in self.vgs:
                self._warn(f"volume group {name} appears twice (uuid {key}); the second one is ignored")
                continue
            missing = [u for u in g["order"] if u not in g["devs"]]
            if missing:
                self._warn(f"volume group {name}: physical volume {missing[0]} is missing; its logical volumes are not available")
                continue
            files = [g["devs"][u].block.fileobj() for u in g["order"]]
            h = g["handle"]
            try:
                h.open_physical_volume_files_as_file_objects(files)
                vg = h.get_volume_group()
                lvs = []
                for i in range(vg.get_number_of_logical_volumes()):
                    lv = vg.get_logical_volume(i)
                    lvname = lv.get_name()
                    devname = f"/dev/{name}/{lvname}"
                    try:
                        size = lv.get_size()
                    except LIB_ERRORS as e:
                        self._warn(f"{devname}: unsupported logical volume: {lib_message(e)}")
                        continue
                    dev = Device(devname, "lv", LibBlock(lv, size, devname, keep=[]),
                                 extra={"vg": name, "lv": lvname, "uuid": lv.get_identifier()})
                    self.devices[devname] = dev
                    self._probe(dev)
                    lvs.append(devname)
            except LIB_ERRORS as e:
                self._warn(f"volume group {name}: cannot be read: {lib_message(e)}")
                continue
            self._lvm_handles.append((h, files))
            self.vgs[name] = {"name": name, "uuid": key, "pvs": [g["devs"][u].name for u in g["order"]],
                              "lvs": sorted(lvs)}

    # --- LUKS -----------------------------------------------------------------

    def luks_open(self, device: str, key: str | bytes, mapname: str) -> Device:
        import pyluksde

        dev = self.get(device)
        if not re.fullmatch(r"[A-Za-z0-9_.+-]{1,64}", mapname or ""):
            raise InvalidArgument(f"invalid LUKS mapping name {mapname!r}")
        out = f"/dev/mapper/{mapname}"
        if out in self.devices:
            raise InvalidArgument(f"{out} already exists")
        if dev.vfs_type != "crypto_LUKS":
            raise InvalidArgument(f"{dev.name}: is not a LUKS device (it is {dev.vfs_type or 'unknown'})")
        if dev.probe.values.get("VERSION", "1") != "1":
            raise Unsupported(f"{dev.name}: LUKS{dev.probe.values.get('VERSION')} needs the appliance backend (only LUKS1 is read in-process)")
        v = pyluksde.volume()
        fobj = dev.block.fileobj()
        try:
            v.set_password(key.decode() if isinstance(key, bytes) else key)
            v.open_file_object(fobj)
            if v.is_locked():
                v.close()
                raise VshError(f"{dev.name}: cannot unlock the LUKS volume: wrong key")
            size = v.get_size()
        except LIB_ERRORS as e:
            raise VshError(f"{dev.name}: cannot open the LUKS volume: {lib_message(e)}") from None
        new = Device(out, "luks", LibBlock(v, size, out, keep=[fobj]), extra={"luks_device": dev.name, "luks_key": key})
        self.devices[out] = new
        self._probe(new)
        if new.vfs_type == "LVM2_member":
            self._scan_lvm()
        return new

    # --- queries --------------------------------------------------------------

    def get(self, name: str) -> Device:
        cname = canonical_device(name)
        dev = self.devices.get(cname)
        if dev is None:
            m = re.fullmatch(r"/dev/mapper/(.+)", cname)
            if m:  # /dev/mapper/VG-LV (dashes in names doubled) → /dev/VG/LV
                parts = re.split(r"(?<!-)-(?!-)", m.group(1))
                if len(parts) == 2:
                    vg, lv = (p.replace("--", "-") for p in parts)
                    dev = self.devices.get(f"/dev/{vg}/{lv}")
        if dev is None:
            raise NotFound(f"{name}: no such device")
        return dev

    def list_devices(self) -> list[str]:
        return [d.name for d in self.devices.values() if d.kind == "disk"]

    def list_partitions(self) -> list[str]:
        return [d.name for d in self.devices.values() if d.kind == "partition"]

    def partitions_of(self, disk: str) -> list[Device]:
        disk = self.get(disk).name
        return [d for d in self.devices.values() if d.kind == "partition" and d.disk == disk]

    def list_filesystems(self) -> dict[str, str]:
        """Device → vfs type, like guestfish ``list-filesystems``."""
        out = {}
        for d in self.devices.values():
            if d.kind == "disk" and self.partitions_of(d.name):
                continue
            if d.kind == "partition" and d.partition and (d.partition.extended or d.partition.mbr_id in EXTENDED_IDS):
                continue
            t = d.vfs_type
            if t == "LVM2_member":
                continue
            out[d.name] = t or "unknown"
        return out

    def pvs(self) -> list[str]:
        return [pv for vg in self.vgs.values() for pv in vg["pvs"]]

    def vgs_list(self) -> list[str]:
        return sorted(self.vgs)

    def lvs(self) -> list[str]:
        return sorted(lv for vg in self.vgs.values() for lv in vg["lvs"])

    def find_by(self, key: str, value: str) -> Device | None:
        """First device whose blkid value *key* (UUID, LABEL, PARTUUID, PARTLABEL) is *value*."""
        value_l = value.lower()
        for d in self.devices.values():
            if key == "PARTUUID":
                v = d.partition.uuid if d.partition else None
            elif key == "PARTLABEL":
                v = d.partition.name if d.partition else None
            else:
                v = d.probe.values.get(key) if d.probe else None
            if v is None:
                continue
            if (v.lower() == value_l) if key in ("UUID", "PARTUUID") else (v == value):
                if d.kind == "disk" and self.partitions_of(d.name):
                    continue
                return d
        return None

    def close(self) -> None:
        for d in self.devices.values():
            if d.kind in ("lv", "luks"):
                d.block.close()
        for h, _files in self._lvm_handles:
            try:
                h.close()
            except Exception:  # noqa: BLE001
                pass
        self._lvm_handles = []
