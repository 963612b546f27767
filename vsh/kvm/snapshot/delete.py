"""Deleting snapshots: merge a frozen image into the one image that builds on it
(block-stream live, qemu-img rebase offline), rewrite every recorded chain, drop
internal snapshots and images nothing needs.

A mixin of :class:`vsh.kvm.snapshot.engine.Engine`.
"""

from __future__ import annotations

import os

from vsh.core.errors import VshError
from vsh.core.snapshots import check_name, children_of, not_found
from vsh.kvm.snapshot.chains import chain, chains, disk_elements, drop_from_chain
from vsh.kvm.snapshot.images import qemu_img, real_path, tags_of


class Delete:
    """Snapshot deletion (a mixin of the Engine)."""

    def delete(self, name: str, children: bool = False, children_only: bool = False,
               metadata_only: bool = False) -> list[str]:
        return self._locked(self._delete, name, children, children_only, metadata_only)

    def _delete(self, name, children, children_only, metadata_only) -> list[str]:
        from vsh.core.snapshots import descendants_of

        check_name(name)
        defs = self.meta.load_all()
        if name not in defs:
            raise not_found(name)
        order: list[str] = []
        if children or children_only:
            order = list(reversed(descendants_of(defs, name)))     # leaves first
        if not children_only:
            order.append(name)
        for item in order:
            self._delete_one(item, metadata_only)
        return order

    def _delete_one(self, name: str, metadata_only: bool) -> None:
        defs = self.meta.load_all()
        defn = defs[name]
        ref = self._ref()
        config, live = self._config(ref), self._live(ref)
        state = self.meta.state()
        new_current = defn.parent if state.get("current") == name else state.get("current")
        kids = {}
        for kid in children_of(defs, name):
            kdef = defs[kid]
            kdef.parent = defn.parent
            kids[kid] = kdef.to_xml()
        tags, merges, disown = [], [], []
        if metadata_only:
            if defn.domain is not None:
                disown = [p for ch in chains(defn.domain).values() for p, _ in ch[:1]]
        elif defn.domain is not None:
            others = {n: d for n, d in defs.items() if n != name}
            for target, ch in chains(defn.domain).items():
                spec = defn.disk(target)
                if spec is None:
                    continue
                if spec.snapshot == "internal":
                    tags.append([ch[0][0], name])
                elif spec.snapshot == "external":
                    merge = self._plan_merge(ch, others, config, live, state)
                    if merge:
                        merges.append(merge)
        intent = {"op": "delete", "name": name, "kids": kids, "current": new_current, "tags": tags,
                  "merges": merges, "disown": disown}
        self.meta.write_intent(intent)
        self.hook("delete:intent")
        self._finish_delete(intent)
        self.meta.clear_intent()

    def _plan_merge(self, ch, others: dict, config, live, state) -> dict | None:
        """Merge the snapshot's frozen image B into its only child C, if vsh made B and only C uses it."""
        base = real_path(ch[0][0])
        if base not in {real_path(p) for p in state.get("owned") or []}:
            return None
        doms = [d.domain for d in others.values() if d.domain is not None]
        doms += [x.node for x in (config, live) if x is not None]
        kids, below = set(), set()
        for dom_el in doms:
            for ch2 in chains(dom_el).values():
                paths = [real_path(p) for p, _ in ch2]
                if paths and paths[0] == base:
                    return None          # another snapshot's image, or the domain's own top
                for i in range(1, len(paths)):
                    if paths[i] == base:
                        kids.add(ch2[i - 1][0])
                        if i + 1 < len(ch2):
                            below.add((ch2[i + 1][0], ch2[i + 1][1]))
        if len(kids) != 1 or len(below) != 1:
            return None
        (child,) = kids
        ((gp, gp_fmt),) = below
        return {"base": ch[0][0], "child": child, "grandparent": gp, "grandparent_fmt": gp_fmt}

    def _finish_delete(self, intent: dict) -> None:
        """Everything after the intent (idempotent: recovery runs it again)."""
        name = intent["name"]
        self.meta.remove(name)
        self.hook("delete:metadata")
        for kid, xml in (intent.get("kids") or {}).items():
            if self.meta.exists(kid):
                from vsh.core.store import atomic_write

                atomic_write(self.meta.path(kid), xml)
        self.hook("delete:children")
        state = self.meta.state()
        state["current"] = intent.get("current")
        disown = {real_path(p) for p in intent.get("disown") or []}
        state["owned"] = [p for p in state["owned"] if real_path(p) not in disown]
        self.meta.write_state(state)
        self.hook("delete:state")
        for path, tag in intent.get("tags") or []:
            self._delete_tag(path, tag)
            self.hook("delete:tag")
        for merge in intent.get("merges") or []:
            self._merge(merge)
            self.hook("delete:merge")
            self._drop_from_all_chains(merge["base"])
            self.hook("delete:chains")
        self._gc(self.meta.state())
        self.hook("delete:gc")

    def _recover_delete(self, intent: dict) -> None:
        self._finish_delete(intent)

    def _delete_tag(self, path: str, tag: str) -> None:
        """Remove internal snapshot ``tag`` from ``path``: QMP if it is a running disk's top,
        later (garbage) if it is a running disk's backing image, qemu-img otherwise."""
        if not os.path.exists(path) or tag not in tags_of(path):
            return
        ref = self._ref()
        if ref.active:
            live = self._live(ref)
            live_chains = chains(live.node).values() if live is not None else []
            tops = {real_path(ch[0][0]) for ch in live_chains}
            below = {real_path(p) for ch in live_chains for p, _ in ch[1:]}
            if real_path(path) in tops:
                node = self._format_nodes().get(real_path(path))
                self._job("snapshot-delete", {"job-id": "vsh-snapshot-delete", "tag": tag,
                                              "devices": [node]}, what=f"deleting snapshot '{tag}'")
                return
            if real_path(path) in below:
                state = self.meta.state()
                if [path, tag] not in state["garbage"]:
                    state["garbage"].append([path, tag])
                    self.meta.write_state(state)
                return
        qemu_img("snapshot", "-d", tag, path, what=f"deleting internal snapshot '{tag}' of '{path}'")

    def _merge(self, merge: dict) -> None:
        """Copy B's data into C and point C at B's backing image (C's content is unchanged)."""
        from vsh.kvm import qcow2

        base, child, gp, gp_fmt = merge["base"], merge["child"], merge["grandparent"], merge["grandparent_fmt"]
        if not os.path.exists(child):
            return
        header = qcow2.read_info(child).backing_file
        if header is None or real_path(header) != real_path(base):
            return                                              # done already
        ref = self._ref()
        live_files = set()
        if ref.active:
            live = self._live(ref)
            if live is not None:
                live_files = {real_path(p) for ch in chains(live.node).values() for p, _ in ch}
        if real_path(child) in live_files:
            nodes = self._format_nodes()
            job = self._client().job(self._rundir(), None, job_id="vsh-stream", existing=True)
            if job.get("status") == "absent" and \
                    real_path(qcow2.read_info(child).backing_file or "") == real_path(base):
                self._job("block-stream", {"job-id": "vsh-stream", "device": nodes[real_path(child)],
                                           "base-node": nodes[real_path(gp)], "auto-dismiss": False},
                          what=f"merging '{base}' into '{child}'")
            gone = nodes.get(real_path(base))
            if gone:
                for node in (gone, gone[:-4] + "-file" if gone.endswith("-fmt") else gone + "-f"):
                    try:
                        self._qmp("blockdev-del", {"node-name": node})
                    except VshError:
                        pass
        else:
            qemu_img("rebase", "-q", "-f", "qcow2", "-F", gp_fmt, "-b", gp, child,
                     what=f"merging '{base}' into '{child}'")

    def _drop_from_all_chains(self, path: str) -> None:
        """Remove image ``path`` from every chain that metadata and the domain record."""
        from vsh.core.store import atomic_write

        real = real_path(path)
        for name in self.meta.names():
            defn = self.meta.load(name)
            if defn.domain is None:
                continue
            changed = False
            for el in disk_elements(defn.domain):
                for p, _ in chain(el)[1:]:
                    if real_path(p) == real:
                        changed |= drop_from_chain(el, p)
            if changed:
                atomic_write(self.meta.path(name), defn.to_xml())
        ref = self._ref()
        for dom, write in ((self._config(ref), self.store.write_config),
                           (self._live(ref), self._write_live)):
            if dom is None:
                continue
            changed = False
            for el in disk_elements(dom.node):
                for p, _ in chain(el)[1:]:
                    if real_path(p) == real:
                        changed |= drop_from_chain(el, p)
            if changed:
                write(dom)
