"""The libvirt corpus on QEMU: each XML of tests/data/libvirt-corpus/ is defined and started
with ``start --paused`` through the real supervisor and QEMU (no guest code runs), then
destroyed; the ones expected to be refused must fail with their reason and leave nothing
running.  The summary (started / refused by reason / failed) is printed at the end
(``pytest -s``)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("corpus", Path(__file__).resolve().parents[1] / "corpus.py")
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)

pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or not corpus.am.have_qemu_img(),
                                 reason="needs qemu-system-x86_64 and qemu-img")]

OUTCOMES: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def summary():
    yield
    started = sorted(n for n, o in OUTCOMES.items() if o == "started")
    refused = {n: o for n, o in OUTCOMES.items() if o.startswith("refused")}
    failed = {n: o for n, o in OUTCOMES.items() if o.startswith("failed")}
    print("\nlibvirt corpus: %d XMLs, %d start, %d refused, %d failed"
          % (len(OUTCOMES), len(started), len(refused), len(failed)))
    for n, o in sorted({**refused, **failed}.items()):
        print("  %s: %s" % (n, o))


@pytest.mark.parametrize("name", corpus.NAMES)
def test_corpus_starts_paused_on_qemu(name, vsh, vsh_env, tmp_path):
    kind, text = corpus.expectation(name)
    path = corpus.materialize(name, tmp_path)
    dom = corpus.domain_name(name)
    r = vsh("define", str(path))
    if kind == "invalid":
        OUTCOMES[name] = "refused at define: " + r.err.strip().splitlines()[-1] if r.status else "failed: defined"
        assert r.status != 0 and text in r.err, r
        return
    assert r.status == 0, r
    r = vsh("start", dom, "--paused")
    try:
        if r.status == 0:
            OUTCOMES[name] = "started"
            assert vsh("domstate", dom).out.strip() == "paused"
        else:
            why = r.err.strip().splitlines()[-1] if r.err.strip() else "no message"
            OUTCOMES[name] = ("refused: " if kind == "refused" and text in r.err else "failed: ") + why
    finally:
        if r.status == 0:
            assert vsh("destroy", dom).status == 0
    if kind == "start":
        assert r.status == 0, r
    else:
        assert r.status != 0 and text in r.err, r
        assert vsh("domstate", dom).out.strip() == "shut off"
