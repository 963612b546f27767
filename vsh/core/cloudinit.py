"""cloud-init NoCloud seed images.

A NoCloud seed is an ISO 9660 image whose volume id is ``cidata`` and whose root
holds ``user-data``, ``meta-data`` and, optionally, ``network-config``
(cloud-init's documented layout, what ``cloud-localds`` writes). The names have
dashes and lower case, which plain ISO 9660 cannot hold, so the image carries
Rock Ridge and Joliet names as well; Linux's isofs reads the Rock Ridge ones.

The image is built in memory with pycdlib (pure Python, LGPL-2.1); the caller
writes it where it belongs. :func:`parse_cloud_init` reads ``vsh install
--cloud-init``'s option into the files of a seed.
"""

from __future__ import annotations

import io
import re
import secrets
from collections import namedtuple

from vsh.core.errors import InvalidArgument, Unsupported

VOLUME_ID = "cidata"
# (ISO 9660 level-1 name, the real name)
_FILES = (("USERDATA.;1", "user-data"), ("METADATA.;1", "meta-data"), ("NETWORKC.;1", "network-config"),
          ("VENDORDA.;1", "vendor-data"))


def hostname_for(name: str) -> str:
    """A valid host name (RFC 1123 label) made from a domain name."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return label or "localhost"


def meta_data(instance_id: str, hostname: str) -> bytes:
    return f"instance-id: {instance_id}\nlocal-hostname: {hostname}\n".encode()


def generate_password(length: int = 16) -> str:
    alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def user_data(root_ssh_keys: list[str] | None = None, root_password: str | None = None, user: str = "root",
              expire: bool = True) -> bytes:
    """A ``#cloud-config`` document: authorized keys and/or a password (expired at first login unless
    not ``expire``) for root, or for ``user``, an account made with sudo rights next to the image's
    default one."""
    lines = ["#cloud-config"]
    if user != "root":
        lines += ["users:", "  - default", "  - name: " + _yaml_str(user), "    shell: /bin/bash",
                  '    sudo: "ALL=(ALL) NOPASSWD:ALL"', "    lock_passwd: " + ("false" if root_password else "true")]
        if root_ssh_keys:
            lines.append("    ssh_authorized_keys:")
            lines += ["      - " + _yaml_str(key) for key in root_ssh_keys]
    elif root_ssh_keys:
        lines += ["disable_root: false", "users:", "  - name: root", "    lock_passwd: false" if root_password
                  else "    lock_passwd: true", "    ssh_authorized_keys:"]
        for key in root_ssh_keys:
            lines.append("      - " + _yaml_str(key))
    if root_password:
        lines += ["chpasswd:", "  expire: " + ("true" if expire else "false"), "  users:",
                  "    - name: " + (_yaml_str(user) if user != "root" else "root"),
                  "      password: " + _yaml_str(root_password), "      type: text"]
    return ("\n".join(lines) + "\n").encode()


def _yaml_str(text: str) -> str:
    """A YAML double-quoted scalar (keys and passwords may hold anything printable)."""
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + out + '"'


def ssh_keys_from(data: bytes, path: str) -> list[str]:
    """The public keys in an authorized_keys-style file; refuses what is not one."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(f"'{path}' is not a text file of SSH public keys") from None
    keys = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise InvalidArgument(f"'{path}' holds no SSH public key")
    for key in keys:
        if "PRIVATE KEY" in key:
            raise InvalidArgument(f"'{path}' is a private key; give the public one (.pub)")
        if not re.match(r"(ssh-|ecdsa-|sk-)[\w@.-]+ [A-Za-z0-9+/=]+", key) and " ssh-" not in key \
                and " ecdsa-" not in key and " sk-" not in key:
            raise InvalidArgument(f"'{path}': '{key[:40]}' does not look like an SSH public key")
    return keys


def build_seed(files: dict[str, bytes]) -> bytes:
    """The seed ISO holding ``files`` (keys among user-data, meta-data, network-config, vendor-data)."""
    import pycdlib

    known = {real: iso for iso, real in _FILES}
    unknown = set(files) - set(known)
    if unknown:
        raise InvalidArgument(f"a NoCloud seed has no file {sorted(unknown)[0]!r}")
    for required in ("user-data", "meta-data"):
        if required not in files:
            raise InvalidArgument(f"a NoCloud seed needs {required}")
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, vol_ident=VOLUME_ID, sys_ident="LINUX", joliet=3, rock_ridge="1.09",
            app_ident_str="vsh")
    try:
        for iso_name, real in _FILES:
            if real not in files:
                continue
            data = files[real]
            iso.add_fp(io.BytesIO(data), len(data), "/" + iso_name, rr_name=real, joliet_path="/" + real,
                       file_mode=0o100444)
        out = io.BytesIO()
        iso.write_fp(out)
    finally:
        iso.close()
    return out.getvalue()


