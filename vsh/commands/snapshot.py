"""Saved state: save, restore, managedsave, managedsave-remove, save-image-dumpxml,
managedsave-dumpxml, and the snapshot commands (snapshot-create-as, snapshot-create,
snapshot-list, snapshot-info, snapshot-dumpxml, snapshot-current, snapshot-parent,
snapshot-revert, snapshot-delete).

Saving migrates the paused guest into a file that starts with a small header holding
the domain XML (vsh.kvm.saveimage); restoring starts QEMU with ``-incoming defer`` and
migrates it back. Snapshots are done by vsh.kvm.snapshot (internal qcow2 snapshots,
external overlays, crash-safe metadata in libvirt's domainsnapshot format).
"""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, OperationInvalid, VshError
from vsh.core.output import KeyValue, Lines, Message, Table, Text
from vsh.registry import Opt, command

DOMAIN = Opt("domain", kind="domain", required=True, positional=True, help="domain name, id or uuid")
SNAPNAME = Opt("snapshotname", kind="snapshot", positional=True, help="snapshot name")
CURRENT = Opt("current", kind="bool", help="use the current snapshot")


def _client():
    from vsh.kvm import client

    return client


# -- starting domains for restore and revert ----------------------------------------------------


def launch_domain(ctx, dom, *, paused: bool, extra_argv=(), first_run: dict | None = None,
                  transient: bool = False) -> dict:
    """Start ``dom`` under a supervisor with extra QEMU arguments for this first run."""
    from vsh.commands.lifecycle import _launch

    return _launch(ctx, dom, transient=transient, paused=paused, extra_argv=extra_argv, first_run=first_run)


class _Runner:
    """What the snapshot engine needs to start and stop the domain."""

    def __init__(self, ctx, name: str):
        self.ctx = ctx
        self.name = name

    def launch(self, dom, *, paused: bool, extra_argv: list, first_run: dict) -> dict:
        return launch_domain(self.ctx, dom, paused=paused, extra_argv=extra_argv, first_run=first_run)

    def destroy(self) -> None:
        rundir = self.ctx.store.runtime_dir(self.name)
        st = _client().read_state(rundir)
        if st and st.get("state") in _client().ACTIVE_STATES:
            _client().destroy(rundir)


def recover_pending(ctx, name: str) -> None:
    """Finish or undo an interrupted snapshot operation of the domain (before it starts)."""
    from vsh.core.snapshots import SnapshotStore

    if os.path.exists(ctx.store.data_file("snapshots", name, SnapshotStore.INTENT)):
        _engine(ctx, name).recover()


def _engine(ctx, name: str):
    from vsh.kvm.snapshot import Engine

    return Engine(ctx.store, name, runner=_Runner(ctx, name))


# -- save / restore ------------------------------------------------------------------------------


def _progress_thread(ctx, rundir, label: str):
    """Print virsh's ``Save: [ 42 %]`` progress on stderr while a save runs (--verbose)."""
    import threading

    stop = threading.Event()
    err = getattr(ctx, "err", None)
    import sys

    err = err or sys.stderr

    def run():
        last = -1
        while not stop.wait(0.1):
            try:
                info = _client().qmp(rundir, "query-migrate", timeout=2.0)
            except VshError:
                continue
            ram = info.get("ram") or {}
            total = ram.get("total") or 0
            if not total:
                continue
            pct = max(0, min(99, int(100 * (total - ram.get("remaining", total)) / total)))
            if pct != last:
                err.write(f"\r{label}: [{pct:3d} %]")
                err.flush()
                last = pct

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def finish(ok: bool):
        stop.set()
        thread.join(timeout=3.0)
        if ok:
            err.write(f"\r{label}: [100 %]\n")
        else:
            err.write("\n")
        err.flush()

    return finish


