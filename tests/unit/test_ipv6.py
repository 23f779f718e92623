"""IPv6 as safe as IPv4, as specifications run on the simulator (who
receives what): an endpoint sends only from its own address and its own
link-local address; neighbour discovery only as its own (solicitations with
its MAC, DAD of its own addresses, advertisements of its own addresses with
its MAC); router advertisements and redirects only from the network's
router; a solicitation for a known address is answered on the asking host
and never crosses a tunnel; networks reusing the same addresses stay apart.
"""

import ipaddress
import itertools

import pytest

import topology
from nsgre_core import pipeline
from nsgre_core import tables as T
from nsgre_core.flows import Flow
from nsgre_core.pipeline import (NA_OVERRIDE, NA_ROUTER, NA_SOLICITED, offline_ports,
                                 solicited_node)
from nsgre_tools.simulator import (BROADCAST, ZERO_MAC, Packet, SimulationError, inject,
                                   neighbour_advertisement, neighbour_solicitation, run_host)
from topology.model import eui64_link_local

#: Two hosts; netA and netB reuse the same addresses.  ``a3`` declares its
#: link-local address, ``ra`` is netA's router; netB has none.
V6 = """\
hosts:
  h1: {underlay_ip: 198.18.0.1}
  h2: {underlay_ip: 198.18.0.2}
networks:
  netA: {key: 100, router: ra}
  netB: {key: 70000}
endpoints:
  a1: {host: h1, kind: vm, network: netA, ip: "2001:db8::1/64"}
  a2: {host: h2, kind: vm, network: netA, ip: "2001:db8::2/64"}
  a3: {host: h1, kind: namespace, network: netA, ip: "2001:db8::3/64", link_local: "fe80::a3"}
  ra: {host: h2, kind: vm, network: netA, ip: "2001:db8::fe/64"}
  b1: {host: h1, kind: vm, network: netB, ip: "2001:db8::1/64"}
  b2: {host: h2, kind: namespace, network: netB, ip: "2001:db8::2/64"}
"""

ALL_NODES = "ff02::1"
ALL_NODES_MAC = "33:33:00:00:00:01"


@pytest.fixture(scope="module")
def topo():
    return topology.parse(V6, "v6.yaml")


@pytest.fixture(scope="module")
def ports(topo):
    return offline_ports(topo)


def ip(topo, name):
    return str(topo.endpoint(name).ip.ip)


def lla(topo, name):
    return str(topo.endpoint(name).ipv6_link_local)


def nd_mac(address):
    """The multicast MAC of a solicited-node group (33:33 + low 32 bits)."""
    low = int(ipaddress.IPv6Address(address)) & 0xFFFFFFFF
    return "33:33:" + ":".join(f"{(low >> s) & 0xFF:02x}" for s in (24, 16, 8, 0))


def send(topo, ports, src, eth_dst=BROADCAST, eth_src=None, **fields):
    ep = topo.endpoint(src)
    packet = Packet(in_port=ports[ep.host][ep.port], eth_src=eth_src or ep.mac,
                    eth_dst=eth_dst, **fields)
    return inject(topo, ports, ep.host, packet)


def ns(topo, ports, src, target, *, sll="own", src_ip=None, **kw):
    """A solicitation for ``target`` from ``src`` (its address, its MAC as
    source link-layer address unless told otherwise), to the target's
    solicited-node group."""
    ep = topo.endpoint(src)
    sll = ep.mac if sll == "own" else sll
    fields = neighbour_solicitation(target, src_ip or ip(topo, src), sll, **kw)
    return send(topo, ports, src, eth_dst=nd_mac(fields["ipv6_dst"]), **fields)


def na(topo, ports, src, target, *, tll="own", src_ip=None, **kw):
    """An unsolicited advertisement of ``target`` from ``src`` to all nodes
    (ff02::1), overriding caches: what the reported attack sent."""
    ep = topo.endpoint(src)
    tll = ep.mac if tll == "own" else tll
    fields = neighbour_advertisement(target, src_ip or ip(topo, src), tll, **kw)
    return send(topo, ports, src, eth_dst=ALL_NODES_MAC, **fields)


