"""virt-install through a libvirt connection: the OS table only.

vsh's install planner lays out disk images, UEFI variable stores and cloud-init seeds in the
embedded store's directories; through libvirt those would be volumes of the connection's pools,
which the planner does not make. Planning and creating refuse, in libvirt's words, and say what
works instead.
"""

from __future__ import annotations

from vsh.api.install import Installer
from vsh.api.libvirt.lv import unsupported

_INSTEAD = "define the XML 'virt-install --print-xml' makes on a vsh:/// connection, or use virt-install -c URI"


class LibvirtInstaller(Installer):
    def __init__(self, conn):
        self.conn = conn

    def os_variants(self) -> list[dict]:
        from vsh.core.installopts import OS_VARIANTS

        return [v._asdict() for v in OS_VARIANTS.values()]

    def plan(self, options: dict, check: bool = False) -> dict:
        err = unsupported("virt-install on a libvirt connection")
        err.hint = _INSTEAD
        raise err

    def create(self, options: dict, autostart: bool = False, transient: bool = False) -> dict:
        return self.plan(options, check=True)

    def start(self, made: dict) -> dict:
        """Start what :meth:`create` made (nothing, on this driver: it refuses first); undone if that
        fails."""
        try:
            return self.conn.lookup_domain(made["name"]).start()
        except Exception:
            self.discard(made)
            raise

    def discard(self, made: dict) -> None:
        name = made.get("name")
        if name:
            try:
                self.conn.lookup_domain(name).undefine()
            except Exception:       # discard skips what fails, as the API says
                pass
