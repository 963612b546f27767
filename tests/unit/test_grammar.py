"""virsh's option grammar and error wording (reference §3).

Parse-time errors (unknown command or option, missing or repeated option, unexpected
data, ``=`` after a flag) stop before anything runs, so stdout stays empty; run-time
errors (bad values, missing domains, exclusive options) still get the per-command
blank line on stdout.
"""

import io

import pytest

from vsh.core.errors import ParseError
from vsh.registry import Command, Opt, Registry, parse_args
from vsh.shell import Context, Shell

PARSE = ""  # stdout after a parse-time error
RUN = "\n"  # stdout after a run-time error


@pytest.fixture
def test_dom(define):
    return define("test")


@pytest.mark.parametrize("argv, err, out", [
    (["dominfo", "nosuch"], "error: failed to get domain 'nosuch'\n", RUN),
    (["domstate", "nosuch"], "error: failed to get domain 'nosuch'\n", RUN),
    (["domstate", "TEST"], "error: failed to get domain 'TEST'\n", RUN),
    (["nosuchcmd"], "error: unknown command: 'nosuchcmd'\n", PARSE),
    (["dominfo"], "error: command 'dominfo' requires <domain> option\n", PARSE),
    (["define"], "error: command 'define' requires <file> option\n", PARSE),
    (["dominfo", "--domain"], "error: expected syntax: --domain <string>\n", PARSE),
    (["dominfo", ""], "error: Failed to get option 'domain': Option argument is empty\n", RUN),
    (["dominfo", "--domain="], "error: Failed to get option 'domain': Option argument is empty\n", RUN),
    (["list", "--bogus"], "error: command 'list' doesn't support option --bogus\n", PARSE),
    (["dominfo", "--dom", "test"], "error: command 'dominfo' doesn't support option --dom\n", PARSE),
    (["dominfo", "test", "extra"], "error: unexpected data 'extra'\n", PARSE),
    (["domstate", "test", "--domain", "test"], "error: option --domain already seen\n", PARSE),
    (["domstate", "--reason=yes", "test"], "error: invalid '=' after option --reason\n", PARSE),
    (["list", "--name", "--table"], "error: Options --table and --name are mutually exclusive\n", RUN),
    (["vcpucount", "test", "--live", "--config"], "error: Options --live and --config are mutually exclusive\n", RUN),
    (["help", "nosuch"], "error: command or command group 'nosuch' doesn't exist\n", RUN),
    (["define", "/nonexistent.xml"], "error: Failed to open file '/nonexistent.xml': No such file or directory\n", RUN),
    (["domname", "test"], "error: failed to get domain 'test'\n", RUN),
    (["list", "--all", "--", "extra"], "error: unexpected data 'extra'\n", PARSE),
])
def test_error_wording(vsh, test_dom, argv, err, out):
    res = vsh(*argv)
    assert (res.status, res.err, res.out) == (1, err, out)


@pytest.mark.parametrize("argv", [
    ["domstate test; domstate test --domain test"],
    ["domstate test; nosuchcmd"],
    ["domstate test; dominfo"],
])
def test_parse_error_in_string_runs_nothing(vsh, test_dom, argv):
    res = vsh(*argv)
    assert res.status == 1 and res.out == ""


def test_did_you_mean_command(vsh):
    res = vsh("domstae", "x")
    assert res.status == 1
    assert res.err == "error: unknown command: 'domstae'\nhint: did you mean 'domstate'?\n"


def test_did_you_mean_ignores_case(vsh):
    res = vsh("DOMSTATE", "x")
    assert res.err == "error: unknown command: 'DOMSTATE'\nhint: did you mean 'domstate'?\n"


def test_did_you_mean_domain(vsh, test_dom):
    res = vsh("dominfo", "tset")
    assert res.err == "error: failed to get domain 'tset'\nhint: did you mean 'test'?\n"


def test_did_you_mean_help(vsh):
    res = vsh("help", "domstae")
    assert res.err.startswith("error: command or command group 'domstae' doesn't exist\n")
    assert "hint: did you mean 'domstate'?" in res.err


def test_no_hint_when_nothing_is_close(vsh):
    assert vsh("zzzzqqq").err == "error: unknown command: 'zzzzqqq'\n"


def test_commands_and_options_are_case_sensitive(vsh, test_dom):
    assert vsh("dominfo", "--Domain", "test").err == "error: command 'dominfo' doesn't support option --Domain\n"


# -- accepted spellings --------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["domstate", "test"],
    ["domstate", "--domain", "test"],
    ["domstate", "--domain=test"],
    ["domstate test"],
    ["domstate --domain=test"],
    ["domstate", "--", "test"],
])
def test_option_spellings(vsh, test_dom, argv):
    res = vsh(*argv)
    assert (res.status, res.out, res.err) == (0, "shut off\n\n", "")


def test_flags_anywhere(vsh, test_dom):
    assert vsh("domstate", "--reason", "test").out == "shut off (unknown)\n\n"
    assert vsh("domstate", "test", "--reason").out == "shut off (unknown)\n\n"


