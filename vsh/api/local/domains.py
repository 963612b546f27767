"""Definitions in the store: lookup, listing, define, undefine, the XML and its facts."""

from __future__ import annotations

import os

from vsh.api.domains import ConnectionDomains, DomainConfig

STATE_NAMES = {
    "running": "running", "paused": "paused", "shutoff": "shut off", "crashed": "crashed",
    "starting": "running", "shutdown": "in shutdown", "pmsuspended": "pmsuspended", "blocked": "idle",
    "crashed-preserved": "crashed",
}


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


def check_schema(dom) -> None:
    """Validate ``dom`` against libvirt's RelaxNG schema (Debian's libvirt0 installs it)."""
    from vsh.core.errors import Unsupported, XMLError

    schema_path = "/usr/share/libvirt/schemas/domain.rng"
    if not os.path.exists(schema_path):
        raise Unsupported("libvirt's RelaxNG schema is not installed (Debian package libvirt0)")
    from lxml import etree

    schema = etree.RelaxNG(etree.parse(schema_path))
    doc = etree.fromstring(dom.to_xml(inactive=True).encode())
    if not schema.validate(doc):
        err = schema.error_log.last_error
        raise XMLError(f"XML document failed to validate against schema: {err.message} (line {err.line})")


class LocalConnectionDomains(ConnectionDomains):
    store = None        # set by LocalConnection

    def list_domains(self) -> list[dict]:
        return [{"name": ref.name, "id": ref.id, "state": ref.state, "reason": ref.reason,
                 "active": ref.active, "persistent": ref.persistent} for ref in self.store.refs()]


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

    def xml(self, inactive: bool = False) -> str:
        ref = self.ref
        return self.store.load(ref, inactive=inactive).to_xml(inactive=inactive or not ref.active)
