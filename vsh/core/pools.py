"""Storage pools and volumes of one connection, in libvirt's storage XML formats.

vsh keeps directory pools (libvirt's ``type='dir'``): a pool is a directory and
its volumes are the files in it. Layout in the store::

    <config>/storage/NAME.xml          a pool definition (libvirt's <pool>, as libvirt keeps it)
    <config>/storage/autostart/NAME    autostart mark
    <config>/storage/.lock             held while definitions change
    <config>/storage/.initialized      the default pool has been set up once
    <runtime>/.pools/NAME              "active BOOT_ID" or "inactive BOOT_ID"

There is no daemon to start pools when the host boots, so a pool that has no
state for the current boot is active exactly when it is marked autostart and
its directory exists (what libvirtd would have made of it at boot). The first
time a connection's pools are used, vsh defines ``default`` on
``<data>/images`` (created then), marked autostart.

Volumes are not cached: every listing reads the directory, so a file copied
into a pool is a volume at once and pool-refresh has nothing to redo.

Safety:

* a volume name is checked (no ``/``, no ``.``/``..`` or other leading dot, no
  NUL or control characters, at most 255 bytes) before it becomes a path;
  entries of a pool directory that fail the check, and symbolic links, are not
  volumes;
* a volume's own format is read from its header (as libvirt does for directory
  pools); a qcow2 backing file is only ever opened with the format recorded in
  the overlay's header, only when it is itself a volume of an active pool, and
  never through an external data file (:func:`check_chain`);
* a new volume is made under a hidden temporary name in the pool directory and
  hard-linked to its name, which never replaces an existing file; an
  interrupted create leaves nothing behind;
* everything vsh creates is private (files 0600, directories 0700).
"""

from __future__ import annotations

import os
import stat as _stat

from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, Unsupported, VshError, XMLError
from vsh.core.names import CONTROL as _CONTROL
from vsh.core.names import check_file_name as _check_file_name
from vsh.core.names import is_uuid as is_pool_uuid
from vsh.core.names import normal_uuid as _normal_uuid
from vsh.core.store import fsync_dir

POOL_TYPES = ("dir", "fs", "netfs", "logical", "disk", "iscsi", "iscsi-direct", "scsi", "mpath", "rbd",
              "sheepdog", "gluster", "zfs", "vstorage")
CREATE_FORMATS = ("raw", "qcow2")  # what vsh creates and hands to qemu-img
DEFAULT_POOL = "default"
MAX_NAME_BYTES = 255
MAX_POOL_NAME_BYTES = 255 - len(".xml")
MAX_CHAIN = 16
QCOW2_MAGIC = b"QFI\xfb"


# -- names ---------------------------------------------------------------------------------------


def check_volume_name(name: str) -> None:
    """A volume name becomes a file name in the pool directory: refuse what could escape it."""
    _check_file_name(name, "volume", MAX_NAME_BYTES)


def check_pool_name(name: str) -> None:
    _check_file_name(name, "pool", MAX_POOL_NAME_BYTES)


def _valid(check, name) -> bool:
    try:
        check(name)
        return True
    except InvalidArgument:
        return False


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _esc_attr(text: str) -> str:
    return _esc(text).replace("'", "&apos;").replace('"', "&quot;")


def _new_uuid() -> str:
    import uuid

    return str(uuid.uuid4())


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
        out = [f"<pool type='{_esc_attr(self.type)}'>\n",
               f"  <name>{_esc(self.name)}</name>\n",
               f"  <uuid>{self.uuid}</uuid>\n",
               f"  <capacity unit='bytes'>{capacity}</capacity>\n",
               f"  <allocation unit='bytes'>{allocation}</allocation>\n",
               f"  <available unit='bytes'>{available}</available>\n",
               "  <source>\n",
               "  </source>\n",
               "  <target>\n",
               f"    <path>{_esc(self.target)}</path>\n"]
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
    if ptype not in POOL_TYPES:
        raise XMLError(f"XML error: unknown storage pool type {ptype}")
    if ptype != "dir":
        raise Unsupported(f"unsupported configuration: storage pool type '{ptype}' is not supported by vsh "
                          "(only 'dir' pools)")
    name = root.findtext("name")
    if name is None or name == "":
        raise XMLError("XML error: missing pool name element")
    check_pool_name(name)
    uuid_text = (root.findtext("uuid") or "").strip()
    if uuid_text and not is_pool_uuid(uuid_text):
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
    return Pool(name=name, uuid=_normal_uuid(uuid_text) if uuid_text else _new_uuid(),
                target=os.path.normpath(path), mode=mode,
                owner=None if owner is None or owner < 0 else owner,
                group=None if group is None or group < 0 else group)


def _quick_pool(data: bytes) -> Pool | None:
    """A stored definition read with expat (no lxml on the query path); None: use parse_pool_xml.

    The files are vsh's own, but still treated as untrusted: anything unusual (a DTD, an
    entity, a repeated or unknown element) returns None and the full parser decides.
    """
    import pyexpat

    if b"<!" in data:
        return None
    wanted = {("pool", "name"): "name", ("pool", "uuid"): "uuid", ("pool", "target", "path"): "path",
              ("pool", "target", "permissions", "mode"): "mode", ("pool", "target", "permissions", "owner"): "owner",
              ("pool", "target", "permissions", "group"): "group"}
    known = {("pool",), ("pool", "capacity"), ("pool", "allocation"), ("pool", "available"), ("pool", "source"),
             ("pool", "target"), ("pool", "target", "permissions")}
    path: list[str] = []
    texts: dict[str, list[str]] = {}
    root: dict = {}
    current: list = [None]

    class Refuse(Exception):
        pass

    def start(name, attributes):
        path.append(name)
        key = wanted.get(tuple(path))
        if key is None and tuple(path) not in known:
            raise Refuse()
        if len(path) == 1:
            root.update(attributes)
        current[0] = key
        if key is not None:
            if key in texts:
                raise Refuse()
            texts[key] = []

    def end(name):
        path.pop()
        current[0] = None

    def chars(text):
        if current[0] is not None:
            texts[current[0]].append(text)

    def refuse(*_args):
        raise Refuse()

    parser = pyexpat.ParserCreate()
    parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.EntityDeclHandler = refuse
    parser.StartDoctypeDeclHandler = refuse
    try:
        parser.Parse(data, True)
    except (Refuse, pyexpat.ExpatError, ValueError):
        return None
    values = {key: "".join(parts) for key, parts in texts.items()}
    name, uuid, target = values.get("name"), values.get("uuid", "").strip(), values.get("path", "").strip()
    if root.get("type") != "dir" or not name or not is_pool_uuid(uuid) or not os.path.isabs(target):
        return None
    if not _valid(check_pool_name, name):
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
    if ptype not in POOL_TYPES:
        raise InvalidArgument(f"unknown storage pool type {ptype}")
    if ptype != "dir":
        raise Unsupported(f"unsupported configuration: storage pool type '{ptype}' is not supported by vsh "
                          "(only 'dir' pools)")
    check_pool_name(name)
    if not target:
        raise XMLError("XML error: missing storage pool target path")
    if "\x00" in target or _CONTROL.search(target):
        raise InvalidArgument(f"storage pool target path {target!r} cannot contain control characters")
    return Pool(name=name, uuid=_new_uuid(), target=os.path.abspath(target))


