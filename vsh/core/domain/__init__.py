"""A typed model over libvirt domain XML.

Each class is a short list of declared properties (:mod:`vsh.core.xmlobject`); the
lxml tree stays the source of truth, so elements and attributes the model does not
know survive define → dumpxml. By concern: :mod:`.model` (the domain) over :mod:`.platform`
(firmware, CPU, NUMA, iothreads, timers, SMBIOS), :mod:`.devices` (every device; disks and
interfaces), :mod:`.chardevs`, :mod:`.hardware` (the other device families), :mod:`.address`
(a device's bus address), :mod:`.kinds` (element → class), :mod:`.checks` (the defaults and
checks of define).
The names other modules use are importable from here.
"""

from vsh.core.domain.checks import check_name, format_cpuset, parse_cpuset
from vsh.core.domain.address import Address
from vsh.core.domain.chardevs import Channel, CharDevice, Console, Serial
from vsh.core.domain.devices import BackingStore, Device, Disk, Interface, default_bus
from vsh.core.domain.hardware import (Audio, Controller, Filesystem, Graphics, HostDev, Hub, Input, MemBalloon,
                                      Panic, Rng, Sound, Tpm, Video, Vsock, Watchdog)
from vsh.core.domain.kinds import DEVICE_CLASSES, device_for
from vsh.core.domain.model import Domain
from vsh.core.names import is_mac, is_uuid, random_mac
from vsh.core.xmlobject import (DEVICE_TAGS, ORDER, XFlag, XMLObject, XProp, ensure, normalize_order,
                                subset_match, to_kib, unit_scale, yesno)

__all__ = ["DEVICE_CLASSES", "DEVICE_TAGS", "ORDER", "Address", "Audio", "BackingStore", "Channel", "CharDevice",
           "Console", "Controller", "Device", "Disk", "Domain", "Filesystem", "Graphics", "HostDev", "Hub", "Input",
           "Interface", "MemBalloon", "Panic", "Rng", "Serial", "Sound", "Tpm", "Video", "Vsock", "Watchdog", "XFlag",
           "XMLObject", "XProp", "check_name", "default_bus", "device_for", "ensure", "format_cpuset", "is_mac",
           "is_uuid", "normalize_order", "parse_cpuset", "random_mac", "subset_match", "to_kib", "unit_scale", "yesno"]
