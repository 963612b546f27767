"""Changing a domain's configuration: edit, setmem, setmaxmem, setvcpus.

The persistent configuration is changed in the store (atomically, under the
domain's lock). A running domain is changed through its supervisor
(``vsh.kvm.client``); :func:`supervisor_call` is the one place where that
happens, so a missing supervisor operation gives one clear error.

Which of the two a command changes follows virsh and libvirt
(:func:`impact`): ``--config``, ``--live``, ``--current`` (live when running,
else config) and, with no flag, what the plain libvirt call does (live for
setmem and setvcpus, current for setmaxmem).
"""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, OperationInvalid, Unsupported, VshError
from vsh.core.output import Message, Text
from vsh.registry import Opt, command
from vsh.ui.editor import run_editor

DOMAIN = Opt("domain", kind="domain", required=True, positional=True, help="domain name, id or uuid")
CONFIG = Opt("config", kind="bool", help="affect next boot")
LIVE = Opt("live", kind="bool", help="affect running domain")
CURRENT = Opt("current", kind="bool", help="affect current domain")
EXCLUSIVE = (("current", "live"), ("current", "config"))


# -- shared by config.py and devices.py ------------------------------------------------------


def impact(ref, *, live: bool = False, config: bool = False, current: bool = False,
           persistent: bool = False, default: str = "live") -> tuple[bool, bool]:
    """Which definitions a change touches: ``(live, config)``.

    ``default`` is what no flag at all means: ``"live"`` for the calls virsh
    makes without flags (virDomainSetMemory, virDomainAttachDevice...), or
    ``"current"``. ``persistent`` (attach/detach) is config, plus live when running.
    """
    no_flag = not (live or config or current or persistent)
    if persistent:
        config = True
        live = live or ref.active
    if not (live or config):
        if current or default == "current":
            live, config = (True, False) if ref.active else (False, True)
        else:
            live = True
    if live and not ref.active:
        raise OperationInvalid("Requested operation is not valid: domain is not running",
                               hint="add --config to change the configuration used at the next boot"
                               if no_flag else None)
    if config and not ref.persistent:
        raise OperationInvalid("Requested operation is not valid: "
                               "transient domains do not have any persistent config")
    return live, config


def supervisor_call(ctx, ref, op: str, *args):
    """Run ``vsh.kvm.client.<op>(rundir, *args)`` for a running domain.

    This is where live changes reach the domain's supervisor. An operation the
    client does not offer (yet) is a clear error, never a silent no-op.
    """
    try:
        from vsh.kvm import client
    except ImportError:
        client = None
    fn = getattr(client, op, None) if client is not None else None
    if fn is None:
        raise OperationInvalid(
            f"Requested operation is not valid: changing running domain '{ref.name}' needs its "
            f"supervisor's '{op}' operation, which this vsh does not have yet",
            hint="use --config to change the configuration used at the next boot")
    return fn(ctx.store.runtime_dir(ref.name), *args)


def check_readonly(ctx, name: str) -> None:
    """For commands that are read-only in one mode (``--print-xml``) and not in the other."""
    if ctx.readonly:
        raise VshError(f"operation forbidden: read only access prevents {name}")


def check_config_change(store, ref, change) -> None:
    """Apply ``change`` to a copy of the persistent definition and check it, writing nothing.

    Called before a live change so that a change of both definitions does not stop
    half-way because the persistent one refuses it.
    """
    cfg = store.load(ref, inactive=True)
    change(cfg)
    cfg.fill_defaults()
    cfg.validate()


def change_config(store, ref, change):
    """Load the persistent definition, apply ``change``, check it, write it atomically.

    Runs under the domain's lock; on any error the stored file is left as it was.
    Returns the new definition.
    """
    with store.lock(ref.name):
        cfg = store.load(ref, inactive=True)
        change(cfg)
        cfg.fill_defaults()
        cfg.validate()
        store.write_config(cfg)
    return cfg


# -- setmem / setmaxmem / setvcpus ---------------------------------------------------------


SIZE = Opt("size", kind="scaled", required=True, positional=True,
           help="new memory size, as scaled integer (default KiB)")


@command("setmem", group="domain", summary="change memory allocation",
         opts=[DOMAIN, SIZE, CONFIG, LIVE, CURRENT], exclusive=EXCLUSIVE, mutating=True,
         description="Set the memory the guest may use (its balloon target); at most the domain's\n"
                     "maximum memory. Without --config, --live or --current the running domain is\n"
                     "changed, as virsh does.",
         examples=("setmem vm1 1G --config", "setmem vm1 524288 --current"))
