"""The remote driver's handles: every abstract class of :mod:`vsh.api`, implemented by forwarding.

:func:`proxy_class` makes, once per abstract class, a subclass whose every abstract method sends
one request (:meth:`Channel.call`) and whose abstract properties read the server's attribute
(a sub-handle such as ``dom.devices`` is read once and kept). The plain attributes a class
declares (``name``, ``uuid``, ``uri``...) come with the handle. Streams have their own classes:
:class:`RemoteConsole` (a :class:`~vsh.api.lifecycle.ConsoleStream` fed by the channel's
reader thread) and :class:`RemoteIterator` (what an iterator-returning method gives).
"""

from __future__ import annotations

import os

from vsh.api.lifecycle import ConsoleStream
from vsh.api.protocol import ProtocolError, api_class, decode
from vsh.core.errors import Unsupported, VshError

_CLASSES: dict[tuple[type, type], type] = {}


class RemoteHandle:
    """What every forwarding handle is: the server's object ``_oid`` on ``_channel``."""

    def __init__(self, channel, oid: int, attrs: dict):
        self._channel = channel
        self._oid = oid
        self._subs: dict = {}
        for key, value in attrs.items():
            setattr(self, key, value)

    def __del__(self):
        if self._oid:                           # the server may drop it too (told with the next request)
            self._channel.release(self._oid)

    def __repr__(self) -> str:
        name = self.__dict__.get("name")
        return f"<{type(self).__name__} {name!r}>" if name is not None else f"<{type(self).__name__} #{self._oid}>"

    def _call(self, method: str, args=(), kwargs=None, get: bool = False):
        return self._channel.call(self._oid, method, args, kwargs, get=get)

    def fd_associate(self, name: str, fds: list[int], seclabel_writable: bool = False,
                     seclabel_restore: bool = False) -> None:
        """(a Domain's) Descriptors stay on this machine: the server refuses the call too."""
        raise Unsupported("operation not supported: file descriptors cannot be passed over a vsh+ssh "
                          "connection (run dom-fd-associate on the domain's host)")

    def _get(self, attr: str):
        if attr in self._subs:
            return self._subs[attr]
        if attr in PIPELINED:                   # a sub-handle (dom.stats...): pipelined
            value = self._pipeline(attr, (), True)
        else:
            value = self._call(attr, get=True)
        if isinstance(value, RemoteHandle):
            self._subs[attr] = value            # a sub-handle: the same object from now on
        return value

    def _pipeline(self, method: str, args=(), get: bool = False):
        """The handle ``method`` returns, pipelined (:class:`PromisedHandle`): no round trip now."""
        oid, queue = self._channel.pipeline(self._oid, method, args, get=get)
        return proxy_class(api_class(PIPELINED[method]), PromisedHandle)(self._channel, oid, queue)


class PromisedHandle(RemoteHandle):
    """The handle of a pipelined call (a lookup, a sub-handle): usable at once, since requests that
    name it go out behind the call that makes it. Its attributes (``name``...) wait for the reply.
    When that call failed, the first use raises the call's own error (with ``deferred`` set, so that
    no other operation's context is put in front of it), and the connection's ``settle()`` (the
    shell asks after each command) raises it if the command never touched the handle or failed
    on something else first: a missing domain is the command's error, as without pipelining."""

    def __init__(self, channel, oid: int, queue):
        super().__init__(channel, oid, {})
        self._pending = queue
        self._error: VshError | None = None

    def _settle(self) -> None:
        queue, self._pending = self._pending, None
        if queue is not None:
            try:
                data = self._channel.settle(queue)
            except VshError as err:
                err.deferred = True
                self._error = err
            else:
                attrs = data.get("a") if isinstance(data, dict) else None
                for key, value in (attrs if isinstance(attrs, dict) else {}).items():
                    if isinstance(key, str) and key.isidentifier():
                        setattr(self, key, decode(value))
            finally:
                self._channel.met(queue, self._error)
        if self._error is not None:
            raise self._error

    def __getattr__(self, attr: str):
        if attr.startswith("_") or "_pending" not in self.__dict__:
            raise AttributeError(attr)
        self._settle()
        return object.__getattribute__(self, attr)

    def _call(self, method: str, args=(), kwargs=None, get: bool = False):
        try:
            return self._channel.call(self._oid, method, args, kwargs, get=get)
        except VshError:
            self._settle()          # the handle's own call failed: that is the error to report
            raise


class ConnectionHandle(RemoteHandle):
    """The base of the remote :class:`~vsh.api.base.Connection`: closing it ends the ssh session;
    domain lookups are pipelined (the command's next call goes out with them); a socket forward
    (the stream of a migration to this host) is a second ssh process of this machine."""

    def close(self) -> None:
        self._channel.close()

    def __del__(self):
        if self._channel.dead is None:          # a connection nobody closed ends with its handle
            self._channel.close(2.0)

    def settle(self) -> None:
        self._channel.settle_all()

    def lookup_domain(self, ident: str):
        return self._pipeline("lookup_domain", (ident,))

    def forward_socket(self, path: str, local_path: str):
        """An ssh forward of ``local_path`` here to ``path`` there, on a second ssh connection."""
        from vsh.api.remote.forward import SshForward

        return SshForward(self._channel.argv, path, local_path, self._channel.target)

    def lookup_domain_by_id(self, id: int):
        return self._pipeline("lookup_domain_by_id", (id,))

    def lookup_domain_by_uuid(self, uuid: str):
        return self._pipeline("lookup_domain_by_uuid", (uuid,))


