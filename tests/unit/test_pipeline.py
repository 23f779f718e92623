"""The flow pipeline, specified by where packets go.

Each test builds a topology (the seed, or a small YAML one), computes every
host's flows with ``pipeline.compute``, runs frames through them with the
simulator and states the rule as an assertion about who receives what.
"""

import itertools

import pytest

import topology
from nsgre_core import pipeline, reconcile
from nsgre_core import ids
from nsgre_core import tables as T
from nsgre_core.ofp import OFPP_CONTROLLER, OFPP_IN_PORT, OFPVID_PRESENT
from nsgre_tools.simulator import BROADCAST, Packet, inject, run_fabric, run_host
from nsgre_core.pipeline import offline_ports

UNKNOWN_MAC = "02:99:99:99:99:99"

# Three hosts.  net10 is on all of them; net30 (key above the VLAN range)
# only on kvm1 and kvm3, so kvm2 must never see it; net10 and net30 reuse
# the same IP addresses; kvm1 holds two endpoints of net10.
THREE = """\
tunnel: gre
hosts:
  kvm1: {underlay_ip: 198.18.0.1}
  kvm2: {underlay_ip: 198.18.0.2}
  kvm3: {underlay_ip: 198.18.0.3}
networks:
  net10: {key: 10}
  net30: {key: 5000}
endpoints:
  a1: {host: kvm1, kind: vm,        network: net10, ip: 10.1.1.1/24}
  a1b: {host: kvm1, kind: vm,       network: net10, ip: 10.1.1.11/24}
  a2: {host: kvm2, kind: namespace, network: net10, ip: 10.1.1.2/24}
  a3: {host: kvm3, kind: vm,        network: net10, ip: 10.1.1.3/24}
  b1: {host: kvm1, kind: namespace, network: net30, ip: 10.1.1.1/24}
  b3: {host: kvm3, kind: vm,        network: net30, ip: 10.1.1.3/24}
"""


def seed():
    return topology.load()


def three():
    return topology.parse(THREE, "t.yaml")


TOPOLOGIES = {"seed": seed, "three": three}


@pytest.fixture(params=sorted(TOPOLOGIES))
def topo(request):
    return TOPOLOGIES[request.param]()


def mac(topo, name):
    return topo.endpoint(name).mac


def bridge(topo, host, ports=None):
    return pipeline.compute(topo, host, (ports or offline_ports(topo))[host])


def enter(topo, host, port_name, ports=None, **fields):
    """Run one frame entering ``host`` on ``port_name`` through its bridge.
    From an endpoint's port it is IPv4 from that endpoint's own address
    unless ``fields`` say otherwise."""
    ports = ports or offline_ports(topo)
    br = bridge(topo, host, ports)
    owner = next((e for e in topo.endpoints_on(host) if e.port == port_name), None)
    if owner is not None and not owner.trunk:
        fields = {"ipv4_src": str(owner.ip.ip), **fields}
    return run_host(br.flows, br.groups, Packet(in_port=ports[host][port_name], **fields))


def tunnel_ports(topo, host, ports):
    return {ports[host][topo.tunnel_port(host, p.name)]: p.name for p in topo.peers(host)}


# -- admission and the local VLAN --------------------------------------------

def test_a_frame_from_an_endpoint_with_its_own_mac_gets_its_networks_local_vlan(topo):
    for ep in topo.endpoints.values():
        run = enter(topo, ep.host, ep.port, eth_src=ep.mac, eth_dst=UNKNOWN_MAC)
        classify, arp, tag, forward = run.trace
        assert [s.table for s in run.trace] == [t.id for t in T.TABLES if t is not T.ND_REPLY]
        assert forward.packet.vlans == (topo.local_vlan(ep.host, ep.network),)


