"""vsh: virsh, virt-install and guestfish in one daemonless program."""

__version__ = "0.1.0"
