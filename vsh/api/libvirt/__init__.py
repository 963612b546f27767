"""The libvirt driver: ``qemu:///system``, ``qemu:///session``, ``qemu+ssh://…``, ``qemu+tcp://…``,
``qemu+unix:///system?socket=…``, ``test:///default`` and every other URI libvirt itself opens,
implemented over libvirt-python (its C extension, see :mod:`.lv`).

libvirt parses and opens the URI, as virsh has it do; errors are libvirt's, after virsh's
``failed to connect to the hypervisor``. Each module implements the abstract classes of the
:mod:`vsh.api` module of the same name; :mod:`.connection` and :mod:`.domain` assemble the two
main handles. :data:`vsh.api.DRIVERS` names the schemes it takes (libvirt's
hypervisor drivers).
"""

from __future__ import annotations


def open(uri, readonly: bool = False):
    """A :class:`~vsh.api.libvirt.connection.LibvirtConnection` for a parsed libvirt URI."""
    from vsh.api.libvirt.connection import LibvirtConnection
    from vsh.api.libvirt.lv import call

    ptr = call("virConnectOpenReadOnly" if readonly else "virConnectOpen", uri.text,
               context=("failed to connect to the hypervisor",))
    return LibvirtConnection(ptr, uri.text, readonly)
