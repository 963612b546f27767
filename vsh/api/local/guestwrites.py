"""The local driver's writes: guestfish's write commands through the appliance VM.

The appliance starts on the first write of a session with every drive attached (its
format explicit, read-only drives read-only) and mounts, read-write, what the session has
mounted. Reads go on in this process; while the appliance holds a filesystem mounted
read-write after a change, the few reads a shell repeats (``cat``, ``ls``, ``stat``,
``exists``, the ``is-*`` tests, ``readlink``) ask the appliance, and any other read first
unmounts in the appliance (the filesystem is clean on disk again) and reopens the images
in this process (:meth:`LocalGuestWrites._settle`).
"""

from __future__ import annotations

import errno as E
import os

from vsh.api.guestwrites import MKFS_TYPES, GuestDiskWrites
from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, VshError

CHUNK = 4 << 20
# filesystems no library here reads: mounted in the appliance, read through it
APPLIANCE_ONLY = ("btrfs", "exfat")
PARTTYPES = {"gpt": "gpt", "msdos": "dos", "mbr": "dos"}


def _error(what: str, e, path: str | None = None) -> VshError:
    text = f"{what}: {path}: {e}" if path else f"{what}: {e}"
    if getattr(e, "errno", None) == E.ENOENT:
        return NotFound(text)
    if getattr(e, "errno", None) == E.EROFS:
        return OperationInvalid(text)
    return VshError(text)


