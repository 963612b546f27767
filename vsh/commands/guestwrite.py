"""Guest disks, guestfish's write commands: write, upload, copy-in, mkdir, rm, chmod, mkfs, part-*, ...

They change the disks of the shell's guest-disk session (``vsh -a disk.img -i write /etc/motd hi``;
``--ro`` makes the session read-only). The first write starts the appliance VM, which lives
until the shell ends; nothing is mounted on the host. Integer arguments are read as guestfish
reads them: ``0755`` is octal, ``0x1ed`` hexadecimal, ``493`` decimal.
"""

from __future__ import annotations

from vsh.api.guestwrites import MKFS_TYPES
from vsh.core.errors import InvalidArgument, VshError
from vsh.core.escape import escape
from vsh.core.output import Text
from vsh.registry import Opt, command
from vsh.ui.guestsession import edit_guest_file, session

G = "guest"
DEVICE = Opt("device", kind="guestdevice", required=True, positional=True, help="guest device (/dev/sda1, /dev/VG/LV)")
PATH = Opt("path", kind="guestpath", required=True, positional=True, help="path inside the guest")
DISK = Opt("device", kind="guestdevice", required=True, positional=True, help="whole disk (/dev/sda)")


def number(text: str, what: str) -> int:
    """An integer as guestfish reads one (C's base 0: 0NNN octal, 0xNN hex)."""
    t = text.strip()
    neg = t.startswith("-")
    body = t[1:] if neg else t
    try:
        if body[:2].lower() == "0x":
            n = int(body[2:], 16)
        elif body.startswith("0") and len(body) > 1:
            n = int(body[1:], 8)
        else:
            n = int(body, 10)
    except ValueError:
        raise InvalidArgument(f"{what}: {text!r} is not a number") from None
    return -n if neg else n


