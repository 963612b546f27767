"""Saved state: save, restore, managedsave, managedsave-remove, save-image-dumpxml,
managedsave-dumpxml, save-image-define/-edit, managedsave-define/-edit, and the snapshot commands (snapshot-create-as, snapshot-create,
snapshot-list, snapshot-info, snapshot-dumpxml, snapshot-current, snapshot-parent,
snapshot-revert, snapshot-delete).

Thin layers over the domain handle's saved-state methods (:mod:`vsh.api.lifecycle`)
and its snapshots (:mod:`vsh.api.snapshots`).
"""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, OperationInvalid, VshError
from vsh.core.escape import escape
from vsh.core.output import KeyValue, Lines, Message, Table, Text
from vsh.registry import Opt, command
from vsh.ui.editor import edit_text
from vsh.ui.progress import JobProgress

DOMAIN = Opt("domain", kind="domain", required=True, positional=True, help="domain name, id or uuid")
SNAPNAME = Opt("snapshotname", kind="snapshot", positional=True, help="snapshot name")
CURRENT = Opt("current", kind="bool", help="use the current snapshot")


# -- save / restore ------------------------------------------------------------------------------


class _Progress(JobProgress):
    """virsh's ``Save: [ 42 %]`` on stderr while a save runs (--verbose)."""

    def __call__(self, pct: int) -> None:
        self.show(pct)

    def finish(self, ok: bool) -> None:
        if ok:
            self.show(100)
        self.err.write("\n")
        self.err.flush()


def _saving(ctx, verbose: bool, op):
    """Run ``op(progress)`` with virsh's progress line when ``verbose``."""
    if not verbose:
        return op(None)
    progress = _Progress(ctx, "Save")
    try:
        result = op(progress)
    except BaseException:
        progress.finish(False)
        raise
    progress.finish(True)
    return result


@command("save", group="domain", summary="save a domain state to a file",
         opts=[DOMAIN,
               Opt("file", kind="file", required=True, positional=True, help="where to save the data"),
               Opt("bypass-cache", kind="bool", help="drop the image from the host page cache once written"),
               Opt("xml", kind="file", help="filename containing updated XML for the target"),
               Opt("running", kind="bool", help="set domain to be running on restore"),
               Opt("paused", kind="bool", help="set domain to be paused on restore"),
               Opt("verbose", kind="bool", help="display the progress of save")],
         exclusive=(("running", "paused"),), mutating=True,
         examples=("save vm1 /var/tmp/vm1.save", "save vm1 vm1.save --paused --verbose"),
         description="Pause the guest, write its memory and device state into FILE and stop the\n"
                     "domain (shut off (saved)). restore FILE brings it back exactly where it was.\n"
                     "The file starts with the domain XML; it is complete and on disk before QEMU\n"
                     "stops. The disks are not saved: do not change them before restoring.")
def save(ctx, domain, file, bypass_cache=False, xml=None, running=False, paused=False, verbose=False):
    dom = ctx.conn.lookup_domain(domain)
    try:
        text = _read_xml(xml) if xml is not None else None
        _saving(ctx, verbose, lambda progress: dom.save(file, xml=text, running=running, paused=paused,
                                                        bypass_cache=bypass_cache, progress=progress))
    except VshError as err:
        raise err.with_context(f"Failed to save domain '{dom.name}' to {file}") from None
    return Message(f"\nDomain '{dom.name}' saved to {file}", json_data={"name": dom.name, "file": file})


@command("restore", group="domain", summary="restore a domain from a saved state in a file",
         opts=[Opt("file", kind="file", required=True, positional=True, help="the state to restore"),
               Opt("bypass-cache", kind="bool", help="drop the image from the host page cache as it is read"),
               Opt("xml", kind="file", help="filename containing updated XML for the target"),
               Opt("running", kind="bool", help="restore domain into running state"),
               Opt("paused", kind="bool", help="restore domain into paused state")],
         exclusive=(("running", "paused"),), mutating=True, examples=("restore /var/tmp/vm1.save",),
         description="Start the domain that FILE describes and load the saved state: the guest\n"
                     "continues where save stopped it (running (restored)), or stays paused if it\n"
                     "was paused or with --paused. A domain that is not defined comes back as a\n"
                     "transient one. --xml replaces the saved definition (same devices only).")
def restore(ctx, file, bypass_cache=False, xml=None, running=False, paused=False):
    try:
        text = _read_xml(xml) if xml is not None else None
        st = ctx.conn.restore(file, xml=text, running=running, paused=paused, bypass_cache=bypass_cache)
    except VshError as err:
        raise err.with_context(f"Failed to restore domain from {file}") from None
    return Message(f"Domain restored from {file}", json_data={"name": (st or {}).get("name"), "file": file,
                                                              "state": (st or {}).get("state")})


@command("managedsave", group="domain", summary="managed save of a domain state",
         opts=[DOMAIN,
               Opt("bypass-cache", kind="bool", help="drop the image from the host page cache once written"),
               Opt("running", kind="bool", help="set domain to be running on next start"),
               Opt("paused", kind="bool", help="set domain to be paused on next start"),
               Opt("verbose", kind="bool", help="display the progress of save")],
         exclusive=(("running", "paused"),), mutating=True, examples=("managedsave vm1", "start vm1"),
         description="Save the guest's state into vsh's store and stop the domain; the next start\n"
                     "resumes the guest from it (start --force-boot discards it). The message says\n"
                     "'saved by libvirt', word for word like virsh, so that scripts keep working.")
def managedsave(ctx, domain, bypass_cache=False, running=False, paused=False, verbose=False):
    dom = ctx.conn.lookup_domain(domain)
    try:
        _saving(ctx, verbose, lambda progress: dom.managed_save(running=running, paused=paused,
                                                                bypass_cache=bypass_cache, progress=progress))
    except VshError as err:
        raise err.with_context(f"Failed to save domain '{dom.name}' state") from None
    return Message(f"\nDomain '{dom.name}' state saved by libvirt", json_data={"name": dom.name})


@command("managedsave-remove", group="domain", summary="Remove managed save of a domain",
         opts=[DOMAIN], mutating=True)
def managedsave_remove(ctx, domain):
    dom = ctx.conn.lookup_domain(domain)
    if not dom.managed_save_remove():
        return Message(f"Domain '{dom.name}' has no manage save image; removal skipped",
                       json_data={"name": dom.name, "removed": False})
    return Message(f"Removed managedsave image for domain '{dom.name}'", json_data={"name": dom.name, "removed": True})


@command("managedsave-dumpxml", group="domain", summary="Domain information of managed save state file in XML",
         opts=[DOMAIN, Opt("security-info", kind="bool", help="include security sensitive information in XML dump")])
def managedsave_dumpxml(ctx, domain, security_info=False):
    xml = ctx.conn.lookup_domain(domain).managed_save_xml()
    return Text(xml, json_data={"xml": xml})


@command("save-image-dumpxml", group="domain", summary="saved state domain information in XML",
         opts=[Opt("file", kind="file", required=True, positional=True, help="saved state file to read"),
               Opt("security-info", kind="bool", help="include security sensitive information in XML dump")])
def save_image_dumpxml(ctx, file, security_info=False):
    xml = ctx.conn.save_image_xml(file)
    return Text(xml, json_data={"xml": xml})


STATE_OPTS = [Opt("running", kind="bool", help="set domain to be running on restore"),
              Opt("paused", kind="bool", help="set domain to be paused on restore")]


def _read_xml(path: str) -> str:
    from vsh.core.inputfile import read_input_file

    return read_input_file(path).decode("utf-8", "surrogateescape")


@command("save-image-define", group="domain", summary="redefine the XML for a domain's saved state file",
         opts=[Opt("file", kind="file", required=True, positional=True, help="saved state file to modify"),
               Opt("xml", kind="file", required=True, positional=True,
                   help="filename containing updated XML for the target"), *STATE_OPTS],
         exclusive=(("running", "paused"),), mutating=True,
         examples=("save-image-define vm1.save vm1.xml", "save-image-define vm1.save vm1.xml --paused"),
         description="Replace the domain XML recorded in a save image. The new XML must describe the\n"
                     "same machine (libvirt's ABI check: name, UUID, memory, vCPUs, disks, NICs);\n"
                     "--running or --paused changes the state restore gives the domain.")
def save_image_define(ctx, file, xml, running=False, paused=False):
    text = _read_xml(xml)
    try:
        changed = ctx.conn.save_image_define(file, text, running=running, paused=paused)
    except VshError as err:
        raise err.with_context(f"Failed to update {file}") from None
    return Message(f"State file {file} updated.", json_data={"file": file, "changed": changed})


@command("save-image-edit", group="domain", summary="edit XML for a domain's saved state file",
         opts=[Opt("file", kind="file", required=True, positional=True, help="saved state file to edit"),
               *STATE_OPTS],
         exclusive=(("running", "paused"),), mutating=True, examples=("save-image-edit vm1.save",),
         description="Open the domain XML recorded in a save image in $VISUAL or $EDITOR (default vi)\n"
                     "and record the result, which must describe the same machine.")
def save_image_edit(ctx, file, running=False, paused=False):
    before = ctx.conn.save_image_xml(file)
    text = edit_text(before, f"the save image {file}")
    if text == before:
        return Message(f"Saved image {file} XML configuration not changed.", json_data={"file": file, "changed": False})
    try:
        ctx.conn.save_image_define(file, text, running=running, paused=paused)
    except VshError as err:
        raise err.with_context(f"Failed to update {file}") from None
    return Message(f"State file {file} edited.", json_data={"file": file, "changed": True})


@command("managedsave-define", group="domain", summary="redefine the XML for a domain's managed save state file",
         opts=[DOMAIN, Opt("xml", kind="file", required=True, positional=True,
                           help="filename containing updated XML for the target"), *STATE_OPTS],
         exclusive=(("running", "paused"),), mutating=True, examples=("managedsave-define vm1 vm1.xml",),
         description="Replace the domain XML recorded in the domain's managed save image; the new XML\n"
                     "must describe the same machine.")
def managedsave_define(ctx, domain, xml, running=False, paused=False):
    text = _read_xml(xml)
    dom = ctx.conn.lookup_domain(domain)
    try:
        changed = dom.managed_save_define(text, running=running, paused=paused)
    except VshError as err:
        raise err.with_context(f"Failed to update {dom.name} XML configuration") from None
    return Message(f"Managed save state file of domain '{dom.name}' updated.",
                   json_data={"name": dom.name, "changed": changed})


@command("managedsave-edit", group="domain", summary="edit XML for a domain's managed save state file",
         opts=[DOMAIN, *STATE_OPTS], exclusive=(("running", "paused"),), mutating=True,
         examples=("managedsave-edit vm1",),
         description="Open the domain XML recorded in the managed save image in $VISUAL or $EDITOR\n"
                     "(default vi) and record the result, which must describe the same machine.")
def managedsave_edit(ctx, domain, running=False, paused=False):
    dom = ctx.conn.lookup_domain(domain)
    before = dom.managed_save_xml()
    text = edit_text(before, f"the managed save image of domain '{dom.name}'")
    if text == before:
        return Message(f"Managed save image of domain '{dom.name}' XML configuration not changed.",
                       json_data={"name": dom.name, "changed": False})
    try:
        dom.managed_save_define(text, running=running, paused=paused)
    except VshError as err:
        raise err.with_context(f"Failed to update {dom.name} XML configuration") from None
    return Message(f"Managed save image of domain '{dom.name}' XML configuration edited.",
                   json_data={"name": dom.name, "changed": True})


# -- snapshots -------------------------------------------------------------------------------------


def _pick(dom, snapshotname: str | None, current: bool, what: str = "snapshot"):
    """The snapshot a command is about: the name given, or the current one (--current)."""
    if snapshotname and current:
        raise InvalidArgument("--snapshotname and --current are mutually exclusive")
    if snapshotname:
        return dom.snapshots.snapshot(snapshotname)
    if current:
        return _current(dom)
    raise InvalidArgument(f"a {what} name or --current is required")


def _current(dom):
    snap = dom.snapshots.current()
    if snap is None:
        raise OperationInvalid(f"domain '{dom.name}' has no current snapshot")
    return snap


