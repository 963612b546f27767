"""dom-fd-associate on a real guest: a batch hands vsh an open descriptor of a disk image whose
path in the XML does not even exist; the guest reads and writes the image through it (QEMU's fd
set, inherited through the supervisor)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import vmguest

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86_64")


def test_a_disk_opened_through_an_fd_group(tmp_path_factory):
    m, base, store, env = vmguest.module_store(tmp_path_factory, "fdgroup")
    image = base / "data.img"
    with open(image, "wb") as f:
        f.write(b"FDGROUP-MARKER\n")
        f.truncate(1 << 20)
    disk = ("<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
            f"<source file='{base}/not-there.img' fdgroup='data'/><target dev='vda' bus='virtio'/></disk>")
    xml = base / "fg.xml"
    xml.write_text(vmguest.guest_domain_xml("fg", m, disk))
    g = vmguest.Guest(store, "fg", env)
    g.vsh("define", xml)
    refused = g.vsh("start", "fg", check=False)
    assert refused.returncode == 1
    assert "file descriptor group 'data' was not associated with the domain" in refused.stderr

    fd = os.open(image, os.O_RDWR)
    try:
        proc = subprocess.run([sys.executable, "-m", "vsh", f"dom-fd-associate fg data {fd}; start fg"],
                              env=env, pass_fds=(fd,), capture_output=True, text=True, timeout=120)
    finally:
        os.close(fd)
    assert proc.returncode == 0, proc.stderr
    assert "Domain 'fg' started" in proc.stdout
    try:
        g.wait_log(m["ready_line"])
        fdsets = g.qmp("query-fdsets")
        assert [s["fdset-id"] for s in fdsets] == [1] and fdsets[0]["fds"][0]["opaque"] == "fdgroup-data"
        out = g.sh("dd if=/dev/vda bs=14 count=1 2>/dev/null; echo; "
                   "echo WRITTEN-BY-GUEST | dd of=/dev/vda bs=512 seek=1 conv=notrunc 2>/dev/null; sync")
        assert "FDGROUP-MARKER" in out.split("dd if=")[-1].split("\n", 1)[1], out
        with open(image, "rb") as f:
            f.seek(512)
            assert f.read(16) == b"WRITTEN-BY-GUES"[:15] + b"T"
        assert "fdgroup='data'" in g.xml().replace('"', "'")     # the live XML keeps the group
    finally:
        g.close_console()
        g.vsh("destroy", "fg", check=False)
