"""libvirt's size units (shared by the XML model and the command-line parser)."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument


def parse_scaled(text: str, default_unit: int = 1024, what: str = "size") -> int:
    """A size with an optional libvirt unit suffix, in bytes."""
    import re

    match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text or "")
    if not match:
        raise InvalidArgument(f"Scaled numeric value '{text}' for <{what}> option is malformed or out of range")
    number = int(match.group(1))
    suffix = match.group(2)
    if not suffix:
        return number * default_unit
    scale = scale_for_unit(suffix)
    if scale is None:
        raise InvalidArgument(f"Scaled numeric value '{text}' for <{what}> option is malformed or out of range")
    return number * scale


def scale_for_unit(unit: str) -> int | None:
    """libvirt's unit rules: k/K/KiB = 1024, KB = 1000, b/bytes = 1."""
    low = unit.lower()
    if low in ("b", "byte", "bytes"):
        return 1
    powers = "kmgtpe"
    if not low or low[0] not in powers:
        return None
    power = powers.index(low[0]) + 1
    rest = unit[1:]
    if rest in ("", "iB", "ib"):
        return 1024 ** power
    if rest in ("B", "b"):
        return 1000 ** power
    return None
