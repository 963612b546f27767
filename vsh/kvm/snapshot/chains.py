"""Disks and their backing chains in a domain XML (lxml elements): find them, read a chain,
put an overlay on top, take an image out of every chain.
"""

from __future__ import annotations


def disk_target(el) -> str | None:
    tgt = el.find("target")
    return tgt.get("dev") if tgt is not None else None


def disk_elements(dom_el) -> list:
    return [el for el in dom_el.findall("devices/disk") if disk_target(el)]


def disk_element(dom_el, target: str):
    for el in disk_elements(dom_el):
        if disk_target(el) == target:
            return el
    return None


def is_writable(el) -> bool:
    return (el.get("device", "disk") == "disk" and el.find("readonly") is None
            and el.find("source") is not None)


def chain(el) -> list[tuple[str, str | None]]:
    """[(path, format)] from the top image down, as the XML declares it."""
    src = el.find("source")
    if src is None:
        return []
    path = src.get("file") or src.get("dev")
    if not path:
        return []
    drv = el.find("driver")
    out = [(path, drv.get("type") if drv is not None else None)]
    bs = el.find("backingStore")
    while bs is not None and bs.find("source") is not None:
        bsrc = bs.find("source")
        fmt = bs.find("format")
        out.append((bsrc.get("file") or bsrc.get("dev"), fmt.get("type") if fmt is not None else None))
        bs = bs.find("backingStore")
    return out


def chains(dom_el) -> dict:
    return {disk_target(el): chain(el) for el in disk_elements(dom_el) if chain(el)}


def push_overlay(el, overlay: str) -> None:
    """Make ``overlay`` (qcow2) the disk's top; the old top becomes its declared backing store."""
    from vsh.core.lxmlload import etree

    src = el.find("source")
    drv = el.find("driver")
    if drv is None:
        drv = etree.SubElement(el, "driver", name="qemu")
    old_path, old_fmt = src.get("file"), drv.get("type")
    old_bs = el.find("backingStore")
    bs = etree.Element("backingStore", type=el.get("type", "file"))
    etree.SubElement(bs, "format", type=old_fmt or "raw")
    etree.SubElement(bs, "source", {("file" if el.get("type", "file") == "file" else "dev"): old_path})
    if old_bs is not None:
        el.remove(old_bs)
        bs.append(old_bs)
    elif old_fmt == "qcow2":
        etree.SubElement(bs, "backingStore")
    el.set("type", "file")
    for key in ("dev", "file"):
        src.attrib.pop(key, None)
    src.set("file", overlay)
    drv.set("type", "qcow2")
    src.addnext(bs)


def drop_from_chain(el, path: str) -> bool:
    """Remove the backing level ``path`` from the disk's declared chain; True if it was there."""
    parent = el
    bs = el.find("backingStore")
    while bs is not None and bs.find("source") is not None:
        bsrc = bs.find("source")
        if (bsrc.get("file") or bsrc.get("dev")) == path:
            inner = bs.find("backingStore")
            index = parent.index(bs)
            parent.remove(bs)
            if inner is not None:
                parent.insert(index, inner)
            return True
        parent, bs = bs, bs.find("backingStore")
    return False


def set_top(el, path: str) -> None:
    el.find("source").set("file", path)
