"""Domain definitions and queries: define, undefine, list, dumpxml, dominfo, domstate, ..."""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, VshError, XMLError
from vsh.core.output import KeyValue, Lines, Message, Table, Text
from vsh.registry import Opt, command
from vsh.api.local.domains import (check_schema, cpu_time_seconds, has_managed_save,  # noqa: F401
                                   managed_save_path, state_text)

DOMAIN = Opt("domain", kind="domain", required=True, positional=True, help="domain name, id or uuid")

def load_domain(ctx, ident: str, inactive: bool = False):
    store = ctx.store
    ref = store.get(ident)
    return ref, store.load(ref, inactive=inactive)


# -- define / undefine -------------------------------------------------------------------------


@command("define", group="domain", summary="define (but don't start) a domain from an XML file",
         opts=[Opt("file", kind="file", required=True, positional=True, help="file containing an XML domain description"),
               Opt("validate", kind="bool", help="validate the XML against libvirt's schema (when installed)")],
         mutating=True, examples=("define vm1.xml",))
def define(ctx, file, validate=False):
    from vsh.core.domain import Domain
    from vsh.core.store import read_input_file

    data = read_input_file(file)
    try:
        dom = Domain.parse(data)
        if validate:
            check_schema(dom)
        ctx.store.define(dom)
    except VshError as err:
        raise err.with_context(f"Failed to define domain from {file}") from None
    return Message(f"Domain '{dom.name}' defined from {file}", json_data={"name": dom.name, "uuid": dom.uuid})


@command("undefine", group="domain", summary="undefine a domain",
         opts=[DOMAIN,
               Opt("managed-save", kind="bool", help="remove the domain's managed save image too"),
               Opt("snapshots-metadata", kind="bool", help="remove the domain's snapshot metadata too"),
               Opt("nvram", kind="bool", help="remove the NVRAM file too"),
               Opt("keep-nvram", kind="bool", help="keep the NVRAM file"),
               Opt("remove-all-storage", kind="bool", help="remove the volumes of the domain that no other domain uses"),
               Opt("dry-run", kind="bool", help="with --remove-all-storage: only list what would be removed")],
         mutating=True)
def undefine(ctx, domain, managed_save=False, snapshots_metadata=False, nvram=False, keep_nvram=False,
             remove_all_storage=False, dry_run=False):
    store = ctx.store
    ref = store.get(domain)
    if not ref.persistent:
        raise OperationInvalid(f"Failed to undefine domain '{ref.name}'",
                               "Requested operation is not valid: cannot undefine transient domain")
    dom = store.load(ref, inactive=True)
    removable, kept = [], []
    if remove_all_storage:
        if ref.active:
            raise OperationInvalid("Storage volume deletion is supported only on stopped domains")
        removable, kept = _unshared_storage(store, ref.name, dom)
        if dry_run:
            _unmanaged_errors(ctx, kept)
            return Lines([path for _t, path, _v in removable],
                         json_data={"would_remove": [path for _t, path, _v in removable],
                                    "kept": [{"target": t, "path": p, "reason": why} for t, p, why in kept]})
    msave = managed_save_path(store, ref.name)
    if msave.exists() and not managed_save:
        raise OperationInvalid(f"Failed to undefine domain '{ref.name}'",
                               "Requested operation is not valid: Refusing to undefine while domain managed save image exists",
                               hint="add --managed-save to remove it too")
    from vsh.core.snapshots import SnapshotStore

    snaps = SnapshotStore(store, ref.name)
    if snaps.names() and not snapshots_metadata:
        raise OperationInvalid(f"Failed to undefine domain '{ref.name}'",
                               f"Requested operation is not valid: cannot delete inactive domain with "
                               f"{len(snaps.names())} snapshots",
                               hint="add --snapshots-metadata to forget them (their images stay)")
    _unmanaged_errors(ctx, kept)
    store.undefine(ref)
    if snapshots_metadata:
        snaps.remove_all()
    if managed_save and msave.exists():
        msave.unlink()
    parts = [Message(f"Volume '{target}'({path}) kept: {why}.") for target, path, why in kept if why != "unmanaged"]
    removed = []
    for target, path, vol in removable:
        try:
            from vsh.core.pools import Pools

            Pools(store, init=False).delete(vol)
            removed.append(path)
            parts.append(Message(f"Volume '{target}'({path}) removed."))
        except VshError as err:
            _storage_error(ctx, f"Failed to remove storage volume '{target}'({path}): {err.lines[-1]}")
    data = {"name": ref.name, "removed": removed}
    if remove_all_storage:
        data["kept"] = [{"target": t, "path": p, "reason": why} for t, p, why in kept]
    msg = Message(f"Domain '{ref.name}' has been undefined", json_data=data)
    if parts:
        from vsh.core.output import Many

        return Many([msg] + parts, json_data=data)
    return msg


