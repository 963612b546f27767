"""Fixtures for the guest-disk tests: the cached test images and a hang/crash guard.

The images come from scripts/build-test-images (cached outside the repo).  The
autouse fixture in tests/conftest.py points HOME into each test's tmp_path, so
the builder runs with the environment this module was imported with.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILDER = ROOT / "scripts" / "build-test-images"
_ENV = dict(os.environ)
_built: dict = {}
LIBS = ("pyqcow", "pyvmdk", "pyvhdi", "pyvsmbr", "pyvslvm", "pyluksde", "pyfsext", "pyfsxfs", "pyfsfat", "pyfsntfs")


def _missing_libs() -> list[str]:
    import importlib.util

    return [m for m in LIBS if importlib.util.find_spec(m) is None]


def _skip_without_libs():
    missing = _missing_libs()
    if missing:
        pytest.skip("the libyal Python bindings are not installed: " + ", ".join(missing))


def _build() -> dict:
    if "result" in _built:
        return _built["result"]
    if os.geteuid() != 0:
        res = {"skip": "building the test images needs root (debootstrap, losetup)"}
    else:
        try:
            r = subprocess.run([str(BUILDER)], env=_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, timeout=1800, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            res = {"skip": f"build-test-images could not run: {e}"}
        else:
            if r.returncode != 0:
                res = {"skip": "build-test-images failed: " + " | ".join(r.stderr.strip().splitlines()[-5:])}
            else:
                d = Path(r.stdout.strip().splitlines()[-1])
                with open(d / "manifest.json") as f:
                    res = {"dir": d, "manifest": json.load(f)}
    _built["result"] = res
    return res


class Images:
    def __init__(self, d: Path, manifest: dict):
        self.dir = d
        self.manifest = manifest
        self.images = manifest["images"]

    def path(self, key: str) -> str:
        return str(self.dir / self.images[key]["file"])

    def __getitem__(self, key: str) -> dict:
        return self.images[key]


@pytest.fixture(scope="session")
def images() -> Images:
    _skip_without_libs()
    res = _build()
    if "skip" in res:
        pytest.skip(res["skip"])
    return Images(res["dir"], res["manifest"])


def _child(conn, fn, args):
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as e:  # noqa: BLE001 - report everything to the parent
        lines = getattr(e, "lines", None)
        conn.send(("error", type(e).__name__, list(lines) if lines else [str(e)],
                   [c.__name__ for c in type(e).__mro__], traceback.format_exc()))
    finally:
        conn.close()


def isolated(fn, *args, timeout: float = 10.0):
    """Run fn(*args) in a forked child: ('ok', value) or ('error', name, lines, mro, tb).

    A child still running after *timeout* seconds fails the test as a hang; a
    child killed by a signal fails it as a crash.
    """
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(child, fn, args))
    p.start()
    child.close()
    ready = parent.poll(timeout)
    if not ready:
        p.kill()
        p.join()
        pytest.fail(f"{getattr(fn, '__name__', fn)}{args!r} did not finish in {timeout} s (hang)")
    try:
        result = parent.recv()
    except EOFError:
        result = None
    p.join(5)
    if result is None:
        pytest.fail(f"{getattr(fn, '__name__', fn)}{args!r} crashed (exit code {p.exitcode})")
    return result


@pytest.fixture
def run_isolated():
    _skip_without_libs()
    return isolated
