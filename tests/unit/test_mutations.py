"""Any single broken field in an otherwise valid file is refused with an
error that names exactly that field, and no model is returned."""

import pytest
import yaml
from hypothesis import given, settings, strategies as st

import topology
from fabrics import fabrics


def _first(d):
    return sorted(d)[0]


MUTATIONS = {
    "unknown host": lambda s: _ep(s, "host", "nohost", "endpoints.{e}.host"),
    "unknown network": lambda s: _ep(s, "network", "nonet", "endpoints.{e}.network"),
    "bad ip": lambda s: _ep(s, "ip", "10.0.0.300/24", "endpoints.{e}.ip"),
    "ip without prefix": lambda s: _ep(s, "ip", "10.0.0.3", "endpoints.{e}.ip"),
    "bad kind": lambda s: _ep(s, "kind", "container", "endpoints.{e}.kind"),
    "bad mac": lambda s: _ep(s, "mac", "01:00:5e:00:00:01", "endpoints.{e}.mac"),
    "long port": lambda s: _ep(s, "port", "p" * 16, "endpoints.{e}.port"),
    "unknown endpoint field": lambda s: _ep(s, "vlan", 5, "endpoints.{e}.vlan"),
    "key zero": lambda s: _net(s, {"key": 0}),
    "key too big": lambda s: _net(s, {"key": 2**32}),
    "unknown network field": lambda s: _net(s, {"kee": 5}, ".kee"),
    "bad underlay": lambda s: _host(s, "underlay_ip", "198.18.0.256"),
    "bad dpid": lambda s: _host(s, "dpid", -1),
    "unknown host field": lambda s: _host(s, "mgmt_ip", "198.18.1.1"),
    "bad tunnel": lambda s: (s.update(tunnel="ipip"), "tunnel")[1],
}


def _ep(spec, field, value, path):
    if not spec["endpoints"]:
        spec["endpoints"]["x"] = {"host": _first(spec["hosts"]), "kind": "vm",
                                  "network": _first(spec["networks"]), "ip": "10.0.0.1/24"}
    name = _first(spec["endpoints"])
    spec["endpoints"][name][field] = value
    return path.format(e=name)


def _net(spec, body, suffix=".key"):
    name = _first(spec["networks"])
    spec["networks"][name] = body
    return f"networks.{name}{suffix}"


def _host(spec, field, value):
    name = _first(spec["hosts"])
    spec["hosts"][name][field] = value
    return f"hosts.{name}.{field}"


@settings(max_examples=200, deadline=None)
@given(fabrics(), st.sampled_from(sorted(MUTATIONS)))
def test_a_single_mutation_is_refused_naming_the_mutated_field(spec, mutation):
    path = MUTATIONS[mutation](spec)
    with pytest.raises(topology.TopologyError) as err:
        topology.parse(yaml.safe_dump(spec, sort_keys=False), "t.yaml")
    assert any(f": {path}: " in problem for problem in err.value.problems), \
        (mutation, path, err.value.problems)
    assert all(problem.startswith("t.yaml") for problem in err.value.problems)


@settings(max_examples=100, deadline=None)
@given(fabrics(), st.data())
def test_duplicating_a_unique_value_is_refused_on_the_second_element(spec, data):
    kind = data.draw(st.sampled_from(["underlay_ip", "key", "mac"]))
    if kind == "underlay_ip":
        spec["hosts"]["zz"] = {"underlay_ip": spec["hosts"][_first(spec["hosts"])]["underlay_ip"]}
        path = "hosts.zz.underlay_ip"
    elif kind == "key":
        spec["networks"][_first(spec["networks"])] = {"key": 77}
        spec["networks"]["zz"] = {"key": 77}
        path = "networks.zz.key"
    else:
        host, net = _first(spec["hosts"]), _first(spec["networks"])
        for name, ip in (("za", "10.8.0.1/24"), ("zz", "10.8.0.2/24")):
            spec["endpoints"][name] = {"host": host, "kind": "vm", "network": net, "ip": ip,
                                       "mac": "02:00:00:00:00:77"}
        path = "endpoints.zz.mac"
    with pytest.raises(topology.TopologyError) as err:
        topology.parse(yaml.safe_dump(spec, sort_keys=False), "t.yaml")
    assert any(f": {path}: " in problem for problem in err.value.problems), err.value.problems
