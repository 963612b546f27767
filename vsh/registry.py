"""The command table.

A command is declared once, with :func:`command`::

    @command("dominfo", group="monitor", summary="domain information",
             opts=[Opt("domain", kind="domain", required=True, positional=True,
                       help="domain name, id or uuid")])
    def dominfo(ctx, domain):
        ...

From that one declaration come dispatch in every mode, ``help``, ``CMD --help``,
tab completion, the shell completion scripts and ``man/vsh.1``.

Command modules are found through the ``vsh.commands`` entry-point group. To
keep single-shot start-up cheap, a generated static index (``vsh/_index.py``)
maps every built-in command name to its module, group and summary; a module is
imported only when one of its commands runs. Entry points that the index does not
know (third-party plug-ins) are loaded when a name is not in the index, or when
everything is listed (``help``, completion). A plug-in that fails to import
shows up as a broken command that reports why; it never takes the shell down.

Option syntax is virsh's: ``--opt value`` or ``--opt=value``, boolean flags take
no value, positional words fill the options declared ``positional`` in order,
``--`` ends option parsing, and ``--help`` after any command shows its help.
"""

from __future__ import annotations

import sys

from vsh.core.errors import InvalidArgument, ParseError, VshError

GROUPS: list[tuple[str, str]] = [
    ("domain", "Domain Management"),
    ("monitor", "Domain Monitoring"),
    ("events", "Domain Events"),
    ("host", "Host and Hypervisor"),
    ("snapshot", "Snapshot"),
    ("pool", "Storage Pool"),
    ("volume", "Storage Volume"),
    ("network", "Networking"),
    ("guest", "Guest Disks (guestfish)"),
    ("virsh", "vsh itself"),
]

class Kind:
    """An argument kind: what its values are (help) and how they complete.

    ``completer`` names a function ``complete_<completer>(ctx, opt, prefix, given)`` of
    :mod:`vsh.completion` (or is such a callable, for plug-ins); ``None`` only for kinds
    whose values are free text or numbers (``FREE``), where there is nothing to offer.
    """

    __slots__ = ("name", "help", "completer")

    def __init__(self, name: str, help: str, completer=None):
        self.name = name
        self.help = help
        self.completer = completer


# Argument kinds: they drive value conversion, validation and completion.
KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("bool", "flag"),
    Kind("string", "string"),
    Kind("int", "number"),
    Kind("scaled", "size with units (default KiB)"),
    Kind("bytes", "size with units (default bytes)"),
    Kind("argv", "remaining words"),
    Kind("domain", "domain name, id or uuid", "domains"),
    Kind("file", "host file path", "files"),
    Kind("dir", "host directory", "dirs"),
    Kind("enum", "one of a fixed set", "choices"),
    Kind("xpath", "XPath expression", "xpaths"),
    Kind("guestpath", "path inside the guest", "guest_paths"),
    Kind("guestdevice", "guest device (/dev/sda1, /dev/VG/LV)", "guest_devices"),
    Kind("snapshot", "snapshot name", "snapshots"),
    Kind("device", "disk of a domain (its target, e.g. vda, or its source path)", "devices"),
    Kind("interface", "network interface of a domain (its MAC address or host-side name)", "interfaces"),
    Kind("pool", "storage pool name", "pools"),
    Kind("volume", "volume name or path", "volumes"),
    Kind("network", "network name", "networks"),
    Kind("domevent", "domain event type (event --list)", "domain_events"),
    Kind("command", "command name", "commands"),
)}
# kinds whose values nobody can list: flags take none, the others are free text or numbers
FREE = frozenset({"bool", "string", "int", "scaled", "bytes", "argv"})


def add_kind(name: str, help: str, completer) -> None:
    """A plug-in's own argument kind, with its completer ``fn(ctx, opt, prefix, given) -> list[str]``."""
    KINDS[name] = Kind(name, help, completer)


