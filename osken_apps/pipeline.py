"""Desired OpenFlow state of one host's integration bridge: a pure function.

``compute(topology, host, ports)`` returns the flows and groups the bridge
should hold, given which ports exist on it right now (name -> OpenFlow port
number).  A port that is absent gets no flow, so nothing ever points at a
stale port number; when it appears, computing again yields its flows.

Packet walk (tables, their contracts and priorities in ``osken_apps.tables``):

  classify       endpoint port + own MAC + (untagged | a trunk's guest VLAN)
                 + ARP for its own IP / IP from its own address
                                     -> metadata: local VLAN, origin; go on
                 tunnel port of a peer + key of a network both carry + untagged
                                     -> metadata: local VLAN, FROM_TUNNEL; to tag
                 anything else       -> drop
  arp_responder  ARP request for any endpoint IP of the frame's network
                                     -> rewrite into the reply, out of IN_PORT
                 any other ARP       -> drop (no ARP ever crosses a tunnel)
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

import functools
import hashlib
from dataclasses import dataclass
from typing import Iterable, Mapping

from osken_apps import tables as T
from osken_apps.flows import (Flow, Group, Meter, group, move, output, pop_vlan, push_vlan,
                              set_tunnel_key, set_vlan, OFPVID_PRESENT)
from topology import Topology

MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")
LINK_LOCAL = ("fe80::", "ffc0::")


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


@functools.lru_cache(maxsize=None)
def endpoint_cookie(name: str) -> int:
    ident = int.from_bytes(hashlib.sha256(f"ep:{name}".encode()).digest()[:5], "big")
    return T.cookie(T.KIND_ENDPOINT, ident)


def network_cookie(key: int) -> int:
    return T.cookie(T.KIND_NETWORK, key)


def cookie_meaning(topo: Topology, value: int) -> str:
    """What a cookie says, in topology terms: ``network net10``,
    ``endpoint vm1``, ``base``, or ``not nsgre's``."""
    decoded = T.decode_cookie(value)
    if decoded is None:
        return "not nsgre's"
    kind, ident = decoded
    if kind == "network":
        name = next((n.name for n in topo.networks.values() if n.key == ident), None)
        return f"network {name}" if name else f"network with key {ident} (not in the topology)"
    if kind == "endpoint":
        name = next((e for e in topo.endpoints if endpoint_cookie(e) == value), None)
        return f"endpoint {name}" if name else "an endpoint not in the topology"
    return kind


def flood_groups(vlan: int) -> tuple[int, int]:
    """(flood to all, flood to local ports only) group ids of a local VLAN."""
    return T.GROUP_FLOOD_ALL_BASE + vlan, T.GROUP_FLOOD_LOCAL_BASE + vlan


def _admit(ofport: int, arriving: int, mac: str, ip: str, meta: int, cookie: int) -> list[Flow]:
    """Port security for one attachment: ARP for its own IP and MAC, IP from
    its own address (IPv6 also from link-local, which NDP needs)."""
    base = {"in_port": ofport, "vlan_vid": arriving, "eth_src": mac}
    if ":" not in ip:
        matches = [{"eth_type": 0x0806, "arp_sha": mac, "arp_spa": ip},
                   {"eth_type": 0x0800, "ipv4_src": ip}]
    else:
        matches = [{"eth_type": 0x86DD, "ipv6_src": ip},
                   {"eth_type": 0x86DD, "ipv6_src": LINK_LOCAL}]
    return [Flow.make(T.CLASSIFY.id, T.PRIO_ADMIT, {**base, **m}, goto=T.ARP_RESPONDER.id,
                      write_metadata=(meta, T.META_VLAN_MASK | T.META_ORIGIN_MASK),
                      cookie=cookie)
            for m in matches]


def _arp_answer(vlan: int, mac: str, ip: str, cookie: int) -> Flow:
    """Turn an ARP request for ``ip`` into the reply of ``mac``, sent back."""
    return Flow.make(
        T.ARP_RESPONDER.id, T.PRIO_ANSWER,
        {"metadata": (T.metadata(vlan), T.META_VLAN_MASK), "eth_type": 0x0806, "arp_op": 1,
         "arp_tpa": ip},
        (move("eth_src", "eth_dst"), ("set_field", "eth_src", mac),
         ("set_field", "arp_op", 2), move("arp_sha", "arp_tha"), move("arp_spa", "arp_tpa"),
         ("set_field", "arp_sha", mac), ("set_field", "arp_spa", ip),
         output(T.OFPP_IN_PORT)),
        cookie=cookie)


