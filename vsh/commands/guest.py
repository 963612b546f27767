"""Guest disks, guestfish style: add, run, list-filesystems, mount-ro, ls, cat, inspect-os, ...

One guest-disk session (:class:`vsh.api.guestdisks.GuestDisks`, from
``ctx.conn.guest_disks()``) lives in ``ctx.state`` for the whole shell (or
single-shot) session. The global options ``-a IMAGE``,
``--format``, ``-d/--domain NAME`` and ``-i`` (parsed by vsh/cli.py into
``ctx.state["guest.options"]``) add drives, and ``-i`` mounts what inspection
finds, so ``vsh -a disk.qcow2 -i cat /etc/hostname`` works like virt-cat. The
session is launched on first use when drives were added.

Everything read from a guest is escaped (control characters → ``\\xNN``) before
it is printed, unless ``--raw`` is given. The writes are in vsh/commands/guestwrite.py.
"""

from __future__ import annotations

import stat as st
import time

from vsh.api.guestdisks import INSPECT_ITEMS
from vsh.core.errors import InvalidArgument, VshError
from vsh.core.escape import escape
from vsh.ui.guestsession import session
from vsh.core.output import KeyValue, Lines, Message, Text
from vsh.registry import Opt, command

G = "guest"
DEVICE = Opt("device", kind="guestdevice", required=True, positional=True, help="guest device (/dev/sda1, /dev/VG/LV)")
ROOT = Opt("root", kind="guestdevice", required=True, positional=True, help="root device from inspect-os")
PATH = Opt("path", kind="guestpath", required=True, positional=True, help="path inside the guest")
RAW = Opt("raw", kind="bool", help="print guest bytes as they are (no escaping of control characters)")


# -- the session -----------------------------------------------------------------------


def esc(ctx, value, raw: bool = False) -> str:
    if raw:
        return value if isinstance(value, str) else value.decode("utf-8", "surrogateescape")
    return escape(value)


def _esc_lines(items, raw=False):
    return [it if raw else escape(it) for it in items]


def _bool(value: bool) -> Text:
    return Text("true\n" if value else "false\n", json_data=value)


def _structs(rows: list[dict]) -> str:
    out = []
    for i, row in enumerate(rows):
        out.append(f"[{i}] = {{\n")
        out.extend(f"  {k}: {v}\n" for k, v in row.items())
        out.append("}\n")
    return "".join(out)


# -- drives and launch -----------------------------------------------------------------------


@command("add-drive", group=G, summary="add a disk image to the guest-disk session",
         aliases=("add", "add-ro", "add-drive-ro"),
         opts=[Opt("filename", kind="file", required=True, positional=True, help="disk image"),
               Opt("format", kind="enum", choices=("raw", "qcow2", "vmdk", "vhdx", "vpc"),
                   help="image format (default: detected conservatively; backing files need it)"),
               Opt("readonly", kind="bool", help="read-only (the default with --ro)"),
               Opt("rw", kind="bool", help="writable (the default without --ro)")],
         examples=("add disk.qcow2 --format qcow2", "run", "list-filesystems"))
def add_drive(ctx, filename, format=None, readonly=False, rw=False):
    """Add a disk image. Drives are named /dev/sda, /dev/sdb ... in the order they are added."""
    g = session(ctx, launch=False)
    g.add_drive(filename, format, readonly=True if readonly else False if rw else None)
    return None


@command("add-domain", group=G, summary="add the disks of a domain, in order",
         aliases=("domain",),
         opts=[Opt("dom", kind="domain", required=True, positional=True, help="domain name, id or uuid")])
def add_domain(ctx, dom):
    added = session(ctx, launch=False).add_domain(dom)
    return Message(f"{len(added)} disk(s) added", json_data={"added": added})


@command("run", group=G, summary="open the added disks (guestfish's launch)", aliases=("launch",))
def run(ctx):
    """Open every added image and scan partitions, LVM and LUKS (with keys). No VM is started."""
    g = session(ctx, launch=False)
    if not g.is_launched():
        session(ctx, launch=True)
    return None


@command("luks-open", group=G, summary="unlock a LUKS1 device as /dev/mapper/NAME",
         aliases=("cryptsetup-open",),
         opts=[DEVICE, Opt("key", required=True, positional=True,
                           help="passphrase; - reads it from stdin (a prompt on a terminal)"),
               Opt("mapname", required=True, positional=True, help="name under /dev/mapper")])
