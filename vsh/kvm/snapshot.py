"""Snapshots of QEMU domains: create, revert and delete, crash-safe.

Two kinds, as libvirt has them:

* internal: every writable disk is qcow2 and keeps the snapshot inside the image
  (``qemu-img snapshot`` when the domain is shut off; the QMP ``snapshot-save`` /
  ``snapshot-load`` / ``snapshot-delete`` jobs, with the memory state, when it runs);
* external, disk-only: every snapshotted disk gets a new qcow2 overlay whose backing
  file is the image the disk used so far, which is frozen from then on
  (``qemu-img create -b ... -F fmt`` offline; ``blockdev-add`` plus one
  ``transaction`` of ``blockdev-snapshot`` actions live). The domain XML declares the
  whole chain with ``<backingStore>``, so QEMU never probes a format.

The rules that keep the tree consistent:

* A frozen image (the top of an external snapshot, or a backing file of any chain a
  snapshot records) is never written. Reverting to an external snapshot gives the
  domain a new overlay on the frozen image; reverting to an internal snapshot whose
  image has been frozen since works on a copy of that image.
* Deleting an external snapshot merges its frozen image into the one image that
  builds on it when vsh created it and nothing else needs it (``block-stream`` live,
  ``qemu-img rebase`` offline), and rewrites every recorded chain; otherwise the
  images stay, because other chains still need them.
* Image files that vsh created (``owned``) are removed once no chain refers to them;
  internal snapshots that no metadata refers to are removed from them.
* Reverting discards the domain's current state; vsh refuses unless that state is
  kept by a snapshot (an unchanged image, an empty overlay) or ``force`` is given.

Crash safety: an operation writes its intent (``.intent.json``) first, then acts on
the images, then commits the metadata; the commit point of a creation is the new
``SNAP.xml``, of a deletion the removal of ``SNAP.xml`` (metadata never names data
that is gone). Every vsh command that touches a domain's snapshots first finishes or
undoes an interrupted operation (:meth:`Engine.recover`), under the domain lock.
``hook`` is called after every step (tests pass one that kills the process there).
"""

from __future__ import annotations

import copy
import os
import subprocess
import time

from vsh.core.errors import InvalidArgument, OperationInvalid, Unsupported, VshError
from vsh.core.store import fsync_dir
from vsh.core.snapshots import SnapshotDef, SnapshotStore, DiskSpec, check_name, children_of, not_found

QEMU_IMG = "qemu-img"
_FORMATS = ("qcow2", "raw")


# ---------------------------------------------------------------------------------------
# disks and chains in a domain XML (lxml elements)
# ---------------------------------------------------------------------------------------

def _disk_target(el) -> str | None:
    tgt = el.find("target")
    return tgt.get("dev") if tgt is not None else None


def disk_elements(dom_el) -> list:
    return [el for el in dom_el.findall("devices/disk") if _disk_target(el)]


def disk_element(dom_el, target: str):
    for el in disk_elements(dom_el):
        if _disk_target(el) == target:
            return el
    return None


def is_writable(el) -> bool:
    return (el.get("device", "disk") == "disk" and el.find("readonly") is None
            and el.find("source") is not None)


def chain(el) -> list[tuple[str, str | None]]:
    """[(path, format)] from the top image down, as the XML declares it."""
    src = el.find("source")
    if src is None:
        return []
    path = src.get("file") or src.get("dev")
    if not path:
        return []
    drv = el.find("driver")
    out = [(path, drv.get("type") if drv is not None else None)]
    bs = el.find("backingStore")
    while bs is not None and bs.find("source") is not None:
        bsrc = bs.find("source")
        fmt = bs.find("format")
        out.append((bsrc.get("file") or bsrc.get("dev"), fmt.get("type") if fmt is not None else None))
        bs = bs.find("backingStore")
    return out


def chains(dom_el) -> dict:
    return {_disk_target(el): chain(el) for el in disk_elements(dom_el) if chain(el)}


def push_overlay(el, overlay: str) -> None:
    """Make ``overlay`` (qcow2) the disk's top; the old top becomes its declared backing store."""
    from lxml import etree

    src = el.find("source")
    drv = el.find("driver")
    if drv is None:
        drv = etree.SubElement(el, "driver", name="qemu")
    old_path, old_fmt = src.get("file"), drv.get("type")
    old_bs = el.find("backingStore")
    bs = etree.Element("backingStore", type=el.get("type", "file"))
    etree.SubElement(bs, "format", type=old_fmt or "raw")
    etree.SubElement(bs, "source", {("file" if el.get("type", "file") == "file" else "dev"): old_path})
    if old_bs is not None:
        el.remove(old_bs)
        bs.append(old_bs)
    elif old_fmt == "qcow2":
        etree.SubElement(bs, "backingStore")
    el.set("type", "file")
    for key in ("dev", "file"):
        src.attrib.pop(key, None)
    src.set("file", overlay)
    drv.set("type", "qcow2")
    src.addnext(bs)


