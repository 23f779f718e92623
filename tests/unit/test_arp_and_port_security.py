"""ARP is answered on the endpoint's own host from the model, never
forwarded; an endpoint may only speak from its own MAC and addresses; every
flow obeys its table's declared contract."""

import itertools

import pytest

import topology
from nsgre_core import pipeline
from nsgre_core import ids
from nsgre_core import tables as T
from nsgre_core.flows import Flow
from nsgre_tools.simulator import BROADCAST, Packet, inject
from nsgre_core.pipeline import offline_ports

from test_pipeline import THREE
from test_trunks import TRUNKS


def arp_request(topo, ports, src, target_ip, *, spa=None, sha=None, vlans=()):
    ep = topo.endpoint(src)
    att = next(a for a in ep.attachments if a.vlan == (vlans[0] if vlans else None))
    packet = Packet(in_port=ports[ep.host][ep.port], eth_src=ep.mac, eth_dst=BROADCAST,
                    vlans=vlans, eth_type=0x0806, arp_op=1, arp_sha=sha or ep.mac,
                    arp_spa=spa or str(att.ip.ip), arp_tha="00:00:00:00:00:00",
                    arp_tpa=target_ip)
    return inject(topo, ports, ep.host, packet)


@pytest.fixture(params=["seed", "three"])
def topo(request):
    return topology.load() if request.param == "seed" else topology.parse(THREE, "t.yaml")


def test_an_arp_request_for_a_same_network_ip_is_answered_on_the_asking_host(topo):
    ports = offline_ports(topo)
    for src, dst in itertools.permutations(topo.endpoints.values(), 2):
        if src.network != dst.network:
            continue
        run = arp_request(topo, ports, src.name, str(dst.ip.ip))
        assert run.hops == (), "no ARP crosses a tunnel"
        reply = run.delivered(src.name)
        assert run.receivers == [src.name]
        assert (reply.arp_op, reply.eth_src, reply.eth_dst) == (2, dst.mac, src.mac)
        assert (reply.arp_sha, reply.arp_spa) == (dst.mac, str(dst.ip.ip))
        assert (reply.arp_tha, reply.arp_tpa) == (src.mac, str(src.ip.ip))


def test_an_arp_request_for_an_ip_of_another_network_gets_nothing(topo):
    ports = offline_ports(topo)
    for src in topo.endpoints.values():
        mine = {str(e.ip.ip) for e in topo.members(src.network)}
        for other in topo.endpoints.values():
            ip = str(other.ip.ip)
            run = arp_request(topo, ports, src.name, ip)
            if ip in mine and other.network != src.network:
                # the same IP exists in my network too: the answer is my network's
                owner = topo.endpoint_by_ip(src.network, ip)
                assert run.delivered(src.name).arp_sha == owner.mac
            elif ip not in mine:
                assert run.receivers == [] and run.hops == (), (src.name, ip)


def test_arp_claiming_another_ip_or_mac_is_dropped(topo):
    ports = offline_ports(topo)
    for src, victim in itertools.permutations(topo.endpoints.values(), 2):
        target = str(src.ip.ip)
        spoofed_ip = arp_request(topo, ports, src.name, target, spa=str(victim.ip.ip))
        spoofed_mac = arp_request(topo, ports, src.name, target, sha=victim.mac)
        if victim.ip.ip != src.ip.ip:
            assert spoofed_ip.receivers == [] and spoofed_ip.hops == ()
        assert spoofed_mac.receivers == [] and spoofed_mac.hops == ()


def test_ip_from_an_address_not_the_endpoints_own_is_dropped(topo):
    ports = offline_ports(topo)
    for src, dst in itertools.permutations(topo.endpoints.values(), 2):
        for forged in ("10.9.9.9", "0.0.0.0"):
            packet = Packet(in_port=ports[src.host][src.port], eth_src=src.mac, eth_dst=dst.mac,
                            eth_type=0x0800, ipv4_src=forged, ipv4_dst=str(dst.ip.ip))
            run = inject(topo, ports, src.host, packet)
            assert run.receivers == [] and run.hops == (), (src.name, forged)


def test_a_trunk_guest_gets_its_arp_answer_on_the_vlan_it_asked_on():
    topo = topology.parse(TRUNKS, "t.yaml")
    ports = offline_ports(topo)
    run = arp_request(topo, ports, "router", "10.1.2.2", vlans=(10,))     # vm2, net20
    reply = run.delivered("router")
    assert reply.vlans == (10,) and reply.arp_sha == topo.endpoint("vm2").mac
    assert arp_request(topo, ports, "router", "10.1.2.2", vlans=(100,)).receivers == []


@pytest.mark.parametrize("flow,why", [
    (Flow.make(T.CLASSIFY.id, 100, {"in_port": 1}, (("output", 2),)), "may not use action output"),
    (Flow.make(T.TAG.id, 100, {"in_port": 1}, goto=T.FORWARD.id), "may not match in_port"),
    (Flow.make(T.CLASSIFY.id, 100, {}, meter=ids.storm_meter(1)), "may not use meter"),
    (Flow.make(T.FORWARD.id, 100, {}, (("group", 1),), meter=7), "may not use meter 7"),
    (Flow.make(T.FORWARD.id, 100, {}, (("output", 0xFFFFFFFB),)), "reserved port"),
    (Flow.make(T.FORWARD.id, 100, {}, (("set_field", "eth_src", "02:00:00:00:00:01"),)),
     "may not set eth_src"),
    (Flow.make(T.ARP_RESPONDER.id, 100, {}, (("output", 2),)), "may only output to IN_PORT"),
    (Flow.make(T.TAG.id, 100, {}, goto=T.ARP_RESPONDER.id), "may not go to table 1"),
    (Flow.make(T.FORWARD.id, 100, {}, write_metadata=(1, 1)), "may not write metadata"),
    (Flow.make(7, 100), "undeclared table 7"),
])
def test_a_flow_outside_its_tables_contract_is_refused(flow, why):
    with pytest.raises(T.PipelineError, match=why):
        T.check(flow)


def test_every_computed_flow_obeys_its_tables_contract(topo):
    ports = offline_ports(topo)
    for host in topo.hosts:
        for flow in pipeline.compute(topo, host, ports[host]).flows:
            T.check(flow)
