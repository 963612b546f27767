"""The libvirt driver's :class:`~vsh.api.base.Connection`: one ``virConnectPtr``."""

from __future__ import annotations

from vsh.api.base import Connection
from vsh.api.libvirt.handles import sub_handle
from vsh.api.libvirt.lv import call, mod
from vsh.api.libvirt.states import is_uuid, state_words
from vsh.core.errors import NotFound, VshError

# virConnectListAllDomains' flags
_LIST = {"active": (1, 2), "persistent": (4, 8), "managed_save": (256, 512), "autostart": (1024, 2048),
         "snapshot": (4096, 8192)}
_LIST_STATES = {"running": 16, "paused": 32, "shutoff": 64, "other": 128}


class LibvirtConnection(Connection):
    """A connection libvirt opened; ``ptr`` is its ``virConnectPtr``."""

    enforces_readonly = True

    def __init__(self, ptr, uri: str, readonly: bool = False):
        self.ptr = ptr
        self.uri = uri
        self.readonly = readonly

    def close(self) -> None:
        ptr, self.ptr = self.ptr, None
        if ptr is not None:
            mod().virConnectClose(ptr)

    def _domain(self, ptr):
        from vsh.api.libvirt.domain import LibvirtDomain

        return LibvirtDomain(self, ptr)

    # --- lookups (virsh's virshLookupDomainBy: id, then UUID, then name) ----------------------------

    def lookup_domain(self, ident: str):
        m = mod()
        ptr = None
        if ident.isdigit():
            ptr = m.virDomainLookupByID(self.ptr, int(ident))
        if ptr is None and is_uuid(ident):
            ptr = m.virDomainLookupByUUIDString(self.ptr, ident)
        if ptr is None:
            ptr = m.virDomainLookupByName(self.ptr, ident)
        if ptr is None:
            raise NotFound(f"failed to get domain '{ident}'")
        return self._domain(ptr)

    def lookup_domain_by_id(self, id: int):
        ptr = mod().virDomainLookupByID(self.ptr, int(id))
        if ptr is None:
            raise NotFound(f"failed to get domain '{id}'")
        return self._domain(ptr)

    def lookup_domain_by_uuid(self, uuid: str):
        ptr = mod().virDomainLookupByUUIDString(self.ptr, uuid) if is_uuid(uuid) else None
        if ptr is None:
            raise NotFound(f"failed to get domain '{uuid}'")
        return self._domain(ptr)

    def list_domains(self, active=None, persistent=None, states=None, autostart=None, managed_save=None,
                     snapshot=None, details=False) -> list[dict]:
        flags = 0
        for key, value in (("active", active), ("persistent", persistent), ("managed_save", managed_save),
                           ("autostart", autostart), ("snapshot", snapshot)):
            if value is not None:
                flags |= _LIST[key][0 if value else 1]
        for state in states or ():
            flags |= _LIST_STATES[state]
        m = mod()
        ptrs = call("virConnectListAllDomains", self.ptr, flags, context=("Failed to list domains",))
        rows = []
        for ptr in ptrs:
            dom_id = m.virDomainGetID(ptr)
            state, reason = m.virDomainGetState(ptr, 0) or (0, 0)
            state_text, reason_text = state_words(state, reason)
            row = {"name": m.virDomainGetName(ptr), "id": dom_id if dom_id != -1 else None, "state": state_text,
                   "reason": reason_text, "active": dom_id != -1, "persistent": m.virDomainIsPersistent(ptr) == 1}
            if details:
                row["uuid"] = m.virDomainGetUUIDString(ptr)
                row["title"] = m.virDomainGetMetadata(ptr, 1, None, 0)
                row["managed_save"] = m.virDomainHasManagedSaveImage(ptr, 0) == 1
            rows.append(row)
            m.virDomainFree(ptr)
        rows.sort(key=lambda r: (0, r["id"], "") if r["active"] else (1, 0, r["name"].lower()))
        return rows

    def define_xml(self, xml: str, validate=False):
        flags = 1 if validate is True else 0        # VIR_DOMAIN_DEFINE_VALIDATE
        return self._domain(call("virDomainDefineXMLFlags", self.ptr, _text(xml), flags))

    # --- making running domains -----------------------------------------------------------------

    def create_xml(self, xml: str, paused: bool = False, validate: bool = False) -> dict:
        flags = (1 if paused else 0) | (4 if validate else 0)      # VIR_DOMAIN_START_PAUSED, _VALIDATE
        return self._domain(call("virDomainCreateXML", self.ptr, _text(xml), flags)).runtime() or {}

    def restore(self, path: str, xml: str | None = None, running: bool = False, paused: bool = False,
                bypass_cache: bool = False) -> dict:
        flags = (1 if bypass_cache else 0) | (2 if running else 0) | (4 if paused else 0)
        name = _name_of(xml or self.save_image_xml(path))
        call("virDomainRestoreFlags", self.ptr, path, xml, flags)
        try:
            return self.lookup_domain(name).runtime() or {}
        except VshError:
            return {"name": name}

    def save_image_xml(self, path: str) -> str:
        return call("virDomainSaveImageGetXMLDesc", self.ptr, path, 0)

    def save_image_define(self, path: str, xml: str, running: bool = False, paused: bool = False) -> bool:
        flags = (2 if running else 0) | (4 if paused else 0)       # VIR_DOMAIN_SAVE_RUNNING, _PAUSED
        call("virDomainSaveImageDefineXML", self.ptr, path, xml, flags)
        return True

    # --- sub-handles ----------------------------------------------------------------------------

    @property
    def storage(self):
        return sub_handle(self, "storage", "vsh.api.libvirt.storage", "LibvirtStorage")

    @property
    def networks(self):
        return sub_handle(self, "networks", "vsh.api.libvirt.networks", "LibvirtNetworks")

    @property
    def host(self):
        return sub_handle(self, "host", "vsh.api.libvirt.host", "LibvirtHost")

    @property
    def installer(self):
        return sub_handle(self, "installer", "vsh.api.libvirt.install", "LibvirtInstaller")

    def guest_disks(self, readonly: bool = True):
        # the images are opened in this process, as the local driver opens them: the domain's disks
        # come from its libvirt XML (LocalGuestDisks asks the connection it is given)
        from vsh.api.local.guestdisks import LocalGuestDisks

        return LocalGuestDisks(self, readonly=readonly)

    def domain_events(self, domain: str | None = None, timeout: float | None = None):
        from vsh.api.libvirt.events import domain_events

        name = self.lookup_domain(domain).name if domain is not None else None
        return domain_events(self.uri, name, timeout)

    def qemu_attach(self, pid: int):
        import libvirtmod_qemu

        from vsh.api.libvirt.lv import last_error

        m = mod()
        m.virResetLastError()
        ptr = libvirtmod_qemu.virDomainQemuAttach(self.ptr, pid, 0)
        if ptr is None:
            raise last_error()
        return self.lookup_domain(m.virDomainGetUUIDString(ptr))
    # A vsh store migrates into libvirt's QEMU only through libvirt's own migration protocol (its
    # cookies and its Prepare/Finish calls are private to libvirt's drivers): refused in libvirt's words.
    def migrate_prepare(self, xml: str, *, persistent_xml: str | None = None, paused: bool = False,
                        timeout: float = 3600.0, disks: list[dict] | None = None) -> dict:
        from vsh.api.libvirt.lv import unsupported

        raise unsupported("virDomainMigratePrepare3Params")

    def migrate_finish(self, name: str, ok: bool = True) -> dict:
        from vsh.api.libvirt.lv import unsupported

        raise unsupported("virDomainMigrateFinish3Params")

    def forward_socket(self, path: str, local_path: str):
        from vsh.api.libvirt.lv import unsupported

        raise unsupported("virDomainMigratePrepareTunnel3Params")


def _text(xml) -> str:
    """XML as text (a command may hand over the bytes of a file)."""
    return xml.decode("utf-8") if isinstance(xml, bytes) else xml


def _name_of(xml: str) -> str:
    from vsh.api.libvirt.handles import parse_xml

    return parse_xml(xml).findtext("name") or ""
