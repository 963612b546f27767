"""vsh migrate to a remote vsh over a real sshd: ``vsh migrate --live DOMAIN vsh+ssh://…`` moves a
running TCG test guest from a local store to a store that the remote vsh (``vsh serve`` behind
``sshd`` in a private network namespace) keeps. The destination is prepared through the remote
protocol, the migration stream goes through an OpenSSH unix-socket forward (no TCP port): the
guest's uptime goes on, a file written before is there after, the source ends shut off
(migrated) or undefined, domjobinfo/domjobabort see the migration, and a migration that fails
(a disk the destination cannot open, a destination that refuses, a tunnel that cannot be set
up) leaves the source running
and nothing on the destination. Both "hosts" share this machine's filesystem (shared storage);
--copy-storage-all mirrors a disk into another file there through a second forward.

Run serialized: flock /tmp/vsh-vm.lock .venv/bin/python -m pytest tests/integration/test_migrate_remote_vm.py
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

import vmguest

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]
PORT = 2222

_spec = importlib.util.spec_from_file_location("sshpeer", ROOT / "tests" / "sshpeer.py")
_sshpeer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_sshpeer)


class Hosts:
    """The source store (this side) and the remote store behind sshd; every vsh runs in sshd's
    network namespace with the test's ssh configuration."""

    def __init__(self, m, base: Path, store_a: Path, env_a: dict):
        self.m, self.base = m, base
        self.peer = _sshpeer.SshPeer(base / "sshd", PORT)
        self.store_a, self.store_b = store_a, base / "store-b"
        self.env_a = dict(env_a, VSH_SSH=self.peer.ssh("client"))
        self.env_b = dict(vmguest.store_env(base, self.store_b), VSH_SSH=self.env_a["VSH_SSH"])
        remote_vsh = f"env PYTHONPATH={ROOT} {sys.executable} -m vsh"
        self.dest = (f"vsh+ssh://root@127.0.0.1:{PORT}/session?root={quote(str(self.store_b))}"
                     f"&command={quote(remote_vsh)}")

    def vsh(self, env, *args, timeout=180) -> subprocess.CompletedProcess:
        return subprocess.run([*self.peer.prefix, sys.executable, "-m", "vsh", *map(str, args)], env=env,
                              capture_output=True, text=True, timeout=timeout)

    def a(self, *args, **kw):
        return self.vsh(self.env_a, *args, **kw)

    def b(self, *args, **kw):
        return self.vsh(self.env_b, *args, **kw)

    def start(self, name: str, disk: str = "") -> "vmguest.Guest":
        xml = self.base / f"{name}.xml"
        xml.write_text(vmguest.guest_domain_xml(name, self.m, disk))
        assert self.a("define", xml).returncode == 0
        r = self.a("start", name)
        assert r.returncode == 0, r.stderr
        g = vmguest.Guest(self.store_a, name, self.env_a)
        g.wait_log(self.m["ready_line"])
        return g

    def clean(self, name: str) -> None:
        for side in (self.a, self.b):
            side("destroy", name)
            side("undefine", name)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    if _sshpeer.missing():
        pytest.skip(_sshpeer.missing())
    h = Hosts(*vmguest.module_store(tmp_path_factory, "migrate-remote"))
    yield h
    h.peer.stop()


