"""Devices of one domain: attach, detach, update, change media.

Devices travel as XML text, one element (``<disk>``, ``<interface>``, ``<rng>``...), as
libvirt's ``virDomainAttachDeviceFlags`` takes them; the client builds it (virsh's
``attach-disk`` builds a ``<disk>``) and names host files absolutely. The flags are
libvirt's ``VIR_DOMAIN_AFFECT_*`` as booleans (``live``, ``config``, ``current``) plus
virsh's ``persistent`` (config, and live when running). A running domain changes first
and the persistent definition only after that worked, so a failure leaves both as they
were. Each method returns which definitions changed: ``{"live": bool, "config": bool}``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class DomainDevices(ABC):
    """Devices of one domain: attach, detach, update, change media."""

    @abstractmethod
    def attach(self, xml: str, live: bool = False, config: bool = False, current: bool = False,
               persistent: bool = False) -> dict:
        """Add the device ``xml`` describes; no flag means live. Defaults both definitions must
        share (a NIC's MAC address, a disk's type and bus) are filled in once. Refuses a device
        that collides with one already there (a target, a MAC address). Returns ``{"live",
        "config", "device": tag, "xml": the device as stored}``."""

    @abstractmethod
    def detach(self, xml: str, live: bool = False, config: bool = False, current: bool = False,
               persistent: bool = False) -> dict:
        """Remove the device ``xml`` describes; no flag means live. A disk is found by its target,
        an interface by its MAC address (when given); any other device must match every
        attribute, text and child the XML gives, and only one may. NotFound when none matches.
        Returns ``{"live", "config"}``."""

    @abstractmethod
    def update(self, xml: str, live: bool = False, config: bool = False, current: bool = False,
               persistent: bool = False, force: bool = False) -> dict:
        """Change a device as ``xml`` describes it (``virDomainUpdateDeviceFlags``); no flag means
        current. The medium of a cdrom or floppy ``<disk>`` (found by its target) can change: the
        new ``<source>`` and ``<driver>``, or none to eject; so can the ``<target><requested>`` size of
        a ``<memory model='virtio-mem'>`` (found by its alias, else its ``<target><node>``); other
        changes are Unsupported. ``force`` opens a tray the guest has locked. Returns ``{"live",
        "config", "target"}``."""

    @abstractmethod
    def change_media(self, target: str, xml: str | None, live: bool = False, config: bool = False,
                     current: bool = False, force: bool = False) -> dict:
        """Put the medium of the ``<disk>`` ``xml`` (its ``<source>`` and ``<driver>``) into the
        removable disk ``target``, or eject it (``xml`` None); no flag means current. NotFound for
        no such disk, OperationInvalid when it is not a cdrom or floppy. Returns ``{"live",
        "config"}``."""

    @abstractmethod
    def detach_alias(self, alias: str, live: bool = False, config: bool = False, current: bool = False) -> dict:
        """``virDomainDetachDeviceAlias``: remove the device whose ``<alias name>`` is ``alias``
        (a user alias ``ua-...`` kept in the definition, or the alias of the live device); no flag
        means current. NotFound (libvirt's words) when no device has it. Returns ``{"live",
        "config"}``."""
