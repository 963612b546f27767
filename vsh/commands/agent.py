"""Commands that ask the guest agent: domfsinfo, domfsfreeze, domfsthaw, domfstrim, dompmsuspend,
guestinfo, guestvcpus, get-user-sshkeys, set-user-sshkeys, set-user-password, guest-agent-timeout,
qemu-agent-command, domtime.

Each is a thin layer over ``dom.agent`` (:mod:`vsh.api.agent`); the text is virsh's. What the guest
sends (names, mount points, keys, OS strings) is escaped before it reaches the terminal.
"""

from __future__ import annotations

from vsh.api.agent import SUSPEND_TARGETS
from vsh.core.errors import InvalidArgument, VshError
from vsh.core.escape import escape
from vsh.core.output import Message, Table, Text
from vsh.registry import Opt, command

DOMAIN = Opt("domain", kind="domain", required=True, positional=True, help="domain name, id or uuid")
AGENT_NOTE = ("Needs the QEMU guest agent: a <channel type='unix'> with <target type='virtio'\n"
              "name='org.qemu.guest_agent.0'/> in the domain's XML, and qemu-ga running in the guest.")


def _agent(ctx, domain):
    return ctx.conn.lookup_domain(domain).agent


@command("domfsinfo", group="domain", summary="Get information of domain's mounted filesystems",
         opts=[DOMAIN], examples=("domfsinfo vm1",),
         description="The guest's mounted filesystems, in mount order, and the domain's disks under each.\n"
                     + AGENT_NOTE)
def domfsinfo(ctx, domain):
    try:
        found = _agent(ctx, domain).fs_info()
    except VshError as err:
        raise err.with_context("Unable to get filesystem information") from None
    if not found:
        return Message("No filesystems are mounted in the domain", newline=False, json_data=[])
    rows = [[escape(f["mountpoint"]), escape(f["name"]), escape(f["fstype"]), escape(",".join(f["targets"]))]
            for f in found]
    return Table(["Mountpoint", "Name", "Type", "Target"], rows, json_data=found)


def _count(verb: str, count: int) -> Message:
    return Message(f"{verb} {count} filesystem(s)", json_data={"count": count})


@command("domfsfreeze", group="domain", summary="Freeze domain's mounted filesystems",
         opts=[DOMAIN, Opt("mountpoint", kind="argv", help="mountpoint path to be frozen")],
         mutating=True, examples=("domfsfreeze vm1", "domfsfreeze vm1 /mnt/data"),
         description="Freeze the guest's filesystems (all, or those mounted at the given paths) so that\n"
                     "a disk snapshot taken meanwhile is consistent; domfsthaw thaws them.\n" + AGENT_NOTE)
def domfsfreeze(ctx, domain, mountpoint=None):
    try:
        return _count("Froze", _agent(ctx, domain).fs_freeze(list(mountpoint or ())))
    except VshError as err:
        raise err.with_context("Unable to freeze filesystems") from None


@command("domfsthaw", group="domain", summary="Thaw domain's mounted filesystems",
         opts=[DOMAIN, Opt("mountpoint", kind="argv", help="mountpoint path to be thawed")],
         mutating=True, examples=("domfsthaw vm1",),
         description="Thaw the filesystems domfsfreeze froze.\n" + AGENT_NOTE)
def domfsthaw(ctx, domain, mountpoint=None):
    try:
        return _count("Thawed", _agent(ctx, domain).fs_thaw(list(mountpoint or ())))
    except VshError as err:
        raise err.with_context("Unable to thaw filesystems") from None


@command("domfstrim", group="domain", summary="Invoke fstrim on domain's mounted filesystems",
         opts=[DOMAIN, Opt("minimum", kind="int", help="Just a hint to ignore contiguous free ranges smaller than this (Bytes)"),
               Opt("mountpoint", kind="string", help="which mount point to trim")],
         mutating=True, examples=("domfstrim vm1", "domfstrim vm1 --minimum 1048576"),
         description="Discard the unused blocks of the guest's mounted filesystems (thin images shrink\n"
                     "where the disk passes discards on).\n" + AGENT_NOTE)
def domfstrim(ctx, domain, minimum=None, mountpoint=None):
    if minimum is not None and minimum < 0:
        raise InvalidArgument("Numeric value for <minimum> option is malformed or out of range")
    try:
        _agent(ctx, domain).fs_trim(mountpoint, minimum or 0)
    except VshError as err:
        raise err.with_context("Unable to invoke fstrim") from None
    return None


@command("dompmsuspend", group="domain",
         summary="suspend a domain gracefully using power management functions",
         opts=[DOMAIN, Opt("target", kind="enum", choices=tuple(SUSPEND_TARGETS), required=True, positional=True,
                           help="mem(Suspend-to-RAM), disk(Suspend-to-Disk), hybrid(Hybrid-Suspend)"),
               Opt("duration", kind="int", help="duration in seconds")],
         mutating=True, examples=("dompmsuspend vm1 mem",),
         description="Ask the guest OS to suspend itself (to RAM, disk or both); dompmwakeup wakes a\n"
                     "guest suspended to RAM. " + AGENT_NOTE)
