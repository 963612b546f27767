"""Running domains: start, create, shutdown, reboot, reset, destroy, suspend, resume,
console, console-log, ttyconsole, qemu-monitor-command.

Each command is a thin layer over :mod:`vsh.kvm.client` (the domain's supervisor);
the supervisor's errors already speak libvirt's language, and the commands add
virsh's first line (``Failed to suspend domain 'vm1'``).
"""

from __future__ import annotations

import os
import sys

from vsh.core.errors import InvalidArgument, OperationInvalid, VshError
from vsh.core.output import Message, Text
from vsh.registry import Opt, command

DOMAIN = Opt("domain", kind="domain", required=True, positional=True, help="domain name, id or uuid")


def _client():
    from vsh.kvm import client

    return client


def _rundir(ctx, ref) -> str:
    return ctx.store.runtime_path(ref.name)       # a str: no pathlib on the command path


def _running_ref(ctx, domain: str, verb: str, message: str | None = None):
    """The domain, which must be running; virsh's two-line error if it is not."""
    ref = ctx.store.get(domain)
    if not ref.active:
        raise OperationInvalid(message or f"internal error: domain '{ref.name}' not running") \
            .with_context(f"Failed to {verb} domain '{ref.name}'")
    return ref


def _act(ctx, domain: str, verb: str, op, inactive_message: str | None = None):
    ref = _running_ref(ctx, domain, verb, inactive_message)
    try:
        return ref, op(_rundir(ctx, ref))
    except VshError as err:
        raise err.with_context(f"Failed to {verb} domain '{ref.name}'") from None


def _lifecycle(dom) -> dict:
    return {"on_poweroff": dom.on_poweroff or "destroy", "on_reboot": dom.on_reboot or "restart",
            "on_crash": dom.on_crash or "destroy"}


def _launch(ctx, dom, *, transient: bool, paused: bool, extra_argv=(), first_run: dict | None = None) -> dict:
    """Build QEMU's argv for ``dom`` and start it under a supervisor; the runtime state.

    ``extra_argv`` and ``first_run`` serve restore and snapshot revert (arguments for this
    first run only, e.g. ``-incoming defer``).
    """
    store = ctx.store
    rundir = store.runtime_path(dom.name)
    live = dom.copy()
    taps = _plan_taps(store, live)       # network/bridge NICs: bridge and tap names in the live XML
    argv = build_argv(live, rundir) + list(extra_argv)  # a missing disk or kernel fails before anything is created
    created = not os.path.isdir(rundir)
    store.runtime_path(dom.name, create=True)
    domid = store.next_id()
    live.id = domid
    try:
        return _client().start(rundir, dom.name, domid, argv, live.to_xml(), lifecycle=_lifecycle(dom),
                               transient=transient, paused=paused, uuid=dom.uuid, first_run=first_run or None,
                               taps=taps)
    except VshError:
        if created:
            try:
                os.rmdir(rundir)        # refused before anything was written: leave nothing
            except OSError:
                pass
        raise


def _plan_taps(store, live) -> list[dict]:
    if not any(nic.type in ("network", "bridge") for nic in live.interfaces):
        return []
    from vsh.kvm import hostnet

    return hostnet.plan_taps(store, live, hostnet.running_taps(store))


def build_argv(dom, rundir) -> list[str]:
    """QEMU's argv for ``dom`` with its runtime files in ``rundir`` (the host probe is cached)."""
    try:
        from vsh.kvm.argv import RuntimePaths, build_argv as build
        from vsh.kvm.host import probe
    except ImportError as exc:
        raise VshError(f"internal error: the QEMU command-line builder is unavailable: {exc}") from None
    make_paths = getattr(RuntimePaths, "in_dir", None) or RuntimePaths.for_rundir
    argv = build(dom.node, probe(), make_paths(str(rundir)))
    from vsh.kvm.argv import check_host_ports

    check_host_ports(dom.node)  # user-mode port forwards: a taken host port fails here, clearly
    return argv