def _unshared_storage(store, name: str, dom) -> tuple[list, list]:
    """(remove, keep) for --remove-all-storage: pool volumes of ``dom`` that no other domain uses
    (see vsh.core.pools.removable_storage); ``keep`` says why the others stay."""
    from vsh.core.pools import removable_storage

    return removable_storage(store, name, dom)


def _unmanaged_errors(ctx, kept: list) -> None:
    for target, path, why in kept:
        if why == "unmanaged":
            _storage_error(ctx, f"Storage volume '{target}'({path}) is not managed by vsh. Remove it manually.")


def _storage_error(ctx, line: str) -> None:
    """virsh reports storage it leaves behind as an error line, and the undefine still succeeds."""
    import sys

    out, err = ctx.out or sys.stdout, ctx.err or sys.stderr
    out.flush()
    err.write(f"error: {line}\n")
    err.flush()




# -- list ----------------------------------------------------------------------------------------


@command("list", group="monitor", summary="list domains",
         opts=[Opt("inactive", kind="bool", help="list inactive domains"),
               Opt("all", kind="bool", help="list inactive & active domains"),
               Opt("transient", kind="bool", help="list transient domains"),
               Opt("persistent", kind="bool", help="list persistent domains"),
               Opt("with-snapshot", kind="bool", help="list domains with existing snapshot"),
               Opt("without-snapshot", kind="bool", help="list domains without a snapshot"),
               Opt("state-running", kind="bool", help="list domains in running state"),
               Opt("state-paused", kind="bool", help="list domains in paused state"),
               Opt("state-shutoff", kind="bool", help="list domains in shutoff state"),
               Opt("state-other", kind="bool", help="list domains in other states"),
               Opt("autostart", kind="bool", help="list domains with autostart enabled"),
               Opt("no-autostart", kind="bool", help="list domains with autostart disabled"),
               Opt("with-managed-save", kind="bool", help="list domains with managed save state"),
               Opt("without-managed-save", kind="bool", help="list domains without managed save"),
               Opt("uuid", kind="bool", help="list uuid's only"),
               Opt("name", kind="bool", help="list domain names only"),
               Opt("id", kind="bool", help="list domain IDs only"),
               Opt("table", kind="bool", help="list table (default)"),
               Opt("managed-save", kind="bool", help="mark inactive domains with managed save state"),
               Opt("title", kind="bool", help="show domain title")],
         exclusive=(("table", "name"), ("table", "uuid"), ("table", "id")))
def list_(ctx, inactive=False, all=False, transient=False, persistent=False, with_snapshot=False,
          without_snapshot=False, state_running=False, state_paused=False, state_shutoff=False,
          state_other=False, autostart=False, no_autostart=False, with_managed_save=False,
          without_managed_save=False, uuid=False, name=False, id=False, table=False, managed_save=False,
          title=False):
    store = ctx.store
    refs = store.refs()
    want_active = not inactive or all
    want_inactive = inactive or all
    states = [s for s, flag in (("running", state_running), ("paused", state_paused),
                                 ("shutoff", state_shutoff)) if flag]
    if states or state_other:
        want_active = want_inactive = True
    rows = []
    for ref in refs:
        if ref.active and not want_active:
            continue
        if not ref.active and not want_inactive:
            continue
        if states or state_other:
            st = ref.state
            if not ((st in states) or (state_other and st not in ("running", "paused", "shutoff"))):
                continue
        if transient and not persistent and ref.persistent:
            continue
        if persistent and not transient and not ref.persistent:
            continue
        if autostart or no_autostart:
            enabled = store.autostart(ref.name)
            if autostart and not no_autostart and not enabled:
                continue
            if no_autostart and not autostart and enabled:
                continue
        if with_managed_save or without_managed_save:
            saved = has_managed_save(store, ref.name)
            if with_managed_save and not without_managed_save and not saved:
                continue
            if without_managed_save and not with_managed_save and saved:
                continue
        if with_snapshot or without_snapshot:
            snapdir = store.data_dir / "snapshots" / ref.name
            has = snapdir.is_dir() and any(snapdir.glob("*.xml"))
            if with_snapshot and not without_snapshot and not has:
                continue
            if without_snapshot and not with_snapshot and has:
                continue
        rows.append(ref)
    rows.sort(key=lambda r: (0, r.id or 0, "") if r.active else (1, 0, r.name.lower()))
    need_xml = uuid or title or ctx.json
    doms = {}
    if need_xml:
        for ref in rows:
            try:
                doms[ref.name] = store.load(ref)
            except VshError:
                doms[ref.name] = None

    def state_of(ref):
        if not ref.active and managed_save and has_managed_save(store, ref.name):
            return "saved"
        return state_text(ref)

    json_rows = None
    if ctx.json or True:
        json_rows = [{"id": ref.id, "name": ref.name, "state": state_of(ref),
                      "uuid": (doms.get(ref.name).uuid if doms.get(ref.name) is not None else None) if need_xml else None,
                      "persistent": ref.persistent,
                      **({"title": (doms.get(ref.name).title if doms.get(ref.name) is not None else None) or ""}
                         if title else {})}
                     for ref in rows]
    if uuid or name or id:
        lines = []
        for ref in rows:
            if id and not ref.active:
                continue
            fields = []
            if id:
                fields.append(str(ref.id))
            if uuid:
                dom = doms.get(ref.name)
                fields.append(dom.uuid if dom is not None else "")
            if name:
                fields.append(ref.name)
            lines.append(" ".join(fields))
        return Lines(lines, json_data=json_rows)
    headers = ["Id", "Name", "State"] + (["Title"] if title else [])
    table_rows = []
    for ref in rows:
        row = [str(ref.id) if ref.active else "-", ref.name, state_of(ref)]
        if title:
            dom = doms.get(ref.name)
            row.append((dom.title or "") if dom is not None else "")
        table_rows.append(row)
    return Table(headers, table_rows, json_data=json_rows)


