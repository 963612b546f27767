"""The machine itself: accelerator, machine type, emulator, CPU, memory, vCPUs, iothreads,
the QMP monitor, the clock and what QEMU does on poweroff, reboot, crash and watchdog."""

from __future__ import annotations

import re

from vsh.core.errors import InvalidArgument, Unsupported, XMLError
from vsh.kvm.argv import numa
from vsh.kvm.argv.builder import DEFAULT_MACHINE, Builder
from vsh.kvm.argv.options import check_socket_path, esc, given, need_file, number, opts, size_bytes
from vsh.kvm.argv.pci import PciAddresses

#: What the supervisor applies for rename-restart and coredump-*.
ACTION_KINDS = {"rename-restart": "restart", "coredump-restart": "restart", "coredump-destroy": "destroy"}


def stated(text: str | None, default: str) -> str:
    """An element's stripped text, or ``default`` when it is absent or empty."""
    return (text or "").strip() or default


def domain_type(b: Builder) -> None:
    """<domain type>: kvm (only where KVM really runs guests) or qemu (TCG)."""
    t = b.dom.type
    if t == "kvm":
        kvm = b.host.kvm
        if not getattr(kvm, "usable", False):
            reason = getattr(kvm, "reason", "") or "no usable /dev/kvm"
            raise Unsupported("domain type 'kvm' needs a usable KVM: %s; use type='qemu'" % reason)
        b.kvm = True
    elif t == "qemu":
        b.kvm = False
    else:
        raise Unsupported("domain type '%s' is not supported (use 'kvm' or 'qemu')" % t)


def machine_type(b: Builder) -> None:
    """<os><type>: hvm on x86_64, a machine this QEMU knows; sets the family and the PCI book."""
    if (b.dom.os_type or "").strip() != "hvm":
        raise Unsupported("only <os><type>hvm</type></os> guests are supported")
    arch = b.dom.os_arch or "x86_64"
    if arch != "x86_64":
        raise Unsupported("guest architecture '%s' is not supported (x86_64 only)" % arch)
    m = b.dom.os_machine or DEFAULT_MACHINE
    machines = getattr(b.host, "machines", None) or []
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
        b.family = "microvm"
    elif canonical == "q35" or canonical.startswith("pc-q35-"):
        b.family = "q35"
    elif canonical == "pc" or canonical.startswith("pc-i440fx-"):
        b.family = "pc"
    else:
        raise Unsupported("machine type '%s' is not supported (pc, q35 or microvm)" % m)
    b.machine = m
    b.pci = None if b.microvm else PciAddresses(b.family)


def emulator(b: Builder) -> str:
    """The QEMU binary: <devices><emulator>, else the host's."""
    em = (b.dom.emulator or "").strip()
    if em:
        return need_file(em, "<emulator>")
    qemu = getattr(b.host, "qemu_path", None)
    if not qemu:
        raise Unsupported("no qemu-system-x86_64 found on this host")
    return qemu


def machine_opts(b: Builder) -> str:
    """The -machine option: the machine type and its features (ACPI, vmport, SMM, HPET, flash)."""
    pairs: list[tuple[str, object]] = []
    if not b.microvm:
        pairs.append(("usb", False))
    pairs.append(("dump-guest-core", False))
    if not b.dom.feature_state("acpi"):
        pairs.append(("acpi", False))
    if b.microvm:
        pairs.append(("isa-serial", False))
    vmport = b.dom.feature_state("vmport")
    if vmport is not None and not b.microvm:
        pairs.append(("vmport", vmport))
    smm = b.dom.feature_state("smm")
    if smm is not None:
        pairs.append(("smm", smm))
    for t in b.dom.timers:
        if t.name == "hpet" and t.present == "no" and not b.microvm:
            pairs.append(("hpet", False))
    if b.dom.has_loader and b.dom.os_loader_type == "pflash" and not b.microvm:
        pairs.append(("pflash0", "libvirt-pflash0-format"))  # blockdevs: see pflash()
        if b.dom.has_nvram:
            pairs.append(("pflash1", "libvirt-pflash1-format"))
    return opts(b.machine, *pairs)


