"""Properties of the whole pipeline over random fabrics, run on the
simulator: same-network pairs are delivered, cross-network pairs never are
(networks reuse addresses on purpose), broadcast reaches exactly the rest
of the sender's network once, ARP is answered from the sender's own network
and never tunnelled, spoofed frames go nowhere, and nothing loops."""

import yaml
from hypothesis import given, settings, strategies as st

import topology
from nsgre_core import pipeline
from nsgre_tools.simulator import BROADCAST, Packet, inject
from nsgre_core.pipeline import offline_ports


@st.composite
def overlapping_fabrics(draw):
    """Random fabrics whose networks reuse the same subnet and addresses."""
    tunnel = draw(st.sampled_from(["gre", "vxlan", "geneve"]))
    n_hosts = draw(st.integers(1, 4))
    n_nets = draw(st.integers(1, 4))
    hosts = {f"h{i}": {"underlay_ip": f"198.18.0.{i + 1}"} for i in range(n_hosts)}
    networks = {f"n{i}": draw(st.sampled_from([{}, {"key": 10 * (i + 1)}, {"key": 5000 + i}]))
                for i in range(n_nets)}
    endpoints, used = {}, set()
    for i in range(draw(st.integers(2, 10))):
        net = draw(st.integers(0, n_nets - 1))
        last = draw(st.integers(1, 6).filter(lambda k: (net, k) not in used))
        used.add((net, last))
        endpoints[f"e{i}"] = {"host": f"h{draw(st.integers(0, n_hosts - 1))}",
                              "kind": draw(st.sampled_from(["vm", "namespace"])),
                              "network": f"n{net}", "ip": f"10.0.0.{last}/24"}
    spec = {"tunnel": tunnel, "hosts": hosts, "networks": networks, "endpoints": endpoints}
    return topology.parse(yaml.safe_dump(spec, sort_keys=False), "random.yaml")


def send(topo, ports, bridges, ep, **fields):
    base = dict(in_port=ports[ep.host][ep.port], eth_src=ep.mac, eth_type=0x0800,
                ipv4_src=str(ep.ip.ip))
    return inject(topo, ports, ep.host, Packet(**{**base, **fields}), pipelines=bridges)


@settings(max_examples=60, deadline=None)
@given(overlapping_fabrics())
def test_random_fabrics_deliver_within_networks_and_never_across(topo):
    ports = offline_ports(topo)
    bridges = {h: pipeline.compute(topo, h, ports[h]) for h in topo.hosts}
    eps = list(topo.endpoints.values())
    for src in eps:
        for dst in eps:
            if dst is src:
                continue
            run = send(topo, ports, bridges, src, eth_dst=dst.mac, ipv4_dst=str(dst.ip.ip))
            same = dst.network == src.network
            assert run.receivers == ([dst.name] if same else []), (src.name, dst.name)
            if same and dst.host != src.host:
                assert [h.dst for h in run.hops] == [dst.host]       # one tunnel, straight
            # ARP for dst's address: answered by src's own network, or not at all
            arp = send(topo, ports, bridges, src, eth_dst=BROADCAST, eth_type=0x0806,
                       ipv4_src=None, arp_op=1, arp_sha=src.mac, arp_spa=str(src.ip.ip),
                       arp_tha="00:00:00:00:00:00", arp_tpa=str(dst.ip.ip))
            owner = topo.endpoint_by_ip(src.network, str(dst.ip.ip))
            assert arp.hops == ()
            if owner is None or owner is src:
                assert [d for d in arp.deliveries if d.endpoint != src.name] == []
            else:
                assert arp.delivered(src.name).arp_sha == owner.mac
        members = sorted(e.name for e in topo.members(src.network) if e is not src)
        flood = send(topo, ports, bridges, src, eth_dst=BROADCAST, ipv4_dst="10.0.0.255")
        assert flood.receivers == members                       # each exactly once
        assert all(h.src == src.host for h in flood.hops)        # never tunnel to tunnel
        carrying = {h.name for h in topo.hosts_carrying(src.network)} - {src.host}
        assert {h.dst for h in flood.hops} == carrying
        for other in eps:
            if other is not src and other.mac != src.mac:
                forged = send(topo, ports, bridges, src, eth_src=other.mac, eth_dst=BROADCAST)
                assert forged.receivers == [] and forged.hops == ()
        spoofed = send(topo, ports, bridges, src, eth_dst=BROADCAST, ipv4_src="10.0.0.200")
        assert spoofed.receivers == [] and spoofed.hops == ()
