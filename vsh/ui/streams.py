"""Several event streams read as one (``event``, ``qemu-monitor-event``)."""

from __future__ import annotations


def merged(streams, timeout: float | None):
    """``(key, item)`` from every ``(key, iterator)`` of ``streams`` as they come, each read in a
    thread of its own, until all have ended; a stream that fails with a VshError just ends.
    With no streams, wait ``timeout`` seconds (when given) and end."""
    import queue
    import threading

    from vsh.core.errors import VshError

    q: queue.Queue = queue.Queue()
    done = object()

    def pump(key, stream):
        try:
            for item in stream:
                q.put((key, item))
        except VshError:
            pass            # the domain's supervisor went away: its stream ends
        finally:
            q.put((key, done))

    streams = list(streams)
    if not streams and timeout is not None:
        import time

        time.sleep(timeout)
    for key, stream in streams:
        threading.Thread(target=pump, args=(key, stream), daemon=True).start()
    left = len(streams)
    while left:
        key, item = q.get()
        if item is done:
            left -= 1
            continue
        yield key, item
