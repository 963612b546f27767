"""Completion: the hidden `complete` command, the REPL completer and the shell scripts."""

import os
import shutil
import subprocess
import sys

import pytest

from vsh.registry import registry


@pytest.fixture
def doms(define):
    for name in ("vm-alpha", "vm-beta", "web1"):
        define(name)


def lines(res):
    assert res.status == 0, res
    assert res.out.endswith("\n\n") or res.out == "\n"
    return res.out[:-1].splitlines()


def test_command_names(vsh):
    got = lines(vsh("complete", "--", "dom"))
    assert {"dominfo", "domstate", "domid", "domname", "domuuid"} <= set(got)
    assert all(name.startswith("dom") for name in got)
    assert lines(vsh("complete", "--", "domst")) == ["domstate", "domstats"]   # as virsh


def test_all_visible_commands(vsh):
    got = lines(vsh("complete", "--", ""))
    visible = {name for name, _g, _s, hidden in registry().summaries() if not hidden}
    assert visible <= set(got)
    assert "complete" not in got  # hidden


def test_aliases_complete(vsh):
    assert "exit" in lines(vsh("complete", "--", "ex"))


def test_options_of_a_command(vsh):
    assert lines(vsh("complete", "--", "list", "--st")) == [
        "--state-running", "--state-paused", "--state-shutoff", "--state-other"]


def test_empty_word_lists_values_then_options(vsh, doms):
    got = lines(vsh("complete", "--", "domstate", ""))
    assert got == ["vm-alpha", "vm-beta", "web1", "--domain", "--reason", "--json"]


def test_empty_word_without_domains(vsh):
    assert lines(vsh("complete", "--", "domstate", "")) == ["--domain", "--reason", "--json"]


def test_domain_names(vsh, doms):
    assert lines(vsh("complete", "--", "dominfo", "v")) == ["vm-alpha", "vm-beta"]
    assert lines(vsh("complete", "--", "dominfo", "w")) == ["web1"]
    assert lines(vsh("complete", "--", "dominfo", "x")) == []


def test_domain_after_named_option(vsh, doms):
    assert lines(vsh("complete", "--", "domstate", "--domain", "vm-a")) == ["vm-alpha"]
    assert lines(vsh("complete", "--", "domstate", "--reason", "w")) == ["web1"]


def test_filled_positional_is_not_offered(vsh, doms):
    assert lines(vsh("complete", "--", "domstate", "web1", "")) == ["--reason", "--json"]
    assert lines(vsh("complete", "--", "domstate", "--domain", "web1", "")) == ["--reason", "--json"]
    assert lines(vsh("complete", "--", "domstate", "--domain", "web1", "--r")) == ["--reason"]


def test_options_already_given_are_not_offered(vsh):
    got = lines(vsh("complete", "--", "list", "--all", "--a"))
    assert got == ["--autostart"]


def test_file_paths(vsh, vsh_env):
    (vsh_env.tmp / "guest.xml").write_text("<domain/>")
    (vsh_env.tmp / "guests").mkdir()
    assert lines(vsh("complete", "--", "define", "gue")) == ["guest.xml", "guests/"]
    assert lines(vsh("complete", "--", "define", "--file", str(vsh_env.tmp / "guest."))) == [
        str(vsh_env.tmp / "guest.xml")]


def test_enum_values(vsh):
    assert lines(vsh("complete", "--", "completion", "")) [:3] == ["bash", "zsh", "fish"]
    assert lines(vsh("complete", "--", "completion", "b")) == ["bash"]


def test_help_completes_commands_and_groups(vsh):
    got = lines(vsh("complete", "--", "help", "dom"))
    assert "dominfo" in got and "domain" in got


def test_unknown_command_completes_nothing(vsh):
    assert lines(vsh("complete", "--", "nosuch", "")) == []


