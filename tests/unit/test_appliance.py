"""The appliance's pure parts: the frame, the package closure, the cpio writer, argument parsing."""

from __future__ import annotations

import io
import os
import stat
import subprocess

import pytest

from vsh.guestfs.appliance import agent, build, fileops


def test_frames_round_trip():
    buf = io.BytesIO()
    agent.send(buf, {"op": "write", "path": "/etc/x"}, b"\x00payload\xff")
    agent.send(buf, {"ok": True, "result": None})
    buf.seek(0)
    assert agent.recv(buf) == ({"op": "write", "path": "/etc/x"}, b"\x00payload\xff")
    assert agent.recv(buf) == ({"ok": True, "result": None}, b"")
    with pytest.raises(EOFError):
        agent.recv(buf)


def test_oversized_frame_is_refused():
    buf = io.BytesIO(agent.HEADER.pack(agent.MAX_FRAME + 1, 0))
    with pytest.raises(ValueError):
        agent.recv(buf)


def test_disk_letters_follow_guestfish_names():
    assert [agent._letters(i) for i in (0, 1, 25, 26, 27)] == ["a", "b", "z", "aa", "ab"]


def test_closure_takes_the_first_installed_alternative_and_skips_left_out_packages():
    pkgs = {"tool": ("1", "libc6 (>= 2), mawk | gawk, libicu72"), "libc6": ("2", ""), "gawk": ("5", "libc6"),
            "libicu72": ("72", "")}
    assert build.closure(["tool"], pkgs) == ["gawk", "libc6", "tool"]
    with pytest.raises(Exception, match="not installed"):
        build.closure(["nothere"], pkgs)


def test_cpio_is_read_back_by_cpio(tmp_path):
    path = tmp_path / "a.cpio"
    with open(path, "wb") as f:
        c = build.Cpio(f)
        c.symlink("bin", "usr/bin")
        c.file("usr/bin/hello", b"#!/bin/sh\necho hi\n", 0o755)
        c.file("usr/bin/hello", b"second copy is ignored")
        c.file("etc/x", b"")
        c.trailer()
    out = subprocess.run(["cpio", "-it", "--quiet"], stdin=open(path, "rb"), stdout=subprocess.PIPE, text=True)
    assert out.stdout.split() == ["bin", "usr", "usr/bin", "usr/bin/hello", "etc", "etc/x"]
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], stdin=open(path, "rb"), cwd=dest, check=True)
    assert (dest / "usr/bin/hello").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (dest / "bin").is_symlink()


def test_vmlinux_is_found_in_an_xz_payload():
    import lzma

    elf = b"\x7fELF" + b"\x02" * 100
    image = b"MZ" + b"\0" * 50 + lzma.compress(elf, format=lzma.FORMAT_XZ) + b"trailer"
    assert build.vmlinux_from(image) == elf


def test_numbers_as_guestfish_reads_them():
    from vsh.commands.guestwrite import number

    assert number("0755", "x") == 0o755
    assert number("0x1ed", "x") == 0x1ED
    assert number("493", "x") == 493
    assert number("-1", "x") == -1
    with pytest.raises(Exception, match="not a number"):
        number("08z", "x")


def test_customize_steps_are_checked_before_any_disk_is_opened():
    from vsh.api.customize import check_steps, password_of, sha512_crypt

    check_steps([("hostname", "h"), ("write", "/etc/x:a:b"), ("root-password", "random")])
    for bad in ([("write", "no-colon")], [("root-password", "plain")], [("explode", "x")]):
        with pytest.raises(Exception):
            check_steps(bad)
    assert password_of("password:a:b", "x") == ("a:b", None)
    pw, shown = password_of("random", "x")
    assert pw == shown and len(pw) == 16
    assert password_of("disabled", "x") == (None, None)
    h = sha512_crypt("pw")
    assert h.startswith("$6$") and len(h) > 90


def test_file_operations_of_the_agent(tmp_path, monkeypatch):
    """The agent's file operations (run here in a scratch directory; in the appliance they run
    with the root directory changed to the guest's tree)."""
    import os

    F = fileops.FS_OPS
    (tmp_path / "w").mkdir()
    monkeypatch.chdir(tmp_path / "w")
    F["mkdir"]({"path": "a/b", "parents": True}, b"")
    F["write"]({"path": "a/b/f"}, b"hello")
    F["write"]({"path": "a/b/f", "append": True}, b" more")
    assert F["read"]({"path": "a/b/f"}, b"") == (None, b"hello more")
    F["symlink"]({"target": "/etc", "linkname": "l"}, b"")
    F["symlink"]({"target": "/usr", "linkname": "l", "force": True}, b"")
    assert os.readlink("l") == "/usr"
    F["touch"]({"path": "t"}, b"")
    F["truncate"]({"path": "a/b/f", "size": 3}, b"")
    assert F["stat"]({"path": "a/b/f"}, b"")[0]["st_size"] == 3
    F["cp"]({"src": "a", "dest": "c", "archive": True}, b"")
    F["mv"]({"src": "c", "dest": "d"}, b"")
    assert F["ls"]({"path": "d/b"}, b"")[0] == ["f"]
    F["rm"]({"path": "d", "recursive": True}, b"")
    assert sorted(os.listdir(".")) == ["a", "l", "t"]
    with pytest.raises(IsADirectoryError):
        F["rm"]({"path": "a"}, b"")
    with pytest.raises(FileExistsError):
        F["mkdir"]({"path": "a"}, b"")


