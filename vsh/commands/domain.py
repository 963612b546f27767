"""Domain definitions and queries: define, undefine, list, dumpxml, dominfo, domstate, ..."""

from __future__ import annotations

from vsh.core.errors import NotFound, OperationInvalid, VshError
from vsh.core.escape import escape
from vsh.core.output import KeyValue, Lines, Message, Table, Text
from vsh.registry import Opt, command

DOMAIN = Opt("domain", kind="domain", required=True, positional=True, help="domain name, id or uuid")


# -- define / undefine -------------------------------------------------------------------------


@command("define", group="domain", summary="define (but don't start) a domain from an XML file",
         opts=[Opt("file", kind="file", required=True, positional=True, help="file containing an XML domain description"),
               Opt("validate", kind="bool", help="validate the XML against libvirt's schema (when installed)")],
         mutating=True, examples=("define vm1.xml",))
def define(ctx, file, validate=False):
    from vsh.core.inputfile import read_input_file

    data = read_input_file(file)
    try:
        dom = ctx.conn.define_xml(data, validate=validate)
    except VshError as err:
        raise err.with_context(f"Failed to define domain from {file}") from None
    return Message(f"Domain '{dom.name}' defined from {file}", json_data={"name": dom.name, "uuid": dom.uuid()})


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
    done = ctx.conn.lookup_domain(domain).undefine(
        managed_save=managed_save, snapshots_metadata=snapshots_metadata, nvram=nvram, keep_nvram=keep_nvram,
        remove_all_storage=remove_all_storage, dry_run=dry_run)
    kept = done["kept"]
    for vol in kept:
        if vol["reason"] == "unmanaged":
            _storage_error(ctx, f"Storage volume '{vol['target']}'({vol['path']}) is not managed by "
                                f"{done.get('manager', 'vsh')}. Remove it manually.\n")    # virsh's text ends in a newline too
    if dry_run:
        paths = [vol["path"] for vol in done["removed"]]
        return Lines(paths, json_data={"would_remove": paths, "kept": kept})
    for vol in done["failed"]:
        _storage_error(ctx, f"Failed to remove storage volume '{vol['target']}'({vol['path']}): {vol['error']}")
    parts = [Message(f"Volume '{vol['target']}'({vol['path']}) kept: {vol['reason']}.")
             for vol in kept if vol["reason"] != "unmanaged"]
    parts += [Message(f"Volume '{vol['target']}'({vol['path']}) removed.") for vol in done["removed"]]
    data = {"name": done["name"], "removed": [vol["path"] for vol in done["removed"]]}
    if remove_all_storage:
        data["kept"] = kept
    msg = Message(f"Domain '{done['name']}' has been undefined", json_data=data)
    if parts:
        from vsh.core.output import Many

        return Many([msg] + parts, json_data=data)
    return msg


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
    states = [s for s, flag in (("running", state_running), ("paused", state_paused),
                                 ("shutoff", state_shutoff), ("other", state_other)) if flag]
    active = None if states or all else not inactive
    need_xml = uuid or title or ctx.json
    rows = ctx.conn.list_domains(
        active=active, persistent=_either(persistent, transient), states=states or None,
        autostart=_either(autostart, no_autostart), managed_save=_either(with_managed_save, without_managed_save),
        snapshot=_either(with_snapshot, without_snapshot), details=need_xml or managed_save)

    def state_of(row):
        if not row["active"] and managed_save and row["managed_save"]:
            return "saved"
        return row["state"]

    json_rows = [{"id": row["id"], "name": row["name"], "state": state_of(row),
                  "uuid": row["uuid"] if need_xml else None, "persistent": row["persistent"],
                  **({"title": row["title"] or ""} if title else {})}
                 for row in rows] if ctx.json else None       # 10,000 dicts cost 7 ms
    if uuid or name or id:
        lines = []
        for row in rows:
            if id and not row["active"]:
                continue
            fields = []
            if id:
                fields.append(str(row["id"]))
            if uuid:
                fields.append(escape(row["uuid"] or ""))
            if name:
                fields.append(escape(row["name"]))
            lines.append(" ".join(fields))
        return Lines(lines, json_data=json_rows)
    headers = ["Id", "Name", "State"] + (["Title"] if title else [])
    table_rows = []
    for row in rows:
        cells = [str(row["id"]) if row["active"] else "-", escape(row["name"]), state_of(row)]
        if title:
            cells.append(escape(row["title"] or ""))
        table_rows.append(cells)
    return Table(headers, table_rows, json_data=json_rows)


