"""Making and changing storage pool definitions (virsh's "pool" group): pool-define-as,
pool-create-as, pool-create and pool-edit, through ``ctx.conn.storage`` (vsh.api.storage).

A pool made by pool-create or pool-create-as is transient: it is active at once and its
definition goes away when it is destroyed (or the host reboots). The other pool commands
are in :mod:`vsh.commands.storage`.
"""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, VshError
from vsh.core.output import Message, Text
from vsh.registry import Opt, command

POOL_AS_OPTS = [
    Opt("name", required=True, positional=True, help="name of the pool"),
    Opt("type", required=True, positional=True, help="type of the pool (vsh has 'dir' pools)"),
    Opt("source-host", positional=True, help="source-host for underlying storage ('-' or empty for dir pools)"),
    Opt("source-path", positional=True, help="source path for underlying storage ('-' or empty for dir pools)"),
    Opt("source-dev", positional=True, help="source device for underlying storage ('-' or empty for dir pools)"),
    Opt("source-name", positional=True, help="source name for underlying storage ('-' or empty for dir pools)"),
    Opt("target", kind="dir", positional=True, help="target for underlying storage (the pool's directory)"),
    Opt("source-format", help="format for underlying storage (not used by dir pools)"),
    Opt("print-xml", kind="bool", help="print XML document, but don't define/create"),
]
BUILD_OPTS = [
    Opt("build", kind="bool", help="build the pool as normal"),
    Opt("no-overwrite", kind="bool", help="do not overwrite any existing data (a dir pool's build never does)"),
    Opt("overwrite", kind="bool", help="overwrite any existing data (a dir pool's build only makes its directory)"),
]


def _pool_as(ctx, verb: str, name, type, sources: dict, target, print_xml: bool, build: bool = False):
    """What pool-define-as and pool-create-as share: the checks, --print-xml, the call."""
    from vsh.core.pools import check_pool_type

    failed = f"Failed to {verb} pool {name}"
    try:
        check_pool_type(type)
    except VshError as err:
        raise err.with_context(failed) from None
    for opt, value in sources.items():
        if value not in (None, "", "-"):
            raise InvalidArgument(failed, f"unsupported configuration: --{opt} is not used by '{type}' pools")
    storage = ctx.conn.storage
    try:
        if print_xml:
            text = storage.pool_xml_as(name, type, target)
            return Text(text, json_data={"xml": text})
        if verb == "define":
            obj = storage.define_pool_as(name, type, target)
        else:
            obj = storage.create_pool_as(name, type, target, build=build)
    except VshError as err:
        raise err.with_context(failed) from None
    return Message(f"Pool {name} {verb}d", json_data=obj.info())


@command("pool-define-as", group="pool", summary="define a pool from a set of args", opts=POOL_AS_OPTS,
         mutating=True, examples=("pool-define-as images dir --target /srv/images",
                                  "pool-define-as images dir - - - - /srv/images"))
def pool_define_as(ctx, name, type, source_host=None, source_path=None, source_dev=None, source_name=None,
                   target=None, source_format=None, print_xml=False):
    """Define a directory pool; it is not built or started (see pool-build, pool-start)."""
    sources = {"source-host": source_host, "source-path": source_path, "source-dev": source_dev,
               "source-name": source_name, "source-format": source_format}
    return _pool_as(ctx, "define", name, type, sources, target, print_xml)


@command("pool-create-as", group="pool", summary="create a pool from a set of args",
         opts=[*POOL_AS_OPTS, *BUILD_OPTS], exclusive=(("overwrite", "no-overwrite"),), mutating=True,
         examples=("pool-create-as scratch dir --target /tmp/scratch --build",),
         description="Create and start a transient directory pool: it is active at once and its\n"
                     "definition goes away when it is destroyed (pool-define-as + pool-start keep one).\n"
                     "--build makes the directory first.")
def pool_create_as(ctx, name, type, source_host=None, source_path=None, source_dev=None, source_name=None,
                   target=None, source_format=None, print_xml=False, build=False, no_overwrite=False,
                   overwrite=False):
    sources = {"source-host": source_host, "source-path": source_path, "source-dev": source_dev,
               "source-name": source_name, "source-format": source_format}
    return _pool_as(ctx, "create", name, type, sources, target, print_xml, build=build)


@command("pool-create", group="pool", summary="create a pool from an XML file",
         opts=[Opt("file", kind="file", required=True, positional=True,
                   help="file containing an XML pool description"), *BUILD_OPTS],
         exclusive=(("overwrite", "no-overwrite"),), mutating=True,
         examples=("pool-create scratch.xml --build",),
         description="Create and start a transient pool from libvirt's <pool> XML (type 'dir').")
def pool_create(ctx, file, build=False, no_overwrite=False, overwrite=False):
    from vsh.core.inputfile import read_input_file

    data = read_input_file(file)
    try:
        obj = ctx.conn.storage.create_pool_xml(data, build=build)
    except VshError as err:
        raise err.with_context(f"Failed to create pool from {file}") from None
    return Message(f"Pool {obj.name} created from {file}", json_data=obj.info())


@command("pool-edit", group="pool", summary="edit XML configuration for a storage pool",
         opts=[Opt("pool", kind="pool", required=True, positional=True, help="pool name or uuid")],
         mutating=True, examples=("pool-edit default", "EDITOR=nano vsh pool-edit default"),
         description="Open the pool's inactive XML in $VISUAL or $EDITOR (default vi) and define the\n"
                     "result (a transient pool becomes persistent). An invalid result leaves the\n"
                     "definition unchanged; an active pool's directory cannot change.")
def pool_edit(ctx, pool):
    from vsh.ui.editor import edit_text

    obj = ctx.conn.storage.lookup_pool(pool)
    before = obj.xml(inactive=True)
    after = edit_text(before, f"the configuration of pool '{obj.name}'")
    if after == before:
        return Message(f"Pool {obj.name} XML configuration not changed.", json_data={"changed": False})
    try:
        new = ctx.conn.storage.define_pool_xml(after.encode("utf-8", "surrogateescape"))
    except VshError as err:
        failed = err.with_context("Failed.")
        failed.hint = err.hint or f"the configuration of pool '{obj.name}' is unchanged"
        raise failed from None
    return Message(f"Pool {new.name} XML configuration edited.", json_data={"changed": True, **new.info()})
