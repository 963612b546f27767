"""The other devices: random number generators, the memory balloon, watchdogs, panic
notifiers, host PCI devices (VFIO), USB hubs and vsock."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.options import given, need_file, number, opts, usb_port


def rng(b: Builder, dev, n: int) -> None:
    """<rng> number ``n``: an rng-random or rng-builtin object and a virtio-rng device."""
    what = "<rng> #%d" % n
    if dev.model != "virtio":
        raise Unsupported("%s: model '%s' is not supported (virtio)" % (what, dev.model))
    bmodel = dev.backend_model if dev.has_backend else "random"
    oid = "objrng%d" % n
    if bmodel == "random":
        src = dev.backend.strip() if dev.backend else "/dev/urandom"
        if src not in ("/dev/random", "/dev/urandom", "/dev/hwrng"):
            raise InvalidArgument("%s: backend '%s' must be /dev/urandom, /dev/random or /dev/hwrng" % (what, src))
        need_file(src, what)
        b.add("-object", opts("rng-random", ("id", oid), ("filename", src)))
    elif bmodel == "builtin":
        b.add("-object", opts("rng-builtin", ("id", oid)))
    else:
        raise Unsupported("%s: backend model '%s' is not supported (random, builtin)" % (what, bmodel))
    pairs: list[tuple[str, object]] = [("rng", oid), ("id", "rng%d" % n)]
    if dev.has_rate:
        pairs.append(("max-bytes", number(dev.rate_bytes, what + " rate bytes")))
        pairs.append(("period", number(dev.rate_period, what + " rate period", 1000)))
    b.add("-device", opts(b.virtio("rng"), *pairs, *b.dev_addr(dev, what)))


def memballoon(b: Builder, dev, n: int) -> None:
    """<memballoon model='virtio'> (or none)."""
    model = dev.model
    if model == "none":
        return
    what = "<memballoon>"
    if model != "virtio":
        raise Unsupported("%s model '%s' is not supported (virtio, none)" % (what, model))
    pairs: list[tuple[str, object]] = [("id", "balloon%d" % n)]
    if dev.autodeflate == "on":
        pairs.append(("deflate-on-oom", True))
    if dev.free_page_reporting == "on":
        pairs.append(("free-page-reporting", True))
    b.add("-device", opts(b.virtio("balloon"), *pairs, *b.dev_addr(dev, what)))


def watchdog(b: Builder, dev, n: int) -> None:
    """<watchdog>: i6300esb, ib700 or q35's iTCO (its action is in machine.actions)."""
    model = dev.model
    what = "<watchdog model='%s'>" % model
    if model == "i6300esb":
        b.need_pci(what)
        b.add("-device", opts("i6300esb", ("id", "watchdog%d" % n), *b.pci.props(dev, what)))
    elif model == "ib700":
        b.add("-device", opts("ib700", ("id", "watchdog%d" % n)))
    elif model == "itco":
        if b.family != "q35":
            raise Unsupported("%s needs machine q35 (it is part of its ICH9 chipset)" % what)
        b.add("-global", "ICH9-LPC.noreboot=off")
    else:
        raise Unsupported("%s is not supported (i6300esb, ib700, itco)" % what)


def panic(b: Builder, dev, n: int) -> None:
    """<panic>: pvpanic on ISA or PCI (QEMU reports GUEST_PANICKED)."""
    model = given(dev.model, "isa")
    what = "<panic model='%s'>" % model
    if model == "isa":
        pairs: list[tuple[str, object]] = [("id", "panic%d" % n)]
        a = dev.address
        if a is not None and a.type == "isa" and a.iobase:
            pairs.append(("ioport", number(a.iobase, what + " iobase")))
        b.add("-device", opts("pvpanic", *pairs))
    elif model == "pvpanic":
        b.need_pci(what)
        b.add("-device", opts("pvpanic-pci", ("id", "panic%d" % n), *b.pci.props(dev, what)))
    else:
        raise Unsupported("%s is not supported (isa)" % what)


def hostdev(b: Builder, dev, n: int) -> None:
    """<hostdev> number ``n``: a host PCI device through VFIO."""
    t = dev.type
    what = "<hostdev type='%s'>" % t
    if given(dev.mode, "subsystem") != "subsystem" or t != "pci":
        raise Unsupported("%s is not supported (PCI subsystem devices only)" % what)
    if not dev.has_source_address:
        raise InvalidArgument("%s has no <source><address>" % what)
    host_addr = "%04x:%02x:%02x.%x" % (number(dev.address_domain, what + " domain", 0),
                                       number(dev.address_bus, what + " bus"),
                                       number(dev.address_slot, what + " slot"),
                                       number(dev.address_function, what + " function", 0))
    if dev.driver_name not in (None, "vfio"):
        raise Unsupported("%s: driver '%s' is not supported (vfio)" % (what, dev.driver_name))
    if not getattr(b.host, "iommu_groups", False):
        raise Unsupported("PCI device %s needs VFIO, and this host has no IOMMU groups (enable the IOMMU: "
                          "intel_iommu=on or amd_iommu=on on the kernel command line)" % host_addr)
    b.need_pci(what)
    pairs: list[tuple[str, object] | None] = [("host", host_addr), ("id", "hostdev%d" % n)]
    pairs += b.pci.props(dev, what)
    pairs.append(b.rom(dev, what))
    pairs.append(b.bootprop(dev))
    b.add("-device", opts("vfio-pci", *pairs))


def hub(b: Builder, dev, n: int) -> None:
    """<hub type='usb'>: a usb-hub on the first USB controller."""
    what = "<hub type='%s'>" % dev.type
    if dev.type != "usb":
        raise Unsupported("%s is not supported (usb)" % what)
    if 0 not in b.usb_ctrls:
        raise InvalidArgument("%s needs a <controller type='usb'> with a model other than none" % what)
    b.add("-device", opts("usb-hub", ("id", "hub%d" % n), ("bus", "%s.0" % b.usb_ctrls[0]), usb_port(dev)))


#: The device vhost-vsock needs on the host.
VHOST_VSOCK = "/dev/vhost-vsock"


def vsock(b: Builder, dev, n: int) -> None:
    """<vsock model='virtio'>: vhost-vsock with the guest CID the XML gives."""
    import os

    what = "<vsock>"
    if given(dev.model, "virtio") != "virtio":
        raise Unsupported("%s model '%s' is not supported (virtio)" % (what, dev.model))
    if not os.path.exists(VHOST_VSOCK):
        raise Unsupported("%s needs %s, which this host does not have (load the vhost_vsock kernel module)"
                          % (what, VHOST_VSOCK))
    if dev.cid_address is None:
        raise Unsupported("%s: give the guest CID (<cid address='N'/>); vsh does not choose one" % what)
    guest_cid = number(dev.cid_address, what + " cid")
    if guest_cid < 3:
        raise InvalidArgument("%s: guest CID %d is reserved (use 3 or more)" % (what, guest_cid))
    b.add("-device", opts("vhost-vsock-%s" % ("device" if b.microvm else "pci"), ("id", "vsock%d" % n),
                          ("guest-cid", guest_cid), *b.dev_addr(dev, what)))