def _either(yes: bool, no: bool) -> bool | None:
    """A filter from a pair of virsh's options: one of them alone, or neither (or both): None."""
    return yes if yes != no else None


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
    from vsh.ui.xmlout import xml_output

    return xml_output(ctx.conn.lookup_domain(domain).xml(inactive=inactive), xpath, wrap, "domain")


# -- dominfo and small queries -------------------------------------------------------------------


@command("dominfo", group="monitor", summary="domain information", opts=[DOMAIN])
def dominfo(ctx, domain):
    info = ctx.conn.lookup_domain(domain).info()
    pairs = [("Id", str(info["id"]) if info["id"] is not None else "-"), ("Name", escape(info["name"])),
             ("UUID", escape(info["uuid"] or "")), ("OS Type", info["os_type"]), ("State", info["state"]),
             ("CPU(s)", str(info["cpus"]))]
    if info["cpu_time"] is not None:
        pairs.append(("CPU time", f"{info['cpu_time']:.1f}s"))
    pairs += [("Max memory", f"{info['max_memory_kib']} KiB"), ("Used memory", f"{info['used_memory_kib']} KiB"),
              ("Persistent", "yes" if info["persistent"] else "no"),
              ("Autostart", "enable" if info["autostart"] else "disable"),
              ("Managed save", "yes" if info["managed_save"] else "no")]
    security = info.get("security") or {"model": "none", "doi": "0", "label": None}
    pairs += [("Security model", escape(security["model"])), ("Security DOI", escape(security["doi"]))]
    if security["label"]:
        pairs.append(("Security label", escape(f"{security['label']} ({'enforcing' if security['enforcing'] else 'permissive'})")))
    for number, text in enumerate(info.get("messages") or ()):
        pairs.append(("Messages" if number == 0 else "", escape(text)))
    return KeyValue(pairs, json_data=info)


@command("domstate", group="monitor", summary="domain state",
         opts=[DOMAIN, Opt("reason", kind="bool", help="also print reason for the state")])
def domstate(ctx, domain, reason=False):
    state, why = ctx.conn.lookup_domain(domain).state()
    text = escape(f"{state} ({why})" if reason else state)
    return Text(text + "\n", json_data={"state": state, "reason": why})


@command("domid", group="domain", summary="convert a domain name or UUID to domain id",
         opts=[Opt("domain", kind="domain", required=True, positional=True, help="domain name or uuid")])
def domid(ctx, domain):
    dom_id = ctx.conn.lookup_domain(domain).id
    if dom_id is None:
        return Text("-\n", json_data={"id": None})
    return Text(f"{dom_id}\n", json_data={"id": dom_id})


@command("domhostname", group="domain", summary="print the domain's hostname",
         opts=[DOMAIN, Opt("source", kind="enum", choices=("agent", "lease"),
                           help="address source: 'agent' (default) or 'lease'")],
         examples=("domhostname vm1", "domhostname vm1 --source lease"),
         description="The guest's host name: from the guest agent (the default), or with --source lease\n"
                     "the one it gave the DHCP server of a vsh network its NIC is on.")
def domhostname(ctx, domain, source=None):
    dom = ctx.conn.lookup_domain(domain)
    try:
        name = dom.stats.hostname(source)
    except VshError as err:
        raise err.with_context("failed to get hostname") from None
    return Text(f"{escape(name)}\n", json_data={"hostname": name})


@command("domname", group="domain", summary="convert a domain id or UUID to domain name",
         opts=[Opt("domain", kind="domain", required=True, positional=True, help="domain id or uuid")])
def domname(ctx, domain):
    from vsh.core.names import is_uuid_arg

    if domain.isdigit():
        dom = ctx.conn.lookup_domain_by_id(int(domain))
    elif is_uuid_arg(domain):
        dom = ctx.conn.lookup_domain_by_uuid(domain)
    else:
        raise NotFound(f"failed to get domain '{domain}'")
    return Text(f"{escape(dom.name)}\n", json_data={"name": dom.name})


@command("domuuid", group="domain", summary="convert a domain name or id to domain UUID",
         opts=[Opt("domain", kind="domain", required=True, positional=True, help="domain id or name")])
def domuuid(ctx, domain):
    uuid = ctx.conn.lookup_domain(domain).uuid()
    return Text(f"{uuid}\n", json_data={"uuid": uuid})


