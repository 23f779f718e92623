"""What the controller hands each endpoint by DHCP: all of it from the model.

The address and prefix are the endpoint's own in the topology (a DHCP
server here allocates nothing: the model did); the MTU leaves room for the
tunnel (``Topology.network_mtu``); the router is the network's ``router:``
endpoint when it has an address in the same subnet; DNS servers and lease
time are the network's.  The server identifier is the router's address,
else the subnet's highest host address that is not the client's: OVN asks
the operator for one (``server_id``); nsgre needs none because a client's
renewals reach the controller by their UDP ports, whatever address they
are sent to.  Pure.
"""

from __future__ import annotations

import ipaddress

from nsgre_core import dhcp

#: The Ethernet source of the controller's DHCP replies: locally
#: administered unicast, "nsgre" in its last five bytes, and outside the
#: 02:... range endpoints' default MACs are drawn from (topology.allocate).
SERVER_MAC = "0a:6e:73:67:72:65"


def lease(topo, endpoint, attachment) -> dhcp.Lease | None:
    """The lease of ``endpoint`` in ``attachment``'s network; None where
    the network hands out none (``dhcp: false``, or an IPv6 address)."""
    network = topo.networks[attachment.network]
    if not network.dhcp or attachment.ip.version != 4:
        return None
    address = attachment.ip
    router = topo.gateway(network.name)
    if router is not None and ipaddress.ip_address(router) not in address.network:
        router = None
    return dhcp.Lease(address=address, server_id=router or server_address(address),
                      server_mac=SERVER_MAC, lease_time=network.lease_time,
                      mtu=topo.network_mtu(network.name), router=router,
                      dns=tuple(str(d) for d in network.dns))


def server_address(address: ipaddress.IPv4Interface) -> str:
    """The subnet's highest host address other than the client's own."""
    subnet = address.network
    if subnet.prefixlen >= 31:
        return str(subnet.network_address if address.ip != subnet.network_address
                   else subnet.broadcast_address)
    top = subnet.broadcast_address - 1
    return str(top if top != address.ip else top - 1)
