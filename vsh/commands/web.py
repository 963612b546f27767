"""``vsh web``: the web console, a front end in the browser over the same connection.

The declaration lives here like every command's; the server is the front end :mod:`vsh.web`,
which the shell runs when the handler hands the process over to it.
"""

from __future__ import annotations

from vsh.core.errors import InvalidArgument
from vsh.core.output import FrontEnd
from vsh.registry import Opt, command


def parse_listen(text: str | None) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; PORT 0 or absent: a free one) → (host, port)."""
    if not text:
        return "127.0.0.1", 0
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, "0"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(f"invalid argument: listen address '{text}' is not HOST:PORT")
    return host, int(port)


@command("web", group="virsh", summary="serve the web console on a local address",
         opts=[Opt("listen", kind="string", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1 and a free port)"),
               Opt("print-url", kind="bool", help="print only the URL line (with its one-time token)"),
               Opt("open", kind="bool", help="open the URL with your web browser as well ($BROWSER, else the desktop's default)")],
         description="Serve the web console (VM list, VM pages with serial and graphical consoles,\n"
                     "snapshots, XML, usage graphs, networks, pools) until SIGINT or SIGTERM.\n"
                     "The first line of stdout is the URL with a one-time token: the browser that\n"
                     "opens it first gets a session cookie. Listening on another address than\n"
                     "loopback prints a warning: anyone who reaches it may try the page.",
         examples=("web", "web --listen 127.0.0.1:8080", "-c vsh:///system web --print-url"),
         mutating=True)
def web(ctx, listen=None, print_url=False, open=False):
    host, port = parse_listen(listen)
    return FrontEnd("web", {"host": host, "port": port, "print_url": print_url, "open_browser": open})
