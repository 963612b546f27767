"""The local driver: creating domains from media (virt-install) in the embedded store.

The planner (:mod:`vsh.api.local.installplan`) turns the options into a plan;
:func:`precheck` runs the real QEMU argv builder on it, with throw-away stand-ins
for the files not created yet, so a domain that cannot run here (a KVM domain on a
TCG-only host, IDE on q35, an unknown CPU model) fails before anything is written;
:meth:`LocalInstaller.create` creates the files and defines the domain, and removes
what it made again if a step fails.
"""

from __future__ import annotations

import os

from vsh.api.install import NOTHING_KEPT, Installer, check_create_flags
from vsh.core.errors import OperationInvalid, Unsupported, VshError


class LocalInstaller(Installer):
    def __init__(self, conn):
        self.conn = conn

    def _plan(self, options: dict, check: bool):
        from vsh.api.local import installplan

        store = self.conn.store
        host = installplan.probe_host() if check else None
        plan = installplan.make_plan(installplan.StoreSite(store), options, host)
        if check:
            if store.find(plan.dom.name) is not None:
                raise OperationInvalid(f"domain '{plan.dom.name}' already exists",
                                       hint="pick another --name, or remove the old one with undefine")
            precheck(plan, host)
        return plan

    def plan(self, options: dict, check: bool = False) -> dict:
        return self._plan(options, check).to_dict()

    def create(self, options: dict, autostart: bool = False, transient: bool = False) -> dict:
        check_create_flags(autostart, transient)
        plan = self._plan(options, True)
        created = carry_out(self.conn.store, plan, autostart, define=not transient)
        planned = plan.to_dict()
        return {"name": planned["name"], "uuid": planned["uuid"], "created": created,
                "disks": [d.source for d in plan.dom.disks if d.source], "new_disks": planned["disks"],
                "seed": planned["seed"], "root_password": planned["root_password"], "xml": planned["xml"],
                "install_xml": planned["install_xml"], "boot_files": planned["boot_files"],
                "transient": transient}

    def start(self, made: dict) -> dict:
        conn = self.conn
        try:
            if made["install_xml"] is not None:
                info = conn.create_xml(made["install_xml"])
            elif made["transient"]:
                info = conn.create_xml(made["xml"])
            else:
                info = conn.lookup_domain(made["name"]).start()
        except BaseException as err:
            self.discard(made)
            if isinstance(err, VshError):
                raise err.__class__(*err.lines, hint=NOTHING_KEPT) from None
            raise
        for path in made["boot_files"]:     # QEMU has read them
            try:
                os.unlink(path)
            except OSError:
                pass
        return info

    def discard(self, made: dict) -> None:
        _remove(self.conn.store, made["name"], not made.get("transient"), made["created"])


def precheck(plan, host, check_ports: bool = True) -> None:
    """Build the real QEMU argv for the plan, with stand-ins for files not created yet."""
    import tempfile

    from vsh.kvm.argv import RuntimePaths, build_argv, check_host_ports

    dom = plan.dom.copy()
    with tempfile.TemporaryDirectory(prefix="vsh-install-") as tmp:
        stand_ins = {}
        for i, disk in enumerate(plan.disks):
            stand_in = os.path.join(tmp, f"disk{i}")
            with open(stand_in, "wb") as fh:
                if disk["format"] == "qcow2":
                    fh.write(b"QFI\xfb" + bytes(28))  # a header naming no backing file
            stand_ins[disk["path"]] = stand_in
        boot = list(plan.boot[1:3]) if plan.boot else []
        for path in ([plan.seed[0]] if plan.seed else []) + ([plan.nvram[1]] if plan.nvram else []) + boot:
            stand_in = os.path.join(tmp, os.path.basename(path))
            open(stand_in, "wb").close()
            stand_ins[path] = stand_in
        doms = [dom] + ([plan.install_dom.copy()] if plan.install_dom is not None else [])
        for one in doms:
            for src in one.node.iter("source"):
                if src.get("file") in stand_ins:
                    src.set("file", stand_ins[src.get("file")])
            for el in (one.node.find(f"os/{tag}") for tag in ("nvram", "kernel", "initrd")):
                if el is not None and (el.text or "").strip() in stand_ins:
                    el.text = stand_ins[el.text.strip()]
        try:
            for one in doms:
                build_argv(one.node, host, RuntimePaths.for_rundir(os.path.join(tmp, "run")))
        except Unsupported as err:
            if err.hint is None and "interface type" in str(err):
                raise Unsupported(*err.lines, hint="vsh runs user-mode networking today: --network user"
                                  "[,portforward=HOSTPORT:GUESTPORT]") from None
            raise
        if check_ports:
            check_host_ports(dom.node)


