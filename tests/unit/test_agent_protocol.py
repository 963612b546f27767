"""The guest agent's wire protocol (vsh/kvm/agent.py) against a scripted peer on a unix socket:
resynchronisation past stale bytes, error replies in libvirt's words, timeouts, commands that
answer only on failure. The real agent is exercised in tests/integration/test_agent_vm.py."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from vsh.core.errors import VshError
from vsh.kvm import agent as ga


class Peer:
    """Accepts one connection and answers each JSON line with ``script(request) -> bytes``."""

    def __init__(self, path, script, stale: bytes = b""):
        self.requests: list[dict] = []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(path))
        self.srv.listen(1)
        self.script, self.stale = script, stale
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.srv.accept()
        with conn:
            if self.stale:
                conn.sendall(self.stale)
            buf = b""
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    line = line.lstrip(b"\xff")
                    if not line.strip():
                        continue
                    req = json.loads(line)
                    self.requests.append(req)
                    if req["execute"] == "guest-sync-delimited":
                        conn.sendall(b"\xff" + json.dumps({"return": req["arguments"]["id"]}).encode() + b"\n")
                    else:
                        conn.sendall(self.script(req))

    def close(self):
        self.srv.close()


@pytest.fixture
def sock(tmp_path):
    return tmp_path / "agent.sock", tmp_path / "agent.lock"


def test_stale_replies_are_skipped_and_the_reply_returned(sock):
    peer = Peer(sock[0], lambda req: b'{"return": {"host-name": "g1"}}\n',
                stale=b'{"return": {"left": "over"}}\n{"return": 12')
    with ga.Agent(str(sock[0]), str(sock[1])) as a:
        assert a.execute("guest-get-host-name") == {"return": {"host-name": "g1"}}
    assert [r["execute"] for r in peer.requests] == ["guest-sync-delimited", "guest-get-host-name"]
    peer.close()


def test_an_error_reply_names_the_command_and_the_agents_words(sock):
    peer = Peer(sock[0], lambda req: b'{"error": {"class": "GenericError", "desc": "no way"}}\n')
    with ga.Agent(str(sock[0]), str(sock[1])) as a, pytest.raises(ga.AgentCommandError) as err:
        a.execute("guest-fsfreeze-freeze")
    assert str(err.value) == "internal error: unable to execute QEMU agent command 'guest-fsfreeze-freeze': no way"
    assert err.value.klass == "GenericError"
    peer.close()


def test_a_silent_agent_times_out_in_libvirts_words(sock):
    peer = Peer(sock[0], lambda req: b"")
    with ga.Agent(str(sock[0]), str(sock[1])) as a, pytest.raises(ga.AgentUnresponsive) as err:
        a.execute("guest-info", timeout=1)
    assert str(err.value) == "Guest agent is not responding: Guest agent not available for now"
    peer.close()


def test_nowait_sends_without_reading_and_unanswered_commands_succeed_on_silence(sock):
    peer = Peer(sock[0], lambda req: b"")
    with ga.Agent(str(sock[0]), str(sock[1])) as a:
        assert a.execute_text('{"execute":"guest-ping"}', timeout=ga.NOWAIT) is None
        a.execute_unanswered("guest-shutdown", {"mode": "powerdown"}, wait=0.2)
    assert peer.requests[-1] == {"execute": "guest-shutdown", "arguments": {"mode": "powerdown"}}
    peer.close()


def test_an_unanswered_command_that_fails_reports_the_failure(sock):
    peer = Peer(sock[0], lambda req: b'{"error": {"class": "GenericError", "desc": "suspend not supported"}}\n')
    with ga.Agent(str(sock[0]), str(sock[1])) as a, pytest.raises(ga.AgentCommandError) as err:
        a.execute_unanswered("guest-suspend-ram")
    assert "suspend not supported" in str(err.value)
    peer.close()


def test_no_socket_and_bad_timeouts(sock):
    with pytest.raises(ga.AgentUnresponsive) as err:
        with ga.Agent(str(sock[0]), str(sock[1])):
            pass
    assert str(err.value).startswith("Guest agent is not responding: cannot connect to the agent channel")
    assert ga.timeout_seconds(-1) == ga.WAIT_TIME and ga.timeout_seconds(-2) is None
    assert ga.timeout_seconds(7) == 7.0
    with pytest.raises(VshError, match="less than the minimum"):
        ga.timeout_seconds(-3)