def luks_open(ctx, device, key, mapname):
    """The volume is unlocked in this process and, for writes, in the appliance under the same
    name (the key travels over the appliance's channel, never on a command line)."""
    if key == "-":
        import sys

        if sys.stdin.isatty():
            import getpass

            key = getpass.getpass(f"Enter key or passphrase (\"{escape(device)}\"): ")
        else:
            key = sys.stdin.readline().rstrip("\n")
    return Lines([session(ctx).luks_open(device, key, mapname)])


# -- devices ---------------------------------------------------------------------------------------


@command("list-devices", group=G, summary="list the block devices (whole disks)")
def list_devices(ctx):
    return Lines(session(ctx).list_devices())


@command("list-partitions", group=G, summary="list the partitions")
def list_partitions(ctx):
    return Lines(session(ctx).list_partitions())


@command("list-filesystems", group=G, summary="list the filesystems and their types")
def list_filesystems(ctx):
    fss = session(ctx).list_filesystems()
    return Lines([f"{dev}: {esc(ctx, t)}" for dev, t in fss.items()], json_data=fss)


@command("vfs-type", group=G, summary="the filesystem type of a device", opts=[DEVICE])
def vfs_type(ctx, device):
    return Lines([esc(ctx, session(ctx).vfs_type(device))])


@command("vfs-label", group=G, summary="the filesystem label of a device", opts=[DEVICE, RAW])
def vfs_label(ctx, device, raw=False):
    return Lines([esc(ctx, session(ctx).vfs_label(device), raw)])


@command("vfs-uuid", group=G, summary="the filesystem UUID of a device", opts=[DEVICE])
def vfs_uuid(ctx, device):
    return Lines([esc(ctx, session(ctx).vfs_uuid(device))])


@command("blockdev-getsize64", group=G, summary="the size of a device in bytes", opts=[DEVICE])
def blockdev_getsize64(ctx, device):
    size = session(ctx).blockdev_getsize64(device)
    return Lines([size], json_data=size)


@command("part-list", group=G, summary="list the partitions of a disk (bytes)", opts=[DEVICE])
def part_list(ctx, device):
    rows = session(ctx).part_list(device)
    return Text(_structs(rows), json_data=rows)


@command("part-get-parttype", group=G, summary="the partition table type of a disk (gpt, msdos)", opts=[DEVICE])
def part_get_parttype(ctx, device):
    return Lines([session(ctx).part_get_parttype(device)])


@command("pvs", group=G, summary="list the LVM physical volumes")
def pvs(ctx):
    return Lines(session(ctx).pvs())


@command("vgs", group=G, summary="list the LVM volume groups")
def vgs(ctx):
    return Lines(session(ctx).vgs())


@command("lvs", group=G, summary="list the LVM logical volumes")
def lvs(ctx):
    return Lines(session(ctx).lvs())


# -- mounting ----------------------------------------------------------------------------------------


MOUNTPOINT = Opt("mountpoint", kind="guestpath", required=True, positional=True, help="where in the guest tree")


@command("mount-ro", group=G, summary="mount a guest filesystem read-only", opts=[DEVICE, MOUNTPOINT],
         examples=("mount-ro /dev/sda2 /", "mount-ro /dev/sda1 /boot/efi"))
def mount_ro(ctx, device, mountpoint):
    session(ctx).mount_ro(device, mountpoint)
    return None


@command("mount", group=G, summary="mount a guest filesystem (read-write on a writable drive)",
         opts=[DEVICE, MOUNTPOINT])
def mount(ctx, device, mountpoint):
    """On a drive added read-only this is a read-only mount; on a writable one, the first write
    mounts it read-write in the appliance."""
    session(ctx).mount(device, mountpoint)
    return None


@command("mount-options", group=G, summary="mount with options (ro, or as mount)",
         opts=[Opt("options", required=True, positional=True, help="mount options, e.g. ro"), DEVICE, MOUNTPOINT])
def mount_options(ctx, options, device, mountpoint):
    session(ctx).mount_options(options, device, mountpoint)
    return None


@command("umount", group=G, summary="unmount a filesystem", aliases=("unmount",),
         opts=[Opt("pathordevice", kind="guestpath", required=True, positional=True, help="mountpoint or device")])
def umount(ctx, pathordevice):
    session(ctx).umount(pathordevice)
    return None


@command("umount-all", group=G, summary="unmount every filesystem", aliases=("unmount-all",))
def umount_all(ctx):
    session(ctx).umount_all()
    return None


@command("mountpoints", group=G, summary="list the mounted filesystems and their mountpoints")
def mountpoints(ctx):
    mps = session(ctx).mountpoints()
    return Lines([f"{dev}: {mp}" for mp, dev in mps.items()], json_data=mps)


# -- files -----------------------------------------------------------------------------------------------


