"""Virtual networks (virsh's "network" group) through ``ctx.conn.networks`` (vsh.api.networks).

Every connection has a network ``default`` (NAT, DHCP, marked autostart), defined
the first time its networks are used, on the first free 192.168.x.0/24 from 122 up.
Starting a network creates a Linux bridge, its nftables rules and a dnsmasq for
DHCP and DNS; that needs root (CAP_NET_ADMIN). Domains join a network with
``<interface type='network'><source network='NAME'/></interface>``.
"""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, VshError
from vsh.core.escape import escape
from vsh.core.output import KeyValue, Message, Table, Text
from vsh.registry import Opt, command

NETWORK = Opt("network", kind="network", required=True, positional=True, help="network name or uuid")
_YES_NO = {True: "yes", False: "no"}


def _read(file: str) -> bytes:
    from vsh.core.inputfile import read_input_file

    return read_input_file(file)


@command("net-define", group="network", summary="define an inactive persistent virtual network from an XML file",
         opts=[Opt("file", kind="file", required=True, positional=True,
                   help="file containing an XML network description"),
               Opt("validate", kind="bool", help="validate the XML (vsh always checks it)")],
         mutating=True, examples=("net-define net1.xml",),
         description="Define a network from libvirt's <network> XML. vsh fills in what libvirt\n"
                     "fills in (a UUID, a virbrN bridge name, a bridge MAC) and refuses elements it\n"
                     "would not honour. The same name and UUID redefine a network; a running network\n"
                     "keeps its old configuration until it is restarted.")
def net_define(ctx, file, validate=False):
    try:
        net = ctx.conn.networks.define_xml(_read(file))
    except VshError as err:
        raise err.with_context(f"Failed to define network from {file}") from None
    return Message(f"Network {net.name} defined from {file}", json_data=net.info())


@command("net-create", group="network", summary="create a network from an XML file",
         opts=[Opt("file", kind="file", required=True, positional=True,
                   help="file containing an XML network description"),
               Opt("validate", kind="bool", help="validate the XML (vsh always checks it)")],
         mutating=True, examples=("net-create net1.xml",),
         description="Start a transient network: it is gone once destroyed.")
def net_create(ctx, file, validate=False):
    try:
        net = ctx.conn.networks.create_xml(_read(file))
    except VshError as err:
        raise err.with_context(f"Failed to create network from {file}") from None
    return Message(f"Network {net.name} created from {file}", json_data=net.info())


@command("net-start", group="network", summary="start a (previously defined) inactive network",
         opts=[NETWORK], mutating=True, examples=("net-start default",),
         description="Create the network's bridge, firewall rules and dnsmasq (needs root), and\n"
                     "plug the taps of running domains on this network into the bridge.")
def net_start(ctx, network):
    net = ctx.conn.networks.lookup(network)
    try:
        net.start()
    except VshError as err:
        raise err.with_context(f"Failed to start network {net.name}") from None
    return Message(f"Network {net.name} started", json_data=net.info())


@command("net-destroy", group="network", summary="destroy (stop) a network",
         opts=[NETWORK], mutating=True, examples=("net-destroy default",),
         description="Stop dnsmasq and remove the network's firewall rules and bridge. Running\n"
                     "domains keep their taps but lose the network until it is started again\n"
                     "(net-start plugs them back in). A transient network is gone afterwards.")
def net_destroy(ctx, network):
    net = ctx.conn.networks.lookup(network)
    try:
        net.destroy()
    except VshError as err:
        raise err.with_context(f"Failed to destroy network {net.name}") from None
    return Message(f"Network {net.name} destroyed", json_data=net.info())


@command("net-undefine", group="network", summary="undefine a persistent network",
         opts=[NETWORK], mutating=True, examples=("net-undefine net1",),
         description="Remove a network's definition. A running network keeps running, as a\n"
                     "transient one, until it is destroyed.")
def net_undefine(ctx, network):
    net = ctx.conn.networks.lookup(network)
    try:
        net.undefine()
    except VshError as err:
        raise err.with_context(f"Failed to undefine network {net.name}") from None
    return Message(f"Network {net.name} has been undefined")


@command("net-autostart", group="network", summary="autostart a network",
         opts=[NETWORK, Opt("disable", kind="bool", help="disable autostarting")], mutating=True,
         examples=("net-autostart default", "net-autostart default --disable"),
         description="There is no daemon: a network marked autostart is started by the first\n"
                     "'vsh start' of a domain that uses it after the host boots.")
