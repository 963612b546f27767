"""The serial console of a running domain, and its console log.

:func:`attach` connects the caller's stdin/stdout to the guest's serial console
(the pty or unix socket named in the runtime state):

* on a terminal, the terminal goes to raw mode; in a pipe, stdin goes to the guest
  and guest output to stdout until stdin ends (then output is relayed until the
  guest has been quiet for ``linger`` seconds);
* the escape character (``^]`` by default, ``-e ^X`` style) leaves, and so does
  ``~.`` typed right after a newline (keyboard-layout independent; ``~~`` sends a
  single ``~``);
* one console session per domain: a lock file in RUNDIR holds the holder's pid;
  ``force`` signals the holder (SIGTERM), waits for it to let go and takes over;
* guest output goes through :class:`OutputFilter` unless ``raw``: control strings
  that could set the window title, write the clipboard, load fonts or talk to the
  terminal (OSC, DCS, APC, PM, SOS, their UTF-8 C1 forms) and window-manipulation
  CSI sequences are dropped; colours, cursor movement and the rest pass.

:func:`console_log` prints ``console.log`` (the serial output of the current or
last run), and with ``follow`` keeps printing as it grows (inotify, no polling)
until the domain stops.
"""

from __future__ import annotations

import os
import re
import select
import signal
import time

from vsh.core.errors import InvalidArgument, OperationInvalid, Timeout

DEFAULT_ESCAPE = "^]"
CONSOLE_LOCK = "console.lock"


def parse_escape(spec: str | None) -> int | None:
    """``'^]'`` → 0x1d, ``'^X'`` → 0x18, ``'^?'`` → 0x7f, one ASCII char → itself; None → none."""
    if spec is None:
        return None
    if len(spec) == 2 and spec[0] == "^":
        ch = spec[1]
        if ch == "?":
            return 0x7F
        code = ord(ch.upper()) ^ 0x40
        if 0 <= code < 0x20:
            return code
    elif len(spec) == 1 and ord(spec) < 0x80:
        return ord(spec)
    raise InvalidArgument(f"Invalid string '{spec}' for escape sequence")


def describe_escape(code: int) -> str:
    if code == 0x7F:
        return "^?"
    if code < 0x20:
        return "^" + chr(code ^ 0x40)
    return chr(code)


# --------------------------------------------------------------------------------------
# filters
# --------------------------------------------------------------------------------------

class InputFilter:
    """Keyboard → guest.  :meth:`feed` returns (bytes for the guest, leave?)."""

    def __init__(self, escape: int | None = 0x1D, tilde: bool = True):
        self.escape = escape
        self.tilde = tilde
        self.line_start = True      # the session starts "after a newline"
        self.pending_tilde = False

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        out = bytearray()
        for b in data:
            if self.escape is not None and b == self.escape:
                return bytes(out), True
            if self.pending_tilde:
                self.pending_tilde = False
                if b == 0x2E:                       # "~."
                    return bytes(out), True
                out.append(0x7E)                    # "~~" → "~", "~x" → "~x"
                if b == 0x7E:
                    self.line_start = False
                    continue
            elif self.tilde and self.line_start and b == 0x7E:
                self.pending_tilde = True
                continue
            out.append(b)
            self.line_start = b in (0x0D, 0x0A)
        return bytes(out), False

    def flush(self) -> bytes:
        """A held ``~`` (at end of input)."""
        if self.pending_tilde:
            self.pending_tilde = False
            return b"~"
        return b""


_GROUND, _ESC, _CSI, _CSI_SKIP, _STRING, _STRING_ESC, _C2, _STRING_C2 = range(8)
_SPECIAL = re.compile(rb"[\x1b\xc2]")
#: CSI final bytes that are dropped: window manipulation/reports (t), media copy (i).
_BAD_CSI_FINALS = frozenset(b"ti")
#: CSI final bytes of terminal queries (device status/attributes, mode and version reports).
_QUERY_CSI_FINALS = frozenset(b"ncpqx")
_MAX_CSI = 64


