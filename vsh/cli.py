"""Process entry: global options, then one of the three modes.

    vsh [options] CMD ARG...        single-shot, argv taken literally
    vsh [options] 'CMD; CMD'        one command string, parsed like virsh
    vsh [options] -f FILE           batch: one command per line
    vsh [options] < FILE            batch from stdin when it is not a terminal
    vsh [options]                   interactive shell on a terminal

Only what the chosen mode needs is imported: prompt_toolkit only for the
interactive shell, a command's module only when that command runs.
"""

from __future__ import annotations

import os
import sys

USAGE = """\
vsh - manage QEMU/KVM virtual machines and look inside their disks

  usage:
    vsh [options]... [<command_string>]
    vsh [options]... <command> [args...]

  options:
    -c | --connect=URI      connection URI (vsh:///session, vsh:///system, ...?root=DIR)
    -d | --debug=NUM        debug level [0-4]
    -e | --escape <char>    console escape character (default ^])
    -f | --file=FILE        run the commands in FILE, one a line
    -h | --help             this help
    -k | --keep-going       batch: run every command even after a failure
    -q | --quiet            quiet mode (no headers, informational messages or blank lines)
    -r | --readonly         connect read-only (commands that change anything are refused)
    -t | --timing           print the time each command took
    -v | --version          print the version (--version=long for more)
         --json             print query results as JSON
  guest disks (guestfish style):
    -a | --add=IMAGE        add a disk image (read-only)
         --format=FMT       format of the following -a images (raw, qcow2, vmdk, vhdx)
         --domain=NAME      add the disks of a domain (also -d NAME when NAME is not 0-4)
    -i | --inspector        inspect the disks and mount the filesystems found
    -m | --mount=DEV[:MP]   mount a guest device read-only at MP (default /)
         --ro               read-only access (the only mode without the appliance)

  commands (non interactive mode): see `vsh help`
"""


class UsageError(Exception):
    pass


def _take(argv: list[str], i: int, opt: str) -> tuple[str, int]:
    if i + 1 >= len(argv):
        raise UsageError(f"option '{opt}' requires an argument")
    return argv[i + 1], i + 2


def parse_global(argv: list[str]):
    from vsh.shell import Context

    ctx = Context()
    opts = {"file": None, "keep_going": False, "version": None, "help": False}
    guest = {"add": [], "domains": [], "inspector": False, "ro": False, "mounts": []}
    fmt = None
    i = 0
    long_with_value = {"--connect": "c", "--debug": "d", "--escape": "e", "--file": "f",
                       "--add": "a", "--format": "format", "--domain": "domain", "--log": "l",
                       "--mount": "m"}
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in long_with_value:
                if not eq:
                    value, i = _take(argv, i, f"-{long_with_value[name]}'/'{name}" if len(long_with_value[name]) == 1 else name)
                else:
                    i += 1
                key = long_with_value[name]
            elif name == "--version":
                opts["version"] = value or "short"
                i += 1
                continue
            elif name in ("--quiet", "--readonly", "--timing", "--help", "--json", "--keep-going",
                          "--inspector", "--ro"):
                if eq:
                    raise UsageError(f"option '{name}' doesn't allow an argument")
                key = {"--quiet": "q", "--readonly": "r", "--timing": "t", "--help": "h",
                       "--json": "json", "--keep-going": "k", "--inspector": "i", "--ro": "ro"}[name]
                value = None
                i += 1
            else:
                raise UsageError(f"unsupported option '{name}'. See --help.")
        else:
            key = arg[1]
            if len(arg) > 2 and key in "cdefalm":
                value = arg[2:]
                i += 1
            elif key in "cdefalm":
                value, i = _take(argv, i, f"-{key}'/'--{ {'c': 'connect', 'd': 'debug', 'e': 'escape', 'f': 'file', 'a': 'add', 'l': 'log', 'm': 'mount'}[key]}")
            elif len(arg) == 2 and key in "qrthvVik":
                value = None
                i += 1
            else:
                raise UsageError(f"unsupported option '{arg}'. See --help.")
        if key == "c":
            ctx.uri = value
        elif key == "d":
            if value.isdigit():
                level = int(value)
                if level > 4:
                    sys.stderr.write(f"error: ignoring debug level {level} out of range [0-4]\n")
                else:
                    ctx.debug = level
            else:
                guest["domains"].append(value)
        elif key == "domain":
            guest["domains"].append(value)
        elif key == "e":
            if not (len(value) == 1 or (len(value) == 2 and value[0] == "^")):
                raise UsageError(f"Invalid string '{value}' for escape sequence")
            ctx.escape = value
        elif key == "f":
            opts["file"] = value
        elif key == "l":
            pass  # accepted for virsh compatibility; vsh logs per domain
        elif key == "a":
            guest["add"].append((value, fmt))
        elif key == "m":
            device, _sep, mountpoint = value.partition(":")
            if not device.startswith("/dev/"):
                raise UsageError(f"-m expects DEVICE[:MOUNTPOINT] with a /dev/ device, not '{value}'")
            guest["mounts"].append((device, mountpoint or "/"))
        elif key == "format":
            fmt = None if value in ("", "auto") else value
        elif key == "q":
            ctx.quiet = True
        elif key == "r":
            ctx.readonly = True
        elif key == "t":
            ctx.timing = True
        elif key == "h":
            opts["help"] = True
        elif key == "v":
            opts["version"] = "short"
        elif key == "V":
            opts["version"] = "long"
        elif key == "json":
            ctx.json = True
        elif key == "k":
            opts["keep_going"] = True
        elif key == "i":
            guest["inspector"] = True
        elif key == "ro":
            guest["ro"] = True
    if guest["add"] or guest["domains"] or guest["inspector"] or guest["mounts"]:
        ctx.state["guest.options"] = guest
    return ctx, opts, argv[i:]


