"""The remote protocol: the operations API over one byte channel (``docs/remote-protocol.md``).

A frame is one JSON object on one line (UTF-8, ``\\n``-terminated; JSON never holds a raw
newline). Values are JSON, with tagged objects for what JSON lacks (:func:`encode`,
:func:`decode`): ``{"$b": base64}`` bytes, ``{"$t": [...]}`` a tuple, ``{"$d": [[k, v]...]}`` a
dict whose keys are not all plain strings, ``{"$h": id, "t": "module.Class", "a": {...}}`` a
handle the server keeps (a domain, a pool, a sub-handle...), ``{"$s": id, ...}`` a stream
(an iterator the server pushes, or a console), ``{"$cb": id}`` a callback of the caller
(a progress reporter), ``{"$f": id}`` a file of the caller's machine that crosses the channel.

This module is shared by the client (:mod:`vsh.api.remote`) and the server
(:mod:`vsh.api.serve`); it imports nothing heavy.
"""

from __future__ import annotations

import os

import _json

from vsh.core import errors
from vsh.core.errors import VshError

#: The protocol version both ends must speak (the hello carries it).
VERSION = 3
#: Callback methods a server may invoke on the caller's progress object (None: call it).
CALLBACK_METHODS = (None, "start", "update", "finish")
#: The modules of :mod:`vsh.api` that define the abstract classes a handle can be.
API_MODULES = ("base", "domains", "lifecycle", "storage", "networks", "host", "install", "guestdisks",
               "devices", "stats", "snapshots", "display", "blockjobs", "tuning", "agent")
#: Largest frame accepted (a guest file chunk is 1 MiB, a quarter more as base64).
MAX_FRAME = 64 << 20
#: Bytes asked of one read: a pipe's capacity (a larger request makes Python allocate, map and
#: unmap a buffer of that size on every read; a pipe never gives more).
READ_SIZE = 1 << 16



# JSON through the json package's C accelerator directly: what json.dumps/loads would do with these
# settings, without importing the package (it imports re, enum...: ~5 ms of each end's start-up)
def _no_default(obj):
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _no_constant(name):
    raise ValueError(f"{name} is not allowed in a frame")


class _Decoding:
    """The settings the C scanner reads off a decoder: strict, plain dicts, NaN/Infinity refused."""
    strict = True
    object_hook = object_pairs_hook = None
    parse_float, parse_int, parse_constant = float, int, staticmethod(_no_constant)
    memo: dict = {}


_encode = _json.make_encoder(None, _no_default, _json.encode_basestring_ascii, None, ":", ",", False, False,
                             False)
_scan = _json.make_scanner(_Decoding())


def _dumps(obj) -> str:
    return "".join(_encode(obj, 0))


def _loads(data: bytes):
    text = data.decode("utf-8")
    try:
        obj, end = _scan(text, 0)
    except StopIteration as stop:
        raise ValueError(f"Expecting value at character {stop.value}") from None
    if text[end:].strip(" \t\r\n"):
        raise ValueError(f"Extra data at character {end}")
    return obj


class ProtocolError(VshError):
    """The peer said something this end cannot understand (or nothing at all)."""


# --------------------------------------------------------------------------------------
# framing
# --------------------------------------------------------------------------------------

def dump_frame(obj: dict) -> bytes:
    """One frame: the object as a JSON line."""
    return _dumps(obj).encode() + b"\n"


def load_frame(line: bytes) -> dict:
    """The object of one frame (``line`` with or without its newline); ProtocolError otherwise."""
    try:
        obj = _loads(line)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"malformed frame from the peer: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("malformed frame from the peer: not an object")
    return obj


