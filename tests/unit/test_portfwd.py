"""User-mode port forwards (vsh/core/portfwd.py): the metadata, QEMU's hostfwd= from the argv
builder, define-time checks, and the refusal of a host port that is already taken."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pytest

from vsh.core import portfwd
from vsh.core.errors import InvalidArgument, OperationInvalid, XMLError
from vsh.core.xml import parse, serialize
from vsh.kvm.argv import RuntimePaths, build_argv, check_host_ports

_spec = importlib.util.spec_from_file_location(
    "argv_materials", Path(__file__).resolve().parents[1] / "argv_materials.py")
am = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(am)

NS = "xmlns:vsh='https://vsh.example/xmlns/net/1'"


def domain(forwards: str, nics: str = "<interface type='user'><mac address='52:54:00:00:00:01'/></interface>"):
    meta = f"<metadata><vsh:net {NS}>{forwards}</vsh:net></metadata>" if forwards is not None else ""
    return parse(f"""<domain type='qemu'><name>t</name>{meta}<memory unit='MiB'>64</memory>
<os><type arch='x86_64' machine='q35'>hvm</type></os><devices>{nics}</devices></domain>""")


def netdevs(root) -> list[str]:
    argv = build_argv(root, am.fake_host(), RuntimePaths.for_rundir("/run/vsh/t"))
    return [argv[i + 1] for i, a in enumerate(argv) if a == "-netdev"]


def test_parse_spec():
    assert portfwd.parse_spec("2222:22") == portfwd.PortForward("tcp", "127.0.0.1", 2222, "", 22)
    fw = portfwd.parse_spec("0.0.0.0:5353:53/udp", interface=1)
    assert (fw.proto, fw.host, fw.hostport, fw.guestport, fw.interface) == ("udp", "0.0.0.0", 5353, 53, 1)
    assert fw.hostfwd() == "udp:0.0.0.0:5353-:53"
    for bad in ("22", "a:b", "1:2:3:4", "70000:22", "0:22", "2222:22/sctp", "::1:2222:22", "300.1.1.1:1:2"):
        with pytest.raises(InvalidArgument):
            portfwd.parse_spec(bad)


def test_argv_gets_hostfwd_per_interface():
    root = domain("<vsh:forward interface='0' hostport='2222' guestport='22'/>"
                  "<vsh:forward mac='52:54:00:00:00:02' proto='udp' host='' hostport='5353' "
                  "guest='10.0.2.15' guestport='53'/>",
                  "<interface type='user'><mac address='52:54:00:00:00:01'/></interface>"
                  "<interface type='user'><mac address='52:54:00:00:00:02'/></interface>")
    assert netdevs(root) == ["user,id=hostnet0,hostfwd=tcp:127.0.0.1:2222-:22",
                             "user,id=hostnet1,hostfwd=udp::5353-10.0.2.15:53"]
    assert [f.describe() for f in portfwd.forwards(root)] == ["tcp 127.0.0.1:2222 -> guest:22",
                                                            "udp 0.0.0.0:5353 -> 10.0.2.15:53"]


def test_no_metadata_no_forwards():
    assert portfwd.forwards(domain(None)) == []
    assert netdevs(domain(None)) == ["user,id=hostnet0"]


def test_forward_to_a_missing_interface_is_refused_at_start():
    root = domain("<vsh:forward interface='3' hostport='2222' guestport='22'/>")
    with pytest.raises(InvalidArgument, match="names interface number 3"):
        netdevs(root)
    root = domain("<vsh:forward hostport='2222' guestport='22'/>", nics="")
    with pytest.raises(InvalidArgument, match="not an <interface type='user'>"):
        netdevs(root)


@pytest.mark.parametrize("attrs, message", [
    ("hostport='2222'", "needs hostport= and guestport="),
    ("hostport='x' guestport='22'", "not a port number"),
    ("hostport='2222' guestport='22' proto='icmp'", "not tcp or udp"),
    ("hostport='2222' guestport='22' host='::1'", "IPv4"),
    ("hostport='2222' guestport='22' guest='10.0.2'", "IPv4"),
    ("hostport='2222' guestport='22' interface='first'", "not an interface number"),
    ("hostport='2222' guestport='22' mac='nope'", "not a MAC address"),
    ("hostport='2222' guestport='22' mac='52:54:00:00:00:01' interface='0'", "not both"),
])
def test_bad_forward_metadata(attrs, message):
    root = domain(f"<vsh:forward {attrs}/>")
    with pytest.raises(XMLError, match=message):
        portfwd.forwards(root)


def test_duplicate_host_port():
    root = domain("<vsh:forward hostport='2222' guestport='22'/><vsh:forward hostport='2222' guestport='23'/>")
    with pytest.raises(XMLError, match="two port forwards use host port tcp/2222"):
        portfwd.forwards(root)


def test_add_writes_the_documented_form():
    root = domain(None)
    portfwd.add(root, portfwd.parse_spec("2222:22"))
    portfwd.add(root, portfwd.make("udp", "0.0.0.0", "53", "10.0.2.15", "53", mac="52:54:00:00:00:01"))
    text = serialize(root)
    assert f"<vsh:net {NS}>" in text
    assert "<vsh:forward interface='0' proto='tcp' host='127.0.0.1' hostport='2222' guestport='22'/>" in text
    assert "<vsh:forward mac='52:54:00:00:00:01' proto='udp' host='0.0.0.0' hostport='53' guest='10.0.2.15' " \
           "guestport='53'/>" in text
    assert portfwd.forwards(parse(text)) == portfwd.forwards(root)


def test_taken_host_port_is_refused():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        root = domain(f"<vsh:forward hostport='{port}' guestport='22'/>")
        with pytest.raises(OperationInvalid, match=f"host port tcp 127.0.0.1:{port} is already in use"):
            check_host_ports(root)
        # listening on every address collides with the loopback listener too
        root = domain(f"<vsh:forward host='0.0.0.0' hostport='{port}' guestport='22'/>")
        with pytest.raises(OperationInvalid, match="already in use"):
            check_host_ports(root)
    finally:
        holder.close()
    check_host_ports(domain(f"<vsh:forward hostport='{port}' guestport='22'/>"))  # free again


def test_define_checks_the_metadata(vsh, tmp_path, make_xml):
    bad = make_xml("pf", extra=f"<metadata><vsh:net {NS}><vsh:forward hostport='1' guestport='0'/></vsh:net>"
                               "</metadata>")
    (tmp_path / "bad.xml").write_text(bad)
    res = vsh("define", tmp_path / "bad.xml")
    assert res.status == 1 and "<vsh:forward> #0 guestport: '0' is not a port number" in res.err
    good = make_xml("pf", extra=f"<metadata><vsh:net {NS}><vsh:forward hostport='2222' guestport='22'/>"
                                "</vsh:net></metadata>",
                    devices="<interface type='user'><mac address='52:54:00:00:00:01'/></interface>")
    (tmp_path / "good.xml").write_text(good)
    assert vsh("define", tmp_path / "good.xml").status == 0
    assert "<vsh:forward hostport='2222' guestport='22'/>" in vsh("dumpxml", "pf").out
    res = vsh("domxml-to-native", "qemu-argv", "--domain", "pf")
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in res.out, res
