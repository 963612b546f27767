"""pexpect on a real pseudo-terminal: a pinned environment and a few helpers."""

from __future__ import annotations

import os
import re
import sys

import pytest

pexpect = pytest.importorskip("pexpect")

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[=>]|\r")
PROMPT = re.compile(r"vsh [#>]")


def clean(text: str) -> str:
    """Terminal output without escape sequences and carriage returns."""
    return ANSI.sub("", text)


class Repl:
    """One interactive vsh on a pty (24x100, TERM=xterm, no cursor-position requests)."""

    def __init__(self, *args: str, env: dict | None = None, timeout: float = 15):
        full = dict(os.environ)
        full.update({"PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm", "COLUMNS": "100", "LINES": "24"})
        full.update(env or {})
        self.child = pexpect.spawn(sys.executable, ["-m", "vsh", *args], env=full, dimensions=(24, 100),
                                   encoding="utf-8", timeout=timeout, codec_errors="replace")
        self.transcript = ""
        self.banner = self.wait_prompt()

    def _read(self, pattern) -> str:
        self.child.expect(pattern)
        got = self.child.before + (self.child.after if isinstance(self.child.after, str) else "")
        self.transcript += got
        return clean(self.child.before)

    def wait_prompt(self) -> str:
        """Everything up to the next prompt."""
        return self._read(PROMPT)

    def run(self, line: str) -> str:
        """Type a line and return its output (synchronised on an echo marker after it)."""
        n = len(self.transcript)
        self.child.send(line + "\r")
        # the typed line shows '""' that the output has not, so only the output matches
        self.child.send(f'echo @@done-""{n}@@\r')
        out = self._read(re.compile(re.escape(f"@@done-{n}@@")))
        self.wait_prompt()
        return out

    def text(self) -> str:
        """The whole session so far, without escape sequences."""
        return clean(self.transcript)

    def send(self, text: str) -> None:
        self.child.send(text)

    def expect(self, pattern) -> str:
        return self._read(pattern)

    def eof(self) -> int:
        """Wait for the end; return the exit status."""
        self.child.expect(pexpect.EOF)
        self.transcript += self.child.before
        self.child.close()
        return self.child.exitstatus

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@pytest.fixture
def repl():
    started = []

    def start(*args: str, env: dict | None = None) -> Repl:
        r = Repl(*args, env=env)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()