def icmp6(topo, ports, src, kind, *, src_ip=None, dst=ALL_NODES, eth_dst=ALL_NODES_MAC):
    return send(topo, ports, src, eth_dst=eth_dst, eth_type=0x86DD, ip_proto=58,
                icmpv6_type=kind, ipv6_src=src_ip or lla(topo, src), ipv6_dst=dst)


def others_in(topo, network, but):
    return sorted(e.name for e in topo.members(network) if e.name != but)


# -- sources -------------------------------------------------------------------

def test_the_default_link_local_address_is_the_eui64_of_the_mac():
    assert str(eui64_link_local("52:54:00:12:34:56")) == "fe80::5054:ff:fe12:3456"
    assert str(eui64_link_local("02:00:00:00:00:01")) == "fe80::ff:fe00:1"


def test_an_endpoint_sends_from_its_address_and_its_own_link_local_address(topo, ports):
    for src, dst in (("a1", "a2"), ("a2", "a1"), ("b1", "b2"), ("a3", "a1")):
        for source in (ip(topo, src), lla(topo, src)):
            run = send(topo, ports, src, topo.endpoint(dst).mac, eth_type=0x86DD, ip_proto=58,
                       icmpv6_type=128, ipv6_src=source, ipv6_dst=ip(topo, dst))
            assert run.receivers == [dst], (src, source)


def test_any_other_link_local_source_is_dropped(topo, ports):
    a3_eui64 = str(eui64_link_local(topo.endpoint("a3").mac))
    for src, forged in (("a1", "fe80::1"), ("a1", lla(topo, "a2")), ("a1", lla(topo, "b1")),
                        ("a1", "fe80::ffff:ffff:ffff:ffff"), ("a3", a3_eui64), ("b1", "::"),
                        ("a1", "2001:db8::2"), ("a1", "2001:db8::99")):
        for dst_mac in (topo.endpoint("a2").mac, BROADCAST, ALL_NODES_MAC):
            run = send(topo, ports, src, dst_mac, eth_type=0x86DD, ip_proto=58, icmpv6_type=128,
                       ipv6_src=forged, ipv6_dst="ff02::1")
            assert run.receivers == [] and run.hops == (), (src, forged, dst_mac)


def test_mld_and_router_solicitations_from_the_own_link_local_address_pass_as_before(
        topo, ports):
    for kind in (133, 143):
        run = icmp6(topo, ports, "a1", kind)
        assert run.receivers == others_in(topo, "netA", "a1"), kind


# -- neighbour solicitations ---------------------------------------------------

@pytest.mark.parametrize("asker,target", [("a1", "a2"), ("a2", "a1"), ("a1", "a3"),
                                          ("b1", "b2"), ("b2", "b1"), ("a2", "ra")])
@pytest.mark.parametrize("which", ["address", "link_local"])
@pytest.mark.parametrize("from_lla", [False, True])
def test_a_solicitation_for_a_known_address_is_answered_on_the_asking_host(
        topo, ports, asker, target, which, from_lla):
    wanted = ip(topo, target) if which == "address" else lla(topo, target)
    source = lla(topo, asker) if from_lla else ip(topo, asker)
    run = ns(topo, ports, asker, wanted, src_ip=source)
    assert run.hops == (), "a solicitation for a known address never crosses a tunnel"
    assert run.receivers == [asker]
    reply = run.delivered(asker)
    t, a = topo.endpoint(target), topo.endpoint(asker)
    assert (reply.eth_src, reply.eth_dst) == (t.mac, a.mac)
    assert (reply.ipv6_src, reply.ipv6_dst) == (wanted, source)
    assert (reply.icmpv6_type, reply.ipv6_nd_target) == (136, wanted)
    assert (reply.nd_options_type, reply.ipv6_nd_tll) == (2, t.mac)
    flags = NA_SOLICITED | NA_OVERRIDE | (NA_ROUTER if target == "ra" else 0)
    assert reply.nd_reserved == flags


