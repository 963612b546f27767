"""The libvirt driver against a real libvirtd: scripts/libvirt-peer runs virtlogd and libvirtd in
private mount and PID namespaces (their own /etc/libvirt, /run, /var), and vsh drives a TCG guest
through ``qemu+unix:///system?socket=…``: define, start, console round trip, snapshot, destroy,
undefine. Where virsh has the same command its output is compared byte for byte.

The first hypervisor call on a cold cache probes QEMU's capabilities (~8 s here).
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import vmguest

pytest.importorskip("libvirtmod", reason="libvirt-python is not installed (scripts/setup installs it)")

ROOT = Path(__file__).resolve().parents[2]

NAME = "lvg1"


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    """(URI, manifest, base dir) of a private libvirtd; stopped (with every QEMU it ran) at the end."""
    if os.geteuid() != 0:
        pytest.skip("libvirtd runs as root in its own namespaces: the tests need root")
    missing = [p for p in ("libvirtd", "virtlogd", "virsh") if shutil.which(p) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (scripts/setup installs libvirt-daemon, "
                    "libvirt-daemon-driver-qemu, libvirt-clients)")
    m = vmguest.manifest()
    if m is None:
        pytest.skip("no test guest: scripts/build-test-guest failed or is missing")
    base = tmp_path_factory.mktemp("lvp")
    err = open(base / "peer.err", "wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "libvirt-peer"), "--stdin-eof", str(base / "d")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
    ready = select.select([proc.stdout], [], [], 60)[0]
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("READY "):
        proc.stdin.close()
        proc.wait(timeout=30)
        pytest.skip(f"libvirtd did not come up: {(base / 'peer.err').read_text()[-400:]}")
    uri = f"qemu+unix:///system?socket={line.split(' ', 1)[1].strip()}"
    try:
        yield uri, m, base
    finally:
        proc.stdin.close()          # --stdin-eof: everything in the namespace stops
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err.close()


def _env() -> dict:
    return dict(vmguest.REAL_ENV, PYTHONPATH=str(ROOT))


def vsh(uri: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "vsh", "-c", uri, *args], capture_output=True, text=True,
                          env=_env(), timeout=timeout)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def virsh(uri: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["virsh", "-c", uri, *args], capture_output=True, text=True, timeout=120)


def _mask(text: str) -> str:
    text = re.sub(r"CPU time:( +)[0-9.]+s", r"CPU time:\1Ns", text)
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", "DATE", text)


def same(uri: str, *args: str) -> str:
    ours, theirs = vsh(uri, *args, check=False), virsh(uri, *args)
    assert (ours.returncode, _mask(ours.stdout), ours.stderr) == \
        (theirs.returncode, _mask(theirs.stdout), theirs.stderr), args
    return ours.stdout


class Console:
    """``vsh console`` with pipes for stdin and stdout (no terminal: it relays until stdin ends)."""

    def __init__(self, uri: str, name: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "vsh", "-c", uri, "console", name],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=_env())
        self.seen = b""

    def send(self, text: str) -> None:
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def expect(self, text: str, timeout: float = 90.0, poke: str | None = None) -> str:
        deadline = time.monotonic() + timeout
        next_poke = 0.0
        while text.encode() not in self.seen:
            now = time.monotonic()
            if now > deadline:
                raise AssertionError(f"{text!r} not seen on the console:\n{self.seen[-2000:]!r}")
            if poke is not None and now >= next_poke:
                self.send(poke)
                next_poke = now + 2.0
            if select.select([self.proc.stdout], [], [], 0.2)[0]:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"the console ended before {text!r}: {self.proc.stderr.read()!r}")
                self.seen += chunk
        return self.seen.decode(errors="replace")

    def close(self) -> int:
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.proc.stdout.close()
            self.proc.stderr.close()


def test_a_tcg_guest_through_libvirtd(peer):
    uri, m, base = peer
    disk = base / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    xml = base / f"{NAME}.xml"
    xml.write_text(vmguest.guest_domain_xml(NAME, m, f"""
        <disk type='file' device='disk'>
          <driver name='qemu' type='qcow2'/>
          <source file='{disk}'/>
          <target dev='vda' bus='virtio'/>
        </disk>"""))

    defined = vsh(uri, "define", str(xml), timeout=180)       # the first call probes QEMU (cold cache)
    assert defined.stdout == f"Domain '{NAME}' defined from {xml}\n\n"
    same(uri, "list", "--all")
    same(uri, "dominfo", NAME)
    same(uri, "domstate", "--reason", NAME)

    started = vsh(uri, "start", NAME)
    assert started.stdout == f"Domain '{NAME}' started\n\n"
    assert "running (booted)" in same(uri, "domstate", "--reason", NAME)
    same(uri, "list", "--all")
    same(uri, "dominfo", NAME)
    same(uri, "domid", NAME)
    same(uri, "domblklist", NAME)
    same(uri, "vcpucount", NAME)

    console = Console(uri, NAME)
    try:
        console.expect("M2X", poke="echo M$((1+1))X\n", timeout=120)
        console.send("hostname\n")
        console.expect(m["hostname"])
    finally:
        assert console.close() == 0

    made = vsh(uri, "snapshot-create-as", NAME, "s1", "--description", "through libvirt", timeout=180)
    assert made.stdout == "Domain snapshot s1 created\n"
    same(uri, "snapshot-list", NAME)
    same(uri, "snapshot-info", NAME, "s1")
    listed = vsh(uri, "snapshot-list", NAME, "--json")
    assert '"name": "s1"' in listed.stdout

    assert vsh(uri, "destroy", NAME).stdout == f"Domain '{NAME}' destroyed\n\n"
    assert "shut off (destroyed)" in same(uri, "domstate", "--reason", NAME)
    refused = vsh(uri, "undefine", NAME, check=False)
    assert refused.returncode == 1 and refused.stderr.startswith(f"error: Failed to undefine domain '{NAME}'\nerror: ")
    gone = vsh(uri, "undefine", NAME, "--snapshots-metadata")
    assert gone.stdout == f"Domain '{NAME}' has been undefined\n\n"
    assert NAME not in vsh(uri, "list", "--all", "--name").stdout
    missing = vsh(uri, "dominfo", NAME, check=False)
    assert (missing.returncode, missing.stderr) == (1, f"error: failed to get domain '{NAME}'\n")


def test_pause_save_restore_monitor_and_events_through_libvirtd(peer):
    uri, m, base = peer
    name = "lvg2"
    xml = base / f"{name}.xml"
    xml.write_text(vmguest.guest_domain_xml(name, m, ""))
    vsh(uri, "define", str(xml), timeout=180)
    try:
        vsh(uri, "start", name)
        events = subprocess.Popen([sys.executable, "-m", "vsh", "-c", uri, "qemu-monitor-event", name, "--event", "STOP",
                                   "--timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=_env())
        # libvirt's domain events, the first one of any domain: vsh's and virsh's watchers print the same
        watchers = [subprocess.Popen([*cmd, "-c", uri, "event", "--all", "--timeout", "60"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=_env())
                    for cmd in ([sys.executable, "-m", "vsh"], ["virsh"])]
        time.sleep(2)           # the watchers register with libvirtd before the guest is paused
        assert vsh(uri, "suspend", name).stdout == f"Domain '{name}' suspended\n\n"
        out, err = events.communicate(timeout=90)
        assert events.returncode == 0 and "event STOP" in out, (out, err)
        ours, theirs = ((w.communicate(timeout=90), w.returncode) for w in watchers)
        assert ours == theirs, (ours, theirs)
        assert ours[0][0] == f"event 'lifecycle' for domain '{name}': Suspended Paused\nevents received: 1\n\n"
        assert "paused (user)" in same(uri, "domstate", "--reason", name)
        assert vsh(uri, "resume", name).stdout == f"Domain '{name}' resumed\n\n"
        status = vsh(uri, "qemu-monitor-command", name, '{"execute":"query-status"}')
        assert '"status":"running"' in status.stdout.replace(" ", "")
        assert "running" in vsh(uri, "qemu-monitor-command", name, "--hmp", "info status").stdout
        same(uri, "domstats", "--state", name)

        image = base / f"{name}.save"
        assert vsh(uri, "save", name, str(image), timeout=180).stdout == f"\nDomain '{name}' saved to {image}\n\n"
        assert "shut off (saved)" in same(uri, "domstate", "--reason", name)
        same(uri, "save-image-dumpxml", str(image))
        assert vsh(uri, "restore", str(image), timeout=180).stdout == f"Domain restored from {image}\n\n"
        assert "running (restored)" in same(uri, "domstate", "--reason", name)

        vsh(uri, "managedsave", name, timeout=180)
        same(uri, "list", "--all", "--managed-save")
        same(uri, "dominfo", name)
        vsh(uri, "start", name, timeout=180)
        assert "running (restored)" in same(uri, "domstate", "--reason", name)
    finally:
        vsh(uri, "destroy", name, check=False)
        vsh(uri, "undefine", name, "--managed-save", check=False)


def _pci_placement(xml: str) -> dict:
    """Each device's PCI (or virtio-serial) address, and each PCI controller's model name and target, as dumpxml
    prints them (keyed by element and its number among its kind, or a controller's type and index)."""
    from lxml import etree

    out, seen = {}, {}
    for el in etree.fromstring(xml.encode()).find("devices"):
        if not isinstance(el.tag, str):
            continue
        if el.tag == "controller":
            key = ("controller", el.get("type"), el.get("index"))
        else:
            seen[el.tag] = seen.get(el.tag, -1) + 1
            key = (el.tag, seen[el.tag])
        parts = [etree.tostring(sub, encoding=str).strip() for sub in el
                 if isinstance(sub.tag, str) and (sub.tag in ("model", "target") and el.get("type") == "pci"
                                                  or sub.tag == "address" and sub.get("type") in ("pci",
                                                                                                 "virtio-serial"))]
        if parts or el.tag == "controller":
            out[key] = parts
    return out


def test_install_through_libvirtd_makes_a_pool_volume_and_boots(peer):
    uri, m, _base = peer
    name = "lvi"
    made = vsh(uri, "install", "--name", name, "--memory", "128", "--disk", "size=0.05", "--machine", "pc",
               "--boot", f"kernel={m.get('vmlinux') or m['kernel']},initrd={m['initrd']},kernel_args={m['cmdline']}",
               "--graphics", "none", "--network", "none", "--noautoconsole", timeout=180)
    path = f"/var/lib/libvirt/images/{name}.qcow2"         # libvirt's default pool, made as virt-install makes it
    assert made.stdout.startswith(f"Disk '{path}' created (qcow2, 51.20 MiB)\nDomain '{name}' defined\n"
                                  f"Domain '{name}' started\n"), made.stdout
    try:
        assert f" {name}.qcow2   {path}\n" in same(uri, "vol-list", "default")
        assert "running" in same(uri, "domstate", name)
        assert "<domain type='qemu'" in virsh(uri, "dumpxml", name).stdout     # TCG: this host's KVM cannot run guests
        console = Console(uri, name)
        try:
            console.expect("M2X", poke="echo M$((1+1))X\n", timeout=120)
        finally:
            assert console.close() == 0
    finally:
        vsh(uri, "destroy", name, check=False)
        vsh(uri, "undefine", name, check=False)
        vsh(uri, "vol-delete", path, check=False)
    assert f"{name}.qcow2" not in vsh(uri, "vol-list", "default").stdout


def test_define_places_pci_devices_as_libvirtd_does(peer, tmp_path):
    """The corpus XMLs that name their machine (pc or q35), defined in libvirtd and in vsh: the same
    controllers, each device at the same PCI address (pcie-root-ports, bridges, the spare port), each
    virtio channel on the same virtio-serial port."""
    import corpus

    uri, _m, _base = peer
    local = f"vsh:///session?root={tmp_path / 'store'}"
    compared = []
    for name in corpus.NAMES:
        text = (corpus.CORPUS / (name + ".xml")).read_text()
        if corpus.expectation(name)[0] == "invalid" or "machine=" not in text or "firmware='efi'" in text:
            continue        # libvirt's default machine is pc, vsh's q35; libvirt 9.0 wants ACPI for UEFI
        (tmp_path / name).mkdir()
        path = corpus.materialize(name, tmp_path / name)
        dom = corpus.domain_name(name)
        assert virsh(uri, "define", str(path)).returncode == 0, name
        theirs = virsh(uri, "dumpxml", dom).stdout
        virsh(uri, "undefine", dom)
        vsh(local, "define", str(path))
        ours = vsh(local, "dumpxml", dom).stdout
        assert _pci_placement(ours) == _pci_placement(theirs), name
        compared.append(name)
    assert {"q35-pcie-autoadd", "q35-legacy-pci-devices", "q35-user-addresses", "pc-as-virsh-dumps-it"} <= \
        set(compared)
