"""Small helpers around the ``qemu.qmp`` library.

* :func:`load` imports ``qemu.qmp`` (optionally without ``ssl``, which alone costs the
  long-lived supervisor ~4 MiB of RSS; QMP over a unix socket never needs it);
* :func:`listening_socket` and :func:`qmp_argv` let the supervisor bind QEMU's QMP
  socket itself and hand QEMU the listening fd, so the supervisor's connection is
  queued before QEMU even starts: no waiting for a socket file to appear;
* :func:`connect` / :func:`execute` add timeouts and user-facing errors;
* :class:`SyncQMP` is a blocking client for scripts and tests.

Heavy modules (asyncio, qemu.qmp) are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import os
import socket
import sys

from vsh.core.errors import OperationInvalid, Timeout, VshError
from vsh.kvm.qemuopts import split_opts

QMP_CHARDEV_ID = "vsh-qmp"


def load(no_ssl: bool = False):
    """Import and return the ``qemu.qmp`` package.

    With ``no_ssl`` (the supervisor process only) asyncio is imported with ``ssl``
    blocked and qemu.qmp gets a stub ``ssl`` module; TLS is then unavailable in
    that process, which only ever talks to unix sockets.
    """
    if no_ssl and "ssl" not in sys.modules and "asyncio" not in sys.modules:
        import types
        sys.modules["ssl"] = None           # asyncio falls back to "no ssl support"
        import asyncio                       # noqa: F401
        stub = types.ModuleType("ssl")
        stub.SSLContext = type("SSLContext", (), {})
        sys.modules["ssl"] = stub           # qemu.qmp only names ssl.SSLContext in hints
    import qemu.qmp
    return qemu.qmp


# --------------------------------------------------------------------------------------
# the QMP socket, bound by us, listened on by QEMU
# --------------------------------------------------------------------------------------

def listening_socket(path) -> tuple[socket.socket, socket.socket]:
    """Bind and listen on ``path``; return (listener, client already connected to it).

    The listener is meant for QEMU (``-chardev socket,fd=N,server=on``); the
    connected client socket is queued in its backlog and gets QEMU's greeting as
    soon as QEMU's main loop runs.
    """
    path = os.fspath(path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(8)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    return listener, client


def _join_opts(parts: list[str]) -> str:
    return ",".join(p.replace(",", ",,") for p in parts)


def qmp_socket_path(argv: list[str], default) -> str:
    """The unix socket path of the argv's first QMP (control) monitor; ``default`` if none.

    Understands ``-qmp unix:PATH[,...]`` and ``-chardev socket,id=ID,path=PATH,...``
    used by ``-mon chardev=ID,mode=control``.
    """
    chardev_paths: dict[str, str] = {}
    control_ids: list[str] = []
    for i, arg in enumerate(argv[:-1]):
        nxt = argv[i + 1]
        if arg in ("-qmp", "--qmp") and nxt.startswith("unix:"):
            return split_opts(nxt[5:])[0]
        if arg in ("-chardev", "--chardev") and nxt.startswith("socket,"):
            opts = dict(p.split("=", 1) for p in split_opts(nxt)[1:] if "=" in p)
            if "id" in opts and "path" in opts:
                chardev_paths[opts["id"]] = opts["path"]
        if arg in ("-mon", "--mon"):
            opts = dict(p.split("=", 1) for p in split_opts(nxt) if "=" in p)
            if opts.get("mode") == "control" and "chardev" in opts:
                control_ids.append(opts["chardev"])
    for cid in control_ids:
        if cid in chardev_paths:
            return chardev_paths[cid]
    return os.fspath(default)


def qmp_argv(argv: list[str], qmp_path, fd: int) -> list[str]:
    """Rewrite ``argv`` so QEMU's QMP monitor listens on the inherited socket ``fd``.

    Recognises ``-qmp unix:PATH[,server...]`` and ``-chardev socket,...,path=PATH``
    for ``PATH == qmp_path``; adds a QMP monitor if the argv has none for that path.
    Also makes sure QEMU starts stopped (``-S``).
    """
    qmp_path = os.fspath(qmp_path)
    out: list[str] = []
    found = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-daemonize", "--daemonize"):
            raise VshError("internal error: QEMU must not daemonize under the vsh supervisor")
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if arg in ("-qmp", "--qmp") and nxt is not None and nxt.startswith("unix:") \
                and split_opts(nxt[5:])[0] == qmp_path:
            out += ["-chardev", f"socket,id={QMP_CHARDEV_ID},fd={fd},server=on,wait=off",
                    "-mon", f"chardev={QMP_CHARDEV_ID},mode=control"]
            found = True
            i += 2
            continue
        if arg in ("-chardev", "--chardev") and nxt is not None and nxt.startswith("socket,"):
            parts = split_opts(nxt)
            if f"path={qmp_path}" in parts:
                keep = [p for p in parts if not p.startswith(("path=", "server", "wait", "nowait"))]
                keep += [f"fd={fd}", "server=on", "wait=off"]
                out += [arg, _join_opts(keep)]
                found = True
                i += 2
                continue
        out.append(arg)
        i += 1
    if not found:
        out += ["-chardev", f"socket,id={QMP_CHARDEV_ID},fd={fd},server=on,wait=off",
                "-mon", f"chardev={QMP_CHARDEV_ID},mode=control"]
    if "-S" not in out[1:]:
        out.insert(1, "-S")
    return out


# --------------------------------------------------------------------------------------
# async helpers
# --------------------------------------------------------------------------------------

async def connect(address, timeout: float = 10.0, name: str | None = None, abort=None):
    """Connect a ``QMPClient`` to ``address`` (path or connected socket) within ``timeout``.

    ``abort`` is an optional future (e.g. "QEMU exited"): if it completes first the
    connection attempt is cancelled and ``abort``'s result is raised as ``_Aborted``.
    """
    import asyncio
    qmp_lib = load()
    client = qmp_lib.QMPClient(name)
    task = asyncio.ensure_future(client.connect(address))
    waits = {task} if abort is None else {task, abort}
    done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()       # raises ConnectError
        return client
    task.cancel()
    try:
        await task
    except BaseException:   # noqa: BLE001 - cancelled or failed: either way abandoned
        pass
    try:
        await client.disconnect()
    except Exception:       # noqa: BLE001
        pass
    if abort is not None and abort in done:
        raise Aborted(abort.result())
    raise Timeout(f"QEMU's QMP monitor did not answer within {timeout:g} s")


class Aborted(Exception):
    """A QMP wait was cut short because the abort future completed (its result is args[0])."""


async def execute(client, cmd: str, args: dict | None = None, timeout: float = 30.0):
    """Run one QMP command; QMP errors become ``VshError`` in libvirt's words."""
    import asyncio
    qmp_lib = load()
    try:
        return await asyncio.wait_for(client.execute(cmd, args or None), timeout)
    except qmp_lib.ExecuteError as exc:
        raise VshError(f"internal error: unable to execute QEMU command '{cmd}': {exc}") from None
    except asyncio.TimeoutError:
        raise Timeout(f"QEMU did not answer the QMP command '{cmd}' within {timeout:g} s") from None
    except (qmp_lib.ExecInterruptedError, qmp_lib.StateError) as exc:
        raise OperationInvalid(f"internal error: QMP connection lost during '{cmd}': "
                               f"{exc or type(exc).__name__}") from None