def dompmsuspend(ctx, domain, target, duration=None):
    dom = ctx.conn.lookup_domain(domain)
    try:
        dom.agent.pm_suspend(target, duration or 0)
    except VshError as err:
        raise err.with_context(f"Domain '{dom.name}' could not be suspended") from None
    return Message(f"Domain '{dom.name}' successfully suspended", newline=False)


_INFO_OPTS = (("user", "users", "report active users"), ("os", "os", "report operating system information"),
              ("timezone", "timezone", "report timezone information"), ("hostname", "hostname", "report hostname"),
              ("filesystem", "filesystem", "report filesystem information"), ("disk", "disks", "report disk information"),
              ("interface", "interfaces", "report interface information"))


def _typed(value) -> str:
    """virsh's text of a typed parameter's value."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape(str(value))


@command("guestinfo", group="domain", summary="query information about the guest (via agent)",
         opts=[DOMAIN] + [Opt(name, kind="bool", help=text) for name, _t, text in _INFO_OPTS],
         examples=("guestinfo vm1", "guestinfo vm1 --os --hostname"),
         description="What the guest agent reports about the guest: users, OS, time zone, host name,\n"
                     "filesystems, disks, interfaces (all it supports when no option is given).\n" + AGENT_NOTE)
def guestinfo(ctx, domain, **flags):
    types = tuple(t for name, t, _text in _INFO_OPTS if flags.get(name))
    params = _agent(ctx, domain).guest_info(types)
    text = "".join(f"{escape(name):<20}: {_typed(value)}\n" for name, value in params)
    return Text(text, json_data=dict(params))


@command("guestvcpus", group="domain", summary="query or modify state of vcpu in the guest (via agent)",
         opts=[DOMAIN, Opt("cpulist", kind="string", help="list of cpus to enable or disable"),
               Opt("enable", kind="bool", help="enable cpus specified by cpulist"),
               Opt("disable", kind="bool", help="disable cpus specified by cpulist")],
         exclusive=(("enable", "disable"),), mutating=True,
         examples=("guestvcpus vm1", "guestvcpus vm1 --cpulist 1-2 --disable"),
         description="The guest's view of its CPUs (all, online, those it can take offline), or bring\n"
                     "the CPUs of --cpulist online (--enable) or offline (--disable).\n" + AGENT_NOTE)
def guestvcpus(ctx, domain, cpulist=None, enable=False, disable=False):
    if (enable or disable) and cpulist is None:
        raise InvalidArgument(f"Option --{'enable' if enable else 'disable'} is required by option --cpulist")
    if cpulist is not None and not (enable or disable):
        raise InvalidArgument("One of options --enable or --disable is required by option --cpulist")
    agent = _agent(ctx, domain)
    if cpulist is not None:
        agent.set_guest_vcpus(cpulist, enable)
        return None
    params = agent.guest_vcpus()
    return Text("".join(f"{name:<15}: {escape(value)}\n" for name, value in params), json_data=dict(params))


@command("get-user-sshkeys", group="domain", summary="list authorized SSH keys for given user (via agent)",
         opts=[DOMAIN, Opt("user", kind="string", required=True, positional=True, help="user to list authorized keys for")],
         examples=("get-user-sshkeys vm1 root",),
         description="The lines of the user's ~/.ssh/authorized_keys in the guest, one a line.\n" + AGENT_NOTE)
def get_user_sshkeys(ctx, domain, user):
    keys = _agent(ctx, domain).ssh_keys(user)
    return Text("".join(f"{escape(k)}\n" for k in keys), json_data=keys)


@command("set-user-sshkeys", group="domain",
         summary="manipulate authorized SSH keys file for given user (via agent)",
         opts=[DOMAIN, Opt("user", kind="string", required=True, positional=True, help="user to set authorized keys for"),
               Opt("file", kind="file", help="optional file to read keys from"),
               Opt("reset", kind="bool", help="clear out authorized keys file before adding new keys"),
               Opt("remove", kind="bool", help="remove keys from the authorized keys file")],
         exclusive=(("reset", "remove"),), mutating=True,
         examples=("set-user-sshkeys vm1 root --file ~/.ssh/id_ed25519.pub",
                   "set-user-sshkeys vm1 root --reset --file keys.pub"),
         description="Append the keys of --file to the user's authorized_keys in the guest; --reset\n"
                     "replaces the file's keys (with none when no --file), --remove takes them out.\n" + AGENT_NOTE)
def set_user_sshkeys(ctx, domain, user, file=None, reset=False, remove=False):
    if remove and not file:
        raise InvalidArgument("Option --file is required by option --remove")
    if not (reset or remove) and not file:
        raise InvalidArgument("Option --file is required")
    keys: list[str] = []
    if file:
        try:
            with open(file, encoding="utf-8") as f:
                keys = f.read(10 << 20).split("\n")
        except (OSError, UnicodeDecodeError) as err:
            raise InvalidArgument(f"Failed to open file '{file}': {getattr(err, 'strerror', None) or err}") from None
        if not any(k.strip() for k in keys):
            raise InvalidArgument(f"File {file} contains no keys")
    _agent(ctx, domain).set_ssh_keys(user, keys, "remove" if remove else "reset" if reset else "append")
    return None


@command("set-user-password", group="domain", summary="set the user password inside the domain",
         opts=[DOMAIN, Opt("user", kind="string", required=True, positional=True, help="the username"),
               Opt("password", kind="string", required=True, positional=True, help="the new password"),
               Opt("encrypted", kind="bool", help="the password is already encrypted")],
         mutating=True, examples=("set-user-password vm1 root 's3cret'",),
         description="Change a guest user's password (with --encrypted, a crypt(3) hash).\n" + AGENT_NOTE)
def set_user_password(ctx, domain, user, password, encrypted=False):
    dom = ctx.conn.lookup_domain(domain)
    dom.agent.set_user_password(user, password, encrypted)
    return Message(f"Password set successfully for {escape(user)} in {dom.name}", newline=False)


@command("guest-agent-timeout", group="domain", summary="Set the guest agent timeout",
         opts=[DOMAIN, Opt("timeout", kind="string", metavar="number", help="timeout seconds.")],
         mutating=True, examples=("guest-agent-timeout vm1 --timeout 10",),
         description="How long later agent commands on this domain wait for the agent, while it runs:\n"
                     "seconds, -1 the default (5 s), -2 (also without --timeout) without limit, 0 not at all.")
def guest_agent_timeout(ctx, domain, timeout=None):
    seconds = -2
    if timeout is not None:
        try:
            seconds = int(timeout, 10)
        except ValueError:
            raise InvalidArgument(f"Numeric value '{timeout}' for <timeout> option is malformed or out of "
                                  "range") from None
    _agent(ctx, domain).set_timeout(seconds)
    return None


@command("qemu-agent-command", group="domain", summary="QEMU Guest Agent Command",
         opts=[DOMAIN, Opt("timeout", kind="int", help="timeout seconds. must be positive."),
               Opt("async", kind="bool", help="execute command without waiting for timeout"),
               Opt("block", kind="bool", help="execute command without timeout"),
               Opt("pretty", kind="bool", help="pretty-print the output"),
               Opt("cmd", kind="argv", required=True, help="command")],
         mutating=True, examples=("qemu-agent-command vm1 '{\"execute\":\"guest-info\"}'",),
         description="Send one JSON command to the guest agent as it is and print its reply.\n" + AGENT_NOTE)
def qemu_agent_command(ctx, domain, cmd, timeout=None, pretty=False, **flags):
    import json

    if timeout is not None and timeout < 1:
        raise InvalidArgument("timeout must be positive")
    chosen = [name for name, on in (("timeout", timeout is not None), ("async", flags.get("async")),
                                    ("block", flags.get("block"))) if on]
    if len(chosen) > 1:
        raise InvalidArgument("timeout, async and block options are exclusive")
    wait = {"async": 0, "block": -2}.get(chosen[0] if chosen else "", timeout if timeout is not None else -1)
    reply = _agent(ctx, domain).command(" ".join(cmd), wait)
    if reply is None:
        return Text("\n", json_data=None)
    if pretty:
        try:
            reply = json.dumps(json.loads(reply), indent=2)
        except ValueError:
            pass
    return Text(escape(reply, keep_newlines=True) + "\n", json_data=json.loads(reply))


@command("domtime", group="monitor", summary="domain time",
         opts=[DOMAIN, Opt("now", kind="bool", help="set to the time of the host running virsh"),
               Opt("pretty", kind="bool", help="print domain's time in human readable form"),
               Opt("sync", kind="bool", help="instead of setting given time, synchronize from domain's RTC"),
               Opt("time", kind="int", help="time to set")],
         exclusive=(("time", "now"), ("time", "sync"), ("now", "sync")),
         examples=("domtime vm1", "domtime vm1 --pretty", "domtime vm1 --now"),
         description="The guest's clock (seconds since the epoch, or UTC with --pretty), or set it: to\n"
                     "--time, to this host's time (--now), or from its own hardware clock (--sync).\n" + AGENT_NOTE)
def domtime(ctx, domain, now=False, pretty=False, sync=False, time=None):
    agent = _agent(ctx, domain)
    if time is not None or now or sync:
        import time as clock

        agent.set_time(int(clock.time()) if now else (time or 0), 0, sync)
        return None
    seconds, nseconds = agent.get_time()
    if pretty:
        import datetime

        when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
        return Text(f"Time: {when:%Y-%m-%d %H:%M:%S}", json_data={"seconds": seconds, "nseconds": nseconds})
    return Text(f"Time: {seconds}", json_data={"seconds": seconds, "nseconds": nseconds})
