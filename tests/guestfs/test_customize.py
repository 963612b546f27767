"""vsh customize (virt-customize) on a copy of the GPT ext4 Debian image (boots the appliance: VM lock)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

pytestmark = pytest.mark.vm
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REAL_CACHE = os.environ.get("VSH_CACHE_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vsh")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHZzaHRlc3RrZXlmb3JjdXN0b21pemU vsh@test"


def _vsh(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=ROOT, VSH_DEFAULT_URI=f"vsh:///session?root={tmp_path}/store",
               VSH_CACHE_DIR=REAL_CACHE)
    return subprocess.run([sys.executable, "-m", "vsh", *args], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=900)


def test_customize_hostname_password_key_files(images, tmp_path):
    disk = str(tmp_path / "gpt.img")
    subprocess.run(["cp", "--sparse=always", images.path("gpt"), disk], check=True)
    (tmp_path / "motd").write_text("uploaded motd\n")
    r = _vsh(tmp_path, "customize", "-a", disk, "--format", "raw", "--hostname", "custom1",
             "--root-password", "password:s3cret pass", "--ssh-inject", f"root:string:{KEY}",
             "--write", "/etc/vsh-written:written by vsh", "--append-line", "/etc/vsh-written:second line",
             "--upload", f"{tmp_path}/motd:/etc/motd", "--mkdir", "/srv/made/here", "--chmod", "0700:/srv/made",
             "--link", "/etc/hostname:/etc/hostname-link", "--timezone", "Europe/Paris",
             "--run-command", "echo ran-inside > /root/ran; id -u >> /root/ran",
             "--firstboot-command", "touch /root/firstboot-ran")
    assert r.returncode == 0, r.stderr
    assert "Setting the hostname: custom1" in r.stdout
    assert "Setting a random seed" in r.stdout

    def cat(path):
        out = _vsh(tmp_path, "--ro", "-a", disk, "-i", "cat", "--raw", path)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert cat("/etc/hostname") == "custom1\n"
    assert "custom1" in cat("/etc/hosts")
    shadow = dict((ln.split(":")[0], ln.split(":")[1]) for ln in cat("/etc/shadow").splitlines())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    assert shadow["root"].startswith("$6$")
    assert crypt.crypt("s3cret pass", shadow["root"]) == shadow["root"]
    assert cat("/root/.ssh/authorized_keys") == KEY + "\n"
    assert cat("/etc/vsh-written") == "written by vsh\nsecond line\n"
    assert cat("/etc/motd") == "uploaded motd\n"
    assert cat("/root/ran") == "ran-inside\n0\n"
    assert "touch /root/firstboot-ran" in "".join(
        cat(f"/usr/lib/virt-sysprep/scripts/{n}") for n in ["0001-command"])
    ll = _vsh(tmp_path, "--ro", "-a", disk, "-i", "readlink", "/etc/localtime").stdout
    assert ll.strip() == "/usr/share/zoneinfo/Europe/Paris"
    st = _vsh(tmp_path, "--ro", "-a", disk, "-i", "--json", "stat", "/root/.ssh/authorized_keys").stdout
    assert '"st_mode": 33152' in st.replace(" ", " ")          # 0100600
    # the root filesystem is clean
    part = tmp_path / "root.ext4"
    lst = _vsh(tmp_path, "--ro", "-a", disk, "--json", "part-list", "/dev/sda")
    import json

    p2 = [p for p in json.loads(lst.stdout) if p["part_num"] == 2][0]
    with open(disk, "rb") as f, open(part, "wb") as out:
        f.seek(p2["part_start"])
        out.write(f.read(p2["part_size"]))
    fsck = subprocess.run(["e2fsck", "-fn", str(part)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert fsck.returncode == 0, fsck.stdout


def test_customize_refuses_bad_selectors(images, tmp_path):
    disk = str(tmp_path / "xfs.img")
    subprocess.run(["cp", "--sparse=always", images.path("xfs"), disk], check=True)
    r = _vsh(tmp_path, "customize", "-a", disk, "--format", "raw", "--root-password", "plain")
    assert r.returncode != 0
    assert "unknown password selector" in r.stderr


def test_edit_with_an_expression(images, tmp_path):
    disk = str(tmp_path / "gpt.img")
    subprocess.run(["cp", "--sparse=always", images.path("gpt"), disk], check=True)
    r = _vsh(tmp_path, "--format", "raw", "-a", disk, "-i", "guest-edit", "-e", "s/^(.*)$/edited-$1/",
             "/etc/hostname", ":", "virt-edit", "-e", "s/edited/EDITED/", "/etc/hostname")
    assert r.returncode == 0, r.stderr
    out = _vsh(tmp_path, "--ro", "--format", "raw", "-a", disk, "-i", "cat", "/etc/hostname")
    assert out.stdout.startswith("EDITED-") and out.stdout.count("\n") == 1, out.stdout
    bad = _vsh(tmp_path, "--format", "raw", "-a", disk, "-i", "guest-edit", "-e", "s/(/x/", "/etc/hostname")
    assert bad.returncode != 0 and "-e:" in bad.stderr
