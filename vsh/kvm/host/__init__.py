"""What this host can run: QEMU discovery and an honest KVM verdict.

``probe()`` answers three questions and caches the slow answers:

* Which QEMU?  ``qemu-system-x86_64`` from ``$PATH``, ``/usr/bin`` or
  ``/usr/libexec``; its version, machine types and CPU models come from one
  short QEMU run that answers QMP on stdin/stdout (``query-version``,
  ``query-machines``, ``query-cpu-definitions``), its accelerators from
  ``-accel help``.
* Can KVM run an ordinary guest?  See ``kvmprobe.probe_kvm`` for the steps and why
  each one proves what it proves.  ``/dev/kvm`` existing proves nothing: on a
  paravirtual nested host (``kvm_pvm``) the device opens and ``KVM_CREATE_VM``
  works, yet an ordinary guest never gets past its first exception.
* What is the host made of?  CPUs, topology, memory, NUMA cells and IOMMU
  groups are read from ``/proc`` and ``/sys`` on every call (cheap, and they
  can change); only the QEMU and KVM answers are cached.

The cache is one JSON file (``host-probe.json``, mode 0600, written
atomically) keyed by the kernel release, the loaded KVM modules, the
``/dev/kvm`` node and whether this user may open it, and the QEMU binary's
path, mtime and size; the QEMU version is stored with the entry.  A verdict
that could not be reached (the machine was too slow to run even the TCG
control guest) is never cached.

The modules: ``records`` (HostInfo and friends), ``qemu`` (finding QEMU,
reading its answers), ``hardware`` (/proc and /sys), ``kvmprobe`` (the KVM
test guest), ``cache`` (``probe()`` and its cache), ``validate`` (nodeinfo,
host-validate), ``capabilities`` (capabilities and domcapabilities XML) and ``facts`` (free
memory per NUMA cell, SMBIOS facts).

Loading this package loads nothing: each name's module is imported on first
use (:data:`LAZY`); ``probe()`` answered from its cache needs json, os, re and
time; the KVM probe (subprocess, selectors, tempfile, cffi) is loaded only when
the cache misses.
"""

from __future__ import annotations


__all__ = [
    "HostInfo",
    "KvmInfo",
    "MachineType",
    "CpuModel",
    "probe",
    "default_domain_type",
    "find_qemu",
    "host_validate",
    "capabilities_xml",
    "domcapabilities_xml",
    "nodeinfo",
    "free_memory",
    "numa_cells",
    "sysinfo_xml",
    "cache_key",
    "CACHE_FILE",
]

#: Where each name lives; a module is loaded on first use of one of its names (``vsh start``
#: never needs the reports, ``vsh define`` needs only find_qemu).
LAZY = {"probe": "cache", "cache_key": "cache", "CACHE_FILE": "cache", "find_qemu": "qemu",
        "CpuModel": "records", "HostInfo": "records", "KvmInfo": "records", "MachineType": "records",
        "default_domain_type": "records",
        "host_validate": "validate", "nodeinfo": "validate",
        "capabilities_xml": "capabilities", "domcapabilities_xml": "capabilities",
        "free_memory": "facts", "numa_cells": "facts", "sysinfo_xml": "facts"}


def __getattr__(name: str):
    """A name of :data:`LAZY`, its module imported on first use."""
    module = LAZY.get(name)
    if module is None:
        raise AttributeError("module 'vsh.kvm.host' has no attribute '%s'" % name)
    import importlib

    return getattr(importlib.import_module("vsh.kvm.host." + module), name)
