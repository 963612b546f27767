"""Storage pools and volumes (virsh's "pool" and "volume" groups) through ``ctx.conn.storage`` (vsh.api.storage).

Every connection has a directory pool ``default`` on ``<data>/images``, defined,
marked autostart and made the first time its pools are used. Volumes are named
by name with ``--pool`` (or as the first argument of vol-list/vol-create-as), or
by key or path, which are the same thing for directory pools.

Long operations (vol-upload, vol-download, vol-wipe, vol-clone) draw a progress
bar on stderr when stderr is a terminal, and stay quiet otherwise.
"""

from __future__ import annotations

import os
import sys
import time

from vsh.core.errors import InvalidArgument, NotFound, VshError
from vsh.core.escape import escape
from vsh.core.output import KeyValue, Message, Table, Text, human_size
from vsh.registry import Opt, command
from vsh.ui.xmlout import xml_output

POOL = Opt("pool", kind="pool", required=True, positional=True, help="pool name or uuid")
VOL = Opt("vol", kind="volume", required=True, positional=True, help="vol name, key or path")
VOL_POOL = Opt("pool", kind="pool", help="pool name or uuid")
_YES_NO = {True: "yes", False: "no"}
_SIZES = ("capacity", "allocation", "available")


def _read(file: str) -> bytes:
    from vsh.core.inputfile import read_input_file

    return read_input_file(file)


def _err_stream(ctx):
    return getattr(ctx, "err", None) or sys.stderr


def _on_terminal(ctx) -> bool:
    stream = _err_stream(ctx)
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressBar:
    """``label [#####.....]  45%  230.0 MiB/512.0 MiB`` redrawn at most ten times a second."""

    def __init__(self, stream, label: str):
        self.stream = stream
        self.label = label
        self.total = None
        self.last = 0.0
        self.done = 0
        self.started = time.monotonic()

    def start(self, total) -> None:
        self.total = total
        self.started = time.monotonic()
        self._draw(0)

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if now - self.last >= 0.1:
            self.last = now
            self._draw(done)

    def finish(self) -> None:
        self._draw(self.total if self.total is not None else self.done)
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self, done: int) -> None:
        try:
            width = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, AttributeError, ValueError):
            width = 0
        if width <= 20:
            width = 80
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = f"{human_size(done / elapsed, 1)}/s"
        if self.total:
            frac = min(done / self.total, 1.0)
            tail = f" {frac * 100:3.0f}% {human_size(done, 1):>10}/{human_size(self.total, 1)} {rate:>12}"
            bar_width = max(width - len(self.label) - len(tail) - 4, 10)
            filled = int(bar_width * frac)
            line = f"{self.label} [{'#' * filled}{'.' * (bar_width - filled)}]{tail}"
        else:
            line = f"{self.label} {human_size(done, 1)} {rate}"
        self.stream.write("\r" + line[:max(width - 1, 20)])
        self.stream.flush()

    def fileno(self) -> int:
        """The terminal's descriptor (flushed first), for a tool that draws its own progress."""
        self.stream.flush()
        return self.stream.fileno()


def _progress(ctx, label: str):
    return ProgressBar(_err_stream(ctx), label) if _on_terminal(ctx) else None


# -- pools -----------------------------------------------------------------------------------------


@command("pool-define", group="pool", summary="define (but don't start) a pool from an XML file",
         opts=[Opt("file", kind="file", required=True, positional=True, help="file containing an XML pool description")],
         mutating=True)
def pool_define(ctx, file):
    """Define a pool from libvirt's <pool> XML (type 'dir'); the same name and UUID redefine it."""
    data = _read(file)
    try:
        obj = ctx.conn.storage.define_pool_xml(data)
    except VshError as err:
        raise err.with_context(f"Failed to define pool from {file}") from None
    return Message(f"Pool {obj.name} defined from {file}", json_data=obj.info())


@command("pool-build", group="pool", summary="build a pool",
         opts=[POOL], mutating=True)
