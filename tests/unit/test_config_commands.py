"""edit, setmem, setmaxmem, setvcpus and the attach/detach commands, in-process on a temporary store.

Success output is compared byte for byte with virsh's formats (reference §2 and §6);
errors go to stderr with exit status 1 and leave the stored configuration exactly
as it was. Every configuration these commands write must still validate against
libvirt's RelaxNG schema.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from vsh.core.domain import Domain

SCHEMA_PATH = "/usr/share/libvirt/schemas/domain.rng"
_SCHEMA = []

VM1_DEVICES = (
    "<disk type='file' device='disk'><source file='/var/tmp/vm1.img'/><target dev='vda' bus='virtio'/></disk>\n"
    "    <interface type='network'><mac address='52:54:00:11:22:33'/><source network='default'/></interface>"
)


def schema():
    if not _SCHEMA:
        if not os.path.exists(SCHEMA_PATH):
            pytest.skip("libvirt's RelaxNG schema is not installed (Debian package libvirt0)")
        from lxml import etree

        _SCHEMA.append(etree.RelaxNG(etree.parse(SCHEMA_PATH)))
    return _SCHEMA[0]


def assert_schema_valid(text: str) -> None:
    from lxml import etree

    rng = schema()
    doc = etree.fromstring(text.encode())
    assert rng.validate(doc), f"{rng.error_log}\n{text}"


@pytest.fixture
def vm(define, make_xml, vsh_env):
    """vm1: 1 GiB, 4 vCPUs, one disk (vda), one network interface; shut off."""
    define("vm1", make_xml("vm1", memory="<memory unit='GiB'>1</memory>", vcpu="<vcpu>4</vcpu>",
                           devices=VM1_DEVICES))
    return vsh_env.domains / "vm1.xml"


#: The PCI address the first device added to vm1 gets (libvirt's next free slot).
A5 = "<address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>"


def config(path: Path) -> Domain:
    return Domain.parse(path.read_bytes())


def ok(res, out="\n"):
    assert (res.status, res.err, res.out) == (0, "", out), res
    return res


def fails(res, err: str):
    assert (res.status, res.err, res.out) == (1, err, "\n"), res
    return res


def make_running(vsh_env, name: str = "vm1", vcpus: int | None = None) -> Path:
    """Pretend a supervisor runs ``name``: a fresh state.json naming a live pid, and live.xml."""
    from vsh.core.store import boot_id

    rundir = vsh_env.store / "run" / name
    rundir.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = {"state": "running", "reason": "booted", "id": 7, "qemu_pid": os.getpid(),
             "supervisor_pid": os.getpid(), "boot_id": boot_id()}
    if vcpus is not None:
        state["vcpus"] = vcpus
    (rundir / "state.json").write_text(json.dumps(state))
    live = config(vsh_env.domains / f"{name}.xml")
    (rundir / "live.xml").write_text(live.to_xml())
    return rundir


@pytest.fixture
def client_calls(monkeypatch):
    """Record calls to the supervisor client instead of talking to a supervisor."""
    from vsh.kvm import client

    calls = []
    def recorder(op):
        return lambda rundir, value: calls.append((op, Path(rundir).name, value)) or {}

    monkeypatch.setattr(client, "set_balloon", recorder("set_balloon"))
    monkeypatch.setattr(client, "set_vcpus", recorder("set_vcpus"))
    return calls


# -- setmem ---------------------------------------------------------------------------------


def test_setmem_config_default_unit_is_kib(vsh, vm):
    ok(vsh("setmem", "vm1", "262144", "--config"))
    assert config(vm).current_memory == 262144
    assert config(vm).memory == 1048576
    assert_schema_valid(vm.read_text())


@pytest.mark.parametrize("size,kib", [("1G", 1048576), ("512M", 524288), ("512MiB", 524288), ("1024k", 1024),
                                      ("1048576KiB", 1048576), ("512000KB", 500000)])
def test_setmem_scaled_sizes(vsh, vm, size, kib):
    ok(vsh("setmem", "vm1", size, "--config"))
    assert config(vm).current_memory == kib


def test_setmem_current_on_shut_off_domain_changes_config(vsh, vm):
    ok(vsh("setmem", "vm1", "256M", "--current"))
    assert config(vm).current_memory == 262144


def test_setmem_above_max_refused(vsh, vm, store_tree):
    before = store_tree()
    fails(vsh("setmem", "vm1", "2G", "--config"), "error: invalid argument: cannot set memory higher than max memory\n")
    assert store_tree() == before


def test_setmem_without_flags_needs_a_running_domain(vsh, vm, store_tree):
    before = store_tree()
    fails(vsh("setmem", "vm1", "1G"), "error: Requested operation is not valid: domain is not running\n"
                                      "hint: add --config to change the configuration used at the next boot\n")
    fails(vsh("setmem", "vm1", "1G", "--live"), "error: Requested operation is not valid: domain is not running\n")
    assert store_tree() == before


def test_setmem_bad_size(vsh, vm):
    fails(vsh("setmem", "vm1", "abc", "--config"),
          "error: Scaled numeric value 'abc' for <size> option is malformed or out of range\n")
    fails(vsh("setmem", "vm1", "0", "--config"), "error: invalid argument: memory size must not be zero\n")


def test_setmem_exclusive_flags(vsh, vm):
    fails(vsh("setmem", "vm1", "1G", "--current", "--config"),
          "error: Options --current and --config are mutually exclusive\n")


def test_setmem_unknown_domain(vsh, vm):
    res = vsh("setmem", "nosuch", "1G", "--config")
    assert res.status == 1 and res.err.startswith("error: failed to get domain 'nosuch'\n")


def test_setmem_quiet_and_json(vsh, vm):
    ok(vsh("-q", "setmem", "vm1", "1G", "--config"), "")
    res = vsh("setmem", "vm1", "512M", "--config", "--json")
    assert res.status == 0
    assert json.loads(res.out) == {"domain": "vm1", "memory_kib": 524288, "live": False, "config": True}


def test_setmem_live_goes_through_the_supervisor(vsh, vm, vsh_env, client_calls):
    make_running(vsh_env)
    ok(vsh("setmem", "vm1", "512M"))
    ok(vsh("setmem", "vm1", "256M", "--current"))
    assert client_calls == [("set_balloon", "vm1", 524288), ("set_balloon", "vm1", 262144)]
    assert config(vm).current_memory == 1048576  # the persistent config is untouched
    ok(vsh("setmem", "vm1", "128M", "--live", "--config"))
    assert client_calls[-1] == ("set_balloon", "vm1", 131072)
    assert config(vm).current_memory == 131072


def test_setmem_live_above_max(vsh, vm, vsh_env, client_calls):
    make_running(vsh_env)
    fails(vsh("setmem", "vm1", "4G", "--live"), "error: invalid argument: cannot set memory higher than max memory\n")
    assert client_calls == []


def test_setmem_live_without_supervisor_operation(vsh, vm, vsh_env, monkeypatch, store_tree):
    from vsh.kvm import client

    monkeypatch.delattr(client, "set_balloon", raising=False)
    make_running(vsh_env)
    before = store_tree()
    res = vsh("setmem", "vm1", "512M", "--live")
    assert res.status == 1
    assert "needs its supervisor's 'set_balloon' operation" in res.err
    assert store_tree() == before


# -- setmaxmem ------------------------------------------------------------------------------


def test_setmaxmem_config(vsh, vm):
    ok(vsh("setmaxmem", "vm1", "2G", "--config"))
    dom = config(vm)
    assert (dom.memory, dom.current_memory) == (2097152, 1048576)
    assert_schema_valid(vm.read_text())


def test_setmaxmem_below_current_lowers_current(vsh, vm):
    ok(vsh("setmaxmem", "vm1", "256M"))  # no flag on a shut-off domain: its config
    dom = config(vm)
    assert (dom.memory, dom.current_memory) == (262144, 262144)


def test_setmaxmem_on_running_domain(vsh, vm, vsh_env, store_tree):
    make_running(vsh_env)
    before = store_tree()
    err = ("error: Unable to change MaxMemorySize\n"
           "error: Requested operation is not valid: cannot resize the maximum memory on an active domain\n")
    fails(vsh("setmaxmem", "vm1", "4194304"), err)
    fails(vsh("setmaxmem", "vm1", "4194304", "--live"), err)
    assert store_tree() == before
    ok(vsh("setmaxmem", "vm1", "4194304", "--config"))
    assert config(vm).memory == 4194304


def test_setmaxmem_above_hotplug_maximum(vsh, define, make_xml, vsh_env, store_tree):
    define("big", make_xml("big", memory="<maxMemory slots='4' unit='GiB'>2</maxMemory><memory unit='GiB'>1</memory>"))
    before = store_tree()
    fails(vsh("setmaxmem", "big", "3G", "--config"),
          "error: Unable to change MaxMemorySize\n"
          "error: invalid argument: cannot set initial memory size greater than the maximum memory size\n")
    assert store_tree() == before


def test_setmaxmem_numa_refused(vsh, define, make_xml, store_tree):
    numa = ("<cpu><numa><cell id='0' cpus='0' memory='64' unit='MiB'/></numa></cpu>")
    define("numa", make_xml("numa", extra=numa))
    before = store_tree()
    res = vsh("setmaxmem", "numa", "128M", "--config")
    assert res.status == 1 and "NUMA nodes" in res.err
    assert store_tree() == before


# -- setvcpus -------------------------------------------------------------------------------


def test_setvcpus_config(vsh, vm):
    ok(vsh("setvcpus", "vm1", "2", "--config"))
    dom = config(vm)
    assert (dom.vcpus, dom.vcpu_current) == (4, 2)
    assert "<vcpu placement='static' current='2'>4</vcpu>" in vm.read_text()
    ok(vsh("vcpucount", "vm1"), "maximum      config         4\ncurrent      config         2\n\n")
    ok(vsh("setvcpus", "vm1", "4", "--config"))
    assert config(vm).vcpu_current is None  # libvirt drops current= when it equals the maximum
    assert_schema_valid(vm.read_text())


def test_setvcpus_above_maximum(vsh, vm, store_tree):
    before = store_tree()
    fails(vsh("setvcpus", "vm1", "8", "--config"),
          "error: invalid argument: requested cpu amount exceeds maximum (8 > 4)\n")
    assert store_tree() == before


def test_setvcpus_maximum(vsh, vm):
    ok(vsh("setvcpus", "vm1", "2", "--config"))
    ok(vsh("setvcpus", "vm1", "3", "--config", "--maximum"))
    ok(vsh("vcpucount", "vm1"), "maximum      config         3\ncurrent      config         2\n\n")
    ok(vsh("setvcpus", "vm1", "1", "--config", "--maximum"))
    dom = config(vm)
    assert (dom.vcpus, dom.vcpu_current) == (1, None)


def test_setvcpus_maximum_needs_config(vsh, vm):
    fails(vsh("setvcpus", "vm1", "3", "--maximum"), "error: Option --config is required by option --maximum\n")


def test_setvcpus_bad_counts(vsh, vm, store_tree):
    before = store_tree()
    fails(vsh("setvcpus", "vm1", "abc", "--config"),
          "error: Numeric value 'abc' for <count> option is malformed or out of range\n")
    fails(vsh("setvcpus", "vm1", "-1", "--config"),
          "error: Numeric value '-1' for <count> option is malformed or out of range\n")
    fails(vsh("setvcpus", "vm1", "0", "--config"), "error: invalid argument: vcpu count must not be zero\n")
    assert store_tree() == before


def test_setvcpus_topology(vsh, define, make_xml, store_tree):
    define("topo", make_xml("topo", vcpu="<vcpu>4</vcpu>",
                            extra="<cpu><topology sockets='1' dies='1' cores='2' threads='2'/></cpu>"))
    before = store_tree()
    fails(vsh("setvcpus", "topo", "6", "--config", "--maximum"),
          "error: invalid argument: CPU topology doesn't match the desired vcpu count\n")
    assert store_tree() == before
    ok(vsh("setvcpus", "topo", "2", "--config"))


def test_setvcpus_guest_and_exclusive(vsh, vm):
    fails(vsh("setvcpus", "vm1", "2", "--guest", "--config"),
          "error: Options --guest and --config are mutually exclusive\n")
    res = vsh("setvcpus", "vm1", "2", "--guest")
    assert res.status == 1 and "guest agent" in res.err


def test_setvcpus_keeps_vcpu_list_consistent(vsh, define, make_xml, vsh_env):
    vcpus = ("<vcpu current='1'>2</vcpu><vcpus><vcpu id='0' enabled='yes' hotpluggable='no' order='1'/>"
             "<vcpu id='1' enabled='no' hotpluggable='yes'/></vcpus>")
    define("hot", make_xml("hot", vcpu=vcpus))
    path = vsh_env.domains / "hot.xml"
    ok(vsh("setvcpus", "hot", "3", "--config", "--maximum"))
    ok(vsh("setvcpus", "hot", "3", "--config", "--hotpluggable"))
    text = path.read_text()
    assert ("<vcpus>\n    <vcpu id='0' enabled='yes' hotpluggable='no'/>\n"
            "    <vcpu id='1' enabled='yes' hotpluggable='yes'/>\n"
            "    <vcpu id='2' enabled='yes' hotpluggable='yes'/>\n  </vcpus>") in text
    assert_schema_valid(text)


def test_setvcpus_live(vsh, vm, vsh_env, client_calls):
    make_running(vsh_env)
    ok(vsh("setvcpus", "vm1", "2"))
    ok(vsh("setvcpus", "vm1", "3", "--live"))
    assert client_calls == [("set_vcpus", "vm1", 2), ("set_vcpus", "vm1", 3)]
    fails(vsh("setvcpus", "vm1", "9", "--live"),
          "error: invalid argument: requested vcpus is greater than max allowable vcpus for the live domain: 9 > 4\n")
    fails(vsh("setvcpus", "vm1", "3", "--live", "--config", "--maximum"),
          "error: invalid argument: maximum vcpu count of a live domain can't be modified\n")
    assert config(vm).vcpu_current is None


# -- edit -------------------------------------------------------------------------------------


@pytest.fixture
def editor(monkeypatch, vsh_env):
    """``editor(script)``: make $EDITOR a shell script that edits the file given as $1."""
    def set_editor(script: str, var: str = "EDITOR"):
        path = vsh_env.tmp / f"editor-{var}.sh"
        path.write_text("#!/bin/sh\n" + script + "\n")
        path.chmod(0o755)
        monkeypatch.setenv(var, str(path))
        return path

    return set_editor


def test_edit_not_changed(vsh, vm, editor, store_tree):
    editor("exit 0")
    before = store_tree()
    ok(vsh("edit", "vm1"), "Domain 'vm1' XML configuration not changed.\n\n")
    assert store_tree() == before


def test_edit_changed(vsh, vm, editor):
    editor("sed -i 's/1048576/524288/g' \"$1\"")
    ok(vsh("edit", "vm1"), "Domain 'vm1' XML configuration edited.\n\n")
    assert config(vm).memory == 524288
    assert_schema_valid(vm.read_text())


def test_edit_runs_the_editor_through_sh_with_arguments(vsh, vm, monkeypatch):
    monkeypatch.setenv("EDITOR", "false")
    monkeypatch.setenv("VISUAL", "sed -i s/1048576/262144/g")  # VISUAL wins, and has arguments
    ok(vsh("edit", "vm1"), "Domain 'vm1' XML configuration edited.\n\n")
    assert config(vm).memory == 262144


def test_edit_gets_the_inactive_xml_and_cleans_up(vsh, vm, editor, vsh_env):
    seen = vsh_env.tmp / "seen.xml"
    editor(f"cp \"$1\" {seen}; stat -c %a \"$1\" > {seen}.mode; echo \"$1\" > {seen}.path")
    ok(vsh("edit", "vm1"), "Domain 'vm1' XML configuration not changed.\n\n")
    assert seen.read_text() == vm.read_text()
    assert Path(seen.with_suffix(".xml.mode")).read_text().strip() == "600"
    assert not os.path.exists(Path(seen.with_suffix(".xml.path")).read_text().strip())


def test_edit_invalid_without_terminal_leaves_config(vsh, vm, editor, store_tree):
    editor("sed -i 's/<memory unit=.KiB.>1048576/<memory unit=\"KiB\">x/' \"$1\"")
    before = store_tree()
    res = vsh("edit", "vm1")
    assert (res.status, res.out) == (1, "\n")
    assert res.err.startswith("error: Failed.\nerror: invalid value 'x' for memory") or \
        res.err.startswith("error: Failed.\nerror: XML document failed to validate"), res.err
    assert "hint: the configuration of domain 'vm1' is unchanged\n" in res.err
    assert store_tree() == before


def test_edit_malformed_xml(vsh, vm, editor, store_tree):
    editor("sed -i 's/<\\/memory>/<\\/memry>/' \"$1\"")
    before = store_tree()
    res = vsh("edit", "vm1")
    assert res.status == 1
    assert "Opening and ending tag mismatch" in res.err
    assert store_tree() == before


def test_edit_editor_fails(vsh, vm, editor, store_tree):
    editor("exit 3")
    before = store_tree()
    res = vsh("edit", "vm1")
    assert res.status == 1
    assert res.err.startswith("error: the editor '")
    assert "exited with status 3" in res.err
    assert store_tree() == before


def test_edit_rename_with_same_uuid_refused(vsh, vm, editor, store_tree):
    editor("sed -i 's/<name>vm1</<name>vm2</' \"$1\"")
    before = store_tree()
    res = vsh("edit", "vm1")
    assert res.status == 1
    assert "is already defined with uuid" in res.err
    assert "domrename vm1 vm2" in res.err
    assert store_tree() == before


def test_edit_rename_without_uuid_defines_a_copy(vsh, vm, editor, vsh_env):
    editor("sed -i -e 's/<name>vm1</<name>vm2</' -e '/<uuid>/d' \"$1\"")
    ok(vsh("edit", "vm1"), "Domain 'vm2' XML configuration edited.\n\n")
    assert config(vm).name == "vm1"
    copy = config(vsh_env.domains / "vm2.xml")
    assert copy.uuid and copy.uuid != config(vm).uuid


def test_edit_name_of_another_domain_refused(vsh, vm, define, make_xml, editor, store_tree):
    define("other", make_xml("other"))
    editor("sed -i -e 's/<name>vm1</<name>other</' -e '/<uuid>/d' \"$1\"")
    before = store_tree()
    res = vsh("edit", "vm1")
    assert res.status == 1 and "already exists" in res.err
    assert store_tree() == before


@pytest.fixture
def terminal(monkeypatch):
    """Pretend stdin is a terminal and feed the answers to the retry question."""
    from vsh.commands import config as config_mod

    def answer(*keys):
        it = iter(keys)
        monkeypatch.setattr(config_mod, "_stdin_is_tty", lambda: True)
        monkeypatch.setattr(config_mod, "_read_key", lambda: next(it, None))

    return answer


def test_edit_retry_no(vsh, vm, editor, terminal, store_tree):
    editor("sed -i 's/<vcpu /<vcpux /; s/<\\/vcpu>/<\\/vcpux>/' \"$1\"")
    terminal("?", "n")
    before = store_tree()
    res = vsh("edit", "vm1")
    assert res.status == 1
    assert res.out == ("Failed. Try again? [y,n,i,f,?]: \n"
                       "y - yes, start editor again\nn - no, throw away my changes\n"
                       "i - turn off validation and try to redefine again\nf - force, try to redefine again\n"
                       "? - print this help\n"
                       "Failed. Try again? [y,n,i,f,?]: n\n\n")
    assert res.err.startswith("error: XML document failed to validate against schema")
    assert "not changed" in res.err
    assert store_tree() == before


def test_edit_retry_yes_edits_again(vsh, vm, editor, terminal, vsh_env):
    # first run breaks the memory, the second run fixes it
    count = vsh_env.tmp / "count"
    editor(f"if [ -e {count} ]; then sed -i 's/>oops</>262144</' \"$1\"; "
           f"else touch {count}; sed -i 's/>1048576</>oops</g' \"$1\"; fi")
    terminal("y")
    res = vsh("edit", "vm1")
    assert res.status == 0, res
    assert res.out == "Failed. Try again? [y,n,i,f,?]: y\nDomain 'vm1' XML configuration edited.\n\n"
    assert config(vm).memory == 262144


def test_edit_retry_without_validation(vsh, vm, editor, terminal):
    editor("sed -i 's/<clock/<clock/; s/<\\/devices>/<\\/devices><vsh-extra x=\"1\"\\/>/' \"$1\"")
    terminal("i")
    res = vsh("edit", "vm1")
    assert res.status == 0, res
    assert res.out.endswith("Domain 'vm1' XML configuration edited.\n\n")
    assert "<vsh-extra x='1'/>" in vm.read_text()


def test_edit_retry_force_then_give_up(vsh, vm, editor, terminal, store_tree):
    editor("sed -i 's/>1048576</>-5</g' \"$1\"")
    terminal("f", "x", "n")  # an unknown key asks again
    before = store_tree()
    res = vsh("edit", "vm1", "--skip-validate")
    assert res.status == 1
    assert res.out == ("Failed. Try again? [y,n,f,?]: f\n"
                       "Failed. Try again? [y,n,f,?]: Failed. Try again? [y,n,f,?]: n\n\n")
    assert res.err.count("error: invalid value '-5'") == 2
    assert store_tree() == before


def test_edit_unknown_domain(vsh, vm, editor):
    editor("exit 0")
    res = vsh("edit", "nosuch")
    assert res.status == 1 and res.err.startswith("error: failed to get domain 'nosuch'")


# -- attach-disk / detach-disk ------------------------------------------------------------------


def test_attach_disk_print_xml_is_virsh_exact(vsh):
    ok(vsh("attach-disk", "test", "/tmp/x.img", "vdc", "--print-xml"),
       "<disk type='file'>\n  <source file='/tmp/x.img'/>\n  <target dev='vdc'/>\n</disk>\n\n")


def test_attach_disk_print_xml_all_options(vsh):
    res = vsh("attach-disk", "nosuch", "/dev/null", "sdb", "--print-xml", "--targetbus", "scsi", "--driver", "qemu",
              "--subdriver", "raw", "--cache", "none", "--type", "cdrom", "--mode", "readonly", "--serial", "S1")
    ok(res, "<disk type='file' device='cdrom'>\n  <driver name='qemu' type='raw' cache='none'/>\n"
            "  <source file='/dev/null'/>\n  <target dev='sdb' bus='scsi'/>\n  <readonly/>\n"
            "  <serial>S1</serial>\n</disk>\n\n")
    res = vsh("attach-disk", "nosuch", "/dev/sdz", "vdb", "--print-xml", "--sourcetype", "block", "--mode", "shareable")
    ok(res, "<disk type='block'>\n  <source dev='/dev/sdz'/>\n  <target dev='vdb'/>\n  <shareable/>\n</disk>\n\n")


def test_attach_disk_print_xml_escapes(vsh):
    res = vsh("attach-disk", "x", "/tmp/a'b&c.img", "vdc", "--print-xml")
    ok(res, "<disk type='file'>\n  <source file='/tmp/a&apos;b&amp;c.img'/>\n  <target dev='vdc'/>\n</disk>\n\n")


def test_attach_disk_config(vsh, vm):
    ok(vsh("attach-disk", "vm1", "/var/tmp/data.qcow2", "vdb", "--subdriver", "qcow2", "--config"),
       "Disk attached successfully\n\n")
    text = vm.read_text()
    assert ("    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n"
            "      <source file='/var/tmp/data.qcow2'/>\n      <target dev='vdb' bus='virtio'/>\n"
            "      %s\n    </disk>\n" % A5) in text      # libvirt gives it an address on attach
    assert text.index("dev='vda'") < text.index("dev='vdb'") < text.index("<interface")
    assert_schema_valid(text)
    ok(vsh("domblklist", "vm1"), " Target   Source\n" + "-" * 31 + "\n"
                                 " vda      /var/tmp/vm1.img\n vdb      /var/tmp/data.qcow2\n\n")


def test_attach_disk_cdrom_and_relative_path(vsh, vm, vsh_env):
    ok(vsh("attach-disk", "vm1", "boot.iso", "sda", "--type", "cdrom", "--mode", "readonly", "--persistent"),
       "Disk attached successfully\n\n")
    disk = [d for d in config(vm).disks if d.target_dev == "sda"][0]
    assert (disk.device, disk.target_bus, disk.readonly, disk.source_file) == \
        ("cdrom", "scsi", True, str(vsh_env.tmp / "boot.iso"))
    assert_schema_valid(vm.read_text())


def test_attach_disk_current_on_shut_off_domain(vsh, vm):
    ok(vsh("attach-disk", "vm1", "/var/tmp/c.img", "vdc", "--current"), "Disk attached successfully\n\n")
    assert [d.target_dev for d in config(vm).disks] == ["vda", "vdc"]


def test_attach_disk_duplicate_target(vsh, vm, store_tree):
    before = store_tree()
    fails(vsh("attach-disk", "vm1", "/var/tmp/other.img", "vda", "--config"),
          "error: Failed to attach disk\nerror: Requested operation is not valid: target vda already exists\n")
    assert store_tree() == before


def test_attach_disk_without_flags_on_shut_off_domain(vsh, vm, store_tree):
    before = store_tree()
    fails(vsh("attach-disk", "vm1", "/var/tmp/x.img", "vdb"),
          "error: Failed to attach disk\nerror: Requested operation is not valid: domain is not running\n"
          "hint: add --config to change the configuration used at the next boot\n")
    assert store_tree() == before


def fake_hotplug(monkeypatch, fail: Exception | None = None) -> list:
    """Stand in for the supervisor's hot-plug operations (tests/integration has the real ones)."""
    from vsh.kvm import client

    calls: list = []

    def op(name):
        def run(rundir, *args, **kw):
            calls.append((name, *args))
            if fail is not None:
                raise fail
            return {}
        return run

    for name in ("attach_device", "detach_device", "change_media"):
        monkeypatch.setattr(client, name, op(name))
    return calls