def _job_info(hosts, name: str, wanted: str, timeout: float = 60.0) -> str:
    """domjobinfo of ``name`` once it shows ``wanted`` (or the last one at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        info = hosts.a("domjobinfo", name).stdout
        if wanted in info or time.monotonic() > deadline:
            return info
        time.sleep(0.1)


def _uptime(g) -> float:
    return float(re.search(r"^(\d+\.\d+) \d+\.\d+\s*$", g.sh("cat /proc/uptime"), re.M).group(1))


def test_live_migration_to_a_remote_vsh(hosts):
    g = hosts.start("rmig1")
    try:
        g.sh("echo written-before-migration > /tmp/marker")
        before = _uptime(g)
        g.close_console()
        sessions = hosts.peer.sessions()
        r = hosts.a("migrate", "--live", "--verbose", "rmig1", hosts.dest)
        assert r.returncode == 0, r.stderr
        assert "Migration: [100 %]" in r.stderr
        assert hosts.peer.sessions() - sessions == 2        # the protocol's session and the forward's
        assert hosts.a("domstate", "--reason", "rmig1").stdout.strip() == "shut off (migrated)"
        assert hosts.vsh(hosts.env_a, "-c", hosts.dest, "domstate", "--reason", "rmig1").stdout.strip() \
            == "running (migrated)"
        info = hosts.b("dominfo", "rmig1").stdout
        assert "Persistent:     no" in info                 # transient there without --persistent
        moved = vmguest.Guest(hosts.store_b, "rmig1", hosts.env_b)
        assert "written-before-migration" in moved.sh("cat /tmp/marker")
        assert _uptime(moved) >= before
        moved.close_console()
        assert not list((hosts.store_a / "run" / "rmig1").glob("migrate-out.sock"))    # the forward is gone
    finally:
        hosts.clean("rmig1")


def test_persistent_undefinesource_and_back(hosts):
    g = hosts.start("rmig2")
    try:
        g.sh("echo round-trip > /tmp/marker")
        g.close_console()
        r = hosts.a("--json", "migrate", "--live", "--persistent", "--undefinesource", "--auto-converge",
                    "--timeout", "60", "rmig2", hosts.dest)
        assert r.returncode == 0, r.stderr
        assert '"persistent": true' in r.stdout and '"source_undefined": true' in r.stdout
        assert hosts.a("list", "--all", "--name").stdout.strip() == ""           # undefined at the source
        assert hosts.b("domstate", "--reason", "rmig2").stdout.strip() == "running (migrated)"
        assert "Persistent:     yes" in hosts.b("dominfo", "rmig2").stdout
        # and back, asked of the remote vsh: there it is a migration between two stores of its host
        back = f"vsh:///session?root={hosts.store_a}"
        r = hosts.a("-c", hosts.dest, "migrate", "--live", "--persistent", "--undefinesource", "--verbose", "rmig2",
                    back)
        assert r.returncode == 0, r.stderr
        assert "Migration: [100 %]" in r.stderr                # its progress, called back over the channel
        assert hosts.a("domstate", "--reason", "rmig2").stdout.strip() == "running (migrated)"
        home = vmguest.Guest(hosts.store_a, "rmig2", hosts.env_a)
        assert "round-trip" in home.sh("cat /tmp/marker")
        home.close_console()
    finally:
        hosts.clean("rmig2")


def test_failures_leave_the_source_running_and_nothing_there(hosts, tmp_path):
    disk = tmp_path / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    g = hosts.start("rmig3", f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                             f"<source file='{disk}'/><target dev='vda' bus='virtio'/></disk>")
    try:
        g.sh("echo still-here > /tmp/marker")
        g.close_console()
        # the forward never comes up (ssh told to drop every forwarding): the protocol's session
        # prepared the destination, which is given up again
        broken = dict(hosts.env_a, VSH_SSH=hosts.env_a["VSH_SSH"] + " -o ClearAllForwardings=yes")
        r = hosts.vsh(broken, "migrate", "--live", "--persistent", "rmig3", hosts.dest)
        assert r.returncode != 0, r.stderr
        assert r.stderr.startswith("error: cannot forward the migration stream through ssh"), r.stderr
        assert hosts.a("domstate", "rmig3").stdout.strip() == "running"
        assert hosts.b("list", "--all", "--name").stdout.strip() == ""
        # the far sshd opens no forwarded socket for this key (no-port-forwarding): a clear error
        keys = hosts.peer.keys / "authorized_keys"
        authorized = keys.read_text()
        keys.write_text(authorized + "no-port-forwarding " + (hosts.peer.keys / "stranger.pub").read_text())
        try:
            r = hosts.vsh(dict(hosts.env_a, VSH_SSH=hosts.peer.ssh("stranger")), "migrate", "--live", "rmig3",
                          hosts.dest)
        finally:
            keys.write_text(authorized)
        assert r.returncode != 0
        assert r.stderr.startswith("error: cannot migrate 'rmig3' to "), r.stderr
        assert "did not open the forwarded unix socket" in r.stderr and "AllowStreamLocalForwarding" in r.stderr, \
            r.stderr
        assert hosts.a("domstate", "rmig3").stdout.strip() == "running"
        assert hosts.b("list", "--all", "--name").stdout.strip() == ""
        # the destination refuses: a definition of that name with another UUID is there
        other = hosts.base / "other.xml"
        other.write_text(vmguest.guest_domain_xml("rmig3", hosts.m, "").replace(
            "<name>rmig3</name>", "<name>rmig3</name><uuid>00000000-0000-4000-8000-000000000003</uuid>"))
        assert hosts.b("define", other).returncode == 0
        r = hosts.a("migrate", "--live", "--persistent", "rmig3", hosts.dest)
        assert r.returncode != 0 and "already exists with uuid" in r.stderr, r.stderr
        assert hosts.a("domstate", "rmig3").stdout.strip() == "running"
        assert hosts.b("domuuid", "rmig3").stdout.strip() == "00000000-0000-4000-8000-000000000003"
        assert hosts.b("undefine", "rmig3").returncode == 0
        # the destination cannot open the disk (gone from the shared filesystem; QEMU here keeps it open)
        disk.unlink()
        r = hosts.a("migrate", "--live", "--persistent", "rmig3", hosts.dest)
        assert r.returncode != 0
        assert r.stderr.startswith("error: ") and str(disk) in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        assert hosts.a("domstate", "rmig3").stdout.strip() == "running"
        assert "still-here" in g.sh("cat /tmp/marker")
        g.close_console()
        assert hosts.b("list", "--all", "--name").stdout.strip() == ""          # nothing left there
        assert not (hosts.store_b / "run" / "rmig3" / "migrate.sock").exists()
    finally:
        hosts.clean("rmig3")


def test_domjobinfo_and_domjobabort_during_a_remote_migration(hosts):
    hosts.start("rmig4").close_console()
    try:
        assert hosts.a("migrate-setspeed", "rmig4", "--bandwidth", "1").returncode == 0
        with subprocess.Popen([*hosts.peer.prefix, sys.executable, "-m", "vsh", "migrate", "--live", "rmig4",
                               hosts.dest], env=hosts.env_a, stderr=subprocess.PIPE, text=True) as proc:
            try:
                info = _job_info(hosts, "rmig4", "Outgoing migration")
                assert "Operation:        Outgoing migration" in info and "Job type:         Unbounded" in info
                assert hosts.a("domjobabort", "rmig4").returncode == 0
                err = proc.communicate(timeout=120)[1]
            except BaseException:
                proc.kill()
                raise
        assert proc.returncode != 0 and err.startswith("error: "), err
        assert hosts.b("list", "--all", "--name").stdout.strip() == ""             # nothing left there
        assert "Job type:         None" in hosts.a("domjobinfo", "rmig4").stdout
        assert hosts.a("domstate", "rmig4").stdout.strip() == "running"
    finally:
        hosts.clean("rmig4")


def test_offline_migration_to_a_remote_vsh(hosts):
    xml = hosts.base / "roff.xml"
    xml.write_text(vmguest.guest_domain_xml("roff", hosts.m, ""))
    assert hosts.a("define", xml).returncode == 0
    try:
        uuid = hosts.a("domuuid", "roff").stdout
        r = hosts.a("migrate", "--offline", "--persistent", "--undefinesource", "roff", hosts.dest)
        assert r.returncode == 0, r.stderr
        assert hosts.b("domuuid", "roff").stdout == uuid
        assert hosts.b("domstate", "roff").stdout.strip() == "shut off"
        assert hosts.a("list", "--all", "--name").stdout.strip() == ""
    finally:
        hosts.clean("roff")


def test_copy_storage_all_to_a_remote_vsh(hosts, tmp_path):
    """--copy-storage-all through ssh: the remote vsh makes the disk file its XML names, QEMU's NBD
    server there receives the mirror through a second forward, and the guest goes on with it. A
    destination file smaller than the disk is refused before anything moves."""
    here, there = tmp_path / "here.img", tmp_path / "there.img"
    with open(here, "wb") as fh:
        fh.truncate(16 << 20)
    g = hosts.start("rmig5", f"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
                             f"<source file='{here}'/><target dev='vda' bus='virtio'/></disk>")
    try:
        g.sh("echo copied-disk-data > /dev/vda; sync")
        g.close_console()
        xml = tmp_path / "there.xml"
        xml.write_text(hosts.a("dumpxml", "rmig5").stdout.replace(str(here), str(there)))
        with open(there, "wb") as fh:
            fh.truncate(1 << 20)
        r = hosts.a("migrate", "--live", "--copy-storage-all", "--xml", xml, "rmig5", hosts.dest)
        assert r.returncode != 0 and "is smaller than the source's" in r.stderr, r.stderr
        assert there.stat().st_size == 1 << 20 and hosts.a("domstate", "rmig5").stdout.strip() == "running"
        assert hosts.b("list", "--all", "--name").stdout.strip() == ""
        there.unlink()
        sessions = hosts.peer.sessions()
        r = hosts.a("migrate", "--live", "--copy-storage-all", "--persistent", "--xml", xml, "rmig5", hosts.dest)
        assert r.returncode == 0, r.stderr
        assert hosts.peer.sessions() - sessions == 3        # the protocol's, the stream's and the disks' forward
        assert hosts.b("domstate", "--reason", "rmig5").stdout.strip() == "running (migrated)"
        assert f"<source file='{there}'" in hosts.b("dumpxml", "--inactive", "rmig5").stdout
        assert there.read_bytes()[:17] == b"copied-disk-data\n"
        moved = vmguest.Guest(hosts.store_b, "rmig5", hosts.env_b)
        moved.sh("echo after-migration > /dev/vda; sync")
        moved.close_console()
        assert there.read_bytes()[:16] == b"after-migration\n"
        assert here.read_bytes()[:17] == b"copied-disk-data\n"
    finally:
        hosts.clean("rmig5")