def _save(ctx, ref, final: str, running: bool, paused: bool, bypass_cache: bool, verbose: bool,
          xml: str | None = None) -> dict:
    store = ctx.store
    rundir = store.runtime_dir(ref.name)
    st = _client().read_state(rundir) or {}
    if not ref.active or st.get("state") not in ("running", "paused"):
        raise OperationInvalid("Requested operation is not valid: domain is not running")
    directory = os.path.dirname(os.path.abspath(final))
    if not os.path.isdir(directory):
        raise InvalidArgument(f"Failed to create file '{final}': No such file or directory")
    if os.path.isdir(final):
        raise InvalidArgument(f"Failed to create file '{final}': Is a directory")
    with store.lock(ref.name, timeout=600.0):     # not while a snapshot operation runs
        return _save_locked(ctx, ref, final, st, running, paused, bypass_cache, verbose, xml)


def _save_locked(ctx, ref, final, st, running, paused, bypass_cache, verbose, xml) -> dict:
    from vsh.kvm import saveimage

    store = ctx.store
    rundir = store.runtime_dir(ref.name)
    dom = store.load(ref)
    resume = running or (st.get("state") == "running" and not paused)
    tmp = saveimage.tmp_path_for(final)
    try:
        offset = saveimage.create(tmp, xml if xml is not None else dom.to_xml(inactive=True), resume)
    except OSError as exc:
        raise InvalidArgument(f"Failed to create file '{final}': {exc.strerror}") from None
    finish = _progress_thread(ctx, rundir, "Save") if verbose else None
    try:
        result = _client().save(rundir, tmp, os.path.abspath(final), offset, bypass_cache=bypass_cache)
    except BaseException:
        if finish:
            finish(False)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if finish:
        finish(True)
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
    ref = ctx.store.get(domain)
    try:
        text = _xml_for_save(ctx, ref, xml) if xml is not None else None
        _save(ctx, ref, file, running, paused, bypass_cache, verbose, xml=text)
    except VshError as err:
        raise err.with_context(f"Failed to save domain '{ref.name}' to {file}") from None
    return Message(f"\nDomain '{ref.name}' saved to {file}", json_data={"name": ref.name, "file": file})


def _xml_for_save(ctx, ref, path: str) -> str:
    """--xml: the definition to record in the image instead of the live one; it must describe
    the same machine (same name and UUID; restore fails if the devices differ)."""
    from vsh.core.domain import Domain
    from vsh.core.store import read_input_file

    new = Domain.parse(read_input_file(path))
    old = ctx.store.load(ref)
    if new.name != old.name or (new.uuid or "").lower() != (old.uuid or "").lower():
        raise InvalidArgument("the XML given with --xml must describe the same domain (name and UUID)")
    return new.to_xml(inactive=True)


def restore_image(ctx, path: str, *, xml: str | None = None, running: bool = False, paused: bool = False,
                  bypass_cache: bool = False, expect_name: str | None = None) -> dict:
    """Start the domain a save image describes and load its state."""
    from vsh.core.domain import Domain
    from vsh.kvm import saveimage

    img = saveimage.read(path)
    dom = Domain.parse(xml if xml is not None else img.xml, os.path.basename(path))
    dom.node.attrib.pop("id", None)
    store = ctx.store
    if expect_name is not None and dom.name != expect_name:
        raise OperationInvalid(f"operation failed: the save image holds domain '{dom.name}', "
                               f"not '{expect_name}'")
    owner = store._uuid_owner(dom.uuid)
    if owner is not None and owner != dom.name:
        raise OperationInvalid(f"operation failed: domain '{owner}' already exists with uuid {dom.uuid}")
    existing = store.find(dom.name)
    persistent = False
    if existing is not None:
        if existing.active:
            raise OperationInvalid(f"Requested operation is not valid: domain '{dom.name}' is already active")
        if existing.persistent:
            old = store.load(existing, inactive=True)
            if (old.uuid or "").lower() != (dom.uuid or "").lower():
                raise OperationInvalid(f"operation failed: domain '{dom.name}' already exists with uuid "
                                       f"{old.uuid}")
            persistent = True
    start_paused = paused or (not running and not img.running)
    first_run = {"incoming": {"path": os.path.abspath(path), "offset": img.data_offset,
                              "drop_cache": bool(bypass_cache)},
                 "running_reason": "restored", "paused_reason": "user",
                 "drop_argv": ["-incoming", "defer"]}
    return launch_domain(ctx, dom, paused=start_paused, extra_argv=["-incoming", "defer"],
                         first_run=first_run, transient=not persistent)


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
    from vsh.core.store import read_input_file

    try:
        text = read_input_file(xml).decode("utf-8", "replace") if xml is not None else None
        st = restore_image(ctx, file, xml=text, running=running, paused=paused, bypass_cache=bypass_cache)
    except VshError as err:
        raise err.with_context(f"Failed to restore domain from {file}") from None
    return Message(f"Domain restored from {file}", json_data={"name": (st or {}).get("name"), "file": file,
                                                              "state": (st or {}).get("state")})