@command("ls", group=G, summary="list a guest directory", opts=[Opt("directory", kind="guestpath", required=True,
                                                                      positional=True, help="guest directory"), RAW])
def ls(ctx, directory, raw=False):
    names = session(ctx).ls(directory)
    return Lines(_esc_lines(names, raw), json_data=names)


@command("ll", group=G, summary="long listing of a guest directory",
         opts=[Opt("directory", kind="guestpath", required=True, positional=True, help="guest directory"), RAW])
def ll(ctx, directory, raw=False):
    rows = session(ctx).ll(directory)
    lines = []
    for r in rows:
        when = time.strftime("%b %e %H:%M", time.gmtime(r["st_mtime_sec"]))
        name = esc(ctx, r["name"], raw)
        if r.get("target") is not None:
            name += " -> " + esc(ctx, r["target"], raw)
        lines.append(f"{st.filemode(r['st_mode'])} {r['st_nlink']:>3} {r['st_uid']:>5} {r['st_gid']:>5} "
                     f"{r['st_size']:>10} {when} {name}")
    return Lines(lines, json_data=rows)


def _text(ctx, data: bytes, raw: bool):
    if raw:
        buf = getattr(ctx.out, "buffer", None)
        if buf is not None:
            ctx.out.flush()
            buf.write(data)
            buf.flush()
            return None
        return Text(data.decode("utf-8", "surrogateescape"))
    return Text(escape(data, keep_newlines=True), json_data={"content": data.decode("utf-8", "replace")})


@command("cat", group=G, summary="print a guest file", opts=[PATH, RAW], examples=("cat /etc/hostname",))
def cat(ctx, path, raw=False):
    return _text(ctx, session(ctx).cat(path), raw)


@command("head", group=G, summary="the first 10 lines of a guest file", opts=[PATH, RAW])
def head(ctx, path, raw=False):
    lines = session(ctx).head(path)
    return Lines(_esc_lines(lines, raw), json_data=lines)


@command("head-n", group=G, summary="the first N lines of a guest file",
         opts=[Opt("nrlines", kind="int", required=True, positional=True, help="number of lines"), PATH, RAW])
def head_n(ctx, nrlines, path, raw=False):
    lines = session(ctx).head(path, nrlines)
    return Lines(_esc_lines(lines, raw), json_data=lines)


@command("tail", group=G, summary="the last 10 lines of a guest file", opts=[PATH, RAW])
def tail(ctx, path, raw=False):
    lines = session(ctx).tail(path)
    return Lines(_esc_lines(lines, raw), json_data=lines)


@command("tail-n", group=G, summary="the last N lines of a guest file",
         opts=[Opt("nrlines", kind="int", required=True, positional=True, help="number of lines"), PATH, RAW])
def tail_n(ctx, nrlines, path, raw=False):
    lines = session(ctx).tail(path, nrlines)
    return Lines(_esc_lines(lines, raw), json_data=lines)


@command("find", group=G, summary="list everything below a guest directory (relative paths)",
         opts=[Opt("directory", kind="guestpath", required=True, positional=True, help="guest directory"), RAW])
def find(ctx, directory, raw=False):
    names = session(ctx).find(directory)
    return Lines(_esc_lines(names, raw), json_data=names)


def _stat_text(d: dict) -> KeyValue:
    return KeyValue([(k, v) for k, v in d.items()], width=0, json_data=d)


@command("stat", group=G, summary="file information (follows symbolic links)", aliases=("statns",), opts=[PATH])
def stat_(ctx, path):
    return _stat_text(session(ctx).stat(path))


@command("lstat", group=G, summary="file information (does not follow a final symbolic link)",
         aliases=("lstatns",), opts=[PATH])
def lstat(ctx, path):
    return _stat_text(session(ctx).stat(path, follow=False))


@command("readlink", group=G, summary="the target of a symbolic link", opts=[PATH, RAW])
def readlink(ctx, path, raw=False):
    return Lines([esc(ctx, session(ctx).readlink(path), raw)])


@command("realpath", group=G, summary="the canonical path (links resolved inside the guest)", opts=[PATH, RAW])
def realpath(ctx, path, raw=False):
    return Lines([esc(ctx, session(ctx).realpath(path), raw)])


FOLLOW = Opt("followsymlinks", kind="bool", help="follow a final symbolic link")


@command("is-file", group=G, summary="is it a regular file (true/false)", opts=[PATH, FOLLOW])
def is_file(ctx, path, followsymlinks=False):
    return _bool(session(ctx).is_file(path, followsymlinks))


