"""Changing a domain's configuration: edit, setmem, setmaxmem, setvcpus.

The changes themselves are the API's (:mod:`vsh.api.domains`): ``--config``, ``--live``
and ``--current`` become its ``config``, ``live`` and ``current`` flags. ``edit`` keeps
here what talks to a person: the editor and virsh's ``Try again?`` question.
"""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, OperationInvalid, VshError
from vsh.core.output import Lines, Message, Text
from vsh.registry import CONFIG_OPT, CURRENT_EXCLUSIVE, CURRENT_OPT, LIVE_OPT, Opt, check_readonly, command
from vsh.ui.editor import run_editor

DOMAIN = Opt("domain", kind="domain", required=True, positional=True, help="domain name, id or uuid")
CONFIG, LIVE, CURRENT = CONFIG_OPT, LIVE_OPT, CURRENT_OPT
EXCLUSIVE = CURRENT_EXCLUSIVE


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
    dom = ctx.conn.lookup_domain(domain)
    done = dom.set_memory(size, live=live, config=config, current=current)
    return Text("", json_data={"domain": dom.name, "memory_kib": size, **done})


@command("setmaxmem", group="domain", summary="change maximum memory limit",
         opts=[DOMAIN, Opt("size", kind="scaled", required=True, positional=True,
                           help="new maximum memory size, as scaled integer (default KiB)"),
               CONFIG, LIVE, CURRENT], exclusive=EXCLUSIVE, mutating=True,
         description="Set the domain's memory size (<memory>). A running domain cannot change it;\n"
                     "with a smaller size the current memory comes down too.",
         examples=("setmaxmem vm1 2G --config",))
def setmaxmem(ctx, domain, size, config=False, live=False, current=False):
    dom = ctx.conn.lookup_domain(domain)
    try:
        done = dom.set_max_memory(size, live=live, config=config, current=current)
    except VshError as err:
        raise err.with_context("Unable to change MaxMemorySize") from None
    return Text("", json_data={"domain": dom.name, "max_memory_kib": size, **done})


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
    dom = ctx.conn.lookup_domain(domain)
    done = dom.set_vcpus(count, maximum=maximum, live=live, config=config, current=current, guest=guest,
                         hotpluggable=hotpluggable)
    return Text("", json_data={"domain": dom.name, "count": count, "maximum": maximum, **done})


@command("setvcpu", group="domain", summary="attach/detach vcpu or groups of threads",
         opts=[DOMAIN, Opt("vcpulist", required=True, positional=True, help="ids of vcpus to manipulate"),
               Opt("enable", kind="bool", help="enable cpus specified by cpumap"),
               Opt("disable", kind="bool", help="disable cpus specified by cpumap"),
               CONFIG, LIVE, CURRENT],
         exclusive=EXCLUSIVE + (("enable", "disable"),), mutating=True,
         description="Enable (hot-plug) or disable (unplug) the vCPUs of vcpulist (0-3,^2). vsh keeps\n"
                     "the enabled vCPUs numbered from 0 without gaps, so the list continues the enabled\n"
                     "ones (or ends them); under TCG a live unplug is refused.",
         examples=("setvcpu vm1 2 --enable", "setvcpu vm1 2-3 --enable --config"))
def setvcpu(ctx, domain, vcpulist, enable=False, disable=False, config=False, live=False, current=False):
    from vsh.core.domain import parse_cpuset

    if not (enable or disable):
        raise InvalidArgument("one of --enable, --disable is required")
    try:
        vcpus = sorted(parse_cpuset(vcpulist))
    except VshError:
        raise InvalidArgument(f"invalid vcpu list '{vcpulist}'") from None
    dom = ctx.conn.lookup_domain(domain)
    done = dom.set_vcpu(vcpus, enable, live=live, config=config, current=current)
    return Text("", json_data={"domain": dom.name, "vcpus": vcpus, "enabled": enable, **done})


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


def _define_edited(ctx, name: str, uuid: str | None, text, validate_schema: bool):
    """Check and define an edited definition; returns the new Domain handle."""
    from vsh.core.domain import Domain

    new = Domain.parse(text)
    if new.name is not None and new.name != name and new.uuid and new.uuid.lower() == (uuid or "").lower():
        raise OperationInvalid(
            f"operation failed: domain '{name}' is already defined with uuid {uuid}",
            hint=f"edit cannot rename a domain: use 'domrename {name} {new.name}', or remove the <uuid> "
                 "element to define a copy under the new name")
    return ctx.conn.define_xml(text, validate="if-installed" if validate_schema else False)


