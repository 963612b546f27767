"""virsh's command-string tokenizer (reference §4) and the three ways commands arrive."""

import pytest

from vsh.core.errors import ParseError
from vsh.shell import tokenize

# -- the tokenizer itself --------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("echo a b", [["echo", "a", "b"]]),
    ("echo\ta  \t b", [["echo", "a", "b"]]),
    ("echo a; echo b", [["echo", "a"], ["echo", "b"]]),
    ("echo a\necho b", [["echo", "a"], ["echo", "b"]]),
    # a comment runs to the end of the line and swallows ';'
    ("echo a; # c ; echo b\necho c", [["echo", "a"], ["echo", "c"]]),
    ("echo #x", [["echo"]]),
    ("echo a#b", [["echo", "a#b"]]),
    ("# only a comment", []),
    # single quotes are literal
    ("echo 'a\\b'", [["echo", "a\\b"]]),
    ("echo 'a;b' 'c#d'", [["echo", "a;b", "c#d"]]),
    # double quotes and bare words take backslash escapes
    ('echo "a\\b"', [["echo", "ab"]]),
    ("echo a\\ b", [["echo", "a b"]]),
    ('echo "a\\"b"', [["echo", 'a"b']]),
    # quotes join the text next to them
    ('echo "c\\"d"', [["echo", 'c"d']]),
    ("echo x'y z'\"w\"", [["echo", "xy zw"]]),
    ("echo ''", [["echo", ""]]),
    ('echo ""', [["echo", ""]]),
    # an unterminated single quote is accepted
    ("echo 'unterminated", [["echo", "unterminated"]]),
    # empty commands are skipped
    ("; ; echo x", [["echo", "x"]]),
    (";;;", []),
    ("", []),
    ("   ", []),
    # backslash-newline continues the line
    ("echo a\\\nb", [["echo", "ab"]]),
    ("echo 'a\nb'", [["echo", "a\nb"]]),
])
def test_tokenize(text, expected):
    assert tokenize(text) == expected


@pytest.mark.parametrize("text, message", [
    ('echo "x', 'missing "'),
    ('echo "x\\', 'missing "'),
    ("echo a\\", "dangling \\"),
])
def test_tokenize_errors(text, message):
    with pytest.raises(ParseError) as exc:
        tokenize(text)
    assert exc.value.lines == (message,)


# -- single-shot: one argument is a command string ----------------------------------------------


@pytest.mark.parametrize("text, out", [
    ("echo 'a\\b'", "a\\b\n"),
    ('echo "a\\b"', "ab\n"),
    ("echo a\\ b", "a b\n"),
    ('echo "a\\"b"', 'a"b\n'),
    ('echo "c\\"d"', 'c"d\n'),
    ("echo 'unterminated", "unterminated\n"),
    ("; ; echo x", "x\n"),
    ("echo a; # c ; echo b\necho c", "a\nc\n"),
    ("echo #x", "\n"),
    ("echo a#b", "a#b\n"),
    ("echo -- --shell", "--shell\n"),
    ("echo a; quit; echo b", "a\n"),
    ("echo a; exit; echo b", "a\n"),
])
def test_command_string(vsh, text, out):
    res = vsh(text)
    assert (res.status, res.out, res.err) == (0, out, "")


@pytest.mark.parametrize("text, err", [
    ('echo "x', 'error: missing "\n'),
    ("echo a\\", "error: dangling \\\n"),
])
def test_command_string_parse_errors(vsh, text, err):
    res = vsh(text)
    # parse errors: nothing ran, so stdout does not even get the blank line
    assert (res.status, res.out, res.err) == (1, "", err)


def test_empty_string_exits_1_silently(vsh_proc):
    res = vsh_proc("")
    assert (res.status, res.out, res.err) == (1, "", "")


def test_blank_string_exits_0(vsh_proc):
    res = vsh_proc("   ")
    assert (res.status, res.out, res.err) == (0, "", "")


def test_parse_all_then_run(vsh):
    res = vsh("echo ran; nosuchcmd")
    assert res.status == 1
    assert res.out == ""  # 'echo ran' never ran
    assert res.err == "error: unknown command: 'nosuchcmd'\n"


def test_parse_all_then_run_domstate(vsh, define):
    define("test")
    res = vsh("domstate test; nosuchcmd")
    assert (res.status, res.out) == (1, "")


def test_string_status_is_last_commands(vsh, define):
    define("test")
    res = vsh("domstate nosuch; domstate test")
    assert (res.status, res.out) == (0, "\nshut off\n\n")
    assert res.err == "error: failed to get domain 'nosuch'\n"
    res = vsh("domstate test; domstate nosuch")
    assert (res.status, res.out) == (1, "shut off\n\n\n")


def test_string_splits_on_semicolon(vsh):
    res = vsh("echo a;b")
    assert res.status == 1
    assert res.err.startswith("error: unknown command: 'b'\n")


# -- argv mode: words are taken literally -------------------------------------------------------


@pytest.mark.parametrize("argv, out", [
    (["echo", "a;b"], "a;b\n"),
    (["echo", "#x", "a"], "#x a\n"),
    (["echo", "'q'", '"d"'], "'q' \"d\"\n"),
    (["echo", "a\\b"], "a\\b\n"),
    (["echo", "a b", "c"], "a b c\n"),
    (["echo", "--", "--shell"], "--shell\n"),
])
def test_argv_mode_is_literal(vsh, argv, out):
    res = vsh(*argv)
    assert (res.status, res.out, res.err) == (0, out, "")


def test_argv_mode_ignores_stdin(vsh):
    res = vsh("echo", "hi", stdin="echo from-stdin\n")
    assert res.out == "hi\n"


# -- single-shot exit statuses (real processes) --------------------------------------------------


@pytest.mark.parametrize("argv, status", [
    (["echo", "hi"], 0),
    (["nosuchcmd"], 1),
    (["dominfo"], 1),
    (["dominfo", "nosuch"], 1),
    (["echo hi; dominfo nosuch"], 1),
    (["dominfo nosuch; echo hi"], 0),
    (["--bogus", "list"], 1),
    (["-c"], 1),
    (["help"], 0),
    (["-v"], 0),
    (["--help"], 0),
    (["quit"], 0),
])
def test_exit_status(vsh_proc, argv, status):
    assert vsh_proc(*argv).status == status


def test_global_option_errors(vsh):
    assert vsh("--bogus", "list").err == "error: unsupported option '--bogus'. See --help.\n"
    assert vsh("-z").err == "error: unsupported option '-z'. See --help.\n"
    assert vsh("-c").err == "error: option '-c'/'--connect' requires an argument\n"


def test_explicit_bad_uri_fails_eagerly(vsh):
    res = vsh("-c", "bogus:///x", "echo", "hi")
    assert res.status == 1
    assert res.out == ""
    assert res.err.startswith("error: failed to connect to the hypervisor\n")


def test_version(vsh):
    from vsh import __version__

    assert vsh("-v").out == f"{__version__}\n"
    assert vsh("--version").out == f"{__version__}\n"