def net_autostart(ctx, network, disable=False):
    net = ctx.conn.networks.lookup(network)
    try:
        net.set_autostart(not disable)
    except VshError as err:
        verb = "unmark" if disable else "mark"
        raise err.with_context(f"failed to {verb} network {net.name} as autostarted") from None
    if disable:
        return Message(f"Network {net.name} unmarked as autostarted")
    return Message(f"Network {net.name} marked as autostarted")


@command("net-list", group="network", summary="list networks",
         opts=[Opt("inactive", kind="bool", help="list inactive networks"),
               Opt("all", kind="bool", help="list inactive & active networks"),
               Opt("persistent", kind="bool", help="list persistent networks"),
               Opt("transient", kind="bool", help="list transient networks"),
               Opt("autostart", kind="bool", help="list networks with autostart enabled"),
               Opt("no-autostart", kind="bool", help="list networks with autostart disabled"),
               Opt("uuid", kind="bool", help="list uuid's only"),
               Opt("name", kind="bool", help="list network names only"),
               Opt("table", kind="bool", help="list table (default)")],
         exclusive=(("all", "inactive"), ("table", "name"), ("table", "uuid")),
         examples=("net-list", "net-list --all", "net-list --name"))
def net_list(ctx, inactive=False, all=False, persistent=False, transient=False, autostart=False,
             no_autostart=False, uuid=False, name=False, table=False):
    rows = ctx.conn.networks.list(active=None if all else not inactive,
                                  persistent=persistent if persistent != transient else None,
                                  autostart=autostart if autostart != no_autostart else None)
    if uuid or name:
        lines = []
        for net in rows:
            if uuid and name:
                lines.append(f"{net['uuid']}  {escape(net['name'])}\n")
            else:
                lines.append(f"{net['uuid'] if uuid else escape(net['name'])}\n")
        return Text("".join(lines), json_data=rows)
    cells = [[escape(n["name"]), "active" if n["active"] else "inactive", _YES_NO[n["autostart"]],
              _YES_NO[n["persistent"]]] for n in rows]
    return Table(["Name", "State", "Autostart", "Persistent"], cells, json_data=rows)


@command("net-info", group="network", summary="network information", opts=[NETWORK],
         examples=("net-info default",))
def net_info(ctx, network):
    info = ctx.conn.networks.lookup(network).info()
    pairs = [("Name", escape(info["name"])), ("UUID", info["uuid"]), ("Active", _YES_NO[info["active"]]),
             ("Persistent", _YES_NO[info["persistent"]]), ("Autostart", _YES_NO[info["autostart"]])]
    if info["bridge"]:
        pairs.append(("Bridge", info["bridge"]))
    return KeyValue(pairs, json_data=info)


@command("net-dumpxml", group="network", summary="network information in XML",
         opts=[NETWORK, Opt("inactive", kind="bool", help="show inactive defined XML"),
               Opt("xpath", kind="xpath", help="xpath expression to filter the XML document"),
               Opt("wrap", kind="bool", help="wrap xpath results in an common root element")],
         examples=("net-dumpxml default", "net-dumpxml default --xpath //ip/@address"))
def net_dumpxml(ctx, network, inactive=False, xpath=None, wrap=False):
    from vsh.ui.xmlout import xml_output

    return xml_output(ctx.conn.networks.lookup(network).xml(inactive=inactive), xpath, wrap, "network")


@command("net-uuid", group="network", summary="convert a network name to network UUID",
         opts=[Opt("network", kind="network", required=True, positional=True, help="network name")])
def net_uuid(ctx, network):
    net = ctx.conn.networks.lookup_by_name(network)
    return Text(f"{net.uuid}\n", json_data={"uuid": net.uuid})


@command("net-name", group="network", summary="convert a network UUID to network name",
         opts=[Opt("network", kind="network", required=True, positional=True, help="network uuid")])
def net_name(ctx, network):
    net = ctx.conn.networks.lookup_by_uuid(network)
    return Text(f"{net.name}\n", json_data={"name": net.name})


