"""What the handlers of the web console share: the thread pool call, JSON in and out, errors."""

from __future__ import annotations

import asyncio
import functools

from aiohttp import web

from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, Unsupported, VshError, XMLError

STATUS = {NotFound: 404, InvalidArgument: 400, XMLError: 400, OperationInvalid: 409, Unsupported: 501}
async def call(request, fn, *args, **kwargs):
    """Run a blocking API call in the server's pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app["pool"], functools.partial(fn, *args, **kwargs))


def error_response(err: VshError) -> web.Response:
    status = next((code for cls, code in STATUS.items() if isinstance(err, cls)), 500)
    return web.json_response({"error": "\n".join(err.lines)}, status=status)


def api(fn):
    """A JSON handler: its return value is the body; a VshError becomes ``{"error"}``."""

    @functools.wraps(fn)
    async def handler(request):
        try:
            result = await fn(request)
        except VshError as err:
            return error_response(err)
        if isinstance(result, web.StreamResponse):
            return result
        return web.json_response({"result": "ok"} if result is None else result)

    return handler


async def body(request) -> dict:
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("invalid argument: the request body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidArgument("invalid argument: the request body is not a JSON object")
    return data


def domain(request):
    return request.app["conn"].lookup_domain(request.match_info["name"])