def test_attach_disk_running_domain(vsh, vm, vsh_env, store_tree, monkeypatch):
    from vsh.core.errors import VshError

    make_running(vsh_env)
    before = store_tree()
    calls = fake_hotplug(monkeypatch, VshError("internal error: unable to execute QEMU command 'device_add': no"))
    for flags in ((), ("--live",), ("--persistent",), ("--current",)):
        res = vsh("attach-disk", "vm1", "/var/tmp/x.img", "vdb", *flags)
        assert res.status == 1
        assert res.err == ("error: Failed to attach disk\nerror: internal error: unable to execute QEMU command "
                           "'device_add': no\n")
    assert len(calls) == 4 and all(c[0] == "attach_device" for c in calls)
    assert store_tree() == before                   # a failed hot-plug changes neither definition
    calls = fake_hotplug(monkeypatch)
    ok(vsh("attach-disk", "vm1", "/var/tmp/x.img", "vdb", "--subdriver", "raw", "--live"),
       "Disk attached successfully\n\n")
    assert calls[-1][0] == "attach_device" and "<target dev='vdb' bus='virtio'/>" in calls[-1][1]
    assert store_tree() == before                   # --live: the persistent definition stays
    ok(vsh("attach-disk", "vm1", "/var/tmp/x.img", "vdb", "--subdriver", "raw", "--persistent"),
       "Disk attached successfully\n\n")
    assert len(calls) == 2 and calls[1][1] == calls[0][1]
    assert [d.target_dev for d in config(vm).disks] == ["vda", "vdb"]
    ok(vsh("attach-disk", "vm1", "/var/tmp/y.img", "vdc", "--config"), "Disk attached successfully\n\n")
    assert len(calls) == 2 and [d.target_dev for d in config(vm).disks] == ["vda", "vdb", "vdc"]


