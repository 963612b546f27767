"""Build the appliance from this host's installed Debian packages, and cache it.

What goes in (the way supermin does it, computed, never hand-picked):

* the files of :data:`ROOT_PACKAGES` and of every package they depend on (``Depends`` and
  ``Pre-Depends`` of the installed packages, the first installed choice of an alternative),
  as ``dpkg -L`` lists them, without documentation, man pages and locales; Python's compiled
  ``__pycache__`` files next to the stdlib sources (the host made them when it installed
  Python), so that the agent starts without compiling anything;
* the kernel modules of :data:`MODULES` and their dependencies (``depmod`` run on the tree),
  from Debian's kernel package ``linux-image-<abi>-amd64`` (the one ``linux-image-amd64``
  depends on), fetched with ``apt-get download`` once;
* ``/init`` (a few lines of sh), ``/agent.py`` and ``/fileops.py``
  (:mod:`vsh.guestfs.appliance.agent` and :mod:`~vsh.guestfs.appliance.fileops`).

The initramfs is an uncompressed cpio (newc): the kernel unpacks it without decompressing,
which is what boots fastest under TCG. The kernel is booted as an uncompressed ELF
``vmlinux`` through PVH.

The cache is ``${VSH_CACHE_DIR:-$XDG_CACHE_HOME/vsh}/appliance/``: ``kernel-<version>/``
(vmlinux and the module tree) and ``<key>/`` (``initrd``, ``manifest.json``), the key a hash
of the kernel version, the versions of every package of the closure, the agent and /init and
:data:`REVISION`. A directory is built beside its final name and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
import stat
import subprocess
import tempfile

from vsh.core.errors import VshError

REVISION = 3

ROOT_PACKAGES = ("dash", "coreutils", "util-linux", "mount", "kmod", "python3.11-minimal", "libpython3.11-stdlib",
                 "e2fsprogs", "xfsprogs", "dosfstools", "fdisk", "gdisk", "lvm2", "tar", "findutils",
                 "btrfs-progs", "exfatprogs", "ntfs-3g", "busybox-static", "cryptsetup-bin")
# loaded by /init; the others of MODULES when a mount or LVM needs them (modprobe)
BOOT_MODULES = ("virtio_pci", "virtio_scsi", "sd_mod", "virtio_console", "virtio_rng", "ext4", "vfat", "nls_cp437",
                "nls_iso8859_1", "nls_utf8", "nls_ascii", "crc32c_generic")
MODULES = BOOT_MODULES + ("xfs", "btrfs", "exfat", "fuse", "dm_mod", "virtio_net", "dm_crypt", "ecb", "xts", "essiv",
                          "aesni_intel", "af_alg", "algif_skcipher")
# loaded before the appliance is saved (vm.py), so that a restored one mounts these at once
PRELOAD = ("xfs", "btrfs", "exfat", "fuse", "dm_mod")
# packages of the closure left out: libicu only serves xfs_scrub
SKIP_PACKAGES = ("libicu72", "debconf", "dpkg")
SKIP_PREFIXES = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/info/", "/usr/share/locale/",
                 "/usr/share/lintian/", "/usr/share/bash-completion/", "/usr/share/zsh/", "/usr/lib/systemd/",
                 "/lib/systemd/", "/etc/init.d/", "/etc/cron", "/usr/share/bug/",
                 *(f"/usr/lib/python3.11/{d}/" for d in ("test", "idlelib", "ensurepip", "lib2to3", "pydoc_data",
                                                          "tkinter", "turtledemo", "distutils", "unittest",
                                                          "config-3.11-x86_64-linux-gnu", "asyncio", "email",
                                                          "venv", "sqlite3", "xmlrpc", "wsgiref", "http",
                                                          "urllib", "multiprocessing", "curses", "dbm")))
INIT = """#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /run /tmp /sysroot /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
for m in $(cat /modules.list); do insmod "$m" 2>/dev/null; done
PYTHONHASHSEED=0 exec /usr/bin/python3.11 -I -S -B /agent.py
"""


def cache_dir() -> str:
    base = os.environ.get("VSH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vsh")
    return os.path.join(base, "appliance")


def _run(argv: list[str], **kw) -> str:
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600, **kw)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise VshError(f"appliance build: {argv[0]} failed: {e}")
    if r.returncode:
        raise VshError(f"appliance build: {' '.join(argv[:3])} failed: {r.stderr.strip()[-500:]}")
    return r.stdout


# --- the package closure ----------------------------------------------------------------


def installed_packages() -> dict[str, tuple[str, str]]:
    """package name → (version, depends) of every installed package (arch qualifiers dropped)."""
    out = _run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\t${Pre-Depends}, ${Depends}\n"])
    pkgs = {}
    for line in out.splitlines():
        name, version, status, deps = (line.split("\t") + ["", "", ""])[:4]
        if status.startswith("ii"):
            pkgs[name] = (version, deps)
    return pkgs


def closure(roots, pkgs: dict) -> list[str]:
    """The installed packages ``roots`` need, sorted: each dependency's first installed alternative."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in pkgs:
            raise VshError(f"appliance build: package {name} is not installed (scripts/setup installs it)")
        seen.add(name)
        for dep in pkgs[name][1].split(","):
            for alt in dep.split("|"):
                alt = alt.strip().split(" ")[0].split(":")[0]
                if alt in pkgs:
                    if alt not in SKIP_PACKAGES:
                        todo.append(alt)
                    break
    return sorted(seen)


