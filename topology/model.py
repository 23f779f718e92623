"""The fabric as a typed networkx graph: hosts, networks and endpoints.

Everything else (flow pipeline, emulation, CLI) asks this model questions
instead of walking the YAML, so the answers stay consistent everywhere.

Nodes are keyed ``(kind, name)`` so a host and an endpoint may share a
name.  Node kinds and their ``obj`` attribute:

    ("host", name)      Host
    ("network", name)   Network
    ("endpoint", name)  Endpoint

Edge kinds (attribute ``kind``):

    endpoint -> host      "attached"   the endpoint's port is on that host
    endpoint -> network   "member"     ``attachment``: the endpoint's address in
                                       that network (and guest VLAN on a trunk)
    host -> network       "carries"    ``local_vlan``: the host-local VLAN id
    host -> host          "tunnel"     one per ordered pair of hosts
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, NamedTuple

import networkx as nx

TUNNEL_TYPES = ("gre", "vxlan", "geneve")
ENDPOINT_KINDS = ("vm", "namespace")

#: Largest tunnel key per tunnel type (GRE key is 32 bits, VNIs 24 bits).
MAX_KEY = {"gre": 2**32 - 1, "vxlan": 2**24 - 1, "geneve": 2**24 - 1}

#: Bytes the encapsulation adds to a frame on an IPv4 underlay, counted
#: against the underlay MTU: GRE 42 = the inner Ethernet header 14 (an MTU
#: counts from the IP header, the tunnel carries the whole frame) + outer
#: IPv4 20 + GRE with key 8; VXLAN 50 = 14 + outer IPv4 20 + UDP 8 + VXLAN 8;
#: Geneve 50 likewise (8-byte header, no options).  The endpoint MTU must
#: leave this much room: 1500 - 42 = 1458 (GRE), 1500 - 50 = 1450.
ENCAP_OVERHEAD = {"gre": 42, "vxlan": 50, "geneve": 50}
#: An IPv6 outer header is 40 bytes, not IPv4's 20.
IPV6_EXTRA_OVERHEAD = 20

#: The underlay's MTU (``underlay_mtu:``): the default, and the range accepted
#: (1280, IPv6's minimum link MTU, up to the usual 9216-byte jumbo frame).
DEFAULT_UNDERLAY_MTU = 1500
UNDERLAY_MTU_MIN, UNDERLAY_MTU_MAX = 1280, 9216
#: The lowest ``mtu:`` a network may declare: every IPv4 host must accept
#: 576-byte datagrams (RFC 791), and DHCP's option 26 may not say less (RFC 2132).
NETWORK_MTU_MIN = 576

#: DHCP (``networks.N.dhcp``, on by default): the lease time handed out unless
#: a network sets ``lease_time:`` (12 hours, OVN's default), its bounds in
#: seconds, and the most DNS servers a network may list (``dns:``).
DEFAULT_LEASE_TIME = 43200
LEASE_TIME_MIN, LEASE_TIME_MAX = 60, 86400 * 365
DNS_MAX = 8

#: DHCP to the controller: frames a second each endpoint port may send up
#: (an OpenFlow meter per port drops the rest, on the switch, before a
#: packet-in is made).  A client sends a DISCOVER and a REQUEST to get a
#: lease, retransmits every 4, 8, 16... seconds while unanswered (RFC 2131
#: 4.1) and renews at half the lease time: well under one frame a second.
#: 20 a second, with a burst of 20, lets a trunk guest bring up a score of
#: VLAN interfaces at once and a guest retry at will, while a guest flooding
#: DHCP costs the controller at most 20 packet-ins a second per port.
DHCP_RATE = 20
DHCP_BURST = 20

#: Storm control: broadcast and multicast frames per second each endpoint
#: port may flood (an OpenFlow meter per port drops the rest).  Hundreds of
#: times what a guest sends: ARP never floods here, it is answered locally.
DEFAULT_BROADCAST_LIMIT = 1000

#: Usable 802.1Q VLAN ids: 0 means "no VLAN" and 4095 is reserved.
VLAN_MIN, VLAN_MAX = 1, 4094


@dataclass(frozen=True)
class Host:
    name: str
    underlay_ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    dpid: int


@dataclass(frozen=True)
class Network:
    name: str
    key: int
    #: The member endpoint that routes this network (``router:`` in the
    #: file); None: none.  IPv6: the one allowed to send router
    #: advertisements and redirects; IPv4: the gateway DHCP hands out.
    router: str | None = None
    #: DHCP answered by the controller from the model (``dhcp:``).
    dhcp: bool = True
    #: DNS servers DHCP hands out (``dns:``), in the file's order.
    dns: tuple[ipaddress.IPv4Address, ...] = ()
    #: Seconds of a DHCP lease (``lease_time:``).
    lease_time: int = DEFAULT_LEASE_TIME
    #: The MTU declared (``mtu:``); None: the tunnel-safe MTU
    #: (``Topology.network_mtu`` gives the one in force).
    mtu: int | None = None


@dataclass(frozen=True)
class Attachment:
    """An endpoint's place in one network.  ``vlan`` is the guest's own
    802.1Q id on a trunk endpoint, None on an access (untagged) endpoint."""
    network: str
    ip: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    vlan: int | None = None


@dataclass(frozen=True)
class Endpoint:
    name: str
    host: str
    kind: str
    attachments: tuple[Attachment, ...]
    mac: str
    port: str
    #: IPv6 link-local address declared in the file (``link_local:``);
    #: None: the EUI-64 address of ``mac`` (see ``ipv6_link_local``).
    link_local: ipaddress.IPv6Address | None = None
    #: ``iface_id:`` as declared in the file; None: the endpoint's name
    #: (see ``iface_id``).
    declared_iface_id: str | None = None

    @property
    def iface_id(self) -> str:
        """The OVS ``external_ids:iface-id`` that names the endpoint's
        interface on its host (libvirt writes its interface UUID there):
        the declared one, else the endpoint's name."""
        return self.declared_iface_id if self.declared_iface_id is not None else self.name

    @property
    def ipv6_link_local(self) -> ipaddress.IPv6Address:
        """The one link-local address the endpoint may send from: the
        declared one, else fe80::/64 + the modified EUI-64 of its MAC."""
        return self.link_local if self.link_local is not None else eui64_link_local(self.mac)

    @property
    def trunk(self) -> bool:
        return self.attachments[0].vlan is not None

    @property
    def networks(self) -> list[str]:
        return [a.network for a in self.attachments]

    def attachment(self, network: str) -> Attachment:
        return next(a for a in self.attachments if a.network == network)

    @property
    def network(self) -> str:
        """The network of an access endpoint (a trunk has several)."""
        if self.trunk:
            raise ValueError(f"endpoint {self.name} is a trunk: see attachments")
        return self.attachments[0].network

    @property
    def ip(self):
        if self.trunk:
            raise ValueError(f"endpoint {self.name} is a trunk: see attachments")
        return self.attachments[0].ip


