"""Block-job commands without a running guest: offline blockresize (qemu-img), the errors of a
shut-off domain, virsh's option checks, and the disk chains a finished job writes."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest


def _disk_domain(define, vsh_env, fmt: str = "qcow2"):
    disk = vsh_env.tmp / f"d.{fmt}"
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(disk), "16M"], check=True)
    define("vm1", xml=f"""<domain type='qemu'>
  <name>vm1</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='{fmt}'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
""")
    return disk


def _size(path) -> int:
    out = subprocess.run(["qemu-img", "info", "--output=json", str(path)], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)["virtual-size"]


@pytest.mark.skipif(not shutil.which("qemu-img"), reason="needs qemu-img")
@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_blockresize_offline(vsh, define, vsh_env, fmt):
    disk = _disk_domain(define, vsh_env, fmt)
    res = vsh("blockresize", "vm1", "vda", "20M")
    assert (res.status, res.out, res.err) == (0, "Block device 'vda' is resized\n", "")
    assert _size(disk) == 20 << 20
    # by path, in KiB by default, bytes when not a multiple of KiB
    assert vsh("blockresize", "vm1", str(disk), "24576").status == 0
    assert _size(disk) == 24 << 20
    assert json.loads(vsh("blockresize", "vm1", "vda", "25M", "--json").out) == {
        "disk": "vda", "target": "vda", "size": 25 << 20, "live": False}
    res = vsh("blockresize", "vm1", "vdb", "1G")
    assert (res.status, res.err) == (1, "error: Failed to resize block device 'vdb'\n"
                                        "error: invalid argument: disk 'vdb' not found in domain\n")


@pytest.mark.skipif(not shutil.which("qemu-img"), reason="needs qemu-img")
def test_shut_off_domain_has_no_jobs(vsh, define, vsh_env):
    _disk_domain(define, vsh_env)
    not_running = "error: Requested operation is not valid: domain is not running\n"
    for argv in (("domblkerror", "vm1"), ("blockjob", "vm1", "vda"), ("blockpull", "vm1", "vda"),
                 ("blockcommit", "vm1", "vda", "--active"), ("blockcopy", "vm1", "vda", "--dest", "/tmp/x"),
                 ("domjobinfo", "vm1"), ("domjobabort", "vm1")):
        res = vsh(*argv)
        assert (res.status, res.err) == (1, not_running), argv


@pytest.mark.parametrize("argv, message", [
    (("blockpull", "vm1", "vda", "--verbose"), "Option --wait is required by option --verbose"),
    (("blockpull", "vm1", "vda", "--async"), "Option --wait is required by option --async"),
    (("blockcommit", "vm1", "vda", "--verbose"),
     "--verbose requires at least one of --timeout, --wait, --pivot, or --keep-overlay"),
    (("blockcopy", "vm1", "vda", "--dest", "/x", "--async"),
     "--async requires at least one of --timeout, --wait, --pivot, or --finish"),
    (("blockcopy", "vm1", "vda"), "need either --dest or --xml"),
    (("blockcommit", "vm1", "vda", "--pivot", "--keep-overlay"),
     "Options --pivot and --keep-overlay are mutually exclusive"),
    (("blockjob", "vm1", "vda", "--raw", "--abort"), "Options --raw and --abort are mutually exclusive"),
    (("domjobinfo", "vm1", "--keep-completed"), "Option --completed is required by option --keep-completed"),
    (("blockpull", "vm1", "vda", "--wait", "--timeout", "0"),
     "Numeric value for <timeout> option is malformed or out of range"),
])
def test_option_checks(vsh, define, argv, message):
    define("vm1")
    res = vsh(*argv)
    assert (res.status, res.err) == (1, f"error: {message}\n"), res


def test_set_chain_writes_libvirt_backing_stores():
    from lxml import etree

    from vsh.api.local.blockjobs import set_chain

    el = etree.fromstring("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                          "<source file='/i/top.qcow2'/><backingStore type='file'><format type='raw'/>"
                          "<source file='/i/base.raw'/></backingStore><target dev='vda' bus='virtio'/></disk>")
    set_chain(el, [["/i/new.qcow2", "qcow2"], ["/i/mid.qcow2", "qcow2"], ["/i/base.qcow2", "qcow2"]])
    assert etree.tostring(el).decode() == (
        '<disk type="file" device="disk"><driver name="qemu" type="qcow2"/><source file="/i/new.qcow2"/>'
        '<backingStore type="file"><format type="qcow2"/><source file="/i/mid.qcow2"/>'
        '<backingStore type="file"><format type="qcow2"/><source file="/i/base.qcow2"/><backingStore/>'
        '</backingStore></backingStore><target dev="vda" bus="virtio"/></disk>')
    set_chain(el, [["/dev/sdz", "raw"]], block_top=True)
    assert etree.tostring(el).decode() == (
        '<disk type="block" device="disk"><driver name="qemu" type="raw"/><source dev="/dev/sdz"/>'
        '<target dev="vda" bus="virtio"/></disk>')


def test_progress_line(capsys):
    import sys

    from vsh.ui.progress import JobProgress, percent

    assert [percent(r, 100) for r in (100, 58, 1, 0)] == [0, 42, 99, 100]

    class Ctx:
        err = sys.stderr

    JobProgress(Ctx(), "Block Pull")(42, 100)
    assert capsys.readouterr().err == "\rBlock Pull: [ 42 %]"
