"""vsh web: the web console, a front end like the shell over the operations API (``vsh.api``).

``vsh web`` (declared in :mod:`vsh.commands.web`) hands its connection to :func:`run`, which
serves the page in ``static/`` and the JSON API of :mod:`vsh.web.routes`, the live updates of
:mod:`vsh.web.live` and the consoles of :mod:`vsh.web.consoles` until SIGINT or SIGTERM.
See docs/web.md.
"""

from __future__ import annotations


def run(conn, host: str = "127.0.0.1", port: int = 0, print_url: bool = False,
        open_browser: bool = False, out=None, err=None) -> int:
    """Serve the web console for ``conn`` on ``host:port`` (0: a free port); the exit status."""
    try:
        from vsh.web.server import run as serve
    except ModuleNotFoundError as exc:
        from vsh.core.errors import VshError

        raise VshError(f"the web console needs the Python package '{exc.name}' (scripts/setup installs it)") from None

    return serve(conn, host, port, print_url=print_url, open_browser=open_browser, out=out, err=err)