class VolumeHandle(RemoteHandle):
    """The base of the remote :class:`~vsh.api.storage.Volume`: ``upload`` and ``download`` name a
    file on the caller's machine, so its bytes travel over the channel (see the API's docstrings)."""

    def upload(self, file: str, offset: int = 0, length: int | None = None, sparse: bool = False,
               progress=None) -> int:
        from vsh.api.remote.files import LocalFile

        try:
            fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise VshError(f"cannot read {file}: {exc.strerror}") from None
        try:
            size = os.fstat(fd).st_size
            sent = LocalFile(fd, size if length is None else min(length, size), sparse)
            return self._channel.call(self._oid, "upload", (sent, offset, length),
                                      {"sparse": sparse, "progress": progress})
        finally:
            os.close(fd)

    def download(self, file: str, offset: int = 0, length: int | None = None, sparse: bool = False,
                 progress=None) -> int:
        from vsh.api.remote.files import LocalFile

        return self._channel.call(self._oid, "download", (LocalFile(out=file), offset, length),
                                  {"sparse": sparse, "progress": progress})


#: the base class of the handles whose methods do more than forward (by abstract class)
BASES = {"storage.Volume": VolumeHandle}
#: what the pipelined calls and sub-handles return (the abstract class, ``module.Class``)
PIPELINED = {"lookup_domain": "base.Domain", "lookup_domain_by_id": "base.Domain",
             "lookup_domain_by_uuid": "base.Domain", "storage": "storage.Storage",
             "networks": "networks.Networks", "host": "host.Host", "installer": "install.Installer",
             "devices": "devices.DomainDevices", "stats": "stats.DomainStats",
             "snapshots": "snapshots.DomainSnapshots", "display": "display.DomainDisplay",
             "block_jobs": "blockjobs.DomainBlockJobs", "tuning": "tuning.DomainTuning"}


def _method(name: str, doc: str | None):
    def forward(self, *args, **kwargs):
        return self._call(name, args, kwargs)
    forward.__name__ = name
    forward.__doc__ = doc
    return forward


def _property(name: str, doc: str | None):
    return property(lambda self: self._get(name), doc=doc)


def proxy_class(cls: type, base: type = RemoteHandle) -> type:
    """The forwarding subclass of the abstract class ``cls`` (made once)."""
    made = _CLASSES.get((cls, base))
    if made is None:
        ns = {"__module__": __name__}
        for name in sorted(cls.__abstractmethods__):
            if any(name in vars(c) for c in base.__mro__):
                continue
            static = next(vars(c)[name] for c in cls.__mro__ if name in vars(c))
            if isinstance(static, property):
                ns[name] = _property(name, static.__doc__)
            else:
                ns[name] = _method(name, getattr(static, "__doc__", None))
        made = _CLASSES[cls, base] = type(f"Remote{cls.__name__}", (base, cls), ns)
    return made


class RemoteConsole(ConsoleStream):
    """A console of a domain on the remote host: output arrives on the channel's stream ``sid``;
    writes are requests (so a write that the guest does not take fails here, as locally)."""

    def __init__(self, channel, sid: int, attrs: dict):
        self._channel = channel
        self._sid = sid
        self._buf = channel.stream(sid)
        self._closed = False
        self.name = attrs.get("name", "")

    def fileno(self) -> int:
        return self._buf.watch()

    def read(self, size: int = 65536) -> bytes | None:
        chunks = []
        while True:
            got, item = self._buf.take(wait=False)
            if not got:
                break
            chunks.append(decode(item))
        if chunks:
            data = b"".join(chunks)
            if len(data) > size:
                self._buf.unshift(data[size:])
                data = data[:size]
            return data
        if self._buf.ended:
            return b""
        return None

    def write(self, data: bytes) -> None:
        self._channel.call(self._sid, "write", (bytes(data),))

    @property
    def taken_over(self) -> bool:
        return bool(self._channel.call(self._sid, "taken_over", get=True))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._channel.dead is None:
                self._channel.call(self._sid, "close")
        finally:
            self._channel.forget_stream(self._sid)


class RemoteIterator:
    """The items an iterator on the server gives, as the server pushes them."""

    def __init__(self, channel, sid: int):
        self._channel = channel
        self._sid = sid
        self._buf = channel.stream(sid)
        self._done = False

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        got, item = self._buf.take(wait=True)
        if got:
            return decode(item)
        self._done = True
        self._channel.forget_stream(self._sid)
        if self._buf.error is not None:
            raise self._buf.error
        raise StopIteration

    def close(self) -> None:
        """Stop early: the server stops pushing and forgets the iterator."""
        if not self._done:
            self._done = True
            self._channel.forget_stream(self._sid)
            self._channel.release(self._sid)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def make_handle(channel, tag: str, data: dict):
    """Decode a handle (``$h``) or a stream (``$s``) of a reply into its client object."""
    attrs = data.get("a") or {}
    if not isinstance(attrs, dict):
        raise ProtocolError("malformed handle from the peer")
    attrs = {key: decode(value) for key, value in attrs.items() if isinstance(key, str) and key.isidentifier()}
    oid = data.get(tag)
    if not isinstance(oid, int):
        raise ProtocolError("malformed handle from the peer")
    if tag == "$s":
        if data.get("t") == "iter":
            return RemoteIterator(channel, oid)
        if data.get("t") == "lifecycle.ConsoleStream":
            return RemoteConsole(channel, oid, attrs)
        raise ProtocolError(f"unknown stream type '{data.get('t')}' from the peer")
    if tag == "$h":
        return proxy_class(api_class(data.get("t")), BASES.get(data.get("t"), RemoteHandle))(channel, oid, attrs)
    raise ProtocolError(f"unexpected {tag} from the peer")
