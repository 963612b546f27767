"""A running domain's live XML (``live.xml`` in its run directory) as the supervisor changes it:
hot-plug (:mod:`vsh.kvm.hotplug`) and the channels' state (:mod:`vsh.kvm.channels`) each read it,
change it and write it back under one lock."""

from __future__ import annotations

from vsh.core.errors import VshError


def live_lock(sup):
    """The supervisor's lock of every read-change-write of its live XML."""
    import asyncio

    lock = getattr(sup, "_live_xml_lock", None)
    if lock is None:
        lock = sup._live_xml_lock = asyncio.Lock()
    return lock


def read_live(sup):
    from vsh.core import runtime as rt
    from vsh.core.domain import Domain

    try:
        with open(sup.rundir / rt.LIVE_XML, "rb") as fh:
            return Domain.parse(fh.read(), "live.xml")
    except FileNotFoundError:
        raise VshError(f"internal error: domain '{sup.name}' has no live XML "
                       f"({sup.rundir / rt.LIVE_XML})") from None


def write_live(sup, dom) -> None:
    from vsh.core import runtime as rt

    rt.write_text_atomic(sup.rundir / rt.LIVE_XML, dom.to_xml())
