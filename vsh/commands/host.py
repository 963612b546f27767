"""Host and hypervisor: nodeinfo, capabilities, domcapabilities, host-validate, domxml-to-native."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, VshError
from vsh.core.output import KeyValue, Text
from vsh.registry import Opt, command


@command("nodeinfo", group="host", summary="node information")
def nodeinfo(ctx):
    info = ctx.conn.host.node_info()
    pairs = []
    for key in ("CPU model", "CPU(s)", "CPU frequency", "CPU socket(s)", "Core(s) per socket",
                "Thread(s) per core", "NUMA cell(s)", "Memory size"):
        value = info.get(key)
        if key == "CPU frequency":
            value = f"{value} MHz"
        elif key == "Memory size":
            value = f"{value} KiB"
        pairs.append((key, value))
    return KeyValue(pairs, width=20, json_data=info)


@command("freecell", group="host", summary="NUMA free memory",
         opts=[Opt("cellno", kind="int", help="NUMA cell number"),
               Opt("all", kind="bool", help="show free memory for all NUMA cells")],
         exclusive=(("all", "cellno"),), examples=("freecell", "freecell --all", "freecell --cellno 0"))
def freecell(ctx, cellno=None, all=False):
    host = ctx.conn.host
    if all:
        cells = [(cell, host.free_memory(cell) // 1024) for cell in host.numa_cells()]
        total = sum(kib for _cell, kib in cells)
        text = "".join(f"{cell:5d}: {kib:10d} KiB\n" for cell, kib in cells)
        text += "-" * 20 + f"\n{'Total':>5}: {total:10d} KiB\n"
        return Text(text, json_data={"cells": [{"cell": c, "free_kib": k} for c, k in cells], "total_kib": total})
    if cellno is not None:
        kib = host.free_memory(cellno) // 1024
        return Text(f"{cellno}: {kib} KiB\n", json_data={"cell": cellno, "free_kib": kib})
    kib = host.free_memory() // 1024
    return Text(f"Total: {kib} KiB\n", json_data={"total_kib": kib})


@command("sysinfo", group="host", summary="print the hypervisor sysinfo",
         description="The host's SMBIOS facts (BIOS, system) as libvirt's <sysinfo> XML.")
def sysinfo(ctx):
    text = ctx.conn.host.sysinfo_xml()
    return Text(text, json_data={"xml": text})


@command("capabilities", group="host", summary="capabilities",
         opts=[Opt("xpath", kind="xpath", help="print only nodes matching this XPath expression"),
               Opt("wrap", kind="bool", help="wrap xpath results in a common root element")])
def capabilities(ctx, xpath=None, wrap=False):
    text = ctx.conn.host.capabilities_xml()
    if xpath:
        from vsh.ui.xmlout import xpath_select
        from vsh.core.xml import parse

        return Text(xpath_select(parse(text, "capabilities", None), xpath, wrap))
    return Text(text + "\n", json_data={"xml": text})       # virsh prints the document and a newline


@command("domcapabilities", group="host", summary="domain capabilities",
         opts=[Opt("virttype", kind="enum", help="virtualization type", choices=("kvm", "qemu")),
               Opt("emulatorbin", kind="file", help="path to emulator binary"),
               Opt("arch", help="domain architecture (x86_64)"),
               Opt("machine", help="machine type"),
               Opt("xpath", kind="xpath", help="print only nodes matching this XPath expression"),
               Opt("wrap", kind="bool", help="wrap xpath results in a common root element")])
def domcapabilities(ctx, virttype=None, emulatorbin=None, arch=None, machine=None, xpath=None, wrap=False):
    text = ctx.conn.host.domain_capabilities_xml(virttype=virttype, emulatorbin=emulatorbin, arch=arch,
                                                 machine=machine)
    if xpath:
        from vsh.ui.xmlout import xpath_select
        from vsh.core.xml import parse

        return Text(xpath_select(parse(text, "domcapabilities", None), xpath, wrap))
    return Text(text, json_data={"xml": text})


@command("host-validate", group="host", summary="validate the host for running QEMU guests",
         opts=[Opt("refresh", kind="bool", help="probe again instead of using the cached verdict")],
         description="Like virt-host-validate: one line per check with PASS, WARN or FAIL and the reason.\n"
                     "The exit status is 1 when a check fails.")
def host_validate(ctx, refresh=False):
    data = ctx.conn.host.validate(refresh)
    lines = []
    for check in data:
        line = f"{check['check']:<70}: {check['result']}"
        if check["reason"] and check["result"] != "PASS":
            line += f" ({check['reason']})"
        lines.append(line + "\n")
    failed = any(check["result"] == "FAIL" for check in data)
    out = Text("".join(lines), json_data=data)
    if failed and not ctx.json:
        ctx.out.write(out.text(ctx.quiet))
        raise VshError("host validation found failures (see FAIL lines above)")
    return out


@command("domxml-to-native", group="domain", summary="convert domain XML to a native QEMU command line",
         opts=[Opt("format", kind="enum", required=True, positional=True, choices=("qemu-argv",), help="target config data type format"),
               Opt("domain", kind="domain", help="domain name, id or uuid"),
               Opt("xml", kind="file", positional=True, help="XML file with domain data")],
         examples=("domxml-to-native qemu-argv --domain vm1", "domxml-to-native qemu-argv vm1.xml"))
def domxml_to_native(ctx, format, domain=None, xml=None):
    if (domain is None) == (xml is None):
        raise InvalidArgument("exactly one of --domain and --xml is required")
    text = None
    if xml is not None:
        from vsh.core.inputfile import read_input_file

        text = read_input_file(xml).decode("utf-8", "surrogateescape")
    argv = ctx.conn.host.domxml_to_native(format, xml=text, domain=domain)
    import shlex

    return Text(" ".join(shlex.quote(a) for a in argv) + "\n", json_data={"argv": argv})


@command("domxml-from-native", group="domain", summary="Convert native config to domain XML",
         opts=[Opt("format", kind="enum", required=True, positional=True, choices=("qemu-argv",),
                   help="source config data format"),
               Opt("config", kind="file", required=True, positional=True, help="config data file to import from")],
         examples=("domxml-from-native qemu-argv vm1.args",),
         description="Read a QEMU command line (as a script or ps shows it) and print the domain XML it\n"
                     "describes: name, memory, vCPUs, machine, disks, NICs, kernel, serial ports.")
def domxml_from_native(ctx, format, config):
    from vsh.core.inputfile import read_input_file

    xml = ctx.conn.host.domxml_from_native(format, read_input_file(config).decode("utf-8", "surrogateescape"))
    return Text(xml, json_data={"xml": xml})
