"""The display, keyboard, NMI, link and lifecycle commands on one real guest under TCG.

One pc guest with VNC and a VGA adapter (module fixture ``vm``: the PVH vmlinux and busybox
initramfs of ``scripts/build-test-guest``) serves the tests in file order; the guest's shell on
the serial console checks what it saw. The last test makes the guest's reboot stop it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time

import pytest

import vmguest as _vmguest

pytestmark = pytest.mark.vm

Guest = _vmguest.Guest

MAC = "52:54:00:12:34:77"


DEVICES = f"""<interface type='user'>
      <mac address='{MAC}'/>
      <model type='virtio'/>
    </interface>
    <graphics type='vnc'/>
    <video><model type='vga'/></video>"""


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    m, base, store, env = _vmguest.module_store(tmp_path_factory, "graphics")
    xml = base / "gr1.xml"
    xml.write_text(_vmguest.guest_domain_xml("gr1", m, DEVICES))
    g = Guest(store, "gr1", env)
    g.base, g.ready = base, m["ready_line"]
    with g.running(xml, m["ready_line"]):
        yield g


def test_domdisplay_names_the_vnc_socket_which_speaks_rfb(vm):
    res = vm.vsh("domdisplay", "gr1")
    sock = str(vm.rundir / "vnc.sock")
    assert res.stdout.splitlines()[0] == f"vnc+unix://{sock}"
    assert json.loads(vm.vsh("domdisplay", "gr1", "--json").stdout) == [
        {"type": "vnc", "uri": f"vnc+unix://{sock}", "socket": sock}]
    assert f"<listen type='socket' socket='{sock}'/>" in vm.xml()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(sock)
        assert s.recv(12).startswith(b"RFB 003.")
    res = vm.vsh("vncdisplay", "gr1", check=False)
    assert res.returncode == 1
    assert res.stderr.startswith("error: Failed to get VNC port. Is this domain using VNC?\n")
    res = vm.vsh("domdisplay", "gr1", "--type", "spice", check=False)
    assert res.stderr.startswith("error: No graphical display with type 'spice' found\n")


def test_a_vnc_client_gives_graphics_events(vm, tmp_path):
    events = tmp_path / "events.txt"
    before = _vmguest.subscribers(vm)
    listener = _vmguest.listen(vm, "gr1", "--event", "graphics", "--loop", "--timeout", "90", stdout=open(events, "w"))
    sock = str(vm.rundir / "vnc.sock")
    try:
        _vmguest.subscribed(vm, before)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:      # RFB 3.8 up to ServerInit
            s.settimeout(10)
            s.connect(sock)
            assert s.recv(12) == b"RFB 003.008\n"
            s.sendall(b"RFB 003.008\n")
            count = s.recv(1)[0]
            assert 1 in s.recv(count)                                     # "None" is offered
            s.sendall(b"\x01")
            assert s.recv(4) == b"\0\0\0\0"
            s.sendall(b"\x01")                                          # ClientInit, shared
            assert len(s.recv(24)) > 0
        lines = [f"event 'graphics' for domain 'gr1': {phase} local[unix  {sock}] remote[unix  ] none"
                 for phase in ("connect", "initialize", "disconnect")]
        assert _vmguest.poll(lambda: events.read_text().splitlines() == lines, 30), events.read_text()
    finally:
        listener.send_signal(signal.SIGINT)
        _vmguest.ended(listener)


def test_screenshot_saves_a_ppm_under_virsh_s_default_name(vm):
    out = vm.base / "shots"
    out.mkdir()
    proc = vm.vsh("screenshot", "gr1", out / "a.ppm")
    assert proc.stdout.startswith(f"Screenshot saved to {out / 'a.ppm'}, with type of image/x-portable-pixmap\n")
    data = (out / "a.ppm").read_bytes()
    head = re.match(rb"P6\n(\d+) (\d+)\n255\n", data)
    assert head, data[:20]
    width, height = int(head.group(1)), int(head.group(2))
    assert len(data) == head.end() + width * height * 3
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "vsh", "screenshot", "gr1"], env=vm.env, cwd=out,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    made = [p.name for p in out.iterdir() if p.name != "a.ppm"]
    assert len(made) == 1 and re.fullmatch(r"gr1-\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d\.ppm", made[0]), made
    assert proc.stdout.startswith(f"Screenshot saved to {made[0]}, with type of image/x-portable-pixmap\n")


def _value(vm, cmd: str, pattern: str = r"[^$\s]\S*") -> str:
    """What ``cmd`` printed after ``VALUE=`` in the guest (not the echo of the command itself)."""
    found = re.search(r"VALUE=(%s)" % pattern, vm.sh(cmd))
    assert found, cmd
    return found.group(1).strip()


def _keyboard_events(vm, count: int, *send) -> str:
    """Start reading ``count`` events from the guest's PS/2 keyboard, run ``vsh send-key *send``,
    return what the guest read (od's hex bytes)."""
    node = _value(vm, "for d in /sys/class/input/input*; do grep -q 'AT Translated' $d/name && "
                      "echo VALUE=$(ls $d | grep '^event'); done")
    vm.sh(f"rm -f /tmp/k; (dd if=/dev/input/{node} bs=24 count={count} 2>/dev/null | od -An -tx1 >/tmp/k.part; "
          "mv /tmp/k.part /tmp/k) &")
    time.sleep(0.5)
    vm.vsh("send-key", "gr1", *send)
    deadline = time.monotonic() + 30
    while "READY" not in vm.sh("[ -e /tmp/k ] && echo REA''DY"):
        assert time.monotonic() < deadline, "the guest saw no key"
        time.sleep(0.3)
    return _value(vm, "echo VALUE=$(cat /tmp/k)", r"[0-9a-f ]+")


def test_send_key_reaches_the_guest_keyboard_in_each_codeset(vm):
    # EV_KEY (01 00) KEY_A (1e 00) pressed (01 00 00 00), then released
    events = _keyboard_events(vm, 6, "KEY_A")
    assert "01 00 1e 00 01 00 00 00" in events and "01 00 1e 00 00 00 00 00" in events
    # xt scancode 0x30 is KEY_B (48); qnum 0x9c is the keypad's Enter (KEY_KPENTER, 96)
    events = _keyboard_events(vm, 6, "--codeset", "xt", "0x30")
    assert "01 00 30 00 01 00 00 00" in events
    events = _keyboard_events(vm, 6, "--codeset", "qnum", "0x9c", "--holdtime", "50")
    assert "01 00 60 00 01 00 00 00" in events
    res = vm.vsh("send-key", "gr1", "--codeset", "xt", "0xe0", check=False)
    assert res.returncode == 1 and "cannot translate keycode 224 of xt codeset" in res.stderr


def test_inject_nmi_reaches_the_guest(vm):
    def nmis() -> int:
        return int(_value(vm, "echo VALUE=$(dmesg | grep -c 'NMI received for unknown reason')"))

    before = nmis()
    assert vm.vsh("inject-nmi", "gr1").stdout.strip() == ""
    deadline = time.monotonic() + 30
    while nmis() <= before:
        assert time.monotonic() < deadline, "the guest logged no NMI"
        time.sleep(0.5)


def test_domif_setlink_unplugs_and_plugs_the_cable(vm):
    assert vm.vsh("domif-getlink", "gr1", MAC).stdout.splitlines()[0] == f"{MAC} up"
    assert vm.vsh("domif-setlink", "gr1", MAC, "down").stdout == "Device updated successfully\n\n"
    assert _value(vm, "echo VALUE=$(cat /sys/class/net/eth0/carrier)") == "0"
    assert vm.vsh("domif-getlink", "gr1", MAC).stdout.splitlines()[0] == f"{MAC} down"
    assert vm.vsh("domif-getlink", "gr1", MAC, "--config").stdout.splitlines()[0] == f"{MAC} up"
    assert "<link state='down'/>" in vm.xml() and "<link" not in vm.xml("--inactive")
    vm.vsh("domif-setlink", "gr1", MAC, "up")
    assert _value(vm, "echo VALUE=$(cat /sys/class/net/eth0/carrier)") == "1"
    vm.vsh("domif-setlink", "gr1", MAC, "down", "--config")
    assert "<link state='down'/>" in vm.xml("--inactive")
    assert vm.vsh("domif-getlink", "gr1", MAC).stdout.splitlines()[0] == f"{MAC} up"
    vm.vsh("domif-setlink", "gr1", MAC, "up", "--config")


def test_metadata_live_and_config(vm):
    ns = "http://example.com/vsh-test"
    vm.vsh("metadata", "gr1", ns, "--key", "t", "--set", "<run n='1'/>", "--live")
    assert vm.vsh("metadata", "gr1", ns).stdout.splitlines()[0] == '<run n="1"/>'
    res = vm.vsh("metadata", "gr1", ns, "--config", check=False)
    assert res.stderr.startswith("error: metadata not found: Requested metadata element is not present")
    assert f"<t:run xmlns:t='{ns}' n='1'/>" in vm.xml()


def test_set_lifecycle_action_live_is_applied_by_the_supervisor(vm):
    # power-off restarts the guest from now on; the persistent definition is unchanged
    vm.vsh("set-lifecycle-action", "gr1", "poweroff", "restart", "--live")
    assert "<on_poweroff>restart</on_poweroff>" in vm.xml()
    assert "<on_poweroff>destroy</on_poweroff>" in vm.xml("--inactive")
    assert vm.state()["lifecycle"]["on_poweroff"] == "restart"
    before = vm.log().count(vm.ready)
    vm.sh("poweroff")
    vm.wait_log(vm.ready, count=before + 1)
    assert vm.vsh("domstate", "gr1", "--reason").stdout.startswith("running (booted)")
    # and a reboot now stops it (reboot → destroy, live and config)
    vm.vsh("set-lifecycle-action", "gr1", "reboot", "destroy", "--live", "--config")
    assert "<on_reboot>destroy</on_reboot>" in vm.xml("--inactive")
    os.write(vm.pty, b"reboot\n")       # no reply to wait for: the domain stops
    deadline = time.monotonic() + 60
    while vm.state().get("state") != "shutoff":
        assert time.monotonic() < deadline, vm.state()
        time.sleep(0.3)
    assert vm.vsh("domstate", "gr1", "--reason").stdout.startswith("shut off (shutdown)")


def test_a_nic_defined_with_its_link_down_boots_unplugged(vm):
    assert vm.state()["state"] == "shutoff"
    vm.vsh("domif-setlink", "gr1", MAC, "down")          # inactive: the persistent definition
    vm.close_console()                                  # the pty of the last run is gone
    vm._stop = threading.Event()
    vm.vsh("start", "gr1")
    vm.wait_log(vm.ready)                               # console.log holds the new run only
    assert _value(vm, "echo VALUE=$(cat /sys/class/net/eth0/carrier)") == "0"
    assert vm.vsh("domif-getlink", "gr1", MAC).stdout.splitlines()[0] == f"{MAC} down"