class Member(NamedTuple):
    """One endpoint's attachment to a network, as the network's flows see it."""
    name: str
    host: str
    mac: str
    port: str
    address: str                 # with prefix length, as text
    guest_vlan: int | None       # a trunk's own 802.1Q id; None on an access port
    link_local: str = ""         # IPv6 members: the endpoint's link-local address


class NetworkView(NamedTuple):
    """Everything one network's flows depend on, in plain strings and ints
    so that comparing two versions is cheap (``topology.diff``): equal views
    need nothing sent for that network anywhere."""
    tunnel: str                  # tunnel type of the fabric
    metered: bool                # storm control on
    key: int
    members: tuple[Member, ...]
    carrying: tuple[tuple[str, int], ...]   # (host, local VLAN), by host name
    router: str | None = None    # the member that may send IPv6 RAs and redirects
    dhcp: bool = True            # the members' DHCP goes to the controller


def _node(kind: str, name: str) -> tuple[str, str]:
    return (kind, name)


class Topology:
    """A validated, fully allocated fabric.  Build it with ``topology.load``."""

    def __init__(self, tunnel: str, hosts: Iterable[Host],
                 networks: Iterable[Network], endpoints: list[Endpoint],
                 local_vlans: dict[tuple[str, str], int], source: str = "<memory>",
                 broadcast_limit: int = DEFAULT_BROADCAST_LIMIT,
                 underlay_mtu: int = DEFAULT_UNDERLAY_MTU):
        self.tunnel = tunnel
        self.source = source
        self.broadcast_limit = broadcast_limit
        self.underlay_mtu = underlay_mtu
        g = nx.DiGraph()
        for h in hosts:
            g.add_node(_node("host", h.name), kind="host", obj=h)
        for n in networks:
            g.add_node(_node("network", n.name), kind="network", obj=n)
        for e in endpoints:
            g.add_node(_node("endpoint", e.name), kind="endpoint", obj=e)
            g.add_edge(_node("endpoint", e.name), _node("host", e.host), kind="attached")
            for a in e.attachments:
                g.add_edge(_node("endpoint", e.name), _node("network", a.network),
                           kind="member", attachment=a)
        for (host, net), vlan in local_vlans.items():
            g.add_edge(_node("host", host), _node("network", net),
                       kind="carries", local_vlan=vlan)
        # Per network, all its flows depend on (topology.diff compares them).
        self.views = _network_views(tunnel, broadcast_limit > 0, g, endpoints, local_vlans)
        names = sorted(h.name for h in self._objs(g, "host"))
        for a in names:
            for b in names:
                if a != b:
                    g.add_edge(_node("host", a), _node("host", b), kind="tunnel")
        self.graph = g

    # -- whole-fabric views -------------------------------------------------
    @staticmethod
    def _objs(g, kind):
        return [d["obj"] for _, d in g.nodes(data=True) if d["kind"] == kind]

    # A topology never changes once built: these are computed once (a port
    # event asked for ``hosts`` and walked 16,000 nodes to answer).
    @cached_property
    def hosts(self) -> dict[str, Host]:
        return {h.name: h for h in sorted(self._objs(self.graph, "host"), key=lambda h: h.name)}

    @cached_property
    def networks(self) -> dict[str, Network]:
        return {n.name: n for n in sorted(self._objs(self.graph, "network"), key=lambda n: n.name)}

    @cached_property
    def endpoints(self) -> dict[str, Endpoint]:
        return {e.name: e for e in sorted(self._objs(self.graph, "endpoint"), key=lambda e: e.name)}

    def host(self, name: str) -> Host:
        return self.graph.nodes[_node("host", name)]["obj"]

    def network(self, name: str) -> Network:
        return self.graph.nodes[_node("network", name)]["obj"]

    def endpoint(self, name: str) -> Endpoint:
        return self.graph.nodes[_node("endpoint", name)]["obj"]

    def host_by_dpid(self, dpid: int) -> Host | None:
        for h in self._objs(self.graph, "host"):
            if h.dpid == dpid:
                return h
        return None

    # -- per-host questions the pipeline asks -------------------------------
    def _out(self, node, kind):
        return [v for _, v, d in self.graph.out_edges(node, data=True) if d["kind"] == kind]

    def _in(self, node, kind):
        return [u for u, _, d in self.graph.in_edges(node, data=True) if d["kind"] == kind]

    def endpoints_on(self, host: str) -> list[Endpoint]:
        nodes = self._in(_node("host", host), "attached")
        return sorted((self.graph.nodes[n]["obj"] for n in nodes), key=lambda e: e.name)

    def networks_on(self, host: str) -> list[Network]:
        nodes = self._out(_node("host", host), "carries")
        return sorted((self.graph.nodes[n]["obj"] for n in nodes), key=lambda n: n.name)

    def carries(self, host: str, network: str) -> bool:
        return self.graph.has_edge(_node("host", host), _node("network", network))

    def local_vlan(self, host: str, network: str) -> int:
        return self.graph.edges[_node("host", host), _node("network", network)]["local_vlan"]

    def hosts_carrying(self, network: str) -> list[Host]:
        nodes = self._in(_node("network", network), "carries")
        return sorted((self.graph.nodes[n]["obj"] for n in nodes), key=lambda h: h.name)

    def members(self, network: str) -> list[Endpoint]:
        nodes = self._in(_node("network", network), "member")
        return sorted((self.graph.nodes[n]["obj"] for n in nodes), key=lambda e: e.name)

    def peers(self, host: str) -> list[Host]:
        nodes = self._out(_node("host", host), "tunnel")
        return sorted((self.graph.nodes[n]["obj"] for n in nodes), key=lambda h: h.name)

    def endpoint_by_mac(self, network: str, mac: str) -> Endpoint | None:
        mac = mac.lower()
        return next((e for e in self.members(network) if e.mac == mac), None)

    def endpoint_by_ip(self, network: str, ip: str) -> Endpoint | None:
        addr = ipaddress.ip_address(ip)
        return next((e for e in self.members(network) if e.attachment(network).ip.ip == addr),
                    None)

    def allocations(self) -> dict:
        """What allocation chose, to hand back as ``previous`` when the next
        version of the file is loaded, so nothing existing is renumbered."""
        return {
            "keys": {n.name: n.key for n in self.networks.values()},
            "local_vlans": {(u[1], v[1]): d["local_vlan"]
                            for u, v, d in self.graph.edges(data=True) if d["kind"] == "carries"},
            "macs": {e.name: e.mac for e in self.endpoints.values()},
            "ports": {e.name: e.port for e in self.endpoints.values()},
        }

    def tunnel_port(self, host: str, peer: str) -> str:
        """Name of the tunnel port on ``host`` that leads to ``peer``."""
        return tunnel_port_name(self.tunnel, peer)

    @property
    def ipv6_underlay(self) -> bool:
        """Some host's tunnel endpoint is an IPv6 address."""
        return any(h.underlay_ip.version == 6 for h in self._objs(self.graph, "host"))

    def endpoint_mtu(self, underlay_mtu: int | None = None) -> int:
        """The largest MTU an endpoint's frames cross the tunnels with
        unfragmented over an underlay of ``underlay_mtu`` (default: the
        topology's ``underlay_mtu``): that less the encapsulation
        (``ENCAP_OVERHEAD``), and 20 more when any underlay address is IPv6."""
        if underlay_mtu is None:
            underlay_mtu = self.underlay_mtu
        return underlay_mtu - tunnel_overhead(self.tunnel, self.ipv6_underlay)

    def network_mtu(self, network: str) -> int:
        """The MTU of ``network``'s endpoints (DHCP hands it out): its
        declared ``mtu:``, else the tunnel-safe ``endpoint_mtu()``."""
        declared = self.network(network).mtu
        return declared if declared is not None else self.endpoint_mtu()

    def gateway(self, network: str) -> str | None:
        """The IPv4 address (no prefix length) in ``network`` of its
        ``router:`` endpoint, the default gateway DHCP hands out; None when
        the network has no router or the router's address there is IPv6."""
        router = self.network(network).router
        if router is None:
            return None
        ip = self.endpoint(router).attachment(network).ip
        return str(ip.ip) if ip.version == 4 else None

    def summary(self) -> str:
        return (f"{len(self.hosts)} hosts, {len(self.networks)} networks, "
                f"{len(self.endpoints)} endpoints, tunnel {self.tunnel}")


