"""define → dumpxml: golden files, unknown content survives, libvirt's output style, and
libvirt's RelaxNG schema for everything in tests/data and everything dumpxml writes.

Regenerate the golden ``NAME-out.xml`` files with ``VSH_REGEN_GOLDEN=1 pytest tests/unit/test_domain_xml.py``
(and read the diff before committing it).
"""

import os
import re
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
GOLDEN = sorted((DATA / "domain").glob("*-in.xml"))
SCHEMA = Path("/usr/share/libvirt/schemas/domain.rng")


@pytest.fixture(scope="module")
def relaxng():
    if not SCHEMA.exists():
        pytest.skip("libvirt's domain.rng is not installed (Debian package libvirt0)")
    from lxml import etree

    return etree.RelaxNG(etree.parse(str(SCHEMA)))


def check_schema(relaxng, text: str, what: str) -> None:
    from lxml import etree

    doc = etree.fromstring(text.encode())
    if not relaxng.validate(doc):
        errors = "\n".join(f"  line {e.line}: {e.message}" for e in relaxng.error_log)
        pytest.fail(f"{what} does not validate against domain.rng:\n{errors}")


# Files that are not libvirt-valid on purpose; a file can also say so itself with the
# marker below in a comment near its top.
SCHEMA_EXEMPT = {
    "golden/foreign-in.xml": "unknown elements and attributes on purpose (they must survive a round trip)",
    "golden/foreign-out.xml": "the round trip of golden/foreign-in.xml",
}
SCHEMA_MARKER = b"vsh-test: not-schema-valid"


def domain_files() -> list[Path]:
    out = []
    for path in sorted(DATA.rglob("*.xml")):
        head = path.read_bytes()[:4096]
        if re.search(rb"<domain[\s>]", head):
            out.append(path)
    return out


def skip_exempt(path: Path) -> None:
    rel = str(path.relative_to(DATA))
    if rel in SCHEMA_EXEMPT:
        pytest.skip(SCHEMA_EXEMPT[rel])
    if SCHEMA_MARKER in path.read_bytes()[:4096]:
        pytest.skip("marked not-schema-valid")


def dumpxml(vsh, path: Path) -> str:
    res = vsh("define", str(path))
    assert res.status == 0, res
    name = re.search(r"Domain '(.*)' defined", res.out).group(1)
    res = vsh("dumpxml", name)
    assert res.status == 0 and res.out.endswith("\n\n"), res
    return res.out[:-1]


# -- golden pairs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("src", GOLDEN, ids=[p.name[:-7] for p in GOLDEN])
def test_golden(vsh, src):
    want_path = src.with_name(src.name.replace("-in.xml", "-out.xml"))
    got = dumpxml(vsh, src)
    if os.environ.get("VSH_REGEN_GOLDEN"):
        want_path.write_text(got)
    assert want_path.exists(), f"missing {want_path.name}: run with VSH_REGEN_GOLDEN=1"
    assert got == want_path.read_text()


@pytest.mark.parametrize("src", GOLDEN, ids=[p.name[:-7] for p in GOLDEN])
def test_golden_output_is_a_fixed_point(vsh, vsh_env, src):
    out = src.with_name(src.name.replace("-in.xml", "-out.xml"))
    if not out.exists():
        pytest.skip("no golden output yet")
    first = dumpxml(vsh, out)
    assert first == out.read_text()
    copy = vsh_env.tmp / "again.xml"
    copy.write_text(first)
    assert dumpxml(vsh, copy) == first  # redefining the output changes nothing


def test_golden_files_exist():
    assert len(GOLDEN) >= 3


# -- the schema ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", domain_files(), ids=lambda p: str(p.relative_to(DATA)))
def test_data_validates(relaxng, path):
    skip_exempt(path)
    check_schema(relaxng, path.read_text(), str(path.relative_to(DATA)))


@pytest.mark.parametrize("path", domain_files(), ids=lambda p: str(p.relative_to(DATA)))
def test_dumpxml_validates(vsh, relaxng, path):
    from lxml import etree

    skip_exempt(path)
    root = etree.fromstring(path.read_bytes())
    if root.tag != "domain" or root.get("type") not in ("kvm", "qemu"):
        pytest.skip("not a domain vsh defines")
    check_schema(relaxng, dumpxml(vsh, path), f"dumpxml of {path.name}")


def test_made_up_domain_validates(vsh, relaxng, vsh_env, make_xml):
    devices = ("<disk type='file' device='disk'><source file='/tmp/a.img'/><target dev='vda'/></disk>"
               "<interface type='network'><source network='default'/></interface>")
    path = vsh_env.tmp / "made.xml"
    path.write_text(make_xml("made", devices=devices, title="made up"))
    check_schema(relaxng, dumpxml(vsh, path), "dumpxml of a generated domain")


# -- unknown content and output style -------------------------------------------------------------------

UNKNOWN = """<domain type='qemu' futureattr='1'>
  <name>keep</name>
  <uuid>0b9bb7b7-36d3-4d5e-a9e1-6e4e2b0a3a01</uuid>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64'>hvm</type><futureos mode="x"/></os>
  <metadata><my:thing xmlns:my="http://example.com/my" a="1">text</my:thing></metadata>
  <futurething foo="bar"><inner deep="yes">content</inner></futurething>
  <devices>
    <disk type='file' device='disk' futuredisk='z'>
      <source file='/tmp/a.img'><futuresource/></source>
      <target dev='vda' bus='virtio'/>
    </disk>
    <futuredevice kind='new'/>
  </devices>
</domain>
"""