def parse_chardevs(chardevs) -> dict:
    """From ``query-chardev``: the serial console's pty path and/or unix socket path, and
    ``chardevs``: each device's pty or socket by its alias (``{"serial0": {"console_pty": ...}}``).

    The serial console is the chardev labelled like ``charserial0``/``serial0``/
    ``console0``; failing that, the first pty.
    """
    found = {"console_pty": None, "console_socket": None, "chardevs": {}}
    ranked = []
    for dev in chardevs or []:
        label = str(dev.get("label", ""))
        filename = str(dev.get("filename", ""))
        if label.startswith("char") and label != QMP_CHARDEV_ID:
            # every device's chardev by the device's alias (serial0, console1, channel0...)
            if filename.startswith("pty:"):
                found["chardevs"][label[4:]] = {"console_pty": filename[4:]}
            elif "unix:" in filename and "server" in filename:
                path = filename[filename.index("unix:") + 5:]
                found["chardevs"][label[4:]] = {"console_socket": split_opts(path)[0]}
        rank = 0 if "serial0" in label else 1 if ("serial" in label or "console" in label) else 2
        ranked.append((rank, label, filename))
    ranked.sort()
    for rank, label, filename in ranked:
        if label == QMP_CHARDEV_ID:
            continue
        if filename.startswith("pty:") and found["console_pty"] is None:
            if rank < 2 or not any(r < 2 for r, _, _ in ranked):
                found["console_pty"] = filename[4:]
        elif rank < 2 and found["console_socket"] is None and "unix:" in filename \
                and "server" in filename:
            path = filename[filename.index("unix:") + 5:]
            found["console_socket"] = split_opts(path)[0]
    return found


def pretty(obj) -> str:
    """JSON as ``qemu-monitor-command --pretty`` prints it."""
    return json.dumps(obj, indent=2, sort_keys=False)


# --------------------------------------------------------------------------------------
# a blocking client
# --------------------------------------------------------------------------------------

class SyncQMP:
    """A blocking QMP client over a unix socket path (for scripts and tests).

    Only one client can hold QEMU's QMP socket at a time: while a supervisor
    runs, go through ``vsh.kvm.client.qmp`` instead.
    """

    def __init__(self, path, timeout: float = 10.0):
        import asyncio
        self._loop = asyncio.new_event_loop()
        self.timeout = timeout
        try:
            self._client = self._loop.run_until_complete(connect(os.fspath(path), timeout))
        except Exception:
            self._loop.close()
            raise

    def execute(self, cmd: str, args: dict | None = None, timeout: float | None = None):
        return self._loop.run_until_complete(
            execute(self._client, cmd, args, timeout or self.timeout))

    def hmp(self, line: str) -> str:
        return self.execute("human-monitor-command", {"command-line": line})

    def events(self) -> list:
        """Events received so far (drained)."""
        return self._client.events.clear()

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._client.disconnect())
        except Exception:   # noqa: BLE001 - closing a connection that may already be gone
            pass
        self._loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
