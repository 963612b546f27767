"""What a QEMU command line opens: the files, device nodes and directories QEMU's user must
reach.  Read from the argv itself (the builder names every file QEMU opens explicitly:
``-blockdev`` file nodes with their ``read-only``, ``-kernel``/``-initrd``/``-dtb``/``-bios``,
chardev ``path=``/``logfile=``, ``rng-random`` ``filename=``, ``-fsdev local`` ``path=``), so
nothing the argv does not
say is granted.
"""

from __future__ import annotations

import json
import os
from collections import namedtuple

from vsh.kvm.qemuopts import split_opts

#: ``path`` QEMU opens with ``perms`` ('r', 'rw'; 'rx'/'rwx' for a directory); ``create``: vsh makes an empty file first
#: (QEMU would create it, which needs write access to the directory).
Need = namedtuple("Need", "path perms create")

_READ_OPTS = ("-kernel", "-initrd", "-dtb", "-bios")
_FILE_DRIVERS = ("file", "host_device", "host_cdrom")


def _opts(text: str) -> tuple[str, dict]:
    parts = split_opts(text)
    head, rest = (parts[0], parts[1:]) if parts and "=" not in parts[0] else ("", parts)
    return head, dict(p.partition("=")[::2] for p in rest)


def _blockdev(text: str) -> list[Need]:
    try:
        node = json.loads(text) if text.lstrip().startswith("{") else None
    except ValueError:
        node = None
    if node is None:
        head, kv = _opts(text)
        node = {"driver": kv.get("driver", head), "filename": kv.get("filename"),
                "read-only": kv.get("read-only") in ("on", "true", "yes")}
    return blockdev_needs(node)


def blockdev_needs(node: dict) -> list[Need]:
    """The files of one -blockdev / blockdev-add argument (its file nodes, nested ones too)."""
    out: list[Need] = []

    def walk(n):
        if not isinstance(n, dict):
            return
        if n.get("driver") in _FILE_DRIVERS and n.get("filename") and \
                not str(n["filename"]).startswith("/dev/fdset/"):     # a descriptor QEMU already holds
            out.append(Need(n["filename"], "r" if n.get("read-only") else "rw", False))
        for value in n.values():
            walk(value)
    walk(node)
    return out


def _chardev(text: str) -> list[Need]:
    head, kv = _opts(text)
    out: list[Need] = []
    if kv.get("logfile"):
        out.append(Need(kv["logfile"], "rw", True))
    path = kv.get("path")
    if not path:
        return out
    if head == "file":
        out.append(Need(path, "rw", True))
    elif head == "pipe":        # QEMU opens PATH.in and PATH.out when both exist, else PATH
        if os.path.exists(path + ".in") and os.path.exists(path + ".out"):
            out += [Need(path + ".in", "rw", False), Need(path + ".out", "rw", False)]
        else:
            out.append(Need(path, "rw", False))
    elif head in ("serial", "tty", "parallel"):
        out.append(Need(path, "rw", False))
    elif head == "socket" and kv.get("server") not in ("on", "true", "yes", ""):
        out.append(Need(path, "rw", False))       # QEMU connects: it needs write on the socket
    return out


def needs(argv: list[str]) -> list[Need]:
    """The files QEMU's argv opens, in order, each path once (the widest perms win)."""
    found: dict[str, Need] = {}
    for opt, value in zip(argv, argv[1:]):
        items: list[Need] = []
        if opt in _READ_OPTS:
            items = [Need(value, "r", False)]
        elif opt == "-blockdev":
            items = _blockdev(value)
        elif opt == "-chardev":
            items = _chardev(value)
        elif opt == "-fsdev":         # a directory shared over 9p: QEMU lists, reads (and writes) in it
            head, kv = _opts(value)
            if head == "local" and kv.get("path"):
                ro = kv.get("readonly") in ("on", "true", "yes", "")
                items = [Need(kv["path"], "rx" if ro else "rwx", False)]
        elif opt == "-object":
            head, kv = _opts(value)
            if head == "rng-random" and kv.get("filename"):
                items = [Need(kv["filename"], "r", False)]
        for item in items:
            if not item.path.startswith("/"):
                continue
            old = found.get(item.path)
            if old is None or not set(item.perms) <= set(old.perms):
                perms = "".join(c for c in "rwx" if c in item.perms or (old and c in old.perms))
                found[item.path] = Need(item.path, perms, item.create or bool(old and old.create))
    return list(found.values())