def _managed_path(ctx, name: str) -> str:
    return ctx.store.data_file("managedsave", f"{name}.save")


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
    from vsh.core.store import ensure_private_dir

    ref = ctx.store.get(domain)
    try:
        if not ref.persistent:
            raise OperationInvalid("Requested operation is not valid: cannot do managed save for transient domain")
        ensure_private_dir(ctx.store.data_file())
        ensure_private_dir(ctx.store.data_file("managedsave"))
        _save(ctx, ref, _managed_path(ctx, ref.name), running, paused, bypass_cache, verbose)
    except VshError as err:
        raise err.with_context(f"Failed to save domain '{ref.name}' state") from None
    return Message(f"\nDomain '{ref.name}' state saved by libvirt", json_data={"name": ref.name})


def start_from_managed_save(ctx, ref, paused: bool = False, bypass_cache: bool = False) -> dict:
    """``start`` of a domain with a managed save image: resume it, then drop the image."""
    path = _managed_path(ctx, ref.name)
    st = restore_image(ctx, path, paused=paused, bypass_cache=bypass_cache, expect_name=ref.name)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return st


@command("managedsave-remove", group="domain", summary="Remove managed save of a domain",
         opts=[DOMAIN], mutating=True)
def managedsave_remove(ctx, domain):
    ref = ctx.store.get(domain)
    path = _managed_path(ctx, ref.name)
    if not os.path.exists(path):
        return Message(f"Domain '{ref.name}' has no manage save image; removal skipped",
                       json_data={"name": ref.name, "removed": False})
    try:
        os.unlink(path)
    except OSError as exc:
        raise VshError(f"Failed to remove managed save image for domain '{ref.name}'", exc.strerror) from None
    return Message(f"Removed managedsave image for domain '{ref.name}'", json_data={"name": ref.name, "removed": True})


@command("managedsave-dumpxml", group="domain", summary="Domain information of managed save state file in XML",
         opts=[DOMAIN, Opt("security-info", kind="bool", help="include security sensitive information in XML dump")])
def managedsave_dumpxml(ctx, domain, security_info=False):
    from vsh.kvm import saveimage

    ref = ctx.store.get(domain)
    path = _managed_path(ctx, ref.name)
    if not os.path.exists(path):
        raise OperationInvalid(f"Requested operation is not valid: domain does not have managed save image")
    img = saveimage.read(path)
    return Text(img.xml, json_data={"xml": img.xml})


@command("save-image-dumpxml", group="domain", summary="saved state domain information in XML",
         opts=[Opt("file", kind="file", required=True, positional=True, help="saved state file to read"),
               Opt("security-info", kind="bool", help="include security sensitive information in XML dump")])
def save_image_dumpxml(ctx, file, security_info=False):
    from vsh.kvm import saveimage

    img = saveimage.read(file)
    return Text(img.xml, json_data={"xml": img.xml})


# -- snapshots -------------------------------------------------------------------------------------


def _pick(ctx, engine, snapshotname: str | None, current: bool, what: str = "snapshot") -> str:
    """The snapshot a command is about: the name given, or the current one (--current)."""
    if snapshotname and current:
        raise InvalidArgument("--snapshotname and --current are mutually exclusive")
    if snapshotname:
        return snapshotname
    if current:
        cur = engine.meta.current()
        if cur is None:
            raise OperationInvalid(f"domain '{engine.name}' has no current snapshot")
        return cur
    raise InvalidArgument(f"a {what} name or --current is required")


