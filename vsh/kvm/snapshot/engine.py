"""The snapshot engine: one object per domain whose operations lock the domain, finish
or undo an interrupted operation first, then act.  Creation (:mod:`.create`), revert
(:mod:`.revert`) and deletion (:mod:`.delete`) are mixins; here the domain, the
locking and recovery, the references between images and the garbage collection.
"""

from __future__ import annotations

import os

from vsh.core.errors import Unsupported, VshError
from vsh.core.snapshots import SnapshotStore, not_found
from vsh.kvm.snapshot.chains import chains
from vsh.kvm.snapshot.create import Create
from vsh.kvm.snapshot.delete import Delete
from vsh.kvm.snapshot.images import FORMATS, qemu_img, real_path, tags_of, unlink
from vsh.kvm.snapshot.revert import Revert


class Runner:
    """How the engine starts and stops the domain; vsh.api.local.snapshots provides one."""

    def launch(self, dom, *, paused: bool, extra_argv: list, first_run: dict) -> dict:
        raise Unsupported("starting the domain is not available here")

    def destroy(self) -> None:
        raise Unsupported("stopping the domain is not available here")


class DiskRequest:
    """What to do with one disk on snapshot creation (from --diskspec)."""

    def __init__(self, target: str, snapshot: str | None = None, file: str | None = None):
        self.target = target
        self.snapshot = snapshot
        self.file = file