# -- volumes ---------------------------------------------------------------------------------------


class Qcow2Header:
    """What vsh needs from a qcow2 header (read with plain struct, never through QEMU)."""

    def __init__(self):
        self.version = 0
        self.size = 0
        self.cluster_bits = 16
        self.backing = None  # as written in the header
        self.backing_format = None
        self.data_file = False
        self.lazy_refcounts = False
        self.encrypted = False

    @property
    def compat(self) -> str:
        return "0.10" if self.version == 2 else "1.1"


def read_qcow2_header(fd: int) -> Qcow2Header | None:
    """Parse a qcow2 header from an open file, or None when it is not one (qcow v1 included)."""
    import struct

    head = os.pread(fd, 65536, 0)
    if len(head) < 72 or head[:4] != QCOW2_MAGIC:
        return None
    version, backing_off, backing_len, cluster_bits, size, crypt = struct.unpack_from(">IQIIQI", head, 4)
    if version not in (2, 3):
        return None
    hdr = Qcow2Header()
    hdr.version = version
    hdr.size = size
    hdr.cluster_bits = cluster_bits
    hdr.encrypted = crypt != 0
    ext_start = 72
    if version == 3 and len(head) >= 104:
        incompatible, compatible = struct.unpack_from(">QQ", head, 72)
        header_length = struct.unpack_from(">I", head, 100)[0]
        hdr.data_file = bool(incompatible & 0x4)
        hdr.lazy_refcounts = bool(compatible & 0x1)
        ext_start = max(header_length, 104)
    pos = ext_start
    limit = min(len(head), backing_off) if backing_off else len(head)
    while pos + 8 <= limit:
        ext_type, ext_len = struct.unpack_from(">II", head, pos)
        if ext_type == 0:
            break
        body = head[pos + 8:pos + 8 + ext_len]
        if ext_type == 0xE2792ACA:
            hdr.backing_format = body.decode("utf-8", "replace")
        elif ext_type == 0x44415441:
            hdr.data_file = True
        pos += 8 + ((ext_len + 7) & ~7)
    if backing_off and backing_len:
        raw = os.pread(fd, min(backing_len, 4096), backing_off)
        hdr.backing = raw.decode("utf-8", "replace")
    return hdr


def _probe_format(fd: int, head: bytes, size: int) -> str:
    """The format a volume's header names (display only, like libvirt's directory pools)."""
    if head[:4] == QCOW2_MAGIC:
        return "qcow" if head[4:8] == b"\x00\x00\x00\x01" else "qcow2"
    if head[:4] == b"QED\x00":
        return "qed"
    if head[:4] == b"KDMV" or head[:21] == b"# Disk DescriptorFile":
        return "vmdk"
    if head[:8] == b"vhdxfile":
        return "vhdx"
    if head[:8] == b"conectix":
        return "vpc"
    if head[0x40:0x44] == b"\x7f\x10\xda\xbe":
        return "vdi"
    if size >= 0x8006 and os.pread(fd, 5, 0x8001) == b"CD001":
        return "iso"
    return "raw"


class Volume:
    """A volume of a pool: an entry of its directory. Header facts are read on first use."""

    def __init__(self, pool: Pool, name: str, st):
        self.pool = pool
        self.name = name
        self.path = os.path.join(pool.target, name)
        self.st = st
        mode = st.st_mode
        self.type = "dir" if _stat.S_ISDIR(mode) else "block" if _stat.S_ISBLK(mode) else "file"
        self._inspected = False
        self._format = None
        self._capacity = None
        self._header: Qcow2Header | None = None

    def __repr__(self) -> str:
        return f"Volume({self.pool.name!r}, {self.name!r})"

    @property
    def key(self) -> str:
        return self.path

    def _inspect(self) -> None:
        if self._inspected:
            return
        self._inspected = True
        if self.type == "dir":
            self._format, self._capacity = "dir", self.st.st_size
            return
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            self._format, self._capacity = "raw", self.st.st_size
            return
        try:
            size = self.st.st_size if self.type == "file" else os.lseek(fd, 0, os.SEEK_END)
            head = os.pread(fd, 512, 0)
            fmt = _probe_format(fd, head, size)
            capacity = size
            if fmt == "qcow2":
                self._header = read_qcow2_header(fd)
                if self._header is not None:
                    capacity = self._header.size
            self._format, self._capacity = fmt, capacity
        except OSError:
            self._format, self._capacity = "raw", self.st.st_size
        finally:
            os.close(fd)

    @property
    def format(self) -> str:
        self._inspect()
        return self._format

    @property
    def capacity(self) -> int:
        self._inspect()
        return self._capacity

    @property
    def allocation(self) -> int:
        if self.type == "block":
            return self.capacity
        return self.st.st_blocks * 512

    @property
    def physical(self) -> int:
        if self.type == "block":
            return self.capacity
        return self.st.st_size

    @property
    def header(self) -> Qcow2Header | None:
        self._inspect()
        return self._header

    @property
    def backing(self) -> str | None:
        """The backing file as an absolute path (relative names are relative to the volume's directory)."""
        hdr = self.header
        if hdr is None or not hdr.backing:
            return None
        return os.path.normpath(os.path.join(os.path.dirname(self.path), hdr.backing))

    @property
    def backing_format(self) -> str | None:
        hdr = self.header
        return hdr.backing_format if hdr is not None else None

    def qemu_format(self) -> str:
        """The ``-f`` vsh gives qemu-img for this volume (raw or qcow2 only)."""
        fmt = self.format
        if fmt in ("raw", "iso"):
            return "raw"
        if fmt == "qcow2":
            return "qcow2"
        raise Unsupported(f"volume '{self.name}' is in format '{fmt}', which vsh handles only as raw bytes "
                          "(vol-upload, vol-download, vol-delete)")

    def xml(self) -> str:
        """libvirt's volume XML."""
        out = [f"<volume type='{self.type}'>\n",
               f"  <name>{_esc(self.name)}</name>\n",
               f"  <key>{_esc(self.key)}</key>\n",
               f"  <capacity unit='bytes'>{self.capacity}</capacity>\n",
               f"  <allocation unit='bytes'>{self.allocation}</allocation>\n",
               f"  <physical unit='bytes'>{self.physical}</physical>\n",
               "  <target>\n",
               f"    <path>{_esc(self.path)}</path>\n",
               f"    <format type='{self.format}'/>\n"]
        out += _perms_and_times(self.st, "    ")
        hdr = self.header
        if hdr is not None:
            out.append(f"    <compat>{hdr.compat}</compat>\n")
            out.append(f"    <clusterSize unit='B'>{1 << hdr.cluster_bits}</clusterSize>\n")
            if hdr.lazy_refcounts:
                out += ["    <features>\n", "      <lazy_refcounts/>\n", "    </features>\n"]
            else:
                out.append("    <features/>\n")
        out.append("  </target>\n")
        if self.backing:
            out += ["  <backingStore>\n", f"    <path>{_esc(self.backing)}</path>\n"]
            if self.backing_format:
                out.append(f"    <format type='{_esc_attr(self.backing_format)}'/>\n")
            try:
                out += _perms_and_times(os.stat(self.backing), "    ")
            except OSError:
                pass
            out.append("  </backingStore>\n")
        out.append("</volume>\n")
        return "".join(out)


