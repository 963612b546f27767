"""The command table: lint it, run every command's help, keep the generated files fresh,
keep single-shot start-up lean, and survive broken plug-ins."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import vsh.registry as registry_mod
from vsh.registry import GROUPS, KINDS, Registry, registry

ROOT = Path(__file__).resolve().parents[2]
NAME_RE = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
REGENERATE = ".venv/bin/python -m vsh.manpage --write-all"


def all_commands():
    return sorted(Registry(use_index=False).commands(), key=lambda c: c.name)


COMMANDS = all_commands()
COMMAND_NAMES = [c.name for c in COMMANDS]


# -- lint ----------------------------------------------------------------------------------------


def test_registry_is_not_empty():
    assert {"help", "echo", "quit", "list", "dominfo", "define"} <= set(COMMAND_NAMES)


def test_no_broken_builtin_modules():
    broken = {c.name: c.broken for c in COMMANDS if c.broken}
    assert not broken


@pytest.mark.parametrize("cmd", COMMANDS, ids=COMMAND_NAMES)
def test_lint_command(cmd):
    problems = []
    if not NAME_RE.fullmatch(cmd.name):
        problems.append(f"name {cmd.name!r} is not lowercase-dash")
    if not cmd.summary or cmd.summary != cmd.summary.strip() or cmd.summary.endswith("."):
        problems.append(f"summary {cmd.summary!r} is empty, padded or ends with a full stop")
    if cmd.group not in dict(GROUPS):
        problems.append(f"group {cmd.group!r} is not one of {', '.join(dict(GROUPS))}")
    if cmd.handler is None or not callable(cmd.handler):
        problems.append("no handler")
    seen = set()
    for opt in cmd.opts:
        if not NAME_RE.fullmatch(opt.name):
            problems.append(f"option {opt.name!r} is not lowercase-dash")
        if opt.name in seen:
            problems.append(f"option --{opt.name} declared twice")
        seen.add(opt.name)
        if not opt.help or not opt.help.strip():
            problems.append(f"option --{opt.name} has no help text")
        if opt.kind not in KINDS:
            problems.append(f"option --{opt.name} has unknown kind {opt.kind!r}")
        if opt.choices and opt.kind != "enum":
            problems.append(f"option --{opt.name} has choices but kind {opt.kind!r}")
        if opt.kind == "enum" and not opt.choices:
            problems.append(f"enum option --{opt.name} has no choices")
        if opt.is_flag and (opt.required or opt.positional):
            problems.append(f"flag --{opt.name} cannot be required or positional")
    argv = [o for o in cmd.opts if o.kind == "argv"]
    if len(argv) > 1:
        problems.append("more than one argv option")
    positional = [o for o in cmd.opts if o.positional or o.kind == "argv"]
    if argv and positional[-1] is not argv[0]:
        problems.append("the argv option must be the last positional one")
    optional_seen = False
    for opt in positional:
        if not opt.required:
            optional_seen = True
        elif optional_seen:
            problems.append(f"required positional --{opt.name} follows an optional one")
    for pair in cmd.exclusive:
        for name in pair:
            if cmd.opt(name) is None:
                problems.append(f"exclusive pair {pair} names unknown option --{name}")
    for alias in cmd.aliases:
        if not NAME_RE.fullmatch(alias):
            problems.append(f"alias {alias!r} is not lowercase-dash")
    assert not problems, f"{cmd.name}: " + "; ".join(problems)


def test_no_duplicate_names_or_aliases():
    reg = Registry(use_index=False)
    reg.load_all()
    owners: dict[str, list[str]] = {}
    for module, cmds in reg._loaded.items():
        for cmd in cmds:
            for name in (cmd.name, *cmd.aliases):
                owners.setdefault(name, []).append(f"{module}:{cmd.name}")
    dups = {name: where for name, where in owners.items() if len(where) > 1}
    assert not dups


def test_index_aliases_point_to_real_commands():
    from vsh import _index

    for alias, target in _index.ALIASES.items():
        assert target in _index.COMMANDS, f"alias {alias} -> {target}"
        assert alias not in _index.COMMANDS, f"alias {alias} shadows a command"
    for cmd in COMMANDS:
        for alias in cmd.aliases:
            assert registry().get(alias) is registry().get(cmd.name)


def test_mutating_commands_are_marked():
    must = {"define", "undefine", "autostart", "domrename"}
    for cmd in COMMANDS:
        if cmd.name in must:
            assert cmd.mutating, cmd.name
    for name in ("list", "dominfo", "domstate", "dumpxml", "help", "echo"):
        assert not registry().get(name).mutating, name


# -- help for every command and group -------------------------------------------------------------


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_command_help(vsh, name):
    for argv in ((name, "--help"), ("help", name)):
        res = vsh(*argv)
        assert (res.status, res.err) == (0, ""), argv
        out = res.out
        assert out.startswith(f"  NAME\n    {name} - "), argv
        assert "\n  SYNOPSIS\n    " + name in out
        cmd = registry().get(name)
        if cmd.opts:
            assert "\n  OPTIONS\n" in out
            for opt in cmd.opts:
                assert re.search(rf"^    (-\w, )?\[?--{re.escape(opt.name)}\b", out, re.M), (name, opt.name)
        assert out.endswith("\n\n")


def test_help_and_dash_help_agree(vsh):
    assert vsh("help", "dominfo").out == vsh("dominfo", "--help").out


def test_help_dominfo_layout(vsh):
    out = vsh("help", "dominfo").out
    assert "  SYNOPSIS\n    dominfo <domain>" in out
    assert "    [--domain] <string>  domain name, id or uuid\n" in out


def test_help_alias(vsh):
    assert vsh("help", "exit").out == vsh("help", "quit").out


@pytest.mark.parametrize("group", [g for g, _ in GROUPS])
def test_help_group(vsh, group):
    members = [c for c in COMMANDS if c.group == group and not c.hidden]
    res = vsh("help", group)
    if not members:
        assert res.status == 1
        return
    assert res.status == 0
    title = dict(GROUPS)[group]
    assert res.out.startswith(f" {title} (help keyword '{group}'):\n")
    for cmd in members:
        assert re.search(rf"^    {re.escape(cmd.name)} +{re.escape(cmd.summary)}$", res.out, re.M)


def test_help_overview(vsh):
    res = vsh("help")
    assert res.status == 0
    assert res.out.startswith("Grouped commands:\n\n")
    for cmd in COMMANDS:
        line = f"    {cmd.name:<31}{cmd.summary}\n"
        assert (line in res.out) != cmd.hidden, cmd.name
    assert "complete" not in re.findall(r"^    (\S+)", res.out, re.M)


def test_global_help(vsh):
    res = vsh("--help")
    assert res.status == 0
    assert "usage:" in res.out and "Grouped commands:" in res.out


def test_help_json(vsh):
    data = json.loads(vsh("--json", "help").out)
    assert {"name": "dominfo", "group": "monitor", "summary": registry().get("dominfo").summary} in data


# -- generated files -----------------------------------------------------------------------------


def test_index_is_fresh():
    from vsh.manpage import write_index

    fresh = write_index(Registry(use_index=False))
    current = (ROOT / "vsh" / "_index.py").read_text()
    assert current == fresh, f"vsh/_index.py is stale; regenerate it with: {REGENERATE}"


def test_man_page_is_fresh():
    from vsh.manpage import render_man

    fresh = render_man(Registry(use_index=False))
    current = (ROOT / "man" / "vsh.1").read_text()
    assert current == fresh, f"man/vsh.1 is stale; regenerate it with: {REGENERATE}"


def test_man_page_mentions_every_command():
    text = (ROOT / "man" / "vsh.1").read_text()
    for cmd in COMMANDS:
        if not cmd.hidden:
            assert f".B {cmd.name.replace('-', chr(92) + '-')}" in text, cmd.name


def test_man_page_renders(tmp_path):
    import shutil

    if shutil.which("man") is None and shutil.which("groff") is None:
        pytest.skip("neither man nor groff is installed")
    tool = ["groff", "-man", "-Tutf8", "-ww", "-z"] if shutil.which("groff") else None
    if tool is None:
        pytest.skip("groff is not installed")
    proc = subprocess.run(tool + [str(ROOT / "man" / "vsh.1")], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


# -- start-up stays lean ------------------------------------------------------------------------------

HEAVY = ("prompt_toolkit", "qemu", "asyncio")


@pytest.mark.parametrize("argv, also_absent", [
    (["help"], ("lxml",)),
    (["help", "dominfo"], ("lxml",)),
    (["list", "--all"], ("lxml",)),
    (["dominfo", "vm1"], ()),
    (["domstate", "vm1"], ("lxml",)),
    (["echo", "hi"], ("lxml", "vsh.commands.domain")),
])
def test_single_shot_imports(define, vsh_env, argv, also_absent):
    define("vm1")
    code = textwrap.dedent(f"""
        import sys
        from vsh.cli import main
        status = main({argv!r})
        sys.stdout.flush()
        print("MODULES", " ".join(sorted(sys.modules)))
        sys.exit(status)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    modules = set(proc.stdout.rsplit("MODULES ", 1)[1].split())
    for name in HEAVY + tuple(also_absent):
        loaded = sorted(m for m in modules if m == name or m.startswith(name + "."))
        assert not loaded, f"vsh {' '.join(argv)} imported {loaded}"


