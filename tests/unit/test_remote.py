"""The remote protocol (vsh/api/protocol.py), its server (`vsh serve --stdio`) and the remote driver
(vsh+ssh://), without sshd: framing, values, versions, errors, handles and streams. The driver's
ssh is tests/fake_ssh.py (runs the remote command here); tests/integration/test_remote_ssh.py
does the same through a real sshd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import quote

import pytest

from vsh import api
from vsh.api import protocol
from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, VshError
from tests.conftest import ROOT, domain_xml

VSH_CMD = f"{sys.executable} -m vsh"


# -- values and frames -------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    None, True, 3, -2.5, "text ü", [1, "a"], {"a": {"b": [1, 2]}},
    b"\x00\xffbytes", ("running", "booted"), {1: "one", (2, 3): b"x"}, {"$h": 1, "plain": 2},
    [{"data": b"\x1b]0;x\x07"}, ("a", [b"", None])],
])
def test_values_round_trip(value):
    wire = protocol.encode(value)
    back = protocol.decode(json.loads(protocol.dump_frame({"v": wire}))["v"])
    assert back == value and type(back) is type(value)


def test_values_that_cannot_travel():
    with pytest.raises(protocol.ProtocolError):
        protocol.encode(object())
    with pytest.raises(protocol.ProtocolError):
        protocol.decode({"$h": 1, "t": "base.Domain"})       # a handle needs a decoder that knows it
    with pytest.raises(protocol.ProtocolError):
        protocol.decode({"$b": "not base64!"})


def test_frames_over_a_pipe_in_pieces():
    r, w = os.pipe()
    data = protocol.dump_frame({"id": 1, "r": "a\nb"}) + protocol.dump_frame({"id": 2})
    assert data.count(b"\n") == 2                      # a newline inside a value is escaped
    reader = protocol.FrameReader(r)
    os.write(w, data[:5])
    os.write(w, data[5:])
    os.close(w)
    assert reader.next() == {"id": 1, "r": "a\nb"}
    assert reader.next() == {"id": 2}
    assert reader.next() is None
    os.close(r)


@pytest.mark.parametrize("data, message", [(b"{nope\n", "malformed frame"), (b"[1]\n", "not an object"),
                                           (b'{"id": 1', "in the middle of a frame")])
def test_bad_frames(data, message):
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    with pytest.raises(protocol.ProtocolError, match=message):
        protocol.FrameReader(r).next()
    os.close(r)


def test_errors_keep_kind_lines_hint_and_status():
    err = OperationInvalid("Failed to start domain 'vm1'", "it runs", hint="destroy it first")
    back = protocol.error_from_wire(json.loads(json.dumps(protocol.error_to_wire(err))))
    assert type(back) is OperationInvalid
    assert (back.lines, back.hint, back.status) == (err.lines, err.hint, err.status)
    odd = VshError("x")
    odd.status = 7
    assert protocol.error_from_wire(protocol.error_to_wire(odd)).status == 7
    assert type(protocol.error_from_wire({"kind": "SystemExit", "lines": ["x"]})) is VshError
    bug = protocol.error_to_wire(KeyError("k"))
    assert bug["lines"] == ["internal error: KeyError: 'k'"]


def test_api_types():
    conn = api.connect(f"vsh:///session?root={os.getcwd()}/s")
    assert protocol.api_type(conn)[0] == "base.Connection"
    assert protocol.api_type(conn.storage)[0] == "storage.Storage"
    assert protocol.api_class("snapshots.Snapshot").__name__ == "Snapshot"
    assert protocol.handle_attributes(protocol.api_class("storage.Volume")) == ("name", "key", "path")
    for bad in ("os.system", "local.connection", "base.__class__", "protocol.ProtocolError"):
        with pytest.raises(protocol.ProtocolError):
            protocol.api_class(bad)


# -- the server, spoken to directly ------------------------------------------------------

class Peer:
    """`vsh serve --stdio` in a subprocess; frames written and read by hand."""

    def __init__(self, argv=None, env=None):
        self.proc = subprocess.Popen(argv or [sys.executable, "-m", "vsh", "serve", "--stdio"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=dict(os.environ, **(env or {})), cwd=ROOT)
        self.reader = protocol.FrameReader(self.proc.stdout.fileno())

    def send(self, frame):
        self.proc.stdin.write(protocol.dump_frame(frame))
        self.proc.stdin.flush()

    def ask(self, frame):
        self.send(frame)
        return self.reader.next()

    def close(self):
        self.proc.stdin.close()
        status = self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return status


@pytest.fixture
def peer(vsh_env):
    p = Peer()
    yield p
    if p.proc.poll() is None:
        p.close()


def test_server_hello_and_calls(peer, vsh_env):
    hello = peer.ask({"hello": protocol.VERSION, "vsh": "test", "uri": vsh_env.uri})
    assert hello["hello"] == protocol.VERSION and hello["uri"] == vsh_env.uri
    assert peer.ask({"id": 1, "h": [0], "m": "list_domains"}) == {"id": 1, "r": []}
    reply = peer.ask({"id": 2, "h": [0], "m": "lookup_domain", "a": ["nosuch"]})
    assert reply["e"]["kind"] == "NotFound" and reply["e"]["lines"] == ["failed to get domain 'nosuch'"]
    reply = peer.ask({"id": 3, "h": [0], "m": "define_xml", "a": [domain_xml("vm1")]})
    handle = reply["r"]
    assert handle["t"] == "base.Domain" and handle["a"] == {"name": "vm1"}
    reply = peer.ask({"id": 4, "h": [handle["$h"]], "m": "state"})
    assert reply["r"] == {"$t": ["shut off", "unknown"]}
    reply = peer.ask({"id": 5, "h": [handle["$h"]], "get": "devices"})
    assert reply["r"]["t"] == "devices.DomainDevices"
    for n, bad in enumerate([{"h": [0], "m": "_private"}, {"h": [0], "m": "__class__"}, {"h": [99], "m": "x"},
                             {"h": "0", "m": "list_domains"}, {"h": [0], "m": "no_such_method"},
                             # descriptor numbers mean nothing in the server's process
                             {"h": [handle["$h"]], "m": "fd_associate", "a": ["g", [0]]},
                             # nor do the caller's sockets
                             {"h": [0], "m": "forward_socket", "a": ["/run/a.sock", "/run/b.sock"]}]):
        reply = peer.ask(dict(bad, id=10 + n))
        assert reply["id"] == 10 + n and reply["e"]["kind"] == "ProtocolError", bad
    peer.send({"release": [handle["$h"]]})
    assert peer.ask({"id": 20, "h": [handle["$h"]], "m": "state"})["e"]["kind"] == "ProtocolError"
    assert peer.close() == 0


def test_server_pipelined_calls(peer, vsh_env):
    """A call with "as" keeps its handle under the client's (negative) id, so requests naming it can
    follow before the reply; when that call failed, every request naming the id gets its error."""
    peer.ask({"hello": protocol.VERSION, "vsh": "test", "uri": vsh_env.uri})
    peer.ask({"id": 1, "h": [0], "m": "define_xml", "a": [domain_xml("vm1")]})
    for frame in ({"id": 2, "h": [0], "m": "lookup_domain", "a": ["vm1"], "as": -1},
                  {"id": 3, "h": [-1], "get": "stats", "as": -2},
                  {"id": 4, "h": [-1], "m": "state"},
                  {"id": 5, "h": [0], "m": "lookup_domain", "a": ["nosuch"], "as": -3},
                  {"id": 6, "h": [-3], "m": "info"},
                  {"id": 7, "h": [0], "m": "lookup_domain", "a": ["vm1"], "as": 4}):
        peer.send(frame)
    replies = [peer.reader.next() for _ in range(6)]
    assert replies[0] == {"id": 2, "r": {"$h": -1, "t": "base.Domain", "a": {"name": "vm1"}}}
    assert replies[1]["r"]["$h"] == -2 and replies[1]["r"]["t"] == "stats.DomainStats"
    assert replies[2] == {"id": 4, "r": {"$t": ["shut off", "unknown"]}}
    assert replies[3]["e"]["lines"] == replies[4]["e"]["lines"] == ["failed to get domain 'nosuch'"]
    assert replies[4]["id"] == 6 and replies[4]["e"]["kind"] == "NotFound"
    assert replies[5]["e"]["kind"] == "ProtocolError"             # only negative ids are the client's
    peer.send({"release": [-1, -3]})
    assert peer.ask({"id": 8, "h": [-3], "m": "info"})["e"]["kind"] == "ProtocolError"
    assert peer.close() == 0


def test_server_refuses_another_protocol_version(peer, vsh_env):
    reply = peer.ask({"hello": protocol.VERSION + 1, "vsh": "9.9", "uri": vsh_env.uri})
    assert reply["e"]["lines"][0] == "failed to connect to the hypervisor"
    assert f"the client speaks {protocol.VERSION + 1}" in reply["e"]["lines"][1]
    assert peer.proc.wait(timeout=30) != 0


def test_server_needs_a_hello_first(peer):
    reply = peer.ask({"id": 1, "h": [0], "m": "list_domains"})
    assert "starts with a hello" in reply["e"]["lines"][0]


def test_server_reports_a_connection_it_cannot_open(peer):
    reply = peer.ask({"hello": protocol.VERSION, "uri": "vsh:///elsewhere"})
    assert reply["e"]["lines"][0] == "failed to connect to the hypervisor"


# -- the driver, through a stand-in ssh ----------------------------------------------------

@pytest.fixture
def ssh_log(vsh_env, monkeypatch):
    log = vsh_env.tmp / "ssh.log"
    monkeypatch.setenv("VSH_SSH", f"{sys.executable} {ROOT}/tests/fake_ssh.py")
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return log


def remote_uri(vsh_env, host="remote.example", command=VSH_CMD, **query):
    query = dict({"root": str(vsh_env.store), "command": command}, **query)
    return f"vsh+ssh://alice@{host}:2222/session?" + "&".join(f"{k}={quote(v)}" for k, v in query.items())


def test_ssh_command_line(ssh_log, vsh_env):
    uri = remote_uri(vsh_env, keyfile="/keys/id")
    with api.connect(uri) as conn:
        assert conn.uri == uri
        assert conn.list_domains() == []
    argv = json.loads(ssh_log.read_text().splitlines()[0])
    assert argv[:-3] == ["-T", "-e", "none", "-o", "BatchMode=yes", "-o", "ConnectTimeout=8",
                         "-p", "2222", "-l", "alice", "-i", "/keys/id"]
    assert argv[-3:] == ["--", "remote.example", f"{VSH_CMD} serve --stdio"]


def test_every_handle_implements_every_abstract_method(ssh_log, vsh_env):
    with api.connect(remote_uri(vsh_env)) as conn:
        dom = conn.define_xml(domain_xml("vm1"))
        assert type(dom).__name__ == "RemoteDomain" and dom.name == "vm1" and dom.id is None
        assert dom.devices is dom.devices                          # a sub-handle is read once
        snap_handles = [dom.snapshots.snapshot("s1")]
        pool = conn.storage.define_pool_as("p1", "dir", str(vsh_env.tmp / "pool"))
        handles = [conn, dom, dom.devices, dom.stats, dom.snapshots, dom.display, dom.block_jobs, dom.tuning, dom.agent,
                   conn.storage, conn.networks, conn.host, conn.installer, conn.guest_disks(), pool,
                   *snap_handles]
        for handle in handles:
            missing = {n for n in dir(type(handle)) if getattr(getattr(type(handle), n, None), "__isabstractmethod__", False)}
            assert not missing, f"{type(handle).__name__} lacks {missing}"
        info = dom.info()
        assert (info["name"], info["state"], info["id"]) == ("vm1", "shut off", None)
        assert dom.state() == ("shut off", "unknown")
        assert pool.name == "p1" and pool.info()["state"] == "inactive"
        missing = conn.lookup_domain("nosuch")      # pipelined: its error comes with its first use
        with pytest.raises(NotFound, match="failed to get domain 'nosuch'") as caught:
            missing.stats.hostname(None)
        assert caught.value.deferred and caught.value.with_context("failed to get hostname") is caught.value
        with pytest.raises(NotFound, match="failed to get domain 'nosuch'"):
            missing.name
        conn.settle()                               # met where it was used: not raised again
        unused = conn.lookup_domain("nosuch")       # never used: settle() raises it (the shell asks)
        with pytest.raises(NotFound, match="failed to get domain 'nosuch'"):
            conn.settle()
        conn.settle()
        assert unused.__dict__.get("name") is None and conn.lookup_domain("vm1").name == "vm1"
        with pytest.raises(OperationInvalid):
            dom.console_log()


def test_cli_output_and_errors_are_the_local_ones(ssh_log, vsh_env, vsh, define):
    define("vm1")
    remote = remote_uri(vsh_env)
    for argv in (["list", "--all"], ["dominfo", "vm1"], ["dominfo", "nosuch"], ["domstate", "vm1", "--reason"],
                 ["--json", "list", "--all"], ["start", "nosuch"], ["dumpxml", "vm1"], ["uri"],
                 # lookups are pipelined: a missing domain is still the error, even when the command
                 # fails on something else first, wraps the error, or never uses the domain
                 ["domhostname", "nosuch"], ["metadata", "nosuch", "http://x", "--set", "<y/>"],
                 ["snapshot-create-as", "nosuch", "--print-xml"], ["domid", "nosuch"]):
        here = vsh("-c", vsh_env.uri, *argv)
        there = vsh("-c", remote, *argv)
        if argv == ["uri"]:
            assert there.out == remote + "\n\n"
            continue
        assert (there.status, there.out, there.err) == (here.status, here.out, here.err), argv
    refused = vsh("-c", remote, "dom-fd-associate", "vm1", "g", "0")
    assert refused.status == 1 and "file descriptors cannot be passed over a vsh+ssh connection" in refused.err


def test_a_missing_domain_opens_no_editor(ssh_log, vsh_env, vsh, monkeypatch, tmp_path):
    """metadata --edit takes a missing element for an empty one: a missing domain (its lookup
    pipelined) must still fail before the editor runs."""
    marker = tmp_path / "edited"
    editor = tmp_path / "editor.sh"
    editor.write_text(f"#!/bin/sh\ntouch {marker}\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.setenv("VISUAL", str(editor))
    res = vsh("-c", remote_uri(vsh_env), "metadata", "nosuch", "http://x/", "--key", "k", "--edit")
    assert res.status == 1 and res.err == "error: failed to get domain 'nosuch'\n"
    assert not marker.exists()


def test_batch_uses_one_ssh_connection(ssh_log, vsh_env, vsh, define):
    define("vm1")
    res = vsh("-c", remote_uri(vsh_env), stdin="list --all\ndominfo vm1\ndomid vm1\nlist --name --all\n")
    assert res.status == 0 and res.out.count("vm1") == 3
    assert len(ssh_log.read_text().splitlines()) == 1


def test_console_log_streams(ssh_log, vsh_env, vsh, define):
    define("vm1")
    conn = api.connect(vsh_env.uri)
    rundir = conn.store.runtime_dir("vm1")
    os.makedirs(rundir, exist_ok=True)
    with open(os.path.join(rundir, "console.log"), "wb") as fh:
        fh.write(b"boot line\n" + b"x" * 300000 + b"\nlast line\n")
    here = vsh("-c", vsh_env.uri, "console-log", "vm1")
    there = vsh("-c", remote_uri(vsh_env), "console-log", "vm1")
    assert there.status == 0 and there.out == here.out and "last line" in there.out
    with api.connect(remote_uri(vsh_env)) as remote:
        chunks = remote.lookup_domain("vm1").console_log()
        assert next(chunks).startswith(b"boot line")
        chunks.close()                                     # stopping early is fine
        assert remote.list_domains()[0]["name"] == "vm1"   # and the session goes on


def test_progress_callbacks_reach_the_caller(ssh_log, vsh_env, tmp_path):
    with api.connect(remote_uri(vsh_env)) as conn:
        pool = conn.storage.define_pool_as("p1", "dir", str(tmp_path / "pool"))
        pool.build()
        pool.start()
        vol = pool.create_volume_as("v1", 1 << 20)
        seen = []

        class Progress:
            def start(self, total):
                seen.append(("start", total))

            def update(self, done):
                seen.append(("update", done))

            def finish(self):
                seen.append(("finish",))

        vol.wipe(progress=Progress())
        assert seen and seen[0][0] == "start" and seen[-1] == ("finish",)
        with pytest.raises(InvalidArgument):
            vol.resize(0, shrink=False, delta=False)


def test_console_over_the_channel(vsh_env, monkeypatch, tmp_path, define):
    define("vm1")
    monkeypatch.setenv("VSH_SSH", f"{sys.executable} {ROOT}/tests/fake_ssh.py")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("PEER_URI", vsh_env.uri)
    with api.connect(remote_uri(vsh_env, command=f"{sys.executable} {ROOT}/tests/remote_peer.py #")) as conn:
        console = conn.lookup_domain("vm1").open_console()
        import select

        console.write(b"hello\n")
        got = b""
        while b"HELLO\n" not in got:
            assert select.select([console.fileno()], [], [], 10)[0], "no echo within 10 s"
            got += console.read() or b""
        assert console.taken_over is False
        console.write(b"quit\n")
        while console.read() != b"":
            assert select.select([console.fileno()], [], [], 10)[0], "no end within 10 s"
        console.close()
        assert conn.list_domains()[0]["name"] == "vm1"


def test_connection_failures_are_clear_errors(ssh_log, vsh_env, vsh):
    res = vsh("-c", remote_uri(vsh_env, host="unreachable.invalid"), "list")
    assert res.status == 1
    assert res.err.splitlines() == ["error: failed to connect to the hypervisor",
                                    "error: ssh to 'alice@unreachable.invalid' failed: ssh: Could not resolve "
                                    "hostname unreachable.invalid: Name or service not known"]
    res = vsh("-c", remote_uri(vsh_env, command="/nonexistent/vsh"), "list")
    assert res.status == 1 and "error: the remote vsh was not found on 'alice@remote.example'" in res.err
    res = vsh("-c", remote_uri(vsh_env, command="true"), "list")
    assert res.status == 1 and "ended before its hello" in res.err
    res = vsh("-c", "vsh+ssh://remote.example/elsewhere", "list")
    assert res.err == ("error: failed to connect to the hypervisor\nerror: unknown connection path '/elsewhere' in "
                       "'vsh+ssh://remote.example/elsewhere': use /session or /system\n")


def test_remote_protocol_version_mismatch_is_reported(ssh_log, vsh_env, vsh, tmp_path):
    fake = tmp_path / "newer-vsh"
    fake.write_text("#!/bin/sh\nread hello\necho '{\"id\":0,\"hello\":99,\"vsh\":\"9.0\",\"uri\":\"x\"}'\n")
    fake.chmod(0o755)
    res = vsh("-c", remote_uri(vsh_env, command=str(fake)), "list")
    assert res.status == 1
    assert res.err == ("error: failed to connect to the hypervisor\nerror: remote protocol version mismatch: "
                       f"vsh 0.1.0 speaks {protocol.VERSION}, the remote vsh 9.0 speaks 99\n")


def test_completion_and_readonly_go_through_the_remote_connection(ssh_log, vsh_env, vsh, define):
    define("vm1")
    define("vm2")
    from vsh.completion import complete
    from vsh.shell import Context

    ctx = Context(uri=remote_uri(vsh_env))
    try:
        assert complete(ctx, ["dominfo", "vm"]) == ["vm1", "vm2"]
        assert complete(ctx, ["domstate", "--domain", "vm2"]) == ["vm2"]
    finally:
        ctx.conn.close()
    here = vsh("-r", "-c", vsh_env.uri, "undefine", "vm1")
    there = vsh("-r", "-c", remote_uri(vsh_env), "undefine", "vm1")
    assert there.status == here.status != 0 and there.err == here.err


def test_volume_upload_and_download_use_the_callers_files(ssh_log, vsh_env, tmp_path):
    src = tmp_path / "src.img"
    with open(src, "wb") as fh:
        fh.write(b"head" * 1000)
        fh.seek(3 << 20)
        fh.write(b"tail")
    with api.connect(remote_uri(vsh_env)) as conn:
        pool = conn.storage.define_pool_as("p1", "dir", str(tmp_path / "pool"))
        pool.build()
        pool.start()
        vol = pool.create_volume_as("v1", 4 << 20)
        assert vol.upload(str(src), sparse=True) == src.stat().st_size
        assert vol.download(str(tmp_path / "back.img"), length=src.stat().st_size) == src.stat().st_size
        assert (tmp_path / "back.img").read_bytes() == src.read_bytes()
        assert (tmp_path / "back.img").stat().st_mode & 0o777 == 0o600
        with pytest.raises(VshError, match=f"cannot read {tmp_path}/nosuch: No such file or directory"):
            vol.upload(str(tmp_path / "nosuch"))
        with pytest.raises(VshError, match="cannot create"):
            vol.download(str(tmp_path / "nodir" / "x"))
        assert not (tmp_path / "nodir").exists()
        assert conn.list_domains() == []                     # the session goes on
    leftovers = [p for p in os.listdir("/tmp") if p.startswith("vsh-serve-")]
    assert not [p for p in leftovers if os.stat(f"/tmp/{p}").st_uid == os.getuid()
                and os.path.getmtime(f"/tmp/{p}") > src.stat().st_mtime]


def test_a_connection_that_drops_is_an_error_not_a_hang(ssh_log, vsh_env):
    import signal

    conn = api.connect(remote_uri(vsh_env))
    assert conn.list_domains() == []
    os.killpg(conn._channel.proc.pid, signal.SIGKILL)      # ssh and the remote vsh go away
    with pytest.raises(VshError, match="^End of file while reading data: the connection to "
                                       "'alice@remote.example' ended"):
        conn.list_domains()
    with pytest.raises(VshError):
        conn.lookup_domain("vm1")
    conn.close()
