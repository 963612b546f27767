"""virt-install through a libvirt connection, as virt-install does it.

The same planner as the embedded store's (:func:`vsh.api.local.installplan.make_plan`) writes the
domain XML, with :class:`LibvirtSite` placing its files where libvirt keeps them: new disk images
are volumes of the connection's storage pools (``pool=``, else the pool ``default``, which is made
on ``/var/lib/libvirt/images`` when missing, as virt-install makes it), ``network=NAME`` names a
network of the connection (no ``--network``: ``default`` when it exists, else user-mode), a UEFI
variable store is made by libvirt from its template, and the domain type is kvm where libvirt's
capabilities offer it and KVM really runs guests here, else qemu. libvirt checks the domain at
define.

The planner reads the files the options name (install media, existing images, cloud-init files),
so a connection to another host is refused; so are the options that write files outside a pool:
``--location`` (the kernel and initrd copied out) and ``--cloud-init`` (its seed image).
"""

from __future__ import annotations

import os

from vsh.api.install import NOTHING_KEPT, Installer, check_create_flags
from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, Unsupported, VshError

#: Where libvirt's default pool lives (virt-install makes it there when the connection has none).
DEFAULT_POOL_DIR = "/var/lib/libvirt/images"


class LibvirtSite:
    """The planner's view of a libvirt connection (see :class:`vsh.api.local.installplan.StoreSite`)."""

    def __init__(self, conn):
        self.conn = conn

    @property
    def default_network(self) -> str:
        """What no ``--network`` means: libvirt's ``default`` network where it exists."""
        return "network=default" if self._has_network("default") else "user"

    def _has_network(self, name: str) -> bool:
        try:
            self.conn.networks.lookup_by_name(name)
        except NotFound:
            return False
        return True

    def pool_dir(self, pool: str | None) -> str:
        name = pool or "default"
        try:
            found = self.conn.storage.lookup_pool_by_name(name)
        except NotFound:
            if name == "default":
                return DEFAULT_POOL_DIR        # made at create time
            raise NotFound(f"--disk: storage pool '{name}' not found", hint="see pool-list --all") from None
        info = found.info()
        if not info["active"]:
            raise OperationInvalid(f"--disk: storage pool '{name}' is not active", hint=f"pool-start {name}")
        return pool_target(found, info)

    def check_network(self, name: str) -> None:
        if not self._has_network(name):
            raise NotFound(f"--network: Network not found: no network with matching name '{name}'",
                           hint="vsh net-list --all shows the networks")

    def nvram_path(self, name: str) -> str | None:
        return None         # libvirt copies the template to its own nvram directory

    def boot_dir(self) -> str:
        raise Unsupported("--location through a libvirt connection: the install kernel would be copied "
                          "outside libvirt's pools", hint="boot the install ISO with --cdrom")


def pool_target(pool, info: dict | None = None) -> str:
    """The directory of a libvirt storage pool (its ``<target><path>``)."""
    path = (info or pool.info()).get("target")
    if not path:
        raise Unsupported(f"--disk: storage pool '{pool.name}' has no directory for new images")
    return path


