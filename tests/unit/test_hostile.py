"""Hostile and broken input: a clear ``error:``, exit 1, and a store left exactly as it was."""

import pytest

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<domain type='qemu'><name>&lol9;</name><memory>1024</memory></domain>
"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE domain [<!ENTITY passwd SYSTEM "file:///etc/passwd">]>
<domain type='qemu'><name>x</name><description>&passwd;</description><memory>1024</memory></domain>
"""

XXE_PARAM = """<!DOCTYPE domain [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<domain type='qemu'><name>x</name><memory>1024</memory></domain>
"""

EXTERNAL_DTD = """<!DOCTYPE domain SYSTEM "file:///etc/passwd">
<domain type='qemu'><name>x</name><memory>1024</memory></domain>
"""


@pytest.fixture
def attempt(vsh, vsh_env, store_tree):
    """Define from raw bytes; assert a clean failure and an unchanged store; return stderr."""

    def run(data: bytes | str, name: str = "hostile.xml") -> str:
        path = vsh_env.tmp / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        before = store_tree()
        res = vsh("define", name)  # relative to the test's directory, as a person types it
        assert res.status == 1, res
        assert res.out == "\n"
        assert res.err.startswith("error: ")
        assert "Traceback" not in res.err and "internal error" not in res.err, res.err
        assert store_tree() == before, "a failed define changed the store"
        return res.err

    return run


def first_lines(err: str, n: int = 2) -> list[str]:
    return err.splitlines()[:n]


@pytest.fixture
def existing(define):
    """A store that already holds one domain, so that 'unchanged' means something."""
    define("existing", uuid="0d6d1d8e-0000-4000-8000-000000000001")


# -- XML attacks and broken XML --------------------------------------------------------------------------


def test_billion_laughs(attempt, existing):
    err = attempt(BILLION_LAUGHS)
    assert "Failed to define domain from" in err
    assert "DTDs and entity declarations are not allowed" in err
    assert "lollol" not in err


@pytest.mark.parametrize("doc", [XXE, XXE_PARAM, EXTERNAL_DTD], ids=["entity", "parameter-entity", "external-dtd"])
def test_external_entities(attempt, existing, doc):
    err = attempt(doc)
    assert "not allowed" in err
    assert "root:" not in err  # nothing of /etc/passwd leaks


def test_undeclared_entity(attempt, existing):
    err = attempt("<domain type='qemu'><name>&passwd;</name><memory>1</memory></domain>")
    assert "Entity 'passwd' not defined" in err


def test_huge_file(attempt, existing, vsh_env):
    path = vsh_env.tmp / "huge.xml"
    with open(path, "wb") as fh:
        fh.write(b"<domain type='qemu'><name>huge</name><description>")
        chunk = b"x" * (1024 * 1024)
        for _ in range(50):
            fh.write(chunk)
        fh.write(b"</description><memory>1024</memory></domain>")
    err = attempt(path.read_bytes(), "huge.xml")
    assert "too large" in err
    assert len(err) < 1000


def test_huge_string_is_refused_by_the_parser():
    from vsh.core.errors import XMLError
    from vsh.core.xml import MAX_XML_BYTES, parse

    with pytest.raises(XMLError) as exc:
        parse("<domain>" + "x" * (MAX_XML_BYTES + 1) + "</domain>")
    assert "too large" in str(exc.value)


def test_invalid_utf8(attempt, existing):
    err = attempt(b"<domain type='qemu'>\n  <name>bad\xff\xfe</name>\n</domain>\n")
    assert first_lines(err) == ["error: Failed to define domain from " + err.split("from ", 1)[1].split("\n")[0],
                                "error: XML error: (domain_definition):2:12: input is not valid UTF-8 (byte 0xff)"]


def test_utf16_is_refused(attempt, existing):
    err = attempt("<domain type='qemu'><name>u</name><memory>1</memory></domain>".encode("utf-16"))
    assert "UTF-8" in err


def test_malformed_xml_line_column_caret(attempt, existing):
    err = attempt("<domain type='qemu'>\n  <name>x</name>\n  <memory>1024</memry>\n</domain>\n", "mismatched.xml")
    assert err.endswith("error: Failed to define domain from mismatched.xml\n"
                        "error: XML error: (domain_definition):3:23: Opening and ending tag mismatch: memory line 3 and memry\n"
                        "  <memory>1024</memry>\n"
                        "----------------------^\n") or err.splitlines()[1:] == [
        "error: XML error: (domain_definition):3:23: Opening and ending tag mismatch: memory line 3 and memry",
        "  <memory>1024</memry>",
        "----------------------^"]


def test_not_xml(attempt, existing):
    err = attempt("this is not xml")
    assert err.splitlines()[1:] == ["error: XML error: (domain_definition):1:1: Start tag expected, '<' not found",
                                    "this is not xml", "^"]


def test_empty_file(attempt, existing):
    err = attempt("")
    assert err.splitlines()[1:] == ["error: XML error: (domain_definition):1: Document is empty", "(null)", "^"]


def test_truncated(attempt, existing):
    err = attempt("<domain type='qemu'>\n<name>a</name>")
    assert "Premature end of data in tag domain line 1" in err


def test_deep_nesting(attempt, existing):
    err = attempt("<domain type='qemu'><name>d</name>" + "<a>" * 5000 + "</a>" * 5000 + "</domain>")
    assert "depth" in err.lower()
    assert max(len(line) for line in err.splitlines()) < 400  # the source line is cut to a window


def test_wrong_root(attempt, existing):
    err = attempt("<foo/>", "wrongroot.xml")
    assert err == ("error: Failed to define domain from wrongroot.xml\n"
                   "error: XML error: expecting root element of 'domain', not 'foo'\n")


def test_nul_byte(attempt, existing):
    err = attempt(b"<domain type='qemu'><name>a\x00b</name><memory>1</memory></domain>")
    assert "XML error" in err


def test_nul_character_reference(attempt, existing):
    err = attempt("<domain type='qemu'><name>a&#0;b</name><memory>1</memory></domain>")
    assert "XML error" in err


def test_define_a_directory(vsh, vsh_env):
    res = vsh("define", str(vsh_env.tmp))
    assert (res.status, res.err) == (1, f"error: Failed to open file '{vsh_env.tmp}': Is a directory\n")


# -- bad names --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, message", [
    ("a/b", "cannot contain '/'"),
    ("../../etc/evil", "cannot contain '/'"),
    ("..", "cannot start with '.'"),
    (".hidden", "cannot start with '.'"),
    ("a&#9;b", "control characters"),
    ("a&#10;b", "control characters"),
    ("a&#x7f;b", "control characters"),
    ("a&#x1b;[31mred", "invalid xmlChar value 27"),  # not even XML 1.0
    ("x" * 256, "too long"),
    ("é" * 128, "too long"),
    ("", "missing name information"),
    ("   ", "blank"),
])
def test_bad_names(attempt, existing, make_xml, name, message):
    err = attempt(make_xml(name))
    assert err.startswith("error: Failed to define domain from ")
    assert message in err
    assert "\x1b" not in err


def test_missing_name(attempt, existing):
    err = attempt("<domain type='qemu'><memory>1024</memory></domain>", "noname.xml")
    assert err == "error: Failed to define domain from noname.xml\nerror: missing name information\n"


def test_longest_name_is_fine(vsh, define):
    from vsh.core.store import MAX_STORED_NAME

    define("n" * MAX_STORED_NAME)
    assert vsh("domstate", "n" * MAX_STORED_NAME).out == "shut off\n\n"


@pytest.mark.parametrize("size", [251, 255])
def test_names_too_long_for_the_store(attempt, existing, make_xml, size):
    err = attempt(make_xml("n" * size))
    assert f"name is too long ({size} bytes)" in err


@pytest.mark.parametrize("ident", ["../existing", "existing/..", ".", "..", "", "a\x00b", "x" * 300, "/etc/passwd"])
def test_lookups_with_hostile_names(vsh, existing, store_tree, ident):
    before = store_tree()
    res = vsh("dominfo", ident)
    assert res.status == 1
    assert res.err.startswith("error: ")
    assert "Traceback" not in res.err and "internal error" not in res.err
    assert store_tree() == before


@pytest.mark.parametrize("new", ["../evil", "a/b", ".hidden", "..", "x" * 256, "a\tb", ""])
def test_rename_to_hostile_names(vsh, existing, store_tree, vsh_env, new):
    before = store_tree()
    res = vsh("domrename", "existing", new)
    assert res.status == 1
    assert res.err.startswith("error: ")
    assert "internal error" not in res.err
    assert store_tree() == before
    assert not (vsh_env.tmp / "evil.xml").exists() and not (vsh_env.store / "config" / "evil.xml").exists()


def test_undefine_hostile_name(vsh, existing, store_tree):
    before = store_tree()
    assert vsh("undefine", "../domains/existing").status == 1
    assert store_tree() == before


# -- semantic validation ---------------------------------------------------------------------------------


UUID1 = "0d6d1d8e-0000-4000-8000-000000000001"
UUID2 = "0d6d1d8e-0000-4000-8000-000000000002"


def test_duplicate_name_different_uuid(vsh, vsh_env, existing, make_xml):
    path = vsh_env.tmp / "dup.xml"
    path.write_text(make_xml("existing", uuid=UUID2))
    before = (vsh_env.domains / "existing.xml").read_bytes()
    res = vsh("define", str(path))
    assert res.status == 1
    assert res.err == (f"error: Failed to define domain from {path}\n"
                       f"error: domain 'existing' already exists with uuid {UUID1}\n")
    assert (vsh_env.domains / "existing.xml").read_bytes() == before


def test_duplicate_uuid_different_name(vsh, vsh_env, existing, make_xml):
    path = vsh_env.tmp / "dup.xml"
    path.write_text(make_xml("other", uuid=UUID1))
    res = vsh("define", str(path))
    assert res.status == 1
    assert res.err == (f"error: Failed to define domain from {path}\n"
                       f"error: domain 'existing' is already defined with uuid {UUID1}\n")
    assert sorted(p.name for p in vsh_env.domains.iterdir()) == ["existing.xml"]


def test_redefine_same_name_and_uuid_updates(vsh, vsh_env, existing, make_xml):
    path = vsh_env.tmp / "same.xml"
    path.write_text(make_xml("existing", uuid=UUID1, title="new title"))
    res = vsh("define", str(path))
    assert (res.status, res.out) == (0, f"Domain 'existing' defined from {path}\n\n")
    assert vsh("desc", "existing", "--title").out == "new title\n"


DISK = "<disk type='file' device='disk'><source file='/tmp/{0}.img'/><target dev='{1}'/></disk>"


@pytest.mark.parametrize("kw, message", [
    ({"devices": DISK.format("a", "vda") + DISK.format("b", "vda")}, "target 'vda' duplicated for disk sources"),
    ({"memory": "<memory unit='furlongs'>1</memory>"}, "invalid unit 'furlongs' for memory"),
    ({"memory": "<memory unit='KiB'>sixty</memory>"}, "invalid value 'sixty' for memory"),
    ({"memory": "<memory unit='KiB'>-5</memory>"}, "invalid value '-5' for memory"),
    ({"memory": "<memory unit='KiB'>0</memory>"}, "memory size must be greater than zero"),
    ({"memory": ""}, "missing memory element"),
    ({"vcpu": "<vcpu current='3'>2</vcpu>"}, "current vcpus (3) cannot exceed maximum vcpus (2)"),
    ({"vcpu": "<vcpu>0</vcpu>"}, "vcpu count must be at least 1"),
    ({"vcpu": "<vcpu>two</vcpu>"}, "invalid value 'two'"),
    ({"memory": "<memory unit='MiB'>64</memory><currentMemory unit='MiB'>128</currentMemory>"},
     "currentMemory (131072 KiB) cannot be larger than memory (65536 KiB)"),
    ({"uuid": "not-a-uuid"}, "malformed uuid element: 'not-a-uuid'"),
    ({"dtype": "xen"}, "unsupported domain type 'xen'"),
    ({"devices": "<interface type='user'><mac address='01:00:5e:00:00:01'/></interface>"}, "multicast"),
    ({"devices": "<interface type='user'><mac address='zz:00:5e:00:00:01'/></interface>"},
     "unable to parse mac address"),
])
def test_semantic_errors(attempt, existing, make_xml, kw, message):
    xml = make_xml("semantic", **kw)
    err = attempt(xml)
    lines = err.splitlines()
    assert lines[0].startswith("error: Failed to define domain from ")
    assert message in lines[1], err


def test_failed_define_into_an_empty_store_creates_nothing(vsh, vsh_env, make_xml):
    path = vsh_env.tmp / "bad.xml"
    path.write_text(make_xml("a/b"))
    assert vsh("define", str(path)).status == 1
    assert not vsh_env.store.exists() or not list(vsh_env.store.rglob("*.xml"))


def test_store_permissions(define, vsh_env):
    define("vm1")
    import stat

    for path in [vsh_env.store / "config", vsh_env.domains]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert stat.S_IMODE((vsh_env.domains / "vm1.xml").stat().st_mode) == 0o600
    assert not [p for p in vsh_env.domains.iterdir() if ".tmp" in p.name]