def parse_diskspec(text: str) -> dict:
    """``vda[,snapshot=external|no][,file=PATH][,driver=qcow2]`` (``,,`` is a literal comma): a disk
    request for :meth:`vsh.api.snapshots.DomainSnapshots.create` (``target``, ``snapshot``, ``file``)."""
    parts, cur, i = [], "", 0
    while i < len(text):
        if text[i] == ",":
            if text[i + 1:i + 2] == ",":
                cur += ","
                i += 2
                continue
            parts.append(cur)
            cur = ""
        else:
            cur += text[i]
        i += 1
    parts.append(cur)
    req = {"target": parts[0], "snapshot": None, "file": None}
    if not req["target"]:
        raise InvalidArgument(f"invalid diskspec '{text}': it starts with the disk's target (vda)")
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if key == "snapshot" and value in ("external", "no", "internal"):
            req["snapshot"] = value
        elif key in ("file", "source") and eq:
            req["file"] = value
        elif key == "driver" and value == "qcow2":
            pass
        else:
            raise InvalidArgument(f"invalid diskspec '{text}': unknown or bad '{part}' "
                                  "(snapshot=external|no, file=PATH, driver=qcow2)")
    return req


@command("snapshot-create-as", group="snapshot", summary="Create a snapshot from a set of args",
         opts=[DOMAIN,
               Opt("name", kind="string", positional=True, help="name of snapshot"),
               Opt("description", kind="string", positional=True, help="description of snapshot"),
               Opt("print-xml", kind="bool", help="print XML document rather than create"),
               Opt("no-metadata", kind="bool", help="take snapshot but create no metadata"),
               Opt("halt", kind="bool", help="halt domain after snapshot is created"),
               Opt("disk-only", kind="bool", help="capture disk state but not vm state (external overlays)"),
               Opt("atomic", kind="bool", help="require atomic operation (vsh is always atomic)"),
               Opt("diskspec", kind="string", repeat=True,
                   help="disk attributes: disk[,snapshot=external|no][,file=PATH] (repeatable)")],
         mutating=True,
         examples=("snapshot-create-as vm1 s1 \"before the upgrade\"",
                   "snapshot-create-as vm1 s2 --disk-only --diskspec vda,file=/var/lib/vsh/vm1.s2"),
         description="Internal snapshot (default): every writable disk must be qcow2; a running\n"
                     "domain's memory is saved too. --disk-only: each writable disk gets a new\n"
                     "qcow2 overlay (named IMAGE-STEM.NAME next to the image unless a --diskspec\n"
                     "gives file=) and the image it used so far is frozen. Without a name the\n"
                     "current time in seconds is used.")
def snapshot_create_as(ctx, domain, name=None, description=None, print_xml=False, no_metadata=False,
                       halt=False, disk_only=False, atomic=False, diskspec=()):
    requests = [parse_diskspec(spec) for spec in (diskspec or [])]
    dom = ctx.conn.lookup_domain(domain)
    if print_xml:
        text = _snapshot_xml(name, description, requests)
        return Text(text, json_data={"xml": text})
    if requests and not disk_only and any(r["snapshot"] == "external" or r["file"] for r in requests):
        disk_only = True
    made = dom.snapshots.create(name, description, disk_only=disk_only, disks=requests,
                                no_metadata=no_metadata, halt=halt)
    return Message(f"Domain snapshot {made['name']} created", newline=False, json_data=made)


def _snapshot_xml(name, description, requests) -> str:
    """The ``<domainsnapshot>`` document snapshot-create-as --print-xml shows."""
    from vsh.core.lxmlload import etree

    from vsh.core.xml import check_xml_text, serialize

    root = etree.Element("domainsnapshot")
    if name:
        etree.SubElement(root, "name").text = check_xml_text(name, "snapshot name")
    if description:
        etree.SubElement(root, "description").text = check_xml_text(description, "description")
    if requests:
        disks = etree.SubElement(root, "disks")
        for req in requests:
            el = etree.SubElement(disks, "disk", name=req["target"])
            if req["snapshot"]:
                el.set("snapshot", req["snapshot"])
            if req["file"]:
                etree.SubElement(el, "source", file=req["file"])
    return serialize(root) + "\n"


