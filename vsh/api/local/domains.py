"""Definitions in the store: lookup, listing, define, undefine, the XML and its facts."""

from __future__ import annotations

import os

from vsh.api.domains import ConnectionDomains, DomainConfig
from vsh.core import journal
from vsh.core.errors import VshError
from vsh.core.store import DomainRef

STATE_NAMES = {
    "running": "running", "paused": "paused", "shutoff": "shut off", "crashed": "crashed",
    "starting": "running", "shutdown": "in shutdown", "pmsuspended": "pmsuspended", "blocked": "idle",
    "crashed-preserved": "crashed",
}


def canonical_machine(dom) -> None:
    """``<os><type machine>``: the machine type an alias stands for (pc → pc-i440fx-7.2), as
    libvirt writes it on define (vsh.kvm.host.machines)."""
    if dom.os_machine:
        from vsh.kvm.host.machines import canonical_machine as canonical

        dom.os_machine = canonical(dom.os_machine)


def default_emulator(dom) -> None:
    """``<devices><emulator>``: the host's QEMU, as libvirt writes it on define (none when QEMU is missing)."""
    devs = dom.node.find("devices")
    if devs is None or devs.find("emulator") is not None:
        return
    from vsh.kvm.host.qemu import find_qemu

    qemu = find_qemu()
    if qemu:
        from vsh.core.lxmlload import etree

        el = etree.Element("emulator")
        el.text = qemu
        devs.insert(0, el)


def device_addresses(dom) -> None:
    """The drive and PCI addresses of the devices that have none, as libvirt writes them on define."""
    from vsh.kvm.argv.addresses import write_addresses

    write_addresses(dom.node)


def as_defined(dom) -> None:
    """Make ``dom`` what define (and create) writes: the canonical machine type, libvirt's
    defaults, checked, then the device addresses."""
    canonical_machine(dom)
    dom.fill_defaults()
    default_emulator(dom)
    dom.validate()
    device_addresses(dom)


def nvram_of(store, name: str, dom) -> str | None:
    """The UEFI variable store of a domain: its <nvram>, or for firmware='efi' the default path."""
    path = (dom.node.findtext("os/nvram") or "").strip()
    if path:
        return path
    if dom.node.find("os[@firmware='efi']") is not None or dom.node.find("os/nvram[@template]") is not None:
        from vsh.api.local.launch import default_nvram

        return default_nvram(store, name)
    return None


#: (state, the supervisor's reason) → virsh's word for the reason, where the two differ
REASON_WORDS = {("paused", "ioerror"): "I/O error", ("paused", "migration"): "migrating",
                ("paused", "dump"): "dumping", ("paused", "shutdown"): "shutting down",
                ("paused", "snapshot"): "creating snapshot", ("running", "wakeup"): "event wakeup"}


def state_text(ref) -> str:
    """virsh's words for a domain's state (``shut off``, ``in shutdown``...)."""
    return STATE_NAMES.get(ref.state, ref.state)


def managed_save_path(store, name: str):
    return store.data_dir / "managedsave" / f"{name}.save"


def has_managed_save(store, name: str) -> bool:
    return os.path.exists(store.data_file("managedsave", f"{name}.save"))  # no pathlib on the query path


