"""The VM page's disks and NICs: list, attach, detach (``dom.devices``), and the guest disk
browser of a shut-off domain (``conn.guest_disks()``, read-only)."""

from __future__ import annotations

import mimetypes
from xml.sax.saxutils import quoteattr

from aiohttp import web

from vsh.core.errors import InvalidArgument, OperationInvalid, VshError
from vsh.web.common import api, body, call, domain

PREVIEW_LIMIT = 256 * 1024


def _scope(dom) -> dict:
    """Change the running domain and its definition, or only the definition of a stopped one."""
    return {"live": True, "config": True} if dom.id is not None else {"config": True}


def disk_xml(data: dict) -> str:
    source, target = data.get("source"), data.get("target")
    if not source or not target:
        raise InvalidArgument("invalid argument: a disk needs a source file and a target (vdb)")
    fmt = data.get("format") or "raw"
    bus = data.get("bus") or "virtio"
    device = data.get("device") or "disk"
    ro = "<readonly/>" if data.get("readonly") else ""
    return (f"<disk type='file' device={quoteattr(device)}><driver name='qemu' type={quoteattr(fmt)}/>"
            f"<source file={quoteattr(source)}/><target dev={quoteattr(target)} bus={quoteattr(bus)}/>{ro}</disk>")


def nic_xml(data: dict) -> str:
    kind = data.get("type") or "user"
    model = data.get("model") or "virtio"
    mac = f"<mac address={quoteattr(data['mac'])}/>" if data.get("mac") else ""
    source = ""
    if kind == "network":
        source = f"<source network={quoteattr(data.get('source') or 'default')}/>"
    elif kind == "bridge":
        source = f"<source bridge={quoteattr(data.get('source') or '')}/>"
    elif kind != "user":
        raise InvalidArgument(f"invalid argument: unknown interface type '{kind}'")
    return f"<interface type={quoteattr(kind)}>{mac}{source}<model type={quoteattr(model)}/></interface>"


@api
async def devices(request):
    def read():
        dom = domain(request)
        out = {"disks": dom.block_devices(), "interfaces": dom.interfaces(), "addresses": []}
        try:
            sizes = {b["target"]: b["capacity"] for b in dom.stats.block_info_all()}
        except VshError:                # an image that is gone: the list still shows its disks
            sizes = {}
        for disk in out["disks"]:
            disk["capacity"] = sizes.get(disk["target"])
        if dom.id is not None:
            try:
                out["addresses"] = dom.stats.interface_addresses()
            except (OperationInvalid, InvalidArgument):
                pass
        return out

    return await call(request, read)


@api
async def attach(request):
    data = await body(request)
    kind = request.match_info["kind"]
    xml = disk_xml(data) if kind == "disks" else nic_xml(data)
    return await call(request, lambda: (lambda dom: dom.devices.attach(xml, **_scope(dom)))(domain(request)))


@api
async def detach(request):
    kind = request.match_info["kind"]
    key = request.match_info["key"]
    if kind == "disks":
        xml = f"<disk type='file' device='disk'><target dev={quoteattr(key)}/></disk>"
    else:
        xml = f"<interface type='user'><mac address={quoteattr(key)}/></interface>"
    return await call(request, lambda: (lambda dom: dom.devices.detach(xml, **_scope(dom)))(domain(request)))


@api
async def resize(request):
    """``blockresize``: the disk's top image to the new size (live through QEMU when the domain
    runs, qemu-img when it is shut off); a bare number is GiB."""
    from vsh.core.units import parse_scaled

    data = await body(request)
    size = parse_scaled(str(data.get("size", "")), 1024 ** 3, "size")
    target = request.match_info["key"]
    return await call(request, lambda: domain(request).block_jobs.resize(target, size))


def _session(request):
    """The read-only guest-disk session of a shut-off domain, opened once and kept."""
    name = request.match_info["name"]
    sessions = request.app["guest_sessions"]
    if name not in sessions:
        dom = domain(request)
        if dom.id is not None:
            raise OperationInvalid("the disk browser reads the disks of a shut-off domain only")
        g = request.app["conn"].guest_disks(readonly=True)
        try:
            g.add_domain(name)
            g.launch()
            roots = g.inspect_os()
            if roots:
                g.mount_inspected(roots[0])
            else:
                filesystems = [d for d, t in g.list_filesystems().items() if t not in ("swap", "unknown", "")]
                if filesystems:
                    g.mount_ro(filesystems[0], "/")
        except BaseException:
            g.close()
            raise
        sessions[name] = g
    return sessions[name]


@api
async def filesystems(request):
    def read():
        g = _session(request)
        return {"filesystems": [{"device": d, "type": t} for d, t in g.list_filesystems().items()],
                "mountpoints": g.mountpoints()}

    return await call(request, read)


@api
async def files(request):
    path = request.query.get("path") or "/"

    def read():
        g = _session(request)
        return {"path": path, "entries": g.ll(path)}

    return await call(request, read)


@api
async def file(request):
    path = request.query.get("path") or ""

    def chunks():
        g = _session(request)
        if not g.is_file(path, follow=True):
            raise InvalidArgument(f"invalid argument: {path}: not a regular file")
        return iter(g.read_chunks(path))

    it = await call(request, chunks)
    chunk = await call(request, next, it, b"")          # errors about the file come before this
    base = path.rsplit("/", 1)[-1] or "file"
    if request.query.get("download") == "1":
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream",
                                           "Content-Disposition": "attachment; filename*=UTF-8''" + _quote(base)})
        await resp.prepare(request)
        while chunk:
            await resp.write(chunk)
            chunk = await call(request, next, it, b"")
        await resp.write_eof()
        return resp
    data = bytearray()
    while chunk and len(data) <= PREVIEW_LIMIT:
        data += chunk
        chunk = await call(request, next, it, b"")
    # shown as text only: a guest's HTML or SVG never renders in the page's origin
    return {"path": path, "type": mimetypes.guess_type(base)[0] or "", "truncated": len(data) > PREVIEW_LIMIT,
            "binary": b"\0" in data[:4096], "text": bytes(data[:PREVIEW_LIMIT]).decode("utf-8", errors="replace")}


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


async def _close_sessions(app):
    for g in app["guest_sessions"].values():
        g.close()
    app["guest_sessions"].clear()


def add_routes(app: web.Application) -> None:
    app["guest_sessions"] = {}
    app.on_cleanup.append(_close_sessions)
    r = app.router
    r.add_get("/api/domains/{name}/devices", devices)
    r.add_post("/api/domains/{name}/devices/{kind:disks|interfaces}", attach)
    r.add_delete("/api/domains/{name}/devices/{kind:disks|interfaces}/{key}", detach)
    r.add_post("/api/domains/{name}/devices/disks/{key}/resize", resize)
    r.add_get("/api/domains/{name}/guest/filesystems", filesystems)
    r.add_get("/api/domains/{name}/guest/files", files)
    r.add_get("/api/domains/{name}/guest/file", file)