def test_global_options_are_skipped(vsh, doms, vsh_env, tmp_path):
    assert lines(vsh("complete", "--", "-q", "dominfo", "web")) == ["web1"]
    # -c URI points at another store: its domains are offered
    other = tmp_path / "other"
    assert lines(vsh("complete", "--", "-c", f"vsh:///session?root={other}", "dominfo", "")) == [
        "--domain", "--json"]
    assert lines(vsh("complete", "--", "-c", vsh_env.uri, "dominfo", "we")) == ["web1"]


def test_batch_dash_prefix(doms):
    from vsh.completion import complete
    from vsh.shell import Context

    assert complete(Context(), ["-dominfo", "web"]) == ["web1"]


# -- the REPL's completer (prompt_toolkit Document tests) -------------------------------------------


def repl_completions(text):
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    from vsh.repl import make_completer
    from vsh.shell import Context, Shell

    completer = make_completer(Shell(Context()))
    return [(c.text, c.start_position) for c in completer.get_completions(Document(text), CompleteEvent())]


def test_repl_completer_domain(doms):
    assert repl_completions("dominfo we") == [("web1", -2)]
    assert repl_completions("dominfo v") == [("vm-alpha", -1), ("vm-beta", -1)]


def test_repl_completer_command():
    assert ("domstate", -5) in repl_completions("domst")
    assert ("echo", 0) in repl_completions("")


def test_repl_completer_after_semicolon(doms):
    assert repl_completions("echo a; dominfo w") == [("web1", -1)]
    assert ("domstate", -5) in repl_completions("echo a; domst")


def test_repl_completer_options():
    assert repl_completions("list --st") == [("--state-running", -4), ("--state-paused", -4),
                                               ("--state-shutoff", -4), ("--state-other", -4)]


def test_repl_completer_quotes_names_with_blanks(define):
    define("my vm")
    assert repl_completions("dominfo my") == [("'my vm'", -2)]
    assert repl_completions("dominfo 'my") == [("'my vm'", -3)]
    assert repl_completions("dominfo my\\ ") == [("'my vm'", -4)]


def test_repl_completer_quoted_directory_stays_open(vsh_env):
    (vsh_env.tmp / "my dir").mkdir()
    assert repl_completions("define my") == [("'my dir/", -2)]


def test_repl_completer_tolerates_partial_input():
    assert repl_completions('echo "unterminated') == []
    assert repl_completions("echo a\\") == []
    assert repl_completions("echo # comment") == []
    assert ("domstate", -7) in repl_completions('"domsta')


def test_split_partial_and_quote_word_round_trip():
    from vsh.shell import quote_word, split_partial, tokenize

    for word in ["a b", "it's", 'say "hi"', "back\\slash", "semi;colon", "#hash", "", "plain"]:
        assert tokenize("echo " + quote_word(word)) == [["echo", word]]
        assert split_partial("echo " + quote_word(word))[0] == ["echo", word]


# -- shell completion scripts -----------------------------------------------------------------------


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o default"), ("zsh", "#compdef vsh"),
                                           ("fish", "complete -c vsh")])
def test_completion_scripts(vsh, shell, marker):
    res = vsh("completion", shell)
    assert res.status == 0
    assert marker in res.out
    assert "complete --" in res.out


def test_completion_script_bad_shell(vsh):
    res = vsh("completion", "tcsh")
    assert res.status == 1
    assert "tcsh" in res.err


