"""vsh install on real guests (TCG): the domain it creates boots to the test guest's ready
line, a user-mode port forward reaches a TCP server in the guest from the host's
loopback, a taken host port is refused, a cloud-init seed stays attached across a
restart, and UEFI boots where OVMF is installed.

The test guest (scripts/build-test-guest) does not run cloud-init: these tests show the
seed is attached and the domain boots with it, not that cloud-init consumed it.
Run serialized: flock /tmp/vsh-vm-tests.lock .venv/bin/python -m pytest tests/integration/test_install_vm.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]
REAL_ENV = dict(os.environ)
BOOT_TIMEOUT = 120.0


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


@pytest.fixture
def cleanup(vsh):
    names: list[str] = []
    yield names
    for name in names:
        vsh("destroy", name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(vsh_env, name: str, line: str, count: int = 1, timeout: float = BOOT_TIMEOUT) -> None:
    log = vsh_env.store / "run" / name / "console.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_bytes().count(line.encode()) >= count:
            return
        time.sleep(0.1)
    tail = log.read_bytes()[-600:].decode(errors="replace") if log.exists() else "(no console log)"
    raise AssertionError(f"{line} not seen on {name}'s console within {timeout:.0f} s; log ends:\n{tail}")


def console_type(name: str, text: str, timeout: float = 30.0) -> str:
    """Type ``text`` on the domain's console (vsh console without a terminal); what it printed."""
    proc = subprocess.run([sys.executable, "-m", "vsh", "console", name], input=text.encode(),
                          capture_output=True, timeout=timeout)
    return proc.stdout.decode(errors="replace")


