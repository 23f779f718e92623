"""Allocation: deterministic (same file, same fabric anywhere) and stable
(given the topology in force, no existing element is renumbered when
others are added or removed)."""

import pytest
import yaml
from hypothesis import given, settings, strategies as st

import topology
from fabrics import build, fabrics, mutate


def load(spec, previous=None):
    return topology.parse(build(spec), "t.yaml", previous)


def assert_collision_free(topo):
    keys = [n.key for n in topo.networks.values()]
    assert len(keys) == len(set(keys))
    for host in topo.hosts:
        vlans = [topo.local_vlan(host, n.name) for n in topo.networks_on(host)]
        assert len(vlans) == len(set(vlans)) and all(1 <= v <= 4094 for v in vlans)
        ports = [e.port for e in topo.endpoints_on(host)]
        assert len(ports) == len(set(ports))
    macs = [e.mac for e in topo.endpoints.values()]
    assert len(macs) == len(set(macs))


@settings(max_examples=150, deadline=None)
@given(fabrics(), st.randoms(use_true_random=False))
def test_allocation_is_collision_free_and_kept_through_random_additions_and_removals(spec, rnd):
    old = load(spec)
    assert_collision_free(old)
    for _ in range(4):
        spec = mutate(spec, rnd, set(old.allocations()["keys"].values()))
        new = load(spec, previous=old)
        assert_collision_free(new)
        before, after = old.allocations(), new.allocations()
        for kind in ("keys", "local_vlans", "macs", "ports"):
            for name, value in after[kind].items():
                if name in before[kind] and not _explicitly_changed(spec, kind, name):
                    assert value == before[kind][name], (kind, name)
        old = new


def _explicitly_changed(spec, kind, name):
    """An explicit key in the new file wins over what was allocated before."""
    return kind == "keys" and "key" in spec["networks"].get(name, {})


@settings(max_examples=50, deadline=None)
@given(fabrics(), st.randoms(use_true_random=False))
def test_allocation_depends_on_the_content_not_on_the_order_of_the_file(spec, rnd):
    shuffled = {section: spec[section] for section in ("endpoints", "networks", "hosts", "tunnel")}
    for section in ("hosts", "networks", "endpoints"):
        items = list(spec[section].items())
        rnd.shuffle(items)
        shuffled[section] = dict(items)
    assert load(spec).allocations() == load(shuffled).allocations()


def test_the_same_file_gives_the_same_allocation_every_time():
    text = topology.seed_text().replace("net20: {key: 20}", "net20: {}")
    assert topology.parse(text).allocations() == topology.parse(text).allocations()
    assert topology.parse(text).network("net20").key == 4227311783   # pinned: any machine


def test_a_new_network_with_a_small_key_does_not_take_an_existing_hashed_vlan():
    spec = {"hosts": {"h": {"underlay_ip": "198.18.0.1"}},
            "networks": {"big": {"key": 4095 + 7}},
            "endpoints": {"e": {"host": "h", "kind": "vm", "network": "big", "ip": "10.0.0.1/24"}}}
    old = load(spec)
    vlan = old.local_vlan("h", "big")
    spec["networks"]["small"] = {"key": vlan}
    spec["endpoints"]["f"] = {"host": "h", "kind": "vm", "network": "small", "ip": "10.0.0.2/24"}
    new = load(spec, previous=old)
    assert new.local_vlan("h", "big") == vlan
    assert new.local_vlan("h", "small") != vlan


def test_ten_thousand_networks_are_fine_while_no_host_carries_more_than_4094():
    hosts = {f"h{i}": {"underlay_ip": f"198.18.{i // 250}.{i % 250 + 1}"} for i in range(64)}
    networks = {f"n{i}": {} for i in range(10_000)}
    endpoints = {f"e{i}": {"host": f"h{i % 64}", "kind": "vm", "network": f"n{i}",
                           "ip": "10.0.0.1/24"} for i in range(10_000)}
    topo = load({"tunnel": "vxlan", "hosts": hosts, "networks": networks, "endpoints": endpoints})
    assert len(topo.networks) == 10_000
    assert_collision_free(topo)


def test_a_host_carrying_4095_networks_is_refused_naming_the_host():
    networks = {f"n{i}": {"key": i + 1} for i in range(4095)}
    endpoints = {f"e{i}": {"host": "h", "kind": "vm", "network": f"n{i}", "ip": "10.0.0.1/24"}
                 for i in range(4095)}
    spec = {"hosts": {"h": {"underlay_ip": "198.18.0.1"}}, "networks": networks,
            "endpoints": endpoints}
    with pytest.raises(topology.TopologyError) as err:
        load(spec)
    assert err.value.problems == [
        "t.yaml:2: hosts.h: carries 4095 networks; a host can carry at most 4094"]


@settings(max_examples=200)
@given(st.integers(1, 60), st.sets(st.integers(1, 60)), st.lists(st.integers(1, 60), max_size=40))
def test_free_slots_find_what_linear_probing_finds(last, used, starts):
    from topology.allocate import _FreeSlots
    used = {u for u in used if u <= last}
    starts = [min(s, last) for s in starts][:last - len(used)]
    free, taken = _FreeSlots(1, last, used), set(used)
    for start in starts:
        probe = start
        while probe in taken:
            probe = probe % last + 1
        assert free.take(start) == probe
        taken.add(probe)
