"""Names and UUIDs of stored objects (storage pools, volumes, networks): the checks that
keep a name safe to use as a file name, and UUID spelling."""

from __future__ import annotations

import re

from vsh.core.errors import InvalidArgument

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")


def check_file_name(name: str, what: str, limit: int) -> None:
    """A name that becomes a file name: refuse what could escape its directory."""
    if name is None or name == "":
        raise InvalidArgument(f"{what} name must not be empty")
    if "\x00" in name:
        raise InvalidArgument(f"{what} name {name!r} cannot contain a NUL character")
    if "/" in name:
        raise InvalidArgument(f"{what} name '{name}' cannot contain '/'")
    if name in (".", ".."):
        raise InvalidArgument(f"{what} name '{name}' is not allowed")
    if name.startswith("."):
        raise InvalidArgument(f"{what} name '{name}' cannot start with '.'")
    if CONTROL.search(name):
        raise InvalidArgument(f"{what} name {name!r} cannot contain control characters")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} name {name!r} is not valid UTF-8") from None
    if size > limit:
        raise InvalidArgument(f"{what} name is too long ({size} bytes; the limit is {limit})")


def is_uuid(text: str) -> bool:
    return bool(text) and bool(_UUID.fullmatch(text))


def normal_uuid(text: str) -> str:
    h = text.replace("-", "").lower()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