def cpu_time_seconds(runtime) -> float:
    """CPU time of the QEMU process (user + system), from /proc."""
    pid = runtime.data.get("qemu_pid") if runtime else None
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(b")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


SCHEMA = "/usr/share/libvirt/schemas/domain.rng"


def check_schema(dom) -> None:
    """Validate ``dom`` against libvirt's RelaxNG schema (Debian's libvirt0 installs it)."""
    from vsh.core.errors import Unsupported, XMLError

    schema_path = SCHEMA
    if not os.path.exists(schema_path):
        raise Unsupported("libvirt's RelaxNG schema is not installed (Debian package libvirt0)")
    from vsh.core.lxmlload import etree

    schema = etree.RelaxNG(etree.parse(schema_path))
    doc = etree.fromstring(dom.to_xml(inactive=True).encode())
    if not schema.validate(doc):
        err = schema.error_log.last_error
        raise XMLError(f"XML document failed to validate against schema: {err.message} (line {err.line})")


def _has_snapshot(store, name: str) -> bool:
    try:
        return any(entry.endswith(".xml") and not entry.startswith(".") for entry in os.listdir(store.data_file("snapshots", name)))
    except (FileNotFoundError, NotADirectoryError):
        return False


def watched(store, ref):
    """``ref`` as read, or, when its QEMU runs with no supervisor (it died), re-read once a new
    supervisor has taken over and caught up (:func:`vsh.kvm.client.supervise`): every query
    (list, domstate, dominfo, console) goes through here.  Free when the supervisor lives
    (the reader already checked it) or the domain is shut off."""
    runtime = ref.runtime
    if runtime is None or not runtime.data.get("unsupervised"):
        return ref
    from vsh.kvm import client

    try:
        client.supervise(store.runtime_path(ref.name))
    except VshError:
        pass        # left as read: an operation on the domain reports why
    ref.runtime = store.runtime(ref.name)
    return ref


def _ref_id(ref) -> int:
    return ref.id or 0


def _row(ref) -> dict:
    return {"name": ref.name, "id": ref.id, "state": state_text(ref), "reason": ref.reason,
            "active": ref.active, "persistent": ref.persistent}


_NAMED = ("running", "paused", "shutoff")


def _passes(store, ref, active, persistent, states, autostart, managed_save, snapshot) -> bool:
    """Whether a domain passes list's filters (None: either way)."""
    if not (ref.persistent or ref.active):
        return False        # a transient domain that stopped while nobody watched
    if active is not None and ref.active != active:
        return False
    if persistent is not None and ref.persistent != persistent:
        return False
    if states is not None and not (ref.state in states or ("other" in states and ref.state not in _NAMED)):
        return False
    if autostart is not None and store.autostart(ref.name) != autostart:
        return False
    if managed_save is not None and has_managed_save(store, ref.name) != managed_save:
        return False
    return snapshot is None or _has_snapshot(store, ref.name) == snapshot


class LocalConnectionDomains(ConnectionDomains):
    store = None        # set by LocalConnection

    def lookup_domain_by_id(self, id: int):
        for ref in self.store.refs():
            if ref.active and ref.id == int(id):
                return self.lookup_domain(ref.name)
        from vsh.core.errors import NotFound

        raise NotFound(f"failed to get domain '{id}'")

    def lookup_domain_by_uuid(self, uuid: str):
        from vsh.core.errors import NotFound

        ref = self.store.find(uuid)
        if ref is None:
            raise NotFound(f"failed to get domain '{uuid}'")
        return self.lookup_domain(ref.name)

    def list_domains(self, active=None, persistent=None, states=None, autostart=None, managed_save=None,
                     snapshot=None, details=False) -> list[dict]:
        store = self.store
        quiet, refs = store.refs_split()
        # a defined domain with no runtime directory is shut off, persistent, has no id: only its
        # name is kept (10,000 of them cost a few ms; an object and a dict each, ten times that)
        if active is True or persistent is False or (states is not None and "shutoff" not in states):
            quiet = []          # none of them passes
        elif autostart is not None or managed_save is not None or snapshot is not None:
            refs += [DomainRef(name, True, None) for name in quiet]
            quiet = []
        chosen = [ref for ref in refs if _passes(store, watched(store, ref), active, persistent, states,
                                                 autostart, managed_save, snapshot)]
        running = sorted((ref for ref in chosen if ref.active), key=_ref_id)
        by_name = {ref.name: ref for ref in chosen}
        names = quiet + [ref.name for ref in chosen if not ref.active]
        names.sort(key=str.lower)
        out = [_row(ref) for ref in running]
        out += [_row(by_name[name]) if name in by_name else
                {"name": name, "id": None, "state": "shut off", "reason": "unknown", "active": False,
                 "persistent": True} for name in names]
        if details:
            for row in out:
                ref = by_name.get(row["name"]) or DomainRef(row["name"], True, None)
                try:
                    facts = store.facts(ref)
                    row["uuid"], row["title"] = facts["uuid"], facts["title"]
                except VshError:
                    row["uuid"] = row["title"] = None
                row["managed_save"] = has_managed_save(store, row["name"])
        return out

    def define_xml(self, xml: str, validate=False):
        from vsh.core.domain import Domain

        dom = Domain.parse(xml)
        if validate is True or (validate == "if-installed" and os.path.exists(SCHEMA)):
            check_schema(dom)
        as_defined(dom)
        added = self.store.define(dom)
        journal.record(self.store.run_root, dom.name, "lifecycle", "Defined", "Added" if added else "Updated")
        return self.lookup_domain(dom.name)


class LocalDomainConfig(DomainConfig):
    store = None        # set by LocalDomain
    ref = None

    def info(self) -> dict:
        store, ref = self.store, self.ref
        facts = store.facts(ref)
        active = ref.active
        vcpus = facts["vcpus_current"]
        maxmem = facts["memory_kib"]
        used = facts["current_memory_kib"] if facts["current_memory_kib"] is not None else maxmem
        if active and ref.runtime is not None:
            used = ref.runtime.data.get("balloon_kib") or used
            vcpus = ref.runtime.data.get("vcpus") or vcpus
        return {"id": ref.id, "name": ref.name, "uuid": facts["uuid"], "os_type": facts["os_type"],
                "state": state_text(ref), "cpus": vcpus,
                "cpu_time": cpu_time_seconds(ref.runtime) if active else None,
                "max_memory_kib": maxmem, "used_memory_kib": used, "persistent": ref.persistent,
                "autostart": store.autostart(ref.name), "managed_save": has_managed_save(store, ref.name)}

    def uuid(self) -> str | None:
        return self.store.facts(self.ref)["uuid"]

    def state(self) -> tuple[str, str]:
        ref = self.ref
        why = ref.reason if ref.runtime is not None else "unknown"
        why = REASON_WORDS.get((ref.state, why), why)
        if not ref.active and ref.runtime is not None and ref.runtime.data.get("state") == "crashed":
            why = "crashed"
        if not ref.active and has_managed_save(self.store, ref.name):
            why = "saved"
        return state_text(ref), why

    def xml(self, inactive: bool = False) -> str:
        ref = self.ref
        return self.store.load(ref, inactive=inactive).to_xml(inactive=inactive or not ref.active)

    def undefine(self, managed_save=False, snapshots_metadata=False, nvram=False, keep_nvram=False,
                 remove_all_storage=False, dry_run=False) -> dict:
        from vsh.core.errors import OperationInvalid

        store, ref = self.store, self.ref
        if not ref.persistent:
            raise OperationInvalid(f"Failed to undefine domain '{ref.name}'",
                                   "Requested operation is not valid: cannot undefine transient domain")
        removable, kept = [], []
        if remove_all_storage:
            if ref.active:
                raise OperationInvalid("Storage volume deletion is supported only on stopped domains")
            from vsh.core.pools import removable_storage

            removable, kept = removable_storage(store, ref.name, store.load(ref, inactive=True))
        result = {"name": ref.name, "removed": [], "failed": [],
                  "kept": [{"target": t, "path": p, "reason": why} for t, p, why in kept]}
        if dry_run:
            result["removed"] = [{"target": t, "path": p} for t, p, _vol in removable]
            return result
        msave = managed_save_path(store, ref.name)
        if msave.exists() and not managed_save:
            raise OperationInvalid(f"Failed to undefine domain '{ref.name}'",
                                   "Requested operation is not valid: Refusing to undefine while domain managed "
                                   "save image exists", hint="add --managed-save to remove it too")
        from vsh.core.snapshots import SnapshotStore

        snaps = SnapshotStore(store, ref.name)
        if snaps.names() and not snapshots_metadata:
            raise OperationInvalid(f"Failed to undefine domain '{ref.name}'",
                                   f"Requested operation is not valid: cannot delete inactive domain with "
                                   f"{len(snaps.names())} snapshots",
                                   hint="add --snapshots-metadata to forget them (their images stay)")
        nvram_file = nvram_of(store, ref.name, store.load(ref, inactive=True))
        if nvram_file and os.path.exists(nvram_file) and not (nvram or keep_nvram):
            raise OperationInvalid(f"Failed to undefine domain '{ref.name}'",
                                   "Requested operation is not valid: cannot undefine domain with nvram",
                                   hint="add --nvram to remove it too, or --keep-nvram")
        store.undefine(ref)
        journal.record(store.run_root, ref.name, "lifecycle", "Undefined", "Removed")
        if nvram and nvram_file and os.path.exists(nvram_file):
            os.unlink(nvram_file)
        if snapshots_metadata:
            snaps.remove_all()
        if managed_save and msave.exists():
            msave.unlink()
        if removable:
            from vsh.core.pools import Pools

            pools = Pools(store, init=False)
        for target, path, vol in removable:
            try:
                pools.delete(vol)
                result["removed"].append({"target": target, "path": path})
            except VshError as err:
                result["failed"].append({"target": target, "path": path, "error": err.lines[-1]})
        return result

    def set_autostart(self, enabled: bool) -> None:
        from vsh.core.errors import OperationInvalid

        ref = self.ref
        if not ref.persistent:
            raise OperationInvalid(f"Failed to {'mark' if enabled else 'unmark'} domain '{ref.name}' as autostarted",
                                   "Requested operation is not valid: cannot set autostart for transient domain")
        self.store.set_autostart(ref.name, enabled)

    def rename(self, new_name: str) -> None:
        old = self.ref.name
        self.store.rename(self.ref, new_name)
        journal.record(self.store.run_root, old, "lifecycle", "Undefined", "Renamed")
        journal.record(self.store.run_root, new_name, "lifecycle", "Defined", "Renamed")
        self.name = new_name
        self.refresh()

    def block_devices(self, inactive: bool = False) -> list[dict]:
        return [{"type": disk.type, "device": disk.device, "target": disk.target_dev, "source": disk.source,
                 "bus": disk.target_bus} for disk in self.store.load(self.ref, inactive=inactive).disks]

    def interfaces(self, inactive: bool = False) -> list[dict]:
        return [{"interface": nic.target_dev, "type": nic.type, "source": nic.source, "model": nic.model,
                 "mac": nic.mac} for nic in self.store.load(self.ref, inactive=inactive).interfaces]
