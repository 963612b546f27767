"""Which class models which ``<devices>`` child."""

from __future__ import annotations

from vsh.core.domain.chardevs import Channel, Console, Serial
from vsh.core.domain.devices import Device, Disk, Interface
from vsh.core.domain.hardware import (Audio, Controller, Filesystem, Graphics, HostDev, Hub, Input, MemBalloon,
                                      Panic, Rng, Sound, Tpm, Video, Vsock, Watchdog)

DEVICE_CLASSES = {cls.tag: cls for cls in (Disk, Interface, Serial, Console, Channel, Rng, MemBalloon,
                                           Controller, HostDev, Filesystem, Watchdog, Graphics, Video,
                                           Input, Sound, Audio, Tpm, Panic, Hub, Vsock)}


def device_for(node) -> Device:
    return DEVICE_CLASSES.get(node.tag, Device)(node)