def _bash(script, env_extra=None):
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(env_extra or {})
    return subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_script_completes(doms):
    if not os.path.exists(os.path.join(os.path.dirname(sys.executable), "vsh")):
        pytest.skip("the vsh console script is not installed next to the interpreter")
    script = """
        source <(vsh completion bash)
        show() { COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _vsh_complete;
                 printf '[%s]' "${COMPREPLY[@]}"; echo; }
        show vsh dominfo vm
        show vsh domst
        show vsh list --state-r
        show vsh -q dominfo we
    """
    proc = _bash(script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[vm-alpha ][vm-beta ]", "[domstate ][domstats ]", "[--state-running ]",
                                       "[web1 ]"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_script_syntax(vsh, tmp_path):
    path = tmp_path / "vsh.bash"
    path.write_text(vsh("completion", "bash").out)
    assert _bash(f"bash -n {path}").returncode == 0


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_other_script_syntax(vsh, tmp_path, shell):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    path = tmp_path / f"vsh.{shell}"
    path.write_text(vsh("completion", shell).out)
    proc = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# -- every argument kind has its completer -----------------------------------------------------


def test_every_kind_has_a_completer():
    from vsh import completion
    from vsh.registry import FREE, KINDS

    used = {opt.kind for cmd in registry().commands() for opt in cmd.opts}
    assert used <= set(KINDS), f"kinds without a declaration: {used - set(KINDS)}"
    for name, kind in KINDS.items():
        if name in FREE:
            assert kind.completer is None, f"free kind {name} has a completer"
            continue
        assert kind.completer is not None, f"kind {name} has no completer"
        assert callable(completion.completer_of(name)), f"kind {name}: no function complete_{kind.completer}"


@pytest.fixture
def vm_with_devices(define, vsh, vsh_env):
    import subprocess

    disk = vsh_env.tmp / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    define("vm1", devices=f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                          f"<source file='{disk}'/><target dev='vda' bus='virtio'/></disk>"
                          "<interface type='user'><mac address='52:54:00:11:22:33'/><model type='virtio'/></interface>")
    return disk


@pytest.mark.skipif(not shutil.which("qemu-img"), reason="needs qemu-img")
def test_snapshot_names_of_the_given_domain(vsh, vm_with_devices):
    for name in ("snap-one", "snap-two"):
        assert vsh("snapshot-create-as", "vm1", name).status == 0
    assert lines(vsh("complete", "--", "snapshot-revert", "vm1", "snap")) == ["snap-one", "snap-two"]
    assert lines(vsh("complete", "--", "snapshot-revert", "--domain", "vm1", "--snapshotname", "snap-t")) == ["snap-two"]
    assert lines(vsh("complete", "--", "snapshot-list", "vm1", "--from", "snap-o")) == ["snap-one"]
    assert lines(vsh("complete", "--", "snapshot-revert", "nosuch", "snap")) == []


@pytest.mark.skipif(not shutil.which("qemu-img"), reason="needs qemu-img")
def test_devices_and_interfaces_of_the_given_domain(vsh, vm_with_devices):
    assert lines(vsh("complete", "--", "domblkstat", "vm1", "v")) == ["vda"]
    assert lines(vsh("complete", "--", "domblkinfo", "vm1", "/")) == [str(vm_with_devices)]
    assert lines(vsh("complete", "--", "domifstat", "vm1", "52")) == ["52:54:00:11:22:33"]
    assert lines(vsh("complete", "--", "detach-interface", "vm1", "user", "--mac", "")) == ["52:54:00:11:22:33"]


@pytest.mark.skipif(not shutil.which("qemu-img"), reason="needs qemu-img")
def test_xpaths_of_the_printed_document(vsh, vm_with_devices):
    assert lines(vsh("complete", "--", "dumpxml", "vm1", "--xpath", "/domain/dev")) == ["/domain/devices"]
    got = lines(vsh("complete", "--", "dumpxml", "vm1", "--xpath", "/domain/devices/disk/t"))
    assert got == ["/domain/devices/disk/target"]
    assert "/domain/devices/disk/target/@dev" in lines(
        vsh("complete", "--", "dumpxml", "vm1", "--xpath", "/domain/devices/disk/target/"))


def test_a_plugin_kind_completes_through_its_own_function():
    from vsh.completion import complete_value
    from vsh.registry import KINDS, Opt, add_kind

    add_kind("colour", "a colour", lambda ctx, opt, prefix, given: [c for c in ("red", "green") if c.startswith(prefix)])
    try:
        assert complete_value(None, Opt("c", kind="colour"), "g") == ["green"]
    finally:
        del KINDS["colour"]