@command("snapshot-create", group="snapshot", summary="Create a snapshot from XML",
         opts=[DOMAIN,
               Opt("xmlfile", kind="file", positional=True, help="domain snapshot XML"),
               Opt("no-metadata", kind="bool", help="take snapshot but create no metadata"),
               Opt("halt", kind="bool", help="halt domain after snapshot is created"),
               Opt("disk-only", kind="bool", help="capture disk state but not vm state (external overlays)"),
               Opt("atomic", kind="bool", help="require atomic operation (vsh is always atomic)")],
         mutating=True, examples=("snapshot-create vm1 snap.xml",),
         description="Create a snapshot from a <domainsnapshot> document: <name>, <description>,\n"
                     "<memory snapshot='no'/> and <disks><disk name='vda' snapshot='external|no'>\n"
                     "<source file='...'/></disk></disks> are used (external disks make it a\n"
                     "disk-only snapshot). Without a file, a snapshot with default settings.")
def snapshot_create(ctx, domain, xmlfile=None, no_metadata=False, halt=False, disk_only=False, atomic=False):
    text = _read_xml(xmlfile) if xmlfile is not None else None
    snapshots = ctx.conn.lookup_domain(domain).snapshots
    if text is None:
        made = snapshots.create(disk_only=disk_only, no_metadata=no_metadata, halt=halt)
    else:
        made = snapshots.create_xml(text, os.path.basename(xmlfile), disk_only=disk_only,
                                    no_metadata=no_metadata, halt=halt)
    text = f"Domain snapshot {made['name']} created" + (f" from '{xmlfile}'" if xmlfile else "")
    return Message(text, newline=False, json_data=made)


def _fmt_time(ts: int) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(ts))


@command("snapshot-list", group="snapshot", summary="List snapshots for a domain",
         opts=[DOMAIN,
               Opt("parent", kind="bool", help="add a column showing parent snapshot"),
               Opt("roots", kind="bool", help="list only snapshots without parents"),
               Opt("leaves", kind="bool", help="list only snapshots without children"),
               Opt("no-leaves", kind="bool", help="list only snapshots that are not leaves (with children)"),
               Opt("metadata", kind="bool", help="list only snapshots that have metadata (all of them)"),
               Opt("no-metadata", kind="bool", help="list only snapshots without metadata (none)"),
               Opt("inactive", kind="bool", help="filter by snapshots taken while inactive"),
               Opt("active", kind="bool", help="filter by snapshots taken while active (full system snapshots)"),
               Opt("disk-only", kind="bool", help="filter by disk-only snapshots"),
               Opt("internal", kind="bool", help="filter by internal snapshots"),
               Opt("external", kind="bool", help="filter by external snapshots"),
               Opt("tree", kind="bool", help="list snapshots in a tree"),
               Opt("from", kind="snapshot", help="limit list to children of given snapshot"),
               Opt("current", kind="bool", help="limit list to children of current snapshot"),
               Opt("descendants", kind="bool", help="with --from, list all descendants"),
               Opt("name", kind="bool", help="list snapshot names only"),
               Opt("topological", kind="bool", help="sort list topologically rather than by name")],
         exclusive=(("parent", "tree"), ("roots", "tree"), ("roots", "from"), ("roots", "current"),
                    ("from", "current"), ("leaves", "tree"), ("no-leaves", "tree"), ("name", "tree"),
                    ("parent", "name")),
         examples=("snapshot-list vm1", "snapshot-list vm1 --tree", "snapshot-list vm1 --parent"))