@command("autostart", group="domain", summary="autostart a domain",
         opts=[DOMAIN, Opt("disable", kind="bool", help="disable autostarting")], mutating=True)
def autostart(ctx, domain, disable=False):
    dom = ctx.conn.lookup_domain(domain)
    dom.set_autostart(not disable)
    if disable:
        return Message(f"Domain '{dom.name}' unmarked as autostarted")
    return Message(f"Domain '{dom.name}' marked as autostarted")


@command("domrename", group="domain", summary="rename a domain",
         opts=[DOMAIN, Opt("new-name", required=True, positional=True, help="new domain name")], mutating=True)
def domrename(ctx, domain, new_name):
    ctx.conn.lookup_domain(domain).rename(new_name)
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
    dom = ctx.conn.lookup_domain(domain)
    what = "title" if title else "description"
    if not new_desc and not edit:
        value = dom.metadata(title=title, live=live, config=config)
        if not value:
            return Text(f"No {what} for domain: {escape(dom.name)}", json_data={what: None})
        return Text(escape(value, keep_newlines=not title), json_data={what: value})
    if live and dom.id is None:
        raise OperationInvalid("Requested operation is not valid: domain is not running")
    if ctx.readonly:
        raise VshError("operation forbidden: read only access prevents virDomainSetMetadata")
    text = " ".join(new_desc)
    if edit:
        text = _edit_text(dom.metadata(title=title, config=config) or "")
    dom.set_metadata(text, title=title, live=live, config=config)
    return Text(f"Domain {what} updated successfully", json_data={what: text})


def _edit_text(initial: str) -> str:
    """The text after the user's editor changed ``initial`` (its exit status does not matter)."""
    import os
    import subprocess
    import tempfile

    from vsh.ui.editor import editor_command

    with tempfile.NamedTemporaryFile("w+", suffix=".txt", delete=False) as fh:
        fh.write(initial)
        path = fh.name
    try:
        subprocess.run(["sh", "-c", f'{editor_command()} "$1"', "editor", path], check=False)
        with open(path) as fh:
            return fh.read().rstrip("\n")
    finally:
        os.unlink(path)


# -- device listings ---------------------------------------------------------------------------------


@command("domblklist", group="monitor", summary="list all domain blocks",
         opts=[DOMAIN, Opt("inactive", kind="bool", help="get inactive rather than running configuration"),
               Opt("details", kind="bool", help="additionally display the type and device value")])
def domblklist(ctx, domain, inactive=False, details=False):
    data = ctx.conn.lookup_domain(domain).block_devices(inactive=inactive)
    if details:
        rows = [[d["type"] or "file", d["device"] or "disk", d["target"] or "", d["source"] or "-"] for d in data]
        return Table(["Type", "Device", "Target", "Source"], rows, json_data=data)
    return Table(["Target", "Source"], [[d["target"] or "", d["source"] or "-"] for d in data], json_data=data)


@command("domiflist", group="monitor", summary="list all domain virtual interfaces",
         opts=[DOMAIN, Opt("inactive", kind="bool", help="get inactive rather than running configuration")])
def domiflist(ctx, domain, inactive=False):
    data = ctx.conn.lookup_domain(domain).interfaces(inactive=inactive)
    rows = [[d["interface"] or "-", d["type"] or "", d["source"] or "-", d["model"] or "-", d["mac"] or ""]
            for d in data]
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
    counts = ctx.conn.lookup_domain(domain).vcpu_counts(guest=guest)
    running = counts["live"] is not None
    if live and not running:
        raise OperationInvalid("Requested operation is not valid: domain is not running")
    if current:
        live, config = running, not running
    show_config = config or not live
    show_live = (live or not config) and running
    kinds = [k for k, flag in (("maximum", maximum), ("current", active)) if flag] or ["maximum", "current"]
    rows = []
    for kind in kinds:
        if show_config and counts["config"] is not None:
            rows.append((kind, "config", counts["config"][kind]))
        if show_live:
            rows.append((kind, "live", counts["live"][kind]))
    data = {f"{kind}_{where}": value for kind, where, value in rows}
    if (maximum or active) and (live or config or current) and len(rows) == 1:
        return Text(f"{rows[0][2]}\n", json_data=data)
    return Text("".join(f"{k:<12} {w:<12} {v:3d}\n" for k, w, v in rows), json_data=data)