def cpu(b: Builder) -> None:
    """<cpu>: the -cpu model (host, max, or a named one) and its feature flags."""
    if not b.dom.has_cpu:
        return
    mode = b.dom.cpu_mode or "custom"
    if mode in ("host-passthrough", "host-model"):
        if not b.kvm:
            raise Unsupported("CPU mode '%s' needs KVM (type='kvm'); under TCG use mode='maximum' "
                              "or a named model such as <model>qemu64</model>" % mode)
        if not getattr(b.host.kvm, "host_cpu_usable", True):
            raise Unsupported("CPU mode '%s' needs '-cpu host', which KVM here refuses: %s"
                              % (mode, getattr(b.host.kvm, "host_cpu_reason", "")))
        name = "host"
    elif mode == "maximum":
        name = "max"
    elif mode == "custom":
        name = (b.dom.cpu_model or "").strip()
        if not name:
            if not b.dom.cpu_features:
                return  # only topology: QEMU's default model
            name = "qemu64"
        models = [getattr(c, "name", c) for c in (getattr(b.host, "cpu_models", None) or [])]
        if models and name not in models:
            raise InvalidArgument("CPU model '%s' is not known to this QEMU (see 'vsh domcapabilities')" % name)
    else:
        raise InvalidArgument("unknown CPU mode '%s'" % mode)
    pairs = []
    for fname, policy in b.dom.cpu_features:
        if not fname or not re.fullmatch(r"[A-Za-z0-9_.-]+", fname):
            raise InvalidArgument("<cpu><feature name='%s'> is not a feature name" % fname)
        if policy in ("require", "force", "optional"):
            pairs.append((fname, True))
        elif policy in ("disable", "forbid"):
            pairs.append((fname, False))
        else:
            raise InvalidArgument("<cpu><feature policy='%s'> is not a policy" % policy)
    b.add("-cpu", opts(name, *pairs))


