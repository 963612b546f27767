"""The installed QEMU accepts every argv vsh.kvm.argv builds for the test XMLs.

Each test XML (tests/data/domains/) gets its files created in a temporary
directory, its argv built against a fake host, and QEMU started with it (the
argv has -S: no guest code runs).  The test then talks QMP through the
``qemu.qmp`` library: ``query-status`` must say ``prelaunch``, the primary
console's chardev must exist, and ``quit`` must end QEMU with status 0.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from vsh.kvm.argv import RuntimePaths, build_argv, console_chardev

_spec = importlib.util.spec_from_file_location(
    "argv_materials", Path(__file__).resolve().parents[1] / "argv_materials.py")
am = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(am)

QEMU = shutil.which("qemu-system-x86_64")
pytestmark = pytest.mark.skipif(QEMU is None or not am.have_qemu_img(),
                                reason="needs qemu-system-x86_64 and qemu-img")


@pytest.fixture
def rundir():
    """A short 0700 run directory (unix socket paths must stay under 108 bytes)."""
    d = tempfile.mkdtemp(prefix="vsh-argv-", dir="/tmp")
    os.chmod(d, 0o700)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def _host_for(name: str):
    return am.fake_host(iommu=name == "q35-hostdev", kvm_usable=name.startswith("kvm-"),
                        qemu_path=QEMU)


async def _talk(path: str, chardev: str | None) -> dict:
    from qemu.qmp import QMPClient

    qmp = QMPClient("argv-test")
    await asyncio.wait_for(qmp.connect(path), 10)
    try:
        status = await qmp.execute("query-status")
        chardevs = await qmp.execute("query-chardev")
        await qmp.execute("quit")
    finally:
        try:
            await qmp.disconnect()
        except EOFError:        # QEMU closed the socket after 'quit' before the client's own close
            pass
    return {"status": status, "chardevs": {c["label"]: c["filename"] for c in chardevs}}


def _start(argv: list[str], pass_fds=()) -> subprocess.Popen:
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, pass_fds=pass_fds)


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err.decode(errors="replace")


@pytest.mark.parametrize("name", am.DOMAIN_XMLS)
def test_qemu_accepts_argv(name, tmp_path, rundir):
    root = am.materialize(name, tmp_path)
    # the supervisor's way: bind the QMP socket first, hand QEMU the listening fd
    qmp_path = str(rundir / "qmp.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(qmp_path)
    listener.listen(4)
    paths = RuntimePaths.for_rundir(rundir, qmp_listen_fd=listener.fileno())
    argv = build_argv(root, _host_for(name), paths)
    assert argv[0] == QEMU and "-S" in argv
    proc = _start(argv, pass_fds=(listener.fileno(),))
    listener.close()
    try:
        result = asyncio.run(_talk(qmp_path, console_chardev(root)))
    except Exception as exc:  # QEMU refused the argv: report what it said
        rc, err = _finish(proc)
        if name == "q35-hostdev":
            # no such host device here: QEMU must get as far as realizing vfio-pci for it
            assert "0000:06:02.0" in err and "vfio" in err.lower(), err
            return
        if name.startswith("kvm-") and ("KVM" in err or "MSR" in err):
            pytest.skip("this host's KVM refused the argv: %s" % err.strip().splitlines()[-1])
        pytest.fail("QEMU did not accept the argv (%r, exit %s):\n%s\n%s" % (exc, rc, " ".join(argv), err))
    rc, err = _finish(proc)
    assert name != "q35-hostdev", "a vfio-pci device for a host device that does not exist was accepted"
    assert result["status"]["status"] == "prelaunch"
    assert result["status"]["running"] is False
    cd = console_chardev(root)
    if cd:
        assert cd in result["chardevs"], result["chardevs"]
        assert (rundir / "console.log").exists()
    assert rc == 0, err


def test_qemu_binds_the_qmp_path_itself(tmp_path, rundir):
    """Without a listening fd, QEMU binds RuntimePaths.qmp_socket (what re-attaching uses)."""
    root = am.materialize("pc-kernel", tmp_path)
    paths = RuntimePaths.for_rundir(rundir)
    proc = _start(build_argv(root, _host_for("pc-kernel"), paths))
    deadline = time.monotonic() + 10
    while not os.path.exists(paths.qmp_socket):
        if proc.poll() is not None or time.monotonic() > deadline:
            rc, err = _finish(proc)
            pytest.fail("QEMU never bound %s (exit %s): %s" % (paths.qmp_socket, rc, err))
        time.sleep(0.01)
    result = asyncio.run(_talk(paths.qmp_socket, "charserial0"))
    rc, err = _finish(proc)
    assert result["status"]["status"] == "prelaunch"
    assert result["chardevs"]["charserial0"].startswith("pty:/dev/pts/")
    assert rc == 0, err


def test_raw_image_with_a_qcow2_header_stays_raw(tmp_path, rundir):
    """A raw file carrying a qcow2 header is opened as raw: the guest sees the header bytes."""
    root = am.materialize("microvm-kernel", tmp_path)
    disk = tmp_path / "micro.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(disk)],
                   check=True)
    paths = RuntimePaths.for_rundir(rundir)
    argv = build_argv(root, _host_for("microvm-kernel"), paths)
    assert '"driver":"raw"' in " ".join(argv)
    proc = _start(argv)
    deadline = time.monotonic() + 10
    while not os.path.exists(paths.qmp_socket):
        if proc.poll() is not None or time.monotonic() > deadline:
            rc, err = _finish(proc)
            pytest.fail("QEMU failed (exit %s): %s" % (rc, err))
        time.sleep(0.01)

    async def nodes():
        from qemu.qmp import QMPClient

        qmp = QMPClient("argv-test")
        await qmp.connect(paths.qmp_socket)
        try:
            return await qmp.execute("query-named-block-nodes", {"flat": True})
        finally:
            await qmp.disconnect()

    named = asyncio.run(nodes())
    proc.terminate()                # (a QMP 'quit' races the client's disconnect: QEMU may close first)
    _finish(proc)
    files = {n["node-name"]: n for n in named}
    assert files["disk0-fmt"]["drv"] == "raw"
    assert all("/etc/passwd" not in n.get("file", "") for n in named)
