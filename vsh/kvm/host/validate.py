"""The host reports that are lists: ``virsh nodeinfo`` and ``virt-host-validate``'s QEMU section."""

from __future__ import annotations

import os

from vsh.kvm.host.hardware import read_text
from vsh.kvm.host.qemu import QEMU_DIRS, QEMU_NAME
from vsh.kvm.host.records import HostInfo


def nodeinfo(host: HostInfo) -> dict:
    """virsh nodeinfo's fields (sockets are per NUMA cell, as libvirt counts them)."""
    cells = max(1, len(host.numa_cells))
    sockets = host.sockets // cells if host.sockets % cells == 0 and host.sockets >= cells else host.sockets
    return {
        "CPU model": host.arch,
        "CPU(s)": host.cpus,
        "CPU frequency": host.mhz,
        "CPU socket(s)": max(1, sockets),
        "Core(s) per socket": host.cores_per_socket,
        "Thread(s) per core": host.threads_per_core,
        "NUMA cell(s)": cells,
        "Memory size": host.memory_kib,
    }


def cgroup_controllers(sysfs: str = "/sys") -> tuple[int, set[str]] | None:
    """(cgroup version, controllers) of the host's cgroup mount, or None."""
    root = os.path.join(sysfs, "fs/cgroup")
    v2 = read_text(os.path.join(root, "cgroup.controllers"))
    if v2:
        return 2, set(v2.split())
    try:
        names = os.listdir(root)
    except OSError:
        return None
    return 1, {part for n in names for part in n.split(",")}


def host_validate(host: HostInfo, sysfs: str = "/sys", proc: str = "/proc") -> list[tuple[str, str, str]]:
    """virt-host-validate's QEMU section: (check, 'PASS'|'WARN'|'FAIL', reason)."""
    res: list[tuple[str, str, str]] = []

    def add(check: str, verdict: str, reason: str = "") -> None:
        res.append(("QEMU: " + check, verdict, reason))

    if host.qemu_path:
        add("Checking for %s" % QEMU_NAME, "PASS", "%s %s" % (host.qemu_path, host.qemu_version))
    else:
        add("Checking for %s" % QEMU_NAME, "FAIL",
            "not found in $PATH, %s; install the qemu-system-x86 package" % ", ".join(QEMU_DIRS))
    flags = set(host.cpu_flags)
    if flags & {"vmx", "svm"}:
        add("Checking for hardware virtualization", "PASS", "")
    else:
        add("Checking for hardware virtualization", "WARN",
            "the CPU shows neither vmx nor svm; only emulated (TCG) or paravirtual KVM is possible")
    k = host.kvm
    if k.present:
        add("Checking if device /dev/kvm exists", "PASS", "")
        if k.accessible:
            add("Checking if device /dev/kvm is accessible", "PASS", "")
        else:
            add("Checking if device /dev/kvm is accessible", "FAIL", k.reason)
    else:
        add("Checking if device /dev/kvm exists", "WARN" if not flags & {"vmx", "svm"} else "FAIL",
            "load the kvm_intel or kvm_amd module and enable virtualization in the firmware")
    if k.accessible:
        if k.usable:
            add("Checking if KVM can run an ordinary guest", "PASS", k.reason)
        elif not k.decided:
            add("Checking if KVM can run an ordinary guest", "WARN", k.reason)
        else:
            add("Checking if KVM can run an ordinary guest", "FAIL",
                k.reason + "; domains need type='qemu' (TCG)")
        if k.usable:
            add("Checking if KVM accepts the host CPU model", "PASS" if k.host_cpu_usable else "WARN",
                k.host_cpu_reason)
    if host.tcg:
        add("Checking for TCG (emulation) support", "PASS", "")
    elif host.qemu_path:
        add("Checking for TCG (emulation) support", "FAIL",
            "the test guest did not run under TCG" if "tcg" in host.accelerators
            else "this QEMU has no TCG accelerator")
    for dev, what in (("/dev/vhost-net", "vhost-net"), ("/dev/net/tun", "tun")):
        if os.path.exists(dev):
            add("Checking if device %s exists" % dev, "PASS", "")
        else:
            add("Checking if device %s exists" % dev, "WARN",
                "load the %s module (needed only for bridged networking)" % what)
    cg = cgroup_controllers(sysfs)
    for c in ("cpu", "cpuacct", "cpuset", "memory", "devices", "blkio"):
        name = "Checking for cgroup '%s' controller support" % c
        if cg is None:
            add(name, "WARN", "no cgroup filesystem at /sys/fs/cgroup (vsh does not need one)")
            continue
        version, ctrls = cg
        if version == 2:
            # v2 folds cpuacct into cpu, blkio into io, and does devices through BPF
            want = {"cpuacct": "cpu", "blkio": "io"}.get(c, c)
            ok = c == "devices" or want in ctrls
        else:
            ok = c in ctrls
        add(name, "PASS" if ok else "WARN",
            "" if ok else "controller not mounted (vsh does not use cgroups; resource tuning is ignored)")
    if host.iommu_groups:
        add("Checking for device assignment IOMMU support", "PASS", "")
        add("Checking if IOMMU is enabled by kernel", "PASS", "")
    else:
        dmar = os.path.isdir(os.path.join(sysfs, "class/iommu")) and os.listdir(os.path.join(sysfs, "class/iommu"))
        add("Checking for device assignment IOMMU support",
            "PASS" if dmar else "WARN", "" if dmar else "no IOMMU found; <hostdev> PCI passthrough is refused")
        hint = "intel_iommu=on" if host.cpu_vendor == "GenuineIntel" else "amd_iommu=on"
        add("Checking if IOMMU is enabled by kernel", "WARN",
            "no IOMMU groups in /sys/kernel/iommu_groups; add %s to the kernel command line" % hint)
    sec = flags & {"sev", "sev_es", "tdx_guest"}
    add("Checking for secure guest support", "WARN",
        "vsh does not support secure guests" if sec else "this platform has no secure guest support")
    return res
