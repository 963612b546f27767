"""Disks: the -blockdev chain of each <disk> (file or block, raw or qcow2, with the backing
chain the XML declares) and its -device on virtio, SCSI, SATA or IDE."""

from __future__ import annotations

import os
import re

from vsh.core.errors import InvalidArgument, Unsupported, XMLError
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.images import qcow2_backing_file, qcow2_data_file
from vsh.kvm.argv.options import given, need_file, number, opts


def disk_index(dev: str) -> int:
    """'vda' → 0, 'sdb' → 1, 'hdaa' → 26 (libvirt's rule)."""
    m = re.fullmatch(r"(?:vd|sd|hd|xvd|ubd|fd)([a-z]+)", dev)
    if not m:
        raise InvalidArgument("disk target '%s' is not a disk name like vda, sda or hda" % dev)
    idx = 0
    for ch in m.group(1):
        idx = idx * 26 + (ord(ch) - ord("a") + 1)
    return idx - 1


def disk_bus(b: Builder, disk) -> str:
    """The bus of the disk ``disk``: <target bus>, else what its target name implies."""
    if not disk.target_dev:
        raise XMLError("<disk> has no <target dev=...>")
    dev = disk.target_dev
    bus = disk.target_bus
    if bus is None:
        bus = {"vd": "virtio", "sd": "scsi", "hd": "ide"}.get(dev[:2])
        if bus is None:
            raise InvalidArgument("disk '%s': give <target bus=...>" % dev)
    return bus


def drive_address(b: Builder, disk) -> tuple[int, int, int, int]:
    """(controller, bus, target, unit) from <address type='drive'> or the target name."""
    dev = disk.target_dev
    bus = disk_bus(b, disk)
    a = disk.address
    if a is not None and a.type == "drive":
        what = "disk '%s' <address>" % dev
        return (number(a.controller, what + " controller", 0), number(a.bus, what + " bus", 0),
                number(a.target, what + " target", 0), number(a.unit, what + " unit", 0))
    idx = disk_index(dev)
    if bus == "ide":
        return 0, idx // 2, 0, idx % 2
    if bus == "sata":
        return idx // 6, 0, 0, idx % 6
    if bus == "scsi":
        return idx // 7, 0, 0, idx % 7
    return 0, 0, 0, idx


def sata_bus(b: Builder, ctrl: int, unit: int) -> str:
    """The qdev bus of SATA port ``unit`` on controller ``ctrl`` (q35's built-in AHCI is ide.N)."""
    if b.family == "q35" and ctrl == 0:
        return "ide.%d" % unit
    return "sata%d.%d" % (ctrl, unit)


