"""The local driver's fd groups (``dom-fd-associate``, libvirt's virDomainFDAssociate): descriptors
the caller hands over, kept by the connection (the vsh process: a batch or a shell session), and
given to QEMU as an fd set when a domain whose disk says ``<source fdgroup='NAME'/>`` starts.

A group's descriptors are duplicated on association (the caller may close its own) and closed
with the connection. At a start, the supervisor inherits them under the same numbers and QEMU
after it; QEMU's ``-add-fd fd=N,set=S`` puts them in fd set S and the disk opens
``/dev/fdset/S`` (QEMU picks the descriptor whose access mode the disk needs).
"""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument


def associate(conn, uuid: str, name: str, fds: list[int]) -> None:
    if not name:
        raise InvalidArgument("invalid argument: name in virDomainFDAssociate must not be NULL")
    if not fds:
        raise InvalidArgument("invalid argument: nfds in virDomainFDAssociate must be greater than zero")
    dups: list[int] = []
    try:
        for fd in fds:
            try:
                dups.append(os.dup(fd))
            except OSError as err:
                raise InvalidArgument(f"invalid argument: file descriptor {fd} cannot be passed: "
                                      f"{err.strerror}") from None
    except BaseException:
        for d in dups:
            os.close(d)
        raise
    old = conn.fd_groups.pop((uuid, name), None)
    conn.fd_groups[(uuid, name)] = dups
    for fd in old or ():
        os.close(fd)


def groups_of(conn, uuid: str) -> dict[str, list[int]]:
    """The fd groups associated with the domain ``uuid`` on ``conn``: name → descriptors."""
    return {name: fds for (u, name), fds in conn.fd_groups.items() if u == uuid}


def close_all(conn) -> None:
    groups, conn.fd_groups = conn.fd_groups, {}
    for fds in groups.values():
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def fdsets(groups: dict[str, list[int]], root) -> tuple[dict[str, int], list[str], list[int]]:
    """For the disks of domain XML ``root`` that name an fd group: (group → fd set number,
    QEMU's ``-add-fd`` arguments, the descriptors QEMU must inherit). InvalidArgument, in libvirt's
    words, for a group that was not associated."""
    sets: dict[str, int] = {}
    args: list[str] = []
    passed: list[int] = []
    for src in root.iterfind("devices/disk/source[@fdgroup]"):
        group = src.get("fdgroup")
        if group in sets:
            continue
        if group not in groups:
            raise InvalidArgument(f"invalid argument: file descriptor group '{group}' was not associated "
                                  "with the domain")
        sets[group] = len(sets) + 1
        for fd in groups[group]:
            args += ["-add-fd", f"fd={fd},set={sets[group]},opaque=fdgroup-{group.replace(',', ',,')}"]
            passed.append(fd)
    return sets, args, passed
