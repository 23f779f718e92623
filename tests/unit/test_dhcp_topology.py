"""What the topology says about DHCP and MTUs ("Real VMs"): each network's
``dhcp``, ``dns``, ``lease_time`` and ``mtu``, the fabric's ``underlay_mtu``,
each endpoint's ``iface_id``; their defaults, the figures derived from them
(``network_mtu``, ``gateway``) and how a bad value is refused
(``FILE:LINE: dotted.path: message``, never a half-loaded model)."""

import ipaddress

import pytest

import topology
from nsgre_core import pipeline
from topology import diff
from topology.model import (DEFAULT_LEASE_TIME, DEFAULT_UNDERLAY_MTU, DNS_MAX, ENCAP_OVERHEAD,
                            LEASE_TIME_MAX)

HEAD = """\
tunnel: {tunnel}
{top}hosts:
  h1: {{underlay_ip: {ip1}}}
  h2: {{underlay_ip: {ip2}}}
networks:
  n1:
{net}
  n6: {{key: 6, router: r6}}
endpoints:
  a: {{host: h1, kind: vm, network: n1, ip: 10.0.0.1/24{ep}}}
  gw: {{host: h2, kind: namespace, network: n1, ip: 10.0.0.254/24}}
  r6: {{host: h2, kind: vm, network: n6, ip: "2001:db8::1/64"}}
"""
#: The line of networks.n1's first field, and of endpoint a (n1 on one line).
NET_LINE, EP_LINE = 7, 10


def text(net="    key: 1", top="", ep="", tunnel="gre", ip1="198.18.0.1", ip2="198.18.0.2"):
    return HEAD.format(net=net, top=top, ep=ep, tunnel=tunnel, ip1=ip1, ip2=ip2)


def load(*args, **kw):
    return topology.parse(text(*args, **kw), "t.yaml")


def problems(source):
    with pytest.raises(topology.TopologyError) as info:
        topology.parse(source, "t.yaml")
    return info.value.problems


def one_problem(source, where):
    got = problems(source)
    assert len(got) == 1 and got[0].startswith(f"t.yaml:{where}: "), got
    return got[0]


# -- defaults --------------------------------------------------------------------

def test_the_defaults_dhcp_on_no_dns_half_a_day_the_tunnel_safe_mtu():
    topo = load()
    n1 = topo.network("n1")
    assert (n1.dhcp, n1.dns, n1.lease_time, n1.mtu) == (True, (), DEFAULT_LEASE_TIME, None)
    assert DEFAULT_LEASE_TIME == 43200
    assert topo.underlay_mtu == DEFAULT_UNDERLAY_MTU == 1500
    assert topo.network_mtu("n1") == 1458
    assert topo.gateway("n1") is None


def test_the_seed_vms_carry_uuid_iface_ids_and_the_namespaces_their_names():
    import uuid
    topo = topology.load()
    for ep in topo.endpoints.values():
        if ep.kind == "vm":
            assert str(uuid.UUID(ep.iface_id)) == ep.iface_id == ep.declared_iface_id
        else:
            assert ep.iface_id == ep.name and ep.declared_iface_id is None


def test_declared_settings_are_read():
    topo = load(net="    key: 1\n    dhcp: false\n    dns: [192.0.2.53, 198.51.100.53]\n"
                    "    lease_time: 600\n    mtu: 1400\n    router: gw",
                top="underlay_mtu: 9000\n", ep=", iface_id: 0aa620a4-7ccc-4647-9489-c1edcdc010cc")
    n1 = topo.network("n1")
    assert n1.dhcp is False and n1.lease_time == 600 and n1.mtu == 1400
    assert n1.dns == (ipaddress.IPv4Address("192.0.2.53"), ipaddress.IPv4Address("198.51.100.53"))
    assert topo.underlay_mtu == 9000 and topo.network_mtu("n1") == 1400
    assert topo.network_mtu("n6") == 9000 - 42
    assert topo.endpoint("a").iface_id == "0aa620a4-7ccc-4647-9489-c1edcdc010cc"
    assert topo.endpoint("gw").iface_id == "gw"


# -- MTU figures -------------------------------------------------------------------

@pytest.mark.parametrize("tunnel,v4,v6", [("gre", 1458, 1438), ("vxlan", 1450, 1430),
                                          ("geneve", 1450, 1430)])
def test_the_tunnel_safe_mtu_leaves_room_for_the_encapsulation(tunnel, v4, v6):
    ipv4 = load(tunnel=tunnel)
    assert ipv4.network_mtu("n1") == ipv4.endpoint_mtu() == v4 == 1500 - ENCAP_OVERHEAD[tunnel]
    ipv6 = load(tunnel=tunnel, ip2="2001:db8:ffff::2")
    assert ipv6.network_mtu("n1") == ipv6.endpoint_mtu() == v6 == v4 - 20
    # what the emulation asks: the MTU for a given underlay MTU
    assert ipv4.endpoint_mtu(1500) == v4 and ipv4.endpoint_mtu(9000) == 9000 - 1500 + v4


