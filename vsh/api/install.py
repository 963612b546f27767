"""Creating domains from media (virt-install): plan the XML and the disks, then define and start."""

from __future__ import annotations

from abc import ABC


class Installer(ABC):
    """Creating domains from media (virt-install): plan the XML and the disks, then define and start."""
