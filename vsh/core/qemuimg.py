"""Running ``qemu-img``: the one place vsh starts it.

Always with ``LC_ALL=C`` (its messages are quoted in vsh's errors) and no standard
input; its last line of complaint becomes the :class:`VshError`.
"""

from __future__ import annotations

import os

from vsh.core.errors import Unsupported, VshError

MISSING = "qemu-img is not installed (Debian package qemu-utils)"


def qemu_img(args: list[str], *, what: str | None = None, progress_fd: int | None = None,
             timeout: float | None = None, missing: str = MISSING) -> bytes:
    """Run ``qemu-img ARGS``; its standard output (nothing when ``progress_fd`` takes it, for ``-p``).

    Errors: Unsupported(``missing``) when qemu-img is not installed; VshError
    ``WHAT failed: LAST LINE OF ITS ERROR OUTPUT`` when it fails and ``WHAT did not
    finish in N s`` after ``timeout`` seconds (``what`` defaults to ``qemu-img SUBCOMMAND``).
    """
    import shutil
    import subprocess

    exe = shutil.which("qemu-img")
    if exe is None:
        raise Unsupported(missing)
    what = what or f"qemu-img {args[0]}"
    try:
        proc = subprocess.run([exe, *args], stdin=subprocess.DEVNULL,
                              stdout=progress_fd if progress_fd is not None else subprocess.PIPE,
                              stderr=subprocess.PIPE, env={**os.environ, "LC_ALL": "C"}, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise VshError(f"{what} did not finish in {timeout:.0f} s") from None
    if progress_fd is not None:
        try:
            os.write(progress_fd, b"\n")
        except OSError:
            pass
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise VshError(f"{what} failed: {lines[-1] if lines else f'exit status {proc.returncode}'}")
    return proc.stdout or b""
