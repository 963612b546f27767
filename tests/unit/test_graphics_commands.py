"""domdisplay, vncdisplay, screenshot, send-key, inject-nmi, domif-setlink/getlink,
set-lifecycle-action and metadata without a running guest: key tables, URIs, options, the
persistent definition and virsh's errors. tests/integration/test_graphics_vm.py runs them on a
real guest.
"""

from __future__ import annotations

import json
import os

import pytest

from vsh.core.domain import Domain

MAC = "52:54:00:11:22:33"
NIC = f"<interface type='user'><mac address='{MAC}'/><model type='virtio'/></interface>"
NS = "http://example.com/ns"


@pytest.fixture
def vm(define, make_xml, vsh_env):
    define("vm1", make_xml("vm1", devices=NIC + "\n    <graphics type='vnc'/>"))
    return vsh_env.domains / "vm1.xml"


def ok(res, out="\n"):
    assert (res.status, res.err, res.out) == (0, "", out), res
    return res


def fails(res, err: str):
    assert (res.status, res.err) == (1, err), res
    return res


# -- keycodes ----------------------------------------------------------------------------------


def test_key_names_and_numbers_translate_to_qemu_numbers():
    from vsh.core import keycodes

    assert keycodes.by_name("linux", "KEY_A") == 30
    assert keycodes.by_name("win32", "VK_RETURN") == 0x0d
    assert keycodes.by_name("xt", "KEY_A") is None          # names exist in linux and win32 only
    assert keycodes.to_qnum("linux", 30) == 0x1e
    assert keycodes.to_qnum("linux", 96) == 0x9c              # KEY_KPENTER: e0 1c
    assert keycodes.to_qnum("xt", 0x30) == 0x30
    assert keycodes.to_qnum("xt", 0xe0) is None
    assert keycodes.to_qnum("atset1", 0xe048) == 0xc8         # the up arrow
    assert keycodes.to_qnum("usb", 4) == 0x1e                 # HID usage 4 is A
    assert keycodes.to_qnum("win32", 0x0d) == 0x1c
    assert keycodes.to_qnum("qnum", 0x9c) == keycodes.to_qnum("rfb", 0x9c) == 0x9c
    codes = [row[0] for row in keycodes.ROWS]
    assert len(codes) == len(set(codes)) and len({row[2] for row in keycodes.ROWS}) == len(codes)


def test_send_key_parses_numbers_as_c_does():
    from vsh.commands.graphics import parse_keycode
    from vsh.core.errors import InvalidArgument

    assert [parse_keycode("linux", w) for w in ("0x1c", "034", "28", "KEY_ENTER")] == [28] * 4
    for word in ("zz", "0x10000", "-1", "KEY_NOPE"):
        with pytest.raises(InvalidArgument) as err:
            parse_keycode("linux", word)
        assert err.value.lines == (f"invalid keycode: '{word}'",)


def test_send_key_errors_come_before_the_domain_is_asked(vm, vsh):
    fails(vsh("send-key", "vm1", "--codeset", "foo", "1"), "error: unknown codeset: 'foo'\n")
    fails(vsh("send-key", "vm1", "KEY_NOPE"), "error: invalid keycode: 'KEY_NOPE'\n")
    fails(vsh("send-key", "vm1", *map(str, range(1, 18))), "error: too many keycodes\n")
    fails(vsh("send-key", "vm1", "KEY_A"), "error: Requested operation is not valid: domain is not running\n")
    fails(vsh("send-key", "vm1"), "error: command 'send-key' requires <keycode> option\n")


# -- display URIs --------------------------------------------------------------------------------


def test_display_uris_as_virsh_prints_them():
    from vsh.commands.graphics import display_uri

    def g(**kw):
        return dict({"type": "vnc", "port": None, "tls_port": None, "listen": None, "socket": None,
                     "password": None}, **kw)

    assert display_uri(g(socket="/run/vsh/vm1/vnc.sock")) == "vnc+unix:///run/vsh/vm1/vnc.sock"
    assert display_uri(g(port=5903)) == "vnc://localhost:3"
    assert display_uri(g(port=5901, listen="::1", password="pw"), include_password=True) == "vnc://:pw@[::1]:1"
    assert display_uri(g(type="spice", port=5901)) == "spice://localhost:5901"
    assert display_uri(g(type="spice", tls_port=5907)) == "spice://localhost:-1?tls-port=5907"