class Engine(Create, Revert, Delete):
    """Snapshot operations on one domain (the caller holds nothing; the engine locks)."""

    def __init__(self, store, name: str, runner: Runner | None = None, hook=None):
        self.store = store
        self.name = name
        self.meta = SnapshotStore(store, name)
        self.runner = runner or Runner()
        self.hook = hook or (lambda step: None)

    # -- the domain ------------------------------------------------------------------------
    def _ref(self):
        return self.store.get(self.name)

    def _rundir(self):
        return self.store.runtime_dir(self.name)

    def _config(self, ref):
        return self.store.load(ref, inactive=True) if ref.persistent else None

    def _live(self, ref):
        return self.store.load(ref) if ref.active else None

    def _write_live(self, dom) -> None:
        from vsh.core.store import atomic_write

        path = os.path.join(str(self._rundir()), "live.xml")
        if os.path.exists(path):
            atomic_write(path, dom.to_xml())

    def _has_managed_save(self) -> bool:
        return os.path.exists(self.store.data_file("managedsave", f"{self.name}.save"))

    def _client(self):
        from vsh.kvm import client

        return client

    def _qmp(self, cmd: str, args: dict | None = None):
        return self._client().qmp(self._rundir(), cmd, args)

    def _format_nodes(self) -> dict:
        """Running domain: realpath of an image → its format node name."""
        out = {}
        for node in self._qmp("query-named-block-nodes", {"flat": True}):
            if node.get("drv") in FORMATS and node.get("file"):
                out.setdefault(real_path(node["file"]), node["node-name"])
        return out

    def _live_tops(self) -> dict:
        """Running domain: realpath of each disk's top image → its node name (query-block)."""
        out = {}
        for dev in self._qmp("query-block"):
            ins = dev.get("inserted") or {}
            if ins.get("file"):
                out[real_path(ins["file"])] = ins.get("node-name")
        return out

    def _job(self, command: str, args: dict, what: str, **kw):
        return self._client().job(self._rundir(), command, args, what=what, **kw)

    # -- locking and recovery ----------------------------------------------------------------
    def _locked(self, fn, *args, **kw):
        with self.store.lock(self.name, timeout=600.0):
            self._recover()
            return fn(*args, **kw)

    def recover(self) -> bool:
        """Finish or undo an interrupted operation; True if there was one."""
        with self.store.lock(self.name, timeout=600.0):
            return self._recover()

    def _recover(self) -> bool:
        intent = self.meta.intent()
        if not intent:
            return False
        op = intent.get("op")
        handler = getattr(self, f"_recover_{op}", None)
        if handler is None:
            raise VshError(f"internal error: unknown interrupted snapshot operation '{op}' in "
                           f"{os.path.join(self.meta.dir, SnapshotStore.INTENT)}")
        try:
            handler(intent)
        except VshError as err:
            path = os.path.join(self.meta.dir, SnapshotStore.INTENT)
            raise type(err)(f"cannot finish an interrupted snapshot operation ({op} of '{intent.get('name')}') "
                             f"of domain '{self.name}'", *err.lines,
                             hint=f"remove the cause and run the command again, or delete {path} to "
                                  "abandon the operation (images may then keep unreferenced data)") from None
        self.meta.clear_intent()
        return True

    # -- references --------------------------------------------------------------------------
    def _references(self, defs: dict, config, live) -> tuple[set, set]:
        """(every image a chain refers to, the frozen ones), as realpaths."""
        referenced, frozen = set(), set()
        doms = [(d.domain, d) for d in defs.values() if d.domain is not None]
        doms += [(x.node, None) for x in (config, live) if x is not None]
        for dom_el, defn in doms:
            for target, ch in chains(dom_el).items():
                paths = [real_path(p) for p, _ in ch]
                referenced.update(paths)
                frozen.update(paths[1:])
                if defn is not None:
                    spec = defn.disk(target)
                    if spec is not None and spec.snapshot == "external":
                        frozen.add(paths[0])
        return referenced, frozen

    def _allowed_tags(self, defs: dict, config, current: str | None) -> dict:
        """realpath → internal snapshot names that metadata keeps in that image."""
        allowed: dict = {}
        for defn in defs.values():
            if defn.domain is None or defn.external:
                continue
            for target, ch in chains(defn.domain).items():
                spec = defn.disk(target)
                if spec is None or spec.snapshot == "internal":
                    allowed.setdefault(real_path(ch[0][0]), set()).add(defn.name)
        if current in defs and not defs[current].external and config is not None:
            for ch in chains(config.node).values():
                allowed.setdefault(real_path(ch[0][0]), set()).add(current)
        return allowed

    def _gc(self, state: dict) -> None:
        """Remove owned images nothing refers to, and unreferenced internal snapshots in them."""
        ref = self._ref()
        defs = self.meta.load_all()
        config, live = self._config(ref), self._live(ref)
        referenced, _frozen = self._references(defs, config, live)
        live_files = set()
        if live is not None:
            for ch in chains(live.node).values():
                live_files.update(real_path(p) for p, _ in ch)
        owned = []
        for path in state.get("owned") or []:
            if real_path(path) in referenced:
                owned.append(path)
            else:
                unlink(path)
        state["owned"] = owned
        allowed = self._allowed_tags(defs, config, state.get("current"))
        garbage = [list(g) for g in state.get("garbage") or []]
        for path in owned:
            real = real_path(path)
            if real in live_files:
                continue
            for tag in tags_of(path):
                if tag not in allowed.get(real, set()) and [path, tag] not in garbage:
                    garbage.append([path, tag])
        keep = []
        for path, tag in garbage:
            if not os.path.exists(path) or tag not in tags_of(path):
                continue
            if real_path(path) in live_files or tag in allowed.get(real_path(path), set()):
                if real_path(path) in live_files:
                    keep.append([path, tag])
                continue
            try:
                qemu_img("snapshot", "-d", tag, path, what=f"deleting internal snapshot '{tag}' of '{path}'")
            except VshError:
                keep.append([path, tag])
        state["garbage"] = keep
        self.meta.write_state(state)

    def set_current(self, name: str) -> None:
        def run():
            if not self.meta.exists(name):
                raise not_found(name)
            state = self.meta.state()
            state["current"] = name
            self.meta.write_state(state)
        self._locked(run)

    def redefine(self, edited, current: bool = False) -> None:
        """snapshot-edit: store ``edited`` (a SnapshotDef) over the snapshot of its name, which
        it may differ from only in its description; ``current`` makes it the current one."""
        from vsh.core.errors import Unsupported

        def run():
            old = self.meta.load(edited.name)
            if edited.description:
                from vsh.core.xml import check_xml_text

                check_xml_text(edited.description, "description")
            was = old.description
            old.description = edited.description
            if old.to_xml() != edited.to_xml():
                raise Unsupported(f"unsupported configuration: only the description of snapshot '{edited.name}' "
                                  "can change: its state, parent, time, memory, disks and domain are what "
                                  "its images hold")
            if was != edited.description:
                self.meta.write(old)
            if current:
                state = self.meta.state()
                state["current"] = edited.name
                self.meta.write_state(state)
        self._locked(run)

    def drop_all_metadata(self) -> None:
        """undefine --snapshots-metadata: forget every snapshot, keep every image."""
        def run():
            self.meta.remove_all()
        self._locked(run)
