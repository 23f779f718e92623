"""DHCP in the pipeline ("Real VMs"): an endpoint's DHCP requests go to the
controller, through its port's DHCP meter, and nowhere else; every other
DHCP frame is dropped where it arrives, so DHCP is never flooded, forwarded
nor tunnelled.  Specified on the flows, the meters, the simulator and the
trace, and on the way to the switch and back (wire, os-ken replies)."""

import types

import pytest

import topology
from nsgre_core import ids, pipeline, reconcile
from nsgre_core import tables as T
from nsgre_core.flows import Flow, Meter, action_ofctl, to_controller
from nsgre_core.ofp import OFPCML_NO_BUFFER, OFPP_CONTROLLER, OFPVID_PRESENT
from nsgre_core.pipeline import offline_ports
from nsgre_core.reconcile import Op, Verb
from nsgre_tools import simulator as sim
from nsgre_tools import trace
from nsgre_tools.simulator import BROADCAST, Packet, dhcp_reply, dhcp_request, inject
from topology import diff
from topology.model import DHCP_BURST, DHCP_RATE

from test_pipeline import THREE
from test_trunks import TRUNKS

#: net10 with DHCP, net20 without; an IPv6 endpoint; a trunk in both.
MIXED = """\
broadcast_limit: 0
hosts:
  kvm1: {underlay_ip: 198.18.0.1}
  kvm2: {underlay_ip: 198.18.0.2}
networks:
  net10: {key: 10, router: gw}
  net20: {key: 20, dhcp: false}
  net6: {key: 6}
endpoints:
  a:  {host: kvm1, kind: vm, network: net10, ip: 10.1.1.1/24}
  b:  {host: kvm2, kind: vm, network: net10, ip: 10.1.1.2/24}
  gw: {host: kvm2, kind: vm, network: net10, ip: 10.1.1.254/24}
  s:  {host: kvm1, kind: vm, network: net20, ip: 10.1.2.1/24}
  t:  {host: kvm2, kind: vm, network: net20, ip: 10.1.2.2/24}
  v6: {host: kvm1, kind: vm, network: net6, ip: "2001:db8::1/64"}
  w6: {host: kvm2, kind: vm, network: net6, ip: "2001:db8::2/64"}
  tr: {host: kvm1, kind: vm, vlans: {100: {network: net10, ip: 10.1.1.100/24},
                                     200: {network: net20, ip: 10.1.2.100/24}}}
"""

FABRICS = {"seed": None, "three": THREE, "trunks": TRUNKS, "mixed": MIXED}


def parse(name):
    return topology.load() if FABRICS[name] is None else topology.parse(FABRICS[name], "t.yaml")


@pytest.fixture(params=sorted(FABRICS))
def topo(request):
    return parse(request.param)


def dhcp_flows(br):
    return [f for f in br.flows if f.table == T.CLASSIFY.id and f.priority == T.PRIO_DHCP]


def send(topo, ports, name, vlans=(), **fields):
    """A frame from endpoint ``name``'s port, from its MAC unless told."""
    ep = topo.endpoint(name)
    fields.setdefault("eth_src", ep.mac)
    fields.setdefault("eth_dst", BROADCAST)
    packet = Packet(in_port=ports[ep.host][ep.port], vlans=vlans, **fields)
    return inject(topo, ports, ep.host, packet)


def attachments_with_dhcp(topo, host):
    return {(e.name, a.vlan) for e in topo.endpoints_on(host) for a in e.attachments
            if a.ip.version == 4 and topo.network(a.network).dhcp}


# -- the flows ---------------------------------------------------------------------

