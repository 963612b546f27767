"""The lifecycle, saved-state and snapshot methods of the API on a domain that does not
run (the running side is covered by tests/integration through the commands)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from vsh import api
from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid
from tests.conftest import domain_xml


@pytest.fixture
def conn(tmp_path):
    conn = api.connect(f"vsh:///session?root={tmp_path / 'store'}")
    from vsh.core.domain import Domain

    conn.store.define(Domain.parse(domain_xml("vm1").encode()))
    return conn


@pytest.fixture
def dom(conn):
    return conn.lookup_domain("vm1")


def test_the_snapshot_and_console_handles_are_complete(dom):
    from vsh.api.local.console import LocalConsole
    from vsh.api.local.snapshots import LocalSnapshot

    for cls in (LocalSnapshot, LocalConsole):
        assert not getattr(cls, "__abstractmethods__", None), cls


def test_actions_on_a_domain_that_does_not_run(dom):
    assert dom.runtime() is None
    with pytest.raises(OperationInvalid) as err:
        dom.suspend()
    assert err.value.lines == ("Failed to suspend domain 'vm1'", "internal error: domain 'vm1' not running")
    with pytest.raises(OperationInvalid) as err:
        dom.destroy()
    assert err.value.lines == ("Failed to destroy domain 'vm1'",
                               "Requested operation is not valid: domain is not running")
    with pytest.raises(OperationInvalid) as err:
        dom.monitor_command('{"execute": "query-status"}')
    assert err.value.lines[0] == "Failed to run monitor command on domain 'vm1'"
    with pytest.raises(OperationInvalid, match="domain is not running"):
        dom.open_console()
    with pytest.raises(OperationInvalid, match="has no console log yet"):
        dom.console_log()


def test_shutdown_modes_are_checked_first(dom):
    with pytest.raises(InvalidArgument, match="Unknown mode bogus"):
        dom.shutdown(mode="bogus")
    with pytest.raises(OperationInvalid) as err:
        dom.reboot(mode="reset")
    assert err.value.lines[0] == "Failed to reboot domain 'vm1'"


def test_saved_state_without_an_image(conn, dom, tmp_path):
    assert dom.managed_save_remove() is False
    with pytest.raises(OperationInvalid, match="does not have managed save image"):
        dom.managed_save_xml()
    with pytest.raises(OperationInvalid, match="domain is not running"):
        dom.save(str(tmp_path / "vm1.save"))
    with pytest.raises(InvalidArgument, match="No such file or directory"):
        conn.save_image_xml(str(tmp_path / "missing.save"))


def test_save_image_xml_reads_the_header(conn, dom, tmp_path):
    from vsh.kvm import saveimage

    xml = conn.store.load(dom.ref, inactive=True).to_xml(inactive=True)
    path = str(tmp_path / "vm1.save")
    saveimage.create(path, xml, True)
    fd = os.open(path, os.O_RDWR)
    try:
        saveimage.complete(fd)
    finally:
        os.close(fd)
    assert "<name>vm1</name>" in conn.save_image_xml(path)


def test_create_xml_refuses_a_uuid_clash(conn, dom):
    other = domain_xml("vm1", uuid="11111111-2222-3333-4444-555555555555")
    with pytest.raises(OperationInvalid, match="already exists with uuid"):
        conn.create_xml(other)


def test_snapshots_of_a_domain_without_any(dom):
    snaps = dom.snapshots
    assert snaps.list() == []
    assert snaps.current() is None
    with pytest.raises(NotFound, match="no domain snapshot with matching name 's9'"):
        snaps.snapshot("s9").info()
    with pytest.raises(NotFound):
        snaps.list(start="s9")
    with pytest.raises(OperationInvalid, match="has no current snapshot"):
        snaps.list(current=True)
    with pytest.raises(InvalidArgument, match="has no name"):
        snaps.create_xml("<domainsnapshot><disks><disk/></disks></domainsnapshot>")


def test_a_forced_take_over_is_announced_to_the_holder(tmp_path):
    """The holder of the console learns why it got SIGTERM: ConsoleLock.taken_over()."""
    from vsh.kvm.console import ConsoleLock

    holder = subprocess.Popen([sys.executable, "-c", f"""
import signal, sys, time
from vsh.kvm.console import ConsoleLock
lock = ConsoleLock({str(tmp_path)!r}); lock.acquire()
def bye(signum, frame):
    print("taken over" if lock.taken_over() else "terminated", flush=True)
    lock.release()
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
print(lock.taken_over(), flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "False"
        lock = ConsoleLock(tmp_path)
        lock.acquire(force=True)
        assert holder.stdout.readline().strip() == "taken over"
        assert not lock.taken_over()
        lock.release()
    finally:
        if holder.poll() is None:
            holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_balloon_target_and_live_vcpus():
    from vsh.api.local.config import live_vcpus
    from vsh.api.local.launch import balloon_target
    from vsh.core.domain import Domain

    def dom(devices="<memballoon model='virtio'/>", current="<currentMemory unit='MiB'>192</currentMemory>"):
        return Domain.parse(f"<domain type='qemu'><name>b</name><memory unit='MiB'>256</memory>{current}"
                            f"<vcpu current='1'>3</vcpu><os><type>hvm</type></os><devices>{devices}</devices>"
                            "</domain>")

    assert balloon_target(dom()) == 192 * 1024
    assert balloon_target(dom(devices="")) is None                             # no balloon device
    assert balloon_target(dom(devices="<memballoon model='none'/>")) is None
    assert balloon_target(dom(current="")) is None
    d = dom()
    live_vcpus(d, 2)
    assert d.effective_vcpus == 2
    assert [(v.get("id"), v.get("enabled"), v.get("hotpluggable")) for v in d.node.findall("vcpus/vcpu")] == \
        [("0", "yes", "no"), ("1", "yes", "yes"), ("2", "no", "yes")]
