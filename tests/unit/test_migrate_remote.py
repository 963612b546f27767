"""The destination's side of a migration through the remote driver, without a guest: a prepare that
fails leaves nothing there, a finish with nothing prepared is refused, and the socket forward
(tests/fake_ssh.py stands in for OpenSSH's ``-L``) relays a connection and goes away. The
migration of a running guest over a real sshd is tests/integration/test_migrate_remote_vm.py."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import domain_xml
from vsh import api
from vsh.core.errors import OperationInvalid, VshError

ROOT = Path(__file__).resolve().parents[2]
FAKE_SSH = f"{sys.executable} {ROOT}/tests/fake_ssh.py"


@pytest.fixture
def remote(vsh_env, monkeypatch):
    """A vsh+ssh connection to the test's store, through the stand-in ssh; its log of ssh argvs."""
    log = vsh_env.tmp / "ssh.log"
    monkeypatch.setenv("VSH_SSH", FAKE_SSH)
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    uri = (f"vsh+ssh://alice@remote.example:2222/session?root={quote(str(vsh_env.store))}"
           f"&command={quote(f'{sys.executable} -m vsh')}&keyfile=/keys/id")
    with api.connect(uri) as conn:
        yield conn, log


def test_a_prepare_that_fails_leaves_nothing_there(remote, vsh_env):
    conn, _log = remote
    missing = vsh_env.tmp / "gone.qcow2"
    xml = domain_xml("vm1", devices=f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                                    f"<source file='{missing}'/><target dev='vda' bus='virtio'/></disk>")
    with pytest.raises(VshError) as err:
        conn.migrate_prepare(xml, persistent_xml=xml)
    assert str(missing) in str(err.value)
    assert conn.list_domains() == []                        # the definition prepare made is gone
    assert not (vsh_env.store / "run" / "vm1" / "migrate.sock").exists()
    with pytest.raises(OperationInvalid) as err:
        conn.migrate_finish("vm1")
    assert "no incoming migration of domain 'vm1'" in str(err.value)


def _echo_server(path: str) -> socket.socket:
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)

    def serve():
        conn = server.accept()[0]
        conn.sendall(conn.recv(100).upper())
        conn.close()
    threading.Thread(target=serve, daemon=True).start()
    return server


def test_the_socket_forward_relays_and_goes(remote, vsh_env):
    conn, log = remote
    there, here = str(vsh_env.tmp / "there.sock"), str(vsh_env.tmp / "here.sock")
    server = _echo_server(there)
    try:
        with closing(conn.forward_socket(there, here)) as forward:
            assert forward.path == here
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(here)
                client.sendall(b"through the tunnel")
                assert client.recv(100) == b"THROUGH THE TUNNEL"
        assert not os.path.exists(here)
    finally:
        server.close()
    protocol_argv, forward_argv = (json.loads(line) for line in log.read_text().splitlines())
    options = protocol_argv[:protocol_argv.index("--")]         # the same ssh options, port, user and key
    assert forward_argv == options + ["-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=INFO", "-L", f"{here}:{there}",
                                      "--", "remote.example", "cat >/dev/null"]


def test_a_forward_that_cannot_start_is_a_clear_error(remote, vsh_env):
    conn, _log = remote
    with pytest.raises(VshError) as err:
        conn.forward_socket("/run/a:b.sock", str(vsh_env.tmp / "here.sock"))
    assert "without ':'" in str(err.value)
    from vsh.api.remote.forward import SshForward

    with pytest.raises(VshError) as err:
        SshForward([*FAKE_SSH.split(), "-T", "--", "unreachable.invalid", "vsh serve --stdio"], "/run/x.sock",
                   str(vsh_env.tmp / "here.sock"), "alice@unreachable.invalid")
    assert str(err.value).startswith("cannot forward the migration stream through ssh to 'alice@unreachable.invalid': "
                                     "ssh: Could not resolve hostname unreachable.invalid")
    assert not (vsh_env.tmp / "here.sock").exists()


def test_libvirt_connections_refuse_in_libvirts_words():
    pytest.importorskip("libvirtmod")
    with api.connect("test:///default") as conn:
        with pytest.raises(VshError) as err:
            conn.migrate_prepare(domain_xml("vm1"))
        assert str(err.value) == ("this function is not supported by the connection driver: "
                                  "virDomainMigratePrepare3Params")
