"""XML for people: a document, or the nodes an XPath selects from it (``dumpxml --xpath``)."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument
from vsh.core.output import Text


def xpath_select(node, expr: str, wrap: bool) -> str:
    """The nodes (or the value) ``expr`` selects under ``node``, serialized as virsh prints them."""
    from lxml import etree

    from vsh.core.xml import serialize

    try:
        result = node.xpath(expr)
    except etree.XPathError as exc:
        raise InvalidArgument(f"XPath evaluation failed: {exc} in '{expr}'") from None
    if not isinstance(result, list):
        if isinstance(result, float) and result.is_integer():
            result = int(result)
        if isinstance(result, bool):
            result = "true" if result else "false"
        return f"{result}\n"
    if wrap:
        root = etree.Element("nodes")
        for item in result:
            if isinstance(item, etree._Element):
                import copy

                root.append(copy.deepcopy(item))
            else:
                sub = etree.SubElement(root, "node")
                sub.text = str(item)
        return serialize(root)
    out = []
    for item in result:
        if isinstance(item, etree._Element):
            out.append(serialize(item))
        else:
            out.append(f"{item}\n")
    return "".join(out)


def xml_output(text: str, xpath: str | None, wrap: bool, root_tag: str) -> Text:
    """``dumpxml``'s output: the document, or what ``xpath`` selects from it."""
    if xpath is None:
        return Text(text, json_data={"xml": text})
    from vsh.core.xml import parse

    return Text(xpath_select(parse(text, root_tag, root_tag), xpath, wrap))