def _content(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@command("write", group=G, summary="create a guest file with this content (replaces it)", mutating=True,
         opts=[PATH, Opt("content", required=True, positional=True, help="the new content")],
         examples=("write /etc/hostname myhost",))
def write(ctx, path, content):
    session(ctx).write(path, _content(content))


@command("write-append", group=G, summary="append content to a guest file", mutating=True,
         opts=[PATH, Opt("content", required=True, positional=True, help="what to append")])
def write_append(ctx, path, content):
    session(ctx).write(path, _content(content), append=True)


@command("upload", group=G, summary="copy a host file ('-' for stdin) into a guest file", mutating=True,
         opts=[Opt("filename", kind="file", required=True, positional=True, help="host file, or -"),
               Opt("remotefilename", kind="guestpath", required=True, positional=True, help="guest file")])
def upload(ctx, filename, remotefilename):
    g = session(ctx)
    if filename == "-":
        import sys

        g.write(remotefilename, sys.stdin.buffer.read())
    else:
        g.upload(filename, remotefilename)


@command("copy-in", group=G, summary="copy host files or directories into a guest directory", mutating=True,
         opts=[Opt("paths", kind="argv", required=True, help="host file(s) or directories, then the guest directory")],
         examples=("copy-in conf.d /etc",))
def copy_in(ctx, paths=()):
    if len(paths) < 2:
        raise InvalidArgument("copy-in: expected LOCALPATH [LOCALPATH ...] REMOTEDIR")
    g = session(ctx)
    for local in paths[:-1]:
        g.copy_in(local, paths[-1])


@command("tar-in", group=G, summary="unpack a host tar file (plain, gz, bz2, xz) into a guest directory",
         mutating=True, opts=[Opt("tarfile", kind="file", required=True, positional=True, help="host tar file"),
                              Opt("directory", kind="guestpath", required=True, positional=True,
                                  help="guest directory"),
                              Opt("compress", help="compression (detected; accepted for guestfish's scripts)")])
def tar_in(ctx, tarfile, directory, compress=None):
    session(ctx).tar_in(tarfile, directory)


# guestfish commands that are one call of the session on one guest path, or on two:
# name → (summary, method, keyword arguments)
ONE_PATH = {
    "mkdir": ("make a guest directory", "mkdir", {}),
    "mkdir-p": ("make a guest directory and its parents", "mkdir", {"parents": True}),
    "rm": ("remove a guest file", "rm", {}),
    "rm-rf": ("remove a guest file or directory tree", "rm", {"recursive": True}),
    "rmdir": ("remove an empty guest directory", "rm", {"directory": True}),
    "touch": ("create an empty guest file or update its times", "touch", {}),
    "truncate": ("make a guest file empty", "truncate", {})}
SRC = Opt("src", kind="guestpath", required=True, positional=True, help="source")
DEST = Opt("dest", kind="guestpath", required=True, positional=True, help="destination")
TARGET = Opt("target", required=True, positional=True, help="what the link points to (stored as given)")
LINKNAME = Opt("linkname", kind="guestpath", required=True, positional=True, help="the link")
TWO_PATHS = {
    "mv": ("move or rename a guest file or directory", "mv", {}, (SRC, DEST), ()),
    "cp": ("copy a guest file", "cp", {}, (SRC, DEST), ()),
    "cp-a": ("copy a guest file or tree with modes, owners, times and links", "cp", {"archive": True},
             (SRC, DEST), ("cp-r",)),
    "ln-s": ("make a symbolic link", "ln_s", {}, (TARGET, LINKNAME), ()),
    "ln-sf": ("make a symbolic link, replacing a file", "ln_s", {"force": True}, (TARGET, LINKNAME), ())}


def _one_path(name, summary, method, kw):
    @command(name, group=G, summary=summary, mutating=True, opts=[PATH])
    def handler(ctx, path):
        getattr(session(ctx), method)(path, **kw)
    handler.__name__ = handler.__qualname__ = name.replace("-", "_")
    return handler


def _two_paths(name, summary, method, kw, opts, aliases):
    first, second = (o.dest for o in opts)

    @command(name, group=G, summary=summary, mutating=True, opts=list(opts), aliases=aliases)
    def handler(ctx, **args):
        getattr(session(ctx), method)(args[first], args[second], **kw)
    handler.__name__ = handler.__qualname__ = name.replace("-", "_")
    return handler


def _one_device(name, summary, method):
    @command(name, group=G, summary=summary, mutating=True, opts=[DEVICE])
    def handler(ctx, device):
        getattr(session(ctx), method)(device)
    handler.__name__ = handler.__qualname__ = name.replace("-", "_")
    return handler


resize2fs = _one_device("resize2fs", "resize an ext2/3/4 filesystem to its device", "resize2fs")
e2fsck_f = _one_device("e2fsck-f", "check and repair an ext2/3/4 filesystem", "e2fsck_f")
for _name, _spec in ONE_PATH.items():
    globals()[_name.replace("-", "_")] = _one_path(_name, *_spec)
for _name, _spec in TWO_PATHS.items():
    globals()[_name.replace("-", "_")] = _two_paths(_name, *_spec)


@command("mkdir-mode", group=G, summary="make a guest directory with these permissions", mutating=True,
         opts=[PATH, Opt("mode", required=True, positional=True, help="permissions (0755)")])
def mkdir_mode(ctx, path, mode):
    session(ctx).mkdir(path, mode=number(mode, "mkdir-mode"))


@command("rm-f", group=G, summary="remove a guest file; no error when it is missing", mutating=True, opts=[PATH])
def rm_f(ctx, path):
    g = session(ctx)
    if g.exists(path) or g.is_symlink(path):
        g.rm(path)


@command("chmod", group=G, summary="change the permissions of a guest path", mutating=True,
         opts=[Opt("mode", required=True, positional=True, help="permissions (0644: octal)"), PATH],
         examples=("chmod 0600 /root/.ssh/authorized_keys",))
def chmod(ctx, mode, path):
    session(ctx).chmod(number(mode, "chmod"), path)


OWNER = Opt("owner", required=True, positional=True, help="numeric user id")
GROUP = Opt("group", required=True, positional=True, help="numeric group id")


@command("chown", group=G, summary="change the numeric owner and group of a guest path", mutating=True,
         opts=[OWNER, GROUP, PATH])
def chown(ctx, owner, group, path):
    session(ctx).chown(number(owner, "chown"), number(group, "chown"), path)


@command("lchown", group=G, summary="chown, not following a symbolic link", mutating=True, opts=[OWNER, GROUP, PATH])
def lchown(ctx, owner, group, path):
    session(ctx).chown(number(owner, "lchown"), number(group, "lchown"), path, follow=False)


@command("truncate-size", group=G, summary="set the size of a guest file", mutating=True,
         opts=[PATH, Opt("size", required=True, positional=True, help="bytes")])
def truncate_size(ctx, path, size):
    session(ctx).truncate(path, number(size, "truncate-size"))


@command("guest-edit", group=G, summary="edit a guest file with $EDITOR (also: edit PATH with -a/-d)",
         aliases=("vi", "emacs", "virt-edit"), mutating=True,
         opts=[PATH, Opt("expr", short="e", help="virt-edit's -e: s/PATTERN/REPLACEMENT/FLAGS on every line, "
                                                  "no editor")],
         examples=("guest-edit /etc/hostname", "guest-edit -e 's/^root:[^:]*:/root::/' /etc/shadow"))
def guest_edit(ctx, path, expr=None):
    """Downloads the file, runs $VISUAL / $EDITOR (vi) on it, writes it back when it changed.
    ``edit /PATH`` does the same when the shell has guest disks (-a, -d). With ``-e EXPR`` the
    substitution (Python's regular expressions; ``$1`` or ``\\1`` for groups; flags g, i, x) is
    applied to each line instead, as virt-edit's perl expression would."""
    edit_guest_file(ctx, path, expr)


@command("sh", group=G, summary="run a command with the guest's /bin/sh inside the guest's tree", mutating=True,
         opts=[Opt("command", required=True, positional=True, help="shell command")])
def sh(ctx, command):
    r = session(ctx).sh(command)
    if r["status"]:
        raise VshError(f"sh: command exited with status {r['status']}", *escape(r["output"]).splitlines()[-5:])
    return Text(escape(r["output"], keep_newlines=True), json_data=r)


@command("sync", group=G, summary="write every change to the disk images now")
def sync(ctx):
    session(ctx).sync()


# -- devices --------------------------------------------------------------------------------------


@command("mkfs", group=G, summary="make a filesystem on a device", aliases=("mkfs-opts",), mutating=True,
         opts=[Opt("fstype", kind="enum", choices=MKFS_TYPES, required=True, positional=True, help="filesystem type"),
               DEVICE, Opt("blocksize", kind="int", help="block size (vfat: sector size)"),
               Opt("label", help="filesystem label")],
         examples=("mkfs ext4 /dev/sda1", "mkfs vfat /dev/sda1 --label ESP"))
def mkfs(ctx, fstype, device, blocksize=None, label=None):
    session(ctx).mkfs(fstype, device, blocksize=blocksize, label=label)


PARTTYPE = Opt("parttype", kind="enum", choices=("gpt", "msdos", "mbr"), required=True, positional=True,
               help="partition table type")


@command("part-init", group=G, summary="write an empty partition table", mutating=True, opts=[DISK, PARTTYPE])
def part_init(ctx, device, parttype):
    session(ctx).part_init(device, parttype)


@command("part-add", group=G, summary="add a partition (sectors, inclusive; end -1: to the end)", mutating=True,
         opts=[DISK, Opt("prlogex", kind="enum", choices=("primary", "p", "logical", "l", "extended", "e"),
                         required=True, positional=True, help="partition kind"),
               Opt("startsect", required=True, positional=True, help="first sector"),
               Opt("endsect", required=True, positional=True, help="last sector (-1: the end of the disk)")])
def part_add(ctx, device, prlogex, startsect, endsect):
    session(ctx).part_add(device, prlogex, number(startsect, "part-add"), number(endsect, "part-add"))


@command("part-disk", group=G, summary="a partition table with one partition over the whole disk", mutating=True,
         opts=[DISK, PARTTYPE])
def part_disk(ctx, device, parttype):
    session(ctx).part_disk(device, parttype)


@command("part-del", group=G, summary="delete a partition", mutating=True,
         opts=[DISK, Opt("partnum", kind="int", required=True, positional=True, help="partition number")])
def part_del(ctx, device, partnum):
    session(ctx).part_del(device, partnum)


@command("resize2fs-size", group=G, summary="resize an ext2/3/4 filesystem to a size in bytes", mutating=True,
         opts=[DEVICE, Opt("size", required=True, positional=True, help="bytes")])
def resize2fs_size(ctx, device, size):
    session(ctx).resize2fs(device, number(size, "resize2fs-size"))


@command("set-label", group=G, summary="set a filesystem's label", mutating=True,
         opts=[DEVICE, Opt("label", required=True, positional=True, help="the new label")])
def set_label(ctx, device, label):
    session(ctx).set_label(device, label)


@command("set-uuid", group=G, summary="set a filesystem's UUID", mutating=True,
         opts=[DEVICE, Opt("uuid", required=True, positional=True, help="the new UUID")])
def set_uuid(ctx, device, uuid):
    session(ctx).set_uuid(device, uuid)


PARTNUM = Opt("partnum", kind="int", required=True, positional=True, help="partition number")


@command("part-set-name", group=G, summary="set the name of a GPT partition", mutating=True,
         opts=[DISK, PARTNUM, Opt("name", required=True, positional=True, help="the new name")])
def part_set_name(ctx, device, partnum, name):
    session(ctx).part_set_name(device, partnum, name)


@command("part-get-name", group=G, summary="the name of a GPT partition", opts=[DISK, PARTNUM])
def part_get_name(ctx, device, partnum):
    return Text(escape(session(ctx).part_get_name(device, partnum)))


# -- LVM and growing filesystems -------------------------------------------------------------------

pvcreate = _one_device("pvcreate", "make a device an LVM physical volume", "pvcreate")


@command("vgcreate", group=G, summary="make an LVM volume group of physical volumes", mutating=True,
         opts=[Opt("volgroup", required=True, positional=True, help="volume group name"),
               Opt("physvols", kind="argv", required=True, help="physical volumes (one argument, or several)")],
         examples=("vgcreate data /dev/sda1", "vgcreate data '/dev/sda1 /dev/sdb1'"))
def vgcreate(ctx, volgroup, physvols=()):
    session(ctx).vgcreate(volgroup, [p for arg in physvols for p in arg.split()])


MBYTES = Opt("mbytes", required=True, positional=True, help="size in MiB")


@command("lvcreate", group=G, summary="make an LVM logical volume (size in MiB)", mutating=True,
         opts=[Opt("logvol", required=True, positional=True, help="logical volume name"),
               Opt("volgroup", required=True, positional=True, help="volume group"), MBYTES],
         examples=("lvcreate root data 512",))
def lvcreate(ctx, logvol, volgroup, mbytes):
    session(ctx).lvcreate(logvol, volgroup, number(mbytes, "lvcreate"))


@command("lvresize", group=G, summary="grow or shrink an LVM logical volume (size in MiB)", mutating=True,
         opts=[DEVICE, MBYTES])
def lvresize(ctx, device, mbytes):
    session(ctx).lvresize(device, number(mbytes, "lvresize"))


@command("xfs-growfs", group=G, summary="grow a mounted XFS filesystem to its device", mutating=True,
         opts=[Opt("path", kind="guestpath", required=True, positional=True, help="where it is mounted")])
def xfs_growfs(ctx, path):
    session(ctx).xfs_growfs(path)


@command("selinux-relabel", group=G, summary="set SELinux labels from the guest's file contexts", mutating=True,
         opts=[Opt("specfile", kind="guestpath", required=True, positional=True,
                   help="file contexts (/etc/selinux/targeted/contexts/files/file_contexts)"),
               PATH, Opt("force", kind="bool", help="reset customised labels too")])
def selinux_relabel(ctx, specfile, path, force=False):
    session(ctx).selinux_relabel(specfile, path, force=force)


@command("set-network", group=G, summary="give the appliance a network (before the first write)",
         opts=[Opt("network", kind="enum", choices=("true", "false"), required=True, positional=True,
                   help="true or false")])
def set_network(ctx, network):
    session(ctx, launch=False).set_network(network == "true")


@command("get-network", group=G, summary="whether the appliance gets a network", opts=[])
def get_network(ctx):
    return Text("true" if session(ctx, launch=False).get_network() else "false")
