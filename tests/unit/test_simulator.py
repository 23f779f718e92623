"""The simulator's own semantics: OpenFlow 1.3 as OVS runs it, on hand-made
flows, so the pipeline tests can trust what it says."""

import pytest

import topology
from nsgre_core.flows import Flow, Group, group, output, pop_vlan, push_vlan, set_tunnel_key
from nsgre_tools.simulator import FabricLoop, Packet, SimulationError, inject, run_fabric, run_host
from nsgre_core.pipeline import offline_ports

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def pkt(**kw):
    kw.setdefault("in_port", 1)
    kw.setdefault("eth_src", A)
    kw.setdefault("eth_dst", B)
    return Packet(**kw)


def test_highest_priority_matching_flow_wins():
    flows = [Flow.make(0, 10, {}, (output(2),)),
             Flow.make(0, 20, {"eth_dst": B}, (output(3),)),
             Flow.make(0, 30, {"eth_dst": A}, (output(4),))]
    assert run_host(flows, [], pkt()).ports == [3]


def test_two_matching_flows_of_equal_priority_are_an_error():
    flows = [Flow.make(0, 10, {"in_port": 1}, (output(2),)),
             Flow.make(0, 10, {"eth_dst": B}, (output(3),))]
    with pytest.raises(SimulationError, match="undefined"):
        run_host(flows, [], pkt())


def test_equal_priority_flows_that_do_not_both_match_are_fine():
    flows = [Flow.make(0, 10, {"in_port": 1}, (output(2),)),
             Flow.make(0, 10, {"in_port": 5}, (output(3),))]
    assert run_host(flows, [], pkt()).ports == [2]


def test_a_table_miss_drops_and_is_traced_as_none():
    run = run_host([Flow.make(0, 10, {"in_port": 9}, (output(2),))], [], pkt())
    assert run.outputs == ()
    assert [(step.table, step.flow) for step in run.trace] == [(0, None)]


def test_a_flow_without_actions_drops():
    assert run_host([Flow.make(0, 0)], [], pkt()).outputs == ()


def test_masked_eth_dst_matches_the_multicast_bit_only():
    flows = [Flow.make(0, 10, {"eth_dst": ("01:00:00:00:00:00", "01:00:00:00:00:00")}, (output(2),))]
    assert run_host(flows, [], pkt(eth_dst="ff:ff:ff:ff:ff:ff")).ports == [2]
    assert run_host(flows, [], pkt(eth_dst="01:00:5e:00:00:01")).ports == [2]
    assert run_host(flows, [], pkt(eth_dst=B)).ports == []


def test_mac_matching_ignores_case():
    flows = [Flow.make(0, 10, {"eth_src": A.upper()}, (output(2),))]
    assert run_host(flows, [], pkt()).ports == [2]


def test_metadata_write_is_masked_and_seen_by_later_tables():
    flows = [Flow.make(0, 10, {}, (), goto=1, write_metadata=(0x1, 0x1)),
             Flow.make(1, 10, {"metadata": (0x1, 0x1)}, (output(2),)),
             Flow.make(1, 10, {"metadata": (0x0, 0x1)}, (output(3),))]
    run = run_host(flows, [], pkt(metadata=0xF0))
    assert run.ports == [2]
    assert run.outputs[0][1].metadata == 0xF1      # other bits untouched


def test_goto_continues_in_the_named_table_after_apply_actions():
    flows = [Flow.make(0, 10, {}, (output(2),), goto=3),
             Flow.make(3, 10, {}, (output(4),))]
    run = run_host(flows, [], pkt())
    assert [p for p, _ in run.outputs] == [2, 4]
    assert [step.table for step in run.trace] == [0, 3]


def test_goto_backwards_is_an_error():
    flows = [Flow.make(1, 10, {}, (), goto=1), Flow.make(0, 10, {}, (), goto=1)]
    with pytest.raises(SimulationError, match="forward"):
        run_host(flows, [], pkt())


def test_outputs_see_the_packet_as_modified_so_far():
    acts = (output(2), set_tunnel_key(7), output(3))
    run = run_host([Flow.make(0, 10, {}, acts)], [], pkt())
    assert [(p, o.tunnel_id) for p, o in run.outputs] == [(2, 0), (3, 7)]


def test_push_vlan_adds_an_outer_tag_and_vlan_vid_matches_it():
    flows = [Flow.make(0, 10, {"vlan_vid": 0}, push_vlan(10), goto=1),
             Flow.make(1, 10, {"vlan_vid": 0x1000 | 10}, (output(2),))]
    run = run_host(flows, [], pkt())
    assert run.outputs[0][1].vlans == (10,)
    assert [step.packet.vlans for step in run.trace] == [(), (10,)]   # as each table saw it


