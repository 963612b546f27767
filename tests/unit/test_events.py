"""Domain events: the supervisor's state changes as libvirt's lifecycle events, and virsh's
text for each event (vsh event)."""

import shutil
import subprocess

import pytest

from vsh.api.local.events import lifecycle_events
from vsh.commands.events import event_text, timestamp_text


@pytest.mark.parametrize("change, events", [
    (("running", "booted", "starting"), [("Started", "Booted")]),
    (("running", "restored", "starting"), [("Started", "Restored")]),
    (("paused", "user", "starting"), [("Started", "Booted"), ("Suspended", "Paused")]),
    (("paused", "user", "running"), [("Suspended", "Paused")]),
    (("paused", "ioerror", "running"), [("Suspended", "I/O Error")]),
    (("running", "unpaused", "paused"), [("Resumed", "Unpaused")]),
    (("running", "from snapshot", "paused"), [("Resumed", "Snapshot")]),
    (("shutoff", "destroyed", "running"), [("Stopped", "Destroyed")]),
    (("shutoff", "shutdown", "shutdown"), [("Stopped", "Shutdown")]),
    (("shutoff", "saved", "paused"), [("Stopped", "Saved")]),
    (("shutoff", "crashed", "running"), [("Stopped", "Crashed")]),
    (("crashed", "panicked", "running"), [("Crashed", "Panicked")]),
    (("shutdown", "user", "running"), []),
    (("running", "booted", "shutdown"), []),
    (("pmsuspended", "unknown", "running"), [("PMSuspended", "Memory")]),
    (("running", "wakeup", "pmsuspended"), [("Started", "Event wakeup")]),
])
def test_lifecycle_events(change, events):
    state, reason, previous = change
    assert lifecycle_events({"state": state, "reason": reason, "previous": previous}) == events


def test_event_text_is_virsh_text():
    assert event_text("vm1", {"event": "lifecycle", "type": "Stopped", "detail": "Destroyed"}) == \
        "event 'lifecycle' for domain 'vm1': Stopped Destroyed\n"
    assert event_text("vm1", {"event": "reboot"}) == "event 'reboot' for domain 'vm1'\n"
    assert event_text("vm1", {"event": "balloon-change", "actual": 1024}) == \
        "event 'balloon-change' for domain 'vm1': 1024KiB\n"
    assert event_text("vm1", {"event": "block-job-2", "job": "Block Pull", "disk": "vda", "status": "completed"}) == \
        "event 'block-job-2' for domain 'vm1': Block Pull for vda completed\n"
    assert event_text("vm1", {"event": "block-threshold", "dev": "vda", "path": None, "threshold": 5,
                              "excess": 1}) == "event 'block-threshold' for domain 'vm1': dev: vda((null)) 5 1\n"
    assert event_text("vm1", {"event": "tray-change", "alias": "ide0-1-0", "tray": "opened"}) == \
        "event 'tray-change' for domain 'vm1' disk ide0-1-0: opened\n"
    assert event_text("v\x1bm", {"event": "reboot"}) == "event 'reboot' for domain 'v\\x1bm'\n"
    assert event_text("vm1", {"event": "io-error", "path": "/i/d.qcow2", "alias": "virtio-disk1",
                              "action": "pause"}) == \
        "event 'io-error' for domain 'vm1': /i/d.qcow2 (virtio-disk1) pause\n"
    assert event_text("vm1", {"event": "io-error-reason", "path": "/i/d.qcow2", "alias": "virtio-disk1",
                              "action": "report", "reason": "enospc"}) == \
        "event 'io-error-reason' for domain 'vm1': /i/d.qcow2 (virtio-disk1) report due to enospc\n"


def test_timestamp_text():
    assert timestamp_text(0.25) == "1970-01-01 00:00:00.250+0000"


def test_qemu_events_become_libvirt_events():
    from vsh.api.local.events import _translate

    def tr(name, data):
        return [{k: v for k, v in ev.items()} for ev in _translate({"event": name, "data": data}, None)]

    assert tr("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"}) == [
        {"event": "lifecycle", "type": "Shutdown", "detail": "Finished after guest request"}]
    assert tr("SHUTDOWN", {"guest": False, "reason": "host-signal"}) == []          # a destroy
    assert tr("SHUTDOWN", {"guest": True, "reason": "guest-reset"}) == []
    assert tr("RESET", {"guest": True}) == [{"event": "reboot"}]
    assert tr("RTC_CHANGE", {"offset": 3600}) == [{"event": "rtc-change", "offset": 3600}]
    assert tr("BALLOON_CHANGE", {"actual": 256 << 20}) == [{"event": "balloon-change", "actual": 262144}]
    assert tr("STOP", {}) == []


