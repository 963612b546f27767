"""Host and hypervisor: nodeinfo, capabilities, domcapabilities, host-validate, domxml-to-native."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, VshError
from vsh.core.output import KeyValue, Table, Text
from vsh.registry import Opt, command


def _host(refresh: bool = False):
    from vsh.kvm.host import probe

    return probe(refresh=refresh)


@command("nodeinfo", group="host", summary="node information")
def nodeinfo(ctx):
    from vsh.kvm.host import nodeinfo as node_facts

    info = node_facts(_host())
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


@command("capabilities", group="host", summary="capabilities",
         opts=[Opt("xpath", kind="xpath", help="print only nodes matching this XPath expression"),
               Opt("wrap", kind="bool", help="wrap xpath results in a common root element")])
def capabilities(ctx, xpath=None, wrap=False):
    from vsh.kvm.host import capabilities_xml

    text = capabilities_xml(_host())
    if xpath:
        from vsh.ui.xmlout import xpath_select
        from vsh.core.xml import parse

        return Text(xpath_select(parse(text, "capabilities", None), xpath, wrap))
    return Text(text, json_data={"xml": text})


@command("domcapabilities", group="host", summary="domain capabilities",
         opts=[Opt("virttype", kind="enum", help="virtualization type", choices=("kvm", "qemu")),
               Opt("emulatorbin", kind="file", help="path to emulator binary"),
               Opt("arch", help="domain architecture (x86_64)"),
               Opt("machine", help="machine type"),
               Opt("xpath", kind="xpath", help="print only nodes matching this XPath expression"),
               Opt("wrap", kind="bool", help="wrap xpath results in a common root element")])
def domcapabilities(ctx, virttype=None, emulatorbin=None, arch=None, machine=None, xpath=None, wrap=False):
    from vsh.kvm.host import domcapabilities_xml

    if arch not in (None, "x86_64"):
        raise InvalidArgument(f"unsupported configuration: architecture '{arch}' is not supported by this host "
                              "(vsh drives qemu-system-x86_64)")
    if virttype not in (None, "kvm", "qemu"):
        raise InvalidArgument(f"unknown virttype '{virttype}': use kvm or qemu")
    text = domcapabilities_xml(_host(), machine=machine, domtype=virttype)
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
    from vsh.kvm.host import host_validate as checks

    results = checks(_host(refresh))
    lines = []
    failed = False
    data = []
    for text, verdict, reason in results:
        line = f"{text:<70}: {verdict}"
        if reason and verdict != "PASS":
            line += f" ({reason})"
        lines.append(line + "\n")
        data.append({"check": text, "result": verdict, "reason": reason})
        failed = failed or verdict == "FAIL"
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
    from vsh.core.domain import Domain
    from vsh.core.store import read_input_file

    if format != "qemu-argv":
        raise InvalidArgument(f"unsupported config type {format}")
    if (domain is None) == (xml is None):
        raise InvalidArgument("exactly one of --domain and --xml is required")
    if domain is not None:
        ref = ctx.store.get(domain)
        dom = ctx.store.load(ref, inactive=True)
        name = ref.name
    else:
        dom = Domain.parse(read_input_file(xml))
        dom.fill_defaults()
        dom.validate()
        name = dom.name
    argv = native_argv(ctx, dom, name)
    import shlex

    text = " ".join(shlex.quote(a) for a in argv) + "\n"
    return Text(text, json_data={"argv": argv})


def native_argv(ctx, dom, name: str) -> list[str]:
    """The argv vsh would run for a domain (paths in its runtime directory)."""
    from vsh.kvm.argv import RuntimePaths, build_argv

    rundir = ctx.store.runtime_dir(name)
    return build_argv(dom.node, _host(), RuntimePaths.for_rundir(rundir))
