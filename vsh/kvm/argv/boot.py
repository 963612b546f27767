"""Firmware and boot: -bios or UEFI flash, a direct kernel, boot order and the boot menu."""

from __future__ import annotations

import json

from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.options import given, need_file, number, opts


def firmware(b: Builder) -> None:
    """<os><loader>: -bios for a ROM, flash blockdevs for UEFI (see pflash)."""
    os_ = b.root.find("os")
    loader = os_.find("loader")
    if b.dom.os_firmware == "efi" and (loader is None or not (loader.text or "").strip()):
        raise InvalidArgument("firmware='efi': no firmware chosen yet (vsh chooses it from QEMU's firmware "
                              "descriptors when the domain starts)")
    if b.dom.os_firmware not in (None, "efi", "bios"):
        raise Unsupported("<os firmware='%s'> is not supported on x86_64 (efi or bios)" % b.dom.os_firmware)
    if loader is not None and b.dom.os_loader_type == "pflash":
        pflash(b, os_, loader)
        return
    if loader is not None:
        if given(b.dom.os_loader_type, "rom") != "rom":
            raise Unsupported("<loader type='%s'> (pflash/UEFI) is not supported yet; type='rom' is"
                              % b.dom.os_loader_type)
        b.add("-bios", need_file((b.dom.os_loader or "").strip(), "<os><loader>"))
    if os_.find("nvram") is not None:
        raise Unsupported("<os><nvram> (UEFI variables) is not supported yet")


def pflash(b: Builder, os_, loader) -> None:
    """UEFI: the firmware code on pflash0, the domain's variable store (<nvram>) on pflash1."""
    what = "<os><loader type='pflash'>"
    if b.microvm:
        raise Unsupported("%s: machine 'microvm' has no flash firmware; it boots <os><kernel>" % what)
    if loader.get("secure") == "yes" and not b.feature_state("smm"):
        raise InvalidArgument("%s: Secure Boot (secure='yes') requires <features><smm state='on'/>" % what)
    if loader.get("format", "raw") != "raw":
        raise Unsupported("%s: firmware format '%s' is not supported (raw)" % (what, loader.get("format")))
    readonly = given(b.dom.os_loader_readonly, "yes") != "no"
    code = need_file((b.dom.os_loader or "").strip(), what)
    nvram = os_.find("nvram")
    if nvram is None and readonly:
        raise InvalidArgument("%s with readonly='yes' needs <os><nvram> (the domain's own copy of the "
                              "firmware's variable store template)" % what)
    units = [(0, code, readonly)]
    if nvram is not None:
        if nvram.get("type") not in (None, "file"):
            raise Unsupported("<os><nvram type='%s'> is not supported (a file)" % nvram.get("type"))
        path = (b.dom.os_nvram or "").strip()
        if not path:
            raise InvalidArgument("<os><nvram> names no file (vsh does not create variable stores at "
                                  "start; copy the template%s there)"
                                  % (" " + nvram.get("template") if nvram.get("template") else ""))
        units.append((1, need_file(path, "<os><nvram>"), False))
    for unit, path, ro in units:
        node = "libvirt-pflash%d" % unit
        b.add("-blockdev", json.dumps({"driver": "file", "filename": path, "node-name": node + "-storage",
                                       "read-only": ro}, separators=(",", ":")))
        b.add("-blockdev", json.dumps({"node-name": node + "-format", "read-only": ro, "driver": "raw",
                                       "file": node + "-storage"}, separators=(",", ":")))
    if loader.get("secure") == "yes":      # only code running in SMM may write the variable store
        b.add("-global", "driver=cfi.pflash01,property=secure,value=on")


def boot(b: Builder) -> None:
    """-kernel/-initrd/-append, the boot index of each device, and -boot."""
    os_ = b.root.find("os")
    kernel = b.dom.os_kernel
    if kernel is not None and kernel.strip():
        b.add("-kernel", need_file(kernel.strip(), "<os><kernel>"))
        initrd = b.dom.os_initrd
        if initrd and initrd.strip():
            b.add("-initrd", need_file(initrd.strip(), "<os><initrd>"))
        cmdline = b.dom.os_cmdline
        if cmdline:
            b.add("-append", cmdline.strip())
        if os_.findtext("dtb"):
            raise Unsupported("<os><dtb> is not supported on x86_64")
    elif b.dom.os_initrd or b.dom.os_cmdline:
        raise InvalidArgument("<os><initrd>/<cmdline> need <os><kernel>")
    elif b.microvm:
        raise InvalidArgument("machine 'microvm' boots only a kernel: add <os><kernel>")

    boot_devs = [el.get("dev") for el in os_.findall("boot")]
    per_device = b.devices.xpath("./*/boot[@order]")
    if boot_devs and per_device:
        raise InvalidArgument("per-device <boot order> cannot be used together with <os><boot dev>")
    for el in per_device:
        idx = number(el.get("order"), "<boot order>")
        if idx < 1:
            raise InvalidArgument("<boot order='%s'> must be 1 or more" % el.get("order"))
        if idx in b.bootindex.values():
            raise InvalidArgument("boot order %d is used twice" % idx)
        b.bootindex[b.key(el.getparent())] = idx
    if not per_device:
        if not boot_devs and os_.find("kernel") is None:
            boot_devs = ["hd"]
        n = 0
        for dev in boot_devs:
            target = first_boot_device(b, dev)
            if target is not None and b.key(target) not in b.bootindex:
                n += 1
                b.bootindex[b.key(target)] = n
    pairs: list[tuple[str, object]] = []
    menu = os_.find("bootmenu")
    if menu is not None and menu.get("enable") == "yes":
        pairs.append(("menu", True))
        if menu.get("timeout"):
            pairs.append(("splash-time", number(menu.get("timeout"), "<bootmenu timeout>")))
    bios = os_.find("bios")
    if bios is not None and bios.get("rebootTimeout"):
        pairs.append(("reboot-timeout", number(bios.get("rebootTimeout"), "<bios rebootTimeout>")))
    if not b.microvm:
        b.add("-boot", opts("strict=on", *pairs))


def first_boot_device(b: Builder, dev: str | None):
    """The first device element <os><boot dev=DEV> points at, or None."""
    if dev == "hd":
        r = b.devices.xpath("./disk[not(@device) or @device='disk']")
    elif dev == "cdrom":
        r = b.devices.xpath("./disk[@device='cdrom']")
    elif dev == "network":
        r = b.devices.xpath("./interface")
    elif dev == "fd":
        raise Unsupported("floppy boot (<boot dev='fd'>) is not supported")
    else:
        raise InvalidArgument("unknown <boot dev='%s'>" % dev)
    return r[0] if r else None