@command("net-edit", group="network", summary="edit XML configuration for a network", opts=[NETWORK],
         mutating=True, examples=("net-edit default", "EDITOR=nano vsh net-edit default"),
         description="Open the network's persistent XML in $VISUAL or $EDITOR (default vi) and define\n"
                     "the result. An invalid result leaves the definition unchanged.")
def net_edit(ctx, network):
    import tempfile

    from vsh.ui.editor import run_editor

    net = ctx.conn.networks.lookup(network)
    if not net.info()["persistent"]:
        raise VshError(f"Requested operation is not valid: network '{net.name}' is transient")
    before = net.xml(inactive=True)
    fd, path = tempfile.mkstemp(prefix="vsh", suffix=".xml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(before)
        run_editor(path, unchanged=f"the configuration of network '{net.name}'")
        with open(path, "rb") as fh:
            data = fh.read()
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    if data == before.encode("utf-8"):
        return Message(f"Network {net.name} XML configuration not changed.")
    try:
        net.redefine(data)
    except VshError as err:
        failed = err.with_context("Failed.")
        failed.hint = err.hint or f"the configuration of network '{net.name}' is unchanged"
        raise failed from None
    return Message(f"Network {net.name} XML configuration edited.")


@command("net-dhcp-leases", group="network", summary="print lease info for a given network",
         opts=[NETWORK, Opt("mac", help="MAC address")],
         examples=("net-dhcp-leases default", "net-dhcp-leases default --mac 52:54:00:12:34:56"),
         description="The leases dnsmasq handed out on an active network (expired ones are left out).")
def net_dhcp_leases(ctx, network, mac=None):
    import re
    import time

    net = ctx.conn.networks.lookup(network)
    if mac is not None and not re.fullmatch(r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", mac):
        raise InvalidArgument(f"invalid MAC address '{mac}'")
    data = net.dhcp_leases(mac)
    rows = []
    for lease in data:
        expiry = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lease["expiry"])) if lease["expiry"] else "-"
        rows.append([expiry, lease["mac"], lease["type"], f"{lease['ip']}/{lease['prefix']}",
                     escape(lease["hostname"] or "-"), escape(lease["clientid"] or "-")])
    return Table(["Expiry Time", "MAC address", "Protocol", "IP address", "Hostname", "Client ID or DUID"],
                 rows, json_data=data)


@command("net-update", group="network", summary="update parts of an existing network's configuration",
         opts=[NETWORK,
               Opt("command", required=True, positional=True,
                   help="type of update (add-first, add-last (add), delete, or modify)"),
               Opt("section", required=True, positional=True,
                   help="which section of network configuration to update (ip-dhcp-host, ip-dhcp-range, dns-host)"),
               Opt("xml", required=True, positional=True,
                   help="name of file containing xml (or, if it starts with '<', the complete xml element "
                        "itself) to add/modify, or to be matched for search"),
               Opt("parent-index", kind="int", help="which parent object to search through"),
               Opt("config", kind="bool", help="affect next network startup"),
               Opt("live", kind="bool", help="affect running network"),
               Opt("current", kind="bool", help="affect current state of network")],
         exclusive=(("current", "live"), ("current", "config")), mutating=True,
         examples=("net-update default add ip-dhcp-host \"<host mac='52:54:00:00:00:01' ip='192.168.122.5'/>\" "
                   "--live --config",
                   "net-update default delete dns-host \"<host ip='192.168.122.7'/>\""),
         description="Add, delete or modify one DHCP host, DHCP range or DNS host of a network, with\n"
                     "libvirt's matching rules. --live changes the running network (its dnsmasq\n"
                     "restarts on the new configuration), --config its definition; with neither, the\n"
                     "running network if it is active, else the definition.")
def net_update(ctx, network, command, section, xml, parent_index=None, config=False, live=False,
               current=False):
    text = xml.encode("utf-8") if xml.lstrip().startswith("<") else _read(xml)
    net = ctx.conn.networks.lookup(network)
    try:
        done = net.update(command, section, text, parent_index=parent_index, live=live, config=config)
    except VshError as err:
        if err.lines[0].startswith("unrecognized "):
            raise
        raise err.with_context(f"Failed to update network {net.name}") from None
    if done["config"] and done["live"]:
        what = "persistent config and live state"
    else:
        what = "live state" if done["live"] else "persistent config"
    return Message(f"Updated network {net.name} {what}", newline=False, json_data={"network": net.name, **done})