def test_a_frame_with_a_foreign_source_mac_from_an_endpoint_port_is_dropped(topo):
    for ep, other in itertools.permutations(topo.endpoints.values(), 2):
        for src in (other.mac, UNKNOWN_MAC):
            run = run_fabric(topo, offline_ports(topo), ep.name, BROADCAST, eth_src=src)
            assert run.receivers == [] and run.hops == (), (ep.name, src)


def test_a_tagged_frame_from_an_endpoint_port_is_dropped(topo):
    for ep in topo.endpoints.values():
        vlan = topo.local_vlan(ep.host, ep.network)
        for tags in [(vlan,), (0,), (5,), (vlan, vlan), (5, vlan)]:
            for dst in [BROADCAST] + [e.mac for e in topo.members(ep.network)]:
                run = run_fabric(topo, offline_ports(topo), ep.name, dst, vlans=tags)
                assert run.receivers == [] and run.hops == (), (ep.name, tags, dst)


# -- unicast ------------------------------------------------------------------

def test_a_frame_for_a_local_endpoint_has_its_vlan_popped_and_goes_to_its_port():
    topo = three()
    ports = offline_ports(topo)
    run = run_fabric(topo, ports, "a1", mac(topo, "a1b"))
    assert run.receivers == ["a1b"]
    assert run.hops == ()
    assert run.delivered("a1b").vlans == ()
    assert run.runs[0][2].ports == [ports["kvm1"]["p-a1b"]]


def test_a_frame_for_a_remote_endpoint_leaves_through_the_tunnel_to_its_host_untagged_with_the_key(topo):
    ports = offline_ports(topo)
    for src, dst in itertools.permutations(topo.endpoints.values(), 2):
        if src.network != dst.network or src.host == dst.host:
            continue
        first = enter(topo, src.host, src.port, ports, eth_src=src.mac, eth_dst=dst.mac)
        ((port, out),) = first.outputs
        assert port == ports[src.host][topo.tunnel_port(src.host, dst.host)]
        assert out.vlans == ()
        assert out.tunnel_id == topo.network(src.network).key
        run = run_fabric(topo, ports, src.name, dst.mac)
        assert run.receivers == [dst.name]
        assert run.delivered(dst.name).vlans == ()
        assert [(h.src, h.dst) for h in run.hops] == [(src.host, dst.host)]


def test_unicast_reaches_exactly_its_destination_when_in_the_same_network_else_nothing(topo):
    ports = offline_ports(topo)
    for src, dst in itertools.product(topo.endpoints.values(), repeat=2):
        run = run_fabric(topo, ports, src.name, dst.mac)
        if src.network == dst.network and src != dst:
            assert run.receivers == [dst.name], (src.name, dst.name)
        else:
            assert run.receivers == [], (src.name, dst.name)


def test_cross_network_unicast_is_dropped_even_when_networks_reuse_the_same_ips():
    topo = three()
    a1, b1 = topo.endpoint("a1"), topo.endpoint("b1")
    assert a1.ip == b1.ip                 # the point of the test
    ports = offline_ports(topo)
    for src, dst in [("a1", "b1"), ("b1", "a1"), ("a1", "b3"), ("b3", "a1"), ("b1", "a3")]:
        run = run_fabric(topo, ports, src, mac(topo, dst))
        assert run.receivers == [] and run.hops == (), (src, dst)


def test_unknown_unicast_is_dropped(topo):
    for ep in topo.endpoints.values():
        run = run_fabric(topo, offline_ports(topo), ep.name, UNKNOWN_MAC)
        assert run.receivers == [] and run.hops == ()


# -- broadcast ----------------------------------------------------------------

@pytest.mark.parametrize("dst", [BROADCAST, "01:00:5e:00:00:01", "33:33:00:00:00:01"])
def test_broadcast_and_multicast_reach_exactly_the_other_endpoints_of_the_network_once(topo, dst):
    for ep in topo.endpoints.values():
        run = run_fabric(topo, offline_ports(topo), ep.name, dst)
        expected = sorted(e.name for e in topo.members(ep.network) if e != ep)
        assert run.receivers == expected, ep.name
        assert all(d.packet.vlans == () for d in run.deliveries)


