"""The server side of the remote protocol (``vsh serve --stdio``): the operations API of one
connection, served over stdin/stdout to the remote driver (:mod:`vsh.api.remote`) at the other
end of an ssh channel. No socket is listened on; the process ends when its input ends.

One request is one API call on a handle the server keeps (the connection is handle 0); the
replies carry plain data, new handles, or streams that the server then pushes on the same
channel (a console's output, the items of an iterator) while it goes on answering requests.
See ``docs/remote-protocol.md``.
"""

from __future__ import annotations

import _thread
import os
import sys

from vsh.api.protocol import (CALLBACK_METHODS, VERSION, FrameReader, ProtocolError, api_type, decode,
                              dump_frame, encode, error_to_wire, file_frames, handle_attributes, write_all,
                              write_file_frame)
from vsh.core.errors import VshError

#: operations whose arguments mean something only in the caller's process (descriptors, sockets)
LOCAL_ONLY = frozenset({"fd_associate", "forward_socket"})


class _Callback:
    """The caller's progress object, seen from the server: each call becomes a frame."""

    def __init__(self, server: "Server", request: int, cb: int):
        self._send = server.send
        self._head = {"id": request, "cb": cb}

    def _fire(self, method, args) -> None:
        self._send(dict(self._head, m=method, a=encode(list(args))))

    def __call__(self, *args) -> None:
        self._fire(None, args)

    def start(self, *args) -> None:
        self._fire("start", args)

    def update(self, *args) -> None:
        self._fire("update", args)

    def finish(self, *args) -> None:
        self._fire("finish", args)


assert CALLBACK_METHODS == (None, "start", "update", "finish")


class _Pump:
    """Pushes what a stream gives as ``{"s": id, "d": ...}`` frames, then ``end`` (or ``e``)."""

    def __init__(self, server: "Server", sid: int, source, console: bool):
        self.server = server
        self.sid = sid
        self.source = source
        self.console = console
        import threading            # only a session with a stream pays for importing it

        self.stop_event = threading.Event()
        self.stop_r, self.stop_w = os.pipe2(os.O_CLOEXEC) if console else (-1, -1)
        self.thread = threading.Thread(target=self._console if console else self._iterate, daemon=True,
                                       name=f"vsh-stream-{sid}")

    def _end(self, err: BaseException | None = None) -> None:
        frame = {"s": self.sid, "end": True} if err is None else {"s": self.sid, "e": error_to_wire(err)}
        self.server.send(frame)

    def _iterate(self) -> None:
        try:
            for item in self.source:
                if self.stop_event.is_set():
                    close = getattr(self.source, "close", None)
                    if close is not None:
                        close()
                    return
                self.server.send({"s": self.sid, "d": encode(item)})
        except BaseException as exc:
            self._end(exc)
        else:
            self._end()

    def _console(self) -> None:
        import select

        fd = self.source.fileno()
        try:
            while True:
                ready = select.select([fd, self.stop_r], [], [])[0]
                if self.stop_r in ready:
                    return
                data = self.source.read(65536)
                if data == b"":
                    break
                if data:
                    self.server.send({"s": self.sid, "d": encode(data)})
        except BaseException as exc:
            self._end(exc)
        else:
            self._end()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop pushing. A console's thread is woken and joined (its device is closed next); an
        iterator's thread stops at its next item (it may be waiting in the source for it)."""
        self.stop_event.set()
        if not self.console:
            return
        try:
            os.write(self.stop_w, b"x")
        except OSError:
            pass
        if self.thread.ident is not None and self.thread.ident != _thread.get_ident():
            self.thread.join(timeout)
        os.close(self.stop_r)
        os.close(self.stop_w)


