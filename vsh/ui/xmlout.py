"""XML for people: a document, or the nodes an XPath selects from it (``dumpxml --xpath``)."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, VshError
from vsh.core.output import Text


def xpath_select(node, expr: str, wrap: bool) -> str:
    """The nodes ``expr`` selects under ``node``, printed as virsh prints them (virshDumpXML, which
    libxml2 formats): elements re-indented with double quotes, an attribute as `` dev="vda"``, a
    text node as its text, one per line; ``wrap`` puts them all under ``<nodes>`` (attributes
    on it, text in it).  An expression that selects no nodes (``string(...)``, ``count(...)``)
    is refused with virsh's message."""
    import copy

    from vsh.core.lxmlload import etree

    try:
        result = node.xpath(expr)
    except etree.XPathError as exc:
        raise InvalidArgument(f"XPath evaluation failed: {exc} in '{expr}'") from None
    if not isinstance(result, list):
        raise VshError(f"internal error: Incorrect xpath '{expr}'")
    if wrap:
        root = etree.Element("nodes")
        for item in result:
            if isinstance(item, etree._Element):
                root.append(_unindented(copy.deepcopy(item)))
            elif getattr(item, "is_attribute", False):
                root.set(item.attrname, str(item))
            elif len(root):
                root[-1].tail = (root[-1].tail or "") + str(item)
            else:
                root.text = (root.text or "") + str(item)
        return etree.tostring(root, encoding="unicode", pretty_print=True)
    out = []
    for item in result:
        if isinstance(item, etree._Element):
            out.append(etree.tostring(_unindented(copy.deepcopy(item)), encoding="unicode", with_tail=False,
                                      pretty_print=True).rstrip("\n") + "\n")
        elif getattr(item, "is_attribute", False):
            out.append(f' {_attr_name(item)}="{_escape_attr(str(item))}"\n')
        else:
            out.append(_escape_text(str(item)) + "\n")
    return "".join(out)


def _unindented(el):
    """``el`` without the whitespace that only indents (libxml2 re-indents what it prints)."""
    for sub in el.iter():
        if len(sub) and sub.text is not None and not sub.text.strip():
            sub.text = None
        if sub is not el and sub.tail is not None and not sub.tail.strip():
            sub.tail = None
    el.tail = None
    return el


def _attr_name(item) -> str:
    """An attribute result's name with its prefix (``xlink:href``) rather than Clark notation."""
    name = item.attrname
    if name.startswith("{"):
        uri, _, local = name[1:].partition("}")
        for prefix, ns in (item.getparent().nsmap or {}).items():
            if ns == uri and prefix:
                return f"{prefix}:{local}"
        return local
    return name


def _escape_attr(value: str) -> str:
    """An attribute value as libxml2 writes it between double quotes (libxml2 itself does it)."""
    from vsh.core.lxmlload import etree

    return etree.tostring(etree.Element("x", a=value), encoding="unicode")[len('<x a="'):-len('"/>')]


def _escape_text(value: str) -> str:
    """A text node as libxml2 writes it."""
    from vsh.core.lxmlload import etree

    el = etree.Element("x")
    el.text = value
    return etree.tostring(el, encoding="unicode")[len("<x>"):-len("</x>")]


def xml_output(text: str, xpath: str | None, wrap: bool, root_tag: str) -> Text:
    """``dumpxml``'s output: the document, or what ``xpath`` selects from it."""
    if xpath is None:
        return Text(text, json_data={"xml": text})
    from vsh.core.xml import parse

    return Text(xpath_select(parse(text, root_tag, root_tag), xpath, wrap))
