"""The appliance's saved state (boots the appliance: VM lock): restored appliances get the
host's clock and fresh randomness, a bad state file falls back to a cold boot, and disks
hot-added after a restore give the errors a cold start gave (image locks, wrong formats)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

pytestmark = pytest.mark.vm

REAL_CACHE = os.environ.get("VSH_CACHE_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vsh")


@pytest.fixture(autouse=True)
def _appliance_cache(monkeypatch):
    monkeypatch.setenv("VSH_CACHE_DIR", REAL_CACHE)


def _start(drives=()):
    from vsh.guestfs.appliance.vm import Appliance

    app = Appliance(list(drives))
    app.start()
    return app


def _sh(app, command: str) -> str:
    r, _ = app.call("tool", argv=["sh", "-c", command])
    assert r["status"] == 0, r
    return r["stdout"].strip()


def _saved_state(app) -> str | None:
    from vsh.guestfs.appliance import state

    return state.path_for(app.argv(app.proc.args[0], app.dir), app.dir, app.manifest["initrd"],
                          app.manifest["vmlinux"])


@pytest.fixture()
def saved():
    """The state file of the plain appliance (made by a first start when missing)."""
    app = _start()
    try:
        path = _saved_state(app)
    finally:
        app.close()
    assert os.path.exists(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    return path


def test_restored_appliances_draw_fresh_randomness_and_keep_the_hosts_time(saved):
    age = time.time() - os.stat(saved).st_mtime
    if age < 20:                # a state saved just now would show the right time unset
        time.sleep(20 - age)
    draws = []
    for _ in range(2):
        app = _start()
        try:
            assert app.restored == saved
            draws.append((_sh(app, "cat /proc/sys/kernel/random/uuid"), _sh(app, "od -An -tx1 -N16 /dev/urandom")))
            assert abs(int(_sh(app, "date +%s")) - time.time()) < 10
        finally:
            app.close()
    assert draws[0][0] != draws[1][0] and draws[0][1] != draws[1][1]


def test_a_file_written_after_a_restore_has_todays_mtime(saved, images, tmp_path):
    from vsh import api

    disk = str(tmp_path / "xfs.img")
    subprocess.run(["cp", "--sparse=always", images.path("xfs"), disk], check=True)
    conn = api.connect(f"vsh:///session?root={tmp_path}/store")
    try:
        s = conn.guest_disks(readonly=False)
        try:
            s.add_drive(disk, "raw")
            s.launch()
            s.mount("/dev/sda", "/")
            s.write("/stamped", b"now\n")
            assert s._app.restored == saved
        finally:
            s.close()
        s = conn.guest_disks(readonly=True)       # read back in-process, from the image
        try:
            s.add_drive(disk, "raw")
            s.launch()
            s.mount("/dev/sda", "/")
            assert abs(s.stat("/stamped")["st_mtime_sec"] - time.time()) < 60
        finally:
            s.close()
    finally:
        conn.close()


def test_a_corrupt_state_is_deleted_and_the_appliance_boots_cold(saved):
    with open(saved, "r+b") as f:
        f.seek(4096)
        f.write(b"\xa5" * 65536)
        f.truncate(1 << 20)
    app = _start()
    try:
        assert app.restored is None
        assert _sh(app, "echo alive") == "alive"
    finally:
        app.close()
    assert os.path.getsize(saved) > 1 << 20            # saved again, whole
    app = _start()
    try:
        assert app.restored == saved
    finally:
        app.close()


def test_a_disk_another_qemu_holds_is_refused_clearly_and_read_only_still_opens(saved, images, tmp_path):
    from vsh.guestfs.appliance.vm import ApplianceError

    disk = str(tmp_path / "held.img")
    subprocess.run(["cp", "--sparse=always", images.path("xfs"), disk], check=True)
    holder = subprocess.Popen(["qemu-system-x86_64", "-S", "-nodefaults", "-display", "none", "-M", "q35",
                               "-drive", f"file={disk},format=raw,if=none,id=h",
                               "-device", "virtio-blk-pci,drive=h"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):                    # until QEMU has the image open (and locked)
            if any(os.path.realpath(f"/proc/{holder.pid}/fd/{fd}") == disk
                   for fd in os.listdir(f"/proc/{holder.pid}/fd")):
                break
            time.sleep(0.05)
        with pytest.raises(ApplianceError, match="in use by another process .*held.img"):
            _start([{"path": disk, "format": "raw", "readonly": False}])
        app = _start([{"path": disk, "format": "raw", "readonly": True}])
        try:
            assert app.disks == {"sda": app.disks["sda"]}
            assert _sh(app, f"blkid -o value -s TYPE /dev/{app.disks['sda']}") == "xfs"
        finally:
            app.close()
    finally:
        holder.kill()
        holder.wait()


def test_a_wrong_format_is_named(saved, images):
    from vsh.guestfs.appliance.vm import ApplianceError

    with pytest.raises(ApplianceError, match=r"could not open .*xfs.img \(qcow2\): .*qcow2"):
        _start([{"path": images.path("xfs"), "format": "qcow2", "readonly": True}])
    left = subprocess.run(["pgrep", "-f", "vsh-appliance-"], stdout=subprocess.PIPE, text=True).stdout
    assert left == ""
