"""Line splitting and the one dispatcher behind all three modes.

The tokenizer follows virsh (reference §4): spaces and tabs separate words,
``;`` and newline end a command, ``#`` at the start of a word starts a comment,
``'...'`` is literal, ``"..."`` and bare words take ``\\`` escapes, quotes join the
text next to them, an unterminated ``"`` or a trailing ``\\`` is an error and an
unterminated ``'`` is accepted.

Three modes share :meth:`Shell.execute`:
- a command string (one argument, ``vsh 'a; b'``): everything is parsed first;
  a parse error runs nothing; all commands run; the status is the last one's;
- argv (``vsh cmd arg...``): one command, words taken literally;
- batch (``-f FILE`` or stdin that is not a terminal): line by line, stopping at
  the first failure unless ``--keep-going``; a command written ``-cmd`` may fail.
"""

from __future__ import annotations

import sys
import time

from vsh.core.errors import ParseError, VshError
from vsh.core.output import FrontEnd
from vsh.registry import Command, QuitShell, Registry, bind, help_command, parse_args, registry


# guestfish's commands print exactly their data: no virsh-style blank line after them
NO_BLANK_LINE_GROUPS = frozenset({"guest"})


def tokenize(text: str) -> list[list[str]]:
    """Split a command string into commands, each a list of words."""
    commands: list[list[str]] = []
    words: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r":
            i += 1
            continue
        if ch in ";\n":
            if words:
                commands.append(words)
                words = []
            i += 1
            continue
        if ch == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        # one word, made of quoted and unquoted pieces
        buf: list[str] = []
        while i < n and text[i] not in " \t\r;\n":
            ch = text[i]
            if ch == "'":
                end = text.find("'", i + 1)
                if end < 0:
                    buf.append(text[i + 1:])
                    i = n
                else:
                    buf.append(text[i + 1:end])
                    i = end + 1
            elif ch == '"':
                i += 1
                while True:
                    if i >= n:
                        raise ParseError('missing "')
                    ch = text[i]
                    if ch == '"':
                        i += 1
                        break
                    if ch == "\\":
                        if i + 1 >= n:
                            raise ParseError('missing "')
                        buf.append(text[i + 1])
                        i += 2
                        continue
                    buf.append(ch)
                    i += 1
            elif ch == "\\":
                if i + 1 >= n:
                    raise ParseError("dangling \\")
                if text[i + 1] != "\n":
                    buf.append(text[i + 1])
                i += 2
            else:
                buf.append(ch)
                i += 1
        words.append("".join(buf))
    if words:
        commands.append(words)
    return commands


class Context:
    """What a command handler gets: the connection, the options, shared state."""

    def __init__(self, uri: str | None = None, readonly: bool = False, quiet: bool = False,
                 debug: int | None = None, timing: bool = False, json: bool = False,
                 interactive: bool = False, escape: str = "^]", out=None, err=None):
        self.uri = uri
        self.readonly = readonly
        self.quiet = quiet
        self.debug = debug
        self.timing = timing
        self.json = json
        self.interactive = interactive
        self.escape = escape
        self.out = out
        self.err = err
        self.state: dict = {}  # per-shell state for plug-ins (e.g. the guest-disk session)
        self._conn = None

    @property
    def conn(self):
        """The connection (:class:`vsh.api.base.Connection`), opened on first use."""
        if self._conn is None:
            from vsh import api

            self._conn = api.connect(self.uri, readonly=self.readonly)
        return self._conn

    @property
    def store(self):
        """The embedded store behind a local connection (for commands not yet on the API)."""
        return self.conn.store

    def connect(self, uri: str | None, readonly: bool = False) -> None:
        from vsh import api

        conn = api.connect(uri, readonly=readonly)
        if self._conn is not None:
            self._conn.close()
        self._conn = conn
        self.uri = conn.uri
        self.readonly = readonly

    def debug_log(self, text: str) -> None:
        if self.debug is not None:
            self.out.write(f"{text}\n")


class Prepared:
    """A parsed command, ready to run."""

    __slots__ = ("cmd", "raw", "words", "ignore_failure", "show_help")

    def __init__(self, cmd: Command, raw: dict, words: list, ignore_failure: bool = False,
                 show_help: bool = False):
        self.cmd = cmd
        self.raw = raw
        self.words = words
        self.ignore_failure = ignore_failure
        self.show_help = show_help


