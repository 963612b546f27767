"""Hostile and broken input through the real ``vsh start`` (issue 3 §6).

Each test defines a domain in the test's private store and runs ``vsh start`` (in
process; the supervisor and QEMU are real processes).  What must hold for each:
a clear error that names the culprit, nothing left running, no runtime leftovers
where nothing was launched, and the domain still shut off.

Only the raw-image test boots a guest (the test guest from scripts/build-test-guest,
under TCG); the others fail before QEMU runs or start it paused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]
REAL_ENV = dict(os.environ)          # before conftest points HOME/XDG into tmp dirs


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def guest():
    script = ROOT / "scripts" / "build-test-guest"
    if not script.exists():
        pytest.skip("scripts/build-test-guest is missing")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=REAL_ENV, timeout=900)
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.skip(f"no test guest: {proc.stderr.strip()[-300:]}")
    return json.loads((Path(proc.stdout.strip().splitlines()[-1]) / "manifest.json").read_text())


def domain_xml(name: str, m: dict, *, dtype: str = "qemu", kernel: str | None = None,
               disks: str = "") -> str:
    cmdline = f"{m['cmdline']} {m.get('microvm_cmdline_extra', '')}".strip()
    return f"""<domain type='{dtype}'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{kernel or m.get('vmlinux') or m['kernel']}</kernel>
    <initrd>{m['initrd']}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    {disks}
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>
"""


def disk(path: Path, fmt: str, extra: str = "") -> str:
    return (f"<disk type='file' device='disk'><driver name='qemu' type='{fmt}'/>"
            f"<source file='{path}'/>{extra}<target dev='vda' bus='virtio'/></disk>")


def qemu_img(*args) -> None:
    subprocess.run(["qemu-img", *map(str, args)], check=True, capture_output=True, timeout=60)


def rundir(vsh_env, name: str) -> Path:
    return vsh_env.store / "run" / name


def processes_using(path: Path) -> list[int]:
    """Live processes whose command line or open files name ``path`` (QEMU, supervisor)."""
    found, needle = [], str(path)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            names = [Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")]
            for fd in os.listdir(f"/proc/{entry}/fd"):
                try:
                    names.append(os.readlink(f"/proc/{entry}/fd/{fd}"))
                except OSError:
                    pass
            if Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z":
                continue
        except OSError:
            continue
        if any(needle in n for n in names):
            found.append(int(entry))
    return found


def wait_until(pred, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def define(vsh, tmp_path: Path, name: str, xml: str) -> None:
    path = tmp_path / f"{name}.xml"
    path.write_text(xml)
    res = vsh("define", path)
    assert res.status == 0, res


def assert_not_started(vsh, vsh_env, name: str, res, *needles: str) -> None:
    """The start failed with an error naming ``needles``; nothing runs; nothing was created."""
    assert res.status == 1, res
    err = res.err
    assert err.startswith(f"error: Failed to start domain '{name}'\n"), err
    for needle in needles:
        assert needle in err, (needle, err)
    assert "Traceback" not in err
    assert not rundir(vsh_env, name).exists(), sorted(os.listdir(rundir(vsh_env, name)))
    assert vsh("domstate", name).out.strip() == "shut off"
    assert "running" not in vsh("list", "--all").out


# --------------------------------------------------------------------------------------
# refused before QEMU runs
# --------------------------------------------------------------------------------------

def test_missing_disk_file(vsh, vsh_env, guest, tmp_path):
    missing = tmp_path / "images" / "gone.img"
    define(vsh, tmp_path, "h-missing", domain_xml("h-missing", guest, disks=disk(missing, "raw")))
    res = vsh("start", "h-missing")
    assert_not_started(vsh, vsh_env, "h-missing", res, str(missing), "No such file or directory",
                       "disk 'vda'")


def test_missing_kernel_file(vsh, vsh_env, guest, tmp_path):
    missing = tmp_path / "vmlinuz-gone"
    define(vsh, tmp_path, "h-nokernel", domain_xml("h-nokernel", guest, kernel=str(missing)))
    res = vsh("start", "h-nokernel")
    assert_not_started(vsh, vsh_env, "h-nokernel", res, str(missing), "<kernel>")


def test_qcow2_backing_file_etc_passwd_is_not_followed(vsh, vsh_env, guest, tmp_path):
    image = tmp_path / "evil.qcow2"
    qemu_img("create", "-f", "qcow2", "-F", "raw", "-b", "/etc/passwd", image, "1M")
    define(vsh, tmp_path, "h-backing", domain_xml("h-backing", guest, disks=disk(image, "qcow2")))
    res = vsh("start", "h-backing")
    assert_not_started(vsh, vsh_env, "h-backing", res, str(image), "'/etc/passwd'",
                       "does not follow it")


def test_qcow2_external_data_file_is_refused(vsh, vsh_env, guest, tmp_path):
    """A qcow2 v3 image can keep its data in a file its header names; QEMU would open it
    read-write (the guest could read and write any host file vsh can)."""
    victim = tmp_path / "victim.raw"
    victim.write_bytes(b"HOST-SECRET" + bytes(1024 * 1024 - 11))
    before = victim.read_bytes()
    image = tmp_path / "datafile.qcow2"
    qemu_img("create", "-f", "qcow2", "-o", f"data_file={tmp_path / 'scratch.raw'},data_file_raw=on",
             image, "1M")
    qemu_img("amend", "-f", "qcow2", "-o", f"data_file={victim}", image)
    define(vsh, tmp_path, "h-datafile", domain_xml("h-datafile", guest, disks=disk(image, "qcow2")))
    res = vsh("start", "h-datafile")
    assert_not_started(vsh, vsh_env, "h-datafile", res, str(image), str(victim), "external")
    assert victim.read_bytes() == before


def test_declared_empty_backing_store_opens_only_the_image(vsh, vsh_env, guest, tmp_path):
    """``<backingStore/>`` says "no backing file": QEMU opens the overlay alone, paused."""
    image = tmp_path / "evil2.qcow2"
    qemu_img("create", "-f", "qcow2", "-F", "raw", "-b", "/etc/passwd", image, "1M")
    define(vsh, tmp_path, "h-nobacking",
           domain_xml("h-nobacking", guest, disks=disk(image, "qcow2", "<backingStore/>")))
    res = vsh("start", "h-nobacking", "--paused")
    assert res.status == 0, res
    try:
        st = json.loads((rundir(vsh_env, "h-nobacking") / "state.json").read_text())
        fds = [os.readlink(f"/proc/{st['qemu_pid']}/fd/{fd}")
               for fd in os.listdir(f"/proc/{st['qemu_pid']}/fd")]
        assert str(image) in fds and "/etc/passwd" not in fds, fds
        res = vsh("qemu-monitor-command", "h-nobacking", '{"execute":"query-named-block-nodes"}')
        nodes = json.loads(res.out)["return"]
        assert [n for n in nodes if n["file"] == "/etc/passwd"] == []
        assert {n["node-name"]: n["drv"] for n in nodes} == {"disk0-fmt": "qcow2", "disk0-file": "file"}
        top = next(n for n in nodes if n["node-name"] == "disk0-fmt")
        assert top["backing_file_depth"] == 0 and "backing-image" not in top["image"]
    finally:
        vsh("destroy", "h-nobacking")


def test_names_that_climb_out_of_the_store_are_refused(vsh, vsh_env, guest, tmp_path, store_tree):
    define(vsh, tmp_path, "h-ok", domain_xml("h-ok", guest))
    before = store_tree()
    for name in ("../evil", "..", ".", "a/../../b", "./x", "../../etc/cron.d/x"):
        path = tmp_path / "bad.xml"
        path.write_text(domain_xml(name, guest))
        res = vsh("define", path)
        assert res.status == 1 and res.err.startswith("error: Failed to define domain from"), (name, res)
        assert "name" in res.err and "Traceback" not in res.err, (name, res)
        res = vsh("create", path)
        assert res.status == 1 and res.err.startswith("error: Failed to create domain from"), (name, res)
        res = vsh("start", name)
        assert res.status == 1 and f"failed to get domain '{name}'" in res.err, (name, res)
    assert store_tree() == before
    assert not (vsh_env.store.parent / "evil").exists() and not (vsh_env.tmp / "evil.xml").exists()


def test_type_kvm_where_kvm_cannot_run_a_guest(vsh, vsh_env, guest, tmp_path):
    from vsh.kvm.host import probe

    host = probe()
    if host.kvm.usable:
        pytest.skip("KVM can run guests on this host")
    define(vsh, tmp_path, "h-kvm", domain_xml("h-kvm", guest, dtype="kvm"))
    res = vsh("start", "h-kvm")
    assert_not_started(vsh, vsh_env, "h-kvm", res, "domain type 'kvm' needs a usable KVM",
                       host.kvm.reason, "use type='qemu'")


# --------------------------------------------------------------------------------------
# QEMU runs and fails
# --------------------------------------------------------------------------------------

def test_qemu_that_fails_to_launch_reports_argv_status_and_output(vsh, vsh_env, guest, tmp_path):
    """A kernel file that exists but is no kernel: the model accepts it, QEMU does not."""
    junk = tmp_path / "not-a-kernel"
    junk.write_bytes(os.urandom(8192))
    define(vsh, tmp_path, "h-junk", domain_xml("h-junk", guest, kernel=str(junk)))
    res = vsh("start", "h-junk")
    assert res.status == 1, res
    lines = res.err.splitlines()
    assert lines[0] == "error: Failed to start domain 'h-junk'"
    assert lines[1].startswith("error: internal error: QEMU exited while starting domain 'h-junk' "
                               "(exit status 1): "), lines
    assert any(line.startswith("error: command: ") and "qemu-system-x86_64" in line
               and f"-kernel {junk}" in line for line in lines), lines
    assert "error: QEMU printed (last lines):" in lines
    last = lines[1].split("(exit status 1): ", 1)[1]
    assert f"error:   {last}" in lines          # QEMU's own words, in full
    rd = rundir(vsh_env, "h-junk")
    wait_until(lambda: processes_using(rd) == [], 10, "the supervisor and QEMU to go")
    assert [p.name for p in rd.iterdir() if p.name.endswith(".sock")] == []
    assert vsh("domstate", "h-junk", "--reason").out.strip() == "shut off (failed)"
    st = json.loads((rd / "state.json").read_text())
    assert (st["state"], st["reason"], st["exit_status"]) == ("shutoff", "failed", 1)
    # a second attempt fails the same way (nothing half-started is in the way)
    res2 = vsh("start", "h-junk")
    assert res2.status == 1 and "QEMU exited while starting domain 'h-junk'" in res2.err


# --------------------------------------------------------------------------------------
# a raw image that looks like qcow2 stays raw (a booted guest reads it)
# --------------------------------------------------------------------------------------

def test_raw_image_with_a_qcow2_header_is_opened_raw(vsh, vsh_env, guest, tmp_path):
    image = tmp_path / "looks-like-qcow2.img"
    # a real qcow2 header naming /etc/passwd as its backing file, in a file declared raw
    qemu_img("create", "-f", "qcow2", "-F", "raw", "-b", "/etc/passwd", image, "1M")
    with open(image, "r+b") as f:
        f.truncate(1024 * 1024)
    head = image.read_bytes()[:4]
    assert head == b"QFI\xfb"
    define(vsh, tmp_path, "h-raw", domain_xml("h-raw", guest, disks=disk(image, "raw")))
    res = vsh("start", "h-raw")
    assert res.status == 0, res
    rd = rundir(vsh_env, "h-raw")
    try:
        res = vsh("qemu-monitor-command", "h-raw", '{"execute":"query-block"}')
        block = json.loads(res.out)["return"][0]["inserted"]
        assert (block["drv"], block["image"]["format"], block["backing_file_depth"]) == ("raw", "raw", 0)
        assert block["image"]["virtual-size"] == 1024 * 1024
        st = json.loads((rd / "state.json").read_text())
        fds = [os.readlink(f"/proc/{st['qemu_pid']}/fd/{fd}") for fd in os.listdir(f"/proc/{st['qemu_pid']}/fd")]
        assert "/etc/passwd" not in fds

        wait_until(lambda: guest["ready_line"].encode() in (rd / "console.log").read_bytes(), 90,
                   "the guest's ready line")
        # the guest reads the first sector: the raw bytes, qcow2 magic included
        script = "dd if=/dev/vda bs=512 count=1 2>/dev/null | od -An -tx1 | head -1 | sed 's/^/SECTOR:/'\n"
        out = ""
        for _ in range(5):          # the guest shell may still be settling after the ready line
            proc = subprocess.run([sys.executable, "-m", "vsh", "console", "h-raw"], input=script,
                                  capture_output=True, text=True, timeout=60)
            out = proc.stdout
            if "SECTOR: 51 46 49 fb" in out:
                break
        assert "SECTOR: 51 46 49 fb" in out, out
    finally:
        vsh("destroy", "h-raw")


# --------------------------------------------------------------------------------------
# runtime paths: too long for a socket; a control socket the supervisor cannot serve
# --------------------------------------------------------------------------------------

def test_name_too_long_for_the_sockets(vsh, vsh_env, guest, tmp_path):
    """The QMP and control sockets live in the runtime directory; a name that makes their
    paths longer than a unix socket allows is refused before anything is created."""
    base = len(os.fsencode(rundir(vsh_env, "")))
    for size, which in ((108 - base - len("/qmp.sock") + 1, "QMP monitor"),
                        (108 - base - len("/control.sock") + 1, "control socket")):
        name = "n" * size
        define(vsh, tmp_path, name, domain_xml(name, guest))
        res = vsh("start", name)
        assert_not_started(vsh, vsh_env, name, res, which, "the limit is 107")
        assert processes_using(rundir(vsh_env, name)) == []


def test_control_socket_that_cannot_be_served_leaves_no_qemu(vsh, vsh_env, guest, tmp_path):
    """The supervisor starts QEMU before it serves its control socket; when serving fails
    (here a directory sits where the socket goes), QEMU must not outlive the failure."""
    define(vsh, tmp_path, "h-ctl", domain_xml("h-ctl", guest))
    rd = rundir(vsh_env, "h-ctl")
    (rd / "control.sock").mkdir(parents=True)
    res = vsh("start", "h-ctl", "--paused")
    assert res.status == 1 and res.err.startswith("error: Failed to start domain 'h-ctl'\n"), res
    assert "control.sock" in res.err, res.err
    qemus = [p for p in processes_using(rd) if b"qemu-system" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert qemus == [], "QEMU outlived the failed start"
    wait_until(lambda: processes_using(rd) == [], 10, "the supervisor to exit")
    assert vsh("domstate", "h-ctl", "--reason").out.strip() == "shut off (failed)"
    (rd / "control.sock").rmdir()
    res = vsh("start", "h-ctl", "--paused")
    assert res.status == 0, res
    vsh("destroy", "h-ctl")
