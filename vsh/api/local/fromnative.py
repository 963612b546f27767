"""A QEMU command line read back into domain XML (``domxml-from-native qemu-argv``).

The common options become what they mean in libvirt's XML: -name, -uuid, -m, -smp,
-machine/-M, -accel/-enable-kvm, -cpu, -drive and -blockdev file disks (with their
-device front ends), -cdrom, -hda..-hdd, -netdev user/tap/bridge with a NIC -device,
-nic, -net nic + -net user, -kernel/-initrd/-append, -serial, -boot, -vnc. Other options
are skipped, as libvirt's parser skipped what it did not know.
"""

from __future__ import annotations

from vsh.core.errors import InvalidArgument

# options that take no argument (everything else takes one)
FLAGS = frozenset({"enable-kvm", "nographic", "no-reboot", "no-shutdown", "S", "daemonize", "snapshot",
                   "no-hpet", "no-acpi", "nodefaults", "no-user-config", "full-screen", "s", "usb"})
NIC_MODELS = {"virtio-net-pci": "virtio", "virtio-net": "virtio", "virtio": "virtio", "e1000": "e1000",
              "e1000e": "e1000e", "rtl8139": "rtl8139", "ne2k_pci": "ne2k_pci", "virtio-net-device": "virtio"}
DISK_FRONTENDS = {"virtio-blk-pci": ("disk", "virtio"), "virtio-blk": ("disk", "virtio"),
                  "ide-hd": ("disk", "ide"), "ide-cd": ("cdrom", "ide"), "scsi-hd": ("disk", "scsi"),
                  "scsi-cd": ("cdrom", "scsi"), "usb-storage": ("disk", "usb")}
PREFIX = {"virtio": "vd", "ide": "hd", "scsi": "sd", "sata": "sd", "usb": "sd"}


def split_opts(text: str, first: str | None = None) -> dict:
    """``a=b,c=d`` (``,,`` is a comma) as a dict; a leading word without ``=`` is ``first``."""
    from vsh.kvm.qemuopts import split_opts as split

    parts = split(text)
    opts: dict = {}
    for n, part in enumerate(parts):
        if "=" in part:
            key, value = part.split("=", 1)
            opts[key] = value
        elif n == 0 and first:
            opts[first] = part
        elif part:
            opts[part] = "on"
    return opts


def _kib(text: str, unit: str = "M") -> int:
    text = text.strip()
    suffix = text[-1:].upper()
    if suffix in "KMGT" and suffix:
        unit, text = suffix, text[:-1]
        if text[-1:].upper() == "B":
            text = text[:-1]
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgument(f"internal error: cannot parse memory size '{text}'") from None
    return int(value * {"K": 1, "M": 1024, "G": 1024 ** 2, "T": 1024 ** 3}[unit])


def parse_argv(words: list[str]) -> list[tuple[str, str | None]]:
    """The options of a QEMU command line as (name, argument) pairs; the binary first as
    ("", path) when the line starts with one."""
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(words) and "=" in words[i] and not words[i].startswith("-"):
        i += 1              # VAR=value environment words, as ps shows a libvirt-started QEMU
    if i < len(words) and not words[i].startswith("-"):
        out.append(("", words[i]))
        i += 1
    while i < len(words):
        word = words[i]
        if not word.startswith("-") or word == "-":
            raise InvalidArgument(f"internal error: arguments must begin with '-': {word}")
        name = word.lstrip("-")
        if name in FLAGS:
            out.append((name, None))
            i += 1
            continue
        if i + 1 >= len(words):
            raise InvalidArgument(f"internal error: missing value for {word} argument")
        out.append((name, words[i + 1]))
        i += 2
    return out


class _Builder:
    def __init__(self):
        self.name = self.uuid = self.machine = self.arch = self.emulator = None
        self.kvm = False
        self.memory = 128 * 1024
        self.vcpus = (1, 1)
        self.cpu = None
        self.os: dict = {}
        self.boot: list[str] = []
        self.disks: list[dict] = []
        self.drives: dict = {}          # -drive if=none / -blockdev node name -> disk facts
        self.nets: dict = {}            # -netdev id -> backend facts
        self.nics: list[dict] = []
        self.serials: list[str] = []
        self.vnc = None

    def disk(self, source: str, device: str = "disk", bus: str = "ide", fmt: str | None = None,
             readonly: bool = False, cache: str | None = None) -> dict:
        disk = {"source": source, "device": device, "bus": bus, "format": fmt, "readonly": readonly, "cache": cache}
        self.disks.append(disk)
        return disk


def _drive(b: _Builder, arg: str) -> None:
    o = split_opts(arg)
    source = o.get("file")
    bus = o.get("if", "ide")
    device = "cdrom" if o.get("media") == "cdrom" else "disk"
    facts = {"source": source, "device": device, "bus": bus, "format": o.get("format"),
             "readonly": o.get("readonly") in ("on", "yes", "true") or device == "cdrom", "cache": o.get("cache")}
    if bus == "none":
        b.drives[o.get("id", "")] = facts
    elif source or device == "cdrom":
        b.disks.append(facts)


