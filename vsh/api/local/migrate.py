"""The local driver's migration: a domain moves to another vsh store on this host.

A live migration is QEMU's own: the destination store launches the domain's live XML
under its supervisor with ``-incoming defer``, and that QEMU listens on a unix socket in
its runtime directory (``migrate-incoming unix:PATH``); the source supervisor migrates into
it (``op_migrate_out``) and quits its QEMU once the destination has the guest
(``shut off (migrated)``), and the destination's supervisor resumes it (``running
(migrated)``). No TCP port is opened. Both ends see the same disk files (one host): QEMU
hands the images over at the switch (the destination opens them inactive until then).
An offline migration copies the persistent definition only.
"""

from __future__ import annotations

import os
import threading
import time

from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, Unsupported, VshError

#: The name of the incoming QEMU's socket in the destination's runtime directory.
MIGRATE_SOCKET = "migrate.sock"
SOCKET_WAIT = 60.0


def _destination(source_conn, dest_uri: str):
    from vsh import api

    dest = api.connect(dest_uri)
    if getattr(dest, "store", None) is None:        # not a store of this host
        dest.close()
        raise Unsupported(f"migration from a vsh store to '{dest_uri}' is not supported: the destination must "
                          "be another vsh store (vsh:///session?root=DIR, vsh:///system)")
    if os.path.realpath(dest.store.config_dir) == os.path.realpath(source_conn.store.config_dir):
        dest.close()
        raise OperationInvalid("Requested operation is not valid: the destination is the source's own store")
    return dest


def migrate(dom, dest_uri: str, *, live: bool = False, offline: bool = False, persistent: bool = False,
            undefine_source: bool = False, copy_storage: bool = False, suspend: bool = False,
            timeout: float | None = None, auto_converge: bool = False, progress=None,
            job_timeout: float = 3600.0) -> dict:
    """See :meth:`vsh.api.lifecycle.DomainLifecycle.migrate`."""
    if offline and live:
        raise InvalidArgument("--live and --offline are mutually exclusive")
    if offline and not persistent:
        raise InvalidArgument("offline migration requires --persistent")
    if copy_storage:
        raise Unsupported("--copy-storage-all: the destination store is on this host and uses the same disk "
                          "files; there is no storage to copy")
    if timeout is not None and timeout <= 0:
        raise InvalidArgument("migrate: Invalid timeout")
    dest = _destination(dom.conn, dest_uri)
    try:
        if offline:
            return _offline(dom, dest, undefine_source)
        return _live(dom, dest, live, persistent, undefine_source, suspend, timeout, auto_converge, progress,
                     job_timeout)
    finally:
        dest.close()


def _offline(dom, dest, undefine_source: bool) -> dict:
    ref = dom.refresh()
    if not ref.persistent:
        raise OperationInvalid("Requested operation is not valid: cannot migrate a transient domain offline")
    xml = dom.xml(inactive=True)
    dest.define_xml(xml)
    if undefine_source:
        if ref.active:
            raise OperationInvalid("Requested operation is not valid: domain is running; "
                                   "--undefinesource needs it shut off for an offline migration")
        dom.undefine()
    return {"name": dom.name, "offline": True, "persistent": True, "source_undefined": bool(undefine_source)}


