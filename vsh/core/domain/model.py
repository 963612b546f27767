"""The domain: libvirt's ``<domain>`` as declared properties, with its devices and the changes
the commands make to a persistent configuration."""

from __future__ import annotations

from vsh.core.domain.checks import fill_defaults, parse_cpuset, validate
from vsh.core.domain.devices import Device, Disk, Interface
from vsh.core.domain.kinds import device_for
from vsh.core.domain.platform import Platform
from vsh.core.errors import InvalidArgument, OperationInvalid, XMLError
from vsh.core.xmlobject import XFlag, XProp, ensure, insert_ordered, subset_match, to_kib, yesno


def _mem_get(path: str):
    def getter(self) -> int | None:
        el = self.node.find(path)
        if el is None:
            return None
        return to_kib(el.text or "", el.get("unit"), path.lstrip("./"))

    def setter(self, kib: int | None) -> None:
        el = self.node.find(path)
        if kib is None:
            if el is not None:
                el.getparent().remove(el)
            return
        el = ensure(self.node, path)
        el.set("unit", "KiB")
        el.text = str(int(kib))

    return property(getter, setter)


class Domain(Platform):
    tag = "domain"

    type = XProp("./@type")
    id = XProp("./@id", int)
    name = XProp("./name")
    uuid = XProp("./uuid")
    title = XProp("./title")
    description = XProp("./description")
    memory = _mem_get("./memory")
    current_memory = _mem_get("./currentMemory")
    max_memory = _mem_get("./maxMemory")
    max_memory_slots = XProp("./maxMemory/@slots", int)
    vcpus = XProp("./vcpu", int)
    vcpu_placement = XProp("./vcpu/@placement")
    vcpu_current = XProp("./vcpu/@current", int)
    cpu_mode = XProp("./cpu/@mode")
    cpu_model = XProp("./cpu/model")
    cpu_sockets = XProp("./cpu/topology/@sockets", int)
    cpu_dies = XProp("./cpu/topology/@dies", int)
    cpu_cores = XProp("./cpu/topology/@cores", int)
    cpu_threads = XProp("./cpu/topology/@threads", int)
    os_type = XProp("./os/type")
    os_arch = XProp("./os/type/@arch")
    os_machine = XProp("./os/type/@machine")
    os_kernel = XProp("./os/kernel")
    os_initrd = XProp("./os/initrd")
    os_cmdline = XProp("./os/cmdline")
    os_loader = XProp("./os/loader")
    os_loader_readonly = XProp("./os/loader/@readonly")
    os_loader_type = XProp("./os/loader/@type")
    os_nvram = XProp("./os/nvram")
    clock_offset = XProp("./clock/@offset")
    on_poweroff = XProp("./on_poweroff")
    on_reboot = XProp("./on_reboot")
    on_crash = XProp("./on_crash")
    os_firmware = XProp("./os/@firmware")
    os_bootmenu = XProp("./os/bootmenu/@enable", yesno, lambda v: "yes" if v else "no")
    clock_timezone = XProp("./clock/@timezone")
    clock_adjustment = XProp("./clock/@adjustment")
    feature_acpi = XFlag("./features/acpi")
    feature_apic = XFlag("./features/apic")
    feature_pae = XFlag("./features/pae")

    LIFECYCLE_ACTIONS = ("destroy", "restart", "preserve", "rename-restart", "coredump-destroy",
                         "coredump-restart")

    @classmethod
    def parse(cls, data: bytes | str, origin: str = "domain_definition") -> "Domain":
        from vsh.core.xml import parse

        return cls(parse(data, origin, "domain"))

    def to_xml(self, inactive: bool = False) -> str:
        from vsh.core.xml import serialize

        if inactive and self.node.get("id") is not None:
            import copy

            node = copy.deepcopy(self.node)
            node.attrib.pop("id", None)
            return serialize(node)
        return serialize(self.node)

    def copy(self) -> "Domain":
        import copy

        return Domain(copy.deepcopy(self.node))

    # devices
    @property
    def devices_node(self):
        return ensure(self.node, "./devices")

    def devices(self, tag: str | None = None) -> list[Device]:
        devs = self.node.find("./devices")
        if devs is None:
            return []
        return [device_for(el) for el in devs if isinstance(el.tag, str) and (tag is None or el.tag == tag)]

    @property
    def disks(self) -> list[Disk]:
        return self.devices("disk")  # type: ignore[return-value]

    @property
    def interfaces(self) -> list[Interface]:
        return self.devices("interface")  # type: ignore[return-value]

    @property
    def boot_devs(self) -> list[str]:
        return [el.get("dev") for el in self.node.findall("./os/boot") if el.get("dev")]

    @boot_devs.setter
    def boot_devs(self, devs) -> None:
        from vsh.core.lxmlload import etree

        for el in self.node.findall("./os/boot"):
            el.getparent().remove(el)
        if not devs:
            return
        os_el = ensure(self.node, "./os")
        for dev in devs:
            insert_ordered(os_el, etree.Element("boot", dev=dev))

    @property
    def features(self) -> list[str]:
        feats = self.node.find("./features")
        return [el.tag for el in feats if isinstance(el.tag, str)] if feats is not None else []

    def set_feature(self, name: str, enabled: bool = True) -> None:
        """Add or remove an empty feature element (``<acpi/>``, ``<apic/>``, ``<pae/>``...)."""
        feats = self.node.find("./features")
        el = feats.find(name) if feats is not None else None
        if enabled and el is None:
            ensure(self.node, f"./features/{name}")
        elif not enabled and el is not None:
            feats.remove(el)
            if len(feats) == 0:
                self.node.remove(feats)

    @property
    def metadata(self):
        return self.node.find("./metadata")

    def add_device(self, dev: Device) -> None:
        devs = self.devices_node
        # keep devices of one kind together, as libvirt does
        same = [el for el in devs if el.tag == dev.node.tag]
        if same:
            same[-1].addnext(dev.node)
        else:
            insert_ordered(devs, dev.node)

    def remove_device(self, dev: Device) -> None:
        dev.node.getparent().remove(dev.node)

    @property
    def effective_vcpus(self) -> int:
        return self.vcpu_current or self.vcpus or 1

    @property
    def iothread_ids(self) -> list[int]:
        """The iothreads' ids, as libvirt numbers them: those of <iothreadids>, then the lowest
        free ids up to the <iothreads> count."""
        ids = [int(el.get("id")) for el in self.node.findall("./iothreadids/iothread")
               if (el.get("id") or "").isdigit()]
        count = (self.node.findtext("iothreads") or "").strip()
        count = int(count) if count.isdigit() else 0
        n = 1
        while len(ids) < count:
            if n not in ids:
                ids.append(n)
            n += 1
        return sorted(set(ids))

    # -- changes of the persistent configuration (setmem, setmaxmem, setvcpus --config) ----------
    # The checks and messages are libvirt's (qemuDomainSetMemoryFlags, qemuDomainSetVcpusFlags).

    def set_current_memory_config(self, kib: int) -> None:
        """``setmem --config``: the balloon target, at most <memory>."""
        if kib <= 0:
            raise InvalidArgument("invalid argument: memory size must not be zero")
        if kib > (self.memory or 0):
            raise InvalidArgument("invalid argument: cannot set memory higher than max memory")
        self.current_memory = kib

    def set_memory_config(self, kib: int) -> None:
        """``setmaxmem --config``: <memory>; a larger <currentMemory> comes down with it."""
        if kib <= 0:
            raise InvalidArgument("invalid argument: memory size must not be zero")
        if self.node.find("./cpu/numa/cell") is not None:
            raise OperationInvalid("Requested operation is not valid: initial memory size of a domain "
                                   "with NUMA nodes cannot be modified with this API")
        maxmem = self.max_memory
        if maxmem is not None and kib > maxmem:
            raise InvalidArgument("invalid argument: cannot set initial memory size greater than the "
                                  "maximum memory size")
        self.memory = kib
        current = self.current_memory
        if current is not None and current > kib:
            self.current_memory = kib

    def set_vcpus_config(self, count: int, maximum: bool = False, hotpluggable: bool = False) -> None:
        """``setvcpus --config`` (``--maximum``: the <vcpu> count; else its ``current``)."""
        if count < 1:
            raise InvalidArgument("invalid argument: vcpu count must not be zero")
        top = self.vcpus or 1
        current = self.effective_vcpus
        if maximum:
            topo = (self.cpu_sockets, self.cpu_cores, self.cpu_threads)
            if all(t is not None for t in topo):
                product = topo[0] * topo[1] * topo[2] * (self.cpu_dies or 1)
                if product != count:
                    raise InvalidArgument("invalid argument: CPU topology doesn't match the desired vcpu count")
            numa_cpus = 0
            for cell in self.node.findall("./cpu/numa/cell"):
                numa_cpus += len(parse_cpuset(cell.get("cpus"))) if cell.get("cpus") else 0
            if numa_cpus > count:
                raise InvalidArgument("invalid argument: Number of CPUs in <numa> exceeds the desired "
                                      "maximum vcpu count")
            top = count
            current = min(current, count)
        else:
            if count > top:
                raise InvalidArgument(f"invalid argument: requested cpu amount exceeds maximum ({count} > {top})")
            current = count
        self.vcpus = top
        self.vcpu_current = current if current < top else None
        self._sync_vcpu_list(hotpluggable)

    def _sync_vcpu_list(self, hotpluggable: bool) -> None:
        """Keep an explicit <vcpus> list consistent with <vcpu> (ids, enabled count)."""
        from vsh.core.lxmlload import etree

        vlist = self.node.find("./vcpus")
        if vlist is None:
            return
        top, current = self.vcpus or 1, self.effective_vcpus
        by_id = {}
        for el in vlist.findall("vcpu"):
            try:
                by_id[int(el.get("id", ""))] = el
            except ValueError:
                continue
        for vid, el in list(by_id.items()):
            if vid >= top:
                vlist.remove(el)
                del by_id[vid]
        for vid in range(top):
            if vid not in by_id:
                el = etree.SubElement(vlist, "vcpu", id=str(vid), enabled="no", hotpluggable="yes")
                by_id[vid] = el
        for vid in sorted(by_id):
            el = by_id[vid]
            was = el.get("enabled") == "yes"
            now = vid < current
            el.set("enabled", "yes" if now else "no")
            if now and not was and hotpluggable:
                el.set("hotpluggable", "yes")
            el.attrib.pop("order", None)
        # ids in order, as libvirt writes them
        for vid in sorted(by_id):
            vlist.append(by_id[vid])

    # -- device lookup for attach / detach ------------------------------------------------------

    def find_disk(self, ident: str) -> Disk | None:
        """The disk whose target or source path is ``ident`` (virsh's detach-disk lookup)."""
        for disk in self.disks:
            if disk.target_dev == ident:
                return disk
        for disk in self.disks:
            src = disk.node.find("./source")
            if src is not None and ident in (src.get("file"), src.get("dev"), src.get("dir"), src.get("name")):
                return disk
        return None

    def matching_devices(self, node) -> list[Device]:
        """Devices of this domain that the device element ``node`` describes (detach-device).

        A disk is named by its target, an interface by its MAC address when the
        XML has one; anything else (and an interface without a MAC) matches when
        every attribute, text and child given is present in the domain's device.
        """
        found = []
        for dev in self.devices(node.tag):
            if node.tag == "disk":
                target = node.find("./target")
                want = target.get("dev") if target is not None else None
                if want is not None and dev.node.find("./target") is not None \
                        and dev.node.find("./target").get("dev") == want:
                    found.append(dev)
                continue
            if node.tag == "interface":
                mac_el = node.find("./mac")
                mac = mac_el.get("address") if mac_el is not None else None
                if mac:
                    if (getattr(dev, "mac", None) or "").lower() == mac.lower():
                        found.append(dev)
                    continue
            if subset_match(node, dev.node):
                found.append(dev)
        return found

    def check_attach(self, dev: Device) -> None:
        """Refuse a device that would collide with one already there (libvirt's checks)."""
        tag = dev.node.tag
        if tag == "disk":
            target = dev.node.find("./target")
            dst = target.get("dev") if target is not None else None
            if not dst:
                raise XMLError("missing disk target (<target dev='...'/>)")
            if any(d.target_dev == dst for d in self.disks):
                raise OperationInvalid(f"Requested operation is not valid: target {dst} already exists")
        elif tag == "interface":
            mac = dev.node.find("./mac")
            mac = mac.get("address") if mac is not None else None
            if mac and any((n.mac or "").lower() == mac.lower() for n in self.interfaces):
                raise OperationInvalid(f"Requested operation is not valid: an interface with MAC address "
                                       f"{mac} already exists")
        elif tag == "controller":
            ctype, index = dev.node.get("type"), dev.node.get("index")
            if index is not None and any(c.node.get("type") == ctype and c.node.get("index") == index
                                         for c in self.devices("controller")):
                raise OperationInvalid(f"Requested operation is not valid: controller type='{ctype}' "
                                       f"index='{index}' already exists")
        elif tag == "filesystem":
            target = dev.node.find("./target")
            dst = target.get("dir") if target is not None else None
            if dst and any((f.node.find("./target") is not None and f.node.find("./target").get("dir") == dst)
                           for f in self.devices("filesystem")):
                raise OperationInvalid(f"Requested operation is not valid: a filesystem with target '{dst}' "
                                       "already exists")
        elif tag == "hostdev":
            if any(subset_match(dev.node.find("./source"), h.node.find("./source"))
                   for h in self.devices("hostdev")
                   if dev.node.find("./source") is not None and h.node.find("./source") is not None):
                raise OperationInvalid("Requested operation is not valid: device is already in the domain "
                                       "configuration")
        elif tag in ("memballoon", "watchdog"):
            if self.devices(tag):
                raise OperationInvalid(f"Requested operation is not valid: domain already has a {tag} device")

    # -- defaults and validation (vsh.core.domain.checks) ---------------------------
    def fill_defaults(self, default_devices: bool = True) -> None:
        """What libvirt adds on define: uuid, KiB units, currentMemory, placement, actions, MACs,
        implicit controllers and (``default_devices``) the machine's default devices."""
        fill_defaults(self, default_devices)

    def validate(self) -> None:
        """Semantic checks with precise messages."""
        validate(self)
