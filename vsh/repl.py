"""The interactive shell (prompt_toolkit is imported only here)."""

from __future__ import annotations

import os
from pathlib import Path

BANNER = ("Welcome to vsh, the virtualization interactive terminal.\n\n"
          "Type:  'help' for help with commands\n"
          "       'quit' to quit\n\n")


HISTORY_LIMIT = 1000  # entries kept in the history file


def history_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    path = Path(base) / "vsh"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path / "history"


def open_history():
    """The persistent history (private, trimmed to HISTORY_LIMIT), or an in-memory one if it cannot be."""
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    try:
        path = history_path()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)
        os.close(fd)
        _trim_history(path)
        return FileHistory(str(path))
    except OSError:
        return InMemoryHistory()


def _trim_history(path: Path) -> None:
    """Keep the last HISTORY_LIMIT entries (prompt_toolkit's file format: a '# date' line, then '+' lines)."""
    data = path.read_bytes()
    if data.count(b"\n# ") < HISTORY_LIMIT + 100:
        return
    entries = data.split(b"\n# ")
    kept = b"\n# ".join(entries[-HISTORY_LIMIT:])
    from vsh.core.store import atomic_write

    atomic_write(path, b"\n# " + kept if not kept.startswith(b"#") else kept)


def make_completer(shell):
    from prompt_toolkit.completion import Completer, Completion

    from vsh.completion import complete
    from vsh.shell import quote_word, split_partial

    class VshCompleter(Completer):
        def get_completions(self, document, complete_event):
            parsed = split_partial(document.text_before_cursor)
            if parsed is None:
                return
            words, raw = parsed
            for cand in complete(shell.ctx, words, shell.reg):
                text = quote_word(cand)
                if text != cand and cand.endswith("/"):
                    text = text[:-1]  # leave a directory's quote open for the next component
                yield Completion(text, start_position=-len(raw), display=cand)

    return VshCompleter()


def run_interactive(shell) -> int:
    from prompt_toolkit import PromptSession

    from vsh.core.errors import VshError
    from vsh.registry import QuitShell
    from vsh.shell import tokenize

    ctx = shell.ctx
    ctx.interactive = True
    if not ctx.quiet:
        ctx.out.write(BANNER)
        ctx.out.flush()
    session = PromptSession(history=open_history(), completer=make_completer(shell),
                            complete_while_typing=False)
    while True:
        prompt = "vsh > " if ctx.readonly else "vsh # "
        try:
            line = session.prompt(prompt)
        except KeyboardInterrupt:
            continue  # Ctrl-C cancels the line
        except EOFError:
            ctx.out.write("\n")
            return 0
        try:
            preps = [shell.prepare(words) for words in tokenize(line)]
        except VshError as err:
            shell.report(err)
            continue
        try:
            for prep in preps:
                shell.run_prepared(prep)
        except QuitShell:
            ctx.out.write("\n")
            return 0
        except KeyboardInterrupt:
            # Ctrl-C outside a handler (which reports it itself): back to the prompt
            ctx.out.write("\n")
        ctx.out.flush()
