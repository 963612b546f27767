"""What a running QEMU holds, asked through the supervisor's QMP connection: block nodes,
peripherals, network clients (NICs and their netdevs), PCI placement, and the QEMU id
of a device of the domain XML.

Used inside the supervisor by hot-plug (:mod:`vsh.kvm.hotplug`) and traffic
accounting (:mod:`vsh.kvm.netacct`); ``sup`` is the running
:class:`vsh.kvm.supervisor.core.Supervisor`.
"""

from __future__ import annotations

import copy

from vsh.core.errors import NotFound, OperationInvalid, Unsupported, VshError
from vsh.kvm.supervisor.log import log


async def node_names(sup) -> set[str]:
    nodes = await sup._exec("query-named-block-nodes", {"flat": True})
    return {n.get("node-name") for n in nodes if n.get("node-name")}


async def peripherals(sup) -> dict[str, str]:
    """QEMU device id -> type name, for every device that has an id."""
    items = await sup._exec("qom-list", {"path": "/machine/peripheral"})
    out = {}
    for item in items:
        t = item.get("type", "")
        if t.startswith("child<"):
            out[item["name"]] = t[6:-1]
    return out


async def network_clients(sup) -> list[dict]:
    """The NICs and their netdevs, from ``info network``: [{id, mac, model, netdev, type}]."""
    text = await sup._exec("human-monitor-command", {"command-line": "info network"})
    out: list[dict] = []
    if not isinstance(text, str):
        return out
    current = None
    for raw in text.replace("\r", "").splitlines():
        line = raw.strip()
        peer = line.startswith("\\")
        if peer:
            line = line.lstrip("\\ ").strip()
        name, sep, rest = line.partition(":")
        if not sep:
            continue
        props = {}
        for part in rest.strip().split(","):
            k, _eq, v = part.partition("=")
            props[k.strip()] = v.strip()
        if not peer:
            current = {"id": name.strip(), "type": props.get("type"), "mac": props.get("macaddr"),
                       "model": props.get("model"), "netdev": None, "netdev_type": None}
            out.append(current)
        elif current is not None:
            current["netdev"] = name.strip()
            current["netdev_type"] = props.get("type")
    return out


async def netdev_ids(sup) -> set[str]:
    ids = set()
    for c in await network_clients(sup):
        ids.add(c["id"])
        if c.get("netdev"):
            ids.add(c["netdev"])
    return ids


def find_pci(buses, qdev_id: str, parent: str | None = None):
    for bus in buses:
        for dev in bus.get("devices") or []:
            if dev.get("qdev_id") == qdev_id:
                return dev, parent
            bridge = dev.get("pci_bridge")
            if bridge:
                found = find_pci([{"devices": bridge.get("devices") or []}], qdev_id,
                                  dev.get("qdev_id") or parent)
                if found[0] is not None:
                    return found
    return None, None


async def pci_address(sup, qdev_id: str) -> dict | None:
    """libvirt's <address type='pci'> attributes of the device QEMU placed as ``qdev_id``."""
    dev, parent = find_pci(await sup._exec("query-pci"), qdev_id)
    if dev is None:
        return None
    bus = 0
    if parent and parent.startswith("pci."):
        try:
            bus = int(parent[4:])
        except ValueError:
            bus = 0
    return {"type": "pci", "domain": "0x0000", "bus": f"0x{bus:02x}", "slot": f"0x{dev['slot']:02x}",
            "function": f"0x{dev['function']:x}"}