def test_networks_reusing_addresses_each_answer_with_their_own_endpoint(topo, ports):
    assert ns(topo, ports, "a1", "2001:db8::2").delivered("a1").ipv6_nd_tll == \
        topo.endpoint("a2").mac
    assert ns(topo, ports, "b1", "2001:db8::2").delivered("b1").ipv6_nd_tll == \
        topo.endpoint("b2").mac
    # ra's address exists only in netA: b1 gets no answer from netA
    run = ns(topo, ports, "b1", "2001:db8::fe")
    assert "a1" not in run.receivers and not any(r.startswith("a") or r == "ra"
                                                 for r in run.receivers)


def test_a_solicitation_for_an_unknown_address_floods_its_network_only(topo, ports):
    for asker, network in (("a1", "netA"), ("b1", "netB")):
        run = ns(topo, ports, asker, "2001:db8::99")
        assert run.receivers == others_in(topo, network, asker)


@pytest.mark.parametrize("sll", ["victim", "b1", "unknown", "none"])
def test_a_solicitation_without_the_senders_own_mac_as_source_link_layer_address_is_dropped(
        topo, ports, sll):
    forged = {"victim": topo.endpoint("a2").mac, "b1": topo.endpoint("b1").mac,
              "unknown": "02:99:99:99:99:99", "none": None}[sll]
    for target in ("2001:db8::2", "2001:db8::99"):
        for source in (ip(topo, "a1"), lla(topo, "a1")):
            run = ns(topo, ports, "a1", target, sll=forged, src_ip=source)
            assert run.receivers == [] and run.hops == (), (target, source)


def test_a_solicitation_from_a_forged_source_is_dropped(topo, ports):
    for source in ("2001:db8::2", lla(topo, "a2"), "fe80::1", "2001:db8::99"):
        run = ns(topo, ports, "a1", "2001:db8::2", src_ip=source)
        assert run.receivers == [] and run.hops == ()


# -- duplicate address detection -----------------------------------------------

@pytest.mark.parametrize("who,network", [("a1", "netA"), ("a3", "netA"), ("b2", "netB")])
def test_duplicate_address_detection_of_own_addresses_floods_unanswered(
        topo, ports, who, network):
    for address in (ip(topo, who), lla(topo, who)):
        run = ns(topo, ports, who, address, sll=None, src_ip="::")
        assert who not in run.receivers, "never answered: that would fail the sender's DAD"
        assert run.receivers == others_in(topo, network, who)
        assert all(d.packet.icmpv6_type == 135 for d in run.deliveries)


def test_duplicate_address_detection_of_anything_else_is_dropped(topo, ports):
    cases = [dict(target="2001:db8::2"),                        # a2's address
             dict(target=lla(topo, "a2")),                      # a2's link-local
             dict(target="2001:db8::99"),                       # nobody's
             dict(target="2001:db8::1", sll="own"),             # with a source LLA
             dict(target="2001:db8::1", ipv6_dst=ALL_NODES),    # not to its group
             dict(target="2001:db8::1", ipv6_dst=solicited_node("2001:db8::2"))]
    for case in cases:
        case = dict(case)
        target, sll = case.pop("target"), case.pop("sll", None)
        run = ns(topo, ports, "a1", target, sll=sll, src_ip="::", **case)
        assert run.receivers == [] and run.hops == (), (target, sll, case)


# -- neighbour advertisements --------------------------------------------------

def test_the_reported_attack_an_unsolicited_advertisement_of_a_neighbours_address_is_dropped(
        topo, ports):
    for target in (ip(topo, "a2"), lla(topo, "a2"), ip(topo, "a3"), "2001:db8::99"):
        for tll in ("own", topo.endpoint("a2").mac, None):
            for source in (ip(topo, "a1"), lla(topo, "a1"), target):
                run = na(topo, ports, "a1", target, tll=tll, src_ip=source)
                assert run.receivers == [] and run.hops == (), (target, tll, source)


def test_an_advertisement_of_the_own_address_with_a_foreign_mac_is_dropped(topo, ports):
    for tll in (topo.endpoint("a2").mac, topo.endpoint("b1").mac, "02:99:99:99:99:99"):
        run = na(topo, ports, "a1", ip(topo, "a1"), tll=tll)
        assert run.receivers == [] and run.hops == ()


