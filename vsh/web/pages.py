"""The networks and storage pools pages (``conn.networks``, ``conn.storage``) and the Create VM
form (``conn.installer``: the same planner as ``vsh install``)."""

from __future__ import annotations

from aiohttp import web

from vsh.core.errors import InvalidArgument, VshError
from vsh.web.common import api, body, call

NETWORK_ACTIONS = {"start": lambda n: n.start(), "stop": lambda n: n.destroy(),
                   "autostart": lambda n: n.set_autostart(True), "noautostart": lambda n: n.set_autostart(False)}
POOL_ACTIONS = {"start": lambda p: p.start(), "stop": lambda p: p.destroy(), "refresh": lambda p: p.refresh(),
                "autostart": lambda p: p.set_autostart(True), "noautostart": lambda p: p.set_autostart(False)}
# the form's fields → virt-install's options (vsh/api/install.py)
TEXT_OPTIONS = ("name", "memory", "vcpus", "cdrom", "boot", "os_variant", "machine", "graphics")


@api
async def networks(request):
    return await call(request, request.app["conn"].networks.list)


@api
async def pools(request):
    return await call(request, request.app["conn"].storage.list_pools, sizes=True)


def object_action(actions: dict, lookup):
    """A handler running ``actions[ACTION]`` on the network or pool ``lookup(conn, name)`` finds."""

    @api
    async def handler(request):
        action = actions.get(request.match_info["action"])
        if action is None:
            raise InvalidArgument(f"invalid argument: unknown action '{request.match_info['action']}'")
        conn = request.app["conn"]
        await call(request, lambda: action(lookup(conn, request.match_info["item"])))

    return handler


@api
async def volumes(request):
    conn = request.app["conn"]
    return await call(request, lambda: conn.storage.lookup_pool(request.match_info["pool"]).list_volumes(details=True))


@api
async def os_variants(request):
    return await call(request, request.app["conn"].installer.os_variants)


def install_options(data: dict) -> dict:
    """virt-install's option dict from the form's JSON (strings, lists, a flag)."""
    opts = {key: (str(data[key]).strip() or None) if data.get(key) not in (None, "") else None
            for key in TEXT_OPTIONS}
    if not opts["name"]:
        raise InvalidArgument("invalid argument: the new VM needs a name")
    disks = [d.strip() for d in data.get("disks") or [] if str(d).strip()]
    opts["disk"] = disks
    nets = [n.strip() for n in data.get("networks") or [] if str(n).strip()]
    opts["network"] = nets or None
    opts["import_"] = bool(data.get("import"))
    cloud = []
    if data.get("generate_password"):
        cloud.append("root-password-generate=on")
    if data.get("user_data_file"):
        cloud.append(f"user-data={data['user_data_file']}")
    opts["cloud_init"] = ",".join(cloud) or None
    # the cloud-init fields go to the planner as text (they never touch this host's files)
    account = {key: str(data[key]) for key in ("user", "password", "ssh_keys") if data.get(key)}
    opts["cloud_account"] = account or None
    return opts


@api
async def create(request):
    data = await body(request)
    opts = install_options(data)
    conn = request.app["conn"]
    run = bool(data.get("run"))

    def make():
        made = conn.installer.create(opts, autostart=bool(data.get("autostart")))
        if run:
            try:
                conn.lookup_domain(made["name"]).start()
            except VshError:
                conn.installer.discard(made)
                raise
        return {"name": made["name"], "created": made["created"], "root_password": made.get("root_password")}

    result = await call(request, make)
    request.app["live"].poke()
    return result


@api
async def plan(request):
    data = await body(request)
    opts = install_options(data)
    result = await call(request, request.app["conn"].installer.plan, opts)
    return {"xml": result["xml"], "would_create": result["would_create"]}


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/networks", networks)
    r.add_post("/api/networks/{item}/{action}",
               object_action(NETWORK_ACTIONS, lambda conn, name: conn.networks.lookup(name)))
    r.add_get("/api/pools", pools)
    r.add_post("/api/pools/{item}/{action}",
               object_action(POOL_ACTIONS, lambda conn, name: conn.storage.lookup_pool(name)))
    r.add_get("/api/pools/{pool}/volumes", volumes)
    r.add_get("/api/install/os-variants", os_variants)
    r.add_post("/api/install/plan", plan)
    r.add_post("/api/install", create)
