"""The local driver: the embedded store (``vsh:///session``, ``vsh:///system``,
``?root=DIR``), implemented over :mod:`vsh.core`, :mod:`vsh.kvm` and :mod:`vsh.guestfs`.

Each module implements the abstract classes of the :mod:`vsh.api` module of the same
name; :mod:`.connection` and :mod:`.domain` assemble the two main handles.
"""

from __future__ import annotations


def open(uri, readonly: bool = False):
    """A :class:`~vsh.api.local.connection.LocalConnection` for a parsed ``vsh:`` URI; None (declined)
    for one with a transport (``vsh+ssh://`` is the remote driver's)."""
    if uri.transport:
        return None
    from vsh.api.local.connection import LocalConnection
    from vsh.core.store import Store, Uri

    return LocalConnection(Store(Uri.from_uri(uri)), readonly=readonly)
