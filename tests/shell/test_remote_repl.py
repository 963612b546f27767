"""The interactive shell on a remote connection (`-c vsh+ssh://…`): one ssh session for the whole
session, remote domain names complete. The ssh is tests/fake_ssh.py (the remote command runs here;
tests/integration/test_remote_ssh.py goes through a real sshd)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]


def test_a_remote_session_completes_remote_names_over_one_connection(repl, define, vsh_env):
    define("vm-alpha-long-name")
    define("web1")
    log = vsh_env.tmp / "ssh.log"
    uri = (f"vsh+ssh://remote.example/session?root={quote(str(vsh_env.store))}"
           f"&command={quote(f'{sys.executable} -m vsh')}")
    r = repl("-c", uri, env={"VSH_SSH": f"{sys.executable} {ROOT}/tests/fake_ssh.py", "FAKE_SSH_LOG": str(log),
                             "PYTHONPATH": str(ROOT)})
    r.send("domstate --reason vm-al\t")               # the names come from the remote store
    r.expect("pha-long-name")
    assert "shut off (unknown)" in r.run("")
    assert "web1" in r.run("list --all")
    assert "error: failed to get domain 'nosuch'" in r.run("dominfo nosuch")
    assert "\nvsh+ssh://remote.example/session?root=" in r.run("uri")
    r.send("quit\r")
    assert r.eof() == 0
    assert len([json.loads(line) for line in log.read_text().splitlines()]) == 1