def snapshot_list(ctx, domain, parent=False, roots=False, leaves=False, no_leaves=False, metadata=False,
                  no_metadata=False, inactive=False, active=False, disk_only=False, internal=False,
                  external=False, tree=False, current=False, descendants=False, name=False,
                  topological=False, **kw):
    start = kw.get("from")
    dom = ctx.conn.lookup_domain(domain)
    data = dom.snapshots.list(
        start=start, current=current, descendants=descendants or tree, with_start=tree, roots=roots,
        leaves=leaves, no_leaves=no_leaves, metadata=metadata, no_metadata=no_metadata, inactive=inactive,
        active=active, disk_only=disk_only, internal=internal, external=external, topological=topological)
    names = [d["name"] for d in data]
    if tree:
        from types import SimpleNamespace

        from vsh.core.snapshots import tree_text

        root = _current(dom).name if current else start
        sub = {d["name"]: SimpleNamespace(parent=d["parent"]) for d in data}
        return Text(escape(tree_text(sub, names, root=root), keep_newlines=True), json_data=data)
    if name:
        return Lines([escape(n) for n in names], json_data=data)
    headers = ["Name", "Creation Time", "State"] + (["Parent"] if parent else [])
    rows = []
    for d in data:
        row = [escape(d["name"]), _fmt_time(d["creation_time"]), d["state"]]
        if parent:
            row.append(escape(d["parent"] or ""))
        rows.append(row)
    return Table(headers, rows, json_data=data)


@command("snapshot-info", group="snapshot", summary="snapshot information",
         opts=[DOMAIN, SNAPNAME, CURRENT], examples=("snapshot-info vm1 s1", "snapshot-info vm1 --current"))
def snapshot_info(ctx, domain, snapshotname=None, current=False):
    info = _pick(ctx.conn.lookup_domain(domain), snapshotname, current).info()
    pairs = [("Name", escape(info["name"])), ("Domain", escape(info["domain"])), ("Current", "yes" if info["current"] else "no"),
             ("State", info["state"]), ("Location", info["location"]), ("Parent", escape(info["parent"] or "-")),
             ("Children", str(info["children"])), ("Descendants", str(info["descendants"])),
             ("Metadata", "yes" if info["metadata"] else "no")]
    return KeyValue(pairs, json_data=info)


@command("snapshot-dumpxml", group="snapshot", summary="Dump XML for a domain snapshot",
         opts=[DOMAIN, Opt("snapshotname", kind="snapshot", required=True, positional=True, help="snapshot name"),
               Opt("no-domain", kind="bool", help="exclude <domain> from XML")])
def snapshot_dumpxml(ctx, domain, snapshotname, no_domain=False):
    text = ctx.conn.lookup_domain(domain).snapshots.snapshot(snapshotname).xml(with_domain=not no_domain)
    return Text(text, json_data={"xml": text})


@command("snapshot-current", group="snapshot", summary="Get or set the current snapshot",
         opts=[DOMAIN, Opt("name", kind="bool", help="list the name, rather than the full xml"),
               SNAPNAME],
         examples=("snapshot-current vm1 --name", "snapshot-current vm1 s1"),
         description="Without a snapshot name, print the current snapshot's XML (or only its name\n"
                     "with --name). With a name, make that snapshot the current one: the parent of\n"
                     "the next snapshot, and what revert --current and delete --current act on.")
def snapshot_current(ctx, domain, name=False, snapshotname=None):
    dom = ctx.conn.lookup_domain(domain)
    if snapshotname is not None:
        if ctx.readonly:
            raise VshError("operation forbidden: read only access prevents snapshot-current")
        if name:
            raise InvalidArgument("--name and a snapshot name cannot be combined")
        dom.snapshots.snapshot(snapshotname).set_current()
        return Message(f"Snapshot {snapshotname} set as current", newline=False,
                       json_data={"current": snapshotname})
    cur = _current(dom)
    if name:
        return Text(cur.name, json_data={"current": cur.name})
    text = cur.xml()
    return Text(text, json_data={"current": cur.name, "xml": text})


@command("snapshot-parent", group="snapshot", summary="Get the name of the parent of a snapshot",
         opts=[DOMAIN, SNAPNAME, CURRENT])
def snapshot_parent(ctx, domain, snapshotname=None, current=False):
    parent = _pick(ctx.conn.lookup_domain(domain), snapshotname, current).parent_name()
    return Text(parent, json_data={"parent": parent})