def test_graphics_of_a_live_definition():
    from vsh.api.local.display import graphics_of

    node = Domain.parse("<domain type='qemu'><name>a</name><memory>1</memory><devices>"
                        "<graphics type='vnc'><listen type='socket' socket='/s/v.sock'/></graphics>"
                        "</devices></domain>").node
    assert graphics_of(node, "/run/x") == [{"type": "vnc", "port": None, "tls_port": None, "listen": None,
                                            "socket": "/s/v.sock", "password": None}]
    node = Domain.parse("<domain type='qemu'><name>a</name><memory>1</memory><devices><graphics type='vnc'/>"
                        "</devices></domain>").node
    assert graphics_of(node, "/run/x")[0]["socket"] == "/run/x/vnc.sock"


def test_display_commands_need_the_running_domain(vm, vsh):
    fails(vsh("domdisplay", "vm1"), "error: Domain is not running\n")
    fails(vsh("vncdisplay", "vm1"), "error: Domain is not running\n")
    fails(vsh("screenshot", "vm1"), "error: Requested operation is not valid: domain is not running\n")
    fails(vsh("inject-nmi", "vm1"), "error: Requested operation is not valid: domain is not running\n")


def test_the_live_xml_names_the_vnc_socket():
    from vsh.api.local.launch import name_vnc_sockets

    dom = Domain.parse("<domain type='qemu'><name>a</name><memory>1</memory><devices>"
                       "<graphics type='vnc'><listen type='address' address='0.0.0.0'/></graphics>"
                       "<graphics type='vnc' socket='/mine.sock'/></devices></domain>")
    name_vnc_sockets(dom, "/run/vsh/a")
    first, second = dom.node.findall("./devices/graphics")
    assert first.get("socket") == "/run/vsh/a/vnc.sock"
    assert [(el.get("type"), el.get("socket")) for el in first] == [("socket", "/run/vsh/a/vnc.sock")]
    assert second.get("socket") == "/mine.sock" and len(second) == 0


# -- domif-setlink / domif-getlink ----------------------------------------------------------------


def test_link_state_of_an_inactive_domain_is_its_configuration(vm, vsh):
    ok(vsh("domif-getlink", "vm1", MAC), f"{MAC} up\n")
    ok(vsh("domif-setlink", "vm1", MAC, "down"), "Device updated successfully\n\n")
    assert "<link state='down'/>" in vm.read_text()
    ok(vsh("domif-getlink", "vm1", MAC.upper(), "--config"), f"{MAC.upper()} down\n")
    assert json.loads(vsh("domif-getlink", "vm1", MAC, "--json").out) == {
        "interface": MAC, "mac": MAC, "state": "down"}
    ok(vsh("domif-setlink", "vm1", MAC, "up", "--config"), "Device updated successfully\n\n")
    assert "<link state='up'/>" in vm.read_text()
    fails(vsh("domif-setlink", "vm1", MAC, "sideways"), "error: Invalid link state 'sideways'\n")
    fails(vsh("domif-getlink", "vm1", "vnet7"), "error: interface (target: vnet7) not found\n")
    fails(vsh("domif-getlink", "vm1", "52:54:00:00:00:01"), "error: interface (mac: 52:54:00:00:00:01) not found\n")


# -- set-lifecycle-action --------------------------------------------------------------------------


def test_set_lifecycle_action_changes_the_definition(vm, vsh):
    ok(vsh("set-lifecycle-action", "vm1", "crash", "coredump-restart"))
    ok(vsh("set-lifecycle-action", "vm1", "reboot", "destroy", "--config"))
    cfg = Domain.parse(vm.read_bytes())
    assert (cfg.on_poweroff, cfg.on_reboot, cfg.on_crash) == ("destroy", "destroy", "coredump-restart")
    fails(vsh("set-lifecycle-action", "vm1", "halt", "destroy"), "error: Invalid lifecycle type 'halt'.\n")
    fails(vsh("set-lifecycle-action", "vm1", "reboot", "explode"), "error: Invalid lifecycle action 'explode'.\n")
    fails(vsh("set-lifecycle-action", "vm1", "poweroff", "coredump-destroy"),
          "error: unsupported configuration: Lifecycle event 'poweroff' doesn't support 'coredump-destroy' action\n")
    res = vsh("set-lifecycle-action", "vm1", "reboot", "restart", "--live")
    assert res.status == 1 and res.err.startswith("error: Requested operation is not valid: domain is not running")
    assert Domain.parse(vm.read_bytes()).on_reboot == "destroy"


