"""Hostile names and text (issue 15 §3): one rule for what reaches a terminal, names that
refuse it, user text XML cannot hold, UUID spellings, the console log; and two §1 items:
stale temporary files and the culprit named when QEMU (or the supervisor) is stopped."""

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from vsh.core.escape import escape, is_unsafe, unsafe_char

ESC, CSI, RLO, LSEP, DEL, LRI = "\x1b", "\u009b", "\u202e", "\u2028", "\x7f", "\u2066"


# -- the one rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ch", [ESC, CSI, RLO, LSEP, "\u2029", DEL, LRI, "\x00", "\x07", "\x85", "\udc9b"])
def test_unsafe_characters_are_escaped(ch):
    assert is_unsafe(ch) and unsafe_char(f"a{ch}b") == ch
    out = escape(f"a{ch}b")
    assert not any(is_unsafe(c) for c in out)
    assert escape(out) == out                   # escaping twice changes nothing more


def test_escape_spellings():
    assert escape("t" + ESC + "]0;pwned\a") == "t\\x1b]0;pwned\\x07"
    assert escape("x" + CSI + "2J" + RLO + "y") == "x\\x9b2J\\u202ey"
    assert escape("a\nb\tc") == "a\\nb\\tc"
    assert escape("a\nb\tc" + ESC, keep_newlines=True) == "a\nb\tc\\x1b"
    assert escape(b"ok\xff") == "ok\\xff"
    assert escape("a\\b", unambiguous=True) == "a\\\\b"
    for fine in ("plain", "héllo wörld ✓", "日本語", "\u00a0nbsp", "emoji \U0001f600"):
        assert escape(fine) == fine and unsafe_char(fine) is None


# -- names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a" + CSI + "b", "evil" + RLO + "gpj.exe", "a" + LSEP + "b", "a" + LRI + "b",
                                  "a" + DEL + "b", "a\u0085b"])
def test_define_refuses_control_and_bidi_names(vsh, vsh_env, make_xml, store_tree, name):
    path = vsh_env.tmp / "bad.xml"
    path.write_text(make_xml(name))
    before = store_tree()
    res = vsh("define", str(path))
    assert res.status == 1
    assert res.err == (f"error: Failed to define domain from {path}\n"
                       f"error: name '{escape(name)}' cannot contain control characters\n")
    assert store_tree() == before


@pytest.mark.parametrize("name", ["x" + RLO + "y", "x" + CSI + "y", "x" + ESC + "y"])
def test_rename_create_and_install_refuse_them_too(vsh, vsh_env, define, make_xml, store_tree, name):
    define("vm1")
    before = store_tree()
    res = vsh("domrename", "vm1", name)
    assert res.status == 1 and "cannot contain control characters" in res.err, res
    assert not any(is_unsafe(c) for c in res.err.replace("\n", ""))
    res = vsh("virt-install", "--name", name, "--memory", "64", "--import", "--disk", "none", "--noautoconsole")
    assert res.status == 1 and "cannot contain control characters" in res.err, res
    assert store_tree() == before


def test_networks_and_pools_share_the_rule(vsh, vsh_env):
    res = vsh("pool-define-as", "n" + RLO + "x", "dir", "--target", "/x")
    assert res.status == 1
    assert "error: pool name 'n\\u202ex' cannot contain control characters\n" in res.err, res
    path = vsh_env.tmp / "net.xml"
    path.write_text("<network><name>n" + CSI + "x</name></network>")
    res = vsh("net-define", str(path))
    assert res.status == 1
    assert "network name 'n\\x9bx' cannot contain control characters" in res.err, res
    assert RLO not in res.err and CSI not in res.err


def test_snapshot_names_share_the_rule(vsh, define):
    define("vm1")
    res = vsh("snapshot-create-as", "vm1", "s" + CSI + "1")
    assert res.status == 1
    assert "invalid snapshot name 's\\x9b1'" in res.err and CSI not in res.err


