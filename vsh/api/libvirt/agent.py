"""The guest agent of one domain through libvirt (libvirtd speaks to the agent)."""

from __future__ import annotations

from vsh.api.agent import GUEST_INFO_TYPES, SSH_KEY_MODES, SUSPEND_TARGETS, DomainAgent
from vsh.api.libvirt.lv import call, mod
from vsh.core.errors import InvalidArgument

# virDomainGuestInfoTypes of GUEST_INFO_TYPES, in order
_INFO_FLAGS = dict(zip(GUEST_INFO_TYPES, (1, 2, 4, 8, 16, 32, 64)))
# virNodeSuspendTarget
_TARGETS = {"mem": 0, "disk": 1, "hybrid": 2}
# virDomainAuthorizedSSHKeysSetFlags
_KEY_FLAGS = {"append": 1, "reset": 0, "remove": 2}


class LibvirtDomainAgent(DomainAgent):
    def __init__(self, dom):
        self.dom = dom

    def _call(self, name: str, *args):
        return call(name, self.dom.ptr, *args)

    def set_timeout(self, timeout: int) -> None:
        self._call("virDomainAgentSetResponseTimeout", timeout, 0)

    def command(self, text: str, timeout: int = -1) -> str | None:
        import libvirtmod_qemu

        from vsh.api.libvirt.lv import last_error

        m = mod()
        m.virResetLastError()
        reply = libvirtmod_qemu.virDomainQemuAgentCommand(self.dom.ptr, text, timeout, 0)
        if reply is None and m.virGetLastError() is not None:
            raise last_error()
        return reply

    def fs_info(self) -> list[dict]:
        return [{"mountpoint": mp, "name": name, "fstype": fstype, "targets": list(targets or ())}
                for mp, name, fstype, targets in self._call("virDomainGetFSInfo", 0) or ()]

    def fs_freeze(self, mountpoints: list[str] | None = None) -> int:
        return self._call("virDomainFSFreeze", list(mountpoints) if mountpoints else None, 0)

    def fs_thaw(self, mountpoints: list[str] | None = None) -> int:
        return self._call("virDomainFSThaw", list(mountpoints) if mountpoints else None, 0)

    def fs_trim(self, mountpoint: str | None = None, minimum: int = 0) -> None:
        self._call("virDomainFSTrim", mountpoint, minimum, 0)

    def guest_info(self, types: tuple[str, ...] = ()) -> list[tuple[str, object]]:
        flags = 0
        for t in types:
            if t not in _INFO_FLAGS:
                raise InvalidArgument(f"invalid argument: unsupported guest information types '{t}'")
            flags |= _INFO_FLAGS[t]
        return list((self._call("virDomainGetGuestInfo", flags, 0) or {}).items())

    def guest_vcpus(self) -> list[tuple[str, str]]:
        return [(k, str(v)) for k, v in (self._call("virDomainGetGuestVcpus", 0) or {}).items()]

    def set_guest_vcpus(self, cpulist: str, enable: bool) -> None:
        self._call("virDomainSetGuestVcpus", cpulist, 1 if enable else 0, 0)

    def ssh_keys(self, user: str) -> list[str]:
        return list(self._call("virDomainAuthorizedSSHKeysGet", user, 0) or ())

    def set_ssh_keys(self, user: str, keys: list[str], mode: str = "append") -> None:
        if mode not in SSH_KEY_MODES:
            raise InvalidArgument(f"invalid argument: unknown ssh key mode '{mode}'")
        self._call("virDomainAuthorizedSSHKeysSet", user, list(keys), _KEY_FLAGS[mode])

    def set_user_password(self, user: str, password: str, encrypted: bool = False) -> None:
        self._call("virDomainSetUserPassword", user, password, 1 if encrypted else 0)

    def get_time(self) -> tuple[int, int]:
        got = self._call("virDomainGetTime", 0)
        return int(got["seconds"]), int(got["nseconds"])

    def set_time(self, seconds: int | None = None, nseconds: int = 0, sync: bool = False) -> None:
        self._call("virDomainSetTime", {"seconds": seconds or 0, "nseconds": nseconds}, 1 if sync else 0)

    def pm_suspend(self, target: str, duration: int = 0) -> None:
        if target not in SUSPEND_TARGETS:
            raise InvalidArgument(f"invalid argument: Unknown suspend target: {target}")
        self._call("virDomainPMSuspendForDuration", _TARGETS[target], duration, 0)

    def hostname(self) -> str:
        return self._call("virDomainGetHostname", 2)        # VIR_DOMAIN_GET_HOSTNAME_AGENT

    def interfaces(self) -> list[dict]:
        return self.dom.stats.interface_addresses("agent")
