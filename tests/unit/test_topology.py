"""The topology model and loader: what a file means, and how a bad one is
refused (``FILE:LINE: dotted.path: message``, every problem at once, never
a half-loaded model)."""

from ipaddress import ip_interface
import ipaddress

import pytest
import yaml
from hypothesis import given, settings, strategies as st

import topology
from topology import allocate
from topology.model import MAX_KEY, VLAN_MAX, VLAN_MIN, tunnel_port_name
from fabrics import build, fabrics

SEED = topology.seed_text()

SMALL = """\
tunnel: {tunnel}
hosts:
  h1: {{underlay_ip: 192.0.2.1}}
  h2: {{underlay_ip: 192.0.2.2}}
networks:
{networks}
endpoints:
{endpoints}
"""


def small(networks, endpoints="", tunnel="gre"):
    """A two-host file; ``networks`` {name: key or None}; one endpoint per
    network on h1 unless ``endpoints`` is given."""
    nets = "\n".join(f"  {n}: {{key: {k}}}" if k is not None else f"  {n}: {{}}"
                     for n, k in networks.items())
    if not endpoints:
        endpoints = "\n".join(f"  e-{n}: {{host: h1, kind: vm, network: {n}, ip: 10.0.{i}.1/24}}"
                              for i, n in enumerate(networks))
    return SMALL.format(tunnel=tunnel, networks=nets, endpoints=endpoints)


def problems(text, source="t.yaml"):
    with pytest.raises(topology.TopologyError) as info:
        topology.parse(text, source)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def snapshot(t):
    """Everything a Topology holds, comparable with ==."""
    edges = sorted((u, v, tuple(sorted(d.items()))) for u, v, d in t.graph.edges(data=True))
    return (t.tunnel, t.source, t.hosts, t.networks, t.endpoints, edges)


# -- the seed -----------------------------------------------------------------

def test_the_seed_loads_with_the_names_and_addresses_of_seed_yaml():
    t = topology.load()
    assert t.source == "seed.yaml" and t.tunnel == "gre"
    assert {h.name: str(h.underlay_ip) for h in t.hosts.values()} == \
        {"kvm1": "198.18.0.1", "kvm2": "198.18.0.2"}
    assert {n.name: n.key for n in t.networks.values()} == {"net10": 10, "net20": 20}
    assert {e.name: (e.host, e.kind, e.network, str(e.ip)) for e in t.endpoints.values()} == {
        "vm1": ("kvm1", "vm", "net10", "10.1.1.2/24"),
        "red": ("kvm1", "namespace", "net20", "10.1.2.1/24"),
        "vm2": ("kvm2", "vm", "net20", "10.1.2.2/24"),
        "blue": ("kvm2", "namespace", "net10", "10.1.1.1/24"),
    }
    assert t.summary() == "2 hosts, 2 networks, 4 endpoints, tunnel gre"


def test_omitted_mac_port_and_dpid_are_derived_from_names_and_addresses():
    t = topology.load()
    vm1 = t.endpoint("vm1")
    assert vm1.mac == allocate.default_mac("vm1") and vm1.mac.startswith("02:")
    assert vm1.port == "p-vm1"
    assert t.host("kvm1").dpid == 0xC6120001
    assert t.host_by_dpid(0xC6120001).name == "kvm1" and t.host_by_dpid(1) is None
    assert allocate.default_port("a-very-long-name") == "p-a-very-" + allocate.short_hash("a-very-long-name", 6)
    assert len(allocate.default_port("a-very-long-name")) <= 15


def test_the_seed_file_on_disk_loads_like_the_embedded_seed(tmp_path):
    path = tmp_path / "seed.yaml"
    path.write_text(SEED)
    a, b = topology.load(path), topology.load()
    assert snapshot(a)[2:] == snapshot(b)[2:]
    assert a.source == str(path)


