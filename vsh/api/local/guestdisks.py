"""The local driver: a guest-disk session over :mod:`vsh.guestfs`."""

from __future__ import annotations

from vsh.api.guestdisks import GuestDisks


class LocalGuestDisks(GuestDisks):
    def __init__(self, conn, readonly: bool = True):
        self.conn = conn
        self.readonly = readonly