def pool_build(ctx, pool):
    """Create the pool's directory (0700 unless its definition gives permissions)."""
    obj = ctx.conn.storage.lookup_pool(pool)
    try:
        obj.build()
    except VshError as err:
        raise err.with_context(f"Failed to build pool {pool}") from None
    return Message(f"Pool {pool} built")


@command("pool-start", group="pool", summary="start a (previously defined) inactive pool",
         opts=[POOL, Opt("build", kind="bool", help="build the pool as normal")], mutating=True)
def pool_start(ctx, pool, build=False):
    obj = ctx.conn.storage.lookup_pool(pool)
    try:
        obj.start(build=build)
    except VshError as err:
        raise err.with_context(f"Failed to start pool {pool}") from None
    return Message(f"Pool {pool} started")


@command("pool-destroy", group="pool", summary="destroy (stop) a pool", opts=[POOL], mutating=True)
def pool_destroy(ctx, pool):
    """Stop a pool; its directory and volumes are untouched."""
    obj = ctx.conn.storage.lookup_pool(pool)
    try:
        obj.destroy()
    except VshError as err:
        raise err.with_context(f"Failed to destroy pool {pool}") from None
    return Message(f"Pool {pool} destroyed")


@command("pool-undefine", group="pool", summary="undefine an inactive pool", opts=[POOL], mutating=True)
def pool_undefine(ctx, pool):
    """Remove an inactive pool's definition; its directory and volumes stay on disk."""
    obj = ctx.conn.storage.lookup_pool(pool)
    try:
        obj.undefine()
    except VshError as err:
        raise err.with_context(f"Failed to undefine pool {pool}") from None
    return Message(f"Pool {pool} has been undefined")


@command("pool-refresh", group="pool", summary="refresh a pool", opts=[POOL], mutating=True)
def pool_refresh(ctx, pool):
    """vsh reads volumes live: this checks the pool's directory and removes leftovers of interrupted creates."""
    obj = ctx.conn.storage.lookup_pool(pool)
    try:
        obj.refresh()
    except VshError as err:
        raise err.with_context(f"Failed to refresh pool {pool}") from None
    return Message(f"Pool {pool} refreshed")


@command("pool-autostart", group="pool", summary="autostart a pool",
         opts=[POOL, Opt("disable", kind="bool", help="disable autostarting")], mutating=True)
def pool_autostart(ctx, pool, disable=False):
    """Mark a pool to be active after the host boots (vsh starts it on first use after a boot)."""
    obj = ctx.conn.storage.lookup_pool(pool)
    try:
        obj.set_autostart(not disable)
    except VshError as err:
        raise err.with_context(f"failed to {'unmark' if disable else 'mark'} pool {pool} as autostarted") from None
    if disable:
        return Message(f"Pool {pool} unmarked as autostarted")
    return Message(f"Pool {pool} marked as autostarted")


@command("pool-list", group="pool", summary="list pools",
         opts=[Opt("inactive", kind="bool", help="list inactive pools"),
               Opt("all", kind="bool", help="list inactive & active pools"),
               Opt("transient", kind="bool", help="list transient pools"),
               Opt("persistent", kind="bool", help="list persistent pools"),
               Opt("autostart", kind="bool", help="list pools with autostart enabled"),
               Opt("no-autostart", kind="bool", help="list pools with autostart disabled"),
               Opt("type", help="only list pool of specified type(s) (comma-separated)"),
               Opt("details", kind="bool", help="display extended details for pools"),
               Opt("uuid", kind="bool", help="list UUID of active pools only"),
               Opt("name", kind="bool", help="list name of active pools only")],
         exclusive=(("all", "inactive"), ("details", "uuid"), ("details", "name")))
