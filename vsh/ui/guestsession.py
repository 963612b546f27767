"""The guest-disk session of a shell (guestfish's handle), shared by the guest command modules.

It lives in ``ctx.state`` (under :data:`vsh.completion.GUEST_SESSION`, where the completers
look) from the first guest command to the end of the shell, which closes it
(:func:`close_session`): the appliance, if a write started one, is shut down then.
"""

from __future__ import annotations

from vsh.completion import GUEST_SESSION
from vsh.core.errors import InvalidArgument


def session(ctx, launch: bool = True):
    """The shell's guest-disk session (created on first use from the -a/-d/-i/-m options)."""
    g = ctx.state.get(GUEST_SESSION)
    if g is None:
        opts = ctx.state.get("guest.options") or {}
        g = ctx.conn.guest_disks(readonly=bool(opts.get("ro")))
        ctx.state[GUEST_SESSION] = g
        for path, fmt in opts.get("add", []):
            g.add_drive(path, fmt)
        for name in opts.get("domains", []):
            g.add_domain(name)
        ctx.state["guest.inspector"] = bool(opts.get("inspector"))
        ctx.state["guest.mounts"] = list(opts.get("mounts", []))
    if launch and not g.is_launched():
        if not g.drives():
            raise InvalidArgument("no disk has been added", hint="use -a IMAGE, -d DOMAIN or the add command")
        g.launch()
        if ctx.state.pop("guest.inspector", False):
            g.mount_inspected()
        # guestfish -m DEV[:MOUNTPOINT], parents before children
        for device, mountpoint in sorted(ctx.state.pop("guest.mounts", []), key=lambda m: len(m[1])):
            g.mount(device, mountpoint)
    return g


def close_session(state: dict) -> None:
    """Close the shell's guest-disk session, if there is one (all changes are written)."""
    g = state.pop(GUEST_SESSION, None)
    if g is not None:
        g.close()


def has_guest_disks(ctx) -> bool:
    """Whether the shell was given guest disks (-a, -d) or has a guest-disk session."""
    opts = ctx.state.get("guest.options") or {}
    return GUEST_SESSION in ctx.state or bool(opts.get("add") or opts.get("domains"))


def substitution(expr: str):
    """virt-edit's ``-e 's/PATTERN/REPLACEMENT/FLAGS'`` without perl: a function applying it to
    every line of a text (bytes), the line's newline kept out of the match as perl's ``$_``
    loop does. Any delimiter after ``s``; flags ``g`` (every match), ``i`` (ignore case), ``x``;
    ``$1``/``${1}`` and ``\\1`` name groups, ``$&`` the whole match. Python's ``re`` syntax."""
    import re

    if len(expr) < 4 or expr[0] != "s" or expr[1].isalnum() or expr[1] in " \\":
        raise InvalidArgument(f"-e: {expr!r}: expected s/PATTERN/REPLACEMENT/FLAGS")
    d, parts, cur, i = expr[1], [], "", 2
    while i < len(expr):
        c = expr[i]
        if c == "\\" and i + 1 < len(expr):
            cur += expr[i:i + 2] if expr[i + 1] != d else d
            i += 2
            continue
        if c == d and len(parts) < 2:
            parts.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    if len(parts) != 2 or set(cur) - set("gix"):
        raise InvalidArgument(f"-e: {expr!r}: expected s/PATTERN/REPLACEMENT/FLAGS (flags: g, i, x)")
    flags = (re.I if "i" in cur else 0) | (re.X if "x" in cur else 0)
    try:
        pattern = re.compile(parts[0].encode("utf-8", "surrogateescape"), flags)
    except re.error as e:
        raise InvalidArgument(f"-e: {parts[0]!r}: {e}") from None
    repl = re.sub(r"\$\{(\d+)\}|\$(\d+)|\$&", lambda m: "\\g<" + (m.group(1) or m.group(2) or "0") + ">", parts[1])
    repl_b = repl.encode("utf-8", "surrogateescape")
    count = 0 if "g" in cur else 1

    def apply(data: bytes) -> bytes:
        out = []
        for line in data.splitlines(keepends=True):
            body = line.rstrip(b"\n")
            try:
                out.append(pattern.sub(repl_b, body, count=count) + line[len(body):])
            except (re.error, IndexError) as e:
                raise InvalidArgument(f"-e: {parts[1]!r}: {e}") from None
        return b"".join(out)
    return apply


def edit_guest_file(ctx, path: str, expr: str | None = None) -> None:
    """guestfish ``edit``: the guest file in $VISUAL / $EDITOR, written back when it changed;
    with ``expr`` (virt-edit's ``-e``) the substitution is applied instead of an editor."""
    import os
    import tempfile

    from vsh.ui.editor import run_editor

    apply = substitution(expr) if expr is not None else None
    g = session(ctx)
    old = g.cat(path)
    if apply is not None:
        new = apply(old)
        if new != old:
            g.write(path, new)
        return
    fd, tmp = tempfile.mkstemp(prefix="vsh-edit-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(old)
        run_editor(tmp, unchanged=f"the guest file {path}")
        with open(tmp, "rb") as f:
            new = f.read()
    finally:
        os.unlink(tmp)
    if new != old:
        g.write(path, new)
