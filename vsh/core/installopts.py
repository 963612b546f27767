"""virt-install's option strings, parsed into plain specs (``vsh install``).

Each ``parse_*`` takes the text of one option as given on the command line and
returns plain data (numbers, named tuples, dicts); it reads nothing and creates
nothing, so every driver can use it. :data:`OS_VARIANTS` is vsh's own table of OS
defaults. The planner of a driver turns the specs into domain XML.
"""

from __future__ import annotations

import os
from collections import namedtuple

from vsh.core.errors import InvalidArgument, Unsupported

GIB = 1024 ** 3

# -- the built-in OS table -----------------------------------------------------------------------

OsVariant = namedtuple("OsVariant", "name label memory disk vcpus machine disk_bus nic_model guest_agent",
                       defaults=(True,))

#: vsh's own defaults per OS (memory in MiB, disk in GiB). Every entry boots virtio devices;
#: ``guest_agent``: the OS ships qemu-ga, so an install adds its channel as virt-install does.
OS_VARIANTS = {v.name: v for v in (
    OsVariant("debian12", "Debian 12 (bookworm)", 1024, 20, 1, "q35", "virtio", "virtio"),
    OsVariant("debian11", "Debian 11 (bullseye)", 1024, 20, 1, "q35", "virtio", "virtio"),
    OsVariant("ubuntu22.04", "Ubuntu 22.04 LTS", 2048, 25, 2, "q35", "virtio", "virtio"),
    OsVariant("ubuntu24.04", "Ubuntu 24.04 LTS", 2048, 25, 2, "q35", "virtio", "virtio"),
    OsVariant("fedora40", "Fedora Linux 40", 2048, 20, 2, "q35", "virtio", "virtio"),
    OsVariant("alpine3.19", "Alpine Linux 3.19", 256, 2, 1, "q35", "virtio", "virtio"),
    OsVariant("generic", "Generic OS (virtio devices)", 512, 10, 1, "q35", "virtio", "virtio", False),
)}

DISK_BUSES = ("virtio", "scsi", "sata", "ide")
NIC_MODELS = ("virtio", "e1000", "e1000e", "rtl8139")


# -- virt-install's comma syntax ------------------------------------------------------------------


def split_options(text: str, what: str) -> list[tuple[str | None, str]]:
    """``a,b=c,d='x,y'`` → ``[(None, 'a'), ('b', 'c'), ('d', 'x,y')]``; keys lower case, ``-`` → ``_``.

    Single or double quotes group a value that holds commas; they are removed.
    """
    pieces: list[str] = []
    cur: list[str] = []
    quote = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
            else:
                cur.append(ch)
        elif ch in "'\"":
            quote = ch
        elif ch == ",":
            pieces.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if quote:
        raise InvalidArgument(f"{what}: unbalanced {quote} quote in '{text}'")
    pieces.append("".join(cur))
    out: list[tuple[str | None, str]] = []
    for piece in pieces:
        if piece == "":
            continue
        key, eq, value = piece.partition("=")
        if eq and key.strip() and " " not in key.strip():
            out.append((key.strip().lower().replace("-", "_"), value))
        else:
            out.append((None, piece))
    return out


def onoff(value: str, what: str) -> bool:
    low = (value or "").strip().lower()
    if low in ("on", "yes", "true", "1", ""):
        return True
    if low in ("off", "no", "false", "0"):
        return False
    raise InvalidArgument(f"{what}: '{value}' is not on or off")


def positive_int(value: str, what: str, zero: bool = False) -> int:
    text = (value or "").strip()
    if not text.isdigit() or (int(text) == 0 and not zero):
        raise InvalidArgument(f"{what}: '{value}' is not a positive whole number")
    return int(text)


def unknown_option(key: str | None, value: str, option: str, known: tuple) -> InvalidArgument:
    shown = f"{key}={value}" if key else value
    return InvalidArgument(f"--{option}: unknown option '{shown}'",
                           hint=f"--{option} takes: {', '.join(known)}")


