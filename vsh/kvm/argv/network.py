"""Network interfaces: user-mode networking with vsh's port forwards, taps for bridges and
libvirt networks (vsh.kvm.hostnet plugs them in), and the NIC models."""

from __future__ import annotations

import os
import re

from vsh.core.domain import device_for
from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.options import given, opts

NIC_ID = "net%d"           # QEMU id of the n-th NIC of the command line (what set_link names)


def interface(b: Builder, iface, n: int) -> None:
    """<interface> number ``n``: a user-mode or tap -netdev and the NIC's -device."""
    t = iface.type
    if t not in ("user", "network", "bridge"):
        raise Unsupported("interface type '%s' is not supported yet (user, network, bridge)" % t)
    what = "<interface type='%s'> #%d" % (t, n)
    if iface.backend_type not in (None, "default"):
        raise Unsupported("%s: backend '%s' is not supported" % (what, iface.backend_type))
    if iface.port_forward:
        raise Unsupported("%s: <portForward> is not supported yet" % what)
    if not iface.mac:
        raise InvalidArgument("%s has no <mac address>" % what)
    addr = iface.mac.lower()
    if not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", addr):
        raise InvalidArgument("%s: '%s' is not a MAC address" % (what, iface.mac))
    if int(addr[:2], 16) & 1:
        raise InvalidArgument("%s: MAC %s is a multicast address" % (what, addr))
    if t != "user":
        b.add("-netdev", opts("tap", *tap_netdev(b, iface, n, what)))
    else:
        b.add("-netdev", opts("user", *user_netdev(b, iface, n, addr)))
    model = iface.model if iface.has_model else "virtio"
    if model == "virtio":
        qdev = b.virtio("net")
    elif model in ("e1000", "e1000e", "rtl8139"):
        b.need_pci("NIC model '%s'" % model)
        qdev = model
    else:
        raise Unsupported("%s: NIC model '%s' is not supported (virtio, e1000, e1000e, rtl8139)" % (what, model))
    pairs: list[tuple[str, object] | None] = [("netdev", "hostnet%d" % n), ("id", NIC_ID % n), ("mac", addr)]
    pairs += b.dev_addr(iface, what)
    pairs.append(b.rom(iface, what))
    pairs.append(b.bootprop(iface))
    b.add("-device", opts(qdev, *pairs))


def nic_qemu_id(el, n: int) -> str:
    """QEMU's id of ``el``, the ``n``-th <interface> of a running domain's live XML: the <alias>
    hot-plug gave it, else the id of the command line."""
    return device_for(el).alias or NIC_ID % n


def user_netdev(b: Builder, iface, n: int, mac: str) -> list:
    """The user-mode (slirp) -netdev pairs: guest subnets and vsh's port forwards."""
    netdev: list[tuple[str, object]] = [("id", "hostnet%d" % n)]
    for ip in iface.ips:
        fam = given(ip.family, "ipv4")
        prefix = ip.prefix
        a = ip.address
        if fam == "ipv4":
            netdev.append(("net", "%s/%s" % (a, prefix or 24)))
        elif fam == "ipv6":
            netdev.append(("ipv6-net", "%s/%s" % (a, prefix or 64)))
    for fw in port_forwards(b, n, mac):
        netdev.append(("hostfwd", fw.hostfwd()))
    return netdev


def tap_netdev(b: Builder, iface, n: int, what: str) -> list:
    """A tap QEMU creates by name; vsh's supervisor plugs it into the bridge
    (vsh.kvm.hostnet) before the guest runs.  vhost-net when KVM runs the guest."""
    for tag in ("ip", "route", "script", "downscript", "bandwidth", "vlan", "virtualport", "filterref"):
        if iface.has(tag):
            raise Unsupported("%s: <%s> is not supported" % (what, tag))
    netdev: list[tuple[str, object]] = [("id", "hostnet%d" % n)]
    if iface.target_dev:
        netdev.append(("ifname", iface.target_dev))
    netdev += [("script", "no"), ("downscript", "no")]
    name = iface.driver_name
    if name not in (None, "qemu", "vhost"):
        raise Unsupported("%s: <driver name='%s'> is not supported (qemu, vhost)" % (what, name))
    if name == "vhost" or (name is None and b.kvm and os.access("/dev/vhost-net", os.R_OK | os.W_OK)):
        netdev.append(("vhost", "on"))
    return netdev


def port_forwards(b: Builder, n: int, mac: str) -> list:
    """The vsh port forwards (domain metadata, vsh.core.portfwd) of user interface number ``n``."""
    from vsh.core import portfwd

    if b.forwards is None:
        b.forwards = portfwd.forwards(b.dom.node)
    mine = []
    for i, fw in enumerate(b.forwards):
        if fw.matches(n, mac):
            mine.append(fw)
            b.forwards_used.add(i)
    return mine


def unused_forwards(b: Builder) -> None:
    """A port forward must name a user-mode interface of the domain."""
    from vsh.core import portfwd

    fws = b.forwards
    if fws is None:
        fws = portfwd.forwards(b.dom.node)
    for i, fw in enumerate(fws):
        if i not in b.forwards_used:
            which = "MAC %s" % fw.mac if fw.mac is not None else "number %d" % (fw.interface or 0)
            raise InvalidArgument("port forward #%d (%s) names interface %s, which is not an "
                                  "<interface type='user'> of this domain" % (i, fw.describe(), which))


def check_host_ports(root) -> None:
    """Before a start: refuse port forwards whose host port is taken (vsh.core.portfwd)."""
    from vsh.core import portfwd

    for i, fw in enumerate(portfwd.forwards(root)):
        portfwd.check_free(fw, "port forward #%d (%s)" % (i, fw.describe()))
