"""vsh.cli.run, the `vsh` program's entry: it ends the process without the interpreter's teardown,
but only after what that teardown would have done (atexit functions, threads still running)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(prelude: str, *argv: str) -> subprocess.CompletedProcess:
    code = f"import sys\n{prelude}\nsys.argv = ['vsh', *{list(argv)!r}]\nfrom vsh.cli import run\nrun()\n"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_status_output_and_atexit_functions():
    res = _run("import atexit\natexit.register(lambda: print('atexit ran', flush=True))", "--version")
    assert (res.returncode, res.stdout) == (0, "0.1.0\natexit ran\n")
    res = _run("", "no-such-command")
    assert res.returncode == 1 and res.stderr.startswith("error: unknown command: 'no-such-command'")


def test_a_thread_still_running_is_waited_for():
    res = _run("import threading, time\n"
               "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done', flush=True))).start()",
               "--version")
    assert (res.returncode, res.stdout) == (0, "0.1.0\nthread done\n")
