"""Guest disks, read in-process: images → partitions/LVM/LUKS → filesystems → OS inspection.

Entry point: :class:`vsh.guestfs.session.GuestSession` (guestfish's model and
names; its file commands in files.py). Layers: image.py (raw/qcow2/vmdk/vhdx),
blkid.py (libblkid), volumes.py (device naming, MBR/GPT, LVM2, LUKS1), fs/
(filesystem adapters, guest paths, the mounted tree and its file data),
inspect.py (OS inspection). Guest strings are escaped by vsh.core.escape.
Nothing here mounts anything on the host; docs/guestfs-libraries.md explains
the libraries and their limits. Heavy libraries are imported lazily.
"""