class OutputFilter:
    """Guest → terminal: drop escape sequences that could do harm; keep the rest.

    A streaming parser (sequences may be split across reads).  Dropped: OSC
    (``ESC ]`` — title, clipboard (52), colours, hyperlinks, ...), DCS (``ESC P``),
    SOS (``ESC X``), PM (``ESC ^``), APC (``ESC _``) up to their terminator, their
    UTF-8-encoded C1 forms (U+0090, U+0098, U+009D-9F), all other C1 code points,
    and CSI sequences ending in ``t`` (window ops, title reports) or ``i`` (media
    copy), or longer than 64 bytes.  With ``drop_queries``, also CSI sequences
    ending in ``n c p q x`` (status, attribute, mode and version requests; this drops
    the rarely used DECSCUSR/DECSTR/DECLL too).
    """

    def __init__(self, drop_queries: bool = False):
        self.state = _GROUND
        self.buf = bytearray()
        self.osc = False
        # For output that is not a live session (console-log): also drop the queries a
        # terminal answers by typing into its input (DSR, DA, DECRQM, XTVERSION...) -
        # there the answer would land in the user's shell, not in the guest.
        self.bad_finals = _BAD_CSI_FINALS | (_QUERY_CSI_FINALS if drop_queries else frozenset())

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        i, n = 0, len(data)
        while i < n:
            st = self.state
            if st == _GROUND:
                m = _SPECIAL.search(data, i)
                if m is None:
                    out += data[i:]
                    break
                j = m.start()
                out += data[i:j]
                self.state = _ESC if data[j] == 0x1B else _C2
                self.buf = bytearray(data[j:j + 1])
                i = j + 1
                continue
            b = data[i]
            if st == _C2:
                if 0x80 <= b <= 0x9F:               # a C1 control, UTF-8 encoded
                    i += 1
                    if b == 0x9B:
                        self.state, self.buf = _CSI, bytearray(b"\x1b[")
                    elif b in (0x90, 0x98, 0x9D, 0x9E, 0x9F):
                        self.state = _STRING
                        self.osc = b == 0x9D
                    else:
                        self.state = _GROUND
                else:
                    out.append(0xC2)                # an ordinary character (Latin-1 supplement)
                    self.state = _GROUND            # b is looked at again in GROUND
                continue
            if st == _ESC:
                i += 1
                if b in b"]P_^X":
                    self.state = _STRING
                    self.osc = b == 0x5D
                elif b == 0x5B:                     # "["
                    self.buf.append(b)
                    self.state = _CSI
                elif b == 0x1B:
                    out += self.buf
                elif b in (0x18, 0x1A):             # CAN/SUB cancel
                    self.state = _GROUND
                else:                               # ESC 7, ESC 8, ESC ( B, ESC M, ...
                    out += self.buf
                    out.append(b)
                    self.state = _GROUND
                continue
            if st == _CSI:
                i += 1
                if 0x40 <= b <= 0x7E:
                    self.buf.append(b)
                    if b not in self.bad_finals:
                        out += self.buf
                    self.state = _GROUND
                elif 0x20 <= b <= 0x3F:
                    self.buf.append(b)
                    if len(self.buf) > _MAX_CSI:
                        self.state = _CSI_SKIP
                elif b == 0x1B:
                    self.state, self.buf = _ESC, bytearray(b"\x1b")
                elif b in (0x18, 0x1A):
                    self.state = _GROUND
                else:                               # C0 controls act even inside CSI
                    if b < 0x20:
                        out.append(b)
                continue
            if st == _CSI_SKIP:
                i += 1
                if 0x40 <= b <= 0x7E or b in (0x18, 0x1A):
                    self.state = _GROUND
                continue
            if st == _STRING:
                i += 1
                if b in (0x18, 0x1A) or (b == 0x07 and self.osc):   # CAN/SUB cancel; BEL ends OSC
                    self.state = _GROUND
                elif b == 0x1B:
                    self.state = _STRING_ESC
                elif b == 0xC2:
                    self.state = _STRING_C2
                continue
            if st == _STRING_ESC:
                if b == 0x5C:                       # ESC \ (ST)
                    i += 1
                    self.state = _GROUND
                else:                               # ESC starts something new
                    self.state, self.buf = _ESC, bytearray(b"\x1b")
                continue
            if st == _STRING_C2:
                if b == 0x9C:                       # U+009C (ST)
                    i += 1
                    self.state = _GROUND
                else:
                    self.state = _STRING            # b is looked at again
                continue
        return bytes(out)


