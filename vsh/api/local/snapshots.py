"""The local driver: snapshots of one domain: create, list, revert, delete.

The work is done by :class:`vsh.kvm.snapshot.Engine` (internal qcow2 snapshots,
external overlays, crash-safe metadata in libvirt's domainsnapshot format); it starts
the domain through :func:`vsh.api.local.launch.launch`.
"""

from __future__ import annotations

import os

from vsh.api.snapshots import DomainSnapshots, Snapshot
from vsh.core.errors import InvalidArgument, OperationInvalid


class _Runner:
    """What the snapshot engine needs to start and stop the domain."""

    def __init__(self, store, name: str):
        self.store = store
        self.name = name

    def launch(self, dom, *, paused: bool, extra_argv: list, first_run: dict) -> dict:
        from vsh.api.local.launch import launch

        return launch(self.store, dom, transient=False, paused=paused, extra_argv=extra_argv,
                      first_run=first_run)

    def destroy(self) -> None:
        from vsh.kvm import client

        rundir = self.store.runtime_dir(self.name)
        st = client.read_state(rundir)
        if st and st.get("state") in client.ACTIVE_STATES:
            client.destroy(rundir)


def _describe(defs: dict, name: str, current: str | None) -> dict:
    from vsh.core.snapshots import children_of, descendants_of

    d = defs[name]
    return {"name": name, "creation_time": d.creation_time, "state": d.state,
            "parent": d.parent if d.parent in defs else None, "current": name == current,
            "location": d.location, "description": d.description,
            "children": len(children_of(defs, name)), "descendants": len(descendants_of(defs, name))}


def _disk_requests(disks) -> list:
    from vsh.kvm.snapshot import DiskRequest

    return [DiskRequest(d["target"], d.get("snapshot"), d.get("file")) for d in disks or ()]


class LocalDomainSnapshots(DomainSnapshots):
    def __init__(self, dom):
        self.dom = dom

    def engine(self):
        """The snapshot engine of the domain."""
        from vsh.kvm.snapshot import Engine

        store = self.dom.store
        return Engine(store, self.dom.name, runner=_Runner(store, self.dom.name))

    def recover_pending(self) -> None:
        """Finish or undo an interrupted snapshot operation of the domain (before it starts, and
        before its snapshots are listed)."""
        from vsh.core.snapshots import SnapshotStore

        if os.path.exists(self.dom.store.data_file("snapshots", self.dom.name, SnapshotStore.INTENT)):
            self.engine().recover()

    def create(self, name: str | None = None, description: str | None = None, disk_only: bool = False,
               disks: list[dict] | None = None, no_metadata: bool = False, halt: bool = False) -> dict:
        if description:
            from vsh.core.xml import check_xml_text

            check_xml_text(description, "description")
        requests = _disk_requests(disks)
        engine = self.engine()
        defn = engine.create(name, description, disk_only=disk_only, disks=requests, no_metadata=no_metadata,
                             halt=halt)
        return {"name": defn.name, "state": defn.state, "location": defn.location}

    def create_xml(self, xml: str, origin: str = "domainsnapshot", disk_only: bool = False,
                   no_metadata: bool = False, halt: bool = False) -> dict:
        from vsh.core.xml import parse

        root = parse(xml.encode() if isinstance(xml, str) else xml, origin, "domainsnapshot")
        name = (root.findtext("name") or "").strip() or None
        description = root.findtext("description")
        memory = root.find("memory")
        disks = []
        for el in root.findall("disks/disk"):
            src = el.find("source")
            disk = {"target": el.get("name") or "", "snapshot": el.get("snapshot"),
                    "file": src.get("file") if src is not None else None}
            if not disk["target"]:
                raise InvalidArgument("a <disk> of the snapshot XML has no name")
            disks.append(disk)
        external = any(d["snapshot"] == "external" or d["file"] for d in disks)
        if external and memory is not None and memory.get("snapshot") not in (None, "no"):
            raise InvalidArgument("vsh takes external snapshots of disks only: use <memory snapshot='no'/>")
        if memory is not None and memory.get("snapshot") == "external":
            raise InvalidArgument("external memory snapshots are not supported (use an internal snapshot)")
        return self.create(name, description, disk_only=disk_only or external, disks=disks,
                           no_metadata=no_metadata, halt=halt)

    def list(self, start: str | None = None, current: bool = False, descendants: bool = False,
             with_start: bool = False, roots: bool = False, leaves: bool = False, no_leaves: bool = False,
             metadata: bool = False, no_metadata: bool = False, inactive: bool = False,
             active: bool = False, disk_only: bool = False, internal: bool = False,
             external: bool = False, topological: bool = False) -> list[dict]:
        from vsh.core.snapshots import children_of, descendants_of, not_found

        self.recover_pending()      # a snapshot operation killed half-way is settled before it is listed
        engine = self.engine()
        defs = engine.meta.load_all()
        cur = engine.meta.current()
        if current:
            if cur is None:
                raise OperationInvalid(f"domain '{engine.name}' has no current snapshot")
            start = cur
        if start is not None and start not in defs:
            raise not_found(start)
        if start is not None:
            names = descendants_of(defs, start) if descendants else children_of(defs, start)
            if with_start:
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
        kinds = (["shutoff"] if inactive else []) + (["running", "paused"] if active else []) + \
            (["disk-snapshot"] if disk_only else [])
        if kinds:
            names = [n for n in names if defs[n].state in kinds]
        if internal and not external:
            names = [n for n in names if defs[n].location == "internal"]
        if external and not internal:
            names = [n for n in names if defs[n].location == "external"]
        if topological:
            order = {n: i for i, n in enumerate(_topological(defs))}
            names = sorted(names, key=lambda n: order.get(n, 0))
        else:
            names = sorted(names)
        return [_describe(defs, n, cur) for n in names]

    def current(self):
        name = self.engine().meta.current()
        return None if name is None else LocalSnapshot(self, name)

    def snapshot(self, name: str):
        return LocalSnapshot(self, name)