def test_every_ipv4_attachment_with_dhcp_on_sends_its_requests_to_the_controller(topo):
    ports = offline_ports(topo)
    for host in topo.hosts:
        br = pipeline.compute(topo, host, ports[host])
        seen = set()
        for f in dhcp_flows(br):
            m = f.match_dict
            ep = next(e for e in topo.endpoints_on(host) if ports[host][e.port] == m["in_port"])
            vid = m["vlan_vid"]
            guest = vid & 0xFFF if vid else None
            assert vid == 0 or vid & OFPVID_PRESENT
            assert m == {"in_port": ports[host][ep.port], "vlan_vid": vid, "eth_src": ep.mac,
                         "eth_type": 0x0800, "ip_proto": 17, "udp_src": 68, "udp_dst": 67}
            assert f.actions == (("output", OFPP_CONTROLLER),) == (to_controller(),)
            assert f.meter == ids.dhcp_meter(m["in_port"])
            assert f.cookie == ids.endpoint_cookie(ep.name)
            assert f.goto is None and f.write_metadata is None
            seen.add((ep.name, guest))
        assert seen == attachments_with_dhcp(topo, host)


def test_a_trunk_gets_one_dhcp_flow_per_guest_vlan_all_through_its_ports_meter():
    topo = topology.parse(TRUNKS, "t.yaml")
    ports = offline_ports(topo)
    router = ports["kvm1"][topo.endpoint("router").port]
    flows = [f for f in dhcp_flows(pipeline.compute(topo, "kvm1", ports["kvm1"]))
             if f.match_dict["in_port"] == router]
    assert sorted(f.match_dict["vlan_vid"] for f in flows) == \
        [OFPVID_PRESENT | 10, OFPVID_PRESENT | 100]
    assert {f.meter for f in flows} == {ids.dhcp_meter(router)}


def test_dhcp_false_an_ipv6_address_or_an_absent_port_gives_no_dhcp_flow():
    topo = parse("mixed")
    ports = offline_ports(topo)
    br = pipeline.compute(topo, "kvm1", ports["kvm1"])
    by_port = {f.match_dict["in_port"]: f for f in dhcp_flows(br)}
    port = {e.name: ports["kvm1"][e.port] for e in topo.endpoints_on("kvm1")}
    assert port["s"] not in by_port and port["v6"] not in by_port
    assert by_port[port["tr"]].match_dict["vlan_vid"] == OFPVID_PRESENT | 100   # not 200
    gone = {n: p for n, p in ports["kvm1"].items() if n != topo.endpoint("a").port}
    assert port["a"] not in {f.match_dict["in_port"]
                             for f in dhcp_flows(pipeline.compute(topo, "kvm1", gone))}


def test_the_dhcp_guards_are_base_flows_around_the_dhcp_priority():
    base = {(f.table, f.priority): f for f in pipeline.base_flows()}
    guard = base[T.CLASSIFY.id, T.PRIO_DHCP_GUARD]
    drop = base[T.CLASSIFY.id, T.PRIO_DHCP_DROP]
    assert guard.match_dict == {"eth_type": 0x0800, "ip_proto": 17, "udp_src": 67}
    assert drop.match_dict == {"eth_type": 0x0800, "ip_proto": 17, "udp_dst": 67}
    assert guard.actions == drop.actions == () and guard.goto is drop.goto is None
    assert guard.cookie == drop.cookie == ids.BASE_COOKIE
    assert T.PRIO_RESERVED > T.PRIO_DHCP_GUARD > T.PRIO_DHCP > T.PRIO_DHCP_DROP > T.PRIO_ADMIT


def test_dhcp_flows_are_distinct_flows_to_reconcile(topo):
    """Their identity (table, priority, match) is nobody else's, and a
    plan from nothing to the pipeline and back is exact."""
    ports = offline_ports(topo)
    for host in topo.hosts:
        want = pipeline.compute(topo, host, ports[host])
        assert len({f.identity() for f in want.flows}) == len(want.flows)
        held = reconcile.Held()
        held.resync(topo, host, ports[host])
        assert held.resync(topo, host, ports[host]) == []
        assert set(held.flows.values()) >= set(dhcp_flows(want))


def test_every_flow_still_obeys_its_tables_contract(topo):
    ports = offline_ports(topo)
    for host in topo.hosts:
        for flow in pipeline.compute(topo, host, ports[host]).flows:
            T.check(flow)