def drop_from_chain(el, path: str) -> bool:
    """Remove the backing level ``path`` from the disk's declared chain; True if it was there."""
    parent = el
    bs = el.find("backingStore")
    while bs is not None and bs.find("source") is not None:
        bsrc = bs.find("source")
        if (bsrc.get("file") or bsrc.get("dev")) == path:
            inner = bs.find("backingStore")
            index = parent.index(bs)
            parent.remove(bs)
            if inner is not None:
                parent.insert(index, inner)
            return True
        parent, bs = bs, bs.find("backingStore")
    return False


def set_top(el, path: str) -> None:
    el.find("source").set("file", path)


def _real(path: str) -> str:
    return os.path.realpath(path)


# ---------------------------------------------------------------------------------------
# qemu-img
# ---------------------------------------------------------------------------------------

def qemu_img(*args: str, what: str | None = None) -> str:
    argv = [QEMU_IMG, *args]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    except FileNotFoundError:
        raise Unsupported("qemu-img is not installed (Debian package qemu-utils)") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise VshError(f"internal error: {what or 'qemu-img ' + args[0]} failed: "
                       f"{detail[-1] if detail else 'exit status ' + str(proc.returncode)}")
    return proc.stdout


def image_size(path: str, fmt: str) -> int:
    """Virtual size of an image (qcow2 header, or a raw file's length)."""
    from vsh.kvm import qcow2

    if fmt == "qcow2":
        return qcow2.read_info(path).size
    st = os.stat(path)
    if st.st_size:
        return st.st_size
    with open(path, "rb") as fh:     # a block device
        return fh.seek(0, os.SEEK_END)


