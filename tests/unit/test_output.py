"""virsh's text formats: tables, key/value blocks, the per-command blank line, -q and -t."""

import json
import re

import pytest

from vsh.core.output import KeyValue, Lines, Message, Many, Table, Text, display_width, human_size, to_json

# -- tables --------------------------------------------------------------------------------------


def test_table_reference_list():
    table = Table(["Id", "Name", "State"], [["1", "test", "running"]])
    assert table.text(False) == " Id   Name   State\n----------------------\n 1    test   running\n"


def test_table_last_column_not_padded():
    table = Table(["Id", "Name", "State"], [["1", "test", "running"], ["-", "vm1", "shut off"]])
    assert table.text(False) == (" Id   Name   State\n"
                                 "-----------------------\n"
                                 " 1    test   running\n"
                                 " -    vm1    shut off\n")


def test_table_empty_last_cell_keeps_separator():
    table = Table(["Id", "Name", "State", "Title"], [["1", "test", "running", "My Title"], ["-", "vm1", "shut off", ""]])
    lines = table.text(False).splitlines()
    assert lines[0] == " Id   Name   State      Title"
    assert lines[1] == "-" * 34
    assert lines[3] == " -    vm1    shut off   "


def test_table_empty_prints_header_and_rule():
    assert Table(["Id", "Name", "State"], []).text(False) == " Id   Name   State\n" + "-" * 20 + "\n"


def test_table_wide_characters():
    table = Table(["Id", "Name", "State"], [["1", "test", "running"], ["-", "ünïcødé-名前", "shut off"]])
    lines = table.text(False).splitlines()
    assert lines[1] == "-" * 31
    assert lines[2] == " 1    test           running"
    assert lines[3] == " -    ünïcødé-名前   shut off"


def test_table_long_name():
    table = Table(["Id", "Name", "State"], [["1", "test", "running"],
                                             ["-", "a-very-long-domain-name-for-width-test", "shut off"]])
    lines = table.text(False).splitlines()
    assert lines[0] == " Id   Name                                     State"
    assert lines[1] == "-" * 57


@pytest.mark.parametrize("rows", [
    [["1", "test", "running"]],
    [["10", "d9", "running"], ["-", "名前名前", "shut off"]],
    [],
    [["", "", ""]],
])
def test_table_rule_is_widest_line_plus_two(rows):
    lines = Table(["Id", "Name", "State"], rows).text(False).splitlines()
    widest = max(display_width(line) for line in [lines[0]] + lines[2:])
    header_widths = display_width(lines[0])
    assert len(lines[1]) == max(widest, header_widths) + 2 or set(lines[1]) == {"-"}
    assert set(lines[1]) == {"-"}


def test_table_quiet_drops_header_and_recomputes_widths():
    table = Table(["Id", "Name", "State"], [["1", "test", "running"]])
    assert table.text(True) == " 1   test   running\n"


def test_table_numbers_left_aligned():
    table = Table(["Id", "Name", "State"], [["10", "d9", "running"], ["1", "a", "paused"]])
    assert table.text(False).splitlines()[3] == " 1    a      paused"


def test_display_width():
    assert display_width("abc") == 3
    assert display_width("名前") == 4
    assert display_width("ünïcødé") == 7
    assert display_width("e\u0301") == 1  # combining accent


# -- key/value -----------------------------------------------------------------------------------


def test_keyvalue_layout():
    kv = KeyValue([("Id", "-"), ("Name", "vm1"), ("Security DOI", ""), ("Security model", "none")])
    assert kv.text(False) == ("Id:             -\n"
                              "Name:           vm1\n"
                              "Security DOI:   \n"
                              "Security model: none\n")


def test_keyvalue_width_20():
    kv = KeyValue([("CPU model", "x86_64"), ("Memory size", "3145728 KiB")], width=20)
    assert kv.text(False) == "CPU model:           x86_64\nMemory size:         3145728 KiB\n"


def test_keyvalue_quiet_keeps_data():
    assert KeyValue([("Name", "vm1")]).text(True) == "Name:           vm1\n"


# -- other outputs ----------------------------------------------------------------------------------