@command("is-dir", group=G, summary="is it a directory (true/false)", opts=[PATH, FOLLOW])
def is_dir(ctx, path, followsymlinks=False):
    return _bool(session(ctx).is_dir(path, followsymlinks))


@command("is-symlink", group=G, summary="is it a symbolic link (true/false)", opts=[PATH])
def is_symlink(ctx, path):
    return _bool(session(ctx).is_symlink(path))


@command("exists", group=G, summary="does the path exist (true/false)", opts=[PATH])
def exists(ctx, path):
    return _bool(session(ctx).exists(path))


@command("checksum", group=G, summary="checksum of a guest file",
         opts=[Opt("csumtype", kind="enum", required=True, positional=True,
                   choices=("md5", "sha1", "sha224", "sha256", "sha384", "sha512"), help="algorithm"), PATH])
def checksum(ctx, csumtype, path):
    return Lines([session(ctx).checksum(csumtype, path)])


@command("download", group=G, summary="copy a guest file to a host file ('-' for stdout)",
         opts=[Opt("remotefilename", kind="guestpath", required=True, positional=True, help="guest file"),
               Opt("filename", kind="file", required=True, positional=True, help="host file, or -")])
def download(ctx, remotefilename, filename):
    g = session(ctx)
    if filename == "-":
        buf = getattr(ctx.out, "buffer", None)
        if buf is None:
            raise InvalidArgument("download to - needs a binary standard output")
        ctx.out.flush()
        for data in g.read_chunks(remotefilename):
            buf.write(data)
        buf.flush()
        return None
    size = g.download(remotefilename, filename)
    return Message(f"{size} bytes copied to {filename}", json_data={"bytes": size, "filename": filename}) \
        if ctx.json else None


@command("copy-out", group=G, summary="copy guest files or directories into a host directory",
         opts=[Opt("remote", kind="guestpath", required=True, positional=True, help="guest file or directory"),
               Opt("localdir", kind="dir", required=True, positional=True, help="existing host directory")])
def copy_out(ctx, remote, localdir):
    warnings = session(ctx).copy_out(remote, localdir)
    if warnings:
        return Lines([f"warning: {esc(ctx, w)}" for w in warnings], json_data={"warnings": warnings})
    return None


@command("df", group=G, summary="sizes of the mounted filesystems (1K blocks)")
def df(ctx):
    rows = session(ctx).df()
    lines = [f"{'Filesystem':<24} {'1K-blocks':>12} {'Used':>12} {'Available':>12} {'Use%':>4} Mounted on"]
    for r in rows:
        lines.append(f"{r['filesystem']:<24} {r['size'] // 1024:>12} {r['used'] // 1024:>12} "
                     f"{r['available'] // 1024:>12} {str(r['use_percent']) + '%':>4} {esc(ctx, r['mountpoint'])}")
    return Lines(lines, json_data=rows)


@command("du", group=G, summary="disk usage of a guest file or directory in KiB", opts=[PATH])
def du(ctx, path):
    n = session(ctx).du(path)
    return Lines([n], json_data=n)


@command("file", group=G, summary="what kind of file this is", opts=[PATH])
def file_(ctx, path):
    return Lines([esc(ctx, session(ctx).file(path))])


# -- inspection ----------------------------------------------------------------------------------------


@command("inspect-os", group=G, summary="find operating systems; prints their root devices")
def inspect_os(ctx):
    return Lines(session(ctx).inspect_os())


def _getter(name: str, summary: str):
    method = f"inspect_get_{name.replace('-', '_')}"

    @command(f"inspect-get-{name}", group=G, summary=summary, opts=[ROOT])
    def handler(ctx, root):
        value = session(ctx).inspect_get(root, name)
        if isinstance(value, dict):
            return Lines([f"{esc(ctx, k)}: {esc(ctx, v)}" for k, v in value.items()], json_data=value)
        if isinstance(value, list):
            return Lines([esc(ctx, v) for v in value], json_data=value)
        return Lines([esc(ctx, value) if isinstance(value, str) else value], json_data=value)

    handler.__name__ = method
    handler.__qualname__ = method
    return handler


_GETTER_SUMMARIES = {
    "type": "the operating system type (linux, windows ...)",
    "distro": "the distribution (debian, fedora ...)",
    "product-name": "the product name",
    "product-variant": "the product variant",
    "major-version": "the major version",
    "minor-version": "the minor version",
    "arch": "the architecture (x86_64 ...)",
    "hostname": "the hostname",
    "package-format": "the package format (deb, rpm ...)",
    "package-management": "the package manager (apt, dnf ...)",
    "osinfo": "the libosinfo short id (debian12 ...)",
    "format": "how the OS is present (installed, installer)",
    "mountpoints": "mountpoints from fstab and their devices",
    "filesystems": "filesystems belonging to the operating system"}
