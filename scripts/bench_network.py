"""Bench section `network` (issue 5 §5): virtual networks, vsh against libvirt 9.0.

Imported by scripts/bench.py, which calls run().  Everything happens inside a network
namespace the bench creates (the host's own network is untouched), and both peers run
there: vsh through `ip netns exec NS vsh ...`, libvirt as scripts/libvirt-peer started
inside the namespace, virsh also through `ip netns exec` so both pay the same.

* net-start / net-destroy of the same NAT network with DHCP (a bridge, firewall rules —
  vsh: one nftables table; libvirt 9.0: iptables — and dnsmasq), paired rounds, medians;
* net-list of that network;
* vsh only: the `start` command of the test guest with a network NIC against the same
  guest with a user-mode NIC (what the tap costs), and start → first DHCP lease.

Environment knob: VSH_BENCH_NET_RUNS (rounds, default 7).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import VSH, ratio, report
from bench_start import LibvirtPeer, ensure_libvirt, fmt_ms, log, med, run_cmd, test_guest

NET_XML = """<network>
  <name>benchnet</name>
  <forward mode='nat'/>
  <bridge name='{bridge}' stp='off'/>
  <ip address='10.{n}.0.1' prefix='24'>
    <dhcp><range start='10.{n}.0.100' end='10.{n}.0.200'/></dhcp>
  </ip>
</network>
"""

GUEST_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>192</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <devices>
    <interface type='{itype}'>
      <mac address='{mac}'/>
      {source}
      <model type='virtio'/>
    </interface>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>
"""


def _ensure_iptables() -> bool:
    """libvirt 9.0 builds its NAT rules with iptables (vsh uses nft)."""
    if shutil.which("iptables"):
        return True
    log("installing iptables for the libvirt peer")
    subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "iptables"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    return bool(shutil.which("iptables"))


def _lease_seen(leases: Path, mac: str) -> bool:
    try:
        return mac in leases.read_text()
    except OSError:
        return False


def run() -> None:
    print("network: virtual networks (NAT + DHCP) inside a private network namespace", flush=True)
    if os.geteuid() != 0:
        log("needs root (bridges, namespaces); skipped")
        return
    for tool in ("ip", "nft", "dnsmasq"):
        if shutil.which(tool) is None:
            log(f"{tool} is not installed (scripts/setup installs it); skipped")
            return
    runs = int(os.environ.get("VSH_BENCH_NET_RUNS", "7"))
    ns = f"vshbench{os.getpid() % 100000}"
    tmp = Path(tempfile.mkdtemp(prefix="vsh-bench-net-"))
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
        log("cannot create a network namespace; skipped")
        return
    inns = ["ip", "netns", "exec", ns]
    env = dict(os.environ, VSH_DEFAULT_URI=f"vsh:///session?root={tmp / 'store'}")
    peer = None
    try:
        subprocess.run(inns + ["ip", "link", "set", "lo", "up"], check=True)
        vxml = tmp / "vsh-net.xml"
        vxml.write_text(NET_XML.format(bridge="vshbench0", n=216))
        run_cmd(inns + [VSH, "net-define", str(vxml)], env=env, check=True)
        virsh = None
        if ensure_libvirt() and _ensure_iptables():
            peer = LibvirtPeer(tmp / "libvirt", prefix=inns)
            if peer.start():
                lxml_ = tmp / "lv-net.xml"
                lxml_.write_text(NET_XML.format(bridge="lvbench0", n=217))
                virsh = inns + ["virsh", "-q", "-c", peer.uri]
                p, _ = run_cmd(virsh + ["net-define", str(lxml_)])
                if p.returncode != 0:
                    log(f"libvirt net-define failed: {p.stderr.strip()}")
                    virsh = None
            else:
                peer = None
        times = {"vsh start": [], "vsh destroy": [], "libvirt start": [], "libvirt destroy": []}
        for i in range(runs):
            order = [("vsh", inns + [VSH], env), ("libvirt", virsh, None)]
            if i % 2:
                order.reverse()
            for who, base, e in order:
                if base is None:
                    continue
                p, dt = run_cmd(base + ["net-start", "benchnet"], env=e)
                if p.returncode != 0:
                    log(f"{who} net-start failed: {(p.stderr or p.stdout).strip()[-300:]}")
                    continue
                times[f"{who} start"].append(dt)
                p, dt = run_cmd(base + ["net-destroy", "benchnet"], env=e)
                if p.returncode == 0:
                    times[f"{who} destroy"].append(dt)
        for verb in ("start", "destroy"):
            v, lv = med(times[f"vsh {verb}"]), med(times[f"libvirt {verb}"])
            report(f"net-{verb} (NAT + DHCP): vsh vs libvirt", f"{fmt_ms(v)} vs {fmt_ms(lv)}"
                   + (f"  ({ratio(v, lv)})" if v and lv else ""))
        run_cmd(inns + [VSH, "net-start", "benchnet"], env=env, check=True)
        lists = []
        for _ in range(10):
            lists.append(run_cmd(inns + [VSH, "net-list", "--all"], env=env)[1])
        lvlists = []
        if virsh:
            run_cmd(virsh + ["net-start", "benchnet"])
            for _ in range(10):
                lvlists.append(run_cmd(virsh + ["net-list", "--all"])[1])
        report("net-list --all: vsh vs virsh (both via ip netns exec)",
               f"{fmt_ms(med(lists))} vs {fmt_ms(med(lvlists))}"
               + (f"  ({ratio(med(lists), med(lvlists))})" if lvlists else ""))
        _guest_figures(tmp, env, inns)
    finally:
        if peer is not None:
            peer.stop()
        subprocess.run(inns + [VSH, "destroy", "bg-net"], env=env, capture_output=True)
        subprocess.run(inns + [VSH, "destroy", "bg-user"], env=env, capture_output=True)
        subprocess.run(inns + [VSH, "net-destroy", "benchnet"], env=env, capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def _guest_figures(tmp: Path, env: dict, inns: list) -> None:
    guest = test_guest()
    if guest is None:
        log("no test guest: domain figures skipped")
        return
    kernel = guest.get("vmlinux") or guest["kernel"]
    for name, itype, source, mac in (("bg-net", "network", "<source network='benchnet'/>", "52:54:00:be:00:01"),
                                     ("bg-user", "user", "", "52:54:00:be:00:02")):
        path = tmp / f"{name}.xml"
        path.write_text(GUEST_XML.format(name=name, kernel=kernel, initrd=guest["initrd"], cmdline=guest["cmdline"],
                                         itype=itype, source=source, mac=mac))
        run_cmd(inns + [VSH, "define", str(path)], env=env, check=True)
    leases = tmp / "store" / "run" / ".networks" / "benchnet" / "leases"
    starts = {"bg-net": [], "bg-user": []}
    lease_times = []
    for i in range(5):
        for name in (("bg-net", "bg-user") if i % 2 == 0 else ("bg-user", "bg-net")):
            t0 = time.perf_counter()
            p, dt = run_cmd(inns + [VSH, "start", name], env=env)
            if p.returncode != 0:
                log(f"start {name} failed: {p.stderr.strip()[-300:]}")
                continue
            starts[name].append(dt)
            if name == "bg-net":
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not _lease_seen(leases, "52:54:00:be:00:01"):
                    time.sleep(0.02)
                if _lease_seen(leases, "52:54:00:be:00:01"):
                    lease_times.append(time.perf_counter() - t0)
            run_cmd(inns + [VSH, "destroy", name], env=env)
            if name == "bg-net":
                _forget_leases(leases)
    n, u = med(starts["bg-net"]), med(starts["bg-user"])
    report("vsh start: network NIC (tap) vs user NIC", f"{fmt_ms(n)} vs {fmt_ms(u)}"
           + (f"  (+{(n - u) * 1000:.0f} ms)" if n and u else ""))
    report("vsh start -> first DHCP lease on the network (TCG guest)", fmt_ms(med(lease_times)))


def _forget_leases(leases: Path) -> None:
    """dnsmasq keeps the lease in memory; a fresh network per round would cost more than
    the figure: the next round waits for a lease line written after its own start."""
    try:
        leases.write_text("")
    except OSError:
        pass


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    run()