def test_block_io_error_becomes_io_error_and_its_reason():
    from vsh.api.local.events import _translate

    class Live:
        def backend(self, node, device):
            return ({"fmt1": ("/i/d.qcow2", "virtio-disk1")}.get(node, ("", "")))

    def tr(data):
        return _translate({"event": "BLOCK_IO_ERROR", "data": data}, Live())

    assert tr({"device": "", "node-name": "fmt1", "operation": "write", "action": "stop", "nospace": True,
               "reason": "No space left on device"}) == [
        {"event": "io-error", "path": "/i/d.qcow2", "alias": "virtio-disk1", "action": "pause"},
        {"event": "io-error-reason", "path": "/i/d.qcow2", "alias": "virtio-disk1", "action": "pause",
         "reason": "enospc"}]
    # libvirt's reason is only ever "enospc" or empty; an unknown node gives empty names, as libvirt's
    assert tr({"device": "", "node-name": "gone", "operation": "read", "action": "report",
               "reason": "Input/output error"})[1] == {
        "event": "io-error-reason", "path": "", "alias": "", "action": "report", "reason": ""}
    assert tr({"device": "", "node-name": "fmt1", "action": "ignore", "operation": "write"})[0]["action"] == "none"


@pytest.mark.skipif(shutil.which("virsh") is None, reason="needs virsh (libvirt-clients)")
def test_event_list_is_virshs(vsh):
    virsh = subprocess.run(["virsh", "-c", "test:///default", "event", "--list"], capture_output=True, text=True,
                           check=True, timeout=60).stdout
    assert vsh("event", "--list").out == virsh


def test_agent_port_changes_and_hot_plugs_become_agent_lifecycle_and_device_added():
    from vsh.api.local.events import _translate

    class Live:
        def port_name(self, port_id):
            return {"channel0": "org.qemu.guest_agent.0", "channel1": "org.example.0"}.get(port_id)

    def tr(name, data):
        return _translate({"event": name, "data": data}, Live())

    assert tr("VSERPORT_CHANGE", {"id": "channel0", "open": True}) == [
        {"event": "agent-lifecycle", "state": "connected", "reason": "channel event"}]
    assert tr("VSERPORT_CHANGE", {"id": "channel0", "open": False})[0]["state"] == "disconnected"
    assert tr("VSERPORT_CHANGE", {"id": "channel1", "open": True}) == []        # not the agent's port
    assert tr("VSH_DEVICE_ADDED", {"device": "virtio-disk1"}) == [{"event": "device-added", "alias": "virtio-disk1"}]
    assert event_text("vm1", {"event": "agent-lifecycle", "state": "connected", "reason": "channel event"}) == \
        "event 'agent-lifecycle' for domain 'vm1': state: 'connected' reason: 'channel event'\n"
    assert event_text("vm1", {"event": "device-added", "alias": "net1"}) == \
        "event 'device-added' for domain 'vm1': net1\n"


def test_channel_states_in_the_live_xml():
    from vsh.core.domain import Domain
    from vsh.kvm import channels

    dom = Domain.parse("<domain type='qemu'><name>c</name><memory>65536</memory><devices>"
                       "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
                       "<channel type='pty'><target type='guestfwd' address='10.0.2.1' port='4600'/></channel>"
                       "<channel type='pty'><target type='virtio' name='org.example.0'/></channel>"
                       "</devices></domain>")
    chardevs = [{"label": "charchannel0", "frontend-open": True}, {"label": "charserial0", "frontend-open": True},
                {"label": "charchannel2", "frontend-open": False}, {"label": "charchannel9"}]
    opened = channels.from_chardevs(chardevs)
    assert opened == {0: True, 2: False}
    assert channels.set_states(dom, opened) is True
    assert [t.get("state") for t in dom.node.findall("devices/channel/target")] == ["connected", None, "disconnected"]
    assert channels.set_states(dom, opened) is False                 # nothing new: the file is not rewritten
    assert channels.from_event({"id": "channel0", "open": False}) == {0: False}
    assert channels.from_event({"id": "virtio-serial0"}) == {}
    channels.set_states(dom, channels.from_event({"id": "channel0", "open": False}))
    assert dom.node.find("devices/channel/target").get("state") == "disconnected"


def test_vnc_and_spice_clients_become_graphics_events():
    from vsh.api.local.events import _translate

    server = {"host": "", "service": "/run/vsh/vm1/vnc.sock", "family": "unix", "websocket": False, "auth": "none"}
    client = {"host": "", "service": "", "family": "unix", "websocket": False}
    phases = [_translate({"event": name, "data": {"server": server, "client": client}}, None)[0]
              for name in ("VNC_CONNECTED", "VNC_INITIALIZED", "VNC_DISCONNECTED")]
    assert [ev["phase"] for ev in phases] == ["connect", "initialize", "disconnect"]
    assert event_text("vm1", phases[0]) == \
        "event 'graphics' for domain 'vm1': connect local[unix  /run/vsh/vm1/vnc.sock] remote[unix  ] none\n"
    tls = _translate({"event": "SPICE_INITIALIZED", "data": {
        "server": {"host": "127.0.0.1", "port": "5900", "family": "ipv4", "auth": "spice"},
        "client": {"host": "127.0.0.1", "port": "40000", "family": "ipv6", "x509_dname": "CN=me",
                   "sasl_username": "al"}}}, None)[0]
    assert event_text("vm1", tls) == ("event 'graphics' for domain 'vm1': initialize local[IPv4 127.0.0.1 5900] "
                                      "remote[IPv6 127.0.0.1 40000] spice\n\tx509dname=CN=me\n\tsaslUsername=al\n")
