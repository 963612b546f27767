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


def edit_guest_file(ctx, path: str) -> None:
    """guestfish ``edit``: the guest file in $VISUAL / $EDITOR, written back when it changed."""
    import os
    import tempfile

    from vsh.ui.editor import run_editor

    g = session(ctx)
    old = g.cat(path)
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