def test_push_vlan_on_a_tagged_frame_makes_a_double_tag_and_pop_removes_the_outer():
    flows = [Flow.make(0, 10, {"vlan_vid": 0x1000 | 5}, push_vlan(10), goto=1),
             Flow.make(1, 10, {"vlan_vid": 0x1000 | 10}, (output(2), pop_vlan(), output(3)))]
    run = run_host(flows, [], pkt(vlans=(5,)))
    assert [(p, o.vlans) for p, o in run.outputs] == [(2, (10, 5)), (3, (5,))]
    assert Packet(vlans=(10, 5)).vlan_vid == 0x1000 | 10
    assert Packet().vlan_vid == 0


def test_pop_vlan_on_an_untagged_frame_is_an_error():
    with pytest.raises(SimulationError, match="untagged"):
        run_host([Flow.make(0, 10, {}, (pop_vlan(),))], [], pkt())


def test_group_all_runs_every_bucket_on_its_own_copy():
    groups = [Group(7, ((pop_vlan(), output(2)), (set_tunnel_key(9), output(3))))]
    run = run_host([Flow.make(0, 10, {}, (group(7), output(4)))], groups, pkt(vlans=(10,)))
    assert [(p, o.vlans, o.tunnel_id) for p, o in run.outputs] == \
        [(2, (), 0), (3, (10,), 9), (4, (10,), 0)]


def test_output_to_the_in_port_is_skipped_also_inside_groups():
    groups = [Group(7, ((output(1),), (output(2),)))]
    run = run_host([Flow.make(0, 10, {}, (output(1), group(7)))], groups, pkt(in_port=1))
    assert run.ports == [2]
    assert run.skipped == (1, 1)


def test_reserved_ports_and_unknown_actions_and_groups_are_refused():
    for acts in [(output(0xFFFFFFFB),), (output("NORMAL"),), (("drop_it",),), (group(99),)]:
        with pytest.raises(SimulationError):
            run_host([Flow.make(0, 10, {}, acts)], [], pkt())


def test_offline_ports_numbers_endpoint_then_tunnel_ports_deterministically():
    topo = topology.load()
    assert offline_ports(topo) == offline_ports(topology.load())
    assert offline_ports(topo)["kvm1"] == {"p-red": 1, "p-vm1": 2, "gre-kvm2": 3}


def test_run_fabric_follows_a_frame_through_the_tunnel_with_its_key():
    topo = topology.load()
    ports = offline_ports(topo)
    run = run_fabric(topo, ports, "vm1", topo.endpoint("blue").mac)
    assert run.receivers == ["blue"]
    (hop,) = run.hops
    assert (hop.src, hop.dst, hop.packet.tunnel_id, hop.arrived) == ("kvm1", "kvm2", 10, True)
    # it entered kvm2 on kvm2's tunnel port to kvm1
    assert run.runs[1][1].in_port == ports["kvm2"]["gre-kvm1"]


def test_a_tunnel_whose_far_end_port_is_absent_loses_the_frame():
    topo = topology.load()
    ports = offline_ports(topo)
    del ports["kvm2"]["gre-kvm1"]
    run = run_fabric(topo, ports, "vm1", topo.endpoint("blue").mac)
    assert run.receivers == []
    assert [h.arrived for h in run.hops] == [False]


RING = """
hosts:
  h1: {underlay_ip: 192.0.2.1}
  h2: {underlay_ip: 192.0.2.2}
  h3: {underlay_ip: 192.0.2.3}
networks:
  n: {key: 1}
endpoints:
  e1: {host: h1, kind: vm, network: n, ip: 10.0.0.1/24}
"""


def test_a_forwarding_loop_across_tunnels_is_reported():
    topo = topology.parse(RING, "ring.yaml")
    ports = offline_ports(topo)

    class Next:                     # every frame goes on round the ring h1->h2->h3->h1
        groups = ()

        def __init__(self, host, peer):
            self.flows = (Flow.make(0, 0, {}, (output(ports[host][topo.tunnel_port(host, peer)]),)),)

    pipelines = {"h1": Next("h1", "h2"), "h2": Next("h2", "h3"), "h3": Next("h3", "h1")}
    with pytest.raises(FabricLoop, match="h1->h2 h2->h3 h3->h1 h1->h2"):
        run_fabric(topo, ports, "e1", pipelines=pipelines, max_hops=4)


def test_output_to_a_port_that_is_neither_endpoint_nor_tunnel_is_an_error():
    topo = topology.load()
    ports = offline_ports(topo)

    class Stray:
        groups = ()
        flows = (Flow.make(0, 0, {}, (output(77),)),)

    with pytest.raises(SimulationError, match="port 77"):
        inject(topo, ports, "kvm1", Packet(in_port=1), pipelines={"kvm1": Stray()})
