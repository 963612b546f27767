"""Batch mode: ``-f FILE`` and commands on stdin when it is not a terminal."""

import pytest


@pytest.fixture(params=["file", "stdin"])
def batch(request, vsh, vsh_env):
    """Run a script through -f FILE or through stdin; extra global options come first."""

    def run(script: str, *options: str):
        if request.param == "file":
            path = vsh_env.tmp / "script.vsh"
            path.write_text(script)
            return vsh(*options, "-f", str(path))
        return vsh(*options, stdin=script)

    return run


def test_runs_every_line(batch):
    res = batch("echo a\necho b c\n")
    assert (res.status, res.out, res.err) == (0, "a\nb c\n", "")


def test_no_prompts_or_banner(batch):
    res = batch("echo a\n")
    assert "vsh #" not in res.out and "Welcome" not in res.out


def test_comments_semicolons_quotes(batch):
    res = batch("# a comment\n\necho 'x;y' \"a\\\"b\"; echo z # trailing\n   \n")
    assert (res.status, res.out) == (0, "x;y a\"b\nz\n")


def test_stops_at_first_failure(batch):
    res = batch("echo a\ndominfo nosuch\necho b\n")
    assert res.status == 1
    assert res.out == "a\n\n"  # the failing command still gets its blank line
    assert res.err == "error: failed to get domain 'nosuch'\n"


def test_stops_at_parse_error(batch):
    res = batch("echo a\nnosuchcmd\necho b\n")
    assert res.status == 1
    assert res.out == "a\n"
    assert res.err == "error: unknown command: 'nosuchcmd'\n"


def test_stops_at_missing_quote(batch):
    res = batch('echo a\necho "x\necho b\n')
    assert (res.status, res.out, res.err) == (1, "a\n", 'error: missing "\n')


def test_each_line_parsed_on_its_own(batch):
    # a line that does not parse runs nothing of itself; earlier lines already ran
    res = batch("echo a\necho b; nosuch\n", "--keep-going")
    assert res.out == "a\n"
    assert res.status == 1


def test_keep_going_runs_everything(batch):
    res = batch("echo a\ndominfo nosuch\nnosuchcmd\necho b\n", "--keep-going")
    assert res.status == 1
    assert res.out == "a\n\nb\n"
    assert res.err == "error: failed to get domain 'nosuch'\nerror: unknown command: 'nosuchcmd'\n"


def test_keep_going_short_option(batch):
    res = batch("dominfo nosuch\necho b\n", "-k")
    assert (res.status, res.out) == (1, "\nb\n")


def test_keep_going_all_good_is_0(batch):
    assert batch("echo a\necho b\n", "--keep-going").status == 0


def test_dash_prefix_ignores_failure(batch):
    res = batch("echo a\n-dominfo nosuch\necho b\n")
    assert res.status == 0
    assert res.out == "a\n\nb\n"
    assert res.err == "error: failed to get domain 'nosuch'\n"


def test_dash_prefix_with_semicolons(batch):
    res = batch("-dominfo nosuch; echo b\n")
    assert (res.status, res.out) == (0, "\nb\n")


def test_dash_prefix_does_not_hide_parse_errors(batch):
    # '-nosuch' is not a command: a parse error, which stops the batch
    res = batch("-nosuchcmd\necho b\n")
    assert res.status == 1
    assert "unknown command" in res.err


def test_quit_stops(batch):
    res = batch("echo a\nquit\necho b\n")
    assert (res.status, res.out) == (0, "a\n")


def test_exit_stops(batch):
    res = batch("echo a; exit; echo b\necho c\n")
    assert (res.status, res.out) == (0, "a\n")


def test_status_of_first_failure_is_reported(batch):
    res = batch("dominfo\necho b\n")
    assert res.status == 1
    assert res.err == "error: command 'dominfo' requires <domain> option\n"


def test_quiet_batch(batch, define):
    define("vm1")
    res = batch("echo a\nlist --all\n", "-q")
    assert res.out == "a -   vm1   shut off\n"  # -q: widths from the data alone


def test_empty_batch(batch):
    assert (batch("").status, batch("").out) == (0, "")


def test_crlf_lines(batch):
    res = batch("echo a\r\necho b\r\n")
    assert (res.status, res.out) == (0, "a\nb\n")


def test_missing_file(vsh):
    res = vsh("-f", "/nonexistent/script.vsh")
    assert res.status == 1
    assert res.err == "error: Failed to open file '/nonexistent/script.vsh': No such file or directory\n"


def test_stdin_batch_subprocess(vsh_proc):
    res = vsh_proc(input="echo a\ndominfo nosuch\necho b\n")
    assert (res.status, res.out) == (1, "a\n\n")
    res = vsh_proc("--keep-going", input="echo a\ndominfo nosuch\necho b\n")
    assert (res.status, res.out) == (1, "a\n\nb\n")
    res = vsh_proc(input="-dominfo nosuch\necho b\n")
    assert (res.status, res.out) == (0, "\nb\n")


def test_command_ignores_stdin(vsh_proc):
    res = vsh_proc("echo", "hi", input="echo other\n")
    assert res.out == "hi\n"