def _escape(ctx, escape: str | None) -> str:
    return escape if escape is not None else (getattr(ctx, "escape", None) or "^]")


def _attach_console(ctx, ref, escape: str | None, force: bool = False, raw: bool = False) -> str:
    from vsh.kvm import console

    state = _client().read_state(_rundir(ctx, ref))
    if not state or state.get("state") not in _client().ACTIVE_STATES:
        raise OperationInvalid("Requested operation is not valid: domain is not running")
    try:
        stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        raise VshError("the console needs real standard input and output (a terminal or pipes)") from None
    for stream in (getattr(ctx, "out", None), sys.stdout):
        if stream is not None:
            stream.flush()
    return console.attach(state, _rundir(ctx, ref), escape=_escape(ctx, escape), force=force,
                          raw=raw, stdin_fd=stdin_fd, stdout_fd=stdout_fd)


# -- start / create ----------------------------------------------------------------------------


@command("start", group="domain", summary="start a (previously defined) inactive domain",
         opts=[DOMAIN,
               Opt("console", kind="bool", help="attach to console after creation"),
               Opt("paused", kind="bool", help="leave the guest paused after creation"),
               Opt("autodestroy", kind="bool", help="(accepted for virsh compatibility; ignored)"),
               Opt("bypass-cache", kind="bool", help="drop a managed save image from the host page cache as it is read"),
               Opt("force-boot", kind="bool", help="force fresh boot by discarding any managed save"),
               Opt("reset-nvram", kind="bool", help="(accepted for virsh compatibility; ignored)")],
         mutating=True, examples=("start vm1", "start vm1 --paused", "start vm1 --console"),
         description="Boot a defined domain under its own supervisor process. The command returns\n"
                     "as soon as the guest's CPUs run (or, with --paused, once QEMU is ready).")
def start(ctx, domain, console=False, paused=False, autodestroy=False, bypass_cache=False,
          force_boot=False, reset_nvram=False):
    from vsh.api.local.domains import has_managed_save, managed_save_path

    store = ctx.store
    ref = store.get(domain)
    if ref.active:
        raise OperationInvalid("Domain is already active")
    try:
        from vsh.commands.snapshot import recover_pending

        recover_pending(ctx, ref.name)      # an interrupted snapshot operation first
        st = None
        if has_managed_save(store, ref.name):
            if force_boot:
                managed_save_path(store, ref.name).unlink()
            else:   # resume the saved guest (running (restored)); the image goes once it runs
                from vsh.commands.snapshot import start_from_managed_save

                st = start_from_managed_save(ctx, ref, paused=paused, bypass_cache=bypass_cache)
        if st is None:
            dom = store.load(ref, inactive=True)
            dom.fill_defaults()
            st = _launch(ctx, dom, transient=not ref.persistent, paused=paused)
    except VshError as err:
        if err.lines == ("Domain is already active",):
            raise
        raise err.with_context(f"Failed to start domain '{ref.name}'") from None
    msg = Message(f"Domain '{ref.name}' started", json_data=_state_json(st))
    if console:
        ctx.out.write(msg.text(ctx.quiet))
        _attach_console(ctx, ref, None)
        return None
    return msg


@command("create", group="domain", summary="create a domain from an XML file",
         opts=[Opt("file", kind="file", required=True, positional=True,
                   help="file containing an XML domain description"),
               Opt("console", kind="bool", help="attach to console after creation"),
               Opt("paused", kind="bool", help="leave the guest paused after creation"),
               Opt("autodestroy", kind="bool", help="(accepted for virsh compatibility; ignored)"),
               Opt("validate", kind="bool", help="validate the XML against libvirt's schema (when installed)")],
         mutating=True, examples=("create d1.xml",),
         description="Start a transient domain: it exists while it runs and is gone once it stops.\n"
                     "If a persistent domain of that name and UUID exists, it is started with this XML.")
