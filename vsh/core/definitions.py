"""What storage pools and networks share: definitions kept as ``NAME.xml`` in one directory,
with autostart marks as empty files in ``autostart/NAME``, listed and looked up in virsh's order."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod

from vsh.core.errors import VshError
from vsh.core.names import is_uuid_arg, normal_uuid


class DefinitionDir(ABC):
    """A directory of definitions (``self.dir``, ``self.autostart_dir``); the objects have
    ``name`` and ``uuid`` (in libvirt's spelling)."""

    dir: str
    autostart_dir: str

    @abstractmethod
    def _load(self, name: str):
        """The object called ``name``, or None."""

    @abstractmethod
    def _load_all(self) -> list:
        """Every object, in no order."""

    @abstractmethod
    def _not_found(self, ident: str) -> VshError:
        """The error for an object that is not there (libvirt's wording differs by kind)."""

    @abstractmethod
    def lock(self, timeout: float = 30.0):
        """The lock over this directory's definitions."""

    def ensure_default(self) -> None:
        """Define this kind's ``default`` the first time the store uses it (once: a marker file
        remembers it, also when the user has since removed or replaced the default)."""
        marker = os.path.join(self.dir, ".initialized")
        if os.path.exists(marker):
            return
        with self.lock():
            if os.path.exists(marker):
                return
            self._make_default(self._load_all())
            from vsh.core.store import atomic_write

            atomic_write(marker, b"")

    @abstractmethod
    def _make_default(self, existing: list) -> None:
        """Write the ``default`` object unless ``existing`` makes that wrong (under the lock)."""

    def list(self) -> list:
        """Every object, sorted by name the way virsh sorts (case-insensitive)."""
        return sorted(self._load_all(), key=lambda o: (o.name.lower(), o.name))

    def names(self) -> list[str]:
        return [o.name for o in self.list()]

    def by_name(self, name: str):
        found = self._load(name)
        if found is None:
            raise self._not_found(name)
        return found

    def get(self, ident: str):
        """By UUID, then by name (virsh's order)."""
        if is_uuid_arg(ident):
            wanted = normal_uuid(ident)
            for obj in self._load_all():
                if obj.uuid == wanted:
                    return obj
        found = self._load(ident) if ident else None
        if found is None:
            raise self._not_found(ident)
        return found

    def _write_autostart(self, name: str, enabled: bool) -> None:
        from vsh.core.store import atomic_write, ensure_private_dir, remove_file

        path = os.path.join(self.autostart_dir, name)
        if enabled:
            ensure_private_dir(self.autostart_dir)
            atomic_write(path, b"")
        else:
            remove_file(path)
