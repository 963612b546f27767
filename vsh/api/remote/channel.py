"""The client end of the remote protocol: the ``ssh`` process, calls and streams.

One :class:`Channel` is one child process (``ssh … vsh serve --stdio``) whose stdin/stdout carry
the frames of :mod:`vsh.api.protocol`. While no stream is open the caller reads its own reply
(one process switch each way per call); a pipelined call (:meth:`Channel.pipeline`, a domain
lookup) is not waited for, and goes out in one write with the call that uses its handle. The
first stream (a console, an iterator) starts a reader thread that takes every frame off stdout
as it comes: a reply goes to the call waiting for it (with the callbacks that call gets on the
way), stream data to the :class:`StreamBuffer` of its stream, so a console's output arrives
while the caller waits in ``select`` or is busy elsewhere. Another thread keeps ssh's stderr: before the hello it is the
reason a connection failed; after it, it is passed on to our stderr (the remote vsh's warnings).
"""

from __future__ import annotations

import _thread
import os
import sys
from _collections import deque
from _queue import Empty, SimpleQueue

from vsh.api.protocol import (CALLBACK_METHODS, VERSION, FrameReader, ProtocolError, decode, dump_frame,
                              encode, error_from_wire, file_frames, write_all)
from vsh.core.errors import Timeout, VshError

#: Seconds from starting ssh to the remote vsh's hello (ssh's own ConnectTimeout is shorter).
HELLO_TIMEOUT = 10.0


class StreamBuffer:
    """What the server pushed on one stream and the consumer has not taken yet."""

    def __init__(self):
        import threading            # only a session with a stream pays for importing it

        self.cond = threading.Condition()
        self.items: deque = deque()
        self.ended = False
        self.error: VshError | None = None
        self.notify_r = self.notify_w = -1

    def watch(self) -> int:
        """A descriptor that is readable while something (or the end) waits here."""
        with self.cond:
            if self.notify_r < 0:
                self.notify_r, self.notify_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
                if self.items or self.ended:
                    os.write(self.notify_w, b"x")
            return self.notify_r

    def _poke(self) -> None:
        if self.notify_w >= 0:
            try:
                os.write(self.notify_w, b"x")
            except BlockingIOError:
                pass

    def push(self, item) -> None:
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()
            self._poke()

    def unshift(self, item) -> None:
        """Put back what the consumer took but could not use (it comes first again)."""
        with self.cond:
            self.items.appendleft(item)
            self._poke()

    def end(self, error: VshError | None = None) -> None:
        with self.cond:
            if not self.ended:
                self.ended, self.error = True, error
            self.cond.notify_all()
            self._poke()

    def take(self, wait: bool):
        """The next item; ``(False, None)`` when none is there (without ``wait``) or at the end."""
        with self.cond:
            while not self.items and not self.ended and wait:
                self.cond.wait()
            if self.notify_r >= 0:
                try:
                    os.read(self.notify_r, 4096)
                except BlockingIOError:
                    pass
                if len(self.items) > 1 or self.ended:
                    self._poke()
            if self.items:
                return True, self.items.popleft()
            return False, None

    def close(self) -> None:
        with self.cond:
            for fd in (self.notify_r, self.notify_w):
                if fd >= 0:
                    os.close(fd)
            self.notify_r = self.notify_w = -1