def test_double_dash_ends_options(vsh):
    assert vsh("echo", "--", "--shell", "--xml").out == "--shell --xml\n"
    assert vsh("echo -- --shell").out == "--shell\n"


@pytest.mark.parametrize("argv", [["dominfo", "--help"], ["dominfo", "x", "--help"], ["dominfo --help"],
                                  ["list", "--all", "--help"]])
def test_help_after_any_command(vsh, argv):
    res = vsh(*argv)
    assert res.status == 0
    assert res.out.startswith("  NAME\n")


def test_help_after_double_dash_is_data(vsh):
    assert vsh("echo", "--", "--help").out == "--help\n"


# -- value conversion on a command made for the test ---------------------------------------------


def _fake_registry(cmd: Command) -> Registry:
    reg = Registry(use_index=False)
    reg._all_loaded = True
    reg._by_name[cmd.name] = cmd
    return reg


def _fake_handler(ctx, **kwargs):
    from vsh.core.output import Text

    kwargs.pop("json", None)
    return Text(repr(sorted(kwargs.items())) + "\n")


FAKE = Command(
    "fake", group="virsh", summary="a command for tests", handler=_fake_handler,
    opts=[Opt("count", kind="int", positional=True, help="a number"),
          Opt("size", kind="scaled", help="a size"),
          Opt("bytes", kind="bytes", help="bytes"),
          Opt("mode", kind="enum", choices=("a", "b"), help="a mode"),
          Opt("name", help="a string"),
          Opt("live", kind="bool", help="live"),
          Opt("config", kind="bool", help="config"),
          Opt("words", kind="argv", help="the rest")],
    exclusive=(("live", "config"),))


def run_fake(*words: str):
    out, err = io.StringIO(), io.StringIO()
    shell = Shell(Context(out=out, err=err), _fake_registry(FAKE))
    status = shell.execute(["fake", *words])
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("word, value", [("0", 0), ("7", 7), ("007", 7), ("4294967296", 4294967296)])
def test_numeric(word, value):
    status, out, _ = run_fake(word)
    assert status == 0
    assert f"('count', {value})" in out


@pytest.mark.parametrize("word", ["abc", "-1", "1.5", "1k", "0x10"])
def test_numeric_malformed(word):
    assert run_fake(word) == (1, "\n", f"error: Numeric value '{word}' for <count> option is malformed or out of range\n")


@pytest.mark.parametrize("word, kib", [("1024", 1024), ("1G", 1048576), ("1GiB", 1048576), ("512M", 524288),
                                       ("1k", 1), ("2048KiB", 2048), ("1T", 1024 ** 3)])
def test_scaled(word, kib):
    status, out, _ = run_fake("--size", word)
    assert status == 0
    assert f"('size', {kib})" in out


@pytest.mark.parametrize("word", ["abc", "-1", "1X", "1.5G", "G"])
def test_scaled_malformed(word):
    assert run_fake("--size", word) == (
        1, "\n", f"error: Scaled numeric value '{word}' for <size> option is malformed or out of range\n")


def test_bytes_default_unit():
    status, out, _ = run_fake("--bytes", "10")
    assert "('bytes', 10)" in out
    status, out, _ = run_fake("--bytes", "1KB")
    assert "('bytes', 1000)" in out


def test_enum():
    assert "('mode', 'b')" in run_fake("--mode", "b")[1]
    status, out, err = run_fake("--mode", "c")
    assert (status, out) == (1, "\n")
    assert err == "error: invalid value 'c' for --mode; expected one of: a, b\n"


def test_exclusive():
    assert run_fake("--live", "--config") == (1, "\n", "error: Options --live and --config are mutually exclusive\n")


def test_argv_collects_the_rest():
    status, out, _ = run_fake("3", "x", "--name", "n", "y", "--words", "z")
    assert "('words', ['x', 'y', 'z'])" in out
    assert "('name', 'n')" in out


def test_empty_string_option_allowed():
    # a plain string option may be empty; only kinds with a value domain refuse ''
    status, out, _ = run_fake("--name", "")
    assert status == 0 and "('name', '')" in out


def test_parse_args_unit():
    assert parse_args(FAKE, ["5", "--live"]) == {"count": "5", "live": True}
    with pytest.raises(ParseError):
        parse_args(FAKE, ["--live=1"])
    with pytest.raises(ParseError):
        parse_args(FAKE, ["--count"])


@pytest.mark.parametrize("cmd, value", [("setvcpus", "abc"), ("setmem", "abc")])
def test_real_numeric_commands(vsh, test_dom, cmd, value):
    from vsh.registry import registry

    command = registry().get(cmd)
    if command is None or command.broken:
        pytest.skip(f"{cmd} is not available yet")
    res = vsh(cmd, "test", value)
    what = "count" if cmd == "setvcpus" else "size"
    kind = "Numeric" if cmd == "setvcpus" else "Scaled numeric"
    assert res.status == 1
    assert res.err == f"error: {kind} value '{value}' for <{what}> option is malformed or out of range\n"
