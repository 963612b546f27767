"""Names and identifiers of stored objects (domains, storage pools, volumes, networks): the
checks that keep a name safe to use as a file name, UUID spelling (libvirt's rules), MAC
addresses.

Light on purpose (no ``re``): the domain lookup on every command's path uses it.
"""

from __future__ import annotations

from vsh.core.errors import InvalidArgument

_HEX = frozenset("0123456789abcdefABCDEF")
_SPACE = " \t\n\v\f\r"


def has_control(text: str) -> bool:
    """The text holds a character no name may hold and no terminal may see raw: a C0 or C1
    control, DEL, a line or paragraph separator or a bidirectional override
    (:func:`vsh.core.escape.unsafe_char`, the one rule)."""
    from vsh.core.escape import unsafe_char

    return unsafe_char(text) is not None


def control_message(label: str, name: str) -> str:
    """``LABEL 'NAME' cannot contain control characters``, the name escaped."""
    return f"{label} '{_escaped(name)}' cannot contain control characters"


def check_file_name(name: str, what: str, limit: int) -> None:
    """A name that becomes a file name: refuse what could escape its directory or a terminal."""
    if name is None or name == "":
        raise InvalidArgument(f"{what} name must not be empty")
    if "\x00" in name:
        raise InvalidArgument(f"{what} name '{_escaped(name)}' cannot contain a NUL character")
    if "/" in name:
        raise InvalidArgument(f"{what} name '{_escaped(name)}' cannot contain '/'")
    if name in (".", ".."):
        raise InvalidArgument(f"{what} name '{_escaped(name)}' is not allowed")
    if name.startswith("."):
        raise InvalidArgument(f"{what} name '{_escaped(name)}' cannot start with '.'")
    if has_control(name):
        raise InvalidArgument(control_message(f"{what} name", name))
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} name '{_escaped(name)}' is not valid UTF-8") from None
    if size > limit:
        raise InvalidArgument(f"{what} name is too long ({size} bytes; the limit is {limit})")


def _escaped(text: str) -> str:
    from vsh.core.escape import escape

    return escape(text)


def _uuid_digits(text) -> str | None:
    """The 32 hex digits of a UUID as libvirt's virUUIDParse reads it, or None.

    libvirt skips surrounding white space and takes '-' and ' ' anywhere between the
    16 pairs of hex digits: ``8-4-4-4-12`` with or without dashes, and more.
    """
    if not isinstance(text, str):
        return None
    body = text.strip(_SPACE)
    digits = []
    i = 0
    while len(digits) < 16:
        if i >= len(body):
            return None
        if body[i] in "- ":
            i += 1
            continue
        if body[i] not in _HEX or i + 1 >= len(body) or body[i + 1] not in _HEX:
            return None
        digits.append(body[i:i + 2])
        i += 2
    return "".join(digits).lower() if i == len(body) else None


def is_uuid(text: str) -> bool:
    """A UUID by libvirt's rule (what virsh looks up by UUID before trying a name)."""
    return _uuid_digits(text) is not None


def is_uuid_arg(text: str) -> bool:
    """An argument virsh looks up by UUID before trying it as a name: 36 characters long
    (``VIR_UUID_STRING_BUFLEN - 1``, so 32 hex digits with four dashes) and a UUID by
    libvirt's rule (:func:`is_uuid`)."""
    return isinstance(text, str) and len(text) == 36 and is_uuid(text)


def normal_uuid(text: str) -> str:
    """A UUID (:func:`is_uuid`) in libvirt's spelling: lower case, dashes at 8-4-4-4-12."""
    h = _uuid_digits(text)
    if h is None:
        raise InvalidArgument(f"malformed uuid '{text}'")
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_mac(text: str) -> bool:
    """A MAC address: six colon-separated pairs of hex digits."""
    parts = text.split(":")
    return len(parts) == 6 and all(len(p) == 2 and all(c in _HEX for c in p) for p in parts)


def random_uuid() -> str:
    """A new random (version 4) UUID in libvirt's spelling (the ``uuid`` module would cost a
    single-shot define 5 ms to import)."""
    import os

    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40         # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80         # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def random_mac() -> str:
    """A new MAC address in QEMU's range (52:54:00), as libvirt makes them."""
    import os

    tail = os.urandom(3)
    return "52:54:00:" + ":".join(f"{b:02x}" for b in tail)
