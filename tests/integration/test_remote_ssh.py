"""Remote vsh over a real sshd: ``-c vsh+ssh://root@127.0.0.1:PORT/session`` drives a store on the
"remote" side through OpenSSH, with no daemon of vsh's own.

The module starts its own ``sshd -D`` in a private network namespace (``unshare -n``: only a
loopback there), with a host key, a client key and an authorized_keys made in tmp; every vsh
client runs inside the same namespace (``nsenter -n``) with an ssh configuration of its own
(``$VSH_SSH``). A real TCG test guest is defined, started, consoled (a command typed into its
shell over the ssh channel, in a pipe and on a terminal left with ^]), listed, destroyed and
undefined remotely; a batch of commands takes one ssh session (counted in sshd's log).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

import vmguest as _vmguest

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]

_spec = importlib.util.spec_from_file_location("sshpeer", ROOT / "tests" / "sshpeer.py")
_sshpeer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_sshpeer)

PORT = 2222
NAME = "rm1"


class Remote(_sshpeer.SshPeer):
    """The namespace with its sshd, and how a client there runs vsh against the remote store."""

    def __init__(self, base: Path, store: Path, env: dict):
        super().__init__(base, PORT)
        self.store = store
        self.env = dict(env, VSH_SSH=self.ssh("client"))
        remote_vsh = f"env PYTHONPATH={ROOT} {sys.executable} -m vsh"
        self.uri = (f"vsh+ssh://root@127.0.0.1:{PORT}/session?root={quote(str(store))}"
                    f"&command={quote(remote_vsh)}")

    def vsh(self, *args, uri: str | None = None, input: str | None = None, env: dict | None = None,
            check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([*self.prefix, sys.executable, "-m", "vsh", "-c", uri or self.uri, *map(str, args)],
                              env=dict(self.env, **(env or {})), input=input or "", capture_output=True, text=True,
                              timeout=timeout)
        if check:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    why = _sshpeer.missing()
    if why:
        pytest.skip(why)
    m, base, store, env = _vmguest.module_store(tmp_path_factory, "remote")
    r = Remote(base, store, env)
    r.manifest = m
    r.guest = _vmguest.Guest(store, NAME, env)
    try:
        yield r
    finally:
        r.vsh("destroy", NAME, check=False, uri=f"vsh:///session?root={store}")
        r.stop()


def test_define_start_list_and_dominfo(remote):
    xml = remote.base / f"{NAME}.xml"
    xml.write_text(_vmguest.guest_domain_xml(NAME, remote.manifest, ""))
    res = remote.vsh("define", xml)
    assert res.stdout == f"Domain '{NAME}' defined from {xml}\n\n"
    assert remote.vsh("start", NAME).stdout == f"Domain '{NAME}' started\n\n"
    local = f"vsh:///session?root={remote.store}"
    for args in (["list", "--all"], ["dominfo", NAME], ["domstate", NAME, "--reason"], ["--json", "list"]):
        there = remote.vsh(*args)
        here = subprocess.run([sys.executable, "-m", "vsh", "-c", local, *args], env=remote.env,
                              capture_output=True, text=True, timeout=60)
        if args[0] == "dominfo":      # CPU time moves on between the two runs
            there_lines = [ln for ln in there.stdout.splitlines() if not ln.startswith("CPU time")]
            here_lines = [ln for ln in here.stdout.splitlines() if not ln.startswith("CPU time")]
            assert there_lines == here_lines
        else:
            assert there.stdout == here.stdout, args
    assert f" {NAME} " in remote.vsh("list").stdout and "running" in remote.vsh("list").stdout
    remote.guest.wait_log(remote.manifest["ready_line"])


def test_console_in_a_pipe(remote):
    res = remote.vsh("console", NAME, input="echo remote-$((6*7))\n")
    assert f"Connected to domain '{NAME}'" in res.stdout and "remote-42" in res.stdout, res


def test_console_on_a_terminal_left_with_the_escape_character(remote):
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(remote.prefix[0], [*remote.prefix[1:], sys.executable, "-m", "vsh", "-c", remote.uri,
                                             "console", NAME], env=remote.env, dimensions=(24, 100), timeout=60)
    try:
        child.expect("Escape character is")
        child.send("echo tty-$((5*5))\r")
        child.expect("tty-25")
        child.send("\x1d")                    # ^] leaves; vsh ends by itself, successfully
        child.expect(pexpect.EOF)
        assert child.wait() == 0
    finally:
        if child.isalive():
            child.terminate(force=True)


def test_a_batch_takes_one_ssh_session(remote):
    before = remote.sessions()
    res = remote.vsh(input=f"list --all\ndominfo {NAME}\ndomid {NAME}\ndomstate {NAME}\nlist --name\n")
    assert res.stdout.count(NAME) == 3 and "running" in res.stdout
    assert remote.sessions() - before == 1


def test_destroy_and_undefine(remote):
    assert remote.vsh("destroy", NAME).stdout == f"Domain '{NAME}' destroyed\n\n"
    assert remote.vsh("domstate", NAME).stdout == "shut off\n\n"
    assert remote.vsh("undefine", NAME).stdout == f"Domain '{NAME}' has been undefined\n\n"
    res = remote.vsh("dominfo", NAME, check=False)
    assert (res.returncode, res.stderr) == (1, f"error: failed to get domain '{NAME}'\n")


def test_connection_failures(remote):
    res = remote.vsh("list", check=False, uri=remote.uri.replace(f":{PORT}/", ":2/"))
    assert res.returncode == 1
    assert res.stderr == ("error: failed to connect to the hypervisor\nerror: ssh to 'root@127.0.0.1' failed: "
                          "ssh: connect to host 127.0.0.1 port 2: Connection refused\n")
    res = remote.vsh("list", check=False, env={"VSH_SSH": remote.ssh("stranger")})
    assert res.returncode == 1
    assert res.stderr == ("error: failed to connect to the hypervisor\nerror: ssh to 'root@127.0.0.1' failed: "
                          "root@127.0.0.1: Permission denied (publickey).\n")
    res = remote.vsh("list", check=False, uri=remote.uri.split("&command=")[0] + "&command=/nonexistent/vsh")
    assert res.returncode == 1
    assert res.stderr.startswith("error: failed to connect to the hypervisor\n"
                                 "error: the remote vsh was not found on 'root@127.0.0.1': ")
