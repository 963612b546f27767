"""Storage pools and their volumes (``virStoragePoolPtr``, ``virStorageVolPtr``).

Owned by the storage concern (``vsh/commands/storage.py``). ``conn.storage`` is a
:class:`Storage`; it hands out :class:`Pool` and :class:`Volume` handles. A handle
keeps its object as last read (as a domain handle does): ``info()`` reports that,
and an operation through the handle updates it.

Long operations take ``progress``: None, or an object the driver calls as data
moves: ``start(total)`` (total bytes, or None when unknown), ``update(done)`` and
``finish()``. One that also has ``fileno()`` stands for a terminal: a driver that
runs a tool able to draw its own progress there (``qemu-img -p``) may hand it that
descriptor instead; a remote driver calls the three methods as its stream reports.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class Storage(ABC):
    """The pools of a connection, and lookups of volumes across them."""

    @abstractmethod
    def list_pools(self, active: bool | None = None, persistent: bool | None = None,
                   autostart: bool | None = None, types: list[str] | None = None,
                   sizes: bool = False) -> list[dict]:
        """Every pool (``virConnectListAllStoragePools``), sorted by name as virsh sorts, kept when
        it matches each filter that is not None (``types``: pool types such as ``dir``). Each is
        the dict :meth:`Pool.info` returns; without ``sizes`` it has no ``capacity``,
        ``allocation``, ``available``, and with it only active pools whose filesystem answered
        have them."""

    @abstractmethod
    def pool_names(self) -> list[str]:
        """The names of the pools, sorted; cheap and without side effects (for completion)."""

    @abstractmethod
    def volume_names(self, paths: bool = False) -> list[str]:
        """The names (``paths``: the paths) of the volumes of every active pool, each once, in
        pool order; pools that cannot be read are left out (for completion)."""

    @abstractmethod
    def lookup_pool(self, ident: str) -> "Pool":
        """The pool with UUID ``ident``, else named ``ident``; NotFound ``failed to get pool 'x'``."""

    @abstractmethod
    def lookup_pool_by_name(self, name: str) -> "Pool":
        """The pool named ``name``; NotFound ``failed to get pool 'x'``."""

    @abstractmethod
    def lookup_pool_by_uuid(self, uuid: str) -> "Pool":
        """The pool with UUID ``uuid``; NotFound ``failed to get pool 'x'`` (also when ``uuid`` is
        not spelled as a UUID)."""

    @abstractmethod
    def define_pool_xml(self, xml: str | bytes) -> "Pool":
        """Define a pool from libvirt's ``<pool>`` XML (``virStoragePoolDefineXML``); the same name and
        UUID redefine it. Raises XMLError for a bad document, Unsupported for a type the driver
        does not keep, OperationInvalid for a UUID, name or target that another pool holds."""

    @abstractmethod
    def define_pool_as(self, name: str, type: str, target: str) -> "Pool":
        """Define a pool of ``type`` on the directory ``target`` (pool-define-as), not built nor
        started; errors as :meth:`define_pool_xml`, InvalidArgument for an unknown type or name."""

    @abstractmethod
    def pool_xml_as(self, name: str, type: str, target: str) -> str:
        """The ``<pool>`` document :meth:`define_pool_as` would define (pool-define-as --print-xml),
        checked the same way; nothing is defined."""

    @abstractmethod
    def create_pool_xml(self, xml: str | bytes, build: bool = False) -> "Pool":
        """Create and start a transient pool from ``<pool>`` XML (``virStoragePoolCreateXML``): it
        is gone once destroyed; ``build`` makes its directory first. Errors as
        :meth:`define_pool_xml`; OperationInvalid when a pool of that name exists; VshError when
        the directory is missing."""

    @abstractmethod
    def create_pool_as(self, name: str, type: str, target: str, build: bool = False) -> "Pool":
        """:meth:`create_pool_xml` from arguments, as :meth:`define_pool_as` takes them
        (pool-create-as)."""

    @abstractmethod
    def lookup_volume(self, ident: str, pool: str | None = None) -> "Volume":
        """The volume named ``ident`` in the pool ``pool`` (name or UUID; it must be active), else
        the volume whose key or path is ``ident``. NotFound ``failed to get vol 'x'``, or
        ``Requested volume 'x' is not in pool 'p'``; OperationInvalid ``pool 'p' is not active``."""


class Pool(ABC):
    """One pool. ``name`` and ``uuid`` are its identity."""

    name: str
    uuid: str

    @abstractmethod
    def info(self) -> dict:
        """``name``, ``uuid``, ``type``, ``target`` (its directory), ``state`` (virsh's word:
        ``running`` or ``inactive``), ``active``, ``persistent``, ``autostart``, and when active
        ``capacity``, ``allocation``, ``available`` in bytes (VshError when the filesystem under
        it cannot be asked)."""

    @abstractmethod
    def xml(self, inactive: bool = False) -> str:
        """libvirt's ``<pool>`` XML; an active pool's shows its sizes and the directory's
        permissions as they are, unless ``inactive`` asks for the definition."""

    @abstractmethod
    def build(self) -> None:
        """Make the pool's directory (0700 unless the definition gives permissions); VshError
        naming the directory when that fails."""

    @abstractmethod
    def start(self, build: bool = False) -> None:
        """Activate the pool, building it first with ``build``; OperationInvalid when it is
        active, VshError ``cannot open directory`` when its directory is missing."""

    @abstractmethod
    def destroy(self) -> None:
        """Deactivate the pool (its volumes stay); OperationInvalid when it is not active."""

    @abstractmethod
    def undefine(self) -> None:
        """Remove the definition (the directory and volumes stay); OperationInvalid while active."""

    @abstractmethod
    def refresh(self) -> int:
        """Check the pool's directory and remove what interrupted creates left behind; how many
        leftovers went. OperationInvalid when the pool is not active."""

    @abstractmethod
    def set_autostart(self, enabled: bool) -> None:
        """Mark (or unmark) the pool to be active after the host boots."""

    @abstractmethod
    def list_volumes(self, details: bool = False) -> list[dict]:
        """The volumes of the active pool, sorted by name as virsh sorts: dicts with ``name``,
        ``path``, ``key``, ``pool``, and with ``details`` the rest of :meth:`Volume.info`.
        OperationInvalid when the pool is not active."""

    @abstractmethod
    def lookup_volume(self, name: str) -> "Volume":
        """The volume named ``name`` in this pool; NotFound ``failed to get vol 'x'``."""

    @abstractmethod
    def create_volume_xml(self, xml: str | bytes, prealloc_metadata: bool = False) -> "Volume":
        """Create a volume from libvirt's ``<volume>`` XML (``virStorageVolCreateXML``): formats raw
        and qcow2, a ``<backingStore>`` with its ``<format>``. XMLError for a bad document,
        Unsupported for another format, OperationInvalid when the name is taken."""

    @abstractmethod
    def create_volume_as(self, name: str, capacity: int, allocation: int | None = None,
                         format: str | None = None, backing_path: str | None = None,
                         backing_format: str | None = None, prealloc_metadata: bool = False) -> "Volume":
        """Create a volume of ``capacity`` bytes (vol-create-as): raw (fully allocated unless
        ``allocation`` says less) or qcow2, on the backing volume at ``backing_path`` (its key
        or path) whose format ``backing_format`` must give. Errors as :meth:`create_volume_xml`."""

    @abstractmethod
    def volume_xml_as(self, name: str, capacity: int, allocation: int | None = None,
                      format: str | None = None, backing_path: str | None = None,
                      backing_format: str | None = None) -> str:
        """The ``<volume>`` document :meth:`create_volume_as` stands for (vol-create-as --print-xml);
        nothing is created."""


class Volume(ABC):
    """One volume. ``name``, ``key`` and ``path`` are its identity (key and path are the same
    thing for directory pools)."""

    name: str
    key: str
    path: str

    @abstractmethod
    def info(self) -> dict:
        """``name``, ``path``, ``key``, ``pool`` (its name), ``type`` (file, dir, block),
        ``format``, ``capacity``, ``allocation``, ``physical`` (bytes), ``backing`` (a path or
        None), ``backing_format``."""

    @abstractmethod
    def pool(self) -> Pool:
        """The pool the volume belongs to (``virStoragePoolLookupByVolume``)."""

    @abstractmethod
    def xml(self) -> str:
        """libvirt's ``<volume>`` XML."""

    @abstractmethod
    def delete(self) -> None:
        """Delete the volume; OperationInvalid when a running domain uses it (directly or as a
        backing file), VshError naming the path when removing fails."""

    @abstractmethod
    def wipe(self, progress=None) -> None:
        """Zero the volume: raw data is overwritten with zeroes (holes stay holes), a qcow2
        volume is made again empty. OperationInvalid when a running domain uses it."""

    @abstractmethod
    def resize(self, capacity: int, delta: bool = False, shrink: bool = False, allocate: bool = False) -> int:
        """Change the volume's capacity to ``capacity`` bytes (with ``delta``: by that much, down
        with ``shrink``); ``allocate`` allocates what grows. Returns the new capacity.
        InvalidArgument for a shrink without ``shrink`` or below zero, OperationInvalid when a
        running domain uses it."""

    @abstractmethod
    def clone(self, new_name: str, prealloc_metadata: bool = False, progress=None) -> "Volume":
        """A copy of the volume in its pool, named ``new_name`` (an overlay keeps its backing
        file). OperationInvalid when the name is taken, Unsupported for a type it cannot copy."""

    @abstractmethod
    def upload(self, file: str, offset: int = 0, length: int | None = None, sparse: bool = False,
               progress=None) -> int:
        """Write the bytes of ``file`` (a path on the caller's machine: a remote driver reads it
        there and streams it) into the volume at ``offset``, at most ``length`` of them; the
        volume is not truncated, and ``sparse`` makes the file's holes holes. Returns the bytes
        written. OperationInvalid when a running domain uses the volume, VshError when the file
        cannot be read."""

    @abstractmethod
    def download(self, file: str, offset: int = 0, length: int | None = None, sparse: bool = False,
                 progress=None) -> int:
        """Copy the volume's bytes from ``offset`` (at most ``length``) into ``file``, a path on the
        caller's machine: made 0600 when new, truncated when it exists, removed again when a new
        one could not be filled; ``sparse`` keeps holes. Returns the bytes copied."""