@pytest.mark.parametrize("dst", ["01:80:c2:00:00:00", "01:80:c2:00:00:02", "01:80:c2:00:00:03",
                                 "01:80:c2:00:00:0e", "01:80:c2:00:00:0f"],
                         ids=["stp", "lacp", "802.1x", "lldp", "last"])
def test_ieee_reserved_group_frames_are_dropped_where_they_arrive(topo, dst):
    for ep in topo.endpoints.values():
        run = run_fabric(topo, offline_ports(topo), ep.name, dst)
        assert run.receivers == [] and run.hops == (), ep.name
        host, _, first = run.runs[0]
        assert first.trace[0].flow.priority == T.PRIO_RESERVED and not first.outputs


def test_the_first_group_address_above_the_reserved_block_floods_as_other_multicast(topo):
    for ep in topo.endpoints.values():
        run = run_fabric(topo, offline_ports(topo), ep.name, "01:80:c2:00:00:10")
        assert run.receivers == sorted(e.name for e in topo.members(ep.network) if e != ep)


def test_reserved_frames_from_a_tunnel_are_dropped_too(topo):
    ports = offline_ports(topo)
    for host in topo.hosts:
        for peer in topo.peers(host):
            for net in topo.networks_on(host):
                packet = Packet(in_port=ports[host][topo.tunnel_port(host, peer.name)],
                                eth_dst="01:80:c2:00:00:0e", tunnel_id=net.key)
                assert inject(topo, ports, host, packet).deliveries == ()


def test_broadcast_crosses_only_tunnels_to_hosts_carrying_the_network():
    topo = three()
    run = run_fabric(topo, offline_ports(topo), "b1", BROADCAST)
    assert run.receivers == ["b3"]
    assert [(h.src, h.dst, h.packet.tunnel_id) for h in run.hops] == [("kvm1", "kvm3", 5000)]
    assert "kvm2" not in {host for host, _, _ in run.runs}


def test_the_flood_group_of_a_network_has_no_tunnel_to_a_host_without_it():
    topo = three()
    ports = offline_ports(topo)
    br = bridge(topo, "kvm1", ports)
    to_kvm2 = ports["kvm1"][topo.tunnel_port("kvm1", "kvm2")]
    all_id, local_id = ids.flood_groups(topo.local_vlan("kvm1", "net30"))
    for g in br.groups:
        if g.group_id in (all_id, local_id):
            assert ("output", to_kvm2) not in [a for b in g.buckets for a in b]


# -- frames from tunnels ------------------------------------------------------

def test_a_frame_from_a_tunnel_is_admitted_only_with_a_key_both_hosts_carry(topo):
    ports = offline_ports(topo)
    keys = {n.key: n.name for n in topo.networks.values()} | {999: None}
    for host in topo.hosts:
        here = {n.name for n in topo.networks_on(host)}
        for peer in topo.peers(host):
            there = {n.name for n in topo.networks_on(peer.name)}
            for key, net in keys.items():
                for dst in [BROADCAST] + [e.mac for e in topo.endpoints.values()]:
                    run = enter(topo, host, topo.tunnel_port(host, peer.name), ports,
                                eth_src=UNKNOWN_MAC, eth_dst=dst, tunnel_id=key)
                    admitted = run.trace[0].flow.goto is not None
                    assert admitted == (net in here and net in there), (host, peer.name, key)
                    if not admitted:
                        assert run.outputs == ()


def test_a_frame_from_a_tunnel_with_a_key_the_peer_lacks_is_dropped():
    topo = three()            # kvm2 does not carry net30 (key 5000)
    run = enter(topo, "kvm1", topo.tunnel_port("kvm1", "kvm2"),
                eth_src=UNKNOWN_MAC, eth_dst=BROADCAST, tunnel_id=5000)
    assert run.outputs == ()
    run = enter(topo, "kvm1", topo.tunnel_port("kvm1", "kvm3"),
                eth_src=UNKNOWN_MAC, eth_dst=BROADCAST, tunnel_id=5000)
    assert [p.vlans for _, p in run.outputs] == [()]


