"""Updating only the networks a change touches ends exactly where a full
resync ends: for topology changes (the file edited) and for ports coming,
going and being renumbered (a VM power-cycled)."""

import random

from hypothesis import given, settings, strategies as st

import topology
from fabrics import EDITS, GROWTH, build, fabrics, mutate
from nsgre_core import pipeline, reconcile
from nsgre_core.pipeline import offline_ports
from topology import diff


def load(spec, previous=None):
    return topology.parse(build(spec), "t.yaml", previous)


def assert_holds_exactly(held, topo, host, ports):
    want = pipeline.compute(topo, host, ports)
    assert sorted(held.flows.values(), key=lambda f: f.sort_key()) == list(want.flows)
    assert [(f.cookie) for f in sorted(held.flows.values(), key=lambda f: f.sort_key())] == \
        [f.cookie for f in want.flows]
    assert sorted(held.groups.values()) == list(want.groups)
    assert sorted(held.meters.values()) == list(want.meters)
    assert held.pieces == pipeline.pieces(topo, host, ports)


@settings(max_examples=150, deadline=None)
@given(fabrics(), st.randoms(use_true_random=False))
def test_updating_the_touched_networks_ends_where_a_full_resync_ends(spec, rnd):
    old = load(spec)
    ports = offline_ports(old)
    held = {h: reconcile.Held() for h in old.hosts}
    caches = {h: {} for h in old.hosts}     # as the controller keeps them per host
    for h in old.hosts:
        held[h].resync(old, h, ports[h], caches[h])
    for _ in range(4):
        spec = mutate(spec, rnd, set(old.allocations()["keys"].values()), GROWTH + EDITS)
        new = load(spec, previous=old)
        touched = diff.hosts_touched(old, new, diff.changed_networks(old, new))
        for h in new.hosts:
            record = held.setdefault(h, reconcile.Held())
            cache = caches.setdefault(h, {})
            if not record.pieces and h not in old.hosts:
                record.resync(new, h, ports.get(h, {}), cache)     # a host that joined
            else:
                record.update(new, h, ports.get(h, {}), touched.get(h, set()), cache)
            assert_holds_exactly(record, new, h, ports.get(h, {}))
        # Then the ports catch up (new VMs start, tunnels to a new host appear),
        # one port event at a time.
        wired = offline_ports(new)
        for h in new.hosts:
            have, want = ports.setdefault(h, {}), wired[h]
            for name in sorted(have.keys() | want.keys()):
                if have.get(name) != want.get(name):
                    if name in want:
                        have[name] = want[name]
                    else:
                        del have[name]
                    held[h].update(new, h, have, pipeline.networks_using_port(new, h, name),
                                   caches[h])
            assert_holds_exactly(held[h], new, h, have)
        old = new


@settings(max_examples=100, deadline=None)
@given(fabrics(), st.randoms(use_true_random=False))
def test_a_port_event_updates_only_its_networks_and_ends_where_a_resync_ends(spec, rnd):
    topo = load(spec)
    for host, ports in offline_ports(topo).items():
        ports = dict(ports)
        held, cache = reconcile.Held(), {}
        held.resync(topo, host, ports, cache)
        names = sorted(ports) + ["stranger"]
        for _ in range(6):
            name = rnd.choice(names)
            if name in ports and rnd.random() < 0.5:
                del ports[name]                        # port deleted
            else:
                # Port (re)added, maybe renumbered: to a number no other port
                # of the bridge holds, as OVS numbers them.
                taken = {n for p, n in ports.items() if p != name}
                ports[name] = rnd.choice([n for n in range(100, 150) if n not in taken])
            held.update(topo, host, ports, pipeline.networks_using_port(topo, host, name), cache)
            assert_holds_exactly(held, topo, host, ports)
        # A reconnect (the record lost, the cache kept) ends in the same place.
        again = reconcile.Held()
        again.resync(topo, host, ports, cache)
        assert_holds_exactly(again, topo, host, ports)


def test_adding_one_endpoint_recomputes_only_its_network():
    spec = {"tunnel": "gre",
            "hosts": {"h1": {"underlay_ip": "198.18.0.1"}, "h2": {"underlay_ip": "198.18.0.2"}},
            "networks": {f"n{i}": {} for i in range(50)},
            "endpoints": {f"e{i}": {"host": f"h{1 + i % 2}", "kind": "vm", "network": f"n{i // 2}",
                                    "ip": f"10.0.0.{i + 1}/24"} for i in range(100)}}
    old = load(spec)
    spec["endpoints"]["newcomer"] = {"host": "h1", "kind": "vm", "network": "n7",
                                     "ip": "10.0.0.200/24"}
    new = load(spec, previous=old)
    assert diff.changed_networks(old, new) == {"n7"}
    assert diff.hosts_touched(old, new, {"n7"}) == {"h1": {"n7"}, "h2": {"n7"}}


def test_nothing_changed_touches_nothing():
    old = load({"tunnel": "gre", "hosts": {"h1": {"underlay_ip": "198.18.0.1"}},
                "networks": {"n": {}}, "endpoints": {}})
    new = topology.parse(build({"tunnel": "gre", "hosts": {"h1": {"underlay_ip": "198.18.0.1"}},
                                "networks": {"n": {}}, "endpoints": {}}), "t.yaml", old)
    assert diff.changed_networks(old, new) == set()


def test_a_flow_moving_between_networks_on_a_reused_local_vlan_is_modified_not_lost():
    base = {"tunnel": "gre", "hosts": {"h1": {"underlay_ip": "198.18.0.1"}},
            "networks": {"a": {"key": 5}}, "endpoints": {
                "x": {"host": "h1", "kind": "vm", "network": "a", "ip": "10.0.0.1/24"}}}
    old = load(base)
    ports = offline_ports(old)["h1"]
    held = reconcile.Held()
    held.resync(old, "h1", ports)
    # a goes, b comes with the same key: b gets a's local VLAN, x moves to b.
    moved = {**base, "networks": {"b": {"key": 5}},
             "endpoints": {"x": {**base["endpoints"]["x"], "network": "b"}}}
    new = load(moved, previous=old)
    assert new.local_vlan("h1", "b") == old.local_vlan("h1", "a")
    ops = held.update(new, "h1", ports, diff.changed_networks(old, new))
    assert all(op.verb not in ("del_flow", "del_group") for op in ops)
    assert_holds_exactly(held, new, "h1", ports)