def disk(b: Builder, disk, n: int) -> None:
    """<disk> number ``n``: its -blockdev chain and its -device."""
    device = given(disk.device, "disk")
    dtype = given(disk.type, "file")
    dev = disk.target_dev
    what = "disk '%s'" % dev
    bus = disk_bus(b, disk)
    if device not in ("disk", "cdrom"):
        raise Unsupported("%s: device='%s' is not supported (disk or cdrom)" % (what, device))
    if disk.transient:
        raise Unsupported("%s: <transient/> disks are not supported yet" % what)
    path = None
    if disk.has_source:
        if dtype == "file":
            path = disk.source_file
        elif dtype == "block":
            path = disk.source_dev
        else:
            raise Unsupported("%s: disk type '%s' is not supported (file or block)" % (what, dtype))
    elif dtype not in ("file", "block"):
        raise Unsupported("%s: disk type '%s' is not supported (file or block)" % (what, dtype))
    if disk.source_fdgroup is not None and path:
        group = disk.source_fdgroup
        if group not in b.fdsets:
            raise InvalidArgument("invalid argument: file descriptor group '%s' was not associated with the "
                                  "domain" % group)
        if (disk.driver_type or "raw") != "raw":
            raise Unsupported("%s: a disk opened through fd group '%s' must be raw here (vsh reads a qcow2 "
                              "image's header before QEMU opens it, and cannot through a descriptor)"
                              % (what, group))
        path = "/dev/fdset/%d" % b.fdsets[group]      # QEMU opens the set's descriptor, not the path
    if path and not os.path.exists(path) and disk.source_startup_policy == "optional":
        path = None  # libvirt drops an optional source that is missing
        if device == "disk":
            return
    if not path and device == "disk":
        raise InvalidArgument("%s has no <source>" % what)

    readonly = disk.readonly or device == "cdrom"
    node = None
    if path:
        node = blockdev_chain(b, disk, n, path, dtype, device, readonly, what)

    ctrl, dbus, target, unit = drive_address(b, disk)
    cache = disk.driver_cache if disk.driver_cache != "default" else None
    wc = {"none": True, "writeback": True, "unsafe": True,
          "writethrough": False, "directsync": False}.get(cache) if cache else None
    common: list[tuple[str, object] | None] = [("drive", node)]
    serial = disk.serial
    if device == "cdrom" and bus == "virtio":
        raise Unsupported("%s: a cdrom cannot be on bus 'virtio' (use sata, scsi or ide)" % what)
    if bus == "virtio":
        pairs: list[tuple[str, object] | None] = [*common, ("id", "virtio-disk%d" % disk_index(dev))]
        if disk.driver_queues:
            pairs.append(("num-queues", number(disk.driver_queues, what + " queues")))
        pairs.append(b.iothread(disk.driver_iothread, what))
        if disk.iothread_mapping:
            raise Unsupported("%s: the per-queue <iothreads> mapping needs QEMU 9.0 or later "
                              "(virtio-blk iothread-vq-mapping); this QEMU cannot map queues to iothreads"
                              % what)
        qdev = b.virtio("blk")
        pairs += b.dev_addr(disk, what)
    elif bus == "scsi":
        qdev = "scsi-cd" if device == "cdrom" else "scsi-hd"
        where = [("channel", 0), ("scsi-id", target), ("lun", unit)]
        if b.scsi_ctrls.get(ctrl) == "lsilogic":     # a parallel SCSI bus: one LUN per target id
            if target != 0:
                raise InvalidArgument("%s: target must be 0 on an lsilogic controller (the unit is the id)" % what)
            where = [("scsi-id", unit)]
        pairs = [("bus", "scsi%d.%d" % (ctrl, dbus)), *where,
                 *common, ("id", "scsi%d-%d-%d-%d" % (ctrl, dbus, target, unit))]
    elif bus == "sata":
        b.need_pci("SATA (%s)" % what)
        if unit > 5:
            raise InvalidArgument("%s: SATA unit %d is out of range (0-5)" % (what, unit))
        qdev = "ide-cd" if device == "cdrom" else "ide-hd"
        pairs = [("bus", sata_bus(b, ctrl, unit)), *common, ("id", "sata%d-0-%d" % (ctrl, unit))]
    elif bus == "ide":
        if b.family != "pc":
            raise Unsupported("%s: machine '%s' has no IDE controller; use bus='sata'%s"
                              % (what, b.machine, "" if b.family == "q35" else " (pc/q35) or 'virtio'"))
        if ctrl != 0 or dbus > 1 or unit > 1:
            raise InvalidArgument("%s: IDE address %d:%d:%d is out of range (bus 0-1, unit 0-1)"
                                  % (what, ctrl, dbus, unit))
        qdev = "ide-cd" if device == "cdrom" else "ide-hd"
        pairs = [("bus", "ide.%d" % dbus), ("unit", unit), *common, ("id", "ide0-%d-%d" % (dbus, unit))]
    elif bus == "usb":
        if device != "disk":
            raise Unsupported("%s: a USB %s is not supported (usb-storage disks only)" % (what, device))
        uid = b.usb_ctrls.get(0)
        if uid is None:
            raise InvalidArgument("%s needs a <controller type='usb'> with a model other than none" % what)
        qdev = "usb-storage"
        pairs = [("bus", "%s.0" % uid), *common, ("id", "usb-disk%d" % disk_index(dev))]
        a = disk.address
        if a is not None and a.type == "usb" and a.port:
            pairs.insert(1, ("port", a.port))
    else:
        raise Unsupported("%s: bus '%s' is not supported (virtio, scsi, sata, ide, usb)" % (what, bus))
    if serial:
        pairs.append(("serial", serial.strip()))
    if wc is not None and device == "disk":
        pairs.append(("write-cache", wc))
    if disk.shareable:
        pairs.append(("share-rw", True))
    for attr in ("logical_block_size", "physical_block_size"):
        value = getattr(disk, attr)
        if value:
            pairs.append((attr, number(value, what + " " + attr)))
    pairs += error_policy(disk, what)
    pairs.append(b.bootprop(disk))
    b.add("-device", opts(qdev, *pairs))


#: ``<driver error_policy=…>`` → QEMU's werror (what a failed write does); rerror_policy the same
#: for reads, without ``enospace``
ERROR_POLICIES = {"stop": "stop", "report": "report", "ignore": "ignore", "enospace": "enospc"}


def error_policy(disk, what: str) -> list[tuple[str, object]]:
    """The device's werror/rerror, as libvirt sets them: a read policy follows the write policy
    unless given, except after ``enospace`` (QEMU has no such read policy); neither given: QEMU's
    defaults (a write stops the guest on ENOSPC only, a read error is reported)."""
    wpolicy, rpolicy = disk.driver_error_policy, disk.driver_rerror_policy
    if wpolicy is not None and wpolicy not in ERROR_POLICIES:
        raise InvalidArgument("%s: unknown error_policy '%s' (stop, report, ignore or enospace)" % (what, wpolicy))
    if rpolicy is not None and (rpolicy not in ERROR_POLICIES or rpolicy == "enospace"):
        raise InvalidArgument("%s: unknown rerror_policy '%s' (stop, report or ignore)" % (what, rpolicy))
    if rpolicy is None and wpolicy != "enospace":
        rpolicy = wpolicy
    return [(key, ERROR_POLICIES[value]) for key, value in (("werror", wpolicy), ("rerror", rpolicy))
            if value is not None]


