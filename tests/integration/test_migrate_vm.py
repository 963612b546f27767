"""vsh migrate between two stores on this host, with a running TCG test guest: the guest's
uptime goes on and what it holds in memory is there afterwards, the source ends shut off
(migrated) or undefined, domjobinfo/domjobabort see the migration, a migration that fails
(the destination cannot open a disk) leaves the source running untouched, and
--copy-storage-all moves a disk into another file.

Run serialized: flock /tmp/vsh-vm.lock .venv/bin/python -m pytest tests/integration/test_migrate_vm.py
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

import vmguest

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    m, base, store_a, env_a = vmguest.module_store(tmp_path_factory, "migrate")
    store_b = base / "store-b"
    env_b = vmguest.store_env(base, store_b)
    return m, base, (store_a, env_a), (store_b, env_b)


def _vsh(env, *args, timeout=180):
    return subprocess.run([sys.executable, "-m", "vsh", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _start(m, base, store, env, name: str, disk: str = "") -> "vmguest.Guest":
    xml = base / f"{name}.xml"
    xml.write_text(vmguest.guest_domain_xml(name, m, disk))
    assert _vsh(env, "define", xml).returncode == 0
    r = _vsh(env, "start", name)
    assert r.returncode == 0, r.stderr
    g = vmguest.Guest(store, name, env)
    g.wait_log(m["ready_line"])
    return g


def _uptime(g) -> float:
    import re

    return float(re.search(r"^(\d+\.\d+) \d+\.\d+\s*$", g.sh("cat /proc/uptime"), re.M).group(1))


def test_live_migration_moves_the_running_guest(stores):
    m, base, (store_a, env_a), (store_b, env_b) = stores
    g = _start(m, base, store_a, env_a, "mig1")
    try:
        g.sh("echo written-before-migration > /tmp/marker")
        before = _uptime(g)
        g.close_console()
        r = _vsh(env_a, "migrate", "--live", "--persistent", "--undefinesource", "--verbose", "mig1",
                 f"vsh:///session?root={store_b}")
        assert r.returncode == 0, r.stderr
        assert "Migration: [100 %]" in r.stderr
        assert _vsh(env_a, "list", "--all", "--name").stdout.strip() == ""      # undefined at the source
        state = _vsh(env_b, "domstate", "--reason", "mig1").stdout.strip()
        assert state == "running (migrated)"
        moved = vmguest.Guest(store_b, "mig1", env_b)
        assert "written-before-migration" in moved.sh("cat /tmp/marker")
        assert _uptime(moved) >= before
        assert "persistent" in _vsh(env_b, "dominfo", "mig1").stdout.lower()
        assert _vsh(env_b, "dominfo", "mig1").stdout.count("Persistent:     yes") == 1
        moved.close_console()
    finally:
        _vsh(env_a, "destroy", "mig1")
        _vsh(env_b, "destroy", "mig1")
        _vsh(env_b, "undefine", "mig1")
        _vsh(env_a, "undefine", "mig1")


def test_failed_migration_leaves_the_source_running(stores, tmp_path):
    m, base, (store_a, env_a), (store_b, env_b) = stores
    disk = tmp_path / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    g = _start(m, base, store_a, env_a, "mig2",
               f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
               f"<source file='{disk}'/><target dev='vda' bus='virtio'/></disk>")
    try:
        g.sh("echo still-here > /tmp/marker")
        disk.unlink()           # QEMU here keeps its open file; the destination cannot open it
        g.close_console()
        r = _vsh(env_a, "migrate", "--live", "mig2", f"vsh:///session?root={store_b}")
        assert r.returncode != 0
        assert r.stderr.startswith("error: ") and str(disk) in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        assert _vsh(env_a, "domstate", "mig2").stdout.strip() == "running"
        assert "still-here" in g.sh("cat /tmp/marker")
        assert _vsh(env_b, "list", "--all", "--name").stdout.strip() == ""     # nothing left there
        g.close_console()
    finally:
        _vsh(env_a, "destroy", "mig2")
        _vsh(env_a, "undefine", "mig2")


def test_domjobinfo_and_domjobabort_during_a_migration(stores):
    m, base, (store_a, env_a), (store_b, env_b) = stores
    g = _start(m, base, store_a, env_a, "mig3")
    try:
        g.close_console()
        assert _vsh(env_a, "migrate-setspeed", "mig3", "--bandwidth", "1").returncode == 0
        assert _vsh(env_a, "migrate-getspeed", "mig3").stdout.strip() == "1"
        assert _vsh(env_a, "migrate-setmaxdowntime", "mig3", "--downtime", "150").returncode == 0
        assert _vsh(env_a, "migrate-getmaxdowntime", "mig3").stdout.strip() == "150"
        proc = subprocess.Popen([sys.executable, "-m", "vsh", "migrate", "--live", "mig3",
                                 f"vsh:///session?root={store_b}"], env=env_a, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            info = ""
            deadline = time.monotonic() + 60
            while "Outgoing migration" not in info and time.monotonic() < deadline:
                info = _vsh(env_a, "domjobinfo", "mig3").stdout
                time.sleep(0.1)
            assert "Job type:         Unbounded" in info and "Operation:        Outgoing migration" in info
            assert _vsh(env_a, "domjobabort", "mig3").returncode == 0
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode != 0 and err.startswith("error: "), err
        assert _vsh(env_a, "domstate", "mig3").stdout.strip() == "running"
        assert "Job type:         None" in _vsh(env_a, "domjobinfo", "mig3").stdout
        assert _vsh(env_b, "list", "--all", "--name").stdout.strip() == ""
    finally:
        _vsh(env_a, "destroy", "mig3")
        _vsh(env_a, "undefine", "mig3")


def test_offline_migration_copies_the_definition(stores):
    m, base, (store_a, env_a), (store_b, env_b) = stores
    xml = base / "off.xml"
    xml.write_text(vmguest.guest_domain_xml("off1", m, ""))
    assert _vsh(env_a, "define", xml).returncode == 0
    try:
        r = _vsh(env_a, "migrate", "--offline", "mig-missing", f"vsh:///session?root={store_b}")
        assert r.returncode != 0 and "failed to get domain 'mig-missing'" in r.stderr
        r = _vsh(env_a, "migrate", "--offline", "off1", f"vsh:///session?root={store_b}")
        assert r.returncode != 0 and "offline migration requires --persistent" in r.stderr
        r = _vsh(env_a, "migrate", "--offline", "--persistent", "--undefinesource", "off1",
                 f"vsh:///session?root={store_b}")
        assert r.returncode == 0, r.stderr
        assert _vsh(env_b, "domuuid", "off1").stdout == _vsh(env_b, "domuuid", "off1").stdout
        assert _vsh(env_b, "domstate", "off1").stdout.strip() == "shut off"
        assert _vsh(env_a, "list", "--all", "--name").stdout.strip() == ""
    finally:
        _vsh(env_a, "undefine", "off1")
        _vsh(env_b, "undefine", "off1")


def _raw_disk(path) -> str:
    return (f"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
            f"<source file='{path}'/><target dev='vda' bus='virtio'/></disk>")


def test_copy_storage_all_moves_the_disk_into_another_file(stores, tmp_path):
    """--copy-storage-all with --xml naming another file: the destination makes it (same format and
    size), the source mirrors the disk into it through QEMU's NBD server, and the guest goes on with
    it; the source's file is no longer written."""
    m, base, (store_a, env_a), (store_b, env_b) = stores
    here, there = tmp_path / "here.img", tmp_path / "there.img"
    with open(here, "wb") as fh:
        fh.truncate(16 << 20)
    g = _start(m, base, store_a, env_a, "mig5", _raw_disk(here))
    try:
        g.sh("echo copied-disk-data > /dev/vda; sync")
        g.close_console()
        xml = tmp_path / "there.xml"
        xml.write_text(_vsh(env_a, "dumpxml", "mig5").stdout.replace(str(here), str(there)))
        r = _vsh(env_a, "migrate", "--live", "--copy-storage-all", "mig5", f"vsh:///session?root={store_b}")
        assert r.returncode != 0 and "is the source's own file" in r.stderr, r.stderr      # shared storage
        assert _vsh(env_b, "list", "--all", "--name").stdout.strip() == ""
        r = _vsh(env_a, "migrate", "--live", "--copy-storage-all", "--xml", xml, "mig5",
                 f"vsh:///session?root={store_b}")
        assert r.returncode == 0, r.stderr
        assert _vsh(env_b, "domstate", "--reason", "mig5").stdout.strip() == "running (migrated)"
        assert there.stat().st_size == 16 << 20
        assert there.read_bytes()[:17] == b"copied-disk-data\n"
        moved = vmguest.Guest(store_b, "mig5", env_b)
        moved.sh("echo after-migration > /dev/vda; sync")
        moved.close_console()
        assert there.read_bytes()[:16] == b"after-migration\n"
        assert here.read_bytes()[:17] == b"copied-disk-data\n"
    finally:
        _vsh(env_a, "destroy", "mig5")
        _vsh(env_b, "destroy", "mig5")
        _vsh(env_a, "undefine", "mig5")


