"""A storage pool's definition: names, libvirt's ``<pool>`` XML (parsed and written), pool-define-as."""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, Unsupported, XMLError
from vsh.core.names import check_file_name as _check_file_name
from vsh.core.names import has_control
from vsh.core.names import is_uuid
from vsh.core.names import normal_uuid as _normal_uuid
from vsh.core.xml import escape_attr, escape_text

POOL_TYPES = ("dir", "fs", "netfs", "logical", "disk", "iscsi", "iscsi-direct", "scsi", "mpath", "rbd",
              "sheepdog", "gluster", "zfs", "vstorage")
CREATE_FORMATS = ("raw", "qcow2")  # what vsh creates and hands to qemu-img
DEFAULT_POOL = "default"
MAX_NAME_BYTES = 255
MAX_POOL_NAME_BYTES = 255 - len(".xml")
MAX_CHAIN = 16


# -- names ---------------------------------------------------------------------------------------


def check_pool_type(ptype: str, unknown=InvalidArgument) -> None:
    """A pool type vsh can define: libvirt's list of types, of which vsh has ``dir``."""
    if ptype not in POOL_TYPES:
        raise unknown(f"{'XML error: ' if unknown is XMLError else ''}unknown storage pool type {ptype}")
    if ptype != "dir":
        raise Unsupported(f"unsupported configuration: vsh supports storage pools of type 'dir' only, not "
                          f"'{ptype}' (libvirt's pool types: {', '.join(POOL_TYPES)})")


def check_volume_name(name: str) -> None:
    """A volume name becomes a file name in the pool directory: refuse what could escape it."""
    _check_file_name(name, "volume", MAX_NAME_BYTES)


def check_pool_name(name: str) -> None:
    _check_file_name(name, "pool", MAX_POOL_NAME_BYTES)


def valid_name(check, name) -> bool:
    try:
        check(name)
        return True
    except InvalidArgument:
        return False


def new_uuid() -> str:
    from vsh.core.names import random_uuid

    return random_uuid()


# -- pools -----------------------------------------------------------------------------------------


class Pool:
    """One pool definition plus its state (``active``, ``autostart``)."""

    def __init__(self, name: str, uuid: str, target: str, type: str = "dir", mode: int | None = None,
                 owner: int | None = None, group: int | None = None):
        self.name = name
        self.uuid = uuid
        self.type = type
        self.target = target
        self.mode = mode
        self.owner = owner
        self.group = group
        self.autostart = False
        self.active = False
        self.persistent = True

    def __repr__(self) -> str:
        return f"Pool({self.name!r}, target={self.target!r}, active={self.active})"

    @property
    def state(self) -> str:
        """virsh's pool state word (pool-info, pool-list --details)."""
        return "running" if self.active else "inactive"

    def xml(self, sizes: tuple = (0, 0, 0), perms: tuple | None = None) -> str:
        """libvirt's pool XML; ``perms`` (mode, owner, group) replaces the defined permissions."""
        capacity, allocation, available = sizes
        mode, owner, group = perms if perms is not None else (self.mode, self.owner, self.group)
        out = [f"<pool type='{escape_attr(self.type)}'>\n",
               f"  <name>{escape_text(self.name)}</name>\n",
               f"  <uuid>{self.uuid}</uuid>\n",
               f"  <capacity unit='bytes'>{capacity}</capacity>\n",
               f"  <allocation unit='bytes'>{allocation}</allocation>\n",
               f"  <available unit='bytes'>{available}</available>\n",
               "  <source>\n",
               "  </source>\n",
               "  <target>\n",
               f"    <path>{escape_text(self.target)}</path>\n"]
        if mode is not None or owner is not None or group is not None:
            out.append("    <permissions>\n")
            if mode is not None:
                out.append(f"      <mode>0{mode:o}</mode>\n")
            if owner is not None:
                out.append(f"      <owner>{owner}</owner>\n")
            if group is not None:
                out.append(f"      <group>{group}</group>\n")
            out.append("    </permissions>\n")
        out += ["  </target>\n", "</pool>\n"]
        return "".join(out)