def blockdev_chain(b: Builder, disk, n: int, path: str, dtype: str, device: str, readonly: bool,
                   what: str) -> str:
    """-blockdev nodes for one disk (and its declared backing chain); returns the top node name."""
    fmt = disk.driver_type or "raw"   # libvirt's default: raw, never probed
    if given(disk.driver_name, "qemu") != "qemu":
        raise Unsupported("%s: <driver name='%s'> is not supported (qemu)" % (what, disk.driver_name))
    cache = disk.driver_cache if disk.driver_cache != "default" else None
    cache_opts = None
    if cache:
        modes = {"none": (True, False), "writeback": (False, False), "writethrough": (False, False),
                 "directsync": (True, False), "unsafe": (False, True)}
        if cache not in modes:
            raise InvalidArgument("%s: unknown cache mode '%s'" % (what, cache))
        direct, noflush = modes[cache]
        cache_opts = {"direct": direct, "no-flush": noflush}
    io = disk.driver_io
    if io and io not in ("native", "threads", "io_uring"):
        raise InvalidArgument("%s: unknown io mode '%s'" % (what, io))
    if io == "native" and cache not in ("none", "directsync"):
        raise InvalidArgument("%s: io='native' needs cache='none' or 'directsync'" % what)
    discard = disk.driver_discard
    if discard and discard not in ("unmap", "ignore"):
        raise InvalidArgument("%s: unknown discard mode '%s'" % (what, discard))
    dz = disk.driver_detect_zeroes
    if dz and dz not in ("on", "off", "unmap"):
        raise InvalidArgument("%s: unknown detect_zeroes mode '%s'" % (what, dz))

    def nodes(prefix: str, path: str, dtype: str, fmt: str | None, ro: bool, bs, level_what: str) -> str:
        if not path.startswith("/dev/fdset/"):
            need_file(path, level_what)
        if not fmt:
            raise InvalidArgument("%s: no format given (<driver type='raw|qcow2'>); vsh never probes "
                                  "a disk format" % level_what)
        if fmt not in ("raw", "qcow2"):
            raise Unsupported("%s: format '%s' is not supported (raw or qcow2)" % (level_what, fmt))
        if dtype == "file":
            driver = "file"
        else:
            driver = "host_cdrom" if device == "cdrom" else "host_device"
        fnode = {"driver": driver, "filename": path, "node-name": prefix + "-file", "read-only": ro}
        if io:
            fnode["aio"] = io
        if discard:
            fnode["discard"] = discard
        if cache_opts:
            fnode["cache"] = dict(cache_opts)
        fmtnode: dict = {"driver": fmt, "node-name": prefix + "-fmt", "file": prefix + "-file", "read-only": ro}
        if discard:
            fmtnode["discard"] = discard
        if cache_opts:
            fmtnode["cache"] = dict(cache_opts)
        if dz and prefix == "disk%d" % n:
            fmtnode["detect-zeroes"] = dz
        if fmt == "qcow2":
            data_file = qcow2_data_file(path)
            if data_file is not None:
                raise Unsupported(
                    "%s: qcow2 image '%s' keeps its data in an external file%s; vsh does not open "
                    "files that an image names (external data files are not supported)"
                    % (level_what, path, " '%s'" % data_file if data_file else ""))
            if bs is None:
                named = qcow2_backing_file(path)
                if named:
                    raise InvalidArgument(
                        "%s: qcow2 image '%s' names a backing file '%s' that the domain XML does not "
                        "declare; vsh does not follow it. Declare it with <backingStore type='file'>"
                        "<format type='raw|qcow2'/><source file='...'/></backingStore> if you trust it"
                        % (level_what, path, named))
                fmtnode["backing"] = None
            elif not bs.has_source:
                fmtnode["backing"] = None  # <backingStore/>: declared to have none
            else:
                btype = given(bs.type, "file")
                if btype not in ("file", "block"):
                    raise Unsupported("%s: backing store type '%s' is not supported" % (level_what, btype))
                bpath = bs.source_file if btype == "file" else bs.source_dev
                depth = int(prefix.rsplit("b", 1)[-1]) + 1 if "-b" in prefix else 1
                if depth > 32:
                    raise InvalidArgument("%s: backing chain deeper than 32" % what)
                child = nodes("disk%d-b%d" % (n, depth), bpath, btype, bs.format, True, bs.backing_store,
                              "%s backing store '%s'" % (what, bpath))
                fmtnode["backing"] = child
        elif bs is not None and bs.has_source:
            raise InvalidArgument("%s: a raw image cannot have a <backingStore>" % level_what)
        import json

        b.add("-blockdev", json.dumps(fnode, separators=(",", ":")))
        b.add("-blockdev", json.dumps(fmtnode, separators=(",", ":")))
        return prefix + "-fmt"

    return nodes("disk%d" % n, path, dtype, fmt, readonly, disk.backing_store, what)
