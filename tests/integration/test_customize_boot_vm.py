"""A guest disk customized by ``vsh customize`` boots with what was set.

A sparse copy of the demo disk (scripts/build-test-guest's disk.img: syslinux boots the
initramfs, which switches to the ext4 root on the disk) gets a hostname, a root password
and an ssh key from ``vsh customize``; a domain like examples/demo.xml (BIOS boot from that
disk) then starts in a test store. On its serial console, driven through vsh's console
API: the login prompt names the new host, the wrong password is refused, the right one logs
in, and the shell shows the hostname and the injected key.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import pytest

import vmguest

pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86_64")]

ROOT = Path(__file__).resolve().parents[2]
NAME = "cust"
HOST = "custom1"
PASSWORD = "S3cret"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHZzaC1jdXN0b21pemUtYm9vdC10ZXN0LWtleQ vsh-test@host"
BOOT_TIMEOUT = 180.0     # TCG, SeaBIOS and syslinux reading the kernel through the BIOS


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    m, base, store, env = vmguest.module_store(tmp_path_factory, "custboot")
    disk = base / "custom.img"
    subprocess.run(["cp", "--sparse=always", m["disk"], str(disk)], check=True)
    g = vmguest.Guest(store, NAME, env)
    g.vsh("customize", "-a", disk, "--format", "raw", "--hostname", HOST,
          "--root-password", "password:" + PASSWORD, "--ssh-inject", "root:string:" + KEY)
    xml = (ROOT / "examples" / "demo.xml").read_text().replace("@DISK@", str(disk))
    xml = xml.replace("<name>demo</name>", f"<name>{NAME}</name>")
    path = base / f"{NAME}.xml"
    path.write_text(xml)
    g.vsh("define", path)
    g.vsh("start", NAME)
    try:
        yield g, m
    finally:
        g.vsh("destroy", NAME, check=False)


class Typist:
    """Input to the domain's first console through vsh's console API; its output is drained
    here (QEMU's log of the console, read with ``Guest.wait_log``, has all of it)."""

    def __init__(self, env: dict):
        from vsh.api import connect

        self.stream = connect(env["VSH_DEFAULT_URI"]).lookup_domain(NAME).open_console()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        import select

        while not self._stop.is_set():
            if select.select([self.stream.fileno()], [], [], 0.2)[0] and self.stream.read() == b"":
                return

    def type(self, text: str) -> None:
        self.stream.write(text.encode())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.stream.close()


def test_customized_hostname_password_and_key(guest):
    g, m = guest
    console = Typist(g.env)
    try:
        # root has a password now: the console asks for a login, on the customized host
        g.wait_log(f"{HOST} login: ", timeout=BOOT_TIMEOUT)
        assert m["ready_line"] not in g.log()

        console.type("root\n")
        g.wait_log("Password: ")
        console.type("wrong-password\n")
        g.wait_log("Login incorrect")
        g.wait_log(f"{HOST} login: ", count=2)
        assert m["ready_line"] not in g.log()

        console.type("root\n")
        g.wait_log("Password: ", count=2)
        console.type(PASSWORD + "\n")
        g.wait_log(m["ready_line"])
        # the end marker is computed by the guest: the echoed command line does not have it
        console.type("hostname; cat /root/.ssh/authorized_keys; echo DONE-$((6*7))\n")
        g.wait_log("DONE-42")
        out = g.log()
        shell = out[out.index(m["ready_line"]):out.rindex("DONE-42")].splitlines()
        assert HOST in shell and KEY in shell, out[-2000:]
        assert PASSWORD not in out and "wrong-password" not in out    # not echoed
    finally:
        console.close()
