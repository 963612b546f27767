"""Reading a file the user named (an XML document, a save image's replacement XML...),
with virsh's error wording. Commands read their input files here and pass the text
to the API."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument


#: what opening a user-named file can fail with, in virsh's words
_REASONS = {FileNotFoundError: "No such file or directory", IsADirectoryError: "Is a directory",
            PermissionError: "Permission denied"}
OPEN_ERRORS = tuple(_REASONS)


def open_failed(path: str, exc: OSError) -> InvalidArgument:
    """virsh's error for a user-named file that could not be opened (one of :data:`OPEN_ERRORS`)."""
    reason = next(text for kind, text in _REASONS.items() if isinstance(exc, kind))
    return InvalidArgument(f"Failed to open file '{path}': {reason}")


def read_input_file(path: str, what: str = "file", limit: int | None = None) -> bytes:
    """Read a user-named file with virsh's error wording."""
    from vsh.core.xml import MAX_XML_BYTES

    limit = limit or MAX_XML_BYTES
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OPEN_ERRORS as exc:
        raise open_failed(path, exc) from None
    if len(data) > limit:
        raise InvalidArgument(f"file '{path}' is too large: the limit for an XML document is {limit} bytes")
    return data
