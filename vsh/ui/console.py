"""The serial console, on the terminal side: what a person at a terminal sees of a
domain's console stream (:meth:`vsh.api.base.Domain.open_console`).

:func:`attach` connects the caller's stdin/stdout to the stream:

* on a terminal, the terminal goes to raw mode; in a pipe, stdin goes to the guest
  and guest output to stdout until stdin ends (then output is relayed until the
  guest has been quiet for ``linger`` seconds);
* the escape character (``^]`` by default, ``-e ^X`` style) leaves, and so does
  ``~.`` typed right after a newline (keyboard-layout independent; ``~~`` sends a
  single ``~``);
* SIGTERM (another ``vsh console --force`` taking the session over) and SIGHUP end
  the session cleanly;
* guest output goes through :class:`OutputFilter` unless ``raw``: control strings
  that could set the window title, write the clipboard, load fonts or talk to the
  terminal (OSC, DCS, APC, PM, SOS, their UTF-8 C1 forms) and window-manipulation
  CSI sequences are dropped; colours, cursor movement and the rest pass.
"""

from __future__ import annotations

import os
import re
import select
import signal

from vsh.core.errors import InvalidArgument, OperationInvalid, Timeout, VshError

DEFAULT_ESCAPE = "^]"


# --------------------------------------------------------------------------------------
# the escape character and the filters
# --------------------------------------------------------------------------------------

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

    def __init__(self, drop_queries: bool = False, keep_sequences: bool = True):
        self.state = _GROUND
        self.buf = bytearray()
        self.osc = False
        # False for a log reader (:class:`LogFilter`): every escape sequence goes, the harmless too
        self.keep = keep_sequences
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
                    if self.keep:
                        out += self.buf
                elif b in (0x18, 0x1A):             # CAN/SUB cancel
                    self.state = _GROUND
                elif not self.keep and 0x20 <= b <= 0x2F:
                    self.buf.append(b)              # an intermediate (ESC ( B): its final goes too
                else:                               # ESC 7, ESC 8, ESC ( B, ESC M, ...
                    if self.keep:
                        out += self.buf
                        out.append(b)
                    self.state = _GROUND
                continue
            if st == _CSI:
                i += 1
                if 0x40 <= b <= 0x7E:
                    self.buf.append(b)
                    if self.keep and b not in self.bad_finals:
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



# C0 controls (but newline and tab) and DEL: what a log reader does not need
_LOG_DROP = dict.fromkeys([c for c in range(0x20) if c not in (0x09, 0x0A)] + [0x7F])


class LogFilter:
    """Guest output → a person reading a log (``console-log``): printable text, newlines and
    tabs, nothing else.

    Every escape sequence goes (:class:`OutputFilter` without sequences: colours, cursor
    movement and ``ESC [2J`` too, which would clear the reader's screen), and so do the
    other C0 controls (carriage returns, bells, backspaces) and C1 controls; what is left is
    text through the terminal rule for untrusted text (:func:`vsh.core.escape.escape`: a
    bidirectional override shows as ``\\u202e``), invalid UTF-8 as U+FFFD. Streaming, like
    OutputFilter; :meth:`finish` gives what a cut UTF-8 character left at the end.
    """

    def __init__(self):
        import codecs

        self.sequences = OutputFilter(drop_queries=True, keep_sequences=False)
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def _text(self, text: str) -> bytes:
        from vsh.core.escape import escape

        return escape(text.translate(_LOG_DROP), keep_newlines=True).encode()

    def feed(self, data: bytes) -> bytes:
        return self._text(self.decoder.decode(self.sequences.feed(data)))

    def finish(self) -> bytes:
        return self._text(self.decoder.decode(b"", final=True))


# --------------------------------------------------------------------------------------
# the session
# --------------------------------------------------------------------------------------

