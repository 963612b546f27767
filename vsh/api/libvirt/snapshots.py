"""Snapshots of one domain through libvirt (``virDomainSnapshotPtr``)."""

from __future__ import annotations

from vsh.api.libvirt.handles import parse_xml
from vsh.api.libvirt.lv import call, mod
from vsh.api.snapshots import DomainSnapshots, Snapshot
from vsh.core.errors import InvalidArgument

# virDomainSnapshotCreateFlags
_REDEFINE, _CURRENT, _NO_METADATA, _HALT, _DISK_ONLY = 1, 2, 4, 8, 16
# virDomainSnapshotListFlags (DESCENDANTS and ROOTS share a value: ROOTS without a start)
_LIST_FLAGS = {"descendants": 1, "roots": 1, "metadata": 2, "leaves": 4, "no_leaves": 8, "no_metadata": 16,
               "inactive": 32, "active": 64, "disk_only": 128, "internal": 256, "external": 512,
               "topological": 1024}


def _esc(text: str) -> str:
    from xml.sax.saxutils import escape

    return escape(text, {"'": "&apos;"})


def snapshot_xml(name, description, disk_only: bool, disks) -> str:
    """The ``<domainsnapshot>`` document for :meth:`DomainSnapshots.create`'s arguments."""
    out = ["<domainsnapshot>\n"]
    if name:
        out.append(f"  <name>{_esc(name)}</name>\n")
    if description:
        out.append(f"  <description>{_esc(description)}</description>\n")
    if disk_only:
        out.append("  <memory snapshot='no'/>\n")
    if disks:
        out.append("  <disks>\n")
        for disk in disks:
            kind = disk.get("snapshot") or ("external" if disk_only or disk.get("file") else None)
            attrs = f" name='{_esc(disk['target'])}'" + (f" snapshot='{kind}'" if kind else "")
            if disk.get("file"):
                out.append(f"    <disk{attrs}>\n      <source file='{_esc(disk['file'])}'/>\n    </disk>\n")
            else:
                out.append(f"    <disk{attrs}/>\n")
        out.append("  </disks>\n")
    out.append("</domainsnapshot>\n")
    return "".join(out)


class LibvirtDomainSnapshots(DomainSnapshots):
    def __init__(self, dom):
        self.dom = dom

    def create(self, name=None, description=None, disk_only=False, disks=None, no_metadata=False,
               halt=False) -> dict:
        return self.create_xml(snapshot_xml(name, description, disk_only, disks), disk_only=disk_only,
                               no_metadata=no_metadata, halt=halt)

    def create_xml(self, xml: str, origin: str = "domainsnapshot", disk_only: bool = False,
                   no_metadata: bool = False, halt: bool = False) -> dict:
        flags = (_DISK_ONLY if disk_only else 0) | (_NO_METADATA if no_metadata else 0) | (_HALT if halt else 0)
        ptr = call("virDomainSnapshotCreateXML", self.dom.ptr, xml, flags)
        try:
            name = mod().virDomainSnapshotGetName(ptr)
            if no_metadata:
                return {"name": name, "state": None, "location": "external" if disk_only else "internal"}
            info = describe(ptr)
        finally:
            mod().virDomainSnapshotFree(ptr)
        return {"name": name, "state": info["state"], "location": info["location"]}

    def list(self, start=None, current=False, descendants=False, with_start=False, roots=False, leaves=False,
             no_leaves=False, metadata=False, no_metadata=False, inactive=False, active=False, disk_only=False,
             internal=False, external=False, topological=False) -> list[dict]:
        chosen = dict(descendants=descendants, roots=roots, leaves=leaves, no_leaves=no_leaves, metadata=metadata,
                      no_metadata=no_metadata, inactive=inactive, active=active, disk_only=disk_only,
                      internal=internal, external=external, topological=topological)
        m = mod()
        first = []
        if current:
            snap = self.current()
            if snap is None:
                from vsh.core.errors import OperationInvalid

                raise OperationInvalid(f"domain '{self.dom.name}' has no current snapshot")
            start = snap.name
        # libvirt's flag 1 is DESCENDANTS below a start, ROOTS without one
        chosen["descendants" if start is None else "roots"] = False
        flags = 0
        for key, value in chosen.items():
            if value:
                flags |= _LIST_FLAGS[key]
        if start is not None:
            parent = LibvirtSnapshot(self.dom, start)._ptr()
            try:
                ptrs = call("virDomainSnapshotListAllChildren", parent, flags)
                if with_start:
                    first = [describe(parent)]
            finally:
                m.virDomainSnapshotFree(parent)
        else:
            ptrs = call("virDomainListAllSnapshots", self.dom.ptr, flags)
        out = []
        for ptr in ptrs:
            out.append(describe(ptr))
            m.virDomainSnapshotFree(ptr)
        if topological:
            out = _topological(out)
        else:
            out.sort(key=lambda s: s["name"])
        return first + out

    def current(self):
        m = mod()
        if m.virDomainHasCurrentSnapshot(self.dom.ptr, 0) != 1:
            return None
        ptr = call("virDomainSnapshotCurrent", self.dom.ptr, 0)
        name = m.virDomainSnapshotGetName(ptr)
        m.virDomainSnapshotFree(ptr)
        return LibvirtSnapshot(self.dom, name)

    def snapshot(self, name: str):
        return LibvirtSnapshot(self.dom, name)