def test_copy_storage_all_flattens_a_backing_chain(stores, tmp_path):
    """A qcow2 overlay over a raw base image is copied into one whole image there (its XML says
    <backingStore/>): what the guest wrote and what the base held are both in it."""
    m, base, (store_a, env_a), (store_b, env_b) = stores
    backing, top, there = tmp_path / "base.img", tmp_path / "top.qcow2", tmp_path / "there.qcow2"
    with open(backing, "wb") as fh:
        fh.truncate(16 << 20)
        fh.seek(1 << 20)
        fh.write(b"from-the-backing")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(backing), str(top)], check=True)
    g = _start(m, base, store_a, env_a, "mig6",
               f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{top}'/>"
               f"<backingStore type='file'><format type='raw'/><source file='{backing}'/></backingStore>"
               f"<target dev='vda' bus='virtio'/></disk>")
    try:
        g.sh("echo copied-disk-data > /dev/vda; sync")
        g.close_console()
        xml = tmp_path / "there.xml"
        xml.write_text(_vsh(env_a, "dumpxml", "mig6").stdout.replace(str(top), str(there)))
        r = _vsh(env_a, "migrate", "--live", "--copy-storage-all", "--xml", xml, "mig6",
                 f"vsh:///session?root={store_b}")
        assert r.returncode == 0, r.stderr
        assert "<backingStore/>" in _vsh(env_b, "dumpxml", "mig6").stdout
        whole = tmp_path / "whole.img"
        subprocess.run(["qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", str(there), str(whole)], check=True)
        data = whole.read_bytes()
        assert data[:17] == b"copied-disk-data\n" and data[1 << 20:(1 << 20) + 16] == b"from-the-backing"
        assert "backing file" not in subprocess.run(["qemu-img", "info", "-U", str(there)], capture_output=True,
                                                    text=True).stdout
    finally:
        _vsh(env_a, "destroy", "mig6")
        _vsh(env_b, "destroy", "mig6")
        _vsh(env_a, "undefine", "mig6")
