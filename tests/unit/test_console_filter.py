"""Console: guest-output filtering, the escape character and ``~.``, the session lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from vsh.core.errors import InvalidArgument, OperationInvalid
from vsh.api.local.console import LocalConsole
from vsh.kvm.console import ConsoleLock, log_chunks
from vsh.ui.console import InputFilter, OutputFilter, describe_escape, parse_escape, session

ESC = b"\x1b"


def filt(*chunks: bytes) -> bytes:
    f = OutputFilter()
    return b"".join(f.feed(c) for c in chunks)


def bytewise(data: bytes) -> bytes:
    return filt(*[data[i:i + 1] for i in range(len(data))])


# ---- output --------------------------------------------------------------------------

KEEP = [
    b"plain text\r\n",
    ESC + b"[1;31mred" + ESC + b"[0m",                  # SGR colours
    ESC + b"[38;5;208mx" + ESC + b"[m",
    ESC + b"[2J" + ESC + b"[H" + ESC + b"[10;20H",      # clear, cursor moves
    ESC + b"[?25l" + ESC + b"[?25h",                    # cursor visibility
    ESC + b"[?1049h" + ESC + b"[?1049l",                # alternate screen
    ESC + b"7" + ESC + b"8" + ESC + b"(B" + ESC + b"M",  # save/restore, charset, reverse index
    "héllo wörld ✓ \u00a0".encode(),                    # UTF-8, including C2 A0 (nbsp)
    b"\x07\x08\t",                                      # BEL, BS, TAB
]


@pytest.mark.parametrize("data", KEEP)
def test_harmless_output_passes_unchanged(data):
    assert filt(data) == data
    assert bytewise(data) == data


DROP = [
    (ESC + b"]0;pwned title\x07", b""),                          # OSC 0 (title), BEL
    (ESC + b"]2;title" + ESC + b"\\", b""),                      # OSC 2, ST
    (ESC + b"]52;c;ZWNobyBwd25lZA==\x07", b""),                  # OSC 52 clipboard
    (ESC + b"]8;;http://evil/\x07link" + ESC + b"]8;;\x07", b"link"),  # hyperlink
    (ESC + b"P+q544e\x07" + ESC + b"\\x", b"x"),                 # DCS (BEL is data; ST ends it)
    (ESC + b"_apc payload" + ESC + b"\\", b""),                  # APC
    (ESC + b"^pm" + ESC + b"\\", b""),                           # PM
    (ESC + b"Xsos" + ESC + b"\\", b""),                          # SOS
    ("\u009d0;c1 title\u009c".encode(), b""),                   # C1 OSC in UTF-8, C1 ST
    ("\u009b31mx".encode(), ESC + b"[31mx"),                    # C1 CSI → 7-bit CSI
    ("a\u0085b".encode(), b"ab"),                               # other C1 controls dropped
    (ESC + b"[8;1;1t" + ESC + b"[21t", b""),                     # window resize / title report
    (ESC + b"[5i", b""),                                         # media copy
    (ESC + b"[" + b"1;" * 40 + b"m" + b"ok", b"ok"),            # absurdly long CSI
    (b"a" + ESC + b"]0;t\x18b", b"ab"),                          # CAN cancels a string
]


@pytest.mark.parametrize("data,expected", DROP)
def test_dangerous_output_is_dropped(data, expected):
    assert filt(data) == expected
    assert bytewise(data) == expected


def test_sequences_split_across_reads():
    data = b"before " + ESC + b"]0;title\x07" + ESC + b"[32mgreen" + ESC + b"[0m after"
    want = b"before " + ESC + b"[32mgreen" + ESC + b"[0m after"
    for cut in range(len(data) + 1):
        assert filt(data[:cut], data[cut:]) == want, cut


def test_text_after_string_terminator_survives():
    assert filt(b"x" + ESC + b"]0;t" + ESC + b"\\" + b"y") == b"xy"
    assert filt(b"x" + ESC + b"]0;t" + ESC + b"[1my") == b"x" + ESC + b"[1my"


def test_queries_pass_live_but_not_in_logs():
    data = b"$ " + ESC + b"[6n" + ESC + b"[c" + ESC + b"[>q" + ESC + b"[?25$p" + ESC + b"[1mx"
    assert filt(data) == data                       # live: the guest asked its terminal
    f = OutputFilter(drop_queries=True)             # a log: answers would go to the host shell
    assert f.feed(data) == b"$ " + ESC + b"[1mx"


def test_long_binary_noise_never_raises():
    data = bytes(range(256)) * 50
    out = filt(data)
    assert b"\x1b]" not in out and "\u009d".encode() not in out


# ---- input ---------------------------------------------------------------------------

def test_escape_character_leaves():
    f = InputFilter(0x1D)
    assert f.feed(b"ls\r") == (b"ls\r", False)
    assert f.feed(b"ab\x1dcd") == (b"ab", True)


def test_tilde_dot_after_newline_leaves():
    f = InputFilter(0x1D)
    assert f.feed(b"echo hi\r") == (b"echo hi\r", False)
    assert f.feed(b"~") == (b"", False)        # held back
    assert f.feed(b".") == (b"", True)


def test_tilde_dot_at_session_start_and_split():
    assert InputFilter().feed(b"~.") == (b"", True)
    f = InputFilter()
    assert f.feed(b"x\n~") == (b"x\n", False)
    assert f.feed(b".rest") == (b"", True)


def test_tilde_elsewhere_is_sent():
    f = InputFilter()
    assert f.feed(b"a~.b") == (b"a~.b", False)      # not after a newline
    f = InputFilter()
    assert f.feed(b"~x") == (b"~x", False)
    f = InputFilter()
    assert f.feed(b"\r~~.") == (b"\r~.", False)     # "~~" sends one "~"
    f = InputFilter()
    assert f.feed(b"\n~") == (b"\n", False)
    assert f.flush() == b"~"


def test_tilde_can_be_disabled_and_escape_changed():
    f = InputFilter(parse_escape("^X"), tilde=False)
    assert f.feed(b"~.\x1d") == (b"~.\x1d", False)
    assert f.feed(b"\x18") == (b"", True)


def test_parse_escape():
    assert parse_escape("^]") == 0x1D
    assert parse_escape("^x") == parse_escape("^X") == 0x18
    assert parse_escape("^[") == 0x1B
    assert parse_escape("^?") == 0x7F
    assert parse_escape("+") == ord("+")
    assert parse_escape(None) is None
    assert describe_escape(0x1D) == "^]"
    with pytest.raises(InvalidArgument, match="Invalid string 'xx' for escape sequence"):
        parse_escape("xx")


# ---- the session lock and a pipe-mode session over a socket ---------------------------

def test_console_lock_and_force(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
from vsh.kvm.console import ConsoleLock
lock = ConsoleLock({str(tmp_path)!r}); lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OperationInvalid, match="Active console session"):
            ConsoleLock(tmp_path).acquire()
        lock = ConsoleLock(tmp_path)
        lock.acquire(force=True)
        assert holder.wait(5) != 0          # the holder got SIGTERM
        assert (tmp_path / "console.lock").read_text().strip() == str(os.getpid())
        lock.release()
    finally:
        holder.kill()
        holder.wait()


def test_pipe_session_over_unix_socket(tmp_path):
    import socket
    import threading
    path = str(tmp_path / "console.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    got = []

    def guest():
        conn, _ = srv.accept()
        conn.sendall(b"login: " + ESC + b"]0;evil\x07ok\r\n")
        data = b""
        while b"\n" not in data:
            data += conn.recv(100)
        got.append(data)
        conn.sendall(b"echo:" + data)
        time.sleep(0.3)
        conn.close()

    th = threading.Thread(target=guest)
    th.start()
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    os.write(w_in, b"hello~.\n")       # "~." not after a newline: sent as is
    os.close(w_in)
    with LocalConsole({"name": "g", "console_socket": path}, tmp_path) as stream:
        reason = session(stream, stream.name, stdin_fd=r_in, stdout_fd=w_out, linger=2.0)
    os.close(w_out)
    out = b""
    while chunk := os.read(r_out, 65536):
        out += chunk
    th.join()
    assert got == [b"hello~.\n"]
    assert reason in ("closed", "eof")
    assert b"Connected to domain 'g'" in out
    assert b"login: ok\r\n" in out and b"evil" not in out
    assert b"echo:hello~.\n" in out


def test_console_log_copies_and_follows(tmp_path):
    (tmp_path / "console.log").write_bytes(b"line1\nline2\n")
    assert b"".join(log_chunks(tmp_path, follow=False)) == b"line1\nline2\n"
    # follow on a shut-off domain yields what there is and ends at once
    from vsh.kvm import client
    client.write_json_atomic(tmp_path / "state.json", {"name": "g", "state": "shutoff"})
    t0 = time.monotonic()
    out = b"".join(log_chunks(tmp_path, follow=True, timeout=120))
    assert time.monotonic() - t0 < 60           # it did not wait for its timeout
    assert out == b"line1\nline2\n"
