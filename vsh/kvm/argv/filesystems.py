"""Host directories shared with the guest: ``<filesystem type='mount'>`` over 9p, as libvirt's
qemu driver runs it (``-fsdev local`` + ``virtio-9p``).  The guest mounts it with
``mount -t 9p -o trans=virtio TAG DIR``, TAG being ``<target dir>``."""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, NotFound, Unsupported
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.options import given, opts

#: <filesystem accessmode> -> QEMU's security_model (libvirt's mapping; passthrough is the default).
SECURITY_MODELS = {"passthrough": "passthrough", "mapped": "mapped", "squash": "none"}

#: <filesystem><driver wrpolicy> values QEMU's local backend takes.
WRITE_POLICIES = ("immediate",)

#: <filesystem multidevs> values.
MULTIDEVS = ("default", "remap", "forbid", "warn")


def filesystem(b: Builder, fs, n: int) -> None:
    """<filesystem> number ``n``: a local fsdev and a virtio-9p device (mount tag <target dir>)."""
    what = "<filesystem> #%d" % n
    ftype = given(fs.type, "mount")
    if ftype != "mount":
        raise Unsupported("%s: type '%s' is not supported: libvirt's qemu driver shares host directories "
                          "(type='mount') only" % (what, ftype))
    dtype = given(fs.driver_type, "path")
    if dtype == "virtiofs":
        raise Unsupported("%s: <driver type='virtiofs'> needs virtiofsd and shared guest memory; "
                          "vsh shares directories over 9p (<driver type='path'>)" % what)
    if dtype != "path":
        raise Unsupported("%s: <driver type='%s'> is not supported (path)" % (what, dtype))
    b.need_pci(what)
    path = fs.source_dir
    if not path:
        raise InvalidArgument("%s: missing <source dir>" % what)
    if not os.path.isabs(path):
        raise InvalidArgument("%s: '%s' is not an absolute path" % (what, path))
    if not os.path.isdir(path):
        raise NotFound("%s: cannot access directory '%s': No such file or directory" % (what, path))
    tag = fs.target_dir
    if not tag:
        raise InvalidArgument("%s: missing <target dir> (the mount tag)" % what)
    if len(tag.encode()) > 65535:
        raise InvalidArgument("%s: mount tag '%s' is too long" % (what, tag))
    mode = given(fs.accessmode, "passthrough")
    model = SECURITY_MODELS.get(mode)
    if model is None:
        raise InvalidArgument("%s: unknown accessmode '%s' (%s)" % (what, mode, ", ".join(SECURITY_MODELS)))
    pairs: list[tuple[str, object]] = [("security_model", model), ("id", "fsdev-fs%d" % n), ("path", path)]
    wrpolicy = fs.driver_wrpolicy
    if wrpolicy is not None:
        if wrpolicy not in WRITE_POLICIES:
            raise InvalidArgument("%s: unknown <driver wrpolicy='%s'>" % (what, wrpolicy))
        pairs.append(("writeout", wrpolicy))
    if fs.readonly:
        pairs.append(("readonly", True))
    multidevs = fs.multidevs
    if multidevs is not None:
        if multidevs not in MULTIDEVS:
            raise InvalidArgument("%s: unknown multidevs '%s' (%s)" % (what, multidevs, ", ".join(MULTIDEVS)))
        if multidevs != "default":
            pairs.append(("multidevs", multidevs))
    for attr in ("fmode", "dmode"):
        value = getattr(fs, attr)
        if value is not None:
            if mode != "mapped":
                raise InvalidArgument("%s: %s is only valid with accessmode='mapped'" % (what, attr))
            try:
                int(value, 8)
            except ValueError:
                raise InvalidArgument("%s: %s '%s' is not an octal mode" % (what, attr, value)) from None
            pairs.append((attr, value))
    b.add("-fsdev", opts("local", *pairs))
    b.add("-device", opts("virtio-9p-pci", ("id", "fs%d" % n), ("fsdev", "fsdev-fs%d" % n), ("mount_tag", tag),
                          *b.dev_addr(fs, what)))
