"""Escaping untrusted text before a person sees it: guest strings, file names, guest file contents.

Everything a guest (or a hostile image) controls is passed through
:func:`escape` before it reaches a terminal or an XML report, so no
terminal escape sequence, bidirectional override or invalid byte gets out.
"""

from __future__ import annotations

import re

_CTRL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def escape(text, keep_newlines: bool = False, unambiguous: bool = False) -> str:
    """Make a guest string safe to print: control characters become \\xNN (or \\n, \\t ...).

    Terminal escape sequences, bidirectional overrides and C1 controls are all
    neutralised.  *keep_newlines* keeps newlines and tabs (file contents).
    With *unambiguous*, backslashes are doubled too, so the
    original can be recovered.
    Bytes are decoded as UTF-8 with invalid bytes shown as \\xNN.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "surrogateescape")
    text = str(text)
    if unambiguous:
        text = text.replace("\\", "\\\\")

    def sub(m):
        c = m.group(0)
        if keep_newlines and c in "\n\t":
            return c
        if c in _NAMED:
            return _NAMED[c]
        o = ord(c)
        if 0xDC80 <= o <= 0xDCFF:  # an undecodable byte
            return f"\\x{o - 0xDC00:02x}"
        return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"

    return _CTRL.sub(sub, text)