def memory(b: Builder) -> None:
    """<memory> (with guest NUMA: the sum of the cells, as libvirt counts it): -m in MiB, rounded up."""
    if not b.dom.has_memory:
        raise XMLError("the domain has no <memory>")
    if b.dom.has_max_memory:
        raise Unsupported("memory hotplug (<maxMemory>) is not supported yet")
    if b.dom.hugepages:
        raise Unsupported("hugepages (<memoryBacking><hugepages>) are not supported yet")
    size = numa.total_bytes(b.dom) if b.dom.numa_cells else size_bytes(b.dom.memory_value, b.dom.memory_unit,
                                                                        "<memory>")
    mib = -(-size // (1024 * 1024))  # rounded up to whole MiB, as libvirt aligns
    if mib < 1:
        raise InvalidArgument("<memory> must be at least 1 MiB")
    b.add("-m", str(mib))


def hotplugged_vcpus(root) -> int:
    """How many enabled vCPUs of the <vcpus> list are hot-pluggable: libvirt starts QEMU with
    the others on -smp and adds these with device_add before the guest runs (so that a
    restore recreates the vCPUs a setvcpus --live added, and they can be unplugged again)."""
    from vsh.core.domain import Domain

    return Domain(root).hotplugged_vcpu_count()


def smp(b: Builder) -> None:
    """<vcpu> and <cpu><topology>: the -smp option."""
    dom = b.dom
    vcpu = dom.raw("vcpus")
    maxc = number(vcpu.strip() if vcpu is not None else None, "<vcpu>", 1)
    cur = number(dom.raw("vcpu_current"), "<vcpu current>", maxc)
    if maxc < 1 or not 1 <= cur <= maxc:
        raise InvalidArgument("<vcpu>: need 1 <= current (%d) <= maximum (%d)" % (cur, maxc))
    if dom.has_topology:
        s = number(dom.raw("cpu_sockets"), "<topology sockets>", 1)
        d = number(dom.raw("cpu_dies"), "<topology dies>", 1)
        c = number(dom.raw("cpu_cores"), "<topology cores>", 1)
        t = number(dom.raw("cpu_threads"), "<topology threads>", 1)
        if s * d * c * t != maxc:
            raise InvalidArgument("CPU topology %d sockets x %d dies x %d cores x %d threads = %d "
                                  "does not match <vcpu> %d" % (s, d, c, t, s * d * c * t, maxc))
    else:
        s, d, c, t = maxc, 1, 1, 1
    hot = dom.hotplugged_vcpu_count()
    if hot:
        cur -= hot          # enabled hot-pluggable vCPUs are added with device_add before they run
        if cur < 1:
            raise InvalidArgument("<vcpus>: vCPU 0 must be enabled and not hot-pluggable")
    pairs = [("maxcpus", maxc), ("sockets", s)]
    if d != 1:
        pairs.append(("dies", d))
    pairs += [("cores", c), ("threads", t)]
    b.add("-smp", opts(str(cur), *pairs))


def iothread_objects(b: Builder) -> None:
    """<iothreads>: one iothread object each (devices refer to them by number)."""
    n = (b.dom.iothreads or "").strip()
    b.iothreads = number(n, "<iothreads>", 0) if n else 0
    b.iothread_ids = b.dom.iothread_ids
    for i in b.iothread_ids:
        io = b.dom.iothread(i)
        props = [("id", "iothread%d" % i)]
        if io is not None:
            for attr, prop, what in (("thread_pool_min", "thread-pool-min", "<iothread thread_pool_min>"),
                                     ("thread_pool_max", "thread-pool-max", "<iothread thread_pool_max>"),
                                     ("poll_max", "poll-max-ns", "<poll max>"),
                                     ("poll_grow", "poll-grow", "<poll grow>"),
                                     ("poll_shrink", "poll-shrink", "<poll shrink>")):
                if getattr(io, attr) is not None:
                    props.append((prop, number(getattr(io, attr), what)))
        b.add("-object", "iothread," + ",".join("%s=%s" % (k, v) for k, v in props))


def monitor(b: Builder) -> None:
    """The QMP monitor charmonitor: a socket path QEMU binds, or a listening fd vsh passes."""
    fd = b.paths.qmp_listen_fd
    if fd is not None:
        chardev = "socket,id=charmonitor,fd=%d,server=on,wait=off" % fd
    else:
        check_socket_path(b.paths.qmp_socket, "QMP monitor")
        chardev = "socket,id=charmonitor,path=%s,server=on,wait=off" % esc(b.paths.qmp_socket)
    b.add("-chardev", chardev, "-mon", "chardev=charmonitor,id=monitor,mode=control")


def clock(b: Builder) -> None:
    """<clock>: -rtc base and drift fix, and KVM's PIT tick policy."""
    offset = given(b.dom.clock_offset, "utc")
    if offset not in ("utc", "localtime"):
        raise Unsupported("<clock offset='%s'> is not supported yet (utc or localtime)" % offset)
    pairs: list[tuple[str, object]] = []
    timers = b.dom.timers
    for t in timers:
        if t.name == "rtc" and t.tickpolicy == "catchup":
            pairs.append(("driftfix", "slew"))
    b.add("-rtc", opts("base=" + offset, *pairs))
    if b.kvm:
        for t in timers:
            if t.name == "pit" and t.tickpolicy in ("delay", "discard"):
                b.add("-global", "kvm-pit.lost_tick_policy=%s" % t.tickpolicy)


def actions(b: Builder) -> None:
    """<on_poweroff>, <on_reboot>, <on_crash> and the watchdog action: the -action option."""
    poweroff, reboot, crash = (ACTION_KINDS.get(v, v) for v in (stated(b.dom.on_poweroff, "destroy"),
                                                       stated(b.dom.on_reboot, "restart"),
                                                       stated(b.dom.on_crash, "destroy")))
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
    wd = b.dom.devices("watchdog")
    if wd:
        actions = {given(w.action, "reset") for w in wd}
        if len(actions) > 1:
            raise Unsupported("watchdogs with different actions (%s) are not supported"
                              % ", ".join(sorted(actions)))
        act = actions.pop()
        qemu_act = {"reset": "reset", "shutdown": "shutdown", "poweroff": "poweroff", "pause": "pause",
                    "none": "none", "inject-nmi": "inject-nmi"}.get(act)
        if qemu_act is None:
            raise Unsupported("watchdog action '%s' is not supported" % act)
        pairs.append(("watchdog", qemu_act))
    b.add("-action", ",".join("%s=%s" % p for p in pairs))
