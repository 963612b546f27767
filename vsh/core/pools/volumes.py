"""The volumes of a pool (the entries of its directory), libvirt's ``<volume>`` XML, and what
vol-create and vol-create-as ask for."""

from __future__ import annotations

import os
import stat as _stat

from vsh.core.errors import InvalidArgument, Unsupported, XMLError
from vsh.core.pools.model import Pool, check_volume_name
from vsh.core.qcow2 import MAGIC as QCOW2_MAGIC
from vsh.core.qcow2 import Header, read_header
from vsh.core.units import parse_scaled, scale_for_unit
from vsh.core.xml import escape_attr, escape_text


def probe_format(fd: int, head: bytes, size: int) -> str:
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
        self._header: Header | None = None

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
            fmt = probe_format(fd, head, size)
            capacity = size
            if fmt == "qcow2":
                self._header = read_header(fd)
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
    def header(self) -> Header | None:
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
               f"  <name>{escape_text(self.name)}</name>\n",
               f"  <key>{escape_text(self.key)}</key>\n",
               f"  <capacity unit='bytes'>{self.capacity}</capacity>\n",
               f"  <allocation unit='bytes'>{self.allocation}</allocation>\n",
               f"  <physical unit='bytes'>{self.physical}</physical>\n",
               "  <target>\n",
               f"    <path>{escape_text(self.path)}</path>\n",
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
            out += ["  <backingStore>\n", f"    <path>{escape_text(self.backing)}</path>\n"]
            if self.backing_format:
                out.append(f"    <format type='{escape_attr(self.backing_format)}'/>\n")
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
    try:
        return parse_scaled(text, 1, "size")
    except InvalidArgument:
        raise InvalidArgument(f"Malformed size {text}") from None


def parse_volume_xml(data, origin: str = "volume_definition") -> VolumeSpec:
    """A volume to create from libvirt's ``<volume>`` XML (untrusted input)."""
    from vsh.core.xml import parse

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
    out = ["<volume>\n", f"  <name>{escape_text(spec.name)}</name>\n", f"  <capacity>{spec.capacity}</capacity>\n"]
    if spec.allocation is not None:
        out.append(f"  <allocation>{spec.allocation}</allocation>\n")
    if spec.format:
        out += ["  <target>\n", f"    <format type='{escape_attr(spec.format)}'/>\n", "  </target>\n"]
    if spec.backing_path:
        out += ["  <backingStore>\n", f"    <path>{escape_text(spec.backing_path)}</path>\n"]
        if spec.backing_format:
            out.append(f"    <format type='{escape_attr(spec.backing_format)}'/>\n")
        out.append("  </backingStore>\n")
    out.append("</volume>\n")
    return "".join(out)