def _topological(defs: dict) -> list[str]:
    from vsh.core.snapshots import children_of, descendants_of

    out = []
    for root in children_of(defs, None):
        out.append(root)
        out.extend(descendants_of(defs, root))
    return out


class LocalSnapshot(Snapshot):
    def __init__(self, snapshots: LocalDomainSnapshots, name: str):
        self.snapshots = snapshots
        self.name = name

    def __repr__(self) -> str:
        return f"<LocalSnapshot {self.snapshots.dom.name}/{self.name}>"

    def _defs(self, engine) -> dict:
        from vsh.core.snapshots import not_found

        defs = engine.meta.load_all()
        if self.name not in defs:
            raise not_found(self.name)
        return defs

    def info(self) -> dict:
        engine = self.snapshots.engine()
        defs = self._defs(engine)
        return dict(_describe(defs, self.name, engine.meta.current()), domain=engine.name, metadata=True)

    def xml(self, with_domain: bool = True) -> str:
        return self.snapshots.engine().meta.load(self.name).to_xml(with_domain=with_domain)

    def parent_name(self) -> str:
        defs = self._defs(self.snapshots.engine())
        parent = defs[self.name].parent
        if parent not in defs:
            raise OperationInvalid(f"snapshot '{self.name}' has no parent")
        return parent

    def set_current(self) -> None:
        self.snapshots.engine().set_current(self.name)

    def redefine(self, xml, current: bool = False, rename: bool = False, clone: bool = False) -> str:
        from vsh.core.errors import Unsupported
        from vsh.core.snapshots import SnapshotDef

        edited = SnapshotDef.parse(xml)
        if edited.name != self.name:
            if not (rename or clone):
                raise InvalidArgument(f"Must use --rename or --clone to change {self.name} to {edited.name}")
            raise Unsupported(f"unsupported configuration: cannot {'rename' if rename else 'clone'} snapshot "
                              f"'{self.name}' to '{edited.name}': its name is the name of its internal "
                              "snapshots and overlays in the disk images")
        self.snapshots.engine().redefine(edited, current=current)
        return self.name

    def revert(self, running: bool = False, paused: bool = False, force: bool = False) -> dict:
        return self.snapshots.engine().revert(self.name, running=running, paused=paused, force=force) or {}

    def delete(self, children: bool = False, children_only: bool = False,
               metadata_only: bool = False) -> list[str]:
        return self.snapshots.engine().delete(self.name, children=children, children_only=children_only,
                                              metadata_only=metadata_only)
