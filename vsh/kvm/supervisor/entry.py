"""The supervisor process's entry point (``python -I -S -c ...main()``, see vsh.kvm.launch).

It imports the Supervisor and launches QEMU before it loads asyncio and qemu.qmp,
so that QEMU initialises meanwhile.
"""

from __future__ import annotations

import os
import signal
import sys

from vsh.core.errors import VshError
from vsh.kvm.supervisor import aio
from vsh.kvm.supervisor.control import reply_error
from vsh.kvm.supervisor.core import Supervisor
from vsh.kvm.supervisor.log import log


def _parse(args: list[str]) -> dict:
    opts = {"attach": False, "notify_fd": None, "lock_fd": None, "rundir": None, "foreground": False}
    it = iter(args)
    for arg in it:
        if arg == "--attach":
            opts["attach"] = True
        elif arg == "--foreground":
            opts["foreground"] = True
        elif arg in ("--rundir", "--notify-fd", "--lock-fd"):
            value = next(it)
            key = arg[2:].replace("-", "_")
            opts[key] = value if key == "rundir" else int(value)
        else:
            raise SystemExit(f"vsh.kvm.supervisor: unknown argument {arg!r}")
    if not opts["rundir"]:
        raise SystemExit("vsh.kvm.supervisor: --rundir is required")
    return opts


def main(args: list[str] | None = None) -> int:
    opts = _parse(sys.argv[1:] if args is None else args)
    if not opts["foreground"] and os.fork() > 0:
        os._exit(0)         # the middle process: lets the starting vsh reap it at once
    os.umask(0o077)
    for fd in (opts["notify_fd"], opts["lock_fd"]):
        if fd is not None:
            os.set_inheritable(fd, False)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        sup = Supervisor(opts["rundir"], notify_fd=opts["notify_fd"], lock_fd=opts["lock_fd"],
                         attach=opts["attach"])
    except VshError as exc:
        if opts["notify_fd"] is not None:
            os.write(opts["notify_fd"], reply_error(exc))
        log(" | ".join(exc.lines))
        return 1
    log(f"supervisor for domain '{sup.name}' ({'attach' if sup.attach else 'launch'})")
    if not sup.attach:
        try:
            sup.spawn_qemu()        # QEMU initialises while we import asyncio and qemu.qmp
        except VshError as exc:
            log(" | ".join(exc.lines))
            sup.report(exc)
            return 1
    aio.load(no_ssl=True)
    return aio.asyncio.run(sup.run())