# -- metadata -----------------------------------------------------------------------------------------


def test_metadata_set_get_remove_as_virsh(vm, vsh):
    ok(vsh("metadata", "vm1", NS, "--key", "ex", "--set", '<foo bar="1"><b>x</b></foo>'), "Metadata modified\n\n")
    assert f"<ex:foo xmlns:ex='{NS}' bar='1'>" in vm.read_text()
    ok(vsh("metadata", "vm1", NS), '<foo bar="1"><b>x</b></foo>\n\n')
    ok(vsh("metadata", "vm1", "--uri", NS, "--key", "ex", "--set", "<other/>"), "Metadata modified\n\n")
    ok(vsh("metadata", "vm1", NS), "<other/>\n\n")
    assert vm.read_text().count(NS) == 1
    ok(vsh("metadata", "vm1", "http://example.org/two", "--key", "two", "--set", "<t/>"), "Metadata modified\n\n")
    assert json.loads(vsh("metadata", "vm1", NS, "--json").out) == {"domain": "vm1", "uri": NS, "metadata": "<other/>"}
    ok(vsh("metadata", "vm1", NS, "--remove"), "Metadata removed\n\n")
    fails(vsh("metadata", "vm1", NS), "error: metadata not found: Requested metadata element is not present\n")
    ok(vsh("metadata", "vm1", "http://example.org/two", "--remove"), "Metadata removed\n\n")
    assert "<metadata" not in vm.read_text()
    fails(vsh("metadata", "vm1", NS, "--set", "<a/>"), "error: namespace key is required when modifying metadata\n")
    res = vsh("metadata", "vm1", NS, "--key", "ex", "--set", "<a>")
    assert res.status == 1 and res.err.startswith("error: XML error")
    res = vsh("metadata", "vm1", NS, "--key", "ex", "--set", "<a/>", "--remove")
    assert res.status == 1 and "--remove" in res.err and "--set" in res.err
    res = vsh("metadata", "vm1", NS, "--live")
    assert res.status == 1 and "domain is not running" in res.err


def test_metadata_edit_uses_the_editor(vm, vsh, vsh_env, monkeypatch):
    script = vsh_env.tmp / "ed.sh"
    script.write_text("#!/bin/sh\nsed -i 's|<ex/>|<ex n=\"2\"/>|' \"$1\"\n")
    script.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(script))
    ok(vsh("metadata", "vm1", NS, "--key", "ex", "--edit"), "Metadata modified\n\n")
    ok(vsh("metadata", "vm1", NS), '<ex n="2"/>\n\n')
    ok(vsh("metadata", "vm1", NS, "--key", "ex", "--edit"), "Metadata not changed\n\n")


def _pretend_running(vsh_env, name: str):
    """A fresh state.json naming a live pid, and live.xml: the domain looks running (no QEMU)."""
    from vsh.core.store import boot_id

    rundir = vsh_env.store / "run" / name
    rundir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (rundir / "state.json").write_text(json.dumps({"state": "running", "reason": "booted", "id": 3,
                                                   "qemu_pid": os.getpid(), "supervisor_pid": os.getpid(),
                                                   "boot_id": boot_id()}))
    (rundir / "live.xml").write_bytes((vsh_env.domains / f"{name}.xml").read_bytes())
    return rundir


def test_domdisplay_and_vncdisplay_of_a_running_domain(vm, vsh, vsh_env, define, make_xml):
    rundir = _pretend_running(vsh_env, "vm1")
    ok(vsh("domdisplay", "vm1"), f"vnc+unix://{rundir}/vnc.sock\n\n")
    ok(vsh("domdisplay", "vm1", "--all", "--type", "vnc"), f"vnc+unix://{rundir}/vnc.sock\n\n")
    fails(vsh("vncdisplay", "vm1"), "error: Failed to get VNC port. Is this domain using VNC?\n"
                                      f"hint: its VNC display is the unix socket {rundir}/vnc.sock: "
                                      "see 'domdisplay vm1'\n")
    define("vm2", make_xml("vm2"))
    _pretend_running(vsh_env, "vm2")
    fails(vsh("domdisplay", "vm2"), "error: No graphical display found\n")
    fails(vsh("vncdisplay", "vm2"), "error: Failed to get VNC port. Is this domain using VNC?\n")