def write_all(fd: int, data: bytes, timeout: float = 10.0) -> None:
    """Write all of ``data`` to the terminal (or pipe) ``fd``, even if it is non-blocking."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            if not select.select([], [fd], [], timeout)[1]:
                raise Timeout(f"the terminal did not take output within {timeout:g} s") from None


def escape_for(ctx, escape: str | None) -> str:
    """The escape character asked for: ``-e``, else the shell's setting, else ``^]``."""
    return escape if escape is not None else (getattr(ctx, "escape", None) or DEFAULT_ESCAPE)


def std_fds() -> tuple[int, int]:
    """The descriptors of standard input and output; VshError when they are not real files."""
    import sys

    try:
        return sys.stdin.fileno(), sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        raise VshError("the console needs real standard input and output (a terminal or pipes)") from None


def flush_output(ctx) -> None:
    """Flush what the front end buffered before writing to the descriptor directly."""
    import sys

    for stream in (getattr(ctx, "out", None), sys.stdout):
        if stream is not None:
            stream.flush()


def attach(ctx, dom, escape: str | None = None, force: bool = False, raw: bool = False,
           devname: str | None = None, resume: bool = False) -> str:
    """Connect the terminal to ``dom``'s serial console until the user leaves; why it ended
    (see :func:`session`). ``resume`` lets a paused domain run once connected."""
    if dom.runtime() is None:
        raise OperationInvalid("Requested operation is not valid: domain is not running")
    esc = parse_escape(escape_for(ctx, escape))         # a bad -e fails before connecting
    stdin_fd, stdout_fd = std_fds()
    stream = dom.open_console(devname=devname, force=force)
    try:
        if resume and (dom.runtime() or {}).get("state") == "paused":
            dom.resume()
        flush_output(ctx)
        return session(stream, dom.name, esc, raw=raw, stdin_fd=stdin_fd, stdout_fd=stdout_fd)
    finally:
        stream.close()


def session(stream, name: str, esc: int | None = 0x1D, raw: bool = False, stdin_fd: int = 0,
            stdout_fd: int = 1, linger: float = 1.0, tilde: bool = True, banner: bool = True) -> str:
    """Relay between stdin/stdout and an open console ``stream`` of domain ``name``.

    Returns why the session ended: ``"escape"``, ``"eof"`` (stdin ended), ``"closed"``
    (the guest side closed: the domain stopped), ``"taken over"`` (another session
    forced its way in) or ``"hangup"``.
    """
    is_tty = os.isatty(stdin_fd)
    saved = None
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    stop = []
    old_handlers = {}
    old_wakeup = None
    try:
        def on_signal(signum, frame):
            stop.append(signum)

        for sig in (signal.SIGTERM, signal.SIGHUP):
            old_handlers[sig] = signal.signal(sig, on_signal)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        if banner:
            msg = f"Connected to domain '{name}'\r\n"
            if esc is not None:
                msg += f"Escape character is {describe_escape(esc)}"
                if esc == 0x1D:
                    msg += " (Ctrl + ])"
                msg += "\r\n"
            write_all(stdout_fd, msg.encode() if is_tty else msg.replace("\r\n", "\n").encode())
        if is_tty:
            import termios
            import tty
            saved = termios.tcgetattr(stdin_fd)
            tty.setraw(stdin_fd)
        return _relay(stream, stdin_fd, stdout_fd, wake_r, stop, InputFilter(esc, tilde),
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


def _relay(stream, stdin_fd, stdout_fd, wake_r, stop, infilter, outfilter, is_tty, linger) -> str:
    dev = stream.fileno()
    stdin_open = True
    while True:
        if stop:
            if stop[0] == signal.SIGHUP:
                return "hangup"
            return "taken over" if stream.taken_over else "terminated"
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
            data = stream.read(65536)
            if data == b"":
                return "taken over" if stream.taken_over else "closed"
            if data:
                write_all(stdout_fd, outfilter.feed(data) if outfilter else data)
        if stdin_open and stdin_fd in ready:
            try:
                data = os.read(stdin_fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                stdin_open = False
                tail = infilter.flush()
                if tail:
                    stream.write(tail)
                if is_tty:
                    return "eof"
                continue
            send, leave = infilter.feed(data)
            if send:
                stream.write(send)
            if leave:
                return "escape"
