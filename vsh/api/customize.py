"""virt-customize's operations, composed of a guest-disk session's write methods.

:meth:`Customize.customize` runs a list of ``(operation, argument)`` steps, named and written
as virt-customize's options (``("hostname", "web1")``, ``("root-password", "password:x")``,
``("ssh-inject", "root:file:/path/key.pub")`` ...), in order, on the operating system the
session has mounted (``mount_inspected``), then sets a random seed and fills an empty
/etc/machine-id, as virt-customize does. It works on any driver: it only calls the
session's own read and write methods.
"""

from __future__ import annotations

import os
import secrets

from vsh.core.errors import InvalidArgument, NotFound, VshError

OPERATIONS = ("hostname", "timezone", "mkdir", "write", "append-line", "upload", "copy-in", "delete", "chmod",
              "link", "root-password", "password", "ssh-inject", "update", "install", "firstboot",
              "firstboot-command", "run-command")
# the guest's package manager (inspection's package-management): (install, upgrade everything); the
# index refresh before them is apt's alone
PACKAGERS = {
    "apt": ("apt-get $o install {pkgs}", "apt-get $o dist-upgrade"),
    "dnf": ("dnf -y install {pkgs}", "dnf -y --best upgrade"),
    "yum": ("yum -y install {pkgs}", "yum -y update"),
    "zypper": ("zypper -n in -l {pkgs}", "zypper -n update -l"),
    "apk": ("apk add {pkgs}", "apk update && apk upgrade"),
    "pacman": ("pacman -S --noconfirm {pkgs}", "pacman -Syu --noconfirm")}
APT = ("export DEBIAN_FRONTEND=noninteractive; "
       "o='-q -y -o Dpkg::Options::=--force-confnew'; ")
SEED_FILES = ("/var/lib/random-seed", "/var/lib/urandom/random-seed", "/var/lib/systemd/random-seed")
FIRSTBOOT_DIR = "/usr/lib/virt-sysprep"
FIRSTBOOT_UNIT = "/etc/systemd/system/guestfs-firstboot.service"
# operations that are one call of the session on their argument: (message, method, keywords)
ONE_CALL = {"mkdir": ("Making directory", "mkdir", {"parents": True}),
            "delete": ("Deleting", "rm", {"recursive": True})}


def split(arg: str, what: str, parts: int = 2) -> list[str]:
    """``A:B`` (``parts`` fields, the last one taking the rest)."""
    out = arg.split(":", parts - 1)
    if len(out) != parts or not all(out[:-1]):
        raise InvalidArgument(f"--{what}: expected {':'.join(['X'] * parts)}, got {arg!r}")
    return out


def password_of(selector: str, what: str) -> tuple[str | None, str | None]:
    """(password or None for a locked/disabled account, the message for a random one)."""
    kind, _, value = selector.partition(":")
    if kind == "password" and _:
        return value, None
    if kind == "file" and value:
        try:
            with open(value, encoding="utf-8") as f:
                return f.readline().rstrip("\n"), None
        except OSError as e:
            raise VshError(f"--{what}: {value}: {e.strerror}") from None
    if kind == "random":
        pw = "".join(secrets.choice("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(16))
        return pw, pw
    if kind == "disabled":
        return None, None
    raise InvalidArgument(f"--{what}: unknown password selector {selector!r} (password:, file:, random, disabled)")


def sha512_crypt(password: str) -> str:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))


def check_steps(steps: list[tuple[str, str]]) -> None:
    """InvalidArgument for an unknown operation or a malformed argument, before any disk is opened."""
    for op, arg in steps:
        if op not in OPERATIONS:
            raise InvalidArgument(f"unknown customize operation {op!r}")
        if op in ("write", "append-line", "upload", "copy-in", "chmod", "password"):
            arg = split(arg, op)[1]
        if op in ("root-password", "password") and arg.partition(":")[0] not in ("password", "file", "random",
                                                                                "disabled"):
            raise InvalidArgument(f"--{op}: unknown password selector {arg!r} (password:, file:, random, disabled)")