def _perms_and_times(st, pad: str) -> list[str]:
    def stamp(name: str, ns: int) -> str:
        sec, frac = divmod(ns, 1_000_000_000)
        return f"{pad}  <{name}>{sec}" + (f".{frac:09d}" if frac else "") + f"</{name}>\n"

    return [f"{pad}<permissions>\n", f"{pad}  <mode>0{_stat.S_IMODE(st.st_mode):o}</mode>\n",
            f"{pad}  <owner>{st.st_uid}</owner>\n", f"{pad}  <group>{st.st_gid}</group>\n",
            f"{pad}</permissions>\n", f"{pad}<timestamps>\n", stamp("atime", st.st_atime_ns),
            stamp("mtime", st.st_mtime_ns), stamp("ctime", st.st_ctime_ns), f"{pad}</timestamps>\n"]


class VolumeSpec:
    """What to create: from vol-create-as or a ``<volume>`` document."""

    def __init__(self, name: str, capacity: int, allocation: int | None = None, format: str | None = None,
                 backing_path: str | None = None, backing_format: str | None = None):
        self.name = name
        self.capacity = capacity
        self.allocation = allocation
        self.format = format or "raw"
        self.backing_path = backing_path
        self.backing_format = backing_format


def parse_size(text: str) -> int:
    """A scaled size with libvirt's units, default bytes; virsh's ``Malformed size`` otherwise."""
    from vsh.registry import parse_scaled

    try:
        return parse_scaled(text, 1, "size")
    except InvalidArgument:
        raise InvalidArgument(f"Malformed size {text}") from None


def parse_volume_xml(data, origin: str = "volume_definition") -> VolumeSpec:
    """A volume to create from libvirt's ``<volume>`` XML (untrusted input)."""
    from vsh.core.xml import parse
    from vsh.registry import scale_for_unit

    root = parse(data, origin, root_tag="volume")
    name = root.findtext("name")
    if name is None or name == "":
        raise XMLError("XML error: missing volume name element")
    check_volume_name(name)

    def size(tag: str) -> int | None:
        node = root.find(tag)
        if node is None:
            return None
        text = (node.text or "").strip()
        if not text.isdigit():
            raise XMLError(f"XML error: malformed {tag} element '{text}'")
        scale = scale_for_unit(node.get("unit") or "bytes")
        if scale is None:
            raise XMLError(f"XML error: unknown unit '{node.get('unit')}' in {tag}")
        return int(text) * scale

    capacity = size("capacity")
    if capacity is None:
        raise XMLError("XML error: missing capacity element")
    fmt = root.find("target/format")
    backing = root.findtext("backingStore/path")
    bfmt = root.find("backingStore/format")
    return VolumeSpec(name=name, capacity=capacity, allocation=size("allocation"),
                      format=fmt.get("type") if fmt is not None else None,
                      backing_path=backing.strip() if backing else None,
                      backing_format=bfmt.get("type") if bfmt is not None else None)


def volume_spec_xml(spec: VolumeSpec) -> str:
    """vol-create-as --print-xml: the document virsh would send."""
    out = ["<volume>\n", f"  <name>{_esc(spec.name)}</name>\n", f"  <capacity>{spec.capacity}</capacity>\n"]
    if spec.allocation is not None:
        out.append(f"  <allocation>{spec.allocation}</allocation>\n")
    if spec.format:
        out += ["  <target>\n", f"    <format type='{_esc_attr(spec.format)}'/>\n", "  </target>\n"]
    if spec.backing_path:
        out += ["  <backingStore>\n", f"    <path>{_esc(spec.backing_path)}</path>\n"]
        if spec.backing_format:
            out.append(f"    <format type='{_esc_attr(spec.backing_format)}'/>\n")
        out.append("  </backingStore>\n")
    out.append("</volume>\n")
    return "".join(out)


# -- qemu-img --------------------------------------------------------------------------------------


def qemu_img(args: list[str], progress_fd: int | None = None) -> None:
    """Run qemu-img; its error message becomes the VshError. ``progress_fd`` gets ``-p`` output."""
    import shutil
    import subprocess

    exe = shutil.which("qemu-img")
    if exe is None:
        raise Unsupported("qemu-img is not installed (Debian package qemu-utils)")
    proc = subprocess.run([exe, *args], stdin=subprocess.DEVNULL,
                          stdout=progress_fd if progress_fd is not None else subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env={**os.environ, "LC_ALL": "C"})
    if progress_fd is not None:
        try:
            os.write(progress_fd, b"\n")
        except OSError:
            pass
    if proc.returncode != 0:
        text = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        msg = text[-1] if text else f"exit status {proc.returncode}"
        raise VshError(f"qemu-img {args[0]} failed: {msg}")


# -- the pools of a connection ---------------------------------------------------------------------