@pytest.mark.parametrize("flow,why", [
    (Flow.make(T.CLASSIFY.id, 130, {"in_port": 1}, (("output", 2),)),
     "may not use action output to port 2"),
    (Flow.make(T.CLASSIFY.id, 130, {"in_port": 1}, (to_controller(),),
               meter=ids.storm_meter(1)), r"may not use meter 65537 \(storm\)"),
    (Flow.make(T.FORWARD.id, 60, {"in_port": 1}, (("group", 1),), meter=ids.dhcp_meter(1)),
     r"may not use meter 131073 \(dhcp\)"),
    (Flow.make(T.CLASSIFY.id, 130, {"in_port": 2}, (to_controller(),), meter=ids.dhcp_meter(1)),
     "serves port 1, not in_port 2"),
    (Flow.make(T.CLASSIFY.id, 130, {"in_port": 1}, (("output", OFPP_CONTROLLER, 128),)),
     "whole frame"),
    (Flow.make(T.FORWARD.id, 100, {}, (to_controller(),)), "reserved port"),
    (Flow.make(T.CLASSIFY.id, 130, {"eth_type": 0x0800, "udp_dst": 67}), "ip_proto=17"),
    (Flow.make(T.CLASSIFY.id, 130, {"ip_proto": 17, "udp_src": 68}), "eth_type=0x800"),
])
def test_a_dhcp_flow_outside_the_contract_is_refused(flow, why):
    with pytest.raises(T.PipelineError, match=why):
        T.check(flow)


# -- the meters --------------------------------------------------------------------

def test_meter_ids_of_the_two_kinds_never_overlap_and_decode_to_kind_and_port():
    assert ids.decode_meter(ids.storm_meter(7)) == ids.MeterId("storm", 7)
    assert ids.decode_meter(ids.dhcp_meter(7)) == ids.MeterId("dhcp", 7)
    assert ids.METER_DHCP_BASE > ids.METER_STORM_MAX
    assert ids.METER_DHCP_MAX < 2 ** 18          # the userspace datapath's limit
    for meter_id in (0, 1, ids.METER_STORM_BASE, ids.METER_STORM_MAX + 1,
                     ids.METER_DHCP_BASE, ids.METER_DHCP_MAX + 1, 0xFFFFFFFF):
        assert ids.decode_meter(meter_id) is None and not ids.owned_meter(meter_id)
    for port in (1, 0xFEFF):
        assert ids.owned_meter(ids.storm_meter(port)) and ids.owned_meter(ids.dhcp_meter(port))


def test_each_port_with_dhcp_has_one_dhcp_meter_even_without_a_broadcast_limit(topo):
    ports = offline_ports(topo)
    for host in topo.hosts:
        br = pipeline.compute(topo, host, ports[host])
        dhcp = {m for m in br.meters if ids.decode_meter(m.meter_id).kind == "dhcp"}
        want = {ports[host][topo.endpoint(name).port]
                for name, _ in attachments_with_dhcp(topo, host)}
        assert dhcp == {Meter(ids.dhcp_meter(p), DHCP_RATE, DHCP_BURST) for p in want}
        assert {f.meter for f in dhcp_flows(br)} == {m.meter_id for m in dhcp}
        assert list(br.meters) == sorted(br.meters)
        assert len({m.meter_id for m in br.meters}) == len(br.meters)
    assert (DHCP_RATE, DHCP_BURST) == (20, 20)


def test_with_broadcast_limit_0_only_dhcp_meters_remain():
    topo = parse("mixed")
    assert topo.broadcast_limit == 0
    ports = offline_ports(topo)
    meters = pipeline.meters(topo, "kvm1", ports["kvm1"])
    port = {e.name: ports["kvm1"][e.port] for e in topo.endpoints_on("kvm1")}
    assert [m.meter_id for m in meters] == sorted(ids.dhcp_meter(port[n]) for n in ("a", "tr"))