def package_files(names: list[str]) -> list[str]:
    out = _run(["dpkg-query", "-L", *names])
    files = []
    for path in out.splitlines():
        if not path.startswith("/") or path.startswith(SKIP_PREFIXES) or path in ("/.",):
            continue
        files.append(path)
    return files


# --- the kernel -------------------------------------------------------------------------


def kernel_package() -> tuple[str, str]:
    """(package, version) of the kernel linux-image-amd64 currently depends on."""
    out = _run(["apt-cache", "depends", "linux-image-amd64"])
    pkg = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.strip().startswith("Depends:")), "")
    if not pkg:
        raise VshError("appliance build: apt-cache knows no linux-image-amd64 (apt-get update?)")
    show = _run(["apt-cache", "show", "--no-all-versions", pkg])
    version = next(ln.split(":", 1)[1].strip() for ln in show.splitlines() if ln.startswith("Version:"))
    return pkg, version


def vmlinux_from(bzimage: bytes) -> bytes:
    """The uncompressed ELF kernel inside a Debian bzImage (xz-compressed payload)."""
    magic = b"\xfd7zXZ\x00"
    pos = bzimage.find(magic)
    while pos >= 0:
        try:
            elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(bzimage[pos:])
        except lzma.LZMAError:
            elf = b""
        if elf[:4] == b"\x7fELF":
            return elf
        pos = bzimage.find(magic, pos + 1)
    raise VshError("appliance build: no xz-compressed ELF kernel in the kernel image")


