"""Snapshot metadata: libvirt's domainsnapshot XML, one file per snapshot, and the tree.

On disk, under ``<data>/snapshots/DOMAIN/``:

``SNAP.xml``     one snapshot, in libvirt's ``<domainsnapshot>`` format (with the
                 domain XML of that moment inside)
``.state.json``  ``{"current": NAME|null, "owned": [paths], "garbage": [[path, tag]]}``:
                 the current snapshot, the image files vsh created (and may remove
                 once nothing refers to them), and internal snapshots left to delete
``.intent.json`` the journal of an operation in progress (see vsh.kvm.snapshot)

Every file is written atomically. The parent of a snapshot is recorded in the
child (as libvirt does); children are derived. This module is pure: no QEMU,
no images.
"""

from __future__ import annotations

import json
import os
import time

from vsh.core.errors import InvalidArgument, NotFound, XMLError
from vsh.core.escape import escape
from vsh.core.names import has_control
from vsh.core.store import fsync_dir

STATES = ("running", "paused", "shutoff", "disk-snapshot")
MAX_NAME_BYTES = 200


def not_found(name: str) -> NotFound:
    return NotFound(f"Domain snapshot not found: no domain snapshot with matching name '{name}'")


def check_name(name: str) -> None:
    """A snapshot name is also a file name: no '/', no leading '.', no control characters
    (the rule of every name, :func:`vsh.core.names.has_control`), nothing XML cannot hold."""
    from vsh.core.xml import check_xml_text

    if not name:
        raise InvalidArgument("a snapshot name must not be empty")
    if "/" in name or name.startswith(".") or has_control(name):
        raise InvalidArgument(f"invalid snapshot name '{escape(name)}': it must not contain '/' or control "
                              "characters, nor start with '.'")
    check_xml_text(name, "snapshot name")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidArgument(f"snapshot name is too long (at most {MAX_NAME_BYTES} bytes)")


class DiskSpec:
    """``<disk name='vda' snapshot='internal|external|no'>`` of a snapshot."""

    def __init__(self, name: str, snapshot: str, source: str | None = None, driver: str | None = None):
        self.name = name
        self.snapshot = snapshot
        self.source = source
        self.driver = driver

    def __repr__(self) -> str:
        return f"DiskSpec({self.name!r}, {self.snapshot!r}, {self.source!r})"