class LibvirtInstaller(Installer):
    def __init__(self, conn):
        self.conn = conn

    def _plan(self, options: dict, check: bool):
        from vsh.api.local.installplan import make_plan
        from vsh.core.uri import Uri

        if Uri.parse(self.conn.uri).host:
            raise Unsupported("virt-install through a connection to another host: vsh plans the install with "
                              "the files its options name on this host",
                              hint="run vsh install on that host, or use virt-install -c URI")
        if options.get("cloud_init") is not None or options.get("cloud_account"):
            raise Unsupported("--cloud-init through a libvirt connection: its seed image would be written "
                              "outside libvirt's pools", hint="install on a vsh:/// connection")
        options = dict(options)
        options.setdefault("virt_type", None)
        if options["virt_type"] is None:
            options["virt_type"] = self._domain_type()
        plan = make_plan(LibvirtSite(self.conn), options)
        if check:
            try:
                self.conn.lookup_domain(plan.dom.name)
            except NotFound:
                pass
            else:
                raise OperationInvalid(f"domain '{plan.dom.name}' already exists",
                                       hint="pick another --name, or remove the old one with undefine")
        return plan

    def _domain_type(self) -> str:
        """kvm where libvirt's capabilities offer it for x86_64 guests and KVM really runs a guest on
        this host (the embedded store's probe: a /dev/kvm that cannot is common in nested VMs),
        else qemu (TCG)."""
        from vsh.core.lxmlload import etree

        from vsh.api.local.installplan import probe_host
        from vsh.kvm.host import default_domain_type

        caps = etree.fromstring(self.conn.host.capabilities_xml().encode())
        for arch in caps.findall("guest/arch[@name='x86_64']"):
            if arch.find("domain[@type='kvm']") is not None:
                return default_domain_type(probe_host())
        return "qemu"

    def plan(self, options: dict, check: bool = False) -> dict:
        return self._plan(options, check).to_dict()

    def create(self, options: dict, autostart: bool = False, transient: bool = False) -> dict:
        check_create_flags(autostart, transient)
        plan = self._plan(options, True)
        planned = plan.to_dict()
        made = {"name": planned["name"], "uuid": planned["uuid"], "created": [], "volumes": [],
                "disks": [d.source for d in plan.dom.disks if d.source], "new_disks": planned["disks"],
                "seed": None, "root_password": None, "xml": planned["xml"], "install_xml": None,
                "boot_files": [], "transient": transient, "defined": False}
        try:
            for disk in plan.disks:
                made["volumes"].append(self._create_volume(disk).path)
                made["created"].append(disk["path"])
            if not transient:
                dom = self.conn.define_xml(planned["xml"])
                made["defined"] = True
                if autostart:
                    dom.set_autostart(True)
        except BaseException as err:
            self.discard(made)
            if isinstance(err, VshError) and made["created"]:
                raise err.__class__(*err.lines, hint=NOTHING_KEPT) from None
            raise
        return made

    def _create_volume(self, disk: dict):
        """The new image ``disk`` (a plan's entry) as a volume of the pool whose directory holds it."""
        directory, name = os.path.split(disk["path"])
        pool = self._pool_at(directory)
        if disk.get("size") is None and not disk.get("backing"):
            raise InvalidArgument(f"--disk: '{disk['path']}' needs a size")
        size = disk.get("size")
        if size is None:                # on a backing image: as large as it is
            from vsh.core.qcow2 import read_header_at

            header = read_header_at(disk["backing"])
            size = header.size if header is not None else os.path.getsize(disk["backing"])
        return pool.create_volume_as(name, int(size), allocation=0, format=disk["format"],
                                     backing_path=disk.get("backing"), backing_format=disk.get("backing_format"))

    def _pool_at(self, directory: str):
        """The active pool whose directory is ``directory``; the default pool is made there when it is
        libvirt's usual place and the connection has none."""
        storage = self.conn.storage
        for info in storage.list_pools():
            pool = storage.lookup_pool_by_name(info["name"])
            try:
                if os.path.realpath(pool_target(pool)) == os.path.realpath(directory):
                    return pool
            except Unsupported:
                continue
        if directory == DEFAULT_POOL_DIR:
            pool = storage.define_pool_as("default", "dir", DEFAULT_POOL_DIR)
            pool.start(build=True)
            pool.set_autostart(True)
            return pool
        raise NotFound(f"--disk: no storage pool of this connection holds '{directory}'",
                       hint="give pool=NAME, or an existing image with path=")

    def start(self, made: dict) -> dict:
        conn = self.conn
        try:
            if made["transient"]:
                return conn.create_xml(made["xml"])
            return conn.lookup_domain(made["name"]).start()
        except BaseException as err:
            self.discard(made)
            if isinstance(err, VshError):
                raise err.__class__(*err.lines, hint=NOTHING_KEPT) from None
            raise

    def discard(self, made: dict) -> None:
        if made.get("defined", not made.get("transient")):
            try:
                self.conn.lookup_domain(made["name"]).undefine()
            except Exception:       # noqa: BLE001 - discard skips what fails, as the API says
                pass
        for path in reversed(made.get("volumes") or []):
            try:
                self.conn.storage.lookup_volume(path).delete()
            except Exception:       # noqa: BLE001
                pass