@pytest.mark.parametrize("tunnel,mtu", [("gre", 1458), ("vxlan", 1450), ("geneve", 1450)])
def test_a_network_mtu_is_accepted_up_to_the_tunnel_safe_mtu_and_no_further(tunnel, mtu):
    assert load(net=f"    key: 1\n    mtu: {mtu}", tunnel=tunnel).network_mtu("n1") == mtu
    assert load(net="    key: 1\n    mtu: 576", tunnel=tunnel).network_mtu("n1") == 576
    message = one_problem(text(net=f"    key: 1\n    mtu: {mtu + 1}", tunnel=tunnel),
                          NET_LINE + 1)
    assert f"networks.n1.mtu: must be a whole number of bytes from 576 to {mtu} " in message
    assert f"underlay_mtu 1500 - {1500 - mtu} for {tunnel}" in message


def test_an_ipv6_underlay_lowers_the_highest_network_mtu_by_20():
    source = text(net="    key: 1\n    mtu: 1439", ip1="2001:db8:ffff::1")
    assert "from 576 to 1438 (the tunnel-safe MTU: underlay_mtu 1500 - 62 for gre over " \
           "IPv6)" in one_problem(source, NET_LINE + 1)
    assert load(net="    key: 1\n    mtu: 1438", ip1="2001:db8:ffff::1").network_mtu("n1") == 1438


def test_a_jumbo_underlay_allows_a_jumbo_network_mtu():
    topo = load(net="    key: 1\n    mtu: 8958", top="underlay_mtu: 9000\n")
    assert topo.network_mtu("n1") == 8958 and topo.network_mtu("n6") == 8958


# -- gateway -------------------------------------------------------------------------

def test_the_gateway_is_the_ipv4_address_of_the_networks_router():
    topo = load(net="    key: 1\n    router: gw")
    assert topo.gateway("n1") == "10.0.0.254"
    assert topo.network("n1").router == "gw"


def test_no_router_or_an_ipv6_router_gives_no_gateway():
    topo = load()
    assert topo.gateway("n1") is None
    assert topo.network("n6").router == "r6" and topo.gateway("n6") is None


def test_an_ipv4_router_changes_no_flow_but_may_not_send_ipv6_router_advertisements():
    """An IPv4 router is only DHCP's gateway: nothing in the pipeline changes."""
    plain, routed = load(), load(net="    key: 1\n    router: gw")
    ports = pipeline.offline_ports(plain)
    for host in plain.hosts:
        assert pipeline.compute(plain, host, ports[host]).flows == \
            pipeline.compute(routed, host, ports[host]).flows


# -- bad values, each named by its path and line -----------------------------------------

@pytest.mark.parametrize("value", ["1279", "9217", "0", "'1500'", "true", "1500.5", "null"])
def test_a_bad_underlay_mtu_is_refused(value):
    message = one_problem(text(top=f"underlay_mtu: {value}\n"), 2)
    assert "underlay_mtu: must be a whole number of bytes from 1280 to 9216, not " in message


@pytest.mark.parametrize("value", ["1", "'true'", "maybe", "null", "[true]"])
def test_a_dhcp_that_is_not_true_or_false_is_refused(value):
    message = one_problem(text(net=f"    key: 1\n    dhcp: {value}"), NET_LINE + 1)
    assert "networks.n1.dhcp: must be true or false, not " in message


@pytest.mark.parametrize("value,path,why", [
    ("192.0.2.53", "dns", "must be a list of IPv4 addresses"),
    ("{a: 1}", "dns", "must be a list of IPv4 addresses"),
    ("[192.0.2.53, 10.0.0.1/24]", "dns[1]", "must be an IPv4 address like 192.0.2.53"),
    ("['2001:db8::53']", "dns[0]", "must be an IPv4 address"),
    ("[5]", "dns[0]", "must be an IPv4 address"),
    ("[dns.example]", "dns[0]", "must be an IPv4 address"),
    ("[192.0.2.53, 192.0.2.53]", "dns[1]", "192.0.2.53 is already listed"),
    ("[" + ", ".join(f"192.0.2.{i}" for i in range(1, DNS_MAX + 2)) + "]", "dns",
     f"at most {DNS_MAX} DNS servers, got {DNS_MAX + 1}"),
])
def test_a_bad_dns_list_is_refused(value, path, why):
    message = one_problem(text(net=f"    key: 1\n    dns: {value}"), NET_LINE + 1)
    assert f"networks.n1.{path}: {why}" in message


def test_eight_dns_servers_are_accepted():
    servers = [f"192.0.2.{i}" for i in range(1, DNS_MAX + 1)]
    topo = load(net=f"    key: 1\n    dns: [{', '.join(servers)}]")
    assert [str(a) for a in topo.network("n1").dns] == servers


