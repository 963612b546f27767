"""Network definitions (vsh.core.networks), the host-side plans (vsh.kvm.hostnet) and the
net-* commands that need no bridge: define, list, info, dumpxml, autostart, undefine.
Starting networks on real bridges is tests/integration/test_network_vm.py."""

from __future__ import annotations

import pytest

from vsh.core.errors import InvalidArgument, Unsupported, VshError, XMLError
from vsh.core.networks import parse_network_xml, read_leases
from vsh.kvm import hostnet

LIBVIRT_DEFAULT = """<network>
  <name>default</name>
  <uuid>dd8fe884-6c02-601e-7551-cca97df1c5df</uuid>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
"""


def net_xml(body: str, name: str = "n1") -> str:
    return f"<network><name>{name}</name>{body}</network>"


def test_libvirts_default_network_round_trips_byte_for_byte():
    net = parse_network_xml(LIBVIRT_DEFAULT)
    assert net.xml() == LIBVIRT_DEFAULT
    assert (net.name, net.forward_mode, net.bridge, net.stp, net.delay) == ("default", "nat", "virbr0", True, 0)
    assert str(net.ipv4) == "192.168.122.1/24"
    assert net.dhcp_ranges == [("192.168.122.2", "192.168.122.254")]


@pytest.mark.parametrize("body, error, text", [
    ("<forward mode='passthrough'/>", Unsupported, "forward mode 'passthrough' is not supported"),
    ("<forward mode='teleport'/>", XMLError, "unknown forwarding type 'teleport'"),
    ("<portgroup name='x'/>", Unsupported, "<network><portgroup> is not supported"),
    ("<ip family='ipv6' address='fd00::1' prefix='64'/>", Unsupported, "IPv6"),
    ("<ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.1.2' end='10.0.1.9'/></dhcp></ip>",
     InvalidArgument, "not a host address of network 10.0.0.0/24"),
    ("<ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.9' end='10.0.0.2'/></dhcp></ip>",
     InvalidArgument, "is reversed"),
    ("<ip address='10.0.0.0' prefix='24'/>", InvalidArgument, "network or broadcast address"),
    ("<ip address='10.0.0.1' prefix='31'/>", InvalidArgument, "too small"),
    ("<ip address='10.0.0.1' prefix='24' netmask='255.255.255.0'/>", InvalidArgument, "not both"),
    ("<ip address='10.0.0.1' prefix='24'><dhcp><host mac='zz' ip='10.0.0.5'/></dhcp></ip>", XMLError,
     "malformed mac address 'zz'"),
    ("<bridge name='this-name-is-far-too-long'/>", InvalidArgument, "not a valid interface name"),
    ("<bridge name='br0;reboot'/>", InvalidArgument, "not a valid interface name"),
    ("<mac address='01:00:00:00:00:01'/>", InvalidArgument, "multicast"),
    ("<forward mode='bridge'/>", XMLError, "needs <bridge name="),
    ("<forward mode='bridge'/><bridge name='br0'/><ip address='10.0.0.1'/>", XMLError, "cannot have <ip>"),
    ("<dns><txt name='a' value='b'/></dns>", Unsupported, "<dns><txt> is not supported"),
    ("<uuid>not-a-uuid</uuid>", XMLError, "malformed uuid"),
])
def test_bad_definitions_are_refused_with_the_cause(body, error, text):
    with pytest.raises(error) as ei:
        parse_network_xml(net_xml(body))
    assert text in str(ei.value)


@pytest.mark.parametrize("name", ["a/b", ".hidden", "", "tab\tname"])
def test_bad_names(name):
    with pytest.raises(VshError):
        parse_network_xml(net_xml("", name=name))


