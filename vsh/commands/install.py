"""Creating a domain from options: ``vsh install`` (virt-install's job; alias ``virt-install``).

One call describes the machine with virt-install's options, writes libvirt
domain XML, creates the disk images it names (``qemu-img create`` with an
explicit format) and a cloud-init seed if asked, defines the domain, starts it
and attaches to its console.

The work is split so that each step can be checked on its own:

* :func:`make_plan` turns the options into a :class:`Plan`: the domain XML plus
  the files to create. It reads what the options name (cloud-init files, the
  headers of existing disks) and creates nothing.
* :func:`precheck` runs the real QEMU argv builder on the plan, with throw-away
  stand-ins for the files not created yet, so a domain that cannot run here
  (a KVM domain on a TCG-only host, IDE on q35, an unknown CPU model) fails
  before anything is written. ``--dry-run`` stops after it.
* :func:`carry_out` creates the files, defines and starts the domain; if a step
  fails, what it created so far is removed again.

Options that virt-install has and vsh does not take are refused by the parser;
values vsh cannot run yet (``--network network=NAME`` while vsh has no virtual
networks) get a clear error.
"""

from __future__ import annotations

import os
import sys
from collections import namedtuple

from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, Unsupported, VshError
from vsh.core.output import Many, Message, Table, Text
from vsh.registry import Opt, command

GIB = 1024 ** 3

# -- the built-in OS table -----------------------------------------------------------------------

OsVariant = namedtuple("OsVariant", "name label memory disk vcpus machine disk_bus nic_model")

#: vsh's own defaults per OS (memory in MiB, disk in GiB). Every entry boots virtio devices.
OS_VARIANTS = {v.name: v for v in (
    OsVariant("debian12", "Debian 12 (bookworm)", 1024, 20, 1, "q35", "virtio", "virtio"),
    OsVariant("debian11", "Debian 11 (bullseye)", 1024, 20, 1, "q35", "virtio", "virtio"),
    OsVariant("ubuntu22.04", "Ubuntu 22.04 LTS", 2048, 25, 2, "q35", "virtio", "virtio"),
    OsVariant("ubuntu24.04", "Ubuntu 24.04 LTS", 2048, 25, 2, "q35", "virtio", "virtio"),
    OsVariant("fedora40", "Fedora Linux 40", 2048, 20, 2, "q35", "virtio", "virtio"),
    OsVariant("alpine3.19", "Alpine Linux 3.19", 256, 2, 1, "q35", "virtio", "virtio"),
    OsVariant("generic", "Generic OS (virtio devices)", 512, 10, 1, "q35", "virtio", "virtio"),
)}