def test_attach_interface_running_domain_one_mac(vsh, vm, vsh_env, monkeypatch):
    make_running(vsh_env)
    calls = fake_hotplug(monkeypatch)
    ok(vsh("attach-interface", "vm1", "user", "--persistent"), "Interface attached successfully\n\n")
    mac = re.search(r"<mac address='([0-9a-f:]+)'/>", calls[0][1]).group(1)
    assert [n.mac for n in config(vm).interfaces][-1] == mac      # the live and the stored NIC agree


def test_attach_disk_bad_option_values(vsh, vm, store_tree):
    before = store_tree()
    res = vsh("attach-disk", "vm1", "/x.img", "vdb", "--type", "tape", "--config")
    assert res.status == 1 and "--type" in res.err
    fails(vsh("attach-disk", "vm1", "/x.img", "vdb", "--current", "--config"),
          "error: Options --current and --config are mutually exclusive\n")
    fails(vsh("attach-disk", "vm1", "/x.img", "vdb", "--persistent", "--current"),
          "error: Options --persistent and --current are mutually exclusive\n")
    assert store_tree() == before


def test_attach_disk_parse_errors(vsh):
    res = vsh("attach-disk", "vm1", "/x.img")
    assert (res.status, res.out, res.err) == (1, "", "error: command 'attach-disk' requires <target> option\n")


