"""Operating-system inspection, with libguestfs' answers and vocabulary.

For every filesystem that looks like the root of an operating system this
finds its type, distro, product name, version, hostname, architecture,
package format and manager, mountpoints (from /etc/fstab, with UUID=,
LABEL=, PARTUUID= and device names mapped to vsh's device names) and the
installed applications (dpkg status; the rpm database through the host's
``rpm`` tool where present).

Inspection tolerates faults: a bad fstab line, an unreadable file or a
filesystem that cannot be opened adds a message to ``warnings`` and the
rest goes on.  Everything read from the guest is untrusted text: pass it
through :func:`vsh.core.escape.escape` before printing it to a terminal.
"""

from __future__ import annotations

import os
import re

from vsh.core.errors import VshError
from vsh.core.escape import escape

from .fs import SUPPORTED, open_filesystem
from .fs.paths import safe_name
from .fs.tree import MountTree

# --- small parsers of guest text files -------------------------------------------


def parse_os_release(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, val = line.partition("=")
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] and val[0] in "\"'":
            val = val[1:-1]
            val = re.sub(r"\\(.)", r"\1", val)
        out[key.strip()] = val
    return out


def parse_version(text: str) -> tuple[int, int] | None:
    m = re.match(r"\s*(\d+)(?:\.(\d+))?", text or "")
    if not m:
        return None
    return int(m.group(1)), int(m.group(2) or 0)


def split_deb_version(v: str) -> tuple[int, str, str]:
    epoch = 0
    if ":" in v:
        e, _, v = v.partition(":")
        epoch = int(e) if e.isdigit() else 0
    if "-" in v:
        v, _, rel = v.rpartition("-")
    else:
        rel = ""
    return epoch, v, rel


def parse_dpkg_status(text: str) -> list[dict]:
    """Installed packages from /var/lib/dpkg/status."""
    apps = []
    for para in re.split(r"\n\s*\n", text):
        fields = {}
        for line in para.splitlines():
            if not line or line[0] in " \t" or ":" not in line:
                continue
            k, _, v = line.partition(":")
            fields[k.strip()] = v.strip()
        name = fields.get("Package")
        status = fields.get("Status", "").split()
        if not name or len(status) != 3 or status[2] != "installed":
            continue
        epoch, version, release = split_deb_version(fields.get("Version", ""))
        apps.append({"name": name, "epoch": epoch, "version": version, "release": release,
                     "arch": fields.get("Architecture", ""),
                     "source": fields.get("Source", "").split(" ")[0] or name,
                     "summary": fields.get("Description", "")})
    apps.sort(key=lambda a: a["name"])
    return apps


_ELF_MACHINES = {2: "sparc", 3: "i386", 8: "mips", 18: "sparc", 20: "ppc", 21: "ppc64", 22: "s390",
                 40: "arm", 43: "sparc64", 50: "ia64", 62: "x86_64", 183: "aarch64", 243: "riscv",
                 258: "loongarch64"}


def elf_arch(head: bytes) -> str | None:
    """libguestfs' architecture name from the first bytes of an ELF file."""
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    is64 = head[4] == 2
    little = head[5] == 1
    machine = int.from_bytes(head[18:20], "little" if little else "big")
    arch = _ELF_MACHINES.get(machine)
    if arch is None:
        return None
    if arch == "ppc64" and little:
        return "ppc64le"
    if arch == "mips" and is64:
        return "mips64"
    if arch == "s390" and is64:
        return "s390x"
    if arch == "riscv":
        return "riscv64" if is64 else "riscv32"
    if arch == "sparc" and is64:
        return "sparc64"
    return arch


_DISTROS = {"debian": "debian", "ubuntu": "ubuntu", "linuxmint": "linuxmint", "fedora": "fedora",
            "rhel": "rhel", "centos": "centos", "rocky": "rocky", "almalinux": "almalinux",
            "ol": "oraclelinux", "opensuse": "opensuse", "opensuse-leap": "opensuse",
            "opensuse-tumbleweed": "opensuse", "sles": "sles", "sled": "sles", "arch": "archlinux",
            "alpine": "alpinelinux", "gentoo": "gentoo", "void": "voidlinux", "kali": "kalilinux",
            "altlinux": "altlinux", "mageia": "mageia", "openmandriva": "openmandriva",
            "clear-linux-os": "clearlinux", "coreos": "coreos", "frugalware": "frugalware",
            "pardus": "pardus", "cirros": "cirros", "neokylin": "neokylin", "slackware": "slackware",
            "pld": "pldlinux", "buildroot": "buildroot", "mandriva": "mandriva", "scientific": "scientificlinux"}

