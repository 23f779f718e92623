"""Binding interfaces to endpoints (nsgre_core.binding), the pure rules."""

from hypothesis import given, settings, strategies as st

import topology
from nsgre_core import binding, pipeline

from fabrics import build, fabrics

SEED = topology.load()
VM1 = SEED.endpoints["vm1"]


@settings(max_examples=40, deadline=None)
@given(fabrics())
def test_without_ovsdb_every_port_is_bound_by_its_name_as_before(spec):
    topo = topology.parse(build(spec), "random.yaml")
    for host, ports in pipeline.offline_ports(topo).items():
        result = binding.bind(topo, host, {**ports, "stranger": 99}, {})
        assert result.ports == ports and result.refused == ()


def test_an_iface_id_binds_whatever_the_name_and_a_name_without_one_binds_by_name():
    ports = {"vnet4": 9, "p-red": 1, "gre-kvm2": 3}
    result = binding.bind(SEED, "kvm1", ports, {"vnet4": {"iface-id": VM1.iface_id}})
    assert result.ports == {VM1.port: 9, "p-red": 1, "gre-kvm2": 3}
    assert result.bound == {"vm1": "vnet4", "red": "p-red"}


def test_an_iface_id_of_no_endpoint_here_binds_nothing_even_under_an_endpoints_port_name():
    result = binding.bind(SEED, "kvm1", {VM1.port: 2}, {VM1.port: {"iface-id": "someone-else"}})
    assert result.ports == {} and result.bound == {}


def test_the_attached_mac_must_be_the_endpoints_in_any_case():
    upper = binding.bind(SEED, "kvm1", {"vnet0": 5},
                         {"vnet0": {"iface-id": VM1.iface_id, "attached-mac": VM1.mac.upper()}})
    assert upper.bound == {"vm1": "vnet0"}
    wrong = binding.bind(SEED, "kvm1", {"vnet0": 5},
                         {"vnet0": {"iface-id": VM1.iface_id, "attached-mac": "02:00:00:00:00:09"}})
    assert wrong.bound == {} and [r.reason for r in wrong.refused] == ["attached-mac"]


def test_of_two_claims_the_bound_one_stays_else_identity_then_the_lower_number_wins():
    ids = {"vnet0": {"iface-id": VM1.iface_id}, "vnet1": {"iface-id": VM1.iface_id}}
    fresh = binding.bind(SEED, "kvm1", {"vnet0": 8, "vnet1": 4}, ids)
    assert fresh.bound == {"vm1": "vnet1"}
    kept = binding.bind(SEED, "kvm1", {"vnet0": 8, "vnet1": 4}, ids, previous={"vm1": "vnet0"})
    assert kept.bound == {"vm1": "vnet0"} and kept.ports[VM1.port] == 8
    assert [(r.interface, r.reason) for r in kept.refused] == [("vnet1", "duplicate")]
    by_name = binding.bind(SEED, "kvm1", {VM1.port: 1, "vnet1": 4},
                           {"vnet1": {"iface-id": VM1.iface_id}})
    assert by_name.bound == {"vm1": "vnet1"}


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_binder_updated_one_interface_at_a_time_binds_as_a_whole_host_rebind(data):
    """Interfaces come, go, get new numbers and new identities, a few at a
    time: after each change the binder holds what ``bind`` computes for the
    whole host with the binding before as ``previous``."""
    host = data.draw(st.sampled_from(sorted(SEED.hosts)))
    endpoints = SEED.endpoints_on(host)
    names = sorted({e.port for e in endpoints} | {"vnet0", "vnet1", "vnet2", "stranger"}
                   | {SEED.tunnel_port(host, p.name) for p in SEED.peers(host)})
    identities = st.one_of(
        st.just(None), st.just({}),
        st.builds(lambda e, mac: {"iface-id": e.iface_id,
                                  **({"attached-mac": mac(e)} if mac else {})},
                  st.sampled_from(endpoints),
                  st.sampled_from([None, lambda e: e.mac, lambda e: "02:00:00:00:00:99"])),
        st.just({"iface-id": "nobody-here"}))
    ofports, interfaces = {}, {}
    binder = binding.Binder(SEED, host)
    binder.update(binder.every_name(ofports), ofports, interfaces)
    for _ in range(data.draw(st.integers(1, 12))):
        changed = data.draw(st.sets(st.sampled_from(names), min_size=1, max_size=3))
        for name in changed:
            ofport = data.draw(st.one_of(st.none(), st.integers(1, 9)))
            ext = data.draw(identities)
            if ofport is None:
                ofports.pop(name, None)
            else:
                ofports[name] = ofport
            if ext is None:
                interfaces.pop(name, None)
            else:
                interfaces[name] = ext
        before, last = dict(binder.bound), binder.result()
        binder.changes()
        binder.update(changed, ofports, interfaces)
        now = binder.result()
        assert now == binding.bind(SEED, host, ofports, interfaces, before)
        # what it names as looked at covers everything that differs
        ports, endpoints = binder.changes()
        assert {p for p in last.ports.keys() | now.ports.keys()
                if last.ports.get(p) != now.ports.get(p)} <= ports
        assert {e for e in last.bound.keys() | now.bound.keys()
                if last.bound.get(e) != now.bound.get(e)} <= endpoints
