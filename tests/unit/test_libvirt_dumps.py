"""define then ``dumpxml --inactive`` writes what libvirtd 9.0's qemu driver writes for the same
corpus XML (tests/data/libvirt-dumps/, captured by tests/libvirt_dumps.py from a real libvirtd),
after replacing only what differs between any two defines (corpus.normalize_dump: uuid, random
MACs, the temporary directory).  DIFFERENT lists the differences vsh keeps on purpose."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("corpus", Path(__file__).resolve().parents[1] / "corpus.py")
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)

DUMPS = sorted(p.stem for p in corpus.LIBVIRT_DUMPS.glob("*.xml"))

#: name → (why, what to take out of vsh's dump before comparing).
DIFFERENT = {
    # libvirt 9.0 predates the per-queue mapping and drops it; vsh drops nothing (start refuses it)
    "disk-iothreads-per-queue": (r"(?s)(<driver [^>]*)>\s*<iothreads>.*?</iothreads>\s*</driver>", r"\1/>"),
}


@pytest.mark.parametrize("name", DUMPS)
def test_define_writes_what_libvirtd_writes(name, vsh, vsh_env, tmp_path):
    path = corpus.materialize(name, tmp_path)
    given = corpus.for_libvirt(path.read_text())
    path.write_text(given)
    r = vsh("define", str(path))
    assert r.status == 0, r
    ours = corpus.normalize_dump(vsh("dumpxml", "--inactive", corpus.domain_name(name)).out, name, tmp_path, given)
    if name in DIFFERENT:
        pattern, repl = DIFFERENT[name]
        ours, n = re.subn(pattern, repl, ours)
        assert n, "the difference DIFFERENT names is gone: take %s out of it" % name
    assert ours == (corpus.LIBVIRT_DUMPS / (name + ".xml")).read_text()


def test_libvirtd_refuses_what_vsh_refuses():
    """The corpus XMLs libvirtd refused on define (NAME.err) are the ones vsh refuses too."""
    refused = sorted(p.stem for p in corpus.LIBVIRT_DUMPS.glob("*.err"))
    assert refused == sorted(n for n in corpus.NAMES if corpus.expectation(n)[0] == "invalid")
    for name in refused:            # in libvirt's words (libvirtd 9.0 hangs on a target like 'hdaxxx…')
        err = (corpus.LIBVIRT_DUMPS / (name + ".err")).read_text()
        assert corpus.expectation(name)[1] in err or "did not answer" in err, name