def test_a_frame_from_a_tunnel_is_delivered_to_the_local_endpoint_untagged():
    topo = three()
    ports = offline_ports(topo)
    pkt = Packet(in_port=ports["kvm1"][topo.tunnel_port("kvm1", "kvm3")], eth_src=mac(topo, "b3"),
                 eth_dst=mac(topo, "b1"), tunnel_id=5000)
    run = inject(topo, ports, "kvm1", pkt)
    assert run.receivers == ["b1"]
    assert run.delivered("b1").vlans == ()


def test_a_tunnel_key_on_an_endpoint_port_does_not_make_it_a_tunnel_frame(topo):
    ports = offline_ports(topo)
    for ep in topo.endpoints.values():
        for net in topo.networks.values():
            run = enter(topo, ep.host, ep.port, ports, eth_src=UNKNOWN_MAC,
                        eth_dst=BROADCAST, tunnel_id=net.key)
            assert run.outputs == ()


def test_only_tunnel_ports_are_matched_with_a_tunnel_key(topo):
    ports = offline_ports(topo)
    for host in topo.hosts:
        tunnels = tunnel_ports(topo, host, ports)
        for f in bridge(topo, host, ports).flows:
            if "tunnel_id" in f.match_dict:
                assert f.match_dict["in_port"] in tunnels


def test_a_tagged_frame_from_a_tunnel_is_dropped(topo):
    for host in topo.hosts:
        for peer in topo.peers(host):
            for net in topo.networks_on(host):
                run = enter(topo, host, topo.tunnel_port(host, peer.name), eth_src=UNKNOWN_MAC,
                            eth_dst=BROADCAST, tunnel_id=net.key,
                            vlans=(topo.local_vlan(host, net.name),))
                assert run.outputs == ()


def test_a_frame_from_a_tunnel_is_never_sent_back_into_a_tunnel(topo):
    ports = offline_ports(topo)
    dsts = [BROADCAST, "01:00:5e:00:00:01", UNKNOWN_MAC] + [e.mac for e in topo.endpoints.values()]
    for host in topo.hosts:
        tunnels = tunnel_ports(topo, host, ports)
        for in_port in tunnels:
            for net in topo.networks.values():
                for dst in dsts:
                    run = run_host(*_fg(bridge(topo, host, ports)),
                                   Packet(in_port=in_port, eth_src=UNKNOWN_MAC, eth_dst=dst,
                                          tunnel_id=net.key))
                    assert not [p for p in run.ports if p in tunnels], (host, in_port, net.name, dst)


def _fg(br):
    return br.flows, br.groups


# -- the shape of what is installed -------------------------------------------

def test_every_flow_carries_an_nsgre_cookie(topo):
    for host in topo.hosts:
        for f in bridge(topo, host).flows:
            assert ids.owned_cookie(f.cookie), f.to_ofctl()


def test_every_output_is_an_explicit_port_of_the_bridge_and_every_group_exists(topo):
    ports = offline_ports(topo)
    allowed = {"output", "group", "push_vlan", "pop_vlan", "set_field", "move"}
    for host in topo.hosts:
        br = bridge(topo, host, ports)
        numbers = set(ports[host].values())
        group_ids = {g.group_id for g in br.groups}
        actions = [a for f in br.flows for a in f.actions]
        actions += [a for g in br.groups for b in g.buckets for a in b]
        for a in actions:
            assert a[0] in allowed, a
            if a[0] == "output":                    # never NORMAL, FLOOD, ALL; IN_PORT
                # IN_PORT only to answer ARP, CONTROLLER only for DHCP
                assert a[1] in numbers or a[1] in (OFPP_IN_PORT, OFPP_CONTROLLER), a
                if a[1] == OFPP_IN_PORT:
                    assert all(f.table == T.ARP_RESPONDER.id for f in br.flows if a in f.actions)
                if a[1] == OFPP_CONTROLLER:
                    assert all((f.table, f.priority) == (T.CLASSIFY.id, T.PRIO_DHCP)
                               for f in br.flows if a in f.actions)
            if a[0] == "group":
                assert a[1] in group_ids, a
        assert all(g.type == "all" for g in br.groups)


