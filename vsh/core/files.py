"""Files a user names on the command line (an XML definition, a key): read with virsh's wording."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument


def read_input_file(path: str, what: str = "file", limit: int | None = None) -> bytes:
    """Read a user-named file with virsh's error wording (at most ``limit`` bytes, by default the
    size cap of an XML document)."""
    from vsh.core.xml import MAX_XML_BYTES

    limit = limit or MAX_XML_BYTES
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise InvalidArgument(f"Failed to open file '{path}': No such file or directory") from None
    except IsADirectoryError:
        raise InvalidArgument(f"Failed to open file '{path}': Is a directory") from None
    except PermissionError:
        raise InvalidArgument(f"Failed to open file '{path}': Permission denied") from None
    if len(data) > limit:
        raise InvalidArgument(f"file '{path}' is too large: the limit for an XML document is {limit} bytes")
    return data