def ensure_kernel(top: str) -> str:
    """The cached kernel directory (vmlinux, lib/modules/<release>/...), built on first use."""
    have = sorted(d for d in os.listdir(top) if d.startswith("kernel-")) if os.path.isdir(top) else []
    if have:
        return os.path.join(top, have[-1])
    pkg, version = kernel_package()
    final = os.path.join(top, f"kernel-{version}")
    os.makedirs(top, mode=0o700, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".kernel-", dir=top)
    try:
        _run(["apt-get", "download", f"{pkg}={version}"], cwd=work)
        deb = next(f for f in os.listdir(work) if f.endswith(".deb"))
        tree = os.path.join(work, "x")
        _run(["dpkg-deb", "-x", os.path.join(work, deb), tree])
        boot = os.path.join(tree, "boot")
        vmlinuz = next(os.path.join(boot, f) for f in os.listdir(boot) if f.startswith("vmlinuz-"))
        with open(vmlinuz, "rb") as f:
            elf = vmlinux_from(f.read())
        out = os.path.join(work, "out")
        os.makedirs(os.path.join(out, "lib"))
        with open(os.path.join(out, "vmlinux"), "wb") as f:
            f.write(elf)
        src = os.path.join(tree, "lib", "modules") if os.path.isdir(os.path.join(tree, "lib", "modules")) \
            else os.path.join(tree, "usr", "lib", "modules")
        shutil.move(src, os.path.join(out, "lib", "modules"))
        os.rename(out, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def module_closure(kdir: str, names=MODULES) -> tuple[str, list[tuple[str, str]], dict]:
    """(release, [(module name, path relative to lib/modules/<release>)], modules.dep as a dict)
    of the modules ``names`` and their dependencies, dependencies first."""
    mods = os.path.join(kdir, "lib", "modules")
    release = os.listdir(mods)[0]
    dep = os.path.join(mods, release, "modules.dep")
    if not os.path.exists(dep):
        _run(["depmod", "-b", kdir, release])
    deps: dict[str, list[str]] = {}
    with open(dep) as f:
        for line in f:
            path, _, rest = line.partition(":")
            deps[path] = rest.split()
    by_name = {os.path.basename(p).split(".ko")[0].replace("-", "_"): p for p in deps}
    order: list[str] = []

    def visit(path):
        if path in order:
            return
        for d in deps.get(path, []):
            visit(d)
        order.append(path)

    for name in names:
        if name in by_name:
            visit(by_name[name])
    return release, [(os.path.basename(p).split(".ko")[0].replace("-", "_"), p) for p in order], deps


# --- the cpio ---------------------------------------------------------------------------


class Cpio:
    """An uncompressed newc archive written as it goes."""

    def __init__(self, f):
        self.f = f
        self.ino = 1
        self.done: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", mtime: int = 0) -> None:
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08X}" for v in (
            self.ino, mode, 0, 0, 1, mtime, len(data), 0, 0, 0, 0, len(name_b), 0))
        self.ino += 1
        self.f.write(hdr.encode() + name_b + b"\0" * ((4 - (110 + len(name_b)) % 4) % 4))
        self.f.write(data + b"\0" * ((4 - len(data) % 4) % 4))

    def dir(self, name: str) -> None:
        name = name.strip("/")
        if not name or name in self.done:
            return
        self.dir(os.path.dirname(name))
        self.done.add(name)
        self._entry(name, stat.S_IFDIR | 0o755)

    def symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        if name in self.done:
            return
        self.dir(os.path.dirname(name))
        self.done.add(name)
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        name = name.strip("/")
        if name in self.done:
            return
        self.dir(os.path.dirname(name))
        self.done.add(name)
        self._entry(name, stat.S_IFREG | (mode & 0o7777), data)

    def host_path(self, path: str) -> None:
        """Copy a host file, directory or symbolic link, under its usr-merged name."""
        name = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self.dir(name)
        elif stat.S_ISLNK(st.st_mode):
            self.symlink(name, os.readlink(path))
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                self.file(name, f.read(), st.st_mode)

    def trailer(self) -> None:
        self._entry("TRAILER!!!", 0)


AGENT_FILES = ("agent.py", "fileops.py")      # copied to the appliance's /


def _agent_files() -> dict[str, bytes]:
    out = {}
    for name in AGENT_FILES:
        with open(os.path.join(os.path.dirname(__file__), name), "rb") as f:
            out[name] = f.read()
    return out


def _agent_source() -> bytes:
    return b"".join(_agent_files().values())