def test_error_lines_never_carry_raw_escapes(vsh):
    res = vsh("dominfo", "no" + ESC + "[2Jsuch" + RLO)
    assert res.status == 1
    assert res.err == "error: failed to get domain 'no\\x1b[2Jsuch\\u202e'\n"


# -- titles and descriptions: stored as given, printed escaped -----------------------------------------


def test_titles_and_descriptions_are_escaped_on_output(vsh, vsh_env, define):
    title = "t" + CSI + "2J" + RLO + "x"
    desc = "line1\nb" + CSI + "c" + LSEP + "\tend"
    define("vm1", extra=f"<description>{desc.replace(chr(10), '&#10;')}</description>", title=title)
    out = vsh("list", "--all", "--title").out
    assert "t\\x9b2J\\u202ex" in out and CSI not in out and RLO not in out
    assert vsh("desc", "vm1", "--title").out == "t\\x9b2J\\u202ex\n"
    assert vsh("desc", "vm1").out == "line1\nb\\x9bc\\u2028\tend\n"       # newlines and tabs stay
    data = json.loads(vsh("list", "--all", "--title", "--json").out)
    assert data[0]["title"] == title                                       # --json keeps the raw string
    assert json.loads(vsh("desc", "vm1", "--json").out) == {"description": desc}


def test_dominfo_and_domstate_escape(vsh, define, monkeypatch):
    # names and reasons that no longer pass define (a store written before, another driver)
    from vsh.api.local.domains import LocalDomainConfig

    define("vm1")
    info = LocalDomainConfig.info
    monkeypatch.setattr(LocalDomainConfig, "info", lambda self: dict(info(self), name="vm" + RLO + "1"))
    monkeypatch.setattr(LocalDomainConfig, "state", lambda self: ("shut off", "evil" + ESC + "[2J"))
    assert "Name:           vm\\u202e1\n" in vsh("dominfo", "vm1").out
    assert json.loads(vsh("dominfo", "vm1", "--json").out)["name"] == "vm" + RLO + "1"
    assert vsh("domstate", "vm1", "--reason").out == "shut off (evil\\x1b[2J)\n\n"


def test_desc_with_a_character_xml_cannot_hold(vsh, vsh_env, define, store_tree):
    define("vm1")
    before = store_tree()
    res = vsh("desc", "vm1", "--title", "t" + ESC + "]0;pwned\a")
    assert (res.status, res.err) == (1, "error: invalid character U+001B in the title: XML 1.0 cannot hold it\n")
    res = vsh("desc", "vm1", "d" + ESC + "[2J")
    assert (res.status, res.err) == (1, "error: invalid character U+001B in the description: XML 1.0 cannot hold it\n")
    res = vsh("desc", "vm1", "bad \ufffe here")
    assert "invalid character U+FFFE in the description" in res.err
    assert store_tree() == before
    assert vsh("desc", "vm1", "--title", "fine " + CSI + " title").status == 0    # XML holds C1: escaped on output
    assert vsh("desc", "vm1", "--title").out == "fine \\x9b title\n"


def test_snapshot_description_xml_cannot_hold(vsh, define, store_tree):
    define("vm1")
    before = store_tree()
    res = vsh("snapshot-create-as", "vm1", "s1", "d" + ESC)
    assert (res.status, res.err) == (1, "error: invalid character U+001B in the description: XML 1.0 cannot hold it\n")
    res = vsh("snapshot-create-as", "vm1", "s1", "d" + ESC, "--print-xml")
    assert "invalid character U+001B in the description" in res.err
    assert store_tree() == before


def test_other_model_text_gets_the_same_error(vsh, define, store_tree):
    define("vm1")
    before = store_tree()
    res = vsh("attach-disk", "vm1", "/tmp/a" + ESC + "b.img", "vdb", "--config")
    assert res.status == 1, res
    assert res.err == "error: invalid character U+001B in the --source option: XML 1.0 cannot hold it\n"
    assert store_tree() == before


