"""Creating snapshots: internal (qemu-img offline, the QMP snapshot-save job live) and
external disk-only (new qcow2 overlays; blockdev-add and one transaction live).

A mixin of :class:`vsh.kvm.snapshot.engine.Engine`.
"""

from __future__ import annotations

import copy
import os
import time

from vsh.core.errors import InvalidArgument, OperationInvalid, Unsupported, VshError
from vsh.core.snapshots import DiskSpec, SnapshotDef, check_name
from vsh.kvm import confine
from vsh.kvm.snapshot.chains import (chain, chains, disk_element, disk_elements, disk_target,
                                     is_writable, push_overlay)
from vsh.kvm.snapshot.images import (FORMATS, create_overlay, fresh_path, image_size, qemu_img,
                                     real_path, tags_of, tmp_for, unlink)


class Create:
    """Snapshot creation (a mixin of the Engine)."""

    def create(self, name: str | None = None, description: str | None = None, disk_only: bool = False,
               disks: list | None = None, no_metadata: bool = False, halt: bool = False) -> SnapshotDef:
        return self._locked(self._create, name, description, disk_only, disks or [], no_metadata, halt)

    def _create(self, name, description, disk_only, requests, no_metadata, halt) -> SnapshotDef:
        if name is None:
            name = str(int(time.time()))
        check_name(name)
        ref = self._ref()
        defs = self.meta.load_all()
        if name in defs:
            raise OperationInvalid(f"operation failed: domain moment {name} already exists")
        if self._has_managed_save():
            raise OperationInvalid(f"Requested operation is not valid: domain '{self.name}' has a managed "
                                   "save image; start it or remove the image (managedsave-remove) first")
        active = ref.active
        dom = self._live(ref) if active else self._config(ref)
        if dom is None:
            raise OperationInvalid(f"Requested operation is not valid: domain '{self.name}' is not running")
        state_now = ref.state if active else "shutoff"
        if state_now not in ("running", "paused", "shutoff"):
            raise OperationInvalid(f"Requested operation is not valid: cannot snapshot domain '{self.name}' "
                                   f"while it is {state_now}")
        by_target = {}
        for req in requests:
            if disk_element(dom.node, req.target) is None:
                raise InvalidArgument(f"no disk named '{req.target}' in domain '{self.name}'")
            by_target[req.target] = req
        current = self.meta.state().get("current")
        dom_el = copy.deepcopy(dom.node)
        dom_el.attrib.pop("id", None)
        defn = SnapshotDef(name=name, description=description, parent=current if current in defs else None,
                           domain=dom_el)
        if disk_only:
            plan = self._plan_external(defn, dom, by_target, state_now)
        else:
            for req in requests:
                if req.snapshot not in (None, "internal"):
                    raise Unsupported(f"disk '{req.target}': snapshot='{req.snapshot}' needs --disk-only "
                                      "(vsh takes internal snapshots of all disks or none)")
            plan = self._plan_internal(defn, dom, state_now)
        intent = dict(plan, op="create", name=name, live=active, no_metadata=bool(no_metadata),
                      snapshot_xml=defn.to_xml())
        self.meta.write_intent(intent, durable=False)     # lost on a power cut: unnamed data, at worst
        self.hook("create:intent")
        if disk_only:
            self._act_external(intent)
        else:
            self._act_internal(intent)
        self._commit_create(intent)
        if halt and self._ref().active:
            self.runner.destroy()
        return defn

    # -- internal ------------------------------------------------------------------------------
    def _plan_internal(self, defn: SnapshotDef, dom, state_now: str) -> dict:
        files = []
        for el in disk_elements(dom.node):
            target = disk_target(el)
            if not is_writable(el):
                defn.disks.append(DiskSpec(target, "no"))
                continue
            ch = chain(el)
            fmt = ch[0][1] if ch else None
            if el.get("type", "file") != "file" or fmt != "qcow2":
                raise Unsupported(f"operation unsupported: internal snapshot for disk {target} unsupported "
                                  f"for storage type {fmt or el.get('type')}",
                                  hint="use --disk-only for an external snapshot")
            files.append(ch[0][0])
            defn.disks.append(DiskSpec(target, "internal"))
        if not files:
            raise OperationInvalid(f"Requested operation is not valid: domain '{self.name}' has no writable "
                                   "qcow2 disk to hold an internal snapshot")
        garbage = self.meta.state().get("garbage") or []
        for path in files:
            if defn.name in tags_of(path):
                if [path, defn.name] in garbage:
                    qemu_img("snapshot", "-d", defn.name, path)
                else:
                    raise OperationInvalid(f"operation failed: image '{path}' already holds an internal "
                                           f"snapshot named '{defn.name}'")
        if state_now in ("running", "paused"):
            defn.state, defn.memory = state_now, "internal"
        else:
            defn.state, defn.memory = "shutoff", "no"
        return {"kind": "internal", "files": files}

    def _act_internal(self, intent: dict) -> None:
        name, files = intent["name"], intent["files"]
        if intent["live"]:
            nodes = self._format_nodes()
            devices = [nodes.get(real_path(p)) for p in files]
            if None in devices:
                raise VshError(f"internal error: domain '{self.name}' does not have image "
                               f"'{files[devices.index(None)]}' open")
            self._job("snapshot-save", {"job-id": "vsh-snapshot-save", "tag": name, "vmstate": devices[0],
                                        "devices": devices}, what=f"creating snapshot '{name}'")
            self.hook("create:image")
        else:
            for path in files:
                qemu_img("snapshot", "-c", name, path, what=f"creating internal snapshot in '{path}'")
                self.hook("create:image")

    def _recover_create(self, intent: dict) -> None:
        if intent.get("kind") == "external":
            return self._recover_external(intent)
        name, files = intent["name"], intent["files"]
        ref = self._ref()
        if intent.get("live") and ref.active:
            self._client().job(self._rundir(), None, job_id="vsh-snapshot-save", existing=True,
                               what="an interrupted snapshot")
        if (not intent.get("no_metadata") and self.meta.exists(name)) or \
                all(name in tags_of(p) for p in files):
            self._commit_create(intent)
            return
        for path in files:
            if name in tags_of(path):
                self._delete_tag(path, name)

    def _commit_create(self, intent: dict) -> None:
        name = intent["name"]
        if not intent.get("no_metadata"):
            if not self.meta.exists(name):
                self.meta.write(SnapshotDef.parse(intent["snapshot_xml"]))
            self.hook("create:metadata")
        ref = self._ref()
        if intent.get("kind") == "external":
            if ref.persistent and intent.get("config"):
                from vsh.core.domain import Domain

                self.store.write_config(Domain.parse(intent["config"]))
            if ref.active and intent.get("live_xml"):
                from vsh.core.domain import Domain

                live = Domain.parse(intent["live_xml"])
                live.id = ref.id
                self._write_live(live)
            self.hook("create:config")
        if not intent.get("no_metadata"):
            state = self.meta.state()
            state["current"] = name
            if intent.get("kind") == "external":
                state["owned"] = sorted(set(state["owned"]) | {o["overlay"] for o in intent["overlays"]})
            self.meta.write_state(state)
            self.hook("create:state")
        elif intent.get("kind") != "external":
            # an internal snapshot without metadata is the user's: vsh must never clean it up
            state = self.meta.state()
            files = {real_path(p) for p in intent.get("files") or []}
            if any(real_path(p) in files for p in state["owned"]):
                state["owned"] = [p for p in state["owned"] if real_path(p) not in files]
                self.meta.write_state(state)
        self.meta.clear_intent()

    # -- external --------------------------------------------------------------------------------
    def _plan_external(self, defn: SnapshotDef, dom, by_target: dict, state_now: str) -> dict:
        ref = self._ref()
        overlays = []
        taken = set()
        new_live = dom.copy() if ref.active else None
        config = self._config(ref)
        new_config = config.copy() if config is not None else None
        for el in disk_elements(dom.node):
            target = disk_target(el)
            req = by_target.get(target)
            mode = (req.snapshot if req and req.snapshot else None) or ("external" if is_writable(el) else "no")
            if mode == "no":
                defn.disks.append(DiskSpec(target, "no"))
                continue
            if mode != "external":
                raise Unsupported(f"disk '{target}': snapshot='{mode}' cannot be mixed into a disk-only "
                                  "snapshot (use external or no)")
            if not is_writable(el):
                raise OperationInvalid(f"Requested operation is not valid: disk '{target}' is read-only and "
                                       "cannot have an external snapshot")
            if el.get("type", "file") != "file":
                raise Unsupported(f"operation unsupported: external snapshot of disk {target} of type "
                                  f"'{el.get('type')}' (vsh supports file disks)")
            ch = chain(el)
            base, fmt = ch[0]
            if fmt not in FORMATS:
                raise InvalidArgument(f"disk '{target}' has no format (<driver type='raw|qcow2'>)")
            path = req.file if req and req.file else fresh_path(base, defn.name, taken)
            if not os.path.isabs(path):
                raise InvalidArgument(f"external snapshot file for disk {target} must be an absolute path: "
                                      f"{path}")
            if os.path.lexists(path) or path in taken:
                raise OperationInvalid(f"operation failed: external snapshot file for disk {target} already "
                                       f"exists: {path}")
            if not os.path.isdir(os.path.dirname(path)):
                raise InvalidArgument(f"directory of external snapshot file {path} does not exist")
            taken.add(path)
            overlays.append({"target": target, "overlay": path, "base": base, "base_fmt": fmt,
                             "size": image_size(base, fmt),
                             "node": f"vsh-{os.urandom(4).hex()}-{len(overlays)}"})
            defn.disks.append(DiskSpec(target, "external", path, "qcow2"))
            for other in (new_live, new_config):
                if other is not None:
                    oel = disk_element(other.node, target)
                    if oel is not None and chain(oel) and chain(oel)[0][0] == base:
                        push_overlay(oel, path)
        if not overlays:
            raise OperationInvalid("Requested operation is not valid: no disk to snapshot")
        defn.state = "disk-snapshot"
        defn.memory = "no"
        if new_live is not None:
            new_live.node.attrib.pop("id", None)
        return {"kind": "external", "overlays": overlays,
                "config": new_config.to_xml(inactive=True) if new_config is not None else None,
                "live_xml": new_live.to_xml() if new_live is not None else None}

    def _act_external(self, intent: dict) -> None:
        for item in intent["overlays"]:
            create_overlay(item["overlay"], item["base"], item["base_fmt"], item["size"])
            self.hook("create:image")
        if intent["live"]:
            self._activate(intent["overlays"])
            self.hook("create:activate")

    def _activate(self, overlays: list) -> None:
        """Live: open each overlay in QEMU and switch the disks to them in one transaction."""
        nodes = self._format_nodes()
        actions = []
        added = []
        try:
            for item in overlays:
                top = nodes.get(real_path(item["base"]))
                if top is None:
                    raise VshError(f"internal error: domain '{self.name}' does not have image "
                                   f"'{item['base']}' open")
                confine.grant_more(self._rundir(), [(item["overlay"], "rw")])
                self._qmp("blockdev-add", {
                    "driver": "qcow2", "node-name": item["node"], "backing": None,
                    "file": {"driver": "file", "filename": item["overlay"], "node-name": item["node"] + "-f"}})
                added.append(item["node"])
                actions.append({"type": "blockdev-snapshot", "data": {"node": top, "overlay": item["node"]}})
            self._qmp("transaction", {"actions": actions})
        except VshError:
            for node in added:
                try:
                    self._qmp("blockdev-del", {"node-name": node})
                except VshError:
                    pass
            raise

    def _recover_external(self, intent: dict) -> None:
        name = intent["name"]
        overlays = intent["overlays"]
        ref = self._ref()
        if not intent.get("no_metadata") and self.meta.exists(name):
            return self._commit_create(intent)
        present = all(os.path.exists(o["overlay"]) for o in overlays)
        if ref.active and intent.get("live"):
            tops = self._live_tops()
            forward = present and all(real_path(o["overlay"]) in tops for o in overlays)
            if not forward:
                nodes = {n.get("node-name") for n in self._qmp("query-named-block-nodes", {"flat": True})}
                for item in overlays:
                    if item["node"] in nodes:
                        try:
                            self._qmp("blockdev-del", {"node-name": item["node"]})
                        except VshError:
                            pass
        else:
            from vsh.kvm import qcow2

            forward = present and any(qcow2.has_data(o["overlay"]) for o in overlays)
            if present and not forward and not ref.active and intent.get("config") and ref.persistent:
                # shut off all along: the config says whether the switch happened
                cfg = self._config(ref)
                tops = {real_path(ch[0][0]) for ch in chains(cfg.node).values()}
                forward = all(real_path(o["overlay"]) in tops for o in overlays)
        if forward:
            return self._commit_create(intent)
        for item in overlays:
            unlink(item["overlay"])
            unlink(tmp_for(item["overlay"]))