# --------------------------------------------------------------------------------------
# the one-session lock
# --------------------------------------------------------------------------------------

class ConsoleLock:
    """``RUNDIR/console.lock``: flock + the holder's pid."""

    def __init__(self, rundir):
        self.path = os.path.join(os.fspath(rundir), CONSOLE_LOCK)
        self.fd: int | None = None

    def acquire(self, force: bool = False, timeout: float = 5.0) -> None:
        import fcntl
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not force:
                    raise OperationInvalid("operation failed: Active console session exists "
                                           "for this domain (use --force to take it over)") from None
                self._take_over(fd, timeout)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def _take_over(self, fd: int, timeout: float) -> None:
        import fcntl
        try:
            holder = int(os.pread(fd, 32, 0).split()[0])
        except (ValueError, IndexError):
            holder = None
        pidfd = None
        if holder and holder != os.getpid():
            try:
                pidfd = os.pidfd_open(holder)
                signal.pidfd_send_signal(pidfd, signal.SIGTERM)
            except ProcessLookupError:
                pidfd = None
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    pass
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout(f"the console session of process {holder} did not end within "
                                  f"{timeout:g} s; kill it or try again")
                if pidfd is not None:
                    select.select([pidfd], [], [], left)    # wake when the holder exits
                    os.close(pidfd)
                    pidfd = None
                else:
                    time.sleep(min(left, 0.05))             # holder unknown: brief retries
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None


# --------------------------------------------------------------------------------------
# attach
# --------------------------------------------------------------------------------------