class QuitShell(Exception):
    """Raised by ``quit``: the interactive shell ends."""


class Opt:
    """One option of a command (virsh's ``vshCmdOptDef``)."""

    def __init__(self, name: str, kind: str = "string", required: bool = False, positional: bool = False,
                 help: str = "", choices: tuple = (), default=None, short: str | None = None,
                 metavar: str | None = None, repeat: bool = False):
        self.name = name
        self.kind = kind
        self.required = required
        self.positional = positional
        self.help = help
        self.choices = tuple(choices)
        self.default = default
        self.short = short
        self.metavar = metavar
        self.repeat = repeat  # may be given more than once: the handler gets a list of values
        self.dest = name.replace("-", "_")  # the handler's keyword argument

    def __repr__(self) -> str:
        return f"Opt({self.name!r}, kind={self.kind!r})"

    @property
    def is_flag(self) -> bool:
        return self.kind == "bool"

    @property
    def meta(self) -> str:
        """What the value looks like in help: ``<string>`` or ``<number>``."""
        return self.metavar or ("number" if self.kind in ("int", "scaled", "bytes") else "string")

    def synopsis(self) -> str:
        """virsh's synopsis style: ``<domain>``, ``[--flag]``, ``[--opt <string>]``, ``[<string>]...``."""
        if self.is_flag:
            return f"[--{self.name}]"
        if self.kind == "argv":
            return f"<{self.name}>..." if self.required else f"[<{self.name}>]..."
        if self.positional and self.required:
            return f"<{self.name}>"
        text = f"--{self.name} <{self.meta}>"
        if self.repeat:
            return f"{text}..." if self.required else f"[{text}]..."
        return text if self.required else f"[{text}]"

    def help_label(self) -> str:
        """The left column of ``help CMD``'s OPTIONS."""
        if self.is_flag:
            left = f"--{self.name}"
        elif self.positional or self.kind == "argv":
            left = f"[--{self.name}] <{self.meta}>"
        else:
            left = f"--{self.name} <{self.meta}>"
        return f"-{self.short}, {left}" if self.short else left


class Command:
    """One command, declared once."""

    def __init__(self, name: str, group: str, summary: str, handler=None, opts: list | None = None,
                 description: str = "", aliases: tuple = (), examples: tuple = (), mutating: bool = False,
                 exclusive: tuple = (), hidden: bool = False, module: str = "", broken: str | None = None):
        self.name = name
        self.group = group
        self.summary = summary
        self.handler = handler
        self.opts = list(opts or [])
        self.description = description
        self.aliases = tuple(aliases)
        self.examples = tuple(examples)
        self.mutating = mutating
        self.exclusive = tuple(exclusive)  # pairs of option names that cannot be combined
        self.hidden = hidden
        self.module = module
        self.broken = broken  # why the plug-in could not be loaded

    def __repr__(self) -> str:
        return f"Command({self.name!r})"

    def opt(self, name: str) -> Opt | None:
        for opt in self.opts:
            if opt.name == name:
                return opt
        return None

    def synopsis(self) -> str:
        return " ".join([self.name] + [o.synopsis() for o in self.opts])


_DECLARED: dict[str, list[Command]] = {}

JSON_OPT = Opt("json", kind="bool", help="print one JSON document")
#: virsh's --config/--live/--current of the commands that change or query either definition
CONFIG_OPT = Opt("config", kind="bool", help="affect next boot")
LIVE_OPT = Opt("live", kind="bool", help="affect running domain")
CURRENT_OPT = Opt("current", kind="bool", help="affect current domain")
#: --current names one definition, so it goes with neither of the others
CURRENT_EXCLUSIVE = (("current", "live"), ("current", "config"))


def check_readonly(ctx, name: str) -> None:
    """For commands that are read-only in one mode (a query, ``--print-xml``) and not in the other."""
    if ctx.readonly:
        raise VshError(f"operation forbidden: read only access prevents {name}")


