"""Reverting to a snapshot: refuse libvirt's risky cases unless forced, give the domain
new overlays or copies of frozen images, load the memory state of a running snapshot.

A mixin of :class:`vsh.kvm.snapshot.engine.Engine`.
"""

from __future__ import annotations

import copy
import os

from vsh.core.errors import OperationInvalid, VshError
from vsh.core.snapshots import SnapshotDef, check_name, not_found
from vsh.kvm.snapshot.chains import (chain, disk_element, disk_elements, disk_target, is_writable,
                                     push_overlay, set_top)
from vsh.kvm.snapshot.images import (copy_image, create_overlay, fresh_path, image_size, qemu_img,
                                     real_path, short_id, tags_of, tmp_for, unlink)


def risky(why: str) -> VshError:
    """libvirt's VIR_ERR_SNAPSHOT_REVERT_RISKY: the revert goes ahead only with --force."""
    return OperationInvalid(f"revert requires force: {why}")


class Revert:
    """Revert to a snapshot (a mixin of the Engine)."""

    def revert(self, name: str, running: bool = False, paused: bool = False, force: bool = False) -> dict:
        return self._locked(self._revert, name, running, paused, force)

    def _check_risky(self, target: SnapshotDef, ref, start: bool, with_memory: bool) -> None:
        """libvirt's cases where a revert needs ``force`` (VIR_ERR_SNAPSHOT_REVERT_RISKY)."""
        from vsh.kvm.snapshot.abi import abi_difference

        if target.domain is None:
            raise risky(f"snapshot '{target.name}' lacks domain '{self.name}' rollback info")
        if ref.active and not with_memory and start:
            raise risky("must respawn qemu to start inactive snapshot")
        if self._has_managed_save() and not with_memory:
            raise risky("snapshot without memory state, removal of existing managed saved state "
                        "strongly recommended to avoid corruption")
        live = self._live(ref) if with_memory else None
        if live is not None:
            why = abi_difference(target.domain, live.node)
            if why:
                raise risky(why)

    def _revert(self, name: str, running: bool, paused: bool, force: bool) -> dict:
        check_name(name)
        defs = self.meta.load_all()
        if name not in defs:
            raise not_found(name)
        target = defs[name]
        ref = self._ref()
        if not ref.persistent:
            raise OperationInvalid("Requested operation is not valid: cannot revert a transient domain "
                                   "(define it first)")
        config = self._config(ref)
        with_memory = target.memory == "internal" and target.state in ("running", "paused")
        if not force:
            self._check_risky(target, ref, running or paused, with_memory)
        if target.domain is None:           # forced: the disks go back, the definition stays
            target.domain = copy.deepcopy(config.node)
        drop_managed_save = self._has_managed_save()
        self._check_images(target)
        if running or paused:
            final = "paused" if paused else "running"
        elif with_memory:
            final = target.state
        else:
            final = "shutoff"
        if ref.active and with_memory and self._inplace_ok(target, defs, ref):
            return self._revert_inplace(target, final, config)
        plan = self._plan_revert(target, defs, config)
        intent = dict(plan, op="revert", name=name, phase="prepare", final=final,
                      with_memory=with_memory, drop_managed_save=drop_managed_save)
        self.meta.write_intent(intent, durable=False)     # only new files follow
        self.hook("revert:intent")
        for src, dst in plan["copies"]:
            copy_image(src, dst)
            self.hook("revert:file")
        for item in plan["overlays"]:
            create_overlay(item["overlay"], item["base"], item["base_fmt"], item["size"])
            self.hook("revert:file")
        if self._ref().active:
            self.runner.destroy()
            self.hook("revert:stopped")
        intent["phase"] = "commit"
        self.meta.write_intent(intent)
        self.hook("revert:commit")
        self._finish_revert(intent)
        self.meta.clear_intent()
        result = {"final": final}
        if final != "shutoff":
            from vsh.core.domain import Domain

            dom = Domain.parse(intent["config"])
            extra = ["-loadvm", name] if with_memory else []
            result["state"] = self.runner.launch(
                dom, paused=final == "paused", extra_argv=extra,
                first_run={"running_reason": "from snapshot", "paused_reason": "from snapshot",
                           "drop_argv": extra})
        return result

    def _check_images(self, target: SnapshotDef) -> None:
        """Every image the snapshot needs is there (checked before anything is changed)."""
        for el in disk_elements(target.domain):
            spec = target.disk(disk_target(el))
            if not is_writable(el) or spec is None or spec.snapshot == "no":
                continue
            for path, _fmt in chain(el):
                if not os.path.exists(path):
                    raise OperationInvalid(f"Requested operation is not valid: snapshot '{target.name}' "
                                           f"needs image '{path}', which does not exist")
            top = chain(el)[0][0]
            if spec.snapshot == "internal" and target.name not in tags_of(top):
                raise OperationInvalid(f"Requested operation is not valid: image '{top}' does not hold "
                                       f"internal snapshot '{target.name}'")

    def _inplace_ok(self, target: SnapshotDef, defs: dict, ref) -> bool:
        """Can a running domain load the snapshot without a restart (same images, same XML)?"""
        live = self._live(ref)
        if live is None:
            return False
        _, frozen = self._references(defs, None, None)
        then = copy.deepcopy(target.domain)
        now = copy.deepcopy(live.node)
        for el in (then, now):
            el.attrib.pop("id", None)
        from vsh.core.xml import serialize

        if serialize(then) != serialize(now):
            return False
        for el in disk_elements(target.domain):
            if is_writable(el):
                path = chain(el)[0][0]
                if real_path(path) in frozen or target.name not in tags_of(path):
                    return False
        return True

    def _revert_inplace(self, target: SnapshotDef, final: str, config) -> dict:
        files = [chain(el)[0][0] for el in disk_elements(target.domain) if is_writable(el)]
        dom = self._new_config(target, config)
        intent = {"op": "revert", "name": target.name, "phase": "commit", "mode": "inplace",
                  "files": files, "final": final, "config": dom.to_xml(inactive=True),
                  "copies": [], "overlays": [], "tags": [], "new_files": []}
        self.meta.write_intent(intent)
        self.hook("revert:intent")
        self._load_inplace(intent)
        self.hook("revert:loaded")
        self._finish_revert(intent)
        self.meta.clear_intent()
        return {"final": final, "state": self._client().read_state(self._rundir())}

    def _load_inplace(self, intent: dict) -> None:
        nodes = self._format_nodes()
        devices = [nodes.get(real_path(p)) for p in intent["files"]]
        if None in devices:
            raise VshError(f"internal error: domain '{self.name}' does not have the snapshot's images open")
        self._job("snapshot-load", {"job-id": "vsh-snapshot-load", "tag": intent["name"],
                                    "vmstate": devices[0], "devices": devices},
                  what=f"reverting to snapshot '{intent['name']}'", stop=intent["final"] == "paused",
                  stop_reason="from snapshot",
                  after={"state": intent["final"], "reason": "from snapshot"})

    def _new_config(self, target: SnapshotDef, config):
        """The snapshot's domain XML under the domain's current name and UUID."""
        from vsh.core.domain import Domain

        dom = Domain(copy.deepcopy(target.domain))
        dom.node.attrib.pop("id", None)
        if config is not None:
            dom.name = config.name
            if config.uuid:
                dom.uuid = config.uuid
            # disks the snapshot did not capture keep what they have now
            for el in disk_elements(dom.node):
                spec = target.disk(disk_target(el))
                cur = disk_element(config.node, disk_target(el))
                if spec is not None and spec.snapshot == "no" and is_writable(el) and cur is not None:
                    el.getparent().replace(el, copy.deepcopy(cur))
        return dom

    def _plan_revert(self, target: SnapshotDef, defs: dict, config) -> dict:
        from vsh.kvm import qcow2

        _, frozen = self._references(defs, None, None)
        dom = self._new_config(target, config)
        copies, overlays, tags, new_files = [], [], [], []
        taken: set = set()
        for el in disk_elements(dom.node):
            target_dev = disk_target(el)
            spec = target.disk(target_dev)
            if not is_writable(el) or spec is None or spec.snapshot == "no":
                continue
            ch = chain(el)
            top, fmt = ch[0]
            if spec.snapshot == "internal":
                if real_path(top) in frozen:
                    dst = fresh_path(top, f"{target.name}-copy", taken)
                    taken.add(dst)
                    copies.append([top, dst])
                    new_files.append(dst)
                    set_top(el, dst)
                    tags.append([dst, target.name])
                else:
                    tags.append([top, target.name])
            elif spec.snapshot == "external":
                cur = disk_element(config.node, target_dev) if config is not None else None
                cur_chain = chain(cur) if cur is not None else []
                if (len(cur_chain) >= 2 and real_path(cur_chain[1][0]) == real_path(top)
                        and os.path.exists(cur_chain[0][0]) and not qcow2.has_data(cur_chain[0][0])
                        and not tags_of(cur_chain[0][0])):
                    push_overlay(el, cur_chain[0][0])          # an empty overlay on it already
                    continue
                path = fresh_path(top, f"{target.name}-{short_id()}", taken)
                taken.add(path)
                overlays.append({"target": target_dev, "overlay": path, "base": top, "base_fmt": fmt,
                                 "size": image_size(top, fmt)})
                new_files.append(path)
                push_overlay(el, path)
        return {"copies": copies, "overlays": overlays, "tags": tags, "new_files": new_files,
                "config": dom.to_xml(inactive=True)}

    def _finish_revert(self, intent: dict) -> None:
        """The committed part of a revert (idempotent: recovery runs it again)."""
        from vsh.core.domain import Domain

        if intent.get("drop_managed_save"):
            unlink(self.store.data_file("managedsave", f"{self.name}.save"))
        for path, tag in intent.get("tags") or []:
            qemu_img("snapshot", "-a", tag, path, what=f"reverting '{path}' to snapshot '{tag}'")
            self.hook("revert:tag")
        self.store.write_config(Domain.parse(intent["config"]))
        self.hook("revert:config")
        state = self.meta.state()
        state["current"] = intent["name"]
        state["owned"] = sorted(set(state["owned"]) | set(intent.get("new_files") or []))
        self.meta.write_state(state)
        self.hook("revert:state")
        self._gc(state)
        self.hook("revert:gc")

    def _recover_revert(self, intent: dict) -> None:
        ref = self._ref()
        if intent.get("mode") == "inplace":
            if ref.active:
                self._load_inplace(intent)
                self._finish_revert(intent)
            return
        if intent.get("phase") != "commit":
            for path in intent.get("new_files") or []:
                unlink(path)
                unlink(tmp_for(path))
            return
        if ref.active:
            raise OperationInvalid(f"Requested operation is not valid: an interrupted revert of domain "
                                   f"'{self.name}' to snapshot '{intent['name']}' needs the domain shut off "
                                   "to finish", hint="destroy it, then run the snapshot command again")
        self._finish_revert(intent)
