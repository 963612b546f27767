"""Guest disks, read in-process: images → partitions/LVM/LUKS → filesystems → OS inspection.

Entry point: :class:`vsh.guestfs.session.GuestSession` (guestfish's model and
names). Layers: image.py (raw/qcow2/vmdk/vhdx), blkid.py (libblkid),
volumes.py (device naming, MBR/GPT, LVM2, LUKS1), fs.py (filesystem adapters
and the mounted tree), inspect.py (OS inspection, escaping of guest strings).
Nothing here mounts anything on the host; docs/guestfs-libraries.md explains
the libraries and their limits. Heavy libraries are imported lazily.
"""
