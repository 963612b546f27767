"""Completion of command lines, shared by the REPL and ``vsh complete`` (the shell scripts).

Every argument kind of the registry (:data:`vsh.registry.KINDS`) names its completer
here: ``complete_<name>(ctx, opt, prefix, given)`` returns the candidates for option
``opt`` that start with ``prefix``; ``given`` holds the raw values of the options typed before it (so a
snapshot name completes among the snapshots of the domain already given). Completers
reach everything through the connection's API, never the store itself.
"""

from __future__ import annotations

from vsh.core.errors import VshError
from vsh.registry import GROUPS, KINDS, Registry, parse_args, registry


def complete(ctx, words: list[str], reg: Registry | None = None) -> list[str]:
    """Candidates for the last word of ``words`` (an empty last word: the next one)."""
    reg = reg or registry()
    if not words:
        words = [""]
    if len(words) == 1:
        return _command_names(reg, words[0])
    cmd = reg.get(words[0].lstrip("-") or words[0])
    if cmd is None or cmd.broken:
        return []
    prefix = words[-1]
    before = words[1:-1]
    if cmd.name == "help" and not prefix.startswith("-"):
        if before:
            return []
        groups = {group for _name, group, _summary, _hidden in reg.summaries()}
        return _command_names(reg, prefix) + [g for g, _title in GROUPS if g in groups and g.startswith(prefix)]
    given = _given(cmd, before)
    # value of an option given by name?
    if before and before[-1].startswith("--"):
        opt = cmd.opt(before[-1][2:])
        if opt is not None and not opt.is_flag:
            return complete_value(ctx, opt, prefix, given)
    seen = {w[2:].split("=")[0] for w in before if w.startswith("--")}
    if prefix.startswith("-"):
        return [f"--{o.name}" for o in cmd.opts if f"--{o.name}".startswith(prefix) and o.name not in seen]
    # positional value: which positional option is next?
    filled = 0
    skip = False
    for w in before:
        if skip:
            skip = False
            continue
        if w.startswith("--"):
            opt = cmd.opt(w[2:].split("=")[0])
            if opt is not None and not opt.is_flag and "=" not in w:
                skip = True
            continue
        filled += 1
    positional = [o for o in cmd.opts if (o.positional or o.kind == "argv") and o.name not in seen]
    seen.update(o.name for o in positional[:filled] if o.kind != "argv")
    candidates: list[str] = []
    if filled < len(positional):
        candidates = complete_value(ctx, positional[filled], prefix, given)
    elif positional and positional[-1].kind == "argv":
        candidates = complete_value(ctx, positional[-1], prefix, given)
    if prefix == "":
        # values of the next argument first, then the options not given yet (virsh lists only these)
        candidates += [f"--{o.name}" for o in cmd.opts if o.name not in seen]
    return candidates


def _given(cmd, before: list[str]) -> dict:
    """The raw values typed so far, as far as they parse (an option still waiting for its value,
    the one being completed, is left out)."""
    words = [w for w in before if w != "--"]
    if words and words[-1].startswith("--"):
        opt = cmd.opt(words[-1][2:])
        if opt is not None and not opt.is_flag:
            words = words[:-1]
    try:
        return parse_args(cmd, words, partial=True)
    except VshError:
        return {}


def _command_names(reg: Registry, prefix: str) -> list[str]:
    names = [name for name, *_ in reg.summaries() if name.startswith(prefix)]
    names += sorted(alias for alias in getattr(reg, "_aliases", {}) if alias.startswith(prefix))
    return names


def completer_of(kind: str):
    """The completer function of an argument kind, or None for a free-text kind."""
    entry = KINDS.get(kind)
    if entry is None or entry.completer is None:
        return None
    if callable(entry.completer):
        return entry.completer
    return globals()[f"complete_{entry.completer}"]


def complete_value(ctx, opt, prefix: str, given: dict | None = None) -> list[str]:
    fn = completer_of(opt.kind)
    if fn is None:      # free text, unless the option has a fixed set of values
        return complete_choices(ctx, opt, prefix, given or {})
    try:
        return list(fn(ctx, opt, prefix, given or {}))
    except Exception:   # a completer must never take the shell down (a dead store, a bad URI...)
        return []


# -- the completers of the built-in kinds ---------------------------------------------------


def complete_files(ctx, opt, prefix: str, given: dict, dirs_only: bool = False) -> list[str]:
    import glob
    import os

    out = []
    for path in sorted(glob.glob(glob.escape(os.path.expanduser(prefix)) + "*")):
        if os.path.isdir(path):
            out.append(path + "/")
        elif not dirs_only:
            out.append(path)
    return out