def http_get(port: int, timeout: float = 60.0) -> bytes:
    """GET / through the forward, retried until the guest's server answers (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    last = b""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET /index.html HTTP/1.0\r\nHost: guest\r\n\r\n")
                chunks = []
                while True:
                    data = s.recv(4096)
                    if not data:
                        break
                    chunks.append(data)
                last = b"".join(chunks)
                if b"200 OK" in last:
                    return last
        except OSError as exc:
            last = str(exc).encode()
        time.sleep(0.3)
    raise AssertionError(f"no answer through 127.0.0.1:{port} within {timeout:.0f} s (last: {last[:200]!r})")


def kernel_words(m: dict) -> list[str]:
    return ["--boot", f"kernel={m['vmlinux']},initrd={m['initrd']},kernel_args={m['cmdline']}"]


def saved_files(vsh_env) -> list[str]:
    """What the store keeps (configs, images): the runtime directory has sockets and is left out."""
    out = []
    for part in ("config", "data"):
        for dirpath, _dirs, names in os.walk(vsh_env.store / part):
            out += [os.path.relpath(os.path.join(dirpath, n), vsh_env.store) for n in names]
    return sorted(out)


def test_install_boots_and_port_forward_reaches_the_guest(vsh, vsh_env, guest, cleanup):
    port = free_port()
    # the command of the issue, plus a forward of a free loopback port to the guest's port 80
    res = vsh("install", "--name", "t", "--memory", "256",
              "--boot", f"kernel={guest['vmlinux']},initrd={guest['initrd']},kernel_args=console=ttyS0 quiet",
              "--disk", "size=0.1", "--noautoconsole", "--graphics", "none",
              "--network", f"user,portforward={port}:80")
    assert res.status == 0, res
    cleanup.append("t")
    assert "Domain 't' defined\nDomain 't' started\n" in res.out
    assert (vsh_env.store / "data" / "images" / "t.qcow2").exists()
    wait_ready(vsh_env, "t", guest["ready_line"])
    xml = vsh("dumpxml", "t").out
    assert f"<vsh:forward interface='0' proto='tcp' host='127.0.0.1' hostport='{port}' guestport='80'/>" in xml

    console_type("t", "mkdir -p /www && echo hello-from-vsh-guest > /www/index.html && "
                      "busybox httpd -p 80 -h /www && echo HTTPD-STARTED\n")
    reply = http_get(port)
    assert b"hello-from-vsh-guest" in reply

    # the forward listens on loopback only
    with pytest.raises(OSError):
        addrs = [a for a in _host_addresses() if not a.startswith("127.")]
        if not addrs:
            raise OSError("no non-loopback address to try")
        socket.create_connection((addrs[0], port), timeout=2).close()

    # a second domain that wants the same host port: refused, nothing left behind
    before = saved_files(vsh_env)
    res = vsh("install", "--name", "t2", "--memory", "256", *kernel_words(guest), "--disk", "size=0.1",
              "--noautoconsole", "--network", f"user,portforward={port}:80")
    assert res.status == 1
    assert f"host port tcp 127.0.0.1:{port} is already in use" in res.err
    assert saved_files(vsh_env) == before
    # ... and a defined domain with that forward fails at start, clearly
    other = free_port()
    res = vsh("install", "--name", "t3", "--memory", "256", *kernel_words(guest), "--disk", "none",
              "--network", f"user,portforward={other}:80", "--print-xml")
    assert res.status == 0, res
    path = vsh_env.tmp / "t3.xml"
    path.write_text(res.out.replace(f"hostport='{other}'", f"hostport='{port}'"))
    assert vsh("define", path).status == 0
    res = vsh("start", "t3")
    assert res.status == 1
    assert res.err.splitlines()[0] == "error: Failed to start domain 't3'"
    assert f"host port tcp 127.0.0.1:{port} is already in use" in res.err
    assert vsh("domstate", "t3").out.strip() == "shut off"


def _host_addresses() -> list[str]:
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    return [a for a in out if ":" not in a]


def test_cloud_init_seed_stays_across_a_restart(vsh, vsh_env, guest, cleanup, tmp_path):
    from vsh.core.cloudinit import read_seed

    key = tmp_path / "id.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKey test@vsh\n")
    res = vsh("install", "--name", "c1", "--memory", "256", *kernel_words(guest), "--disk", "size=0.1",
              "--cloud-init", f"root-ssh-key={key}", "--noautoconsole")
    assert res.status == 0, res
    cleanup.append("c1")
    seed = vsh_env.store / "data" / "images" / "c1-cidata.iso"
    volid, files = read_seed(seed.read_bytes())
    assert volid == "cidata" and set(files) == {"user-data", "meta-data"}
    wait_ready(vsh_env, "c1", guest["ready_line"])
    assert vsh("destroy", "c1").status == 0
    assert f"<source file='{seed}'/>" in vsh("dumpxml", "c1", "--inactive").out
    assert vsh("start", "c1").status == 0
    wait_ready(vsh_env, "c1", guest["ready_line"])
    blk = vsh("domblklist", "c1").out
    assert str(seed) in blk and "sda" in blk


@pytest.mark.skipif(not os.path.exists("/usr/share/OVMF/OVMF_CODE_4M.fd"), reason="OVMF is not installed")
def test_uefi_install_boots(vsh, vsh_env, guest, cleanup):
    res = vsh("install", "--name", "u1", "--memory", "256",
              "--boot", f"uefi,kernel={guest['kernel']},initrd={guest['initrd']},kernel_args={guest['cmdline']}",
              "--disk", "none", "--noautoconsole")
    assert res.status == 0, res
    cleanup.append("u1")
    assert (vsh_env.store / "data" / "nvram" / "u1_VARS.fd").exists()
    wait_ready(vsh_env, "u1", guest["ready_line"], timeout=240.0)


def test_install_attaches_the_console_on_a_terminal(vsh, vsh_env, guest, cleanup):
    """Without --noautoconsole, on a terminal: install ends attached to the guest's console."""
    pexpect = pytest.importorskip("pexpect")
    env = dict(os.environ, TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")
    child = pexpect.spawn(sys.executable, ["-m", "vsh", "install", "--name", "a1", "--memory", "256",
                                           *kernel_words(guest), "--disk", "none"],
                          env=env, dimensions=(24, 100), encoding="utf-8", timeout=BOOT_TIMEOUT,
                          codec_errors="replace")
    cleanup.append("a1")
    try:
        child.expect("Domain 'a1' started")
        child.expect("Connected to domain 'a1'")
        child.expect(guest["ready_line"])
        child.send("echo vsh-$((6*7))\r")
        child.expect("vsh-42")
        child.send("\x1d")  # ^] leaves the console; the command ends
        child.expect(pexpect.EOF, timeout=30)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, child.before
    assert vsh("domstate", "a1").out.strip() == "running"


def _install_iso(tmp_path, guest) -> str:
    """An ISO laid out like Debian's (install.amd/vmlinuz, install.amd/initrd.gz) holding the test
    guest's kernel and initramfs."""
    import io

    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", vol_ident="VSHTEST")
    iso.add_directory("/INSTALL_AMD", rr_name="install.amd")
    for src, name, iso_name in ((guest["kernel"], "vmlinuz", "VMLINUZ.;1"),
                                (guest["initrd"], "initrd.gz", "INITRD.GZ;1")):
        data = Path(src).read_bytes()
        iso.add_fp(io.BytesIO(data), len(data), f"/INSTALL_AMD/{iso_name}", rr_name=name)
    path = tmp_path / "netinst.iso"
    iso.write(str(path))
    iso.close()
    return str(path)


def test_location_iso_boots_its_kernel_once_with_extra_args_and_injected_files(vsh, vsh_env, guest, cleanup,
                                                                               tmp_path):
    iso = _install_iso(tmp_path, guest)
    preseed = tmp_path / "preseed.cfg"
    preseed.write_text("vsh-injected-preseed\n")
    res = vsh("install", "--name", "loc", "--memory", "256", "--machine", "pc", "--disk", "none",
              "--location", iso, "--extra-args", "quiet vsh.marker=loc42", "--initrd-inject", preseed,
              "--noautoconsole")
    assert res.status == 0, res
    cleanup.append("loc")
    assert "Domain 'loc' defined\nDomain 'loc' started\n" in res.out
    wait_ready(vsh_env, "loc", guest["ready_line"])
    out = console_type("loc", "cat /proc/cmdline; cat /preseed.cfg\n")
    assert "vsh.marker=loc42" in out and "console=ttyS0" in out
    assert "vsh-injected-preseed" in out
    assert list((vsh_env.store / "data" / "boot").iterdir()) == []        # QEMU read them; vsh removed them
    live = vsh("dumpxml", "loc").out
    assert "<kernel>" in live and "<on_reboot>destroy</on_reboot>" in live
    inactive = vsh("dumpxml", "--inactive", "loc").out
    assert "<kernel>" not in inactive and iso not in inactive
    # the installer reboots: the install run ends, the definition is the installed system's
    console_type("loc", "reboot\n")
    deadline = time.monotonic() + 60
    while vsh("domstate", "loc").out.strip() != "shut off" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert vsh("domstate", "loc").out.strip() == "shut off"
    assert "<kernel>" not in vsh("dumpxml", "loc").out


def test_wait_boots_the_installed_system_after_the_install_run(vsh_env, guest, tmp_path):
    iso = _install_iso(tmp_path, guest)
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "vsh", "install", "--name", "w", "--memory", "256",
                             "--machine", "pc", "--disk", "none", "--location", iso, "--wait", "2",
                             "--noautoconsole"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        wait_ready(vsh_env, "w", guest["ready_line"])
        console_type("w", "reboot\n")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        text = out.decode()
        assert "Waiting 2 minutes for the installation to complete." in text
        assert "Domain has shutdown. Continuing.\nDomain 'w' started (installed system)\n" in text
        state = subprocess.run([sys.executable, "-m", "vsh", "domstate", "w"], capture_output=True, text=True,
                               env=env, timeout=60).stdout.strip()
        assert state == "running"
        xml = subprocess.run([sys.executable, "-m", "vsh", "dumpxml", "w"], capture_output=True, text=True,
                             env=env, timeout=60).stdout
        assert "<kernel>" not in xml and "<on_reboot>restart</on_reboot>" in xml
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run([sys.executable, "-m", "vsh", "destroy", "w"], capture_output=True, env=env, timeout=60)


def test_install_with_device_and_domain_options_boots(vsh, vsh_env, guest, cleanup, tmp_path):
    serial_log = tmp_path / "second-serial.log"
    res = vsh("install", "--name", "dev", "--memory", "256", *kernel_words(guest), "--disk", "none",
              "--noautoconsole", "--panic", "isa", "--iothreads", "2", "--watchdog", "i6300esb,action=reset",
              "--memorybacking", "source.type=memfd,access.mode=shared", "--serial", f"file,path={serial_log}",
              "--channel", "unix,name=org.qemu.guest_agent.0", "--graphics", "vnc", "--video", "virtio",
              "--input", "tablet", "--controller", "usb3", "--sound", "ich9", "--clock", "offset=localtime",
              "--events", "on_crash=preserve", "--metadata", "title=Device options",
              "--xml", "./devices/watchdog/@action=poweroff")
    assert res.status == 0, res
    cleanup.append("dev")
    wait_ready(vsh_env, "dev", guest["ready_line"])
    xml = vsh("dumpxml", "dev").out
    for text in ("<panic model='isa'", "<iothreads>2</iothreads>", "<watchdog model='i6300esb' action='poweroff'",
                 "<title>Device options</title>", "<on_crash>preserve</on_crash>", "<source type='memfd'/>",
                 "org.qemu.guest_agent.0", "<model type='virtio'", "<input type='tablet' bus='usb'"):
        assert text in xml, text
    assert serial_log.exists()          # QEMU opened the second serial port's file
    out = console_type("dev", "ls /sys/bus/pci/devices | wc -l; cat /sys/class/virtio-ports/*/name\n")
    assert "org.qemu.guest_agent.0" in out