def _blockdev(b: _Builder, arg: str) -> None:
    import json

    o = json.loads(arg) if arg.lstrip().startswith("{") else split_opts(arg)
    name = o.get("node-name", "")
    if o.get("driver") in ("file", "host_device", "host_cdrom"):
        b.drives[name] = {"source": o.get("filename"), "device": "disk", "bus": "none", "format": "raw",
                          "readonly": o.get("read-only") in ("on", True), "cache": None}
        return
    child = o.get("file")
    child = child.get("filename") if isinstance(child, dict) else b.drives.pop(child, {}).get("source")
    b.drives[name] = {"source": child, "device": "disk", "bus": "none", "format": o.get("driver"),
                      "readonly": o.get("read-only") in ("on", True), "cache": None}


def _device(b: _Builder, arg: str) -> None:
    o = split_opts(arg, first="driver")
    driver = o.get("driver", "")
    if driver in DISK_FRONTENDS and o.get("drive") in b.drives:
        facts = dict(b.drives.pop(o["drive"]))
        facts["device"], facts["bus"] = DISK_FRONTENDS[driver]
        if facts["device"] == "cdrom":
            facts["readonly"] = True
        b.disks.append(facts)
    elif driver in NIC_MODELS:
        b.nics.append({"model": NIC_MODELS[driver], "mac": o.get("mac"), **b.nets.pop(o.get("netdev"), {"type": "user"})})


def _netdev(arg: str) -> tuple[str, dict]:
    o = split_opts(arg, first="type")
    kind = o.get("type")
    if kind == "user":
        facts = {"type": "user"}
    elif kind == "tap":
        facts = {"type": "ethernet", "target": o.get("ifname")}
    elif kind == "bridge":
        facts = {"type": "bridge", "bridge": o.get("br", "br0")}
    else:
        raise InvalidArgument(f"internal error: unsupported network backend '{kind}'")
    return o.get("id", ""), facts


def _serial(arg: str) -> str | None:
    if arg in ("none", "null"):
        return None
    return arg


def _read(b: _Builder, opts) -> None:
    legacy_nics: list[dict] = []
    legacy_backend = None
    for name, arg in opts:
        if name == "":
            b.emulator = arg
            base = arg.rsplit("/", 1)[-1]
            if base.startswith("qemu-system-"):
                b.arch = base[len("qemu-system-"):]
        elif name == "name":
            b.name = split_opts(arg, first="guest").get("guest")
        elif name == "uuid":
            b.uuid = arg
        elif name == "m":
            o = split_opts(arg, first="size")
            b.memory = _kib(o.get("size", "128"))
        elif name == "smp":
            o = split_opts(arg, first="cpus")
            cpus = int(o.get("cpus") or 0) or 1
            b.vcpus = (cpus, int(o.get("maxcpus") or cpus))
        elif name in ("machine", "M"):
            o = split_opts(arg, first="type")
            b.machine = o.get("type")
            b.kvm = b.kvm or "kvm" in o.get("accel", "").split(":")
        elif name == "accel":
            b.kvm = b.kvm or split_opts(arg, first="accel").get("accel") == "kvm"
        elif name == "enable-kvm":
            b.kvm = True
        elif name == "cpu":
            b.cpu = split_opts(arg, first="model").get("model")
        elif name == "drive":
            _drive(b, arg)
        elif name == "blockdev":
            _blockdev(b, arg)
        elif name == "device":
            _device(b, arg)
        elif name == "cdrom":
            b.disk(arg, device="cdrom", readonly=True)
        elif name in ("hda", "hdb", "hdc", "hdd"):
            b.disk(arg)
        elif name == "netdev":
            key, facts = _netdev(arg)
            b.nets[key] = facts
        elif name == "nic":
            o = split_opts(arg, first="type")
            _, facts = _netdev(f"{o.get('type', 'user')},id=nic")
            b.nics.append({"model": NIC_MODELS.get(o.get("model", "virtio-net-pci"), o.get("model")),
                           "mac": o.get("mac"), **facts})
        elif name == "net":
            o = split_opts(arg, first="type")
            if o.get("type") == "nic":
                legacy_nics.append({"model": NIC_MODELS.get(o.get("model", "e1000"), o.get("model")),
                                    "mac": o.get("macaddr")})
            elif o.get("type") != "none":
                legacy_backend = _netdev(f"{o.get('type')},id=net")[1]
        elif name in ("kernel", "initrd", "append", "dtb"):
            b.os[{"append": "cmdline"}.get(name, name)] = arg
        elif name == "serial":
            b.serials.append(_serial(arg))
        elif name == "boot":
            order = split_opts(arg, first="order").get("order", "")
            b.boot = [{"a": "fd", "c": "hd", "d": "cdrom", "n": "network"}[c] for c in order if c in "acdn"]
        elif name == "vnc":
            b.vnc = arg
    for nic in legacy_nics:
        b.nics.append({**nic, **(legacy_backend or {"type": "user"})})


