"""``nsgre trace``: a hop-by-hop explanation of where a packet goes, computed
from the model alone.  Specifications on the seed and on a three-host fabric
whose networks reuse the same addresses and that has a trunk endpoint."""

import json

import pytest

import topology
from nsgre_core import pipeline as pl
from nsgre_tools import simulator as sim
from nsgre_core import tables as T
from nsgre_tools import trace
from nsgre_tools.cli import main
from nsgre_core.flows import Flow

THREE = """\
hosts:
  h1: {underlay_ip: 198.18.0.1}
  h2: {underlay_ip: 198.18.0.2}
  h3: {underlay_ip: 198.18.0.3}
networks:
  red:  {key: 100}
  blue: {key: 5000}
endpoints:
  a1: {host: h1, kind: vm,        network: red,  ip: 10.0.0.1/24}
  a2: {host: h2, kind: namespace, network: red,  ip: 10.0.0.2/24}
  a3: {host: h3, kind: vm,        network: red,  ip: 10.0.0.3/24}
  b1: {host: h1, kind: vm,        network: blue, ip: 10.0.0.2/24}
  b3: {host: h3, kind: namespace, network: blue, ip: 10.0.0.1/24}
  r2: {host: h2, kind: vm, vlans: {7: {network: red, ip: 10.0.0.254/24},
                                   8: {network: blue, ip: 10.0.0.254/24}}}
"""


@pytest.fixture
def seed():
    return topology.load(None)


@pytest.fixture
def three():
    return topology.parse(THREE, "t.yaml")