def _live(dom, dest, live, persistent, undefine_source, suspend, timeout, auto_converge, progress,
          job_timeout) -> dict:
    from vsh.api.local.launch import launch
    from vsh.api.local.saves import check_not_running, progress_thread
    from vsh.core.domain import Domain
    from vsh.kvm import client

    src_store = dom.store
    ref = dom.refresh()
    rundir = src_store.runtime_dir(ref.name)
    st = client.read_state(rundir) or {}
    if not ref.active or st.get("state") not in ("running", "paused"):
        raise OperationInvalid("Requested operation is not valid: domain is not running")
    live_dom = src_store.load(ref)
    live_dom.id = None
    for el in live_dom.node.findall("./devices/graphics"):     # the destination names its own sockets
        el.attrib.pop("socket", None)
        for listen in el.findall("listen[@socket]"):
            listen.attrib.pop("socket")
    was_persistent = check_not_running(dest.store, live_dom)
    defined_here = False
    if persistent and not was_persistent:
        config = Domain.parse(dom.xml(inactive=True)) if ref.persistent else live_dom.copy()
        dest.store.define(config)
        defined_here = True
    sock = os.path.join(dest.store.runtime_path(live_dom.name), MIGRATE_SOCKET)
    if len(sock) > 107:
        raise InvalidArgument(f"the destination's runtime directory is too deep for a unix socket: {sock}")
    try:
        os.unlink(sock)                 # a socket an earlier incoming migration left behind
    except FileNotFoundError:
        pass
    paused = suspend or st.get("state") == "paused"
    first_run = {"incoming": {"uri": f"unix:{sock}", "timeout": job_timeout},
                 "running_reason": "migrated", "paused_reason": "migration", "drop_argv": ["-incoming", "defer"]}
    outcome: dict = {}

    def run_destination():
        try:
            outcome["state"] = launch(dest.store, live_dom, transient=not (persistent or was_persistent),
                                      paused=paused, extra_argv=["-incoming", "defer"], first_run=first_run)
        except BaseException as exc:        # reported by the migrating thread
            outcome["error"] = exc

    thread = threading.Thread(target=run_destination, name="vsh-migrate-destination", daemon=True)
    thread.start()
    try:
        _wait_for_socket(sock, thread, outcome)
        stop = progress_thread(rundir, progress) if progress else None
        try:
            figures = client.migrate_out(rundir, f"unix:{sock}", live=live, auto_converge=auto_converge,
                                         suspend_after=timeout, timeout=job_timeout)
        finally:
            if stop:
                stop()
    except BaseException:
        _abandon_destination(dest, live_dom.name, thread, defined_here)
        raise
    thread.join(timeout=120.0)
    if "error" in outcome:          # the source has stopped; the guest is where QEMU left it
        err = outcome["error"]
        raise VshError("operation failed: the destination did not take over the migrated domain",
                       *(err.lines if isinstance(err, VshError) else [str(err)]))
    if undefine_source and ref.persistent:
        try:
            src_store.undefine(src_store.get(ref.name))
        except NotFound:
            pass
    if progress:
        progress(100)
    return {"name": live_dom.name, "offline": False, "persistent": bool(persistent or was_persistent),
            "source_undefined": bool(undefine_source and ref.persistent),
            "downtime_ms": figures.get("downtime_ms"), "total_ms": figures.get("total_ms"),
            "transferred": figures.get("transferred"), "iterations": figures.get("iterations")}


def _wait_for_socket(sock: str, thread, outcome: dict) -> None:
    """Wait until the destination's QEMU listens (or its launch failed)."""
    deadline = time.monotonic() + SOCKET_WAIT
    while not os.path.exists(sock):
        if not thread.is_alive():
            thread.join()
            err = outcome.get("error")
            if isinstance(err, VshError):
                raise err.with_context("operation failed: the destination could not start the domain")
            raise VshError("operation failed: the destination could not start the domain", str(err))
        if time.monotonic() > deadline:
            from vsh.core.errors import Timeout

            raise Timeout(f"the destination's QEMU did not listen on {sock} within {SOCKET_WAIT:g} s")
        time.sleep(0.02)


def _abandon_destination(dest, name: str, thread, defined_here: bool) -> None:
    """A migration that failed: stop the half-started destination, forget what was defined there."""
    from vsh.kvm import client

    ref = dest.store.find(name)
    if ref is not None and ref.active:
        try:
            client.destroy(dest.store.runtime_dir(name))
        except VshError:
            pass
    thread.join(timeout=60.0)
    if defined_here:
        try:
            dest.store.undefine(dest.store.get(name))
        except VshError:
            pass


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
