"""Trunk endpoints: a guest with 802.1Q sub-interfaces, each guest VLAN id
mapped to one network, independent of host-local VLANs and other guests."""

import pytest

import topology
from nsgre_tools.simulator import run_fabric
from nsgre_core.pipeline import offline_ports

TRUNKS = """\
hosts:
  kvm1: {underlay_ip: 198.18.0.1}
  kvm2: {underlay_ip: 198.18.0.2}
networks:
  net10: {key: 10}
  net20: {key: 20}
endpoints:
  router: {host: kvm1, kind: vm, vlans: {100: {network: net10, ip: 10.1.1.254/24},
                                         10:  {network: net20, ip: 10.1.2.254/24}}}
  other:  {host: kvm1, kind: vm, vlans: {20: {network: net10, ip: 10.1.1.253/24}}}
  blue:   {host: kvm2, kind: namespace, network: net10, ip: 10.1.1.1/24}
  vm2:    {host: kvm2, kind: vm,        network: net20, ip: 10.1.2.2/24}
"""


@pytest.fixture
def fabric():
    topo = topology.parse(TRUNKS, "t.yaml")
    return topo, offline_ports(topo)


def test_a_trunk_endpoint_belongs_to_one_network_per_guest_vlan(fabric):
    topo, _ = fabric
    router = topo.endpoint("router")
    assert router.trunk
    assert {(a.vlan, a.network) for a in router.attachments} == {(100, "net10"), (10, "net20")}
    assert [e.name for e in topo.members("net20")] == ["router", "vm2"]
    assert topo.endpoint_by_ip("net20", "10.1.2.254").name == "router"


def test_a_frame_on_guest_vlan_100_reaches_net10_untagged_and_never_net20(fabric):
    topo, ports = fabric
    run = run_fabric(topo, ports, "router", vlans=(100,))
    assert run.receivers == ["blue", "other"]
    assert run.delivered("blue").vlans == ()              # access port: untagged
    assert run.delivered("other").vlans == (20,)          # the other guest's own id for net10


def test_guest_vlan_10_means_net20_even_though_net10_is_local_vlan_10(fabric):
    topo, ports = fabric
    assert topo.local_vlan("kvm1", "net10") == 10
    run = run_fabric(topo, ports, "router", vlans=(10,))
    assert run.receivers == ["vm2"]


def test_frames_to_a_trunk_arrive_tagged_with_the_guests_vlan_for_that_network(fabric):
    topo, ports = fabric
    router = topo.endpoint("router")
    assert run_fabric(topo, ports, "vm2", router.mac).delivered("router").vlans == (10,)
    assert run_fabric(topo, ports, "blue", router.mac).delivered("router").vlans == (100,)


def test_a_trunk_drops_untagged_frames_and_vlans_it_does_not_carry(fabric):
    topo, ports = fabric
    assert run_fabric(topo, ports, "router").receivers == []
    assert run_fabric(topo, ports, "router", vlans=(200,)).receivers == []


@pytest.mark.parametrize("body,expected", [
    ("vlans: {100: {network: net10}}", "endpoints.r.vlans.100.ip: missing"),
    ("vlans: {5000: {network: net10, ip: 10.0.0.1/24}}",
     "endpoints.r.vlans.5000: a guest VLAN id must be 1..4094"),
    ("vlans: {1: {network: net10, ip: 10.0.0.1/24}, 2: {network: net10, ip: 10.0.0.2/24}}",
     "endpoints.r.vlans.2.network: network 'net10' is already on VLAN 1 of this trunk"),
    ("network: net10, vlans: {1: {network: net10, ip: 10.0.0.1/24}}",
     "endpoints.r.network: a trunk endpoint gives network and ip per VLAN under vlans:, not here"),
    ("vlans: {1: {network: net99, ip: 10.0.0.1/24}}",
     "endpoints.r.vlans.1.network: unknown network 'net99'"),
    ("vlans: {1: {network: net10, ip: 10.0.0.1/24, mtu: 9000}}",
     "endpoints.r.vlans.1.mtu: unknown field"),
])
def test_a_broken_trunk_is_refused_naming_the_vlan_and_field(body, expected):
    text = ("hosts: {h: {underlay_ip: 198.18.0.1}}\nnetworks: {net10: {key: 10}}\n"
            f"endpoints:\n  r: {{host: h, kind: vm, {body}}}\n")
    with pytest.raises(topology.TopologyError) as err:
        topology.parse(text, "t.yaml")
    assert any(expected in problem for problem in err.value.problems), err.value.problems
