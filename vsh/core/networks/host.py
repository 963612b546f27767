"""What the host's network stack says (interfaces, routes, the network namespace), and the
rule for an interface name."""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument

IFNAMSIZ = 15
_IFNAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def check_ifname(name: str, what: str) -> None:
    if not name or len(name) > IFNAMSIZ or any(c not in _IFNAME_CHARS for c in name) or name in (".", ".."):
        raise InvalidArgument(f"{what} '{name}' is not a valid interface name (1-{IFNAMSIZ} characters of "
                              "letters, digits, '_', '.', '-')")


def interface_exists(name: str) -> bool:
    """Whether a network interface of that name exists in this process's network namespace."""
    import socket

    try:
        socket.if_nametoindex(name)
        return True
    except OSError:
        return False


def current_netns() -> int | None:
    """This process's network namespace (the inode of /proc/self/ns/net)."""
    try:
        return os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return None


def host_interfaces() -> set[str]:
    import socket

    try:
        return {name for _i, name in socket.if_nameindex()}
    except OSError:
        return set()


def host_subnets() -> list:
    """IPv4 networks of this host's routes (to keep a new default network off them)."""
    return [subnet for subnet, _iface in host_routes()]


def host_routes() -> list:
    """(IPv4 network, interface) of each of this network namespace's routes but the default."""
    import ipaddress
    import socket

    nets = []
    try:
        with open("/proc/net/route") as fh:
            next(fh, None)
            for line in fh:
                words = line.split()
                if len(words) < 8 or words[1] == "00000000":
                    continue
                dest = socket.inet_ntoa(int(words[1], 16).to_bytes(4, "little"))
                mask = socket.inet_ntoa(int(words[7], 16).to_bytes(4, "little"))
                try:
                    nets.append((ipaddress.IPv4Network(f"{dest}/{mask}", strict=False), words[0]))
                except ValueError:
                    continue
    except OSError:
        pass
    return nets
