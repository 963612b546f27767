"""Hostile domain XML fed to ``vsh define`` (issue 15 §5): a hypothesis strategy builds
definitions with deep nesting, huge attributes, entity and DTD tricks, NUL and control
characters, and bogus numbers and units.  Every run ends in a clean define or in
``error: …`` naming the cause: never a traceback, never a Python exception's name, never a
hang (each vsh has a hard timeout).

Bounded by default (~150 definitions); ``--long`` tries 3000.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys

import pytest
import vmguest as _vmguest      # tests/ is on the path (conftest.py's directory)
from hypothesis import HealthCheck, given, settings, strategies as st

HANG_S = 60     # a hang guard, not a speed check
_counter = itertools.count()

ENTITY_TRICKS = [
    # billion laughs
    '<!DOCTYPE domain [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>',
    # an external entity (a local file) and a network DTD
    '<!DOCTYPE domain [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE domain SYSTEM "http://127.0.0.1:9/dtd">',
    # parameter entities
    '<!DOCTYPE domain [<!ENTITY % p SYSTEM "file:///etc/hostname"> %p;]>',
    "",
]
ENTITY_USES = ["&d;", "&x;", "&undefined;", "&#0;", "&#x1b;", "&#xD800;", "&amp;", ""]

numbers = st.one_of(
    st.integers(min_value=-(10 ** 30), max_value=10 ** 30).map(str),
    st.sampled_from(["", " ", "0x10", "1e309", "-0", "NaN", "inf", "١٢٣", "12 ", "1_000", "+5",
                     "99999999999999999999999999", "0.5", "1,5"]),
    st.text(max_size=12),
)
units = st.one_of(st.sampled_from(["KiB", "b", "bytes", "KB", "k", "MiB", "G", "TiB", "EiB", "XB",
                                   "kib", "", " KiB"]), st.text(max_size=6))
hostile_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
control_text = st.text(alphabet=st.sampled_from([chr(c) for c in range(0, 32)] + ["\x7f", "\u202e",
                                                 "\u009b", "a", "<", "&", "'", '"']), max_size=20)


def xml_chars(text: str) -> str:
    """``text`` without what XML 1.0 cannot hold at all."""
    return "".join(ch for ch in text if ch in "\t\n\r" or (ord(ch) >= 32 and ch not in "\ufffe\uffff"))


def esc_attr(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")


@st.composite
def hostile_domain(draw) -> bytes:
    n = next(_counter)
    if draw(st.booleans()):     # well-formed XML: only the values are hostile (the model's checks)
        def val(strategy) -> str:
            return esc_attr(xml_chars(draw(strategy))).replace(">", "&gt;")
        depth = draw(st.sampled_from([0, 50, 250]))
        return f"""<domain type='qemu'>
  <name>{val(st.one_of(st.just(f"hx{n}"), hostile_text.map(lambda t: f"hx{n}{t}")))}</name>
  <memory unit='{val(st.one_of(st.just("KiB"), units))}'>{val(st.one_of(st.just("131072"), numbers))}</memory>
  <currentMemory>{val(st.one_of(st.just("65536"), numbers))}</currentMemory>
  <vcpu placement='{val(st.sampled_from(["static", "static", "auto", "x"]))}'>{val(st.one_of(st.just("1"), numbers))}</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>{"<a>" * depth}{"</a>" * depth}</devices>
</domain>""".encode()
    name = draw(st.one_of(st.just(f"hx{n}"), st.just(f"hx{n}"), hostile_text.map(lambda t: f"hx{n}{t}"),
                          control_text.map(lambda t: f"hx{n}{t}")))
    raw_name = draw(st.sampled_from([False, False, True]))      # raw: '<' and '&' reach the parser unescaped
    name_xml = name if raw_name else esc_attr(name).replace(">", "&gt;")
    depth = draw(st.sampled_from([0, 0, 5, 200, 5000]))
    nest = "<a>" * depth + "</a>" * depth
    attr = draw(st.sampled_from([0, 0, 10, 100_000, 2_000_000]))
    extra_attr = f" junk='{'x' * attr}'" if attr else ""
    prolog = draw(st.sampled_from(ENTITY_TRICKS + [""] * 4))
    use = draw(st.sampled_from(ENTITY_USES + [""] * 4))
    title = draw(st.one_of(st.just("t"), hostile_text, control_text))
    mem = draw(st.one_of(st.just("131072"), numbers))
    unit = draw(st.one_of(st.just("KiB"), units))
    vcpu = draw(st.one_of(st.just("1"), numbers))
    body = f"""{prolog}<domain type='qemu'{extra_attr}>
  <name>{name_xml}</name>
  <title>{esc_attr(title) if draw(st.booleans()) else title}</title>
  <description>{use}</description>
  <memory unit='{esc_attr(unit)}'>{esc_attr(mem)}</memory>
  <vcpu>{esc_attr(vcpu)}</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>{nest}</devices>
</domain>"""
    return body.encode("utf-8", errors="surrogatepass")


#: what a leaked Python exception looks like on stderr
PY_EXCEPTION = re.compile(r"Traceback|internal error: [A-Za-z_.]+(Error|Exception):")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostilexml")
    return base, _vmguest.store_env(base, base / "store")


def define(base, env, data: bytes) -> tuple[int, str, str]:
    path = base / "h.xml"
    path.write_bytes(data)
    proc = subprocess.run([sys.executable, "-m", "vsh", "define", str(path)], env=env,
                          capture_output=True, timeout=HANG_S)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


TRIED = {"defined": 0, "refused": 0}


def test_hostile_xml_never_breaks_define(env, long_mode):
    base, vsh_env = env

    @settings(max_examples=3000 if long_mode else 150, deadline=None, derandomize=not long_mode,
              suppress_health_check=list(HealthCheck), database=None)
    @given(hostile_domain())
    def one(data):
        rc, out, err = define(base, vsh_env, data)
        if rc == 0:
            assert out.startswith("Domain '") and not err, (out, err)
            TRIED["defined"] += 1
        else:
            assert err.startswith("error: "), (data[:300], err)
            assert not PY_EXCEPTION.search(err), (data[:300], err)
            TRIED["refused"] += 1
        assert "root:x:0:0" not in out + err       # no external entity was read
    one()
    listed = subprocess.run([sys.executable, "-m", "vsh", "list", "--all", "--name"], env=vsh_env,
                            capture_output=True, text=True, timeout=HANG_S)
    assert listed.returncode == 0, listed.stderr
    print(f"\nhostile XML at define: tried {TRIED['defined'] + TRIED['refused']}, held all "
          f"({TRIED['defined']} defined, {TRIED['refused']} refused with error: …)")