class SnapshotDef:
    """One snapshot's metadata."""

    def __init__(self, name: str, description: str | None = None, state: str = "shutoff",
                 parent: str | None = None, creation_time: int | None = None, memory: str = "no",
                 disks: list | None = None, domain=None):
        self.name = name
        self.description = description
        self.state = state
        self.parent = parent
        self.creation_time = int(time.time()) if creation_time is None else int(creation_time)
        self.memory = memory          # internal | no | external
        self.disks: list[DiskSpec] = list(disks or [])
        self.domain = domain          # an lxml <domain> element, or None

    def __repr__(self) -> str:
        return f"SnapshotDef({self.name!r}, state={self.state!r}, parent={self.parent!r})"

    @property
    def external(self) -> bool:
        return self.memory == "external" or any(d.snapshot == "external" for d in self.disks)

    @property
    def location(self) -> str:
        """What snapshot-info prints: internal or external."""
        return "external" if self.external else "internal"

    def disk(self, target: str) -> DiskSpec | None:
        for disk in self.disks:
            if disk.name == target:
                return disk
        return None

    # -- XML --------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: bytes | str, origin: str = "domainsnapshot") -> "SnapshotDef":
        from vsh.core.xml import parse

        root = parse(data, origin, "domainsnapshot")
        name = (root.findtext("name") or "").strip()
        state = (root.findtext("state") or "").strip() or "shutoff"
        parent = root.findtext("parent/name")
        created = root.findtext("creationTime")
        try:
            created_i = int(created) if created is not None else None
        except ValueError:
            raise XMLError(f"XML error: ({origin}): invalid creationTime '{created}'") from None
        mem = root.find("memory")
        disks = []
        for el in root.findall("disks/disk"):
            src = el.find("source")
            drv = el.find("driver")
            disks.append(DiskSpec(el.get("name") or "", el.get("snapshot") or "",
                                  src.get("file") if src is not None else None,
                                  drv.get("type") if drv is not None else None))
        return cls(name=name, description=root.findtext("description"), state=state,
                   parent=parent.strip() if parent else None, creation_time=created_i,
                   memory=mem.get("snapshot", "no") if mem is not None else "no", disks=disks,
                   domain=root.find("domain"))

    def to_xml(self, with_domain: bool = True) -> str:
        """libvirt's layout (snapshot-dumpxml)."""
        from vsh.core.lxmlload import etree

        from vsh.core.xml import serialize

        root = etree.Element("domainsnapshot")
        etree.SubElement(root, "name").text = self.name
        if self.description:
            etree.SubElement(root, "description").text = self.description
        etree.SubElement(root, "state").text = self.state
        if self.parent:
            etree.SubElement(etree.SubElement(root, "parent"), "name").text = self.parent
        etree.SubElement(root, "creationTime").text = str(self.creation_time)
        etree.SubElement(root, "memory", snapshot=self.memory)
        if self.disks:
            disks = etree.SubElement(root, "disks")
            for spec in self.disks:
                attrs = {"name": spec.name, "snapshot": spec.snapshot}
                if spec.snapshot == "external":
                    attrs["type"] = "file"
                el = etree.SubElement(disks, "disk", attrs)
                if spec.driver:
                    etree.SubElement(el, "driver", type=spec.driver)
                if spec.source:
                    etree.SubElement(el, "source", file=spec.source)
        if with_domain and self.domain is not None:
            import copy

            dom = copy.deepcopy(self.domain)
            dom.attrib.pop("id", None)
            root.append(dom)
        return serialize(root)


# -- the tree ---------------------------------------------------------------------------


def children_of(defs: dict, name: str | None) -> list[str]:
    """Names whose parent is ``name`` (None: the roots), sorted as virsh sorts them."""
    return sorted(n for n, d in defs.items() if (d.parent if d.parent in defs else None) == name)


def descendants_of(defs: dict, name: str) -> list[str]:
    """Every descendant, parents before children (depth first)."""
    out = []
    stack = list(reversed(children_of(defs, name)))
    seen = set()
    while stack:
        item = stack.pop()
        if item in seen:
            continue
        seen.add(item)
        out.append(item)
        stack.extend(reversed(children_of(defs, item)))
    return out


def tree_text(defs: dict, names: list[str], root: str | None = None) -> str:
    """virsh's ``snapshot-list --tree`` (vshTreePrint), over the snapshots ``names``."""
    wanted = set(names)

    def parent(n):
        p = defs[n].parent
        return p if p in wanted else None

    order = sorted(wanted)
    out: list[str] = []

    def walk(dev: str, lastdev: str | None, is_root: bool, indent: str) -> str:
        out.append(f"{indent}{'' if is_root else '+- '}{dev}\n")
        if not is_root:
            indent += (" " if dev == lastdev else "|") + " "
        kids = [n for n in order if parent(n) == dev]
        nextlast = kids[-1] if kids else None
        if nextlast is not None:
            out.append(f"{indent}  |\n")
        indent += "  "
        for kid in kids:
            indent = walk(kid, nextlast, False, indent)
        indent = indent[:-2] if indent.endswith("  ") else indent
        if nextlast is None and dev == lastdev:
            out.append(f"{indent}\n")
        if not is_root:
            indent = indent[:-2]
        return indent

    tops = [root] if root is not None else [n for n in order if parent(n) is None]
    for top in tops:
        walk(top, top, True, "")
    return "".join(out)


# -- the files --------------------------------------------------------------------------


