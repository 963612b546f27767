"""Virtual networks of one connection, in libvirt's network XML format.

A network is a Linux bridge on the host that domains' ``<interface type='network'>``
NICs are plugged into (through a tap device each).  vsh keeps the definitions and
the state; :mod:`vsh.kvm.hostnet` creates and removes the bridge, the NAT rules and
the DHCP server.  Layout in the store::

    <config>/networks/NAME.xml          a definition (libvirt's <network>)
    <config>/networks/autostart/NAME    autostart mark
    <config>/networks/.lock             held while definitions or states change
    <config>/networks/.initialized      ``default`` has been defined once
    <runtime>/.networks/NAME/           an active network: state.json (with the
                                        live XML), dnsmasq.conf, dnsmasq.pid,
                                        leases, dnsmasq.log

Forward modes vsh runs (``<forward mode=...>``):

* ``nat`` (the default when ``<forward>`` has no mode): a bridge with an IPv4
  address, masquerading of the subnet's traffic to anywhere else, IP forwarding on;
* ``route``: the same without masquerading;
* ``open``: the bridge and its address, no firewall rules at all;
* no ``<forward>`` (isolated): the bridge and its address, forwarding to or from
  the bridge refused;
* ``bridge``: an existing host bridge (``<bridge name='br0'/>``); vsh creates
  nothing and only plugs taps into it.

DHCP (``<ip><dhcp><range/><host/></dhcp></ip>``) and DNS on the bridge address come
from dnsmasq, as with libvirt.  There is no daemon: a network marked autostart is
started by the first ``vsh start`` of a domain that needs it after the host boots
(or by ``net-start``).  A network whose bridge has gone (host rebooted, someone
deleted it, or vsh runs in another network namespace) is inactive.

By concern: :mod:`.model` (a definition and its XML), :mod:`.definitions` (the
stored networks and their state), :mod:`.host` (what the host's network stack
says). The names other modules use are importable from here.
"""

from vsh.core.networks.definitions import Networks, read_leases
from vsh.core.networks.host import (check_ifname, current_netns, host_interfaces, host_routes, host_subnets,
                                    interface_exists)
from vsh.core.networks.model import DEFAULT_NETWORK, Network, parse_network_xml

__all__ = ["DEFAULT_NETWORK", "Network", "Networks", "check_ifname", "current_netns", "host_interfaces",
           "host_routes", "host_subnets", "interface_exists", "parse_network_xml", "read_leases"]
