"""Running domains: start, create, shutdown, reboot, reset, destroy, suspend, resume,
console, console-log, ttyconsole, qemu-monitor-command.

Each command is a thin layer over the domain handle's lifecycle methods
(:mod:`vsh.api.lifecycle`), whose errors already carry virsh's first line
(``Failed to suspend domain 'vm1'``); the console's terminal side is :mod:`vsh.ui.console`.
"""

from __future__ import annotations

import sys

from vsh.core.errors import VshError
from vsh.core.output import Message, Text
from vsh.registry import Opt, command

DOMAIN = Opt("domain", kind="domain", required=True, positional=True, help="domain name, id or uuid")


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
    dom = ctx.conn.lookup_domain(domain)
    st = dom.start(paused=paused, force_boot=force_boot, bypass_cache=bypass_cache)
    msg = Message(f"Domain '{dom.name}' started", json_data=_state_json(st))
    if console:
        from vsh.ui.console import attach

        ctx.out.write(msg.text(ctx.quiet))
        attach(ctx, dom)
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
    from vsh.core.inputfile import read_input_file

    try:
        st = ctx.conn.create_xml(read_input_file(file).decode("utf-8", "replace"), paused=paused,
                                 validate=validate)
    except VshError as err:
        raise err.with_context(f"Failed to create domain from {file}") from None
    msg = Message(f"Domain '{st['name']}' created from {file}", json_data=_state_json(st))
    if console:
        from vsh.ui.console import attach

        ctx.out.write(msg.text(ctx.quiet))
        attach(ctx, ctx.conn.lookup_domain(st["name"]))
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
    dom = ctx.conn.lookup_domain(domain)
    st = dom.shutdown(mode=mode)
    return Message(f"Domain '{dom.name}' is being shutdown", json_data=_state_json(st))


@command("reboot", group="domain", summary="reboot a domain",
         opts=[DOMAIN,
               Opt("mode", kind="string", help="reboot mode: acpi (default) or reset")],
         mutating=True,
         description="With acpi, press the ACPI power button and boot the guest again when it\n"
                     "powers off (libvirt's \"fake reboot\"); a guest that ignores ACPI does not\n"
                     "reboot. With reset, reset the machine at once.")
def reboot(ctx, domain, mode=None):
    dom = ctx.conn.lookup_domain(domain)
    st = dom.reboot(mode=mode)
    return Message(f"Domain '{dom.name}' is being rebooted", json_data=_state_json(st))


@command("reset", group="domain", summary="reset a domain", opts=[DOMAIN], mutating=True,
         description="Reset the machine at once, like pressing its reset button.")
def reset(ctx, domain):
    dom = ctx.conn.lookup_domain(domain)
    st = dom.reset()
    return Message(f"Domain '{dom.name}' was reset", json_data=_state_json(st))


@command("destroy", group="domain", summary="destroy (stop) a domain",
         opts=[DOMAIN,
               Opt("graceful", kind="bool", help="terminate gracefully (SIGTERM only, no SIGKILL)")],
         mutating=True,
         description="Stop QEMU: SIGTERM, then SIGKILL if it has not exited within 10 s\n"
                     "(with --graceful, only SIGTERM). The guest gets no chance to shut down.")
def destroy(ctx, domain, graceful=False):
    dom = ctx.conn.lookup_domain(domain)
    st = dom.destroy(graceful=graceful)
    return Message(f"Domain '{dom.name}' destroyed", json_data=_state_json(st))


@command("suspend", group="domain", summary="suspend a domain", opts=[DOMAIN], mutating=True)
def suspend(ctx, domain):
    dom = ctx.conn.lookup_domain(domain)
    st = dom.suspend()
    return Message(f"Domain '{dom.name}' suspended", json_data=_state_json(st))


@command("resume", group="domain", summary="resume a domain", opts=[DOMAIN], mutating=True)
def resume(ctx, domain):
    dom = ctx.conn.lookup_domain(domain)
    st = dom.resume()
    return Message(f"Domain '{dom.name}' resumed", json_data=_state_json(st))


# -- the serial console ------------------------------------------------------------------------


@command("console", group="domain", summary="connect to the guest console",
         opts=[DOMAIN,
               Opt("devname", kind="string", help="character device name (an alias: serial0, console0, console1...)"),
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
    from vsh.ui.console import attach

    attach(ctx, ctx.conn.lookup_domain(domain), escape, force=force, raw=raw, devname=devname, resume=resume)
    return None


@command("console-log", group="domain", summary="print the serial console log of a domain",
         opts=[DOMAIN,
               Opt("follow", kind="bool", help="keep printing new output until the domain stops"),
               Opt("raw", kind="bool", help="print the guest's bytes as they are (escape sequences and all)")],
         examples=("console-log vm1", "console-log vm1 --follow", "console-log vm1 --raw > boot.log"),
         description="Print what the guest wrote on its serial console in the current run (or the\n"
                     "last one if the domain is shut off). The log is for reading: only printable\n"
                     "text, newlines and tabs are printed; escape sequences (colours, cursor\n"
                     "movement, ESC [2J), carriage returns and other control characters are left\n"
                     "out and bidirectional overrides are shown escaped (\\u202e). --raw prints the\n"
                     "bytes unchanged, for a file or a terminal emulator to replay.")
def console_log(ctx, domain, follow=False, raw=False):
    from vsh.ui import console as con

    chunks = ctx.conn.lookup_domain(domain).console_log(follow=follow and not ctx.json)
    filt = None if raw else con.LogFilter()
    if not follow or ctx.json:
        data = b"".join(chunks)
        text = (filt.feed(data) + filt.finish() if filt else data).decode(errors="replace")
        return Text(text, json_data={"log": text})
    con.flush_output(ctx)
    try:
        out_fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        raise VshError("console-log --follow needs a real standard output") from None
    for data in chunks:
        con.write_all(out_fd, filt.feed(data) if filt else data)
    if filt:
        con.write_all(out_fd, filt.finish())
    return None


@command("ttyconsole", group="domain", summary="tty console", opts=[DOMAIN])
def ttyconsole(ctx, domain):
    from vsh.core.errors import OperationInvalid

    pty = ctx.conn.lookup_domain(domain).console_pty()
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

    reply = ctx.conn.lookup_domain(domain).monitor_command(" ".join(cmd), hmp=hmp)
    if hmp:
        text = reply.replace("\r\n", "\n")
        return Text(text if text.endswith("\n") or not text else text + "\n", json_data={"return": text})
    value = reply.get("return") if return_value else reply
    if return_value and "error" in reply:
        raise VshError(f"internal error: {reply['error'].get('class')}: {reply['error'].get('desc')}")
    if pretty:
        text = json.dumps(value, indent=2)
    else:
        text = json.dumps(value, separators=(",", ":"))
    return Text(text + "\n", json_data=value)
