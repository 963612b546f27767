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
in :mod:`vsh.api.drivers`. Nothing here prints, parses a command line or reads a
terminal: consoles and event streams are objects the front end drives.

Importing this package is cheap (single-shot start-up pays for it): drivers are
imported when a URI names them.
"""

from __future__ import annotations


def connect(uri: str | None = None, readonly: bool = False):
    """Open a :class:`~vsh.api.base.Connection` for ``uri`` (None: the default URI)."""
    from vsh.api.drivers import open_connection

    return open_connection(uri, readonly=readonly)
