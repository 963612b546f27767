"""Migration: ``migrate`` (a domain moves to another connection) and the migration tunables of a
running domain (``migrate-setmaxdowntime`` and friends), thin over ``dom.migrate`` and
``dom.migration_parameters``."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, VshError
from vsh.core.output import Text
from vsh.registry import Opt, command

DOMAIN = Opt("domain", kind="domain", required=True, positional=True, help="domain name, id or uuid")


@command("migrate", group="domain", summary="migrate domain to another host", mutating=True,
         opts=[Opt("live", kind="bool", help="live migration"),
               Opt("offline", kind="bool", help="offline migration"),
               Opt("p2p", kind="bool", help="peer-2-peer migration (vsh has no daemon: it always migrates from this process)"),
               Opt("direct", kind="bool", help="direct migration (the same here)"),
               Opt("tunnelled", kind="bool", help="tunnelled migration"),
               Opt("persistent", kind="bool", help="persist VM on destination"),
               Opt("undefinesource", kind="bool", help="undefine VM on source"),
               Opt("suspend", kind="bool", help="do not restart the domain on the destination host"),
               Opt("copy-storage-all", kind="bool", help="migration with non-shared storage with full disk copy"),
               Opt("verbose", kind="bool", help="display the progress of migration"),
               Opt("auto-converge", kind="bool", help="force convergence during live migration"),
               DOMAIN,
               Opt("desturi", kind="string", required=True, positional=True,
                   help="connection URI of the destination host as seen from the client(normal migration) "
                        "or source(p2p migration)"),
               Opt("timeout", kind="int",
                   help="run action specified by --timeout-* option (suspend by default) if live migration "
                        "exceeds timeout (in seconds)"),
               Opt("timeout-suspend", kind="bool", help="suspend the guest after timeout"),
               Opt("dname", kind="string", help="rename to new name during migration (if supported)"),
               Opt("xml", kind="file", help="filename containing updated XML for the target")],
         examples=("migrate --live --persistent --undefinesource vm1 'vsh:///session?root=/srv/vsh-b'",
                   "migrate --live --verbose vm1 vsh+ssh://root@host2/system",
                   "migrate --live --copy-storage-all --xml vm1-there.xml vm1 vsh+ssh://host2/session",
                   "migrate --offline --persistent vm1 vsh:///system"),
         description="Move the domain to the connection DESTURI. A running domain moves with its memory\n"
                     "through QEMU's own migration over a unix socket (no TCP port): with --live the guest\n"
                     "keeps running during the transfer, without it the guest is paused for it; it ends\n"
                     "'shut off (migrated)' here and runs there (paused with --suspend). --persistent\n"
                     "defines it there too, --undefinesource removes the definition here; --offline\n"
                     "(with --persistent) copies the definition only. --timeout N pauses the guest\n"
                     "after N seconds so that the transfer converges; --auto-converge throttles its\n"
                     "vCPUs instead. --verbose shows 'Migration: [ NN %]' on stderr. A failed migration\n"
                     "leaves the domain running here as before and nothing there. The destination is\n"
                     "another vsh store on this host (vsh:///session?root=DIR, vsh:///system) or a remote\n"
                     "vsh (vsh+ssh://[user@]host/session or /system): the remote vsh prepares the\n"
                     "domain and the stream goes through an OpenSSH unix-socket forward on a second ssh\n"
                     "connection. Storage is shared (the destination opens the same disk paths) unless\n"
                     "--copy-storage-all: then the writable disks are mirrored while the guest runs into\n"
                     "the files the destination's XML names (made there when missing: same format and\n"
                     "size) through QEMU's NBD server on a unix socket there, forwarded the same way.\n"
                     "--xml FILE gives the domain's XML at the destination (same name, UUID and disk\n"
                     "targets; other disk files).")
def migrate(ctx, domain, desturi, live=False, offline=False, p2p=False, direct=False, tunnelled=False,
            persistent=False, undefinesource=False, suspend=False, copy_storage_all=False, verbose=False,
            auto_converge=False, timeout=None, timeout_suspend=False, dname=None, xml=None):
    if timeout_suspend and timeout is None:
        raise InvalidArgument("Option --timeout-suspend requires --timeout")
    if timeout is not None and not live:
        raise InvalidArgument("migrate: Unexpected timeout for offline migration")
    if tunnelled and not p2p:
        raise InvalidArgument("Option --tunnelled requires --p2p")
    if dname is not None:
        raise VshError("Requested operation is not valid: vsh keeps the domain's name when it migrates "
                       "(--dname)")
    dest_xml = None
    if xml is not None:
        from vsh.core.inputfile import read_input_file

        dest_xml = read_input_file(xml).decode("utf-8", "surrogateescape")
    dom = ctx.conn.lookup_domain(domain)
    progress = None
    if verbose and not offline:
        from vsh.ui.progress import JobProgress

        progress = JobProgress(ctx, "Migration").show
    try:
        result = dom.migrate(desturi, live=live, offline=offline, persistent=persistent,
                             undefine_source=undefinesource, copy_storage=copy_storage_all, suspend=suspend,
                             timeout=timeout, auto_converge=auto_converge, progress=progress,
                             **({"dest_xml": dest_xml} if dest_xml is not None else {}))
    finally:
        if progress is not None:
            ctx.err.write("\n")
    return Text("", json_data=result)


@command("migrate-setmaxdowntime", group="domain", summary="set maximum tolerable downtime", mutating=True,
         opts=[DOMAIN, Opt("downtime", kind="int", required=True,
                           help="maximum tolerable downtime (in milliseconds) for migration")])
def migrate_setmaxdowntime(ctx, domain, downtime):
    if downtime < 1:
        raise InvalidArgument("migrate-setmaxdowntime: Invalid downtime")
    ctx.conn.lookup_domain(domain).set_migration_parameters(downtime_ms=downtime)
    return Text("", json_data={"downtime_ms": downtime})


@command("migrate-getmaxdowntime", group="domain", summary="get maximum tolerable downtime", opts=[DOMAIN])
def migrate_getmaxdowntime(ctx, domain):
    params = ctx.conn.lookup_domain(domain).migration_parameters(["downtime_ms"])
    return Text(f"{params['downtime_ms']}\n", json_data={"downtime_ms": params["downtime_ms"]})


@command("migrate-setspeed", group="domain", summary="Set the maximum migration bandwidth", mutating=True,
         opts=[DOMAIN, Opt("bandwidth", kind="int", required=True, help="migration bandwidth limit in MiB/s"),
               Opt("postcopy", kind="bool", help="set post-copy migration bandwidth")])
def migrate_setspeed(ctx, domain, bandwidth, postcopy=False):
    key = "postcopy_bandwidth_mib" if postcopy else "bandwidth_mib"
    ctx.conn.lookup_domain(domain).set_migration_parameters(**{key: bandwidth})
    return Text("", json_data={key: bandwidth})


@command("migrate-getspeed", group="domain", summary="Get the maximum migration bandwidth",
         opts=[DOMAIN, Opt("postcopy", kind="bool", help="get post-copy migration bandwidth")])
def migrate_getspeed(ctx, domain, postcopy=False):
    key = "postcopy_bandwidth_mib" if postcopy else "bandwidth_mib"
    params = ctx.conn.lookup_domain(domain).migration_parameters([key])
    return Text(f"{params[key]}\n", json_data={key: params[key]})


@command("migrate-compcache", group="domain", summary="get/set compression cache size", mutating=True,
         opts=[DOMAIN, Opt("size", kind="scaled", help="requested size of the cache (in bytes) used for compression")])
def migrate_compcache(ctx, domain, size=None):
    from vsh.core.output import human_size

    dom = ctx.conn.lookup_domain(domain)
    if size is not None:
        dom.set_migration_parameters(compression_cache=size)
    value = dom.migration_parameters(["compression_cache"])["compression_cache"]
    return Text(f"Compression cache: {human_size(value, 3)}\n", json_data={"compression_cache": value})


@command("migrate-postcopy", group="domain", summary="Switch running migration from pre-copy to post-copy",
         opts=[DOMAIN], mutating=True)
def migrate_postcopy(ctx, domain):
    ctx.conn.lookup_domain(domain).start_postcopy()
    return Text("", json_data={})
