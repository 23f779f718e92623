"""The offline simulator and ``nsgre trace`` agree with the real thing: with the switches' own port numbers, every bridge visit it predicts
hits the same tables and flows (by cookie) as ``ovs-appctl ofproto/trace``
on the real bridge, drops where OVS drops, and its verdict for every pair
of endpoints is what real packets do."""

import json
import re

import pytest

import topology
from mininet_scenarios.check import check, interfaces
from nsgre_tools import simulator as sim
from nsgre_tools.trace import trace




def real_ports(emu, host):
    rows = json.loads(emu.ovs[host].vsctl("--format=json", "--columns=name,ofport",
                                          "list", "interface"))["data"]
    bridge_ports = set(emu.ovs[host].vsctl("list-ports", "br-int").split())
    return {name: ofport for name, ofport in rows if name in bridge_ports}


def ovs_flow(pkt: sim.Packet) -> str:
    fields = [f"in_port={pkt.in_port}", f"dl_src={pkt.eth_src}", f"dl_dst={pkt.eth_dst}"]
    if pkt.vlans:
        fields.append(f"dl_vlan={pkt.vlans[0]}")
    if pkt.tunnel_id:
        fields.append(f"tun_id={pkt.tunnel_id:#x}")
    fields.append(f"dl_type={pkt.eth_type:#06x}")
    for name, ovs_name in (("ipv4_src", "nw_src"), ("ipv4_dst", "nw_dst"), ("ip_proto", "nw_proto"),
                           ("arp_op", "arp_op"), ("arp_spa", "arp_spa"), ("arp_tpa", "arp_tpa"),
                           ("arp_sha", "arp_sha"), ("arp_tha", "arp_tha")):
        value = getattr(pkt, name)
        if value is not None:
            fields.append(f"{ovs_name}={value}")
    return ",".join(fields)


def ofproto_trace(emu, host, pkt):
    """(table, cookie) of every flow OVS hits on br-int, and whether the
    datapath drops the packet."""
    out = emu.ovs[host].appctl("ofproto/trace", "br-int", ovs_flow(pkt))
    section = out.split('bridge("br-int")', 1)[1].split("bridge(", 1)[0]
    steps = [(int(t), int(c, 16)) for t, c in
             re.findall(r"^\s{0,3}(\d+)\. .*cookie (0x[0-9a-f]+)$", section, re.M)]
    return steps, "Datapath actions: drop" in out


def frames(topo, ports):
    """For every ordered pair of access endpoints: unicast IPv4 to the
    destination's MAC, an ARP request for its IP, and the same unicast
    from a forged source MAC."""
    eps = [e for e in topo.endpoints.values() if not e.trunk]
    for src in eps:
        port = ports[src.host][src.port]
        ip = str(src.ip.ip)
        for dst in eps:
            if dst is src:
                continue
            base = dict(in_port=port, eth_src=src.mac, ipv4_src=ip)
            yield src, dst, "icmp", sim.Packet(eth_dst=dst.mac, eth_type=0x0800,
                                               ipv4_dst=str(dst.ip.ip), ip_proto=1, **base)
            yield src, dst, "arp", sim.Packet(
                in_port=port, eth_src=src.mac, eth_dst=sim.BROADCAST, eth_type=0x0806,
                arp_op=1, arp_spa=ip, arp_sha=src.mac, arp_tha="00:00:00:00:00:00",
                arp_tpa=str(dst.ip.ip))
            yield src, dst, "spoofed", sim.Packet(
                in_port=port, eth_src="02:66:66:66:66:66", eth_dst=dst.mac, eth_type=0x0800,
                ipv4_src=ip, ipv4_dst=str(dst.ip.ip), ip_proto=1)


@pytest.mark.parametrize("which", ["seed", "three_hosts"])
def test_the_simulator_hits_the_same_flows_as_ofproto_trace_and_real_packets_agree(
        which, up, request):
    topo = topology.load() if which == "seed" else topology.load(request.getfixturevalue(which))
    emu = up(topo)
    ports = {h: real_ports(emu, h) for h in topo.hosts}
    compared = 0
    for src, dst, kind, packet in frames(topo, ports):
        run = sim.inject(topo, ports, src.host, packet)
        for host, pkt, res in run.runs:
            predicted = [(st.table, st.flow.cookie) for st in res.trace if st.flow is not None]
            steps, dropped = ofproto_trace(emu, host, pkt)
            assert steps == predicted, (kind, src.name, dst.name, host)
            assert dropped == (not res.outputs), (kind, src.name, dst.name, host)
            compared += 1
        same = src.network == dst.network
        if kind == "icmp":
            assert (run.receivers == [dst.name]) == same, (src.name, dst.name)
        if kind == "arp":
            answered = [d for d in run.deliveries if d.endpoint == src.name
                        and d.packet.arp_op == 2]
            assert bool(answered) == (same or topo.endpoint_by_ip(src.network, str(dst.ip.ip))
                                      is not None), (src.name, dst.name)
    assert compared >= 3 * len(topo.endpoints)

    # Real packets: every pair's real verdict is the simulator's verdict.
    real = check(topo)
    units = {i.label: i for i in interfaces(topo)}
    for (s, d), verdict in real.matrix.items():
        src, dst = units[s], units[d]
        ep = topo.endpoint(src.ns)
        packet = sim.Packet(in_port=ports[ep.host][ep.port], eth_src=src.mac, eth_dst=dst.mac,
                            vlans=(src.vlan,) if src.vlan else (), eth_type=0x0800,
                            ipv4_src=str(src.ip.ip), ipv4_dst=str(dst.ip.ip), ip_proto=17)
        run = sim.inject(topo, ports, ep.host, packet)
        arrived = any(x.endpoint == dst.ns and (x.packet.vlans[:1] == (dst.vlan,)
                                                 if dst.vlan else x.packet.vlans == ())
                      for x in run.deliveries)
        assert arrived == (verdict == "ok"), (s, d, verdict)
        if src.vlan is None and dst.vlan is None:
            # and what `nsgre trace SRC DST` says, on the switches' port numbers
            said = trace(topo, src.ns, dst.ns, "udp:7", ports=ports)
            assert (dst.ns in said.delivered_to) == (verdict == "ok"), (s, d, said.verdict)