@pytest.mark.parametrize("value", ["59", str(LEASE_TIME_MAX + 1), "0", "-1", "'1h'", "true",
                                   "600.0", "null"])
def test_a_bad_lease_time_is_refused(value):
    message = one_problem(text(net=f"    key: 1\n    lease_time: {value}"), NET_LINE + 1)
    assert "networks.n1.lease_time: must be a whole number of seconds from 60 to " \
           "31536000 (a year), not " in message


@pytest.mark.parametrize("value", ["60", str(LEASE_TIME_MAX)])
def test_the_lease_time_bounds_are_accepted(value):
    assert load(net=f"    key: 1\n    lease_time: {value}").network("n1").lease_time == int(value)


@pytest.mark.parametrize("value", ["575", "0", "'1400'", "true", "1400.0", "null", "[1400]"])
def test_a_bad_network_mtu_is_refused(value):
    message = one_problem(text(net=f"    key: 1\n    mtu: {value}"), NET_LINE + 1)
    assert message.startswith(f"t.yaml:{NET_LINE + 1}: networks.n1.mtu: must be a whole "
                              "number of bytes")


@pytest.mark.parametrize("value", ["''", "'has space'", "\"tab\\there\"", "5", "[a]",
                                   "'" + "x" * 256 + "'", "'caf\u00e9'", "null"])
def test_a_bad_iface_id_is_refused(value):
    message = one_problem(text(ep=f", iface_id: {value}"), EP_LINE)
    assert "endpoints.a.iface_id: must be 1 to 255 printable ASCII characters without " \
           "spaces" in message


def test_the_longest_and_oddest_iface_ids_are_accepted():
    for value in ("x" * 255, "vnet0~!#$%&()*+,-./:;<=>?@[]^_`{|}", "0"):
        quoted = "'" + value.replace("'", "''") + "'"
        assert load(ep=f", iface_id: {quoted}").endpoint("a").iface_id == value


def test_two_endpoints_declaring_one_iface_id_are_refused_naming_both():
    source = text(ep=", iface_id: same").replace(
        "ip: 10.0.0.254/24}", "ip: 10.0.0.254/24, iface_id: same}")
    assert problems(source) == [
        f"t.yaml:{EP_LINE + 1}: endpoints.gw.iface_id: 'same' is already the iface_id of "
        "endpoint 'a'"]


def test_an_iface_id_that_is_another_endpoints_name_is_refused_naming_both():
    assert problems(text(ep=", iface_id: gw")) == [
        f"t.yaml:{EP_LINE}: endpoints.a.iface_id: 'gw' is already the name (its default "
        "iface_id) of endpoint 'gw'"]
    # its own name is its own
    assert load(ep=", iface_id: a").endpoint("a").iface_id == "a"


@pytest.mark.parametrize("section,typo,hint", [
    ("net", "lease: 60", "lease_time"), ("net", "dsn: []", "dns"), ("net", "dchp: true", "dhcp"),
    ("ep", "iface-id: x", "iface_id"), ("top", "underlay_mt: 1500", "underlay_mtu"),
])
def test_a_misspelt_field_gets_a_did_you_mean(section, typo, hint):
    if section == "net":
        source, where = text(net=f"    key: 1\n    {typo}"), NET_LINE + 1
    elif section == "ep":
        source, where = text(ep=", " + typo), EP_LINE
    else:
        source, where = text(top=typo + "\n"), 2
    message = one_problem(source, where)
    assert f"unknown field (did you mean '{hint}'?)" in message


def test_every_bad_value_is_reported_at_once():
    source = text(net="    key: 1\n    dhcp: 1\n    dns: [x]\n    lease_time: 1\n    mtu: 1",
                  top="underlay_mtu: 1\n", ep=", iface_id: ''")
    assert [m.split(": ")[1] for m in problems(source)] == [
        "underlay_mtu", "networks.n1.dhcp", "networks.n1.dns[0]", "networks.n1.lease_time",
        "networks.n1.mtu", "endpoints.a.iface_id"]


# -- the network's view: what the pipeline reads ----------------------------------------

def test_dhcp_is_part_of_the_networks_view_and_a_change_of_it_is_a_change():
    on, off = load(), load(net="    key: 1\n    dhcp: false")
    assert on.views["n1"].dhcp is True and off.views["n1"].dhcp is False
    assert diff.changed_networks(on, off) == {"n1"}
    assert diff.hosts_touched(on, off, {"n1"}) == {"h1": {"n1"}, "h2": {"n1"}}


def test_dns_lease_and_mtu_change_no_network_view():
    """The pipeline reads none of them: a change of them sends no flow."""
    old = load()
    new = load(net="    key: 1\n    dns: [192.0.2.53]\n    lease_time: 600\n    mtu: 1400")
    assert diff.changed_networks(old, new) == set()