@pytest.mark.parametrize("tll", ["own", None])
def test_an_advertisement_of_its_own_addresses_reaches_its_network_only(topo, ports, tll):
    for who, network in (("a1", "netA"), ("a3", "netA"), ("b1", "netB")):
        for target in (ip(topo, who), lla(topo, who)):
            for source in (ip(topo, who), lla(topo, who)):
                run = na(topo, ports, who, target, tll=tll, src_ip=source)
                assert run.receivers == others_in(topo, network, who), (who, target, source)


def test_a_solicited_advertisement_reaches_the_asker_only(topo, ports):
    a2 = topo.endpoint("a2")
    run = na(topo, ports, "a1", "2001:db8::1", dst="2001:db8::2", flags=NA_SOLICITED)
    assert run.receivers == others_in(topo, "netA", "a1")       # sent to all nodes' MAC
    ep = topo.endpoint("a1")
    unicast = Packet(in_port=ports["h1"][ep.port], eth_src=ep.mac, eth_dst=a2.mac,
                     **neighbour_advertisement("2001:db8::1", "2001:db8::1", ep.mac,
                                               dst="2001:db8::2", flags=NA_SOLICITED))
    assert inject(topo, ports, "h1", unicast).receivers == ["a2"]


# -- routers -------------------------------------------------------------------

@pytest.mark.parametrize("kind", [134, 137])
def test_router_advertisements_and_redirects_from_endpoints_are_dropped(topo, ports, kind):
    for who in ("a1", "a2", "a3", "b1", "b2"):
        for source in (ip(topo, who), lla(topo, who)):
            run = icmp6(topo, ports, who, kind, src_ip=source)
            assert run.receivers == [] and run.hops == (), (who, source)


@pytest.mark.parametrize("kind", [134, 137])
def test_the_networks_router_may_advertise_and_redirect_in_its_network_only(topo, ports, kind):
    for source in (ip(topo, "ra"), lla(topo, "ra")):
        run = icmp6(topo, ports, "ra", kind, src_ip=source)
        assert run.receivers == others_in(topo, "netA", "ra")
    for forged in ("fe80::1", lla(topo, "a1"), "::"):
        run = icmp6(topo, ports, "ra", kind, src_ip=forged)
        assert run.receivers == [] and run.hops == ()


# -- isolation -----------------------------------------------------------------

def test_no_ipv6_frame_crosses_between_networks_reusing_addresses(topo, ports):
    a_side, b_side = {"a1", "a2", "a3", "ra"}, {"b1", "b2"}
    for src in a_side | b_side:
        other = b_side if src in a_side else a_side
        ep = topo.endpoint(src)
        frames = [dict(eth_dst=BROADCAST, eth_type=0x86DD, ip_proto=58, icmpv6_type=128,
                       ipv6_src=ip(topo, src), ipv6_dst=ALL_NODES)]
        frames += [dict(eth_dst=topo.endpoint(o).mac, eth_type=0x86DD, ip_proto=6,
                        ipv6_src=ip(topo, src), ipv6_dst=ip(topo, o)) for o in other]
        frames.append(dict(eth_dst=nd_mac(solicited_node("2001:db8::99")),
                           **neighbour_solicitation("2001:db8::99", ip(topo, src), ep.mac)))
        frames.append(dict(eth_dst=ALL_NODES_MAC,
                           **neighbour_advertisement(ip(topo, src), ip(topo, src), ep.mac)))
        for fields in frames:
            run = send(topo, ports, src, **fields)
            assert not set(run.receivers) & other, (src, fields)


def test_every_ipv6_answer_stays_on_the_asking_host(topo, ports):
    for asker, target in itertools.permutations(topo.endpoints.values(), 2):
        if asker.network != target.network:
            continue
        for address in (str(target.ip.ip), str(target.ipv6_link_local)):
            run = ns(topo, ports, asker.name, address)
            assert run.hops == () and run.receivers == [asker.name]


# -- the contracts: OVS prerequisites and the ND responder's two halves --------