class Shell:
    """Runs parsed commands against a context and renders what they return."""

    def __init__(self, ctx: Context, reg: Registry | None = None):
        self.ctx = ctx
        self.reg = reg or registry()
        self.handed_off = False         # a front end ran in place of the shell (vsh web)
        if ctx.out is None:
            ctx.out = sys.stdout
        if ctx.err is None:
            ctx.err = sys.stderr

    # -- preparing ------------------------------------------------------------
    def prepare(self, words: list[str]) -> Prepared:
        name = words[0]
        ignore = False
        if name.startswith("-") and len(name) > 1 and self.reg.get(name[1:]) is not None:
            ignore = True
            name = name[1:]
        cmd = self.reg.get(name)
        if cmd is None:
            hint = self.reg.suggest(name)
            raise ParseError(f"unknown command: '{name}'",
                             hint=f"did you mean '{hint}'?" if hint else None)
        rest = words[1:]
        if "--help" in rest[: rest.index("--") if "--" in rest else len(rest)]:
            return Prepared(cmd, {}, words, ignore, show_help=True)
        raw = parse_args(cmd, rest) if not cmd.broken else {}
        return Prepared(cmd, raw, words, ignore)

    # -- running --------------------------------------------------------------
    def report(self, err: VshError) -> None:
        from vsh.core.escape import escape  # messages quote names, paths and guest text: the terminal rule

        self.ctx.out.flush()
        if err.silent:
            return
        for line in err.lines:
            self.ctx.err.write(f"error: {escape(line, keep_newlines=True)}\n")
        if err.hint:
            self.ctx.err.write(f"hint: {escape(err.hint, keep_newlines=True)}\n")
        self.ctx.err.flush()

    def run_prepared(self, prep: Prepared) -> int:
        ctx = self.ctx
        cmd = prep.cmd
        out = ctx.out
        started = time.perf_counter() if ctx.timing else 0.0
        status = 0
        as_json = (ctx.json or bool(prep.raw.get("json"))) and not prep.show_help
        saved_json = ctx.json
        try:
            if prep.show_help:
                out.write(help_command(cmd))
            else:
                status = self._call(prep, as_json)
        finally:
            ctx.json = saved_json
        if as_json:
            pass
        elif ctx.timing:
            out.write(f"\n(Time: {(time.perf_counter() - started) * 1000:.3f} ms)\n\n")
        elif not ctx.quiet and cmd.group not in NO_BLANK_LINE_GROUPS and not self.handed_off:
            out.write("\n")
        if prep.ignore_failure:
            return 0
        return status

    def _call(self, prep: Prepared, as_json: bool) -> int:
        """Run the handler and render its result; errors are reported here."""
        ctx = self.ctx
        cmd = prep.cmd
        out = ctx.out
        status = 0
        try:
            if as_json:
                ctx.json = True  # `CMD --json` behaves like `vsh --json CMD` for the handler
            if cmd.broken:
                raise VshError(f"command '{cmd.name}' is unavailable: plug-in {cmd.module} failed to load: {cmd.broken}")
            if ctx.readonly and cmd.mutating and not ctx.conn.enforces_readonly:
                raise VshError(f"operation forbidden: read only access prevents {cmd.name}")
            kwargs = bind(cmd, prep.raw)
            kwargs.pop("json", None)
            result = cmd.handler(ctx, **kwargs)
            if ctx._conn is not None:
                ctx._conn.settle()
            if isinstance(result, FrontEnd):
                self.handed_off = True
                return self.hand_off(result)
            if as_json:
                from vsh.core.output import to_json

                out.write(to_json(result))
            elif result is not None:
                out.write(result.text(ctx.quiet))
        except QuitShell:
            raise
        except VshError as err:
            err = self._settled(err)
            self.report(err)
            status = err.status
        except KeyboardInterrupt:
            self.report(VshError("interrupted"))
            status = 130
        except BrokenPipeError:
            raise
        except Exception as exc:  # a bug: say so plainly, keep the shell alive
            unholdable = _unholdable_option(prep.raw, exc)
            if unholdable is not None:
                self.report(unholdable)
                return unholdable.status
            if ctx.debug is not None:
                import traceback

                traceback.print_exc(file=ctx.err)
            err = self._settled(VshError(f"internal error: {type(exc).__name__}: {exc}"))
            self.report(err)
            status = err.status
        return status

    def _settled(self, err: VshError) -> VshError:
        """What a failed command reports: the error of a call the connection pipelined and the
        command never waited for (it came first, as it would have without pipelining), else ``err``."""
        if self.ctx._conn is not None:
            try:
                self.ctx._conn.settle()
            except VshError as first:
                return first
        return err

    def hand_off(self, front: FrontEnd) -> int:
        """Run the front end a command asked for (``vsh web``) on this shell's connection."""
        if front.name != "web":
            raise VshError(f"internal error: no front end '{front.name}'")
        from vsh.web import run

        return run(self.ctx.conn, out=self.ctx.out, err=self.ctx.err, **front.options)

    def execute(self, words: list[str]) -> int:
        """Parse and run one command given as words (argv mode)."""
        try:
            prep = self.prepare(words)
        except VshError as err:
            self.report(err)
            return 1
        try:
            return self.run_prepared(prep)
        except QuitShell:
            return 0

    def run_string(self, text: str) -> int:
        """virsh's command-string mode: parse everything, then run everything."""
        try:
            preps = [self.prepare(words) for words in tokenize(text)]
        except VshError as err:
            self.report(err)
            return 1
        if not preps:
            return 1 if text == "" else 0
        status = 0
        try:
            for prep in preps:
                status = self.run_prepared(prep)
        except QuitShell:
            pass
        return status

    def run_batch(self, lines, keep_going: bool = False) -> int:
        """One command per line; stop at the first failure unless keep_going."""
        failed = False
        for line in lines:
            try:
                preps = [self.prepare(words) for words in tokenize(line)]
            except VshError as err:
                self.report(err)
                if not keep_going:
                    return 1
                failed = True
                continue
            for prep in preps:
                try:
                    status = self.run_prepared(prep)
                except QuitShell:
                    return 1 if failed else 0
                if status != 0:
                    if not keep_going:
                        return status
                    failed = True
        return 1 if failed else 0


