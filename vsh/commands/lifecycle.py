"""Running domains: start, create, shutdown, reboot, reset, destroy, suspend, resume,
console, console-log, ttyconsole, qemu-monitor-command, qemu-monitor-event, dump,
send-process-signal, lxc-enter-namespace, domlaunchsecinfo, domsetlaunchsecstate, dom-fd-associate.

Each command is a thin layer over the domain handle's lifecycle methods
(:mod:`vsh.api.lifecycle`), whose errors already carry virsh's first line
(``Failed to suspend domain 'vm1'``); the console's terminal side is :mod:`vsh.ui.console`.
"""

from __future__ import annotations

import sys

from vsh.api.lifecycle import DUMP_FORMATS
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
               Opt("reset-nvram", kind="bool", help="re-initialize NVRAM from its pristine template")],
         mutating=True, examples=("start vm1", "start vm1 --paused", "start vm1 --console"),
         description="Boot a defined domain under its own supervisor process. The command returns\n"
                     "as soon as the guest's CPUs run (or, with --paused, once QEMU is ready).")
def start(ctx, domain, console=False, paused=False, autodestroy=False, bypass_cache=False,
          force_boot=False, reset_nvram=False):
    dom = ctx.conn.lookup_domain(domain)
    st = dom.start(paused=paused, force_boot=force_boot, bypass_cache=bypass_cache, reset_nvram=reset_nvram)
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
               Opt("mode", kind="string", help="shutdown mode: acpi (default) or agent, or both: acpi,agent")],
         mutating=True,
         description="Press the guest's ACPI power button (or, with --mode agent, ask the guest agent\n"
                     "to power off; with acpi,agent the agent first, ACPI when it fails). The guest\n"
                     "decides what to do; the domain stops once it powers off (see domstate, or use destroy).")
def shutdown(ctx, domain, mode=None):
    dom = ctx.conn.lookup_domain(domain)
    st = dom.shutdown(mode=mode)
    return Message(f"Domain '{dom.name}' is being shutdown", json_data=_state_json(st))


@command("reboot", group="domain", summary="reboot a domain",
         opts=[DOMAIN,
               Opt("mode", kind="string", help="reboot mode: acpi (default), agent or reset, or a list: acpi,agent")],
         mutating=True,
         description="With acpi, press the ACPI power button and boot the guest again when it\n"
                     "powers off (libvirt's \"fake reboot\"); a guest that ignores ACPI does not\n"
                     "reboot. With agent, the guest agent reboots the guest. With reset, reset the\n"
                     "machine at once.")
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


# -- dump, monitor events ----------------------------------------------------------------------


@command("dump", group="domain", summary="dump the core of a domain to a file for analysis",
         opts=[DOMAIN, Opt("file", kind="file", required=True, positional=True, help="where to dump the core"),
               Opt("live", kind="bool", help="perform a live core dump if supported"),
               Opt("crash", kind="bool", help="crash the domain after core dump"),
               Opt("bypass-cache", kind="bool", help="avoid file system cache when dumping"),
               Opt("reset", kind="bool", help="reset the domain after core dump"),
               Opt("verbose", kind="bool", help="display the progress of dump"),
               Opt("memory-only", kind="bool", help="dump domain's memory only"),
               Opt("format", kind="enum", choices=DUMP_FORMATS, help="specify the format of memory-only dump")],
         mutating=True, examples=("dump vm1 /tmp/vm1.core --memory-only", "dump vm1 vm1.kdump --memory-only --format kdump-zlib"),
         description="Write the guest's memory to a file with QEMU's dump-guest-memory (an ELF core\n"
                     "that crash(8) and gdb read, or a kdump / Windows dump with --format). The\n"
                     "guest's vCPUs stop while it is written; --crash stops the domain afterwards,\n"
                     "--reset resets it.")
def dump(ctx, domain, file, live=False, crash=False, bypass_cache=False, reset=False, verbose=False,
         memory_only=False, format=None):
    if format is not None and not memory_only:
        raise VshError("--format only works with --memory-only")
    dom = ctx.conn.lookup_domain(domain)
    if verbose and not ctx.quiet:
        sys.stderr.write("\rDump: [  0 %]")
    try:
        done = dom.dump(file, fmt=format, memory_only=memory_only, live=live, crash=crash, reset=reset,
                        bypass_cache=bypass_cache)
    except VshError as err:
        raise err.with_context(f"Failed to core dump domain '{dom.name}' to {file}") from None
    if verbose and not ctx.quiet:
        sys.stderr.write("\rDump: [100 %]")
    return Message(f"\nDomain '{dom.name}' dumped to {file}", json_data={"name": dom.name, **done})


