"""Reading a file the user named (an XML document, a save image's replacement XML...),
with virsh's error wording. Commands read their input files here and pass the text
to the API."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument


def read_input_file(path: str, what: str = "file", limit: int | None = None) -> bytes:
    """Read a user-named file with virsh's error wording."""
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
