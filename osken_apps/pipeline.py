"""Desired OpenFlow state of one host's integration bridge: a pure function.

``compute(topology, host, ports)`` returns the flows and groups the bridge
should hold, given which ports exist on it right now (name -> OpenFlow port
number).  A port that is absent gets no flow, so nothing ever points at a
stale port number; when it appears, computing again yields its flows.

Packet walk (tables in ``osken_apps.tables``):

  classify  endpoint port + own MAC + untagged   -> push local VLAN
            trunk port + own MAC + a guest VLAN id -> rewrite it to the local VLAN
            tunnel port of a peer + key of a network both carry + untagged
                                                 -> push local VLAN, mark
                                                    FROM_TUNNEL
            anything else                        -> drop
  forward   local VLAN + local endpoint MAC      -> pop VLAN (trunk: rewrite to
                                                    the guest's VLAN id), output port
            local VLAN + remote endpoint MAC, not FROM_TUNNEL
                                                 -> pop VLAN, set key,
                                                    output tunnel to its host
            local VLAN + broadcast/multicast     -> flood group of the network
                                                    (local ports + tunnels to
                                                    hosts carrying it, or local
                                                    ports only if FROM_TUNNEL)
            anything else                        -> drop
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Mapping

from osken_apps import tables as T
from osken_apps.flows import (Flow, Group, group, output, pop_vlan, push_vlan,
                              set_tunnel_key, set_vlan, OFPVID_PRESENT)
from topology import Topology

MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")


@dataclass(frozen=True)
class HostPipeline:
    host: str
    flows: tuple[Flow, ...]
    groups: tuple[Group, ...]


def endpoint_cookie(name: str) -> int:
    ident = int.from_bytes(hashlib.sha256(f"ep:{name}".encode()).digest()[:5], "big")
    return T.cookie(T.KIND_ENDPOINT, ident)


def network_cookie(key: int) -> int:
    return T.cookie(T.KIND_NETWORK, key)


def flood_groups(vlan: int) -> tuple[int, int]:
    """(flood to all, flood to local ports only) group ids of a local VLAN."""
    return T.GROUP_FLOOD_ALL_BASE + vlan, T.GROUP_FLOOD_LOCAL_BASE + vlan


def compute(topo: Topology, host: str, ports: Mapping[str, int]) -> HostPipeline:
    """Flows and groups for ``host``'s bridge holding ``ports``."""
    flows: list[Flow] = []
    groups: list[Group] = []
    base = T.cookie(T.KIND_BASE)
    for table in T.TABLES:
        flows.append(Flow.make(table.id, T.PRIO_DROP, cookie=base))

    tunnels = {}     # peer host name -> ofport of the tunnel to it
    for peer in topo.peers(host):
        ofport = ports.get(topo.tunnel_port(host, peer.name))
        if ofport is not None:
            tunnels[peer.name] = ofport

    for net in topo.networks_on(host):
        vlan = topo.local_vlan(host, net.name)
        tagged = OFPVID_PRESENT | vlan
        net_cookie = network_cookie(net.key)
        to_tunnel = (pop_vlan(), set_tunnel_key(net.key))
        flood_local, flood_all = [], []

        for ep in topo.members(net.name):
            ep_cookie = endpoint_cookie(ep.name)
            if ep.host == host:
                ofport = ports.get(ep.port)
                if ofport is None:
                    continue
                guest_vlan = ep.attachment(net.name).vlan
                if guest_vlan is None:      # access port: untagged on the wire
                    arriving, admit = 0, push_vlan(vlan)
                    deliver = (pop_vlan(), output(ofport))
                else:                       # trunk: the guest's own VLAN id on the wire
                    arriving, admit = OFPVID_PRESENT | guest_vlan, (set_vlan(vlan),)
                    deliver = (set_vlan(guest_vlan), output(ofport))
                flows.append(Flow.make(
                    T.CLASSIFY.id, T.PRIO_ADMIT,
                    {"in_port": ofport, "vlan_vid": arriving, "eth_src": ep.mac},
                    admit, goto=T.FORWARD.id, cookie=ep_cookie))
                flows.append(Flow.make(
                    T.FORWARD.id, T.PRIO_UNICAST,
                    {"vlan_vid": tagged, "eth_dst": ep.mac}, deliver, cookie=ep_cookie))
                flood_local.append(deliver)
            elif ep.host in tunnels:
                flows.append(Flow.make(
                    T.FORWARD.id, T.PRIO_UNICAST,
                    {"vlan_vid": tagged, "eth_dst": ep.mac, "metadata": (0, T.FROM_TUNNEL)},
                    to_tunnel + (output(tunnels[ep.host]),), cookie=ep_cookie))

        for peer in topo.hosts_carrying(net.name):
            if peer.name == host or peer.name not in tunnels:
                continue
            flows.append(Flow.make(
                T.CLASSIFY.id, T.PRIO_ADMIT,
                {"in_port": tunnels[peer.name], "tunnel_id": net.key, "vlan_vid": 0},
                push_vlan(vlan), goto=T.FORWARD.id,
                write_metadata=(T.FROM_TUNNEL, T.FROM_TUNNEL), cookie=net_cookie))
            flood_all.append(to_tunnel + (output(tunnels[peer.name]),))

        all_id, local_id = flood_groups(vlan)
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

    return HostPipeline(host, tuple(sorted(flows)), tuple(sorted(groups)))