class Pools:
    """The pools of one store, and what can be done with them and their volumes."""

    def __init__(self, store, init: bool = True):
        self.store = store
        self.dir = os.path.join(os.fspath(store.config_dir), "storage")
        self.autostart_dir = os.path.join(self.dir, "autostart")
        self.run_root = os.fspath(store.runtime_root)
        self.state_dir = os.path.join(self.run_root, ".pools")
        if init:
            self.ensure_default()

    # -- definitions ----------------------------------------------------------------------
    def lock(self, timeout: float = 30.0):
        return _DirLock(self.dir, timeout)

    def ensure_default(self) -> None:
        """Define ``default`` on <data>/images the first time this store's pools are used."""
        marker = os.path.join(self.dir, ".initialized")
        if os.path.exists(marker):
            return
        from vsh.core.store import atomic_write, ensure_private_dir

        with self.lock():
            if os.path.exists(marker):
                return
            images = os.fspath(self.store.data_dir / "images")
            pools = self._load_all()
            taken = any(p.name == DEFAULT_POOL or _same_dir(p.target, images) for p in pools)
            if not taken:
                ensure_private_dir(os.fspath(self.store.data_dir))
                ensure_private_dir(images)
                pool = Pool(DEFAULT_POOL, _new_uuid(), images)
                self._write(pool)
                self._write_autostart(pool.name, True)
            atomic_write(marker, b"")

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.xml")

    def _load(self, name: str) -> Pool | None:
        if not _valid(check_pool_name, name):
            return None
        try:
            with open(self._path(name), "rb") as fh:
                data = fh.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        pool = _quick_pool(data)
        if pool is None:
            try:
                pool = parse_pool_xml(data, f"{name}.xml")
            except VshError:
                return None
        if pool.name != name:
            return None
        self._fill_state(pool)
        return pool

    def _load_all(self) -> list[Pool]:
        try:
            entries = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        pools = []
        for entry in entries:
            if entry.endswith(".xml") and not entry.startswith("."):
                pool = self._load(entry[:-4])
                if pool is not None:
                    pools.append(pool)
        return pools

    def list(self) -> list[Pool]:
        """Every pool, sorted by name the way virsh sorts (case-insensitive)."""
        return sorted(self._load_all(), key=lambda p: (p.name.lower(), p.name))

    def names(self) -> list[str]:
        return [p.name for p in self.list()]

    def by_name(self, name: str) -> Pool:
        pool = self._load(name)
        if pool is None:
            raise NotFound(f"failed to get pool '{name}'")
        return pool

    def get(self, ident: str) -> Pool:
        """By UUID, then by name (virsh's order); ``failed to get pool 'X'`` otherwise."""
        if ident:
            if is_pool_uuid(ident):
                wanted = _normal_uuid(ident)
                for pool in self._load_all():
                    if pool.uuid == wanted:
                        return pool
            pool = self._load(ident)
            if pool is not None:
                return pool
        raise NotFound(f"failed to get pool '{ident}'")

    def _write(self, pool: Pool) -> None:
        from vsh.core.store import atomic_write, ensure_private_dir

        ensure_private_dir(os.fspath(self.store.config_dir))
        ensure_private_dir(self.dir)
        atomic_write(self._path(pool.name), pool.xml())

    def _write_autostart(self, name: str, enabled: bool) -> None:
        from vsh.core.store import atomic_write, ensure_private_dir

        path = os.path.join(self.autostart_dir, name)
        if enabled:
            ensure_private_dir(self.autostart_dir)
            atomic_write(path, b"")
        else:
            _unlink(path)

    def define(self, pool: Pool) -> bool:
        """Store a definition (new, or a redefinition with the same UUID); True when it is new."""
        check_pool_name(pool.name)
        with self.lock():
            pools = self._load_all()
            old = next((p for p in pools if p.name == pool.name), None)
            for other in pools:
                if other.name == pool.name:
                    continue
                if other.uuid == pool.uuid:
                    raise OperationInvalid(f"operation failed: pool '{other.name}' already exists with uuid {pool.uuid}")
                if _same_dir(other.target, pool.target):
                    raise OperationInvalid(f"operation failed: Storage source conflict with pool: '{other.name}'")
            if old is not None:
                if old.uuid != pool.uuid:
                    raise OperationInvalid(f"operation failed: pool '{pool.name}' is already defined with uuid {old.uuid}")
                if old.active and not _same_dir(old.target, pool.target):
                    raise OperationInvalid(f"Requested operation is not valid: storage pool '{pool.name}' is active; "
                                           "destroy it before changing its target path")
            self._write(pool)
        return old is None

    def undefine(self, pool: Pool) -> None:
        with self.lock():
            self._fill_state(pool)
            if pool.active:
                raise OperationInvalid(f"Requested operation is not valid: storage pool '{pool.name}' is still active")
            _unlink(self._path(pool.name))
            _unlink(os.path.join(self.autostart_dir, pool.name))
            _unlink(os.path.join(self.state_dir, pool.name))

    def set_autostart(self, pool: Pool, enabled: bool) -> None:
        with self.lock():
            self._write_autostart(pool.name, enabled)
            pool.autostart = enabled
            # an explicit mark keeps the pool as it is now for the rest of this boot
            self._write_state(pool.name, pool.active)

    # -- state ------------------------------------------------------------------------------
    def _fill_state(self, pool: Pool) -> None:
        from vsh.core.store import boot_id

        pool.autostart = os.path.exists(os.path.join(self.autostart_dir, pool.name))
        try:
            with open(os.path.join(self.state_dir, pool.name), "rb") as fh:
                words = fh.read(200).decode("ascii", "replace").split()
        except OSError:
            words = []
        if len(words) == 2 and words[1] == boot_id() and words[0] in ("active", "inactive"):
            pool.active = words[0] == "active"
        else:
            pool.active = pool.autostart and os.path.isdir(pool.target)

    def _write_state(self, name: str, active: bool) -> None:
        from vsh.core.store import atomic_write, boot_id, ensure_private_dir

        ensure_private_dir(self.run_root)
        ensure_private_dir(self.state_dir)
        atomic_write(os.path.join(self.state_dir, name), f"{'active' if active else 'inactive'} {boot_id()}\n")

    def build(self, pool: Pool) -> None:
        """Make the pool's directory (0700 unless the definition says otherwise)."""
        target = pool.target
        try:
            if os.path.lexists(target) and not os.path.isdir(target):
                raise VshError(f"cannot create directory '{target}': it exists and is not a directory")
            created = not os.path.isdir(target)
            os.makedirs(target, mode=0o700, exist_ok=True)
            if pool.mode is not None or created:
                os.chmod(target, pool.mode if pool.mode is not None else 0o700)
            if pool.owner is not None or pool.group is not None:
                st = os.stat(target)
                uid = pool.owner if pool.owner is not None else st.st_uid
                gid = pool.group if pool.group is not None else st.st_gid
                if (uid, gid) != (st.st_uid, st.st_gid):
                    os.chown(target, uid, gid)
        except OSError as exc:
            raise VshError(f"cannot create directory '{target}': {exc.strerror}") from None

    def start(self, pool: Pool, build: bool = False) -> None:
        with self.lock():
            self._fill_state(pool)
            if pool.active:
                raise OperationInvalid(f"Requested operation is not valid: storage pool '{pool.name}' is already active")
            if build:
                self.build(pool)
            if not os.path.isdir(pool.target):
                why = "Not a directory" if os.path.lexists(pool.target) else "No such file or directory"
                raise VshError(f"cannot open directory '{pool.target}': {why}")
            self._write_state(pool.name, True)
            pool.active = True

    def destroy(self, pool: Pool) -> None:
        with self.lock():
            self._fill_state(pool)
            if not pool.active:
                raise OperationInvalid(f"Requested operation is not valid: storage pool '{pool.name}' is not active")
            self._write_state(pool.name, False)
            pool.active = False

    def require_active(self, pool: Pool) -> None:
        if not pool.active:
            raise OperationInvalid(f"Requested operation is not valid: storage pool '{pool.name}' is not active")

    def refresh(self, pool: Pool) -> int:
        """Volumes are read live: refreshing checks that the directory is still there and removes
        what creates killed mid-way left behind (hidden temporary files of dead processes).
        Returns how many leftovers went."""
        from vsh.core.store import pid_alive

        self.require_active(pool)
        try:
            entries = list(os.scandir(pool.target))
        except OSError as exc:
            raise VshError(f"cannot open directory '{pool.target}': {exc.strerror}") from None
        removed = 0
        for entry in entries:
            parts = entry.name.split("-")
            if not entry.name.startswith(".vsh-tmp-") or len(parts) != 4 or not parts[2].isdigit():
                continue
            if pid_alive(int(parts[2])):
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass
        return removed

    @staticmethod
    def sizes(pool: Pool) -> tuple[int, int, int]:
        """(capacity, allocation, available) of the filesystem under the pool, as libvirt counts them."""
        try:
            vfs = os.statvfs(pool.target)
        except OSError as exc:
            raise VshError(f"cannot statvfs path '{pool.target}': {exc.strerror}") from None
        frsize = vfs.f_frsize
        return (vfs.f_blocks * frsize, (vfs.f_blocks - vfs.f_bfree) * frsize, vfs.f_bavail * frsize)

    @staticmethod
    def target_perms(pool: Pool) -> tuple | None:
        try:
            st = os.stat(pool.target)
        except OSError:
            return None
        return (_stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)

    # -- volumes ------------------------------------------------------------------------------
    def volumes(self, pool: Pool) -> list[Volume]:
        """The volumes of an active pool, sorted by name (case-insensitive, like virsh)."""
        self.require_active(pool)
        out = []
        try:
            entries = list(os.scandir(pool.target))
        except OSError as exc:
            raise VshError(f"cannot open directory '{pool.target}': {exc.strerror}") from None
        for entry in entries:
            name = entry.name
            if not _valid(check_volume_name, name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if _stat.S_ISREG(st.st_mode) or _stat.S_ISDIR(st.st_mode) or _stat.S_ISBLK(st.st_mode):
                out.append(Volume(pool, name, st))
        out.sort(key=lambda v: (v.name.lower(), v.name))
        return out

    def volume(self, pool: Pool, name: str) -> Volume | None:
        """A volume by name in a pool; None for a name that is not a valid volume name."""
        if not pool.active or not _valid(check_volume_name, name):
            return None
        try:
            st = os.lstat(os.path.join(pool.target, name))
        except OSError:
            return None
        if _stat.S_ISREG(st.st_mode) or _stat.S_ISDIR(st.st_mode) or _stat.S_ISBLK(st.st_mode):
            return Volume(pool, name, st)
        return None

    def volume_by_path(self, path: str) -> Volume | None:
        """The volume at ``path`` (also its key) in an active pool, or None."""
        if not path or "\x00" in path:
            return None
        full = os.path.abspath(path)
        directory, name = os.path.split(full)
        if not _valid(check_volume_name, name):
            return None
        try:
            real_dir = os.path.realpath(directory)
        except OSError:
            return None
        for pool in self._load_all():
            if pool.active and _same_dir(pool.target, real_dir):
                return self.volume(pool, name)
        return None

    def lookup(self, ident: str, pool_ident: str | None = None, pool_option: str | None = "pool") -> Volume:
        """virsh's volume lookup: by name in ``--pool``, then by key, then by path."""
        pool = None
        vol = None
        if pool_ident is not None:
            pool = self.get(pool_ident)
            if not pool.active:
                raise OperationInvalid(f"pool '{pool_ident}' is not active")
            vol = self.volume(pool, ident)
        if vol is None:
            vol = self.volume_by_path(ident)
        if vol is None:
            if pool is not None or pool_option is None:
                raise NotFound(f"failed to get vol '{ident}'")
            raise NotFound(f"failed to get vol '{ident}', specifying --{pool_option} might help")
        if pool is not None and vol.pool.name != pool.name:
            raise NotFound(f"Requested volume '{ident}' is not in pool '{pool.name}'")
        return vol

    def check_chain(self, path: str, fmt: str, depth: int = 0) -> None:
        """Refuse a qcow2 chain that QEMU would have to probe or that leaves the pools.

        Every backing file must be recorded with its format in the header above it and
        be a volume of an active pool; no image may use an external data file.
        """
        if fmt != "qcow2":
            return
        if depth > MAX_CHAIN:
            raise Unsupported(f"backing chain of '{path}' is longer than {MAX_CHAIN} images")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            raise VshError(f"cannot open volume '{path}': {exc.strerror}") from None
        try:
            hdr = read_qcow2_header(fd)
        finally:
            os.close(fd)
        if hdr is None:
            raise VshError(f"'{path}' is not a qcow2 image")
        if hdr.data_file:
            raise Unsupported(f"'{path}' uses an external data file, which vsh does not open")
        if not hdr.backing:
            return
        backing = os.path.normpath(os.path.join(os.path.dirname(path), hdr.backing))
        if not hdr.backing_format:
            raise Unsupported(f"'{path}' names its backing file '{backing}' without a format, "
                              "and vsh never probes a backing file's format")
        if hdr.backing_format not in CREATE_FORMATS:
            raise Unsupported(f"backing file '{backing}' of '{path}' is in format '{hdr.backing_format}'")
        if self.volume_by_path(backing) is None:
            raise Unsupported(f"backing file '{backing}' of '{path}' is not a volume of an active vsh pool")
        self.check_chain(backing, hdr.backing_format, depth + 1)

    def _temp(self, pool: Pool) -> str:
        """A new empty private file in the pool directory, hidden from listings."""
        while True:
            path = os.path.join(pool.target, f".vsh-tmp-{os.getpid()}-{os.urandom(6).hex()}")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                continue
            except OSError as exc:
                raise VshError(f"cannot create a file in '{pool.target}': {exc.strerror}") from None
            os.close(fd)
            return path

    @staticmethod
    def _publish(tmp: str, final: str, name: str) -> None:
        """Give the finished temporary file its name, never replacing an existing file."""
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise OperationInvalid(f"operation failed: storage vol '{name}' already exists") from None
        except OSError:
            # a filesystem without hard links: the check and the rename are two steps there
            if os.path.lexists(final):
                raise OperationInvalid(f"operation failed: storage vol '{name}' already exists") from None
            os.rename(tmp, final)
        _unlink(tmp)
        fsync_dir(os.path.dirname(final))

    def create(self, pool: Pool, spec: VolumeSpec, prealloc_metadata: bool = False,
               progress_fd: int | None = None) -> Volume:
        """Create a volume (raw by hand, qcow2 with qemu-img); the new Volume."""
        self.require_active(pool)
        check_volume_name(spec.name)
        fmt = spec.format
        if fmt not in CREATE_FORMATS:
            raise Unsupported(f"unsupported configuration: vsh creates volumes in the formats "
                              f"{', '.join(CREATE_FORMATS)}, not '{fmt}'")
        if spec.capacity < 0 or (spec.allocation is not None and spec.allocation < 0):
            raise InvalidArgument("volume sizes must not be negative")
        final = os.path.join(pool.target, spec.name)
        if os.path.lexists(final):
            raise OperationInvalid(f"operation failed: storage vol '{spec.name}' already exists")
        backing = None
        if spec.backing_path:
            if fmt != "qcow2":
                raise Unsupported(f"unsupported configuration: a backing volume needs the format qcow2, not '{fmt}'")
            if not spec.backing_format:
                raise InvalidArgument("a backing volume needs its format (--backing-vol-format): "
                                      "vsh never probes a backing file's format")
            if spec.backing_format not in CREATE_FORMATS:
                raise Unsupported(f"unsupported configuration: backing format '{spec.backing_format}' "
                                  f"(vsh uses {', '.join(CREATE_FORMATS)})")
            backing = self.volume_by_path(spec.backing_path)
            if backing is None:
                raise NotFound(f"backing volume '{spec.backing_path}' is not a volume of an active pool")
            self.check_chain(backing.path, spec.backing_format)
        tmp = self._temp(pool)
        try:
            if fmt == "raw":
                _create_raw(tmp, spec.capacity, spec.capacity if spec.allocation is None else spec.allocation)
            else:
                args = ["create", "-q", "-f", "qcow2"]
                opts = []
                if spec.allocation is not None and spec.allocation >= spec.capacity > 0:
                    opts.append("preallocation=falloc")
                elif prealloc_metadata:
                    opts.append("preallocation=metadata")
                if opts:
                    args += ["-o", ",".join(opts)]
                if backing is not None:
                    args += ["-b", backing.path, "-F", spec.backing_format]
                qemu_img(args + [tmp, str(spec.capacity)])
            self._publish(tmp, final, spec.name)
        finally:
            _unlink(tmp)
        return self.volume(pool, spec.name)

    def clone(self, vol: Volume, new_name: str, prealloc_metadata: bool = False,
              progress_fd: int | None = None) -> Volume:
        """A copy of ``vol`` in its pool (``qemu-img convert`` with explicit formats).

        A qcow2 overlay keeps its backing file: only its own data is copied.
        """
        pool = vol.pool
        self.require_active(pool)
        check_volume_name(new_name)
        final = os.path.join(pool.target, new_name)
        if os.path.lexists(final):
            raise OperationInvalid(f"operation failed: storage vol '{new_name}' already exists")
        if vol.type != "file":
            raise Unsupported(f"cannot clone volume '{vol.name}' of type '{vol.type}'")
        fmt = vol.qemu_format()
        self.check_chain(vol.path, fmt)
        args = ["convert", "-f", fmt, "-O", fmt]
        if fmt == "qcow2" and vol.backing:
            args += ["-B", vol.backing, "-F", vol.backing_format]
        if prealloc_metadata and fmt == "qcow2":
            args += ["-o", "preallocation=metadata"]
        args.append("-p" if progress_fd is not None else "-q")
        tmp = self._temp(pool)
        try:
            qemu_img(args + [vol.path, tmp], progress_fd=progress_fd)
            os.chmod(tmp, 0o600)
            self._publish(tmp, final, new_name)
        finally:
            _unlink(tmp)
        return self.volume(pool, new_name)

    def delete(self, vol: Volume) -> None:
        try:
            if vol.type == "dir":
                os.rmdir(vol.path)
            else:
                os.unlink(vol.path)
        except OSError as exc:
            raise VshError(f"cannot remove '{vol.path}': {exc.strerror}") from None
        fsync_dir(vol.pool.target)

    def resize(self, vol: Volume, capacity: int, shrink: bool = False, allocate: bool = False) -> None:
        """``qemu-img resize -f FMT`` to ``capacity`` bytes."""
        if vol.type != "file":
            raise Unsupported(f"cannot resize volume '{vol.name}' of type '{vol.type}'")
        fmt = vol.qemu_format()
        current = vol.capacity
        if capacity < current and not shrink:
            raise InvalidArgument("invalid argument: Can't shrink capacity below current capacity unless "
                                  "shrink flag explicitly specified")
        if shrink and capacity > current:
            raise InvalidArgument("invalid argument: Can't expand capacity with the shrink flag")
        self.check_chain(vol.path, fmt)
        args = ["resize", "-q", "-f", fmt]
        if allocate and capacity > current:
            args.append("--preallocation=falloc")
        if shrink:
            args.append("--shrink")
        qemu_img(args + [vol.path, str(capacity)])

    def wipe(self, vol: Volume, progress=None) -> None:
        """Zero the volume's data: raw data extents are overwritten with zeroes; a qcow2
        volume is made again empty (same size, cluster size, compat and backing file)."""
        if vol.type == "dir":
            raise Unsupported(f"cannot wipe volume '{vol.name}' of type 'dir'")
        hdr = vol.header if vol.format == "qcow2" else None
        if hdr is not None:
            self.check_chain(vol.path, "qcow2")
            args = ["create", "-q", "-f", "qcow2", "-o", f"cluster_size={1 << hdr.cluster_bits},compat={hdr.compat}"]
            if vol.backing:
                args += ["-b", vol.backing, "-F", vol.backing_format]
            tmp = self._temp(vol.pool)
            try:
                qemu_img(args + [tmp, str(hdr.size)])
                os.chmod(tmp, _stat.S_IMODE(vol.st.st_mode))
                os.rename(tmp, vol.path)
                fsync_dir(vol.pool.target)
            finally:
                _unlink(tmp)
            return
        fd = _open_volume(vol, os.O_WRONLY)
        try:
            size = vol.st.st_size if vol.type == "file" else os.lseek(fd, 0, os.SEEK_END)
            segments = list(data_segments(fd, 0, size))
            total = sum(end - start for start, end in segments)
            if progress is not None:
                progress.start(total)
            zeros = bytes(4 << 20)
            view = memoryview(zeros)
            done = 0
            for start, end in segments:
                pos = start
                while pos < end:
                    n = os.pwrite(fd, view[:min(len(zeros), end - pos)], pos)
                    pos += n
                    done += n
                    if progress is not None:
                        progress.update(done)
            os.fsync(fd)
        except OSError as exc:
            raise VshError(f"cannot write to '{vol.path}': {exc.strerror}") from None
        finally:
            os.close(fd)
            if progress is not None:
                progress.finish()

    def upload(self, vol: Volume, file: str, offset: int = 0, length: int | None = None,
               sparse: bool = False, progress=None) -> int:
        """Copy ``file`` into the volume at ``offset`` (the volume is not truncated); bytes copied."""
        if vol.type == "dir":
            raise Unsupported(f"cannot upload to volume '{vol.name}' of type 'dir'")
        try:
            src = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise VshError(f"cannot read {file}: {exc.strerror}") from None
        try:
            dst = _open_volume(vol, os.O_WRONLY)
            try:
                done = copy_data(src, dst, 0, offset, length, sparse=sparse, punch=True, progress=progress)
            except OSError as exc:
                raise VshError(f"cannot send data to volume {vol.name}: {exc.strerror}") from None
            finally:
                os.close(dst)
        finally:
            os.close(src)
        return done

    def download(self, vol: Volume, file: str, offset: int = 0, length: int | None = None,
                 sparse: bool = False, progress=None) -> int:
        """Copy the volume (from ``offset``) into ``file``, made 0600 if new; bytes copied."""
        if vol.type == "dir":
            raise Unsupported(f"cannot download from volume '{vol.name}' of type 'dir'")
        src = _open_volume(vol, os.O_RDONLY)
        created = False
        try:
            try:
                dst = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                created = True
            except FileExistsError:
                try:
                    dst = os.open(file, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
                except OSError as exc:
                    raise VshError(f"cannot create {file}: {exc.strerror}") from None
            except OSError as exc:
                raise VshError(f"cannot create {file}: {exc.strerror}") from None
            ok = False
            try:
                done = copy_data(src, dst, offset, 0, length, sparse=sparse, punch=False, progress=progress)
                ok = True
            except OSError as exc:
                raise VshError(f"cannot receive data from volume {vol.name}: {exc.strerror}") from None
            finally:
                os.close(dst)
                if not ok and created:
                    _unlink(file)
        finally:
            os.close(src)
        return done


# -- domains and their volumes -------------------------------------------------------------------


def disk_paths(pools: Pools, dom) -> list[tuple]:
    """(target, path, disk) for each disk with a local source; ``type='volume'`` disks resolved."""
    out = []
    for disk in dom.disks:
        path = None
        if disk.type == "volume":
            src = disk.node.find("source")
            if src is not None and src.get("pool") and src.get("volume"):
                try:
                    vol = pools.volume(pools.get(src.get("pool")), src.get("volume"))
                except VshError:
                    vol = None
                path = vol.path if vol is not None else None
        else:
            path = disk.source_file or disk.source_dev
        if path:
            out.append((disk.target_dev or "-", path, disk))
    return out


def _chain_paths(path: str, seen: set) -> None:
    """Add ``path`` and, through qcow2 headers, its backing files (a generous notion of use)."""
    for _ in range(MAX_CHAIN + 1):
        try:
            real = os.path.realpath(path)
        except OSError:
            return
        if real in seen:
            return
        seen.add(real)
        try:
            fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return
        try:
            if not _stat.S_ISREG(os.fstat(fd).st_mode):
                return
            hdr = read_qcow2_header(fd)
        except OSError:
            return
        finally:
            os.close(fd)
        if hdr is None or not hdr.backing:
            return
        path = os.path.join(os.path.dirname(real), hdr.backing)


def paths_in_use(store, pools: Pools, exclude: str | None = None, active_only: bool = False) -> dict[str, str]:
    """{real path: domain name} for every disk (with backing chains) of every domain but ``exclude``.

    ``active_only``: running domains only, as they run now.
    """
    users: dict[str, str] = {}
    for ref in store.refs():
        if ref.name == exclude or (active_only and not ref.active):
            continue
        docs = []
        if active_only:
            variants = (False,)
        elif ref.active and ref.persistent:
            variants = (False, True)
        else:
            variants = (not ref.active,)
        for inactive in variants:
            try:
                docs.append(store.load(ref, inactive=inactive))
            except VshError:
                continue
        for dom in docs:
            paths = [p for _t, p, _d in disk_paths(pools, dom)]
            paths += [p for p in dom.node.xpath(".//devices/disk//backingStore/source/@file")]
            for path in paths:
                seen: set = set()
                _chain_paths(path, seen)
                for real in seen:
                    users.setdefault(real, ref.name)
    return users


def removable_storage(store, name: str, dom) -> tuple[list, list]:
    """What ``undefine --remove-all-storage`` may delete for domain ``name``.

    Returns (remove, keep): ``remove`` holds (target, path, Volume) for pool volumes that no other
    domain uses (through its disks or their backing chains); ``keep`` holds (target, path, reason)
    with reason ``'unmanaged'`` (not a volume of an active pool) or ``"used by domain 'X'"``.
    CD-ROMs, read-only and shareable disks are never removed. The default pool is set up
    first if it never was (a disk made in <data>/images is one of its volumes).
    """
    pools = Pools(store)
    users = None
    remove, keep = [], []
    seen = set()
    for target, path, disk in disk_paths(pools, dom):
        if disk.device in ("cdrom", "floppy") or disk.readonly or disk.shareable:
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        vol = pools.volume_by_path(path)
        if vol is None or vol.type != "file":
            keep.append((target, path, "unmanaged"))
            continue
        if users is None:
            users = paths_in_use(store, pools, exclude=name)
        other = users.get(real)
        if other is not None:
            keep.append((target, path, f"used by domain '{other}'"))
            continue
        remove.append((target, path, vol))
    return remove, keep


# -- copying ---------------------------------------------------------------------------------------

CHUNK = 64 << 20
_FALLBACK_ERRNOS = None


def _fallback_errnos() -> tuple:
    global _FALLBACK_ERRNOS
    if _FALLBACK_ERRNOS is None:
        import errno

        _FALLBACK_ERRNOS = (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF,
                            errno.ETXTBSY, errno.ESPIPE, errno.EPERM)
    return _FALLBACK_ERRNOS


def _open_volume(vol: Volume, flags: int) -> int:
    try:
        return os.open(vol.path, flags | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        raise VshError(f"cannot open volume '{vol.path}': {exc.strerror}") from None


def data_segments(fd: int, start: int, end: int):
    """(start, end) ranges holding data in [start, end), by SEEK_DATA/SEEK_HOLE (all of it if unsupported)."""
    import errno

    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return
            yield (pos, end)
            return
        if data >= end:
            return
        try:
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        except OSError:
            hole = end
        yield (data, hole)
        pos = hole


def _punch(fd: int, offset: int, length: int) -> None:
    """Make [offset, offset+length) read as zeroes: punch a hole, or write zeroes."""
    if length <= 0:
        return
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        if libc.fallocate(fd, 0x02 | 0x01, offset, length) == 0:  # PUNCH_HOLE | KEEP_SIZE
            return
    except (OSError, AttributeError):
        pass
    zeros = memoryview(bytes(min(length, 4 << 20)))
    pos = offset
    end = offset + length
    while pos < end:
        pos += os.pwrite(fd, zeros[:min(len(zeros), end - pos)], pos)


def _seekable(fd: int) -> bool:
    try:
        os.lseek(fd, 0, os.SEEK_CUR)
        return True
    except OSError:
        return False


def copy_data(src: int, dst: int, src_off: int, dst_off: int, length: int | None, sparse: bool = False,
              punch: bool = False, progress=None) -> int:
    """Copy ``length`` bytes (None: to the end of ``src``) at disk speed; bytes covered.

    Uses copy_file_range, then sendfile, then read/write. With ``sparse``, holes in a
    regular ``src`` are skipped (``punch``: made holes in ``dst`` too, for a ``dst``
    that holds old data); the destination ends at least at ``dst_off + length``.
    """
    st_src = os.fstat(src)
    src_regular = _stat.S_ISREG(st_src.st_mode)
    if src_regular:
        available = max(0, st_src.st_size - src_off)
        length = available if length is None else min(length, available)
    elif _stat.S_ISBLK(st_src.st_mode):
        size = os.lseek(src, 0, os.SEEK_END)
        available = max(0, size - src_off)
        length = available if length is None else min(length, available)
    dst_seekable = _seekable(dst)
    if not dst_seekable and dst_off:
        raise OSError(29, "Illegal seek")  # ESPIPE
    if progress is not None:
        progress.start(length)
    done = 0
    try:
        if sparse and src_regular and dst_seekable and length:
            pos = src_off
            end = src_off + length
            for start, stop in data_segments(src, src_off, end):
                if start > pos and punch:
                    _punch(dst, dst_off + pos - src_off, start - pos)
                done += start - pos
                done = _copy_span(src, dst, start, dst_off + start - src_off, stop - start, progress, done)
                pos = stop
            if pos < end and punch:
                _punch(dst, dst_off + pos - src_off, end - pos)
            done += end - pos
        else:
            done = _copy_span(src, dst, src_off, dst_off if dst_seekable else None, length, progress, done,
                              src_seekable=src_regular or _stat.S_ISBLK(st_src.st_mode))
        if dst_seekable and length is not None:
            st_dst = os.fstat(dst)
            if _stat.S_ISREG(st_dst.st_mode) and st_dst.st_size < dst_off + length:
                os.ftruncate(dst, dst_off + length)
    finally:
        if progress is not None:
            progress.finish()
    return done


def _copy_span(src: int, dst: int, soff: int, doff: int | None, length: int | None, progress, done: int,
               src_seekable: bool = True) -> int:
    """Copy one span; ``doff`` None writes sequentially (a pipe); ``length`` None runs to EOF."""
    copied = 0

    def left() -> int:
        return CHUNK if length is None else min(CHUNK, length - copied)

    # 1. copy_file_range: in the kernel, reflinks where the filesystem can
    if doff is not None and src_seekable and hasattr(os, "copy_file_range"):
        try:
            while length is None or copied < length:
                n = os.copy_file_range(src, dst, left(), soff + copied, doff + copied)
                if n == 0:
                    return done
                copied += n
                done += n
                if progress is not None:
                    progress.update(done)
            return done
        except OSError as exc:
            if exc.errno not in _fallback_errnos():
                raise
    # 2. sendfile: from a regular file to anything
    if src_seekable:
        try:
            if doff is not None:
                os.lseek(dst, doff + copied, os.SEEK_SET)
            while length is None or copied < length:
                n = os.sendfile(dst, src, soff + copied, left())
                if n == 0:
                    return done
                copied += n
                done += n
                if progress is not None:
                    progress.update(done)
            return done
        except OSError as exc:
            if exc.errno not in _fallback_errnos():
                raise
    # 3. read and write
    buf_size = 1 << 20
    while length is None or copied < length:
        want = buf_size if length is None else min(buf_size, length - copied)
        data = os.pread(src, want, soff + copied) if src_seekable else os.read(src, want)
        if not data:
            return done
        view = memoryview(data)
        while view:
            if doff is not None:
                n = os.pwrite(dst, view, doff + copied)
            else:
                n = os.write(dst, view)
            view = view[n:]
            copied += n
            done += n
        if progress is not None:
            progress.update(done)
    return done


# -- small helpers ---------------------------------------------------------------------------------


def _create_raw(path: str, capacity: int, allocation: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        alloc = min(max(allocation, 0), capacity)
        if alloc > 0:
            try:
                os.posix_fallocate(fd, 0, alloc)
            except OSError as exc:
                raise VshError(f"cannot allocate {alloc} bytes in file '{path}': {exc.strerror}") from None
        os.ftruncate(fd, capacity)
        os.fsync(fd)
    finally:
        os.close(fd)


def _same_dir(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass




class _DirLock:
    """An flock on ``<dir>/.lock`` (the directory is made private first)."""

    def __init__(self, directory: str, timeout: float, what: str = "storage pool definitions"):
        self.directory = directory
        self.timeout = timeout
        self.what = what
        self.fd = None

    def __enter__(self):
        import fcntl
        import time

        from vsh.core.store import ensure_private_dir

        ensure_private_dir(os.path.dirname(self.directory))
        ensure_private_dir(self.directory)
        fd = os.open(os.path.join(self.directory, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise OperationInvalid(f"{self.what} are locked by another vsh process "
                                               f"(waited {self.timeout:.0f} s)") from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