# -- UUIDs as libvirt reads them -------------------------------------------------------------------------


@pytest.mark.parametrize("uuid", ["urn:uuid:0d6d1d8e-0000-4000-8000-000000000001",
                                  "{0d6d1d8e-0000-4000-8000-000000000001}",
                                  "0d6d1d8e-0000-4000-8000-00000000000",
                                  "0d6d1d8e-0000-4000-8000-0000000000012",
                                  "0d6d1d8e-0000-4000-8000-00000000000g"])
def test_uuids_libvirt_refuses(vsh, vsh_env, make_xml, uuid):
    path = vsh_env.tmp / "u.xml"
    path.write_text(make_xml("vm1", uuid=uuid))
    res = vsh("define", str(path))
    assert res.status == 1
    assert res.err.splitlines()[1] == f"error: malformed uuid element: '{uuid}'"


@pytest.mark.parametrize("uuid", [" 0D6D1D8E-0000-4000-8000-000000000001 ", "0d6d1d8e000040008000000000000001",
                                  "0d6d1d8e 0000 4000 8000 000000000001", "0d-6d-1d-8e-00004000800000000000-0001"])
def test_uuids_libvirt_reads_are_written_its_way(vsh, vsh_env, make_xml, define, uuid):
    define("vm1", xml=make_xml("vm1", uuid=uuid))
    assert vsh("domuuid", "vm1").out == "0d6d1d8e-0000-4000-8000-000000000001\n\n"
    assert "<uuid>0d6d1d8e-0000-4000-8000-000000000001</uuid>" in vsh("dumpxml", "vm1").out
    path = vsh_env.tmp / "other.xml"
    path.write_text(make_xml("other", uuid="0D6D1D8E0000400080000000-00000001"))
    res = vsh("define", str(path))
    assert res.err.splitlines()[1] == \
        "error: domain 'vm1' is already defined with uuid 0d6d1d8e-0000-4000-8000-000000000001"


def test_a_stored_uuid_in_another_spelling_still_collides(vsh, vsh_env, define, make_xml):
    define("vm1", uuid="0d6d1d8e-0000-4000-8000-000000000001")
    cfg = vsh_env.domains / "vm1.xml"
    cfg.write_text(cfg.read_text().replace("0d6d1d8e-0000-4000-8000-000000000001", "0D6D1D8E000040008000000000000001"))
    path = vsh_env.tmp / "other.xml"
    path.write_text(make_xml("other", uuid="0d6d1d8e-0000-4000-8000-000000000001"))
    assert "is already defined with uuid" in vsh("define", str(path)).err


# -- console-log ------------------------------------------------------------------------------------------


LOG = (b"\x1b[2J\x1b[Hboot \x1b[1;32mOK\x1b[0m\r\n\x1b]0;pwned\x07"
       b"bi" + RLO.encode() + b"di\tx\x07\x08\r\n\xc2\x9b2Jafter\x1b(Bq\xff\n")


def test_console_log_keeps_what_a_reader_needs(vsh, vsh_env, define):
    define("vm1")
    rundir = vsh_env.store / "run" / "vm1"
    rundir.mkdir(parents=True)
    (rundir / "console.log").write_bytes(LOG)
    res = vsh("console-log", "vm1")
    assert res.status == 0, res
    assert res.out == "boot OK\nbi\\u202edi\tx\nafterq\ufffd\n\n"
    raw = vsh("console-log", "vm1", "--raw").out
    assert raw.startswith("\x1b[2J\x1b[Hboot") and RLO in raw