def pool_list(ctx, inactive=False, all=False, transient=False, persistent=False, autostart=False,
              no_autostart=False, type=None, details=False, uuid=False, name=False):
    from vsh.core.pools import POOL_TYPES

    types = None
    if type is not None:
        types = [t for t in type.split(",") if t]
        for t in types:
            if t not in POOL_TYPES:
                raise InvalidArgument(f"Invalid pool type '{t}'")
    rows = ctx.conn.storage.list_pools(active=None if all else not inactive,
                                       persistent=persistent if persistent != transient else None,
                                       autostart=autostart if autostart != no_autostart else None,
                                       types=types, sizes=details or ctx.json)
    if uuid or name:
        lines = []
        for pool in rows:
            if uuid and name:
                lines.append(f"{pool['uuid']:<36} {escape(pool['name']):<20}\n")
            elif uuid:
                lines.append(f"{pool['uuid']:<36}\n")
            else:
                lines.append(f"{escape(pool['name']):<20}\n")
        return Text("".join(lines), json_data=rows)
    if not details:
        table = [[escape(p["name"]), "active" if p["active"] else "inactive", _YES_NO[p["autostart"]]]
                 for p in rows]
        return Table(["Name", "State", "Autostart"], table, json_data=rows)
    table = []
    for pool in rows:
        row = [escape(pool["name"]), pool["state"], _YES_NO[pool["autostart"]], _YES_NO[pool["persistent"]]]
        if "capacity" in pool:
            row += [human_size(pool[key]) for key in _SIZES]
        elif pool["active"]:
            row += ["unknown"] * 3
        else:
            row += ["-", "-", "-"]
        table.append(row)
    return Table(["Name", "State", "Autostart", "Persistent", "Capacity", "Allocation", "Available"], table,
                 json_data=rows)


@command("pool-info", group="pool", summary="storage pool information",
         opts=[POOL, Opt("bytes", kind="bool", help="Return pool info in bytes")])
def pool_info(ctx, pool, bytes=False):
    info = ctx.conn.storage.lookup_pool(pool).info()
    pairs = [("Name", escape(info["name"])), ("UUID", info["uuid"]), ("State", info["state"]),
             ("Persistent", _YES_NO[info["persistent"]]), ("Autostart", _YES_NO[info["autostart"]])]
    if info["active"]:
        for key in _SIZES:
            pairs.append((key.capitalize(), str(info[key]) if bytes else human_size(info[key])))
    return KeyValue(pairs, json_data=info)


@command("pool-dumpxml", group="pool", summary="pool information in XML",
         opts=[POOL, Opt("inactive", kind="bool", help="show inactive defined XML"),
               Opt("xpath", kind="xpath", help="xpath expression to filter the XML document"),
               Opt("wrap", kind="bool", help="wrap xpath results in an common root element")])
def pool_dumpxml(ctx, pool, inactive=False, xpath=None, wrap=False):
    return xml_output(ctx.conn.storage.lookup_pool(pool).xml(inactive=inactive), xpath, wrap, "pool")


@command("pool-uuid", group="pool", summary="convert a pool name to pool UUID",
         opts=[Opt("pool", kind="pool", required=True, positional=True, help="pool name")])
def pool_uuid(ctx, pool):
    obj = ctx.conn.storage.lookup_pool_by_name(pool)
    return Text(f"{obj.uuid}\n", json_data={"uuid": obj.uuid})


@command("pool-name", group="pool", summary="convert a pool UUID to pool name",
         opts=[Opt("pool", kind="pool", required=True, positional=True, help="pool uuid")])
def pool_name(ctx, pool):
    obj = ctx.conn.storage.lookup_pool_by_uuid(pool)
    return Text(f"{obj.name}\n", json_data={"name": obj.name})


# -- volumes ---------------------------------------------------------------------------------------


def _lookup(ctx, vol, pool=None):
    """virsh's volume lookup: by name in --pool, then by key or path."""
    try:
        return ctx.conn.storage.lookup_volume(vol, pool)
    except NotFound as err:
        if pool is not None:
            raise
        raise NotFound(f"failed to get vol '{vol}', specifying --pool might help", *err.lines[1:]) from None