def _parse_diskspec(text: str):
    """``vda[,snapshot=external|no][,file=PATH][,driver=qcow2]`` (``,,`` is a literal comma)."""
    from vsh.kvm.snapshot import DiskRequest

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
    req = DiskRequest(parts[0])
    if not req.target:
        raise InvalidArgument(f"invalid diskspec '{text}': it starts with the disk's target (vda)")
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if key == "snapshot" and value in ("external", "no", "internal"):
            req.snapshot = value
        elif key in ("file", "source") and eq:
            req.file = value
        elif key == "driver" and value == "qcow2":
            pass
        else:
            raise InvalidArgument(f"invalid diskspec '{text}': unknown or bad '{part}' "
                                  "(snapshot=external|no, file=PATH, driver=qcow2)")
    return req


def _engine_for(ctx, domain: str):
    ref = ctx.store.get(domain)
    return ref, _engine(ctx, ref.name)


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
    requests = [_parse_diskspec(spec) for spec in (diskspec or [])]
    if print_xml:
        from lxml import etree

        from vsh.core.xml import serialize

        ctx.store.get(domain)
        root = etree.Element("domainsnapshot")
        if name:
            etree.SubElement(root, "name").text = name
        if description:
            etree.SubElement(root, "description").text = description
        if requests:
            disks = etree.SubElement(root, "disks")
            for req in requests:
                el = etree.SubElement(disks, "disk", name=req.target)
                if req.snapshot:
                    el.set("snapshot", req.snapshot)
                if req.file:
                    etree.SubElement(el, "source", file=req.file)
        text = serialize(root) + "\n"
        return Text(text, json_data={"xml": text})
    ref, engine = _engine_for(ctx, domain)
    if requests and not disk_only and any(r.snapshot == "external" or r.file for r in requests):
        disk_only = True
    defn = engine.create(name, description, disk_only=disk_only, disks=requests, no_metadata=no_metadata,
                         halt=halt)
    return Message(f"Domain snapshot {defn.name} created", newline=False,
                   json_data={"name": defn.name, "state": defn.state, "location": defn.location})


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
    from vsh.core.store import read_input_file
    from vsh.kvm.snapshot import DiskRequest

    name = description = None
    requests = []
    if xmlfile is not None:
        from vsh.core.xml import parse

        root = parse(read_input_file(xmlfile), os.path.basename(xmlfile), "domainsnapshot")
        name = (root.findtext("name") or "").strip() or None
        description = root.findtext("description")
        memory = root.find("memory")
        for el in root.findall("disks/disk"):
            src = el.find("source")
            req = DiskRequest(el.get("name") or "", el.get("snapshot"),
                              src.get("file") if src is not None else None)
            if not req.target:
                raise InvalidArgument("a <disk> of the snapshot XML has no name")
            requests.append(req)
        external = any(r.snapshot == "external" or r.file for r in requests)
        if external and memory is not None and memory.get("snapshot") not in (None, "no"):
            raise InvalidArgument("vsh takes external snapshots of disks only: use <memory snapshot='no'/>")
        if memory is not None and memory.get("snapshot") == "external":
            raise InvalidArgument("external memory snapshots are not supported (use an internal snapshot)")
        disk_only = disk_only or external
    ref, engine = _engine_for(ctx, domain)
    defn = engine.create(name, description, disk_only=disk_only, disks=requests, no_metadata=no_metadata,
                         halt=halt)
    text = f"Domain snapshot {defn.name} created" + (f" from '{xmlfile}'" if xmlfile else "")
    return Message(text, newline=False, json_data={"name": defn.name, "state": defn.state,
                                                   "location": defn.location})


def _fmt_time(ts: int) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(ts))