def test_every_table_ends_in_an_explicit_drop(topo):
    for host in topo.hosts:
        flows = bridge(topo, host).flows
        for table in (T.CLASSIFY, T.TAG, T.FORWARD):
            assert any(f.table == table.id and f.priority == T.PRIO_DROP and f.match == ()
                       and f.actions == () and f.goto is None for f in flows)
        # arp_responder drops every ARP it does not answer and passes the rest on
        assert any(f.table == T.ARP_RESPONDER.id and f.match == (("eth_type", 0x0806),)
                   and f.actions == () and f.goto is None for f in flows)


def _references(br, number):
    refs = [f for f in br.flows if f.match_dict.get("in_port") == number or ("output", number) in f.actions]
    refs += [g for g in br.groups if any(("output", number) in b for b in g.buckets)]
    return refs


def test_no_flow_or_group_refers_to_a_port_that_is_absent(topo):
    full = offline_ports(topo)
    for host, names in full.items():
        for name, number in names.items():
            ports = {n: p for n, p in names.items() if n != name}
            br = pipeline.compute(topo, host, ports)
            assert _references(br, number) == [], (host, name)


def test_a_bridge_without_ports_admits_nothing_and_outputs_nowhere(topo):
    for host in topo.hosts:
        br = pipeline.compute(topo, host, {})
        assert [f for f in br.flows if f.table == T.CLASSIFY.id and f.goto is not None] == []
        assert [a for f in br.flows for a in f.actions
                if a[0] == "output" and a[1] != OFPP_IN_PORT] == []
        assert all(g.buckets == () for g in br.groups)


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_compute_is_deterministic(name):
    topo, again = TOPOLOGIES[name](), TOPOLOGIES[name]()
    ports = offline_ports(topo)
    for host in topo.hosts:
        reversed_ports = dict(reversed(list(ports[host].items())))
        first = pipeline.compute(topo, host, ports[host])
        assert first == pipeline.compute(topo, host, ports[host])
        assert first == pipeline.compute(topo, host, reversed_ports)
        assert first == pipeline.compute(again, host, ports[host])
        assert [f.cookie for f in first.flows] == [f.cookie for f in pipeline.compute(again, host, ports[host]).flows]


def test_flows_are_unambiguous_every_match_has_at_most_one_winner(topo):
    # run_host raises on equal-priority overlaps; drive every kind of frame
    ports = offline_ports(topo)
    for host in topo.hosts:
        br = bridge(topo, host, ports)
        for in_port in ports[host].values():
            for key in [0] + [n.key for n in topo.networks.values()]:
                for src, dst in itertools.product([e.mac for e in topo.endpoints.values()],
                                                  [BROADCAST, UNKNOWN_MAC]):
                    run_host(br.flows, br.groups,
                             Packet(in_port=in_port, eth_src=src, eth_dst=dst, tunnel_id=key))


# -- reconcile.plan -----------------------------------------------------------

def apply_plan(ops, flows, groups):
    """A switch obeying a plan: the state it ends up in."""
    flows = {f.identity(): f for f in flows}
    groups = {g.group_id: g for g in groups}
    for op in ops:
        if op.verb in ("add_group", "mod_group"):
            groups[op.item.group_id] = op.item
        elif op.verb == "del_group":
            del groups[op.item.group_id]
        elif op.verb == "add_flow":
            flows[op.item.identity()] = op.item
        elif op.verb == "del_flow":
            del flows[op.item.identity()]
    return set(flows.values()), set(groups.values())