@command("vol-create-as", group="volume", summary="create a volume from a set of args",
         opts=[Opt("pool", kind="pool", required=True, positional=True, help="pool name"),
               Opt("name", required=True, positional=True, help="name of the volume"),
               Opt("capacity", required=True, positional=True,
                   help="size of the vol, as scaled integer (default bytes)"),
               Opt("allocation", help="initial allocation size, as scaled integer (default bytes); "
                                      "raw volumes default to their capacity"),
               Opt("format", kind="enum", choices=("raw", "qcow2"), help="file format type"),
               Opt("backing-vol", kind="volume", help="the backing volume (name in the pool, key or path)"),
               Opt("backing-vol-format", kind="enum", choices=("raw", "qcow2"),
                   help="format of the backing volume (required with --backing-vol; never probed)"),
               Opt("prealloc-metadata", kind="bool", help="preallocate metadata (for qcow2 instead of full allocation)"),
               Opt("print-xml", kind="bool", help="print XML document, but don't define/create")],
         mutating=True,
         examples=("vol-create-as default vm1.img 10G --allocation 0",
                   "vol-create-as default overlay.qcow2 10G --format qcow2 --backing-vol base.qcow2 "
                   "--backing-vol-format qcow2"))
def vol_create_as(ctx, pool, name, capacity, allocation=None, format=None, backing_vol=None,
                  backing_vol_format=None, prealloc_metadata=False, print_xml=False):
    """Create a volume: raw (fully allocated unless --allocation says less) or qcow2 (qemu-img)."""
    from vsh.core.pools import parse_size

    obj = ctx.conn.storage.lookup_pool(pool)
    size = parse_size(capacity)
    alloc = parse_size(allocation) if allocation is not None else None
    backing_path = None
    if backing_vol is not None:
        try:
            backing_path = obj.lookup_volume(backing_vol).path
        except NotFound:
            backing_path = ctx.conn.storage.lookup_volume(backing_vol).path
    spec = (name, size, alloc, format, backing_path, backing_vol_format)
    if print_xml:
        text = obj.volume_xml_as(*spec)
        return Text(text, json_data={"xml": text})
    try:
        vol = obj.create_volume_as(*spec, prealloc_metadata=prealloc_metadata)
    except VshError as err:
        raise err.with_context(f"Failed to create vol {name}") from None
    return Message(f"Vol {name} created", json_data=vol.info())


@command("vol-create", group="volume", summary="create a vol from an XML file",
         opts=[Opt("pool", kind="pool", required=True, positional=True, help="pool name"),
               Opt("file", kind="file", required=True, positional=True, help="file containing an XML vol description"),
               Opt("prealloc-metadata", kind="bool", help="preallocate metadata (for qcow2 instead of full allocation)")],
         mutating=True)
def vol_create(ctx, pool, file, prealloc_metadata=False):
    """Create a volume from libvirt's <volume> XML (formats raw and qcow2; a <backingStore> needs its <format>)."""
    obj = ctx.conn.storage.lookup_pool(pool)
    data = _read(file)
    try:
        vol = obj.create_volume_xml(data, prealloc_metadata=prealloc_metadata)
    except VshError as err:
        raise err.with_context(f"Failed to create vol from {file}") from None
    return Message(f"Vol {vol.name} created from {file}", json_data=vol.info())


@command("vol-clone", group="volume", summary="clone a volume",
         opts=[VOL, Opt("newname", required=True, positional=True, help="clone name"), VOL_POOL,
               Opt("prealloc-metadata", kind="bool", help="preallocate metadata (for qcow2 instead of full allocation)")],
         mutating=True)
def vol_clone(ctx, vol, newname, pool=None, prealloc_metadata=False):
    """Copy a volume within its pool with qemu-img convert (explicit formats; an overlay keeps its backing file)."""
    obj = _lookup(ctx, vol, pool)
    try:
        new = obj.clone(newname, prealloc_metadata=prealloc_metadata, progress=_progress(ctx, f"clone {obj.name}"))
    except VshError as err:
        raise err.with_context(f"Failed to clone vol from {obj.name}") from None
    return Message(f"Vol {new.name} cloned from {obj.name}", json_data=new.info())


