"""The embedded store: persistent configs, data and runtime state of one connection.

Layout (DESIGN.md): persistent domain configs in ``<config>/domains/NAME.xml``, which
domain holds which UUID in ``<config>/.index/`` (:mod:`vsh.core.uuidindex`, docs/store.md),
autostart marks in ``<config>/autostart/NAME``, images and pools under
``<data>``, and one runtime directory per running domain in
``<runtime>/NAME/`` (state.json, sockets, logs, live.xml) written by the
domain's supervisor.

Everything is private to its user (directories 0700, files 0600). Config writes
are atomic (temp file, fsync, rename, fsync of the directory) and happen under a
per-domain lock, so a failed or interrupted define leaves nothing behind.

Start-up cost matters here (every single-shot command opens the store): the
listing and lookup paths work on plain strings with ``os``; the ``Path``
attributes (``config_dir``, ``runtime_root``, ...) import pathlib on first use.
"""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, VshError, XMLError
# the file primitives have their own home; these names stay importable from here
from vsh.core.files import (TMP_PREFIX, Lock, atomic_write, ensure_private_dir, fsync_dir,  # noqa: F401
                            remove_file, remove_stale_tmp)
# the runtime state has its own home; these names stay importable from here
from vsh.core.runtime import ACTIVE_STATES, Runtime, boot_id, pid_alive, read_runtime  # noqa: F401

SCHEME = "vsh"


def _xdg(var: str, default: str) -> str:
    value = os.environ.get(var)
    if value and os.path.isabs(value):
        return value
    return os.path.expanduser(default)


def _path(text: str):
    from pathlib import Path

    return Path(text)


class Uri:
    """A parsed connection URI: ``vsh:///session`` or ``vsh:///system``, optionally ``?root=DIR``."""

    def __init__(self, text: str, kind: str, root: str | None = None):
        self.text = text
        self.kind = kind  # session | system
        self.root = root  # a directory that holds the whole store, or None

    @classmethod
    def parse(cls, text: str | None) -> "Uri":
        from vsh.core.uri import Uri as Generic

        return cls.from_uri(Generic.parse(text))

    @classmethod
    def from_uri(cls, uri) -> "Uri":
        """The store a parsed ``vsh:`` URI (:class:`vsh.core.uri.Uri`) names."""
        from vsh.core.uri import unsupported

        text = uri.text
        if uri.scheme != SCHEME or uri.transport or uri.user or uri.port or uri.host not in ("", "localhost"):
            raise unsupported(text)
        path = uri.path.strip("/")
        if path not in ("session", "system"):
            raise VshError("failed to connect to the hypervisor",
                           f"unknown connection path '/{path}' in '{text}': use /session or /system")
        root = None
        if "root" in uri.query:
            root_text = uri.query["root"]
            if not os.path.isabs(root_text):
                raise VshError("failed to connect to the hypervisor",
                               f"root directory in '{text}' must be an absolute path")
            root = os.path.normpath(root_text)
        return cls(text=text, kind=path, root=root)


class DomainRef:
    """A domain found by name, id or UUID."""

    __slots__ = ("name", "persistent", "runtime")

    def __init__(self, name: str, persistent: bool, runtime: Runtime | None):
        self.name = name
        self.persistent = persistent
        self.runtime = runtime

    def __repr__(self) -> str:
        return f"DomainRef({self.name!r}, persistent={self.persistent})"

    @property
    def active(self) -> bool:
        return self.runtime is not None and self.runtime.active

    @property
    def id(self) -> int | None:
        return self.runtime.id if self.runtime else None

    @property
    def state(self) -> str:
        return self.runtime.state if self.runtime and self.active else "shutoff"

    @property
    def reason(self) -> str:
        if self.runtime is None:
            return "unknown"
        return self.runtime.reason


# The longest suffix the store adds to a domain name on disk is ".lock"; a file name
# may have at most 255 bytes.
MAX_STORED_NAME = 255 - len(".lock")


def check_store_name(name: str) -> None:
    """A name that is valid (core.domain.check_name) and fits in the store's file names."""
    from vsh.core.domain import check_name

    check_name(name)
    size = len(name.encode("utf-8"))
    if size > MAX_STORED_NAME:
        raise InvalidArgument(f"name is too long ({size} bytes): the store keeps it in file names, "
                              f"which allows at most {MAX_STORED_NAME} bytes")