def test_turning_dhcp_off_removes_the_flows_and_the_meter_and_nothing_else():
    on = topology.parse(THREE, "t.yaml")
    off = topology.parse(THREE.replace("net10: {key: 10}", "net10: {key: 10, dhcp: false}"),
                         "t.yaml", previous=on)
    assert diff.changed_networks(on, off) == {"net10"}
    ports = offline_ports(on)
    held, cache = reconcile.Held(), {}
    held.resync(on, "kvm1", ports["kvm1"], cache)
    ops = held.update(off, "kvm1", ports["kvm1"], {"net10"}, cache)
    removed = {op.item for op in ops if op.verb == Verb.DEL_FLOW}
    assert removed == set(dhcp_flows(pipeline.compute(on, "kvm1", ports["kvm1"]))) - \
        set(dhcp_flows(pipeline.compute(off, "kvm1", ports["kvm1"])))
    assert removed and {op.verb for op in ops} == {Verb.DEL_FLOW, Verb.DEL_METER}
    assert [op.item.meter_id for op in ops if op.verb == Verb.DEL_METER] == \
        sorted(ids.dhcp_meter(ports["kvm1"][on.endpoint(n).port]) for n in ("a1", "a1b"))
    fresh = reconcile.Held()
    fresh.resync(off, "kvm1", ports["kvm1"])
    assert held.flows == fresh.flows and held.meters == fresh.meters


def test_a_port_coming_and_going_still_touches_only_its_networks():
    topo = parse("mixed")
    assert pipeline.networks_using_port(topo, "kvm1", topo.endpoint("tr").port) == \
        {"net10", "net20"}
    assert pipeline.networks_using_port(topo, "kvm1", topo.endpoint("a").port) == {"net10"}


# -- where DHCP goes: the simulator ----------------------------------------------------

def test_a_discover_reaches_only_the_controller_of_its_own_host(topo):
    ports = offline_ports(topo)
    for host in topo.hosts:
        for name, guest in attachments_with_dhcp(topo, host):
            vlans = (guest,) if guest else ()
            run = send(topo, ports, name, vlans, **dhcp_request())
            assert run.receivers == [] and run.hops == (), (name, guest)
            (up,) = run.controller
            port = ports[host][topo.endpoint(name).port]
            assert (up.host, up.meter) == (host, ids.dhcp_meter(port))
            assert up.packet.vlans == vlans and up.packet.in_port == port   # as it arrived
            # a renewal, unicast from its own address to the server, likewise
            ep = topo.endpoint(name)
            own = str(next(a for a in ep.attachments if a.vlan == guest).ip.ip)
            run = send(topo, ports, name, vlans, **dhcp_request(ipv4_src=own,
                                                                ipv4_dst="10.255.255.254"),
                       eth_dst="02:00:00:00:00:fe")
            assert run.receivers == [] and run.hops == () and len(run.controller) == 1


def test_a_discover_from_a_foreign_mac_is_dropped_in_classify(topo):
    ports = offline_ports(topo)
    for ep in topo.endpoints.values():
        for att in ep.attachments:
            vlans = (att.vlan,) if att.vlan else ()
            run = send(topo, ports, ep.name, vlans, eth_src="02:00:00:00:00:99", **dhcp_request())
            assert run.receivers == [] and run.hops == () and run.controller == ()
            (_, _, res), = run.runs
            assert res.trace[-1].table == T.CLASSIFY.id
            assert res.trace[-1].flow.priority == T.PRIO_DHCP_DROP


def test_a_guests_dhcp_offer_is_dropped_in_classify(topo):
    ports = offline_ports(topo)
    for ep in topo.endpoints.values():
        for att in ep.attachments:
            if att.ip.version != 4:
                continue
            vlans = (att.vlan,) if att.vlan else ()
            for dst in (BROADCAST, *(o.mac for o in topo.members(att.network))):
                run = send(topo, ports, ep.name, vlans, eth_dst=dst,
                           **dhcp_reply(str(att.ip.ip)))
                assert run.receivers == [] and run.hops == () and run.controller == ()
                (_, _, res), = run.runs
                assert res.trace[-1].flow.priority == T.PRIO_DHCP_GUARD
            # ... and a server talking to a server (a relay, 67 -> 67) too
            run = send(topo, ports, ep.name, vlans, **dhcp_reply(str(att.ip.ip), udp_dst=67))
            assert run.receivers == [] and run.controller == ()


