"""Firmware and boot: -bios or UEFI flash, a direct kernel, boot order and the boot menu."""

from __future__ import annotations

import json

from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.options import given, need_file, number, opts


def firmware(b: Builder) -> None:
    """<os><loader>: -bios for a ROM, flash blockdevs for UEFI (see pflash)."""
    dom = b.dom
    if dom.os_firmware == "efi" and not (dom.os_loader or "").strip():
        raise InvalidArgument("firmware='efi': no firmware chosen yet (vsh chooses it from QEMU's firmware "
                              "descriptors when the domain starts)")
    if b.dom.os_firmware not in (None, "efi", "bios"):
        raise Unsupported("<os firmware='%s'> is not supported on x86_64 (efi or bios)" % b.dom.os_firmware)
    if dom.has_loader and dom.os_loader_type == "pflash":
        pflash(b)
        return
    if dom.has_loader:
        if given(b.dom.os_loader_type, "rom") != "rom":
            raise Unsupported("<loader type='%s'> (pflash/UEFI) is not supported yet; type='rom' is"
                              % b.dom.os_loader_type)
        b.add("-bios", need_file((b.dom.os_loader or "").strip(), "<os><loader>"))
    if dom.has_nvram:
        raise Unsupported("<os><nvram> (UEFI variables) is not supported yet")


def pflash(b: Builder) -> None:
    """UEFI: the firmware code on pflash0, the domain's variable store (<nvram>) on pflash1."""
    what = "<os><loader type='pflash'>"
    dom = b.dom
    if b.microvm:
        raise Unsupported("%s: machine 'microvm' has no flash firmware; it boots <os><kernel>" % what)
    if dom.os_loader_secure == "yes" and not dom.feature_state("smm"):
        raise InvalidArgument("%s: Secure Boot (secure='yes') requires <features><smm state='on'/>" % what)
    if given(dom.os_loader_format, "raw") != "raw":
        raise Unsupported("%s: firmware format '%s' is not supported (raw)" % (what, dom.os_loader_format))
    readonly = given(dom.os_loader_readonly, "yes") != "no"
    code = need_file((dom.os_loader or "").strip(), what)
    if not dom.has_nvram and readonly:
        raise InvalidArgument("%s with readonly='yes' needs <os><nvram> (the domain's own copy of the "
                              "firmware's variable store template)" % what)
    units = [(0, code, readonly)]
    if dom.has_nvram:
        if dom.os_nvram_type not in (None, "file"):
            raise Unsupported("<os><nvram type='%s'> is not supported (a file)" % dom.os_nvram_type)
        path = (dom.os_nvram or "").strip()
        if not path:
            raise InvalidArgument("<os><nvram> names no file (vsh does not create variable stores at "
                                  "start; copy the template%s there)"
                                  % (" " + dom.os_nvram_template if dom.os_nvram_template else ""))
        units.append((1, need_file(path, "<os><nvram>"), False))
    for unit, path, ro in units:
        node = "libvirt-pflash%d" % unit
        b.add("-blockdev", json.dumps({"driver": "file", "filename": path, "node-name": node + "-storage",
                                       "read-only": ro}, separators=(",", ":")))
        b.add("-blockdev", json.dumps({"node-name": node + "-format", "read-only": ro, "driver": "raw",
                                       "file": node + "-storage"}, separators=(",", ":")))
    if dom.os_loader_secure == "yes":      # only code running in SMM may write the variable store
        b.add("-global", "driver=cfi.pflash01,property=secure,value=on")


def boot(b: Builder) -> None:
    """-kernel/-initrd/-append, the boot index of each device, and -boot."""
    kernel = b.dom.os_kernel
    if kernel is not None and kernel.strip():
        b.add("-kernel", need_file(kernel.strip(), "<os><kernel>"))
        initrd = b.dom.os_initrd
        if initrd and initrd.strip():
            b.add("-initrd", need_file(initrd.strip(), "<os><initrd>"))
        cmdline = b.dom.os_cmdline
        if cmdline:
            b.add("-append", cmdline.strip())
        if b.dom.os_dtb:
            raise Unsupported("<os><dtb> is not supported on x86_64")
    elif b.dom.os_initrd or b.dom.os_cmdline:
        raise InvalidArgument("<os><initrd>/<cmdline> need <os><kernel>")
    elif b.microvm:
        raise InvalidArgument("machine 'microvm' boots only a kernel: add <os><kernel>")

    boot_devs = b.dom.os_boot_list
    per_device = [dev for dev in b.dom.devices() if dev.raw("boot_order") is not None]
    if boot_devs and per_device:
        raise InvalidArgument("per-device <boot order> cannot be used together with <os><boot dev>")
    for dev in per_device:
        order = dev.raw("boot_order")
        idx = number(order, "<boot order>")
        if idx < 1:
            raise InvalidArgument("<boot order='%s'> must be 1 or more" % order)
        if idx in b.bootindex.values():
            raise InvalidArgument("boot order %d is used twice" % idx)
        b.bootindex[dev.key] = idx
    if not per_device:
        if not boot_devs and not b.dom.has_kernel:
            boot_devs = ["hd"]
        n = 0
        for dev in boot_devs:
            target = first_boot_device(b, dev)
            if target is not None and target.key not in b.bootindex:
                n += 1
                b.bootindex[target.key] = n
    pairs: list[tuple[str, object]] = []
    if b.dom.raw("os_bootmenu") == "yes":
        pairs.append(("menu", True))
        if b.dom.os_bootmenu_timeout:
            pairs.append(("splash-time", number(b.dom.os_bootmenu_timeout, "<bootmenu timeout>")))
    if b.dom.os_bios_reboot_timeout:
        pairs.append(("reboot-timeout", number(b.dom.os_bios_reboot_timeout, "<bios rebootTimeout>")))
    if not b.microvm:
        b.add("-boot", opts("strict=on", *pairs))


def first_boot_device(b: Builder, dev: str | None):
    """The first device <os><boot dev=DEV> points at, or None."""
    if dev == "hd":
        r = [d for d in b.dom.disks if d.device in (None, "disk")]
    elif dev == "cdrom":
        r = [d for d in b.dom.disks if d.device == "cdrom"]
    elif dev == "network":
        r = b.dom.interfaces
    elif dev == "fd":
        raise Unsupported("floppy boot (<boot dev='fd'>) is not supported")
    else:
        raise InvalidArgument("unknown <boot dev='%s'>" % dev)
    return r[0] if r else None