@command("edit", group="domain", summary="edit XML configuration for a domain",
         opts=[DOMAIN, Opt("skip-validate", kind="bool", help="skip validation of the XML against the schema")],
         mutating=True,
         description="Open the domain's persistent XML in $VISUAL or $EDITOR (default vi) and define\n"
                     "the result. An invalid result is reported; on a terminal you may edit it again\n"
                     "(y), give up (n), retry without schema validation (i) or retry as it is (f).\n"
                     "Without a terminal the configuration is left unchanged.",
         examples=("edit vm1", "EDITOR=nano vsh edit vm1"))
def edit(ctx, domain, skip_validate=False):
    """With guest disks (-a, -d) and a path, guestfish's edit of a guest file."""
    import tempfile

    from vsh.ui.guestsession import edit_guest_file, has_guest_disks

    if domain.startswith("/") and has_guest_disks(ctx):
        return edit_guest_file(ctx, domain)

    current = ctx.conn.lookup_domain(domain)
    name, uuid = current.name, current.uuid()
    before = current.xml(inactive=True)
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
                    return Message(f"Domain '{name}' XML configuration not changed.",
                                   json_data={"domain": name, "changed": False})
            try:
                dom = _define_edited(ctx, name, uuid, text, validate_schema)
            except VshError as err:
                if not _stdin_is_tty():
                    failed = err.with_context("Failed.")
                    failed.hint = err.hint or f"the configuration of domain '{name}' is unchanged"
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
                    raise VshError(f"Domain '{name}' XML configuration not changed: the edit was "
                                   "discarded") from None
                continue
            return Message(f"Domain '{dom.name}' XML configuration edited.",
                           json_data={"domain": dom.name, "changed": True})
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


# -- set-lifecycle-action ------------------------------------------------------------------


LIFECYCLE_TYPES = ("poweroff", "reboot", "crash")
LIFECYCLE_ACTIONS = ("destroy", "restart", "rename-restart", "preserve", "coredump-destroy", "coredump-restart")


@command("set-lifecycle-action", group="domain", summary="change lifecycle actions",
         opts=[DOMAIN,
               Opt("type", required=True, positional=True, help="lifecycle type to modify"),
               Opt("action", required=True, positional=True, help="lifecycle action to set"),
               CONFIG, LIVE, CURRENT], exclusive=EXCLUSIVE, mutating=True,
         description="Set what the guest's power-off, reboot or crash does (on_poweroff, on_reboot,\n"
                     "on_crash): destroy, restart, rename-restart, preserve, coredump-destroy or\n"
                     "coredump-restart (the last two for crash only). A running domain's supervisor\n"
                     "applies the new action at once.",
         examples=("set-lifecycle-action vm1 reboot destroy", "set-lifecycle-action vm1 crash preserve --config"))
def set_lifecycle_action(ctx, domain, type, action, config=False, live=False, current=False):
    if type not in LIFECYCLE_TYPES:
        raise InvalidArgument(f"Invalid lifecycle type '{type}'.")
    if action not in LIFECYCLE_ACTIONS:
        raise InvalidArgument(f"Invalid lifecycle action '{action}'.")
    dom = ctx.conn.lookup_domain(domain)
    done = dom.set_lifecycle_action(type, action, live=live, config=config, current=current)
    return Text("", json_data={"domain": dom.name, "type": type, "action": action, **done})


# -- metadata --------------------------------------------------------------------------------


@command("metadata", group="domain", summary="show or set domain's custom XML metadata",
         opts=[DOMAIN,
               Opt("uri", required=True, positional=True, help="URI of the namespace"),
               Opt("key", help="key to be used as a namespace identifier"),
               Opt("set", help="new metadata to set"),
               Opt("remove", kind="bool", help="remove the metadata corresponding to an uri"),
               CONFIG, LIVE, CURRENT,
               Opt("edit", kind="bool", help="use an editor to change the metadata")],
         exclusive=EXCLUSIVE + (("edit", "set"), ("remove", "set"), ("remove", "edit")),
         examples=("metadata vm1 http://example.com/ns --key ex --set '<foo bar=\"1\"/>'",
                   "metadata vm1 http://example.com/ns", "metadata vm1 http://example.com/ns --remove"),
         description="Show, set, edit or remove the custom element of one namespace in the domain's\n"
                     "<metadata> (stored with the prefix --key). Without --live, --config or --current\n"
                     "the running domain (or the definition of an inactive one) is used.")
