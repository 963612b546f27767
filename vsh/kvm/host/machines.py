"""Machine type aliases (``pc`` → ``pc-i440fx-7.2``, ``q35`` → ``pc-q35-7.2``), read from
``qemu-system-x86_64 -machine help`` and cached per QEMU binary: libvirt writes the canonical
machine type into a domain's definition on define, and so does vsh."""

from __future__ import annotations

import json
import os
import re

#: The cache file in vsh's cache directory.
CACHE_FILE = "machine-aliases.json"

_ALIAS = re.compile(r"^(\S+)\s.*\(alias of (\S+)\)\s*$")


def machine_aliases(qemu: str | None = None, cache_dir: str | None = None) -> dict[str, str]:
    """{alias: canonical machine type} of this host's QEMU ({} without a QEMU that answers)."""
    from vsh.kvm.host.cache import default_cache_dir
    from vsh.kvm.host.qemu import find_qemu

    qemu = qemu or find_qemu()
    if qemu is None:
        return {}
    try:
        st = os.stat(qemu)
    except OSError:
        return {}
    key = [qemu, st.st_mtime_ns, st.st_size]
    path = os.path.join(cache_dir or default_cache_dir(), CACHE_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("key") == key:
            return dict(data["aliases"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    import subprocess       # only on a cache miss: define's hot path reads the cache

    try:
        proc = subprocess.run([qemu, "-machine", "help"], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if proc.returncode != 0:
        return {}
    aliases = {m.group(1): m.group(2) for m in map(_ALIAS.match, proc.stdout.splitlines()) if m}
    try:
        from vsh.core.store import atomic_write, ensure_private_dir

        ensure_private_dir(os.path.dirname(path))
        atomic_write(path, json.dumps({"key": key, "aliases": aliases}), durable=False)
    except Exception:   # noqa: BLE001 - a cache that cannot be written is only slower
        pass
    return aliases


def canonical_machine(name: str | None) -> str | None:
    """The machine type ``name`` stands for (itself when it is no alias, or QEMU is missing)."""
    if not name:
        return name
    return machine_aliases().get(name, name)
