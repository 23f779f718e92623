"""Desired OpenFlow state of one host's integration bridge: a pure function.

``compute(topology, host, ports)`` returns the flows and groups the bridge
should hold, given which ports exist on it right now (name -> OpenFlow port
number).  A port that is absent gets no flow, so nothing ever points at a
stale port number; when it appears, computing again yields its flows.

Packet walk (tables, their contracts and priorities in ``nsgre_core.tables``):

  classify       UDP from port 67 (a DHCP server's), any port -> drop
                 endpoint port + own MAC + (untagged | a trunk's guest VLAN)
                 + UDP 68 -> 67, network with DHCP on
                                     -> the port's DHCP meter, to the controller
                 any other UDP to port 67 -> drop (never flooded nor tunnelled)
                 endpoint port + own MAC + (untagged | a trunk's guest VLAN)
                 + ARP for its own IP / IP from its own address (IPv6: or
                 its own link-local address; neighbour discovery only as its
                 own: _neighbour_discovery; any other RA/NS/NA/redirect
                 from an endpoint port -> drop)
                                     -> metadata: local VLAN, origin; go on
                 tunnel port of a peer + key of a network both carry + untagged
                                     -> metadata: local VLAN, FROM_TUNNEL; to tag
                 anything else       -> drop
  arp_responder  ARP request for any endpoint IP of the frame's network
                                     -> rewrite into the reply, out of IN_PORT
                 any other ARP       -> drop (no ARP ever crosses a tunnel)
                 IPv6 NS from :: (DAD) -> on to tag (flooded, never answered)
                 IPv6 NS for an endpoint address (or link-local) of the
                 network             -> rewrite into the NA, to nd_reply
  nd_reply       the NA's target link-layer address := the endpoint's MAC,
                 out of IN_PORT (no NS for a known address crosses a tunnel)
  tag            push the local VLAN (access, tunnel) or rewrite a trunk's
                 guest VLAN to it
  forward        local VLAN + local endpoint MAC  -> pop VLAN (trunk: its guest
                                                     VLAN id), output port
                 local VLAN + remote endpoint MAC, not FROM_TUNNEL
                                     -> pop VLAN, set key, tunnel to its host
                 local VLAN + broadcast/multicast -> the network's flood group
                                     (local ports + tunnels to hosts carrying
                                     it; local ports only if FROM_TUNNEL);
                                     from an endpoint port, through that
                                     port's storm-control meter first
                 anything else       -> drop
"""

from __future__ import annotations

import ipaddress
import weakref
from dataclasses import dataclass
from typing import Iterable, Mapping

from nsgre_core import ids
from nsgre_core import tables as T
from nsgre_core.flows import (Flow, Group, Meter, group, move, output, pop_vlan, push_vlan,
                              set_tunnel_key, set_vlan, to_controller)
from nsgre_core.ofp import OFPP_IN_PORT, OFPVID_PRESENT
from topology import Topology
from topology.model import DHCP_BURST, DHCP_RATE

MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")
#: IEEE 802.1Q's reserved group addresses 01:80:c2:00:00:00 to ..:0f: link
#: protocols (STP, LACP, 802.1X, LLDP) a bridge consumes or drops, never forwards.
RESERVED = ("01:80:c2:00:00:00", "ff:ff:ff:ff:ff:f0")
ZERO_MAC = "00:00:00:00:00:00"
#: ICMPv6 (RFC 4861): the neighbour discovery messages port security checks.
ICMPV6 = 58
ND_RA, ND_NS, ND_NA, ND_REDIRECT = 134, 135, 136, 137
#: A neighbour advertisement's flags (the 32-bit "reserved" word of OVS's
#: nd_reserved): Router, Solicited, Override.
NA_ROUTER, NA_SOLICITED, NA_OVERRIDE = 0x80000000, 0x40000000, 0x20000000
#: Option types: source and target link-layer address.
ND_OPT_SLL, ND_OPT_TLL = 1, 2
#: DHCP (RFC 2131) over UDP: clients send from port 68 to the server's port 67.
UDP = 17
DHCP_SERVER_PORT, DHCP_CLIENT_PORT = 67, 68


def solicited_node(address: str) -> str:
    """ff02::1:ffXX:XXXX, the group a solicitation for ``address`` goes to."""
    low = int(ipaddress.IPv6Address(address)) & 0xFFFFFF
    return str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0")) | low))


