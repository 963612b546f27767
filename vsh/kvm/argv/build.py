"""The composition: the families in command-line order, one handler per device element.

``build_argv`` runs the whole machine; ``device_options`` runs one device's
handler in the same builder, so hot-plug gets exactly what a boot would give.
"""

from __future__ import annotations

import json
import re

from vsh.core.domain import device_for
from vsh.core.errors import InvalidArgument, Unsupported, XMLError
from vsh.kvm.argv import (boot, chardevs, controllers, devices, disks, filesystems, graphics, machine, network,
                          numa, slots, smbios, sound, tpm)
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.custom import commandline
from vsh.kvm.argv.options import esc, split_opts
from vsh.kvm.argv.paths import RuntimePaths


def _nothing(b: Builder, dev, n: int) -> None:
    """<emulator> is read by machine.emulator, <controller> by controllers.controllers, <audio> by
    sound.audiodev; <sysinfo> by smbios.smbios."""


#: The handler of each element under <devices>, called with (builder, its device model, its number
#: among its kind).
DEVICE_HANDLERS = {
    "emulator": _nothing,
    "controller": _nothing,
    "disk": disks.disk,
    "interface": network.interface,
    "serial": chardevs.serial,
    "console": chardevs.console,
    "channel": chardevs.channel,
    "rng": devices.rng,
    "memballoon": devices.memballoon,
    "watchdog": devices.watchdog,
    "panic": devices.panic,
    "hostdev": devices.hostdev,
    "graphics": graphics.graphics,
    "video": graphics.video,
    "input": graphics.input_device,
    "sound": sound.sound,
    "audio": _nothing,
    "hub": devices.hub,
    "vsock": devices.vsock,
    "filesystem": filesystems.filesystem,
    "tpm": tpm.tpm,
}


def handler_for(tag: str):
    """The handler of a <devices> child, or Unsupported."""
    handler = DEVICE_HANDLERS.get(tag)
    if handler is None:
        raise Unsupported("<devices><%s> is not supported yet" % tag)
    return handler


def walk_devices(b: Builder) -> None:
    """Every element under <devices>, in document order (USB hubs first: devices sit on their ports)."""
    b.serials = chardevs.serial_plan(b.dom)
    counters: dict[str, int] = {}
    for dev in sorted(b.dom.devices(), key=lambda d: d.kind != "hub"):
        n = counters.get(dev.kind, 0)
        counters[dev.kind] = n + 1
        handler_for(dev.kind)(b, dev, n)


def build(b: Builder) -> list[str]:
    """The whole argv, in command-line order."""
    machine.domain_type(b)
    machine.machine_type(b)
    qemu = machine.emulator(b)
    name = (b.dom.name or "").strip()
    if not name:
        raise XMLError("the domain has no <name>")
    b.add(qemu, "-name", "guest=%s,debug-threads=on" % esc(name), "-S")
    b.add("-machine", machine.machine_opts(b))
    b.add("-accel", "kvm" if b.kvm else "tcg")
    machine.cpu(b)
    boot.firmware(b)
    machine.memory(b)
    machine.smp(b)
    numa.numa(b)
    machine.iothread_objects(b)
    uuid = (b.dom.uuid or "").strip()
    if uuid:
        if not re.fullmatch(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}",
                            uuid):
            raise InvalidArgument("<uuid> '%s' is not a UUID" % uuid)
        b.add("-uuid", uuid)
    smbios.smbios(b)
    b.add("-no-user-config", "-nodefaults")
    machine.monitor(b)
    machine.clock(b)
    machine.actions(b)
    boot.boot(b)
    b.add("-display", "none")
    controllers.reserve_pci(b)
    slots.assign(b, controllers.implied(b))
    controllers.controllers(b)
    walk_devices(b)
    network.unused_forwards(b)
    b.add("-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny")
    b.add("-msg", "timestamp=on")
    b.argv += commandline(b.dom)[0]     # <qemu:commandline>, last, as libvirt puts it
    return b.argv


def build_argv(root, host, paths: RuntimePaths, fdsets: dict | None = None) -> list[str]:
    """The qemu-system-x86_64 argv for the libvirt domain XML ``root`` (see vsh.kvm.argv);
    ``fdsets`` maps the fd groups disks name to QEMU fd sets (the caller adds ``-add-fd``)."""
    b = Builder(root, host, paths)
    b.fdsets = dict(fdsets or {})
    return build(b)


def device_options(root, el, host=None, paths: RuntimePaths | None = None, index: int = 0) -> dict:
    """The QEMU objects for ONE device element ``el`` of the domain ``root`` (for hot-plug).

    The mapping is the builder's own (the same code builds the boot command line):
    ``{"family": "pc"|"q35"|"microvm", "blockdev": [blockdev-add arguments, bottom-up],
    "netdev": "-netdev option text" or None, "device": {"driver": ..., "id": ..., ...}}``,
    the ``-device`` properties as the strings QEMU's option parser takes.  ``index``
    numbers node, netdev and device names as the ``index``-th element of its kind
    would be numbered at boot.  Without an ``<address type='pci'>`` the ``bus`` and
    ``addr`` given are only the builder's first free root-bus slot: a caller that
    plugs into a running machine chooses the slot itself.
    """
    b = Builder(root, host, paths or RuntimePaths.for_rundir("/nonexistent"))
    machine.machine_type(b)
    machine.iothread_objects(b)
    controllers.reserve_pci(b)
    b.serials = chardevs.serial_plan(b.dom)
    handler = handler_for(el.tag if isinstance(el.tag, str) else "")
    b.argv = []
    handler(b, device_for(el), index)
    out: dict = {"family": b.family, "blockdev": [], "netdev": None, "device": None}
    for opt, value in zip(b.argv[::2], b.argv[1::2]):
        if opt == "-blockdev":
            out["blockdev"].append(json.loads(value))
        elif opt == "-netdev":
            out["netdev"] = value
        elif opt == "-device":
            parts = split_opts(value)
            dev = {"driver": parts[0]}
            for part in parts[1:]:
                key, _eq, val = part.partition("=")
                dev[key] = val
            out["device"] = dev
    return out