def setmem(ctx, domain, size, config=False, live=False, current=False):
    store = ctx.store
    ref = store.get(domain)
    do_live, do_config = impact(ref, live=live, config=config, current=current)
    if size <= 0:
        raise InvalidArgument("invalid argument: memory size must not be zero")

    def change(cfg):
        cfg.set_current_memory_config(size)

    if do_live:
        if do_config:
            check_config_change(store, ref, change)
        livedom = store.load(ref)
        if size > (livedom.memory or 0):
            raise InvalidArgument("invalid argument: cannot set memory higher than max memory")
        balloon = livedom.node.find("./devices/memballoon")
        if balloon is not None and balloon.get("model") == "none":
            raise OperationInvalid("Requested operation is not valid: Unable to change memory of active domain "
                                   "without the balloon device and guest OS balloon driver")
        supervisor_call(ctx, ref, "set_balloon", size)
    if do_config:
        change_config(store, ref, change)
    return Text("", json_data={"domain": ref.name, "memory_kib": size, "live": do_live, "config": do_config})


@command("setmaxmem", group="domain", summary="change maximum memory limit",
         opts=[DOMAIN, Opt("size", kind="scaled", required=True, positional=True,
                           help="new maximum memory size, as scaled integer (default KiB)"),
               CONFIG, LIVE, CURRENT], exclusive=EXCLUSIVE, mutating=True,
         description="Set the domain's memory size (<memory>). A running domain cannot change it;\n"
                     "with a smaller size the current memory comes down too.",
         examples=("setmaxmem vm1 2G --config",))
def setmaxmem(ctx, domain, size, config=False, live=False, current=False):
    store = ctx.store
    ref = store.get(domain)
    try:
        do_live, do_config = impact(ref, live=live, config=config, current=current, default="current")
        if do_live:
            raise OperationInvalid("Requested operation is not valid: cannot resize the maximum memory on an "
                                   "active domain")
        if size <= 0:
            raise InvalidArgument("invalid argument: memory size must not be zero")
        change_config(store, ref, lambda cfg: cfg.set_memory_config(size))
    except VshError as err:
        raise err.with_context("Unable to change MaxMemorySize") from None
    return Text("", json_data={"domain": ref.name, "max_memory_kib": size, "live": False, "config": True})


@command("setvcpus", group="domain", summary="change number of virtual CPUs",
         opts=[DOMAIN, Opt("count", kind="int", required=True, positional=True, help="number of virtual CPUs"),
               Opt("maximum", kind="bool", help="set maximum limit on next boot"),
               CONFIG, LIVE, CURRENT,
               Opt("guest", kind="bool", help="modify cpu state in the guest"),
               Opt("hotpluggable", kind="bool", help="make added vcpus hot(un)pluggable")],
         exclusive=EXCLUSIVE + (("guest", "config"),), mutating=True,
         description="Set the number of virtual CPUs. With --maximum --config, set the most the domain\n"
                     "can have. A running domain gets vCPUs hot-plugged by its supervisor.",
         examples=("setvcpus vm1 2 --config", "setvcpus vm1 4 --config --maximum"))
def setvcpus(ctx, domain, count, maximum=False, config=False, live=False, current=False, guest=False,
             hotpluggable=False):
    if maximum and not config:
        raise InvalidArgument("Option --config is required by option --maximum")
    store = ctx.store
    ref = store.get(domain)
    if guest:
        raise Unsupported("setvcpus --guest needs a guest agent, which vsh does not use")
    do_live, do_config = impact(ref, live=live, config=config, current=current)
    if count < 1:
        raise InvalidArgument("invalid argument: vcpu count must not be zero")
    def change(cfg):
        cfg.set_vcpus_config(count, maximum=maximum, hotpluggable=hotpluggable)

    if do_live:
        if maximum:
            raise InvalidArgument("invalid argument: maximum vcpu count of a live domain can't be modified")
        if do_config:
            check_config_change(store, ref, change)
        top = store.load(ref).vcpus or 1
        if count > top:
            raise InvalidArgument("invalid argument: requested vcpus is greater than max allowable vcpus for "
                                  f"the live domain: {count} > {top}")
        supervisor_call(ctx, ref, "set_vcpus", count)
    if do_config:
        change_config(store, ref, change)
    return Text("", json_data={"domain": ref.name, "count": count, "maximum": maximum,
                               "live": do_live, "config": do_config})


# -- edit ----------------------------------------------------------------------------------


REEDIT_HELP = ("y - yes, start editor again", "n - no, throw away my changes",
               "i - turn off validation and try to redefine again", "f - force, try to redefine again",
               "? - print this help")