def test_text_lines_message():
    assert Text("no newline").text(False) == "no newline"
    assert Lines(["a", "b"]).text(False) == "a\nb\n"
    assert Lines([]).text(False) == ""
    assert Message("Domain 'x' started").text(False) == "Domain 'x' started\n"
    assert Message("Domain 'x' started").text(True) == ""
    assert Many([Text("a\n"), Message("m")]).text(False) == "a\nm\n"


def test_to_json():
    assert json.loads(to_json(None)) == {"result": "ok"}
    assert json.loads(to_json(Table(["Id", "Name"], [["1", "a"]]))) == [{"id": "1", "name": "a"}]
    assert json.loads(to_json(KeyValue([("Name", "x")]))) == {"Name": "x"}


@pytest.mark.parametrize("n, text", [(0, "0.00 B"), (10 * 1024 ** 2, "10.00 MiB"), (1024 ** 3, "1.00 GiB"),
                                     (100 * 1024 ** 3, "100.00 GiB"), (1023, "1023.00 B")])
def test_human_size(n, text):
    assert human_size(n) == text


# -- through the shell: blank line, -q, -t -----------------------------------------------------------


def test_blank_line_after_each_command(vsh, define):
    define("vm1")
    res = vsh("list --all; domstate vm1")
    assert res.out == " Id   Name   State\n-----------------------\n -    vm1    shut off\n\nshut off\n\n"


def test_quiet_drops_blank_line_header_and_messages(vsh, define, vsh_env, make_xml):
    define("vm1")
    assert vsh("-q", "list", "--all").out == " -   vm1   shut off\n"
    assert vsh("-q", "domstate", "vm1").out == "shut off\n"
    (vsh_env.tmp / "vm2.xml").write_text(make_xml("vm2"))
    res = vsh("-q", "define", "vm2.xml")
    assert (res.status, res.out) == (0, "")
    assert vsh("-q", "autostart", "vm2").out == ""


def test_quiet_empty_list(vsh):
    assert vsh("-q", "list", "--all").out == ""
    assert vsh("list", "--all").out == " Id   Name   State\n" + "-" * 20 + "\n\n"


def test_echo_and_desc_have_no_newline(vsh, define):
    define("vm1")
    assert vsh("-q", "echo hi; echo there").out == "hithere"
    assert vsh("echo hi; echo there").out == "hi\nthere\n"
    assert vsh("-q", "desc", "vm1").out == "No description for domain: vm1"
    assert vsh("desc", "vm1").out == "No description for domain: vm1\n"


def test_timing(vsh, define):
    define("vm1")
    res = vsh("-t", "echo", "hi")
    assert re.fullmatch(r"hi\n\(Time: \d+\.\d{3} ms\)\n\n", res.out), res.out
    res = vsh("-t", "domstate vm1; domstate vm1")
    assert re.fullmatch(r"(shut off\n\n\(Time: \d+\.\d{3} ms\)\n\n){2}", res.out), res.out


def test_timing_after_runtime_error(vsh):
    res = vsh("-t", "dominfo", "nosuch")
    assert re.fullmatch(r"\n\(Time: \d+\.\d{3} ms\)\n\n", res.out), res.out


def test_no_blank_line_after_quit(vsh):
    assert vsh("quit").out == ""
    assert vsh("echo a; quit").out == "a\n"


def test_echo_flags(vsh):
    assert vsh("echo", "--shell", "a b", "c", "it's", "").out == "'a b' c 'it'\\''s' ''\n"
    assert vsh("echo", "--xml", "<&>").out == "&lt;&amp;&gt;\n"
    assert vsh("echo", "--split", "a,b", "c,d").out == "a\nb\n c\nd\n\n"
    assert vsh("echo", "--split", ",,a").out == ",a\n\n"
    assert vsh("echo", "a", "", "b").out == "a  b\n"


def test_echo_err(vsh):
    res = vsh("echo", "--err", "a", "b")
    assert (res.out, res.err) == ("\n", "error: a b\n")


@pytest.mark.parametrize("a, b", [("shell", "xml"), ("shell", "split"), ("xml", "split")])
def test_echo_exclusive(vsh, a, b):
    res = vsh("echo", f"--{a}", f"--{b}", "x")
    assert (res.status, res.out) == (1, "\n")
    assert res.err == f"error: Options --{a} and --{b} are mutually exclusive\n"