@pytest.mark.parametrize("flow,why", [
    (Flow.make(T.CLASSIFY.id, 120, {"icmpv6_type": 135}), "needs eth_type=0x86dd"),
    (Flow.make(T.CLASSIFY.id, 120, {"eth_type": 0x86DD, "icmpv6_type": 135}), "ip_proto=58"),
    (Flow.make(T.CLASSIFY.id, 120, {"eth_type": 0x86DD, "ip_proto": 58,
                                    "ipv6_nd_sll": ZERO_MAC}), "icmpv6_type=135"),
    (Flow.make(T.CLASSIFY.id, 120, {"eth_type": 0x86DD, "ip_proto": 58, "icmpv6_type": 135,
                                    "ipv6_nd_tll": ZERO_MAC}), "icmpv6_type=136"),
    (Flow.make(T.CLASSIFY.id, 100, {"ipv6_src": "::"}), "needs eth_type=0x86dd"),
    # Open vSwitch refuses to set nd_tll in a flow matching a solicitation,
    # even after a set_field of icmpv6_type: it checks the match only.
    (Flow.make(T.ND_REPLY.id, 100, {"eth_type": 0x86DD, "ip_proto": 58, "icmpv6_type": 135},
               (("set_field", "ipv6_nd_tll", ZERO_MAC),)), "set_field of ipv6_nd_tll needs"),
    (Flow.make(T.ARP_RESPONDER.id, 100, {"eth_type": 0x86DD},
               (("set_field", "nd_reserved", 0),)), "set_field of nd_reserved needs"),
])
def test_a_flow_without_open_vswitch_prerequisites_is_refused(flow, why):
    with pytest.raises(T.PipelineError, match=why):
        T.check(flow)


def test_every_computed_flow_obeys_its_tables_contract_and_prerequisites(topo, ports):
    for host in topo.hosts:
        for flow in pipeline.compute(topo, host, ports[host]).flows:
            T.check(flow)


def test_the_simulator_refuses_what_open_vswitch_would_ignore(topo, ports):
    ep = topo.endpoint("a1")
    packet = Packet(in_port=1, eth_src=ep.mac, **neighbour_solicitation("2001:db8::2",
                                                                          "2001:db8::1", ep.mac))
    for actions in ((("set_field", "ipv6_nd_tll", ep.mac), ("output", 2)),
                    (("set_field", "icmpv6_type", 136), ("set_field", "ipv6_nd_tll", ep.mac),
                     ("output", 2))):
        flow = Flow.make(0, 1, {}, actions)
        with pytest.raises(SimulationError, match="nd_tll"):
            run_host([flow], [], packet)


def test_an_ipv4_endpoint_gets_no_ipv6_flows():
    topo = topology.load()
    ports = offline_ports(topo)
    flows = pipeline.compute(topo, "kvm1", ports["kvm1"]).flows
    assert not [f for f in flows if f.match_dict.get("eth_type") == 0x86DD and f.cookie
                != pipeline.ids.BASE_COOKIE]


# -- the topology file ---------------------------------------------------------

def problems(text):
    with pytest.raises(topology.TopologyError) as err:
        topology.parse(text, "t.yaml")
    return err.value.problems


def test_link_local_and_router_are_read(topo):
    assert str(topo.endpoint("a3").ipv6_link_local) == "fe80::a3"
    assert topo.endpoint("a1").link_local is None
    assert topo.network("netA").router == "ra" and topo.network("netB").router is None
    assert topo.views["netA"].router == "ra"


@pytest.mark.parametrize("value,message", [
    ('"fe80::1/64"', "must be an IPv6 link-local address like fe80::1 (no prefix length)"),
    ('"2001:db8::9"', "2001:db8::9 is not link-local (fe80::/10)"),
    ("12", "must be an IPv6 link-local address"),
    ('"fe80::ff:fe00:2"', "fe80::ff:fe00:2 is already the link-local address of endpoint "
     "'y' in network 'n'"),
    ('"fe80::2"', "fe80::2 is already the address of endpoint 'z' in network 'n'"),
])
def test_a_bad_link_local_address_is_refused_with_its_line(value, message):
    got = problems(f"""\
hosts:
  h1: {{underlay_ip: 198.18.0.1}}
networks:
  n: {{key: 5}}
endpoints:
  y: {{host: h1, kind: vm, network: n, ip: "2001:db8::2/64", mac: "02:00:00:00:00:02"}}
  z: {{host: h1, kind: vm, network: n, ip: "fe80::2/64"}}
  x:
    host: h1
    kind: vm
    network: n
    link_local: {value}
    ip: "2001:db8::1/64"
""")
    assert len(got) == 1 and got[0].startswith("t.yaml:12: endpoints.x.link_local: "), got
    assert message in got[0]


