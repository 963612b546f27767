"""The layers, checked on the static import graph of every module under vsh/
(imports inside functions count): front ends → commands → api → core / kvm / guestfs.

See docs/design-notes.md ("The map").
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "vsh")
LIMIT = 600     # lines per module

# layer of a module: the first matching prefix wins
LAYERS = [
    ("vsh.core", 0), ("vsh.kvm", 1), ("vsh.guestfs", 1), ("vsh.api", 2),
    ("vsh.registry", 3), ("vsh._index", 3), ("vsh.ui", 3), ("vsh.completion", 3),
    ("vsh.commands", 4),
    ("vsh.shell", 5), ("vsh.repl", 5), ("vsh.cli", 5), ("vsh.manpage", 5), ("vsh.web", 5),
    ("vsh.__main__", 5), ("vsh", 5),
]
# what a layer may import besides itself and the layers below it
FORBIDDEN = {
    "vsh.kvm": ("vsh.guestfs",),                  # kvm and guestfs are siblings; guestfs may use kvm
    "vsh.commands": ("vsh.kvm", "vsh.guestfs", "vsh.api.local", "vsh.core.store"),   # commands use the API
    "vsh.ui": ("vsh.kvm", "vsh.guestfs", "vsh.api.local", "vsh.core.store"),
    "vsh.completion": ("vsh.kvm", "vsh.guestfs", "vsh.api.local", "vsh.core.store"),
    "vsh.api": ("vsh.kvm", "vsh.guestfs", "vsh.api.local", "vsh.core.store"),   # the interface
    # the web console is a front end like the shell: it reaches the machines through vsh.api only
    "vsh.web": ("vsh.kvm", "vsh.guestfs", "vsh.api.local", "vsh.core.store", "vsh.commands"),
}
# drivers implement the interface over the layers below
EXEMPT = {"vsh.api": ("vsh.api.local", "vsh.api.libvirt")}


def _modules() -> dict[str, str]:
    mods = {}
    for dirpath, _dirs, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, os.path.join(ROOT, ".."))[:-3].replace(os.sep, ".")
                mods[rel[:-9] if rel.endswith(".__init__") else rel] = path
    return mods


def _imports(mods: dict[str, str]):
    """module -> {(imported module, name or None)}; names of private objects are kept."""
    graph = {}
    for mod, path in mods.items():
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
        package = mod if path.endswith("__init__.py") else mod.rpartition(".")[0]
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                pairs = [(alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                pairs = []
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    pairs.append((sub, None) if sub in mods else (base, alias.name))
            else:
                continue
            for target, name in pairs:
                if target.split(".")[0] != "vsh":
                    continue
                while target not in mods and "." in target:
                    target = target.rpartition(".")[0]
                if target != mod:
                    found.add((target, name))
        graph[mod] = found
    return graph


def _layer(mod: str) -> tuple[str, int]:
    if mod == "vsh":
        return "vsh", 0         # the package itself: its version, nothing else
    for prefix, level in LAYERS:
        if mod == prefix or mod.startswith(prefix + "."):
            return prefix, level
    raise AssertionError(f"module {mod} has no layer: add it to LAYERS")


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def violations() -> set[tuple[str, str]]:
    mods = _modules()
    graph = _imports(mods)
    found = set()
    edges = {m: {t for t, _n in deps} for m, deps in graph.items()}
    for comp in _cycles(edges):
        found.add(("cycle", " ".join(comp)))
    for mod, deps in graph.items():
        prefix, level = _layer(mod)
        for target, name in deps:
            tprefix, tlevel = _layer(target)
            if tlevel > level:
                found.add(("upward", f"{mod} -> {target}"))
            for owner, banned in FORBIDDEN.items():
                if any(mod == e or mod.startswith(e + ".") for e in EXEMPT.get(owner, ())):
                    continue
                if (mod == owner or mod.startswith(owner + ".")) and any(
                        target == b or target.startswith(b + ".") for b in banned):
                    found.add(("forbidden", f"{mod} -> {target}"))
            if mod.startswith("vsh.commands.") and target.startswith("vsh.commands."):
                found.add(("command-to-command", f"{mod} -> {target}"))
            if name and name.startswith("_") and not name.startswith("__"):
                found.add(("private", f"{mod} -> {target}.{name}"))
    return found


def test_layers_hold():
    found = sorted(violations())
    assert not found, "imports that break the layers:\n" + "\n".join(f"  {k}: {d}" for k, d in found)


def test_modules_stay_small():
    large = set()
    for mod, path in _modules().items():
        with open(path, encoding="utf-8") as fh:
            if sum(1 for _ in fh) > LIMIT:
                large.add(mod)
    assert not large, f"modules over {LIMIT} lines: {sorted(large)}"


@pytest.mark.parametrize("source, expected", [
    ("import vsh.core.xml\n", {("vsh.core.xml", None)}),
    ("def f():\n    from vsh.kvm import client\n", {("vsh.kvm.client", None)}),
    ("from vsh.core.store import _unlink\n", {("vsh.core.store", "_unlink")}),
])
def test_the_graph_sees_every_import(tmp_path, monkeypatch, source, expected):
    pkg = tmp_path / "vsh"
    for sub in ("core", "kvm"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    for name in ("xml", "store"):
        (pkg / "core" / f"{name}.py").write_text("")
    (pkg / "kvm" / "client.py").write_text("")
    (pkg / "probe.py").write_text(source)
    monkeypatch.setattr(__import__(__name__), "ROOT", str(pkg), raising=False)
    globals()["ROOT"] = str(pkg)
    try:
        assert _imports(_modules())["vsh.probe"] == expected
    finally:
        globals()["ROOT"] = os.path.join(os.path.dirname(__file__), "..", "..", "vsh")


def test_a_broken_layer_is_found(tmp_path):
    pkg = tmp_path / "vsh"
    for sub in ("core", "commands", "kvm", "api", "api/local"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("def f():\n    from vsh.commands import b\n")
    (pkg / "commands" / "b.py").write_text("from vsh.kvm import c\nfrom vsh.commands import d\n")
    (pkg / "commands" / "d.py").write_text("from vsh.core.a import _hidden\n")
    (pkg / "kvm" / "c.py").write_text("import vsh.kvm.e\n")
    (pkg / "kvm" / "e.py").write_text("import vsh.kvm.c\n")
    (pkg / "api" / "i.py").write_text("from vsh.api.local import x\n")
    (pkg / "api" / "local" / "x.py").write_text("from vsh.kvm import c\n")
    globals()["ROOT"] = str(pkg)
    try:
        found = violations()
    finally:
        globals()["ROOT"] = os.path.join(os.path.dirname(__file__), "..", "..", "vsh")
    assert found == {
        ("upward", "vsh.core.a -> vsh.commands.b"),
        ("forbidden", "vsh.commands.b -> vsh.kvm.c"),
        ("command-to-command", "vsh.commands.b -> vsh.commands.d"),
        ("private", "vsh.commands.d -> vsh.core.a._hidden"),
        ("cycle", "vsh.kvm.c vsh.kvm.e"),
        ("cycle", "vsh.commands.b vsh.commands.d vsh.core.a"),
        ("forbidden", "vsh.api.i -> vsh.api.local.x"),
    }