def tmp_for(path: str) -> str:
    """The temporary name a new image is written under (fixed: recovery removes it)."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name[:200]}.vsh-part")


def create_overlay(path: str, base: str, base_fmt: str, size: int) -> None:
    """A new qcow2 overlay at ``path`` (it must not exist), written under a temporary name."""
    tmp = tmp_for(path)
    _unlink(tmp)
    try:
        qemu_img("create", "-q", "-f", "qcow2", "-b", base, "-F", base_fmt, "-u", tmp, str(size),
                 what=f"creating overlay '{path}'")
        os.chmod(tmp, 0o600)
        _fsync(tmp)
        os.link(tmp, path)          # fails if path exists: never overwrite
    finally:
        _unlink(tmp)
    fsync_dir(os.path.dirname(path))


def copy_image(src: str, dst: str) -> None:
    """A full copy (sparse; reflinked where the filesystem can) under a temporary name."""
    tmp = tmp_for(dst)
    _unlink(tmp)
    try:
        proc = subprocess.run(["cp", "--reflink=auto", "--sparse=always", "--", src, tmp],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise VshError(f"internal error: copying '{src}' failed: {proc.stderr.strip()}")
        os.chmod(tmp, 0o600)
        _fsync(tmp)
        os.link(tmp, dst)
    finally:
        _unlink(tmp)
    fsync_dir(os.path.dirname(dst))


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def tags_of(path: str) -> list[str]:
    from vsh.kvm import qcow2

    if not os.path.exists(path) or not qcow2.is_qcow2(path):
        return []
    return qcow2.read_info(path).tags()


def fresh_path(base: str, label: str, taken: set | None = None) -> str:
    """``<dir>/<stem>.<label>`` (libvirt's overlay names), or with ``-N`` if taken."""
    directory, name = os.path.split(base)
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    candidate = os.path.join(directory, f"{stem}.{label}")
    n = 1
    while os.path.lexists(candidate) or (taken and candidate in taken):
        n += 1
        candidate = os.path.join(directory, f"{stem}.{label}-{n}")
    return candidate


# ---------------------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------------------

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


class Engine:
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
            if node.get("drv") in _FORMATS and node.get("file"):
                out.setdefault(_real(node["file"]), node["node-name"])
        return out

    def _live_tops(self) -> dict:
        """Running domain: realpath of each disk's top image → its node name (query-block)."""
        out = {}
        for dev in self._qmp("query-block"):
            ins = dev.get("inserted") or {}
            if ins.get("file"):
                out[_real(ins["file"])] = ins.get("node-name")
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
                paths = [_real(p) for p, _ in ch]
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
                    allowed.setdefault(_real(ch[0][0]), set()).add(defn.name)
        if current in defs and not defs[current].external and config is not None:
            for ch in chains(config.node).values():
                allowed.setdefault(_real(ch[0][0]), set()).add(current)
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
                live_files.update(_real(p) for p, _ in ch)
        owned = []
        for path in state.get("owned") or []:
            if _real(path) in referenced:
                owned.append(path)
            else:
                _unlink(path)
        state["owned"] = owned
        allowed = self._allowed_tags(defs, config, state.get("current"))
        garbage = [list(g) for g in state.get("garbage") or []]
        for path in owned:
            real = _real(path)
            if real in live_files:
                continue
            for tag in tags_of(path):
                if tag not in allowed.get(real, set()) and [path, tag] not in garbage:
                    garbage.append([path, tag])
        keep = []
        for path, tag in garbage:
            if not os.path.exists(path) or tag not in tags_of(path):
                continue
            if _real(path) in live_files or tag in allowed.get(_real(path), set()):
                if _real(path) in live_files:
                    keep.append([path, tag])
                continue
            try:
                qemu_img("snapshot", "-d", tag, path, what=f"deleting internal snapshot '{tag}' of '{path}'")
            except VshError:
                keep.append([path, tag])
        state["garbage"] = keep
        self.meta.write_state(state)

    # =======================================================================================
    # create
    # =======================================================================================
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
            target = _disk_target(el)
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
            devices = [nodes.get(_real(p)) for p in files]
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
            files = {_real(p) for p in intent.get("files") or []}
            if any(_real(p) in files for p in state["owned"]):
                state["owned"] = [p for p in state["owned"] if _real(p) not in files]
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
            target = _disk_target(el)
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
            if fmt not in _FORMATS:
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
                top = nodes.get(_real(item["base"]))
                if top is None:
                    raise VshError(f"internal error: domain '{self.name}' does not have image "
                                   f"'{item['base']}' open")
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
            forward = present and all(_real(o["overlay"]) in tops for o in overlays)
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
                tops = {_real(ch[0][0]) for ch in chains(cfg.node).values()}
                forward = all(_real(o["overlay"]) in tops for o in overlays)
        if forward:
            return self._commit_create(intent)
        for item in overlays:
            _unlink(item["overlay"])
            _unlink(tmp_for(item["overlay"]))

    # =======================================================================================
    # revert
    # =======================================================================================
    def revert(self, name: str, running: bool = False, paused: bool = False, force: bool = False) -> dict:
        return self._locked(self._revert, name, running, paused, force)

    def unsaved_reason(self, ref=None, defs: dict | None = None) -> str | None:
        """Why the domain's current state is not kept by any snapshot (None: it is)."""
        from vsh.kvm import qcow2

        ref = ref or self._ref()
        defs = self.meta.load_all() if defs is None else defs
        if self._has_managed_save():
            return "it has a managed save image"
        if ref.active:
            return f"it is {ref.state}"
        current = self.meta.state().get("current")
        if current not in defs:
            return "no snapshot is current"
        cur = defs[current]
        config = self._config(ref)
        if config is None or cur.domain is None:
            return "no snapshot is current"
        for el in disk_elements(config.node):
            if not is_writable(el):
                continue
            target = _disk_target(el)
            spec = cur.disk(target)
            then = disk_element(cur.domain, target)
            if spec is None or then is None or spec.snapshot == "no":
                continue
            now = chain(el)
            if spec.snapshot == "internal":
                if not (os.path.exists(now[0][0]) and qcow2.is_qcow2(now[0][0])
                        and qcow2.equals_snapshot(now[0][0], cur.name)):
                    return f"disk {target} has changed since snapshot '{cur.name}'"
            else:
                base = chain(then)[0][0]
                if len(now) < 2 or _real(now[1][0]) != _real(base) or qcow2.has_data(now[0][0]):
                    return f"disk {target} has changed since snapshot '{cur.name}'"
        return None

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
        if target.domain is None:
            raise OperationInvalid(f"Requested operation is not valid: snapshot '{name}' has no domain "
                                   "definition to revert to")
        if not force:
            why = self.unsaved_reason(ref, defs)
            if why:
                raise OperationInvalid(f"Requested operation is not valid: reverting to snapshot '{name}' "
                                       f"would discard the domain's current state ({why})",
                                       hint="add --force to discard it")
        self._check_images(target)
        with_memory = target.memory == "internal" and target.state in ("running", "paused")
        if running or paused:
            final = "paused" if paused else "running"
        elif with_memory:
            final = target.state
        else:
            final = "shutoff"
        config = self._config(ref)
        if ref.active and with_memory and self._inplace_ok(target, defs, ref):
            return self._revert_inplace(target, final, config)
        plan = self._plan_revert(target, defs, config)
        intent = dict(plan, op="revert", name=name, phase="prepare", final=final,
                      with_memory=with_memory, drop_managed_save=bool(force))
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
            spec = target.disk(_disk_target(el))
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
                if _real(path) in frozen or target.name not in tags_of(path):
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
        devices = [nodes.get(_real(p)) for p in intent["files"]]
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
                spec = target.disk(_disk_target(el))
                cur = disk_element(config.node, _disk_target(el))
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
            target_dev = _disk_target(el)
            spec = target.disk(target_dev)
            if not is_writable(el) or spec is None or spec.snapshot == "no":
                continue
            ch = chain(el)
            top, fmt = ch[0]
            if spec.snapshot == "internal":
                if _real(top) in frozen:
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
                if (len(cur_chain) >= 2 and _real(cur_chain[1][0]) == _real(top)
                        and os.path.exists(cur_chain[0][0]) and not qcow2.has_data(cur_chain[0][0])
                        and not tags_of(cur_chain[0][0])):
                    push_overlay(el, cur_chain[0][0])          # an empty overlay on it already
                    continue
                path = fresh_path(top, f"{target.name}-{_short_id()}", taken)
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
            _unlink(self.store.data_file("managedsave", f"{self.name}.save"))
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
                _unlink(path)
                _unlink(tmp_for(path))
            return
        if ref.active:
            raise OperationInvalid(f"Requested operation is not valid: an interrupted revert of domain "
                                   f"'{self.name}' to snapshot '{intent['name']}' needs the domain shut off "
                                   "to finish", hint=f"destroy it, then run the snapshot command again")
        self._finish_revert(intent)

    # =======================================================================================
    # delete
    # =======================================================================================
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
        base = _real(ch[0][0])
        if base not in {_real(p) for p in state.get("owned") or []}:
            return None
        doms = [d.domain for d in others.values() if d.domain is not None]
        doms += [x.node for x in (config, live) if x is not None]
        kids, below = set(), set()
        for dom_el in doms:
            for ch2 in chains(dom_el).values():
                paths = [_real(p) for p, _ in ch2]
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
        disown = {_real(p) for p in intent.get("disown") or []}
        state["owned"] = [p for p in state["owned"] if _real(p) not in disown]
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
            tops = {_real(ch[0][0]) for ch in live_chains}
            below = {_real(p) for ch in live_chains for p, _ in ch[1:]}
            if _real(path) in tops:
                node = self._format_nodes().get(_real(path))
                self._job("snapshot-delete", {"job-id": "vsh-snapshot-delete", "tag": tag,
                                              "devices": [node]}, what=f"deleting snapshot '{tag}'")
                return
            if _real(path) in below:
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
        if header is None or _real(header) != _real(base):
            return                                              # done already
        ref = self._ref()
        live_files = set()
        if ref.active:
            live = self._live(ref)
            if live is not None:
                live_files = {_real(p) for ch in chains(live.node).values() for p, _ in ch}
        if _real(child) in live_files:
            nodes = self._format_nodes()
            job = self._client().job(self._rundir(), None, job_id="vsh-stream", existing=True)
            if job.get("status") == "absent" and _real(qcow2.read_info(child).backing_file or "") == _real(base):
                self._job("block-stream", {"job-id": "vsh-stream", "device": nodes[_real(child)],
                                           "base-node": nodes[_real(gp)], "auto-dismiss": False},
                          what=f"merging '{base}' into '{child}'")
            gone = nodes.get(_real(base))
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

        real = _real(path)
        for name in self.meta.names():
            defn = self.meta.load(name)
            if defn.domain is None:
                continue
            changed = False
            for el in disk_elements(defn.domain):
                for p, _ in chain(el)[1:]:
                    if _real(p) == real:
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
                    if _real(p) == real:
                        changed |= drop_from_chain(el, p)
            if changed:
                write(dom)

    # =======================================================================================
    # current
    # =======================================================================================
    def set_current(self, name: str) -> None:
        def run():
            if not self.meta.exists(name):
                raise not_found(name)
            state = self.meta.state()
            state["current"] = name
            self.meta.write_state(state)
        self._locked(run)

    def drop_all_metadata(self) -> None:
        """undefine --snapshots-metadata: forget every snapshot, keep every image."""
        def run():
            self.meta.remove_all()
        self._locked(run)


def _short_id() -> str:
    return os.urandom(2).hex()


__all__ = ["Engine", "Runner", "DiskRequest"]
