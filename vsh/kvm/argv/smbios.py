"""SMBIOS tables from ``<sysinfo type='smbios'>``, used when ``<os><smbios mode='sysinfo'/>``
asks for them (libvirt's rule; without it QEMU's own tables stay)."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.options import opts

#: <sysinfo> block -> (SMBIOS table type, the entry names QEMU takes for it).
TABLES = (("bios", 0, ("vendor", "version", "date", "release")),
          ("system", 1, ("manufacturer", "product", "version", "serial", "uuid", "sku", "family")),
          ("baseBoard", 2, ("manufacturer", "product", "version", "serial", "asset", "location")),
          ("chassis", 3, ("manufacturer", "version", "serial", "asset", "sku")))


def smbios(b: Builder) -> None:
    """-smbios options for <os><smbios mode='sysinfo'/> (mode 'emulate' adds none)."""
    el = b.root.find("os/smbios")
    mode = el.get("mode", "emulate") if el is not None else "emulate"
    if mode == "emulate":
        return
    if mode != "sysinfo":
        raise Unsupported("<smbios mode='%s'> is not supported (emulate, sysinfo): vsh does not copy the "
                          "host's SMBIOS tables into a guest" % mode)
    info = b.root.find("sysinfo[@type='smbios']")
    if info is None:
        raise InvalidArgument("<smbios mode='sysinfo'> needs a <sysinfo type='smbios'>")
    for block, table, names in TABLES:
        for part in info.findall(block):
            pairs = []
            for entry in part.findall("entry"):
                name = entry.get("name")
                if name not in names:
                    raise Unsupported("<sysinfo><%s><entry name='%s'> is not supported (%s)"
                                      % (block, name, ", ".join(names)))
                value = (entry.text or "").strip()
                if name == "uuid" and b.dom.uuid and value.replace("-", "").lower() != \
                        b.dom.uuid.replace("-", "").lower():
                    raise InvalidArgument("UUID mismatch between <uuid> and <sysinfo>")
                pairs.append((name, value))
            if pairs:
                b.add("-smbios", opts("type=%d" % table, *pairs))
    for entry in info.findall("oemStrings/entry"):
        b.add("-smbios", opts("type=11", ("value", (entry.text or "").strip())))