class Channel:
    """One ssh connection to a remote ``vsh serve --stdio``."""

    def __init__(self, argv: list[str], target: str, make_handle):
        self.argv = argv                    # ssh's command line (a socket forward reuses it)
        self.target = target                # what error messages call the peer ("user@host")
        self.make_handle = make_handle      # (channel, tag, data) -> a handle, stream or iterator
        self.lock = _thread.allocate_lock()
        self.waiting: dict[int, SimpleQueue] = {}
        self.callbacks: dict[int, dict] = {}
        self.streams: dict[int, StreamBuffer] = {}
        self.released: list[int] = []
        self.next_id = 1
        self.next_promise = 0               # pipelined handles are named -1, -2... by this end
        self.held = bytearray()             # frames of pipelined calls not written yet
        self.pipelined: set[int] = set()    # request ids of pipelined calls not answered yet
        self.last_pipelined: SimpleQueue | None = None      # the reply queue of the latest one
        self.pipeline_failed: tuple[SimpleQueue, VshError] | None = None  # the first that failed, unmet
        self.dead: VshError | None = None
        self.hello_done = False
        self.stderr_lines: deque = deque(maxlen=20)
        from vsh.api.remote.process import Child

        try:
            self.proc = Child(argv)
        except OSError as exc:
            raise VshError("failed to connect to the hypervisor",
                           f"cannot run '{argv[0]}': {exc.strerror}") from None
        self.in_fd = self.proc.stdin
        self.reader = FrameReader(self.proc.stdout)
        self.read_lock = _thread.allocate_lock()
        self.threaded = False               # a reader thread takes the frames (once a stream is open)
        self.waiting[0] = SimpleQueue()
        self.stderr_open = _thread.allocate_lock()      # held while the stderr thread runs
        self.stderr_open.acquire()
        _thread.start_new_thread(self._read_stderr, ())

    # -- the threads ----------------------------------------------------------------------
    def _read_stderr(self) -> None:
        try:
            with open(self.proc.stderr, "rb", closefd=False) as err:
                for line in iter(err.readline, b""):
                    if self.hello_done:
                        try:
                            sys.stderr.write(line.decode(errors="replace"))
                            sys.stderr.flush()
                        except (OSError, ValueError):
                            pass
                    else:
                        self.stderr_lines.append(line.decode(errors="replace").rstrip())
        except (OSError, ValueError):
            pass
        finally:
            self.stderr_open.release()

    def _read_frames(self) -> None:
        with self.read_lock:
            while self._read_one():
                pass

    def _read_one(self, deadline: float | None = None) -> bool:
        """Read and dispatch one frame (the caller holds ``read_lock``); False once the channel ended."""
        try:
            frame = self.reader.next(deadline)
        except Timeout:
            raise
        except VshError as exc:
            self._lost(exc)
            return False
        if frame is None:
            self._lost(None)
            return False
        self._dispatch(frame)
        return True

    def _wait(self, queue: SimpleQueue, timeout: float | None = None):
        """The next frame for the call waiting on ``queue`` (None when the channel ended); the
        caller reads the channel itself until a stream makes a reader thread do it."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return queue.get_nowait()
            except Empty:
                pass
            if self.held:
                with self.lock:
                    self._send(None)            # the pipelined requests go out before we wait
            if self.threaded:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    return queue.get(timeout=left)
                except Empty:
                    raise Timeout("no answer in time") from None
            with self.read_lock:
                if not self.threaded and queue.empty() and not self._read_one(deadline):
                    return None if queue.empty() else queue.get()

    def _dispatch(self, frame: dict) -> None:
        if "s" in frame:
            with self.lock:
                buf = self.streams.setdefault(frame["s"], StreamBuffer())
            if "d" in frame:
                buf.push(frame["d"])
            else:
                buf.end(error_from_wire(frame["e"]) if "e" in frame else None)
            return
        with self.lock:
            rid = frame.get("id")
            queue = self.waiting.get(rid)
            if queue is not None and ("r" in frame or "e" in frame or "hello" in frame):
                del self.waiting[rid]               # the reply: the call's last frame
                if rid in self.pipelined:
                    self.pipelined.discard(rid)
                    if "e" in frame and self.pipeline_failed is None:
                        self.pipeline_failed = (queue, error_from_wire(frame["e"]))
        if queue is not None:
            queue.put(frame)

    def _lost(self, err: VshError | None) -> None:
        """The channel ended: every waiting call and open stream learns why."""
        status = self.proc.wait(5.0)
        self.stderr_done()
        if self.dead is None:
            self.dead = err or self.failure(status)
        with self.lock:
            queues = list(self.waiting.values())
            self.waiting.clear()
            streams = list(self.streams.values())
        for queue in queues:
            queue.put(None)
        for buf in streams:
            buf.end(self.dead)

    def stderr_done(self, timeout: float = 2.0) -> None:
        """Give the stderr thread a moment to take the last lines of a process that ended."""
        if self.stderr_open.acquire(timeout=timeout):
            self.stderr_open.release()

    def failure(self, status: int | None) -> VshError:
        """Why the channel ended, from ssh's exit status and what it (or the remote shell) said."""
        said = "; ".join(line for line in self.stderr_lines if line) or None
        if not self.hello_done:
            if status == 127:
                reason = f"the remote vsh was not found on '{self.target}'" + (f": {said}" if said else "")
            elif status == 255:
                reason = f"ssh to '{self.target}' failed" + (f": {said}" if said else f" (exit status {status})")
            else:
                reason = (f"the remote vsh on '{self.target}' ended before its hello"
                          + (f" (exit status {status})" if status is not None else "") + (f": {said}" if said else ""))
            return VshError("failed to connect to the hypervisor", reason)
        return VshError(f"End of file while reading data: the connection to '{self.target}' ended"
                        + (f": {said}" if said else ""))

    # -- calls ----------------------------------------------------------------------------
    def _send(self, frame: dict | None, hold: bool = False) -> None:
        """Send ``frame`` (the caller holds ``lock``) after the ones held; ``hold``: keep it until
        the next frame that is not held, or the next wait (one write for a pipelined call and the
        call that uses its handle). None: send what is held."""
        data = b"" if frame is None else dump_frame(frame)
        if hold:
            self.held += data
            return
        if self.held:
            data, self.held = bytes(self.held) + data, bytearray()
        try:
            write_all(self.in_fd, data)
        except OSError:
            if self.dead is None:      # the reader has not seen the end yet: say why as it would
                status = self.proc.wait(5.0)
                self.stderr_done()
                self.dead = self.failure(status)
            raise self.dead from None

    def hello(self, uri: str, readonly: bool) -> dict:
        """Say hello (protocol version, our vsh, the URI to open there); the server's hello."""
        from vsh import __version__

        queue = self.waiting[0]
        with self.lock:
            self._send({"hello": VERSION, "vsh": __version__, "uri": uri, "readonly": readonly})
        try:
            frame = self._wait(queue, HELLO_TIMEOUT)
        except Timeout:
            self.close(wait=0.0)
            raise Timeout("failed to connect to the hypervisor",
                          f"no answer from the remote vsh on '{self.target}' within {HELLO_TIMEOUT:g} s") from None
        if frame is None:
            raise self.dead
        if "e" in frame:
            self.close()
            raise error_from_wire(frame["e"])
        if frame.get("hello") != VERSION:
            self.close()
            raise ProtocolError("failed to connect to the hypervisor",
                                f"remote protocol version mismatch: vsh {__version__} speaks {VERSION}, "
                                f"the remote vsh {frame.get('vsh')} speaks {frame.get('hello')}")
        self.hello_done = True
        for line in self.stderr_lines:
            if line.startswith("error:") or line.startswith("warning:"):
                sys.stderr.write(line + "\n")
        return frame

    def pipeline(self, oid: int, method: str, args=(), get: bool = False) -> tuple[int, SimpleQueue]:
        """Send a call whose result is a handle without waiting for it: the server keeps that handle
        as the new negative id returned, which later requests may name at once; the reply (the
        handle's attributes, or why the call failed) arrives on the queue returned."""
        with self.lock:
            self.next_promise -= 1
            promised = self.next_promise
        queue = self._request(oid, method, args, None, get, {}, {}, promised)
        return promised, queue

    def settle_all(self) -> None:
        """Wait for the replies of every pipelined call; raise the first error among them that no
        caller has met yet (see :meth:`PromisedHandle._settle`)."""
        queue, self.last_pipelined = self.last_pipelined, None
        if queue is not None:
            frame = self._wait(queue)
            if frame is not None:
                queue.put(frame)            # for the handle that is still waiting for it
        failed, self.pipeline_failed = self.pipeline_failed, None
        if failed is not None:
            failed[1].deferred = True
            raise failed[1]

    def met(self, queue: SimpleQueue, error: VshError | None = None) -> None:
        """The caller of the pipelined call answered on ``queue`` met its reply (``error``): that
        error is not news any more, nor the same one of the call it came from (a sub-handle of a
        lookup that failed answers the lookup's error)."""
        failed = self.pipeline_failed
        if failed is not None and (failed[0] is queue or (error is not None and failed[1].lines == error.lines)):
            self.pipeline_failed = None
        if self.last_pipelined is queue:
            self.last_pipelined = None

    def call(self, oid: int, method: str, args=(), kwargs=None, get: bool = False):
        """Run ``method`` of the server's handle ``oid`` (``get``: read that attribute); its result."""
        callbacks: dict = {}
        files: dict = {}
        queue = self._request(oid, method, args, kwargs, get, callbacks, files)
        return self._reply(queue, callbacks, files)

    def settle(self, queue: SimpleQueue):
        """The reply to a :meth:`pipeline` call (read off the channel if it is not there yet): the
        handle as the wire has it (``{"$h": id, "t": …, "a": {…}}``), or its error raised."""
        return self._reply(queue, {}, {}, raw=True)

    def _request(self, oid: int, method: str, args, kwargs, get: bool, callbacks: dict, files: dict,
                 promised: int | None = None) -> SimpleQueue:
        """Send one request; the queue its reply (and callbacks, file frames) will arrive on."""
        def special(value):
            from vsh.api.remote.files import LocalFile

            if getattr(value, "_channel", None) is self:    # a handle of this connection
                return {"$h": value._oid}
            if isinstance(value, LocalFile):
                files[len(files)] = value
                return {"$f": len(files) - 1, "out": True} if value.path else {"$f": len(files) - 1}
            if callable(value) or (hasattr(value, "update") and hasattr(value, "finish")):
                callbacks[len(callbacks)] = value
                return {"$cb": len(callbacks) - 1}
            raise ProtocolError(f"cannot send a {type(value).__name__} over the remote protocol")

        queue = SimpleQueue()
        with self.lock:
            if self.dead is not None:
                raise self.dead
            rid = self.next_id
            self.next_id += 1
            frame = {"id": rid, "h": [oid]}
            if promised is not None:
                frame["as"] = promised
            if get:
                frame["get"] = method
            else:
                frame["m"] = method
                if args:
                    frame["a"] = encode(list(args), special)
                if kwargs:
                    frame["k"] = encode(kwargs, special)
            self.waiting[rid] = queue
            if promised is not None:
                self.pipelined.add(rid)
                self.last_pipelined = queue
            if self.released:
                frame["release"], self.released = self.released, []
            sent = [fid for fid, f in files.items() if f.path is None]
            for fid in sent:
                for piece in file_frames(files[fid].fd, {"put": fid}, files[fid].length, files[fid].sparse):
                    self._send(piece)
            if sent:
                frame["files"] = sent
            self._send(frame, hold=promised is not None)
        return queue

    def _reply(self, queue: SimpleQueue, callbacks: dict, files: dict, raw: bool = False):
        failed = None
        try:
            while True:
                reply = self._wait(queue)
                if reply is None:
                    raise self.dead
                if "cb" in reply:
                    self._callback(callbacks, reply)
                    continue
                if "file" in reply:
                    target = files.get(reply["file"])
                    if target is not None and target.path and failed is None:
                        try:
                            target.receive(reply)
                        except VshError as err:
                            failed = err        # the rest of the file still comes: take it off the channel
                    continue
                if "e" in reply:
                    raise error_from_wire(reply["e"])
                if failed is not None:
                    raise failed
                if raw:
                    return reply.get("r")
                return decode(reply.get("r"), lambda tag, data: self.make_handle(self, tag, data))
        except BaseException:
            for f in files.values():
                f.abandon()
            raise

    @staticmethod
    def _callback(callbacks: dict, frame: dict) -> None:
        target = callbacks.get(frame.get("cb"))
        method = frame.get("m")
        if target is None or method not in CALLBACK_METHODS:
            return
        args = decode(frame.get("a") or [])
        (target if method is None else getattr(target, method))(*args)

    def stream(self, sid: int) -> StreamBuffer:
        with self.lock:
            buf = self.streams.setdefault(sid, StreamBuffer())
            if self.dead is not None:
                buf.end(self.dead)
            start = not self.threaded
            self.threaded = True
        if start:
            import threading

            threading.Thread(target=self._read_frames, daemon=True, name="vsh-remote-reader").start()
        return buf

    def forget_stream(self, sid: int) -> None:
        with self.lock:
            buf = self.streams.pop(sid, None)
        if buf is not None:
            buf.close()

    def release(self, oid: int) -> None:
        """The client dropped handle ``oid``: the server may too (sent with the next request)."""
        self.released.append(oid)

    def close(self, wait: float = 5.0) -> None:
        """End the session: ssh's stdin closes, the remote vsh ends, ssh exits (killed after ``wait`` s)."""
        if self.dead is None:
            self.dead = VshError("the connection to the remote vsh is closed")
        try:
            self.proc.close_stdin()
        except OSError:
            pass
        if self.proc.wait(wait) is None:
            self.proc.kill()
            self.proc.wait()
        import atexit

        atexit.unregister(self.close)
        self.stderr_done()
        if not self.threaded:               # (a reader thread may still be reading stdout)
            self.proc.close()