class LocalGuestWrites(GuestDiskWrites):
    """Mixed into :class:`vsh.api.local.guestdisks.LocalGuestDisks` (uses its ``g``, ``conn``,
    ``readonly``)."""

    _app = None               # the running Appliance
    _app_mounted = False      # the session's mounts are mounted read-write in the appliance
    _dirty = False            # the appliance changed something this process has not reread
    _refused: dict = {}       # drive path → the running domain it belongs to
    _ro_mps: frozenset = frozenset()    # mountpoints mounted with mount-ro
    _app_only: dict = {}      # mountpoint → device of the filesystems only the appliance reads
    _network = False          # the appliance gets QEMU user networking (set_network)
    _app_luks: frozenset = frozenset()  # LUKS mapping names unlocked in the appliance

    def is_writable(self) -> bool:
        return any(not d["readonly"] for d in self.g.drives)

    def refuse_running(self, path: str) -> bool:
        """Whether ``path`` is a disk of a running domain (then remembered as not writable)."""
        name = self.running_disks().get(os.path.realpath(path))
        if name is None:
            return False
        self._refused = dict(self._refused, **{path: name})
        return True

    # --- the appliance ------------------------------------------------------------------

    def _need_rw(self, what: str):
        if not self.g.launched:
            raise InvalidArgument(f"{what}: call launch (run) first")
        if self._refused:
            path, name = next(iter(self._refused.items()))
            raise OperationInvalid(f"{what}: {path} is a disk of the running domain '{name}': writes are refused",
                                   hint="shut the domain down first")
        if not self.is_writable():
            raise OperationInvalid(f"{what}: the disks were added read-only (--ro)")

    def _appliance(self, what: str, write: bool = True):
        from vsh.guestfs.appliance.vm import Appliance

        if write or not self.g.launched:
            self._need_rw(what)
        if self._app is None or not self._app.running:
            drives = [{"path": d["path"], "format": img.format, "readonly": d["readonly"]}
                      for d, img in zip(self.g.drives, self.g.images)]
            app = Appliance(drives, network=self._network)
            app.start()
            self._app, self._app_mounted, self._app_luks = app, False, frozenset()
        self._unlock(what)
        return self._app

    def _unlock(self, what: str) -> None:
        """Unlock in the appliance the LUKS volumes this process has unlocked (same names)."""
        for device, name, key in self.g.luks_mappings():
            if name not in self._app_luks:
                data = key if isinstance(key, bytes) else key.encode()
                self._call(self._app, what, "luks_open", data, device=device, name=name)
                self._app_luks = self._app_luks | {name}

    def _files(self, what: str, write: bool = True):
        app = self._appliance(what, write)
        if not self._app_mounted:
            mps = self.mountpoints()
            if "/" not in mps:
                raise InvalidArgument(f"{what}: no filesystem is mounted on /",
                                      hint="mount one first (mount DEVICE /, or -i)")
            for mp in sorted(mps, key=len):
                opts = "" if self.g._writable(mps[mp]) and mp not in self._ro_mps else "ro"
                self._call(app, what, "mount", device=mps[mp], mountpoint=mp, options=opts, kind=self._kind(mps[mp]))
            self._app_mounted = True
        return app

    def _kind(self, device: str) -> str:
        """The filesystem type this process read on ``device`` ("" when it could not): the
        appliance need not probe it again."""
        try:
            return self.g.vfs_type(device) or ""
        except VshError:
            return ""

    def _call(self, app, what, op, data=b"", errpath=None, **args):
        from vsh.guestfs.appliance.vm import AgentError

        try:
            return app.call(op, data, **args)
        except AgentError as e:
            raise _error(what, e, errpath) from None

    def _fs(self, what: str, call: str, errpath: str | None = None, data: bytes = b"", **args):
        write = call not in ("read", "ls", "stat", "readlink")
        app = self._files(what, write)
        self._dirty = self._dirty or write
        return self._call(app, what, "fs", data, errpath, call=call, **args)

    def _live(self) -> bool:
        """Whether reads must ask the appliance (it holds changed filesystems mounted, or a
        filesystem only it reads is mounted)."""
        return bool(self._app_only) or self._dirty and self._app_mounted and self._app is not None and \
            self._app.running

    def _here(self, what: str, path: str | None = None) -> None:
        """Before a read this process does: current images (:meth:`_settle`), and no path on a
        filesystem only the appliance reads (any such mount when ``path`` is None)."""
        self._settle()
        for mp, device in self._app_only.items():
            if path is None or mp == "/" or path == mp or path.startswith(mp.rstrip("/") + "/"):
                from vsh.core.errors import Unsupported

                raise Unsupported(f"{what}: {device} ({self.g.vfs_type(device)}, mounted on {mp}) is read "
                                  f"through the appliance, which answers cat, ls, stat, download and checksum")

    def _settle(self) -> None:
        """Make this process's view of the disks current: unmount in the appliance (clean
        filesystems on disk), then reopen the images and mount again what was mounted."""
        from vsh.guestfs.session import GuestSession

        if not self._dirty:
            return
        if self._app is not None and self._app.running:
            if self._app_mounted:
                self._call(self._app, "umount", "umount_all")
                self._app_mounted = False
            self._call(self._app, "sync", "sync")
        old = self.g
        mps = old.mountpoints()
        maps = old.luks_mappings()
        new = GuestSession()
        for d in old.drives:
            new.add_drive(d["path"], d["format"], readonly=d["readonly"])
        new.keys = list(old.keys)
        old.close()
        new.launch()
        have = {name for _d, name, _k in new.luks_mappings()}
        for device, name, key in maps:
            if name not in have:
                try:
                    new.luks_open(device, key, name)
                except VshError:
                    continue
        for mp in sorted(mps, key=len):
            try:
                new.mount_ro(mps[mp], mp)
            except VshError:
                continue
        self.g = new
        self._dirty = False

    def close_appliance(self) -> None:
        app, self._app = self._app, None
        if app is not None:
            if app.running:
                try:
                    app.call("umount_all", timeout=120)
                except VshError:
                    pass
            app.close()
        self._app_mounted = False

    def _tool(self, what: str, argv: list[str], devices: list[int], data: bytes = b"", rereadpt: bool = False,
              ok=(0,)):
        """Run a tool of the appliance on devices (unmounted in the appliance first)."""
        app = self._appliance(what)
        if self._app_mounted:
            self._call(app, what, "umount_all")
            self._app_mounted = False
        r, _ = self._call(app, what, "tool", data, argv=argv, devices=devices, rereadpt=rereadpt)
        self._dirty = True
        if r["status"] not in ok:
            raise VshError(f"{what}: {argv[devices[0]] if devices else ''}: " + _reason(r))
        self._settle()
        return r

    # --- files --------------------------------------------------------------------------

    def write(self, path: str, content: bytes, append: bool = False) -> None:
        self._fs("write-append" if append else "write", "write", path, bytes(content), path=path, append=append)

    def upload(self, filename: str, remotefilename: str) -> int:
        try:
            f = open(filename, "rb")
        except OSError as e:
            raise _error("upload", e, filename) from None
        total = 0
        with f:
            self._fs("upload", "write", remotefilename, b"", path=remotefilename)
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                self._fs("upload", "write", remotefilename, chunk, path=remotefilename, append=True)
                total += len(chunk)
        return total

    def _stage(self, what: str, fileobj) -> None:
        app = self._files(what)
        offset = 0
        while True:
            chunk = fileobj.read(CHUNK)
            if not chunk and offset:
                break
            self._call(app, what, "stage", chunk, offset=offset)
            offset += len(chunk)
            if not chunk:
                break

    def tar_in(self, tarfile: str, directory: str) -> None:
        try:
            f = open(tarfile, "rb")
        except OSError as e:
            raise _error("tar-in", e, tarfile) from None
        with f:
            self._stage("tar-in", f)
        self._dirty = True
        self._call(self._app, "tar-in", "tar_in", errpath=directory, directory=directory)

    def copy_in(self, localpath: str, remotedir: str) -> None:
        import tarfile
        import tempfile

        if not os.path.lexists(localpath):
            raise NotFound(f"copy-in: {localpath}: No such file or directory")
        with tempfile.TemporaryFile() as tmp:
            with tarfile.open(fileobj=tmp, mode="w") as t:
                t.add(localpath, arcname=os.path.basename(os.path.normpath(localpath)),
                      filter=lambda ti: _as_root(ti))
            tmp.seek(0)
            self._stage("copy-in", tmp)
        self._dirty = True
        self._call(self._app, "copy-in", "tar_in", errpath=remotedir, directory=remotedir)

    def mkdir(self, path: str, parents: bool = False, mode: int = 0o755) -> None:
        self._fs("mkdir-p" if parents else "mkdir", "mkdir", path, path=path, parents=parents, mode=mode)

    def rm(self, path: str, recursive: bool = False, directory: bool = False) -> None:
        what = "rm-rf" if recursive else "rmdir" if directory else "rm"
        self._fs(what, "rm", path, path=path, recursive=recursive, directory=directory)

    def mv(self, src: str, dest: str) -> None:
        self._fs("mv", "mv", src, src=src, dest=dest)

    def cp(self, src: str, dest: str, archive: bool = False) -> None:
        self._fs("cp-a" if archive else "cp", "cp", src, src=src, dest=dest, archive=archive)

    def chmod(self, mode: int, path: str) -> None:
        self._fs("chmod", "chmod", path, path=path, mode=mode)

    def chown(self, owner: int, group: int, path: str, follow: bool = True) -> None:
        self._fs("chown" if follow else "lchown", "chown", path, path=path, uid=owner, gid=group, nofollow=not follow)

    def ln_s(self, target: str, linkname: str, force: bool = False) -> None:
        self._fs("ln-sf" if force else "ln-s", "symlink", linkname, target=target, linkname=linkname, force=force)

    def touch(self, path: str) -> None:
        self._fs("touch", "touch", path, path=path)

    def truncate(self, path: str, size: int = 0) -> None:
        self._fs("truncate", "truncate", path, path=path, size=size)

    def sh(self, command: str, timeout: float = 600) -> dict:
        app = self._files("sh")
        self._dirty = True
        r, _ = self._call(app, "sh", "sh", command=command, limit=timeout, timeout=timeout + 60, network=self._network)
        return r

    def set_network(self, enabled: bool) -> None:
        if self._app is not None and self._app.running and bool(enabled) != self._network:
            raise OperationInvalid("set-network: the appliance is already running",
                                   hint="set the network before the first write")
        self._network = bool(enabled)

    def get_network(self) -> bool:
        return self._network

    def sync(self) -> None:
        if self._app is not None and self._app.running:
            self._call(self._app, "sync", "sync")

    # --- devices ------------------------------------------------------------------------

    def mkfs(self, fstype: str, device: str, blocksize: int | None = None, label: str | None = None) -> None:
        if fstype not in MKFS_TYPES:
            raise InvalidArgument(f"mkfs: {fstype}: unsupported filesystem type (known: {', '.join(MKFS_TYPES)})")
        if fstype.startswith("ext"):
            argv = ["mke2fs", "-q", "-F", "-t", fstype] + (["-b", str(blocksize)] if blocksize else []) + \
                (["-L", label] if label is not None else [])
        elif fstype == "xfs":
            argv = ["mkfs.xfs", "-q", "-f"] + (["-b", f"size={blocksize}"] if blocksize else []) + \
                (["-L", label] if label is not None else [])
        elif fstype == "swap":
            argv = ["mkswap", "-f"] + (["-L", label] if label is not None else [])
        elif fstype in ("btrfs", "exfat", "ntfs"):
            argv = {"btrfs": ["mkfs.btrfs", "-q", "-f"], "exfat": ["mkfs.exfat"], "ntfs": ["mkntfs", "-Q", "-F", "-q"]
                    }[fstype] + (["-L", label] if label is not None else [])
            if blocksize:
                argv += {"btrfs": ["-s", str(blocksize)], "exfat": ["-c", str(blocksize)],
                         "ntfs": ["-c", str(blocksize)]}[fstype]
        else:
            argv = ["mkfs.fat"] + (["-S", str(blocksize)] if blocksize else []) + \
                (["-n", label] if label is not None else [])
        self._tool("mkfs", argv + [device], [len(argv)])

    def _disk(self, what: str, device: str) -> str:
        if device not in self.g.list_devices():
            raise InvalidArgument(f"{what}: {device}: not a whole disk device")
        return device

    def _new_table(self, what: str, device: str, parttype: str, partitions: str) -> None:
        label = PARTTYPES.get(parttype)
        if label is None:
            raise InvalidArgument(f"{what}: {parttype}: unknown partition type (gpt, msdos)")
        self._tool(what, ["sfdisk", "-q", "--wipe", "always", self._disk(what, device)], [4],
                   f"label: {label}\n{partitions}".encode())

    def part_init(self, device: str, parttype: str) -> None:
        self._new_table("part-init", device, parttype, "")

    def part_add(self, device: str, prlogex: str, startsect: int, endsect: int) -> None:
        kind = {"p": "", "primary": "", "l": "", "logical": "", "e": ", type=Ex", "extended": ", type=Ex"}.get(prlogex)
        if kind is None:
            raise InvalidArgument(f"part-add: {prlogex}: expected primary, logical or extended")
        size = f", size={endsect - startsect + 1}" if endsect >= 0 else ""
        self._tool("part-add", ["sfdisk", "-q", "--append", "--no-reread", self._disk("part-add", device)], [4],
                   f"start={startsect}{size}{kind}\n".encode(), rereadpt=True)

    def part_disk(self, device: str, parttype: str) -> None:
        self._new_table("part-disk", device, parttype, "start=2048\n")

    def part_del(self, device: str, partnum: int) -> None:
        self._tool("part-del", ["sfdisk", "-q", "--delete", "--no-reread", self._disk("part-del", device),
                                str(partnum)], [4], rereadpt=True)

    def part_set_name(self, device: str, partnum: int, name: str) -> None:
        if self.part_get_parttype(device) != "gpt":
            raise InvalidArgument(f"part-set-name: {device}: partition names need a GPT partition table")
        self.part_get_name(device, partnum)         # NotFound for a missing partition
        self._tool("part-set-name", ["sfdisk", "-q", "--no-reread", "--part-label", self._disk("part-set-name", device),
                                     str(partnum), name], [4], rereadpt=True)

    def part_get_name(self, device: str, partnum: int) -> str:
        self._settle()
        return self.g.part_get_name(device, partnum)

    def pvcreate(self, device: str) -> None:
        self._tool("pvcreate", ["lvm", "pvcreate", "-ff", "-y", device], [4])

    def vgcreate(self, volgroup: str, physvols: list[str]) -> None:
        if not physvols:
            raise InvalidArgument("vgcreate: no physical volumes given")
        self._tool("vgcreate", ["lvm", "vgcreate", "-y", volgroup, *physvols], list(range(4, 4 + len(physvols))))

    def lvcreate(self, logvol: str, volgroup: str, mbytes: int) -> None:
        self._tool("lvcreate", ["lvm", "lvcreate", "-y", "-W", "y", "-L", f"{int(mbytes)}m", "-n", logvol, volgroup],
                   [])

    def lvresize(self, device: str, mbytes: int) -> None:
        self._tool("lvresize", ["lvm", "lvresize", "-f", "-L", f"{int(mbytes)}m", device], [5])

    def xfs_growfs(self, path: str) -> None:
        app = self._files("xfs-growfs")
        self._dirty = True
        r, _ = self._call(app, "xfs-growfs", "tool", argv=["xfs_growfs", path], devices=[], mountpoints=[1])
        if r["status"]:
            raise VshError(f"xfs-growfs: {path}: " + _reason(r))

    def selinux_relabel(self, specfile: str, path: str, force: bool = False) -> None:
        import shlex

        q = shlex.quote
        r = self.sh(f"command -v setfiles >/dev/null || {{ echo 'the guest has no setfiles (no SELinux)'; exit 127; }}; "
                    f"setfiles {'-F ' if force else ''}-e /proc -e /sys -e /dev {q(specfile)} {q(path)} 2>&1")
        if r["status"]:
            lines = r["output"].strip().splitlines()
            raise VshError(f"selinux-relabel: {lines[-1] if lines else 'setfiles exited with status ' + str(r['status'])}")

    def resize2fs(self, device: str, size: int | None = None) -> None:
        self._tool("resize2fs", ["resize2fs", device] + ([f"{size // 1024}K"] if size else []), [1])

    def e2fsck_f(self, device: str) -> None:
        self._tool("e2fsck-f", ["e2fsck", "-f", "-y", device], [3], ok=(0, 1))     # 1: errors corrected

    def set_label(self, device: str, label: str) -> None:
        kind = self.vfs_type(device)
        tool = {"vfat": "fatlabel", "btrfs": "btrfs", "exfat": "exfatlabel", "ntfs": "ntfslabel"}.get(kind)
        if kind.startswith("ext"):
            self._tool("set-label", ["e2label", device, label], [1])
        elif kind in ("xfs", "swap"):
            self._tool("set-label", ["xfs_admin" if kind == "xfs" else "swaplabel", "-L", label, device], [3])
        elif tool == "btrfs":
            self._tool("set-label", ["btrfs", "filesystem", "label", device, label], [3])
        elif tool:
            self._tool("set-label", [tool, device, label], [1])
        else:
            raise InvalidArgument(f"set-label: {device}: cannot set the label of a {kind or 'unknown'} filesystem")

    def set_uuid(self, device: str, uuid: str) -> None:
        kind = self.vfs_type(device)
        if kind.startswith("ext"):
            self._tool("set-uuid", ["tune2fs", "-U", uuid, device], [3])
        elif kind == "xfs":
            self._tool("set-uuid", ["xfs_admin", "-U", uuid, device], [3])
        elif kind == "swap":
            self._tool("set-uuid", ["swaplabel", "-U", uuid, device], [3])
        elif kind == "vfat":
            self._tool("set-uuid", ["fatlabel", "-i", device, uuid.replace("-", "")], [2])
        elif kind == "btrfs":
            self._tool("set-uuid", ["btrfstune", "-f", "-U", uuid, device], [4])
        else:
            raise InvalidArgument(f"set-uuid: {device}: cannot set the UUID of a {kind or 'unknown'} filesystem")


def _reason(r: dict) -> str:
    """What a failed tool said: its last line, or the last one before a usage text."""
    lines = [ln for ln in (r["stderr"] or r["stdout"]).strip().splitlines() if ln.strip()]
    usage = next((i for i, ln in enumerate(lines) if ln.startswith("Usage:")), None)
    if usage:
        lines = lines[:usage]
    return lines[-1].strip() if lines else f"exit status {r['status']}"


def _as_root(ti):
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti
