"""The operations API: everything vsh can do, as methods that take plain arguments
and return plain data (or raise :class:`vsh.core.errors.VshError`).

In the spirit of libvirt's public API::

    from vsh import api

    conn = api.connect("vsh:///session")        # a Connection, chosen by the URI's scheme
    dom = conn.lookup_domain("vm1")             # a Domain handle
    dom.start(paused=True)
    info = dom.info()                           # plain data

The front ends (the shell's commands, the web console, the remote server) are
clients of this package; none of them knows which driver answers. A driver is a
package that implements the abstract classes of :mod:`vsh.api.base` and is named
in :data:`DRIVERS` below. Nothing here prints, parses a command line or reads a
terminal: consoles and event streams are objects the front end drives.

Importing this package is cheap (single-shot start-up pays for it): drivers are
imported when a URI names them.
"""

from __future__ import annotations


# Which driver answers a URI: (schemes, module), asked in order. The module has
# ``open(uri: vsh.core.uri.Uri, readonly: bool) -> Connection | None``: a connection when the URI
# is its own, ``None`` when it declines (another driver may take it), or a VshError when the
# URI is its own but the connection cannot be made (libvirt's drivers answer
# VIR_DRV_OPEN_SUCCESS / DECLINED / ERROR the same way). Adding a driver is one entry here
# plus its package; no command changes.
DRIVERS: list[tuple[tuple[str, ...], str]] = [
    (("vsh",), "vsh.api.local"),       # declines a URI with a transport (the local store is first:
    (("vsh",), "vsh.api.remote"),      # single-shot commands import no other driver); vsh+ssh:// only
    (("qemu", "test", "lxc", "xen", "libxl", "ch", "bhyve", "vz", "openvz", "vbox", "esx", "hyperv"),
     "vsh.api.libvirt"),
]


def connect(uri: str | None = None, readonly: bool = False):
    """Open a :class:`~vsh.api.base.Connection` for ``uri`` (None: the default URI)."""
    import sys

    from vsh.core.uri import Uri, unsupported

    parsed = Uri.parse(uri)
    for schemes, module in DRIVERS:
        if parsed.scheme in schemes:
            __import__(module)
            conn = sys.modules[module].open(parsed, readonly)
            if conn is not None:
                return conn
    raise unsupported(parsed.text)
