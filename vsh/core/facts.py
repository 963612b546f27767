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


class _Refuse(Exception):
    pass


def quick_facts(data: bytes) -> dict | None:
    """{uuid, title, os_type, vcpus, vcpus_current, memory_kib, current_memory_kib} or None."""
    import pyexpat

    if b"<!" in data:  # DOCTYPE, ENTITY, CDATA, comments: leave those to the full parser
        return None
    parser = pyexpat.ParserCreate()
    parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
    path: list[str] = []
    texts: dict[str, list[str]] = {}
    attrs: dict[str, dict] = {}
    current: list[str | None] = [None]

    def start(name, attributes):
        path.append(name)
        key = _WANTED.get(tuple(path))
        current[0] = key
        if key is not None:
            if key in attrs:
                raise _Refuse()  # a repeated element: let the full model decide
            attrs[key] = attributes
            texts[key] = []

    def end(name):
        path.pop()
        current[0] = None

    def chars(text):
        key = current[0]
        if key is not None:
            texts[key].append(text)

    def refuse(*_args):
        raise _Refuse()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.EntityDeclHandler = refuse
    parser.StartDoctypeDeclHandler = refuse
    try:
        parser.Parse(data, True)
    except (_Refuse, pyexpat.ExpatError, ValueError):
        return None
    try:
        return _facts(texts, attrs)
    except (ValueError, KeyError, TypeError):
        return None


def _kib(texts, attrs, key) -> int | None:
    if key not in texts:
        return None
    from vsh.core.units import scale_for_unit

    value = "".join(texts[key]).strip()
    unit = attrs[key].get("unit") or "KiB"
    scale = scale_for_unit(unit)
    if not value.isdigit() or scale is None:
        raise ValueError(value)
    return (int(value) * scale + 1023) // 1024


def _facts(texts, attrs) -> dict:
    def text(key):
        return "".join(texts[key]).strip() if key in texts else None

    vcpus = int(text("vcpu")) if text("vcpu") is not None else 1
    current = attrs.get("vcpu", {}).get("current")
    return {
        "uuid": text("uuid"),
        "title": "".join(texts["title"]) if "title" in texts else None,
        "os_type": text("os_type") or "hvm",
        "vcpus": vcpus,
        "vcpus_current": int(current) if current is not None else vcpus,
        "memory_kib": _kib(texts, attrs, "memory") or 0,
        "current_memory_kib": _kib(texts, attrs, "current_memory"),
    }
