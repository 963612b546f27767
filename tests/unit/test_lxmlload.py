"""vsh.core.lxmlload: lxml.etree without typing/inspect/gzip, and nothing of lxml lost.

Each check runs in a fresh interpreter: what other tests imported must not count.
"""

from __future__ import annotations

import json
import subprocess
import sys


def _run(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_etree_loads_without_typing_inspect_gzip_and_later_imports_get_the_real_modules(tmp_path):
    out = _run(f"""
import json, sys
from vsh.core.lxmlload import etree
absent = [m for m in ("typing", "inspect", "gzip") if m not in sys.modules]
root = etree.fromstring("<domain><name>a</name></domain>")
tree = etree.ElementTree(root)

class Target:                       # a parser target: lxml asks inspect.getfullargspec about start()
    def __init__(self): self.tags = []
    def start(self, tag, attrib): self.tags.append(tag)
    def end(self, tag): pass
    def close(self): return self.tags
tags = etree.fromstring("<a><b/></a>", etree.XMLParser(target=Target()))

path = {str(tmp_path / 'out.xml.gz')!r}
tree.write(path, compression=6)       # lxml's GzipFile
import gzip, inspect, typing
print(json.dumps({{"absent": absent, "tags": tags, "gz": gzip.open(path).read().decode(),
                  "typing": typing.Generic.__module__, "any": hasattr(typing, "Any"),
                  "inspect": hasattr(inspect, "signature"), "subscript": etree.ElementTree[int] is not None}}))
""")
    assert out["absent"] == ["typing", "inspect", "gzip"]
    assert out["tags"] == ["a", "b"]
    assert out["gz"] == "<domain><name>a</name></domain>"
    assert out["typing"] == "typing" and out["any"] and out["inspect"] and out["subscript"]


def test_a_module_already_imported_is_never_shadowed():
    out = _run("""
import json, sys, typing
real = typing.Generic
from vsh.core.lxmlload import etree
print(json.dumps({"same": sys.modules["typing"].Generic is real, "inspect": "inspect" not in sys.modules}))
""")
    assert out == {"same": True, "inspect": True}


def test_with_another_thread_running_lxml_is_imported_the_ordinary_way():
    out = _run("""
import json, sys, threading
stop = threading.Event()
t = threading.Thread(target=stop.wait, daemon=True)
t.start()
from vsh.core.lxmlload import etree
stop.set()
print(json.dumps({"typing": "typing" in sys.modules and hasattr(sys.modules["typing"], "Any"),
                  "inspect": "inspect" in sys.modules}))
""")
    assert out == {"typing": True, "inspect": True}