def test_attach_disk_quiet_json_readonly(vsh, vm, store_tree):
    ok(vsh("-q", "attach-disk", "vm1", "/var/tmp/q.img", "vdq", "--config"), "")
    res = vsh("attach-disk", "vm1", "/var/tmp/j.img", "vdj", "--config", "--json")
    data = json.loads(res.out)
    assert data["domain"] == "vm1" and data["config"] is True and data["live"] is False
    assert "<target dev='vdj' bus='virtio'/>" in data["xml"]
    before = store_tree()
    res = vsh("-r", "attach-disk", "vm1", "/var/tmp/r.img", "vdr", "--config")
    assert res.status == 1 and "read only" in res.err
    assert store_tree() == before
    ok(vsh("-r", "attach-disk", "vm1", "/var/tmp/r.img", "vdr", "--print-xml"),
       "<disk type='file'>\n  <source file='/var/tmp/r.img'/>\n  <target dev='vdr'/>\n</disk>\n\n")
    res = vsh("attach-disk", "x", "/a.img", "vdc", "--print-xml", "--json")
    assert json.loads(res.out) == {
        "xml": "<disk type='file'>\n  <source file='/a.img'/>\n  <target dev='vdc'/>\n</disk>\n"}


def test_disk_source_type():
    from vsh.commands.devices import disk_source_type

    assert disk_source_type("/dev/null", None, None) == "file"  # a character device is no block device
    assert disk_source_type("/nonexistent", None, None) == "file"
    assert disk_source_type("/nonexistent", "block", None) == "block"
    loops = [p for p in ("/dev/loop0", "/dev/sda", "/dev/vda", "/dev/nvme0n1") if os.path.exists(p)]
    import stat

    blocks = [p for p in loops if stat.S_ISBLK(os.stat(p).st_mode)]
    if blocks:
        assert disk_source_type(blocks[0], None, None) == "block"
        assert disk_source_type(blocks[0], None, "file") == "file"


