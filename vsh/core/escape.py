"""Untrusted text before a person sees it: the one rule for what may reach a terminal.

Everything a user, a guest, a hostile image or a file controls (domain names, titles and
descriptions, snapshot descriptions, guest strings, file names and contents, DHCP host
names) is passed through :func:`escape` before it reaches a terminal, so no terminal
escape sequence, bidirectional override or invalid byte gets out. ``--json`` output keeps
the raw strings (JSON escapes them itself).

The characters this rule calls unsafe (:func:`unsafe_char`) are also the ones no name of a
stored object may hold (:mod:`vsh.core.names`): C0 and C1 controls and DEL, the Unicode
line and paragraph separators, the bidirectional embeddings, overrides and isolates
(U+202A..U+202E, U+2066..U+2069) and lone surrogates (undecodable bytes).

Light on purpose (no ``re``): ``list`` and ``dominfo`` escape every name they print.
"""

from __future__ import annotations

_UNSAFE_RANGES = ((0x00, 0x1F), (0x7F, 0x9F), (0x2028, 0x2029), (0x202A, 0x202E), (0x2066, 0x2069),
                  (0xD800, 0xDFFF))
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
_TABLES: dict = {}


def is_unsafe(ch: str) -> bool:
    """The character is one that :func:`escape` rewrites (a control, separator, bidi override...)."""
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _UNSAFE_RANGES)


def unsafe_char(text: str) -> str | None:
    """The first unsafe character of ``text`` (:func:`is_unsafe`), or None."""
    if text.isprintable():      # every unsafe character is unprintable to Python: the fast path
        return None
    return next((ch for ch in text if is_unsafe(ch)), None)


def _spelling(code: int) -> str:
    ch = chr(code)
    if ch in _NAMED:
        return _NAMED[ch]
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _table(keep_newlines: bool, unambiguous: bool) -> dict:
    key = (keep_newlines, unambiguous)
    table = _TABLES.get(key)
    if table is None:
        table = {code: _spelling(code) for lo, hi in _UNSAFE_RANGES for code in range(lo, hi + 1)}
        if keep_newlines:
            del table[ord("\n")], table[ord("\t")]
        if unambiguous:
            table[ord("\\")] = "\\\\"
        _TABLES[key] = table
    return table


def escape(text, keep_newlines: bool = False, unambiguous: bool = False) -> str:
    """Make an untrusted string safe to print: unsafe characters become \\xNN, \\uNNNN, \\n, \\t, \\r.

    Terminal escape sequences, bidirectional overrides and C1 controls are all
    neutralised. *keep_newlines* keeps newlines and tabs (file contents, descriptions).
    With *unambiguous*, backslashes are doubled too, so the original can be recovered.
    Bytes are decoded as UTF-8 with invalid bytes shown as \\xNN. Escaping twice changes
    nothing more than escaping once (without *unambiguous*).
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "surrogateescape")
    text = str(text)
    if not unambiguous and text.isprintable():
        return text
    return text.translate(_table(keep_newlines, unambiguous))

