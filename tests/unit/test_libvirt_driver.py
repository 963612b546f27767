"""The libvirt driver against libvirt's own test driver (``test:///default``): vsh and virsh run the
same commands on the same URI and must print the same bytes.

``test:///default`` is a fresh in-memory host per connection, so a sequence that changes state runs
in one session on both sides (virsh's ``cmd1; cmd2`` string, vsh's batch line). Figures that depend
on the wall clock (the test driver's CPU time, snapshot creation times) are masked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("libvirtmod", reason="libvirt-python is not installed (scripts/setup installs it)")
if shutil.which("virsh") is None:
    pytest.skip("virsh is not installed (Debian libvirt-clients)", allow_module_level=True)

URI = "test:///default"
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def _mask(text: str) -> str:
    text = re.sub(r"CPU time:( +)[0-9.]+s", r"CPU time:\1Ns", text)
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", "DATE", text)


def run_virsh(line: str, uri: str = URI):
    proc = subprocess.run(["virsh", "-c", uri, line], capture_output=True, text=True, timeout=60)
    return proc.returncode, _mask(proc.stdout), _mask(proc.stderr)


def run_vsh(line: str, uri: str = URI, *extra: str):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(ROOT))
    proc = subprocess.run([sys.executable, "-m", "vsh", "-c", uri, *extra, line], capture_output=True, text=True,
                          timeout=60, env=env)
    return proc.returncode, _mask(proc.stdout), _mask(proc.stderr)


def same(line: str, uri: str = URI):
    theirs, ours = run_virsh(line, uri), run_vsh(line, uri)
    assert ours == theirs, f"{line!r}\nvirsh: {theirs!r}\nvsh:   {ours!r}"
    return ours


QUERIES = [
    "list --all", "list --all --uuid", "list --all --name", "list --title --all", "list --inactive",
    "dominfo test", "dominfo 1", "dominfo 6695eb01-f6a4-8304-79aa-97f2502e193f", "domstate test",
    "domstate --reason test", "domid test", "domuuid test", "domname 1",
    "domname 6695eb01-f6a4-8304-79aa-97f2502e193f", "dumpxml test", "dumpxml --inactive test",
    "domblklist test", "domblklist --details test", "domiflist test", "vcpucount test", "vcpuinfo test",
    "dommemstat test", "domstats test", "domblkinfo test vda", "domif-getlink test aa:bb:cc:dd:ee:ff",
    "schedinfo test", "vcpupin test", "emulatorpin test", "iothreadinfo test", "domdisplay test",
    "domifaddr test", "domblkerror test", "desc test", "desc test --title", "domjobinfo test",
    "pool-list", "pool-list --all", "pool-list --all --details", "pool-info default-pool",
    "pool-dumpxml default-pool", "pool-uuid default-pool", "vol-list default-pool", "vol-list default-pool --details",
    "net-list", "net-list --all", "net-info default", "net-dumpxml default", "net-uuid default",
    "nodeinfo", "hostname", "capabilities", "version", "uri", "blkdeviotune test vda", "domiftune test testnet0",
    "domxml-to-native qemu-argv --domain test", "domblkinfo test --all", "domstats --list-active",
    "dumpxml test --xpath //name", "vncdisplay test", "cpu-stats test", "cpu-stats test --total",
    "cpu-stats test --start 1 --count 1", "cpu-stats test --count 5", "cpu-stats test --start 7",
    "freecell", "freecell --all", "freecell --cellno 1", "freecell --cellno 5", "freecell --all --cellno 1",
    "sysinfo",
    # the guest-agent commands libvirt's test driver answers
    "domfsinfo test", "domtime test", "domtime test --pretty", "domifaddr test --source agent",
    "domifaddr test --source agent --full", "domhostname test",
]


@pytest.mark.parametrize("line", QUERIES)
def test_queries_print_what_virsh_prints(line):
    same(line)


SEQUENCES = [
    "destroy test; list --all; dominfo test; domstate --reason test; start test; domstate --reason test",
    "suspend test; domstate --reason test; resume test; domstate --reason test",
    "shutdown test; domstate --reason test; reboot test; reset test",
    "autostart test; dominfo test; autostart --disable test; list --all --autostart",
    "destroy test; domrename test other; list --all; undefine other; list --all",
    "setmem test 1024000; dominfo test; setvcpus test 1; vcpucount test",
    "desc test hello there; desc test; desc test --title a title; list --title --all",
    "snapshot-create-as test s1 --description first; snapshot-create-as test s2; snapshot-list test; "
    "snapshot-list test --tree; snapshot-list test --parent; snapshot-info test s1; snapshot-current test --name; "
    "snapshot-parent test s2; snapshot-list test --roots; snapshot-list test --leaves; "
    "snapshot-list test --from s1 --descendants; snapshot-revert test s1; snapshot-current test --name; "
    "snapshot-delete test s1 --children; snapshot-list test",
    "vol-create-as default-pool v1 10M; vol-list default-pool --details; vol-info --pool default-pool v1; "
    "vol-dumpxml --pool default-pool v1; vol-key --pool default-pool v1; vol-path --pool default-pool v1; "
    "vol-delete --pool default-pool v1; vol-list default-pool",
    "pool-destroy default-pool; pool-list --all; pool-start default-pool; pool-autostart default-pool; "
    "pool-list --all --details",
    "net-destroy default; net-list --all; net-start default; net-autostart default; net-info default",
    "attach-disk test /tmp/x.img vdb --config; domblklist test --inactive; detach-disk test vdb --config; "
    "domblklist test --inactive; attach-interface test network default --config; domiflist test --inactive",
    "setmaxmem test 4000000 --config; dominfo test; set-lifecycle-action test poweroff restart; "
    "dumpxml test --xpath //on_poweroff; send-key test KEY_A; inject-nmi test",
    "vol-create-as default-pool v1 1M; vol-clone --pool default-pool v1 v2; vol-list default-pool; "
    "vol-resize --pool default-pool v2 2M; vol-info --pool default-pool v2; vol-wipe --pool default-pool v2",
    "metadata test http://example.org/x --key x --set '<a/>'; metadata test http://example.org/x",
    "destroy test; undefine test --remove-all-storage; list --all",
    "domfsfreeze test; domfsthaw test; domfstrim test; set-user-password test root s3cret; domtime test --now",
]


@pytest.mark.parametrize("line", SEQUENCES)
def test_sequences_in_one_session_print_what_virsh_prints(line):
    same(line)


def test_managedsave_and_start_again():
    # virsh's own managedsave sometimes never returns here (its job watcher waits on a pipe), so vsh
    # alone: what virsh prints for each step is in the expectations
    status, out, err = run_vsh("managedsave test; list --all --managed-save; domstate --reason test; start test; "
                               "domstate --reason test")
    assert (status, err) == (0, "")
    assert out == ("\nDomain 'test' state saved by libvirt\n\n Id   Name   State\n--------------------\n"
                   " -    test   saved\n\nshut off (saved)\n\nDomain 'test' started\n\nrunning (booted)\n\n")


def test_define_create_undefine(tmp_path):
    xml = tmp_path / "d.xml"
    xml.write_text("<domain type='test'><name>d1</name><memory>65536</memory><os><type>hvm</type></os></domain>")
    out = same(f"define {xml}; list --all; start d1; list --all; destroy d1; undefine d1; list --all; "
               f"create {xml}; list --all; destroy d1; list --all")
    assert "Domain 'd1' defined from" in out[1]


ERRORS = [
    "dominfo nosuch", "domname 7", "start test", "pool-info nosuch", "vol-info nosuch",
    "vol-info --pool default-pool nosuch", "net-info nosuch", "snapshot-info test nosuch", "snapshot-current test",
    "domblkstat test", "domifstat test vnet0", "net-dhcp-leases default",
    "destroy test; destroy test", "suspend test; suspend test", "define /nonexistent.xml",
    "guestinfo test", "guestvcpus test", "get-user-sshkeys test root", "dompmsuspend test mem",
    "guest-agent-timeout test --timeout 5", "qemu-agent-command test '{\"execute\":\"guest-ping\"}'",
    "domhostname test --source agent", "destroy test; domfsinfo test",
]


@pytest.mark.parametrize("line", ERRORS)
def test_errors_are_libvirts_as_virsh_prints_them(line):
    status, _out, err = same(line)
    assert status == 1 and err.startswith("error: ") or err == ""


def test_json_output_on_the_libvirt_driver():
    status, out, _err = run_vsh("list --all", URI, "--json")
    assert status == 0 and json.loads(out) == [{"id": 1, "name": "test", "state": "running",
                                               "uuid": "6695eb01-f6a4-8304-79aa-97f2502e193f", "persistent": True}]
    status, out, _err = run_vsh("dominfo test", URI, "--json")
    info = json.loads(out)
    assert (info["name"], info["os_type"], info["cpus"], info["security"]["model"]) == \
        ("test", "linux", 2, "testSecurity")
    status, out, _err = run_vsh("pool-list --all", URI, "--json")
    assert [p["name"] for p in json.loads(out)] == ["default-pool"]


def test_a_read_only_connection_is_refused_by_libvirt_in_its_words():
    theirs = subprocess.run(["virsh", "-r", "-c", URI, "destroy test; suspend test; domstate test"],
                            capture_output=True, text=True, timeout=60)
    ours = run_vsh("destroy test; suspend test; domstate test", URI, "-r")
    assert ours == (theirs.returncode, theirs.stdout, theirs.stderr)
    assert "read only access prevents virDomainDestroy" in ours[2]


def test_a_bad_uri_is_libvirts_error():
    theirs, ours = run_virsh("list", "test:///nonexistent/node.xml"), run_vsh("list", "test:///nonexistent/node.xml")
    assert ours == theirs and ours[0] == 1
    assert "error: failed to connect to the hypervisor\nerror: XML error: " in ours[2]


def test_guest_disk_commands_read_the_domains_disks_from_its_libvirt_xml(tmp_path):
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed (Debian e2fsprogs)")
    root = tmp_path / "root" / "etc"
    root.mkdir(parents=True)
    (root / "hostname").write_text("from-libvirt\n")
    image = tmp_path / "d.img"
    subprocess.run(["mkfs.ext4", "-q", "-d", str(tmp_path / "root"), str(image), "8M"], check=True,
                   capture_output=True)
    node = tmp_path / "node.xml"
    node.write_text(f"""<node><domain type='test'><name>g1</name><memory>65536</memory><os><type>hvm</type></os>
      <devices><disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{image}'/>
      <target dev='vda' bus='virtio'/></disk></devices></domain></node>""")
    status, out, err = run_vsh("run; list-filesystems; mount-ro /dev/sda /; cat /etc/hostname", f"test://{node}",
                               "--domain", "g1")
    assert (status, out, err) == (0, "/dev/sda: ext4\nfrom-libvirt\n", "")


def test_the_libvirt_driver_implements_every_api_method():
    import inspect

    from vsh import api

    conn = api.connect(URI)
    dom = conn.lookup_domain("test")
    handles = [conn, dom, dom.devices, dom.stats, dom.snapshots, dom.display, dom.block_jobs, dom.tuning,
               dom.agent, conn.storage, conn.networks, conn.host, conn.installer, conn.guest_disks()]
    for handle in handles:
        missing = {n for n, v in inspect.getmembers(type(handle)) if getattr(v, "__isabstractmethod__", False)}
        assert not missing, f"{type(handle).__name__} lacks {missing}"
    assert type(conn).__module__ == "vsh.api.libvirt.connection" and conn.uri == URI
    conn.close()


def test_install_on_a_libvirt_connection_makes_a_pool_volume_and_defines_there():
    status, out, err = run_vsh("install --name i1 --memory 64 --disk pool=default-pool,size=1 --boot hd "
                               "--graphics none --noautoconsole; list --all --name; vol-list default-pool; "
                               "domblklist i1; domiflist i1", URI)
    assert (status, err) == (0, ""), err
    assert out.startswith("Disk '/default-pool/i1.qcow2' created (qcow2, 1.00 GiB)\nDomain 'i1' defined\n"
                          "Domain 'i1' started\nDomain creation completed; connect with: vsh -c test:///default "
                          "console i1\n")
    assert "\ntest\ni1\n" in out                            # libvirt's domain list holds it
    assert " i1.qcow2   /default-pool/i1.qcow2\n" in out     # a volume of libvirt's pool
    assert " vda      /default-pool/i1.qcow2\n" in out
    assert " network   default   virtio " in out             # no --network: libvirt's default network


def test_install_on_a_libvirt_connection_refuses_before_making_anything():
    status, out, err = run_vsh("install --name i2 --memory 64 --disk pool=default-pool,size=1 --boot hd "
                               "--network network=nowhere --noautoconsole", URI)
    assert status == 1 and "Network not found: no network with matching name 'nowhere'" in err
    status, out, err = run_vsh("install --name test --memory 64 --disk pool=default-pool,size=1 --boot hd "
                               "--noautoconsole; vol-list default-pool", URI)
    assert "domain 'test' already exists" in err and "test.qcow2" not in out      # the batch goes on
    status, _out, err = run_vsh("install --name i3 --memory 64 --disk pool=nopool,size=1 --boot hd", URI)
    assert status == 1 and "storage pool 'nopool' not found" in err
    status, _out, err = run_vsh("install --name i4 --memory 64 --boot hd --disk none --cloud-init root-password-generate=on", URI)
    assert status == 1 and "--cloud-init through a libvirt connection" in err
