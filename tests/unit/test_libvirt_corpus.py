"""Each XML of tests/data/libvirt-corpus/ defines as libvirt would (or is refused with libvirt's
message), and the argv vsh would run is built for the ones that start (tests/corpus.py).  The
integration test of the same name starts them on QEMU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from lxml import etree

_spec = importlib.util.spec_from_file_location("corpus", Path(__file__).resolve().parents[1] / "corpus.py")
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)


@pytest.mark.parametrize("name", corpus.NAMES)
def test_corpus_defines_and_builds(name, vsh, vsh_env, tmp_path):
    from vsh.core.errors import VshError
    from vsh.kvm.argv import RuntimePaths, build_argv
    from vsh.kvm.host.firmware import fill

    kind, text = corpus.expectation(name)
    path = corpus.materialize(name, tmp_path)
    r = vsh("define", str(path))
    if kind == "invalid":
        assert r.status != 0 and text in r.err, r
        return
    assert r.status == 0, r
    xml = vsh("dumpxml", corpus.domain_name(name)).out
    root = etree.fromstring(xml.encode())
    for disk in root.findall("devices/disk"):
        assert disk.find("driver").get("type") in ("raw", "qcow2")   # written, never probed
        assert disk.find("driver").get("cache") != "default"
    for c in root.findall("devices/controller"):
        assert c.get("index") is not None
    paths = RuntimePaths.for_rundir(str(tmp_path / "run"))
    machine = corpus.am.fake_host().machine(root.find("os/type").get("machine", "q35"))
    fill(root, machine.name, str(tmp_path / "nvram" / "VARS.fd"))     # as start does
    if kind == "start":
        assert build_argv(root, corpus.am.fake_host(), paths)[0].endswith("qemu-system-x86_64")
    else:
        with pytest.raises(VshError, match=None) as e:
            build_argv(root, corpus.am.fake_host(), paths)
        assert text in str(e.value)


def test_the_corpus_covers_each_outcome():
    kinds = {corpus.expectation(n)[0] for n in corpus.NAMES}
    assert kinds == {"start", "refused", "invalid"}