# -- dumpxml -------------------------------------------------------------------------------------


@command("dumpxml", group="domain", summary="domain information in XML",
         opts=[DOMAIN,
               Opt("inactive", kind="bool", help="show inactive defined XML"),
               Opt("security-info", kind="bool", help="include security sensitive information in XML dump"),
               Opt("update-cpu", kind="bool", help="update guest CPU according to host CPU"),
               Opt("migratable", kind="bool", help="provide XML suitable for migrations"),
               Opt("xpath", kind="xpath", help="print only nodes matching this XPath expression"),
               Opt("wrap", kind="bool", help="wrap xpath results in a common root element")])
def dumpxml(ctx, domain, inactive=False, security_info=False, update_cpu=False, migratable=False,
            xpath=None, wrap=False):
    ref, dom = load_domain(ctx, domain, inactive=inactive)
    if xpath is None:
        text = dom.to_xml(inactive=inactive or not ref.active)
        return Text(text, json_data={"xml": text})
    from vsh.ui.xmlout import xpath_select

    return Text(xpath_select(dom.node, xpath, wrap))


# -- dominfo and small queries -------------------------------------------------------------------


@command("dominfo", group="monitor", summary="domain information", opts=[DOMAIN])
def dominfo(ctx, domain):
    info = ctx.conn.lookup_domain(domain).info()
    pairs = [("Id", str(info["id"]) if info["id"] is not None else "-"), ("Name", info["name"]),
             ("UUID", info["uuid"] or ""), ("OS Type", info["os_type"]), ("State", info["state"]),
             ("CPU(s)", str(info["cpus"]))]
    if info["cpu_time"] is not None:
        pairs.append(("CPU time", f"{info['cpu_time']:.1f}s"))
    pairs += [("Max memory", f"{info['max_memory_kib']} KiB"), ("Used memory", f"{info['used_memory_kib']} KiB"),
              ("Persistent", "yes" if info["persistent"] else "no"),
              ("Autostart", "enable" if info["autostart"] else "disable"),
              ("Managed save", "yes" if info["managed_save"] else "no"),
              ("Security model", "none"), ("Security DOI", "0")]
    return KeyValue(pairs, json_data=info)


@command("domstate", group="monitor", summary="domain state",
         opts=[DOMAIN, Opt("reason", kind="bool", help="also print reason for the state")])
def domstate(ctx, domain, reason=False):
    ref = ctx.store.get(domain)
    state = state_text(ref)
    why = ref.reason if ref.runtime is not None else "unknown"
    if not ref.active and ref.runtime is not None and ref.runtime.data.get("state") == "crashed":
        why = "crashed"
    if not ref.active and has_managed_save(ctx.store, ref.name):
        why = "saved"
    text = f"{state} ({why})" if reason else state
    return Text(text + "\n", json_data={"state": state, "reason": why})