_PACKAGING = {"debian": ("deb", "apt"), "ubuntu": ("deb", "apt"), "linuxmint": ("deb", "apt"),
              "kalilinux": ("deb", "apt"), "fedora": ("rpm", "dnf"), "rhel": ("rpm", "dnf"),
              "centos": ("rpm", "dnf"), "rocky": ("rpm", "dnf"), "almalinux": ("rpm", "dnf"),
              "oraclelinux": ("rpm", "dnf"), "opensuse": ("rpm", "zypper"), "sles": ("rpm", "zypper"),
              "archlinux": ("pacman", "pacman"), "alpinelinux": ("apk", "apk"),
              "gentoo": ("ebuild", "portage"), "voidlinux": ("xbps", "xbps"),
              "mageia": ("rpm", "urpmi"), "openmandriva": ("rpm", "dnf"), "altlinux": ("rpm", "apt")}

_IGNORED_MP = ("/dev", "/proc", "/sys", "/selinux", "/media", "/run")
_NON_DEVICES = {"none", "proc", "sysfs", "tmpfs", "devpts", "devtmpfs", "cgroup", "cgroup2",
                "debugfs", "securityfs", "hugetlbfs", "mqueue", "pstore", "bpf", "configfs",
                "fusectl", "binfmt_misc", "nfsd", "rpc_pipefs", "overlay", "shm", "efivarfs"}


