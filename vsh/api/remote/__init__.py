"""The remote driver: ``vsh+ssh://[user@]host[:port]/session`` (or ``/system``) runs every API call
on another host's vsh, over one ssh connection and no daemon (``docs/remote-protocol.md``).

``ssh … host vsh serve --stdio`` is started once per connection; the remote vsh opens
``vsh:///session`` (the ssh user's own store) or ``vsh:///system`` (root's store; ssh as root)
with the URI's other query parameters (``?root=DIR``). Client-side parameters:
``keyfile`` (ssh ``-i``) and ``command`` (the remote vsh, default ``vsh``: a command line for
the remote shell, e.g. ``/opt/vsh/bin/vsh``). The ssh client itself is ``$VSH_SSH`` (words,
default ``ssh``), with the user's own configuration and agent.
"""

from __future__ import annotations

#: ssh's ConnectTimeout (s): an unreachable host fails before the hello's own deadline.
CONNECT_TIMEOUT = 8
#: query parameters the client keeps (the others go to the remote vsh's URI)
CLIENT_PARAMS = ("keyfile", "command")


def ssh_argv(uri) -> list[str]:
    """The command line that reaches the remote vsh for the parsed ``uri``."""
    import os

    from vsh.core.errors import VshError

    if not uri.host:
        raise VshError("failed to connect to the hypervisor", f"no host in connection URI '{uri.text}'")
    if uri.host.startswith("-"):
        raise VshError("failed to connect to the hypervisor", f"invalid host name in connection URI '{uri.text}'")
    words = os.environ.get("VSH_SSH") or "ssh"
    if any(c in words for c in "'\"\\"):
        import shlex                        # only for quoted words: it imports re

        argv = shlex.split(words)
    else:
        argv = words.split()
    argv += ["-T", "-e", "none", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}"]
    if uri.port:
        argv += ["-p", str(uri.port)]
    if uri.user:
        argv += ["-l", uri.user]
    if uri.query.get("keyfile"):
        argv += ["-i", uri.query["keyfile"]]
    command = uri.query.get("command") or "vsh"
    return argv + ["--", uri.host, f"{command} serve --stdio"]


def remote_uri(uri) -> str:
    """The URI the remote vsh opens: ``vsh:///session`` or ``vsh:///system`` with the rest of the query."""
    from vsh.core.errors import VshError

    path = uri.path.rstrip("/") or "/"
    if path not in ("/session", "/system"):
        raise VshError("failed to connect to the hypervisor",
                       f"unknown connection path '{path}' in '{uri.text}': use /session or /system")
    query = "&".join(f"{key}={_quote(value)}" for key, value in uri.query.items() if key not in CLIENT_PARAMS)
    return f"vsh://{path}" + (f"?{query}" if query else "")


def _quote(value: str) -> str:
    """``value`` percent-encoded for a URI's query (urllib only when it needs it: start-up time)."""
    if all(c.isalnum() or c in "/:,.-_~+@" for c in value):
        return value
    from urllib.parse import quote

    return quote(value, safe="/:,")


def open(uri, readonly: bool = False):
    """A connection to the remote vsh for ``vsh+ssh://`` URIs; None for every other ``vsh`` URI."""
    if uri.transport != "ssh":
        return None
    import atexit

    from vsh.api.base import Connection
    from vsh.api.remote.channel import Channel
    from vsh.api.remote.handles import ConnectionHandle, make_handle, proxy_class

    target = f"{uri.user}@{uri.host}" if uri.user else uri.host
    wanted = remote_uri(uri)
    channel = Channel(ssh_argv(uri), target, make_handle)
    channel.hello(wanted, readonly)
    conn = proxy_class(Connection, ConnectionHandle)(channel, 0, {"uri": uri.text, "readonly": readonly})
    atexit.register(channel.close, 2.0)     # a connection nobody closed ends with vsh (or its handle)
    return conn