def _snapshot_json(defs: dict, name: str, current: str | None) -> dict:
    from vsh.core.snapshots import children_of, descendants_of

    d = defs[name]
    return {"name": name, "creation_time": d.creation_time, "state": d.state,
            "parent": d.parent if d.parent in defs else None, "current": name == current,
            "location": d.location, "description": d.description,
            "children": len(children_of(defs, name)), "descendants": len(descendants_of(defs, name))}


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
    from vsh.core.snapshots import children_of, descendants_of, not_found, tree_text

    start = kw.get("from")
    ref, engine = _engine_for(ctx, domain)
    defs = engine.meta.load_all()
    cur = engine.meta.current()
    if current:
        if cur is None:
            raise OperationInvalid(f"domain '{ref.name}' has no current snapshot")
        start = cur
    if start is not None and start not in defs:
        raise not_found(start)
    if start is not None:
        names = descendants_of(defs, start) if (descendants or tree) else children_of(defs, start)
        if tree:
            names = [start] + names
    else:
        names = sorted(defs)
    if no_metadata and not metadata:
        names = []
    if roots:
        names = [n for n in names if defs[n].parent not in defs]
    if leaves and not no_leaves:
        names = [n for n in names if not children_of(defs, n)]
    if no_leaves and not leaves:
        names = [n for n in names if children_of(defs, n)]
    kinds = []
    if inactive:
        kinds.append("shutoff")
    if active:
        kinds += ["running", "paused"]
    if disk_only:
        kinds.append("disk-snapshot")
    if kinds:
        names = [n for n in names if defs[n].state in kinds]
    if internal and not external:
        names = [n for n in names if defs[n].location == "internal"]
    if external and not internal:
        names = [n for n in names if defs[n].location == "external"]
    if topological:
        order = {n: i for i, n in enumerate(descendants_of_all(defs))}
        names = sorted(names, key=lambda n: order.get(n, 0))
    else:
        names = sorted(names)
    data = [_snapshot_json(defs, n, cur) for n in names]
    if tree:
        sub = {n: defs[n] for n in names}
        return Text(tree_text(sub, names, root=start), json_data=data)
    if name:
        return Lines(names, json_data=data)
    headers = ["Name", "Creation Time", "State"] + (["Parent"] if parent else [])
    rows = []
    for n in names:
        d = defs[n]
        row = [n, _fmt_time(d.creation_time), d.state]
        if parent:
            row.append(d.parent if d.parent in defs else "")
        rows.append(row)
    return Table(headers, rows, json_data=data)


def descendants_of_all(defs: dict) -> list[str]:
    from vsh.core.snapshots import children_of, descendants_of

    out = []
    for root in children_of(defs, None):
        out.append(root)
        out.extend(descendants_of(defs, root))
    return out


@command("snapshot-info", group="snapshot", summary="snapshot information",
         opts=[DOMAIN, SNAPNAME, CURRENT], examples=("snapshot-info vm1 s1", "snapshot-info vm1 --current"))
def snapshot_info(ctx, domain, snapshotname=None, current=False):
    from vsh.core.snapshots import children_of, descendants_of

    ref, engine = _engine_for(ctx, domain)
    name = _pick(ctx, engine, snapshotname, current)
    defs = engine.meta.load_all()
    if name not in defs:
        from vsh.core.snapshots import not_found

        raise not_found(name)
    d = defs[name]
    cur = engine.meta.current()
    pairs = [("Name", name), ("Domain", ref.name), ("Current", "yes" if name == cur else "no"),
             ("State", d.state), ("Location", d.location),
             ("Parent", d.parent if d.parent in defs else "-"),
             ("Children", str(len(children_of(defs, name)))),
             ("Descendants", str(len(descendants_of(defs, name)))), ("Metadata", "yes")]
    return KeyValue(pairs, json_data=dict(_snapshot_json(defs, name, cur), domain=ref.name, metadata=True))


@command("snapshot-dumpxml", group="snapshot", summary="Dump XML for a domain snapshot",
         opts=[DOMAIN, Opt("snapshotname", kind="snapshot", required=True, positional=True, help="snapshot name"),
               Opt("no-domain", kind="bool", help="exclude <domain> from XML")])