DISK_BUSES = ("virtio", "scsi", "sata", "ide")
NIC_MODELS = ("virtio", "e1000", "e1000e", "rtl8139")
OVMF_PAIRS = (("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
              ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
              ("/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"))


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


def _onoff(value: str, what: str) -> bool:
    low = (value or "").strip().lower()
    if low in ("on", "yes", "true", "1", ""):
        return True
    if low in ("off", "no", "false", "0"):
        return False
    raise InvalidArgument(f"{what}: '{value}' is not on or off")


def _positive_int(value: str, what: str, zero: bool = False) -> int:
    text = (value or "").strip()
    if not text.isdigit() or (int(text) == 0 and not zero):
        raise InvalidArgument(f"{what}: '{value}' is not a positive whole number")
    return int(text)


def _unknown(key: str | None, value: str, option: str, known: tuple) -> InvalidArgument:
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
            memory = _positive_int(value, "--memory")
        elif key == "currentmemory":
            current = _positive_int(value, "--memory currentMemory")
        else:
            raise _unknown(key, value, "memory", ("N (MiB)", "memory=N", "currentMemory=N"))
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
            out["current"] = _positive_int(value, "--vcpus")
        elif key in ("maxvcpus", "sockets", "dies", "cores", "threads"):
            out["max" if key == "maxvcpus" else key] = _positive_int(value, f"--vcpus {key}")
        else:
            raise _unknown(key, value, "vcpus", ("N", "maxvcpus=M", "sockets=", "dies=", "cores=", "threads="))
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
            raise _unknown(key, value, "cpu", ("host-passthrough", "host-model", "max", "MODEL", "+feature",
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
            raise _unknown(key, value, "disk", _DISK_KEYS)
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
                    _onoff(vals["readonly"], "--disk readonly") if "readonly" in vals else device == "cdrom",
                    _onoff(vals["shareable"], "--disk shareable") if "shareable" in vals else False,
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
            raise _unknown(key, value, "network", ("user", "none", "network=NAME", "bridge=NAME", "model=",
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
            uefi = value != "bios" if key == "firmware" else (key is None or _onoff(value, "--boot uefi"))
        elif key in ("kernel", "initrd"):
            if not value:
                raise InvalidArgument(f"--boot: {key}= is empty")
            path = os.path.abspath(os.path.expanduser(value))
            if key == "kernel":
                kernel = path
            else:
                initrd = path
        elif key in ("menu", "bootmenu_enable", "bootmenu"):
            menu = _onoff(value, "--boot menu")
        elif last_free:
            cmdline += "," + (f"{key}={value}" if key is not None else value)
            continue
        else:
            raise _unknown(key, value, "boot", ("kernel=", "initrd=", "kernel_args=", "uefi") + _BOOT_WORDS[:3])
        last_free = False
    if (initrd or cmdline) and not kernel:
        raise InvalidArgument("--boot: initrd= and kernel_args= need kernel=")
    return BootSpec(kernel, initrd, cmdline, devices, uefi, menu)


CloudInit = namedtuple("CloudInit", "files password")


def parse_cloud_init(text: str | None, name: str, uuid: str) -> CloudInit | None:
    """``--cloud-init user-data=F,meta-data=F[,network-config=F]`` or ``root-ssh-key=F`` /
    ``root-password-generate=on`` / ``root-password-file=F``: the seed's files."""
    if text is None:
        return None
    from vsh.core import cloudinit
    from vsh.core.store import read_input_file

    files: dict[str, bytes] = {}
    keys: list[str] = []
    password = None
    generate = False
    read = lambda path: read_input_file(os.path.expanduser(path), limit=1024 * 1024)  # noqa: E731
    words = split_options(text, "--cloud-init")
    if text.strip().lower() in ("on", "yes", ""):
        words = [("root_password_generate", "on")]
    for key, value in words:
        if key in ("user_data", "meta_data", "network_config", "vendor_data"):
            fname = key.replace("_", "-")
            if fname in files:
                raise InvalidArgument(f"--cloud-init: {fname}= given twice")
            files[fname] = read(value)
        elif key in ("root_ssh_key", "ssh_key"):
            keys += cloudinit.ssh_keys_from(read(value), value)
        elif key == "root_password_generate":
            generate = _onoff(value, "--cloud-init root-password-generate")
        elif key == "root_password_file":
            pw = read(value).decode(errors="replace").splitlines()
            if not pw or not pw[0]:
                raise InvalidArgument(f"--cloud-init: '{value}' holds no password on its first line")
            password = pw[0]
        elif key == "disable":
            raise Unsupported("--cloud-init disable=: the seed stays attached on purpose (so the domain "
                              "boots the same after a restart); disable cloud-init from user-data instead")
        else:
            raise _unknown(key, value, "cloud-init", ("user-data=FILE", "meta-data=FILE", "network-config=FILE",
                                                      "root-ssh-key=FILE", "root-password-generate=on",
                                                      "root-password-file=FILE"))
    generated = None
    if generate:
        if password is not None:
            raise InvalidArgument("--cloud-init: root-password-generate and root-password-file exclude each other")
        generated = password = cloudinit.generate_password()
    if "user-data" in files and (keys or password):
        raise InvalidArgument("--cloud-init: user-data= cannot be combined with root-ssh-key= or a root "
                              "password; put them in your user-data")
    if "user-data" not in files:
        if not keys and not password:
            raise InvalidArgument("--cloud-init: give user-data=FILE (with meta-data=FILE), root-ssh-key=FILE "
                                  "or root-password-generate=on")
        files["user-data"] = cloudinit.user_data(keys, password)
    if "meta-data" not in files:
        files["meta-data"] = cloudinit.meta_data(f"vsh-{uuid}", cloudinit.hostname_for(name))
    return CloudInit(files, generated)


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
            raise _unknown(key, value, "os-variant", ("NAME", "name=NAME"))
    if name not in OS_VARIANTS:
        raise InvalidArgument(f"--os-variant: unknown OS '{name}'",
                              hint=f"vsh knows: {', '.join(OS_VARIANTS)} (see --os-variant list)")
    return OS_VARIANTS[name]


# -- the plan -------------------------------------------------------------------------------------


class Plan:
    """What an install will do: the domain and the files it needs created."""

    def __init__(self, dom):
        self.dom = dom
        self.disks: list[dict] = []    # {"path", "format", "size", "backing", "backing_format"} to create
        self.existing: list[tuple[str, str, str]] = []  # (path, format, how the format was chosen)
        self.seed: tuple[str, bytes] | None = None
        self.nvram: tuple[str, str] | None = None  # (template, path)
        self.password: str | None = None

    def new_paths(self) -> list[str]:
        out = [d["path"] for d in self.disks]
        if self.seed:
            out.append(self.seed[0])
        if self.nvram:
            out.append(self.nvram[1])
        return out


def _host():
    from vsh.kvm.host import probe

    return probe()


def _sniff_format(path: str) -> str:
    """raw or qcow2, from the first bytes (an existing image given without format=)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise InvalidArgument(f"--disk: cannot read '{path}': {exc.strerror}") from None
    return "qcow2" if head == b"QFI\xfb" else "raw"


def _ovmf() -> tuple[str, str]:
    for code, varstore in OVMF_PAIRS:
        if os.path.isfile(code) and os.path.isfile(varstore):
            return code, varstore
    raise Unsupported("--boot uefi: no UEFI firmware (OVMF) is installed on this host",
                      hint="install Debian's 'ovmf' package, or drop uefi to boot with the BIOS")


def _free_name(directory: str, stem: str, ext: str, taken: set[str]) -> str:
    """``stem.ext``, else ``stem-1.ext``... : the first name that is neither on disk nor planned."""
    n = 0
    while True:
        candidate = os.path.join(directory, f"{stem}{'' if n == 0 else f'-{n}'}.{ext}")
        if candidate not in taken and not os.path.lexists(candidate):
            return candidate
        n += 1


def _pools(store, init: bool = False):
    """The store's storage pools (vsh.core.pools), or None where this build has none."""
    try:
        from vsh.core.pools import Pools
    except ImportError:
        return None
    return Pools(store, init=init)


def _pool_dir(store, pool: str | None) -> str:
    """The directory of storage pool ``pool`` (None: the default pool, the store's images directory)."""
    name = pool or "default"
    images = os.path.join(os.fspath(store.data_dir), "images")  # created when a file goes there
    pools = _pools(store)
    if pools is None:
        if name == "default":
            return images
        raise NotFound(f"--disk: storage pool '{name}' not found")
    try:
        found = pools.get(name)
    except NotFound:
        if name == "default":
            return images  # defined on first use, on the images directory
        raise NotFound(f"--disk: storage pool '{name}' not found", hint="see pool-list --all") from None
    if not getattr(found, "active", True):
        raise OperationInvalid(f"--disk: storage pool '{name}' is not active", hint=f"pool-start {name}")
    return found.target


def _check_network(store, name: str) -> None:
    from vsh.core.networks import DEFAULT_NETWORK, Networks

    try:
        Networks(store, init=False).get(name)
    except NotFound:
        if name != DEFAULT_NETWORK:
            raise NotFound(f"--network: Network not found: no network with matching name '{name}'",
                           hint="vsh net-list --all shows the networks") from None
        Networks(store).get(name)       # defines 'default' on first use, as every connection has one


def make_plan(store, opts: dict, host=None) -> Plan:
    """The domain and the files that the options describe (nothing is created)."""
    import uuid as _uuid

    from lxml import etree

    from vsh.core import portfwd
    from vsh.core.domain import Domain, check_name, random_mac
    from vsh.core.store import check_store_name

    name = opts.get("name")
    if not name:
        raise InvalidArgument("--name is required")
    check_name(name)
    check_store_name(name)
    variant = parse_os_variant(opts.get("os_variant"))
    uuid = opts.get("uuid") or str(_uuid.uuid4())
    try:
        uuid = str(_uuid.UUID(uuid))
    except ValueError:
        raise InvalidArgument(f"--uuid: '{uuid}' is not a UUID") from None
    memory, current = parse_memory(opts.get("memory"), variant)
    vcpus = parse_vcpus(opts.get("vcpus"), variant)
    cpu = parse_cpu(opts.get("cpu"))
    boot = parse_boot(opts.get("boot"))
    disks = [d for d in (parse_disk(t) for t in opts.get("disk") or []) if d is not None]
    disk_none = any(parse_disk(t) is None for t in opts.get("disk") or [])
    nets = [n for n in (parse_network(t) for t in (opts.get("network") or ["user"])) if n is not None]
    cloud = parse_cloud_init(opts.get("cloud_init"), name, uuid)
    cdrom = opts.get("cdrom")
    do_import = bool(opts.get("import_"))
    machine = opts.get("machine") or variant.machine
    microvm = machine == "microvm"
    virt_type = opts.get("virt_type")
    if virt_type is None:
        from vsh.kvm.host import default_domain_type

        virt_type = default_domain_type(host if host is not None else _host())

    if cdrom is not None:
        cdrom = os.path.abspath(os.path.expanduser(cdrom))
        if not os.path.isfile(cdrom) and not os.path.exists(cdrom):
            raise NotFound(f"--cdrom: cannot access '{cdrom}': No such file or directory")
    methods = [m for m, on in (("--cdrom", cdrom is not None), ("--import", do_import),
                               ("--boot kernel=", boot.kernel is not None)) if on]
    if len(methods) > 1 and not (methods == ["--cdrom", "--boot kernel="]):
        raise InvalidArgument(f"{' and '.join(methods)} are different ways to install; give one")
    if not methods and not boot.devices and cloud is None:
        raise InvalidArgument("no install method: give --cdrom ISO, --import (boot an existing disk), "
                              "--boot kernel=... or --boot hd|cdrom|network")
    if do_import and not any(d.device == "disk" for d in disks):
        raise InvalidArgument("--import boots an existing disk: give it with --disk path=IMAGE")
    if not disks and not disk_none and not (boot.kernel or cdrom):
        raise InvalidArgument("no storage: give --disk (e.g. --disk size=10, or --disk path=IMAGE with --import) "
                              "or --disk none")

    # -- the XML
    root = etree.Element("domain", type=virt_type)
    dom = Domain(root)
    dom.name = name
    dom.uuid = uuid
    dom.memory = memory
    dom.current_memory = current
    etree.SubElement(root, "vcpu", placement="static").text = str(vcpus["max"])
    if vcpus["current"] != vcpus["max"]:
        root.find("vcpu").set("current", str(vcpus["current"]))
    os_el = etree.SubElement(root, "os")
    etree.SubElement(os_el, "type", arch="x86_64", machine=machine).text = "hvm"
    plan = Plan(dom)
    if boot.uefi:
        if microvm:
            raise InvalidArgument("--boot uefi: machine 'microvm' boots a kernel directly, without firmware")
        code, varstore = _ovmf()
        etree.SubElement(os_el, "loader", readonly="yes", type="pflash").text = code
        nvram_path = os.path.join(os.fspath(store.data_dir), "nvram", f"{name}_VARS.fd")
        etree.SubElement(os_el, "nvram", template=varstore).text = nvram_path
        plan.nvram = (varstore, nvram_path)
    if boot.kernel:
        etree.SubElement(os_el, "kernel").text = boot.kernel
        if boot.initrd:
            etree.SubElement(os_el, "initrd").text = boot.initrd
        if boot.cmdline is not None:
            etree.SubElement(os_el, "cmdline").text = boot.cmdline
    if not microvm:
        if boot.devices:
            order = boot.devices
        elif boot.kernel:
            order = []
        elif cdrom is not None:
            order = ["hd", "cdrom"]  # a blank disk is skipped by the firmware: install media boots, then the disk
        else:
            order = ["hd"]
        for dev in order:
            etree.SubElement(os_el, "boot", dev=dev)
        if boot.menu is not None:
            etree.SubElement(os_el, "bootmenu", enable="yes" if boot.menu else "no")
    feats = etree.SubElement(root, "features")
    etree.SubElement(feats, "acpi")
    if not microvm:
        etree.SubElement(feats, "apic")
    if cpu is not None or vcpus["sockets"] is not None:
        cpu_el = etree.SubElement(root, "cpu")
        if cpu is not None:
            cpu_el.set("mode", cpu["mode"])
            if cpu["mode"] == "custom":
                cpu_el.set("match", "exact")
                etree.SubElement(cpu_el, "model", fallback="forbid").text = cpu["model"]
            elif cpu["mode"] in ("host-passthrough", "maximum"):
                cpu_el.set("check", "none")
        if vcpus["sockets"] is not None:
            etree.SubElement(cpu_el, "topology", sockets=str(vcpus["sockets"]), dies=str(vcpus["dies"] or 1),
                             cores=str(vcpus["cores"]), threads=str(vcpus["threads"]))
        for policy, fname in (cpu or {}).get("features", []):
            etree.SubElement(cpu_el, "feature", policy=policy, name=fname)
    etree.SubElement(root, "clock", offset="utc")
    for tag, action in (("on_poweroff", "destroy"), ("on_reboot", "restart"), ("on_crash", "destroy")):
        etree.SubElement(root, tag).text = action
    devices = etree.SubElement(root, "devices")

    # disks
    images = None
    taken: set[str] = set()
    counters = {"vd": 0, "sd": 0, "hd": 0}
    used_targets = {d.target for d in disks if d.target}
    cdrom_bus = "ide" if machine.startswith(("pc-i440fx", "pc")) and not machine.startswith("pc-q35") \
        else "sata"

    def next_target(bus: str) -> str:
        prefix = {"virtio": "vd", "scsi": "sd", "sata": "sd", "ide": "hd"}[bus]
        while True:
            n = counters[prefix]
            counters[prefix] += 1
            letters = ""
            n += 1
            while n:
                n, rem = divmod(n - 1, 26)
                letters = chr(ord("a") + rem) + letters
            if prefix + letters not in used_targets:
                used_targets.add(prefix + letters)
                return prefix + letters

    def add_disk(path: str | None, fmt: str, bus: str, device: str, readonly: bool, spec: DiskSpec | None):
        d = etree.SubElement(devices, "disk", type="file", device=device)
        drv = etree.SubElement(d, "driver", name="qemu", type=fmt)
        if spec is not None and spec.cache:
            drv.set("cache", spec.cache)
        if path:
            etree.SubElement(d, "source", file=path)
        if spec is not None and spec.backing:
            bs = etree.SubElement(d, "backingStore", type="file")
            etree.SubElement(bs, "format", type=spec.backing_format)
            etree.SubElement(bs, "source", file=spec.backing)
        target = spec.target if spec is not None and spec.target else next_target(bus)
        etree.SubElement(d, "target", dev=target, bus=bus)
        if readonly:
            etree.SubElement(d, "readonly")
        if spec is not None and spec.shareable:
            etree.SubElement(d, "shareable")
        if spec is not None and spec.serial:
            etree.SubElement(d, "serial").text = spec.serial
        if microvm and bus == "virtio":
            etree.SubElement(d, "address", type="virtio-mmio")
        return d

    for spec in disks:
        bus = spec.bus or (variant.disk_bus if spec.device == "disk" else cdrom_bus)
        if microvm and bus != "virtio":
            raise InvalidArgument(f"--disk: machine 'microvm' has only virtio disks (bus '{bus}' needs PCI)")
        if spec.device == "cdrom" and bus == "virtio":
            raise InvalidArgument("--disk: a cdrom cannot be on bus 'virtio' (use sata, scsi or ide)")
        path = spec.path
        if spec.device == "cdrom":
            if path is not None and not os.path.exists(path):
                raise NotFound(f"--disk: cannot access '{path}': No such file or directory")
            fmt = spec.format or "raw"
            add_disk(path, fmt, bus, "cdrom", True, spec)
            continue
        if spec.backing is not None:
            if not os.path.isfile(spec.backing):
                raise NotFound(f"--disk: backing_store '{spec.backing}': No such file")
            spec = spec._replace(backing_format=spec.backing_format or _sniff_format(spec.backing))
        exists = path is not None and os.path.lexists(path)
        if exists:
            if spec.size is not None or spec.backing is not None:
                raise OperationInvalid(f"--disk: '{path}' already exists; drop size=/backing_store= to use it "
                                       "as it is, or name a new file")
            if os.path.isdir(path):
                raise InvalidArgument(f"--disk: '{path}' is a directory")
            fmt = spec.format or _sniff_format(path)
            how = "given" if spec.explicit_format else "read from its header"
            plan.existing.append((path, fmt, how))
        else:
            if do_import:
                raise NotFound(f"--disk: cannot access '{path or '(no path)'}': --import needs an existing image")
            size = spec.size
            if size is None and spec.backing is None:
                size = variant.disk * GIB
            if path is None:
                if images is None:
                    images = _pool_dir(store, spec.pool)
                fmt = spec.format or "qcow2"
                path = _free_name(images, name, "qcow2" if fmt == "qcow2" else "img", taken)
            else:
                if spec.pool not in (None, "default"):
                    raise InvalidArgument("--disk: give path= or pool=, not both")
                ext = os.path.splitext(path)[1].lower()
                fmt = spec.format or {".raw": "raw", ".img": "raw", ".iso": "raw"}.get(ext, "qcow2")
                parent = os.path.dirname(path)
                if not os.path.isdir(parent):
                    raise NotFound(f"--disk: directory '{parent}' does not exist")
            if spec.backing is not None and fmt != "qcow2":
                raise InvalidArgument("--disk: backing_store= needs format=qcow2 for the new disk")
            taken.add(path)
            plan.disks.append({"path": path, "format": fmt, "size": size, "backing": spec.backing,
                               "backing_format": spec.backing_format})
        add_disk(path, fmt, bus, "disk", spec.readonly, spec)
    if cdrom is not None:
        if microvm:
            raise InvalidArgument("--cdrom: machine 'microvm' has no cdrom bus; boot a kernel (--boot kernel=)")
        add_disk(cdrom, "raw", cdrom_bus, "cdrom", True, None)
    if cloud is not None:
        seed_dir = _pool_dir(store, None) if images is None else images
        seed_path = os.path.join(seed_dir, f"{name}-cidata.iso")
        from vsh.core import cloudinit

        plan.seed = (seed_path, cloudinit.build_seed(cloud.files))
        plan.password = cloud.password
        if microvm:
            add_disk(seed_path, "raw", "virtio", "disk", True, None)  # microvm: a read-only virtio disk
        else:
            add_disk(seed_path, "raw", cdrom_bus, "cdrom", True, None)
    if any(d.find("target").get("bus") == "scsi" for d in devices.findall("disk")):
        ctrl = etree.SubElement(devices, "controller", type="scsi", index="0", model="virtio-scsi")
        if microvm:
            etree.SubElement(ctrl, "address", type="virtio-mmio")

    # network
    macs = set()
    for index, spec in enumerate(nets):
        # network=NAME must be a network of this connection (virt-install checks the same);
        # whether it is active is the business of 'start' (an autostart network is started then)
        if spec.type == "network":
            _check_network(store, spec.source or "default")
        nic = etree.SubElement(devices, "interface", type=spec.type)
        mac = spec.mac or random_mac()
        if mac in macs:
            raise InvalidArgument(f"--network: MAC address {mac} is used twice")
        macs.add(mac)
        etree.SubElement(nic, "mac", address=mac)
        if spec.type != "user":
            etree.SubElement(nic, "source", **{spec.type: spec.source or "default"})
        model = spec.model or variant.nic_model
        if microvm and model != "virtio":
            raise InvalidArgument(f"--network: machine 'microvm' has only virtio NICs (model '{model}' needs PCI)")
        etree.SubElement(nic, "model", type=model)
        if microvm:
            etree.SubElement(nic, "address", type="virtio-mmio")
        for fw in spec.forwards:
            portfwd.add(root, fw._replace(interface=index))

    # console, graphics, balloon, rng
    console = parse_console(opts.get("console"))
    if console == "serial":
        serial = etree.SubElement(devices, "serial", type="pty")
        etree.SubElement(serial, "target", port="0")
        con = etree.SubElement(devices, "console", type="pty")
        etree.SubElement(con, "target", type="serial", port="0")
    elif console == "virtio":
        con = etree.SubElement(devices, "console", type="pty")
        etree.SubElement(con, "target", type="virtio", port="0")
    graphics = parse_graphics(opts.get("graphics"))
    if graphics == "vnc":
        if microvm:
            raise InvalidArgument("--graphics vnc: machine 'microvm' has no display device")
        g = etree.SubElement(devices, "graphics", type="vnc")
        etree.SubElement(g, "listen", type="socket")
        video = etree.SubElement(devices, "video")
        etree.SubElement(video, "model", type="vga")
    balloon = etree.SubElement(devices, "memballoon", model="virtio")
    if microvm:
        etree.SubElement(balloon, "address", type="virtio-mmio")
    rng = parse_rng(opts.get("rng"))
    if rng is not None:
        rng_el = etree.SubElement(devices, "rng", model="virtio")
        if rng == "builtin":
            etree.SubElement(rng_el, "backend", model="builtin")
        else:
            etree.SubElement(rng_el, "backend", model="random").text = rng
        if microvm:
            etree.SubElement(rng_el, "address", type="virtio-mmio")
    _order_metadata(root)
    dom.fill_defaults()
    dom.validate()
    return plan


def _order_metadata(root) -> None:
    """<metadata> goes after <uuid> (libvirt's order), wherever portfwd.add created it."""
    meta = root.find("metadata")
    if meta is not None:
        root.remove(meta)
        root.find("uuid").addnext(meta)


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
            raise _unknown(key, value, "console", ("pty", "target_type=serial|virtio", "none"))
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
            raise _unknown(key, value, "graphics", ("none", "vnc"))
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


# -- checking and carrying out --------------------------------------------------------------------


def precheck(plan: Plan, host, check_ports: bool = True) -> None:
    """Build the real QEMU argv for the plan, with stand-ins for files not created yet."""
    import tempfile

    from vsh.kvm.argv import RuntimePaths, build_argv, check_host_ports

    dom = plan.dom.copy()
    with tempfile.TemporaryDirectory(prefix="vsh-install-") as tmp:
        stand_ins = {}
        for i, disk in enumerate(plan.disks):
            stand_in = os.path.join(tmp, f"disk{i}")
            with open(stand_in, "wb") as fh:
                if disk["format"] == "qcow2":
                    fh.write(b"QFI\xfb" + bytes(28))  # a header naming no backing file
            stand_ins[disk["path"]] = stand_in
        for path in ([plan.seed[0]] if plan.seed else []) + ([plan.nvram[1]] if plan.nvram else []):
            stand_in = os.path.join(tmp, os.path.basename(path))
            open(stand_in, "wb").close()
            stand_ins[path] = stand_in
        for src in dom.node.iter("source"):
            if src.get("file") in stand_ins:
                src.set("file", stand_ins[src.get("file")])
        nv = dom.node.find("os/nvram")
        if nv is not None and (nv.text or "").strip() in stand_ins:
            nv.text = stand_ins[nv.text.strip()]
        try:
            build_argv(dom.node, host, RuntimePaths.for_rundir(os.path.join(tmp, "run")))
        except Unsupported as err:
            if err.hint is None and "interface type" in str(err):
                raise Unsupported(*err.lines, hint="vsh runs user-mode networking today: --network user"
                                  "[,portforward=HOSTPORT:GUESTPORT]") from None
            raise
        if check_ports:
            check_host_ports(dom.node)


def _create_disk(disk: dict) -> None:
    from vsh.core.qemuimg import qemu_img

    path = disk["path"]
    # claim the name first, so two installs can never write the same file
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise OperationInvalid(f"disk '{path}' appeared meanwhile; not overwriting it") from None
    except OSError as exc:
        raise VshError(f"cannot create disk '{path}': {exc.strerror}") from None
    os.close(fd)
    args = ["create", "-q", "-f", disk["format"]]
    if disk.get("backing"):
        args += ["-b", disk["backing"], "-F", disk["backing_format"]]
    args.append(path)
    if disk.get("size") is not None:
        args.append(str(disk["size"]))
    qemu_img(args, what=f"cannot create disk '{path}': qemu-img create", timeout=300)


def _seed_in_use(store, path: str, name: str) -> str | None:
    """The domain (other than ``name``) whose disk is the file ``path``, if any."""
    for ref in store.refs():
        if ref.name == name:
            continue
        try:
            other = store.load(ref, inactive=True)
        except VshError:
            continue
        for disk in other.disks:
            if disk.source and os.path.realpath(disk.source) == os.path.realpath(path):
                return ref.name
    return None


def carry_out(ctx, plan: Plan, autostart: bool = False) -> tuple[list, dict]:
    """Create the files, define the domain, start it; on failure remove all of it again."""
    import shutil

    from vsh.core.output import human_size
    from vsh.core.store import atomic_write, ensure_private_dir

    store = ctx.store
    dom = plan.dom
    name = dom.name
    created: list[str] = []
    defined = False
    parts: list = []
    try:
        images = os.path.join(os.fspath(store.data_dir), "images")
        for path in plan.new_paths():
            if os.path.dirname(path) == images:
                store.images_dir()  # the images directory, private to its user
                _pools(store, init=True)  # and the default pool on it, so its volumes are managed
                break
        for disk in plan.disks:
            _create_disk(disk)
            created.append(disk["path"])
            if disk.get("backing"):
                parts.append(Message(f"Disk '{disk['path']}' created ({disk['format']} over "
                                     f"{disk['backing']})"))
            else:
                parts.append(Message(f"Disk '{disk['path']}' created ({disk['format']}, "
                                     f"{human_size(disk['size'])})"))
        if plan.nvram:
            template, path = plan.nvram
            ensure_private_dir(os.path.dirname(path))
            if os.path.exists(path):
                raise OperationInvalid(f"UEFI variable store '{path}' already exists; remove it or pick another name")
            shutil.copyfile(template, path)
            os.chmod(path, 0o600)
            created.append(path)
        if plan.seed:
            path, data = plan.seed
            user = _seed_in_use(store, path, name)
            if user is not None:
                raise OperationInvalid(f"cloud-init seed '{path}' is a disk of domain '{user}'; not replacing it")
            atomic_write(path, data)
            created.append(path)
            parts.append(Message(f"Seed '{path}' created (cloud-init NoCloud, volume id cidata)"))
        store.define(dom)
        defined = True
        parts.append(Message(f"Domain '{name}' defined"))
        if autostart:
            store.set_autostart(name, True)
        from vsh.commands.lifecycle import start

        parts.append(start(ctx, name))
    except BaseException as err:
        if defined:
            try:
                store.set_autostart(name, False)
                store.undefine(store.get(name))
            except VshError:
                pass
        for path in reversed(created):
            try:
                os.unlink(path)
            except OSError:
                pass
        if isinstance(err, VshError):
            hint = "nothing was kept: the definition and the files made for it are removed" \
                if (defined or created) else err.hint
            failed = err.__class__(*err.lines, hint=hint)
            raise failed.with_context(f"Failed to install domain '{name}'") from None
        raise
    return parts, {"name": name, "uuid": dom.uuid, "created": created,
                   "disks": [d.source for d in dom.disks if d.source]}


def variant_table() -> Table:
    rows = [[v.name, v.label, f"{v.memory} MiB", f"{v.disk} GiB", v.vcpus, v.machine]
            for v in OS_VARIANTS.values()]
    return Table(["Name", "OS", "Memory", "Disk", "vCPUs", "Machine"], rows,
                 json_data=[v._asdict() for v in OS_VARIANTS.values()])


# -- the command ----------------------------------------------------------------------------------


@command("install", group="domain", summary="create a domain from options, its disks too, and start it",
         aliases=("virt-install",), mutating=True,
         opts=[Opt("name", kind="string", short="n", help="name of the new domain"),
               Opt("memory", kind="string", help="memory in MiB (N, or memory=N,currentMemory=M)"),
               Opt("vcpus", kind="string", help="vCPUs: N, then comma-separated: maxvcpus=M, sockets=S, cores=C, threads=T"),
               Opt("cpu", kind="string", help="CPU: host-passthrough, host-model, max, or a model (+feat,-feat)"),
               Opt("disk", kind="string", repeat=True,
                   help="a disk, as comma-separated keys: path=FILE, size=GiB, format=raw|qcow2, "
                        "bus=virtio|scsi|sata|ide, pool=default, device=disk|cdrom, readonly=on, "
                        "backing_store=FILE, cache=MODE (repeatable; 'none' for no disk)"),
               Opt("cdrom", kind="file", help="install media: an ISO image attached as a cdrom and booted"),
               Opt("import", kind="bool", help="boot the existing disk given with --disk (no install media)"),
               Opt("boot", kind="string",
                   help="comma-separated: kernel=FILE, initrd=FILE, kernel_args=TEXT; uefi; "
                        "hd, cdrom, network (boot order); menu=on"),
               Opt("network", kind="string", repeat=True,
                   help="user (default) or none, then comma-separated: model=virtio|e1000|e1000e, "
                        "mac=ADDR, portforward=[ADDR:]HOSTPORT:GUESTPORT[/tcp|udp] (repeatable)"),
               Opt("graphics", kind="string", help="none (default) or vnc (on a private unix socket)"),
               Opt("console", kind="string", help="pty (default: serial port 0), pty,target_type=virtio, none"),
               Opt("rng", kind="string", help="virtio RNG backend: /dev/urandom (default), /dev/random, builtin, none"),
               Opt("os-variant", kind="string",
                   help="OS defaults (memory, disk size, machine): debian12, debian11, ubuntu22.04, "
                        "ubuntu24.04, fedora40, alpine3.19, generic (default); 'list' shows them"),
               Opt("virt-type", kind="enum", choices=("kvm", "qemu"),
                   help="kvm or qemu (TCG); default: what this host can run"),
               Opt("machine", kind="string", help="machine type: q35 (default), pc, microvm, or a versioned name"),
               Opt("cloud-init", kind="string",
                   help="NoCloud seed, comma-separated: user-data=FILE, meta-data=FILE, network-config=FILE; "
                        "or root-ssh-key=FILE, root-password-generate=on"),
               Opt("uuid", kind="string", help="UUID of the new domain (default: a random one)"),
               Opt("autostart", kind="bool", help="start the domain when the host boots (vsh autostart)"),
               Opt("print-xml", kind="bool", help="print the domain XML and stop (nothing is created)"),
               Opt("dry-run", kind="bool", help="check everything, create nothing"),
               Opt("noautoconsole", kind="bool", help="do not attach to the console after the start")],
         exclusive=(("print-xml", "dry-run"),),
         examples=("install --name vm1 --memory 1024 --disk size=10 --cdrom debian-12.iso",
                   "install --name c1 --os-variant debian12 --import --disk debian-12-generic-amd64.qcow2 "
                   "--cloud-init root-ssh-key=~/.ssh/id_ed25519.pub --network user,portforward=2222:22",
                   "install --name k --memory 256 --boot kernel=vmlinux,initrd=initrd.img,"
                   "kernel_args='console=ttyS0' --disk none --noautoconsole",
                   "install --os-variant list"),
         description="Describe a machine with virt-install's options; vsh writes its domain XML (which\n"
                     "validates against libvirt's schema), creates the disk images it names under the\n"
                     "images directory (qemu-img, explicit format), defines the domain, starts it and\n"
                     "attaches to its serial console when standard input and output are a terminal.\n"
                     "If a step fails, what was created for the install is removed again.\n"
                     "\n"
                     "An install method is needed: --cdrom (the disk boots first, so a blank disk falls\n"
                     "through to the install media and the installed system boots after it), --import,\n"
                     "--boot kernel=..., or --cloud-init (which implies --import). A cloud-init seed\n"
                     "is kept as NAME-cidata.iso next to the disks and stays attached as a read-only\n"
                     "cdrom, so the domain boots the same after a restart.")
def install(ctx, name=None, memory=None, vcpus=None, cpu=None, disk=(), cdrom=None, boot=None, network=(),
            graphics=None, console=None, rng=None, os_variant=None, virt_type=None, machine=None,
            cloud_init=None, uuid=None, autostart=False, print_xml=False, dry_run=False, noautoconsole=False,
            **kw):
    if os_variant is not None and os_variant.strip().lower() == "list":
        return variant_table()
    opts = dict(name=name, memory=memory, vcpus=vcpus, cpu=cpu, disk=list(disk), cdrom=cdrom, boot=boot,
                network=list(network) or None, graphics=graphics, console=console, rng=rng,
                os_variant=os_variant, virt_type=virt_type, machine=machine, cloud_init=cloud_init, uuid=uuid,
                import_=kw.get("import", False))
    store = ctx.store
    host = None
    try:
        if not print_xml or virt_type is None:
            host = _host()
        plan = make_plan(store, opts, host)
        if print_xml:
            return Text(plan.dom.to_xml(inactive=True), json_data={"xml": plan.dom.to_xml(inactive=True)})
        if store.find(plan.dom.name) is not None:
            raise OperationInvalid(f"domain '{plan.dom.name}' already exists",
                                   hint="pick another --name, or remove the old one with undefine")
        precheck(plan, host)
    except VshError as err:
        raise err.with_context(f"Failed to install domain '{name}'" if name else "Failed to install a domain") \
            from None
    if dry_run:
        lines = [Message("Dry run completed successfully: nothing was created")]
        for d in plan.disks:
            lines.append(Message(f"  would create disk '{d['path']}' ({d['format']})"))
        if plan.seed:
            lines.append(Message(f"  would create cloud-init seed '{plan.seed[0]}'"))
        return Many(lines, json_data={"name": plan.dom.name, "dry_run": True, "would_create": plan.new_paths(),
                                      "xml": plan.dom.to_xml(inactive=True)})
    parts, data = carry_out(ctx, plan, autostart=autostart)
    if plan.password:
        parts.append(Text(f"Generated root password for the first boot (cloud-init): {plan.password}\n"))
        data["root_password"] = plan.password
    if noautoconsole or ctx.json or not _terminal():
        parts.append(Message(f"Domain creation completed; connect with: vsh console {plan.dom.name}"))
        return Many(parts, json_data=data)
    for part in parts:
        ctx.out.write(part.text(ctx.quiet))
    from vsh.commands.lifecycle import _attach_console

    _attach_console(ctx, store.get(plan.dom.name), None)
    return None


def _terminal() -> bool:
    try:
        return os.isatty(sys.stdin.fileno()) and os.isatty(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        return False
