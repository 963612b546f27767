"""The guestfish-style commands (vsh/commands/guest.py) through the real shell dispatcher."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from vsh.registry import Registry, registry
from vsh.shell import Context, Shell


class BinOut(io.TextIOWrapper):
    def __init__(self):
        super().__init__(io.BytesIO(), encoding="utf-8", errors="surrogateescape")

    def value(self) -> bytes:
        self.flush()
        return self.buffer.getvalue()


def make_shell(options=None):
    reg = Registry(use_index=False)
    reg._load_module("vsh.commands.guest")
    ctx = Context(out=BinOut(), err=io.StringIO(), quiet=True)
    if options:
        ctx.state["guest.options"] = {"add": [], "domains": [], "inspector": False, "ro": True, **options}
    return Shell(ctx, reg), ctx


def run(shell, ctx, *words):
    ctx.out.seek(0)
    ctx.out.truncate()
    ctx.out.buffer.seek(0)
    ctx.out.buffer.truncate()
    ctx.err.seek(0)
    ctx.err.truncate()
    status = shell.execute(list(words))
    return status, ctx.out.value().decode("utf-8", "surrogateescape"), ctx.err.getvalue()


def test_single_shot_style_inspector(images):
    shell, ctx = make_shell({"add": [(images.path("gpt_qcow2"), "qcow2")], "inspector": True})
    exp = images["gpt_qcow2"]["os"]
    assert run(shell, ctx, "cat", "/etc/hostname") == (0, exp["hostname"] + "\n", "")
    status, out, _ = run(shell, ctx, "inspect-get-mountpoints", "/dev/sda2")
    assert out == "/: /dev/sda2\n/boot/efi: /dev/sda1\n"
    assert run(shell, ctx, "inspect-get-product-name", "/dev/sda2")[1] == exp["product_name"] + "\n"
    assert run(shell, ctx, "is-dir", "/etc")[1] == "true\n"
    assert run(shell, ctx, "exists", "/nope")[1] == "false\n"
    status, out, err = run(shell, ctx, "cat", "/nope")
    assert status == 1 and err.startswith("error: /nope: no such file")
    status, out, _ = run(shell, ctx, "ll", "/etc")
    assert "os-release -> ../usr/lib/os-release" in out
    status, out, _ = run(shell, ctx, "list-filesystems", "--json")
    assert json.loads(out) == {"/dev/sda1": "vfat", "/dev/sda2": "ext4"}
    status, out, _ = run(shell, ctx, "df")
    assert out.splitlines()[0].startswith("Filesystem") and "/boot/efi" in out


def test_interactive_style(images, tmp_path):
    shell, ctx = make_shell()
    assert run(shell, ctx, "add", images.path("mbr"), "--format", "raw")[0] == 0
    assert run(shell, ctx, "run")[0] == 0
    assert run(shell, ctx, "list-partitions")[1].split() == ["/dev/sda1", "/dev/sda2", "/dev/sda5", "/dev/sda6"]
    status, out, _ = run(shell, ctx, "part-list", "/dev/sda")
    assert "part_num: 5" in out and out.startswith("[0] = {")
    assert run(shell, ctx, "mount-ro", "/dev/sda5", "/")[0] == 0
    rnd = images["mbr"]["random"]
    assert run(shell, ctx, "checksum", "sha256", rnd["path"])[1] == rnd["sha256"] + "\n"
    out_file = tmp_path / "r.bin"
    assert run(shell, ctx, "download", rnd["path"], str(out_file))[0] == 0
    assert out_file.stat().st_size == rnd["size"]
    status, out, _ = run(shell, ctx, "download", "/HELLO.TXT", "-")
    assert out == "hello from fat32\n"
    status, out, _ = run(shell, ctx, "find", "/deep")
    assert out.splitlines()[-1] == "a/b/c/d/e/f/g/h/deep.txt"
    assert run(shell, ctx, "umount-all")[0] == 0
    status, out, err = run(shell, ctx, "mount", "/dev/sda6", "/")
    assert status == 1 and "swap" in err


def test_escaping_of_guest_strings(images, tmp_path):
    # a file name and content with terminal escapes, built into a small ext4 image
    import shutil

    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed")
    src = tmp_path / "src"
    src.mkdir()
    (src / "evil\x1b[31mname").write_bytes(b"red\x1b[31m text\x07\n\ttab\n")
    img = tmp_path / "e.img"
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-d", str(src), str(img)], check=True)
    shell, ctx = make_shell({"add": [(str(img), "raw")]})
    run(shell, ctx, "mount-ro", "/dev/sda", "/")
    status, out, _ = run(shell, ctx, "ls", "/")
    assert "evil\\x1b[31mname" in out and "\x1b" not in out
    status, out, _ = run(shell, ctx, "cat", "/evil\x1b[31mname")
    assert out == "red\\x1b[31m text\\x07\n\ttab\n"
    status, out, _ = run(shell, ctx, "cat", "--raw", "/evil\x1b[31mname")
    assert out == "red\x1b[31m text\x07\n\ttab\n"


def test_inspect_command_xml_and_json(images):
    shell, ctx = make_shell()
    status, out, err = run(shell, ctx, "inspect", images.path("lvm"), "--format", "raw")
    assert status == 0, err
    assert "<root>/dev/vshvg/root</root>" in out
    assert '<mountpoint dev="/dev/vshvg/data">/srv</mountpoint>' in out
    status, out, err = run(shell, ctx, "inspect", images.path("gpt"), "--format", "raw", "--json",
                           "--no-applications")
    data = json.loads(out)
    assert data["operatingsystems"][0]["hostname"] == images["gpt"]["os"]["hostname"]
    assert "applications" not in data["operatingsystems"][0]
    status, out, err = run(shell, ctx, "inspect", images.path("xfs"), "--format", "raw")
    assert status == 1 and "no operating system" in err


def test_inspect_luks_with_key(images):
    m = images["luks"]
    shell, ctx = make_shell({"add": [(images.path("luks"), "raw")]})
    status, out, err = run(shell, ctx, "inspect", "--key", f"/dev/sda:{m['key']}")
    assert status == 1 and "no operating system" in err  # unlocked, but only files inside
    g = ctx.state["guest.session"]
    assert f"/dev/mapper/luks-{m['luks_uuid']}" in g.list_filesystems()


def test_add_domain(images, define, tmp_path):
    disk = images.path("gpt_qcow2")
    define("gvm", devices=f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                          f"<source file='{disk}'/><target dev='vda' bus='virtio'/></disk>")
    shell, ctx = make_shell({"domains": ["gvm"], "inspector": True})
    assert run(shell, ctx, "cat", "/etc/hostname")[1] == images["gpt_qcow2"]["os"]["hostname"] + "\n"
    shell, ctx = make_shell()
    status, out, err = run(shell, ctx, "inspect", "--domain", "gvm", "--json", "--no-applications")
    assert status == 0, err
    assert json.loads(out)["operatingsystems"][0]["root"] == "/dev/sda2"


def test_nothing_added(images):
    shell, ctx = make_shell()
    status, out, err = run(shell, ctx, "list-devices")
    assert status == 1 and "no disk has been added" in err


def test_cli_single_shot(images):
    """The real entry point, once the guest module is registered (pyproject entry point)."""
    if registry().get("inspect-os") is None:
        pytest.skip("vsh.commands.guest is not registered as a vsh.commands entry point yet")
    r = subprocess.run([sys.executable, "-m", "vsh", "-a", images.path("gpt_qcow2"), "--format", "qcow2",
                        "-i", "cat", "/etc/hostname"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(images["gpt_qcow2"]["os"]["hostname"] + "\n")


def _vsh(*args):
    return subprocess.run([sys.executable, "-m", "vsh", *args], capture_output=True, text=True, timeout=60)


def test_cli_mount_options_like_guestfish(images):
    """-m DEV[:MOUNTPOINT] mounts read-only, parents first, as guestfish -m does."""
    img = images.path("gpt_qcow2")
    r = _vsh("-a", img, "--format", "qcow2", "-m", "/dev/sda1:/boot/efi", "-m", "/dev/sda2",
             "cat /etc/hostname; mountpoints")
    assert r.returncode == 0, r.stderr
    host = images["gpt_qcow2"]["os"]["hostname"]
    assert r.stdout.startswith(host + "\n")  # guestfish prints no blank line after a command
    assert "/dev/sda1: /boot/efi" in r.stdout and "/dev/sda2: /" in r.stdout


@pytest.mark.parametrize("mount,message", [("sda2", "with a /dev/ device"), ("/dev/sdz9", "no such device")])
def test_cli_mount_errors(images, mount, message):
    r = _vsh("-a", images.path("gpt_qcow2"), "--format", "qcow2", "-m", mount, "ls", "/")
    assert r.returncode == 1 and message in r.stderr and r.stdout == ""


def test_luks_open_reads_the_key_from_stdin(images):
    m = images["luks"]
    r = subprocess.run([sys.executable, "-m", "vsh", "--ro", "-a", images.path("luks"), "--format", "raw",
                        "luks-open /dev/sda - cr; mount-ro /dev/mapper/cr /; cat /hello.txt"],
                       input=m["key"] + "\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "/dev/mapper/cr\nhello from inside LUKS\n"
