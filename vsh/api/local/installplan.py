"""The local driver's install planner: virt-install's options → the domain XML and the files to create.

:func:`make_plan` parses the options (:mod:`vsh.core.installopts`), reads what they
name (cloud-init files, the headers of existing disks, the store's pools and
networks) and writes the domain XML; it creates nothing. The installer
(:mod:`vsh.api.local.install`) checks the plan against the host and carries it out.
"""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, Unsupported
from vsh.core.installopts import (GIB, DiskSpec, parse_boot, parse_console, parse_cpu, parse_disk, parse_graphics,
                                  parse_memory, parse_network, parse_os_variant, parse_rng, parse_vcpus)

OVMF_PAIRS = (("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
              ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
              ("/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"))


class Plan:
    """What an install will do: the domain and the files it needs created."""

    def __init__(self, dom):
        self.dom = dom
        self.disks: list[dict] = []    # {"path", "format", "size", "backing", "backing_format"} to create
        self.existing: list[tuple[str, str, str]] = []  # (path, format, how the format was chosen)
        self.seed: tuple[str, bytes] | None = None
        self.nvram: tuple[str, str] | None = None  # (template, path)
        self.password: str | None = None
        self.install_dom = None      # --location: the domain of the install run (its kernel, on_reboot destroy)
        self.boot = None             # --location: (Location, kernel path, initrd path, files to inject)

    def new_paths(self) -> list[str]:
        out = [d["path"] for d in self.disks]
        if self.seed:
            out.append(self.seed[0])
        if self.nvram:
            out.append(self.nvram[1])
        return out

    def to_dict(self) -> dict:
        """The plan as plain data (what :meth:`vsh.api.install.Installer.plan` returns)."""
        xml = self.dom.to_xml(inactive=True)
        install_xml = self.install_dom.to_xml(inactive=True) if self.install_dom is not None else None
        return {"name": self.dom.name, "uuid": self.dom.uuid, "xml": xml, "install_xml": install_xml,
                "boot_files": list(self.boot[1:3]) if self.boot else [],
                "disks": [dict(d) for d in self.disks], "seed": self.seed[0] if self.seed else None,
                "nvram": self.nvram[1] if self.nvram else None, "would_create": self.new_paths(),
                "root_password": self.password}


def probe_host():
    """This host's facts (:func:`vsh.kvm.host.probe`): what the plan and its check are made for."""
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


def pools_of(store, init: bool = False):
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
    pools = pools_of(store)
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


class StoreSite:
    """Where an install puts its files and what it checks there, for the embedded store: the
    planner's view of a connection (the libvirt driver's installer has one of its own)."""

    default_network = "user"        # --network absent: user-mode networking

    def __init__(self, store):
        self.store = store

    def pool_dir(self, pool: str | None) -> str:
        return _pool_dir(self.store, pool)

    def check_network(self, name: str) -> None:
        _check_network(self.store, name)

    def nvram_path(self, name: str) -> str | None:
        return os.path.join(os.fspath(self.store.data_dir), "nvram", f"{name}_VARS.fd")

    def boot_dir(self) -> str:
        return os.path.join(os.fspath(self.store.data_dir), "boot")


def _check_network(store, name: str) -> None:
    from vsh.core.networks import DEFAULT_NETWORK, Networks

    try:
        Networks(store, init=False).get(name)
    except NotFound:
        if name != DEFAULT_NETWORK:
            raise NotFound(f"--network: Network not found: no network with matching name '{name}'",
                           hint="vsh net-list --all shows the networks") from None
        Networks(store).get(name)       # defines 'default' on first use, as every connection has one


def make_plan(site, opts: dict, host=None) -> Plan:
    """The domain and the files that the options describe (nothing is created), placed by ``site``
    (a :class:`StoreSite`, or another driver's object with its methods)."""
    import uuid as _uuid

    from vsh.core.lxmlload import etree

    from vsh.core.domain import Domain, check_name
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
    nets = [n for n in (parse_network(t) for t in (opts.get("network") or [site.default_network]))
            if n is not None]
    from vsh.core.cloudinit import parse_cloud_init

    cloud = parse_cloud_init(opts.get("cloud_init"), name, uuid, opts.get("cloud_account"))
    cdrom = opts.get("cdrom")
    location = None
    if opts.get("location"):
        from vsh.core.installmedia import parse_location

        location = parse_location(opts["location"])
    for opt, what in (("extra_args", "--extra-args"), ("initrd_inject", "--initrd-inject")):
        if opts.get(opt) and location is None:
            raise InvalidArgument(f"{what} only works with --location (the kernel it boots)")
    do_import = bool(opts.get("import_"))
    machine = opts.get("machine") or variant.machine
    microvm = machine == "microvm"
    virt_type = opts.get("virt_type")
    if virt_type is None:
        from vsh.kvm.host import default_domain_type

        virt_type = default_domain_type(host if host is not None else probe_host())

    if cdrom is not None:
        cdrom = os.path.abspath(os.path.expanduser(cdrom))
        if not os.path.isfile(cdrom) and not os.path.exists(cdrom):
            raise NotFound(f"--cdrom: cannot access '{cdrom}': No such file or directory")
    methods = [m for m, on in (("--cdrom", cdrom is not None), ("--import", do_import),
                               ("--boot kernel=", boot.kernel is not None), ("--location", location is not None))
               if on]
    if len(methods) > 1 and not (methods == ["--cdrom", "--boot kernel="]):
        raise InvalidArgument(f"{' and '.join(methods)} are different ways to install; give one")
    if not methods and not boot.devices and cloud is None:
        raise InvalidArgument("no install method: give --cdrom ISO, --location ISO|TREE|URL, --import (boot an "
                              "existing disk), --boot kernel=... or --boot hd|cdrom|network")
    if do_import and not any(d.device == "disk" for d in disks):
        raise InvalidArgument("--import boots an existing disk: give it with --disk path=IMAGE")
    if not disks and not disk_none and not (boot.kernel or cdrom or location):
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
    plan = Plan(dom)
    _os_xml(plan, site, boot, machine, cdrom)
    _cpu_xml(root, cpu, vcpus)
    etree.SubElement(root, "clock", offset="utc")
    for tag, action in (("on_poweroff", "destroy"), ("on_reboot", "restart"), ("on_crash", "destroy")):
        etree.SubElement(root, tag).text = action
    devices = _DiskXml(etree.SubElement(root, "devices"), machine, {d.target for d in disks if d.target})
    images = _disks_xml(plan, site, devices, disks, variant, do_import)
    if cdrom is not None:
        if microvm:
            raise InvalidArgument("--cdrom: machine 'microvm' has no cdrom bus; boot a kernel (--boot kernel=)")
        devices.add(cdrom, "raw", devices.cdrom_bus, "cdrom", True, None)
    if cloud is not None:
        seed_dir = site.pool_dir(None) if images is None else images
        seed_path = os.path.join(seed_dir, f"{name}-cidata.iso")
        from vsh.core import cloudinit

        plan.seed = (seed_path, cloudinit.build_seed(cloud.files))
        plan.password = cloud.password
        if microvm:
            devices.add(seed_path, "raw", "virtio", "disk", True, None)  # microvm: a read-only virtio disk
        else:
            devices.add(seed_path, "raw", devices.cdrom_bus, "cdrom", True, None)
    if any(d.find("target").get("bus") == "scsi" for d in devices.node.findall("disk")):
        ctrl = etree.SubElement(devices.node, "controller", type="scsi", index="0", model="virtio-scsi")
        if microvm:
            etree.SubElement(ctrl, "address", type="virtio-mmio")
    if location is not None and location.kind == "iso":
        if microvm:
            raise InvalidArgument("--location: machine 'microvm' has no cdrom bus for the install ISO")
        devices.add(location.source, "raw", devices.cdrom_bus, "cdrom", True, None)
    _nics_xml(site, root, devices.node, nets, variant, microvm)
    _other_devices_xml(devices.node, opts, microvm, variant)
    _domain_options(root, devices.node, opts)
    _order_metadata(root)
    if location is not None:
        _install_phase(plan, site, location, opts)
    dom.fill_defaults(default_devices=False)     # the PS/2 inputs are libvirt's, added on define
    dom.validate()
    return plan


def _install_phase(plan: Plan, site, location, opts: dict) -> None:
    """--location: the install run boots the media's kernel (extra args on its command line) with
    the media attached and ends at the installer's reboot; the defined domain boots its disk, the
    install ISO ejected. The kernel and initrd are copied out at create time (``plan.boot``)."""
    import secrets

    from vsh.core.lxmlload import etree

    boot_dir = site.boot_dir()
    stem = f"{plan.dom.name}-{secrets.token_hex(4)}"
    kernel, initrd = os.path.join(boot_dir, f"{stem}-vmlinuz"), os.path.join(boot_dir, f"{stem}-initrd")
    inject = [os.path.abspath(os.path.expanduser(p)) for p in opts.get("initrd_inject") or []]
    for path in inject:
        if not os.path.isfile(path):
            raise NotFound(f"--initrd-inject: cannot access '{path}': No such file")
    plan.boot = (location, kernel, initrd, inject)
    args = (opts.get("extra_args") or "").strip()
    if plan.dom.node.find("devices/graphics") is None and "console=" not in args:
        args = f"{args} console=ttyS0".strip()          # a text install talks on the serial console
    inst = plan.dom.copy()
    os_el = inst.node.find("os")
    for el in os_el.findall("boot"):
        os_el.remove(el)
    for tag, text in (("kernel", kernel), ("initrd", initrd), ("cmdline", args)):
        if text:
            etree.SubElement(os_el, tag).text = text
    inst.node.find("on_reboot").text = "destroy"
    inst.fill_defaults(default_devices=False)
    inst.validate()
    plan.install_dom = inst
    if location.kind == "iso":      # the defined domain keeps the cdrom drive, its media ejected
        for disk in plan.dom.node.findall("devices/disk"):
            src = disk.find("source")
            if disk.get("device") == "cdrom" and src is not None and src.get("file") == location.source:
                disk.remove(src)


def _os_xml(plan: Plan, site, boot, machine: str, cdrom: str | None) -> None:
    """<os> (firmware, kernel, boot order) and <features>."""
    from vsh.core.lxmlload import etree

    root = plan.dom.node
    microvm = machine == "microvm"
    os_el = etree.SubElement(root, "os")
    etree.SubElement(os_el, "type", arch="x86_64", machine=machine).text = "hvm"
    if boot.uefi:
        if microvm:
            raise InvalidArgument("--boot uefi: machine 'microvm' boots a kernel directly, without firmware")
        code, varstore = _ovmf()
        etree.SubElement(os_el, "loader", readonly="yes", type="pflash").text = code
        nvram_path = site.nvram_path(plan.dom.name)
        if nvram_path is None:          # the connection makes it from the template itself
            etree.SubElement(os_el, "nvram", template=varstore)
        else:
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


def _cpu_xml(root, cpu: dict | None, vcpus: dict) -> None:
    """<cpu>: the mode or model, its features and the topology (none when neither is given)."""
    from vsh.core.lxmlload import etree

    if cpu is None and vcpus["sockets"] is None:
        return
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


class _DiskXml:
    """Writes <disk> elements into <devices>, naming each target the next free one of its bus."""

    def __init__(self, node, machine: str, used_targets: set[str]):
        self.node = node
        self.microvm = machine == "microvm"
        self.cdrom_bus = "ide" if machine.startswith(("pc-i440fx", "pc")) and not machine.startswith("pc-q35") \
            else "sata"
        self.counters = {"vd": 0, "sd": 0, "hd": 0}
        self.used_targets = used_targets

    def next_target(self, bus: str) -> str:
        prefix = {"virtio": "vd", "scsi": "sd", "sata": "sd", "ide": "hd"}[bus]
        while True:
            n = self.counters[prefix]
            self.counters[prefix] += 1
            letters = ""
            n += 1
            while n:
                n, rem = divmod(n - 1, 26)
                letters = chr(ord("a") + rem) + letters
            if prefix + letters not in self.used_targets:
                self.used_targets.add(prefix + letters)
                return prefix + letters

    def add(self, path: str | None, fmt: str, bus: str, device: str, readonly: bool, spec: DiskSpec | None):
        from vsh.core.lxmlload import etree

        d = etree.SubElement(self.node, "disk", type="file", device=device)
        drv = etree.SubElement(d, "driver", name="qemu", type=fmt)
        if spec is not None and spec.cache:
            drv.set("cache", spec.cache)
        if path:
            etree.SubElement(d, "source", file=path)
        if spec is not None and spec.backing:
            bs = etree.SubElement(d, "backingStore", type="file")
            etree.SubElement(bs, "format", type=spec.backing_format)
            etree.SubElement(bs, "source", file=spec.backing)
        target = spec.target if spec is not None and spec.target else self.next_target(bus)
        etree.SubElement(d, "target", dev=target, bus=bus)
        if readonly:
            etree.SubElement(d, "readonly")
        if spec is not None and spec.shareable:
            etree.SubElement(d, "shareable")
        if spec is not None and spec.serial:
            etree.SubElement(d, "serial").text = spec.serial
        if self.microvm and bus == "virtio":
            etree.SubElement(d, "address", type="virtio-mmio")
        return d


def _disks_xml(plan: Plan, site, devices: _DiskXml, disks: list, variant, do_import: bool) -> str | None:
    """The --disk options: existing images are used as they are, new ones planned (``plan.disks``).
    Returns the directory new images go to, or None when none was planned in a pool."""
    images = None
    taken: set[str] = set()
    for spec in disks:
        bus = spec.bus or (variant.disk_bus if spec.device == "disk" else devices.cdrom_bus)
        if devices.microvm and bus != "virtio":
            raise InvalidArgument(f"--disk: machine 'microvm' has only virtio disks (bus '{bus}' needs PCI)")
        if spec.device == "cdrom" and bus == "virtio":
            raise InvalidArgument("--disk: a cdrom cannot be on bus 'virtio' (use sata, scsi or ide)")
        path = spec.path
        if spec.device == "cdrom":
            if path is not None and not os.path.exists(path):
                raise NotFound(f"--disk: cannot access '{path}': No such file or directory")
            fmt = spec.format or "raw"
            devices.add(path, fmt, bus, "cdrom", True, spec)
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
                    images = site.pool_dir(spec.pool)
                fmt = spec.format or "qcow2"
                path = _free_name(images, plan.dom.name, "qcow2" if fmt == "qcow2" else "img", taken)
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
        devices.add(path, fmt, bus, "disk", spec.readonly, spec)
    return images


def _nics_xml(site, root, devices, nets: list, variant, microvm: bool) -> None:
    """An <interface> per --network, with its port forwards."""
    from vsh.core.lxmlload import etree

    from vsh.core import portfwd
    from vsh.core.domain import random_mac

    macs = set()
    for index, spec in enumerate(nets):
        # network=NAME must be a network of this connection (virt-install checks the same);
        # whether it is active is the business of 'start' (an autostart network is started then)
        if spec.type == "network":
            site.check_network(spec.source or "default")
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


def _other_devices_xml(devices, opts: dict, microvm: bool, variant) -> None:
    """The console, graphics, the devices of --filesystem, --channel... (:mod:`vsh.core.installdevs`),
    the guest agent's channel (virt-install's default for an OS that has the agent, unless
    --channel is given; ``--channel none`` leaves it out), the balloon and the RNG."""
    from vsh.core.lxmlload import etree

    from vsh.core.installdevs import AGENT_CHANNEL, DEVICE_OPTIONS, channel_xml, memballoon_xml

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
        if not opts.get("video"):
            video = etree.SubElement(devices, "video")
            etree.SubElement(video, "model", type="vga")
    for option, parse in DEVICE_OPTIONS:
        for text in opts.get(option) or []:
            element = parse(text)
            if element is not None:
                devices.append(element)
    if not opts.get("channel") and variant.guest_agent and not microvm:
        devices.append(channel_xml(f"unix,name={AGENT_CHANNEL}"))
    balloon = memballoon_xml(opts.get("memballoon"))
    devices.append(balloon)
    if microvm and balloon.get("model") != "none":
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


def _domain_options(root, devices, opts: dict) -> None:
    """--events, --metadata, --description, --features, --clock, --memorybacking, --iothreads,
    --panic and --serial (:mod:`vsh.core.installdom`), then the --xml edits, in their order."""
    from vsh.core import installdom

    for option, apply in installdom.DOMAIN_OPTIONS:
        for text in opts.get(option) or []:
            apply(root, text)
    if opts.get("description"):
        installdom.apply_description(root, opts["description"])
    for text in opts.get("panic") or []:
        devices.append(installdom.panic_xml(text))
    port = len(devices.findall("serial"))
    for text in opts.get("serial") or []:
        devices.append(installdom.serial_xml(text, port))
        port += 1
    for text in opts.get("xml") or []:
        installdom.apply_xml_edit(root, text)


def _order_metadata(root) -> None:
    """<metadata> goes after <uuid> (libvirt's order), wherever portfwd.add created it."""
    meta = root.find("metadata")
    if meta is not None:
        root.remove(meta)
        root.find("uuid").addnext(meta)
