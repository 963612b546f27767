"""Host facts libvirt's QEMU driver reads from /sys and /proc for freecell and sysinfo."""

from __future__ import annotations

import os
import re

from vsh.kvm.host.hardware import read_text

_DMI = "/sys/class/dmi/id"
# libvirt's <sysinfo type='smbios'> sections and entries, and the DMI files the kernel exports for them
_SMBIOS = (("bios", (("vendor", "bios_vendor"), ("version", "bios_version"), ("date", "bios_date"),
                     ("release", "bios_release"))),
           ("system", (("manufacturer", "sys_vendor"), ("product", "product_name"),
                       ("version", "product_version"), ("serial", "product_serial"), ("uuid", "product_uuid"),
                       ("sku", "product_sku"), ("family", "product_family"))))


def numa_cells(sysfs: str = "/sys") -> list[int]:
    """The host's NUMA cell ids (``[0]`` on a host without NUMA information)."""
    try:
        names = os.listdir(os.path.join(sysfs, "devices/system/node"))
    except OSError:
        return [0]
    return sorted(int(n[4:]) for n in names if re.fullmatch(r"node\d+", n)) or [0]


def free_memory(cell: int | None = None, sysfs: str = "/sys", proc: str = "/proc") -> int:
    """Free memory in bytes of NUMA cell ``cell``, or of all of them (MemFree, as libvirt reads it)."""
    from vsh.core.errors import InvalidArgument

    cells = numa_cells(sysfs)
    if cell is not None and cell not in cells:
        raise InvalidArgument("invalid argument: Range exceeds available cells")
    total = 0
    for number in ([cell] if cell is not None else cells):
        found = re.search(r"MemFree:\s+(\d+)\s*kB",
                          read_text(os.path.join(sysfs, f"devices/system/node/node{number}/meminfo")))
        if found is None:           # no per-cell figures: the whole host's
            found = re.search(r"MemFree:\s+(\d+)\s*kB", read_text(os.path.join(proc, "meminfo")))
            return int(found.group(1)) * 1024 if found else 0
        total += int(found.group(1)) * 1024
    return total


def sysinfo_xml(dmi: str = _DMI) -> str:
    """libvirt's ``<sysinfo type='smbios'>`` for this host, from the DMI files the kernel exports
    (those it lets this user read)."""
    from xml.sax.saxutils import escape

    out = ["<sysinfo type='smbios'>\n"]
    for section, entries in _SMBIOS:
        found = [(name, read_text(os.path.join(dmi, file)).strip()) for name, file in entries]
        found = [(name, value) for name, value in found if value]
        if found:
            out.append(f"  <{section}>\n")
            out += [f"    <entry name='{name}'>{escape(value)}</entry>\n" for name, value in found]
            out.append(f"  </{section}>\n")
    out.append("</sysinfo>\n")
    return "".join(out)