# -- broken plug-ins -------------------------------------------------------------------------------


class FakeEntryPoint:
    def __init__(self, name, value):
        self.name = name
        self.value = value
        self.group = "vsh.commands"


@pytest.fixture
def broken_plugin(monkeypatch, tmp_path):
    """A third-party plug-in whose import fails, plus one that works."""
    (tmp_path / "vsh_test_broken_plugin.py").write_text("import vsh_no_such_dependency\n")
    (tmp_path / "vsh_test_good_plugin.py").write_text(textwrap.dedent("""
        from vsh.core.output import Text
        from vsh.registry import Opt, command

        @command("plugin-hello", group="virsh", summary="say hello from a plug-in",
                 opts=[Opt("who", positional=True, help="whom to greet")])
        def hello(ctx, who=None):
            return Text(f"hello {who or 'world'}\\n")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    real = registry_mod._entry_points()
    fakes = [FakeEntryPoint("broken", "vsh_test_broken_plugin"), FakeEntryPoint("good", "vsh_test_good_plugin")]
    monkeypatch.setattr(registry_mod, "_entry_points", lambda: real + fakes)
    monkeypatch.setattr(registry_mod, "_REGISTRY", None)
    yield
    for mod in ("vsh_test_broken_plugin", "vsh_test_good_plugin"):
        sys.modules.pop(mod, None)
        registry_mod._DECLARED.pop(mod, None)


def test_broken_plugin_does_not_break_help(vsh, broken_plugin):
    res = vsh("help")
    assert res.status == 0
    assert "    dominfo " in res.out
    assert "plugin-hello" in res.out
    line = next(line for line in res.out.splitlines() if line.startswith("    broken "))
    assert "vsh_no_such_dependency" in line  # the reason shows in the listing


def test_broken_plugin_command_reports_reason(vsh, broken_plugin):
    res = vsh("broken")
    assert res.status == 1
    assert "vsh_test_broken_plugin" in res.err and "vsh_no_such_dependency" in res.err
    assert res.err.startswith("error: ")


def test_broken_plugin_help_and_other_commands(vsh, broken_plugin):
    assert vsh("help", "broken").status == 0
    assert vsh("echo", "still", "works").out == "still works\n"
    assert vsh("plugin-hello", "you").out == "hello you\n\n"
    assert "plugin-hello" in vsh("complete", "--", "plugin-").out


def test_broken_indexed_module(vsh, monkeypatch):
    """A built-in module that fails to import turns its indexed commands into broken ones."""
    reg = Registry()
    reg._index = dict(reg._index)
    reg._index["vanished"] = ("vsh.commands.vsh_test_vanished", "domain", "a command whose module is gone", False)
    monkeypatch.setattr(registry_mod, "_REGISTRY", reg)
    res = vsh("vanished")
    assert res.status == 1
    assert "vsh.commands.vsh_test_vanished" in res.err
    assert vsh("help").status == 0
    assert "vanished" in vsh("help", "domain").out
