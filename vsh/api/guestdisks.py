"""A guest-disk session (guestfish): add drives, launch, list devices, mount read-only, read
files, inspect the operating systems.

One :class:`GuestDisks` is one session (a libguestfs handle), made by
``conn.guest_disks()``: add drives (images, or the disks of a domain), then
``launch()``, then everything else. Method names follow guestfish's commands
with ``_`` for ``-``. Devices are named as guestfish names them (``/dev/sda1``,
``/dev/VG/LV``, ``/dev/mapper/NAME``); paths are guest paths, absolute and
resolved inside the guest's tree (a symbolic link never leads to a host file).

Results are plain data; strings read from the guest come back as they are
(untrusted): a front end escapes them (:func:`vsh.core.escape.escape`) before
showing them. The images change only through the write methods
(:class:`vsh.api.guestwrites.GuestDiskWrites`, in the appliance VM) of a session made
with ``readonly=False``; ``download`` and ``copy_out`` write only the host files they are
told to. Errors are
:class:`~vsh.core.errors.VshError` (``InvalidArgument`` before launch or for a
wrong kind of device or file, ``NotFound`` for a missing device or path,
``Unsupported`` for what needs the appliance).
"""

from __future__ import annotations

from abc import abstractmethod

from vsh.api.customize import Customize
from vsh.api.guestwrites import GuestDiskWrites

# what inspect_get(root, item) answers, as guestfish's inspect-get-ITEM
INSPECT_ITEMS = ("type", "distro", "product-name", "product-variant", "major-version", "minor-version",
                 "arch", "hostname", "package-format", "package-management", "osinfo", "format",
                 "mountpoints", "filesystems")