class Server:
    """One session: reads requests from ``in_fd``, answers on ``out_fd``."""

    def __init__(self, in_fd: int, out_fd: int, uri: str | None = None):
        self.reader = FrameReader(in_fd)
        self.out_fd = out_fd
        self.lock = _thread.allocate_lock()
        self.uri = uri              # pinned by `vsh serve -c URI`; else the client's choice
        self.objects: dict[int, object] = {}
        self.failed: dict[int, BaseException] = {}  # pipelined handles whose call failed: the error
        self.pumps: dict[int, _Pump] = {}
        self.next_id = 1
        self.conn = None
        self.tmpdir = None          # private directory of the files that cross the channel
        self.files: dict = {}       # file id -> [path, descriptor while it is being received]
        self.held = bytearray()     # replies kept while more requests wait in the reader

    def send(self, frame: dict | None, hold: bool = False) -> None:
        """Send ``frame`` after the ones held; ``hold``: keep it for the next write (a reply while
        the next request is already here: one write, one wake-up of the client, for both). None:
        send what is held."""
        data = b"" if frame is None else dump_frame(frame)
        with self.lock:
            if hold:
                self.held += data
                return
            if self.held:
                data, self.held = bytes(self.held) + data, bytearray()
            if data:
                write_all(self.out_fd, data)

    # -- handles ------------------------------------------------------------------------
    def _register(self, obj) -> int:
        oid = self.next_id
        self.next_id += 1
        self.objects[oid] = obj
        return oid

    def _encode_object(self, obj, oid: int | None = None):
        found = api_type(obj)
        if found is None:
            if hasattr(obj, "__next__") and oid is None:
                sid = self._register(obj)
                self.pumps[sid] = _Pump(self, sid, obj, console=False)
                return {"$s": sid, "t": "iter"}
            raise ProtocolError(f"cannot send a {type(obj).__name__} over the remote protocol")
        name, cls = found
        attrs = {a: encode(getattr(obj, a, None)) for a in handle_attributes(cls)}
        if oid is None:
            oid = self._register(obj)
        else:                                   # the client named it (a pipelined call, "as")
            self.objects[oid] = obj
        if name == "lifecycle.ConsoleStream":
            self.pumps[oid] = _Pump(self, oid, obj, console=True)
            return {"$s": oid, "t": name, "a": attrs}
        return {"$h": oid, "t": name, "a": attrs}

    def _resolve(self, path):
        if not isinstance(path, list) or not path or not isinstance(path[0], int):
            raise ProtocolError("malformed handle in a request")
        obj = self.objects.get(path[0])
        if obj is None:
            if path[0] in self.failed:          # the pipelined call that was to make it failed
                raise self.failed[path[0]]
            raise ProtocolError(f"no handle {path[0]} in this session")
        for attr in path[1:]:
            obj = self._attribute(obj, attr)
        return obj

    @staticmethod
    def _attribute(obj, attr):
        found = api_type(obj)
        if not isinstance(attr, str) or attr.startswith("_") or found is None or not hasattr(found[1], attr) \
                or attr in LOCAL_ONLY:
            raise ProtocolError(f"no operation '{attr}' on a {type(obj).__name__}")
        return getattr(obj, attr)

    def _file_path(self, fid) -> str:
        if self.tmpdir is None:
            import tempfile

            self.tmpdir = tempfile.mkdtemp(prefix="vsh-serve-")
        return os.path.join(self.tmpdir, f"file-{int(fid)}")

    def _put(self, frame: dict) -> None:
        """A piece of a file the client sends before the call that names it (``$f``)."""
        fid = frame["put"]
        entry = self.files.get(fid)
        if entry is None:
            path = self._file_path(fid)
            entry = self.files[fid] = [path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)]
        if entry[1] is not None and write_file_frame(entry[1], frame):
            os.close(entry[1])
            entry[1] = None

    def _send_back(self, rid, outgoing: list) -> None:
        """The files a call wrote for the client, sent before its reply; then gone here."""
        for fid, path in outgoing:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                for frame in file_frames(fd, {"id": rid, "file": fid}, sparse=True):
                    self.send(frame)
            finally:
                os.close(fd)
                os.unlink(path)

    def _drop_files(self, fids) -> None:
        for fid in fids:
            entry = self.files.pop(fid, None)
            if entry is not None:
                if entry[1] is not None:
                    os.close(entry[1])
                try:
                    os.unlink(entry[0])
                except FileNotFoundError:
                    pass

    def _decode_arg(self, request: int, outgoing: list):
        def special(tag, data):
            if tag == "$cb":
                return _Callback(self, request, data["$cb"])
            if tag == "$f":
                if data.get("out"):
                    path = self._file_path(data["$f"])
                    outgoing.append((data["$f"], path))
                    return path
                entry = self.files.get(data["$f"])
                if entry is None or entry[1] is not None:
                    raise ProtocolError(f"file {data['$f']} was not sent whole before the call")
                return entry[0]
            if tag == "$h":
                return self._resolve([data["$h"]])
            raise ProtocolError(f"unexpected {tag} in a request")
        return special

    # -- requests -----------------------------------------------------------------------
    def hello(self, frame: dict) -> bool:
        from vsh import __version__

        version = frame.get("hello")
        if version != VERSION:
            self.send({"id": 0, "e": error_to_wire(ProtocolError(
                "failed to connect to the hypervisor",
                f"remote protocol version mismatch: the client speaks {version}, "
                f"the remote vsh {__version__} speaks {VERSION}"))})
            return False
        try:
            from vsh import api

            self.conn = api.connect(self.uri or frame.get("uri"), readonly=bool(frame.get("readonly")))
        except VshError as err:
            self.send({"id": 0, "e": error_to_wire(err)})
            return False
        self.objects[0] = self.conn
        self.send({"id": 0, "hello": VERSION, "vsh": __version__, "uri": self.conn.uri})
        return True

    def call(self, frame: dict) -> None:
        rid = frame.get("id")
        handle = frame.get("h")
        if frame.get("m") == "close" and isinstance(handle, list) and len(handle) == 1 and handle[0] in self.pumps:
            self.pumps.pop(handle[0]).stop()      # the pushing ends before the device closes
        outgoing: list = []
        promised = frame.get("as")
        try:
            if promised is not None:
                self._promised(promised)
            target = self._resolve(frame.get("h"))
            if "get" in frame:
                result = self._attribute(target, frame["get"])
            else:
                method = self._attribute(target, frame.get("m"))
                special = self._decode_arg(rid, outgoing)
                args = decode(frame.get("a") or [], special)
                kwargs = decode(frame.get("k") or {}, special)
                result = method(*args, **kwargs)
            self._send_back(rid, outgoing)
            if promised is None:
                reply = {"id": rid, "r": encode(result, self._encode_object)}
            else:
                reply = {"id": rid, "r": self._encode_object(result, promised)}
        except BaseException as exc:          # the session goes on: every failure is a reply
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if isinstance(promised, int) and not isinstance(promised, bool) and promised < 0:
                self.failed[promised] = exc     # what every call on that handle answers
            if not isinstance(exc, VshError):
                import traceback

                traceback.print_exc(file=sys.stderr)
            reply = {"id": rid, "e": error_to_wire(exc)}
            for _fid, path in outgoing:
                if os.path.exists(path):
                    os.unlink(path)
        finally:
            self._drop_files([f for f in frame.get("files") or () if isinstance(f, int)])
        self.send(reply, hold=self.reader.ready())
        if frame.get("m") == "close" and isinstance(frame.get("h"), list) and len(frame["h"]) == 1:
            self._release(frame["h"][0])
        if self.pumps:
            for pump in [p for p in self.pumps.values() if p.thread.ident is None]:
                pump.thread.start()               # pushing starts once the reply is out

    @staticmethod
    def _promised(oid) -> int:
        """The id a pipelined call's handle gets: the client's, negative (never one of ours)."""
        if not isinstance(oid, int) or isinstance(oid, bool) or oid >= 0:
            raise ProtocolError("malformed 'as' in a request")
        return oid

    def _release(self, oid) -> None:
        pump = self.pumps.pop(oid, None)
        if pump is not None:
            pump.stop()
        self.objects.pop(oid, None)
        self.failed.pop(oid, None)

    def run(self) -> int:
        first = self.reader.next()
        if first is None:
            return 0
        if "hello" not in first or not self.hello(first):
            if "hello" not in first:
                self.send({"id": 0, "e": error_to_wire(ProtocolError("the remote protocol starts with a hello"))})
            return 1
        try:
            while True:
                if self.held and not self.reader.ready():
                    self.send(None)             # nothing more to answer at once: out it goes
                frame = self.reader.next()
                if frame is None:
                    return 0
                if "put" in frame:
                    self._put(frame)
                    continue
                if "release" in frame:
                    for oid in frame["release"] if isinstance(frame["release"], list) else ():
                        if oid != 0:
                            self._release(oid)
                    if "id" not in frame:
                        continue
                self.call(frame)
        finally:
            self.close()

    def close(self) -> None:
        for oid in list(self.pumps):
            obj = self.objects.get(oid)
            self._release(oid)
            close = getattr(obj, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    pass
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self._drop_files(list(self.files))
        if self.tmpdir is not None:
            import shutil

            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


def serve_stdio(uri: str | None = None) -> int:
    """Serve the API on this process's stdin/stdout until stdin ends; the exit status.

    The channel gets private descriptors: file descriptors 0 and 1 are pointed at ``/dev/null``
    so that nothing a child process inherits (or a stray print) can write into it; stderr stays."""
    in_fd = os.dup(0)
    out_fd = os.dup(1)
    os.set_inheritable(in_fd, False)
    os.set_inheritable(out_fd, False)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    try:
        return Server(in_fd, out_fd, uri).run()
    except ProtocolError as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    except BrokenPipeError:
        return 1