def command(name: str, *, group: str, summary: str, opts: list | None = None,
            description: str = "", aliases: tuple = (), examples: tuple = (),
            mutating: bool = False, exclusive: tuple = (), hidden: bool = False):
    """Declare a command; the decorated function is its handler."""

    def wrap(fn):
        declared = list(opts or [])
        if not any(o.name == "json" for o in declared):
            declared.append(JSON_OPT)
        cmd = Command(name=name, group=group, summary=summary, handler=fn, opts=declared,
                      description=description or (fn.__doc__ or "").strip(), aliases=tuple(aliases),
                      examples=tuple(examples), mutating=mutating, exclusive=tuple(exclusive),
                      hidden=hidden, module=fn.__module__)
        _DECLARED.setdefault(fn.__module__, []).append(cmd)
        fn.vsh_command = cmd
        return fn

    return wrap


def _entry_points() -> list:
    from importlib.metadata import entry_points

    return list(entry_points(group="vsh.commands"))


class Registry:
    """Finds commands: the static index first, entry points when needed."""

    def __init__(self, use_index: bool = True):
        self._loaded: dict[str, list[Command]] = {}  # module -> commands
        self._by_name: dict[str, Command] = {}
        self._all_loaded = False
        self._index: dict = {}
        self._aliases: dict = {}
        if use_index:
            try:
                from vsh import _index

                self._index = _index.COMMANDS
                self._aliases = _index.ALIASES
            except ImportError:
                self._index = {}

    # -- loading -----------------------------------------------------------
    def _load_module(self, module: str, ep_name: str | None = None) -> list[Command]:
        if module in self._loaded:
            return self._loaded[module]
        try:
            __import__(module)      # (importlib itself would cost a single-shot command ~0.5 ms)
            cmds = list(_DECLARED.get(module, []))
        except Exception as exc:  # a broken plug-in must not take the shell down
            reason = f"{type(exc).__name__}: {exc}"
            cmds = []
            for name, entry in self._index.items():
                if entry[0] == module:
                    cmds.append(Command(name=name, group=entry[1], summary=entry[2], module=module,
                                        broken=reason))
            if not cmds:
                cmds = [Command(name=ep_name or module.rsplit(".", 1)[-1], group="virsh",
                                summary=f"(broken plug-in {module}: {reason})", module=module, broken=reason)]
        self._loaded[module] = cmds
        for cmd in cmds:
            self._by_name.setdefault(cmd.name, cmd)
            for alias in cmd.aliases:
                self._by_name.setdefault(alias, cmd)
        return cmds

    def load_all(self) -> None:
        if self._all_loaded:
            return
        for ep in _entry_points():
            self._load_module(ep.value.split(":")[0], ep.name)
        self._all_loaded = True

    def get(self, name: str) -> Command | None:
        cmd = self._by_name.get(name)
        if cmd is not None:
            return cmd
        target = self._aliases.get(name, name)
        entry = self._index.get(target)
        if entry is not None:
            self._load_module(entry[0])
            cmd = self._by_name.get(name)
            if cmd is not None:
                return cmd
        if not self._all_loaded:
            self.load_all()
            return self._by_name.get(name)
        return None

    def commands(self) -> list[Command]:
        """Every command (loads all modules)."""
        self.load_all()
        seen = {}
        for cmds in self._loaded.values():
            for cmd in cmds:
                seen.setdefault(cmd.name, cmd)
        return list(seen.values())

    def names(self) -> list[str]:
        """Visible command names, cheaply (index plus third-party plug-ins)."""
        return [s[0] for s in self.summaries()]

    def summaries(self) -> list[tuple[str, str, str, bool]]:
        """(name, group, summary, hidden) for every command, without importing built-in modules."""
        out: dict[str, tuple] = {}
        indexed_modules = {entry[0] for entry in self._index.values()}
        for name, entry in self._index.items():
            if not entry[3]:
                out[name] = (name, entry[1], entry[2], entry[3])
        for ep in _entry_points():
            module = ep.value.split(":")[0]
            if module in indexed_modules:
                continue
            for cmd in self._load_module(module, ep.name):
                if not cmd.hidden:
                    out.setdefault(cmd.name, (cmd.name, cmd.group, cmd.summary, cmd.hidden))
        for cmds in self._loaded.values():
            for cmd in cmds:
                if not cmd.hidden:
                    out.setdefault(cmd.name, (cmd.name, cmd.group, cmd.summary, cmd.hidden))
        return list(out.values())

    def suggest(self, name: str) -> str | None:
        import difflib

        names = [s[0] for s in self.summaries()] + list(self._aliases)
        lowered = {n.lower(): n for n in names}
        if name.lower() in lowered:  # commands are case-sensitive: DOMSTATE → domstate
            return lowered[name.lower()]
        match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.75)
        return lowered[match[0]] if match else None