def _serial_xml(dev, spec: str) -> None:
    from vsh.core.lxmlload import etree

    if spec.startswith("mon:"):
        spec = spec[4:]
    kind, _, rest = spec.partition(":")
    el = etree.SubElement(dev, "serial")
    if kind in ("pty", "stdio", "vc"):
        el.set("type", "pty")
    elif kind == "file":
        el.set("type", "file")
        etree.SubElement(el, "source", path=rest)
    elif kind == "unix":
        path = split_opts(rest, first="path")
        el.set("type", "unix")
        etree.SubElement(el, "source", mode="bind" if "server" in path else "connect", path=path["path"])
    elif kind in ("tcp", "telnet"):
        o = split_opts(rest, first="addr")
        host, _, port = o["addr"].rpartition(":")
        el.set("type", "tcp")
        etree.SubElement(el, "source", mode="bind" if "server" in o else "connect", host=host or "localhost",
                         service=port)
        etree.SubElement(el, "protocol", type="telnet" if kind == "telnet" else "raw")
    else:
        el.set("type", "pty")
    etree.SubElement(el, "target", port=str(len(dev.findall("serial")) - 1))


def to_xml(b: _Builder) -> str:
    from vsh.core.lxmlload import etree

    from vsh.core.domain import Domain

    E = etree.SubElement
    root = etree.Element("domain", type="kvm" if b.kvm else "qemu")
    E(root, "name").text = b.name or "unnamed"
    if b.uuid:
        E(root, "uuid").text = b.uuid
    E(root, "memory", unit="KiB").text = str(b.memory)
    E(root, "currentMemory", unit="KiB").text = str(b.memory)
    vcpu = E(root, "vcpu", placement="static")
    vcpu.text = str(b.vcpus[1])
    if b.vcpus[0] != b.vcpus[1]:
        vcpu.set("current", str(b.vcpus[0]))
    os_el = E(root, "os")
    typ = E(os_el, "type", arch=b.arch or "x86_64")
    if b.machine:
        typ.set("machine", b.machine)
    typ.text = "hvm"
    for key in ("kernel", "initrd", "cmdline", "dtb"):
        if key in b.os:
            E(os_el, key).text = b.os[key]
    for dev in b.boot or ([] if b.os else ["hd"]):
        E(os_el, "boot", dev=dev)
    if b.cpu == "host":
        E(root, "cpu", mode="host-passthrough")
    elif b.cpu:
        E(E(root, "cpu", mode="custom", match="exact"), "model", fallback="allow").text = b.cpu.split(",")[0]
    devices = E(root, "devices")
    if b.emulator:
        E(devices, "emulator").text = b.emulator
    used: set = set()
    for disk in b.disks:
        bus = disk["bus"] if disk["bus"] in PREFIX else "ide"
        prefix = PREFIX[bus]
        n = 2 if disk["device"] == "cdrom" and bus == "ide" and f"{prefix}c" not in used else 0
        while f"{prefix}{chr(97 + n)}" in used:
            n += 1
        target = f"{prefix}{chr(97 + n)}"
        used.add(target)
        el = E(devices, "disk", type="block" if (disk["source"] or "").startswith("/dev/") else "file",
               device=disk["device"])
        drv = E(el, "driver", name="qemu", type=disk["format"] or "raw")
        if disk["cache"]:
            drv.set("cache", disk["cache"])
        if disk["source"]:
            E(el, "source", **{"dev" if el.get("type") == "block" else "file": disk["source"]})
        E(el, "target", dev=target, bus=bus)
        if disk["readonly"]:
            E(el, "readonly")
    for nic in b.nics:
        el = E(devices, "interface", type=nic["type"])
        if nic.get("mac"):
            E(el, "mac", address=nic["mac"])
        if nic["type"] == "bridge":
            E(el, "source", bridge=nic["bridge"])
        if nic.get("target"):
            E(el, "target", dev=nic["target"])
        if nic.get("model"):
            E(el, "model", type=nic["model"])
    for spec in b.serials:
        if spec is not None:
            _serial_xml(devices, spec)
    if b.vnc and b.vnc != "none":
        host, _, display = b.vnc.partition(",")[0].rpartition(":")
        E(devices, "graphics", type="vnc", port=str(5900 + int(display or 0)), autoport="no",
          listen=host or "127.0.0.1")
    dom = Domain.parse(etree.tostring(root))
    dom.fill_defaults()
    dom.validate()
    return dom.to_xml()


def domxml_from_native(fmt: str, config: str) -> str:
    import shlex

    if fmt != "qemu-argv":
        raise InvalidArgument(f"unsupported config type {fmt}")
    try:
        words = shlex.split(config.replace("\\\n", " "))
    except ValueError as exc:
        raise InvalidArgument(f"internal error: cannot split the command line: {exc}") from None
    if not words:
        raise InvalidArgument("internal error: no emulator path found")
    b = _Builder()
    _read(b, parse_argv(words))
    return to_xml(b)
