"""The web console's JSON API for domains: thin handlers over the operations API (``vsh.api``).

Every call into the API runs in the server's thread pool (:func:`vsh.web.common.call`): the event
loop keeps serving consoles and live updates while a domain boots or a snapshot is written.
Errors come back as ``{"error": message}`` with a status that says their kind.
"""

from __future__ import annotations

from aiohttp import web

from vsh.core.errors import InvalidArgument
from vsh.web.common import api, body, call, domain

ACTIONS = {
    "start": lambda dom: dom.start(),
    "shutdown": lambda dom: dom.shutdown(),
    "reboot": lambda dom: dom.reboot(),
    "reset": lambda dom: dom.reset(),
    "destroy": lambda dom: dom.destroy(),
    "suspend": lambda dom: dom.suspend(),
    "resume": lambda dom: dom.resume(),
}


def _boot(xml: str) -> dict:
    """Firmware, machine and boot order as the definition says them."""
    from vsh.core.domain import Domain as Model

    node = Model.parse(xml).node
    os_el = node.find("./os")
    if os_el is None:
        return {"firmware": None, "machine": None, "boot": []}
    loader = os_el.find("loader")
    efi = os_el.get("firmware") == "efi" or (loader is not None and loader.get("type") == "pflash")
    type_el = os_el.find("type")
    boot = [b.get("dev") for b in os_el.findall("boot")]
    if not boot:            # per-device <boot order='N'/>
        ordered = []
        for el in node.findall("./devices/*/boot[@order]"):
            dev = el.getparent()
            target = dev.find("target")
            label = f"{dev.tag} {target.get('dev', '')}".strip() if target is not None else dev.tag
            if el.get("order", "").isdigit():
                ordered.append((int(el.get("order")), label))
        boot = [label for _order, label in sorted(ordered)]
    if os_el.find("kernel") is not None:
        boot.insert(0, "kernel")
    return {"firmware": "UEFI" if efi else "BIOS", "machine": type_el.get("machine") if type_el is not None else None,
            "boot": boot}


def _overview(dom) -> dict:
    info = dom.info()
    state, reason = dom.state()
    out = {"name": dom.name, "uuid": info.get("uuid"), "state": state, "reason": reason,
           "id": info.get("id"), "vcpus": info.get("cpus"), "max_memory_kib": info.get("max_memory_kib"),
           "memory_kib": info.get("used_memory_kib"), "autostart": info.get("autostart"),
           "persistent": info.get("persistent"), "os_type": info.get("os_type")}
    out.update(_boot(dom.xml(inactive=True)))
    out["disks"] = dom.block_devices()
    out["interfaces"] = dom.interfaces()
    out["graphics"] = dom.display.graphics() if dom.id is not None else []
    out["consoles"] = dom.id is not None
    return out


@api
async def get_domain(request):
    return await call(request, lambda: _overview(domain(request)))


@api
async def domain_action(request):
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise InvalidArgument(f"invalid argument: unknown action '{action}'")
    await call(request, lambda: ACTIONS[action](domain(request)))
    request.app["live"].poke()


@api
async def delete_domain(request):
    storage = request.query.get("storage") == "1"

    def undefine():
        return domain(request).undefine(remove_all_storage=storage, snapshots_metadata=True,
                                        managed_save=True, nvram=True)

    result = await call(request, undefine)
    request.app["live"].poke()
    return result


@api
async def put_settings(request):
    data = await body(request)

    def change():
        dom = domain(request)
        running = dom.id is not None
        if "autostart" in data:
            dom.set_autostart(bool(data["autostart"]))
        if "memory_kib" in data:
            kib = int(data["memory_kib"])
            if running:
                dom.set_memory(kib, live=True)
            else:
                dom.set_max_memory(kib, config=True)
                dom.set_memory(kib, config=True)
        if "vcpus" in data:
            count = int(data["vcpus"])
            if running:
                dom.set_vcpus(count, live=True)
            else:
                dom.set_vcpus(count, maximum=True, config=True)
                dom.set_vcpus(count, config=True)
        return _overview(dom)

    try:
        return await call(request, change)
    except (TypeError, ValueError):
        raise InvalidArgument("invalid argument: memory_kib and vcpus are whole numbers") from None


@api
async def get_xml(request):
    inactive = request.query.get("inactive") == "1"
    text = await call(request, lambda: domain(request).xml(inactive=inactive))
    return web.Response(text=text, content_type="application/xml")


@api
async def put_xml(request):
    text = await request.text()
    conn = request.app["conn"]

    def define():
        dom = conn.define_xml(text, validate="if-installed")
        return {"name": dom.name}

    result = await call(request, define)
    request.app["live"].poke()
    return result


@api
async def check_xml(request):
    """The XML editor's live check, with the parser define uses (the page cannot use the browser's
    own: its error document carries inline style, which the page's policy refuses)."""
    from vsh.core.errors import XMLError
    from vsh.core.xml import parse

    text = (await body(request)).get("xml", "")
    try:
        root = parse(str(text), root_tag=None)
    except XMLError as err:
        return {"problem": "\n".join(err.lines), "root": None}
    return {"problem": "", "root": root.tag}


@api
async def list_snapshots(request):
    def snaps():
        handle = domain(request).snapshots
        current = handle.current()
        items = handle.list(topological=True)
        return {"current": current.name if current is not None else None, "snapshots": items}

    return await call(request, snaps)


@api
async def create_snapshot(request):
    data = await body(request)
    name = data.get("name") or None
    description = data.get("description") or None
    return await call(request, lambda: domain(request).snapshots.create(name=name, description=description))


@api
async def snapshot_action(request):
    snap = request.match_info["snap"]
    action = request.match_info["action"]

    def act():
        handle = domain(request).snapshots.snapshot(snap)
        if action == "revert":
            return handle.revert(force=True)
        raise InvalidArgument(f"invalid argument: unknown snapshot action '{action}'")

    result = await call(request, act)
    request.app["live"].poke()
    return result


@api
async def delete_snapshot(request):
    snap = request.match_info["snap"]
    children = request.query.get("children") == "1"
    return await call(request, lambda: domain(request).snapshots.snapshot(snap).delete(children=children))


@api
async def host_info(request):
    conn = request.app["conn"]

    def info():
        return {"uri": conn.uri, "hostname": conn.host.hostname(), "node": conn.host.node_info()}

    return await call(request, info)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/host", host_info)
    r.add_get("/api/domains/{name}", get_domain)
    r.add_delete("/api/domains/{name}", delete_domain)
    r.add_post("/api/domains/{name}/action/{action}", domain_action)
    r.add_put("/api/domains/{name}/settings", put_settings)
    r.add_get("/api/domains/{name}/xml", get_xml)
    r.add_put("/api/domains/{name}/xml", put_xml)
    r.add_post("/api/xml/check", check_xml)
    r.add_get("/api/domains/{name}/snapshots", list_snapshots)
    r.add_post("/api/domains/{name}/snapshots", create_snapshot)
    r.add_post("/api/domains/{name}/snapshots/{snap}/{action}", snapshot_action)
    r.add_delete("/api/domains/{name}/snapshots/{snap}", delete_snapshot)