def test_dnsmasq_configuration_serves_only_the_bridge():
    net = parse_network_xml(net_xml(
        "<bridge name='vbr5'/><domain name='lab.test'/><dns><forwarder addr='192.0.2.53'/>"
        "<host ip='10.5.0.20'><hostname>db</hostname><hostname>db2</hostname></host></dns>"
        "<ip address='10.5.0.1' prefix='24'><dhcp><range start='10.5.0.100' end='10.5.0.109'/>"
        "<host mac='52:54:00:00:00:07' name='web' ip='10.5.0.7'/></dhcp></ip>"))
    conf = hostnet.dnsmasq_conf(net, "/run/x").splitlines()
    for line in ("interface=vbr5", "bind-dynamic", "except-interface=lo", "listen-address=10.5.0.1",
                 "dhcp-range=10.5.0.100,10.5.0.109,255.255.255.0", "dhcp-host=52:54:00:00:00:07,10.5.0.7,web",
                 "dhcp-lease-max=11", "dhcp-leasefile=/run/x/leases", "pid-file=/run/x/dnsmasq.pid",
                 "domain=lab.test", "local=/lab.test/", "server=192.0.2.53", "host-record=db,db2,10.5.0.20"):
        assert line in conf
    net = parse_network_xml(net_xml("<bridge name='vbr5'/><dns enable='no'/><ip address='10.5.0.1'/>"))
    conf = hostnet.dnsmasq_conf(net, "/run/x").splitlines()
    assert "port=0" in conf and not any(line.startswith("dhcp-") for line in conf)


def test_firewall_rules_per_forward_mode():
    def rules(body):
        net = parse_network_xml(net_xml("<uuid>11111111-2222-3333-4444-555555555555</uuid><bridge name='vbr1'/>"
                                        + body + "<ip address='10.1.0.1' prefix='24'/>"))
        return hostnet.nft_ruleset(net)

    nat = rules("<forward mode='nat'/>")
    assert nat.startswith("table ip vsh_111111112222 {")
    assert "ip saddr 10.1.0.0/24 ip daddr != 10.1.0.0/24 masquerade" in nat
    assert 'oifname "vbr1" ip daddr 10.1.0.0/24 ct state established,related accept' in nat
    route = rules("<forward mode='route'/>")
    assert "masquerade" not in route and 'oifname "vbr1" ip daddr 10.1.0.0/24 accept' in route
    isolated = rules("")
    assert "masquerade" not in isolated and "saddr" not in isolated
    assert 'iifname "vbr1" reject' in isolated and 'iifname "vbr1" oifname "vbr1" accept' in isolated
    assert rules("<forward mode='open'/>") is None
    out = rules("<forward mode='nat' dev='eth9'/>")
    assert 'ip daddr != 10.1.0.0/24 oifname "eth9" masquerade' in out


def test_leases_file_parsing(tmp_path):
    path = tmp_path / "leases"
    path.write_text("1795666532 52:54:00:AA:BB:02 10.213.0.135 guest 01:52:54:00:aa:bb:02\n"
                    "1795666533 52:54:00:aa:bb:03 10.213.0.136 * *\n"
                    "garbage line\n"
                    "duid 00:01:00:01\n"
                    "1795666534 nonsense 10.0.0.1 x *\n")
    assert read_leases(str(path)) == [
        {"expiry": 1795666532, "mac": "52:54:00:aa:bb:02", "ip": "10.213.0.135", "type": "ipv4",
         "hostname": "guest", "clientid": "01:52:54:00:aa:bb:02"},
        {"expiry": 1795666533, "mac": "52:54:00:aa:bb:03", "ip": "10.213.0.136", "type": "ipv4",
         "hostname": None, "clientid": None}]
    assert read_leases(str(tmp_path / "missing")) == []


# -- commands (definitions only) ------------------------------------------------------------------------


def test_every_connection_has_an_inactive_autostart_default(vsh):
    res = vsh("net-list", "--all")
    assert res.status == 0
    assert res.out.splitlines()[:3] == [" Name      State      Autostart   Persistent",
                                        "----------------------------------------------",
                                        " default   inactive   yes         yes"]
    assert [line for line in vsh("net-list").out.splitlines()[2:] if line.strip()] == []
    info = vsh("net-info", "default").out.splitlines()
    assert info[2:5] == ["Active:         no", "Persistent:     yes", "Autostart:      yes"]
    assert info[5].startswith("Bridge:         virbr") and info[6:] == [""]


def test_define_fills_in_uuid_bridge_and_mac(vsh, tmp_path):
    path = tmp_path / "n1.xml"
    path.write_text(net_xml("<forward/><ip address='10.7.0.1' prefix='24'/>"))
    res = vsh("net-define", path)
    assert res.status == 0 and res.out == f"Network n1 defined from {path}\n\n"
    xml = vsh("net-dumpxml", "n1").out
    lines = xml.splitlines()
    assert lines[0] == "<network>" and lines[1] == "  <name>n1</name>"
    assert lines[2].startswith("  <uuid>") and lines[3] == "  <forward/>"
    assert lines[4].startswith("  <bridge name='virbr") and lines[4].endswith(" stp='on' delay='0'/>")
    assert lines[5].startswith("  <mac address='52:54:00:")
    uuid = lines[2][8:44]
    assert vsh("net-uuid", "n1").out == uuid + "\n\n"
    assert vsh("net-name", uuid).out == "n1\n\n"
    # a redefinition keeps UUID and bridge
    path.write_text(net_xml("<forward mode='route'/><ip address='10.7.0.1' prefix='24'/>"))
    assert vsh("net-define", path).status == 0
    again = vsh("net-dumpxml", "n1").out
    assert uuid in again and lines[4].split("'")[1] in again and "<forward mode='route'/>" in again


def test_conflicting_definitions_are_refused_and_change_nothing(vsh, tmp_path, vsh_env):
    a = tmp_path / "a.xml"
    a.write_text(net_xml("<uuid>11111111-2222-3333-4444-555555555555</uuid><bridge name='vbr1'/>", name="a"))
    assert vsh("net-define", a).status == 0
    b = tmp_path / "b.xml"
    b.write_text(net_xml("<bridge name='vbr1'/>", name="b"))
    res = vsh("net-define", b)
    assert res.status == 1 and "bridge name 'vbr1' already in use" in res.err
    b.write_text(net_xml("<uuid>11111111-2222-3333-4444-555555555555</uuid>", name="b"))
    res = vsh("net-define", b)
    assert res.status == 1 and "network 'a' already exists with uuid" in res.err
    a.write_text(net_xml("<uuid>99999999-2222-3333-4444-555555555555</uuid>", name="a"))
    res = vsh("net-define", a)
    assert res.status == 1 and "already defined with uuid 11111111" in res.err
    assert not (vsh_env.store / "config" / "networks" / "b.xml").exists()
    assert "11111111" in vsh("net-dumpxml", "a").out


def test_autostart_undefine_and_lookup_errors(vsh, tmp_path):
    path = tmp_path / "n.xml"
    path.write_text(net_xml("<bridge name='vbr3'/>", name="n3"))
    vsh("net-define", path)
    assert vsh("net-autostart", "n3").out == "Network n3 marked as autostarted\n\n"
    assert "Autostart:      yes" in vsh("net-info", "n3").out
    assert vsh("net-list", "--all", "--autostart", "--name").out.split() == ["default", "n3"]
    assert vsh("net-autostart", "n3", "--disable").out == "Network n3 unmarked as autostarted\n\n"
    assert vsh("net-list", "--all", "--no-autostart", "--name").out.split() == ["n3"]
    assert vsh("net-undefine", "n3").out == "Network n3 has been undefined\n\n"
    res = vsh("net-info", "n3")
    assert res.status == 1 and res.err == "error: Network not found: no network with matching name 'n3'\n"
    res = vsh("net-dhcp-leases", "default", "--mac", "nope")
    assert res.status == 1 and "invalid MAC address 'nope'" in res.err
    res = vsh("net-dhcp-leases", "default")
    assert res.status == 0 and res.out.splitlines()[0].split()[:2] == ["Expiry", "Time"]
    res = vsh("net-destroy", "default")
    assert res.status == 1 and "network 'default' is not active" in res.err


def test_json_and_xpath(vsh):
    import json

    data = json.loads(vsh("net-list", "--all", "--json").out)
    assert data[0]["name"] == "default" and data[0]["forward"] == "nat" and data[0]["active"] is False
    assert vsh("net-dumpxml", "default", "--xpath", "//range/@end").out.startswith(' end="192.168.')


def test_taps_need_cap_net_admin(monkeypatch, vsh_env):
    from vsh.core.domain import Domain
    from vsh.core.store import Store

    monkeypatch.setattr(hostnet, "has_net_admin", lambda: False)
    dom = Domain.parse("<domain type='qemu'><name>x</name><memory>65536</memory><devices>"
                       "<interface type='network'><mac address='52:54:00:00:00:01'/><source network='default'/>"
                       "</interface></devices></domain>")
    with pytest.raises(Unsupported) as ei:
        hostnet.plan_taps(Store.open(vsh_env.uri), dom)
    assert "needs CAP_NET_ADMIN" in str(ei.value)


def test_net_edit_defines_the_edited_xml_and_refuses_bad_edits(vsh, tmp_path, monkeypatch):
    path = tmp_path / "n.xml"
    path.write_text(net_xml("<bridge name='vbr4' stp='on'/>", name="n4"))
    vsh("net-define", path)
    monkeypatch.setenv("EDITOR", "sed -i s/stp=.on./stp=\\'off\\'/")
    res = vsh("net-edit", "n4")
    assert res.status == 0 and res.out == "Network n4 XML configuration edited.\n\n", res
    assert "<bridge name='vbr4' stp='off' delay='0'/>" in vsh("net-dumpxml", "n4").out
    monkeypatch.setenv("EDITOR", "sed -i s/vbr4/bad.name.far.too.long/")
    res = vsh("net-edit", "n4")
    assert res.status == 1 and "not a valid interface name" in res.err
    assert "network 'n4' is unchanged" in res.err
    assert "vbr4" in vsh("net-dumpxml", "n4").out
    monkeypatch.setenv("EDITOR", "true")
    assert vsh("net-edit", "n4").out == "Network n4 XML configuration not changed.\n\n"


# -- the API (vsh.api.networks) -------------------------------------------------------------------------


def test_api_handles_take_and_return_plain_data(vsh_env):
    import inspect

    from vsh import api
    from vsh.core.errors import NotFound

    conn = api.connect(vsh_env.uri)
    networks = conn.networks
    assert networks.names() == []                   # a cheap listing sets nothing up
    net = networks.define_xml(net_xml("<bridge name='vbr9'/><ip address='10.9.0.1' prefix='24'/>"))
    for handle in (networks, net):
        assert not {n for n, v in inspect.getmembers(type(handle)) if getattr(v, "__isabstractmethod__", False)}
    assert networks.names() == ["default", "n1"]
    info = net.info()
    assert (info["name"], info["active"], info["persistent"], info["bridge"], info["ip"]) == \
        ("n1", False, True, "vbr9", "10.9.0.1/24")
    assert networks.lookup_by_uuid(net.uuid).name == "n1"
    with pytest.raises(NotFound, match="no network with matching uuid 'n1'"):
        networks.lookup_by_uuid("n1")
    assert [n["name"] for n in networks.list(autostart=True)] == ["default"]
    net.set_autostart(True)
    assert [n["name"] for n in networks.list(autostart=True)] == ["default", "n1"]
    with pytest.raises(InvalidArgument, match="cannot change from 'n1' to 'n2'"):
        net.redefine(net_xml("<bridge name='vbr9'/>", name="n2"))
    net.redefine(net_xml("<bridge name='vbr9' stp='off'/>"))
    assert "stp='off'" in networks.lookup("n1").xml(inactive=True)
    assert net.dhcp_leases() == []
    net.undefine()
    assert networks.names() == ["default"]
