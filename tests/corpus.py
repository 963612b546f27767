"""Shared by tests/unit/test_libvirt_corpus.py and tests/integration/test_libvirt_corpus.py.

tests/data/libvirt-corpus/ holds domain XMLs written for libvirt's qemu driver (after the
examples of libvirt's domain XML documentation, virsh dumpxml and virt-install output).  The
first line of each says what vsh must do with it:

* ``<!-- expect: start -->``: define, and start (paused) on QEMU;
* ``<!-- expect: refused: TEXT -->``: define, but start refuses it with a message containing TEXT;
* ``<!-- expect: invalid: TEXT -->``: define refuses it (libvirt rejects it too), naming TEXT.

A refusal for a capability the host lacks names it on the second line (``host-lacks: PATH``):
where PATH exists, the XML must start.

Paths under /VSHTEST become files in a temporary directory (tests/argv_materials.py makes them).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import argv_materials as am  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "data" / "libvirt-corpus"
NAMES = sorted(p.stem for p in CORPUS.glob("*.xml"))


def expectation(name: str) -> tuple[str, str]:
    """("start", "") or ("refused"|"invalid", the text the error must contain)."""
    lines = (CORPUS / (name + ".xml")).read_text().splitlines()
    m = re.fullmatch(r"<!-- expect: (start|refused|invalid)(?:: (.*))? -->", lines[0].strip())
    assert m, "%s.xml: the first line must be <!-- expect: ... -->" % name
    lacks = re.search(r"host-lacks: (\S+)", lines[1])
    if lacks and Path(lacks.group(1)).exists():
        return "start", ""
    return m.group(1), (m.group(2) or "").strip()


def domain_name(name: str) -> str:
    """The short name a corpus XML defines (unix socket paths under the test's store stay short)."""
    return "lc%d" % NAMES.index(name)


def materialize(name: str, tmp: Path) -> Path:
    """The corpus XML with /VSHTEST → tmp, its name → domain_name(name) and its files created;
    returns the XML file's path."""
    text = (CORPUS / (name + ".xml")).read_text().replace(am.PLACEHOLDER, str(tmp))
    text = text.replace("<name>corpus-%s</name>" % name, "<name>%s</name>" % domain_name(name))
    for p in sorted(set(re.findall(re.escape(str(tmp)) + r"/[^'<\"]+", text))):
        if not Path(p).exists():
            am.create_file(Path(p))
    out = tmp / (name + ".xml")
    out.write_text(text)
    return out


#: Where tests/libvirt_dumps.py keeps what libvirtd 9.0's qemu driver wrote for each corpus XML.
LIBVIRT_DUMPS = Path(__file__).resolve().parent / "data" / "libvirt-dumps"


def for_libvirt(text: str) -> str:
    """The materialized XML as libvirtd is given it: vsh's default machine (q35) written out,
    since libvirt's own default is pc."""
    return re.sub(r"<type( arch='x86_64')?>hvm</type>", r"<type\1 machine='q35'>hvm</type>", text, count=1)


def normalize_dump(xml: str, name: str, tmp: Path, given: str) -> str:
    """A ``dumpxml --inactive`` with only what must differ between two definitions replaced: the
    temporary directory (back to /VSHTEST), the domain's name, its uuid, and the MACs the
    input (``given``) did not name (random on each define: numbered in document order)."""
    text = xml.replace(str(tmp), am.PLACEHOLDER).replace(
        "<name>%s</name>" % domain_name(name), "<name>corpus-%s</name>" % name)
    text = re.sub(r"<uuid>[0-9a-f-]+</uuid>", "<uuid>00000000-0000-4000-8000-000000000000</uuid>", text)
    fixed = {m.lower() for m in re.findall(r"address='([0-9a-fA-F:]{17})'", given)}
    n = iter(range(1, 256))
    return re.sub(r"<mac address='([0-9a-f:]{17})'/>",
                  lambda m: m.group(0) if m.group(1) in fixed else "<mac address='52:54:00:00:00:%02x'/>" % next(n),
                  text)