_REGISTRY: Registry | None = None


def registry() -> Registry:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry()
    return _REGISTRY


# -- argument parsing (virsh's grammar) -------------------------------------------
def parse_args(cmd: Command, words: list[str], partial: bool = False) -> dict:
    """Turn the words after the command name into ``{dest: raw value}``.

    Raises :class:`ParseError` for what virsh rejects before running anything.
    Values stay strings here; :func:`convert` checks them when the command runs.
    ``partial``: the words typed so far (completion): required options may be missing.
    """
    values: dict = {}
    positional = [o for o in cmd.opts if o.positional or o.kind == "argv"]
    options_done = False
    i = 0
    n = len(words)
    while i < n:
        word = words[i]
        i += 1
        if not options_done and word == "--":
            options_done = True
            continue
        if not options_done and word.startswith("--") and len(word) > 2:
            name, eq, inline = word[2:].partition("=")
            opt = cmd.opt(name)
            if opt is None:
                raise ParseError(f"command '{cmd.name}' doesn't support option --{name}")
            if opt.dest in values and opt.kind != "argv" and not opt.repeat:
                raise ParseError(f"option --{name} already seen")
            if opt.is_flag:
                if eq:
                    raise ParseError(f"invalid '=' after option --{name}")
                values[opt.dest] = True
                continue
            if eq:
                value = inline
            else:
                if i >= n:
                    raise ParseError(f"expected syntax: --{name} <{opt.metavar or 'string'}>")
                value = words[i]
                i += 1
            if opt.kind == "argv" or opt.repeat:
                values.setdefault(opt.dest, []).append(value)
            else:
                values[opt.dest] = value
            continue
        if not options_done and word.startswith("-") and len(word) == 2 and word[1].isalpha():
            opt = next((o for o in cmd.opts if o.short == word[1]), None)
            if opt is not None:
                if opt.dest in values:
                    raise ParseError(f"option -{word[1]} already seen")
                if opt.is_flag:
                    values[opt.dest] = True
                else:
                    if i >= n:
                        raise ParseError(f"expected syntax: -{word[1]} <{opt.metavar or 'string'}>")
                    values[opt.dest] = words[i]
                    i += 1
                continue
        # a positional word fills the next unset positional option
        target = next((o for o in positional if o.dest not in values or o.kind == "argv"), None)
        if target is None:
            raise ParseError(f"unexpected data '{word}'")
        if target.kind == "argv":
            values.setdefault(target.dest, []).append(word)
        else:
            values[target.dest] = word
    for opt in cmd.opts:
        if opt.required and opt.dest not in values and not partial:
            raise ParseError(f"command '{cmd.name}' requires <{opt.name}> option")
    return values


