"""What the host is made of, read from ``/proc`` and ``/sys`` on every call (cheap, and it
can change): CPU model and flags, topology, memory, NUMA cells, IOMMU groups, KVM modules."""

from __future__ import annotations

import os
import re

from vsh.kvm.host.records import HostInfo


def parse_cpuinfo(text: str) -> dict:
    """Model name, vendor, flags and MHz of the first processor in /proc/cpuinfo."""
    out = {"model_name": "", "vendor": "", "flags": [], "mhz": 0, "processors": 0}
    first = True
    for line in text.splitlines():
        if not line.strip():
            first = False if out["processors"] else first
            continue
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            out["processors"] += 1
        if out["processors"] > 1:
            continue
        if key == "model name":
            out["model_name"] = value
        elif key == "vendor_id":
            out["vendor"] = value
        elif key == "flags":
            out["flags"] = value.split()
        elif key == "cpu MHz":
            try:
                out["mhz"] = int(float(value))
            except ValueError:
                pass
    return out


def read_text(path: str, default: str = "") -> str:
    """A small /proc or /sys file's text, or ``default`` when it cannot be read."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def parse_cpulist(text: str) -> list[int]:
    """The kernel's CPU list syntax (``0-3,8``) as a list of numbers."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def read_topology(sysfs: str = "/sys") -> dict:
    """CPUs, sockets, cores, threads and NUMA cells from sysfs (libvirt's nodeinfo rules)."""
    cpu_dir = os.path.join(sysfs, "devices/system/cpu")
    online = read_text(os.path.join(cpu_dir, "online")).strip()
    cpus = parse_cpulist(online) if online else list(range(os.cpu_count() or 1))
    packages: dict[int, set] = {}
    threads = 1
    for c in cpus:
        top = os.path.join(cpu_dir, "cpu%d" % c, "topology")
        try:
            pkg = int(read_text(os.path.join(top, "physical_package_id"), "0").strip() or 0)
            core = int(read_text(os.path.join(top, "core_id"), str(c)).strip() or c)
        except ValueError:
            pkg, core = 0, c
        packages.setdefault(pkg, set()).add(core)
        sib = read_text(os.path.join(top, "thread_siblings_list")).strip()
        if sib:
            threads = max(threads, len(parse_cpulist(sib)))
    cells = []
    node_dir = os.path.join(sysfs, "devices/system/node")
    try:
        names = sorted((n for n in os.listdir(node_dir) if re.fullmatch(r"node\d+", n)),
                       key=lambda n: int(n[4:]))
    except OSError:
        names = []
    for n in names:
        cpulist = parse_cpulist(read_text(os.path.join(node_dir, n, "cpulist")).strip())
        mem = 0
        m = re.search(r"MemTotal:\s+(\d+)\s*kB", read_text(os.path.join(node_dir, n, "meminfo")))
        if m:
            mem = int(m.group(1))
        cells.append({"id": int(n[4:]), "cpus": cpulist, "memory_kib": mem})
    sockets = max(1, len(packages))
    cores = max(1, max((len(v) for v in packages.values()), default=1))
    ncpu = len(cpus) or 1
    if sockets * cores * threads != ncpu:
        # libvirt's fallback when the topology does not multiply out
        sockets, cores, threads = 1, ncpu, 1
    return {"cpus": ncpu, "cpu_ids": cpus, "sockets": sockets, "cores": cores,
            "threads": threads, "cells": cells}


def memtotal_kib(meminfo: str) -> int:
    """MemTotal from a meminfo file's text, in KiB."""
    m = re.search(r"MemTotal:\s+(\d+)\s*kB", meminfo)
    return int(m.group(1)) if m else 0


def has_iommu_groups(sysfs: str = "/sys") -> bool:
    """Whether the kernel made IOMMU groups (VFIO needs them)."""
    try:
        return any(True for _ in os.scandir(os.path.join(sysfs, "kernel/iommu_groups")))
    except OSError:
        return False


def kvm_modules(sysfs: str = "/sys") -> list[str]:
    """The loaded kvm modules (kvm, kvm_intel, kvm_amd, kvm_pvm...)."""
    try:
        return sorted(m for m in os.listdir(os.path.join(sysfs, "module"))
                      if m == "kvm" or m.startswith("kvm_"))
    except OSError:
        return []


def fill_hardware(host: HostInfo, proc: str = "/proc", sysfs: str = "/sys") -> None:
    """Fill ``host`` with what /proc and /sys say now."""
    uts = os.uname()
    host.arch = uts.machine or "x86_64"
    host.kernel_release = uts.release
    ci = parse_cpuinfo(read_text(os.path.join(proc, "cpuinfo")))
    host.cpu_model_name = ci["model_name"]
    host.cpu_vendor = ci["vendor"]
    host.cpu_flags = ci["flags"]
    host.mhz = ci["mhz"]
    topo = read_topology(sysfs)
    host.cpus = topo["cpus"]
    host.sockets = topo["sockets"]
    host.cores_per_socket = topo["cores"]
    host.threads_per_core = topo["threads"]
    host.numa_cells = topo["cells"]
    host.memory_kib = memtotal_kib(read_text(os.path.join(proc, "meminfo")))
    if not host.numa_cells:
        host.numa_cells = [{"id": 0, "cpus": topo["cpu_ids"], "memory_kib": host.memory_kib}]
    host.iommu_groups = has_iommu_groups(sysfs)