def test_a_link_local_address_on_an_ipv4_endpoint_is_refused():
    got = problems("""\
hosts: {h1: {underlay_ip: 198.18.0.1}}
networks: {n: {key: 5}}
endpoints:
  x: {host: h1, kind: vm, network: n, ip: 10.0.0.1/24, link_local: "fe80::1"}
""")
    assert got == ["t.yaml:4: endpoints.x.link_local: the endpoint has no IPv6 address"]


@pytest.mark.parametrize("router,message", [
    ("nobody", "unknown endpoint 'nobody'"),
    ("y", "endpoint 'y' is not a member of network 'm'"),
    ("[x]", "must be an endpoint name"),
])
def test_a_router_that_is_not_a_member_is_refused_with_its_line(router, message):
    # (an IPv4 member may be the router: it is then the gateway DHCP hands out,
    # test_dhcp_topology.py)
    got = problems(f"""\
hosts: {{h1: {{underlay_ip: 198.18.0.1}}}}
networks:
  n: {{key: 5}}
  m:
    key: 6
    router: {router}
endpoints:
  x: {{host: h1, kind: vm, network: m, ip: "2001:db8::1/64"}}
  y: {{host: h1, kind: vm, network: n, ip: "2001:db8::2/64"}}
  v4: {{host: h1, kind: vm, network: m, ip: 10.0.0.1/24}}
""")
    assert len(got) == 1 and got[0].startswith("t.yaml:6: networks.m.router: "), got
    assert message in got[0]


# -- nsgre trace -----------------------------------------------------------------

def test_trace_shows_a_solicitation_answered_on_the_asking_host(topo):
    from nsgre_tools import trace
    for target in ("a2", "2001:db8::2", str(topo.endpoint("a2").ipv6_link_local)):
        result = trace.trace(topo, "a1", target, "arp")
        mac = topo.endpoint("a2").mac
        assert result.answered and result.verdict.startswith("answered: ")
        assert f"is at {mac} (a2), reply delivered to a1" in result.verdict
        assert [h.host for h in result.hops] == ["h1"]
    assert trace.trace(topo, "b1", "2001:db8::2", "arp").verdict.endswith(
        f"is at {topo.endpoint('b2').mac} (b2), reply delivered to b1")
    assert trace.trace(topo, "a1", "2001:db8::99", "arp").verdict == "delivered to a2, a3, ra"


# -- the controller core, with fake switches ---------------------------------------

def test_the_controller_programs_an_ipv6_fabric_as_modelled_and_a_reconnect_sends_nothing(topo):
    """Every message of the ND responder goes through the wire encoder and
    back (the fake switch decodes what it is sent)."""
    from fakeswitch import FakeSwitch, Harness, desired
    h = Harness(topo)
    wired = offline_ports(topo)
    switches = {name: FakeSwitch(h, host.dpid, wired[name]) for name, host in topo.hosts.items()}
    for switch in switches.values():
        h.connect(switch)
    for name, switch in switches.items():
        table = switch.table()
        assert table == desired(h.core.topology, name, switch.ports), name
        assert any(("set_field", "nd_options_type", 2) in f.actions for f, _ in table[0]), name
    h1 = switches["h1"]
    h.disconnect(h1)
    before = len(h1.mods())
    h.connect(h1)
    assert len(h1.mods()) == before


def test_nsgre_pipeline_prints_a_host_with_ipv6_endpoints(tmp_path, capsys):
    """It used to fail sorting a masked IPv6 match against a plain one."""
    from nsgre_tools.cli import main
    path = tmp_path / "v6.yaml"
    path.write_text(V6)
    assert main(["pipeline", "h1", "-t", str(path)]) == 0
    out = capsys.readouterr().out
    assert "icmp_type=135" in out or "icmpv6_type=135" in out, out[:2000]