def _topological(snaps: list[dict]) -> list[dict]:
    """Parents before their children, siblings by name."""
    names = {s["name"] for s in snaps}
    children: dict = {}
    for snap in snaps:
        children.setdefault(snap["parent"] if snap["parent"] in names else None, []).append(snap)
    out, todo = [], sorted(children.get(None, []), key=lambda s: s["name"], reverse=True)
    while todo:
        snap = todo.pop()
        out.append(snap)
        todo.extend(sorted(children.get(snap["name"], []), key=lambda s: s["name"], reverse=True))
    return out


def describe(ptr) -> dict:
    """The dict of :mod:`vsh.api.snapshots` for a snapshot pointer."""
    m = mod()
    tree = parse_xml(call("virDomainSnapshotGetXMLDesc", ptr, 0))
    memory = tree.find("memory")
    external = (memory is not None and memory.get("snapshot") == "external") or any(
        disk.get("snapshot") == "external" for disk in tree.iterfind("disks/disk"))
    return {"name": tree.findtext("name"), "creation_time": int(tree.findtext("creationTime") or 0),
            "state": tree.findtext("state"), "parent": tree.findtext("parent/name"),
            "current": m.virDomainSnapshotIsCurrent(ptr, 0) == 1, "location": "external" if external else "internal",
            "description": tree.findtext("description"),
            "children": m.virDomainSnapshotNumChildren(ptr, 0), "descendants": m.virDomainSnapshotNumChildren(ptr, 1)}


class LibvirtSnapshot(Snapshot):
    def __init__(self, dom, name: str):
        self.dom = dom
        self.name = name

    def _ptr(self):
        return call("virDomainSnapshotLookupByName", self.dom.ptr, self.name, 0)

    def _with(self, fn):
        ptr = self._ptr()
        try:
            return fn(ptr)
        finally:
            mod().virDomainSnapshotFree(ptr)

    def info(self) -> dict:
        def read(ptr):
            data = describe(ptr)
            data.update(domain=self.dom.name, metadata=mod().virDomainSnapshotHasMetadata(ptr, 0) == 1)
            return data

        return self._with(read)

    def xml(self, with_domain: bool = True) -> str:
        text = self._with(lambda ptr: call("virDomainSnapshotGetXMLDesc", ptr, 0))
        if with_domain:
            return text
        from xml.etree import ElementTree

        tree = parse_xml(text)
        for tag in ("domain", "inactiveDomain"):
            el = tree.find(tag)
            if el is not None:
                tree.remove(el)
        return ElementTree.tostring(tree, encoding="unicode") + "\n"

    def parent_name(self) -> str:
        def parent(ptr):
            up = call("virDomainSnapshotGetParent", ptr, 0)
            name = mod().virDomainSnapshotGetName(up)
            mod().virDomainSnapshotFree(up)
            return name

        return self._with(parent)

    def set_current(self) -> None:
        xml = self._with(lambda ptr: call("virDomainSnapshotGetXMLDesc", ptr, 1))      # _XML_SECURE
        ptr = call("virDomainSnapshotCreateXML", self.dom.ptr, xml, _REDEFINE | _CURRENT)
        mod().virDomainSnapshotFree(ptr)

    def revert(self, running: bool = False, paused: bool = False, force: bool = False) -> dict:
        if running and paused:
            raise InvalidArgument("--running and --paused are mutually exclusive")
        flags = (1 if running else 0) | (2 if paused else 0) | (4 if force else 0)
        self._with(lambda ptr: call("virDomainRevertToSnapshot", self.dom.ptr, ptr, flags))
        return self.dom.runtime() or {}

    def delete(self, children: bool = False, children_only: bool = False, metadata_only: bool = False) -> list[str]:
        def remove(ptr):
            names = [] if children_only else [self.name]
            if children or children_only:
                kids = call("virDomainSnapshotListAllChildren", ptr, 1)
                for kid in kids:
                    names.append(mod().virDomainSnapshotGetName(kid))
                    mod().virDomainSnapshotFree(kid)
            flags = (1 if children else 0) | (2 if metadata_only else 0) | (4 if children_only else 0)
            call("virDomainSnapshotDelete", ptr, flags)
            return names

        return self._with(remove)

    def redefine(self, xml, current: bool = False, rename: bool = False, clone: bool = False) -> str:
        text = xml.decode() if isinstance(xml, bytes) else xml
        new = parse_xml(text).findtext("name") or self.name
        if new != self.name and not (rename or clone):
            raise InvalidArgument(f"Must use --rename or --clone to change {self.name} to {new}")
        # VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE 1, _CURRENT 2
        ptr = call("virDomainSnapshotCreateXML", self.dom.ptr, text, 1 | (2 if current else 0))
        name = mod().virDomainSnapshotGetName(ptr)
        if rename and name != self.name:
            call("virDomainSnapshotDelete", self._ptr(), 2)     # METADATA_ONLY
        self.name = name
        return name
