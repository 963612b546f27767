"""The user's editor for the ``*-edit`` commands."""

from __future__ import annotations

import os

from vsh.core.errors import VshError


def editor_command() -> str:
    return os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"


def run_editor(path: str, unchanged: str = "the domain's configuration") -> None:
    """Run $VISUAL / $EDITOR (default vi) on ``path`` through ``sh -c``, like virsh; on failure
    the hint says that ``unchanged`` is unchanged."""
    import subprocess

    editor = editor_command()
    try:
        proc = subprocess.run(["sh", "-c", f'{editor} "$1"', "sh", path], check=False)
    except OSError as exc:
        raise VshError(f"cannot run the editor '{editor}': {exc.strerror}") from None
    if proc.returncode != 0:
        raise VshError(f"the editor '{editor}' exited with status {proc.returncode}",
                       hint=f"{unchanged} is unchanged")


def edit_text(before: str, unchanged: str) -> str:
    """``before`` after the user's editor had it in a private temporary ``.xml`` file (removed
    afterwards); ``unchanged`` names what stays as it was when the editor fails."""
    import tempfile

    fd, path = tempfile.mkstemp(prefix="vsh", suffix=".xml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(before)
        run_editor(path, unchanged=unchanged)
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return fh.read()
    finally:
        os.unlink(path)
