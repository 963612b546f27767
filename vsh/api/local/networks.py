"""The local driver: virtual networks."""

from __future__ import annotations

from vsh.api.networks import Networks


class LocalNetworks(Networks):
    def __init__(self, conn):
        self.conn = conn