@dataclass(frozen=True)
class Piece:
    """What one network contributes to one host's bridge."""
    flows: tuple[Flow, ...]
    groups: tuple[Group, ...]


@dataclass(frozen=True)
class HostPipeline:
    host: str
    flows: tuple[Flow, ...]
    groups: tuple[Group, ...]
    meters: tuple[Meter, ...] = ()


def cookie_meaning(topo: Topology, value: int) -> str:
    """What a cookie says, in topology terms: ``network net10``,
    ``endpoint vm1``, ``base``, or ``not nsgre's``."""
    decoded = ids.decode_cookie(value)
    if decoded is None:
        return "not nsgre's"
    if decoded.kind == "network":
        name = next((n.name for n in topo.networks.values() if n.key == decoded.ident), None)
        return f"network {name}" if name else \
            f"network with key {decoded.ident} (not in the topology)"
    if decoded.kind == "endpoint":
        name = next((e for e in topo.endpoints if ids.endpoint_cookie(e) == value), None)
        return f"endpoint {name}" if name else "an endpoint not in the topology"
    return decoded.kind


def group_network(topo: Topology, host: str, group_id: int) -> str | None:
    """The network on ``host`` whose flood group ``group_id`` is."""
    group = ids.decode_group(group_id)
    if group is None:
        return None
    return next((n.name for n in topo.networks_on(host)
                 if topo.local_vlan(host, n.name) == group.vlan), None)