# -- option parsers (each returns plain data; no XML yet) ----------------------------------------


def parse_memory(text: str | None, variant: OsVariant) -> tuple[int, int]:
    """``--memory N`` or ``memory=N[,currentMemory=M]`` (MiB) → (memory KiB, current KiB)."""
    if text is None:
        return variant.memory * 1024, variant.memory * 1024
    memory = current = None
    for key, value in split_options(text, "--memory"):
        if key in (None, "memory"):
            memory = positive_int(value, "--memory")
        elif key == "currentmemory":
            current = positive_int(value, "--memory currentMemory")
        else:
            raise unknown_option(key, value, "memory", ("N (MiB)", "memory=N", "currentMemory=N"))
    if memory is None:
        raise InvalidArgument("--memory: give the size in MiB, e.g. --memory 1024")
    if current is not None and current > memory:
        raise InvalidArgument(f"--memory: currentMemory ({current} MiB) cannot exceed memory ({memory} MiB)")
    return memory * 1024, (current or memory) * 1024


def parse_vcpus(text: str | None, variant: OsVariant) -> dict:
    """``N[,maxvcpus=M][,sockets=S,dies=D,cores=C,threads=T]`` → counts and topology."""
    out = {"current": None, "max": None, "sockets": None, "dies": None, "cores": None, "threads": None}
    if text is None:
        out["current"] = out["max"] = variant.vcpus
        return out
    for key, value in split_options(text, "--vcpus"):
        if key in (None, "vcpus", "vcpu"):
            out["current"] = positive_int(value, "--vcpus")
        elif key in ("maxvcpus", "sockets", "dies", "cores", "threads"):
            out["max" if key == "maxvcpus" else key] = positive_int(value, f"--vcpus {key}")
        else:
            raise unknown_option(key, value, "vcpus", ("N", "maxvcpus=M", "sockets=", "dies=", "cores=", "threads="))
    topo = [out[k] for k in ("sockets", "cores", "threads")]
    if any(t is not None for t in topo):
        sockets, cores, threads = (t or 1 for t in topo)
        product = sockets * cores * threads * (out["dies"] or 1)
        out.update(sockets=sockets, cores=cores, threads=threads)
        if out["max"] is None:
            out["max"] = product if out["current"] is None or product >= out["current"] else out["current"]
        if product != out["max"]:
            raise InvalidArgument(f"--vcpus: the topology gives {product} vCPUs, but the maximum is {out['max']}")
    if out["current"] is None:
        out["current"] = out["max"] or variant.vcpus
    if out["max"] is None:
        out["max"] = out["current"]
    if out["current"] > out["max"]:
        raise InvalidArgument(f"--vcpus: {out['current']} vCPUs is more than maxvcpus={out['max']}")
    return out


def parse_cpu(text: str | None) -> dict | None:
    """``host-passthrough``, ``host-model``, ``max`` or a model name, with ``+feat`` / ``-feat``."""
    if text is None:
        return None
    mode = model = None
    features: list[tuple[str, str]] = []
    for key, value in split_options(text, "--cpu"):
        if key is None and value.startswith(("+", "-")) and len(value) > 1:
            features.append(("require" if value[0] == "+" else "disable", value[1:]))
        elif key in ("require", "disable", "forbid", "optional", "force"):
            features.append((key, value))
        elif key in (None, "model", "mode") and mode is None:
            word = value.strip()
            if key == "mode" or word in ("host-passthrough", "host-model", "max", "maximum", "host"):
                mode = {"host": "host-passthrough", "max": "maximum"}.get(word, word)
                if mode not in ("host-passthrough", "host-model", "maximum"):
                    raise InvalidArgument(f"--cpu: unknown mode '{word}' (host-passthrough, host-model, max)")
            else:
                mode, model = "custom", word
        else:
            raise unknown_option(key, value, "cpu", ("host-passthrough", "host-model", "max", "MODEL", "+feature",
                                               "-feature"))
    import re

    for _policy, name in features:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise InvalidArgument(f"--cpu: '{name}' is not a CPU feature name")
    if model is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", model):
        raise InvalidArgument(f"--cpu: '{model}' is not a CPU model name")
    if mode is None:
        if not features:
            raise InvalidArgument("--cpu: give a mode or a model, e.g. --cpu max")
        mode, model = "custom", "qemu64"
    return {"mode": mode, "model": model, "features": features}