def test_detach_disk_by_target_and_source(vsh, vm):
    ok(vsh("attach-disk", "vm1", "/var/tmp/b.img", "vdb", "--config"), "Disk attached successfully\n\n")
    ok(vsh("detach-disk", "vm1", "vdb", "--config"), "Disk detached successfully\n\n")
    ok(vsh("detach-disk", "vm1", "/var/tmp/vm1.img", "--config"), "Disk detached successfully\n\n")
    assert config(vm).disks == []
    assert_schema_valid(vm.read_text())


def test_detach_disk_not_found(vsh, vm, store_tree):
    before = store_tree()
    fails(vsh("detach-disk", "vm1", "vdb", "--config"), "error: No disk found whose source path or target is vdb\n")
    assert store_tree() == before


def test_detach_disk_print_xml_and_flags(vsh, vm, vsh_env, store_tree, monkeypatch):
    ok(vsh("detach-disk", "vm1", "vda", "--print-xml"),
       "<disk type='file' device='disk'>\n  <driver name='qemu' type='raw'/>\n  <source file='/var/tmp/vm1.img'/>\n"
       "  <target dev='vda' bus='virtio'/>\n"
       "  <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>\n</disk>\n\n")
    before = store_tree()
    fails(vsh("detach-disk", "vm1", "vda"),
          "error: Failed to detach disk\nerror: Requested operation is not valid: domain is not running\n"
          "hint: add --config to change the configuration used at the next boot\n")
    assert store_tree() == before
    make_running(vsh_env)
    before = store_tree()
    calls = fake_hotplug(monkeypatch)
    ok(vsh("detach-disk", "vm1", "vda"), "Disk detached successfully\n\n")
    assert calls and calls[0][0] == "detach_device" and "<target dev='vda' bus='virtio'/>" in calls[0][1]
    assert store_tree() == before                   # live only: the persistent definition stays
    ok(vsh("detach-disk", "vm1", "vda", "--config"), "Disk detached successfully\n\n")


