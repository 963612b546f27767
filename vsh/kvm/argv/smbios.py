"""SMBIOS tables from ``<sysinfo type='smbios'>``, used when ``<os><smbios mode='sysinfo'/>``
asks for them (libvirt's rule; without it QEMU's own tables stay)."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.options import given, opts

#: <sysinfo> block -> (SMBIOS table type, the entry names QEMU takes for it).
TABLES = (("bios", 0, ("vendor", "version", "date", "release")),
          ("system", 1, ("manufacturer", "product", "version", "serial", "uuid", "sku", "family")),
          ("baseBoard", 2, ("manufacturer", "product", "version", "serial", "asset", "location")),
          ("chassis", 3, ("manufacturer", "version", "serial", "asset", "sku")))


def smbios(b: Builder) -> None:
    """-smbios options for <os><smbios mode='sysinfo'/> (mode 'emulate' adds none)."""
    mode = given(b.dom.os_smbios_mode, "emulate")
    if mode == "emulate":
        return
    if mode != "sysinfo":
        raise Unsupported("<smbios mode='%s'> is not supported (emulate, sysinfo): vsh does not copy the "
                          "host's SMBIOS tables into a guest" % mode)
    info = b.dom.smbios_sysinfo
    if info is None:
        raise InvalidArgument("<smbios mode='sysinfo'> needs a <sysinfo type='smbios'>")
    for block, table, names in TABLES:
        for part in info.blocks(block):
            pairs = []
            for name, value in part:
                if name not in names:
                    raise Unsupported("<sysinfo><%s><entry name='%s'> is not supported (%s)"
                                      % (block, name, ", ".join(names)))
                if name == "uuid" and b.dom.uuid and value.replace("-", "").lower() != \
                        b.dom.uuid.replace("-", "").lower():
                    raise InvalidArgument("UUID mismatch between <uuid> and <sysinfo>")
                pairs.append((name, value))
            if pairs:
                b.add("-smbios", opts("type=%d" % table, *pairs))
    for value in info.oem_strings:
        b.add("-smbios", opts("type=11", ("value", value)))
