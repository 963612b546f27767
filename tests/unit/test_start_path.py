"""What ``vsh start`` pays for before it spawns the supervisor (issue 3 §7).

The modules on the start path, and the host probe answered from its cache, must
not pull in the heavy standard library (asyncio, subprocess, tempfile, pathlib,
urllib.request and http.client that xml.sax.saxutils drags in, email, ssl) or
qemu.qmp: those belong to the supervisor or to a real probe.  Each check runs in a
fresh interpreter, so what other tests imported does not count.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("asyncio", "qemu", "subprocess", "tempfile", "pathlib", "urllib.request", "http",
         "http.client", "email", "ssl", "xml.sax", "xml.sax.saxutils", "cffi", "lxml")


def _new_modules(code: str, setup: str = "") -> list[str]:
    """The modules ``code`` imports in a fresh interpreter (after ``setup``)."""
    script = (f"import json, sys\n{setup}\nbefore = set(sys.modules)\n{code}\n"
              "print(json.dumps(sorted(set(sys.modules) - before)))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_start_path_modules_are_light():
    new = _new_modules("import vsh.kvm.host, vsh.kvm.client, vsh.kvm.argv, vsh.commands.lifecycle")
    assert [m for m in new if m in HEAVY or m.split(".")[0] in ("asyncio", "qemu", "email", "http")] == []


def test_probe_cache_hit_imports_nothing_heavy(tmp_path):
    from vsh.kvm import host

    qemu = host.find_qemu()
    key = host.cache_key(qemu)
    data = {"qemu": {"version": "7.2.0", "version_tuple": [7, 2, 0], "package": "", "machines": [
        {"name": "pc-i440fx-7.2", "alias": "pc", "is_default": True, "cpu_max": 255, "deprecated": False}],
        "cpu_models": []}, "accelerators": ["tcg"], "tcg_usable": True,
        "kvm": {"present": False, "reason": "test"}}
    (tmp_path / host.CACHE_FILE).write_text(json.dumps({"key": key, "data": data}))
    new = _new_modules(f"h = host.probe(cache_dir={str(tmp_path)!r})\n"
                       "assert h.from_cache and h.machine('pc') and not h.kvm.usable, h",
                       setup="from vsh.kvm import host\nhost.probe  # its module, loaded on first use")
    assert [m for m in new if not m.startswith("encodings")] == []