async def pci_placement(sup, dom, family: str, what: str) -> dict:
    """bus (and addr) for a hot-plugged PCI device without an <address>."""
    if family == "microvm":
        raise Unsupported(f"operation not supported: machine 'microvm' has no PCI bus and no hot-plug; "
                          f"{what} can only be added with --config (at the next start)")
    if family == "pc":
        return {"bus": "pci.0"}
    # q35: an empty pcie-root-port, else a pci-bridge (QEMU picks the slot there)
    buses = await sup._exec("query-pci")
    ports, bridges = [], []
    for ctrl in dom.devices("controller"):
        node = ctrl.node
        if node.get("type") != "pci" or not node.get("index"):
            continue
        qid = f"pci.{int(node.get('index'), 0)}"
        if node.get("model") == "pcie-root-port":
            ports.append(qid)
        elif node.get("model") == "pci-bridge":
            bridges.append(qid)
    for qid in ports:
        dev, _parent = find_pci(buses, qid)
        if dev is not None and not (dev.get("pci_bridge") or {}).get("devices"):
            return {"bus": qid, "addr": "0x0"}
    if bridges:
        return {"bus": bridges[0]}
    raise OperationInvalid(
        f"Requested operation is not valid: no free PCI hot-plug slot for {what}: machine q35 takes "
        "hot-plugged devices in empty pcie-root-port controllers, and this domain has none left",
        "add <controller type='pci' model='pcie-root-port'/> elements to the domain (they take effect at "
        "its next start), or use --config")


async def block_graph(sup) -> tuple[dict, dict]:
    graph = await sup._exec("x-debug-query-block-graph")
    nodes = {n["id"]: n for n in graph.get("nodes", [])}
    children: dict = {}
    for e in graph.get("edges", []):
        children.setdefault(e["parent"], []).append(e["child"])
    return nodes, children


async def delete_nodes(sup, top: str) -> None:
    """``blockdev-del`` the node ``top`` and then the nodes below it that nothing else uses."""
    try:
        nodes, children = await block_graph(sup)
    except VshError:
        nodes, children = {}, {}
    by_name = {n.get("name"): i for i, n in nodes.items() if n.get("type") == "block-driver"}
    order, queue = [], [top]
    while queue:
        name = queue.pop(0)
        if name in order:
            continue
        order.append(name)
        for child in children.get(by_name.get(name), []):
            node = nodes.get(child) or {}
            if node.get("type") == "block-driver" and node.get("name"):
                queue.append(node["name"])
    for name in order:
        try:
            await sup._exec("blockdev-del", {"node-name": name})
        except VshError as exc:
            if name == top:
                log(f"blockdev-del {name}: " + " | ".join(exc.lines))


async def free_index(sup, prefix_fmt: str, used: set[str]) -> int:
    n = 0
    while any(u == prefix_fmt % n or u.startswith(prefix_fmt % n + "-") for u in used):
        n += 1
    return n


def qdev_of_block(entry: dict) -> str:
    """The QEMU device id a query-block entry belongs to ('' if none)."""
    qdev = entry.get("qdev") or ""
    if qdev.startswith("/machine/peripheral/"):
        return qdev[len("/machine/peripheral/"):].split("/", 1)[0]
    return qdev


async def block_entry(sup, qid: str) -> dict | None:
    for entry in await sup._exec("query-block"):
        if qdev_of_block(entry) == qid:
            return entry
    return None


def device_id(dom, dev_node, rundir=None) -> str:
    """The QEMU id of a device of the live XML: its <alias>, else what the builder names it."""
    alias = dev_node.find("alias")
    if alias is not None and alias.get("name"):
        return alias.get("name")
    from vsh.kvm.argv import RuntimePaths, device_options

    paths = RuntimePaths.for_rundir(str(rundir or "/nonexistent"))
    try:
        opts = device_options(dom.node, copy.deepcopy(dev_node), paths=paths)
    except VshError:
        # only the id matters here: its medium may be gone since; name one that exists
        from vsh.core.lxmlload import etree

        node = copy.deepcopy(dev_node)
        for tag in ("source", "backingStore", "driver"):
            for el in node.findall(tag):
                node.remove(el)
        node.set("type", "file")
        node.append(etree.Element("driver", name="qemu", type="raw"))
        node.append(etree.Element("source", file="/dev/null"))
        opts = device_options(dom.node, node, paths=paths)
    return (opts.get("device") or {}).get("id") or ""


async def nic_id(sup, dom, nic) -> tuple[str, str | None]:
    """(QEMU device id, netdev id) of a live NIC, found by its MAC address."""
    mac = (nic.mac or "").lower()
    for c in await network_clients(sup):
        if (c.get("mac") or "").lower() == mac:
            return c["id"], c.get("netdev")
    alias = nic.node.find("alias")
    if alias is not None and alias.get("name"):
        return alias.get("name"), None
    raise NotFound(f"device not found: QEMU has no network device with MAC address {nic.mac}")