# -- completion (shared by the REPL and `vsh complete`) -------------------------


def _unholdable_option(raw: dict, exc: Exception) -> VshError | None:
    """lxml refused an option's text that XML 1.0 cannot hold (a command put it into XML
    without checking it): the error names the option and the character, not lxml's words."""
    if not (isinstance(exc, ValueError) and "XML compatible" in str(exc)):
        return None
    from vsh.core.xml import check_xml_text

    for key, value in raw.items():
        for text in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(text, str):
                try:
                    check_xml_text(text, f"--{key.replace('_', '-')} option")
                except VshError as err:
                    return err
    return None


def split_partial(text: str) -> tuple[list[str], str] | None:
    """The words of the last, unfinished command of ``text`` and the raw text of its last word.

    Unlike :func:`tokenize` this never fails: an open quote or a trailing backslash is
    what a person is typing. An empty last word means the cursor follows a blank.
    Returns None inside a comment (nothing to complete there).
    """
    words: list[str] = []
    buf: list[str] = []
    in_word = False
    start = 0
    quote = None
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if quote == "'":
            if ch == "'":
                quote = None
            else:
                buf.append(ch)
            i += 1
            continue
        if quote == '"':
            if ch == '"':
                quote = None
            elif ch == "\\" and i + 1 < n:
                buf.append(text[i + 1])
                i += 1
            else:
                buf.append(ch)
            i += 1
            continue
        if ch in " \t\r;\n":
            if in_word:
                words.append("".join(buf))
                buf, in_word = [], False
            if ch in ";\n":
                words = []
            i += 1
            continue
        if ch == "#" and not in_word:
            end = text.find("\n", i)
            if end < 0:
                return None
            i = end
            continue
        if not in_word:
            in_word, start = True, i
        if ch in "'\"":
            quote = ch
        elif ch == "\\":
            if i + 1 < n:
                buf.append(text[i + 1])
                i += 1
        else:
            buf.append(ch)
        i += 1
    if in_word:
        words.append("".join(buf))
        return words, text[start:]
    words.append("")
    return words, ""


def quote_word(word: str) -> str:
    """``word`` as the tokenizer reads it back: bare when safe, else in single quotes."""
    if word and not word.startswith("#") and not any(c in word for c in " \t\r\n;'\"\\"):
        return word
    return "'" + word.replace("'", "'\\''") + "'"