# -- attach-interface / detach-interface ---------------------------------------------------------


def test_attach_interface_print_xml(vsh):
    ok(vsh("attach-interface", "x", "bridge", "br0", "--model", "virtio", "--print-xml"),
       "<interface type='bridge'>\n  <source bridge='br0'/>\n  <model type='virtio'/>\n</interface>\n\n")
    ok(vsh("attach-interface", "x", "--type", "network", "--source", "default", "--target", "vnet7",
           "--mac", "52:54:00:aa:bb:cc", "--script", "/etc/qemu-ifup", "--model", "e1000", "--print-xml"),
       "<interface type='network'>\n  <source network='default'/>\n  <target dev='vnet7'/>\n"
       "  <mac address='52:54:00:aa:bb:cc'/>\n  <script path='/etc/qemu-ifup'/>\n  <model type='e1000'/>\n"
       "</interface>\n\n")
    ok(vsh("attach-interface", "x", "direct", "eth0", "--source-mode", "vepa", "--print-xml"),
       "<interface type='direct'>\n  <source dev='eth0' mode='vepa'/>\n</interface>\n\n")
    ok(vsh("attach-interface", "x", "user", "--print-xml"), "<interface type='user'/>\n\n")


def test_attach_interface_user_needs_no_source(vsh, vm):
    ok(vsh("attach-interface", "vm1", "user", "--model", "virtio", "--config"), "Interface attached successfully\n\n")
    nics = config(vm).interfaces
    assert [n.type for n in nics] == ["network", "user"]
    assert nics[1].mac and nics[1].mac.startswith("52:54:00:")
    assert_schema_valid(vm.read_text())


