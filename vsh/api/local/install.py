"""The local driver: creating domains from media (virt-install): plan the XML and the disks, then define and start."""

from __future__ import annotations

from vsh.api.install import Installer


class LocalInstaller(Installer):
    def __init__(self, conn):
        self.conn = conn
