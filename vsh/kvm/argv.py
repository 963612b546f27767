"""Domain XML → QEMU command line.

``build_argv(root, host, paths)`` reads a libvirt ``<domain>`` element with
XPath and returns the argv of the ``qemu-system-x86_64`` process that runs
it.  It is a function of its inputs plus two kinds of file checks, both about
files the XML names: that they exist (a missing disk, kernel or firmware is an
error naming the file) and, for qcow2 disks, what the image header says about
a backing file.  Everything it cannot map raises ``Unsupported``; every bad
value raises ``InvalidArgument`` (or ``NotFound`` for a missing file), with a
message that names the element.

Decisions (the supervisor relies on these):

* ``-S`` always: QEMU starts paused; the supervisor attaches to QMP, then
  sends ``cont`` (or does not, for ``start --paused``).  No guest event is
  lost between spawn and attach.
* QMP is the monitor ``charmonitor`` on a unix socket: either the path
  ``paths.qmp_socket`` (QEMU binds it) or, when ``paths.qmp_listen_fd`` is
  set, a socket the supervisor already bound and listens on (passed with
  ``pass_fds``; no race between spawn and connect, the path stays for
  re-attaching).
* Lifecycle actions: QEMU does what maps cleanly, the supervisor the rest.
  ``on_poweroff=destroy`` (default): QEMU exits on guest poweroff.
  ``restart``/``preserve``: ``-action shutdown=pause``; the supervisor gets
  SHUTDOWN and resets+continues (restart) or leaves it paused (preserve).
  ``on_reboot=restart`` (default): QEMU resets in place (RESET event).
  ``destroy``: ``-action reboot=shutdown``, so a guest reboot becomes a
  shutdown with reason ``guest-reset`` (QEMU exits, or pauses when
  on_poweroff also pauses: the supervisor looks at the reason).
  ``preserve``: ``reboot=shutdown,shutdown=pause`` (QEMU stays, paused).
  ``on_crash``: ``-action panic=shutdown`` for destroy (QEMU exits after
  GUEST_PANICKED), ``panic=pause`` for restart/preserve.  Panics are only
  seen with a ``<panic model='isa'/>`` device (pvpanic); vsh adds none.
  rename-restart and coredump-* count as restart/destroy.  No
  ``-no-shutdown`` by default.  These are the actions QEMU takes on its own
  (before the supervisor attaches, or after it died); the supervisor may
  change them at run time with QMP ``set-action``.
* Serial ports and consoles: ``pty`` → ``-chardev pty`` (the supervisor
  reads the pty path with ``query-chardev``), ``file`` → ``-chardev file``,
  ``unix`` → ``-chardev socket``.  Every serial/console chardev also writes
  a ``logfile``: the primary console (serial port 0, else the first virtio
  console) writes ``paths.console_log``, the others ``<rundir>/<alias>.log``.
  ``console_chardev(root)`` names the primary console's chardev.
* Disks: ``-blockdev`` file node + format node, with the format from
  ``<driver type>`` (raw or qcow2; never probed, a missing type is an
  error).  qcow2 backing chains are opened only as ``<backingStore>``
  declares them, each level with its declared format; with no
  ``<backingStore>`` the image must have no backing file (one it names is
  refused, not followed); ``<backingStore/>`` (empty) opens it with
  ``backing: null``.
* PCI: devices keep the ``<address type='pci'>`` the XML gives (buses from
  ``pcie-root-port``/``pci-bridge`` controllers); the others get the next
  free slot on the root bus, so the command line is deterministic.
* VNC always listens on a unix socket in the run directory (never TCP).
* Machine: ``<os><type machine>`` as given (pc, q35, microvm and their
  versioned names), q35 when absent.  ACPI only with ``<features><acpi/>``,
  as libvirt does.  TCG runs one thread per vCPU by default; nothing added.
"""

from __future__ import annotations

import json
import os
import re
from collections import namedtuple

from vsh.core.errors import InvalidArgument, NotFound, Unsupported, XMLError

__all__ = ["RuntimePaths", "build_argv", "console_chardev", "DEFAULT_MACHINE"]

DEFAULT_MACHINE = "q35"
_SUN_PATH_MAX = 107


class RuntimePaths(namedtuple("RuntimePaths", "rundir qmp_socket console_log vnc_socket qmp_listen_fd",
                              defaults=(None,))):
    """Where a running domain's files live (``rundir`` is a 0700 directory owned by vsh).

    ``qmp_listen_fd``: a unix socket the caller already bound (at ``qmp_socket``)
    and listens on, passed to QEMU with ``pass_fds``; None lets QEMU bind the path.
    """

    __slots__ = ()

    @classmethod
    def for_rundir(cls, rundir: str | os.PathLike, qmp_listen_fd: int | None = None) -> "RuntimePaths":
        """The standard layout: qmp.sock, console.log, vnc.sock in ``rundir``."""
        rundir = os.fspath(rundir)
        return cls(rundir, os.path.join(rundir, "qmp.sock"), os.path.join(rundir, "console.log"),
                   os.path.join(rundir, "vnc.sock"), qmp_listen_fd)

    def log_for(self, alias: str) -> str:
        return os.path.join(self.rundir, alias + ".log")

    def socket_for(self, alias: str) -> str:
        return os.path.join(self.rundir, alias + ".sock")


# --------------------------------------------------------------------------
# small helpers

_UNITS = {
    "b": 1, "bytes": 1,
    "k": 1024, "kib": 1024, "kb": 1000,
    "m": 1024 ** 2, "mib": 1024 ** 2, "mb": 1000 ** 2,
    "g": 1024 ** 3, "gib": 1024 ** 3, "gb": 1000 ** 3,
    "t": 1024 ** 4, "tib": 1024 ** 4, "tb": 1000 ** 4,
}


def _bytes(elem, what: str) -> int:
    text = (elem.text or "").strip()
    unit = (elem.get("unit") or "KiB").lower()
    if unit not in _UNITS:
        raise InvalidArgument("%s: unknown unit '%s'" % (what, elem.get("unit")))
    try:
        n = int(text)
    except ValueError:
        raise InvalidArgument("%s: '%s' is not a number" % (what, text)) from None
    if n < 0:
        raise InvalidArgument("%s: must not be negative" % what)
    return n * _UNITS[unit]


