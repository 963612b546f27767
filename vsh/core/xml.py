"""Safe XML parsing and libvirt-style serialization.

Parsing refuses DTDs (so no entity expansion and no external entities), never
touches the network, caps the input size, insists on UTF-8 and reports errors
with line and column, followed by the offending line and a caret (virsh's style).

Serialization writes what libvirt writes: two-space indentation, single-quoted
attributes, no XML declaration. Unknown elements and attributes are kept.
"""

from __future__ import annotations

import re

from vsh.core.errors import XMLError

MAX_XML_BYTES = 10 * 1024 * 1024

_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


def _parser():
    from vsh.core.lxmlload import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_blank_text=True,
                           collect_ids=False)


def _where(data: str, line: int, column: int, origin: str, message: str) -> XMLError:
    """libxml2's report as virsh prints it: the message, the offending line, a caret under the column.

    The three parts are one error line with embedded newlines, so that only the first gets
    the ``error:`` prefix. A very long line is cut to a window around the column.
    """
    lines = data.splitlines()
    source = lines[line - 1] if 0 < line <= len(lines) else "(null)"
    col = max(column - 1, 0)
    if len(source) > 160:
        start = max(0, min(col - 80, len(source) - 160))
        source = ("..." if start else "") + source[start:start + 160] + ("..." if start + 160 < len(source) else "")
        col = col - start + (3 if start else 0)
    source = "".join(c if c == "\t" or c >= " " and c != "\x7f" else "?" for c in source)
    caret = "-" * col + "^"
    return XMLError(f"XML error: ({origin}):{line}:{column}: {message}\n{source}\n{caret}")


def parse(data: bytes | str, origin: str = "domain_definition", root_tag: str | None = "domain"):
    """Parse untrusted XML; return the root element."""
    from vsh.core.lxmlload import etree

    if isinstance(data, str):
        raw = data.encode("utf-8")
    else:
        raw = bytes(data)
    if len(raw) > MAX_XML_BYTES:
        raise XMLError(f"XML error: ({origin}): document is too large ({len(raw)} bytes; the limit is {MAX_XML_BYTES})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise XMLError(f"XML error: ({origin}):{line}:{column}: input is not valid UTF-8 (byte 0x{raw[exc.start]:02x})")
    match = _DOCTYPE.search(raw)
    if match:
        before = raw[: match.start()]
        line = before.count(b"\n") + 1
        column = match.start() - (before.rfind(b"\n") + 1) + 1
        raise _where(text, line, column, origin,
                     "DTDs and entity declarations are not allowed (entities are never expanded)")
    if not text.strip():
        raise XMLError(f"XML error: ({origin}):1: Document is empty\n(null)\n^")
    try:
        root = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (exc.lineno or 1, 1)
        msg = exc.msg or str(exc)
        msg = re.sub(r", line \d+, column \d+$", "", msg)
        raise _where(text, line or 1, column or 1, origin, msg) from None
    if root_tag is not None and root.tag != root_tag:
        raise XMLError(f"XML error: expecting root element of '{root_tag}', not '{root.tag}'")
    return root


def xml_char_error(value: str) -> str | None:
    """The first character of ``value`` that XML 1.0 cannot hold (its ``Char`` production:
    tab, newline, carriage return, U+0020..U+D7FF, U+E000..U+FFFD, U+10000 and up), or None."""
    if value.isprintable():     # every character Python prints is an XML 1.0 Char
        return None
    for ch in value:
        code = ord(ch)
        if not (ch in "\t\n\r" or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or code >= 0x10000):
            return ch
    return None


def check_xml_text(value: str, what: str) -> str:
    """``value`` when it can go into an XML document; else InvalidArgument naming the
    character and ``what`` (``title``, ``description``...). Nothing has been written then."""
    from vsh.core.errors import InvalidArgument

    bad = xml_char_error(value)
    if bad is not None:
        raise InvalidArgument(f"invalid character U+{ord(bad):04X} in the {what}: XML 1.0 cannot hold it")
    return value


def escape_attr(value: str) -> str:
    """A value for a single- or double-quoted attribute of generated XML."""
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;").replace("\n", "&#10;")
            .replace("\r", "&#13;").replace("\t", "&#9;"))


