"""Storage pools and volumes of one connection, in libvirt's storage XML formats.

vsh keeps directory pools (libvirt's ``type='dir'``): a pool is a directory and
its volumes are the files in it. Layout in the store::

    <config>/storage/NAME.xml          a pool definition (libvirt's <pool>, as libvirt keeps it)
    <config>/storage/autostart/NAME    autostart mark
    <config>/storage/.lock             held while definitions change
    <config>/storage/.initialized      the default pool has been set up once
    <runtime>/.pools/NAME              "active BOOT_ID" or "inactive BOOT_ID"
    <runtime>/.pools/NAME.xml          a transient pool's definition (pool-create-as), while active

There is no daemon to start pools when the host boots, so a pool that has no
state for the current boot is active exactly when it is marked autostart and
its directory exists (what libvirtd would have made of it at boot). The first
time a connection's pools are used, vsh defines ``default`` on
``<data>/images`` (created then), marked autostart.

Volumes are not cached: every listing reads the directory, so a file copied
into a pool is a volume at once and pool-refresh has nothing to redo.

Safety:

* a volume name is checked (no ``/``, no ``.``/``..`` or other leading dot, no
  NUL or control characters, at most 255 bytes) before it becomes a path;
  entries of a pool directory that fail the check, and symbolic links, are not
  volumes;
* a volume's own format is read from its header (as libvirt does for directory
  pools); a qcow2 backing file is only ever opened with the format recorded in
  the overlay's header, only when it is itself a volume of an active pool, and
  never through an external data file (:func:`check_chain`);
* a new volume is made under a hidden temporary name in the pool directory and
  hard-linked to its name, which never replaces an existing file; an
  interrupted create leaves nothing behind;
* everything vsh creates is private (files 0600, directories 0700).

By concern: :mod:`.model` (a pool's definition and XML), :mod:`.volumes` (a volume
and the ``<volume>`` XML), :mod:`.definitions` (the stored pools and their state),
:mod:`.volume_ops` (creating, copying and changing volumes), :mod:`.usage` (what
domains use). The names other modules use are importable from here.
"""

from vsh.core.pools.model import POOL_TYPES, Pool, check_pool_type, parse_pool_xml, pool_from_args
from vsh.core.pools.usage import disk_paths, paths_in_use, removable_storage
from vsh.core.pools.volume_ops import Pools
from vsh.core.pools.volumes import Volume, VolumeSpec, parse_size, parse_volume_xml, volume_spec_xml

__all__ = ["POOL_TYPES", "Pool", "check_pool_type", "Pools", "Volume", "VolumeSpec", "disk_paths", "parse_pool_xml",
           "parse_size", "parse_volume_xml", "paths_in_use", "pool_from_args", "removable_storage",
           "volume_spec_xml"]