def read_seed(data: bytes) -> tuple[str, dict[str, bytes]]:
    """(volume id, {Rock Ridge name: content}) of a seed image (for checks and tests)."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        volid = iso.pvd.volume_identifier.decode().strip()
        out = {}
        for child in iso.list_children(iso_path="/"):
            if child.is_dot() or child.is_dotdot():
                continue
            name = child.rock_ridge.name().decode() if child.rock_ridge is not None else \
                child.file_identifier().decode()
            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, rr_path="/" + name)
            out[name] = buf.getvalue()
        return volid, out
    finally:
        iso.close()


CloudInit = namedtuple("CloudInit", "files password")


def parse_cloud_init(text: str | None, name: str, uuid: str, account: dict | None = None) -> CloudInit | None:
    """``--cloud-init user-data=F,meta-data=F[,network-config=F]`` or ``root-ssh-key=F`` /
    ``root-password-generate=on`` / ``root-password-file=F``: the seed's files, read from this host,
    and the password generated (None when none was asked for). ``account`` (the installer's
    ``cloud_account`` option: ``user``, ``password``, ``ssh_keys`` as text) gives the account, its
    password and keys directly instead of in files."""
    if text is None and not account:
        return None
    import os

    from vsh.core.inputfile import read_input_file
    from vsh.core.installopts import onoff, split_options, unknown_option

    files: dict[str, bytes] = {}
    keys: list[str] = []
    password = None
    generate = False
    read = lambda path: read_input_file(os.path.expanduser(path), limit=1024 * 1024)  # noqa: E731
    words = split_options(text, "--cloud-init") if text is not None else []
    if text is not None and text.strip().lower() in ("on", "yes", ""):
        words = [("root_password_generate", "on")]
    for key, value in words:
        if key in ("user_data", "meta_data", "network_config", "vendor_data"):
            fname = key.replace("_", "-")
            if fname in files:
                raise InvalidArgument(f"--cloud-init: {fname}= given twice")
            files[fname] = read(value)
        elif key in ("root_ssh_key", "ssh_key"):
            keys += ssh_keys_from(read(value), value)
        elif key == "root_password_generate":
            generate = onoff(value, "--cloud-init root-password-generate")
        elif key == "root_password_file":
            pw = read(value).decode(errors="replace").splitlines()
            if not pw or not pw[0]:
                raise InvalidArgument(f"--cloud-init: '{value}' holds no password on its first line")
            password = pw[0]
        elif key == "disable":
            raise Unsupported("--cloud-init disable=: the seed stays attached on purpose (so the domain "
                              "boots the same after a restart); disable cloud-init from user-data instead")
        else:
            raise unknown_option(key, value, "cloud-init", ("user-data=FILE", "meta-data=FILE",
                                                            "network-config=FILE", "root-ssh-key=FILE",
                                                            "root-password-generate=on", "root-password-file=FILE"))
    user, expire = "root", True
    if account:
        user = account.get("user") or "root"
        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user):
            raise InvalidArgument(f"cloud-init: '{user}' is not a valid user name (lower case letters, digits, _ and -)")
        if account.get("ssh_keys"):
            keys += ssh_keys_from(str(account["ssh_keys"]).encode(), "the ssh key field")
        if account.get("password"):
            if any(ord(c) < 32 or ord(c) == 127 for c in str(account["password"])):
                raise InvalidArgument("cloud-init: the password holds a control character")
            if password is not None or generate:
                raise InvalidArgument("cloud-init: give a password or ask for one to be generated, not both")
            password, expire = str(account["password"]), False
    generated = None
    if generate:
        if password is not None:
            raise InvalidArgument("--cloud-init: root-password-generate and root-password-file exclude each other")
        generated = password = generate_password()
    if "user-data" in files and (keys or password):
        raise InvalidArgument("--cloud-init: user-data= cannot be combined with root-ssh-key= or a root "
                              "password; put them in your user-data")
    if "user-data" not in files:
        if not keys and not password and account:
            raise InvalidArgument(f"cloud-init: give the account '{user}' a password or an ssh key")
        if not keys and not password:
            raise InvalidArgument("--cloud-init: give user-data=FILE (with meta-data=FILE), root-ssh-key=FILE "
                                  "or root-password-generate=on")
        files["user-data"] = user_data(keys, password, user, expire)
    if "meta-data" not in files:
        files["meta-data"] = meta_data(f"vsh-{uuid}", hostname_for(name))
    return CloudInit(files, generated)