@command("vol-delete", group="volume", summary="delete a vol", opts=[VOL, VOL_POOL], mutating=True)
def vol_delete(ctx, vol, pool=None):
    """Delete a volume; a volume that a running domain uses is refused."""
    obj = _lookup(ctx, vol, pool)
    try:
        obj.delete()
    except VshError as err:
        raise err.with_context(f"Failed to delete vol {vol}") from None
    return Message(f"Vol {vol} deleted", json_data={"name": obj.name, "path": obj.path})


@command("vol-list", group="volume", summary="list vols",
         opts=[Opt("pool", kind="pool", required=True, positional=True, help="pool name or uuid"),
               Opt("details", kind="bool", help="display extended details for volumes")])
def vol_list(ctx, pool, details=False):
    obj = ctx.conn.storage.lookup_pool(pool)
    try:
        vols = obj.list_volumes(details=details)
    except VshError as err:
        raise err.with_context("Failed to list volumes") from None
    if not details:
        return Table(["Name", "Path"], [[v["name"], v["path"]] for v in vols], json_data=vols)
    rows = [[v["name"], v["path"], v["type"], human_size(v["capacity"]), human_size(v["allocation"])] for v in vols]
    return Table(["Name", "Path", "Type", "Capacity", "Allocation"], rows, json_data=vols)


@command("vol-info", group="volume", summary="storage vol information",
         opts=[VOL, VOL_POOL, Opt("bytes", kind="bool", help="sizes are represented in bytes rather than pretty units"),
               Opt("physical", kind="bool", help="return the physical size of the volume in allocation field")])
def vol_info(ctx, vol, pool=None, bytes=False, physical=False):
    info = _lookup(ctx, vol, pool).info()
    second = info["physical"] if physical else info["allocation"]
    label = "Physical" if physical else "Allocation"
    if bytes:
        sizes = [("Capacity", f"{info['capacity']} bytes"), (label, f"{second} bytes")]
    else:
        sizes = [("Capacity", human_size(info["capacity"])), (label, human_size(second))]
    return KeyValue([("Name", info["name"]), ("Type", info["type"])] + sizes, json_data=info)


@command("vol-path", group="volume", summary="returns the volume path for a given volume name or key",
         opts=[Opt("vol", kind="volume", required=True, positional=True, help="volume name or key"), VOL_POOL])
def vol_path(ctx, vol, pool=None):
    obj = _lookup(ctx, vol, pool)
    return Text(f"{obj.path}\n", json_data={"path": obj.path})


@command("vol-key", group="volume", summary="returns the volume key for a given volume name or path",
         opts=[Opt("vol", kind="volume", required=True, positional=True, help="volume name or path"), VOL_POOL])
def vol_key(ctx, vol, pool=None):
    obj = _lookup(ctx, vol, pool)
    return Text(f"{obj.key}\n", json_data={"key": obj.key})


@command("vol-name", group="volume", summary="returns the volume name for a given volume key or path",
         opts=[Opt("vol", kind="volume", required=True, positional=True, help="volume key or path")])
def vol_name(ctx, vol):
    obj = ctx.conn.storage.lookup_volume(vol)
    return Text(f"{obj.name}\n", json_data={"name": obj.name})


@command("vol-pool", group="volume", summary="returns the storage pool for a given volume key or path",
         opts=[Opt("vol", kind="volume", required=True, positional=True, help="volume key or path"),
               Opt("uuid", kind="bool", help="return the pool uuid rather than pool name")])
def vol_pool(ctx, vol, uuid=False):
    owner = ctx.conn.storage.lookup_volume(vol).pool()
    return Text(f"{owner.uuid if uuid else owner.name}\n", json_data={"pool": owner.name, "uuid": owner.uuid})


@command("vol-dumpxml", group="volume", summary="vol information in XML",
         opts=[VOL, VOL_POOL,
               Opt("xpath", kind="xpath", help="xpath expression to filter the XML document"),
               Opt("wrap", kind="bool", help="wrap xpath results in an common root element")])
