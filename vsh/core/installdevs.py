"""virt-install's device options beyond disks and NICs: --filesystem, --channel, --video, --tpm,
--sound, --watchdog, --controller, --input, --memballoon.

Each ``*_xml`` takes the text of one option as given on the command line and returns the
libvirt ``<devices>`` child it describes (an lxml element), or None for ``none``; it reads and
creates nothing. Keys use virt-install's spellings: the dotted sub-element form
(``target.type=virtio``) and the older underscore form (``target_type=virtio``) are the same key.
Whether the domain can run the device is the business of ``start`` (and of ``--dry-run``).
"""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument
from vsh.core.installopts import split_options, unknown_option

VIDEO_MODELS = ("vga", "virtio", "qxl", "bochs", "ramfb", "cirrus", "none")
SOUND_MODELS = ("ich9", "ich6", "ich7", "ac97", "es1370", "sb16", "usb", "pcspk")
WATCHDOG_MODELS = ("i6300esb", "ib700", "itco", "diag288")
WATCHDOG_ACTIONS = ("reset", "shutdown", "poweroff", "pause", "none", "dump", "inject-nmi")
TPM_MODELS = ("tpm-crb", "tpm-tis", "spapr-tpm-proxy")
INPUT_TYPES = ("tablet", "mouse", "keyboard", "evdev")
INPUT_BUSES = ("usb", "ps2", "virtio", "xen")
FS_ACCESS = ("passthrough", "mapped", "squash")
#: virt-install's controller shorthands: word → (type, model)
CONTROLLER_WORDS = {"usb2": ("usb", "ich9-ehci1"), "usb3": ("usb", "qemu-xhci"),
                    "virtio-scsi": ("scsi", "virtio-scsi"), "none": (None, None)}


def _keys(text: str, option: str) -> list[tuple[str | None, str]]:
    if not text or not text.strip():
        raise InvalidArgument(f"--{option}: a value is required")
    return [(None if k is None else k.replace(".", "_"), v) for k, v in split_options(text, f"--{option}")]


def _choice(value: str, choices: tuple, option: str, what: str) -> str:
    if value not in choices:
        raise InvalidArgument(f"--{option}: {what} '{value}' is not one of {', '.join(choices)}")
    return value


def _element(tag: str, **attrs):
    from vsh.core.lxmlload import etree

    return etree.Element(tag, **{k: v for k, v in attrs.items() if v is not None})


def _sub(parent, tag: str, **attrs):
    from vsh.core.lxmlload import etree

    return etree.SubElement(parent, tag, **{k: v for k, v in attrs.items() if v is not None})


def filesystem_xml(text: str):
    """``SOURCE,TARGET`` or ``source=DIR,target=TAG[,accessmode=passthrough|mapped|squash][,readonly=on]
    [,driver.type=path]``: a host directory shared with the guest (9p)."""
    source = target = None
    mode = "passthrough"
    readonly = False
    driver = None
    free: list[str] = []
    for key, value in _keys(text, "filesystem"):
        if key is None:
            free.append(value)
        elif key in ("source", "source_dir"):
            source = value
        elif key in ("target", "target_dir"):
            target = value
        elif key in ("accessmode", "mode"):
            mode = _choice(value, FS_ACCESS, "filesystem", "accessmode")
        elif key == "readonly":
            from vsh.core.installopts import onoff

            readonly = onoff(value, "--filesystem readonly")
        elif key == "driver_type":
            driver = _choice(value, ("path", "handle"), "filesystem", "driver type")
        else:
            raise unknown_option(key, value, "filesystem", ("SOURCE,TARGET", "source=", "target=", "accessmode=",
                                                            "readonly=", "driver.type="))
    if free:
        if len(free) != 2 or source or target:
            raise InvalidArgument("--filesystem: give SOURCE,TARGET or source=DIR,target=TAG")
        source, target = free
    if not source or not target:
        raise InvalidArgument("--filesystem: both the host directory (source=) and the mount tag (target=) "
                              "are needed")
    source = os.path.abspath(os.path.expanduser(source))
    fs = _element("filesystem", type="mount", accessmode=mode)
    if driver:
        _sub(fs, "driver", type=driver)
    _sub(fs, "source", dir=source)
    _sub(fs, "target", dir=target)
    if readonly:
        _sub(fs, "readonly")
    return fs