@command("domid", group="domain", summary="convert a domain name or UUID to domain id",
         opts=[Opt("domain", kind="domain", required=True, positional=True, help="domain name or uuid")])
def domid(ctx, domain):
    ref = ctx.store.get(domain)
    if not ref.active:
        return Text("-\n", json_data={"id": None})
    return Text(f"{ref.id}\n", json_data={"id": ref.id})


@command("domname", group="domain", summary="convert a domain id or UUID to domain name",
         opts=[Opt("domain", kind="domain", required=True, positional=True, help="domain id or uuid")])
def domname(ctx, domain):
    from vsh.core.names import is_uuid_arg

    if not (domain.isdigit() or is_uuid_arg(domain)):
        raise NotFound(f"failed to get domain '{domain}'")
    store = ctx.store
    ref = None
    if domain.isdigit():
        for candidate in store.refs():
            if candidate.active and candidate.id == int(domain):
                ref = candidate
    else:
        ref = store.find(domain)
    if ref is None:
        raise NotFound(f"failed to get domain '{domain}'")
    return Text(f"{ref.name}\n", json_data={"name": ref.name})


@command("domuuid", group="domain", summary="convert a domain name or id to domain UUID",
         opts=[Opt("domain", kind="domain", required=True, positional=True, help="domain id or name")])
def domuuid(ctx, domain):
    ref = ctx.store.get(domain)
    uuid = ctx.store.facts(ref)["uuid"]
    return Text(f"{uuid}\n", json_data={"uuid": uuid})


@command("autostart", group="domain", summary="autostart a domain",
         opts=[DOMAIN, Opt("disable", kind="bool", help="disable autostarting")], mutating=True)
def autostart(ctx, domain, disable=False):
    store = ctx.store
    ref = store.get(domain)
    if not ref.persistent:
        raise OperationInvalid(f"Failed to {'unmark' if disable else 'mark'} domain '{ref.name}' as autostarted",
                               "Requested operation is not valid: cannot set autostart for transient domain")
    store.set_autostart(ref.name, not disable)
    if disable:
        return Message(f"Domain '{ref.name}' unmarked as autostarted")
    return Message(f"Domain '{ref.name}' marked as autostarted")


@command("domrename", group="domain", summary="rename a domain",
         opts=[DOMAIN, Opt("new-name", required=True, positional=True, help="new domain name")], mutating=True)
def domrename(ctx, domain, new_name):
    store = ctx.store
    ref = store.get(domain)
    store.rename(ref, new_name)
    return Message("Domain successfully renamed")


@command("desc", group="domain", summary="show or set domain's description or title",
         opts=[DOMAIN,
               Opt("live", kind="bool", help="modify/get running state"),
               Opt("config", kind="bool", help="modify/get persistent configuration"),
               Opt("current", kind="bool", help="modify/get current state configuration"),
               Opt("title", kind="bool", help="modify/get the title instead of description"),
               Opt("edit", kind="bool", help="open an editor to modify the description"),
               Opt("new-desc", kind="argv", help="message")],
         exclusive=(("live", "config"), ("current", "live"), ("current", "config")))
def desc(ctx, domain, live=False, config=False, current=False, title=False, edit=False, new_desc=()):
    store = ctx.store
    ref = store.get(domain)
    what = "title" if title else "description"
    use_config = config or not ref.active
    if live and not ref.active:
        raise OperationInvalid("Requested operation is not valid: domain is not running")
    dom = store.load(ref, inactive=use_config)
    if not new_desc and not edit:
        value = dom.title if title else dom.description
        if not value:
            return Text(f"No {what} for domain: {ref.name}", json_data={what: None})
        return Text(value, json_data={what: value})
    if ctx.readonly:
        raise VshError("operation forbidden: read only access prevents virDomainSetMetadata")
    text = " ".join(new_desc)
    if edit:
        text = _edit_text(dom.title if title else dom.description or "")
    if title and "\n" in text:
        raise InvalidArgument("title can't contain newlines")
    if not ref.persistent and use_config:
        raise OperationInvalid("Requested operation is not valid: transient domains do not have any persistent config")
    with store.lock(ref.name):
        if use_config or ref.persistent and not live:
            cfg = store.load(ref, inactive=True)
            setattr(cfg, "title" if title else "description", text or None)
            store.write_config(cfg)
        if ref.active and not config:
            _update_live_xml(store, ref, lambda d: setattr(d, "title" if title else "description", text or None))
    return Text(f"Domain {what} updated successfully", json_data={what: text})


