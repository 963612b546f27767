"""vcpupin, emulatorpin, iothreadinfo, schedinfo, blkdeviotune, domiftune on a shut-off domain
(the --config paths), and the parsing and merging rules of vsh.api.tuning / vsh.api.local.tuning.
The live paths run on a real guest in tests/integration/test_tuning_vm.py."""

from __future__ import annotations

import json
import os

import pytest

from vsh.api.local.tuning import check_sched_value, merge_iotune, sort_cputune
from vsh.api.tuning import IOTUNE_PARAMS, parse_bandwidth
from vsh.core.domain import Domain, format_cpuset
from vsh.core.errors import InvalidArgument

MAC = "52:54:00:11:22:33"
DEVICES = ("<disk type='file' device='disk'><source file='/var/tmp/t1.img'/><target dev='vda' bus='virtio'/>"
           f"</disk>\n    <interface type='network'><mac address='{MAC}'/><source network='default'/></interface>")
NCPU = os.cpu_count() or 1
WHOLE = "0" if NCPU == 1 else f"0-{NCPU - 1}"
SCHEMA_PATH = "/usr/share/libvirt/schemas/domain.rng"


@pytest.fixture
def vm(define, make_xml, vsh_env):
    define("t1", make_xml("t1", vcpu="<vcpu>2</vcpu>\n  <iothreads>2</iothreads>", devices=DEVICES))
    return vsh_env.domains / "t1.xml"


def valid(path) -> str:
    """The stored XML, checked against libvirt's RelaxNG schema where it is installed."""
    text = path.read_text()
    if os.path.exists(SCHEMA_PATH):
        from lxml import etree

        rng = etree.RelaxNG(etree.parse(SCHEMA_PATH))
        assert rng.validate(etree.fromstring(text.encode())), f"{rng.error_log}\n{text}"
    return text


def test_format_cpuset_makes_ranges():
    assert format_cpuset([3, 0, 1, 2, 6, 8, 9]) == "0-3,6,8-9"
    assert format_cpuset([]) == ""


@pytest.mark.parametrize("text,inbound,want", [
    ("100", True, {"average": 100}), ("100,200,300,400", True, {"average": 100, "peak": 200, "burst": 300,
                                                                 "floor": 400}),
    ("100,,300", False, {"average": 100, "burst": 300}), ("0", False, {"average": 0}),
    (",,,50", True, {"floor": 50})])
def test_parse_bandwidth(text, inbound, want):
    assert parse_bandwidth(text, inbound) == want


@pytest.mark.parametrize("text,inbound", [("1,2,3,4", False), ("x", True), ("", True), (",5", False)])
def test_parse_bandwidth_refuses(text, inbound):
    with pytest.raises(InvalidArgument):
        parse_bandwidth(text, inbound)


def test_merge_iotune_replaces_a_group_and_keeps_the_others():
    old = dict.fromkeys(IOTUNE_PARAMS, 0) | {"total_iops_sec": 200, "read_bytes_sec": 1024}
    new = merge_iotune(old, {"write_iops_sec": 50})
    assert (new["total_iops_sec"], new["write_iops_sec"], new["read_bytes_sec"]) == (0, 50, 1024)


@pytest.mark.parametrize("name,value,ok", [("cpu_shares", 512, True), ("cpu_shares", 1, False),
                                           ("vcpu_period", 999, False), ("vcpu_quota", -1, True),
                                           ("global_quota", 500, False), ("nope", 1, False)])
def test_check_sched_value(name, value, ok):
    if ok:
        check_sched_value(name, value)
    else:
        with pytest.raises(InvalidArgument):
            check_sched_value(name, value)


def test_sort_cputune_puts_children_in_libvirt_order():
    d = Domain.parse("<domain type='qemu'><name>x</name><memory>1024</memory><cputune>"
                     "<emulatorpin cpuset='0'/><vcpupin vcpu='1' cpuset='0'/><vcpupin vcpu='0' cpuset='0'/>"
                     "<quota>2000</quota><shares>5</shares></cputune></domain>")
    sort_cputune(d.node)
    assert [(el.tag, el.get("vcpu")) for el in d.node.find("cputune")] == [
        ("shares", None), ("quota", None), ("vcpupin", "0"), ("vcpupin", "1"), ("emulatorpin", None)]


def test_vcpupin_and_emulatorpin_config(vsh, vm):
    res = vsh("vcpupin", "t1")
    assert res.out == f" VCPU   CPU Affinity\n----------------------\n 0      {WHOLE}\n 1      {WHOLE}\n\n"
    assert vsh("vcpupin", "t1", "1", "0").status == 0
    assert "<vcpupin vcpu='1' cpuset='0'/>" in valid(vm)
    assert json.loads(vsh("vcpupin", "t1", "--vcpu", "1", "--json").out) == [{"vcpu": 1, "cpus": [0]}]
    res = vsh("vcpupin", "t1", "2", "0")
    assert (res.status, res.err) == (1, "error: invalid argument: vcpu 2 is out of range of persistent cpu "
                                        "count 2\n")
    assert vsh("vcpupin", "t1", "0", "x-1").err == "error: cpulist: Invalid format.\n"
    assert vsh("vcpupin", "t1", "0", "--live").err == "error: Requested operation is not valid: domain is not running\n"
    assert vsh("vcpupin", "t1", "--cpulist", "0").err == "error: vcpupin: Missing vCPU number in pin mode.\n"
    assert vsh("emulatorpin", "t1", "0").status == 0
    assert "<emulatorpin cpuset='0'/>" in valid(vm)
    assert vsh("emulatorpin", "t1").out == "emulator: CPU Affinity\n----------------------------------\n       *: 0\n\n"
    assert vsh("-q", "emulatorpin", "t1").out == "0\n"
    assert vsh("-r", "emulatorpin", "t1", "0").err == \
        "error: operation forbidden: read only access prevents virDomainPinEmulator\n"