def test_dhcp_arriving_from_a_tunnel_with_a_valid_key_reaches_no_local_port(topo):
    """A peer's guests' DHCP is answered by their own host: whatever comes
    through a tunnel as DHCP (a request to 67, a reply from 67) is dropped."""
    ports = offline_ports(topo)
    for host in topo.hosts:
        for peer in topo.peers(host):
            tunnel = ports[host].get(topo.tunnel_port(host, peer.name))
            for net in topo.networks_on(host):
                if not topo.carries(peer.name, net.name):
                    continue
                local = [e for e in topo.members(net.name) if e.host == host]
                for dst in (BROADCAST, *(e.mac for e in local)):
                    for fields in (dhcp_request(), dhcp_reply("10.1.1.1"),
                                   dhcp_request(ipv4_src="10.1.1.1", udp_src=5000)):
                        packet = Packet(in_port=tunnel, tunnel_id=net.key, eth_src="02:00:00:00:00:aa",
                                        eth_dst=dst, **fields)
                        run = inject(topo, ports, host, packet)
                        assert run.deliveries == () and run.hops == () and run.controller == ()
                # the same key still carries ordinary traffic
                if local:
                    packet = Packet(in_port=tunnel, tunnel_id=net.key, eth_dst=local[0].mac,
                                    eth_type=0x0800, ip_proto=17, udp_src=5000, udp_dst=68)
                    assert [d.endpoint for d in inject(topo, ports, host, packet).deliveries] \
                        == [local[0].name]


def test_no_dhcp_frame_ever_leaves_through_a_port(topo):
    """Whatever an endpoint sends as DHCP, from its own MAC and address or
    not, to anyone: no copy is delivered or tunnelled."""
    ports = offline_ports(topo)
    for ep in topo.endpoints.values():
        for att in ep.attachments:
            vlans = (att.vlan,) if att.vlan else ()
            own = str(att.ip.ip) if att.ip.version == 4 else "10.9.9.9"
            for dst in (BROADCAST, *(o.mac for o in topo.endpoints.values())):
                for fields in (dhcp_request(), dhcp_request(ipv4_src=own),
                               dhcp_request(ipv4_src=own, udp_src=5000),
                               dhcp_reply(own), dhcp_reply(own, udp_dst=5000)):
                    run = send(topo, ports, ep.name, vlans, eth_dst=dst, **fields)
                    assert run.deliveries == () and run.hops == (), (ep.name, dst, fields)


def test_with_dhcp_false_a_discover_goes_nowhere_and_ordinary_udp_still_flows():
    topo = parse("mixed")
    ports = offline_ports(topo)
    for name, vlans in (("s", ()), ("tr", (200,))):
        run = send(topo, ports, name, vlans, **dhcp_request())
        assert run.receivers == [] and run.hops == () and run.controller == ()
        (_, _, res), = run.runs
        assert res.trace[-1].table == T.CLASSIFY.id and not res.trace[-1].flow.actions
    # UDP from port 68 to anything but 67 is not DHCP: admitted as ever
    run = send(topo, ports, "s", eth_type=0x0800, ip_proto=17, ipv4_src="10.1.2.1",
               udp_src=68, udp_dst=5000)
    assert run.receivers == ["t", "tr"]


def test_ordinary_broadcast_udp_still_floods_its_network():
    topo = topology.parse(THREE, "t.yaml")
    run = send(topo, offline_ports(topo), "a1", eth_type=0x0800, ip_proto=17,
               ipv4_src="10.1.1.1", udp_src=5353, udp_dst=5353)
    assert run.receivers == ["a1b", "a2", "a3"] and run.controller == ()


def test_the_simulator_refuses_output_to_the_controller_from_a_group():
    group = sim.Group(1, ((to_controller(),),))
    flows = [Flow.make(0, 1, {}, (("group", 1),))]
    with pytest.raises(sim.SimulationError, match="from a group"):
        sim.run_host(flows, [group], Packet(in_port=1))


# -- the trace ---------------------------------------------------------------------------

