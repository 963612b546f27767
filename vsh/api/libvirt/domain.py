"""The libvirt driver's :class:`~vsh.api.base.Domain`: one ``virDomainPtr``, and its definition."""

from __future__ import annotations

from vsh.api.base import Domain
from vsh.api.libvirt.states import state_words
from vsh.api.libvirt.handles import AFFECT_CONFIG, AFFECT_LIVE, affect, changed, parse_xml, sub_handle
from vsh.api.libvirt.lifecycle import LibvirtDomainLifecycle
from vsh.api.libvirt.lv import call, mod
from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid

# virDomainGetMetadata's types
_DESCRIPTION, _TITLE, _ELEMENT = 0, 1, 2
_EVENTS = {"poweroff": 0, "reboot": 1, "crash": 2}
_ACTIONS = {"destroy": 0, "restart": 1, "rename-restart": 2, "preserve": 3, "coredump-destroy": 4,
            "coredump-restart": 5}


class LibvirtDomain(LibvirtDomainLifecycle, Domain):
    """A domain of ``conn``; ``ptr`` is its ``virDomainPtr``."""

    def __init__(self, conn, ptr):
        self.conn = conn
        self.ptr = ptr
        self.name = mod().virDomainGetName(ptr)

    def __del__(self):
        ptr, self.ptr = getattr(self, "ptr", None), None
        if ptr is not None and mod is not None:
            mod().virDomainFree(ptr)

    def __repr__(self) -> str:
        return f"<LibvirtDomain {self.name!r}>"

    def _call(self, name: str, *args, context: tuple = ()):
        return call(name, self.ptr, *args, context=context)

    def active(self) -> bool:
        return mod().virDomainIsActive(self.ptr) == 1

    def persistent(self) -> bool:
        return mod().virDomainIsPersistent(self.ptr) == 1

    # --- facts -----------------------------------------------------------------------------------

    @property
    def id(self) -> int | None:
        dom_id = mod().virDomainGetID(self.ptr)
        return None if dom_id == -1 else dom_id

    def info(self) -> dict:
        m = mod()
        state, max_kib, used_kib, cpus, cpu_ns = self._call("virDomainGetInfo")
        autostart = m.virDomainGetAutostart(self.ptr)
        info = {"id": self.id, "name": self.name, "uuid": self.uuid(), "os_type": m.virDomainGetOSType(self.ptr),
                "state": state_words(state, 0)[0], "cpus": cpus, "cpu_time": cpu_ns / 1e9 if cpu_ns else None,
                "max_memory_kib": max_kib, "used_memory_kib": used_kib, "persistent": self.persistent(),
                "autostart": autostart == 1, "managed_save": m.virDomainHasManagedSaveImage(self.ptr, 0) == 1}
        model = m.virNodeGetSecurityModel(self.conn.ptr)
        if model and model[0]:
            label = m.virDomainGetSecurityLabel(self.ptr) or ["", False]
            info["security"] = {"model": model[0], "doi": model[1], "label": label[0] or None,
                                "enforcing": bool(label[1])}
        messages = m.virDomainGetMessages(self.ptr, 0)     # taint and deprecation notes (libvirt >= 7.1)
        if messages:
            info["messages"] = list(messages)
        return info

    def uuid(self) -> str | None:
        return mod().virDomainGetUUIDString(self.ptr)

    def state(self) -> tuple[str, str]:
        state, reason = self._call("virDomainGetState", 0)
        return state_words(state, reason)

    def xml(self, inactive: bool = False) -> str:
        return self._call("virDomainGetXMLDesc", 2 if inactive else 0)     # VIR_DOMAIN_XML_INACTIVE

    def _tree(self, inactive: bool = False):
        return parse_xml(self.xml(inactive=inactive))

    # --- the definition ----------------------------------------------------------------------------

    def undefine(self, managed_save=False, snapshots_metadata=False, nvram=False, keep_nvram=False,
                 remove_all_storage=False, dry_run=False) -> dict:
        from vsh.api.libvirt.storage import domain_volumes

        result = {"name": self.name, "removed": [], "failed": [], "kept": [], "manager": "libvirt"}
        volumes = []
        if remove_all_storage:
            if self.active():
                raise OperationInvalid("Storage volume deletion is supported only on stopped domains")
            volumes, result["kept"] = domain_volumes(self.conn, self._tree(inactive=True))
        if dry_run:
            result["removed"] = [{"target": t, "path": p} for t, p, _vol in volumes]
            return result
        flags = (1 if managed_save else 0) | (2 if snapshots_metadata else 0) | (4 if nvram else 0) \
            | (8 if keep_nvram else 0)
        context = (f"Failed to undefine domain '{self.name}'",)
        if flags:
            self._call("virDomainUndefineFlags", flags, context=context)
        else:
            self._call("virDomainUndefine", context=context)
        for target, path, vol in volumes:
            try:
                call("virStorageVolDelete", vol, 0)
                result["removed"].append({"target": target, "path": path})
            except Exception as err:        # a VshError with libvirt's message
                result["failed"].append({"target": target, "path": path, "error": str(err).splitlines()[-1]})
        return result

    def set_autostart(self, enabled: bool) -> None:
        verb = "mark" if enabled else "unmark"
        self._call("virDomainSetAutostart", 1 if enabled else 0,
                   context=(f"Failed to {verb} domain '{self.name}' as autostarted",))

    def rename(self, new_name: str) -> None:
        self._call("virDomainRename", new_name, 0)
        self.name = new_name

    def metadata(self, title: bool = False, live: bool = False, config: bool = False) -> str | None:
        m = mod()
        m.virResetLastError()
        text = m.virDomainGetMetadata(self.ptr, _TITLE if title else _DESCRIPTION, None, affect(live, config))
        if text is None:
            err = m.virGetLastError()
            if err is not None and err[0] != 80:          # VIR_ERR_NO_DOMAIN_METADATA: there is none
                from vsh.api.libvirt.lv import last_error

                raise last_error()
        return text

    def set_metadata(self, text: str | None, title: bool = False, live: bool = False, config: bool = False) -> None:
        self._call("virDomainSetMetadata", _TITLE if title else _DESCRIPTION, text or None, None, None,
                   affect(live, config))

    def metadata_element(self, uri: str, live: bool = False, config: bool = False) -> str:
        return self._call("virDomainGetMetadata", _ELEMENT, uri, affect(live, config))

    def set_metadata_element(self, uri: str, key: str | None, xml: str | None, live: bool = False,
                             config: bool = False) -> dict:
        self._call("virDomainSetMetadata", _ELEMENT, xml, key, uri, affect(live, config))
        return changed(self.active(), self.persistent(), live, config)

    def set_lifecycle_action(self, event: str, action: str, live: bool = False, config: bool = False,
                             current: bool = False) -> dict:
        if event not in _EVENTS:
            raise InvalidArgument(f"Invalid lifecycle type '{event}'.")
        if action not in _ACTIONS:
            raise InvalidArgument(f"Invalid lifecycle action '{action}'.")
        self._call("virDomainSetLifecycleAction", _EVENTS[event], _ACTIONS[action], affect(live, config))
        return changed(self.active(), self.persistent(), live, config, current)

    # --- interfaces and disks, from the XML ----------------------------------------------------------

    def _interface(self, iface: str, inactive: bool):
        matches = []
        for nic in self._tree(inactive).iter("interface"):
            mac = nic.find("mac")
            target = nic.find("target")
            if (mac is not None and mac.get("address", "").lower() == iface.lower()) or \
                    (target is not None and target.get("dev") == iface):
                matches.append(nic)
        if not matches:
            kind = "mac" if len(iface) == 17 and iface.count(":") == 5 else "target"
            raise NotFound(f"interface ({kind}: {iface}) not found")
        if len(matches) > 1:
            raise OperationInvalid(f"multiple matching interfaces found: {iface}")
        return matches[0]

    def interface_link(self, iface: str, inactive: bool = False) -> dict:
        nic = self._interface(iface, inactive)
        link = nic.find("link")
        return {"interface": iface, "mac": nic.find("mac").get("address") if nic.find("mac") is not None else None,
                "state": link.get("state", "up") if link is not None else "up"}

    def set_interface_link(self, iface: str, state: str, config: bool = False) -> dict:
        from xml.etree import ElementTree

        if state not in ("up", "down"):
            raise InvalidArgument("invalid link state '%s'" % state)
        inactive = config or not self.active()
        nic = self._interface(iface, inactive)
        link = nic.find("link")
        if link is None:
            link = ElementTree.SubElement(nic, "link")
        link.set("state", state)
        flags = AFFECT_CONFIG if inactive else AFFECT_LIVE
        self._call("virDomainUpdateDeviceFlags", ElementTree.tostring(nic, encoding="unicode"), flags,
                   context=("Failed to update interface link state",))
        return {"live": not inactive, "config": inactive}

    def block_devices(self, inactive: bool = False) -> list[dict]:
        out = []
        for disk in self._tree(inactive).iter("disk"):
            src = disk.find("source")
            target = disk.find("target")
            source = None
            if src is not None:
                source = next((src.get(a) for a in ("file", "dev", "dir", "name", "volume", "path") if src.get(a)),
                              None)
            out.append({"type": disk.get("type"), "device": disk.get("device"),
                        "target": target.get("dev") if target is not None else None, "source": source,
                        "bus": target.get("bus") if target is not None else None})
        return out

    def interfaces(self, inactive: bool = False) -> list[dict]:
        out = []
        for nic in self._tree(inactive).iter("interface"):
            src = nic.find("source")
            source = None
            if src is not None:
                source = next((src.get(a) for a in ("bridge", "dev", "network", "name", "path") if src.get(a)), None)

            def attr(tag, name, nic=nic):
                el = nic.find(tag)
                return el.get(name) if el is not None else None

            out.append({"interface": attr("target", "dev"), "type": nic.get("type"), "source": source,
                        "model": attr("model", "type"), "mac": attr("mac", "address")})
        return out

    # --- vCPUs and memory --------------------------------------------------------------------------

    def vcpu_counts(self, guest: bool = False) -> dict:
        if guest:
            count = self._call("virDomainGetVcpusFlags", 8)          # VIR_DOMAIN_VCPU_GUEST
            return {"config": None, "live": {"maximum": count, "current": count}}
        out = {"config": None, "live": None}
        if self.persistent():
            out["config"] = {"maximum": self._call("virDomainGetVcpusFlags", AFFECT_CONFIG | 4),
                             "current": self._call("virDomainGetVcpusFlags", AFFECT_CONFIG)}
        if self.active():
            out["live"] = {"maximum": self._call("virDomainGetVcpusFlags", AFFECT_LIVE | 4),
                           "current": self._call("virDomainGetVcpusFlags", AFFECT_LIVE)}
        return out

    def set_memory(self, kib: int, live: bool = False, config: bool = False, current: bool = False) -> dict:
        self._call("virDomainSetMemoryFlags", kib, affect(live, config))
        return changed(self.active(), self.persistent(), live, config, current)

    def set_max_memory(self, kib: int, live: bool = False, config: bool = False, current: bool = False) -> dict:
        self._call("virDomainSetMemoryFlags", kib, affect(live, config) | 4)    # VIR_DOMAIN_MEM_MAXIMUM
        return changed(self.active(), self.persistent(), live, config, current)

    def set_vcpus(self, count: int, maximum: bool = False, live: bool = False, config: bool = False,
                  current: bool = False, guest: bool = False, hotpluggable: bool = False) -> dict:
        flags = affect(live, config) | (4 if maximum else 0) | (8 if guest else 0) | (16 if hotpluggable else 0)
        self._call("virDomainSetVcpusFlags", count, flags)
        return changed(self.active(), self.persistent(), live, config, current)

    def set_vcpu(self, vcpus: list[int], enable: bool, live: bool = False, config: bool = False,
                 current: bool = False) -> dict:
        self._call("virDomainSetVcpu", ",".join(str(n) for n in vcpus), 1 if enable else 0, affect(live, config))
        return changed(self.active(), self.persistent(), live, config, current)

    # --- sub-handles -------------------------------------------------------------------------------

    @property
    def devices(self):
        return sub_handle(self, "devices", "vsh.api.libvirt.devices", "LibvirtDomainDevices")

    @property
    def stats(self):
        return sub_handle(self, "stats", "vsh.api.libvirt.stats", "LibvirtDomainStats")

    @property
    def snapshots(self):
        return sub_handle(self, "snapshots", "vsh.api.libvirt.snapshots", "LibvirtDomainSnapshots")

    @property
    def display(self):
        return sub_handle(self, "display", "vsh.api.libvirt.display", "LibvirtDomainDisplay")

    @property
    def block_jobs(self):
        return sub_handle(self, "block_jobs", "vsh.api.libvirt.blockjobs", "LibvirtDomainBlockJobs")

    @property
    def tuning(self):
        return sub_handle(self, "tuning", "vsh.api.libvirt.tuning", "LibvirtDomainTuning")

    @property
    def agent(self):
        return sub_handle(self, "agent", "vsh.api.libvirt.agent", "LibvirtDomainAgent")
