"""Which driver answers a URI.

Each entry maps URI schemes to the module of a driver. The module has
``open(uri: vsh.api.uri.Uri, readonly: bool) -> Connection | None``: a connection
when the URI is its own, ``None`` when it declines (another driver may take it), or
a :class:`VshError` when the URI is its own but the connection cannot be made (as
libvirt's drivers answer ``VIR_DRV_OPEN_SUCCESS / DECLINED / ERROR``).

Adding a driver is one entry here plus its package; no command changes.
"""

from __future__ import annotations


# (schemes, module): asked in order.
DRIVERS: list[tuple[tuple[str, ...], str]] = [
    (("vsh",), "vsh.api.local"),
]


def open_connection(uri: str | None, readonly: bool = False):
    from importlib import import_module

    from vsh.core.uri import Uri, unsupported

    parsed = Uri.parse(uri)
    for schemes, module in DRIVERS:
        if parsed.scheme in schemes:
            conn = import_module(module).open(parsed, readonly)
            if conn is not None:
                return conn
    raise unsupported(parsed.text)
