"""The store's UUID index: which persistent domain holds a UUID, without reading every config.

``define`` must refuse a UUID that another domain holds, and a lookup by UUID must find its
domain; reading every config for that made one ``define`` cost O(domains) (1.4 s at 8,500).
The index is a directory, ``<config>/.index/uuids/``, of symbolic links named by UUID
(libvirt's spelling) whose target is the name of the domain that holds it (a link keeps its
target in the inode: 10,000 of them take no data blocks), and ``<config>/.index/.stamp``: the
identity (inode, mtime, ctime) of the links directory and of ``<config>/domains`` when the
links last described every config.

What is trusted, and when:

* A link is a hint. A positive answer is checked against the config it names (one read); a
  link whose config is gone or holds another UUID is stale and answers nothing.
* "No domain holds this UUID" is trusted only while the stamp matches both directories and no
  writer is at work. Every vsh writer of configs (``Store.write_config``, ``undefine``,
  ``rename``) works under the index lock: it creates ``<config>/.index/.busy`` before its first
  change (:meth:`UuidIndex.begin`), writes a UUID's link before the config that holds it (so
  every config has its link at every step), and when done writes the stamp, then removes
  ``.busy``. A writer killed in between leaves ``.busy`` behind; a config added, removed or
  renamed by anything else (an older vsh, a copy by hand) changes the directory, so the stamp
  no longer matches. Either way the next user rebuilds the links from the configs, under the
  lock, in a new directory that replaces the old one with a rename.
* A rename writes the new config before removing the old one; it notes itself first in
  ``<config>/.index/renaming``, so the rebuild after a crash finishes it instead of leaving
  two configs with one UUID.

What it cannot see: a config whose UUID is edited in place (not by vsh, which only ever
replaces configs by rename), as no directory entry changes.
"""

from __future__ import annotations

import os

from vsh.core.files import Lock, atomic_write, ensure_private_dir, fsync_dir, remove_file

INDEX_DIR = ".index"
LINKS = "uuids"
STAMP = ".stamp"
BUSY = ".busy"              # a writer at work (or killed at work): the index is not to be trusted
RENAMING = "renaming"       # a rename under way: [old name, new name] (JSON)


def uuid_key(uuid: str | None) -> str:
    """A UUID to compare with another: libvirt's spelling (stores written before define normalised
    UUIDs may hold other spellings of the same one)."""
    from vsh.core.names import is_uuid, normal_uuid

    return normal_uuid(uuid) if uuid and is_uuid(uuid) else (uuid or "").lower()


