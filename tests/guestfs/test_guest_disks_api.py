"""The guest-disk API (conn.guest_disks()) on the cached test images: the methods the
commands do not reach one to one (inspect_get, head/tail with a count, stat without
following, read_chunks, the device names for completion, download, copy_out)."""

from __future__ import annotations

import hashlib
import os
import stat

from vsh import api


def test_guest_disks_api(images, vsh_env, tmp_path):
    exp = images["gpt_qcow2"]["os"]
    g = api.connect(vsh_env.uri).guest_disks()
    g.add_drive(images.path("gpt_qcow2"), "qcow2")
    g.launch()
    try:
        assert g.is_launched()
        assert {"/dev/sda", "/dev/sda1", "/dev/sda2"} <= set(g.list_device_names())
        root = g.mount_inspected()
        assert g.inspect_get_roots() == [root] == ["/dev/sda2"]
        assert g.inspect_get(root, "hostname") == exp["hostname"]
        assert g.inspect_get(root, "major-version") == exp["major_version"]
        assert g.inspect_get(root, "mountpoints") == exp["mountpoints"]
        assert g.mountpoints() == {"/": "/dev/sda2", "/boot/efi": "/dev/sda1"}

        data = g.cat("/etc/passwd")
        assert b"".join(g.read_chunks("/etc/passwd")) == data
        lines = data.decode().splitlines()
        assert g.head("/etc/passwd") == lines[:10]
        assert g.head("/etc/passwd", 2) == lines[:2]
        assert g.tail("/etc/passwd", 1) == lines[-1:]
        assert stat.S_ISLNK(g.stat("/etc/os-release", follow=False)["st_mode"])
        assert stat.S_ISREG(g.stat("/etc/os-release")["st_mode"])
        assert g.checksum("sha256", "/etc/passwd") == hashlib.sha256(data).hexdigest()

        dest = tmp_path / "passwd"
        assert g.download("/etc/passwd", str(dest)) == len(data)
        assert dest.read_bytes() == data
        assert g.copy_out("/etc/default", str(tmp_path)) == []
        assert os.path.isdir(tmp_path / "default")
        assert "/etc/passwd" in g.complete_path("/etc/passw")
    finally:
        g.close()
    assert not g.is_launched()
