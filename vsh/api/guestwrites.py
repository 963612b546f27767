"""Changing guest disks (guestfish's write commands), part of a guest-disk session.

Every change runs in the appliance VM, started on the first write of a session and
shut down by ``close`` (nothing is ever mounted on the host). A session made with
``readonly=False`` accepts writes on the drives added writable; the filesystems mounted
with ``mount`` (or by ``mount_inspected``) are mounted read-write in the appliance when
the first write needs them. Paths are guest paths resolved inside the guest's tree (an
absolute symbolic link, ``..`` or a host path leads to a file of the guest). Errors are
:class:`~vsh.core.errors.VshError` with the guest's reason (``No such file or
directory``, ``No space left on device`` ...); ``OperationInvalid`` when the session or
the drive is read-only or the disk belongs to a running domain.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

MKFS_TYPES = ("ext2", "ext3", "ext4", "xfs", "vfat", "fat", "msdos", "swap", "btrfs", "exfat", "ntfs")


class GuestDiskWrites(ABC):
    """The write half of a guest-disk session (see the module docstring)."""

    @abstractmethod
    def is_writable(self) -> bool:
        """Whether the session was made for writing (drives added without ``readonly``)."""

    # --- files ------------------------------------------------------------------------

    @abstractmethod
    def write(self, path: str, content: bytes, append: bool = False) -> None:
        """Make the guest file ``path`` hold ``content`` (created mode 0644, or truncated);
        ``append`` adds to its end instead (guestfish ``write`` / ``write-append``)."""

    @abstractmethod
    def upload(self, filename: str, remotefilename: str) -> int:
        """Copy the host file ``filename`` into the guest file ``remotefilename`` (guestfish
        ``upload``); returns the number of bytes."""

    @abstractmethod
    def copy_in(self, localpath: str, remotedir: str) -> None:
        """Copy a host file or directory tree (links as links, modes kept, owned by root) into
        the existing guest directory ``remotedir`` (guestfish ``copy-in``)."""

    @abstractmethod
    def tar_in(self, tarfile: str, directory: str) -> None:
        """Unpack the host tar file ``tarfile`` (plain, gzip, bzip2 or xz) into the guest
        directory ``directory``, numeric owners kept (guestfish ``tar-in``)."""

    @abstractmethod
    def mkdir(self, path: str, parents: bool = False, mode: int = 0o755) -> None:
        """Make a guest directory; ``parents`` makes the missing parents and accepts an existing
        directory (guestfish ``mkdir``, ``mkdir-p``, ``mkdir-mode``)."""

    @abstractmethod
    def rm(self, path: str, recursive: bool = False, directory: bool = False) -> None:
        """Remove a guest file (``rm``); ``recursive``: a whole tree, no error when missing
        (``rm-rf``); ``directory``: an empty directory (``rmdir``)."""

    @abstractmethod
    def mv(self, src: str, dest: str) -> None:
        """Move or rename a guest file or directory (guestfish ``mv``)."""

    @abstractmethod
    def cp(self, src: str, dest: str, archive: bool = False) -> None:
        """Copy a guest file (``cp``); ``archive`` copies a file or tree with modes, owners, times
        and links kept (``cp-a``)."""

    @abstractmethod
    def chmod(self, mode: int, path: str) -> None:
        """Change the permission bits of a guest path (guestfish ``chmod``)."""

    @abstractmethod
    def chown(self, owner: int, group: int, path: str, follow: bool = True) -> None:
        """Change the numeric owner and group of a guest path; ``follow`` False changes a link
        itself (guestfish ``chown``, ``lchown``)."""

    @abstractmethod
    def ln_s(self, target: str, linkname: str, force: bool = False) -> None:
        """Make the symbolic link ``linkname`` → ``target`` (the target is stored as given);
        ``force`` replaces an existing file (guestfish ``ln-s``, ``ln-sf``)."""

    @abstractmethod
    def touch(self, path: str) -> None:
        """Create an empty guest file or update its times (guestfish ``touch``)."""

    @abstractmethod
    def truncate(self, path: str, size: int = 0) -> None:
        """Set the size of a guest file (guestfish ``truncate``, ``truncate-size``)."""

    @abstractmethod
    def sh(self, command: str, timeout: float = 600) -> dict:
        """Run ``command`` with the guest's own ``/bin/sh`` inside the guest's tree (its /proc,
        /sys and /dev from the appliance; the network only after ``set_network(True)``);
        returns ``{"status", "output"}``."""

    @abstractmethod
    def set_network(self, enabled: bool) -> None:
        """Give the appliance a network (QEMU's user networking: outgoing connections only,
        the host as 10.0.2.2; guestfish ``set-network``); commands run by ``sh`` then resolve
        names with QEMU's DNS. Only before the appliance starts (the first write)."""

    @abstractmethod
    def get_network(self) -> bool:
        """Whether the appliance gets a network (``set_network``)."""

    # --- devices ----------------------------------------------------------------------

    @abstractmethod
    def mkfs(self, fstype: str, device: str, blocksize: int | None = None, label: str | None = None) -> None:
        """Make a filesystem of type ``fstype`` (one of :data:`MKFS_TYPES`) on ``device``."""

    @abstractmethod
    def part_init(self, device: str, parttype: str) -> None:
        """Write an empty partition table (``gpt``, ``msdos`` or ``mbr``) on the whole disk ``device``."""

    @abstractmethod
    def part_add(self, device: str, prlogex: str, startsect: int, endsect: int) -> None:
        """Add a partition from sector ``startsect`` to ``endsect`` inclusive (negative: to the
        end of the disk); ``prlogex`` is ``primary``/``p``, ``logical``/``l`` or ``extended``/``e``."""

    @abstractmethod
    def part_disk(self, device: str, parttype: str) -> None:
        """A new partition table of ``parttype`` holding one partition over the whole disk."""

    @abstractmethod
    def part_del(self, device: str, partnum: int) -> None:
        """Delete partition number ``partnum`` of the whole disk ``device``."""

    @abstractmethod
    def part_set_name(self, device: str, partnum: int, name: str) -> None:
        """Set the name (GPT partition label) of partition ``partnum`` of the whole disk ``device``."""

    @abstractmethod
    def part_get_name(self, device: str, partnum: int) -> str:
        """The name (GPT partition label) of partition ``partnum`` of the whole disk ``device``."""

    @abstractmethod
    def pvcreate(self, device: str) -> None:
        """Make ``device`` an LVM physical volume."""

    @abstractmethod
    def vgcreate(self, volgroup: str, physvols: list[str]) -> None:
        """Make the LVM volume group ``volgroup`` of the physical volumes ``physvols``."""

    @abstractmethod
    def lvcreate(self, logvol: str, volgroup: str, mbytes: int) -> None:
        """Make the linear logical volume ``logvol`` of ``mbytes`` MiB in ``volgroup``
        (then ``/dev/VOLGROUP/LOGVOL``)."""

    @abstractmethod
    def lvresize(self, device: str, mbytes: int) -> None:
        """Grow or shrink the logical volume ``device`` to ``mbytes`` MiB (its filesystem is
        not resized: ``resize2fs`` / ``xfs_growfs``)."""

    @abstractmethod
    def xfs_growfs(self, path: str) -> None:
        """Grow the XFS filesystem mounted at the guest path ``path`` to its device's size."""

    @abstractmethod
    def selinux_relabel(self, specfile: str, path: str, force: bool = False) -> None:
        """Set the SELinux labels of the files under the guest path ``path`` from the guest's
        file-contexts ``specfile``, with the guest's own ``setfiles`` (a guest without it has no
        SELinux: an error); ``force`` resets the labels that look customised too."""

    @abstractmethod
    def resize2fs(self, device: str, size: int | None = None) -> None:
        """Grow or shrink the ext2/3/4 filesystem on ``device`` to its device (or ``size``
        bytes); it must be unmounted and freshly checked (``e2fsck_f``)."""

    @abstractmethod
    def e2fsck_f(self, device: str) -> None:
        """Check and repair the ext2/3/4 filesystem on ``device`` (``e2fsck -f -y``)."""

    @abstractmethod
    def set_label(self, device: str, label: str) -> None:
        """Set the label of the filesystem on ``device`` (ext2/3/4, xfs, vfat, swap, btrfs, exfat, ntfs)."""

    @abstractmethod
    def set_uuid(self, device: str, uuid: str) -> None:
        """Set the UUID of the filesystem on ``device`` (ext2/3/4, xfs, swap; vfat: its volume id)."""

    @abstractmethod
    def sync(self) -> None:
        """Write everything to the disk images now (the appliance flushes its caches)."""