def test_trace_dhcp_ends_at_the_controller():
    topo = topology.load()
    t = trace.trace(topo, "vm1", "blue", "dhcp")
    port = offline_ports(topo)["kvm1"]["p-vm1"]
    assert t.verdict == (f"to the controller: kvm1 sent it up as a packet-in through meter "
                         f"{ids.dhcp_meter(port)} (DHCP rate limit of p-vm1 (endpoint vm1))")
    assert t.to_controller == ["kvm1"] and t.delivered_to == [] and not t.leak
    assert t.expected is False
    assert t.packet["udp_src"] == 68 and t.packet["udp_dst"] == 67
    assert t.packet["ipv4_src"] == "0.0.0.0"
    assert t.hops[0].outputs[0].kind == "controller"
    assert "-> to the controller (packet-in)" in t.text()
    assert t.to_dict()["verdict"]["to_controller"] == ["kvm1"]
    assert "CONTROLLER:65535" in t.hops[0].steps[0].actions


def test_trace_says_why_dhcp_is_dropped():
    topo = parse("mixed")
    t = trace.trace(topo, "s", "t", "dhcp")
    assert t.verdict == "dropped at kvm1 table 0 (classify): DHCP is off in net20 " \
                        "(dhcp: false): nobody answers it"
    t = trace.trace(topo, "tr", "t", "dhcp", vlan=100)
    assert t.verdict.startswith("to the controller: kvm1")
    t = trace.trace(topo, "a", "b", "udp:67")
    assert t.verdict.startswith("dropped at kvm1 table 0 (classify): UDP to port 67")
    assert not t.leak and "DHCP (UDP to port 67) only reaches the controller" in t.text()


# -- to the switch and back ----------------------------------------------------------------

def test_the_controller_output_reads_as_ovs_ofctl_prints_it():
    assert action_ofctl(to_controller()) == f"CONTROLLER:{OFPCML_NO_BUFFER}" == "CONTROLLER:65535"
    assert action_ofctl(("output", OFPP_CONTROLLER, 128)) == "CONTROLLER:128"


def test_a_dhcp_flow_and_meter_come_back_from_the_wire_unchanged():
    from osken_apps import wire
    topo = topology.load()
    ports = offline_ports(topo)
    want = pipeline.compute(topo, "kvm1", ports["kvm1"])
    flow = dhcp_flows(want)[0]
    data = wire.message(Op(Verb.ADD_FLOW, flow), 1)
    # OFPAT_OUTPUT, length 16, port CONTROLLER, max_len OFPCML_NO_BUFFER: the whole frame
    assert wire.action(to_controller()).hex() == "00000010fffffffdffff000000000000"
    assert wire.action(to_controller()) in data
    back = wire.decode(data)[0].op.item
    assert back == flow and back.cookie == flow.cookie and back.actions == flow.actions
    meter = next(m for m in want.meters if m.meter_id == flow.meter)
    assert wire.decode(wire.message(Op(Verb.ADD_METER, meter), 1))[0].op.item == meter


def test_a_controller_output_that_truncates_reads_as_a_different_flow_and_is_repaired():
    from osken_apps import openflow, wire
    from os_ken.ofproto import ofproto_v1_3 as ofp, ofproto_v1_3_parser as parser
    topo = topology.load()
    want = pipeline.compute(topo, "kvm1", offline_ports(topo)["kvm1"])
    flow = dhcp_flows(want)[0]
    # os-ken's reply objects, as a switch reports the flow
    whole = parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)
    cut = parser.OFPActionOutput(ofp.OFPP_CONTROLLER, 128)
    assert openflow.actions_from([whole]) == flow.actions
    assert openflow.actions_from([cut]) == (("output", OFPP_CONTROLLER, 128),)
    stats = types.SimpleNamespace(
        table_id=flow.table, priority=flow.priority, cookie=flow.cookie,
        match=parser.OFPMatch(**flow.match_dict),
        instructions=[parser.OFPInstructionMeter(flow.meter),
                      parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [cut])])
    installed = openflow.flow_from_stats(stats)
    assert installed.identity() == flow.identity() and installed.actions != flow.actions
    assert reconcile.plan([installed], [], [flow], []) == [Op(Verb.ADD_FLOW, flow)]
    # the wire's own decoder reads a truncating output the same way
    raw = wire.action(("output", OFPP_CONTROLLER, 128))
    assert wire._actions(raw) == (("output", OFPP_CONTROLLER, 128),)
