"""The local driver: the host: node facts, capabilities, domain capabilities, validation."""

from __future__ import annotations

from vsh.api.host import Host


class LocalHost(Host):
    def __init__(self, conn):
        self.conn = conn