def create(ctx, file, console=False, paused=False, autodestroy=False, validate=False):
    from vsh.core.domain import Domain
    from vsh.core.store import read_input_file

    store = ctx.store
    try:
        dom = Domain.parse(read_input_file(file))
        dom.fill_defaults()
        dom.validate()
        if validate:
            from vsh.api.local.domains import check_schema

            check_schema(dom)
        existing = store.find(dom.name)
        persistent = False
        if existing is not None:
            if existing.active:
                raise OperationInvalid(f"Requested operation is not valid: domain '{dom.name}' "
                                       f"is already active")
            if existing.persistent:
                old = store.load(existing, inactive=True)
                if (old.uuid or "").lower() != (dom.uuid or "").lower():
                    raise OperationInvalid(f"operation failed: domain '{dom.name}' already exists "
                                           f"with uuid {old.uuid}")
                persistent = True
        st = _launch(ctx, dom, transient=not persistent, paused=paused)
    except VshError as err:
        raise err.with_context(f"Failed to create domain from {file}") from None
    msg = Message(f"Domain '{dom.name}' created from {file}", json_data=_state_json(st))
    if console:
        ctx.out.write(msg.text(ctx.quiet))
        _attach_console(ctx, store.get(dom.name), None)
        return None
    return msg


def _state_json(st: dict | None) -> dict:
    st = st or {}
    return {key: st.get(key) for key in ("name", "uuid", "id", "state", "reason", "qemu_pid",
                                        "console_pty", "transient")}


# -- stop / pause --------------------------------------------------------------------------------


@command("shutdown", group="domain", summary="gracefully shutdown a domain",
         opts=[DOMAIN,
               Opt("mode", kind="string", help="shutdown mode: acpi (the only one vsh has)")],
         mutating=True,
         description="Press the guest's ACPI power button. The guest decides what to do; the\n"
                     "domain stops once it powers off (see domstate, or use destroy).")
def shutdown(ctx, domain, mode=None):
    _check_mode(mode, "shutdown")
    _check_acpi(ctx, domain, "shutdown")
    ref, st = _act(ctx, domain, "shutdown", lambda rd: _client().shutdown(rd))
    return Message(f"Domain '{ref.name}' is being shutdown", json_data=_state_json(st))


@command("reboot", group="domain", summary="reboot a domain",
         opts=[DOMAIN,
               Opt("mode", kind="string", help="reboot mode: acpi (default) or reset")],
         mutating=True,
         description="With acpi, press the ACPI power button and boot the guest again when it\n"
                     "powers off (libvirt's \"fake reboot\"); a guest that ignores ACPI does not\n"
                     "reboot. With reset, reset the machine at once.")
def reboot(ctx, domain, mode=None):
    if mode not in (None, "acpi", "reset"):
        _check_mode(mode, "reboot")
    if mode in (None, "acpi"):
        _check_acpi(ctx, domain, "reboot")
    ref, st = _act(ctx, domain, "reboot", lambda rd: _client().reboot(rd, mode=mode or "acpi"))
    return Message(f"Domain '{ref.name}' is being rebooted", json_data=_state_json(st))


def _check_acpi(ctx, domain: str, verb: str) -> None:
    """A guest without <features><acpi/> has no power button to press: say so instead of waiting."""
    store = ctx.store
    ref = store.find(domain)
    if ref is None or not ref.active:
        return  # the action reports the usual error
    try:
        dom = store.load(ref)
    except VshError:
        return
    if "acpi" not in dom.features:
        from vsh.core.errors import OperationInvalid

        raise OperationInvalid(f"Failed to {verb} domain '{ref.name}'",
                               "Requested operation is not valid: ACPI is not enabled for this domain, "
                               "so the guest has no power button to press",
                               hint=f"add <features><acpi/></features> to its XML, or use "
                                    f"{'destroy' if verb == 'shutdown' else 'reboot --mode reset'}")


def _check_mode(mode, verb: str) -> None:
    if mode is None or mode == "acpi":
        return
    if mode in ("agent", "initctl", "signal", "paravirt"):
        from vsh.core.errors import Unsupported

        raise Unsupported(f"Failed to {verb} domain", f"{verb} mode '{mode}' is not supported by vsh "
                          "(no guest agent); use acpi")
    raise InvalidArgument(f"Unknown mode {mode} value, expecting 'acpi', 'agent', 'initctl', "
                          "'signal' or 'paravirt'")


