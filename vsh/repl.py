"""The interactive shell (prompt_toolkit is imported only here)."""

from __future__ import annotations

import os
from pathlib import Path

BANNER = ("Welcome to vsh, the virtualization interactive terminal.\n\n"
          "Type:  'help' for help with commands\n"
          "       'quit' to quit\n\n")


def history_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    path = Path(base) / "vsh"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path / "history"


def make_completer(shell):
    from prompt_toolkit.completion import Completer, Completion

    from vsh.shell import complete, tokenize

    class VshCompleter(Completer):
        def get_completions(self, document, complete_event):
            text = document.text_before_cursor
            # complete within the last command of the line
            last = text.rsplit(";", 1)[-1]
            try:
                commands = tokenize(last + ("x" if last.endswith((" ", "\t")) or not last else ""))
            except Exception:
                return
            words = commands[-1] if commands else ["x"]
            if last.endswith((" ", "\t")) or not last:
                words[-1] = ""
            prefix = words[-1]
            for cand in complete(shell.ctx, words, shell.reg):
                yield Completion(cand, start_position=-len(prefix))

    return VshCompleter()


def run_interactive(shell) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    from vsh.core.errors import VshError
    from vsh.shell import QuitShell, tokenize

    ctx = shell.ctx
    ctx.interactive = True
    if not ctx.quiet:
        ctx.out.write(BANNER)
        ctx.out.flush()
    session = PromptSession(history=FileHistory(str(history_path())),
                            completer=make_completer(shell), complete_while_typing=False)
    try:
        os.chmod(history_path(), 0o600)
    except OSError:
        pass
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
        ctx.out.flush()