#: the guest agent's channel name, which an install adds by itself for an OS that has the agent
AGENT_CHANNEL = "org.qemu.guest_agent.0"


def channel_xml(text: str):
    """``unix|pty,target.type=virtio,name=NAME`` (``target_type=``/``name=`` too; ``unix`` with
    ``source.path=`` or a path vsh picks in the domain's run directory); ``none``: no channel,
    not even the guest agent's default one (None)."""
    if text.strip() == "none":
        return None
    kind = None
    name = path = None
    ttype = "virtio"
    for key, value in _keys(text, "channel"):
        if key in (None, "type") and kind is None:
            kind = _choice(value, ("unix", "pty"), "channel", "type")
        elif key in ("target_type",):
            ttype = _choice(value, ("virtio",), "channel", "target type")
        elif key in ("name", "target_name"):
            name = value
        elif key in ("path", "source_path"):
            path = os.path.abspath(os.path.expanduser(value))
        elif key in ("mode", "source_mode") and value == "bind":
            continue
        else:
            raise unknown_option(key, value, "channel", ("unix", "pty", "target.type=virtio", "name=",
                                                         "source.path="))
    if kind is None:
        raise InvalidArgument("--channel: the type (unix or pty) comes first")
    if not name:
        raise InvalidArgument("--channel: a virtio channel needs its name (e.g. name=org.qemu.guest_agent.0)")
    if path and kind != "unix":
        raise InvalidArgument("--channel: source.path= is for unix channels")
    ch = _element("channel", type=kind)
    if kind == "unix":
        _sub(ch, "source", mode="bind", path=path)
    _sub(ch, "target", type=ttype, name=name)
    return ch


def video_xml(text: str):
    """``MODEL`` or ``model.type=MODEL[,vram=KiB][,heads=N]``; ``none`` for no video device."""
    model = None
    extra: dict[str, str] = {}
    for key, value in _keys(text, "video"):
        if key in (None, "model", "model_type") and model is None:
            model = _choice(value, VIDEO_MODELS, "video", "model")
        elif key in ("vram", "heads", "model_vram", "model_heads"):
            if not value.isdigit():
                raise InvalidArgument(f"--video: {key.removeprefix('model_')}= must be a number")
            extra[key.removeprefix("model_")] = value
        else:
            raise unknown_option(key, value, "video", VIDEO_MODELS[:4] + ("vram=", "heads="))
    if model is None:
        raise InvalidArgument("--video: the model comes first (e.g. --video virtio)")
    if model == "none":
        return None
    video = _element("video")
    _sub(video, "model", type=model, **extra)
    return video


def tpm_xml(text: str):
    """``emulator`` (swtpm), ``/dev/tpmN`` (pass-through), ``none``, or ``model=tpm-crb|tpm-tis,
    backend.type=emulator|passthrough,backend.version=2.0,backend.device.path=/dev/tpm0``."""
    model = None
    btype = version = device = None
    for key, value in _keys(text, "tpm"):
        if key is None and value == "none":
            return None
        if key is None and value in ("emulator", "passthrough"):
            btype = value
        elif key is None and value.startswith("/dev/"):
            btype, device = "passthrough", value
        elif key == "model":
            model = _choice(value, TPM_MODELS, "tpm", "model")
        elif key in ("backend_type", "type"):
            btype = _choice(value, ("emulator", "passthrough"), "tpm", "backend type")
        elif key in ("backend_version", "version"):
            version = _choice(value, ("1.2", "2.0"), "tpm", "backend version")
        elif key in ("backend_device_path", "path", "device_path"):
            device = value
        else:
            raise unknown_option(key, value, "tpm", ("emulator", "/dev/tpm0", "none", "model=", "backend.type=",
                                                     "backend.version="))
    btype = btype or "emulator"
    if btype == "passthrough" and not device:
        device = "/dev/tpm0"
    if btype == "emulator" and device:
        raise InvalidArgument("--tpm: a device path is for the passthrough backend")
    tpm = _element("tpm", model=model or "tpm-crb")
    backend = _sub(tpm, "backend", type=btype, version=version or ("2.0" if btype == "emulator" else None))
    if device:
        _sub(backend, "device", path=device)
    return tpm