@command("reset", group="domain", summary="reset a domain", opts=[DOMAIN], mutating=True,
         description="Reset the machine at once, like pressing its reset button.")
def reset(ctx, domain):
    ref, st = _act(ctx, domain, "reset", lambda rd: _client().reset(rd))
    return Message(f"Domain '{ref.name}' was reset", json_data=_state_json(st))


@command("destroy", group="domain", summary="destroy (stop) a domain",
         opts=[DOMAIN,
               Opt("graceful", kind="bool", help="terminate gracefully (SIGTERM only, no SIGKILL)")],
         mutating=True,
         description="Stop QEMU: SIGTERM, then SIGKILL if it has not exited within 10 s\n"
                     "(with --graceful, only SIGTERM). The guest gets no chance to shut down.")
def destroy(ctx, domain, graceful=False):
    ref, st = _act(ctx, domain, "destroy", lambda rd: _client().destroy(rd, graceful=graceful),
                   "Requested operation is not valid: domain is not running")
    return Message(f"Domain '{ref.name}' destroyed", json_data=_state_json(st))


@command("suspend", group="domain", summary="suspend a domain", opts=[DOMAIN], mutating=True)
def suspend(ctx, domain):
    ref, st = _act(ctx, domain, "suspend", lambda rd: _client().suspend(rd))
    return Message(f"Domain '{ref.name}' suspended", json_data=_state_json(st))


@command("resume", group="domain", summary="resume a domain", opts=[DOMAIN], mutating=True)
def resume(ctx, domain):
    ref, st = _act(ctx, domain, "resume", lambda rd: _client().resume(rd))
    return Message(f"Domain '{ref.name}' resumed", json_data=_state_json(st))


# -- the serial console ------------------------------------------------------------------------


@command("console", group="domain", summary="connect to the guest console",
         opts=[DOMAIN,
               Opt("devname", kind="string", help="character device name (serial0 or console0)"),
               Opt("force", kind="bool", help="force console connection (disconnect already connected sessions)"),
               Opt("safe", kind="bool", help="only connect if safe console handling is supported (always)"),
               Opt("resume", kind="bool", help="resume a paused domain after connecting"),
               Opt("raw", kind="bool", help="pass guest output unfiltered (terminal title, clipboard...)"),
               Opt("escape", kind="string", short="e", metavar="string",
                   help="escape character to leave the console (default ^])")],
         mutating=True, examples=("console vm1", "console vm1 --force", "console vm1 -e ^X"),
         description="Attach to the guest's serial console. Leave with the escape character (^] by\n"
                     "default) or with ~. typed at the start of a line. Without a terminal, standard\n"
                     "input goes to the guest and guest output to standard output until input ends.\n"
                     "Control sequences that could change the terminal's title or clipboard are\n"
                     "filtered out unless --raw.")
def console(ctx, domain, devname=None, force=False, safe=False, resume=False, raw=False, escape=None):
    from vsh.kvm.console import parse_escape

    ref = ctx.store.get(domain)
    if not ref.active:
        raise OperationInvalid("Requested operation is not valid: domain is not running")
    if devname not in (None, "serial0", "console0"):
        raise OperationInvalid(f"internal error: cannot find character device {devname}")
    parse_escape(_escape(ctx, escape))          # a bad -e fails before connecting
    if resume:
        st = _client().read_state(_rundir(ctx, ref)) or {}
        if st.get("state") == "paused":
            try:
                _client().resume(_rundir(ctx, ref))
            except VshError as err:
                raise err.with_context(f"Failed to resume domain '{ref.name}'") from None
    _attach_console(ctx, ref, escape, force=force, raw=raw)
    return None


@command("console-log", group="domain", summary="print the serial console log of a domain",
         opts=[DOMAIN,
               Opt("follow", kind="bool", help="keep printing new output until the domain stops"),
               Opt("raw", kind="bool", help="print guest output unfiltered")],
         examples=("console-log vm1", "console-log vm1 --follow"),
         description="Print what the guest wrote on its serial console in the current run (or the\n"
                     "last one if the domain is shut off).")
