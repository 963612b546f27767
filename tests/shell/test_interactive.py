"""The interactive shell on a real pseudo-terminal: banner, prompt, completion, history,
Ctrl-C, Ctrl-D and the interactive-only built-ins."""

import os
import time

import pytest



# a line of command output (not the echo of the typed line): it starts a line of its own
OUTPUT_LINE = r"(?:\n|\x1b\[\?2004l){}\r\n"


@pytest.fixture
def domains(define):
    define("vm-alpha-long-name")
    define("web1")


def test_banner_and_prompt(repl):
    r = repl()
    assert r.banner == ("Welcome to vsh, the virtualization interactive terminal.\n\n"
                        "Type:  'help' for help with commands\n"
                        "       'quit' to quit\n\n")
    assert r.child.after == "vsh #"
    r.send("quit\r")
    assert r.eof() == 0


def test_quiet_has_no_banner(repl):
    r = repl("-q")
    assert "Welcome" not in r.banner
    r.send("quit\r")
    assert r.eof() == 0


def test_readonly_prompt(repl, domains):
    r = repl("-r")
    assert r.child.after == "vsh >"
    out = r.run("undefine web1")
    r.send("quit\r")
    r.eof()
    assert "read only access prevents" in r.text()
    assert "has been undefined" not in out


def test_commands_run(repl, domains):
    r = repl()
    out = r.run("domstate web1")
    assert "\nshut off\n" in out
    out = r.run("echo 'a b'  c; echo d")
    assert "\na b c\nd\n" in out
    r.child.sendcontrol("d")
    assert r.eof() == 0


def test_errors_do_not_end_the_session(repl):
    r = repl()
    r.run("nosuchcmd")
    r.run("dominfo nosuch")
    out = r.run("echo still-here")
    assert "still-here" in out
    r.send("exit\r")
    assert r.eof() == 0
    text = r.text()
    assert "error: unknown command: 'nosuchcmd'" in text
    assert "error: failed to get domain 'nosuch'" in text


def test_tab_completes_a_domain_name(repl, domains):
    r = repl()
    r.send("dominfo vm\t")
    r.expect("alpha-long-name")
    r.send("\r")
    out = r.expect("Security DOI")
    assert "Name:           vm-alpha-long-name" in out
    r.wait_prompt()
    r.send("quit\r")
    assert r.eof() == 0


def test_tab_completes_a_command(repl):
    r = repl()
    r.send("pw\t")
    r.expect("pwd")
    r.send("\r")
    r.wait_prompt()
    r.send("quit\r")
    r.eof()
    assert os.getcwd() in r.text()


def test_history_across_sessions(repl, vsh_env):
    r = repl()
    r.send("echo first-session-line\r")
    r.expect(OUTPUT_LINE.format("first-session-line"))
    r.wait_prompt()
    r.child.sendcontrol("d")
    assert r.eof() == 0
    history = vsh_env.home / ".local" / "state" / "vsh" / "history"
    assert "echo first-session-line" in history.read_text()
    assert oct(history.stat().st_mode & 0o777) == "0o600"

    r2 = repl()
    r2.send("\x1b[A")  # Up: the previous session's last line
    r2.expect("first-session-line")
    r2.send("\r")
    r2.expect(OUTPUT_LINE.format("first-session-line"))
    r2.wait_prompt()
    r2.send("quit\r")
    assert r2.eof() == 0


def test_ctrl_c_cancels_the_line(repl):
    r = repl()
    r.send("dominfo half-typed-nosuch")
    r.expect("nosuch")
    r.child.sendcontrol("c")
    r.wait_prompt()
    out = r.run("echo after-ctrl-c")
    assert "after-ctrl-c" in out
    r.send("quit\r")
    assert r.eof() == 0
    assert "failed to get domain" not in r.text()


def test_ctrl_c_interrupts_a_running_command(repl, domains, tmp_path):
    from vsh.registry import registry

    if registry().get("edit") is None:
        pytest.skip("edit is not available")
    r = repl(env={"EDITOR": "sleep 30", "VISUAL": "sleep 30"})
    r.send("edit web1\r")
    time.sleep(1.0)
    started = time.monotonic()
    r.child.sendcontrol("c")
    r.wait_prompt()
    assert time.monotonic() - started < 10
    out = r.run("echo alive")
    assert "alive" in out
    r.send("quit\r")
    assert r.eof() == 0


def test_ctrl_d_leaves_with_status_0(repl):
    r = repl()
    r.child.sendcontrol("d")
    assert r.eof() == 0


def test_ctrl_d_after_a_failure_is_still_0(repl):
    r = repl()
    r.run("dominfo nosuch")
    r.child.sendcontrol("d")
    assert r.eof() == 0


def test_cd_works_interactively(repl, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    r = repl()
    assert "error" not in r.run(f"cd {target}")
    out = r.run("pwd")
    assert f"\n{target}\n" in out
    out = r.run("cd /nonexistent-dir")
    r.send("quit\r")
    r.eof()
    assert "error: cd: No such file or directory: /nonexistent-dir" in r.text()


def test_cd_refused_outside_interactive_mode(vsh, tmp_path):
    res = vsh("cd", str(tmp_path))
    assert (res.status, res.err) == (1, "error: cd: command valid only in interactive mode\n")
    res = vsh(stdin=f"cd {tmp_path}\n")
    assert res.status == 1 and "valid only in interactive mode" in res.err
