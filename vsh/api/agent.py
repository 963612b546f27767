"""The guest agent of a running domain (``dom.agent``): what libvirt asks the QEMU guest agent.

Owned by the agent concern (``vsh/commands/agent.py``). Every method needs the domain running
and its XML to have the agent's channel (``<channel type='unix'><target type='virtio'
name='org.qemu.guest_agent.0'/></channel>``), and the agent to run in the guest. Errors, in
libvirt's words: OperationInvalid ``domain is not running``; Unsupported ``QEMU guest agent is
not configured``; VshError ``Guest agent is not responding: QEMU guest agent is not connected``
(the guest has not opened the channel) or ``…: Guest agent not available for now`` (no answer
within the timeout); VshError ``internal error: unable to execute QEMU agent command 'X': …``
(the agent's own error).

Timeouts follow libvirt: -2 waits as long as the agent takes, -1 is the default (5 s), 0 does
not wait for a reply, N > 0 waits N seconds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

#: guestinfo's categories, in the order libvirt reports them (``virDomainGetGuestInfo`` types)
GUEST_INFO_TYPES = ("users", "os", "timezone", "hostname", "filesystem", "disks", "interfaces")
#: dompmsuspend's targets and what the agent is asked
SUSPEND_TARGETS = {"mem": "guest-suspend-ram", "disk": "guest-suspend-disk", "hybrid": "guest-suspend-hybrid"}
#: set_ssh_keys modes
SSH_KEY_MODES = ("append", "reset", "remove")


class DomainAgent(ABC):
    """``dom.agent``: the guest agent of one domain."""

    @abstractmethod
    def set_timeout(self, timeout: int) -> None:
        """``virDomainAgentSetResponseTimeout``: how long later agent calls of this domain wait
        (-2, -1, 0 or seconds; kept while the domain runs). InvalidArgument below -2."""

    @abstractmethod
    def command(self, text: str, timeout: int = -1) -> str | None:
        """``virDomainQemuAgentCommand``: send ``text`` (one JSON command) as it is; the agent's
        reply object as compact JSON text (None with timeout 0: sent, not waited for)."""

    @abstractmethod
    def fs_info(self) -> list[dict]:
        """``virDomainGetFSInfo``: the mounted filesystems, in mount order: ``mountpoint``, ``name``
        (the guest's device), ``fstype``, ``targets`` (the domain's disk targets under it)."""

    @abstractmethod
    def fs_freeze(self, mountpoints: list[str] | None = None) -> int:
        """``virDomainFSFreeze``: freeze the guest's filesystems (all, or those mounted at
        ``mountpoints``); how many were frozen."""

    @abstractmethod
    def fs_thaw(self, mountpoints: list[str] | None = None) -> int:
        """``virDomainFSThaw``: thaw them again; how many were thawed."""

    @abstractmethod
    def fs_trim(self, mountpoint: str | None = None, minimum: int = 0) -> None:
        """``virDomainFSTrim``: discard the unused blocks of every mounted filesystem (the agent
        trims all; ``mountpoint`` is refused as libvirt refuses it), ``minimum`` bytes at least."""

    @abstractmethod
    def guest_info(self, types: tuple[str, ...] = ()) -> list[tuple[str, object]]:
        """``virDomainGetGuestInfo``: typed parameters (name, value) in libvirt's order for the
        categories ``types`` (:data:`GUEST_INFO_TYPES`; empty: all the agent supports)."""

    @abstractmethod
    def guest_vcpus(self) -> list[tuple[str, str]]:
        """``virDomainGetGuestVcpus``: ``vcpus``, ``online``, ``offlinable`` as CPU lists."""

    @abstractmethod
    def set_guest_vcpus(self, cpulist: str, enable: bool) -> None:
        """``virDomainSetGuestVcpus``: bring the guest's CPUs in ``cpulist`` on- or offline."""

    @abstractmethod
    def ssh_keys(self, user: str) -> list[str]:
        """``virDomainAuthorizedSSHKeysGet``: the lines of ``user``'s authorized_keys."""

    @abstractmethod
    def set_ssh_keys(self, user: str, keys: list[str], mode: str = "append") -> None:
        """``virDomainAuthorizedSSHKeysSet``: ``append`` the keys, ``reset`` the file to them, or
        ``remove`` them from it."""

    @abstractmethod
    def set_user_password(self, user: str, password: str, encrypted: bool = False) -> None:
        """``virDomainSetUserPassword``: set ``user``'s password (``encrypted``: already crypt(3)ed)."""

    @abstractmethod
    def get_time(self) -> tuple[int, int]:
        """``virDomainGetTime``: the guest's clock as (seconds, nanoseconds) since the epoch."""

    @abstractmethod
    def set_time(self, seconds: int | None = None, nseconds: int = 0, sync: bool = False) -> None:
        """``virDomainSetTime``: set the guest's clock to ``seconds``.``nseconds``, or (``sync``)
        to its hardware clock's time."""

    @abstractmethod
    def pm_suspend(self, target: str, duration: int = 0) -> None:
        """``virDomainPMSuspendForDuration``: ask the guest to suspend to ``target``
        (:data:`SUSPEND_TARGETS`); ``duration`` must be 0 (QEMU has no timed wakeup)."""

    @abstractmethod
    def hostname(self) -> str:
        """The guest's host name, as the agent reports it."""

    @abstractmethod
    def interfaces(self) -> list[dict]:
        """The guest's network interfaces as the agent sees them, in the shape of
        :meth:`vsh.api.stats.DomainStats.interface_addresses` (``name``, ``mac``, ``addresses``)."""