def _assert_groups_exist_whenever_used(ops, flows, groups):
    """Replay the plan op by op: no installed flow ever points at a missing group."""
    flows = {f.identity(): f for f in flows}
    groups = {g.group_id: g for g in groups}
    for op in ops:
        flows, groups = ({f.identity(): f for f in s} if i == 0 else {g.group_id: g for g in s}
                         for i, s in enumerate(apply_plan([op], flows.values(), groups.values())))
        used = {a[1] for f in flows.values() for a in f.actions if a[0] == "group"}
        assert used <= set(groups), op


def test_planning_the_same_desired_state_twice_yields_an_empty_plan(topo):
    for host in topo.hosts:
        br = bridge(topo, host)
        ops = reconcile.plan((), (), br.flows, br.groups)
        flows, groups = apply_plan(ops, (), ())
        assert (flows, groups) == (set(br.flows), set(br.groups))
        assert reconcile.plan(flows, groups, br.flows, br.groups) == []


def test_a_removed_port_yields_only_deletions_of_its_flows_and_group_bucket_changes(topo):
    full = offline_ports(topo)
    for host, names in full.items():
        before = pipeline.compute(topo, host, names)
        for name, number in names.items():
            after = pipeline.compute(topo, host, {n: p for n, p in names.items() if n != name})
            ops = reconcile.plan(before.flows, before.groups, after.flows, after.groups)
            deleted = {op.item for op in ops if op.verb == "del_flow"}
            assert deleted == {f for f in before.flows if f in _references(before, number)}
            assert deleted, (host, name)
            assert {op.verb for op in ops} <= {"del_flow", "mod_group"}
            assert {op.item.group_id for op in ops if op.verb == "mod_group"} == \
                {g.group_id for g in _references(before, number) if hasattr(g, "group_id")}


def test_groups_are_added_before_the_flows_that_use_them_and_deleted_after(topo):
    for host in topo.hosts:
        br = bridge(topo, host)
        up = reconcile.plan((), (), br.flows, br.groups)
        verbs = [op.verb for op in up]
        assert verbs == sorted(verbs, key=["add_group", "add_flow"].index)
        _assert_groups_exist_whenever_used(up, (), ())
        down = reconcile.plan(br.flows, br.groups, (), ())
        verbs = [op.verb for op in down]
        assert verbs == sorted(verbs, key=["del_flow", "del_group"].index)
        _assert_groups_exist_whenever_used(down, br.flows, br.groups)


def test_moving_between_topologies_keeps_every_used_group_installed():
    old, new = seed(), three()
    for host in ("kvm1", "kvm2"):
        a, b = bridge(old, host), bridge(new, host)
        for src, dst in [(a, b), (b, a)]:
            ops = reconcile.plan(src.flows, src.groups, dst.flows, dst.groups)
            _assert_groups_exist_whenever_used(ops, src.flows, src.groups)
            assert apply_plan(ops, src.flows, src.groups) == (set(dst.flows), set(dst.groups))


def test_local_vlans_above_the_vid_range_never_reach_a_flow():
    topo = three()
    for host in topo.hosts:
        for f in bridge(topo, host).flows:
            vid = f.match_dict.get("vlan_vid")
            if vid:
                assert vid & OFPVID_PRESENT and 1 <= vid & 0xFFF <= 4094


# -- storm control -------------------------------------------------------------------
def storm_flows(br):
    return [f for f in br.flows if f.meter is not None
            and ids.decode_meter(f.meter).kind == ids.METER_STORM]


def storm_meters(br):
    return tuple(m for m in br.meters if ids.decode_meter(m.meter_id).kind == ids.METER_STORM)


