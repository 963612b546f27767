"""`vsh serve --stdio` with one fake at its process boundary, for the unit tests of the remote
protocol's console streams: every domain's console is an echo (what is written comes back
upper-cased) over a socket pair, instead of a running guest's pty. Everything else is the real
server over the real local driver."""

import os
import socket
import sys

from vsh.api.lifecycle import ConsoleStream
from vsh.api.local.domain import LocalDomain


class EchoConsole(ConsoleStream):
    def __init__(self, name):
        self.name = name
        self.ours, self.theirs = socket.socketpair()
        self.ours.setblocking(False)
        self.closed = False

    def fileno(self):
        return self.ours.fileno()

    def read(self, size=65536):
        try:
            data = self.ours.recv(size)
        except BlockingIOError:
            return None
        return data

    def write(self, data):
        if data == b"quit\n":
            self.theirs.close()         # the guest side goes away: the stream ends
            return
        self.theirs.sendall(data.upper())

    @property
    def taken_over(self):
        return False

    def close(self):
        self.ours.close()
        if self.theirs.fileno() >= 0:
            self.theirs.close()


LocalDomain.open_console = lambda self, devname=None, force=False: EchoConsole(self.name)

from vsh.api.serve import serve_stdio  # noqa: E402

sys.exit(serve_stdio(os.environ.get("PEER_URI")))