def test_an_unreadable_file_is_refused_with_its_path(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(topology.TopologyError) as info:
        topology.load(path)
    assert info.value.problems == [f"{path}: cannot read: No such file or directory"]


# -- the graph ----------------------------------------------------------------

def test_graph_nodes_are_keyed_by_kind_and_name_and_carry_their_record():
    t = topology.load()
    kinds = {}
    for (kind, name), data in t.graph.nodes(data=True):
        assert data["kind"] == kind and data["obj"].name == name
        kinds.setdefault(kind, set()).add(name)
    assert kinds == {"host": {"kvm1", "kvm2"}, "network": {"net10", "net20"},
                     "endpoint": {"vm1", "red", "vm2", "blue"}}


def test_graph_edges_are_attached_member_carries_and_tunnel():
    t = topology.load()
    edges = {(u, v): d for u, v, d in t.graph.edges(data=True)}
    assert edges[("endpoint", "vm1"), ("host", "kvm1")] == {"kind": "attached"}
    assert edges[("endpoint", "vm1"), ("network", "net10")] == {
        "kind": "member", "attachment": topology.Attachment("net10", ip_interface("10.1.1.2/24"))}
    assert edges[("host", "kvm1"), ("network", "net10")] == {"kind": "carries", "local_vlan": 10}
    assert edges[("host", "kvm1"), ("host", "kvm2")] == {"kind": "tunnel"}
    assert edges[("host", "kvm2"), ("host", "kvm1")] == {"kind": "tunnel"}
    by_kind = {}
    for d in edges.values():
        by_kind[d["kind"]] = by_kind.get(d["kind"], 0) + 1
    assert by_kind == {"attached": 4, "member": 4, "carries": 4, "tunnel": 2}


def test_a_host_carries_exactly_the_networks_of_its_endpoints():
    eps = ("  e1: {host: h1, kind: vm, network: a, ip: 10.0.0.1/24}\n"
           "  e2: {host: h1, kind: vm, network: b, ip: 10.0.0.1/24}")
    t = topology.parse(small({"a": 1, "b": 2, "unused": 3}, eps), "t.yaml")
    assert [n.name for n in t.networks_on("h1")] == ["a", "b"]
    assert t.networks_on("h2") == []
    assert t.hosts_carrying("unused") == [] and t.members("unused") == []


def test_queries_answer_from_the_graph():
    t = topology.load()
    assert [e.name for e in t.endpoints_on("kvm1")] == ["red", "vm1"]
    assert [h.name for h in t.hosts_carrying("net10")] == ["kvm1", "kvm2"]
    assert [e.name for e in t.members("net20")] == ["red", "vm2"]
    assert [h.name for h in t.peers("kvm1")] == ["kvm2"]
    assert t.endpoint_by_mac("net10", t.endpoint("blue").mac.upper()).name == "blue"
    assert t.endpoint_by_mac("net20", t.endpoint("blue").mac) is None
    assert t.endpoint_by_ip("net10", "10.1.1.1").name == "blue"
    assert t.endpoint_by_ip("net20", "10.1.1.1") is None
    assert t.tunnel_port("kvm1", "kvm2") == "gre-kvm2"
    assert t.endpoint_mtu() == 1458


def test_a_host_and_an_endpoint_may_share_a_name():
    text = small({"a": 1}, "  h1: {host: h1, kind: vm, network: a, ip: 10.0.0.1/24}")
    t = topology.parse(text, "t.yaml")
    assert t.host("h1").name == "h1" and t.endpoint("h1").host == "h1"


# -- local VLANs and keys -----------------------------------------------------

def test_a_key_in_the_vlan_range_is_the_local_vlan():
    t = topology.parse(small({"a": 1, "b": 4094, "c": 77}), "t.yaml")
    assert {n: t.local_vlan("h1", n) for n in "abc"} == {"a": 1, "b": 4094, "c": 77}


def test_a_key_above_the_vlan_range_is_hashed_into_it():
    t = topology.parse(small({"big": 5000}), "t.yaml")
    assert t.local_vlan("h1", "big") == 5000 % (VLAN_MAX - VLAN_MIN + 1) + VLAN_MIN == 907


def test_hashed_vlans_never_collide_on_a_host():
    # 5000 and 9094 hash to the same slot; 907 is taken outright by a key
    t = topology.parse(small({"x": 5000, "y": 9094, "z": 907, "w": 4095}), "t.yaml")
    vlans = {n: t.local_vlan("h1", n) for n in "xyzw"}
    assert vlans["z"] == 907
    assert len(set(vlans.values())) == 4
    assert all(VLAN_MIN <= v <= VLAN_MAX for v in vlans.values())


def test_the_same_vlan_may_be_used_by_different_networks_on_different_hosts():
    eps = ("  e1: {host: h1, kind: vm, network: x, ip: 10.0.0.1/24}\n"
           "  e2: {host: h2, kind: vm, network: y, ip: 10.0.0.2/24}")
    t = topology.parse(small({"x": 5000, "y": 9094}, eps), "t.yaml")
    assert t.local_vlan("h1", "x") == t.local_vlan("h2", "y") == 907


def test_vlan_allocation_is_deterministic_and_independent_of_file_order():
    a = topology.parse(small({"x": 5000, "y": 9094, "z": 70000}), "t.yaml")
    b = topology.parse(small({"z": 70000, "y": 9094, "x": 5000}), "t.yaml")
    assert {n: a.local_vlan("h1", n) for n in "xyz"} == {n: b.local_vlan("h1", n) for n in "xyz"}


def test_adding_a_network_does_not_change_the_vlans_of_the_others():
    before = topology.parse(small({"x": 5000, "y": 12, "z": 70000}), "t.yaml")
    after = topology.parse(small({"x": 5000, "y": 12, "z": 70000, "new": 123456}), "t.yaml")
    assert {n: before.local_vlan("h1", n) for n in "xyz"} == {n: after.local_vlan("h1", n) for n in "xyz"}


def test_a_network_without_key_gets_a_deterministic_key_in_range():
    a = topology.parse(small({"auto": None, "b": 20}), "t.yaml")
    b = topology.parse(small({"b": 20, "auto": None}), "t.yaml")
    assert a.network("auto").key == b.network("auto").key
    assert 1 <= a.network("auto").key <= MAX_KEY["gre"]
    v = topology.parse(small({"auto": None}, tunnel="vxlan"), "t.yaml")
    assert 1 <= v.network("auto").key <= MAX_KEY["vxlan"]


def test_an_allocated_key_skips_keys_already_taken():
    slot = allocate.allocate_keys({"auto": None}, 100)["auto"]
    keys = allocate.allocate_keys({"auto": None, "taken": slot}, 100)
    assert keys["taken"] == slot and keys["auto"] == slot % 100 + 1
    wrap = allocate.allocate_keys({"auto": None, "t1": slot, **{f"t{k}": k for k in range(slot + 1, 101)}}, 100)
    assert wrap["auto"] == 1


# -- errors: where and what -----------------------------------------------------

def test_an_error_names_file_line_dotted_path_and_a_suggestion():
    text = SEED.replace("vm1:  {host: kvm1", "vm1:  {host: kvm9")
    assert problems(text, "seed.yaml") == \
        ["seed.yaml:12: endpoints.vm1.host: unknown host 'kvm9' (did you mean 'kvm2'?)"]


def test_every_problem_in_a_section_is_reported_at_once_in_line_order():
    text = (SEED.replace("ip: 10.1.2.2/24", "ip: 10.1.2.2")
            .replace("network: net10, ip: 10.1.1.2/24", "network: net11, ip: 10.1.1.2/24")
            .replace("kind: namespace, network: net20", "kind: container, network: net20"))
    assert problems(text) == [
        "t.yaml:12: endpoints.vm1.network: unknown network 'net11' (did you mean 'net10'?)",
        "t.yaml:13: endpoints.red.kind: unknown kind 'container'; expected one of: vm, namespace",
        "t.yaml:14: endpoints.vm2.ip: must be an address with prefix length like 10.1.1.2/24, got '10.1.2.2'",
    ]


def test_every_problem_in_the_file_is_reported_at_once_across_sections():
    # one problem in hosts, one in networks, one in endpoints: three lines
    text = (SEED.replace("198.18.0.2}", "198.18.0.300}")
            .replace("key: 20", "key: 0")
            .replace("ip: 10.1.1.1/24", "ip: 10.1.1.1"))
    assert len(problems(text)) == 3, problems(text)


def test_unknown_fields_are_named_with_a_did_you_mean():
    text = SEED.replace("net20: {key: 20}", "net20: {kye: 20}").replace("tunnel: gre", "tunel: gre")
    assert problems(text) == [
        "t.yaml:4: tunel: unknown field (did you mean 'tunnel'?); expected one of: "
        "tunnel, broadcast_limit, underlay_mtu, hosts, networks, endpoints",
        "t.yaml:10: networks.net20.kye: unknown field (did you mean 'key'?); expected one of: "
        "key, router, dhcp, dns, lease_time, mtu",
    ]


def test_an_unknown_tunnel_type_is_refused():
    assert problems(SEED.replace("tunnel: gre", "tunnel: gree")) == [
        "t.yaml:4: tunnel: unknown tunnel type 'gree' (did you mean 'gre'?); "
        "expected one of: gre, vxlan, geneve"]


def test_duplicate_yaml_keys_are_refused_with_their_dotted_path():
    text = SEED.replace("kvm2: {underlay_ip: 198.18.0.2}", "kvm1: {underlay_ip: 198.18.0.2}")
    assert problems(text) == ["t.yaml:7: hosts.kvm1: duplicate key"]


def test_a_duplicate_field_inside_an_entry_is_refused():
    text = SEED.replace("net20: {key: 20}", "net20: {key: 20, key: 21}")
    assert any(p.startswith("t.yaml:10: ") and p.endswith("duplicate key") for p in problems(text))


@pytest.mark.parametrize("old,new,expected", [
    ("198.18.0.2}", "198.18.0.300}", "t.yaml:7: hosts.kvm2.underlay_ip: not an IP address: '198.18.0.300'"),
    ("ip: 10.1.2.2/24", "ip: 10.1.2.2", "t.yaml:14: endpoints.vm2.ip: must be an address with prefix "
     "length like 10.1.1.2/24, got '10.1.2.2'"),
    ("ip: 10.1.2.2/24", "ip: 10.1.2.256/24", "t.yaml:14: endpoints.vm2.ip: must be an address with "
     "prefix length like 10.1.1.2/24, got '10.1.2.256/24'"),
    ("198.18.0.2}", "198.18.0.1}", "t.yaml:7: hosts.kvm2.underlay_ip: 198.18.0.1 is already the "
     "underlay address of host 'kvm1'"),
])
def test_bad_addresses_are_refused(old, new, expected):
    assert problems(SEED.replace(old, new)) == [expected]


def test_a_missing_underlay_address_is_refused_on_the_hosts_line():
    assert problems(SEED.replace("kvm2: {underlay_ip: 198.18.0.2}", "kvm2: {}")) == \
        ["t.yaml:7: hosts.kvm2.underlay_ip: missing (the host's tunnel endpoint address)"]


def test_an_empty_host_entry_is_refused_on_its_line():
    assert problems(SEED.replace("kvm2: {underlay_ip: 198.18.0.2}", "kvm2:")) == \
        ["t.yaml:7: hosts.kvm2.underlay_ip: missing (the host's tunnel endpoint address)"]


def test_duplicate_mac_ip_in_network_and_port_on_host_are_refused():
    eps = ("  e1: {host: h1, kind: vm, network: a, ip: 10.0.0.1/24, mac: '02:00:00:00:00:01', port: pa}\n"
           "  e2: {host: h1, kind: vm, network: a, ip: 10.0.0.1/24, mac: '02:00:00:00:00:01', port: pa}")
    assert problems(small({"a": 1}, eps)) == [
        "t.yaml:9: endpoints.e2.mac: MAC 02:00:00:00:00:01 is already used by endpoint 'e1'",
        "t.yaml:9: endpoints.e2.ip: 10.0.0.1 is already used in network 'a' by endpoint 'e1'",
        "t.yaml:9: endpoints.e2.port: port 'pa' on host 'h1' is already used by endpoint 'e1'",
    ]


def test_the_same_ip_in_two_networks_and_the_same_port_on_two_hosts_are_fine():
    eps = ("  e1: {host: h1, kind: vm, network: a, ip: 10.0.0.1/24, port: pa}\n"
           "  e2: {host: h2, kind: vm, network: b, ip: 10.0.0.1/24, port: pa}")
    t = topology.parse(small({"a": 1, "b": 2}, eps), "t.yaml")
    assert t.endpoint("e1").ip == t.endpoint("e2").ip


def test_multicast_and_malformed_macs_are_refused():
    for m in ("'01:00:00:00:00:01'", "'ff:ff:ff:ff:ff:ff'", "'02:00:00:00:01'", "zz"):
        eps = f"  e1: {{host: h1, kind: vm, network: a, ip: 10.0.0.1/24, mac: {m}}}"
        (p,) = problems(small({"a": 1}, eps))
        assert p.startswith("t.yaml:8: endpoints.e1.mac: must be a unicast MAC")


def test_an_unquoted_kvm_mac_is_read_as_a_mac_not_a_base_60_number():
    # YAML 1.1 reads 52:54:00:12:34:56 as the sexagesimal integer 189294496596
    eps = "  e1: {host: h1, kind: vm, network: a, ip: 10.0.0.1/24, mac: 52:54:00:12:34:56}"
    t = topology.parse(small({"a": 1}, eps), "t.yaml")
    assert t.endpoint("e1").mac == "52:54:00:12:34:56"


def test_an_endpoint_port_may_not_look_like_a_tunnel_port():
    eps = "  e1: {host: h1, kind: vm, network: a, ip: 10.0.0.1/24, port: gre-h2}"
    assert problems(small({"a": 1}, eps)) == \
        ["t.yaml:8: endpoints.e1.port: 'gre-h2' is reserved for tunnel ports (gre-HOST)"]


@pytest.mark.parametrize("tunnel,key,ok", [
    ("gre", 2**32 - 1, True), ("gre", 2**32, False),
    ("vxlan", 2**24 - 1, True), ("vxlan", 2**24, False),
    ("geneve", 2**24 - 1, True), ("geneve", 2**24, False),
    ("gre", 0, False), ("gre", -1, False), ("gre", "ten", False), ("gre", "0x10", True),
])
def test_keys_must_fit_the_tunnel_type_and_zero_is_reserved(tunnel, key, ok):
    text = small({"a": key}, tunnel=tunnel)
    if ok:
        assert topology.parse(text, "t.yaml").network("a").key == int(str(key), 0)
    else:
        assert problems(text) == [
            f"t.yaml:6: networks.a.key: must be an integer between 1 and {MAX_KEY[tunnel]} "
            f"for {tunnel} tunnels (0 is reserved), got {key!r}"]


def test_two_networks_may_not_share_a_key():
    assert problems(small({"a": 7, "b": 7})) == \
        ["t.yaml:7: networks.b.key: key 7 is already used by network 'a'"]


def test_a_yaml_syntax_error_names_its_line():
    (p,) = problems("hosts:\n  h1: {underlay_ip: 192.0.2.1\nendpoints: {}\n")
    assert p.startswith("t.yaml:3: (yaml): syntax error:")


def test_a_document_that_is_not_a_mapping_is_refused():
    assert problems("- a\n- b\n") == \
        ["t.yaml: (top): a topology must be a mapping with hosts, networks and endpoints"]


def test_missing_sections_are_reported():
    assert problems("tunnel: gre\n") == ["t.yaml:1: hosts: missing section",
                                         "t.yaml:1: endpoints: missing section"]


BAD_FILES = {
    "empty": "",
    "syntax": "hosts: [",
    "list host": SEED.replace("vm1:  {host: kvm1", "vm1:  {host: [kvm1]"),
    "mapping network": SEED.replace("network: net20, ip: 10.1.2.2", "network: {a: 1}, ip: 10.1.2.2"),
    "complex key": SEED.replace("hosts:\n", "hosts:\n  ? [a]\n  : {underlay_ip: 1.2.3.4}\n"),
    "bad explicit tag": SEED.replace("kind: vm,        network: net10", "kind: vm, !!int network: net10"),
    "numeric name": SEED.replace("kvm2: {underlay_ip", "2: {underlay_ip"),
    "scalar hosts": SEED.replace("hosts:\n", "hosts: 3\nx:\n"),
    "null endpoint": SEED.replace("  blue: {host: kvm2, kind: namespace, network: net10, ip: 10.1.1.1/24}",
                                  "  blue:"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_file_is_refused_with_a_topology_error_never_a_crash_or_a_model(name):
    problems(BAD_FILES[name])


def test_geneve_tunnel_port_names_fit_in_15_bytes():
    for tunnel in ("gre", "vxlan", "geneve"):
        for peer in ("h", "kvm-rack01-node07", "a" * 40):
            assert len(tunnel_port_name(tunnel, peer)) <= 15, (tunnel, peer)


def test_long_host_names_get_distinct_hashed_tunnel_port_names():
    text = small({"a": 1}).replace("h1:", "hypervisor-one:").replace("h2:", "hypervisor-two:") \
        .replace("host: h1", "host: hypervisor-one")
    t = topology.parse(text, "t.yaml")
    one, two = t.tunnel_port("hypervisor-two", "hypervisor-one"), t.tunnel_port("hypervisor-one", "hypervisor-two")
    assert one != two and one.startswith("gre-hyp") and len(one) <= 15 and len(two) <= 15


# -- properties over random small valid topologies ------------------------------

@st.composite
def valid_files(draw):
    tunnel = draw(st.sampled_from(["gre", "vxlan", "geneve"]))
    hosts = [f"h{i}" for i in range(draw(st.integers(1, 4)))]
    n_nets = draw(st.integers(1, 5))
    # keys that collide modulo the VLAN range, sit on its edges, or are random
    key = st.one_of(st.none(), st.sampled_from([1, 907, 4094, 4095, 5000, 9094, 13188]),
                    st.integers(1, MAX_KEY[tunnel]))
    keys = draw(st.lists(key, min_size=n_nets, max_size=n_nets)
                .filter(lambda ks: len([k for k in ks if k]) == len({k for k in ks if k})))
    networks = {f"n{i}": ({"key": k} if k else {}) for i, k in enumerate(keys)}
    endpoints = {}
    for i in range(draw(st.integers(0, 8))):
        net = draw(st.integers(0, n_nets - 1))
        endpoints[f"e{i}"] = {"host": draw(st.sampled_from(hosts)), "kind": "vm",
                              "network": f"n{net}", "ip": f"10.{net}.0.{i + 1}/24"}
    doc = {"tunnel": tunnel,
           "hosts": {h: {"underlay_ip": f"192.0.2.{i + 1}"} for i, h in enumerate(hosts)},
           "networks": networks, "endpoints": endpoints}
    return yaml.safe_dump(doc, sort_keys=draw(st.booleans()))


@settings(max_examples=150, deadline=None)
@given(valid_files())
def test_random_valid_topologies_load_allocate_without_collision_and_load_the_same_twice(text):
    t = topology.parse(text, "r.yaml")
    assert snapshot(t) == snapshot(topology.parse(text, "r.yaml"))
    keys = [n.key for n in t.networks.values()]
    assert len(set(keys)) == len(keys)
    assert all(1 <= k <= MAX_KEY[t.tunnel] for k in keys)
    for host in t.hosts:
        carried = t.networks_on(host)
        assert {n.name for n in carried} == {e.network for e in t.endpoints_on(host)}
        vlans = [t.local_vlan(host, n.name) for n in carried]
        assert len(set(vlans)) == len(vlans)
        assert all(VLAN_MIN <= v <= VLAN_MAX for v in vlans)
        for n in carried:
            if VLAN_MIN <= n.key <= VLAN_MAX:
                assert t.local_vlan(host, n.name) == n.key
    for e in t.endpoints.values():
        assert isinstance(e.ip, ipaddress.IPv4Interface)


def test_storm_control_is_on_by_default_and_set_or_turned_off_by_broadcast_limit():
    assert topology.parse(SEED, "t.yaml").broadcast_limit == topology.DEFAULT_BROADCAST_LIMIT > 0
    assert topology.parse("broadcast_limit: 50\n" + SEED, "t.yaml").broadcast_limit == 50
    assert topology.parse("broadcast_limit: 0\n" + SEED, "t.yaml").broadcast_limit == 0


@pytest.mark.parametrize("value", ["-1", "1.5", "lots", "true", "2000000", "[10]"])
def test_a_broadcast_limit_that_is_not_a_rate_is_refused_naming_the_field(value):
    assert problems(f"broadcast_limit: {value}\n" + SEED) == [
        f"t.yaml:1: broadcast_limit: must be a whole number of frames per second from 0 "
        f"(no limit) to 1000000, not {yaml.safe_load(value)!r}"]


@settings(max_examples=60, deadline=None)
@given(fabrics())
def test_a_topology_rendered_as_a_file_reads_back_as_the_same_fabric(spec):
    from topology import render
    topo = topology.parse(build(spec), "t.yaml")
    again = topology.parse(render.text(render.document(topo)), "again.yaml", topo)
    assert again.views == topo.views and again.allocations() == topo.allocations()
    assert {h.name: (h.dpid, h.underlay_ip) for h in again.hosts.values()} == \
        {h.name: (h.dpid, h.underlay_ip) for h in topo.hosts.values()}


def test_the_seed_rendered_reads_back_with_every_field():
    from topology import render
    seed = topology.load()
    again = topology.parse(render.text(render.document(seed)), "again.yaml", seed)
    assert again.endpoints == seed.endpoints and again.networks == seed.networks