def snapshot_dumpxml(ctx, domain, snapshotname, no_domain=False):
    ref, engine = _engine_for(ctx, domain)
    text = engine.meta.load(snapshotname).to_xml(with_domain=not no_domain)
    return Text(text, json_data={"xml": text})


@command("snapshot-current", group="snapshot", summary="Get or set the current snapshot",
         opts=[DOMAIN, Opt("name", kind="bool", help="list the name, rather than the full xml"),
               SNAPNAME],
         examples=("snapshot-current vm1 --name", "snapshot-current vm1 s1"),
         description="Without a snapshot name, print the current snapshot's XML (or only its name\n"
                     "with --name). With a name, make that snapshot the current one: the parent of\n"
                     "the next snapshot, and what revert --current and delete --current act on.")
def snapshot_current(ctx, domain, name=False, snapshotname=None):
    ref, engine = _engine_for(ctx, domain)
    if snapshotname is not None:
        if ctx.readonly:
            raise VshError("operation forbidden: read only access prevents snapshot-current")
        if name:
            raise InvalidArgument("--name and a snapshot name cannot be combined")
        engine.set_current(snapshotname)
        return Message(f"Snapshot {snapshotname} set as current", newline=False,
                       json_data={"current": snapshotname})
    cur = engine.meta.current()
    if cur is None:
        raise OperationInvalid(f"domain '{ref.name}' has no current snapshot")
    if name:
        return Text(cur, json_data={"current": cur})
    text = engine.meta.load(cur).to_xml()
    return Text(text, json_data={"current": cur, "xml": text})


@command("snapshot-parent", group="snapshot", summary="Get the name of the parent of a snapshot",
         opts=[DOMAIN, SNAPNAME, CURRENT])
def snapshot_parent(ctx, domain, snapshotname=None, current=False):
    ref, engine = _engine_for(ctx, domain)
    name = _pick(ctx, engine, snapshotname, current)
    defs = engine.meta.load_all()
    if name not in defs:
        from vsh.core.snapshots import not_found

        raise not_found(name)
    parent = defs[name].parent
    if parent not in defs:
        raise OperationInvalid(f"snapshot '{name}' has no parent")
    return Text(parent, json_data={"parent": parent})


@command("snapshot-revert", group="snapshot", summary="Revert a domain to a snapshot",
         opts=[DOMAIN, SNAPNAME, CURRENT,
               Opt("running", kind="bool", help="after reverting, change state to running"),
               Opt("paused", kind="bool", help="after reverting, change state to paused"),
               Opt("force", kind="bool", help="discard the domain's current state even if no snapshot keeps it")],
         exclusive=(("running", "paused"),), mutating=True,
         examples=("snapshot-revert vm1 s1", "snapshot-revert vm1 s1 --force --running"),
         description="Make the domain what it was when the snapshot was taken: its disks, its\n"
                     "definition and, for a snapshot of a running domain, its memory (it resumes\n"
                     "running or paused). Any node of the tree can be reverted to; later\n"
                     "snapshots stay. vsh refuses to discard a current state that no snapshot\n"
                     "keeps (a running domain, a disk changed since the current snapshot, a\n"
                     "managed save image) unless --force is given.")
def snapshot_revert(ctx, domain, snapshotname=None, current=False, running=False, paused=False, force=False):
    ref, engine = _engine_for(ctx, domain)
    name = _pick(ctx, engine, snapshotname, current)
    engine.revert(name, running=running, paused=paused, force=force)
    return Message(f"Domain snapshot {name} reverted", json_data={"name": name})


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
    ref, engine = _engine_for(ctx, domain)
    name = _pick(ctx, engine, snapshotname, current)
    deleted = engine.delete(name, children=children, children_only=children_only, metadata_only=metadata)
    if children_only:
        return Message(f"Domain snapshot {name} children deleted", json_data={"deleted": deleted})
    return Message(f"Domain snapshot {name} deleted", json_data={"deleted": deleted})