DiskSpec = namedtuple("DiskSpec", "path size format bus device readonly shareable cache target serial "
                                  "backing backing_format pool explicit_format")
_DISK_KEYS = ("path", "size", "format", "bus", "device", "readonly", "shareable", "cache", "target",
              "serial", "backing_store", "backing_format", "pool")


def parse_disk(text: str) -> DiskSpec | None:
    """One ``--disk``; None for ``--disk none``."""
    vals: dict = {}
    for key, value in split_options(text, "--disk"):
        if key is None and "path" not in vals and not vals and value != "":
            key = "path"  # --disk /path/to/image
        if key == "none" or (key is None and value == "none"):
            return None
        if key is None and value in ("readonly", "ro", "shareable"):
            key, value = ("readonly" if value in ("readonly", "ro") else value), "on"
        if key == "ro":
            key = "readonly"
        if key == "dev":
            key = "target"
        if key == "vol":
            raise Unsupported("--disk vol=POOL/VOLUME is not supported; use path= or pool=")
        if key not in _DISK_KEYS:
            raise unknown_option(key, value, "disk", _DISK_KEYS)
        if key in vals:
            raise InvalidArgument(f"--disk: {key}= given twice in '{text}'")
        vals[key] = value
    if vals.get("path") == "none":
        return None
    size = None
    if "size" in vals:
        try:
            gib = float(vals["size"])
        except ValueError:
            gib = -1.0
        if not gib > 0 or gib > 1 << 20:
            raise InvalidArgument(f"--disk: size '{vals['size']}' is not a size in GiB (e.g. size=10 or size=0.5)")
        size = -(-int(gib * GIB) // 512) * 512
    fmt = vals.get("format")
    if fmt is not None and fmt not in ("raw", "qcow2"):
        raise InvalidArgument(f"--disk: format '{fmt}' is not supported (raw or qcow2)")
    bus = vals.get("bus")
    if bus is not None and bus not in DISK_BUSES:
        raise InvalidArgument(f"--disk: bus '{bus}' is not one of {', '.join(DISK_BUSES)}")
    device = vals.get("device", "disk")
    if device not in ("disk", "cdrom"):
        raise InvalidArgument(f"--disk: device '{device}' is not disk or cdrom")
    cache = vals.get("cache")
    if cache is not None and cache not in ("none", "writeback", "writethrough", "directsync", "unsafe"):
        raise InvalidArgument(f"--disk: cache mode '{cache}' is not one of none, writeback, writethrough, "
                              "directsync, unsafe")
    bfmt = vals.get("backing_format")
    if bfmt is not None and bfmt not in ("raw", "qcow2"):
        raise InvalidArgument(f"--disk: backing_format '{bfmt}' is not raw or qcow2")
    if bfmt and not vals.get("backing_store"):
        raise InvalidArgument("--disk: backing_format= needs backing_store=")
    path = vals.get("path")
    if path is not None:
        if path == "":
            raise InvalidArgument("--disk: path= is empty")
        path = os.path.abspath(os.path.expanduser(path))
    backing = vals.get("backing_store")
    if backing is not None:
        backing = os.path.abspath(os.path.expanduser(backing))
        if device == "cdrom":
            raise InvalidArgument("--disk: a cdrom cannot have a backing_store")
    if device == "cdrom" and size is not None:
        raise InvalidArgument("--disk: a cdrom takes an existing image (path=), not size=")
    target = vals.get("target")
    if target is not None:
        import re

        if not re.fullmatch(r"(vd|sd|hd)[a-z]{1,3}", target):
            raise InvalidArgument(f"--disk: target '{target}' is not a disk name like vda, sda or hda")
    return DiskSpec(path, size, fmt, bus, device,
                    onoff(vals["readonly"], "--disk readonly") if "readonly" in vals else device == "cdrom",
                    onoff(vals["shareable"], "--disk shareable") if "shareable" in vals else False,
                    cache, target, vals.get("serial"), backing, bfmt, vals.get("pool"), fmt is not None)


NetSpec = namedtuple("NetSpec", "type source model mac forwards")


def parse_network(text: str) -> NetSpec | None:
    """One ``--network``: ``user`` (default), ``none``, ``network=NAME``, ``bridge=BR``; model=, mac=,
    portforward=[HOSTADDR:]HOSTPORT:GUESTPORT[/PROTO] (user mode; repeatable)."""
    from vsh.core import portfwd

    ntype = source = model = mac = None
    forwards = []
    for key, value in split_options(text, "--network"):
        if key is None and ntype is None:
            if value == "none":
                return None
            if value in ("user", "slirp"):
                ntype = "user"
            elif value == "default":
                ntype, source = "network", "default"
            elif value == "passt":
                raise Unsupported("--network passt: the passt backend is not supported; use --network user")
            else:
                raise InvalidArgument(f"--network: unknown type '{value}' (user, none, network=NAME, bridge=NAME)")
        elif key == "type" and ntype is None:
            if value not in ("user", "network", "bridge"):
                raise InvalidArgument(f"--network: unknown type '{value}' (user, network, bridge)")
            ntype = value
        elif key in ("network", "bridge") and source is None:
            ntype, source = key, value
            if not value:
                raise InvalidArgument(f"--network: {key}= needs a name")
        elif key == "model" and model is None:
            model = value
            if model not in NIC_MODELS:
                raise InvalidArgument(f"--network: model '{model}' is not one of {', '.join(NIC_MODELS)}")
        elif key == "mac" and mac is None:
            import re

            if value.upper() == "RANDOM":
                continue
            if not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", value):
                raise InvalidArgument(f"--network: '{value}' is not a MAC address")
            if int(value[:2], 16) & 1:
                raise InvalidArgument(f"--network: MAC {value} is a multicast address")
            mac = value.lower()
        elif key in ("portforward", "hostfwd", "forward"):
            forwards.append(portfwd.parse_spec(value))
        else:
            raise unknown_option(key, value, "network", ("user", "none", "network=NAME", "bridge=NAME", "model=",
                                                   "mac=", "portforward=[ADDR:]HOSTPORT:GUESTPORT[/PROTO]"))
    ntype = ntype or "user"
    if forwards and ntype != "user":
        raise InvalidArgument("--network: portforward= is for user-mode networking (--network user,...)")
    return NetSpec(ntype, source, model, mac, forwards)


BootSpec = namedtuple("BootSpec", "kernel initrd cmdline devices uefi menu")
_BOOT_WORDS = ("hd", "cdrom", "network", "uefi", "menu=on")


def parse_boot(text: str | None) -> BootSpec:
    if not text:
        return BootSpec(None, None, None, [], False, None)
    kernel = initrd = cmdline = None
    devices: list[str] = []
    uefi = False
    menu = None
    last_free = False  # the previous piece was kernel_args: a bare piece continues it
    for key, value in split_options(text, "--boot"):
        if key in ("kernel_args", "cmdline", "extra_args", "kernel_cmdline"):
            cmdline = value if cmdline is None else cmdline + "," + value
            last_free = True
            continue
        if key is None and value in ("hd", "cdrom", "network", "fd"):
            if value == "fd":
                raise Unsupported("--boot fd: floppy boot is not supported")
            devices.append(value)
        elif (key is None and value in ("uefi", "efi")) or key in ("uefi", "firmware"):
            if key == "firmware" and value not in ("efi", "bios"):
                raise InvalidArgument(f"--boot: firmware '{value}' is not efi or bios")
            uefi = value != "bios" if key == "firmware" else (key is None or onoff(value, "--boot uefi"))
        elif key in ("kernel", "initrd"):
            if not value:
                raise InvalidArgument(f"--boot: {key}= is empty")
            path = os.path.abspath(os.path.expanduser(value))
            if key == "kernel":
                kernel = path
            else:
                initrd = path
        elif key in ("menu", "bootmenu_enable", "bootmenu"):
            menu = onoff(value, "--boot menu")
        elif last_free:
            cmdline += "," + (f"{key}={value}" if key is not None else value)
            continue
        else:
            raise unknown_option(key, value, "boot", ("kernel=", "initrd=", "kernel_args=", "uefi") + _BOOT_WORDS[:3])
        last_free = False
    if (initrd or cmdline) and not kernel:
        raise InvalidArgument("--boot: initrd= and kernel_args= need kernel=")
    return BootSpec(kernel, initrd, cmdline, devices, uefi, menu)


def parse_os_variant(text: str | None) -> OsVariant:
    if text is None:
        return OS_VARIANTS["generic"]
    name = None
    for key, value in split_options(text, "--os-variant"):
        if key in (None, "name", "short_id", "id") and name is None:
            name = value.strip().lower()
        elif key == "detect":
            raise Unsupported("--os-variant detect=on: vsh does not detect the OS of install media; "
                              "name it (see --os-variant list)")
        else:
            raise unknown_option(key, value, "os-variant", ("NAME", "name=NAME"))
    if name not in OS_VARIANTS:
        raise InvalidArgument(f"--os-variant: unknown OS '{name}'",
                              hint=f"vsh knows: {', '.join(OS_VARIANTS)} (see --os-variant list)")
    return OS_VARIANTS[name]


def parse_console(text: str | None) -> str | None:
    """``pty`` (default: serial port 0 with a console on it), ``pty,target_type=virtio``, ``none``."""
    if text is None:
        return "serial"
    kind = "serial"
    for key, value in split_options(text, "--console"):
        if key is None and value == "none":
            return None
        if key is None and value == "pty":
            continue
        if key == "target_type" and value in ("serial", "virtio"):
            kind = value
        elif key is None or key == "type":
            raise InvalidArgument(f"--console: type '{value}' is not supported (pty or none)")
        else:
            raise unknown_option(key, value, "console", ("pty", "target_type=serial|virtio", "none"))
    return kind


def parse_graphics(text: str | None) -> str | None:
    if text is None:
        return None
    kind = None
    for key, value in split_options(text, "--graphics"):
        if key in (None, "type") and kind is None:
            if value not in ("none", "vnc"):
                raise Unsupported(f"--graphics {value}: vsh has none and vnc (on a private unix socket)")
            kind = value
        else:
            raise unknown_option(key, value, "graphics", ("none", "vnc"))
    return None if kind == "none" else kind


def parse_rng(text: str | None) -> str | None:
    if text is None:
        return "/dev/urandom"
    words = split_options(text, "--rng")
    if len(words) == 1 and words[0][0] in (None, "backend", "device"):
        value = words[0][1]
        if value == "none":
            return None
        if value == "builtin":
            return "builtin"
        if value in ("/dev/urandom", "/dev/random", "/dev/hwrng"):
            return value
        raise InvalidArgument(f"--rng: '{value}' is not /dev/urandom, /dev/random, /dev/hwrng, builtin or none")
    raise InvalidArgument(f"--rng: expected one device (e.g. --rng /dev/urandom), got '{text}'")