def _unescape_fstab(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


# --- inspection ------------------------------------------------------------------


class Inspector:
    """Inspect the devices of a :class:`volumes.Volumes`."""

    def __init__(self, volumes, fs_cache: dict | None = None):
        self.volumes = volumes
        self.warnings: list[str] = []
        self.oses: dict[str, dict] = {}
        self._shared = fs_cache is not None
        self._fs_cache: dict[str, object] = fs_cache if fs_cache is not None else {}
        self._failed: set[str] = set()

    def _warn(self, msg: str):
        if msg not in self.warnings:
            self.warnings.append(msg)

    def open_fs(self, devname: str):
        if devname in self._fs_cache:
            return self._fs_cache[devname]
        if devname in self._failed:
            return None
        try:
            fs = open_filesystem(self.volumes.get(devname))
        except VshError as e:
            self._warn(f"{devname}: {e}")
            self._failed.add(devname)
            return None
        self._fs_cache[devname] = fs
        return fs

    def close(self):
        if not self._shared:
            for fs in self._fs_cache.values():
                fs.close()
            self._fs_cache.clear()

    # per-file helpers (one filesystem mounted at /)
    def _tree(self, fs) -> MountTree:
        t = MountTree()
        t.mounts[()] = fs
        return t

    def _read(self, tree, path: str, limit: int = 1 << 20, warn: bool = True) -> str | None:
        try:
            if not tree.is_kind(path, "f"):
                return None
            return tree.read(path, max_size=limit).decode("utf-8", "replace")
        except VshError as e:
            if warn:
                self._warn(f"{path}: cannot be read: {e}")
            return None

    def inspect_os(self) -> list[str]:
        """Roots of the operating systems found (sorted device names)."""
        self.oses = {}
        opened = {d.extra.get("luks_device") for d in self.volumes.devices.values() if d.kind == "luks"}
        for dev, vtype in self.volumes.list_filesystems().items():
            if vtype == "crypto_LUKS" and dev not in opened:
                self._warn(f"{dev}: encrypted (LUKS) and not unlocked; give a key to inspect inside it")
                continue
            if vtype not in SUPPORTED:
                if vtype not in ("swap", "unknown", "crypto_LUKS"):
                    self._warn(f"{dev}: {vtype} is not readable in-process; not inspected")
                continue
            fs = self.open_fs(dev)
            if fs is None:
                continue
            try:
                info = self._inspect_root(dev, fs)
            except VshError as e:
                self._warn(f"{dev}: inspection failed: {e}")
                continue
            except Exception as e:  # noqa: BLE001 - a damaged filesystem must not abort the others
                self._warn(f"{dev}: inspection failed: {type(e).__name__}: {e}")
                continue
            if info is not None:
                self.oses[dev] = info
        return sorted(self.oses)

    def _inspect_root(self, dev: str, fs) -> dict | None:
        tree = self._tree(fs)
        if tree.is_kind("/etc", "d") and (tree.exists("/bin") or tree.exists("/usr/bin")) and (
                tree.exists("/etc/fstab") or tree.exists("/etc/os-release") or tree.exists("/usr/lib/os-release")):
            return self._inspect_linux(dev, fs, tree)
        for sysdir in ("/Windows/System32", "/WINDOWS/system32", "/WINNT/system32"):
            if tree.is_kind(sysdir, "d"):
                return self._inspect_windows(dev, fs, tree, sysdir)
        return None

    def _base(self, dev: str, ostype: str) -> dict:
        return {"root": dev, "type": ostype, "distro": "unknown", "product_name": "unknown",
                "product_variant": "unknown", "major_version": 0, "minor_version": 0,
                "arch": "unknown", "hostname": "unknown", "package_format": "unknown",
                "package_management": "unknown", "osinfo": "unknown", "format": "installed",
                "mountpoints": {"/": dev}, "filesystems": [dev], "warnings": []}

    def _inspect_windows(self, dev, fs, tree, sysdir) -> dict:
        info = self._base(dev, "windows")
        info["distro"] = "windows"
        info["windows_systemroot"] = sysdir.rsplit("/", 1)[0]
        info["warnings"].append("the Windows registry is not read in-process: product, version and hostname are unknown")
        for exe in ("/System32/cmd.exe", "/System32/notepad.exe"):
            p = info["windows_systemroot"] + exe
            try:
                if tree.is_kind(p, "f"):
                    head = tree.read(p, max_size=64 << 20)[:4096]
                    if head[:2] == b"MZ" and len(head) > 0x40:
                        pe = int.from_bytes(head[0x3C:0x40], "little")
                        mach = int.from_bytes(head[pe + 4:pe + 6], "little") if pe + 6 <= len(head) else 0
                        info["arch"] = {0x14C: "i386", 0x8664: "x86_64", 0xAA64: "aarch64"}.get(mach, "unknown")
                    break
            except VshError:
                continue
        return info

    def _inspect_linux(self, dev, fs, tree) -> dict:
        info = self._base(dev, "linux")
        w = info["warnings"]
        osr_text = self._read(tree, "/etc/os-release") or self._read(tree, "/usr/lib/os-release")
        osr = parse_os_release(osr_text) if osr_text else {}
        distro = _DISTROS.get(osr.get("ID", "").lower())
        if distro:
            info["distro"] = distro
            info["product_name"] = osr.get("PRETTY_NAME") or osr.get("NAME") or "unknown"
            v = parse_version(osr.get("VERSION_ID", ""))
            if v:
                info["major_version"], info["minor_version"] = v
        deb_version = self._read(tree, "/etc/debian_version", warn=False)
        if deb_version and info["distro"] in ("unknown", "debian"):
            dv = deb_version.strip().splitlines()[0].strip() if deb_version.strip() else ""
            v = parse_version(dv)
            if v:  # like libguestfs: Debian's point release comes from debian_version
                info["distro"] = "debian"
                info["product_name"] = dv
                info["major_version"], info["minor_version"] = v
        if info["distro"] == "unknown":
            for path, distro in (("/etc/redhat-release", None), ("/etc/alpine-release", "alpinelinux"),
                                 ("/etc/arch-release", "archlinux")):
                text = self._read(tree, path, warn=False)
                if text is None:
                    continue
                first = text.strip().splitlines()[0] if text.strip() else ""
                if distro is None:
                    low = first.lower()
                    distro = ("fedora" if "fedora" in low else "centos" if "centos" in low
                              else "rhel" if "red hat" in low else "redhat-based")
                info["distro"] = distro
                info["product_name"] = first or "unknown"
                m = re.search(r"(\d+)(?:\.(\d+))?", first)
                if m:
                    info["major_version"], info["minor_version"] = int(m.group(1)), int(m.group(2) or 0)
                break
        info["hostname"] = self._hostname(tree)
        info["arch"] = self._arch(tree, w)
        pf, pm = _PACKAGING.get(info["distro"], ("unknown", "unknown"))
        if pf == "unknown":
            if tree.exists("/var/lib/dpkg/status"):
                pf, pm = "deb", "apt"
            elif tree.exists("/var/lib/rpm") or tree.exists("/usr/lib/sysimage/rpm"):
                pf, pm = "rpm", "unknown"
        if info["distro"] in ("rhel", "centos") and info["major_version"] and info["major_version"] < 8:
            pm = "yum"
        if info["distro"] == "fedora" and info["major_version"] and info["major_version"] < 22:
            pm = "yum"
        info["package_format"], info["package_management"] = pf, pm
        info["osinfo"] = self._osinfo(info)
        self._fstab(dev, tree, info)
        return info

    def _hostname(self, tree) -> str:
        for path in ("/etc/hostname", "/etc/HOSTNAME"):
            text = self._read(tree, path, limit=64 << 10, warn=False)
            if text:
                for line in text.splitlines():
                    line = line.strip()
                    if line and not line.startswith("#"):
                        return line
        text = self._read(tree, "/etc/sysconfig/network", limit=64 << 10, warn=False)
        if text:
            val = parse_os_release(text).get("HOSTNAME")
            if val:
                return val
        return "unknown"

    def _arch(self, tree, warnings) -> str:
        for path in ("/bin/bash", "/bin/ls", "/bin/echo", "/bin/rm", "/bin/sh", "/usr/bin/bash", "/usr/bin/ls"):
            try:
                if not tree.is_kind(path, "f"):
                    continue
                head = b"".join(tree.iter_read(path, 0, 64))
            except VshError as e:
                warnings.append(f"{path}: cannot be read: {e}")
                continue
            arch = elf_arch(head)
            if arch:
                return arch
        return "unknown"

    @staticmethod
    def _osinfo(info) -> str:
        d, ma, mi = info["distro"], info["major_version"], info["minor_version"]
        if d == "debian" and ma:
            return f"debian{ma}"
        if d == "ubuntu" and ma:
            return f"ubuntu{ma}.{mi:02d}"
        if d in ("fedora",) and ma:
            return f"fedora{ma}"
        if d in ("rhel", "centos", "rocky", "almalinux") and ma:
            return f"{d}{ma}.{mi}" if d != "centos" or ma < 8 else f"centos{ma}"
        if d == "alpinelinux" and ma:
            return f"alpinelinux{ma}.{mi}"
        if d == "archlinux":
            return "archlinux"
        return "unknown"

    # fstab
    def resolve_spec(self, spec: str, root: str) -> str | None:
        vols = self.volumes
        for prefix, key in (("UUID=", "UUID"), ("LABEL=", "LABEL"), ("PARTUUID=", "PARTUUID"),
                            ("PARTLABEL=", "PARTLABEL"), ("/dev/disk/by-uuid/", "UUID"),
                            ("/dev/disk/by-label/", "LABEL"), ("/dev/disk/by-partuuid/", "PARTUUID"),
                            ("/dev/disk/by-partlabel/", "PARTLABEL")):
            if spec.startswith(prefix):
                val = spec[len(prefix):].strip('"')
                dev = vols.find_by(key, val)
                return dev.name if dev else None
        if spec == "/dev/root":
            return root
        if spec.startswith("/dev/"):
            try:
                return vols.get(spec).name
            except VshError:
                m = re.fullmatch(r"/dev/mapper/(.+)", spec)
                if m:
                    for d in vols.devices.values():
                        if d.kind == "luks" and d.name == spec:
                            return d.name
                return None
        return None

    def _fstab(self, root: str, tree, info) -> None:
        text = self._read(tree, "/etc/fstab", limit=1 << 20)
        if text is None:
            return
        mps = {"/": root}
        fss = [root]
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            f = line.split()
            if len(f) < 2:
                info["warnings"].append(f"/etc/fstab line {n}: too few fields: {escape(line)}")
                continue
            spec, mp = _unescape_fstab(f[0]), _unescape_fstab(f[1])
            vfstype = f[2] if len(f) > 2 else ""
            if spec in _NON_DEVICES or vfstype in _NON_DEVICES or spec.startswith(("/dev/fd", "/dev/cdrom", "/dev/sr")):
                continue
            if vfstype == "swap" or mp in ("none", "swap"):
                dev = self.resolve_spec(spec, root)
                if dev and dev not in fss:
                    fss.append(dev)
                continue
            if not mp.startswith("/"):
                info["warnings"].append(f"/etc/fstab line {n}: mountpoint is not an absolute path: {escape(line)}")
                continue
            mp = "/" + "/".join(p for p in mp.split("/") if p)
            if any(mp == p or mp.startswith(p + "/") for p in _IGNORED_MP):
                continue
            if ":" in spec and not spec.startswith("/"):
                continue  # network filesystem
            dev = self.resolve_spec(spec, root)
            if dev is None:
                info["warnings"].append(f"/etc/fstab line {n}: {escape(spec)} does not match any device")
                continue
            if mp == "/" and dev != root:
                info["warnings"].append(f"/etc/fstab line {n}: / is {escape(spec)}, not the inspected root {root}")
                continue
            mps[mp] = dev
            if dev not in fss:
                fss.append(dev)
        info["mountpoints"] = mps
        info["filesystems"] = fss

    # applications
    def mount_os(self, root: str) -> MountTree:
        """A tree with the OS's filesystems at their mountpoints (best effort)."""
        info = self.oses[root]
        tree = MountTree()
        for mp, dev in sorted(info["mountpoints"].items(), key=lambda kv: (len(kv[0]), kv[0])):
            fs = self.open_fs(dev)
            if fs is None:
                continue
            if any(f is fs for f in tree.mounts.values()):
                continue
            try:
                tree.mount(fs, mp)
            except VshError as e:
                self._warn(f"{dev}: cannot be mounted on {mp}: {e}")
        return tree

    def list_applications(self, root: str) -> list[dict]:
        info = self.oses[root]
        tree = self.mount_os(root)
        if info["package_format"] == "deb" or tree.exists("/var/lib/dpkg/status"):
            text = self._read(tree, "/var/lib/dpkg/status", limit=256 << 20)
            return parse_dpkg_status(text) if text else []
        if info["package_format"] == "rpm":
            return self._rpm_apps(tree)
        return []

    def _rpm_apps(self, tree) -> list[dict]:
        import shutil
        import subprocess
        import tempfile

        dbdir = next((p for p in ("/usr/lib/sysimage/rpm", "/var/lib/rpm") if tree.is_kind(p, "d")), None)
        if dbdir is None:
            return []
        rpm = shutil.which("rpm")
        if rpm is None:
            self._warn("the guest uses rpm, but the host has no rpm tool to read its database (Debian package rpm)")
            return []
        with tempfile.TemporaryDirectory(prefix="vsh-rpmdb-") as tmp:
            try:
                for name in tree.listdir(dbdir):
                    p = f"{dbdir}/{name}"
                    if tree.is_kind(p, "f", follow=False) and safe_name(name):
                        with open(os.path.join(tmp, name), "wb") as out:
                            tree.copy_to_fd(p, out.fileno())
                fmt = "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\t%{SUMMARY}\\n"
                res = subprocess.run([rpm, "--dbpath", tmp, "-qa", "--qf", fmt], capture_output=True,
                                     timeout=120, stdin=subprocess.DEVNULL)
            except (VshError, OSError, subprocess.TimeoutExpired) as e:
                self._warn(f"rpm database: cannot be read: {e}")
                return []
        apps = []
        for line in res.stdout.decode("utf-8", "replace").splitlines():
            f = line.split("\t")
            if len(f) >= 5:
                apps.append({"name": f[0], "epoch": int(f[1]) if f[1].isdigit() else 0, "version": f[2],
                             "release": f[3], "arch": f[4] if f[4] != "(none)" else "",
                             "source": f[0], "summary": f[5] if len(f) > 5 else ""})
        if not apps and res.returncode != 0:
            self._warn(f"rpm database: rpm failed: {res.stderr.decode(errors='replace').strip()[:200]}")
        apps.sort(key=lambda a: a["name"])
        return apps


# --- mountpoints in mounting order ---------------------------------------------------


def sorted_mountpoints(mps: dict) -> list[tuple[str, str]]:
    return sorted(mps.items(), key=lambda kv: (len(kv[0]), kv[0]))
