"""Devices of a running domain: hot-plug, unplug and cdrom media, through QMP.

This runs inside the domain's supervisor (:mod:`vsh.kvm.supervisor`), which calls
:func:`attach`, :func:`detach` and :func:`change_media` for the control operations
``attach_device``, ``detach_device`` and ``change_media`` (:mod:`vsh.kvm.client`).
Doing the whole sequence there, not in the vsh command, means that a killed
command never leaves a half-plugged device: the supervisor finishes or rolls back.

What QEMU gets comes from the command-line builder (:func:`vsh.kvm.argv.device_options`),
so a hot-plugged device is the device the same XML gives at boot:

* disks: ``blockdev-add`` of the file and format nodes (the format from
  ``<driver type>``, never probed; qcow2 backing files only as declared), then
  ``device_add``; a failure deletes the nodes again.
* user-mode NICs: ``netdev_add`` (through the human monitor, which parses the
  ``-netdev`` text exactly as the command line does), the traffic accounting filter
  (:mod:`vsh.kvm.netacct`), then ``device_add``; a failure removes the netdev.
* network and bridge NICs: the caller names the tap and the bridge in the element
  (:func:`vsh.kvm.hostnet.plan_tap`); the supervisor opens the tap and hands its fd to
  QEMU (``getfd``, QMP ``netdev_add fd=``: QEMU has no CAP_NET_ADMIN), it is plugged
  into the bridge, then ``device_add``; a failure removes the netdev (and with it the tap).
* unplug: ``device_del``, then wait for QEMU's ``DEVICE_DELETED`` event (the guest has
  to let the device go: ACPI/PCIe hot-plug); then ``blockdev-del`` / ``netdev_del``.
  When the guest does not answer in time the command fails with a message saying so;
  the supervisor still finishes the removal if the guest lets go later.
* cdrom media: ``blockdev-open-tray`` (``force`` only when asked: a guest may lock its
  tray), ``blockdev-remove-medium``, ``blockdev-add`` + ``blockdev-insert-medium``,
  ``blockdev-close-tray``.  The new medium's nodes are opened first, so a bad file
  changes nothing.

PCI placement: machine ``pc`` takes hot-plugged devices on its root bus (QEMU picks
the slot); ``q35`` needs an empty ``pcie-root-port`` (or a ``pci-bridge``) declared in
the domain, as libvirt does; ``microvm`` has no PCI and no hot-plug.  The live XML
(``live.xml``) records the device with the ``<alias>`` (QEMU id) and ``<address>``
QEMU really used, so a command line rebuilt from it places the device the same way.
"""

from __future__ import annotations

import copy
import os
import time

from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, Timeout, Unsupported, VshError
from vsh.kvm import confine
from vsh.kvm.livexml import live_lock, read_live, write_live
# what the running QEMU holds; network_clients, delete_nodes and device_id keep their names here
from vsh.kvm.qemudevs import (  # noqa: F401
    block_entry, delete_nodes, device_id, free_index, netdev_ids, network_clients, nic_id, node_names,
    pci_address, pci_placement, peripherals)
from vsh.kvm.supervisor.log import log

#: How long ``detach`` waits for the guest to release a device, by default.
DETACH_TIMEOUT = 20.0
#: How long a media change waits for a guest to open its (unlocked) tray.
TRAY_TIMEOUT = 5.0

NIC_DRIVERS = ("virtio-net-pci", "virtio-net-device", "e1000", "e1000e", "rtl8139")


def parse_device(xml: str):
    from vsh.core.domain import DEVICE_TAGS
    from vsh.core.xml import parse

    node = parse(xml, "device_definition", root_tag=None)
    if not isinstance(node.tag, str) or node.tag not in DEVICE_TAGS:
        raise InvalidArgument(f"XML error: unknown device type '{node.tag}'")
    return node


def _set_child(node, tag: str, attrs: dict) -> None:
    from vsh.core.lxmlload import etree

    from vsh.core.domain import normalize_order

    old = node.find(tag)
    if old is not None:
        node.remove(old)
    node.append(etree.Element(tag, {k: str(v) for k, v in attrs.items()}))
    normalize_order(node)


def find_live_device(dom, node):
    """The device of the live XML that ``node`` names: a disk by target, a NIC by MAC."""
    if node.tag == "disk":
        tgt = node.find("target")
        dev = tgt.get("dev") if tgt is not None else None
        for disk in dom.disks:
            if dev and disk.target_dev == dev:
                return disk
        raise NotFound(f"device not found: no disk with target '{dev}' in the running domain")
    if node.tag == "interface":
        mac_el = node.find("mac")
        mac = (mac_el.get("address") if mac_el is not None else "") or ""
        for nic in dom.interfaces:
            if mac and (nic.mac or "").lower() == mac.lower():
                return nic
        raise NotFound(f"device not found: no interface with MAC address {mac or '(none given)'} "
                       "in the running domain")
    raise Unsupported(f"operation not supported: live detach of <{node.tag}> devices is not supported; "
                      "use --config to change the configuration used at the next boot")


# -- events -------------------------------------------------------------------------------------


class _Events:
    """A QMP event listener for some event names, opened before the command that causes them."""

    def __init__(self, sup, names):
        from vsh.kvm import qmp

        self.listener = qmp.load().EventListener(tuple(names))
        self.sup = sup
        self._ctx = None

    def __enter__(self):
        self._ctx = self.sup._qmp.listen(self.listener)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)

    async def wait(self, match, timeout: float) -> dict | None:
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return None
            try:
                event = await asyncio.wait_for(self.listener.get(), left)
            except asyncio.TimeoutError:
                return None
            if match(event.get("data") or {}):
                return dict(event)


def _deleted(qid: str):
    return lambda data: data.get("device") == qid or data.get("path") == f"/machine/peripheral/{qid}"


# -- attach -------------------------------------------------------------------------------------


async def attach(sup, device_xml: str) -> dict:
    async with live_lock(sup):
        from vsh.core.domain import device_for

        dom = read_live(sup)
        node = parse_device(device_xml)
        dom.check_attach(device_for(copy.deepcopy(node)))
        if node.tag == "disk":
            info = await _attach_disk(sup, dom, node)
        elif node.tag == "interface":
            info = await _attach_nic(sup, dom, node)
        else:
            raise Unsupported(f"operation not supported: live attach of <{node.tag}> devices is not supported; "
                              "use --config to change the configuration used at the next boot")
        dom.add_device(device_for(node))
        write_live(sup, dom)
        # libvirt's device-added event, once the device is in the live definition
        sup._publish({"event": "VSH_DEVICE_ADDED", "data": {"device": info["alias"]}, "timestamp": time.time()})
        return info


def _paths(sup):
    from vsh.kvm.argv import RuntimePaths

    return RuntimePaths.for_rundir(str(sup.rundir))


async def _attach_disk(sup, dom, node) -> dict:
    from vsh.kvm.argv import device_options

    if node.get("device", "disk") not in ("disk", "cdrom"):
        raise Unsupported(f"operation not supported: live attach of a {node.get('device')} disk is not "
                          "supported (disk or cdrom)")
    n = await free_index(sup, "disk%d", await node_names(sup))
    opts = device_options(dom.node, node, paths=_paths(sup), index=n)
    dev = dict(opts["device"])
    what = f"disk '{node.find('target').get('dev')}'"
    has_pci_addr = node.find("address") is not None and node.find("address").get("type") == "pci"
    pci = dev["driver"].startswith("virtio-blk") and dev["driver"].endswith("-pci")
    if dev["driver"].endswith("-device"):
        raise Unsupported(f"operation not supported: machine 'microvm' has no hot-plug; {what} can only be "
                          "added with --config (at the next start)")
    if pci and not has_pci_addr:
        dev.pop("bus", None)
        dev.pop("addr", None)
        dev.update(await pci_placement(sup, dom, opts["family"], what))
    added: list[str] = []
    try:
        for args in opts["blockdev"]:
            confine.grant_blockdev(sup.rundir, args)
            await sup._exec("blockdev-add", args)
            added.append(args["node-name"])
        await sup._exec("device_add", dev)
    except BaseException:
        for name in reversed(added):
            try:
                await sup._exec("blockdev-del", {"node-name": name})
            except VshError as exc:
                log(f"rollback: blockdev-del {name}: " + " | ".join(exc.lines))
        raise
    _set_child(node, "alias", {"name": dev["id"]})
    if pci:
        addr = await pci_address(sup, dev["id"])
        if addr:
            _set_child(node, "address", addr)
    log(f"hot-plugged disk {dev['id']} ({dev['driver']}, nodes {', '.join(added)})")
    return {"alias": dev["id"], "driver": dev["driver"], "nodes": added}


async def _attach_nic(sup, dom, node) -> dict:
    from vsh.kvm import netacct
    from vsh.kvm.argv import device_options

    used = await netdev_ids(sup) | set(await peripherals(sup))
    n = 0
    while f"net{n}" in used or f"hostnet{n}" in used:
        n += 1
    opts = device_options(dom.node, node, paths=_paths(sup), index=n)
    dev = dict(opts["device"])
    what = f"interface {dev.get('mac')}"
    if dev["driver"].endswith("-device"):
        raise Unsupported(f"operation not supported: machine 'microvm' has no hot-plug; {what} can only be "
                          "added with --config (at the next start)")
    has_pci_addr = node.find("address") is not None and node.find("address").get("type") == "pci"
    if not has_pci_addr:
        dev.pop("bus", None)
        dev.pop("addr", None)
        dev.update(await pci_placement(sup, dom, opts["family"], what))
    netdev_id = dev["netdev"]
    tap = node.get("type") in ("network", "bridge")
    if tap:     # the supervisor opens the tap (QEMU has no CAP_NET_ADMIN) and hands QEMU its fds
        await sup._exec("netdev_add", await _tap_fds(sup, netdev_id, opts["netdev"]))
        out = ""
    else:
        out = await sup._exec("human-monitor-command", {"command-line": "netdev_add " + opts["netdev"]})
    if out.strip():
        raise VshError(f"internal error: unable to execute QEMU command 'netdev_add': "
                       f"{out.strip().removeprefix('Error: ')}")
    try:
        if tap:     # the tap is QEMU's now; into the bridge before the guest sees the NIC
            from vsh.kvm import hostnet

            hostnet.attach_tap(node.find("target").get("dev"), node.find("source").get("bridge"))
        else:
            await netacct.add_filter(sup, netdev_id, dev["mac"], dev["id"])
        await sup._exec("device_add", dev)
    except BaseException:
        if not tap:
            await netacct.remove_filter(sup, netdev_id, dev["mac"])
        try:
            await sup._exec("netdev_del", {"id": netdev_id})
        except VshError as exc:
            log(f"rollback: netdev_del {netdev_id}: " + " | ".join(exc.lines))
        raise
    _set_child(node, "alias", {"name": dev["id"]})
    addr = await pci_address(sup, dev["id"])
    if addr:
        _set_child(node, "address", addr)
    log(f"hot-plugged interface {dev['id']} ({dev['driver']}, netdev {netdev_id})")
    return {"alias": dev["id"], "driver": dev["driver"], "netdev": netdev_id}


async def _tap_fds(sup, netdev_id: str, netdev: str) -> dict:
    """Open the tap of a -netdev text by name (and its vhost-net fd), pass them to QEMU
    (``getfd``: names the QMP monitor knows, so QMP's netdev_add, not the human monitor's)
    and return netdev_add's arguments."""
    from vsh.kvm.confine import taps

    fds = []
    try:
        fds.append(taps.open_tap(taps.tap_name(netdev)))
        await sup._send_fd(fds[0], netdev_id + "-tap")
        vhost = None
        if taps.wants_vhost(netdev):
            fds.append(taps.open_vhost())
            await sup._send_fd(fds[1], netdev_id + "-vhost")
            vhost = netdev_id + "-vhost"
        args = {"type": "tap", "id": netdev_id, "fd": netdev_id + "-tap"}
        if vhost:
            args.update(vhost=True, vhostfd=vhost)
        return args
    finally:
        for fd in fds:
            os.close(fd)


# -- detach -------------------------------------------------------------------------------------


async def detach(sup, device_xml: str, timeout: float = DETACH_TIMEOUT) -> dict:
    async with live_lock(sup):
        dom = read_live(sup)
        node = parse_device(device_xml)
        dev = find_live_device(dom, node)
        if dev.node.tag == "disk":
            qid = device_id(dom, dev.node, sup.rundir)
            entry = await block_entry(sup, qid)
            top = ((entry or {}).get("inserted") or {}).get("node-name")
            netdev = None
        else:
            qid, netdev = await nic_id(sup, dom, dev)
            top = None
        mac = getattr(dev, "mac", None) if dev.node.tag == "interface" else None
        target = dev.node.find("target").get("dev") if dev.node.tag == "disk" else None

        async def finish():
            if top:
                await delete_nodes(sup, top)
            if netdev:
                from vsh.kvm import netacct

                await netacct.remove_filter(sup, netdev, mac)
                try:
                    await sup._exec("netdev_del", {"id": netdev})
                except VshError as exc:
                    log(f"netdev_del {netdev}: " + " | ".join(exc.lines))
            live = read_live(sup)
            for d in live.devices(dev.node.tag):
                if (target and d.node.find("target") is not None and d.node.find("target").get("dev") == target) \
                        or (mac and (getattr(d, "mac", "") or "").lower() == mac.lower()):
                    live.remove_device(d)
                    break
            write_live(sup, live)
            log(f"device {qid} removed")

        events = _Events(sup, ("DEVICE_DELETED",))
        events.__enter__()
        handed_over = False
        try:
            await sup._exec("device_del", {"id": qid})
            got = await events.wait(_deleted(qid), timeout)
            if got is None:
                handed_over = True
                sup._spawn_task(_finish_later(sup, events, qid, finish))
                raise Timeout(
                    f"the guest did not release device '{qid}' within {timeout:g} s; it is still "
                    "attached to the running domain and will be removed if the guest lets it go later",
                    "check that the guest is running and handles PCI hot-unplug (ACPI or PCIe native "
                    "hot-plug), then look at 'dumpxml' or detach again; the persistent configuration "
                    "was not changed")
        finally:
            if not handed_over:
                events.__exit__(None, None, None)
        await finish()
        return {"alias": qid}


async def _finish_later(sup, events, qid: str, finish) -> None:
    """Complete a removal the guest acknowledges after ``detach`` gave up waiting."""
    import asyncio

    try:
        while True:
            got = await events.wait(_deleted(qid), 3600.0)
            if got is not None:
                async with live_lock(sup):
                    await finish()
                return
    except asyncio.CancelledError:
        raise
    except VshError as exc:
        log(f"late removal of {qid}: " + " | ".join(exc.lines))
    finally:
        events.__exit__(None, None, None)


# -- cdrom media --------------------------------------------------------------------------------


async def change_media(sup, target: str, disk_xml: str | None, force: bool = False,
                       timeout: float = TRAY_TIMEOUT) -> dict:
    """Eject (``disk_xml`` None) or insert/replace the medium of the removable disk ``target``.

    ``disk_xml`` is the disk element with its new ``<source>`` (and ``<driver type>``).
    """
    from vsh.kvm.argv import device_options

    async with live_lock(sup):
        dom = read_live(sup)
        disk = next((d for d in dom.disks if d.target_dev == target), None)
        if disk is None:
            raise NotFound(f"No disk found whose source path or target is {target}")
        if disk.device not in ("cdrom", "floppy"):
            raise OperationInvalid(f"The disk device '{target}' is not removable")
        qid = device_id(dom, disk.node, sup.rundir)
        new_node = parse_device(disk_xml) if disk_xml else None
        added: list[str] = []
        top_new = None
        if new_node is not None:
            n = await free_index(sup, "disk%d", await node_names(sup))
            opts = device_options(dom.node, new_node, paths=_paths(sup), index=n)
            try:
                for args in opts["blockdev"]:
                    confine.grant_blockdev(sup.rundir, args)
                    await sup._exec("blockdev-add", args)
                    added.append(args["node-name"])
            except BaseException:
                for name in reversed(added):
                    try:
                        await sup._exec("blockdev-del", {"node-name": name})
                    except VshError:
                        pass
                raise
            top_new = added[-1] if added else None

        async def drop_new():
            if top_new:
                await delete_nodes(sup, top_new)

        try:
            entry = await block_entry(sup, qid)
            if entry is None:
                raise VshError(f"internal error: QEMU has no block device for '{target}' ({qid})")
            top_old = (entry.get("inserted") or {}).get("node-name")
            await _open_tray(sup, qid, target, entry, force, timeout)
            if top_old:
                await sup._exec("blockdev-remove-medium", {"id": qid})
            try:
                if top_new:
                    await sup._exec("blockdev-insert-medium", {"id": qid, "node-name": top_new})
            except BaseException:
                if top_old:
                    await sup._exec("blockdev-insert-medium", {"id": qid, "node-name": top_old})
                raise
            try:
                await sup._exec("blockdev-close-tray", {"id": qid})
            except VshError as exc:
                log(f"blockdev-close-tray {qid}: " + " | ".join(exc.lines))
        except BaseException:
            await drop_new()
            raise
        if top_old:
            await delete_nodes(sup, top_old)
        live = read_live(sup)
        for d in live.disks:
            if d.target_dev == target:
                src = d.node.find("source")
                if src is not None:
                    d.node.remove(src)
                if new_node is not None:
                    new_src = new_node.find("source")
                    if new_src is not None:
                        d.node.append(copy.deepcopy(new_src))
                    d.node.set("type", new_node.get("type", "file"))
                    new_drv = new_node.find("driver")
                    if new_drv is not None:
                        old_drv = d.node.find("driver")
                        if old_drv is not None:
                            d.node.remove(old_drv)
                        d.node.append(copy.deepcopy(new_drv))
                from vsh.core.domain import normalize_order

                normalize_order(d.node)
                break
        write_live(sup, live)
        log(f"media of {qid} ({target}): {'ejected' if new_node is None else 'changed'}")
        return {"alias": qid, "inserted": top_new is not None}


async def _open_tray(sup, qid: str, target: str, entry: dict, force: bool, timeout: float) -> None:
    if entry.get("tray_open"):
        return
    with _Events(sup, ("DEVICE_TRAY_MOVED",)) as events:
        await sup._exec("blockdev-open-tray", {"id": qid, "force": bool(force)})
        now = await block_entry(sup, qid)
        if now is not None and now.get("tray_open"):
            return
        got = await events.wait(lambda d: d.get("id") == qid and d.get("tray-open"), timeout)
        if got is None:
            raise OperationInvalid(
                f"Requested operation is not valid: the guest keeps the tray of disk '{target}' locked "
                f"(it did not open within {timeout:g} s); use --force to open it anyway")


__all__ = ["attach", "detach", "change_media", "network_clients", "delete_nodes", "DETACH_TIMEOUT"]