def test_attach_interface_stored_in_libvirt_order(vsh, vm):
    ok(vsh("attach-interface", "vm1", "bridge", "br0", "--target", "vnet3", "--mac", "52:54:00:00:00:01",
           "--model", "virtio", "--config"), "Interface attached successfully\n\n")
    assert ("    <interface type='bridge'>\n      <mac address='52:54:00:00:00:01'/>\n"
            "      <source bridge='br0'/>\n      <target dev='vnet3'/>\n      <model type='virtio'/>\n"
            "      %s\n    </interface>\n" % A5) in vm.read_text()
    ok(vsh("domiflist", "vm1"),
       " Interface   Type      Source    Model    MAC\n" + "-" * 61 + "\n"
       " -           network   default   -        52:54:00:11:22:33\n"
       " vnet3       bridge    br0       virtio   52:54:00:00:00:01\n\n")
    assert_schema_valid(vm.read_text())


def test_attach_interface_errors(vsh, vm, store_tree):
    before = store_tree()
    fails(vsh("attach-interface", "vm1", "network", "--config"),
          "error: command 'attach-interface' requires <source> option for interface type 'network'\n")
    fails(vsh("attach-interface", "vm1", "network", "default", "--mac", "52:54:00:11:22:33", "--config"),
          "error: Failed to attach interface\nerror: Requested operation is not valid: an interface with MAC "
          "address 52:54:00:11:22:33 already exists\n")
    fails(vsh("attach-interface", "vm1", "network", "default", "--mac", "zz:54:00:11:22:33", "--config"),
          "error: Failed to attach interface\nerror: unable to parse mac address 'zz:54:00:11:22:33'\n")
    fails(vsh("attach-interface", "vm1", "network", "default", "--mac", "01:54:00:11:22:33", "--config"),
          "error: Failed to attach interface\n"
          "error: expected unicast mac address, found multicast '01:54:00:11:22:33'\n")
    res = vsh("attach-interface", "vm1", "vhostuser", "x", "--config")
    assert res.status == 1 and "vhostuser" in res.err
    assert store_tree() == before


def test_detach_interface(vsh, vm, store_tree):
    ok(vsh("attach-interface", "vm1", "network", "default", "--mac", "52:54:00:00:00:02", "--config"),
       "Interface attached successfully\n\n")
    before = store_tree()
    fails(vsh("detach-interface", "vm1", "network", "--config"),
          "error: Domain has 2 interfaces. Please specify which one to detach using --mac\n"
          "error: Failed to detach interface\n")
    fails(vsh("detach-interface", "vm1", "network", "--mac", "52:54:00:99:99:99", "--config"),
          "error: No interface with MAC address 52:54:00:99:99:99 was found\nerror: Failed to detach interface\n")
    fails(vsh("detach-interface", "vm1", "bridge", "--config"),
          "error: No interface found\nerror: Failed to detach interface\n")
    assert store_tree() == before
    ok(vsh("detach-interface", "vm1", "network", "--mac", "52:54:00:00:00:02", "--print-xml"),
       "<interface type='network'>\n  <mac address='52:54:00:00:00:02'/>\n  <source network='default'/>\n"
       "  %s\n</interface>\n\n" % A5)
    ok(vsh("detach-interface", "vm1", "network", "--mac", "52:54:00:00:00:02".upper(), "--config"),
       "Interface detached successfully\n\n")
    ok(vsh("detach-interface", "vm1", "network", "--persistent"), "Interface detached successfully\n\n")
    assert config(vm).interfaces == []
    assert_schema_valid(vm.read_text())


def test_detach_interface_running(vsh, vm, vsh_env, store_tree, monkeypatch):
    from vsh.core.errors import Timeout

    make_running(vsh_env)
    before = store_tree()
    fake_hotplug(monkeypatch, Timeout("the guest did not release device 'net0' within 20 s"))
    res = vsh("detach-interface", "vm1", "network", "--persistent")
    assert res.status == 1
    assert res.err == ("error: Failed to detach interface\nerror: the guest did not release device 'net0' "
                       "within 20 s\n")
    assert store_tree() == before


# -- attach-device / detach-device -----------------------------------------------------------------


@pytest.fixture
def devfile(vsh_env):
    def write(text: str, name: str = "dev.xml") -> str:
        path = vsh_env.tmp / name
        path.write_text(text)
        return str(path)

    return write


RNG = "<rng model='virtio'>\n  <backend model='random'>/dev/urandom</backend>\n</rng>\n"


def test_attach_and_detach_device(vsh, vm, devfile):
    f = devfile(RNG)
    ok(vsh("attach-device", "vm1", f, "--config"), "Device attached successfully\n\n")
    assert len(config(vm).devices("rng")) == 1
    assert_schema_valid(vm.read_text())
    ok(vsh("detach-device", "vm1", devfile("<rng model='virtio'/>", "rng-short.xml"), "--config"),
       "Device detached successfully\n\n")
    assert config(vm).devices("rng") == []


def test_attach_device_disk_and_interface(vsh, vm, devfile):
    disk = devfile("<disk type='file' device='disk'>\n  <source file='/var/tmp/d.img'/>\n"
                   "  <target dev='vdd'/>\n</disk>\n")
    ok(vsh("attach-device", "vm1", disk, "--persistent"), "Device attached successfully\n\n")
    assert config(vm).disks[-1].target_bus == "virtio"
    nic = devfile("<interface type='user'><model type='virtio'/></interface>", "nic.xml")
    ok(vsh("attach-device", "vm1", nic, "--config"), "Device attached successfully\n\n")
    assert config(vm).interfaces[-1].mac
    serial = devfile("<serial type='pty'><target port='0'/></serial>", "serial.xml")
    ok(vsh("attach-device", "vm1", serial, "--config"), "Device attached successfully\n\n")
    assert_schema_valid(vm.read_text())
    # a disk is found by its target alone
    ok(vsh("detach-device", "vm1", devfile("<disk><target dev='vdd'/></disk>", "d2.xml"), "--config"),
       "Device detached successfully\n\n")
    assert [d.target_dev for d in config(vm).disks] == ["vda"]