for _name in INSPECT_ITEMS:
    globals()[f"inspect_get_{_name.replace('-', '_')}"] = _getter(_name, _GETTER_SUMMARIES[_name])


@command("inspect-get-roots", group=G, summary="the roots found by inspect-os")
def inspect_get_roots(ctx):
    return Lines(session(ctx).inspect_get_roots())


@command("inspect-list-applications", group=G, summary="installed applications (dpkg, rpm)",
         aliases=("inspect-list-applications2",), opts=[ROOT])
def inspect_list_applications(ctx, root):
    apps = session(ctx).inspect_list_applications(root)
    rows = [{f"app2_{k}": (esc(ctx, v) if isinstance(v, str) else v) for k, v in a.items()
             if k in ("name", "epoch", "version", "release", "arch", "source", "summary")} for a in apps]
    return Text(_structs(rows), json_data=apps)


@command("inspect", group=G, summary="virt-inspector: report on the operating systems of disks or a domain",
         opts=[Opt("disk", kind="argv", help="disk image(s); default: the -a/-d disks"),
               Opt("domain", kind="domain", help="inspect the disks of this domain"),
               Opt("format", kind="enum", choices=("raw", "qcow2", "vmdk", "vhdx", "vpc"),
                   help="format of the disk images"),
               Opt("key", help="LUKS key as DEVICE:KEY (or UUID:KEY, all:KEY)"),
               Opt("no-applications", kind="bool", help="leave out the application list")],
         examples=("inspect disk.qcow2 --format qcow2", "inspect --domain vm1 --json"))
def inspect(ctx, disk=(), domain=None, format=None, key=None, no_applications=False):
    """Prints virt-inspector's XML (or, with --json, the same data as JSON)."""
    if disk or domain:
        g = ctx.conn.guest_disks(readonly=True)
        try:
            for d in disk:
                g.add_drive(d, format)
            if domain:
                g.add_domain(domain)
            _add_key(g, key)
            g.launch()
            report = g.inspector_report(applications=not no_applications)
        finally:
            g.close()
    else:
        g = session(ctx, launch=False)
        _add_key(g, key)
        g = session(ctx)
        report = g.inspector_report(applications=not no_applications)
    if not report["operatingsystems"]:
        raise VshError("no operating system was found on these disks",
                       *[f"warning: {w}" for w in report["warnings"][:5]])
    return Text(report_xml(report), json_data=report)


def _add_key(g, key):
    if not key:
        return
    sel, sep, secret = key.rpartition(":")
    if not sep or not sel:
        raise InvalidArgument("--key expects DEVICE:KEY")
    g.add_key(sel, secret)


def report_xml(report: dict) -> str:
    """virt-inspector's XML for a report from ``GuestDisks.inspector_report()``."""
    import xml.etree.ElementTree as ET

    def text(parent, tag, value):
        el = ET.SubElement(parent, tag)
        el.text = escape(str(value))
        return el

    top = ET.Element("operatingsystems")
    for os_ in report.get("operatingsystems", []):
        o = ET.SubElement(top, "operatingsystem")
        text(o, "root", os_["root"])
        text(o, "name", os_["type"])
        for key in ("arch", "distro", "product_name", "product_variant", "major_version", "minor_version",
                    "package_format", "package_management", "hostname", "osinfo", "format"):
            val = os_.get(key)
            if val not in (None, "", "unknown") or key in ("major_version", "minor_version"):
                text(o, key, val)
        mps = ET.SubElement(o, "mountpoints")
        for mp, dev in os_.get("mountpoints", []):
            el = text(mps, "mountpoint", mp)
            el.set("dev", escape(dev))
        fss = ET.SubElement(o, "filesystems")
        for f in os_.get("filesystems", []):
            el = ET.SubElement(fss, "filesystem")
            el.set("dev", escape(f["dev"]))
            for key in ("type", "label", "uuid"):
                if f.get(key):
                    text(el, key, f[key])
        if "applications" not in os_:
            continue
        apps = ET.SubElement(o, "applications")
        for a in os_["applications"]:
            el = ET.SubElement(apps, "application")
            text(el, "name", a["name"])
            if a.get("epoch"):
                text(el, "epoch", a["epoch"])
            text(el, "version", a.get("version", ""))
            if a.get("release"):
                text(el, "release", a["release"])
            if a.get("arch"):
                text(el, "arch", a["arch"])
    ET.indent(top, "  ")
    return '<?xml version="1.0"?>\n' + ET.tostring(top, encoding="unicode") + "\n"