def complete_dirs(ctx, opt, prefix: str, given: dict) -> list[str]:
    return complete_files(ctx, opt, prefix, given, dirs_only=True)


def complete_choices(ctx, opt, prefix: str, given: dict) -> list[str]:
    return [c for c in opt.choices if c.startswith(prefix)]


def complete_commands(ctx, opt, prefix: str, given: dict) -> list[str]:
    return _command_names(registry(), prefix)


def complete_domains(ctx, opt, prefix: str, given: dict) -> list[str]:
    return sorted(d["name"] for d in ctx.conn.list_domains() if d["name"].startswith(prefix))


def _domain(ctx, given: dict):
    name = given.get("domain")
    return ctx.conn.lookup_domain(name) if name else None


def complete_pools(ctx, opt, prefix: str, given: dict) -> list[str]:
    return [name for name in ctx.conn.storage.pool_names() if name.startswith(prefix)]


def complete_volumes(ctx, opt, prefix: str, given: dict) -> list[str]:
    """Volume names, or their paths once the word starts with '/'."""
    return [word for word in ctx.conn.storage.volume_names(paths=prefix.startswith("/")) if word.startswith(prefix)]


def complete_networks(ctx, opt, prefix: str, given: dict) -> list[str]:
    return [name for name in ctx.conn.networks.names() if name.startswith(prefix)]


def complete_domain_events(ctx, opt, prefix: str, given: dict) -> list[str]:
    from vsh.api.lifecycle import EVENT_NAMES

    return [name for name in EVENT_NAMES if name.startswith(prefix)]


def complete_snapshots(ctx, opt, prefix: str, given: dict) -> list[str]:
    """Snapshot names of the domain given before (``snapshot-revert vm1 <TAB>``)."""
    dom = _domain(ctx, given)
    if dom is None:
        return []
    return [s["name"] for s in dom.snapshots.list() if s["name"].startswith(prefix)]


def complete_devices(ctx, opt, prefix: str, given: dict) -> list[str]:
    """Disk targets of the domain given before (their source paths once the word starts with '/')."""
    dom = _domain(ctx, given)
    if dom is None:
        return []
    disks = dom.block_devices()
    words = [d["source"] for d in disks if d["source"]] if prefix.startswith("/") else [d["target"] for d in disks]
    return [w for w in words if w.startswith(prefix)]


def complete_interfaces(ctx, opt, prefix: str, given: dict) -> list[str]:
    """The domain's NICs: their MAC addresses, and their host-side names while it runs
    (only MACs for an option named ``mac``)."""
    dom = _domain(ctx, given)
    if dom is None:
        return []
    words = []
    for nic in dom.interfaces():
        if nic["interface"] and opt.name != "mac":
            words.append(nic["interface"])
        if nic["mac"]:
            words.append(nic["mac"])
    return [w for w in words if w.startswith(prefix)]


def complete_xpaths(ctx, opt, prefix: str, given: dict) -> list[str]:
    """Element and attribute paths of the document the command prints (a domain's, a pool's or a
    network's XML), one level at a time: ``/domain/devices/disk/target/@dev``."""
    if given.get("domain"):
        text = _domain(ctx, given).xml()
    elif given.get("pool"):
        text = ctx.conn.storage.lookup_pool(given["pool"]).xml()
    elif given.get("network"):
        text = ctx.conn.networks.lookup(given["network"]).xml()
    else:
        return []
    from vsh.core.xml import parse

    root = parse(text, "completion", None)
    paths = set()

    def walk(el, path):
        paths.add(path)
        for key in el.attrib:
            paths.add(f"{path}/@{key}")
        for child in el:
            if isinstance(child.tag, str):
                walk(child, f"{path}/{child.tag}")

    walk(root, f"/{root.tag}")
    out = set()
    for path in paths:
        if path.startswith(prefix):
            cut = path.find("/", len(prefix) + 1) if len(path) > len(prefix) else -1
            out.add(path if cut < 0 else path[:cut])
    return sorted(out)


#: where a shell keeps its guest-disk session (``ctx.state``), set by the guest commands
GUEST_SESSION = "guest.session"


def _guest(ctx):
    session = ctx.state.get(GUEST_SESSION)
    return session if session is not None and session.is_launched() else None


def complete_guest_paths(ctx, opt, prefix: str, given: dict) -> list[str]:
    """Paths inside the mounted guest filesystems (none before ``run`` and ``mount``)."""
    session = _guest(ctx)
    return session.complete_path(prefix) if session is not None else []


def complete_guest_devices(ctx, opt, prefix: str, given: dict) -> list[str]:
    """The guest's devices, partitions and logical volumes (none before ``run``)."""
    session = _guest(ctx)
    return [n for n in session.list_device_names() if n.startswith(prefix)] if session is not None else []
