"""QEMU's option syntax, read back (the argv builder writes it; the supervisor reads argv
from a running QEMU). Standalone: the supervisor imports it without the builder."""

from __future__ import annotations


def split_opts(text: str) -> list[str]:
    """QEMU's ``a=b,c=d`` option syntax split at single commas (``,,`` is a literal comma)."""
    parts, cur, i = [], [], 0
    while i < len(text):
        if text[i] == ",":
            if text[i + 1:i + 2] == ",":
                cur.append(",")
                i += 2
                continue
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(text[i])
        i += 1
    parts.append("".join(cur))
    return parts
