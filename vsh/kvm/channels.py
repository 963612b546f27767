"""The state of a running domain's virtio channels in its live XML, as libvirt shows it:
``<target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>`` while the guest
has its end of the port open, ``disconnected`` otherwise. Scripts wait on it to know that the
guest agent is up (``virsh dumpxml vm | grep "state='connected'"``).

The supervisor sets it from ``query-chardev`` (``frontend-open``) once QEMU runs, and from
QEMU's ``VSERPORT_CHANGE`` events after (:meth:`vsh.kvm.supervisor.lifecycle`). Channel N is
the N-th ``<channel>`` of the domain: the command-line builder names its port ``channelN`` and
its chardev ``charchannelN`` (:func:`vsh.kvm.argv.chardevs.channel`).
"""

from __future__ import annotations

import re

PORT_ID = re.compile(r"channel(\d+)$")
CHARDEV_ID = re.compile(r"charchannel(\d+)$")


def alias(n: int) -> str:
    """QEMU's id for the port of channel ``n`` (its chardev is ``"char" + alias(n)``)."""
    return f"channel{n}"


def from_chardevs(chardevs) -> dict[int, bool]:
    """{channel index: open} from ``query-chardev``."""
    out: dict[int, bool] = {}
    for dev in chardevs or []:
        m = CHARDEV_ID.match(str(dev.get("label", "")))
        if m and "frontend-open" in dev:
            out[int(m.group(1))] = bool(dev["frontend-open"])
    return out


def from_event(data: dict) -> dict[int, bool]:
    """{channel index: open} from a ``VSERPORT_CHANGE`` event's data."""
    m = PORT_ID.match(str(data.get("id", "")))
    return {int(m.group(1)): bool(data.get("open"))} if m else {}


def set_states(dom, opened: dict[int, bool]) -> bool:
    """Write ``opened`` into the virtio channels of the live domain ``dom``; whether any changed."""
    devices = dom.node.find("devices")
    changed = False
    for n, el in enumerate(devices.findall("channel") if devices is not None else []):
        target = el.find("target")
        if n not in opened or target is None or target.get("type") != "virtio":
            continue
        state = "connected" if opened[n] else "disconnected"
        if target.get("state") != state:
            target.set("state", state)
            changed = True
    return changed
