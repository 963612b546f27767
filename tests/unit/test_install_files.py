"""After scripts/setup, `man vsh` and the shells' completion find vsh's files beside the venv's vsh."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

PREFIX = sys.prefix
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(not shutil.which("man"), reason="man-db is not installed")
def test_man_finds_the_page_through_path(tmp_path):
    env = {"PATH": f"{PREFIX}/bin:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C"}
    found = subprocess.run(["man", "-w", "vsh"], env=env, capture_output=True, text=True, timeout=30)
    assert found.returncode == 0, found.stderr
    page = found.stdout.strip()
    assert page == os.path.join(PREFIX, "share", "man", "man1", "vsh.1")
    if PREFIX.startswith(REPO + os.sep):     # this checkout's own venv (not one shared with a worktree)
        with open(page, encoding="utf-8") as installed, \
                open(os.path.join(REPO, "man", "vsh.1"), encoding="utf-8") as ours:
            assert installed.read() == ours.read(), "the installed man page is stale: run scripts/setup"


@pytest.mark.parametrize("shell, path", [
    ("bash", "share/bash-completion/completions/vsh"),
    ("zsh", "share/zsh/site-functions/_vsh"),
    ("fish", "share/fish/vendor_completions.d/vsh.fish"),
])
def test_completion_scripts_are_installed(vsh, shell, path):
    with open(os.path.join(PREFIX, path), encoding="utf-8") as fh:
        installed = fh.read()
    assert installed == vsh("completion", shell).out