def test_colon_separates_commands_on_the_command_line():
    from vsh.cli import _run_words

    ran = []

    class Shell:
        def execute(self, words):
            ran.append(words)
            return 1 if words == ["fail"] else 0

    assert _run_words(Shell(), ["a", "x", ":", "b", ":", ":", "c", "y"]) == 0
    assert ran == [["a", "x"], ["b"], ["c", "y"]]
    ran.clear()
    assert _run_words(Shell(), ["fail", ":", "never"]) == 1
    assert ran == [["fail"]]


def test_edit_expressions_substitute_line_by_line():
    from vsh.core.errors import InvalidArgument
    from vsh.ui.guestsession import substitution

    text = b"root:$6$x:19000:0:99999:7:::\nuser:*:1:2\nno newline at the end"
    assert substitution("s/^root:[^:]*:/root::/")(text).startswith(b"root::19000:")
    assert substitution("s/o/0/g")(b"foo\nboo\n") == b"f00\nb00\n"
    assert substitution("s/o/0/")(b"foo\n") == b"f0o\n"
    assert substitution("s|^(\\w+):(\\w+)$|$2-${1}|")(b"ab:cd\n") == b"cd-ab\n"
    assert substitution("s/END$/[$&]/i")(b"the end\n") == b"the [end]\n"      # $ before the newline
    assert substitution("s/\\/etc/\\/srv/")(b"/etc/x\n") == b"/srv/x\n"          # an escaped delimiter
    for bad in ("y/a/b/", "s/a/b", "s/a/b/q", "s/(/x/", "s"):
        with pytest.raises(InvalidArgument):
            substitution(bad)


def test_saved_state_is_keyed_by_the_machine_not_the_run(tmp_path):
    """The state file's name ignores the run's private paths, and changes with the command
    line, the QEMU binary and the initrd."""
    from vsh.guestfs.appliance import state

    (tmp_path / "app").mkdir()
    qemu, initrd, vmlinux = (tmp_path / "qemu"), (tmp_path / "app" / "initrd"), (tmp_path / "app" / "vmlinux")
    for p in (qemu, initrd, vmlinux):
        p.write_bytes(b"x")

    def key(rundir, *extra):
        argv = [str(qemu), "-m", "768", "-serial", f"file:{rundir}/console.log", *extra]
        return state.path_for(argv, rundir, str(initrd), str(vmlinux))

    a = key("/tmp/vsh-appliance-1")
    assert a == key("/tmp/vsh-appliance-2")
    assert os.path.dirname(a) == str(tmp_path / "app") and os.path.basename(a).startswith("state-")
    assert key("/tmp/r", "-accel", "kvm") != a
    initrd.write_bytes(b"other initrd")
    assert key("/tmp/r") != a


def test_saved_state_is_written_aside_and_replaces_the_others(tmp_path):
    from vsh.guestfs.appliance import state

    tmp_path = tmp_path / "app"
    tmp_path.mkdir()
    old = tmp_path / "state-0000000000000000"
    old.write_bytes(b"old")
    dead = tmp_path / ".state-1111111111111111.999999999.tmp"     # a save whose process is gone
    dead.write_bytes(b"half")
    busy = tmp_path / f".state-3333333333333333.{os.getpid()}.tmp"   # a save still running
    busy.write_bytes(b"going on")
    final = str(tmp_path / "state-2222222222222222")
    tmp = state.temp_for(final)
    assert stat.S_IMODE(os.stat(tmp).st_mode) == 0o600
    with open(tmp, "wb") as f:
        f.write(b"state")
    state.commit(tmp, final)
    assert sorted(os.listdir(tmp_path)) == [busy.name, "state-2222222222222222"]
    busy.unlink()
    state.discard(final)
    state.discard(final)            # gone already: no error
    assert os.listdir(tmp_path) == []


def test_monitor_negotiates_skips_events_and_names_errors():
    import json
    import socket
    import threading

    from vsh.guestfs.appliance.monitor import Monitor, MonitorError

    ours, qemu = socket.socketpair()
    seen = []

    def fake_qemu():
        f = qemu.makefile("rwb", buffering=0)
        f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
        answers = iter([{"return": {}},
                        {"return": {"status": "active"}},
                        {"return": {"status": "completed"}},
                        {"error": {"class": "GenericError", "desc": 'Failed to get "write" lock'}}])
        for line in f:
            seen.append(json.loads(line)["execute"])
            f.write(b'{"event": "RESUME", "timestamp": {}}\n')
            f.write(json.dumps(next(answers)).encode() + b"\n")
        qemu.close()

    t = threading.Thread(target=fake_qemu)
    t.start()
    m = Monitor(ours, timeout=5)
    m.wait_migration(5)
    with pytest.raises(MonitorError, match="write.* lock") as e:
        m.execute("blockdev-add", {"driver": "raw"})
    assert e.value.cls == "GenericError"
    m.close()
    t.join(5)
    assert seen == ["qmp_capabilities", "query-migrate", "query-migrate", "blockdev-add"]