def sound_xml(text: str):
    """``MODEL`` or ``model=MODEL`` (``default`` is ich9); ``none`` for no sound device."""
    model = None
    for key, value in _keys(text, "sound"):
        if key in (None, "model") and model is None:
            model = "ich9" if value == "default" else value
        else:
            raise unknown_option(key, value, "sound", SOUND_MODELS[:4] + ("none",))
    if model == "none":
        return None
    return _element("sound", model=_choice(model, SOUND_MODELS, "sound", "model"))


def watchdog_xml(text: str):
    """``MODEL[,action=ACTION]`` or ``model=MODEL,action=ACTION`` (``default`` is i6300esb, reset)."""
    model = action = None
    for key, value in _keys(text, "watchdog"):
        if key in (None, "model") and model is None:
            model = "i6300esb" if value == "default" else _choice(value, WATCHDOG_MODELS, "watchdog", "model")
        elif key == "action":
            action = _choice(value, WATCHDOG_ACTIONS, "watchdog", "action")
        else:
            raise unknown_option(key, value, "watchdog", WATCHDOG_MODELS[:2] + ("action=",))
    if model is None:
        raise InvalidArgument("--watchdog: the model comes first (e.g. --watchdog i6300esb,action=reset)")
    return _element("watchdog", model=model, action=action or "reset")


def controller_xml(text: str):
    """``usb2``, ``usb3``, ``virtio-scsi``, ``none``, or ``type=usb|scsi|virtio-serial|pci,model=M[,index=N]``."""
    ctype = model = index = None
    for key, value in _keys(text, "controller"):
        if key is None and value in CONTROLLER_WORDS and ctype is None:
            ctype, model = CONTROLLER_WORDS[value]
            if ctype is None:
                return None
        elif key == "type":
            ctype = _choice(value, ("usb", "scsi", "virtio-serial", "pci", "sata", "ide"), "controller", "type")
        elif key == "model":
            model = value
        elif key == "index":
            if not value.isdigit():
                raise InvalidArgument("--controller: index= must be a number")
            index = value
        else:
            raise unknown_option(key, value, "controller", tuple(CONTROLLER_WORDS) + ("type=", "model=", "index="))
    if ctype is None:
        raise InvalidArgument("--controller: give its type (e.g. --controller type=usb,model=qemu-xhci)")
    return _element("controller", type=ctype, index=index or "0", model=model)


def input_xml(text: str):
    """``TYPE[,bus=BUS]`` or ``type=tablet|mouse|keyboard,bus=usb|ps2|virtio``."""
    itype = bus = None
    for key, value in _keys(text, "input"):
        if key in (None, "type") and itype is None:
            itype = _choice(value, INPUT_TYPES[:3], "input", "type")
        elif key == "bus":
            bus = _choice(value, INPUT_BUSES[:3], "input", "bus")
        else:
            raise unknown_option(key, value, "input", INPUT_TYPES[:3] + ("bus=",))
    if itype is None:
        raise InvalidArgument("--input: the type comes first (e.g. --input tablet)")
    return _element("input", type=itype, bus=bus or ("usb" if itype == "tablet" else "ps2"))


def memballoon_xml(text: str | None):
    """``virtio`` (the default) or ``none``: the balloon device (``model=`` too)."""
    if text is None:
        return _element("memballoon", model="virtio")
    model = None
    for key, value in _keys(text, "memballoon"):
        if key in (None, "model") and model is None:
            model = _choice(value, ("virtio", "virtio-transitional", "virtio-non-transitional", "none"),
                            "memballoon", "model")
        else:
            raise unknown_option(key, value, "memballoon", ("virtio", "none"))
    return _element("memballoon", model=model)


#: option name (as in the options dict) → the parser of one of its values; the order is the
#: order the devices go into <devices>
DEVICE_OPTIONS = (("filesystem", filesystem_xml), ("controller", controller_xml), ("input", input_xml),
                  ("channel", channel_xml), ("tpm", tpm_xml), ("sound", sound_xml), ("video", video_xml),
                  ("watchdog", watchdog_xml))