def test_every_endpoint_port_floods_through_its_own_meter_at_the_broadcast_limit(topo):
    ports = offline_ports(topo)
    for host in topo.hosts:
        br = bridge(topo, host, ports)
        local = {ports[host][e.port] for e in topo.endpoints_on(host)}
        assert {(m.meter_id, m.rate, m.burst) for m in storm_meters(br)} == \
            {(ids.storm_meter(p), topo.broadcast_limit, topo.broadcast_limit // 10) for p in local}
        metered = storm_flows(br)
        assert {f.match_dict["in_port"] for f in metered} == local
        for f in metered:
            assert f.table == T.FORWARD.id and f.priority == T.PRIO_STORM
            assert f.meter == ids.storm_meter(f.match_dict["in_port"])
            assert f.match_dict["eth_dst"] == pipeline.MULTICAST
            (kind, gid), = f.actions
            assert kind == "group" and gid == ids.flood_groups(f.match_dict["vlan_vid"] & 0xFFF)[0]


def test_a_metered_broadcast_still_reaches_exactly_the_other_endpoints_of_its_network():
    topo = three()
    run = run_fabric(topo, offline_ports(topo), "a1", eth_dst=BROADCAST)
    assert sorted(run.receivers) == ["a1b", "a2", "a3"]
    first_host, _, first_run = run.runs[0]
    metered = [step.flow.meter for step in first_run.trace if step.flow and step.flow.meter]
    ports = offline_ports(topo)
    assert first_host == "kvm1" and metered == [ids.storm_meter(ports["kvm1"][topo.endpoint("a1").port])]


def test_without_a_broadcast_limit_there_is_no_meter_and_floods_go_as_before():
    off = topology.parse("broadcast_limit: 0\n" + THREE, "t.yaml")
    on = three()
    ports = offline_ports(on)
    for host in on.hosts:
        br_off, br_on = bridge(off, host, ports), bridge(on, host, ports)
        assert storm_meters(br_off) == () and storm_flows(br_off) == []
        assert set(br_off.meters) == set(br_on.meters) - set(storm_meters(br_on))
        assert set(br_off.flows) == set(br_on.flows) - set(storm_flows(br_on))
        assert br_off.groups == br_on.groups


def test_a_trunk_port_has_one_meter_for_all_its_networks():
    from test_trunks import TRUNKS
    topo = topology.parse(TRUNKS, "t.yaml")
    ports = offline_ports(topo)
    br = bridge(topo, "kvm1", ports)
    router = ports["kvm1"][topo.endpoint("router").port]
    assert [m.meter_id for m in br.meters].count(ids.storm_meter(router)) == 1
    assert len([f for f in storm_flows(br) if f.match_dict["in_port"] == router]) == 2


def test_meters_are_added_before_the_flows_that_use_them_and_deleted_after(topo):
    ports = offline_ports(topo)
    host = sorted(topo.hosts)[0]
    want = bridge(topo, host, ports)
    verbs = [op.verb for op in reconcile.plan((), (), want.flows, want.groups, (), want.meters)]
    assert verbs.index("add_flow") > max(i for i, v in enumerate(verbs) if v == "add_meter")
    gone = reconcile.plan(want.flows, want.groups, (), (), want.meters, ())
    verbs = [op.verb for op in gone]
    assert min(i for i, v in enumerate(verbs) if v == "del_meter") > \
        max(i for i, v in enumerate(verbs) if v == "del_flow")


def test_a_changed_broadcast_limit_modifies_the_meters_and_no_flow():
    old, new = three(), topology.parse("broadcast_limit: 250\n" + THREE, "t.yaml")
    ports = offline_ports(old)
    held = reconcile.Held()
    held.resync(old, "kvm1", ports["kvm1"])
    ops = held.update(new, "kvm1", ports["kvm1"], set())
    assert ops and {op.verb for op in ops} == {"mod_meter"}
    assert {m.rate for m in held.meters.values()
            if ids.decode_meter(m.meter_id).kind == ids.METER_STORM} == {250}