class Store:
    """One connection's directories and the operations on them."""

    def __init__(self, uri: Uri):
        self.uri_info = uri
        self.uri = uri.text
        self._facts_cache: dict = {}  # path -> ((inode, size, mtime_ns), facts)
        if uri.root is not None:
            base = os.fspath(uri.root)
            config, data, run = (os.path.join(base, "config"), os.path.join(base, "data"),
                                 os.path.join(base, "run"))
        elif uri.kind == "system":
            config, data, run = "/etc/vsh", "/var/lib/vsh", "/run/vsh"
        else:
            config = os.path.join(_xdg("XDG_CONFIG_HOME", "~/.config"), "vsh")
            data = os.path.join(_xdg("XDG_DATA_HOME", "~/.local/share"), "vsh")
            runtime = os.environ.get("XDG_RUNTIME_DIR")
            if runtime and os.path.isdir(runtime):
                run = os.path.join(runtime, "vsh")
            else:
                run = f"/tmp/vsh-{os.geteuid()}"
        # plain strings for the hot paths; the Path properties below are for everyone else
        self._config = config
        self._data = data
        self._run = run
        self._domains = os.path.join(config, "domains")
        self._autostart = os.path.join(config, "autostart")
        self._locks = os.path.join(config, ".locks")

    config_dir = property(lambda self: _path(self._config), doc="persistent configuration (Path)")
    data_dir = property(lambda self: _path(self._data), doc="images, snapshots, pools (Path)")
    runtime_root = property(lambda self: _path(self._run), doc="one directory per running domain (Path)")
    run_root = property(lambda self: self._run, doc="the runtime directory, as a string")
    domains_dir = property(lambda self: _path(self._domains), doc="persistent domain configs (Path)")
    autostart_dir = property(lambda self: _path(self._autostart), doc="autostart marks (Path)")
    locks_dir = property(lambda self: _path(self._locks), doc="per-domain lock files (Path)")

    @classmethod
    def open(cls, uri: str | None = None) -> "Store":
        return cls(Uri.parse(uri))

    # -- paths ---------------------------------------------------------------------
    def data_file(self, *parts: str) -> str:
        """A path under the data directory, as a string (cheap: no pathlib)."""
        return os.path.join(self._data, *parts)

    def config_path(self, name: str):
        check_store_name(name)
        return _path(os.path.join(self._domains, f"{name}.xml"))

    def runtime_dir(self, name: str, create: bool = False):
        return _path(self.runtime_path(name, create))

    def runtime_path(self, name: str, create: bool = False) -> str:
        """The domain's runtime directory as a string (``runtime_dir`` without pathlib)."""
        check_store_name(name)
        path = os.path.join(self._run, name)
        if create:
            ensure_private_dir(self._run)
            ensure_private_dir(path)
        return path

    def images_dir(self):
        """The images directory (a Path), made 0700 when missing."""
        return ensure_private_dir(self.data_dir / "images")

    def lock(self, name: str, timeout: float = 30.0) -> "Lock":
        """An exclusive per-domain lock (flock on ``<config>/.locks/NAME.lock``), as a context
        manager; waits at most ``timeout`` seconds."""
        check_store_name(name)
        return Lock(os.path.join(self._locks, f"{name}.lock"), timeout,
                    f"domain '{name}' is locked by another vsh process")

    # -- listing and lookup ----------------------------------------------------------
    def persistent_names(self) -> list[str]:
        try:
            return [entry[:-4] for entry in os.listdir(self._domains)
                    if entry.endswith(".xml") and not entry.startswith(".")]
        except FileNotFoundError:
            return []

    def runtime_names(self) -> list[str]:
        try:
            return [entry for entry in os.listdir(self._run)
                    if not entry.startswith(".") and os.path.isdir(os.path.join(self._run, entry))]
        except FileNotFoundError:
            return []

    def runtime(self, name: str) -> Runtime | None:
        return read_runtime(os.path.join(self._run, name))

    def domain_names(self) -> list[str]:
        names = set(self.persistent_names())
        for name in self.runtime_names():
            if name not in names:
                rt = self.runtime(name)
                if rt is not None and rt.active:
                    names.add(name)
        return sorted(names, key=str.lower)

    def refs(self) -> list[DomainRef]:
        """Every domain: persistent ones and running transient ones."""
        quiet, refs = self.refs_split()
        return refs + [DomainRef(name, True, None) for name in quiet]

    def refs_split(self) -> tuple[list[str], list[DomainRef]]:
        """:meth:`refs` as (the names of persistent domains with no runtime directory, the refs
        of the others): a listing of 10,000 defined domains needs no object for most of them."""
        persistent = set(self.persistent_names())
        refs = []
        for name in self.runtime_names():
            rt = self.runtime(name)
            if name in persistent:
                refs.append(DomainRef(name, True, rt))
                persistent.discard(name)
            elif rt is not None and rt.active:
                refs.append(DomainRef(name, False, rt))
        return list(persistent), refs

    def find(self, ident: str) -> DomainRef | None:
        if ident is None or ident == "":
            return None
        if "/" not in ident and not ident.startswith(".") and "\x00" not in ident:
            persistent = (os.path.isfile(os.path.join(self._domains, f"{ident}.xml"))
                          if len(ident.encode()) <= MAX_STORED_NAME else False)
            rt = self.runtime(ident) if len(ident.encode()) <= 255 else None
            if persistent or (rt is not None and rt.active):
                return DomainRef(ident, persistent, rt)
        if ident.isdigit():
            wanted = int(ident)
            for ref in self.refs():
                if ref.active and ref.id == wanted:
                    return ref
        from vsh.core.names import is_uuid_arg    # after the name: a lookup by name imports less

        if is_uuid_arg(ident):
            owner = self._uuid_owner(ident)
            if owner is not None:
                return self.find(owner)
        return None

    def get(self, ident: str) -> DomainRef:
        ref = self.find(ident)
        if ref is None:
            hint = None
            if ident:
                import difflib

                close = difflib.get_close_matches(ident, self.domain_names(), n=1, cutoff=0.7)
                hint = f"did you mean '{close[0]}'?" if close else None
            raise NotFound(f"failed to get domain '{ident}'", hint=hint)
        return ref

    def _xml_path(self, ref: DomainRef, inactive: bool) -> tuple[str, str, bool]:
        """(path, origin, is_live) of the XML that describes the domain now."""
        if ref.active and ref.runtime is not None and ref.runtime._rundir is not None:
            if not inactive or not ref.persistent:
                live = os.path.join(ref.runtime._rundir, "live.xml")
                if os.path.exists(live):
                    return live, "live.xml", True
        return os.path.join(self._domains, f"{ref.name}.xml"), f"{ref.name}.xml", False

    def _read_xml(self, ref: DomainRef, inactive: bool) -> tuple[bytes, str, bool]:
        path, origin, live = self._xml_path(ref, inactive)
        try:
            with open(path, "rb") as fh:
                return fh.read(), origin, live
        except FileNotFoundError:
            raise NotFound(f"failed to get domain '{ref.name}'") from None

    def load(self, ref: DomainRef, inactive: bool = False):
        """The domain's XML: the live definition when running (unless inactive), else the config."""
        from vsh.core.domain import Domain

        data, origin, live = self._read_xml(ref, inactive)
        dom = Domain.parse(data, origin)
        if live and ref.id is not None:
            dom.id = ref.id
        return dom

    def facts(self, ref: DomainRef, inactive: bool = False) -> dict:
        """uuid, title, os_type, vcpus, vcpus_current, memory_kib, current_memory_kib.

        Read without lxml when the XML is plain (see vsh.core.facts), otherwise from the
        model; remembered per file while its inode, size and mtime stay the same (a batch
        of defines then scans the other configs cheaply).
        """
        from vsh.core.facts import quick_facts

        path, origin, _live = self._xml_path(ref, inactive)
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                key = (st.st_ino, st.st_size, st.st_mtime_ns)
                cached = self._facts_cache.get(path)
                if cached is not None and cached[0] == key:
                    return cached[1]
                data = fh.read()
        except FileNotFoundError:
            raise NotFound(f"failed to get domain '{ref.name}'") from None
        facts = quick_facts(data)
        if facts is None:
            from vsh.core.domain import Domain

            dom = Domain.parse(data, origin)
            facts = {"uuid": dom.uuid, "title": dom.title, "os_type": dom.os_type or "hvm",
                     "vcpus": dom.vcpus or 1, "vcpus_current": dom.effective_vcpus,
                     "memory_kib": dom.memory or 0, "current_memory_kib": dom.current_memory}
        self._facts_cache[path] = (key, facts)
        return facts

    # -- changing configs ---------------------------------------------------------------
    @property
    def uuid_index(self):
        """The UUID index (:mod:`vsh.core.uuidindex`); ``with store.uuid_index:`` holds its lock."""
        if "_uuid_index" not in self.__dict__:
            from vsh.core.uuidindex import UuidIndex

            self._uuid_index = UuidIndex(self)
        return self._uuid_index

    def write_config(self, dom) -> None:
        """Store ``dom`` as its name's config (atomically), its UUID in the index first."""
        ensure_private_dir(self._config)
        ensure_private_dir(self._domains)
        with self.uuid_index as index:
            index.link(dom.uuid, dom.name)
            index.begin()
            atomic_write(os.path.join(self._domains, f"{dom.name}.xml"), dom.to_xml(inactive=True), sweep=False)

    def define(self, dom) -> bool:
        """Validate and store a persistent definition; True when it is new."""
        from vsh.core.uuidindex import uuid_key

        dom.fill_defaults()
        dom.validate()
        name = dom.name
        check_store_name(name)
        with self.lock(name), self.uuid_index:
            existing = self.find(name)
            uuid_owner = self._uuid_owner(dom.uuid)
            if uuid_owner is not None and uuid_owner != name:
                raise XMLError(f"domain '{uuid_owner}' is already defined with uuid {dom.uuid}")
            if existing is not None:
                old = self.load(existing, inactive=True)
                if uuid_key(old.uuid) != uuid_key(dom.uuid):
                    raise XMLError(f"domain '{name}' already exists with uuid {old.uuid}")
            self.write_config(dom)
            return existing is None or not existing.persistent

    def _uuid_owner(self, uuid: str | None) -> str | None:
        """The domain that holds ``uuid``: a persistent one (the UUID index), else a running
        transient one (read from its live XML: there are few, each has a QEMU)."""
        owner = self.uuid_index.owner(uuid)
        if owner is not None or not uuid:
            return owner
        from vsh.core.uuidindex import uuid_key

        wanted = uuid_key(uuid)
        for name in self.runtime_names():
            if os.path.exists(os.path.join(self._domains, f"{name}.xml")):
                continue
            ref = DomainRef(name, False, self.runtime(name))
            try:
                if ref.active and uuid_key(self.facts(ref)["uuid"]) == wanted:
                    return name
            except VshError:
                continue
        return None

    def config_uuid(self, name: str) -> str | None:
        """The UUID in ``name``'s persistent config (None when it has none or cannot be read)."""
        try:
            return self.facts(DomainRef(name, True, None), inactive=True)["uuid"]
        except (VshError, OSError):
            return None

    def undefine(self, ref: DomainRef) -> None:
        if not ref.persistent:
            raise OperationInvalid("Requested operation is not valid: cannot undefine transient domain")
        with self.lock(ref.name), self.uuid_index as index:
            uuid = self.config_uuid(ref.name)
            index.begin()
            remove_file(os.path.join(self._domains, f"{ref.name}.xml"))
            remove_file(os.path.join(self._autostart, ref.name))
            self._fsync_dir(self._domains)
            index.unlink(uuid, ref.name)

    def rename(self, ref: DomainRef, new_name: str) -> None:
        check_store_name(new_name)
        if ref.active:
            raise OperationInvalid("Requested operation is not valid: cannot rename active domain")
        taken = OperationInvalid(f"Requested operation is not valid: domain with name '{new_name}' already exists")
        if self.find(new_name) is not None:
            raise taken
        with self.lock(ref.name), self.lock(new_name), self.uuid_index as index:
            if self.find(new_name) is not None:     # defined while this waited for the locks
                raise taken
            dom = self.load(ref, inactive=True)
            dom.name = new_name
            index.renaming(ref.name, new_name)
            self.write_config(dom)
            index.finish_rename(ref.name, new_name)

    @staticmethod
    def _fsync_dir(path) -> None:
        fsync_dir(path)

    # -- autostart -------------------------------------------------------------------------
    def autostart(self, name: str) -> bool:
        return os.path.exists(os.path.join(self._autostart, name))

    def set_autostart(self, name: str, enabled: bool) -> None:
        ensure_private_dir(self._config)
        ensure_private_dir(self._autostart)
        path = os.path.join(self._autostart, name)
        if enabled:
            atomic_write(path, b"")
        else:
            remove_file(path)

    # -- ids ---------------------------------------------------------------------------------
    def next_id(self) -> int:
        """Ids of running domains only ever increase (until the host reboots)."""
        import fcntl

        ensure_private_dir(self._run)
        path = os.path.join(self._run, ".next-id")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.read(fd, 64).decode().strip()
            value = int(raw) if raw.isdigit() else 1
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, str(value + 1).encode())
            os.fsync(fd)
            return value
        finally:
            os.close(fd)