def test_attach_device_errors(vsh, vm, devfile, vsh_env, store_tree):
    before = store_tree()
    dup = devfile("<disk type='file'><source file='/x.img'/><target dev='vda'/></disk>")
    fails(vsh("attach-device", "vm1", dup, "--config"),
          f"error: Failed to attach device from {dup}\n"
          "error: Requested operation is not valid: target vda already exists\n")
    bad = devfile("<foo/>", "foo.xml")
    fails(vsh("attach-device", "vm1", bad, "--config"),
          f"error: Failed to attach device from {bad}\nerror: XML error: unknown device type 'foo'\n")
    broken = devfile("<disk type='file'>\n  <source file='/x.img'>\n</disk>\n", "broken.xml")
    res = vsh("attach-device", "vm1", broken, "--config")
    assert res.status == 1
    assert res.err.startswith(f"error: Failed to attach device from {broken}\nerror: XML error: (device_definition):3:")
    evil = devfile('<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
                   "<disk type='file'><source file='&x;'/><target dev='vdz'/></disk>\n", "evil.xml")
    res = vsh("attach-device", "vm1", evil, "--config")
    assert res.status == 1 and "DTD" in res.err and "root:" not in res.err
    missing = str(vsh_env.tmp / "missing.xml")
    fails(vsh("attach-device", "vm1", missing, "--config"),
          f"error: Failed to open file '{missing}': No such file or directory\n")
    second_balloon = devfile("<memballoon model='virtio'/>", "b.xml")
    res = vsh("attach-device", "vm1", second_balloon, "--config")   # define gave it libvirt's default one
    assert res.status == 1 and "already has a memballoon" in res.err
    assert store_tree() == before


def test_detach_device_errors(vsh, vm, devfile, store_tree):
    two = devfile("<serial type='pty'><target port='0'/></serial>", "s0.xml")
    ok(vsh("attach-device", "vm1", two, "--config"), "Device attached successfully\n\n")
    ok(vsh("attach-device", "vm1", devfile("<serial type='pty'><target port='1'/></serial>", "s1.xml"), "--config"),
       "Device attached successfully\n\n")
    before = store_tree()
    generic = devfile("<serial type='pty'/>", "s.xml")
    res = vsh("detach-device", "vm1", generic, "--config")
    assert res.status == 1
    assert res.err.startswith(f"error: Failed to detach device from {generic}\n"
                              "error: operation failed: 2 <serial> devices")
    none = devfile("<watchdog model='i6300esb'/>", "w.xml")
    res = vsh("detach-device", "vm1", none, "--config")
    assert res.status == 1 and "device not found" in res.err
    res = vsh("detach-device", "vm1", generic)
    assert res.status == 1 and "domain is not running" in res.err
    assert store_tree() == before
    ok(vsh("detach-device", "vm1", devfile("<serial><target port='1'/></serial>", "s1b.xml"), "--config"),
       "Device detached successfully\n\n")
    ports = [s.target_port for s in config(vm).devices("serial")]
    assert ports == [0]


def test_failed_write_leaves_config(vsh, vm, monkeypatch, store_tree):
    """An error while writing (disk full...) leaves the old file and no temp file behind."""
    from vsh.core import store as store_mod

    real = os.rename

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    before = store_tree()
    monkeypatch.setattr(store_mod.os, "rename", boom)
    res = vsh("attach-disk", "vm1", "/var/tmp/z.img", "vdz", "--config")
    monkeypatch.setattr(store_mod.os, "rename", real)
    assert res.status == 1 and "No space left on device" in res.err
    assert store_tree() == before


def test_subprocess_single_shot(vsh_proc, vm):
    """The same through a real process: exit statuses and streams."""
    res = vsh_proc("attach-disk", "vm1", "/var/tmp/s.img", "vds", "--config")
    assert (res.status, res.out, res.err) == (0, "Disk attached successfully\n\n", "")
    res = vsh_proc("setvcpus vm1 8 --config; setmem vm1 128M --config")
    assert (res.status, res.out) == (0, "\n\n")
    assert res.err == "error: invalid argument: requested cpu amount exceeds maximum (8 > 4)\n"
    assert config(vm).current_memory == 131072


def test_edit_retry_on_a_real_terminal(vm, vsh_env):
    """The retry question on a pseudo-terminal: one key, no Enter; '?' lists the choices."""
    pexpect = pytest.importorskip("pexpect")
    import sys

    count = vsh_env.tmp / "count"
    script = vsh_env.tmp / "ed.sh"
    script.write_text("#!/bin/sh\n"
                      f"if [ -e {count} ]; then sed -i 's/>oops</>524288</' \"$1\"; "
                      f"else touch {count}; sed -i 's/>1048576</>oops</g' \"$1\"; fi\n")
    script.chmod(0o755)
    env = dict(os.environ, EDITOR=str(script), TERM="dumb")
    child = pexpect.spawn(sys.executable, ["-m", "vsh", "edit", "vm1"], env=env, encoding="utf-8", timeout=30)
    try:
        child.expect_exact("Failed. Try again? [y,n,i,f,?]: ")
        assert "error: " in child.before
        child.send("?")
        child.expect_exact("? - print this help")
        child.expect_exact("Failed. Try again? [y,n,i,f,?]: ")
        child.send("y")
        child.expect_exact("Domain 'vm1' XML configuration edited.")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert config(vm).memory == 524288


def test_live_and_config_change_checks_config_first(vsh, vm, vsh_env, client_calls, define, make_xml):
    """--live --config: when the persistent definition refuses, the live domain is not touched."""
    make_running(vsh_env)
    ok(vsh("setmaxmem", "vm1", "256M", "--config"))  # the config is now smaller than the live domain
    fails(vsh("setmem", "vm1", "512M", "--live", "--config"),
          "error: invalid argument: cannot set memory higher than max memory\n")
    ok(vsh("setvcpus", "vm1", "1", "--config", "--maximum"))
    fails(vsh("setvcpus", "vm1", "2", "--live", "--config"),
          "error: invalid argument: requested cpu amount exceeds maximum (2 > 1)\n")
    assert client_calls == []