class GuestDisks(GuestDiskWrites, Customize):
    """A guest-disk session (guestfish): add drives, launch, then read and write (see the module docstring)."""

    readonly: bool      # the default access of the drives added without saying

    # --- drives and launch ------------------------------------------------------------

    @abstractmethod
    def add_drive(self, path: str, format: str | None = None, readonly: bool | None = None) -> None:
        """Add the disk image at host ``path`` (guestfish ``add-drive``). ``format`` is raw, qcow2,
        vmdk, vhdx or vpc; None detects it conservatively (a qcow2 with a backing file then needs
        the format given). ``readonly`` None means the session's default. Drives are named
        /dev/sda, /dev/sdb ... in the order they are added. NotFound when there is no such file,
        InvalidArgument for an unknown format or after launch."""

    @abstractmethod
    def add_domain(self, name: str) -> list[str]:
        """Add the disks of the domain ``name`` (name, id or UUID) in their order in its XML,
        read-only in a read-only session or while the domain runs: the ``disk`` and ``lun`` devices with a source, raw unless the driver names a format
        (as libvirt: never probed). Returns their paths. NotFound (``failed to get domain 'x'``)
        for no such domain, InvalidArgument when it has no disk with a source."""

    @abstractmethod
    def add_key(self, selector: str, key: str) -> None:
        """A LUKS passphrase for launch to try: ``selector`` is a device name, a LUKS UUID (or
        ``UUID=...``) or ``all``. A key that fails adds a warning to the inspection report."""

    @abstractmethod
    def drives(self) -> list[dict]:
        """The drives added so far, in order: dicts ``{"path", "format" (None: detected),
        "readonly"}``."""

    @abstractmethod
    def is_launched(self) -> bool:
        """Whether ``launch`` has run (and ``close`` has not)."""

    @abstractmethod
    def launch(self) -> None:
        """Open every added image and find partitions, LVM and LUKS (unlocked with the keys given);
        no VM is started (guestfish ``run``). InvalidArgument when no drive was added or when
        already launched; the image's own error when one cannot be opened."""

    @abstractmethod
    def close(self) -> None:
        """Unmount everything, shut the appliance down (all changes written) and close the images;
        the session is unusable afterwards. Idempotent."""

    # --- devices ----------------------------------------------------------------------

    @abstractmethod
    def list_devices(self) -> list[str]:
        """The whole disks (``/dev/sda`` ...), in the order they were added."""

    @abstractmethod
    def list_partitions(self) -> list[str]:
        """The partitions of every disk (``/dev/sda1`` ...)."""

    @abstractmethod
    def list_filesystems(self) -> dict[str, str]:
        """Device name → filesystem type (``ext4``, ``vfat``, ``swap``, ``crypto_LUKS``,
        ``unknown`` ...) of every device but partitioned disks, extended partitions and LVM
        physical volumes (guestfish ``list-filesystems``)."""

    @abstractmethod
    def list_device_names(self) -> list[str]:
        """Every device name the session knows (disks, partitions, logical volumes, unlocked
        LUKS mappings), for completion; empty before launch."""

    @abstractmethod
    def vfs_type(self, device: str) -> str:
        """The filesystem type on ``device`` (``""`` when none is recognised). NotFound for no such device."""

    @abstractmethod
    def vfs_label(self, device: str) -> str:
        """The filesystem label on ``device`` (``""`` when it has none), as the guest wrote it."""

    @abstractmethod
    def vfs_uuid(self, device: str) -> str:
        """The filesystem UUID on ``device`` (``""`` when it has none)."""

    @abstractmethod
    def blockdev_getsize64(self, device: str) -> int:
        """The size of ``device`` in bytes."""

    @abstractmethod
    def part_list(self, device: str) -> list[dict]:
        """The partitions of the whole disk ``device``: dicts ``{"part_num", "part_start",
        "part_end", "part_size"}`` in bytes. InvalidArgument for a device that is not a whole
        disk; VshError when it has no partition table vsh recognises."""

    @abstractmethod
    def part_get_parttype(self, device: str) -> str:
        """The partition table type of the whole disk ``device``: ``gpt`` or ``msdos``; errors as
        ``part_list``."""

    @abstractmethod
    def pvs(self) -> list[str]:
        """The LVM physical volumes (device names)."""

    @abstractmethod
    def vgs(self) -> list[str]:
        """The LVM volume groups (names)."""

    @abstractmethod
    def lvs(self) -> list[str]:
        """The LVM logical volumes (``/dev/VG/LV``)."""

    @abstractmethod
    def luks_open(self, device: str, key: str, mapname: str) -> str:
        """Unlock the LUKS1 ``device`` with the passphrase ``key`` as ``/dev/mapper/MAPNAME`` and
        find what is inside; returns that device name. VshError for a wrong key, Unsupported
        for LUKS2 (the appliance's), InvalidArgument for a device that is not LUKS or a name
        already taken."""

    # --- mounting ---------------------------------------------------------------------

    @abstractmethod
    def mount_ro(self, device: str, mountpoint: str) -> None:
        """Mount the filesystem on ``device`` read-only at the guest path ``mountpoint`` (``/``
        first, then directories below it). InvalidArgument when it is already mounted, the
        mountpoint is taken or is not a directory; Unsupported for a filesystem that cannot
        be read in-process."""

    @abstractmethod
    def mount(self, device: str, mountpoint: str) -> None:
        """guestfish ``mount``: read-only when ``device`` is on a drive added read-only; otherwise
        read here and read-write in the appliance when a write needs it."""

    @abstractmethod
    def mount_options(self, options: str, device: str, mountpoint: str) -> None:
        """Mount with comma-separated mount ``options``: read-only when they say ``ro`` or the drive
        is read-only; otherwise as ``mount``."""

    @abstractmethod
    def umount(self, target: str) -> None:
        """Unmount by mountpoint or by device name. NotFound when not mounted; InvalidArgument
        while something is mounted below it."""

    @abstractmethod
    def umount_all(self) -> None:
        """Unmount every filesystem."""

    @abstractmethod
    def mountpoints(self) -> dict[str, str]:
        """Mountpoint → device name of every mounted filesystem, mountpoints sorted."""

    # --- files ------------------------------------------------------------------------

    @abstractmethod
    def ls(self, directory: str) -> list[str]:
        """The names in a guest directory, sorted (without ``.`` and ``..``). NotFound for no such
        path, InvalidArgument for a path that is not a directory or nothing mounted on ``/``."""

    @abstractmethod
    def ll(self, directory: str) -> list[dict]:
        """A long listing of a guest directory (or of one file): dicts with ``name``, the
        ``st_*`` fields of ``stat`` and ``target`` (a link's target, else None)."""

    @abstractmethod
    def cat(self, path: str) -> bytes:
        """The content of a guest file (up to 256 MiB: larger files are for ``download``).
        InvalidArgument for a directory or a special file."""

    @abstractmethod
    def head(self, path: str, lines: int = 10) -> list[str]:
        """The first ``lines`` lines of a guest file, without their newlines (invalid UTF-8 replaced)."""

    @abstractmethod
    def tail(self, path: str, lines: int = 10) -> list[str]:
        """The last ``lines`` lines of a guest file, as ``head``."""

    @abstractmethod
    def find(self, directory: str) -> list[str]:
        """Everything below a guest directory, as paths relative to it, depth first and sorted
        (symbolic links not followed). VshError for a directory loop on a damaged filesystem."""

    @abstractmethod
    def stat(self, path: str, follow: bool = True) -> dict:
        """The ``st_*`` fields of a guest path (``st_dev``, ``st_ino``, ``st_mode``, ``st_nlink``,
        ``st_uid``, ``st_gid``, ``st_rdev``, ``st_size``, ``st_blksize``, ``st_blocks``, and
        ``st_atime_sec``/``_nsec``, ``st_mtime_...``, ``st_ctime_...``); ``follow`` False does
        not follow a final symbolic link (``lstat``)."""

    @abstractmethod
    def readlink(self, path: str) -> str:
        """The target of the symbolic link ``path``. InvalidArgument when it is not a link."""

    @abstractmethod
    def realpath(self, path: str) -> str:
        """``path`` with every symbolic link resolved inside the guest."""

    @abstractmethod
    def is_file(self, path: str, follow: bool = False) -> bool:
        """Whether ``path`` is a regular file (``follow``: after following a final link); never raises."""

    @abstractmethod
    def is_dir(self, path: str, follow: bool = False) -> bool:
        """Whether ``path`` is a directory (``follow``: after following a final link); never raises."""

    @abstractmethod
    def is_symlink(self, path: str) -> bool:
        """Whether ``path`` is a symbolic link; never raises."""

    @abstractmethod
    def exists(self, path: str) -> bool:
        """Whether ``path`` exists (links followed); never raises."""

    @abstractmethod
    def checksum(self, csumtype: str, path: str) -> str:
        """The hex digest of a guest file: ``csumtype`` is md5, sha1, sha224, sha256, sha384 or
        sha512 (InvalidArgument otherwise)."""

    @abstractmethod
    def read_chunks(self, path: str):
        """The content of a guest file of any size, as an iterator of ``bytes`` chunks (up to 1 MiB
        each); errors about the file are raised before the first chunk."""

    @abstractmethod
    def download(self, remotefilename: str, filename: str) -> int:
        """Copy a guest file into the host file ``filename`` (created or truncated, mode 0666
        less the umask); returns the number of bytes. The guest file is checked first, so a
        failure leaves no empty host file; VshError with the host's reason when it cannot be
        written."""

    @abstractmethod
    def copy_out(self, remote: str, localdir: str) -> list[str]:
        """Copy a guest file or directory tree (recursively, links as links) into the existing host
        directory ``localdir``; returns warnings for what was skipped (special files, names that
        cannot be host file names). NotFound when ``localdir`` is not a directory; VshError when
        a target already exists."""

    @abstractmethod
    def df(self) -> list[dict]:
        """One row per mounted filesystem: ``{"filesystem", "mountpoint", "type", "size", "used",
        "available", "estimated", "use_percent"}``, sizes in bytes from the superblock (or
        ``estimated`` from the files' usage)."""

    @abstractmethod
    def du(self, path: str) -> int:
        """Disk usage of a guest file or directory in KiB (hard links counted once), like ``du -s``."""

    @abstractmethod
    def file(self, path: str) -> str:
        """What kind of file ``path`` is, as ``file -b`` says it (``directory``, ``symbolic link``,
        ``empty``, ``ASCII text`` ...)."""

    @abstractmethod
    def complete_path(self, prefix: str) -> list[str]:
        """Guest paths that start with ``prefix`` (directories end in ``/``), for tab completion;
        empty (never an error) when nothing is mounted or the prefix leads nowhere."""

    # --- inspection -------------------------------------------------------------------

    @abstractmethod
    def inspect_os(self) -> list[str]:
        """Find the operating systems on the disks; returns their root devices."""

    @abstractmethod
    def inspect_get_roots(self) -> list[str]:
        """The roots found by ``inspect_os`` (which it runs first when it has not run)."""

    @abstractmethod
    def inspect_get(self, root: str, item: str):
        """One fact of the operating system at ``root``: ``item`` is one of :data:`INSPECT_ITEMS`
        (guestfish's ``inspect-get-ITEM``). A str for most, an int for the versions, a dict
        mountpoint → device for ``mountpoints`` (shortest first), a list for ``filesystems``.
        NotFound when ``root`` is not an inspected root; InvalidArgument for an unknown item."""

    @abstractmethod
    def inspect_list_applications(self, root: str) -> list[dict]:
        """The applications installed in the operating system at ``root`` (dpkg, rpm): dicts with
        ``name``, ``epoch``, ``version``, ``release``, ``arch``, ``source``, ``summary``."""

    @abstractmethod
    def mount_inspected(self, root: str | None = None) -> str:
        """Mount the filesystems of the inspected operating system at ``root`` (None: the only one)
        read-only at its mountpoints, as guestfish ``-i``; returns the root. A filesystem that
        cannot be mounted adds a warning. NotFound when no operating system was found,
        InvalidArgument when there are several and no root is given."""

    @abstractmethod
    def inspector_report(self, applications: bool = True) -> dict:
        """virt-inspector's report as data: ``{"operatingsystems": [{"root", "type", "distro",
        "product_name", "product_variant", "major_version", "minor_version", "arch",
        "hostname", "package_format", "package_management", "osinfo", "format", "mountpoints"
        ([[mountpoint, device]...]), "filesystems" ([{"dev", "type", "label", "uuid"}]),
        "applications" (with ``applications``), "warnings"}], "warnings": [...]}``."""