def _int(value: str | None, what: str, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise InvalidArgument("%s is missing" % what)
        return default
    try:
        return int(value, 0)
    except ValueError:
        raise InvalidArgument("%s: '%s' is not a number" % (what, value)) from None


def _esc(value: object) -> str:
    """A value inside QEMU's key=value option syntax (commas doubled)."""
    return str(value).replace(",", ",,")


def _opts(head: str, *pairs: tuple[str, object] | None) -> str:
    parts = [head]
    for p in pairs:
        if p is None:
            continue
        k, v = p
        if v is None:
            continue
        if isinstance(v, bool):
            v = "on" if v else "off"
        parts.append("%s=%s" % (k, _esc(v)))
    return ",".join(parts)


def _disk_index(dev: str) -> int:
    """'vda' → 0, 'sdb' → 1, 'hdaa' → 26 (libvirt's rule)."""
    m = re.fullmatch(r"(?:vd|sd|hd|xvd|ubd|fd)([a-z]+)", dev)
    if not m:
        raise InvalidArgument("disk target '%s' is not a disk name like vda, sda or hda" % dev)
    idx = 0
    for ch in m.group(1):
        idx = idx * 26 + (ord(ch) - ord("a") + 1)
    return idx - 1


def _check_socket_path(path: str, what: str) -> None:
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        raise InvalidArgument("%s: socket path is %d bytes long, the limit is %d: %s"
                              % (what, len(os.fsencode(path)), _SUN_PATH_MAX, path))


def _need_file(path: str | None, what: str) -> str:
    if not path:
        raise InvalidArgument("%s: no file given" % what)
    if not os.path.isabs(path):
        raise InvalidArgument("%s: '%s' is not an absolute path" % (what, path))
    if not os.path.exists(path):
        raise NotFound("%s: cannot access '%s': No such file or directory" % (what, path))
    return path


def qcow2_backing_file(path: str) -> str | None:
    """The backing file name in a qcow2 header, or None.  Raises InvalidArgument if not qcow2."""
    from vsh.core.qcow2 import MAGIC, read_header

    try:
        with open(path, "rb") as f:
            if f.read(4) != MAGIC:
                raise InvalidArgument("'%s' is not a qcow2 image (the domain XML says type='qcow2')" % path)
            hdr = read_header(f.fileno())
    except OSError as e:
        raise InvalidArgument("cannot read '%s': %s" % (path, e.strerror)) from None
    return hdr.backing if hdr is not None else None


def qcow2_data_file(path: str) -> str | None:
    """The external data file a qcow2 (v3) image keeps its guest data in, or None
    ("" when the header says so without naming one).

    QEMU opens the file the header names (read-write) unless told another one, so an
    image can point a guest at any host file: vsh refuses such images.
    """
    from vsh.core.qcow2 import INCOMPAT_DATA_FILE, read_header_at

    try:
        hdr = read_header_at(path)
    except OSError as e:
        raise InvalidArgument("cannot read '%s': %s" % (path, e.strerror)) from None
    if hdr is None or not hdr.incompatible & INCOMPAT_DATA_FILE:
        return None
    return hdr.data_file_name or ""


# --------------------------------------------------------------------------
# PCI address book


class _Pci:
    """PCI slots: the XML's addresses are kept, the rest get the next free root-bus slot."""

    def __init__(self, family: str):
        self.family = family
        self.root = "pcie.0" if family == "q35" else "pci.0"
        self.used: set[tuple[int, int, int]] = set()
        self.buses: dict[int, str] = {0: self.root}
        # slots the machine itself occupies
        reserved = {"pc": (0, 1), "q35": (0, 0x1F)}.get(family, ())
        for s in reserved:
            for fn in range(8):
                self.used.add((0, s, fn))

    def parse(self, addr, what: str) -> tuple[int, int, int, bool] | None:
        if addr is None or addr.get("type") != "pci":
            return None
        if _int(addr.get("domain"), what + " PCI domain", 0) != 0:
            raise Unsupported("%s: PCI domain other than 0 is not supported" % what)
        bus = _int(addr.get("bus"), what + " PCI bus", 0)
        slot = _int(addr.get("slot"), what + " PCI slot", 0)
        fn = _int(addr.get("function"), what + " PCI function", 0)
        if not (0 <= slot < 32 and 0 <= fn < 8):
            raise InvalidArgument("%s: PCI address slot %#x function %#x is out of range" % (what, slot, fn))
        return bus, slot, fn, addr.get("multifunction") == "on"

    def reserve(self, elem, what: str) -> None:
        a = self.parse(elem.find("address"), what)
        if a is None:
            return
        key = a[:3]
        if key in self.used:
            raise InvalidArgument("%s: PCI address %02x:%02x.%x is already in use" % (what, *key))
        self.used.add(key)

    def props(self, elem, what: str) -> list[tuple[str, object]]:
        """bus=, addr= (and multifunction=) for a device's -device option."""
        a = self.parse(elem.find("address"), what) if elem is not None else None
        if a is None:
            for slot in range(1, 32):
                if (0, slot, 0) not in self.used:
                    for fn in range(8):
                        self.used.add((0, slot, fn))
                    return [("bus", self.root), ("addr", "%#x" % slot)]
            raise InvalidArgument("%s: no free PCI slot left on the root bus" % what)
        bus, slot, fn, multi = a
        if bus not in self.buses:
            raise InvalidArgument("%s: PCI bus %#x has no <controller type='pci' index='%d'>" % (what, bus, bus))
        out: list[tuple[str, object]] = [("bus", self.buses[bus]),
                                         ("addr", "%#x.%#x" % (slot, fn) if fn else "%#x" % slot)]
        if multi:
            out.append(("multifunction", "on"))
        return out


# --------------------------------------------------------------------------
# the builder


class _Builder:
    def __init__(self, root, host, paths: RuntimePaths):
        if root is None or not isinstance(root.tag, str) or root.tag != "domain":
            raise XMLError("expected a <domain> element, got <%s>" % getattr(root, "tag", None))
        self.root = root
        self.host = host
        self.paths = paths
        self.argv: list[str] = []
        self.devices = root.find("devices")
        if self.devices is None:
            self.devices = root.makeelement("devices")
        self.kvm = False
        self.family = "q35"
        self.machine = DEFAULT_MACHINE
        self.pci: _Pci | None = None
        self.bootindex: dict[str, int] = {}   # element path -> bootindex
        self.iothreads = 0
        self.scsi_ctrls: dict[int, str] = {}  # index -> model (declared)
        self.sata_ctrls: set[int] = set()
        self.vser_ctrls: set[int] = set()
        self.usb_ctrls: dict[int, str] = {}

    # ---- helpers

    def key(self, el) -> str:
        """A stable identity for an element (lxml proxies have no stable id())."""
        return el.getroottree().getpath(el)

    def add(self, *args: str) -> None:
        self.argv.extend(args)

    def text(self, path: str) -> str | None:
        """Stripped text of the child element at ``path`` (relative to <domain>), or None."""
        v = self.root.findtext(path)
        return v.strip() if v is not None else None

    @property
    def microvm(self) -> bool:
        return self.family == "microvm"

    def virtio(self, kind: str) -> str:
        """virtio-KIND-pci, or virtio-KIND-device (virtio-mmio) on microvm."""
        return "virtio-%s-%s" % (kind, "device" if self.microvm else "pci")

    def need_pci(self, what: str) -> None:
        if self.microvm:
            raise Unsupported("%s needs PCI, which machine 'microvm' does not have" % what)

    def dev_addr(self, elem, what: str) -> list[tuple[str, object]]:
        """Bus placement for a virtio device (PCI address, or nothing on microvm)."""
        if self.microvm:
            a = elem.find("address") if elem is not None else None
            if a is not None and a.get("type") not in (None, "virtio-mmio"):
                raise InvalidArgument("%s: machine 'microvm' has no PCI; use <address type='virtio-mmio'/>" % what)
            return []
        return self.pci.props(elem, what)

    # ---- top level

    def build(self) -> list[str]:
        self.domain_type()
        self.machine_type()
        qemu = self.emulator()
        name = self.text("name")
        if not name:
            raise XMLError("the domain has no <name>")
        self.add(qemu, "-name", "guest=%s,debug-threads=on" % _esc(name), "-S")
        self.add("-machine", self.machine_opts())
        self.add("-accel", "kvm" if self.kvm else "tcg")
        self.cpu()
        self.firmware()
        self.memory()
        self.smp()
        self.iothread_objects()
        uuid = self.text("uuid")
        if uuid:
            if not re.fullmatch(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}",
                                uuid):
                raise InvalidArgument("<uuid> '%s' is not a UUID" % uuid)
            self.add("-uuid", uuid)
        self.add("-no-user-config", "-nodefaults")
        self.monitor()
        self.clock()
        self.actions()
        self.boot()
        self.add("-display", "none")
        self.reserve_pci()
        self.controllers()
        self.walk_devices()
        self.unused_forwards()
        self.add("-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny")
        self.add("-msg", "timestamp=on")
        return self.argv

    def domain_type(self) -> None:
        t = self.root.get("type")
        if t == "kvm":
            kvm = self.host.kvm
            if not getattr(kvm, "usable", False):
                reason = getattr(kvm, "reason", "") or "no usable /dev/kvm"
                raise Unsupported("domain type 'kvm' needs a usable KVM: %s; use type='qemu'" % reason)
            self.kvm = True
        elif t == "qemu":
            self.kvm = False
        else:
            raise Unsupported("domain type '%s' is not supported (use 'kvm' or 'qemu')" % t)

    def machine_type(self) -> None:
        ostype = self.root.find("os/type")
        if ostype is None or (ostype.text or "").strip() != "hvm":
            raise Unsupported("only <os><type>hvm</type></os> guests are supported")
        arch = ostype.get("arch") or "x86_64"
        if arch != "x86_64":
            raise Unsupported("guest architecture '%s' is not supported (x86_64 only)" % arch)
        m = ostype.get("machine") or DEFAULT_MACHINE
        machines = getattr(self.host, "machines", None) or []
        if machines:
            known = set()
            canonical = m
            for mt in machines:
                n, alias = getattr(mt, "name", mt), getattr(mt, "alias", None)
                known.add(n)
                if alias:
                    known.add(alias)
                if alias == m:
                    canonical = n
            if m not in known:
                raise InvalidArgument("machine type '%s' is not supported by this QEMU (see 'vsh capabilities')" % m)
        else:
            canonical = m
        if canonical == "microvm":
            self.family = "microvm"
        elif canonical == "q35" or canonical.startswith("pc-q35-"):
            self.family = "q35"
        elif canonical == "pc" or canonical.startswith("pc-i440fx-"):
            self.family = "pc"
        else:
            raise Unsupported("machine type '%s' is not supported (pc, q35 or microvm)" % m)
        self.machine = m
        self.pci = None if self.microvm else _Pci(self.family)

    def emulator(self) -> str:
        em = self.text("devices/emulator")
        if em:
            return _need_file(em, "<emulator>")
        qemu = getattr(self.host, "qemu_path", None)
        if not qemu:
            raise Unsupported("no qemu-system-x86_64 found on this host")
        return qemu

    def feature_state(self, name: str) -> bool | None:
        f = self.root.find("features/" + name)
        if f is None:
            return None
        return f.get("state", "on") == "on"

    def machine_opts(self) -> str:
        pairs: list[tuple[str, object]] = []
        if not self.microvm:
            pairs.append(("usb", False))
        pairs.append(("dump-guest-core", False))
        if not self.feature_state("acpi"):
            pairs.append(("acpi", False))
        if self.microvm:
            pairs.append(("isa-serial", False))
        vmport = self.feature_state("vmport")
        if vmport is not None and not self.microvm:
            pairs.append(("vmport", vmport))
        smm = self.feature_state("smm")
        if smm is not None:
            pairs.append(("smm", smm))
        for t in self.root.findall("clock/timer[@name='hpet']"):
            if t.get("present") == "no" and not self.microvm:
                pairs.append(("hpet", False))
        if self.root.find("os/loader[@type='pflash']") is not None and not self.microvm:
            pairs.append(("pflash0", "libvirt-pflash0-format"))  # blockdevs: see pflash()
            if self.root.find("os/nvram") is not None:
                pairs.append(("pflash1", "libvirt-pflash1-format"))
        return _opts(self.machine, *pairs)

    def cpu(self) -> None:
        cpu = self.root.find("cpu")
        if cpu is None:
            return
        if cpu.find("numa") is not None:
            raise Unsupported("guest NUMA (<cpu><numa>) is not supported yet")
        model = cpu.find("model")
        mode = cpu.get("mode") or "custom"
        if mode in ("host-passthrough", "host-model"):
            if not self.kvm:
                raise Unsupported("CPU mode '%s' needs KVM (type='kvm'); under TCG use mode='maximum' "
                                  "or a named model such as <model>qemu64</model>" % mode)
            if not getattr(self.host.kvm, "host_cpu_usable", True):
                raise Unsupported("CPU mode '%s' needs '-cpu host', which KVM here refuses: %s"
                                  % (mode, getattr(self.host.kvm, "host_cpu_reason", "")))
            name = "host"
        elif mode == "maximum":
            name = "max"
        elif mode == "custom":
            name = (model.text or "").strip() if model is not None else ""
            if not name:
                if cpu.find("feature") is None:
                    return  # only topology: QEMU's default model
                name = "qemu64"
            models = [getattr(c, "name", c) for c in (getattr(self.host, "cpu_models", None) or [])]
            if models and name not in models:
                raise InvalidArgument("CPU model '%s' is not known to this QEMU (see 'vsh domcapabilities')" % name)
        else:
            raise InvalidArgument("unknown CPU mode '%s'" % mode)
        pairs = []
        for f in cpu.findall("feature"):
            fname = f.get("name")
            policy = f.get("policy", "require")
            if not fname or not re.fullmatch(r"[A-Za-z0-9_.-]+", fname):
                raise InvalidArgument("<cpu><feature name='%s'> is not a feature name" % fname)
            if policy in ("require", "force", "optional"):
                pairs.append((fname, True))
            elif policy in ("disable", "forbid"):
                pairs.append((fname, False))
            else:
                raise InvalidArgument("<cpu><feature policy='%s'> is not a policy" % policy)
        self.add("-cpu", _opts(name, *pairs))

    def firmware(self) -> None:
        os_ = self.root.find("os")
        if os_.get("firmware"):
            raise Unsupported("firmware='%s' (UEFI) is not supported yet" % os_.get("firmware"))
        loader = os_.find("loader")
        if loader is not None and loader.get("type") == "pflash":
            self.pflash(os_, loader)
            return
        if loader is not None:
            if loader.get("type", "rom") != "rom":
                raise Unsupported("<loader type='%s'> (pflash/UEFI) is not supported yet; type='rom' is"
                                  % loader.get("type"))
            self.add("-bios", _need_file((loader.text or "").strip(), "<os><loader>"))
        if os_.find("nvram") is not None:
            raise Unsupported("<os><nvram> (UEFI variables) is not supported yet")

    def pflash(self, os_, loader) -> None:
        """UEFI: the firmware code on pflash0, the domain's variable store (<nvram>) on pflash1."""
        what = "<os><loader type='pflash'>"
        if self.microvm:
            raise Unsupported("%s: machine 'microvm' has no flash firmware; it boots <os><kernel>" % what)
        if loader.get("secure") == "yes":
            raise Unsupported("%s: Secure Boot (secure='yes') is not supported yet" % what)
        if loader.get("format", "raw") != "raw":
            raise Unsupported("%s: firmware format '%s' is not supported (raw)" % (what, loader.get("format")))
        readonly = loader.get("readonly", "yes") != "no"
        code = _need_file((loader.text or "").strip(), what)
        nvram = os_.find("nvram")
        if nvram is None and readonly:
            raise InvalidArgument("%s with readonly='yes' needs <os><nvram> (the domain's own copy of the "
                                  "firmware's variable store template)" % what)
        units = [(0, code, readonly)]
        if nvram is not None:
            if nvram.get("type") not in (None, "file"):
                raise Unsupported("<os><nvram type='%s'> is not supported (a file)" % nvram.get("type"))
            path = (nvram.text or "").strip()
            if not path:
                raise InvalidArgument("<os><nvram> names no file (vsh does not create variable stores at "
                                      "start; copy the template%s there)"
                                      % (" " + nvram.get("template") if nvram.get("template") else ""))
            units.append((1, _need_file(path, "<os><nvram>"), False))
        for unit, path, ro in units:
            node = "libvirt-pflash%d" % unit
            self.add("-blockdev", json.dumps({"driver": "file", "filename": path, "node-name": node + "-storage",
                                              "read-only": ro}, separators=(",", ":")))
            self.add("-blockdev", json.dumps({"node-name": node + "-format", "read-only": ro, "driver": "raw",
                                              "file": node + "-storage"}, separators=(",", ":")))

    def memory(self) -> None:
        mem = self.root.find("memory")
        if mem is None:
            raise XMLError("the domain has no <memory>")
        if self.root.find("maxMemory") is not None:
            raise Unsupported("memory hotplug (<maxMemory>) is not supported yet")
        if self.root.find("memoryBacking/hugepages") is not None:
            raise Unsupported("hugepages (<memoryBacking><hugepages>) are not supported yet")
        b = _bytes(mem, "<memory>")
        mib = -(-b // (1024 * 1024))  # rounded up to whole MiB, as libvirt aligns
        if mib < 1:
            raise InvalidArgument("<memory> must be at least 1 MiB")
        self.add("-m", str(mib))

    def smp(self) -> None:
        vcpu = self.root.find("vcpu")
        maxc = _int((vcpu.text or "").strip() if vcpu is not None else None, "<vcpu>", 1)
        cur = _int(vcpu.get("current") if vcpu is not None else None, "<vcpu current>", maxc)
        if maxc < 1 or not 1 <= cur <= maxc:
            raise InvalidArgument("<vcpu>: need 1 <= current (%d) <= maximum (%d)" % (cur, maxc))
        top = self.root.find("cpu/topology")
        if top is not None:
            s = _int(top.get("sockets"), "<topology sockets>", 1)
            d = _int(top.get("dies"), "<topology dies>", 1)
            c = _int(top.get("cores"), "<topology cores>", 1)
            t = _int(top.get("threads"), "<topology threads>", 1)
            if s * d * c * t != maxc:
                raise InvalidArgument("CPU topology %d sockets x %d dies x %d cores x %d threads = %d "
                                      "does not match <vcpu> %d" % (s, d, c, t, s * d * c * t, maxc))
        else:
            s, d, c, t = maxc, 1, 1, 1
        pairs = [("maxcpus", maxc), ("sockets", s)]
        if d != 1:
            pairs.append(("dies", d))
        pairs += [("cores", c), ("threads", t)]
        self.add("-smp", _opts(str(cur), *pairs))

    def iothread_objects(self) -> None:
        n = self.text("iothreads")
        self.iothreads = _int(n, "<iothreads>", 0) if n else 0
        for i in range(1, self.iothreads + 1):
            self.add("-object", "iothread,id=iothread%d" % i)

    def iothread(self, value: str | None, what: str) -> tuple[str, str] | None:
        if value is None:
            return None
        i = _int(value, what + " iothread")
        if not 1 <= i <= self.iothreads:
            raise InvalidArgument("%s: iothread %d does not exist (<iothreads>%d</iothreads>)"
                                  % (what, i, self.iothreads))
        return ("iothread", "iothread%d" % i)

    def monitor(self) -> None:
        fd = self.paths.qmp_listen_fd
        if fd is not None:
            chardev = "socket,id=charmonitor,fd=%d,server=on,wait=off" % fd
        else:
            _check_socket_path(self.paths.qmp_socket, "QMP monitor")
            chardev = "socket,id=charmonitor,path=%s,server=on,wait=off" % _esc(self.paths.qmp_socket)
        self.add("-chardev", chardev, "-mon", "chardev=charmonitor,id=monitor,mode=control")

    def clock(self) -> None:
        clock = self.root.find("clock")
        offset = clock.get("offset", "utc") if clock is not None else "utc"
        if offset not in ("utc", "localtime"):
            raise Unsupported("<clock offset='%s'> is not supported yet (utc or localtime)" % offset)
        pairs: list[tuple[str, object]] = []
        if clock is not None:
            for t in clock.findall("timer"):
                if t.get("name") == "rtc" and t.get("tickpolicy") == "catchup":
                    pairs.append(("driftfix", "slew"))
        self.add("-rtc", _opts("base=" + offset, *pairs))
        if self.kvm and clock is not None:
            for t in clock.findall("timer[@name='pit']"):
                if t.get("tickpolicy") in ("delay", "discard"):
                    self.add("-global", "kvm-pit.lost_tick_policy=%s" % t.get("tickpolicy"))

    def actions(self) -> None:
        def get(tag: str, default: str) -> str:
            v = self.text(tag)
            return v or default

        # rename-restart and coredump-* map to restart/destroy, as the supervisor applies them
        kind = {"rename-restart": "restart", "coredump-restart": "restart", "coredump-destroy": "destroy"}
        poweroff, reboot, crash = (kind.get(v, v) for v in (get("on_poweroff", "destroy"),
                                                           get("on_reboot", "restart"), get("on_crash", "destroy")))
        pairs: list[tuple[str, object]] = []
        if reboot in ("destroy", "preserve"):
            pairs.append(("reboot", "shutdown"))
        elif reboot != "restart":
            raise Unsupported("<on_reboot>%s</on_reboot> is not supported (restart, destroy or preserve)" % reboot)
        if poweroff in ("restart", "preserve") or reboot == "preserve":
            pairs.append(("shutdown", "pause"))
        elif poweroff != "destroy":
            raise Unsupported("<on_poweroff>%s</on_poweroff> is not supported (destroy, restart or preserve)"
                              % poweroff)
        if crash == "destroy":
            pairs.append(("panic", "shutdown"))
        elif crash in ("restart", "preserve"):
            pairs.append(("panic", "pause"))
        else:
            raise Unsupported("<on_crash>%s</on_crash> is not supported (destroy, restart or preserve)" % crash)
        wd = self.devices.findall("watchdog")
        if wd:
            actions = {w.get("action", "reset") for w in wd}
            if len(actions) > 1:
                raise Unsupported("watchdogs with different actions (%s) are not supported"
                                  % ", ".join(sorted(actions)))
            act = actions.pop()
            qemu_act = {"reset": "reset", "shutdown": "shutdown", "poweroff": "poweroff", "pause": "pause",
                        "none": "none", "inject-nmi": "inject-nmi"}.get(act)
            if qemu_act is None:
                raise Unsupported("watchdog action '%s' is not supported" % act)
            pairs.append(("watchdog", qemu_act))
        self.add("-action", ",".join("%s=%s" % p for p in pairs))

    # ---- boot

    def boot(self) -> None:
        os_ = self.root.find("os")
        kernel = os_.findtext("kernel")
        if kernel is not None and kernel.strip():
            self.add("-kernel", _need_file(kernel.strip(), "<os><kernel>"))
            initrd = os_.findtext("initrd")
            if initrd and initrd.strip():
                self.add("-initrd", _need_file(initrd.strip(), "<os><initrd>"))
            cmdline = os_.findtext("cmdline")
            if cmdline:
                self.add("-append", cmdline.strip())
            if os_.findtext("dtb"):
                raise Unsupported("<os><dtb> is not supported on x86_64")
        elif os_.findtext("initrd") or os_.findtext("cmdline"):
            raise InvalidArgument("<os><initrd>/<cmdline> need <os><kernel>")
        elif self.microvm:
            raise InvalidArgument("machine 'microvm' boots only a kernel: add <os><kernel>")

        boot_devs = [b.get("dev") for b in os_.findall("boot")]
        per_device = self.devices.xpath("./*/boot[@order]")
        if boot_devs and per_device:
            raise InvalidArgument("per-device <boot order> cannot be used together with <os><boot dev>")
        for b in per_device:
            idx = _int(b.get("order"), "<boot order>")
            if idx < 1:
                raise InvalidArgument("<boot order='%s'> must be 1 or more" % b.get("order"))
            if idx in self.bootindex.values():
                raise InvalidArgument("boot order %d is used twice" % idx)
            self.bootindex[self.key(b.getparent())] = idx
        if not per_device:
            if not boot_devs and kernel is None:
                boot_devs = ["hd"]
            n = 0
            for dev in boot_devs:
                target = self.first_boot_device(dev)
                if target is not None and self.key(target) not in self.bootindex:
                    n += 1
                    self.bootindex[self.key(target)] = n
        pairs: list[tuple[str, object]] = []
        menu = os_.find("bootmenu")
        if menu is not None and menu.get("enable") == "yes":
            pairs.append(("menu", True))
            if menu.get("timeout"):
                pairs.append(("splash-time", _int(menu.get("timeout"), "<bootmenu timeout>")))
        bios = os_.find("bios")
        if bios is not None and bios.get("rebootTimeout"):
            pairs.append(("reboot-timeout", _int(bios.get("rebootTimeout"), "<bios rebootTimeout>")))
        if not self.microvm:
            self.add("-boot", _opts("strict=on", *pairs))

    def first_boot_device(self, dev: str | None):
        if dev == "hd":
            r = self.devices.xpath("./disk[not(@device) or @device='disk']")
        elif dev == "cdrom":
            r = self.devices.xpath("./disk[@device='cdrom']")
        elif dev == "network":
            r = self.devices.xpath("./interface")
        elif dev == "fd":
            raise Unsupported("floppy boot (<boot dev='fd'>) is not supported")
        else:
            raise InvalidArgument("unknown <boot dev='%s'>" % dev)
        return r[0] if r else None

    def bootprop(self, elem) -> tuple[str, object] | None:
        i = self.bootindex.get(self.key(elem))
        return ("bootindex", i) if i is not None else None

    # ---- controllers

    def reserve_pci(self) -> None:
        if self.microvm:
            for a in self.devices.xpath(".//address[@type='pci']"):
                if a.getparent().tag != "source":
                    raise InvalidArgument("<%s>: machine 'microvm' has no PCI bus" % a.getparent().tag)
            return
        for el in self.devices:
            if not isinstance(el.tag, str):
                continue
            self.pci.reserve(el, "<%s>" % el.tag)
        for c in self.devices.findall("controller[@type='pci']"):
            idx = _int(c.get("index"), "<controller type='pci'> index")
            if idx:
                self.pci.buses[idx] = "pci.%d" % idx

    def controllers(self) -> None:
        """Controllers the XML declares, then the ones its devices imply."""
        pci = sorted(self.devices.findall("controller[@type='pci']"),
                     key=lambda c: _int(c.get("index"), "<controller type='pci'> index", 0))
        for c in pci + [c for c in self.devices.findall("controller") if c.get("type") != "pci"]:
            t = c.get("type")
            idx = _int(c.get("index"), "<controller type='%s'> index" % t, 0)
            model = c.get("model")
            what = "<controller type='%s' index='%d'>" % (t, idx)
            if t == "pci":
                self.pci_controller(c, idx, model, what)
            elif t == "scsi":
                self.scsi_controller(c, idx, model or "virtio-scsi", what)
            elif t == "sata":
                self.sata_controller(c, idx, what)
            elif t == "virtio-serial":
                self.vser_controller(c, idx, what)
            elif t == "usb":
                self.usb_controller(c, idx, model, what)
            elif t in ("ide", "fdc"):
                pass  # built into pc; checked where a disk uses it
            else:
                raise Unsupported("%s is not supported" % what)
        for d in self.devices.findall("disk"):
            bus = self.disk_bus(d)
            if bus == "scsi":
                ctrl = self.drive_address(d)[0]
                if ctrl not in self.scsi_ctrls:
                    self.scsi_controller(None, ctrl, "virtio-scsi", "<controller type='scsi' index='%d'>" % ctrl)
            elif bus == "sata":
                ctrl = self.drive_address(d)[0]
                if ctrl not in self.sata_ctrls:
                    self.sata_controller(None, ctrl, "<controller type='sata' index='%d'>" % ctrl)
        need_vser = self.devices.xpath("./channel[target/@type='virtio'] | ./console[target/@type='virtio']")
        if need_vser and 0 not in self.vser_ctrls:
            self.vser_controller(None, 0, "<controller type='virtio-serial' index='0'>")

    def pci_controller(self, c, idx: int, model: str | None, what: str) -> None:
        if model in ("pci-root", "pcie-root") or (idx == 0 and model is None):
            want = "pcie-root" if self.family == "q35" else "pci-root"
            if self.microvm:
                raise InvalidArgument("%s: machine 'microvm' has no PCI bus" % what)
            if model and model != want:
                raise InvalidArgument("%s: machine '%s' has a %s, not a %s" % (what, self.machine, want, model))
            return
        self.need_pci(what)
        tgt = c.find("target")
        pid = "pci.%d" % idx
        if model == "pcie-root-port":
            if self.family != "q35":
                raise InvalidArgument("%s: pcie-root-port needs machine q35" % what)
            chassis = _int(tgt.get("chassis") if tgt is not None else None, what + " chassis", idx)
            port = _int(tgt.get("port") if tgt is not None else None, what + " port", idx)
            self.add("-device", _opts("pcie-root-port", ("port", port), ("chassis", chassis), ("id", pid),
                                      *self.pci.props(c, what)))
        elif model == "pci-bridge":
            chassis = _int(tgt.get("chassisNr") if tgt is not None else None, what + " chassisNr", idx)
            self.add("-device", _opts("pci-bridge", ("chassis_nr", chassis), ("id", pid), *self.pci.props(c, what)))
        elif model == "pcie-to-pci-bridge":
            self.add("-device", _opts("pcie-pci-bridge", ("id", pid), *self.pci.props(c, what)))
        else:
            raise Unsupported("%s model '%s' is not supported (pcie-root-port, pci-bridge, pcie-to-pci-bridge)"
                              % (what, model))

    def scsi_controller(self, c, idx: int, model: str, what: str) -> None:
        if model != "virtio-scsi":
            raise Unsupported("%s model '%s' is not supported (virtio-scsi)" % (what, model))
        if idx in self.scsi_ctrls:
            raise InvalidArgument("%s is declared twice" % what)
        self.scsi_ctrls[idx] = model
        drv = c.find("driver") if c is not None else None
        pairs = [("id", "scsi%d" % idx)]
        if drv is not None:
            if drv.get("queues"):
                pairs.append(("num_queues", _int(drv.get("queues"), what + " queues")))
            io = self.iothread(drv.get("iothread"), what)
            if io:
                pairs.append(io)
        self.add("-device", _opts(self.virtio("scsi"), *pairs, *self.dev_addr(c, what)))

    def sata_controller(self, c, idx: int, what: str) -> None:
        if idx in self.sata_ctrls:
            raise InvalidArgument("%s is declared twice" % what)
        self.sata_ctrls.add(idx)
        if self.family == "q35" and idx == 0:
            return  # the ICH9 AHCI controller built into q35 (buses ide.0-ide.5)
        self.need_pci("SATA (%s)" % what)
        self.add("-device", _opts("ich9-ahci", ("id", "sata%d" % idx), *self.pci.props(c, what)))

    def sata_bus(self, ctrl: int, unit: int) -> str:
        if self.family == "q35" and ctrl == 0:
            return "ide.%d" % unit
        return "sata%d.%d" % (ctrl, unit)

    def vser_controller(self, c, idx: int, what: str) -> None:
        if idx in self.vser_ctrls:
            raise InvalidArgument("%s is declared twice" % what)
        self.vser_ctrls.add(idx)
        pairs: list[tuple[str, object]] = [("id", "virtio-serial%d" % idx)]
        if c is not None and c.get("ports"):
            pairs.append(("max_ports", _int(c.get("ports"), what + " ports")))
        if c is not None and c.get("vectors") and not self.microvm:
            pairs.append(("vectors", _int(c.get("vectors"), what + " vectors")))
        self.add("-device", _opts(self.virtio("serial"), *pairs, *self.dev_addr(c, what)))

    def usb_controller(self, c, idx: int, model: str | None, what: str) -> None:
        if model == "none":
            return
        if self.microvm:
            if self.devices.xpath("./input[@bus='usb'] | ./hostdev[@type='usb']"):
                raise Unsupported("USB needs PCI, which machine 'microvm' does not have")
            return
        if model is None:
            model = "qemu-xhci" if self.family == "q35" else "piix3-uhci"
        qdev = {"qemu-xhci": "qemu-xhci", "nec-xhci": "nec-usb-xhci", "piix3-uhci": "piix3-usb-uhci",
                "piix4-uhci": "piix4-usb-uhci"}.get(model)
        if qdev is None:
            raise Unsupported("%s model '%s' is not supported (qemu-xhci, nec-xhci, piix3-uhci)" % (what, model))
        uid = "usb" if idx == 0 else "usb%d" % idx
        self.usb_ctrls[idx] = uid
        pairs: list[tuple[str, object]] = [("id", uid)]
        if c.get("ports") and "xhci" in model:
            pairs.append(("p2", _int(c.get("ports"), what + " ports")))
            pairs.append(("p3", _int(c.get("ports"), what + " ports")))
        self.add("-device", _opts(qdev, *pairs, *self.pci.props(c, what)))

    # ---- devices

    def walk_devices(self) -> None:
        self.serials = self.serial_plan()
        counters: dict[str, int] = {}
        for el in self.devices:
            if not isinstance(el.tag, str):
                continue
            n = counters.get(el.tag, 0)
            counters[el.tag] = n + 1
            handler = getattr(self, "dev_" + el.tag.replace("-", "_"), None)
            if handler is None:
                raise Unsupported("<devices><%s> is not supported yet" % el.tag)
            handler(el, n)

    def dev_emulator(self, el, n: int) -> None:
        pass

    def dev_controller(self, el, n: int) -> None:
        pass  # done in controllers()

    # disks

    def disk_bus(self, d) -> str:
        tgt = d.find("target")
        if tgt is None or not tgt.get("dev"):
            raise XMLError("<disk> has no <target dev=...>")
        dev = tgt.get("dev")
        bus = tgt.get("bus")
        if bus is None:
            bus = {"vd": "virtio", "sd": "scsi", "hd": "ide"}.get(dev[:2])
            if bus is None:
                raise InvalidArgument("disk '%s': give <target bus=...>" % dev)
        return bus

    def drive_address(self, d) -> tuple[int, int, int, int]:
        """(controller, bus, target, unit) from <address type='drive'> or the target name."""
        dev = d.find("target").get("dev")
        bus = self.disk_bus(d)
        a = d.find("address")
        if a is not None and a.get("type") == "drive":
            what = "disk '%s' <address>" % dev
            return (_int(a.get("controller"), what + " controller", 0), _int(a.get("bus"), what + " bus", 0),
                    _int(a.get("target"), what + " target", 0), _int(a.get("unit"), what + " unit", 0))
        idx = _disk_index(dev)
        if bus == "ide":
            return 0, idx // 2, 0, idx % 2
        if bus == "sata":
            return idx // 6, 0, 0, idx % 6
        if bus == "scsi":
            return idx // 7, 0, 0, idx % 7
        return 0, 0, 0, idx

    def dev_disk(self, d, n: int) -> None:
        device = d.get("device", "disk")
        dtype = d.get("type", "file")
        tgt = d.find("target")
        dev = tgt.get("dev") if tgt is not None else None
        what = "disk '%s'" % dev
        bus = self.disk_bus(d)
        if device not in ("disk", "cdrom"):
            raise Unsupported("%s: device='%s' is not supported (disk or cdrom)" % (what, device))
        if d.find("transient") is not None:
            raise Unsupported("%s: <transient/> disks are not supported yet" % what)
        src = d.find("source")
        path = None
        if src is not None:
            if dtype == "file":
                path = src.get("file")
            elif dtype == "block":
                path = src.get("dev")
            else:
                raise Unsupported("%s: disk type '%s' is not supported (file or block)" % (what, dtype))
        elif dtype not in ("file", "block"):
            raise Unsupported("%s: disk type '%s' is not supported (file or block)" % (what, dtype))
        if path and not os.path.exists(path) and src.get("startupPolicy") == "optional":
            path = None  # libvirt drops an optional source that is missing
            if device == "disk":
                return
        if not path and device == "disk":
            raise InvalidArgument("%s has no <source>" % what)

        drv = d.find("driver")
        drv = drv if drv is not None else d.makeelement("driver")
        readonly = d.find("readonly") is not None or device == "cdrom"
        node = None
        if path:
            node = self.blockdev_chain(d, n, path, dtype, device, readonly, drv, what)

        ctrl, dbus, target, unit = self.drive_address(d)
        cache = drv.get("cache")
        wc = {"none": True, "writeback": True, "unsafe": True,
              "writethrough": False, "directsync": False}.get(cache) if cache else None
        common: list[tuple[str, object] | None] = [("drive", node)]
        serial = d.findtext("serial")
        if device == "cdrom" and bus == "virtio":
            raise Unsupported("%s: a cdrom cannot be on bus 'virtio' (use sata, scsi or ide)" % what)
        if bus == "virtio":
            pairs: list[tuple[str, object] | None] = [*common, ("id", "virtio-disk%d" % _disk_index(dev))]
            if drv.get("queues"):
                pairs.append(("num-queues", _int(drv.get("queues"), what + " queues")))
            pairs.append(self.iothread(drv.get("iothread"), what))
            qdev = self.virtio("blk")
            pairs += self.dev_addr(d, what)
        elif bus == "scsi":
            qdev = "scsi-cd" if device == "cdrom" else "scsi-hd"
            pairs = [("bus", "scsi%d.%d" % (ctrl, dbus)), ("channel", 0), ("scsi-id", target), ("lun", unit),
                     *common, ("id", "scsi%d-%d-%d-%d" % (ctrl, dbus, target, unit))]
        elif bus == "sata":
            self.need_pci("SATA (%s)" % what)
            if unit > 5:
                raise InvalidArgument("%s: SATA unit %d is out of range (0-5)" % (what, unit))
            qdev = "ide-cd" if device == "cdrom" else "ide-hd"
            pairs = [("bus", self.sata_bus(ctrl, unit)), *common, ("id", "sata%d-0-%d" % (ctrl, unit))]
        elif bus == "ide":
            if self.family != "pc":
                raise Unsupported("%s: machine '%s' has no IDE controller; use bus='sata'%s"
                                  % (what, self.machine, "" if self.family == "q35" else " (pc/q35) or 'virtio'"))
            if ctrl != 0 or dbus > 1 or unit > 1:
                raise InvalidArgument("%s: IDE address %d:%d:%d is out of range (bus 0-1, unit 0-1)"
                                      % (what, ctrl, dbus, unit))
            qdev = "ide-cd" if device == "cdrom" else "ide-hd"
            pairs = [("bus", "ide.%d" % dbus), ("unit", unit), *common, ("id", "ide0-%d-%d" % (dbus, unit))]
        else:
            raise Unsupported("%s: bus '%s' is not supported (virtio, scsi, sata, ide)" % (what, bus))
        if serial:
            pairs.append(("serial", serial.strip()))
        if wc is not None and device == "disk":
            pairs.append(("write-cache", wc))
        if d.find("shareable") is not None:
            pairs.append(("share-rw", True))
        bio = d.find("blockio")
        if bio is not None:
            for attr, prop in (("logical_block_size", "logical_block_size"),
                               ("physical_block_size", "physical_block_size")):
                if bio.get(attr):
                    pairs.append((prop, _int(bio.get(attr), what + " " + attr)))
        pairs.append(self.bootprop(d))
        self.add("-device", _opts(qdev, *pairs))

    def blockdev_chain(self, d, n: int, path: str, dtype: str, device: str, readonly: bool, drv, what: str) -> str:
        """-blockdev nodes for one disk (and its declared backing chain); returns the top node name."""
        fmt = drv.get("type")
        if drv.get("name", "qemu") != "qemu":
            raise Unsupported("%s: <driver name='%s'> is not supported (qemu)" % (what, drv.get("name")))
        cache = drv.get("cache")
        cache_opts = None
        if cache:
            modes = {"none": (True, False), "writeback": (False, False), "writethrough": (False, False),
                     "directsync": (True, False), "unsafe": (False, True)}
            if cache not in modes:
                raise InvalidArgument("%s: unknown cache mode '%s'" % (what, cache))
            direct, noflush = modes[cache]
            cache_opts = {"direct": direct, "no-flush": noflush}
        io = drv.get("io")
        if io and io not in ("native", "threads", "io_uring"):
            raise InvalidArgument("%s: unknown io mode '%s'" % (what, io))
        if io == "native" and cache not in ("none", "directsync"):
            raise InvalidArgument("%s: io='native' needs cache='none' or 'directsync'" % what)
        discard = drv.get("discard")
        if discard and discard not in ("unmap", "ignore"):
            raise InvalidArgument("%s: unknown discard mode '%s'" % (what, discard))
        dz = drv.get("detect_zeroes")
        if dz and dz not in ("on", "off", "unmap"):
            raise InvalidArgument("%s: unknown detect_zeroes mode '%s'" % (what, dz))

        def nodes(prefix: str, path: str, dtype: str, fmt: str | None, ro: bool, bs, level_what: str) -> str:
            _need_file(path, level_what)
            if not fmt:
                raise InvalidArgument("%s: no format given (<driver type='raw|qcow2'>); vsh never probes "
                                      "a disk format" % level_what)
            if fmt not in ("raw", "qcow2"):
                raise Unsupported("%s: format '%s' is not supported (raw or qcow2)" % (level_what, fmt))
            if dtype == "file":
                driver = "file"
            else:
                driver = "host_cdrom" if device == "cdrom" else "host_device"
            fnode = {"driver": driver, "filename": path, "node-name": prefix + "-file", "read-only": ro}
            if io:
                fnode["aio"] = io
            if discard:
                fnode["discard"] = discard
            if cache_opts:
                fnode["cache"] = dict(cache_opts)
            fmtnode: dict = {"driver": fmt, "node-name": prefix + "-fmt", "file": prefix + "-file", "read-only": ro}
            if discard:
                fmtnode["discard"] = discard
            if cache_opts:
                fmtnode["cache"] = dict(cache_opts)
            if dz and prefix == "disk%d" % n:
                fmtnode["detect-zeroes"] = dz
            if fmt == "qcow2":
                data_file = qcow2_data_file(path)
                if data_file is not None:
                    raise Unsupported(
                        "%s: qcow2 image '%s' keeps its data in an external file%s; vsh does not open "
                        "files that an image names (external data files are not supported)"
                        % (level_what, path, " '%s'" % data_file if data_file else ""))
                if bs is None:
                    named = qcow2_backing_file(path)
                    if named:
                        raise InvalidArgument(
                            "%s: qcow2 image '%s' names a backing file '%s' that the domain XML does not "
                            "declare; vsh does not follow it. Declare it with <backingStore type='file'>"
                            "<format type='raw|qcow2'/><source file='...'/></backingStore> if you trust it"
                            % (level_what, path, named))
                    fmtnode["backing"] = None
                elif bs.find("source") is None:
                    fmtnode["backing"] = None  # <backingStore/>: declared to have none
                else:
                    btype = bs.get("type", "file")
                    if btype not in ("file", "block"):
                        raise Unsupported("%s: backing store type '%s' is not supported" % (level_what, btype))
                    bsrc = bs.find("source")
                    bpath = bsrc.get("file") if btype == "file" else bsrc.get("dev")
                    bfmt = bs.find("format").get("type") if bs.find("format") is not None else None
                    depth = int(prefix.rsplit("b", 1)[-1]) + 1 if "-b" in prefix else 1
                    if depth > 32:
                        raise InvalidArgument("%s: backing chain deeper than 32" % what)
                    child = nodes("disk%d-b%d" % (n, depth), bpath, btype, bfmt, True, bs.find("backingStore"),
                                  "%s backing store '%s'" % (what, bpath))
                    fmtnode["backing"] = child
            elif bs is not None and bs.find("source") is not None:
                raise InvalidArgument("%s: a raw image cannot have a <backingStore>" % level_what)
            self.add("-blockdev", json.dumps(fnode, separators=(",", ":")))
            self.add("-blockdev", json.dumps(fmtnode, separators=(",", ":")))
            return prefix + "-fmt"

        return nodes("disk%d" % n, path, dtype, fmt, readonly, d.find("backingStore"), what)

    # network

    def dev_interface(self, el, n: int) -> None:
        t = el.get("type")
        if t not in ("user", "network", "bridge"):
            raise Unsupported("interface type '%s' is not supported yet (user, network, bridge)" % t)
        what = "<interface type='%s'> #%d" % (t, n)
        if el.find("backend") is not None and el.find("backend").get("type") not in (None, "default"):
            raise Unsupported("%s: backend '%s' is not supported" % (what, el.find("backend").get("type")))
        if el.find("portForward") is not None:
            raise Unsupported("%s: <portForward> is not supported yet" % what)
        mac = el.find("mac")
        if mac is None or not mac.get("address"):
            raise InvalidArgument("%s has no <mac address>" % what)
        addr = mac.get("address").lower()
        if not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", addr):
            raise InvalidArgument("%s: '%s' is not a MAC address" % (what, mac.get("address")))
        if int(addr[:2], 16) & 1:
            raise InvalidArgument("%s: MAC %s is a multicast address" % (what, addr))
        if t != "user":
            self.add("-netdev", _opts("tap", *self.tap_netdev(el, n, what)))
        else:
            self.add("-netdev", _opts("user", *self.user_netdev(el, n, addr)))
        model = el.find("model").get("type") if el.find("model") is not None else "virtio"
        if model == "virtio":
            qdev = self.virtio("net")
        elif model in ("e1000", "e1000e", "rtl8139"):
            self.need_pci("NIC model '%s'" % model)
            qdev = model
        else:
            raise Unsupported("%s: NIC model '%s' is not supported (virtio, e1000, e1000e, rtl8139)" % (what, model))
        pairs: list[tuple[str, object] | None] = [("netdev", "hostnet%d" % n), ("id", "net%d" % n), ("mac", addr)]
        pairs += self.dev_addr(el, what)
        pairs.append(self.rom(el, what))
        pairs.append(self.bootprop(el))
        self.add("-device", _opts(qdev, *pairs))

    def user_netdev(self, el, n: int, mac: str) -> list:
        netdev: list[tuple[str, object]] = [("id", "hostnet%d" % n)]
        for ip in el.findall("ip"):
            fam = ip.get("family", "ipv4")
            prefix = ip.get("prefix")
            a = ip.get("address")
            if fam == "ipv4":
                netdev.append(("net", "%s/%s" % (a, prefix or 24)))
            elif fam == "ipv6":
                netdev.append(("ipv6-net", "%s/%s" % (a, prefix or 64)))
        for fw in self.port_forwards(n, mac):
            netdev.append(("hostfwd", fw.hostfwd()))
        return netdev

    def tap_netdev(self, el, n: int, what: str) -> list:
        """A tap QEMU creates by name; vsh's supervisor plugs it into the bridge
        (vsh.kvm.hostnet) before the guest runs.  vhost-net when KVM runs the guest."""
        for tag in ("ip", "route", "script", "downscript", "bandwidth", "vlan", "virtualport", "filterref"):
            if el.find(tag) is not None:
                raise Unsupported("%s: <%s> is not supported" % (what, tag))
        netdev: list[tuple[str, object]] = [("id", "hostnet%d" % n)]
        target = el.find("target")
        if target is not None and target.get("dev"):
            netdev.append(("ifname", target.get("dev")))
        netdev += [("script", "no"), ("downscript", "no")]
        driver = el.find("driver")
        name = driver.get("name") if driver is not None else None
        if name not in (None, "qemu", "vhost"):
            raise Unsupported("%s: <driver name='%s'> is not supported (qemu, vhost)" % (what, name))
        if name == "vhost" or (name is None and self.kvm and os.access("/dev/vhost-net", os.R_OK | os.W_OK)):
            netdev.append(("vhost", "on"))
        return netdev

    def port_forwards(self, n: int, mac: str) -> list:
        """The vsh port forwards (domain metadata, vsh.core.portfwd) of user interface number ``n``."""
        from vsh.core import portfwd

        if not hasattr(self, "forwards"):
            self.forwards = portfwd.forwards(self.root)
            self.forwards_used: set[int] = set()
        mine = []
        for i, fw in enumerate(self.forwards):
            if fw.matches(n, mac):
                mine.append(fw)
                self.forwards_used.add(i)
        return mine

    def unused_forwards(self) -> None:
        """A port forward must name a user-mode interface of the domain."""
        from vsh.core import portfwd

        fws = getattr(self, "forwards", None)
        if fws is None:
            fws = portfwd.forwards(self.root)
        used = getattr(self, "forwards_used", set())
        for i, fw in enumerate(fws):
            if i not in used:
                which = "MAC %s" % fw.mac if fw.mac is not None else "number %d" % (fw.interface or 0)
                raise InvalidArgument("port forward #%d (%s) names interface %s, which is not an "
                                      "<interface type='user'> of this domain" % (i, fw.describe(), which))

    def rom(self, el, what: str) -> tuple[str, object] | None:
        rom = el.find("rom")
        if rom is None or self.microvm:
            return None
        if rom.get("enabled") == "no" or rom.get("bar") == "off":
            return ("romfile", "")
        if rom.get("file"):
            return ("romfile", _need_file(rom.get("file"), what + " <rom file>"))
        return None

    # serial ports, consoles, channels

    def serial_plan(self) -> list:
        """The serial ports to create: <serial> elements, or the first <console> standing in for one."""
        serials = self.devices.findall("serial")
        if serials:
            return serials
        for c in self.devices.findall("console"):
            tgt = c.find("target")
            if tgt is None or tgt.get("type") in (None, "serial"):
                return [c]
        return []

    def primary_console_alias(self) -> str | None:
        if self.serials:
            return "serial0"
        vc = self.devices.xpath("./console[target/@type='virtio']")
        return "console%d" % self.devices.findall("console").index(vc[0]) if vc else None

    def chardev(self, el, cid: str, alias: str, what: str, log: bool) -> str:
        t = el.get("type", "pty")
        src = el.find("source")
        pairs: list[tuple[str, object]] = [("id", cid)]
        if t == "pty":
            head = "pty"
        elif t == "null":
            head = "null"
        elif t == "file":
            if src is None or not src.get("path"):
                raise InvalidArgument("%s: type='file' needs <source path=...>" % what)
            head = "file"
            pairs.append(("path", src.get("path")))
            if src.get("append") == "on":
                pairs.append(("append", True))
        elif t == "unix":
            head = "socket"
            path = src.get("path") if src is not None else None
            if not path:
                path = self.paths.socket_for(alias)
            _check_socket_path(path, what)
            pairs.append(("path", path))
            mode = src.get("mode", "bind") if src is not None else "bind"
            if mode == "bind":
                pairs += [("server", True), ("wait", False)]
            elif mode == "connect":
                pairs.append(("server", False))
                rc = el.find("source/reconnect")
                if rc is not None and rc.get("enabled") == "yes":
                    pairs.append(("reconnect", _int(rc.get("timeout"), what + " reconnect timeout", 1)))
            else:
                raise InvalidArgument("%s: unknown unix source mode '%s'" % (what, mode))
        else:
            raise Unsupported("%s: character device type '%s' is not supported (pty, file, unix, null)" % (what, t))
        if log:
            logfile = self.paths.console_log if alias == self.primary_console_alias() else self.paths.log_for(alias)
            pairs += [("logfile", logfile), ("logappend", True)]
        return _opts(head, *pairs)

    def dev_serial(self, el, n: int) -> None:
        what = "<serial> #%d" % n
        tgt = el.find("target")
        ttype = tgt.get("type", "isa-serial") if tgt is not None else "isa-serial"
        if el.tag == "console":
            ttype = "isa-serial"  # <console><target type='serial'> standing in for serial port 0
        port = _int(tgt.get("port") if tgt is not None else None, what + " port", n)
        alias = "serial%d" % n
        self.add("-chardev", self.chardev(el, "char" + alias, alias, what, log=True))
        if ttype == "isa-serial":
            if port > 3:
                raise InvalidArgument("%s: ISA serial port %d is out of range (0-3)" % (what, port))
            self.add("-device", _opts("isa-serial", ("chardev", "char" + alias), ("id", alias), ("index", port)))
        elif ttype == "pci-serial":
            self.need_pci(what)
            self.add("-device", _opts("pci-serial", ("chardev", "char" + alias), ("id", alias),
                                      *self.pci.props(el, what)))
        else:
            raise Unsupported("%s: target type '%s' is not supported (isa-serial, pci-serial)" % (what, ttype))

    def dev_console(self, el, n: int) -> None:
        what = "<console> #%d" % n
        tgt = el.find("target")
        ttype = tgt.get("type", "serial") if tgt is not None else "serial"
        if ttype == "serial":
            if self.serials and self.key(self.serials[0]) == self.key(el):
                self.dev_serial(el, 0)  # a console standing in for serial0
            return  # otherwise it is the view of serial0, already created
        if ttype != "virtio":
            raise Unsupported("%s: target type '%s' is not supported (serial, virtio)" % (what, ttype))
        alias = "console%d" % n
        self.add("-chardev", self.chardev(el, "char" + alias, alias, what, log=True))
        pairs: list[tuple[str, object]] = [("chardev", "char" + alias), ("id", alias)]
        self.add("-device", _opts("virtconsole", *self.vser_port(el, what, console=True), *pairs))

    def vser_port(self, el, what: str, console: bool = False) -> list[tuple[str, object]]:
        a = el.find("address")
        if a is not None and a.get("type") == "virtio-serial":
            ctrl = _int(a.get("controller"), what + " controller", 0)
            if ctrl not in self.vser_ctrls:
                raise InvalidArgument("%s: virtio-serial controller %d is not declared" % (what, ctrl))
            out: list[tuple[str, object]] = [("bus", "virtio-serial%d.%d" % (ctrl, _int(a.get("bus"), what, 0)))]
            if a.get("port"):
                out.append(("nr", _int(a.get("port"), what + " port")))
            return out
        return [("bus", "virtio-serial0.0")]

    def dev_channel(self, el, n: int) -> None:
        what = "<channel> #%d" % n
        tgt = el.find("target")
        if tgt is None or tgt.get("type") != "virtio":
            raise Unsupported("%s: only virtio channels are supported" % what)
        name = tgt.get("name")
        alias = "channel%d" % n
        self.add("-chardev", self.chardev(el, "char" + alias, alias, what, log=False))
        pairs: list[tuple[str, object]] = [("chardev", "char" + alias), ("id", alias)]
        if name:
            pairs.append(("name", name))
        self.add("-device", _opts("virtserialport", *self.vser_port(el, what), *pairs))

    # other devices

    def dev_rng(self, el, n: int) -> None:
        what = "<rng> #%d" % n
        if el.get("model") != "virtio":
            raise Unsupported("%s: model '%s' is not supported (virtio)" % (what, el.get("model")))
        be = el.find("backend")
        bmodel = be.get("model") if be is not None else "random"
        oid = "objrng%d" % n
        if bmodel == "random":
            src = (be.text or "").strip() if be is not None and be.text else "/dev/urandom"
            if src not in ("/dev/random", "/dev/urandom", "/dev/hwrng"):
                raise InvalidArgument("%s: backend '%s' must be /dev/urandom, /dev/random or /dev/hwrng" % (what, src))
            _need_file(src, what)
            self.add("-object", _opts("rng-random", ("id", oid), ("filename", src)))
        elif bmodel == "builtin":
            self.add("-object", _opts("rng-builtin", ("id", oid)))
        else:
            raise Unsupported("%s: backend model '%s' is not supported (random, builtin)" % (what, bmodel))
        pairs: list[tuple[str, object]] = [("rng", oid), ("id", "rng%d" % n)]
        rate = el.find("rate")
        if rate is not None:
            pairs.append(("max-bytes", _int(rate.get("bytes"), what + " rate bytes")))
            pairs.append(("period", _int(rate.get("period"), what + " rate period", 1000)))
        self.add("-device", _opts(self.virtio("rng"), *pairs, *self.dev_addr(el, what)))

    def dev_memballoon(self, el, n: int) -> None:
        model = el.get("model")
        if model == "none":
            return
        what = "<memballoon>"
        if model != "virtio":
            raise Unsupported("%s model '%s' is not supported (virtio, none)" % (what, model))
        pairs: list[tuple[str, object]] = [("id", "balloon%d" % n)]
        if el.get("autodeflate") == "on":
            pairs.append(("deflate-on-oom", True))
        if el.get("freePageReporting") == "on":
            pairs.append(("free-page-reporting", True))
        self.add("-device", _opts(self.virtio("balloon"), *pairs, *self.dev_addr(el, what)))

    def dev_watchdog(self, el, n: int) -> None:
        model = el.get("model")
        what = "<watchdog model='%s'>" % model
        if model == "i6300esb":
            self.need_pci(what)
            self.add("-device", _opts("i6300esb", ("id", "watchdog%d" % n), *self.pci.props(el, what)))
        elif model == "ib700":
            self.add("-device", _opts("ib700", ("id", "watchdog%d" % n)))
        elif model == "itco":
            if self.family != "q35":
                raise Unsupported("%s needs machine q35 (it is part of its ICH9 chipset)" % what)
            self.add("-global", "ICH9-LPC.noreboot=off")
        else:
            raise Unsupported("%s is not supported (i6300esb, ib700, itco)" % what)

    def dev_panic(self, el, n: int) -> None:
        model = el.get("model", "isa")
        what = "<panic model='%s'>" % model
        if model == "isa":
            pairs: list[tuple[str, object]] = [("id", "panic%d" % n)]
            a = el.find("address")
            if a is not None and a.get("type") == "isa" and a.get("iobase"):
                pairs.append(("ioport", _int(a.get("iobase"), what + " iobase")))
            self.add("-device", _opts("pvpanic", *pairs))
        elif model == "pvpanic":
            self.need_pci(what)
            self.add("-device", _opts("pvpanic-pci", ("id", "panic%d" % n), *self.pci.props(el, what)))
        else:
            raise Unsupported("%s is not supported (isa)" % what)

    def dev_hostdev(self, el, n: int) -> None:
        t = el.get("type")
        what = "<hostdev type='%s'>" % t
        if el.get("mode", "subsystem") != "subsystem" or t != "pci":
            raise Unsupported("%s is not supported (PCI subsystem devices only)" % what)
        a = el.find("source/address")
        if a is None:
            raise InvalidArgument("%s has no <source><address>" % what)
        host_addr = "%04x:%02x:%02x.%x" % (_int(a.get("domain"), what + " domain", 0), _int(a.get("bus"), what + " bus"),
                                           _int(a.get("slot"), what + " slot"),
                                           _int(a.get("function"), what + " function", 0))
        drv = el.find("driver")
        if drv is not None and drv.get("name") not in (None, "vfio"):
            raise Unsupported("%s: driver '%s' is not supported (vfio)" % (what, drv.get("name")))
        if not getattr(self.host, "iommu_groups", False):
            raise Unsupported("PCI device %s needs VFIO, and this host has no IOMMU groups (enable the IOMMU: "
                              "intel_iommu=on or amd_iommu=on on the kernel command line)" % host_addr)
        self.need_pci(what)
        pairs: list[tuple[str, object] | None] = [("host", host_addr), ("id", "hostdev%d" % n)]
        pairs += self.pci.props(el, what)
        pairs.append(self.rom(el, what))
        pairs.append(self.bootprop(el))
        self.add("-device", _opts("vfio-pci", *pairs))

    def dev_graphics(self, el, n: int) -> None:
        t = el.get("type")
        if t != "vnc":
            raise Unsupported("<graphics type='%s'> is not supported (vnc, on a unix socket)" % t)
        if n:
            raise Unsupported("only one <graphics> is supported")
        if el.get("passwd"):
            raise Unsupported("VNC passwords are not supported; the VNC socket is private to its user")
        path = el.get("socket")
        lst = el.find("listen[@type='socket']")
        if lst is not None and lst.get("socket"):
            path = lst.get("socket")
        path = path or self.paths.vnc_socket
        _check_socket_path(path, "<graphics type='vnc'>")
        self.add("-vnc", "unix:%s" % _esc(path))

    def dev_video(self, el, n: int) -> None:
        m = el.find("model")
        model = m.get("type") if m is not None else "vga"
        what = "<video model='%s'>" % model
        if model == "none":
            return
        self.need_pci(what)
        qdev = {"vga": "VGA", "virtio": "virtio-vga" if n == 0 else "virtio-gpu-pci",
                "bochs": "bochs-display"}.get(model)
        if qdev is None:
            raise Unsupported("%s is not supported (vga, virtio, bochs, none)" % what)
        self.add("-device", _opts(qdev, ("id", "video%d" % n), *self.pci.props(el, what)))

    def dev_input(self, el, n: int) -> None:
        t, bus = el.get("type"), el.get("bus", "ps2")
        what = "<input type='%s' bus='%s'>" % (t, bus)
        if bus == "ps2":
            if t not in ("mouse", "keyboard"):
                raise Unsupported("%s is not supported" % what)
            return  # built into the pc/q35 chipsets; microvm has none to add
        if bus == "usb":
            if t not in ("tablet", "mouse", "keyboard"):
                raise Unsupported("%s is not supported" % what)
            if 0 not in self.usb_ctrls:
                raise InvalidArgument("%s needs a <controller type='usb'> with a model other than none" % what)
            self.add("-device", _opts("usb-%s" % ("kbd" if t == "keyboard" else t), ("id", "input%d" % n),
                                      ("bus", "%s.0" % self.usb_ctrls[0])))
        elif bus == "virtio":
            if t not in ("tablet", "mouse", "keyboard"):
                raise Unsupported("%s is not supported" % what)
            self.add("-device", _opts(self.virtio(t), ("id", "input%d" % n), *self.dev_addr(el, what)))
        else:
            raise Unsupported("%s is not supported" % what)


def build_argv(root, host, paths: RuntimePaths) -> list[str]:
    """The qemu-system-x86_64 argv for the libvirt domain XML ``root`` (see module docstring)."""
    return _Builder(root, host, paths).build()


def split_opts(text: str) -> list[str]:
    """QEMU's ``a=b,c=d`` option syntax split at single commas (``,,`` is a literal comma)."""
    parts, cur, i = [], [], 0
    while i < len(text):
        if text[i] == ",":
            if text[i + 1:i + 2] == ",":
                cur.append(",")
                i += 2
                continue
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(text[i])
        i += 1
    parts.append("".join(cur))
    return parts


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
    b = _Builder(root, host, paths or RuntimePaths.for_rundir("/nonexistent"))
    b.machine_type()
    b.iothread_objects()
    b.reserve_pci()
    b.serials = b.serial_plan()
    tag = el.tag if isinstance(el.tag, str) else ""
    handler = getattr(b, "dev_" + tag.replace("-", "_"), None)
    if handler is None:
        raise Unsupported("<devices><%s> is not supported yet" % tag)
    b.argv = []
    handler(el, index)
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


def check_host_ports(root) -> None:
    """Before a start: refuse port forwards whose host port is taken (vsh.core.portfwd)."""
    from vsh.core import portfwd

    for i, fw in enumerate(portfwd.forwards(root)):
        portfwd.check_free(fw, "port forward #%d (%s)" % (i, fw.describe()))


def console_chardev(root) -> str | None:
    """QEMU id of the chardev behind the domain's primary console (for query-chardev), or None."""
    devices = root.find("devices")
    if devices is None:
        return None
    if devices.findall("serial"):
        return "charserial0"
    consoles = devices.findall("console")
    for i, c in enumerate(consoles):
        tgt = c.find("target")
        if tgt is None or tgt.get("type") in (None, "serial"):
            return "charserial0" if i == 0 else None
    for i, c in enumerate(consoles):
        if c.find("target").get("type") == "virtio":
            return "charconsole%d" % i
    return None
