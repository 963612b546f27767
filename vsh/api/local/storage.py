"""The local driver: storage pools and their volumes."""

from __future__ import annotations

from vsh.api.storage import Storage


class LocalStorage(Storage):
    def __init__(self, conn):
        self.conn = conn
