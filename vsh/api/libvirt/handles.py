"""Small helpers the libvirt driver's handles share."""

from __future__ import annotations

from vsh.api.local.handles import sub_handle  # noqa: F401  (one home for it; the local driver's)

# libvirt's VIR_DOMAIN_AFFECT_* flags
AFFECT_CURRENT, AFFECT_LIVE, AFFECT_CONFIG = 0, 1, 2


def affect(live: bool = False, config: bool = False) -> int:
    """libvirt's flags for virsh's ``--live``/``--config`` (neither: current)."""
    return (AFFECT_LIVE if live else 0) | (AFFECT_CONFIG if config else 0)


def changed(active: bool, persistent: bool, live: bool, config: bool, current: bool = False) -> dict:
    """Which definitions a call with these flags changed: ``{"live", "config"}`` (current, or no flag:
    the running definition of a running domain, else the persistent one)."""
    if current or not (live or config):
        return {"live": active, "config": not active and persistent}
    return {"live": live, "config": config}


def parse_xml(text: str):
    """The root element of an XML document libvirt produced (ElementTree: cheap to import)."""
    from xml.etree import ElementTree

    return ElementTree.fromstring(text)


class Named:
    """A handle on a libvirt object that has a name and a UUID (networks, pools): ``ptr`` is its
    pointer, ``KIND`` libvirt's prefix of its calls (``virNetwork``)."""

    KIND = ""

    def _take(self, ptr) -> None:
        from vsh.api.libvirt.lv import mod

        self.ptr = ptr
        self.name = getattr(mod(), f"{self.KIND}GetName")(ptr)
        self.uuid = getattr(mod(), f"{self.KIND}GetUUIDString")(ptr)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def _call(self, name: str, *args):
        from vsh.api.libvirt.lv import call

        return call(name, self.ptr, *args)