def metadata(ctx, domain, uri, key=None, set=None, remove=False, config=False, live=False, current=False,
             edit=False):
    dom = ctx.conn.lookup_domain(domain)
    flags = {"live": live, "config": config}
    if (set is not None or edit) and not key:
        raise InvalidArgument("namespace key is required when modifying metadata")
    if (set is not None or remove or edit) and ctx.readonly:
        raise VshError("operation forbidden: read only access prevents virDomainSetMetadata")
    if set is not None or remove:
        done = dom.set_metadata_element(uri, key, set if not remove else None, **flags)
        text = "Metadata removed" if remove else "Metadata modified"
        return Message(text, json_data={"domain": dom.name, "uri": uri, "removed": remove, **done})
    if edit:
        return _edit_metadata(ctx, dom, uri, key, flags)
    data = dom.metadata_element(uri, **flags)
    return Lines([data], json_data={"domain": dom.name, "uri": uri, "metadata": data})


def _edit_metadata(ctx, dom, uri: str, key: str, flags: dict):
    import tempfile

    from vsh.core.errors import NotFound

    try:
        before = dom.metadata_element(uri, **flags)
    except NotFound:
        # no element yet; or no domain: on a remote connection, whose lookups are pipelined, that
        # error comes with the handle's first use (here) and again with its name, before the editor
        before = f"<{key}/>" if dom.name else ""
    fd, path = tempfile.mkstemp(prefix="vsh", suffix=".xml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(before + "\n")
        run_editor(path)
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        if text.strip() == before.strip():
            return Message("Metadata not changed", json_data={"domain": dom.name, "uri": uri, "changed": False})
        done = dom.set_metadata_element(uri, key, text, **flags)
        return Message("Metadata modified", json_data={"domain": dom.name, "uri": uri, "changed": True, **done})
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


# -- schedinfo / blkdeviotune / domiftune ---------------------------------------------------------------


def _params_text(pairs) -> str:
    """virsh's ``%-15s: %s`` parameter lines (longer names are not cut)."""
    return "".join(f"{name:<15}: {value}\n" for name, value in pairs)


@command("schedinfo", group="domain", summary="show/set scheduler parameters",
         opts=[DOMAIN, Opt("weight", kind="int", help="weight for XEN_CREDIT"),
               Opt("cap", kind="int", help="cap for XEN_CREDIT"), CURRENT, CONFIG, LIVE,
               Opt("set", kind="argv", help="parameter=value")],
         exclusive=EXCLUSIVE,
         description="Show the domain's scheduler parameters (cpu_shares, vcpu/emulator/global/iothread\n"
                     "period and quota) or set some with name=value. --config writes <cputune>. The\n"
                     "running domain's cpu_shares and global period/quota are those of QEMU's own cgroup\n"
                     "(vsh makes one when it runs as root; cgroup v1 or v2); vsh says why it has none.",
         examples=("schedinfo vm1 --config", "schedinfo vm1 --config cpu_shares=512"))
def schedinfo(ctx, domain, weight=None, cap=None, current=False, config=False, live=False, set=()):
    from vsh.api.tuning import SCHED_PARAMS

    dom = ctx.conn.lookup_domain(domain)
    flags = {"live": live, "config": config, "current": current}
    params = {}
    for item in set:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise InvalidArgument("Invalid syntax for --set, expecting name=value")
        if name not in SCHED_PARAMS:
            raise InvalidArgument(f"invalid scheduler option: {name}")
        try:
            params[name] = int(value)
        except ValueError:
            raise InvalidArgument(f"invalid value of {name}: {value}") from None
    if weight is not None or cap is not None:
        raise InvalidArgument(f"invalid scheduler option: {'weight' if weight is not None else 'cap'}")
    if params:
        check_readonly(ctx, "virDomainSetSchedulerParametersFlags")
        dom.tuning.set_scheduler(params, **flags)
    info = dom.tuning.scheduler(**flags)
    text = _params_text([("Scheduler", info["scheduler"]), *info["params"].items()])
    return Text(text, json_data=info)


IOTUNE_OPTS = [
    ("total-bytes-sec", "bytes", "total throughput limit, as scaled integer (default bytes)"),
    ("read-bytes-sec", "bytes", "read throughput limit, as scaled integer (default bytes)"),
    ("write-bytes-sec", "bytes", "write throughput limit, as scaled integer (default bytes)"),
    ("total-iops-sec", "int", "total I/O operations limit per second"),
    ("read-iops-sec", "int", "read I/O operations limit per second"),
    ("write-iops-sec", "int", "write I/O operations limit per second"),
    ("total-bytes-sec-max", "bytes", "total max, as scaled integer (default bytes)"),
    ("read-bytes-sec-max", "bytes", "read max, as scaled integer (default bytes)"),
    ("write-bytes-sec-max", "bytes", "write max, as scaled integer (default bytes)"),
    ("total-iops-sec-max", "int", "total I/O operations max"),
    ("read-iops-sec-max", "int", "read I/O operations max"),
    ("write-iops-sec-max", "int", "write I/O operations max"),
    ("size-iops-sec", "int", "I/O size in bytes"),
    ("group-name", "string", "group name to share I/O quota between multiple drives"),
    ("total-bytes-sec-max-length", "int", "duration in seconds to allow total max bytes"),
    ("read-bytes-sec-max-length", "int", "duration in seconds to allow read max bytes"),
    ("write-bytes-sec-max-length", "int", "duration in seconds to allow write max bytes"),
    ("total-iops-sec-max-length", "int", "duration in seconds to allow total I/O operations max"),
    ("read-iops-sec-max-length", "int", "duration in seconds to allow read I/O operations max"),
    ("write-iops-sec-max-length", "int", "duration in seconds to allow write I/O operations max"),
]


@command("blkdeviotune", group="domain", summary="Set or query a block device I/O tuning parameters",
         opts=[DOMAIN, Opt("device", kind="device", required=True, positional=True, help="block device"),
               *(Opt(name, kind=kind, help=text) for name, kind, text in IOTUNE_OPTS), CONFIG, LIVE, CURRENT],
         exclusive=EXCLUSIVE,
         description="Query or set the I/O limits of one disk. Live they are QEMU's throttling of the\n"
                     "drive (block_set_io_throttle); --config writes the disk's <iotune>. Values not\n"
                     "given are kept.",
         examples=("blkdeviotune vm1 vda", "blkdeviotune vm1 vda --total-iops-sec 200 --live --config"))
def blkdeviotune(ctx, domain, device, config=False, live=False, current=False, **values):
    dom = ctx.conn.lookup_domain(domain)
    flags = {"live": live, "config": config, "current": current}
    params = {name.replace("-", "_"): values[name.replace("-", "_")] for name, _, _ in IOTUNE_OPTS
              if values.get(name.replace("-", "_")) is not None}
    if params:
        check_readonly(ctx, "virDomainSetBlockIoTune")
        try:
            done = dom.tuning.set_block_iotune(device, params, **flags)
        except VshError as err:
            raise err.with_context("Unable to change block I/O throttle") from None
        return Text("", json_data={"domain": dom.name, "device": device, "params": params, **done})
    try:
        tune = dom.tuning.block_iotune(device, **flags)
    except VshError as err:
        raise err.with_context("Unable to get block I/O throttle parameters") from None
    return Text(_params_text(tune.items()), json_data=tune)


@command("domiftune", group="domain", summary="get/set parameters of a virtual interface",
         opts=[DOMAIN, Opt("interface", kind="interface", required=True, positional=True,
                           help="interface device (MAC Address)"),
               Opt("inbound", help="control domain's incoming traffics"),
               Opt("outbound", help="control domain's outgoing traffics"), CONFIG, LIVE, CURRENT],
         exclusive=EXCLUSIVE,
         description="Query or set the <bandwidth> of a NIC: --inbound average[,peak[,burst[,floor]]]\n"
                     "and --outbound average[,peak[,burst]] in KiB/s (average 0 removes it). Only the\n"
                     "definition changes (--config): vsh shapes no traffic of a running domain.",
         examples=("domiftune vm1 52:54:00:12:34:56", "domiftune vm1 52:54:00:12:34:56 --inbound 1000,2000 --config"))
def domiftune(ctx, domain, interface, inbound=None, outbound=None, config=False, live=False, current=False):
    from vsh.api.tuning import parse_bandwidth

    dom = ctx.conn.lookup_domain(domain)
    flags = {"live": live, "config": config, "current": current}
    if inbound is not None or outbound is not None:
        check_readonly(ctx, "virDomainSetInterfaceParameters")
        inb = parse_bandwidth(inbound, True) if inbound is not None else None
        outb = parse_bandwidth(outbound, False) if outbound is not None else None
        try:
            done = dom.tuning.set_interface_bandwidth(interface, inb, outb, **flags)
        except VshError as err:
            raise err.with_context("Unable to set interface parameters") from None
        return Text("", json_data={"domain": dom.name, "interface": interface, **done})
    try:
        bw = dom.tuning.interface_bandwidth(interface, **flags)
    except VshError as err:
        raise err.with_context("Unable to get interface parameters") from None
    return Text(_params_text(bw.items()), json_data=bw)