class SnapshotStore:
    """The snapshot metadata of one domain."""

    STATE = ".state.json"
    INTENT = ".intent.json"

    def __init__(self, store, domain: str):
        self.domain = domain
        self.dir = store.data_file("snapshots", domain)

    def path(self, name: str) -> str:
        check_name(name)
        return os.path.join(self.dir, f"{name}.xml")

    def names(self) -> list[str]:
        try:
            entries = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(e[:-4] for e in entries if e.endswith(".xml") and not e.startswith("."))

    def exists(self, name: str) -> bool:
        return os.path.exists(self.path(name))

    def load(self, name: str) -> SnapshotDef:
        try:
            with open(self.path(name), "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            raise not_found(name) from None
        defn = SnapshotDef.parse(data, f"{name}.xml")
        defn.name = name
        return defn

    def load_all(self) -> dict:
        return {name: self.load(name) for name in self.names()}

    def _ensure_dir(self) -> None:
        from vsh.core.store import ensure_private_dir

        ensure_private_dir(os.path.dirname(self.dir))
        ensure_private_dir(self.dir)

    def write(self, defn: SnapshotDef) -> None:
        from vsh.core.store import atomic_write

        self._ensure_dir()
        atomic_write(self.path(defn.name), defn.to_xml())

    def remove(self, name: str) -> bool:
        try:
            os.unlink(self.path(name))
        except FileNotFoundError:
            return False
        fsync_dir(self.dir)
        return True

    def remove_all(self) -> None:
        """Drop every piece of metadata (undefine --snapshots-metadata)."""
        for name in self.names():
            self.remove(name)
        for extra in (self.STATE, self.INTENT):
            try:
                os.unlink(os.path.join(self.dir, extra))
            except FileNotFoundError:
                pass
        try:
            os.rmdir(self.dir)
        except OSError:
            pass

    # -- .state.json ---------------------------------------------------------------------
    def _read_json(self, name: str) -> dict | None:
        try:
            with open(os.path.join(self.dir, name), "rb") as fh:
                data = json.loads(fh.read() or b"null")
        except FileNotFoundError:
            return None
        except ValueError:
            raise XMLError(f"internal error: snapshot metadata file '{os.path.join(self.dir, name)}' "
                           "is damaged") from None
        return data if isinstance(data, dict) else None

    def _write_json(self, name: str, data: dict, durable: bool = True) -> None:
        """Atomic replace; ``durable`` also fsyncs (what must survive a power loss before the
        next step; a killed vsh never loses a renamed file either way)."""
        from vsh.core.store import atomic_write

        self._ensure_dir()
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        path = os.path.join(self.dir, name)
        atomic_write(path, text, durable=durable)

    def state(self) -> dict:
        data = self._read_json(self.STATE) or {}
        return {"current": data.get("current"), "owned": list(data.get("owned") or []),
                "garbage": [list(g) for g in data.get("garbage") or []]}

    def write_state(self, state: dict) -> None:
        # not fsynced: after a power loss an image vsh made may stay unowned (kept, never lost)
        self._write_json(self.STATE, {"current": state.get("current"),
                                      "owned": sorted(set(state.get("owned") or [])),
                                      "garbage": [list(g) for g in state.get("garbage") or []]},
                         durable=False)

    def current(self) -> str | None:
        cur = self.state().get("current")
        return cur if cur and os.path.exists(os.path.join(self.dir, f"{cur}.xml")) else None

    # -- .intent.json --------------------------------------------------------------------
    def intent(self) -> dict | None:
        return self._read_json(self.INTENT)

    def write_intent(self, intent: dict, durable: bool = True) -> None:
        self._write_json(self.INTENT, intent, durable)

    def clear_intent(self) -> None:
        try:
            os.unlink(os.path.join(self.dir, self.INTENT))      # recovery is idempotent: no fsync
        except FileNotFoundError:
            return