def vol_dumpxml(ctx, vol, pool=None, xpath=None, wrap=False):
    return xml_output(_lookup(ctx, vol, pool).xml(), xpath, wrap, "volume")


@command("vol-resize", group="volume", summary="resize a vol",
         opts=[VOL, Opt("capacity", required=True, positional=True,
                        help="new capacity for the vol, as scaled integer (default bytes)"),
               VOL_POOL,
               Opt("allocate", kind="bool", help="allocate the new capacity, rather than leaving it sparse"),
               Opt("delta", kind="bool", help="use capacity as a delta to current size, rather than the new size"),
               Opt("shrink", kind="bool", help="allow the resize to shrink the volume")],
         mutating=True, examples=("vol-resize vm1.img 20G --pool default", "vol-resize vm1.img +1G --pool default --delta"))
def vol_resize(ctx, vol, capacity, pool=None, allocate=False, delta=False, shrink=False):
    """Resize with qemu-img resize -f FORMAT; safe only for volumes no running guest uses (refused otherwise)."""
    from vsh.core.pools import parse_size

    obj = _lookup(ctx, vol, pool)
    text = capacity.strip()
    if text.startswith("-"):
        if not shrink:
            raise InvalidArgument("negative size requires --shrink")
        text = text[1:]
        delta = True
    elif text.startswith("+"):
        text = text[1:]
        delta = True
    size = parse_size(text)
    word = "by" if delta else "to"
    try:
        new = obj.resize(size, delta=delta, shrink=shrink, allocate=allocate)
    except VshError as err:
        raise err.with_context(f"Failed to change size of volume '{obj.name}' {word} {text}") from None
    return Message(f"Size of volume '{obj.name}' successfully changed {word} {text}",
                   json_data={"name": obj.name, "capacity": new})


@command("vol-wipe", group="volume", summary="wipe a vol",
         opts=[VOL, VOL_POOL, Opt("algorithm", kind="enum", choices=("zero",), help="perform selected wiping algorithm")],
         mutating=True)
def vol_wipe(ctx, vol, pool=None, algorithm=None):
    """Zero a volume: raw data is overwritten with zeroes (holes stay holes); a qcow2 volume is made empty."""
    obj = _lookup(ctx, vol, pool)
    try:
        obj.wipe(progress=_progress(ctx, f"wipe {obj.name}"))
    except VshError as err:
        raise err.with_context(f"Failed to wipe vol {vol}") from None
    return Message(f"Vol {vol} wiped", json_data={"name": obj.name, "path": obj.path})


_TRANSFER = [Opt("offset", kind="int", help="volume offset in bytes"),
             Opt("length", kind="int", help="amount of data in bytes (0 or none: to the end)"),
             Opt("sparse", kind="bool", help="preserve sparseness of volume")]


@command("vol-upload", group="volume", summary="upload file contents to a volume",
         opts=[VOL, Opt("file", kind="file", required=True, positional=True, help="file"), VOL_POOL] + _TRANSFER,
         mutating=True)
def vol_upload(ctx, vol, file, pool=None, offset=None, length=None, sparse=False):
    """Write a file's bytes into a volume at --offset (the volume is not truncated); --sparse punches holes."""
    obj = _lookup(ctx, vol, pool)
    done = obj.upload(file, offset or 0, length or None, sparse=sparse, progress=_progress(ctx, f"upload {obj.name}"))
    return Text("", json_data={"name": obj.name, "bytes": done})


@command("vol-download", group="volume", summary="download volume contents to a file",
         opts=[VOL, Opt("file", kind="file", required=True, positional=True, help="file"), VOL_POOL] + _TRANSFER,
         mutating=True)
def vol_download(ctx, vol, file, pool=None, offset=None, length=None, sparse=False):
    """Copy a volume's bytes into a file (made 0600 if new, truncated if it exists); --sparse keeps holes."""
    obj = _lookup(ctx, vol, pool)
    done = obj.download(file, offset or 0, length or None, sparse=sparse,
                        progress=_progress(ctx, f"download {obj.name}"))
    return Text("", json_data={"name": obj.name, "bytes": done})