def escape_text(value: str) -> str:
    """Character data of generated XML."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _qname(el) -> str:
    tag = el.tag
    if tag.startswith("{"):
        local = tag.split("}", 1)[1]
        return f"{el.prefix}:{local}" if el.prefix else local
    return tag


def _attr_name(el, key: str) -> str:
    if key.startswith("{"):
        uri, local = key[1:].split("}", 1)
        if uri == "http://www.w3.org/XML/1998/namespace":
            return f"xml:{local}"
        for prefix, ns in el.nsmap.items():
            if ns == uri and prefix:
                return f"{prefix}:{local}"
        return local
    return key


def _write(el, depth: int, parent_nsmap: dict, out: list[str]) -> None:
    from vsh.core.lxmlload import etree

    pad = "  " * depth
    if not isinstance(el.tag, str):
        if isinstance(el, etree._Comment):
            out.append(f"{pad}<!--{el.text or ''}-->\n")
        elif isinstance(el, etree._ProcessingInstruction):
            out.append(f"{pad}<?{el.target} {el.text or ''}?>\n")
        return
    parts = [f"{pad}<{_qname(el)}"]
    nsmap = el.nsmap
    decls = [f" xmlns:{prefix}='{escape_attr(uri)}'" if prefix else f" xmlns='{escape_attr(uri)}'"
             for prefix, uri in nsmap.items() if parent_nsmap.get(prefix) != uri]
    attrs = [f" {_attr_name(el, key)}='{escape_attr(value)}'" for key, value in el.attrib.items()]
    # libvirt writes <domain type='kvm' xmlns:qemu='...'>, but libxml2 (metadata) puts xmlns first
    parts += attrs + decls if el.tag == "domain" else decls + attrs
    children = list(el)
    text = el.text
    if not children:
        if text is None or text == "":
            out.append("".join(parts) + "/>\n")
        else:
            out.append("".join(parts) + f">{escape_text(text)}</{_qname(el)}>\n")
        return
    if (text and text.strip()) or any(c.tail and c.tail.strip() for c in children):
        # mixed content: keep it exactly as it is (libxml2 stops formatting here too)
        inner: list[str] = []
        _inline_children(el, nsmap, inner)
        out.append("".join(parts) + ">" + "".join(inner) + f"</{_qname(el)}>\n")
        return
    out.append("".join(parts) + ">")
    out.append("\n")
    for child in children:
        _write(child, depth + 1, nsmap, out)
        tail = child.tail
        if tail and tail.strip():
            out.append(escape_text(tail) + "\n")
    out.append(f"{pad}</{_qname(el)}>\n")


def _inline_children(el, nsmap: dict, out: list[str]) -> None:
    if el.text:
        out.append(escape_text(el.text))
    for child in el:
        if isinstance(child.tag, str):
            inner: list[str] = []
            _inline_children(child, child.nsmap, inner)
            decls = [f" xmlns:{p}='{escape_attr(u)}'" if p else f" xmlns='{escape_attr(u)}'"
                     for p, u in child.nsmap.items() if nsmap.get(p) != u]
            attrs = [f" {_attr_name(child, k)}='{escape_attr(v)}'" for k, v in child.attrib.items()]
            head = f"<{_qname(child)}" + "".join(decls + attrs)
            out.append(head + (">" + "".join(inner) + f"</{_qname(child)}>" if inner else "/>"))
        else:
            out.append(f"<!--{child.text or ''}-->")
        if child.tail:
            out.append(escape_text(child.tail))


def serialize(el) -> str:
    """libvirt's layout: 2-space indent, single quotes, no declaration, ends in a newline."""
    out: list[str] = []
    _write(el, 0, {}, out)
    return "".join(out)


def serialize_at(el, depth: int) -> str:
    """Serialize a subtree indented as if it stood at ``depth``."""
    out: list[str] = []
    _write(el, depth, {}, out)
    return "".join(out)