def _edit_text(initial: str) -> str:
    import subprocess
    import tempfile

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w+", suffix=".txt", delete=False) as fh:
        fh.write(initial)
        path = fh.name
    try:
        subprocess.run(["sh", "-c", f'{editor} "$1"', "editor", path], check=False)
        with open(path) as fh:
            return fh.read().rstrip("\n")
    finally:
        os.unlink(path)


def _update_live_xml(store, ref, change) -> None:
    from vsh.core.domain import Domain
    from vsh.core.store import atomic_write

    live = ref.runtime.rundir / "live.xml"
    try:
        dom = Domain.parse(live.read_bytes(), "live.xml")
    except FileNotFoundError:
        return
    change(dom)
    atomic_write(live, dom.to_xml())


# -- device listings ---------------------------------------------------------------------------------


@command("domblklist", group="monitor", summary="list all domain blocks",
         opts=[DOMAIN, Opt("inactive", kind="bool", help="get inactive rather than running configuration"),
               Opt("details", kind="bool", help="additionally display the type and device value")])
def domblklist(ctx, domain, inactive=False, details=False):
    ref, dom = load_domain(ctx, domain, inactive=inactive)
    rows = []
    data = []
    for disk in dom.disks:
        source = disk.source or "-"
        if details:
            rows.append([disk.type or "file", disk.device or "disk", disk.target_dev or "", source])
        else:
            rows.append([disk.target_dev or "", source])
        data.append({"type": disk.type, "device": disk.device, "target": disk.target_dev,
                     "source": disk.source, "bus": disk.target_bus})
    headers = ["Type", "Device", "Target", "Source"] if details else ["Target", "Source"]
    return Table(headers, rows, json_data=data)


@command("domiflist", group="monitor", summary="list all domain virtual interfaces",
         opts=[DOMAIN, Opt("inactive", kind="bool", help="get inactive rather than running configuration")])
def domiflist(ctx, domain, inactive=False):
    ref, dom = load_domain(ctx, domain, inactive=inactive)
    rows = []
    data = []
    for nic in dom.interfaces:
        rows.append([nic.target_dev or "-", nic.type or "", nic.source or "-", nic.model or "-", nic.mac or ""])
        data.append({"interface": nic.target_dev, "type": nic.type, "source": nic.source,
                     "model": nic.model, "mac": nic.mac})
    return Table(["Interface", "Type", "Source", "Model", "MAC"], rows, json_data=data)


@command("vcpucount", group="domain", summary="domain vcpu counts",
         opts=[DOMAIN,
               Opt("maximum", kind="bool", help="get maximum count of vcpus"),
               Opt("active", kind="bool", help="get number of currently active vcpus"),
               Opt("live", kind="bool", help="get value from running domain"),
               Opt("config", kind="bool", help="get value to be used on next boot"),
               Opt("current", kind="bool", help="get value according to current domain state"),
               Opt("guest", kind="bool", help="retrieve vcpu count from the guest instead of the hypervisor")],
         exclusive=(("live", "config"), ("current", "live"), ("current", "config"), ("maximum", "active")))
def vcpucount(ctx, domain, maximum=False, active=False, live=False, config=False, current=False, guest=False):
    store = ctx.store
    ref = store.get(domain)
    if guest:
        raise OperationInvalid("vcpucount --guest needs a guest agent, which vsh does not use")
    if live and not ref.active:
        raise OperationInvalid("Requested operation is not valid: domain is not running")
    cfg = store.load(ref, inactive=True) if ref.persistent else store.load(ref)
    rows = []
    if current:
        live, config = ref.active, not ref.active
    show_config = config or not live
    show_live = (live or not config) and ref.active
    if ref.active:
        livedom = store.load(ref)
        live_max = livedom.vcpus or 1
        live_cur = ref.runtime.data.get("vcpus") or livedom.effective_vcpus
    kinds = [k for k, flag in (("maximum", maximum), ("current", active)) if flag] or ["maximum", "current"]
    data = {}
    for kind in kinds:
        if show_config and ref.persistent:
            value = (cfg.vcpus or 1) if kind == "maximum" else cfg.effective_vcpus
            rows.append((kind, "config", value))
        if show_live:
            value = live_max if kind == "maximum" else live_cur
            rows.append((kind, "live", value))
    for kind, where, value in rows:
        data[f"{kind}_{where}"] = value
    if (maximum or active) and (live or config or current) and len(rows) == 1:
        return Text(f"{rows[0][2]}\n", json_data=data)
    return Text("".join(f"{k:<12} {w:<12} {v:3d}\n" for k, w, v in rows), json_data=data)