def test_iothreadinfo_config(vsh, vm, define, make_xml):
    res = vsh("iothreadinfo", "t1")
    assert res.out == f" IOThread ID   CPU Affinity\n-----------------------------\n 1             {WHOLE}\n 2             {WHOLE}\n\n"
    define("t2", make_xml("t2"))
    assert vsh("iothreadinfo", "t2").out == "No IOThreads found for the domain\n"


def test_schedinfo_config(vsh, vm):
    res = vsh("schedinfo", "t1", "cpu_shares=512", "--set", "vcpu_quota=5000")
    assert res.out == ("Scheduler      : posix\ncpu_shares     : 512\nvcpu_period    : 0\nvcpu_quota     : 5000\n"
                       "emulator_period: 0\nemulator_quota : 0\nglobal_period  : 0\nglobal_quota   : 0\n"
                       "iothread_period: 0\niothread_quota : 0\n\n")
    text = valid(vm)
    assert "<shares>512</shares>" in text and "<quota>5000</quota>" in text
    assert vsh("schedinfo", "t1", "bogus").err == "error: Invalid syntax for --set, expecting name=value\n"
    assert vsh("schedinfo", "t1", "foo=1").err == "error: invalid scheduler option: foo\n"
    assert vsh("schedinfo", "t1", "cpu_shares=1").err == \
        "error: invalid argument: value of 'cpu_shares' is out of range: 1\n"
    assert json.loads(vsh("schedinfo", "t1", "--json").out)["params"]["cpu_shares"] == 512


def test_blkdeviotune_config(vsh, vm):
    out = vsh("blkdeviotune", "t1", "vda").out
    assert out.startswith("total_bytes_sec: 0\nread_bytes_sec : 0\nwrite_bytes_sec: 0\n")
    assert "total_bytes_sec_max: 0\n" in out and "group_name     : \n" in out
    assert vsh("blkdeviotune", "t1", "vda", "--read-bytes-sec", "1M", "--total-iops-sec", "200").status == 0
    text = valid(vm)
    assert "<read_bytes_sec>1048576</read_bytes_sec>" in text and "<total_iops_sec>200</total_iops_sec>" in text
    assert vsh("blkdeviotune", "t1", "vda", "--read-iops-sec", "5").status == 0
    data = json.loads(vsh("blkdeviotune", "t1", "vda", "--json").out)
    assert (data["total_iops_sec"], data["read_iops_sec"], data["read_bytes_sec"]) == (0, 5, 1 << 20)
    res = vsh("blkdeviotune", "t1", "vda", "--total-bytes-sec", "5", "--write-bytes-sec", "4")
    assert res.err == ("error: Unable to change block I/O throttle\nerror: invalid argument: total and read/write "
                       "of bytes_sec cannot be set at the same time\n")
    assert vsh("blkdeviotune", "t1", "vdz").err == ("error: Unable to get block I/O throttle parameters\nerror: "
                                                     "invalid argument: disk 'vdz' was not found in the domain config\n")


def test_domiftune_config_and_live_refusal(vsh, vm):
    assert vsh("domiftune", "t1", MAC, "--inbound", "100,200", "--outbound", "50").status == 0
    assert "<inbound average='100' peak='200'/>" in valid(vm)
    assert vsh("domiftune", "t1", MAC).out == (
        "inbound.average: 100\ninbound.peak   : 200\ninbound.burst  : 0\ninbound.floor  : 0\n"
        "outbound.average: 50\noutbound.peak  : 0\noutbound.burst : 0\n\n")
    assert vsh("domiftune", "t1", MAC, "--inbound", "0", "--outbound", "0").status == 0
    assert "<bandwidth" not in valid(vm)
    assert vsh("domiftune", "t1", "nope").err == ("error: Unable to get interface parameters\nerror: invalid "
                                                   "argument: Interface 'nope' not found in domain 't1'\n")
    assert vsh("domiftune", "t1", MAC, "--inbound", "1,2,3,4,5").err == "error: inbound format is incorrect\n"


def test_a_start_refuses_pins_on_cpus_this_process_cannot_use(vsh, define, make_xml):
    from vsh.api.local.threads import check_cputune

    bad = max(os.sched_getaffinity(0)) + 1
    d = Domain.parse(f"<domain type='qemu'><name>x</name><memory>1024</memory><vcpu>1</vcpu><cputune>"
                     f"<vcpupin vcpu='0' cpuset='{bad}'/></cputune></domain>")
    with pytest.raises(InvalidArgument, match=f"<vcpupin> names host CPU {bad}, which is not available"):
        check_cputune(d)
    check_cputune(Domain.parse("<domain type='qemu'><name>x</name><memory>1024</memory><vcpu cpuset='0'>1</vcpu>"
                               "</domain>"))