def _create_disk(disk: dict) -> None:
    from vsh.core.qemuimg import qemu_img

    path = disk["path"]
    # claim the name first, so two installs can never write the same file
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise OperationInvalid(f"disk '{path}' appeared meanwhile; not overwriting it") from None
    except OSError as exc:
        raise VshError(f"cannot create disk '{path}': {exc.strerror}") from None
    os.close(fd)
    args = ["create", "-q", "-f", disk["format"]]
    if disk.get("backing"):
        args += ["-b", disk["backing"], "-F", disk["backing_format"]]
    args.append(path)
    if disk.get("size") is not None:
        args.append(str(disk["size"]))
    qemu_img(args, what=f"cannot create disk '{path}': qemu-img create", timeout=300)


def _seed_in_use(store, path: str, name: str) -> str | None:
    """The domain (other than ``name``) whose disk is the file ``path``, if any."""
    for ref in store.refs():
        if ref.name == name:
            continue
        try:
            other = store.load(ref, inactive=True)
        except VshError:
            continue
        for disk in other.disks:
            if disk.source and os.path.realpath(disk.source) == os.path.realpath(path):
                return ref.name
    return None


def carry_out(store, plan, autostart: bool = False, define: bool = True) -> list[str]:
    """Create the files of ``plan`` and define its domain (unless ``define`` is false: a transient
    install); the paths created, in order. If a step fails, what was made is removed again (the
    error's hint says so)."""
    import shutil

    from vsh.api.local.installplan import pools_of
    from vsh.core.store import atomic_write, ensure_private_dir

    name = plan.dom.name
    created: list[str] = []
    defined = False
    try:
        images = os.path.join(os.fspath(store.data_dir), "images")
        for path in plan.new_paths():
            if os.path.dirname(path) == images:
                store.images_dir()  # the images directory, private to its user
                pools_of(store, init=True)  # and the default pool on it, so its volumes are managed
                break
        for disk in plan.disks:
            _create_disk(disk)
            created.append(disk["path"])
        if plan.nvram:
            template, path = plan.nvram
            ensure_private_dir(os.path.dirname(path))
            if os.path.exists(path):
                raise OperationInvalid(f"UEFI variable store '{path}' already exists; remove it or pick another name")
            shutil.copyfile(template, path)
            os.chmod(path, 0o600)
            created.append(path)
        if plan.seed:
            path, data = plan.seed
            user = _seed_in_use(store, path, name)
            if user is not None:
                raise OperationInvalid(f"cloud-init seed '{path}' is a disk of domain '{user}'; not replacing it")
            atomic_write(path, data)
            created.append(path)
        if plan.boot:
            from vsh.core.installmedia import fetch_boot_files, inject_files

            location, kernel, initrd, inject = plan.boot
            ensure_private_dir(os.path.dirname(kernel))
            created += [kernel, initrd]     # removed again whatever happens below
            fetch_boot_files(location, os.path.dirname(kernel), os.path.basename(kernel).removesuffix("-vmlinuz"))
            if inject:
                inject_files(initrd, inject)
        if not define:
            return created
        from vsh.api.local.domains import as_defined

        dom = plan.dom.copy()
        as_defined(dom)                 # what define writes: the canonical machine, PS/2, addresses
        store.define(dom)
        defined = True
        from vsh.core import journal

        journal.record(store.run_root, name, "lifecycle", "Defined", "Added")
        if autostart:
            store.set_autostart(name, True)
    except BaseException as err:
        _remove(store, name, defined, created)
        if isinstance(err, VshError) and (defined or created):
            raise err.__class__(*err.lines, hint=NOTHING_KEPT) from None
        raise
    return created


def _remove(store, name: str, defined: bool, created: list[str]) -> None:
    """Undefine domain ``name`` (if ``defined``) and remove the files ``created``; failures are skipped."""
    if defined:
        try:
            store.set_autostart(name, False)
            store.undefine(store.get(name))
            from vsh.core import journal

            journal.record(store.run_root, name, "lifecycle", "Undefined", "Removed")
        except VshError:
            pass
    for path in reversed(created):
        try:
            os.unlink(path)
        except OSError:
            pass
