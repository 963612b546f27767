"""The store's event journal (vsh.core.journal) and the events it gives ``vsh event``: a
definition added, updated, renamed, removed, metadata changed, as libvirtd reports them."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.conftest import domain_xml
from vsh.core import journal


def test_a_follower_sees_what_is_appended_after_it_began_in_order(tmp_path):
    run = str(tmp_path / "jrun")
    journal.record(run, "before", "lifecycle", "Defined", "Added")
    assert not os.path.exists(run)                  # nobody listens: nothing written, nothing made
    follower = journal.Follower(run)
    assert oct(os.stat(run).st_mode & 0o777) == "0o700"
    journal.record(run, "before", "lifecycle", "Defined", "Added")
    follower = journal.Follower(run)
    assert follower.poll() == []
    journal.record(run, "vm1", "lifecycle", "Defined", "Added")
    journal.record(run, "t\tab\nnl ü", "metadata-change", "element", "http://example.org/x")
    got = follower.poll()
    assert [(d, e, f) for _, d, e, f in got] == [
        ("vm1", "lifecycle", ["Defined", "Added"]),
        ("t\tab\nnl ü", "metadata-change", ["element", "http://example.org/x"])]
    assert all(abs(stamp - time.time()) < 60 for stamp, *_ in got)
    assert follower.poll() == []
    assert oct(os.stat(os.path.join(run, journal.FILE)).st_mode & 0o777) == "0o600"


def test_a_line_still_being_written_waits_for_the_next_poll(tmp_path):
    run = tmp_path / "jrun"
    run.mkdir()
    follower = journal.Follower(str(run))
    with open(run / journal.FILE, "ab") as fh:
        fh.write(b"1.5\tvm1\tlifecycle\tDefined\tAdd")
        fh.flush()
        assert follower.poll() == []
        fh.write(b"ed\n")
    assert follower.poll() == [(1.5, "vm1", "lifecycle", ["Defined", "Added"])]


def test_rotation_loses_nothing_a_follower_had_not_read(tmp_path, monkeypatch):
    run = str(tmp_path / "jrun")
    monkeypatch.setattr(journal, "LIMIT", 200)
    follower = journal.Follower(run)
    names = [f"vm{i}" for i in range(20)]
    seen = []
    for n, name in enumerate(names):
        journal.record(run, name, "lifecycle", "Defined", "Added")
        if n % 3 == 2:                    # three lines (< LIMIT) between polls: one rotation at most
            seen += [d for _, d, _, _ in follower.poll()]
    seen += [d for _, d, _, _ in follower.poll()]
    assert os.path.exists(os.path.join(run, journal.FILE + ".old"))
    assert os.path.getsize(os.path.join(run, journal.FILE)) <= 200 + 100
    assert seen == names                  # nothing lost across the rotations, in order


def test_a_runtime_directory_another_user_planted_gets_no_journal(tmp_path):
    import pytest

    from vsh.core.errors import VshError

    other = tmp_path / "theirs"
    other.mkdir()
    os.chown(other, 65534, 65534)
    planted = tmp_path / "vsh-run"
    os.symlink(other, planted)
    os.lchown(planted, 65534, 65534)
    journal.record(str(planted), "vm1", "lifecycle", "Defined", "Added")
    assert os.listdir(other) == []
    with pytest.raises(VshError, match="belongs to another user"):
        journal.Follower(str(planted))


def test_an_unwritable_journal_never_fails_the_change(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    journal.record(str(blocker / "run"), "vm1", "lifecycle", "Defined", "Added")      # no exception
    assert journal.parse("garbage") is None and journal.parse("x\ty\tz\n") is None


def test_event_reports_definitions_and_metadata_as_libvirtd(vsh_env, vsh_proc, tmp_path):
    xml, probe = tmp_path / "vm1.xml", tmp_path / "probe.xml"
    xml.write_text(domain_xml("vm1", uuid="5f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b"))
    probe.write_text(domain_xml("probe"))
    assert vsh_proc("define", probe).status == 0
    events = tmp_path / "events.txt"
    listener = subprocess.Popen([sys.executable, "-m", "vsh", "event", "--all", "--loop", "--timeout", "120"],
                                stdout=open(events, "w"), stderr=subprocess.PIPE, text=True)

    def poll_for(text: str) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if text in events.read_text():
                return True
            time.sleep(0.2)
        return False

    try:
        # the listener is looking once it reports a change of the probe domain
        deadline = time.monotonic() + 60
        while "domain 'probe'" not in events.read_text() and time.monotonic() < deadline:
            assert vsh_proc("desc", "probe", "--title", "p").status == 0
            time.sleep(0.5)
        for args in (("define", xml), ("define", xml), ("desc", "vm1", "--title", "T"),
                     ("desc", "vm1", "new text"),
                     ("metadata", "vm1", "http://example.org/x", "--key", "ex", "--set", "<a/>"),
                     ("domrename", "vm1", "vm2"), ("undefine", "vm2")):
            assert vsh_proc(*args).status == 0, args
        assert poll_for("'vm2': Undefined Removed"), events.read_text()
        listener.send_signal(2)
        _, err = listener.communicate(timeout=30)
    finally:
        listener.kill()
    lines = [line for line in events.read_text().splitlines() if "'probe'" not in line]
    assert lines[:8] == [
        "event 'lifecycle' for domain 'vm1': Defined Added",
        "event 'lifecycle' for domain 'vm1': Defined Updated",
        "event 'metadata-change' for domain 'vm1': type title, uri (null)",
        "event 'metadata-change' for domain 'vm1': type description, uri (null)",
        "event 'metadata-change' for domain 'vm1': type element, uri http://example.org/x",
        "event 'lifecycle' for domain 'vm1': Undefined Renamed",
        "event 'lifecycle' for domain 'vm2': Defined Renamed",
        "event 'lifecycle' for domain 'vm2': Undefined Removed"], (lines, err)
    assert lines[8] == "event loop interrupted"


def test_the_runtime_directory_keeps_its_mode(tmp_path):
    # a confined QEMU's user may have been granted search on it: neither side may take that back
    run = tmp_path / "jrun"
    run.mkdir(mode=0o711)
    os.chmod(run, 0o711)
    follower = journal.Follower(str(run))
    journal.record(str(run), "vm1", "lifecycle", "Defined", "Added")
    assert len(follower.poll()) == 1
    assert oct(os.stat(run).st_mode & 0o777) == "0o711"