def console_log(ctx, domain, follow=False, raw=False):
    from vsh.kvm import console as con

    ref = ctx.store.get(domain)
    rundir = ctx.store.runtime_dir(ref.name)
    path = rundir / _client().CONSOLE_LOG
    if not path.exists():
        raise OperationInvalid(f"Requested operation is not valid: domain '{ref.name}' has no console log yet")
    if not follow or ctx.json:
        data = path.read_bytes()
        if not raw:
            data = con.OutputFilter(drop_queries=True).feed(data)
        text = data.decode(errors="replace")
        return Text(text, json_data={"log": text})
    for stream in (getattr(ctx, "out", None), sys.stdout):
        if stream is not None:
            stream.flush()
    try:
        out_fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        raise VshError("console-log --follow needs a real standard output") from None
    con.console_log(rundir, follow=True, out_fd=out_fd, raw=raw)
    return None


@command("ttyconsole", group="domain", summary="tty console", opts=[DOMAIN])
def ttyconsole(ctx, domain):
    ref = ctx.store.get(domain)
    st = _client().read_state(_rundir(ctx, ref)) if ref.active else None
    pty = (st or {}).get("console_pty")
    if not ref.active:
        raise OperationInvalid("Requested operation is not valid: domain is not running")
    if not pty:
        raise OperationInvalid("internal error: the domain has no pty serial console")
    return Text(f"{pty}\n", json_data={"tty": pty})


# -- the QEMU monitor ----------------------------------------------------------------------------


@command("qemu-monitor-command", group="domain", summary="QEMU Monitor Command",
         opts=[DOMAIN,
               Opt("hmp", kind="bool", help="command is in human monitor protocol"),
               Opt("pretty", kind="bool", help="pretty-print any qemu monitor protocol output"),
               Opt("return-value", kind="bool", help="extract the value of the 'return' key from the returned string"),
               Opt("cmd", kind="argv", required=True, help="command")],
         mutating=True,
         examples=("qemu-monitor-command vm1 '{\"execute\":\"query-status\"}'",
                   "qemu-monitor-command vm1 --hmp info status"),
         description="Send a command to the domain's QEMU monitor through its supervisor and print\n"
                     "QEMU's reply. QMP commands are JSON ({\"execute\": ..., \"arguments\": ...});\n"
                     "with --hmp the words form one human-monitor command.")
def qemu_monitor_command(ctx, domain, cmd, hmp=False, pretty=False, return_value=False):
    import json

    line = " ".join(cmd)
    ref = _running_ref(ctx, domain, "run monitor command on",
                       "Requested operation is not valid: domain is not running")
    rundir = _rundir(ctx, ref)
    try:
        if hmp:
            text = _client().hmp(rundir, line).replace("\r\n", "\n")
            return Text(text if text.endswith("\n") or not text else text + "\n",
                        json_data={"return": text})
        try:
            request = json.loads(line)
        except ValueError as exc:
            raise InvalidArgument(f"invalid QMP command (not JSON; add --hmp for a monitor "
                                  f"command): {exc}") from None
        if not isinstance(request, dict) or not isinstance(request.get("execute"), str):
            raise InvalidArgument("a QMP command is a JSON object with an \"execute\" member")
        reply = _client().qmp_raw(rundir, request["execute"], request.get("arguments"))
    except VshError as err:
        raise err.with_context(f"Failed to run monitor command on domain '{ref.name}'") from None
    if "id" in request:
        reply = dict(reply, id=request["id"])
    value = reply.get("return") if return_value else reply
    if return_value and "error" in reply:
        raise VshError(f"internal error: {reply['error'].get('class')}: {reply['error'].get('desc')}")
    if pretty:
        text = json.dumps(value, indent=2)
    else:
        text = json.dumps(value, separators=(",", ":"))
    return Text(text + "\n", json_data=value)