def convert(cmd: Command, opt: Opt, raw):
    """Check and convert one raw option value (run-time errors, like virsh)."""
    if opt.is_flag:
        return bool(raw)
    if opt.kind == "argv":
        return list(raw)
    if raw == "" and opt.kind not in ("string", "argv", "file"):
        raise InvalidArgument(f"Failed to get option '{opt.name}': Option argument is empty")
    if raw == "" and opt.required:
        raise InvalidArgument(f"Failed to get option '{opt.name}': Option argument is empty")
    if opt.kind == "int":
        try:
            value = int(raw, 10)
        except ValueError:
            value = -1
        if value < 0:
            raise InvalidArgument(f"Numeric value '{raw}' for <{opt.name}> option is malformed or out of range")
        return value
    if opt.kind in ("scaled", "bytes"):
        from vsh.core.units import parse_scaled

        if opt.kind == "bytes":
            return parse_scaled(raw, 1, opt.name)
        return -(-parse_scaled(raw, 1024, opt.name) // 1024)  # KiB, rounded up as virsh does
    if opt.kind == "enum" and opt.choices and raw not in opt.choices:
        raise InvalidArgument(f"invalid value '{raw}' for --{opt.name}; expected one of: {', '.join(opt.choices)}")
    return raw


def bind(cmd: Command, raw: dict) -> dict:
    """Convert every value, fill defaults and check exclusive option pairs."""
    for a, b in cmd.exclusive:
        if raw.get(a.replace("-", "_")) is not None and raw.get(b.replace("-", "_")) is not None:
            raise InvalidArgument(f"Options --{a} and --{b} are mutually exclusive")
    kwargs = {}
    for opt in cmd.opts:
        if opt.dest in raw and opt.repeat and isinstance(raw[opt.dest], list):
            kwargs[opt.dest] = [convert(cmd, opt, value) for value in raw[opt.dest]]
        elif opt.dest in raw:
            kwargs[opt.dest] = convert(cmd, opt, raw[opt.dest])
        elif opt.repeat:
            kwargs[opt.dest] = []
        elif opt.is_flag:
            kwargs[opt.dest] = False
        elif opt.kind == "argv":
            kwargs[opt.dest] = []
        else:
            kwargs[opt.dest] = opt.default
    return kwargs


# -- help ------------------------------------------------------------------------
def group_title(keyword: str) -> str:
    return dict(GROUPS).get(keyword, keyword)


def help_overview(reg: Registry) -> str:
    groups: dict[str, list] = {}
    for name, group, summary, _hidden in reg.summaries():
        groups.setdefault(group, []).append((name, summary))
    out = ["Grouped commands:\n\n"]
    order = [g for g, _ in GROUPS] + sorted(set(groups) - {g for g, _ in GROUPS})
    for keyword in order:
        if keyword not in groups:
            continue
        out.append(help_group(keyword, groups[keyword]))
    return "".join(out)


def help_group(keyword: str, items: list) -> str:
    lines = [f" {group_title(keyword)} (help keyword '{keyword}'):\n"]
    for name, summary in items:
        lines.append(f"    {name:<31}{summary}\n")
    lines.append("\n")
    return "".join(lines)


def help_command(cmd: Command) -> str:
    out = ["  NAME\n", f"    {cmd.name} - {cmd.summary}\n"]
    if cmd.aliases:
        out.append(f"    (aliases: {', '.join(cmd.aliases)})\n")
    out += ["\n", "  SYNOPSIS\n", f"    {cmd.synopsis()}\n"]
    if cmd.description:
        out += ["\n", "  DESCRIPTION\n"]
        out += [f"    {line}\n" if line else "\n" for line in cmd.description.splitlines()]
    if cmd.opts:
        out += ["\n", "  OPTIONS\n"]
        for opt in cmd.opts:
            kind = KINDS.get(opt.kind)
            text = opt.help or (kind.help if kind else "")
            if opt.choices:
                text += f" ({'|'.join(opt.choices)})"
            out.append(f"    {opt.help_label():<15}  {text}\n")
    if cmd.examples:
        out += ["\n", "  EXAMPLES\n"]
        out += [f"    {ex}\n" for ex in cmd.examples]
    out.append("\n")
    return "".join(out)