def _int_text(node, path: str, what: str, base: int = 10) -> int | None:
    text = node.findtext(path)
    if text is None or text.strip() == "":
        return None
    try:
        value = int(text.strip(), base)
    except ValueError:
        raise XMLError(f"XML error: malformed {what} '{text.strip()}'") from None
    return value


def parse_pool_xml(data, origin: str = "pool_definition") -> Pool:
    """A pool from libvirt's ``<pool>`` XML (untrusted input); only ``dir`` pools are supported."""
    from vsh.core.xml import parse

    root = parse(data, origin, root_tag="pool")
    ptype = root.get("type")
    if not ptype:
        raise XMLError("XML error: missing storage pool type")
    check_pool_type(ptype, unknown=XMLError)
    name = root.findtext("name")
    if name is None or name == "":
        raise XMLError("XML error: missing pool name element")
    check_pool_name(name)
    uuid_text = (root.findtext("uuid") or "").strip()
    if uuid_text and not is_uuid(uuid_text):
        raise XMLError(f"XML error: malformed uuid element '{uuid_text}'")
    path = root.findtext("target/path")
    if path is None or path.strip() == "":
        raise XMLError("XML error: missing storage pool target path")
    path = path.strip()
    if not os.path.isabs(path):
        raise XMLError(f"XML error: storage pool target path '{path}' must be absolute")
    mode = _int_text(root, "target/permissions/mode", "mode", 8)
    if mode is not None and not 0 <= mode <= 0o7777:
        raise XMLError(f"XML error: malformed mode '{mode:o}'")
    owner = _int_text(root, "target/permissions/owner", "owner")
    group = _int_text(root, "target/permissions/group", "group")
    return Pool(name=name, uuid=_normal_uuid(uuid_text) if uuid_text else new_uuid(),
                target=os.path.normpath(path), mode=mode,
                owner=None if owner is None or owner < 0 else owner,
                group=None if group is None or group < 0 else group)


def quick_pool(data: bytes) -> Pool | None:
    """A stored definition read with expat (no lxml on the query path); None: use parse_pool_xml.

    The files are vsh's own, but still treated as untrusted: anything unusual (a DTD, an
    entity, a repeated or unknown element) returns None and the full parser decides.
    """
    from vsh.core.facts import read_paths

    wanted = {("pool", "name"): "name", ("pool", "uuid"): "uuid", ("pool", "target", "path"): "path",
              ("pool", "target", "permissions", "mode"): "mode", ("pool", "target", "permissions", "owner"): "owner",
              ("pool", "target", "permissions", "group"): "group"}
    known = {("pool", "capacity"), ("pool", "allocation"), ("pool", "available"), ("pool", "source"),
             ("pool", "target"), ("pool", "target", "permissions")}
    found = read_paths(data, wanted, known)
    if found is None:
        return None
    values, attrs = found
    root = attrs[()]
    name, uuid, target = values.get("name"), values.get("uuid", "").strip(), values.get("path", "").strip()
    if root.get("type") != "dir" or not name or not is_uuid(uuid) or not os.path.isabs(target):
        return None
    if not valid_name(check_pool_name, name):
        return None
    try:
        mode = int(values["mode"].strip(), 8) if "mode" in values else None
        owner = int(values["owner"].strip()) if "owner" in values else None
        group = int(values["group"].strip()) if "group" in values else None
    except ValueError:
        return None
    return Pool(name=name, uuid=_normal_uuid(uuid), target=os.path.normpath(target), mode=mode,
                owner=None if owner is None or owner < 0 else owner,
                group=None if group is None or group < 0 else group)


def pool_from_args(name: str, ptype: str, target: str | None) -> Pool:
    """pool-define-as NAME TYPE --target PATH (a relative target is taken from the current directory)."""
    check_pool_type(ptype)
    check_pool_name(name)
    if not target:
        raise XMLError("XML error: missing storage pool target path")
    if has_control(target):
        raise InvalidArgument(f"storage pool target path {target!r} cannot contain control characters")
    return Pool(name=name, uuid=new_uuid(), target=os.path.abspath(target))