def _version(kind: str) -> str:
    from vsh import __version__

    if kind == "long":
        import platform

        return (f"vsh {__version__}\n  Python {platform.python_version()}\n"
                f"  connection schemes: vsh:///session, vsh:///system\n")
    return f"{__version__}\n"


def _run_words(shell, words: list[str]) -> int:
    """Run the command in ``words``, or several separated by ``:`` words as guestfish does
    (stopping at the first that fails)."""
    rc = 0
    start = 0
    for i in range(len(words) + 1):
        if i == len(words) or words[i] == ":":
            if i > start:
                rc = shell.execute(words[start:i])
                if rc:
                    return rc
            start = i + 1
    return rc


def _close_guest(shell) -> None:
    """Shut the guest-disk session's appliance down (all changes written), if a write started one."""
    if "guest.session" not in shell.ctx.state:
        return
    from vsh.core.errors import VshError
    from vsh.ui.guestsession import close_session

    try:
        close_session(shell.ctx.state)
    except (VshError, OSError) as err:
        sys.stderr.write(f"error: closing the guest disks: {err}\n")


def run() -> None:
    """The ``vsh`` program: :func:`main`, then the process ends without tearing the interpreter
    down (a few ms of a ~40 ms command with libvirt loaded: every module and object freed one by
    one, for nothing) once what that teardown would finish is done: output flushed, ``atexit``
    functions run (a remote connection's ssh waited for, ``weakref.finalize``...), no thread left
    that the interpreter would wait for."""
    status = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(status)
    threading = sys.modules.get("threading")
    if threading is not None and any(t.is_alive() and not t.daemon for t in threading.enumerate()
                                     if t is not threading.main_thread()):
        sys.exit(status)
    import atexit

    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)     # CPython's; elsewhere: the usual way
    if run_exitfuncs is None:
        sys.exit(status)
    run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(status if isinstance(status, int) else 1)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    try:
        ctx, opts, rest = parse_global(argv)
    except UsageError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    if opts["help"]:
        from vsh.registry import help_overview, registry

        sys.stdout.write(USAGE + "\n" + help_overview(registry()))
        return 0
    if opts["version"]:
        sys.stdout.write(_version(opts["version"]))
        return 0
    from vsh.shell import Shell

    shell = Shell(ctx)
    try:
        if ctx.uri is not None:
            # an explicit -c connects eagerly, as virsh does
            from vsh.core.errors import VshError

            try:
                ctx.connect(ctx.uri, ctx.readonly)
            except VshError as err:
                shell.report(err)
                return 1
        if rest:
            if len(rest) == 1:
                return shell.run_string(rest[0])
            return _run_words(shell, rest)
        if opts["file"] is not None:
            try:
                fh = open(opts["file"], encoding="utf-8", errors="surrogateescape")
            except OSError as exc:
                sys.stderr.write(f"error: Failed to open file '{opts['file']}': {exc.strerror}\n")
                return 1
            with fh:
                return shell.run_batch(fh, keep_going=opts["keep_going"])
        if sys.stdin.isatty():
            from vsh.repl import run_interactive

            return run_interactive(shell)
        return shell.run_batch(sys.stdin, keep_going=opts["keep_going"])
    except BrokenPipeError:
        # the reader went away (vsh list | head): leave quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    finally:
        _close_guest(shell)
        try:
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            pass