@pytest.fixture
def three_file(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(THREE)
    return str(path)


def run_cli(capsys, *argv):
    rc = main(["trace", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def verdict(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("verdict: "))


# -- the seed ---------------------------------------------------------------------

def test_same_network_icmp_crosses_the_gre_tunnel_with_the_networks_key(capsys, seed):
    rc, out, _ = run_cli(capsys, "vm1", "blue")
    assert rc == 0
    assert verdict(out) == "verdict: delivered to blue"
    assert "host kvm1 (br-int), in_port 2 (p-vm1 = endpoint vm1)" in out
    assert "-> tunnel gre-kvm2 to kvm2, key 0xa" in out
    assert "host kvm2 (br-int), in_port 3 (gre-kvm1 = tunnel from kvm1, key 0xa)" in out
    assert "-> delivered to blue (p-blue)" in out
    assert "set tunnel key 10 (net10)" in out
    for table in T.TABLES:                    # every step is named after its table
        if f"table {table.id} " in out:
            assert f"table {table.id} {table.name}" in out
    assert f"table {T.CLASSIFY.id} classify" in out and f"table {T.FORWARD.id} forward" in out
    # cookies decoded to what they serve
    assert "(endpoint vm1)" in out and "(endpoint blue)" in out and "(network net10)" in out


def test_the_trace_object_says_the_same(seed):
    t = trace.trace(seed, "vm1", "blue")
    assert [h.host for h in t.hops] == ["kvm1", "kvm2"]
    assert t.delivered_to == ["blue"] and t.expected is True and not t.leak
    assert t.hops[0].outputs[0].kind == "tunnel" and t.hops[0].outputs[0].key == 10


def test_cross_network_is_dropped_and_the_verdict_says_where(capsys, seed):
    rc, out, _ = run_cli(capsys, "vm1", "vm2")
    assert rc == 0
    v = verdict(out)
    assert v.startswith("verdict: dropped at kvm1 table ")
    assert "vm2" in v and "net20" in v
    assert "vm2 is not in net10: not reached, as it should be" in out
    assert "LEAK" not in out


def test_an_ip_of_another_network_reaches_nobody_holding_it(capsys, seed):
    # 10.1.2.2 is vm2's address, but in net20: from vm1 (net10) it is nobody's
    rc, out, _ = run_cli(capsys, "vm1", "10.1.2.2")
    assert rc == 0
    assert "no endpoint has 10.1.2.2 in net10 (it is vm2's in net20)" in out
    assert "delivered to vm2" not in out
    assert verdict(out).startswith("verdict: dropped at kvm1")


def test_a_mac_of_another_networks_endpoint_is_dropped(capsys, seed):
    rc, out, _ = run_cli(capsys, "vm1", seed.endpoint("vm2").mac, "--proto", "udp:53")
    assert rc == 0
    assert verdict(out).startswith("verdict: dropped at kvm1")
    assert "is vm2's, which is not in net10" in out


def test_arp_for_a_same_network_ip_is_answered_by_or_reaches_blue(capsys, seed):
    rc, out, _ = run_cli(capsys, "vm1", "blue", "--proto", "arp")
    assert rc == 0
    v = verdict(out)
    assert "blue" in v
    assert v.startswith("verdict: answered: 10.1.1.1 is at ") or "delivered to" in v
    assert "who has 10.1.1.1? tell 10.1.1.2" in out


def test_arp_packet_is_built_from_the_model(seed):
    t = trace.trace(seed, "vm1", "blue", "arp")
    vm1 = seed.endpoint("vm1")
    assert t.packet["eth_dst"] == "ff:ff:ff:ff:ff:ff" and t.packet["eth_type"] == "0x0806"
    assert t.packet["arp_op"] == 1 and t.packet["arp_tpa"] == "10.1.1.1"
    assert t.packet["arp_spa"] == "10.1.1.2" and t.packet["arp_sha"] == vm1.mac
    assert t.packet["arp_tha"] == "00:00:00:00:00:00" and t.packet["eth_src"] == vm1.mac


def test_tcp_and_udp_set_protocol_and_port(seed):
    t = trace.trace(seed, "vm1", "blue", "tcp:22")
    assert (t.packet["ip_proto"], t.packet["tcp_dst"]) == (6, 22)
    assert t.packet["ipv4_src"] == "10.1.1.2" and t.packet["ipv4_dst"] == "10.1.1.1"
    t = trace.trace(seed, "vm1", "blue", "udp:53")
    assert (t.packet["ip_proto"], t.packet["udp_dst"]) == (17, 53)
    assert t.delivered_to == ["blue"]


def test_a_tagged_frame_from_an_access_endpoint_is_dropped_at_classify(capsys, seed):
    rc, out, _ = run_cli(capsys, "vm1", "blue", "--vlan", "10")
    assert rc == 0
    assert verdict(out).startswith(f"verdict: dropped at kvm1 table {T.CLASSIFY.id} (classify): ")
    assert "tagged frame (VLAN 10) on vm1's access port" in out


def test_json_output_parses_and_carries_the_verdict(capsys, seed):
    rc, out, _ = run_cli(capsys, "vm1", "blue", "--json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["verdict"]["text"] == "delivered to blue"
    assert doc["verdict"]["delivered_to"] == ["blue"]
    assert [h["host"] for h in doc["hops"]] == ["kvm1", "kvm2"]
    assert doc["hops"][0]["steps"][0]["table_name"] == "classify"
    assert doc["hops"][0]["outputs"][0] == {
        "port": 3, "name": "gre-kvm2", "kind": "tunnel", "endpoint": None, "peer": "kvm2",
        "key": 10, "vlans": [], "arrived": True}
    rc, out, _ = run_cli(capsys, "vm1", "vm2", "--json")
    doc = json.loads(out)
    assert doc["verdict"]["dropped"]["host"] == "kvm1" and doc["verdict"]["delivered_to"] == []


def test_unknown_endpoint_exits_1_with_did_you_mean(capsys, seed):
    rc, out, err = run_cli(capsys, "vm1", "bleu")
    assert rc == 1 and out == ""
    assert "did you mean 'blue'?" in err
    rc, _, err = run_cli(capsys, "vm3", "blue")
    assert rc == 1 and "unknown source endpoint 'vm3'" in err


@pytest.mark.parametrize("proto", ["ping", "tcp", "tcp:0", "udp:70000", "icmp:1"])
def test_a_bad_protocol_exits_1(capsys, proto):
    rc, _, err = run_cli(capsys, "vm1", "blue", "--proto", proto)
    assert rc == 1 and "bad --proto" in err


def test_a_simulation_error_is_reported_not_raised(capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise sim.SimulationError("unsupported action ('frobnicate',)")
    monkeypatch.setattr(sim, "inject", broken)
    rc, out, err = run_cli(capsys, "vm1", "blue")
    assert rc == 1 and out == ""
    assert "frobnicate" in err and "Traceback" not in err


def test_a_leak_is_called_a_leak(seed, monkeypatch):
    """A broken pipeline that tunnels vm2's MAC from net10 under net20's key."""
    real = pl.compute
    vm2 = seed.endpoint("vm2")

    def leaky(topo, host, ports):
        hp = real(topo, host, ports)
        if host != "kvm1":
            return hp
        bad = Flow.make(T.FORWARD.id, 200, {"eth_dst": vm2.mac},
                        (("pop_vlan",), ("set_field", "tunnel_id", 20),
                         ("output", ports["gre-kvm2"])))
        return pl.HostPipeline(host, hp.flows + (bad,), hp.groups)

    monkeypatch.setattr(pl, "compute", leaky)
    t = trace.trace(seed, "vm1", "vm2")
    assert t.delivered_to == ["vm2"] and t.leak
    assert any("LEAK" in n for n in t.notes)
    assert "LEAK" in t.text()


# -- three hosts, overlapping addresses, a trunk --------------------------------------

def test_an_ip_resolves_in_the_senders_network_where_addresses_overlap(three):
    # 10.0.0.2 is a2 in red and b1 in blue
    assert trace.trace(three, "a1", "10.0.0.2").delivered_to == ["a2"]
    assert trace.trace(three, "b3", "10.0.0.2").delivered_to == ["b1"]
    t = trace.trace(three, "b1", "10.0.0.3")         # a3's address, in red only
    assert "a3" not in t.delivered_to and t.dropped is not None


def test_broadcast_floods_the_senders_network_only(three):
    t = trace.trace(three, "a1", "ff:ff:ff:ff:ff:ff", "udp:5353")     # (67 is DHCP's)
    assert t.verdict == "delivered to a2, a3, r2.7"
    assert sorted(h.host for h in t.hops) == ["h1", "h2", "h3"]


def test_a_trunk_sends_on_the_guest_vlan_given(capsys, three_file):
    rc, out, _ = run_cli(capsys, "-t", three_file, "r2", "a3", "--vlan", "7")
    assert rc == 0
    assert "sent by r2 on h2 port p-r2 tagged VLAN 7 in red" in out
    assert verdict(out) == "verdict: delivered to a3"
    rc, out, _ = run_cli(capsys, "-t", three_file, "r2", "b3", "--vlan", "8")
    assert verdict(out) == "verdict: delivered to b3"
    # on red's VLAN, b3 (blue) is out of reach
    rc, out, _ = run_cli(capsys, "-t", three_file, "r2", "b3", "--vlan", "7")
    assert rc == 0 and "delivered to b3" not in out and "LEAK" not in out


def test_a_trunk_on_a_vlan_it_does_not_have_is_dropped_at_classify(three):
    t = trace.trace(three, "r2", "a1", vlan=9)
    assert t.verdict.startswith(f"dropped at h2 table {T.CLASSIFY.id} (classify): VLAN 9 is not "
                                "one of r2's guest VLANs")


def test_a_trunk_picks_the_one_network_it_shares_with_dst(three):
    assert trace.trace(three, "r2", "a1").delivered_to == ["a1"]
    assert trace.trace(three, "r2", "b1").delivered_to == ["b1"]
    with pytest.raises(trace.TraceError, match="--vlan"):
        trace.trace(three, "r2", "10.0.0.1")


def test_frames_to_a_trunk_arrive_on_its_guest_vlan(three):
    t = trace.trace(three, "b3", "r2")
    assert t.verdict == "delivered to r2.8"


def test_nsgre_pipeline_and_nsgre_trace_number_the_ports_alike(tmp_path, capsys):
    """The README says trace runs the flows pipeline shows: with endpoints
    a on port zz0 and b on port p-b, both number p-b=1 and zz0=2."""
    path = tmp_path / "ports.yaml"
    path.write_text("hosts:\n  h1: {underlay_ip: 198.18.0.1}\nnetworks:\n  n: {key: 5}\n"
                    "endpoints:\n"
                    "  a: {host: h1, kind: vm, network: n, ip: 10.0.0.1/24, port: zz0}\n"
                    "  b: {host: h1, kind: vm, network: n, ip: 10.0.0.2/24, port: p-b}\n")
    assert main(["pipeline", "h1", "-t", str(path)]) == 0
    legend = capsys.readouterr().out.splitlines()[0]
    assert legend == "# ports: p-b=1, zz0=2"
    assert main(["trace", str(path), "a", "b"]) == 0
    out = capsys.readouterr().out
    assert "in_port 2 (zz0 = endpoint a)" in out and "delivered to b (p-b)" in out