def link_name(uuid: str) -> str:
    """The file name of a UUID's link: the UUID in libvirt's spelling, or for a malformed legacy
    value (which may hold any character, and be of any length) ``x`` and its SHA-256."""
    key = uuid_key(uuid)
    if len(key) == 36 and all(c in "0123456789abcdef-" for c in key):
        return key
    import hashlib

    return "x" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def _dir_identity(path: str) -> str | None:
    """``inode mtime ctime`` of a directory (``none`` when it is missing, None when unreadable)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "none"
    except OSError:
        return None
    return f"{st.st_ino} {st.st_mtime_ns} {st.st_ctime_ns}"


class UuidIndex:
    """The UUID index of one store (see the module's docstring). ``with index:`` holds its lock
    (re-entrant within this object), after which the index is fresh."""

    def __init__(self, store):
        import _thread      # threading's own base: no import cost for a single-shot define

        self.store = store
        self.root = os.path.join(store._config, INDEX_DIR)
        self.links = os.path.join(self.root, LINKS)
        self._mutex = _thread.RLock()     # one Store may serve threads (the web console's pool)
        self._holder: int | None = None     # the thread that holds the index
        self._held = 0
        self._lock: Lock | None = None
        self._begun = False

    def _mine(self) -> bool:
        import _thread

        return self._holder == _thread.get_ident()

    # -- the lock and the stamp -----------------------------------------------------------
    def __enter__(self) -> "UuidIndex":
        import _thread

        self._mutex.acquire()
        if self._held == 0:
            try:
                lock = Lock(os.path.join(self.root, "lock"), 30.0, "the domain index is locked by another vsh process")
                lock.__enter__()
                self._lock = lock
                self._holder = _thread.get_ident()
                if not self.fresh():
                    self.rebuild()
            except BaseException:
                self._release()
                raise
        self._held += 1
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._held -= 1
        if self._held:
            self._mutex.release()
            return
        try:
            if self._begun and exc_type is None:
                self._write_stamp(self._identity())
                remove_file(os.path.join(self.root, BUSY))
            elif self._begun and not os.path.exists(os.path.join(self.root, RENAMING)):
                # a writer that failed (disk full...) kept a link for every config at every step:
                # the stamp stays as it was, and matches unless a directory changed (then: rebuild)
                remove_file(os.path.join(self.root, BUSY))
        finally:
            self._release()

    def _release(self) -> None:
        self._begun = False
        self._holder = None
        try:
            if self._lock is not None:
                self._lock.__exit__(None, None, None)
                self._lock = None
        finally:
            self._mutex.release()

    def _identity(self) -> str | None:
        links, domains = _dir_identity(self.links), _dir_identity(self.store._domains)
        return None if links is None or domains is None else f"{links} {domains}"

    def fresh(self) -> bool:
        """The links describe every config: no writer is (or died) at work, and the stamp
        matches both directories."""
        try:
            with open(os.path.join(self.root, STAMP), "rb") as fh:
                stamp = fh.read().decode("ascii", "replace").strip()
        except OSError:
            return False
        return stamp == self._identity() and not os.path.lexists(os.path.join(self.root, BUSY))

    def begin(self) -> None:
        """About to change configs or links (index lock held): until this writer is done, nobody
        trusts the index (``.busy`` is there; a crash from here on means a rebuild)."""
        if not self._mine():
            raise RuntimeError("UuidIndex.begin without the index lock")
        if not self._begun:
            os.close(os.open(os.path.join(self.root, BUSY), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
            self._begun = True

    def _write_stamp(self, identity: str | None) -> None:
        if identity is not None:
            atomic_write(os.path.join(self.root, STAMP), identity + "\n", durable=False)

    # -- reading --------------------------------------------------------------------------
    def hint(self, uuid: str) -> str | None:
        """The name the index links ``uuid`` to (unchecked), or None."""
        try:
            return os.readlink(os.path.join(self.links, link_name(uuid)))
        except OSError:
            return None

    def holds(self, name: str, uuid: str) -> bool:
        """Whether ``name``'s config holds ``uuid`` (one read)."""
        other = self.store.config_uuid(name)
        return other is not None and uuid_key(other) == uuid_key(uuid)

    def owner(self, uuid: str | None) -> str | None:
        """The persistent domain whose config holds ``uuid``, or None; checked against that
        config. A stale index is rebuilt first; when the store cannot be written, every config
        is read instead."""
        if not uuid or not os.path.isdir(self.store._domains):
            return None
        if not self._mine() and not self.fresh():
            from vsh.core.errors import VshError

            try:
                with self:
                    return self.owner(uuid)
            except (OSError, VshError):
                return next((name for name in sorted(self.store.persistent_names()) if self.holds(name, uuid)), None)
        name = self.hint(uuid)
        return name if name is not None and self.holds(name, uuid) else None

    # -- writing (index lock held) --------------------------------------------------------
    def link(self, uuid: str | None, name: str) -> None:
        """Record that ``name`` holds ``uuid`` (before its config is written)."""
        if not uuid:
            return
        path = os.path.join(self.links, link_name(uuid))
        try:
            if os.readlink(path) == name:
                return
        except OSError:
            pass
        self.begin()
        ensure_private_dir(self.links)
        from vsh.core.files import TMP_PREFIX

        tmp = os.path.join(self.links, f"{TMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")
        os.symlink(name, tmp)
        try:
            os.replace(tmp, path)
        except BaseException:
            remove_file(tmp)
            raise

    def unlink(self, uuid: str | None, name: str) -> None:
        """Forget ``uuid``'s link if it names ``name`` (after its config is gone)."""
        path = os.path.join(self.links, link_name(uuid)) if uuid else None
        try:
            if path is not None and os.readlink(path) == name:
                self.begin()
                os.unlink(path)
        except OSError:
            pass

    def renaming(self, old: str, new: str) -> None:
        """Note a rename about to happen (``old``'s config is rewritten as ``new``'s, then
        removed): the rebuild after a crash finishes it, or finds that it never began."""
        import json

        self.begin()
        atomic_write(os.path.join(self.root, RENAMING), json.dumps([old, new]))

    def finish_rename(self, old: str, new: str) -> None:
        """The rest of a rename once ``new``'s config is written: ``old``'s goes, autostart follows."""
        store = self.store
        remove_file(os.path.join(store._domains, f"{old}.xml"))
        if store.autostart(old):
            store.set_autostart(new, True)
            store.set_autostart(old, False)
        fsync_dir(store._domains)
        remove_file(os.path.join(self.root, RENAMING))

    def _recover_rename(self) -> None:
        import json

        try:
            with open(os.path.join(self.root, RENAMING), "rb") as fh:
                names = json.loads(fh.read())
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            names = None
        store = self.store
        if (isinstance(names, list) and len(names) == 2
                and all(isinstance(n, str) and n and "/" not in n and not n.startswith(".") for n in names)):
            old, new = names
            uuid = store.config_uuid(new)
            if uuid is not None and store.config_uuid(old) in (None, uuid):
                self.finish_rename(old, new)        # the new config was written: go forward
                return
        remove_file(os.path.join(self.root, RENAMING))      # else it never began

    def rebuild(self) -> int:
        """Make the links again from the configs (index lock held), in a new directory that
        replaces the old one with a rename, after finishing what killed writers left (a rename
        half done, their temporary files). When two configs hold one UUID (a store damaged
        before the index), the first name in sorted order gets the link. Returns how many
        links there are."""
        import shutil

        from vsh.core.files import remove_stale_tmp

        store = self.store
        ensure_private_dir(self.root)
        self.begin()                                 # until the new stamp: a crash means a rebuild
        remove_file(os.path.join(self.root, STAMP))
        self._recover_rename()
        remove_stale_tmp(store._domains)
        domains = _dir_identity(store._domains)      # before reading: a change meanwhile shows
        for entry in os.listdir(self.root):          # what an earlier rebuild left when killed
            if entry.startswith(LINKS + "."):
                shutil.rmtree(os.path.join(self.root, entry), ignore_errors=True)
        new = ensure_private_dir(os.path.join(self.root, f"{LINKS}.new-{os.getpid()}"))
        count = 0
        for name in sorted(store.persistent_names()):
            uuid = store.config_uuid(name)
            path = os.path.join(new, link_name(uuid)) if uuid else None
            if path is not None and not os.path.lexists(path):
                os.symlink(name, path)
                count += 1
        old = os.path.join(self.root, f"{LINKS}.old-{os.getpid()}")
        try:
            os.rename(self.links, old)
        except FileNotFoundError:
            old = None
        os.rename(new, self.links)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        fsync_dir(self.root)
        links = _dir_identity(self.links)
        if links is not None and domains is not None:
            self._write_stamp(f"{links} {domains}")
            remove_file(os.path.join(self.root, BUSY))
            self._begun = False
        return count
