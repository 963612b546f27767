"""asyncio, qemu.qmp and vsh.kvm.qmp, imported only when the supervisor runs.

``import vsh.kvm.supervisor`` (for its state table) stays light; :func:`load` imports
them once, and the supervisor's modules reach them as ``aio.asyncio``, ``aio.qmp``
(vsh.kvm.qmp) and ``aio.qmplib`` (qemu.qmp).
"""

from __future__ import annotations

asyncio = None      # the asyncio module, once loaded
qmp = None          # vsh.kvm.qmp
qmplib = None       # qemu.qmp


def load(no_ssl: bool = False) -> None:
    global asyncio, qmp, qmplib
    if asyncio is not None:
        return
    from vsh.kvm import qmp as helpers
    qmplib = helpers.load(no_ssl=no_ssl)
    import asyncio as loaded
    asyncio = loaded
    qmp = helpers


def qmp_helpers():
    """vsh.kvm.qmp, also before :func:`load` (its socket helpers need no asyncio)."""
    from vsh.kvm import qmp as helpers
    return helpers