@command("qemu-monitor-event", group="domain", summary="QEMU Monitor Events",
         opts=[Opt("domain", kind="domain", positional=True, help="filter by domain name, id or uuid"),
               Opt("event", help="filter by event name"),
               Opt("pretty", kind="bool", help="pretty-print any JSON output"),
               Opt("loop", kind="bool", help="loop until timeout or interrupt, rather than one-shot"),
               Opt("timeout", kind="int", help="timeout seconds"),
               Opt("regex", kind="bool", help="treat event as a regex rather than literal filter"),
               Opt("no-case", kind="bool", help="treat event case-insensitively"),
               Opt("timestamp", kind="bool", help="show timestamp for each printed event")],
         examples=("qemu-monitor-event vm1 --loop", "qemu-monitor-event vm1 --event STOP --timeout 10"),
         description="Print the QEMU monitor events of a running domain as they come (every domain\n"
                     "that runs when none is named): the first one, or all of them with --loop, until\n"
                     "the timeout, an interrupt or the domain's end. With --json each event is one JSON\n"
                     "line ({\"domain\", \"event\", \"data\", \"timestamp\"}), then the count.")
def qemu_monitor_event(ctx, domain=None, event=None, pretty=False, loop=False, timeout=None, regex=False,
                       no_case=False, timestamp=False):
    import json

    match = _event_filter(event, regex, no_case)
    doms = [ctx.conn.lookup_domain(domain)] if domain else \
        [ctx.conn.lookup_domain(d["name"]) for d in ctx.conn.list_domains(active=True)]
    if timeout is not None and timeout < 1:
        raise VshError("invalid timeout")
    plain = event if event and not (regex or no_case) else None
    count, timed_out = 0, True
    try:
        for dom, ev in _merged(doms, plain, timeout):
            if ev is None:
                timed_out = False
                break
            if not match(ev["event"]):
                continue
            if ctx.json:
                ctx.out.write(json.dumps({"domain": dom.name, **ev}) + "\n")
            else:
                ctx.out.write(_event_line(dom.name, ev, pretty, timestamp))
            ctx.out.flush()
            count += 1
            if not loop:
                timed_out = False
                break
    except KeyboardInterrupt:
        ctx.out.write("event loop interrupted\n")
        timed_out = False
    if timed_out and timeout is not None and not ctx.json:
        ctx.out.write("event loop timed out\n")
    return Text(f"events received: {count}\n", json_data={"count": count})


def _event_filter(event, regex: bool, no_case: bool):
    if not event:
        return lambda name: True
    if regex:
        import re

        pattern = re.compile(event, re.IGNORECASE if no_case else 0)
        return lambda name: pattern.search(name) is not None
    if no_case:
        return lambda name: name.lower() == event.lower()
    return lambda name: name == event


def _merged(doms, event, timeout):
    """(domain, event) as the domains' streams give them; (None, None) when all have ended."""
    from vsh.ui.streams import merged

    yield from merged([(dom, dom.monitor_events(event, timeout=timeout)) for dom in doms], timeout)
    if timeout is None:
        yield None, None


def _event_line(name: str, ev: dict, pretty: bool, timestamp: bool) -> str:
    import json

    data = ev.get("data")
    details = None if data is None else json.dumps(data, separators=(",", ":"))
    if pretty and data is not None:
        details = json.dumps(data, indent=2, separators=(",", ": "))
    if timestamp:
        import time

        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}" + \
            time.strftime("%z", time.localtime(now))
        return f"{stamp}: event {ev['event']} for domain '{name}': {details or '<null>'}\n"
    ts = ev.get("timestamp") or {}
    return (f"event {ev['event']} at {ts.get('seconds', 0)}.{ts.get('microseconds', 0):06d} "
            f"for domain '{name}': {details or '<null>'}\n")


# -- what libvirt's QEMU driver refuses, and launch security -----------------------------------


SIGNALS = ("nop", "hup", "int", "quit", "ill", "trap", "abrt", "bus", "fpe", "kill", "usr1", "segv", "usr2",
           "pipe", "alrm", "term", "stkflt", "chld", "cont", "stop", "tstp", "ttin", "ttou", "urg", "xcpu",
           "xfsz", "vtalrm", "prof", "winch", "poll", "pwr", "sys", *(f"rt{i}" for i in range(33)))


def signal_number(signame: str) -> int:
    """virsh's reading of a signal: a number, or a name with or without ``sig``/``sig_``."""
    name = signame.lower()
    try:
        return int(name)
    except ValueError:
        pass
    name = name[4:] if name.startswith("sig_") else name[3:] if name.startswith("sig") else name
    if name not in SIGNALS:
        raise VshError(f"malformed signal name: {signame}")
    return SIGNALS.index(name)


@command("qemu-attach", group="domain", summary="QEMU Attach",
         opts=[Opt("pid", kind="int", required=True, positional=True, help="pid")], mutating=True,
         examples=("qemu-attach 4321",),
         description="Attach to an existing QEMU process. libvirt's QEMU driver no longer can (libvirt 5.5\n"
                     "removed it) and neither can vsh: start domains from their XML instead.")
def qemu_attach(ctx, pid):
    if pid <= 0:
        raise VshError(f"numerical value {pid} for <pid> option is out of range")
    ctx.conn.qemu_attach(pid)
    return Message(f"Domain attached to pid {pid}")