def _stdin_is_tty() -> bool:
    import sys

    try:
        return os.isatty(sys.stdin.fileno())
    except (AttributeError, ValueError, OSError):
        return False


def _read_key() -> str | None:
    """One key from the terminal (no Enter needed); None at end of input."""
    import sys

    fd = sys.stdin.fileno()
    try:
        import termios
        import tty

        saved = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError):
        line = sys.stdin.readline()
        return line[:1] if line else None
    try:
        tty.setcbreak(fd)
        data = os.read(fd, 1)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    if not data or data in (b"\x04",):
        return None
    return data.decode("latin-1")


def _report(ctx, err: VshError) -> None:
    ctx.out.flush()
    for line in err.lines:
        ctx.err.write(f"error: {line}\n")
    if err.hint:
        ctx.err.write(f"hint: {err.hint}\n")
    ctx.err.flush()


def _ask_reedit(ctx, relax: bool) -> str:
    """virsh's ``Failed. Try again? [y,n,i,f,?]:`` on the terminal; returns y, n, i or f."""
    choices = "[y,n,i,f,?]" if relax else "[y,n,f,?]"
    while True:
        ctx.out.write(f"Failed. Try again? {choices}: ")
        ctx.out.flush()
        key = _read_key()
        if key is None:
            ctx.out.write("\n")
            return "n"
        key = key.lower()
        if key == "?":
            ctx.out.write("\n")
            for line in REEDIT_HELP:
                if line.startswith("i -") and not relax:
                    continue
                ctx.out.write(f"{line}\n")
            continue
        if key in ("y", "n", "f") or (relax and key == "i"):
            ctx.out.write(f"{key}\n")
            return key


def _define_edited(ctx, ref, original, text: str, validate_schema: bool):
    """Parse, check and store an edited definition; returns the new Domain."""
    from vsh.core.domain import Domain

    dom = Domain.parse(text)
    if validate_schema and os.path.exists(SCHEMA):
        from vsh.api.local.domains import check_schema

        check_schema(dom)
    new_name = dom.name
    if new_name is not None and new_name != ref.name and dom.uuid \
            and dom.uuid.lower() == (original.uuid or "").lower():
        raise OperationInvalid(
            f"operation failed: domain '{ref.name}' is already defined with uuid {original.uuid}",
            hint=f"edit cannot rename a domain: use 'domrename {ref.name} {new_name}', or remove the <uuid> "
                 "element to define a copy under the new name")
    ctx.store.define(dom)
    return dom


SCHEMA = "/usr/share/libvirt/schemas/domain.rng"


@command("edit", group="domain", summary="edit XML configuration for a domain",
         opts=[DOMAIN, Opt("skip-validate", kind="bool", help="skip validation of the XML against the schema")],
         mutating=True,
         description="Open the domain's persistent XML in $VISUAL or $EDITOR (default vi) and define\n"
                     "the result. An invalid result is reported; on a terminal you may edit it again\n"
                     "(y), give up (n), retry without schema validation (i) or retry as it is (f).\n"
                     "Without a terminal the configuration is left unchanged.",
         examples=("edit vm1", "EDITOR=nano vsh edit vm1"))
def edit(ctx, domain, skip_validate=False):
    import tempfile

    store = ctx.store
    ref = store.get(domain)
    original = store.load(ref, inactive=True)
    before = original.to_xml(inactive=True)
    fd, path = tempfile.mkstemp(prefix="vsh", suffix=".xml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(before)
        validate_schema = not skip_validate
        edit_again = True
        while True:
            if edit_again:
                run_editor(path)
                with open(path, "rb") as fh:
                    data = fh.read()
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    text = data  # the parser reports where the bad byte is
                if text == before:
                    return Message(f"Domain '{ref.name}' XML configuration not changed.",
                                   json_data={"domain": ref.name, "changed": False})
            try:
                dom = _define_edited(ctx, ref, original, text, validate_schema)
            except VshError as err:
                if not _stdin_is_tty():
                    failed = err.with_context("Failed.")
                    failed.hint = err.hint or f"the configuration of domain '{ref.name}' is unchanged"
                    raise failed from None
                _report(ctx, err)
                answer = _ask_reedit(ctx, relax=validate_schema)
                if answer == "y":
                    edit_again = True
                elif answer == "f":
                    edit_again = False
                elif answer == "i":
                    validate_schema = False
                    edit_again = False
                else:
                    raise VshError(f"Domain '{ref.name}' XML configuration not changed: the edit was "
                                   "discarded") from None
                continue
            return Message(f"Domain '{dom.name}' XML configuration edited.",
                           json_data={"domain": dom.name, "changed": True})
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