def test_log_filter_streams():
    from vsh.ui.console import LogFilter

    f = LogFilter()
    out = b"".join(f.feed(LOG[i:i + 3]) for i in range(0, len(LOG), 3)) + f.finish()
    g = LogFilter()
    assert out == g.feed(LOG) + g.finish()
    h = LogFilter()
    assert h.feed("é".encode()[:1]) == b"" and h.feed("é".encode()[1:]) == "é".encode()
    assert h.feed(b"\xe2\x80") == b"" and h.finish() == "\ufffd".encode()


def test_console_log_help_documents_raw(vsh):
    out = vsh("console-log", "--help").out
    assert "--raw" in out and "ESC [2J" in out


# -- stale temporary files --------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_killed_writers_temporary_files_go_on_the_next_write(vsh, vsh_env, define):
    define("vm1")
    live = subprocess.Popen(["sleep", "30"])
    try:
        dead = vsh_env.domains / f".tmp-{_dead_pid()}-0badf00d"
        alive = vsh_env.domains / f".tmp-{live.pid}-0badf00d"
        mine = vsh_env.domains / f".tmp-{os.getpid()}-0badf00d"
        odd = vsh_env.domains / ".tmp-notapid-x"
        for path in (dead, alive, mine, odd):
            path.write_text("half a definition")
        define("vm2")
        assert not dead.exists()
        assert alive.exists() and mine.exists() and odd.exists()    # a writer still at work, or not ours
    finally:
        live.kill()
        live.wait()
    assert sorted(p.name for p in vsh_env.domains.iterdir() if not p.name.startswith(".tmp-")) == \
        ["vm1.xml", "vm2.xml"]


def test_remove_stale_tmp_counts(tmp_path):
    from vsh.core.store import atomic_write, remove_stale_tmp

    tmp_path = tmp_path / "dir"
    tmp_path.mkdir()
    (tmp_path / f".tmp-{_dead_pid()}-1").write_text("x")
    assert remove_stale_tmp(tmp_path) == 1
    assert remove_stale_tmp(tmp_path / "missing") == 0
    (tmp_path / f".tmp-{_dead_pid()}-2").write_text("x")
    atomic_write(tmp_path / "f", "new", durable=False)
    assert sorted(os.listdir(tmp_path)) == ["f"]


# -- who does not answer ------------------------------------------------------------------------------------


@pytest.fixture
def stopped():
    proc = subprocess.Popen(["sleep", "30"])
    os.kill(proc.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    from vsh.core.runtime import why_unresponsive

    while why_unresponsive(proc.pid) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    yield proc
    proc.kill()
    proc.wait()


def test_why_unresponsive(stopped):
    from vsh.core.runtime import why_unresponsive

    assert why_unresponsive(stopped.pid) == "it is stopped (SIGSTOP); SIGCONT resumes it"
    assert why_unresponsive(os.getpid()) is None
    assert why_unresponsive(_dead_pid()) is None


def test_a_stopped_supervisor_is_named(tmp_path, stopped, monkeypatch):
    from vsh.core.errors import Timeout
    from vsh.core.runtime import RunDir
    from vsh.kvm import client

    rundir = tmp_path / "vm1"
    rundir.mkdir()
    (rundir / "state.json").write_text(json.dumps({"name": "vm1", "state": "running",
                                                   "supervisor_pid": stopped.pid}))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(rundir / "control.sock"))
    server.listen(1)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(rundir / "control.sock"))
    monkeypatch.setattr(client, "SLACK", 0.0)
    try:
        with pytest.raises(Timeout) as exc:
            client.Connection(sock, RunDir(rundir)).call("suspend", timeout=0.2)
    finally:
        sock.close()
        server.close()
    assert str(exc.value).startswith("the supervisor of domain 'vm1' did not answer 'suspend' within 0.2 s: "
                                     "it is stopped (SIGSTOP); SIGCONT resumes it; see ")


def test_the_request_deadline_reaches_qmp():
    from vsh.kvm.supervisor.control import _deadline

    assert _deadline({"op": "status"}) is None
    assert abs(_deadline({"timeout_s": 10}) - (time.monotonic() + 10)) < 1
