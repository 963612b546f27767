"""The local driver's migration: a domain moves to another vsh store, on this host or (``vsh+ssh``)
on another one.

A live migration is QEMU's own, in libvirt's steps: the destination connection prepares the
incoming domain (:meth:`~vsh.api.migration.ConnectionMigration.migrate_prepare`: its store
launches the domain's live XML under its supervisor with ``-incoming defer``, and that QEMU
listens on a unix socket in its runtime directory); the source reaches that socket
(:meth:`~vsh.api.migration.ConnectionMigration.forward_socket`: itself on one host, an OpenSSH
``-L`` forward of a socket in the source's runtime directory for ``vsh+ssh``); the source
supervisor connects to it, migrates into it (``op_migrate_out``) and quits its QEMU once the
destination has the guest (``shut off (migrated)``); the destination finishes
(:meth:`~vsh.api.migration.ConnectionMigration.migrate_finish`) and runs it (``running
(migrated)``). No TCP port is opened. Both ends see the same disk files (shared storage): QEMU
hands the images over at the switch (the destination opens them inactive until then), and a
disk the destination cannot open fails the prepare, before anything moved. With
``copy_storage`` the destination's XML (``dest_xml``) names other files: the prepare makes them
and serves them over NBD on a second socket, forwarded the same way, and the source supervisor
mirrors the writable disks into them before and during the migration (``op_migrate_out``'s
``mirror``). A failed migration leaves the source running and nothing on the destination. An
offline migration copies the persistent definition only.
"""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, Unsupported, VshError

#: The source's end of a forwarded stream, and of the forwarded NBD server (--copy-storage-all), in
#: its runtime directory.
FORWARD_SOCKET = "migrate-out.sock"
NBD_FORWARD = "nbd-out.sock"


def _destination(source_conn, dest_uri: str):
    from vsh import api

    dest = api.connect(dest_uri)
    store = getattr(dest, "store", None)            # a store of this host
    if store is not None and os.path.realpath(store.config_dir) == os.path.realpath(source_conn.store.config_dir):
        dest.close()
        raise OperationInvalid("Requested operation is not valid: the destination is the source's own store")
    return dest


def migrate(dom, dest_uri: str, *, live: bool = False, offline: bool = False, persistent: bool = False,
            undefine_source: bool = False, copy_storage: bool = False, suspend: bool = False,
            timeout: float | None = None, auto_converge: bool = False, progress=None,
            job_timeout: float = 3600.0, dest_xml: str | None = None) -> dict:
    """See :meth:`vsh.api.lifecycle.DomainLifecycle.migrate`."""
    if offline and live:
        raise InvalidArgument("--live and --offline are mutually exclusive")
    if offline and not persistent:
        raise InvalidArgument("offline migration requires --persistent")
    if offline and copy_storage:
        raise InvalidArgument("offline migration cannot handle non-shared storage")
    if timeout is not None and timeout <= 0:
        raise InvalidArgument("migrate: Invalid timeout")
    dest = _destination(dom.conn, dest_uri)
    try:
        if offline:
            return _offline(dom, dest, undefine_source, dest_xml)
        return _live(dom, dest, dict(live=live, persistent=persistent, undefine_source=undefine_source,
                                     suspend=suspend, timeout=timeout, auto_converge=auto_converge,
                                     progress=progress, job_timeout=job_timeout, dest_xml=dest_xml,
                                     copy_storage=copy_storage))
    finally:
        dest.close()


def _offline(dom, dest, undefine_source: bool, dest_xml: str | None) -> dict:
    ref = dom.refresh()
    if not ref.persistent:
        raise OperationInvalid("Requested operation is not valid: cannot migrate a transient domain offline")
    xml = dom.xml(inactive=True)
    dest.define_xml(_same_domain(xml, dest_xml).to_xml() if dest_xml is not None else xml)
    if undefine_source:
        if ref.active:
            raise OperationInvalid("Requested operation is not valid: domain is running; "
                                   "--undefinesource needs it shut off for an offline migration")
        dom.undefine()
    return {"name": dom.name, "offline": True, "persistent": True, "source_undefined": bool(undefine_source)}


def _same_domain(xml: str, dest_xml: str):
    """The domain of ``dest_xml`` (--xml), checked to be the one of ``xml``: same name, UUID and
    disk targets (its files may differ)."""
    from vsh.api.local.incoming import disk_files
    from vsh.core.domain import Domain

    ours, theirs = Domain.parse(xml), Domain.parse(dest_xml)
    if (theirs.name, (theirs.uuid or "").lower()) != (ours.name, (ours.uuid or "").lower()):
        raise InvalidArgument(f"the destination XML must describe domain '{ours.name}' with UUID {ours.uuid}")
    if sorted(disk_files(theirs)) != sorted(disk_files(ours)):
        raise InvalidArgument("the destination XML must have the same disks (targets) as the domain")
    return theirs


def _disks_to_copy(live_dom) -> list[dict]:
    """The source's writable disks for --copy-storage-all: target, path, virtual size, device/inode."""
    from vsh.api.local.incoming import disk_files, virtual_size

    out = []
    for target, (path, fmt) in sorted(disk_files(live_dom, writable=True).items()):
        st = os.stat(path)
        out.append({"target": target, "path": path, "size": virtual_size(path, fmt), "dev": st.st_dev,
                    "ino": st.st_ino})
    if not out:
        raise OperationInvalid("Requested operation is not valid: --copy-storage-all: the domain has no "
                               "writable disk to copy")
    return out


def _flatten(dom, targets: set):
    """``dom`` with the disks of ``targets`` declared without a backing chain (``<backingStore/>``):
    a storage copy makes each one whole image there."""
    from vsh.core.lxmlload import etree

    for disk in dom.node.findall("./devices/disk"):
        target = disk.find("target")
        if target is not None and target.get("dev") in targets:
            for chain in disk.findall("backingStore"):
                disk.remove(chain)
            etree.SubElement(disk, "backingStore")
    return dom