def appliance_key(kdir: str, versions: dict[str, str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([REVISION, os.path.basename(kdir), sorted(versions.items()), list(ROOT_PACKAGES),
                         list(MODULES)]).encode())
    h.update(_agent_source())
    h.update(INIT.encode())
    return h.hexdigest()[:16]


def _dpkg_stamp() -> list:
    st = os.stat("/var/lib/dpkg/status")
    return [st.st_mtime_ns, st.st_size]


def ensure(log=None) -> dict:
    """The appliance's manifest (``vmlinux``, ``initrd``, ``kernel_release``, ``packages``),
    built when the cache has none for the current packages. Cheap when nothing changed: the
    last answer is remembered against dpkg's status file and the agent's source."""
    top = cache_dir()
    memo = os.path.join(top, "current.json")
    agent_hash = hashlib.sha256(_agent_source() + INIT.encode()).hexdigest()
    try:
        with open(memo) as f:
            m = json.load(f)
        if m["dpkg"] == _dpkg_stamp() and m["agent"] == agent_hash and os.path.exists(m["manifest"]["initrd"]):
            return m["manifest"]
    except (OSError, ValueError, KeyError):
        pass
    kdir = ensure_kernel(top)
    pkgs = installed_packages()
    names = closure(ROOT_PACKAGES, pkgs)
    versions = {n: pkgs[n][0] for n in names}
    final = os.path.join(top, appliance_key(kdir, versions))
    if not os.path.exists(os.path.join(final, "manifest.json")):
        if log:
            log(f"building the appliance from {len(names)} packages")
        _build(final, kdir, names, versions)
        for old in os.listdir(top):      # earlier builds (other packages or agent): not used again
            if len(old) == 16 and not old.startswith("kernel-") and old != os.path.basename(final):
                shutil.rmtree(os.path.join(top, old), ignore_errors=True)
    with open(os.path.join(final, "manifest.json")) as f:
        manifest = json.load(f)
    tmp = memo + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"dpkg": _dpkg_stamp(), "agent": agent_hash, "manifest": manifest}, f)
    os.replace(tmp, memo)
    return manifest


def _build(final: str, kdir: str, names: list[str], versions: dict) -> None:
    top = os.path.dirname(final)
    work = tempfile.mkdtemp(prefix=".build-", dir=top)
    try:
        release, mods, deps = module_closure(kdir)
        _r, boot, _d = module_closure(kdir, BOOT_MODULES)
        initrd = os.path.join(work, "initrd")
        with open(initrd, "wb") as f:
            c = Cpio(f)
            for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"),
                                 ("lib64", "usr/lib64")):
                c.symlink(link, target)
            for d in ("proc", "sys", "dev", "run", "tmp", "sysroot", "etc"):
                c.dir(d)
            c.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
            c.file("etc/group", b"root:x:0:\n")
            c.file("etc/fstab", b"")
            c.file("etc/lvm/lvm.conf", b"devices { use_devicesfile = 0 }\nactivation { udev_sync = 0 udev_rules = 0 "
                   b"monitoring = 0 }\nbackup { backup = 0 archive = 0 }\n")
            for path in package_files(names):
                c.host_path(path)
                if path.endswith(".py") and "/python3" in path:
                    pyc = os.path.join(os.path.dirname(path), "__pycache__",
                                       os.path.basename(path)[:-3] + ".cpython-311.pyc")
                    c.host_path(pyc)
            kmods = os.path.join(kdir, "lib", "modules", release)
            for _name, rel in mods:
                with open(os.path.join(kmods, rel), "rb") as m:
                    c.file(f"usr/lib/modules/{release}/{rel}", m.read())
            c.file(f"usr/lib/modules/{release}/modules.dep",
                   "".join(f"{r}: {' '.join(deps[r])}\n" for _n, r in mods).encode())
            c.file("modules.list", "".join(f"/usr/lib/modules/{release}/{r}\n" for _n, r in boot).encode())
            c.file("init", INIT.encode(), 0o755)
            for name, data in _agent_files().items():
                c.file(name, data, 0o644)
            c.trailer()
        shutil.copyfile(os.path.join(kdir, "vmlinux"), os.path.join(work, "vmlinux"))
        manifest = {"vmlinux": os.path.join(final, "vmlinux"), "initrd": os.path.join(final, "initrd"),
                    "kernel_release": release, "packages": versions, "modules": [n for n, _r in mods],
                    "revision": REVISION}
        with open(os.path.join(work, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
        os.rename(work, final)
    except FileExistsError:
        shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise

