"""Guest paths: absolute, ``/``-separated, resolved inside the guest's tree (never the host's)."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument


def split_path(path: str) -> list[str]:
    """Components of an absolute guest path ('' and '.' dropped, '..' kept)."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidArgument(f"{path!r}: guest paths must be absolute (start with /)")
    if "\0" in path:
        raise InvalidArgument("guest paths cannot contain NUL characters")
    return [p for p in path.split("/") if p not in ("", ".")]


def join_path(parts) -> str:
    return "/" + "/".join(parts)


def safe_name(name: str) -> bool:
    """A single directory-entry name that may become a host file name."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name