class FrameReader:
    """Frames from a descriptor, read in blocks; :meth:`next` returns None at the end."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buf = bytearray()

    def ready(self) -> bool:
        """Whether a whole frame is here already (:meth:`next` reads nothing)."""
        return b"\n" in self.buf

    def next(self, deadline: float | None = None) -> dict | None:
        """The next frame; None at the end. With ``deadline`` (``time.monotonic()``), Timeout
        when no whole frame is there by then."""
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[:end + 1]
                return load_frame(line)
            if len(self.buf) > MAX_FRAME:
                raise ProtocolError(f"frame from the peer larger than {MAX_FRAME} bytes")
            if deadline is not None:
                import select
                import time

                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                    from vsh.core.errors import Timeout

                    raise Timeout("no frame from the peer in time")
            try:
                data = os.read(self.fd, READ_SIZE)
            except InterruptedError:
                continue
            except OSError as exc:
                raise ProtocolError(f"cannot read from the peer: {exc.strerror}") from None
            if not data:
                if self.buf:
                    raise ProtocolError("the peer closed the channel in the middle of a frame")
                return None
            self.buf += data


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to the (blocking) descriptor ``fd``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------

def error_to_wire(err: BaseException) -> dict:
    """A VshError as data (its kind, lines, hint and exit status); anything else as an internal error."""
    if isinstance(err, VshError):
        return {"kind": type(err).__name__, "lines": list(err.lines), "hint": err.hint, "status": err.status}
    return {"kind": "VshError", "lines": [f"internal error: {type(err).__name__}: {err}"], "hint": None,
            "status": 1}


def error_from_wire(data) -> VshError:
    """The VshError the peer raised, of the same class when vsh knows it: the same lines are printed."""
    if not isinstance(data, dict):
        return ProtocolError("malformed error from the peer")
    cls = getattr(errors, str(data.get("kind")), None)
    if not (isinstance(cls, type) and issubclass(cls, VshError)):
        cls = VshError
    lines = [str(line) for line in data.get("lines") or ()]
    err = cls(*lines, hint=data.get("hint"))
    status = data.get("status")
    if isinstance(status, int) and status != err.status:
        err.status = status
    return err


# --------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------

_PLAIN = (str, int, float, bool, type(None))


def encode(value, handle=None):
    """``value`` as JSON data; ``handle(obj)`` encodes what is not plain data (a handle, a stream,
    a callback) or raises ProtocolError."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, list):
        return [encode(v, handle) for v in value]
    if isinstance(value, dict):
        if all(type(k) is str and not k.startswith("$") for k in value):
            return {k: encode(v, handle) for k, v in value.items()}
        return {"$d": [[encode(k, handle), encode(v, handle)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"$t": [encode(v, handle) for v in value]}
    if isinstance(value, (bytes, bytearray, memoryview)):
        import base64

        return {"$b": base64.b64encode(value).decode()}
    if handle is not None:
        return handle(value)
    raise ProtocolError(f"cannot send a {type(value).__name__} over the remote protocol")


def decode(data, special=None):
    """The value :func:`encode` made; ``special(tag, obj)`` decodes handles, streams and callbacks."""
    if isinstance(data, list):
        return [decode(v, special) for v in data]
    if isinstance(data, dict):
        if len(data) == 1 or "$h" in data or "$s" in data or "$f" in data:
            if "$b" in data:
                import base64
                import binascii

                try:
                    return base64.b64decode(data["$b"], validate=True)
                except (binascii.Error, TypeError, ValueError):
                    raise ProtocolError("malformed bytes from the peer") from None
            if "$t" in data:
                return tuple(decode(v, special) for v in data["$t"])
            if "$d" in data:
                try:
                    return {decode(k, special): decode(v, special) for k, v in data["$d"]}
                except (TypeError, ValueError):
                    raise ProtocolError("malformed mapping from the peer") from None
            for tag in ("$h", "$s", "$cb", "$f"):
                if tag in data:
                    if special is None:
                        raise ProtocolError(f"unexpected {tag} from the peer")
                    return special(tag, data)
        return {k: decode(v, special) for k, v in data.items()}
    return data


# --------------------------------------------------------------------------------------
# the API's abstract classes
# --------------------------------------------------------------------------------------

_TYPES: dict = {}


def api_type(obj) -> tuple[str, type] | None:
    """``("module.Class", cls)``: the most derived abstract class of :mod:`vsh.api` that ``obj``
    implements (``("base.Domain", Domain)`` for any driver's domain), None for none."""
    cls = type(obj)
    found = _TYPES.get(cls)
    if found is None and cls not in _TYPES:
        for base in cls.__mro__:
            module = base.__module__
            if module.startswith("vsh.api.") and module[8:] in API_MODULES and "__abstractmethods__" in vars(base):
                found = (f"{module[8:]}.{base.__name__}", base)
                break
        _TYPES[cls] = found
    return found


_CLASSES: dict = {}


def api_class(name: str) -> type:
    """The abstract class ``"module.Class"`` names (see :func:`api_type`); ProtocolError otherwise."""
    key = str(name)
    found = _CLASSES.get(key)
    if found is None:
        found = _CLASSES[key] = _api_class(key)      # (only a class is kept: a bad name raises)
    return found


def _api_class(name: str) -> type:
    module, _dot, cls_name = str(name).partition(".")
    if module not in API_MODULES or not cls_name.isidentifier():
        raise ProtocolError(f"unknown handle type '{name}' from the peer")
    from importlib import import_module

    cls = getattr(import_module(f"vsh.api.{module}"), cls_name, None)
    if not (isinstance(cls, type) and "__abstractmethods__" in vars(cls)):
        raise ProtocolError(f"unknown handle type '{name}' from the peer")
    return cls


_ATTRIBUTES: dict = {}


def handle_attributes(cls: type) -> tuple[str, ...]:
    """The plain attributes an abstract class declares (``name``, ``uuid``, ``uri``...): sent with
    each handle so that reading them costs no round trip."""
    names = _ATTRIBUTES.get(cls)
    if names is not None:
        return names
    names = []
    for base in reversed(cls.__mro__):
        if base.__module__.startswith("vsh.api."):
            for attr in vars(base).get("__annotations__", {}):
                if attr not in names and not isinstance(getattr(cls, attr, None), property):
                    names.append(attr)
    names = _ATTRIBUTES[cls] = tuple(names)
    return names


# --------------------------------------------------------------------------------------
# files that cross the channel (a volume's upload from, or download to, the caller's machine)
# --------------------------------------------------------------------------------------

FILE_CHUNK = 1 << 20


def file_frames(fd: int, head: dict, length: int | None = None, sparse: bool = False):
    """Frames carrying what ``fd`` holds from its start (at most ``length`` bytes): ``head`` plus
    ``{"d": bytes}`` for data, ``{"hole": n}`` for a hole (with ``sparse``), then ``{"end": size}``."""
    import base64

    size = os.fstat(fd).st_size if length is None else length
    pos = 0
    while pos < size:
        if sparse:
            try:
                data_at = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:             # ENXIO: only a hole is left
                data_at = size
            if data_at > pos:
                hole = min(data_at, size) - pos
                yield dict(head, hole=hole)
                pos += hole
                continue
        chunk = os.pread(fd, min(FILE_CHUNK, size - pos), pos)
        if not chunk:
            break
        yield dict(head, d=base64.b64encode(chunk).decode())
        pos += len(chunk)
    yield dict(head, end=pos)


def write_file_frame(fd: int, frame: dict) -> bool:
    """Apply one frame of :func:`file_frames` to ``fd`` (written in order); True at the end."""
    import base64

    if "d" in frame:
        os.write(fd, base64.b64decode(frame["d"]))
    elif "hole" in frame:
        os.lseek(fd, int(frame["hole"]), os.SEEK_CUR)
    elif "end" in frame:
        os.ftruncate(fd, int(frame["end"]))
        return True
    return False
