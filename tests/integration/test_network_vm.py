"""Virtual networks on real bridges, with real guests, inside network namespaces this
module creates (traffic never leaves the machine; the host's own network is untouched).

Namespace ``inner`` runs vsh: the network ``n1`` (NAT, DHCP with one fixed host) and
its guests.  Namespace ``outer`` stands for "the rest of the world": it is joined to
``inner`` by a veth pair and has no route back to the guests' subnet, so a guest can
reach it only through vsh's masquerading.  The tests run in file order and share the
network and the first guest.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

import vmguest as _vmguest

pytestmark = pytest.mark.vm


SUBNET = "10.213.0"
FIXED_MAC = "52:54:00:aa:bb:01"
OUTSIDE = "10.99.0.2"

NET_XML = f"""<network>
  <name>n1</name>
  <forward mode='nat'/>
  <bridge name='vshtbr1' stp='off'/>
  <domain name='vsh.test'/>
  <ip address='{SUBNET}.1' prefix='24'>
    <dhcp>
      <range start='{SUBNET}.100' end='{SUBNET}.150'/>
      <host mac='{FIXED_MAC}' name='fixed' ip='{SUBNET}.10'/>
    </dhcp>
  </ip>
</network>
"""


def guest_xml(name: str, m: dict, nic: str) -> str:
    return _vmguest.guest_domain_xml(name, m, nic, memory_mib=192)


def sh(*argv, check: bool = True, ns: str | None = None) -> subprocess.CompletedProcess:
    full = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in argv]
    proc = subprocess.run(full, capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, (full, proc.stdout, proc.stderr)
    return proc


def netns_inode(ns: str) -> int:
    return os.stat(f"/run/netns/{ns}").st_ino


def kill_in_netns(ns: str) -> None:
    """Whatever still runs in the namespace (a failed test's QEMU or dnsmasq) goes."""
    try:
        ino = netns_inode(ns)
    except OSError:
        return
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino == ino:
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("bridges and network namespaces need root")
    for tool in ("ip", "nft", "dnsmasq", "busybox"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/setup installs it)")
    m = _vmguest.manifest()
    if m is None:
        pytest.skip("no test guest: scripts/build-test-guest failed or is missing")
    tag = f"{os.getpid() % 100000}"
    inner, outer = f"vshin{tag}", f"vshout{tag}"
    for ns in (inner, outer):
        sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "set", "lo", "up", ns=inner)
        sh("ip", "link", "add", "vup", "netns", inner, "type", "veth", "peer", "name", "vdown", "netns", outer)
        sh("ip", "addr", "add", "10.99.0.1/24", "dev", "vup", ns=inner)
        sh("ip", "link", "set", "vup", "up", ns=inner)
        sh("ip", "addr", "add", f"{OUTSIDE}/24", "dev", "vdown", ns=outer)
        sh("ip", "link", "set", "vdown", "up", ns=outer)
        base = tmp_path_factory.mktemp("netvm")
        store = base / "store"
        env = dict(_vmguest.REAL_ENV, VSH_DEFAULT_URI=f"vsh:///session?root={store}", HOME=str(base))
        env.pop("VSH_URI", None)
        yield {"m": m, "base": base, "store": store, "env": env, "inner": inner, "outer": outer}
    finally:
        for ns in (inner, outer):
            kill_in_netns(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def vsh(world, *args, check: bool = True, caps: list | None = None) -> subprocess.CompletedProcess:
    import sys

    argv = ["ip", "netns", "exec", world["inner"], *(caps or []), sys.executable, "-m", "vsh", *map(str, args)]
    proc = subprocess.run(argv, env=world["env"], capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def guest(world, name: str) -> "_vmguest.Guest":
    return _vmguest.Guest(world["store"], name, world["env"], prefix=("ip", "netns", "exec", world["inner"]))


def links(world) -> dict:
    out = sh("ip", "-j", "-d", "link", "show", ns=world["inner"]).stdout
    return {link["ifname"]: link for link in json.loads(out)}


def wait_lease(world, mac: str, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = json.loads(vsh(world, "net-dhcp-leases", "n1", "--mac", mac, "--json").stdout)
        if rows:
            return rows[0]
        time.sleep(0.5)
    raise AssertionError(f"no DHCP lease for {mac} within {timeout:g} s")


@pytest.fixture(scope="module")
def g1(world):
    g = guest(world, "g1")
    (world["base"] / "g1.xml").write_text(guest_xml("g1", world["m"], f"""<interface type='network'>
      <mac address='{FIXED_MAC}'/>
      <source network='n1'/>
      <model type='virtio'/>
    </interface>"""))
    yield g
    g.close_console()
    vsh(world, "destroy", "g1", check=False)


# -- the network itself ------------------------------------------------------------------------------


def test_default_network_is_defined_inactive_with_autostart(world):
    res = vsh(world, "net-list", "--all")
    assert res.stdout.splitlines()[2].split() == ["default", "inactive", "yes", "yes"]
    xml = vsh(world, "net-dumpxml", "default").stdout
    assert "<forward mode='nat'/>" in xml and "<range start='192.168.122.2' end='192.168.122.254'/>" in xml


def test_define_and_start_builds_bridge_rules_and_dhcp(world):
    path = world["base"] / "n1.xml"
    path.write_text(NET_XML)
    res = vsh(world, "net-define", path)
    assert res.stdout == f"Network n1 defined from {path}\n\n"
    assert "vshtbr1" not in links(world)
    res = vsh(world, "net-start", "n1")
    assert res.stdout == "Network n1 started\n\n"
    link = links(world)["vshtbr1"]
    assert link["linkinfo"]["info_kind"] == "bridge"
    xml = vsh(world, "net-dumpxml", "n1").stdout
    uuid = xml.split("<uuid>")[1].split("</uuid>")[0]
    mac = xml.split("<mac address='")[1].split("'")[0]
    assert link["address"] == mac
    addrs = json.loads(sh("ip", "-j", "addr", "show", "dev", "vshtbr1", ns=world["inner"]).stdout)[0]["addr_info"]
    assert [(a["local"], a["prefixlen"]) for a in addrs if a["family"] == "inet"] == [(f"{SUBNET}.1", 24)]
    table = "vsh_" + uuid.replace("-", "")[:12]
    rules = sh("nft", "list", "table", "ip", table, ns=world["inner"]).stdout
    assert f"ip saddr {SUBNET}.0/24 ip daddr != {SUBNET}.0/24 masquerade" in rules
    assert sh("cat", "/proc/sys/net/ipv4/ip_forward", ns=world["inner"]).stdout.strip() == "1"
    listening = sh("ss", "-H", "-ulnp", ns=world["inner"]).stdout
    assert "%vshtbr1:67" in listening and "dnsmasq" in listening
    info = vsh(world, "net-info", "n1").stdout
    assert info == (f"Name:           n1\nUUID:           {uuid}\nActive:         yes\nPersistent:     yes\n"
                    "Autostart:      no\nBridge:         vshtbr1\n\n")
    rows = [line.split() for line in vsh(world, "net-list").stdout.splitlines()[2:] if line.strip()]
    assert rows == [["n1", "active", "no", "yes"]]


def test_start_twice_and_conflicts_are_refused(world):
    res = vsh(world, "net-start", "n1", check=False)
    assert res.returncode == 1
    assert res.stderr == ("error: Failed to start network n1\n"
                          "error: Requested operation is not valid: network 'n1' is already active\n")
    clash = world["base"] / "clash.xml"
    clash.write_text(NET_XML.replace("<name>n1</name>", "<name>n1b</name>"))
    res = vsh(world, "net-define", clash, check=False)
    assert res.returncode == 1 and "bridge name 'vshtbr1' already in use" in res.stderr
    clash.write_text(NET_XML.replace("<name>n1</name>", "<name>n1c</name>").replace("vshtbr1", "vshtbr9"))
    vsh(world, "net-define", clash)
    res = vsh(world, "net-start", "n1c", check=False)
    assert res.returncode == 1
    assert "Network is already in use by interface vshtbr1" in res.stderr, res.stderr
    assert "vshtbr9" not in links(world)           # nothing half-made
    vsh(world, "net-undefine", "n1c")


# -- a guest on it ----------------------------------------------------------------------------------


def test_guest_gets_its_fixed_lease_and_reaches_the_outside_through_nat(world, g1):
    vsh(world, "define", world["base"] / "g1.xml")
    vsh(world, "start", "g1")
    rows = [line.split() for line in vsh(world, "domiflist", "g1").stdout.splitlines()[2:] if line.strip()]
    assert rows == [["vnet0", "network", "n1", "virtio", FIXED_MAC]]
    tap = links(world)["vnet0"]
    assert tap["master"] == "vshtbr1" and "UP" in tap["flags"]
    live = g1.xml()
    assert "<source network='n1' bridge='vshtbr1'/>" in live and "<target dev='vnet0'/>" in live
    assert "<target dev=" not in g1.xml("--inactive")
    g1.wait_log(world["m"]["ready_line"])
    lease = wait_lease(world, FIXED_MAC)
    assert lease["ip"] == f"{SUBNET}.10" and lease["prefix"] == 24
    text = vsh(world, "net-dhcp-leases", "n1").stdout.splitlines()
    assert text[0].split() == ["Expiry", "Time", "MAC", "address", "Protocol", "IP", "address", "Hostname",
                               "Client", "ID", "or", "DUID"]
    assert f" {FIXED_MAC}   ipv4       {SUBNET}.10/24 " in text[2]
    addr = vsh(world, "domifaddr", "g1").stdout.splitlines()
    assert addr[2].split() == ["vnet0", FIXED_MAC, "ipv4", f"{SUBNET}.10/24"]
    assert f"inet {SUBNET}.10/24" in g1.sh("ip -4 addr show eth0")
    # the host side reaches the guest; the guest reaches "outside" only through masquerading
    assert sh("busybox", "ping", "-c", "1", "-W", "10", f"{SUBNET}.10", ns=world["inner"], check=False).returncode == 0
    assert sh("ip", "route", "get", f"{SUBNET}.10", ns=world["outer"], check=False).returncode != 0
    out = g1.sh(f"ping -c 1 -W 10 {OUTSIDE} >/dev/null && echo REACH''ED || echo UNREACH''ABLE")
    assert "REACHED" in out, out
    stat = dict(line.split()[1:] for line in vsh(world, "domifstat", "g1", "vnet0").stdout.splitlines() if line)
    assert set(stat) == {"rx_bytes", "rx_packets", "rx_errs", "rx_drop", "tx_bytes", "tx_packets", "tx_errs",
                         "tx_drop"}
    assert int(stat["tx_packets"]) > 0 and int(stat["rx_packets"]) > 0
    stats = vsh(world, "domstats", "g1", "--interface").stdout
    assert "net.0.name=vnet0" in stats and "net.0.tx.pkts=" in stats


def test_dns_of_the_network_answers_for_its_guests(world, g1):
    out = g1.sh(f"nslookup fixed.vsh.test {SUBNET}.1 2>&1")
    assert f"{SUBNET}.10" in out, out


def test_domhostname_from_the_lease(world, g1):
    assert vsh(world, "domhostname", "g1", "--source", "lease").stdout == "fixed\n\n"
    res = vsh(world, "domhostname", "g1", check=False)
    assert res.returncode == 1 and res.stderr.startswith("error: failed to get hostname\n")


def test_net_update_live_reaches_dnsmasq_and_config_the_definition(world, g1):
    res = vsh(world, "net-update", "n1", "add", "dns-host",
              f"<host ip='{SUBNET}.77'><hostname>added</hostname></host>", "--live")
    assert res.stdout == "Updated network n1 live state\n"
    out = g1.sh(f"nslookup added {SUBNET}.1 2>&1")
    assert f"{SUBNET}.77" in out, out
    assert "added" in vsh(world, "net-dumpxml", "n1").stdout
    assert "added" not in vsh(world, "net-dumpxml", "n1", "--inactive").stdout
    host = f"<host mac='52:54:00:aa:bb:99' name='later' ip='{SUBNET}.11'/>"
    res = vsh(world, "net-update", "n1", "add-last", "ip-dhcp-host", host, "--live", "--config")
    assert res.stdout == "Updated network n1 persistent config and live state\n"
    for flags in ((), ("--inactive",)):
        assert host in vsh(world, "net-dumpxml", "n1", *flags).stdout
    conf = world["store"].rglob("dnsmasq.conf")
    assert any(f"dhcp-host=52:54:00:aa:bb:99,{SUBNET}.11,later" in p.read_text() for p in conf)
    res = vsh(world, "net-update", "n1", "add", "ip-dhcp-host", host, check=False)
    assert res.stderr == ("error: Failed to update network n1\nerror: Requested operation is not valid: there is an "
                          f"existing dhcp host entry in network 'n1' that matches \"{host}\"\n")
    vsh(world, "net-update", "n1", "delete", "ip-dhcp-host", host, "--live", "--config")
    vsh(world, "net-update", "n1", "delete", "dns-host", f"<host ip='{SUBNET}.77'/>", "--live")
    assert "later" not in vsh(world, "net-dumpxml", "n1").stdout
    assert "%vshtbr1:67" in sh("ss", "-H", "-ulnp", ns=world["inner"]).stdout   # dnsmasq serves again


def test_bridge_interface_gets_an_address_from_the_dynamic_range(world):
    g2 = guest(world, "g2")
    xml = world["base"] / "g2.xml"
    xml.write_text(guest_xml("g2", world["m"], """<interface type='bridge'>
      <mac address='52:54:00:aa:bb:22'/>
      <source bridge='vshtbr1'/>
      <target dev='g2tap'/>
    </interface>"""))
    vsh(world, "define", xml)
    vsh(world, "start", "g2")
    try:
        assert links(world)["g2tap"]["master"] == "vshtbr1"
        lease = wait_lease(world, "52:54:00:aa:bb:22")
        assert 100 <= int(lease["ip"].rsplit(".", 1)[1]) <= 150
        g2.wait_log(world["m"]["ready_line"])
    finally:
        g2.close_console()
        vsh(world, "destroy", "g2")
    assert "g2tap" not in links(world)


def test_live_attach_and_detach_of_a_network_interface(world, g1):
    mac = "52:54:00:aa:bb:44"
    res = vsh(world, "attach-interface", "g1", "network", "n1", "--mac", mac, "--live")
    assert res.stdout == "Interface attached successfully\n\n", res
    rows = [line.split() for line in vsh(world, "domiflist", "g1").stdout.splitlines()[2:] if line.strip()]
    assert rows[1][:3] == ["vnet1", "network", "n1"] and rows[1][-1] == mac
    assert links(world)["vnet1"]["master"] == "vshtbr1"
    assert mac not in g1.xml("--inactive")
    out = g1.sh(f"for i in 1 2 3 4 5 6 7 8 9 10; do ip -o link | grep -q {mac} && break; sleep 0.5; done; "
                f"dev=$(ip -o link | grep {mac} | cut -d: -f2 | tr -d ' '); ip link set $dev up; "
                f"udhcpc -i $dev -n -q -t 5 -T 2 -s /etc/udhcpc.script >/dev/null 2>&1; ip -4 -o addr show $dev")
    lease = wait_lease(world, mac, timeout=30)
    assert f"inet {lease['ip']}/24" in out, out
    res = vsh(world, "detach-interface", "g1", "network", "--mac", mac, "--live")
    assert res.stdout == "Interface detached successfully\n\n", res
    assert "vnet1" not in links(world)
    assert [line.split()[0] for line in vsh(world, "domiflist", "g1").stdout.splitlines()[2:]
            if line.strip()] == ["vnet0"]


def test_restarting_the_network_plugs_running_guests_back_in(world, g1):
    vsh(world, "net-destroy", "n1")
    assert "vnet0" in links(world) and "master" not in links(world)["vnet0"]
    vsh(world, "net-start", "n1")
    assert links(world)["vnet0"]["master"] == "vshtbr1"
    assert sh("busybox", "ping", "-c", "1", "-W", "10", f"{SUBNET}.10", ns=world["inner"], check=False).returncode == 0


def test_destroying_the_domain_removes_its_tap(world, g1):
    g1.close_console()
    vsh(world, "destroy", "g1")
    assert "vnet0" not in links(world)


def test_inactive_network_refuses_a_start_and_autostart_starts_it(world):
    path = world["base"] / "n2.xml"
    path.write_text("<network><name>n2</name><bridge name='vshtbr2' stp='off'/>"
                    "<ip address='10.214.0.1' prefix='24'/></network>")
    vsh(world, "net-define", path)
    xml = world["base"] / "g3.xml"
    xml.write_text(guest_xml("g3", world["m"], """<interface type='network'>
      <mac address='52:54:00:aa:bb:33'/>
      <source network='n2'/>
    </interface>"""))
    vsh(world, "define", xml)
    res = vsh(world, "start", "g3", check=False)
    assert res.returncode == 1
    assert res.stderr.startswith("error: Failed to start domain 'g3'\n"
                                 "error: Requested operation is not valid: network 'n2' is not active\n")
    assert "vnet0" not in links(world) and "vshtbr2" not in links(world)
    assert vsh(world, "domstate", "g3").stdout == "shut off\n\n"
    vsh(world, "net-autostart", "n2")
    vsh(world, "start", "g3")
    try:
        assert links(world)["vnet0"]["master"] == "vshtbr2"
        rows = [line.split() for line in vsh(world, "net-list").stdout.splitlines()[2:] if line.strip()]
        assert ["n2", "active", "yes", "yes"] in rows
        # isolated: no masquerading, and forwarding off the bridge is refused
        st = json.loads((world["store"] / "run" / ".networks" / "n2" / "state.json").read_text())
        rules = sh("nft", "list", "table", "ip", st["table"], ns=world["inner"]).stdout
        assert 'iifname "vshtbr2" reject' in rules and "masquerade" not in rules
    finally:
        vsh(world, "destroy", "g3")


def test_without_cap_net_admin_nothing_is_touched(world):
    drop = ["setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin"]
    vsh(world, "net-destroy", "n2")
    res = vsh(world, "net-start", "n2", check=False, caps=drop)
    assert res.returncode == 1
    assert "needs CAP_NET_ADMIN" in res.stderr and res.stderr.startswith("error: Failed to start network n2\n")
    res = vsh(world, "start", "g3", check=False, caps=drop)
    assert res.returncode == 1 and "needs CAP_NET_ADMIN" in res.stderr
    assert "vshtbr2" not in links(world)
    assert vsh(world, "domstate", "g3").stdout == "shut off\n\n"


def test_destroy_and_undefine_leave_nothing_behind(world):
    st = json.loads((world["store"] / "run" / ".networks" / "n1" / "state.json").read_text())
    pid, table = st["dnsmasq_pid"], st["table"]
    assert os.path.exists(f"/proc/{pid}")
    assert vsh(world, "net-destroy", "n1").stdout == "Network n1 destroyed\n\n"
    assert "vshtbr1" not in links(world)
    assert table not in sh("nft", "list", "tables", ns=world["inner"]).stdout
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.05)
    assert not _running(pid)
    assert not (world["store"] / "run" / ".networks" / "n1").exists()
    res = vsh(world, "net-destroy", "n1", check=False)
    assert res.returncode == 1 and "network 'n1' is not active" in res.stderr
    assert vsh(world, "net-undefine", "n1").stdout == "Network n1 has been undefined\n\n"
    res = vsh(world, "net-info", "n1", check=False)
    assert res.returncode == 1 and "no network with matching name 'n1'" in res.stderr


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