@command("snapshot-revert", group="snapshot", summary="Revert a domain to a snapshot",
         opts=[DOMAIN, SNAPNAME, CURRENT,
               Opt("running", kind="bool", help="after reverting, change state to running"),
               Opt("paused", kind="bool", help="after reverting, change state to paused"),
               Opt("force", kind="bool", help="try harder on risky reverts")],
         exclusive=(("running", "paused"),), mutating=True,
         examples=("snapshot-revert vm1 s1", "snapshot-revert vm1 s1 --force --running"),
         description="Make the domain what it was when the snapshot was taken: its disks, its\n"
                     "definition and, for a snapshot of a running domain, its memory (it resumes\n"
                     "running or paused). Any node of the tree can be reverted to; later\n"
                     "snapshots stay. As with libvirt, --force is needed only for a risky revert:\n"
                     "a snapshot without a domain definition, a running domain whose definition\n"
                     "is ABI-incompatible with the snapshot's (QEMU must restart), --running or\n"
                     "--paused to an inactive snapshot of a running domain, or a snapshot without\n"
                     "memory state while a managed save image exists.")
def snapshot_revert(ctx, domain, snapshotname=None, current=False, running=False, paused=False, force=False):
    snap = _pick(ctx.conn.lookup_domain(domain), snapshotname, current)
    snap.revert(running=running, paused=paused, force=force)
    return Message(f"Domain snapshot {snap.name} reverted", json_data={"name": snap.name})


@command("snapshot-delete", group="snapshot", summary="Delete a domain snapshot",
         opts=[DOMAIN, SNAPNAME, CURRENT,
               Opt("children", kind="bool", help="delete snapshot and all children"),
               Opt("children-only", kind="bool", help="delete children but not snapshot"),
               Opt("metadata", kind="bool", help="delete only vsh's metadata, leaving the snapshot contents behind")],
         exclusive=(("children", "children-only"),), mutating=True,
         examples=("snapshot-delete vm1 s1", "snapshot-delete vm1 s1 --children"),
         description="Delete a snapshot anywhere in the tree; its children move up to its parent.\n"
                     "Internal snapshots leave their qcow2 images; an external snapshot's frozen\n"
                     "image is merged into the one image built on it when vsh created it and\n"
                     "nothing else needs it. The domain's current state is never touched.")
def snapshot_delete(ctx, domain, snapshotname=None, current=False, children=False, children_only=False,
                    metadata=False):
    snap = _pick(ctx.conn.lookup_domain(domain), snapshotname, current)
    deleted = snap.delete(children=children, children_only=children_only, metadata_only=metadata)
    if children_only:
        return Message(f"Domain snapshot {snap.name} children deleted", json_data={"deleted": deleted})
    return Message(f"Domain snapshot {snap.name} deleted", json_data={"deleted": deleted})


@command("snapshot-edit", group="snapshot", summary="edit XML for a snapshot",
         opts=[DOMAIN, SNAPNAME, Opt("current", kind="bool", help="also set edited snapshot as current"),
               Opt("rename", kind="bool", help="allow renaming an existing snapshot"),
               Opt("clone", kind="bool", help="allow cloning to new name")],
         exclusive=(("rename", "clone"),), mutating=True,
         examples=("snapshot-edit vm1 s1", "snapshot-edit vm1 --current"),
         description="Open the snapshot's XML in $VISUAL or $EDITOR and store the result as its\n"
                     "metadata (its description; what the images hold cannot change, nor its name).\n"
                     "--current with a name also makes it the current snapshot; alone, it edits the\n"
                     "current snapshot.")
def snapshot_edit(ctx, domain, snapshotname=None, current=False, rename=False, clone=False):
    dom = ctx.conn.lookup_domain(domain)
    snap = _pick(dom, snapshotname, current and not snapshotname)
    before = snap.xml()
    after = edit_text(before, f"snapshot {snap.name}")
    if after == before:
        return Message(f"Snapshot {snap.name} XML configuration not changed.",
                       json_data={"name": snap.name, "changed": False})
    try:
        snap.redefine(after.encode("utf-8", "surrogateescape"), current=bool(current and snapshotname),
                      rename=rename, clone=clone)
    except VshError as err:
        raise VshError(*err.lines, f"Failed to update {snap.name}", hint=err.hint) from None
    return Message(f"Snapshot {snap.name} edited.", json_data={"name": snap.name, "changed": True})