def test_unknown_elements_and_attributes_survive(vsh, vsh_env):
    from lxml import etree

    path = vsh_env.tmp / "keep.xml"
    path.write_text(UNKNOWN)
    out = dumpxml(vsh, path)
    root = etree.fromstring(out.encode())
    assert root.get("futureattr") == "1"
    assert root.find("os/futureos").get("mode") == "x"
    thing = root.find("metadata/{http://example.com/my}thing")
    assert thing is not None and thing.get("a") == "1" and thing.text == "text"
    assert root.find("futurething").get("foo") == "bar"
    assert root.find("futurething/inner").text == "content"
    assert root.find("devices/disk").get("futuredisk") == "z"
    assert root.find("devices/disk/source/futuresource") is not None
    assert root.find("devices/futuredevice").get("kind") == "new"
    # and a second round trip is stable
    path.write_text(out)
    vsh("undefine", "keep")
    assert dumpxml(vsh, path) == out


def test_output_style(vsh, vsh_env):
    path = vsh_env.tmp / "style.xml"
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n' + UNKNOWN.replace("'", '"'))
    out = dumpxml(vsh, path)
    assert not out.startswith("<?xml")
    assert out.startswith("<domain type='qemu'")
    assert out.endswith("</domain>\n")
    assert '"' not in out  # single-quoted attributes throughout
    for line in out.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 2 == 0, line
        assert "\t" not in line
    assert "\n  <name>keep</name>\n" in out
    # libvirt writes the format it reads a disk with: raw
    assert ("\n    <disk type='file' device='disk' futuredisk='z'>\n      <driver name='qemu' type='raw'/>\n"
            "      <source file='/tmp/a.img'>\n") in out


def test_attribute_escaping(vsh, vsh_env, make_xml):
    from lxml import etree

    path = vsh_env.tmp / "esc.xml"
    path.write_text(make_xml("esc", title="a &lt;b&gt; &amp; &quot;c&quot; 'd'",
                             devices="<disk type='file' device='disk'><source file=\"/tmp/it's &amp; &lt;x&gt;.img\"/>"
                                     "<target dev='vda'/></disk>"))
    out = dumpxml(vsh, path)
    root = etree.fromstring(out.encode())
    assert root.findtext("title") == "a <b> & \"c\" 'd'"
    assert root.find("devices/disk/source").get("file") == "/tmp/it's & <x>.img"
    assert "file='/tmp/it&apos;s &amp; &lt;x&gt;.img'" in out


def test_defaults_filled(vsh, vsh_env):
    path = vsh_env.tmp / "bare.xml"
    path.write_text("<domain type='qemu'><name>bare</name><memory>65536</memory>"
                    "<devices><interface type='user'/><disk type='file'><source file='/x.img'/>"
                    "<target dev='sda'/></disk></devices></domain>")
    from lxml import etree

    root = etree.fromstring(dumpxml(vsh, path).encode())
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", root.findtext("uuid"))
    assert root.find("memory").get("unit") == "KiB" and root.findtext("memory") == "65536"
    assert root.findtext("currentMemory") == "65536"
    assert root.find("vcpu").get("placement") == "static" and root.findtext("vcpu") == "1"
    assert root.findtext("os/type") == "hvm"
    assert [root.findtext(k) for k in ("on_poweroff", "on_reboot", "on_crash")] == ["destroy", "restart", "destroy"]
    assert re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", root.find("devices/interface/mac").get("address"))
    disk = root.find("devices/disk")
    assert (disk.get("device"), disk.find("target").get("bus")) == ("disk", "scsi")


def test_dumpxml_inactive_and_xpath(vsh, define):
    define("x1")
    assert vsh("dumpxml", "--inactive", "x1").out == vsh("dumpxml", "x1").out
    assert vsh("dumpxml", "x1", "--xpath", "/domain/name").out == "<name>x1</name>\n\n"
    res = vsh("dumpxml", "x1", "--xpath", "string(/domain/name)")          # virsh prints node sets only
    assert res.status == 1 and res.err == "error: internal error: Incorrect xpath 'string(/domain/name)'\n"
    assert vsh("dumpxml", "x1", "--xpath", "//memory/@unit").out == ' unit="KiB"\n\n'
    assert vsh("dumpxml", "x1", "--xpath", "/domain/name/text()").out == "x1\n\n"
    res = vsh("dumpxml", "x1", "--xpath", "/domain/name | /domain/vcpu", "--wrap")
    assert res.out == '<nodes>\n  <name>x1</name>\n  <vcpu placement="static">1</vcpu>\n</nodes>\n\n'
    machine = vsh("dumpxml", "x1", "--xpath", "//os/type/@machine").out.strip()     # machine="pc-..."
    assert vsh("dumpxml", "x1", "--xpath", "//memory/@unit | /domain/os", "--wrap").out == (
        f'<nodes unit="KiB">\n  <os>\n    <type arch="x86_64" {machine}>hvm</type>\n    <boot dev="hd"/>\n  </os>\n'
        '</nodes>\n\n')
    assert vsh("dumpxml", "x1", "--xpath", "/domain/os").out == (
        f'<os>\n  <type arch="x86_64" {machine}>hvm</type>\n  <boot dev="hd"/>\n</os>\n\n')
    assert vsh("dumpxml", "x1", "--xpath", "//nothing", "--wrap").out == "<nodes/>\n\n"
    res = vsh("dumpxml", "x1", "--xpath", "///[")
    assert res.status == 1 and res.err.startswith("error: ")
