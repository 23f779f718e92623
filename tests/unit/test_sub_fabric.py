"""A controller of some hosts holds only their sub-fabric (every host, the
networks those hosts carry, those networks' members): each of its hosts
gets the very pipeline, binding and DHCP answers it would get from the
whole fabric, so sharing hosts out between controllers changes no flow."""

import yaml
from hypothesis import given, settings, strategies as st

import topology
from nsgre_core import binding, pipeline
from nsgre_core.pipeline import offline_ports


@st.composite
def fabrics_with_trunks(draw):
    """Random fabrics with trunks, some of whose networks a host carries
    and some it does not."""
    tunnel = draw(st.sampled_from(["gre", "vxlan"]))
    n_hosts = draw(st.integers(2, 5))
    n_nets = draw(st.integers(1, 8))
    hosts = {f"h{i}": {"underlay_ip": f"198.18.0.{i + 1}"} for i in range(n_hosts)}
    networks = {f"n{i}": {} for i in range(n_nets)}
    endpoints, address = {}, iter(range(1, 250))
    for i in range(draw(st.integers(1, 14))):
        net = draw(st.integers(0, n_nets - 1))
        endpoints[f"e{i}"] = {"host": f"h{draw(st.integers(0, n_hosts - 1))}",
                              "kind": draw(st.sampled_from(["vm", "namespace"])),
                              "network": f"n{net}", "ip": f"10.0.0.{next(address)}/24"}
    for i in range(draw(st.integers(0, 3))):
        nets = draw(st.lists(st.integers(0, n_nets - 1), min_size=1, max_size=3, unique=True))
        endpoints[f"t{i}"] = {"host": f"h{draw(st.integers(0, n_hosts - 1))}", "kind": "vm",
                              "vlans": {100 + k: {"network": f"n{net}",
                                                  "ip": f"10.0.0.{next(address)}/24"}
                                        for k, net in enumerate(nets)}}
    for i, net in enumerate(networks):
        if draw(st.booleans()):
            members = [e for e, body in endpoints.items()
                       if body.get("network") == net and "vlans" not in body]
            if members:
                networks[net]["router"] = members[0]
    spec = {"tunnel": tunnel, "hosts": hosts, "networks": networks, "endpoints": endpoints}
    topo = topology.parse(yaml.safe_dump(spec, sort_keys=False), "random.yaml")
    mine = draw(st.sets(st.sampled_from(sorted(hosts)), max_size=n_hosts))
    return topo, mine


@settings(max_examples=150, deadline=None)
@given(fabrics_with_trunks())
def test_each_host_of_a_shard_gets_the_same_pipeline_from_its_sub_fabric(case):
    topo, mine = case
    sub = topo.sub_fabric(mine)
    ports = offline_ports(topo)
    for host in mine:
        assert pipeline.compute(sub, host, ports[host]) == \
            pipeline.compute(topo, host, ports[host]), host
        assert binding.index(sub, host) == binding.index(topo, host), host
        assert sub.endpoints_on(host) == topo.endpoints_on(host)
        for net in sub.networks:
            assert sub.views[net] == topo.views[net], net


@settings(max_examples=60, deadline=None)
@given(fabrics_with_trunks())
def test_a_sub_fabric_holds_only_what_its_hosts_carry(case):
    topo, mine = case
    sub = topo.sub_fabric(mine)
    carried = {n.name for h in mine for n in topo.networks_on(h)}
    assert set(sub.hosts) == set(topo.hosts)              # every host is a tunnel peer
    assert set(sub.networks) == carried
    assert set(sub.endpoints) == {e.name for e in topo.endpoints.values()
                                  if set(e.networks) & carried}
    for e in sub.endpoints.values():
        assert set(e.networks) <= carried
        assert set(e.networks) == set(topo.endpoint(e.name).networks) & carried
    whole = topo.sub_fabric(topo.hosts)            # all but the networks nobody carries
    assert whole.views == {n: v for n, v in topo.views.items() if v.carrying}


def test_a_trunk_elsewhere_is_seen_only_in_the_networks_the_shard_carries():
    from test_trunks import TRUNKS          # the router on kvm1, in net10 and net20
    text = "".join(line for line in TRUNKS.splitlines(keepends=True)
                   if not line.lstrip().startswith(("other:", "vm2:")))
    topo = topology.parse(text, "t.yaml")    # kvm2: blue alone, in net10
    sub = topo.sub_fabric(["kvm2"])
    assert list(sub.networks) == ["net10"]
    assert [(a.network, a.vlan) for a in sub.endpoint("router").attachments] == [("net10", 100)]
    assert sub.local_vlans == {k: v for k, v in topo.local_vlans.items() if k[1] == "net10"}
    assert topo.sub_fabric([]).endpoints == {} and set(topo.sub_fabric([]).hosts) == {"kvm1", "kvm2"}