@command("dom-fd-associate", group="domain", summary="associate a FD with a domain",
         opts=[DOMAIN, Opt("name", kind="string", required=True, positional=True, help="name of the FD group"),
               Opt("pass-fds", kind="string", required=True, positional=True,
                   help="file descriptors N,M,... to associate"),
               Opt("seclabel-writable", kind="bool", help="use seclabels allowing writes"),
               Opt("seclabel-restore", kind="bool", help="try to restore security label after use if possible")],
         mutating=True, examples=("dom-fd-associate vm1 --name data --pass-fds 3",),
         description="Hand this vsh's open file descriptors to the domain as the fd group NAME, for as long\n"
                     "as the connection (this batch or shell session) lasts: a disk whose <source> says\n"
                     "fdgroup='NAME' then uses them instead of opening its path when the domain starts\n"
                     "(e.g. vsh 'dom-fd-associate vm1 data 3; start vm1' 3<>disk.img).")
def dom_fd_associate(ctx, domain, name, pass_fds, seclabel_writable=False, seclabel_restore=False):
    from vsh.core.errors import InvalidArgument

    fds = []
    for word in pass_fds.split(","):
        if not word.strip().isdigit():
            raise InvalidArgument(f"Unable to parse FD number '{word}'")
        fds.append(int(word))
    ctx.conn.lookup_domain(domain).fd_associate(name, fds, seclabel_writable=seclabel_writable,
                                                seclabel_restore=seclabel_restore)
    return None


@command("dompmwakeup", group="domain", summary="wakeup a domain from pmsuspended state",
         opts=[DOMAIN], mutating=True, examples=("dompmwakeup vm1",),
         description="Wake up a domain that was previously suspended by power management (the guest\n"
                     "suspended itself to RAM); QEMU's system_wakeup.")
def dompmwakeup(ctx, domain):
    dom = ctx.conn.lookup_domain(domain)
    try:
        dom.pm_wakeup()
    except VshError as err:
        raise err.with_context(f"Domain '{dom.name}' could not be woken up") from None
    return Message(f"Domain '{dom.name}' successfully woken up", json_data={"domain": dom.name})


@command("send-process-signal", group="domain", summary="Send signals to processes",
         opts=[DOMAIN, Opt("pid", kind="int", required=True, positional=True, help="the process ID"),
               Opt("signame", required=True, positional=True, help="the signal number or name")],
         mutating=True, examples=("send-process-signal vm1 1 sigterm",),
         description="Send a signal to a process inside an LXC container. Only libvirt's LXC driver\n"
                     "can; like libvirt's QEMU driver, vsh refuses it for its QEMU domains.")
def send_process_signal(ctx, domain, pid, signame):
    dom = ctx.conn.lookup_domain(domain)
    dom.send_process_signal(pid, signal_number(signame))


@command("lxc-enter-namespace", group="domain", summary="LXC Guest Enter Namespace",
         opts=[DOMAIN, Opt("noseclabel", kind="bool", help="Do not change process security label"),
               Opt("cmd", kind="argv", required=True, help="command to run")],
         mutating=True, examples=("lxc-enter-namespace vm1 -- /bin/ls",),
         description="Run a command in the namespaces of an LXC container. Only libvirt's LXC driver\n"
                     "has containers; like libvirt's QEMU driver, vsh refuses it for its QEMU domains.")
def lxc_enter_namespace(ctx, domain, cmd, noseclabel=False):
    if not cmd:
        raise VshError("No command to run")
    ctx.conn.lookup_domain(domain).lxc_enter_namespace(list(cmd), noseclabel=noseclabel)


@command("domlaunchsecinfo", group="domain", summary="Get domain launch security info",
         opts=[DOMAIN], examples=("domlaunchsecinfo vm1",),
         description="Print the launch-security (AMD SEV) measurement of a domain. Nothing for a\n"
                     "domain without <launchSecurity>, as libvirt; vsh runs no SEV guest (it needs\n"
                     "SEV hardware and firmware), so a domain with one is refused.")
def domlaunchsecinfo(ctx, domain):
    info = ctx.conn.lookup_domain(domain).launch_security_info()
    return Text("".join(f"{key:<15}: {value}\n" for key, value in info.items()), json_data=info)


@command("domsetlaunchsecstate", group="domain", summary="Set domain launch security state",
         opts=[DOMAIN, Opt("secrethdr", kind="file", required=True, help="path to file containing the secret header"),
               Opt("secret", kind="file", required=True, help="path to file containing the secret"),
               Opt("set-address", kind="int", help="physical address within the guest domain's memory to set the secret")],
         mutating=True, examples=("domsetlaunchsecstate vm1 --secrethdr hdr.b64 --secret secret.b64",),
         description="Inject a launch secret into a running AMD SEV guest. vsh runs no SEV guest (it\n"
                     "needs SEV hardware), so this is refused with libvirt's reason.")
def domsetlaunchsecstate(ctx, domain, secrethdr, secret, set_address=None):
    from vsh.core.inputfile import read_input_file

    dom = ctx.conn.lookup_domain(domain)
    texts = [read_input_file(path).decode("ascii", "replace").strip() for path in (secrethdr, secret)]
    try:
        dom.set_launch_security_state(texts[0], texts[1], set_address=set_address)
    except VshError as err:
        raise err.with_context("Unable to set launch security state") from None