def _open_device(state: dict) -> int:
    pty = state.get("console_pty")
    sock_path = state.get("console_socket")
    if pty:
        try:
            return os.open(pty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise OperationInvalid(f"internal error: cannot open console {pty}: {exc.strerror}") from None
    if sock_path:
        import socket
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(sock_path)
        except OSError as exc:
            sock.close()
            raise OperationInvalid(f"internal error: cannot connect to console {sock_path}: "
                                   f"{exc.strerror}") from None
        sock.setblocking(False)
        return sock.detach()
    raise OperationInvalid("internal error: cannot find character device <null>")


def _write_all(fd: int, data: bytes, timeout: float = 10.0) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
            view = view[n:]
        except BlockingIOError:
            if not select.select([], [fd], [], timeout)[1]:
                raise Timeout("the console did not accept input within "
                              f"{timeout:g} s") from None


def attach(state: dict, rundir, escape: str | None = DEFAULT_ESCAPE, force: bool = False,
           raw: bool = False, stdin_fd: int = 0, stdout_fd: int = 1, linger: float = 1.0,
           tilde: bool = True, banner: bool = True) -> str:
    """Connect stdin/stdout to the domain's serial console until the user leaves.

    Returns why the session ended: ``"escape"``, ``"eof"`` (stdin ended),
    ``"closed"`` (the guest side closed: the domain stopped), or ``"taken over"``
    (another ``vsh console --force`` took the session).
    """
    esc = parse_escape(escape) if escape is not None else None
    lock = ConsoleLock(rundir)
    lock.acquire(force=force)
    dev = -1
    is_tty = os.isatty(stdin_fd)
    saved = None
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    stop = []
    old_handlers = {}
    old_wakeup = None
    try:
        dev = _open_device(state)

        def on_signal(signum, frame):
            stop.append(signum)

        for sig in (signal.SIGTERM, signal.SIGHUP):
            old_handlers[sig] = signal.signal(sig, on_signal)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        if banner:
            name = state.get("name", "")
            msg = f"Connected to domain '{name}'\r\n"
            if esc is not None:
                msg += f"Escape character is {describe_escape(esc)}"
                if esc == 0x1D:
                    msg += " (Ctrl + ])"
                msg += "\r\n"
            _write_all(stdout_fd, msg.encode() if is_tty else msg.replace("\r\n", "\n").encode())
        if is_tty:
            import termios
            import tty
            saved = termios.tcgetattr(stdin_fd)
            tty.setraw(stdin_fd)
        return _relay(dev, stdin_fd, stdout_fd, wake_r, stop, InputFilter(esc, tilde),
                      None if raw else OutputFilter(), is_tty, linger)
    finally:
        if saved is not None:
            import termios
            termios.tcsetattr(stdin_fd, termios.TCSAFLUSH, saved)
            try:
                os.write(stdout_fd, b"\n")
            except OSError:
                pass
        if old_wakeup is not None:
            signal.set_wakeup_fd(old_wakeup)
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        os.close(wake_r)
        os.close(wake_w)
        if dev >= 0:
            os.close(dev)
        lock.release()


def _relay(dev, stdin_fd, stdout_fd, wake_r, stop, infilter, outfilter, is_tty, linger) -> str:
    stdin_open = True
    while True:
        if stop:
            return "taken over" if stop[0] == signal.SIGTERM else "hangup"
        rlist = [dev, wake_r] + ([stdin_fd] if stdin_open else [])
        timeout = None if stdin_open else linger
        ready, _, _ = select.select(rlist, [], [], timeout)
        if not ready:
            return "eof"                    # stdin ended and the guest has been quiet
        if wake_r in ready:
            try:
                os.read(wake_r, 64)
            except BlockingIOError:
                pass
        if dev in ready:
            try:
                data = os.read(dev, 65536)
            except BlockingIOError:
                data = None
            except OSError:                 # EIO: QEMU closed the pty (the domain stopped)
                data = b""
            if data == b"":
                return "closed"
            if data:
                _write_all(stdout_fd, outfilter.feed(data) if outfilter else data)
        if stdin_open and stdin_fd in ready:
            try:
                data = os.read(stdin_fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                stdin_open = False
                tail = infilter.flush()
                if tail:
                    _write_all(dev, tail)
                if is_tty:
                    return "eof"
                continue
            send, leave = infilter.feed(data)
            if send:
                _write_all(dev, send)
            if leave:
                return "escape"


# --------------------------------------------------------------------------------------
# the console log
# --------------------------------------------------------------------------------------

class _Inotify:
    """Just enough inotify (through libc) to wake up when files in a directory change."""

    IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x2, 0x8, 0x80, 0x100

    def __init__(self, directory: str):
        import ctypes
        import ctypes.util
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        mask = self.IN_MODIFY | self.IN_CLOSE_WRITE | self.IN_MOVED_TO | self.IN_CREATE
        if libc.inotify_add_watch(self.fd, os.fsencode(directory), mask) < 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(err, "inotify_add_watch")

    def wait(self, timeout: float) -> None:
        if select.select([self.fd], [], [], timeout)[0]:
            try:
                while os.read(self.fd, 65536):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        os.close(self.fd)


def console_log(rundir, follow: bool = False, out_fd: int = 1, timeout: float | None = None,
                raw: bool = True) -> None:
    """Copy ``console.log`` to ``out_fd``; with ``follow`` keep going until the domain stops.

    ``timeout`` bounds a follow (None: until the domain stops).  A log that shrinks
    (a new run truncated it) is read again from its start.  ``raw=False`` passes the
    log through :class:`OutputFilter`.
    """
    from vsh.kvm import client as rt
    rundir = os.fspath(rundir)
    path = os.path.join(rundir, rt.CONSOLE_LOG)
    filt = None if raw else OutputFilter(drop_queries=True)
    pos = 0
    watcher = _Inotify(rundir) if follow else None
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            pos = _copy_from(path, pos, out_fd, filt)
            if not follow:
                return
            st = rt.read_state(rundir)
            if not st or (st.get("state") not in rt.ACTIVE_STATES and
                          not rt.pid_alive(st.get("supervisor_pid"), st.get("supervisor_starttime"))):
                _copy_from(path, pos, out_fd, filt)
                return
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            # inotify wakes us on writes; the 1 s cap also notices a domain stopped
            # by a host reboot or a supervisor that died without writing state
            watcher.wait(1.0 if left is None else min(1.0, left))
    finally:
        if watcher is not None:
            watcher.close()


def _copy_from(path: str, pos: int, out_fd: int, filt) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        size = os.fstat(fd).st_size
        if size < pos:
            pos = 0
        while True:
            data = os.pread(fd, 65536, pos)
            if not data:
                return pos
            pos += len(data)
            _write_all(out_fd, filt.feed(data) if filt else data)
    finally:
        os.close(fd)
