"""A few facts about a domain, read without lxml (the single-shot query path).

``dominfo``, ``domuuid`` and ``list --uuid/--title`` need a handful of values
from XML that vsh itself wrote (the store's configs and the supervisor's
live.xml). Importing lxml costs more than the rest of such a command, so these
values are read with the expat parser that Python already carries. The input is
still treated as untrusted: a DTD or entity declaration, unexpected structure or
anything unusual returns None, and the caller falls back to the full model.
"""

from __future__ import annotations

_WANTED = {
    ("domain", "uuid"): "uuid",
    ("domain", "title"): "title",
    ("domain", "memory"): "memory",
    ("domain", "currentMemory"): "current_memory",
    ("domain", "vcpu"): "vcpu",
    ("domain", "os", "type"): "os_type",
}


class _Unusual(Exception):
    pass


def read_paths(data: bytes, wanted: dict, known: frozenset | set | None = None) -> tuple[dict, dict] | None:
    """The text and the attributes of the elements at the ``wanted`` paths (tuple of tags → key),
    read with expat: ``({key: text}, {key: attributes})``, the root's attributes under ``()``.

    The document is untrusted: a DTD, an entity, a comment or CDATA section, a repeated wanted
    element, or (when ``known`` is given) an element at a path neither wanted nor known, gives
    None — the caller leaves such a document to the full parser.
    """
    import pyexpat

    if b"<!" in data:  # DOCTYPE, ENTITY, CDATA, comments: leave those to the full parser
        return None
    parser = pyexpat.ParserCreate()
    parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
    path: list[str] = []
    texts: dict = {}
    attrs: dict = {}
    current: list = [None]

    def start(name, attributes):
        path.append(name)
        here = tuple(path)
        key = wanted.get(here)
        if len(path) == 1:
            attrs[()] = attributes
            if known is not None and not any(p[0] == name for p in wanted):
                raise _Unusual()        # another root element
        elif key is None and known is not None and here not in known:
            raise _Unusual()
        current[0] = key
        if key is not None:
            if key in texts:
                raise _Unusual()  # a repeated element: let the full model decide
            attrs[key] = attributes
            texts[key] = []

    def end(name):
        path.pop()
        current[0] = None

    def chars(text):
        if current[0] is not None:
            texts[current[0]].append(text)

    def refuse(*_args):
        raise _Unusual()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.EntityDeclHandler = refuse
    parser.StartDoctypeDeclHandler = refuse
    try:
        parser.Parse(data, True)
    except (_Unusual, pyexpat.ExpatError, ValueError):
        return None
    return {key: "".join(parts) for key, parts in texts.items()}, attrs


def quick_facts(data: bytes) -> dict | None:
    """{uuid, title, os_type, vcpus, vcpus_current, memory_kib, current_memory_kib} or None."""
    found = read_paths(data, _WANTED)
    if found is None:
        return None
    try:
        return _facts(*found)
    except (ValueError, KeyError, TypeError):
        return None


def _kib(texts, attrs, key) -> int | None:
    if key not in texts:
        return None
    from vsh.core.units import scale_for_unit

    value = texts[key].strip()
    unit = attrs[key].get("unit") or "KiB"
    scale = scale_for_unit(unit)
    if not value.isdigit() or scale is None:
        raise ValueError(value)
    return (int(value) * scale + 1023) // 1024


def _facts(texts, attrs) -> dict:
    def text(key):
        return texts[key].strip() if key in texts else None

    vcpus = int(text("vcpu")) if text("vcpu") is not None else 1
    current = attrs.get("vcpu", {}).get("current")
    return {
        "uuid": text("uuid"),
        "title": texts.get("title"),
        "os_type": text("os_type") or "hvm",
        "vcpus": vcpus,
        "vcpus_current": int(current) if current is not None else vcpus,
        "memory_kib": _kib(texts, attrs, "memory") or 0,
        "current_memory_kib": _kib(texts, attrs, "current_memory"),
    }
