"""Fixtures shared by every test: a private home and a temporary store.

No test touches the real home directory: ``HOME`` and the XDG directories point
into the test's temporary directory, and ``VSH_DEFAULT_URI`` points the embedded
store at ``<tmp>/store``.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

# the helpers beside this file (vmguest, argv_materials, ...) import as top-level modules in every test
sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False,
                     help="run the reliability campaigns (tests/reliability) for many more iterations")


@pytest.fixture(scope="session")
def long_mode(request) -> bool:
    """True with ``--long``: campaigns run thousands of iterations instead of their bounded form."""
    return bool(request.config.getoption("--long"))


class Env:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.home = tmp / "home"
        self.store = tmp / "store"
        self.uri = f"vsh:///session?root={self.store}"
        self.domains = self.store / "config" / "domains"


@pytest.fixture(autouse=True)
def vsh_env(tmp_path, monkeypatch):
    """Point HOME, the XDG directories and the store into the test's tmp directory."""
    env = Env(tmp_path)
    env.home.mkdir()
    monkeypatch.setenv("HOME", str(env.home))
    for var, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"),
                     ("XDG_STATE_HOME", ".local/state"), ("XDG_CACHE_HOME", ".cache")):
        path = env.home / sub
        path.mkdir(parents=True)
        monkeypatch.setenv(var, str(path))
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    monkeypatch.setenv("VSH_DEFAULT_URI", env.uri)
    for var in ("VSH_URI", "VISUAL", "EDITOR", "LIBVIRT_DEFAULT_URI", "VIRSH_DEFAULT_CONNECT_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return env


class Result:
    def __init__(self, status: int, out: str, err: str):
        self.status = status
        self.out = out
        self.err = err

    def __repr__(self) -> str:
        return f"Result(status={self.status!r}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def vsh(capsys, monkeypatch):
    """Run ``vsh.cli.main(argv)`` in-process: ``vsh('list', '--all', stdin=None)`` → Result."""
    from vsh.cli import main

    def run(*argv: str, stdin: str | None = None) -> Result:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin if stdin is not None else ""))
        status = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return Result(status, out, err)

    return run


@pytest.fixture
def vsh_proc():
    """Run vsh in a subprocess (real exit status, real stdin): ``vsh_proc('list', input='...')``."""

    def run(*argv: str, input: str | bytes | None = None, env: dict | None = None,
            timeout: float = 60) -> Result:
        full_env = dict(os.environ)
        full_env.update(env or {})
        text = not isinstance(input, bytes)
        proc = subprocess.run([sys.executable, "-m", "vsh", *[str(a) for a in argv]],
                              input=input if input is not None else ("" if text else b""),
                              capture_output=True, text=text, env=full_env, timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


def domain_xml(name: str = "vm1", *, uuid: str | None = None, memory: str = "<memory unit='MiB'>64</memory>",
               vcpu: str = "<vcpu>1</vcpu>", devices: str = "", extra: str = "",
               dtype: str = "qemu", title: str | None = None) -> str:
    """A small valid domain; pieces can be replaced to make it invalid."""
    parts = [f"<domain type='{dtype}'>", f"  <name>{name}</name>"]
    if uuid:
        parts.append(f"  <uuid>{uuid}</uuid>")
    if title is not None:
        parts.append(f"  <title>{title}</title>")
    parts += [f"  {memory}", f"  {vcpu}", "  <os>", "    <type arch='x86_64' machine='pc'>hvm</type>",
              "  </os>"]
    if extra:
        parts.append(f"  {extra}")
    parts += ["  <devices>", f"    {devices}" if devices else "", "  </devices>", "</domain>", ""]
    return "\n".join(p for p in parts if p != "") + "\n"


@pytest.fixture
def define(vsh, vsh_env):
    """Define a domain from XML text (or keyword arguments for :func:`domain_xml`); returns the name."""

    def run(name: str = "vm1", xml: str | None = None, **kw) -> str:
        path = vsh_env.tmp / f"def-{hashlib.sha1(name.encode()).hexdigest()[:12]}.xml"
        path.write_text(xml if xml is not None else domain_xml(name, **kw))
        res = vsh("define", str(path))
        assert res.status == 0, res
        return name

    return run


def block_device() -> str | None:
    """A block device of this host's (for tests of per-device I/O limits), or None."""
    import stat

    for name in ("loop0", "vda", "sda", "nvme0n1"):
        path = f"/dev/{name}"
        if os.path.exists(path) and stat.S_ISBLK(os.stat(path).st_mode):
            return path
    return None


def tree(path: Path) -> dict:
    """Every entry below ``path`` with a digest of its content (to prove nothing changed)."""
    out = {}
    if not path.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(path):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), path) + "/"] = None
        for f in filenames:
            full = os.path.join(dirpath, f)
            if os.path.islink(full):        # the UUID index's links name a domain, not a file
                out[os.path.relpath(full, path)] = "-> " + os.readlink(full)
                continue
            with open(full, "rb") as fh:
                out[os.path.relpath(full, path)] = hashlib.sha256(fh.read()).hexdigest()
    return out


@pytest.fixture
def make_xml():
    """The :func:`domain_xml` builder, as a fixture (test modules do not import conftest)."""
    return domain_xml


@pytest.fixture
def store_tree(vsh_env):
    """``store_tree()`` → the current content of the temporary store (see :func:`tree`)."""
    return lambda: tree(vsh_env.store)