def storm_burst(rate: int) -> int:
    """Frames a port may flood at once above its rate: a tenth of a
    second's worth, so a storm is held to its rate within 100 ms."""
    return max(1, rate // 10)


def _admit(ofport: int, arriving: int, mac: str, ip: str, meta: int, cookie: int,
           link_local: str = "", router: bool = False) -> list[Flow]:
    """Port security for one attachment: ARP for its own IP and MAC, IP from
    its own address (IPv6 also from its own link-local address, and neighbour
    discovery only as ``_neighbour_discovery`` allows)."""
    base = {"in_port": ofport, "vlan_vid": arriving, "eth_src": mac}
    if ":" not in ip:
        matches = [{"eth_type": 0x0806, "arp_sha": mac, "arp_spa": ip},
                   {"eth_type": 0x0800, "ipv4_src": ip}]
    else:
        matches = [{"eth_type": 0x86DD, "ipv6_src": a} for a in _own(ip, link_local)]
    meta_mask = ids.META_VLAN_MASK | ids.META_ORIGIN_MASK
    flows = [Flow.make(T.CLASSIFY.id, T.PRIO_ADMIT, {**base, **m}, goto=T.ARP_RESPONDER.id,
                       write_metadata=(meta, meta_mask), cookie=cookie)
             for m in matches]
    if ":" in ip:
        flows += [Flow.make(T.CLASSIFY.id, T.PRIO_ND, {**base, **m}, goto=T.ARP_RESPONDER.id,
                            write_metadata=(meta, meta_mask), cookie=cookie)
                  for m in _neighbour_discovery(mac, _own(ip, link_local), router)]
        icmp = {"eth_type": 0x86DD, "ip_proto": ICMPV6}
        flows += [Flow.make(T.CLASSIFY.id, T.PRIO_ND_GUARD,
                            {**base, **icmp, "icmpv6_type": kind}, cookie=cookie)
                  for kind in (ND_RA, ND_NS, ND_NA, ND_REDIRECT)]
    return flows


def _dhcp(ofport: int, arriving: int, mac: str, cookie: int) -> Flow:
    """An endpoint's DHCP requests (from its own MAC, on the VLAN it sends
    on) go up to the controller whole, through its port's DHCP meter.  Any
    source address: a DISCOVER comes from 0.0.0.0, a renewal from its own."""
    return Flow.make(
        T.CLASSIFY.id, T.PRIO_DHCP,
        {"in_port": ofport, "vlan_vid": arriving, "eth_src": mac, "eth_type": 0x0800,
         "ip_proto": UDP, "udp_src": DHCP_CLIENT_PORT, "udp_dst": DHCP_SERVER_PORT},
        (to_controller(),), cookie=cookie, meter=ids.dhcp_meter(ofport))


def dhcp_ports(topo: Topology, host: str, ports: Mapping[str, int]) -> dict[str, int]:
    """Endpoint name -> OpenFlow port of each endpoint present on ``host``
    whose DHCP goes to the controller: one with an IPv4 address in a network
    with ``dhcp`` on."""
    return {name: ports[port] for name, port, dhcp in endpoint_ports(topo, host)
            if dhcp and port in ports}


_ENDPOINT_PORTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def endpoint_ports(topo: Topology, host: str) -> tuple[tuple[str, str, bool], ...]:
    """(endpoint, port name, DHCP to the controller) of each endpoint of
    ``host``, by name; kept per topology (a port event on a host of 1,300
    endpoints asks for it, and walking the graph again cost 25 ms)."""
    per_host = _ENDPOINT_PORTS.setdefault(topo, {})
    found = per_host.get(host)
    if found is None:
        found = per_host[host] = tuple(
            (e.name, e.port, any(a.ip.version == 4 and topo.network(a.network).dhcp
                                 for a in e.attachments))
            for e in topo.endpoints_on(host))
    return found


def _own(ip: str, link_local: str) -> list[str]:
    """The IPv6 addresses an endpoint may send from: its address and its
    link-local address (one, if they are the same)."""
    return [ip] if not link_local or link_local == ip else [ip, link_local]


def _neighbour_discovery(mac: str, own: list[str], router: bool) -> list[dict]:
    """The neighbour discovery an endpoint may send (what OVN's port security
    admits, with RFC 4861's rules for DAD): solicitations from its own
    addresses with its own MAC as source link-layer address; duplicate
    address detection of its own addresses (from ::, to the solicited-node
    group, no source link-layer address); advertisements from and for its
    own addresses with its own MAC as target link-layer address or none;
    router advertisements and redirects only from the network's router."""
    icmp = {"eth_type": 0x86DD, "ip_proto": ICMPV6}
    out = [{**icmp, "icmpv6_type": ND_NS, "ipv6_src": src, "ipv6_nd_sll": mac} for src in own]
    out += [{**icmp, "icmpv6_type": ND_NS, "ipv6_src": "::", "ipv6_dst": solicited_node(t),
             "ipv6_nd_target": t, "ipv6_nd_sll": ZERO_MAC} for t in own]
    out += [{**icmp, "icmpv6_type": ND_NA, "ipv6_src": src, "ipv6_nd_target": t,
             "ipv6_nd_tll": tll} for src in own for t in own for tll in (mac, ZERO_MAC)]
    if router:
        out += [{**icmp, "icmpv6_type": kind, "ipv6_src": src}
                for kind in (ND_RA, ND_REDIRECT) for src in own]
    return out


def _arp_answer(vlan: int, mac: str, ip: str, cookie: int) -> Flow:
    """Turn an ARP request for ``ip`` into the reply of ``mac``, sent back."""
    return Flow.make(
        T.ARP_RESPONDER.id, T.PRIO_ANSWER,
        {"metadata": (ids.metadata(vlan), ids.META_VLAN_MASK), "eth_type": 0x0806, "arp_op": 1,
         "arp_tpa": ip},
        (move("eth_src", "eth_dst"), ("set_field", "eth_src", mac),
         ("set_field", "arp_op", 2), move("arp_sha", "arp_tha"), move("arp_spa", "arp_tpa"),
         ("set_field", "arp_sha", mac), ("set_field", "arp_spa", ip),
         output(OFPP_IN_PORT)),
        cookie=cookie)


def _nd_answer(vlan: int, mac: str, ip: str, router: bool, cookie: int) -> list[Flow]:
    """Turn a neighbour solicitation for ``ip`` into the advertisement of
    ``mac``, sent back: arp_responder rewrites the headers and the message
    type, and the solicitation's source link-layer address option into a
    target link-layer address option; nd_reply then writes ``mac`` into
    it (Open vSwitch accepts a write of nd_tll only in a flow matching an
    advertisement)."""
    meta = (ids.metadata(vlan), ids.META_VLAN_MASK)
    icmp = {"metadata": meta, "eth_type": 0x86DD, "ip_proto": ICMPV6, "ipv6_nd_target": ip}
    flags = NA_SOLICITED | NA_OVERRIDE | (NA_ROUTER if router else 0)
    return [
        Flow.make(T.ARP_RESPONDER.id, T.PRIO_ANSWER, {**icmp, "icmpv6_type": ND_NS},
                  (move("eth_src", "eth_dst"), ("set_field", "eth_src", mac),
                   move("ipv6_src", "ipv6_dst"), ("set_field", "ipv6_src", ip),
                   ("set_field", "icmpv6_type", ND_NA), ("set_field", "nd_reserved", flags),
                   ("set_field", "nd_options_type", ND_OPT_TLL)),
                  goto=T.ND_REPLY.id, cookie=cookie),
        Flow.make(T.ND_REPLY.id, T.PRIO_ND_REPLY, {**icmp, "icmpv6_type": ND_NA},
                  (("set_field", "ipv6_nd_tll", mac), output(OFPP_IN_PORT)), cookie=cookie),
    ]


def base_flows() -> tuple[Flow, ...]:
    """What every bridge holds whatever the topology: the default drops, the
    drop of IEEE 802.1 reserved frames, the DHCP guards, and the ARP table's
    fall-through."""
    base = ids.BASE_COOKIE
    udp = {"eth_type": 0x0800, "ip_proto": UDP}
    flows = [Flow.make(table.id, T.PRIO_DROP, cookie=base)
             for table in (T.CLASSIFY, T.TAG, T.FORWARD, T.ND_REPLY)]
    flows.append(Flow.make(T.CLASSIFY.id, T.PRIO_RESERVED, {"eth_dst": RESERVED}, cookie=base))
    flows.append(Flow.make(T.CLASSIFY.id, T.PRIO_DHCP_GUARD,
                           {**udp, "udp_src": DHCP_SERVER_PORT}, cookie=base))
    flows.append(Flow.make(T.CLASSIFY.id, T.PRIO_DHCP_DROP,
                           {**udp, "udp_dst": DHCP_SERVER_PORT}, cookie=base))
    flows.append(Flow.make(T.ARP_RESPONDER.id, T.PRIO_DAD,
                           {"eth_type": 0x86DD, "ip_proto": ICMPV6, "icmpv6_type": ND_NS,
                            "ipv6_src": "::"}, goto=T.TAG.id, cookie=base))
    flows.append(Flow.make(T.ARP_RESPONDER.id, T.PRIO_NO_ARP, {"eth_type": 0x0806}, cookie=base))
    flows.append(Flow.make(T.ARP_RESPONDER.id, T.PRIO_NEXT, goto=T.TAG.id, cookie=base))
    return tuple(flows)


def offline_ports(topo: Topology) -> dict[str, dict[str, int]]:
    """Every port of every host numbered as in a fully wired fabric, for
    the offline tools (``nsgre pipeline``, ``nsgre trace``, the simulator's
    tests): the host's endpoint ports from 1 in port-name order, then its
    tunnel ports in peer-name order.  One numbering, so a trace runs the
    very flows ``nsgre pipeline`` prints."""
    result = {}
    for host in topo.hosts:
        names = sorted(e.port for e in topo.endpoints_on(host))
        names += [topo.tunnel_port(host, p.name) for p in topo.peers(host)]
        result[host] = {name: i for i, name in enumerate(names, start=1)}
    return result


def tunnel_ports(topo: Topology, host: str, ports: Mapping[str, int]) -> dict[str, int]:
    """Peer host name -> OpenFlow port of the tunnel to it, for tunnels present."""
    tunnels = {}
    for peer in topo.peers(host):
        ofport = ports.get(topo.tunnel_port(host, peer.name))
        if ofport is not None:
            tunnels[peer.name] = ofport
    return tunnels


def network_piece(topo: Topology, host: str, network: str, ports: Mapping[str, int],
                  tunnels: Mapping[str, int]) -> Piece:
    """The flows and groups one network needs on ``host``'s bridge.  They
    depend only on its view (``Topology.views``) and on the ports of
    its local members and of the tunnels to hosts carrying it, which is what
    lets a change recompute only the networks it touches."""
    view = topo.views[network]
    key, carrying = view.key, view.carrying
    flows: list[Flow] = []
    groups: list[Group] = []
    origin = ids.META_VLAN_MASK | ids.FROM_TRUNK
    vlan = dict(carrying)[host]
    tagged = OFPVID_PRESENT | vlan
    net_cookie = ids.network_cookie(key)
    to_tunnel = (pop_vlan(), set_tunnel_key(key))
    flood_local, flood_all = [], []
    trunk_here = False
    all_id, local_id = ids.flood_groups(vlan)

    for name, ep_host, mac, port, address, guest_vlan, link_local in view.members:
        ep_cookie = ids.endpoint_cookie(name)
        ip = address.split("/")[0]
        router = name == view.router
        if ":" not in ip:
            flows.append(_arp_answer(vlan, mac, ip, ep_cookie))
        else:
            for own in _own(ip, link_local):
                flows += _nd_answer(vlan, mac, own, router, ep_cookie)
        if ep_host == host:
            ofport = ports.get(port)
            if ofport is None:
                continue
            if guest_vlan is None:      # access port: untagged on the wire
                arriving, meta = 0, ids.metadata(vlan)
                deliver = (pop_vlan(), output(ofport))
            else:                       # trunk: the guest's own VLAN id on the wire
                arriving, meta = OFPVID_PRESENT | guest_vlan, ids.metadata(vlan, ids.FROM_TRUNK)
                deliver = (set_vlan(guest_vlan), output(ofport))
                trunk_here = True
            flows += _admit(ofport, arriving, mac, ip, meta, ep_cookie, link_local, router)
            if view.dhcp and ":" not in ip:
                flows.append(_dhcp(ofport, arriving, mac, ep_cookie))
            flows.append(Flow.make(
                T.FORWARD.id, T.PRIO_UNICAST,
                {"vlan_vid": tagged, "eth_dst": mac}, deliver, cookie=ep_cookie))
            if view.metered:            # storm control: its floods through its port's meter
                flows.append(Flow.make(
                    T.FORWARD.id, T.PRIO_STORM,
                    {"in_port": ofport, "vlan_vid": tagged, "eth_dst": MULTICAST},
                    (group(all_id),), cookie=ep_cookie, meter=ids.storm_meter(ofport)))
            flood_local.append(deliver)
        elif ep_host in tunnels:
            flows.append(Flow.make(
                T.FORWARD.id, T.PRIO_UNICAST,
                {"vlan_vid": tagged, "eth_dst": mac, "metadata": (0, ids.FROM_TUNNEL)},
                to_tunnel + (output(tunnels[ep_host]),), cookie=ep_cookie))

    for peer, _ in carrying:
        if peer == host or peer not in tunnels:
            continue
        flows.append(Flow.make(
            T.CLASSIFY.id, T.PRIO_ADMIT,
            {"in_port": tunnels[peer], "tunnel_id": key, "vlan_vid": 0},
            goto=T.TAG.id, cookie=net_cookie,
            write_metadata=(ids.metadata(vlan, ids.FROM_TUNNEL),
                            ids.META_VLAN_MASK | ids.META_ORIGIN_MASK)))
        flood_all.append(to_tunnel + (output(tunnels[peer]),))

    flows.append(Flow.make(T.TAG.id, T.PRIO_TAG, {"metadata": (ids.metadata(vlan), origin)},
                           push_vlan(vlan), goto=T.FORWARD.id, cookie=net_cookie))
    if trunk_here:
        flows.append(Flow.make(
            T.TAG.id, T.PRIO_TAG, {"metadata": (ids.metadata(vlan, ids.FROM_TRUNK), origin),
                                   "vlan_vid": (OFPVID_PRESENT, OFPVID_PRESENT)},
            (set_vlan(vlan),), goto=T.FORWARD.id, cookie=net_cookie))

    groups.append(Group(all_id, tuple(flood_local + flood_all)))
    groups.append(Group(local_id, tuple(flood_local)))
    flows.append(Flow.make(
        T.FORWARD.id, T.PRIO_FLOOD,
        {"vlan_vid": tagged, "eth_dst": MULTICAST, "metadata": (0, ids.FROM_TUNNEL)},
        (group(all_id),), cookie=net_cookie))
    flows.append(Flow.make(
        T.FORWARD.id, T.PRIO_FLOOD,
        {"vlan_vid": tagged, "eth_dst": MULTICAST, "metadata": (ids.FROM_TUNNEL, ids.FROM_TUNNEL)},
        (group(local_id),), cookie=net_cookie))
    for flow in flows:
        T.check(flow)
    return Piece(tuple(flows), tuple(groups))


def meters(topo: Topology, host: str, ports: Mapping[str, int]) -> tuple[Meter, ...]:
    """The meters of ``host``'s bridge, by id.  Storm control: one per
    endpoint port present (its floods in every network it attaches to go
    through it), none when the topology sets no ``broadcast_limit``.  DHCP:
    one per endpoint port present whose DHCP goes to the controller
    (``dhcp_ports``), at ``DHCP_RATE`` frames a second, whatever the
    broadcast limit."""
    rate = topo.broadcast_limit
    out = []
    for _, port, dhcp in endpoint_ports(topo, host):
        ofport = ports.get(port)
        if ofport is None:
            continue
        if dhcp:
            out.append(Meter(ids.dhcp_meter(ofport), DHCP_RATE, DHCP_BURST))
        if rate:
            out.append(Meter(ids.storm_meter(ofport), rate, storm_burst(rate)))
    return tuple(sorted(out, key=lambda m: m.meter_id))


def pieces(topo: Topology, host: str, ports: Mapping[str, int],
           networks: Iterable[str] | None = None, cache: dict | None = None) -> dict[str, Piece]:
    """Network name -> its piece on ``host``, for ``networks`` (default: all)
    that ``host`` carries; a network it does not carry has no piece.  With
    ``cache`` (network -> (inputs, piece), kept by the caller per host), a
    piece whose inputs are unchanged is reused: a reconnecting switch whose
    ports kept their numbers costs no recomputation."""
    if networks is None:
        wanted = [n.name for n in topo.networks_on(host)]
    else:
        wanted = [n for n in networks if topo.carries(host, n)]
    tunnels = tunnel_ports(topo, host, ports)
    out = {}
    for name in wanted:
        if cache is None:
            out[name] = network_piece(topo, host, name, ports, tunnels)
            continue
        inputs = piece_inputs(topo, host, name, ports, tunnels)
        hit = cache.get(name)
        if hit is None or hit[0] != inputs:
            hit = cache[name] = (inputs, network_piece(topo, host, name, ports, tunnels))
        out[name] = hit[1]
    return out


def piece_inputs(topo: Topology, host: str, network: str, ports: Mapping[str, int],
                 tunnels: Mapping[str, int]) -> tuple:
    """Everything ``network_piece`` reads: the network's view and the port
    numbers of its members here and of the tunnels to hosts carrying it."""
    view = topo.views[network]
    return (view, tuple(ports.get(m.port) for m in view.members if m.host == host),
            tuple(tunnels.get(h) for h, _ in view.carrying))


def joined(parts: Iterable[Piece]) -> tuple[list[Flow], list[Group]]:
    """All flows and all groups of some pieces."""
    flows: list[Flow] = []
    groups: list[Group] = []
    for part in parts:
        flows += part.flows
        groups += part.groups
    return flows, groups


def assemble(host: str, parts: Iterable[Piece], host_meters=()) -> HostPipeline:
    flows, groups = joined(parts)
    flows += base_flows()
    return HostPipeline(host, tuple(sorted(flows, key=Flow.sort_key)), tuple(sorted(groups)),
                        tuple(host_meters))


def compute(topo: Topology, host: str, ports: Mapping[str, int]) -> HostPipeline:
    """Flows, groups and meters for ``host``'s bridge holding ``ports``;
    every flow is checked against its table's declaration in ``tables``."""
    for flow in base_flows():
        T.check(flow)
    return assemble(host, pieces(topo, host, ports).values(), meters(topo, host, ports))


def offline_listing(topo: Topology, host: str, cookies: bool = True) -> list[str]:
    """``nsgre pipeline HOST``: the legend of the offline port numbers, then
    every flow (by table, highest priority first), group and meter in
    ``ovs-ofctl`` syntax."""
    ports = offline_ports(topo)[host]
    result = compute(topo, host, ports)
    lines = ["# ports: " + ", ".join(f"{n}={i}" for n, i in ports.items())]
    lines += [f.to_ofctl(cookies) for f in
              sorted(result.flows, key=lambda f: (f.table, -f.priority, f.sort_key()))]
    lines += [g.to_ofctl() for g in result.groups]
    lines += [m.to_ofctl() for m in result.meters]
    return lines


def port_networks(topo: Topology, host: str) -> dict[str, frozenset[str]]:
    """Every port ``host``'s pipeline knows -> the networks whose pieces on
    ``host`` change when it comes or goes: an endpoint port's networks, a
    tunnel port's the networks both ends carry.  Built once per topology
    by a caller that meets many port events (the controller)."""
    carried = {n.name for n in topo.networks_on(host)}
    result = {ep.port: frozenset(carried.intersection(ep.networks))
              for ep in topo.endpoints_on(host)}
    for peer in topo.peers(host):
        result[topo.tunnel_port(host, peer.name)] = frozenset(
            carried.intersection(n.name for n in topo.networks_on(peer.name)))
    return result


def networks_using_port(topo: Topology, host: str, port: str) -> set[str]:
    """``port_networks`` for one port; any other port concerns no network."""
    return set(port_networks(topo, host).get(port, ()))
