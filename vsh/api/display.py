"""What a person sees and types on a running domain: its graphics, screen, keyboard and NMI.

Owned by the graphics concern (``vsh/commands/graphics.py``). Every method needs the
running domain: OperationInvalid (``Requested operation is not valid: domain is not
running``) otherwise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

#: the graphics types virsh domdisplay looks for, in its order
GRAPHICS_TYPES = ("vnc", "spice", "rdp")


class DomainDisplay(ABC):
    """Graphics, screen, keyboard and NMI of one running domain."""

    @abstractmethod
    def graphics(self) -> list[dict]:
        """The graphics of the live definition, in :data:`GRAPHICS_TYPES` order: dicts with ``type``,
        ``port`` and ``tls_port`` (int or None), ``listen`` (an address or None), ``socket`` (the unix
        socket's host path or None) and ``password`` (or None). Empty when the domain has none."""

    @abstractmethod
    def screenshot(self, screen: int = 0) -> dict:
        """``virDomainScreenshot``: the picture on ``screen`` (0: the first head) now, as
        ``{"mime": "image/x-portable-pixmap", "data": bytes}``. OperationInvalid for a domain without
        a display adapter; InvalidArgument for a screen it does not have."""

    @abstractmethod
    def send_key(self, codeset: str, keycodes: list[int], holdtime: int = 0) -> None:
        """``virDomainSendKey``: press the keys ``keycodes`` (numbers of ``codeset``, one of
        :data:`vsh.core.keycodes.CODESETS`) together, hold them ``holdtime`` ms (0: QEMU's default),
        release them. InvalidArgument for more than 16 keys or a code no key of the codeset has;
        Unsupported for a codeset this driver cannot translate."""

    @abstractmethod
    def inject_nmi(self) -> None:
        """``virDomainInjectNMI``: raise a non-maskable interrupt on the guest's CPUs."""