class Customize:
    """virt-customize on a session (mixed into :class:`vsh.api.guestdisks.GuestDisks`)."""

    def customize(self, steps: list[tuple[str, str]]) -> list[str]:
        """Run virt-customize's ``steps`` (see the module docstring) in order on the mounted
        operating system; returns the progress messages. InvalidArgument for an unknown
        operation or a malformed argument, VshError with the guest's reason otherwise."""
        msgs: list[str] = []
        check_steps(steps)
        for op, arg in steps:
            if op in ONE_CALL:
                text, method, kw = ONE_CALL[op]
                msgs.append(f"{text}: {arg}")
                getattr(self, method)(arg, **kw)
            else:
                getattr(self, "_c_" + op.replace("-", "_"))(arg, msgs)
        msgs.append("Setting a random seed")
        seeds = [p for p in SEED_FILES if self.is_file(p)] or \
            [p for p in SEED_FILES[2:] if self.is_dir(os.path.dirname(p))]
        for path in seeds:
            self.write(path, os.urandom(512))
            self.chmod(0o600, path)
        if self.is_file("/etc/machine-id", follow=True) and not self.cat("/etc/machine-id").strip():
            msgs.append("Setting the machine ID in /etc/machine-id")
            self.write("/etc/machine-id", secrets.token_hex(16).encode() + b"\n")
        msgs.append("Finishing off")
        return msgs

    def _c_hostname(self, name, msgs):
        msgs.append(f"Setting the hostname: {name}")
        old = self.cat("/etc/hostname").decode("utf-8", "replace").strip() if self.is_file("/etc/hostname") else ""
        self.write("/etc/hostname", name.encode() + b"\n")
        if old and self.is_file("/etc/hosts"):
            lines = self.cat("/etc/hosts").decode("utf-8", "surrogateescape").split("\n")
            new = [" ".join(name if w == old else w for w in ln.split()) if old in ln.split() else ln for ln in lines]
            self.write("/etc/hosts", "\n".join(new).encode("utf-8", "surrogateescape"))

    def _c_timezone(self, tz, msgs):
        msgs.append(f"Setting the timezone: {tz}")
        zone = "/usr/share/zoneinfo/" + tz
        if ".." in tz.split("/") or not self.is_file(zone, follow=True):
            raise VshError(f"--timezone: {tz}: no such timezone in the guest")
        self.ln_s(zone, "/etc/localtime", force=True)

    def _c_write(self, arg, msgs):
        path, content = split(arg, "write")
        msgs.append(f"Writing: {path}")
        self.write(path, content.encode("utf-8", "surrogateescape"))

    def _c_append_line(self, arg, msgs):
        path, line = split(arg, "append-line")
        msgs.append(f"Appending line to {path}")
        if not self.exists(path):
            self.write(path, line.encode() + b"\n")
            return
        old = self.cat(path)
        eol = b"\r\n" if b"\r\n" in old else b"\n"
        self.write(path, (b"" if not old or old.endswith(eol) else eol) + line.encode() + eol, append=True)

    def _c_upload(self, arg, msgs):
        src, dest = split(arg, "upload")
        msgs.append(f"Uploading: {src} to {dest}")
        if self.is_dir(dest, follow=True):
            dest = dest.rstrip("/") + "/" + os.path.basename(src)
        self.upload(src, dest)

    def _c_copy_in(self, arg, msgs):
        src, dest = split(arg, "copy-in")
        msgs.append(f"Copying: {src} to {dest}")
        self.copy_in(src, dest)

    def _c_chmod(self, arg, msgs):
        mode, path = split(arg, "chmod")
        msgs.append(f"Changing permissions of {path} to {mode}")
        try:
            self.chmod(int(mode, 8), path)
        except ValueError:
            raise InvalidArgument(f"--chmod: {mode!r} is not an octal mode") from None

    def _c_link(self, arg, msgs):
        target, *links = arg.split(":")
        if not target or not links:
            raise InvalidArgument(f"--link: expected TARGET:LINK[:LINK...], got {arg!r}")
        for link in links:
            msgs.append(f"Linking: {link} -> {target}")
            self.ln_s(target, link, force=True)

    def _c_root_password(self, selector, msgs):
        self._c_password("root:" + selector, msgs)

    def _c_password(self, arg, msgs):
        user, selector = split(arg, "password")
        pw, shown = password_of(selector, "password")
        msgs.append("Setting passwords" if shown is None else f"Setting random password of {user} to {shown}")
        lines = self.cat("/etc/shadow").decode("utf-8", "surrogateescape").split("\n")
        for i, ln in enumerate(lines):
            fields = ln.split(":")
            if fields[0] == user and len(fields) > 2:
                fields[1] = "*" if pw is None else sha512_crypt(pw)
                lines[i] = ":".join(fields)
                break
        else:
            raise NotFound(f"--password: user {user} is not in the guest's /etc/shadow")
        self.write("/etc/shadow", "\n".join(lines).encode("utf-8", "surrogateescape"))

    def _user(self, user: str) -> tuple[int, int, str]:
        for ln in self.cat("/etc/passwd").decode("utf-8", "replace").splitlines():
            f = ln.split(":")
            if f[0] == user and len(f) >= 6:
                return int(f[2]), int(f[3]), f[5]
        raise NotFound(f"--ssh-inject: user {user} is not in the guest's /etc/passwd")

    def _c_ssh_inject(self, arg, msgs):
        user, _, selector = arg.partition(":")
        kind, _, value = selector.partition(":")
        if kind == "string" and value:
            key = value
        elif kind == "file" and value:
            try:
                with open(value, encoding="utf-8") as f:
                    key = f.read().strip()
            except OSError as e:
                raise VshError(f"--ssh-inject: {value}: {e.strerror}") from None
        else:
            raise InvalidArgument(f"--ssh-inject: expected USER:file:KEYFILE or USER:string:KEY, got {arg!r}")
        msgs.append(f"SSH key inject: {user}")
        uid, gid, home = self._user(user)
        ssh = home.rstrip("/") + "/.ssh"
        if not self.is_dir(ssh, follow=True):
            self.mkdir(ssh, mode=0o700)
            self.chown(uid, gid, ssh)
        keys = ssh + "/authorized_keys"
        old = self.cat(keys) if self.exists(keys) else b""
        if key.encode() not in old.splitlines():
            self.write(keys, (b"" if not old or old.endswith(b"\n") else b"\n") + key.encode() + b"\n", append=True)
        self.chmod(0o600, keys)
        self.chown(uid, gid, keys)

    def _packages(self, op: str, pkgs: list[str], msgs) -> None:
        """--install / --update with the guest's own package manager, inside the guest."""
        import shlex

        roots = self.inspect_get_roots()
        manager = self.inspect_get(roots[0], "package-management") if roots else "unknown"
        if manager not in PACKAGERS:
            raise VshError(f"--{op}: no package manager known for this guest ({manager})")
        install, upgrade = PACKAGERS[manager]
        network = self.get_network()
        cmd = (install.format(pkgs=" ".join(shlex.quote(p) for p in pkgs)) if op == "install" else upgrade)
        if manager == "apt":
            # without the network only local sources (file:, a mounted medium) can be refreshed
            cmd = APT + ("apt-get $o update && " if network else "apt-get $o update >/dev/null 2>&1; ") + cmd
        elif not network and manager in ("dnf", "yum"):
            cmd = cmd.replace(" -y ", " -y --cacheonly ", 1)
        r = self.sh(cmd)
        if r["status"]:
            tail = r["output"].strip().splitlines()[-3:]
            hint = "" if network else " (no network: only packages from local sources resolve; --network gives one)"
            raise VshError(f"--{op}: {manager} exited with status {r['status']}{hint}", *tail)

    def _c_install(self, arg, msgs):
        pkgs = [p for p in arg.split(",") if p]
        if not pkgs or any(p.startswith("-") for p in pkgs):
            raise InvalidArgument(f"--install: expected PKG[,PKG...], got {arg!r}")
        msgs.append(f"Installing packages: {' '.join(pkgs)}")
        self._packages("install", pkgs, msgs)

    def _c_update(self, arg, msgs):
        msgs.append("Updating packages")
        self._packages("update", [], msgs)

    def _firstboot(self, name: str, script: bytes) -> None:
        scripts = FIRSTBOOT_DIR + "/scripts"
        if not self.is_file(FIRSTBOOT_DIR + "/firstboot.sh"):
            self.mkdir(scripts, parents=True)
            self.write(FIRSTBOOT_DIR + "/firstboot.sh", (
                "#!/bin/sh -\n"
                f"d={scripts}\nlog=/root/virt-sysprep-firstboot.log\n"
                "for f in $(ls \"$d\" 2>/dev/null | sort); do\n"
                "  echo \"=== Running $f ===\" >>$log\n"
                "  \"$d/$f\" >>$log 2>&1 && rm -f \"$d/$f\"\n"
                "done\n").encode())
            self.chmod(0o755, FIRSTBOOT_DIR + "/firstboot.sh")
            self.write(FIRSTBOOT_UNIT, (
                "[Unit]\nDescription=firstboot scripts (virt-customize --firstboot, written by vsh)\n"
                "After=network.target\nConditionDirectoryNotEmpty=" + scripts + "\n\n"
                "[Service]\nType=oneshot\nExecStart=" + FIRSTBOOT_DIR + "/firstboot.sh\n"
                "RemainAfterExit=yes\nTimeoutSec=0\n\n[Install]\nWantedBy=multi-user.target\n").encode())
            self.mkdir("/etc/systemd/system/multi-user.target.wants", parents=True)
            self.ln_s(FIRSTBOOT_UNIT, "/etc/systemd/system/multi-user.target.wants/guestfs-firstboot.service",
                      force=True)
        n = len(self.ls(scripts)) + 1
        path = f"{scripts}/{n:04d}-{name}"
        self.write(path, script)
        self.chmod(0o755, path)

    def _c_firstboot(self, src, msgs):
        msgs.append(f"Installing firstboot script: {src}")
        try:
            with open(src, "rb") as f:
                data = f.read()
        except OSError as e:
            raise VshError(f"--firstboot: {src}: {e.strerror}") from None
        self._firstboot(os.path.basename(src).replace(" ", "-") or "script", data)

    def _c_firstboot_command(self, cmd, msgs):
        msgs.append(f"Installing firstboot command: {cmd}")
        self._firstboot("command", b"#!/bin/sh\n" + cmd.encode() + b"\n")

    def _c_run_command(self, cmd, msgs):
        msgs.append(f"Running: {cmd}")
        r = self.sh(cmd)
        if r["status"]:
            tail = r["output"].strip().splitlines()[-3:]
            raise VshError(f"run_command: {cmd}: command exited with an error (status {r['status']})", *tail)