def tunnel_overhead(tunnel: str, ipv6_underlay: bool = False) -> int:
    """Bytes the ``tunnel`` encapsulation costs on the underlay's MTU."""
    return ENCAP_OVERHEAD[tunnel] + (IPV6_EXTRA_OVERHEAD if ipv6_underlay else 0)


def _network_views(tunnel, metered, graph, endpoints, local_vlans) -> dict[str, NetworkView]:
    """Network name -> its ``NetworkView``."""
    members: dict[str, list] = {}
    for e in endpoints:
        for a in e.attachments:
            members.setdefault(a.network, []).append(
                Member(e.name, e.host, e.mac, e.port, str(a.ip), a.vlan,
                       str(e.ipv6_link_local) if a.ip.version == 6 else ""))
    carrying: dict[str, list] = {}
    for (host, net), vlan in local_vlans.items():
        carrying.setdefault(net, []).append((host, vlan))
    return {name: NetworkView(tunnel, metered, data["obj"].key,
                              tuple(sorted(members.get(name, ()))),
                              tuple(sorted(carrying.get(name, ()))), data["obj"].router,
                              data["obj"].dhcp)
            for (kind, name), data in graph.nodes(data=True) if kind == "network"}


def eui64_link_local(mac: str) -> ipaddress.IPv6Address:
    """fe80::/64 with the modified EUI-64 interface id of ``mac`` (RFC 4291
    appendix A: ff:fe in the middle, the universal/local bit flipped), the
    link-local address Linux gives an interface with that MAC by default."""
    b = bytes.fromhex(mac.replace(":", ""))
    iid = bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:]
    return ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + iid)


def tunnel_port_name(tunnel: str, peer: str) -> str:
    """``gre-kvm2``: a Linux-sized (15 byte) name, hashed when too long."""
    name = f"{tunnel}-{peer}"
    if len(name) <= 15:
        return name
    from topology.allocate import short_hash
    return f"{tunnel}-{peer[:15 - len(tunnel) - 7]}{short_hash(peer, 6)}"
