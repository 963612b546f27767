"""net-update: one change to one section of a network definition, with libvirt's matching
rules and messages (``virNetworkDefUpdateSection``). The result is checked like any
definition, so an update cannot make a network vsh would refuse."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, OperationInvalid, Unsupported, VshError, XMLError

COMMANDS = {"add": "add-last", "add-last": "add-last", "add-first": "add-first", "delete": "delete",
            "modify": "modify"}
#: virsh's section names; the value is the element an update of that section carries
SECTIONS = {"bridge": "bridge", "domain": "domain", "ip": "ip", "ip-dhcp-host": "host",
            "ip-dhcp-range": "range", "forward": "forward", "forward-interface": "interface",
            "forward-pf": "pf", "portgroup": "portgroup", "dns-host": "host", "dns-txt": "txt",
            "dns-srv": "srv"}
#: what libvirt cannot update at all ("can't update 'X' section")
WHOLE_SECTIONS = ("bridge", "domain", "ip", "forward")
#: sections of elements vsh refuses in any definition
REFUSED = {"forward-interface": "<forward><interface>", "forward-pf": "<forward><pf>",
           "portgroup": "<network><portgroup>", "dns-txt": "<dns><txt>", "dns-srv": "<dns><srv>"}


def check_command(command: str) -> str:
    if command not in COMMANDS:
        raise InvalidArgument(f"unrecognized command name '{command}'")
    return COMMANDS[command]


def check_section(section: str) -> None:
    if section not in SECTIONS:
        raise InvalidArgument(f"unrecognized section name '{section}'")


def updated(net, command: str, section: str, xml, parent_index: int | None = None):
    """A new :class:`Network` that is ``net`` with the update applied (``net`` is unchanged)."""
    from vsh.core.networks.model import parse_network_xml
    from vsh.core.xml import parse, serialize

    command = check_command(command)
    check_section(section)
    if section in WHOLE_SECTIONS:
        raise Unsupported(f"this function is not supported by the connection driver: can't update '{section}' "
                          f"section of network '{net.name}'")
    if section in REFUSED:
        raise Unsupported(f"unsupported configuration: {REFUSED[section]} is not supported by vsh")
    el = parse(xml, "network update", None)
    if el.tag != SECTIONS[section]:
        raise XMLError(f"XML error: unexpected element <{el.tag}>, expecting <{SECTIONS[section]}>, while updating "
                       f"network '{net.name}'")
    new = net.copy()
    root = new.root
    if section == "dns-host":
        _dns_host(root, el, command, net.name)
    else:
        ips = root.findall("ip")
        index = parent_index or 0
        if index >= len(ips):
            what = "dhcp host" if section == "ip-dhcp-host" else "dhcp range"
            raise OperationInvalid(f"Requested operation is not valid: couldn't update {what} entry - no <ip> "
                                   f"element found at index {index} in network '{net.name}'")
        dhcp = ips[index].find("dhcp")
        if dhcp is None:
            from vsh.core.lxmlload import etree

            dhcp = etree.SubElement(ips[index], "dhcp")
        if section == "ip-dhcp-host":
            _dhcp_host(dhcp, el, command, net.name)
        else:
            _dhcp_range(dhcp, el, command, net.name)
        if len(dhcp) == 0:
            ips[index].remove(dhcp)
    try:
        return parse_network_xml(serialize(root), f"{net.name} (updated)")
    except VshError as err:
        raise err.with_context(f"the network '{net.name}' would not be valid after this update") from None


def _place(parent, el, command: str, tag: str) -> None:
    """Add ``el`` first or last among ``parent``'s ``tag`` children."""
    same = parent.findall(tag)
    if command == "add-first" and same:
        same[0].addprevious(el)
    elif same:
        same[-1].addnext(el)
    elif command == "add-first":
        parent.insert(0, el)
    else:
        parent.append(el)


def _clean(el):
    el.tail = None
    el.text = el.text if len(el) else None
    return el


def _dhcp_host(dhcp, el, command: str, name: str) -> None:
    mac, hname, ip = (el.get("mac") or "").lower() or None, el.get("name"), el.get("ip")
    hosts = dhcp.findall("host")
    if command == "modify":
        key = ("mac", mac) if mac else ("name", hname)
        for host in hosts:
            if key[1] is not None and (host.get(key[0]) or "").lower() == key[1].lower():
                host.addnext(_clean(el))
                dhcp.remove(host)
                return
        raise OperationInvalid(f"Requested operation is not valid: couldn't locate an existing dhcp host entry "
                               f"with \"{key[0]}='{key[1]}'\" in network '{name}'")
    if command == "delete":
        for host in hosts:
            if ((mac is None or (host.get("mac") or "").lower() == mac) and (hname is None or host.get("name") == hname)
                    and (ip is None or host.get("ip") == ip)):
                dhcp.remove(host)
                return
        raise OperationInvalid(f"Requested operation is not valid: couldn't locate a matching dhcp host entry in "
                               f"network '{name}'")
    for host in hosts:
        if ((mac and (host.get("mac") or "").lower() == mac) or (hname and host.get("name") == hname)
                or (ip and host.get("ip") == ip)):
            raise OperationInvalid(f"Requested operation is not valid: there is an existing dhcp host entry in "
                                   f"network '{name}' that matches \"<host mac='{el.get('mac') or '(null)'}' "
                                   f"name='{hname or '(null)'}' ip='{ip or '(null)'}'/>\"")
    _place(dhcp, _clean(el), command, "host")


def _dhcp_range(dhcp, el, command: str, name: str) -> None:
    if command == "modify":
        raise Unsupported("Operation not supported: dhcp ranges cannot be modified, only added or deleted")
    start, end = el.get("start"), el.get("end")
    match = next((r for r in dhcp.findall("range") if (r.get("start"), r.get("end")) == (start, end)), None)
    if command == "delete":
        if match is None:
            raise OperationInvalid(f"Requested operation is not valid: couldn't locate a matching dhcp range entry "
                                   f"in network '{name}'")
        dhcp.remove(match)
        return
    if match is not None:
        raise OperationInvalid(f"Requested operation is not valid: there is an existing dhcp range entry in "
                               f"network '{name}' that matches \"<range start='{start}' end='{end}'/>\"")
    _place(dhcp, _clean(el), command, "range")


def _dns_host(root, el, command: str, name: str) -> None:
    from vsh.core.lxmlload import etree

    if command == "modify":
        raise Unsupported("Operation not supported: DNS HOST records cannot be modified, only added or deleted")
    names = {(n.text or "").strip() for n in el.findall("hostname")}
    dns = root.find("dns")
    found = []
    for host in dns.findall("host") if dns is not None else ():
        if host.get("ip") == el.get("ip") or names & {(n.text or "").strip() for n in host.findall("hostname")}:
            found.append(host)
    if command == "delete":
        if not found:
            raise OperationInvalid(f"Requested operation is not valid: couldn't locate a matching DNS HOST record "
                                   f"in network {name}")
        if len(found) > 1:
            raise OperationInvalid(f"Requested operation is not valid: multiple matching DNS HOST records were "
                                   f"found in network {name}")
        dns.remove(found[0])
        if len(dns) == 0 and not dns.attrib:
            root.remove(dns)
        return
    if found:
        raise OperationInvalid(f"Requested operation is not valid: there is already at least one DNS HOST record "
                               f"with a matching field in network {name}")
    if dns is None:
        from vsh.core.networks.model import insert_element

        dns = etree.Element("dns")
        insert_element(root, dns)
    _place(dns, el, command, "host")