def _live(dom, dest, o: dict) -> dict:
    from contextlib import closing, nullcontext

    from vsh.api.local.saves import progress_thread
    from vsh.core.domain import Domain
    from vsh.kvm import client

    src_store = dom.store
    ref = dom.refresh()
    rundir = src_store.runtime_dir(ref.name)
    st = client.read_state(rundir) or {}
    if not ref.active or st.get("state") not in ("running", "paused"):
        raise OperationInvalid("Requested operation is not valid: domain is not running")
    live_dom = src_store.load(ref)
    there = _same_domain(live_dom.to_xml(), o["dest_xml"]) if o["dest_xml"] is not None else live_dom.copy()
    there.id = None
    for el in there.node.findall("./devices/graphics"):     # the destination names its own sockets
        el.attrib.pop("socket", None)
        for listen in el.findall("listen[@socket]"):
            listen.attrib.pop("socket")
    copies = _disks_to_copy(live_dom) if o["copy_storage"] else []
    config = None
    if o["persistent"]:
        config = o["dest_xml"] or (dom.xml(inactive=True) if ref.persistent else there.to_xml())
    if copies:
        targets = {d["target"] for d in copies}
        _flatten(there, targets)
        if config is not None:
            config = _flatten(Domain.parse(config), targets).to_xml()
    try:
        prepared = dest.migrate_prepare(there.to_xml(), persistent_xml=config, timeout=o["job_timeout"],
                                        paused=o["suspend"] or st.get("state") == "paused",
                                        **({"disks": [{k: d[k] for k in ("target", "size", "dev", "ino")}
                                                      for d in copies]} if copies else {}))
    except Unsupported as err:
        raise Unsupported(f"migration from a vsh store to '{dest.uri}' is not supported: the destination "
                          "must be a vsh store (vsh:///session?root=DIR, vsh:///system) or a remote vsh "
                          "(vsh+ssh://host/session)", *err.lines) from None
    progress = o["progress"]
    try:
        local = os.path.join(str(rundir), FORWARD_SOCKET)
        with closing(dest.forward_socket(prepared["socket"], local)) as forward, \
                (closing(dest.forward_socket(prepared["nbd_socket"], os.path.join(str(rundir), NBD_FORWARD)))
                 if copies else nullcontext()) as nbd:
            mirror = {"socket": nbd.path, "disks": [{"path": d["path"], "export": d["target"]} for d in copies]} \
                if copies else None
            stop = progress_thread(rundir, progress) if progress else None
            try:
                figures = client.migrate_out(rundir, f"unix:{forward.path}", live=o["live"],
                                             auto_converge=o["auto_converge"], suspend_after=o["timeout"],
                                             timeout=o["job_timeout"], mirror=mirror)
            except VshError as err:
                why = forward.failure() or (nbd.failure() if copies else None)
                if why:
                    raise VshError(f"cannot migrate '{ref.name}' to '{dest.uri}': {why}") from err
                raise
            finally:
                if stop:
                    stop()
    except BaseException:
        try:
            dest.migrate_finish(there.name, ok=False)
        except VshError:
            pass
        raise
    dest.migrate_finish(there.name)      # the source has stopped; the guest is where QEMU left it
    undefine = o["undefine_source"] and ref.persistent
    if undefine:
        try:
            src_store.undefine(src_store.get(ref.name))
        except NotFound:
            pass
    if progress:
        progress(100)
    return {"name": there.name, "offline": False, "persistent": bool(prepared.get("persistent")),
            "source_undefined": bool(undefine), "storage_copied": [d["target"] for d in copies],
            "downtime_ms": figures.get("downtime_ms"), "total_ms": figures.get("total_ms"),
            "transferred": figures.get("transferred"), "iterations": figures.get("iterations")}


# -- the migration tunables of a running domain ------------------------------------------------

MIB = 1 << 20
#: QMP's migration parameters → the API's names, and the factor from the API's unit to QEMU's
PARAMETERS = (("downtime-limit", "downtime_ms", 1), ("max-bandwidth", "bandwidth_mib", MIB),
              ("max-postcopy-bandwidth", "postcopy_bandwidth_mib", MIB),
              ("xbzrle-cache-size", "compression_cache", 1))


def _running_qmp(dom, cmd: str, args: dict | None = None):
    from vsh.kvm import client

    ref = dom.refresh()
    if not ref.active:
        raise OperationInvalid("Requested operation is not valid: domain is not running")
    return client.qmp(dom.store.runtime_dir(ref.name), cmd, args)


def parameters(dom) -> dict:
    got = _running_qmp(dom, "query-migrate-parameters")
    return {name: int(got.get(key) or 0) // factor for key, name, factor in PARAMETERS}


def set_parameters(dom, **values) -> None:
    args = {key: int(values[name]) * factor for key, name, factor in PARAMETERS if values.get(name) is not None}
    if args:
        _running_qmp(dom, "migrate-set-parameters", args)


def start_postcopy(dom) -> None:
    status = (_running_qmp(dom, "query-migrate") or {}).get("status")
    if status not in ("setup", "active", "pre-switchover", "device"):
        raise OperationInvalid("Requested operation is not valid: domain is not being migrated")
    caps = {c.get("capability"): c.get("state") for c in _running_qmp(dom, "query-migrate-capabilities")}
    if not caps.get("postcopy-ram"):
        raise OperationInvalid("Requested operation is not valid: switching to post-copy migration requires "
                               "migration to be started with VIR_MIGRATE_POSTCOPY flag")
    _running_qmp(dom, "migrate-start-postcopy")
