"""The local driver's :class:`~vsh.api.agent.DomainAgent`: vsh speaks to the guest agent itself.

The agent's channel is the ``<channel>`` whose virtio target is named ``org.qemu.guest_agent.0``
(QEMU listens on its unix socket: the ``<source path>``, or ``<rundir>/channelN.sock``). Before a
call, QEMU's ``query-chardev`` tells whether the guest has opened the port (libvirt learns the
same from VSERPORT_CHANGE events); the timeout ``guest-agent-timeout`` sets lives in the domain's
runtime directory, so it lasts while the domain runs, as libvirt's does.
"""

from __future__ import annotations

import json
import os

from vsh.api.agent import GUEST_INFO_TYPES, SSH_KEY_MODES, SUSPEND_TARGETS, DomainAgent
from vsh.api.local.agentinfo import fs_entries
from vsh.api.local.qemustats import not_running, qmp
from vsh.core.errors import InvalidArgument, OperationInvalid, Unsupported, VshError

_TIMEOUT_FILE = "agent-timeout"


class LocalDomainAgent(DomainAgent):
    def __init__(self, dom):
        self.dom = dom

    # -- reaching the agent -----------------------------------------------------------------------

    def _channel(self):
        """(ref, live domain, socket path, chardev id) of the running domain's agent channel."""
        from vsh.core.domain import device_for
        from vsh.kvm.agent import CHANNEL_NAME

        ref = self.dom.refresh()
        if not ref.active or ref.state != "running":
            raise not_running()
        live = self.dom.store.load(ref)
        rundir = str(self.dom.store.runtime_dir(ref.name))
        devices = live.node.find("devices")
        channels = devices.findall("channel") if devices is not None else []
        for n, el in enumerate(channels):
            ch = device_for(el)
            if ch.target_type == "virtio" and ch.target_name == CHANNEL_NAME and ch.type == "unix":
                from vsh.kvm.argv import RuntimePaths
                from vsh.kvm.channels import alias

                path = ch.source_path or RuntimePaths.for_rundir(rundir).socket_for(alias(n))
                return ref, live, path, "char" + alias(n)
        raise Unsupported("argument unsupported: QEMU guest agent is not configured")

    def _timeout(self, ref) -> int:
        try:
            with open(os.path.join(str(self.dom.store.runtime_dir(ref.name)), _TIMEOUT_FILE)) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return -1

    def _open(self):
        """(agent connection, live domain, timeout): checks that the guest has the port open."""
        from vsh.kvm.agent import Agent, unresponsive

        ref, live, path, chardev = self._channel()
        for dev in qmp(self.dom.store, ref, "query-chardev") or []:
            if dev.get("label") == chardev and not dev.get("frontend-open"):
                raise unresponsive("QEMU guest agent is not connected")
        rundir = str(self.dom.store.runtime_dir(ref.name))
        return Agent(path, os.path.join(rundir, "agent.lock")), live, self._timeout(ref)

    def _call(self, command: str, arguments: dict | None = None, reply: bool = True):
        agent, _live, timeout = self._open()
        with agent:
            got = agent.execute(command, arguments, timeout, reply=reply)
        return None if got is None else got["return"]

    # -- the operations ---------------------------------------------------------------------------

    def set_timeout(self, timeout: int) -> None:
        if timeout < -2:
            raise InvalidArgument(f"invalid argument: guest agent timeout '{timeout}' is less than the "
                                  "minimum '-2'")
        ref = self.dom.refresh()
        if not ref.active:
            raise not_running()
        path = os.path.join(str(self.dom.store.runtime_dir(ref.name)), _TIMEOUT_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{timeout}\n")
        os.replace(tmp, path)

    def command(self, text: str, timeout: int = -1) -> str | None:
        from vsh.kvm.agent import timeout_seconds

        timeout_seconds(timeout)            # refuses a bad value before anything is sent
        agent, _live, _default = self._open()
        with agent:
            got = agent.execute_text(text, timeout)
        return None if got is None else json.dumps(got, separators=(",", ":"))

    def fs_info(self) -> list[dict]:
        agent, live, timeout = self._open()
        with agent:
            entries = fs_entries(agent, live, timeout)
        return [{"mountpoint": e["mountpoint"], "name": e["name"], "fstype": e["fstype"],
                 "targets": [d["alias"] for d in e["disks"] if d["alias"]]} for e in entries]

    def fs_freeze(self, mountpoints: list[str] | None = None) -> int:
        if mountpoints:
            return int(self._call("guest-fsfreeze-freeze-list", {"mountpoints": list(mountpoints)}))
        return int(self._call("guest-fsfreeze-freeze"))

    def fs_thaw(self, mountpoints: list[str] | None = None) -> int:
        if mountpoints:
            raise Unsupported("argument unsupported: specifying mountpoints is not supported")
        return int(self._call("guest-fsfreeze-thaw"))

    def fs_trim(self, mountpoint: str | None = None, minimum: int = 0) -> None:
        if mountpoint:
            raise Unsupported("argument unsupported: Specifying mount point is not supported for now")
        self._call("guest-fstrim", {"minimum": int(minimum)} if minimum else None)

    def guest_info(self, types: tuple[str, ...] = ()) -> list[tuple[str, object]]:
        from vsh.api.local.agentinfo import guest_info

        bad = [t for t in types if t not in GUEST_INFO_TYPES]
        if bad:
            raise InvalidArgument(f"invalid argument: unsupported guest information types '{', '.join(bad)}'")
        agent, live, timeout = self._open()
        with agent:
            return guest_info(agent, live, timeout, tuple(types))

    def _vcpus(self) -> list[dict]:
        return self._call("guest-get-vcpus")

    def guest_vcpus(self) -> list[tuple[str, str]]:
        from vsh.core.domain import format_cpuset

        cpus = self._vcpus()
        return [("vcpus", format_cpuset(c["logical-id"] for c in cpus)),
                ("online", format_cpuset(c["logical-id"] for c in cpus if c.get("online"))),
                ("offlinable", format_cpuset(c["logical-id"] for c in cpus if c.get("can-offline")))]

    def set_guest_vcpus(self, cpulist: str, enable: bool) -> None:
        from vsh.core.domain import parse_cpuset

        try:
            wanted = sorted(parse_cpuset(cpulist))
        except (ValueError, VshError):
            raise InvalidArgument(f"invalid argument: failed to parse vcpu list '{cpulist}'") from None
        have = {c["logical-id"]: c for c in self._vcpus()}
        change = []
        for n in wanted:
            if n not in have:
                raise InvalidArgument(f"invalid argument: requested vcpu '{n}' is not present in the guest")
            if not enable and not have[n].get("can-offline"):
                raise InvalidArgument(f"invalid argument: vCPU '{n}' is not offlinable")
            if bool(have[n].get("online")) != enable:
                change.append({"logical-id": n, "online": enable})
        if change:
            done = self._call("guest-set-vcpus", {"vcpus": change})
            if done != len(change):
                raise VshError(f"internal error: failed to set state of cpu {change[done]['logical-id']} "
                               "via guest agent")

    def ssh_keys(self, user: str) -> list[str]:
        got = self._call("guest-ssh-get-authorized-keys", {"username": user})
        return list(got.get("keys") or [])

    def set_ssh_keys(self, user: str, keys: list[str], mode: str = "append") -> None:
        if mode not in SSH_KEY_MODES:
            raise InvalidArgument(f"invalid argument: unknown ssh key mode '{mode}'")
        keys = [k for k in keys if k.strip()]
        if mode == "remove":
            self._call("guest-ssh-remove-authorized-keys", {"username": user, "keys": keys})
        else:
            self._call("guest-ssh-add-authorized-keys", {"username": user, "keys": keys, "reset": mode == "reset"})

    def set_user_password(self, user: str, password: str, encrypted: bool = False) -> None:
        import base64

        self._call("guest-set-user-password", {"username": user, "crypted": bool(encrypted),
                                               "password": base64.b64encode(password.encode()).decode()})

    def get_time(self) -> tuple[int, int]:
        ns = int(self._call("guest-get-time"))
        return ns // 1_000_000_000, ns % 1_000_000_000

    def set_time(self, seconds: int | None = None, nseconds: int = 0, sync: bool = False) -> None:
        if sync:
            self._call("guest-set-time")
            return
        if seconds is None or seconds < 0 or not 0 <= nseconds < 1_000_000_000:
            raise InvalidArgument("invalid argument: time is out of range")
        ns = seconds * 1_000_000_000 + nseconds
        if ns >= 1 << 63:
            raise InvalidArgument(f"invalid argument: Time '{seconds}' is too big for guest agent")
        self._call("guest-set-time", {"time": ns})

    def pm_suspend(self, target: str, duration: int = 0) -> None:
        if duration:
            raise InvalidArgument("invalid argument: Duration not supported. Use 0 for now")
        if target not in SUSPEND_TARGETS:
            raise InvalidArgument(f"invalid argument: Unknown suspend target: {target}")
        agent, live, timeout = self._open()
        for state, needed in (("suspend-to-mem", ("mem", "hybrid")), ("suspend-to-disk", ("disk", "hybrid"))):
            el = live.node.find(f"pm/{state}")
            if target in needed and el is not None and el.get("enabled") == "no":
                raise OperationInvalid("Requested operation is not valid: "
                                       f"{'S3' if state == 'suspend-to-mem' else 'S4'} state is disabled for this domain")
        with agent:
            agent.execute_unanswered(SUSPEND_TARGETS[target])

    def guest_shutdown(self, mode: str) -> None:
        """guest-shutdown (``powerdown``, ``reboot``, ``halt``): shutdown and reboot --mode agent."""
        agent, _live, _timeout = self._open()
        with agent:
            agent.execute_unanswered("guest-shutdown", {"mode": mode})

    def hostname(self) -> str:
        return str(self._call("guest-get-host-name")["host-name"])

    def interfaces(self) -> list[dict]:
        from vsh.api.local.agentinfo import interfaces

        return interfaces(self._call("guest-network-get-interfaces"))