def base_flows() -> tuple[Flow, ...]:
    """What every bridge holds whatever the topology: the default drops and
    the ARP table's fall-through."""
    base = T.cookie(T.KIND_BASE)
    flows = [Flow.make(table.id, T.PRIO_DROP, cookie=base)
             for table in (T.CLASSIFY, T.TAG, T.FORWARD)]
    flows.append(Flow.make(T.ARP_RESPONDER.id, T.PRIO_NO_ARP, {"eth_type": 0x0806}, cookie=base))
    flows.append(Flow.make(T.ARP_RESPONDER.id, T.PRIO_NEXT, goto=T.TAG.id, cookie=base))
    return tuple(flows)


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
    (_, metered), key, members, carrying = topo.views[network]
    flows: list[Flow] = []
    groups: list[Group] = []
    origin = T.META_VLAN_MASK | T.FROM_TRUNK
    vlan = dict(carrying)[host]
    tagged = OFPVID_PRESENT | vlan
    net_cookie = network_cookie(key)
    to_tunnel = (pop_vlan(), set_tunnel_key(key))
    flood_local, flood_all = [], []
    trunk_here = False
    all_id, local_id = flood_groups(vlan)

    for name, ep_host, mac, port, address, guest_vlan in members:
        ep_cookie = endpoint_cookie(name)
        ip = address.split("/")[0]
        if ":" not in ip:
            flows.append(_arp_answer(vlan, mac, ip, ep_cookie))
        if ep_host == host:
            ofport = ports.get(port)
            if ofport is None:
                continue
            if guest_vlan is None:      # access port: untagged on the wire
                arriving, meta = 0, T.metadata(vlan)
                deliver = (pop_vlan(), output(ofport))
            else:                       # trunk: the guest's own VLAN id on the wire
                arriving, meta = OFPVID_PRESENT | guest_vlan, T.metadata(vlan, T.FROM_TRUNK)
                deliver = (set_vlan(guest_vlan), output(ofport))
                trunk_here = True
            flows += _admit(ofport, arriving, mac, ip, meta, ep_cookie)
            flows.append(Flow.make(
                T.FORWARD.id, T.PRIO_UNICAST,
                {"vlan_vid": tagged, "eth_dst": mac}, deliver, cookie=ep_cookie))
            if metered:                 # storm control: its floods through its port's meter
                flows.append(Flow.make(
                    T.FORWARD.id, T.PRIO_STORM,
                    {"in_port": ofport, "vlan_vid": tagged, "eth_dst": MULTICAST},
                    (group(all_id),), cookie=ep_cookie, meter=T.storm_meter(ofport)))
            flood_local.append(deliver)
        elif ep_host in tunnels:
            flows.append(Flow.make(
                T.FORWARD.id, T.PRIO_UNICAST,
                {"vlan_vid": tagged, "eth_dst": mac, "metadata": (0, T.FROM_TUNNEL)},
                to_tunnel + (output(tunnels[ep_host]),), cookie=ep_cookie))

    for peer, _ in carrying:
        if peer == host or peer not in tunnels:
            continue
        flows.append(Flow.make(
            T.CLASSIFY.id, T.PRIO_ADMIT,
            {"in_port": tunnels[peer], "tunnel_id": key, "vlan_vid": 0},
            goto=T.TAG.id, cookie=net_cookie,
            write_metadata=(T.metadata(vlan, T.FROM_TUNNEL),
                            T.META_VLAN_MASK | T.META_ORIGIN_MASK)))
        flood_all.append(to_tunnel + (output(tunnels[peer]),))

    flows.append(Flow.make(T.TAG.id, T.PRIO_TAG, {"metadata": (T.metadata(vlan), origin)},
                           push_vlan(vlan), goto=T.FORWARD.id, cookie=net_cookie))
    if trunk_here:
        flows.append(Flow.make(
            T.TAG.id, T.PRIO_TAG, {"metadata": (T.metadata(vlan, T.FROM_TRUNK), origin),
                                   "vlan_vid": (OFPVID_PRESENT, OFPVID_PRESENT)},
            (set_vlan(vlan),), goto=T.FORWARD.id, cookie=net_cookie))

    groups.append(Group(all_id, tuple(flood_local + flood_all)))
    groups.append(Group(local_id, tuple(flood_local)))
    flows.append(Flow.make(
        T.FORWARD.id, T.PRIO_FLOOD,
        {"vlan_vid": tagged, "eth_dst": MULTICAST, "metadata": (0, T.FROM_TUNNEL)},
        (group(all_id),), cookie=net_cookie))
    flows.append(Flow.make(
        T.FORWARD.id, T.PRIO_FLOOD,
        {"vlan_vid": tagged, "eth_dst": MULTICAST, "metadata": (T.FROM_TUNNEL, T.FROM_TUNNEL)},
        (group(local_id),), cookie=net_cookie))
    for flow in flows:
        T.check(flow)
    return Piece(tuple(flows), tuple(groups))


def meters(topo: Topology, host: str, ports: Mapping[str, int]) -> tuple[Meter, ...]:
    """Storm control: one meter per endpoint port present on ``host`` (its
    floods in every network it attaches to go through it), none when the
    topology sets no ``broadcast_limit``."""
    rate = topo.broadcast_limit
    if not rate:
        return ()
    ids = {T.storm_meter(ports[e.port]) for e in topo.endpoints_on(host) if e.port in ports}
    return tuple(Meter(i, rate, T.storm_burst(rate)) for i in sorted(ids))


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
    members = view[2]
    return (view, tuple(ports.get(m[3]) for m in members if m[1] == host),
            tuple(tunnels.get(h) for h, _ in view[3]))


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


def networks_using_port(topo: Topology, host: str, port: str) -> set[str]:
    """The networks whose pieces on ``host`` change when ``port`` comes or
    goes: an endpoint port's networks, or for a tunnel port the networks
    both ends carry.  Any other port concerns no network."""
    carried = {n.name for n in topo.networks_on(host)}
    for ep in topo.endpoints_on(host):
        if ep.port == port:
            return carried.intersection(ep.networks)
    for peer in topo.peers(host):
        if topo.tunnel_port(host, peer.name) == port:
            return carried.intersection(n.name for n in topo.networks_on(peer.name))
    return set()
