"""How many flows and groups one host's bridge needs, against a design
that floods every broadcast to every tunnel.

    python bench/bench_flows.py [--no-write]

Pure computation (pipeline.compute on generated topologies), so the counts
are exact and the same on any machine.  For each size it reports, for the
busiest host: flows, groups and group buckets of nsgre's pipeline, and the
tunnel copies one broadcast frame from that host costs; next to it what a
flood-to-all-tunnels design (the source post's GRE trunk with NORMAL, or a
controller that floods unknown destinations everywhere) needs: no per-MAC
flows, but every broadcast goes to every peer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import topology                                   # noqa: E402
from nsgre_core import pipeline
from nsgre_core.pipeline import offline_ports
from nsgre_tools import simulator         # noqa: E402
from gen_topology import generate                 # noqa: E402
from report import write_section                  # noqa: E402

SIZES = [  # hosts, networks, endpoints
    (2, 2, 4), (4, 100, 400), (8, 100, 800), (8, 1000, 4000), (16, 1000, 4000),
    (64, 10_000, 40_000)]


def measure(hosts, networks, endpoints):
    topo = topology.parse(generate(hosts, networks, endpoints, seed=1), "bench.yaml")
    ports = offline_ports(topo)
    busiest = max(topo.hosts, key=lambda h: (len(topo.networks_on(h)), h))
    bridge = pipeline.compute(topo, busiest, ports[busiest])
    nets = topo.networks_on(busiest)
    local = len(topo.endpoints_on(busiest))
    peers = len(topo.peers(busiest))
    copies = sum(len(topo.hosts_carrying(n.name)) - 1 for n in nets)
    return {
        "size": f"{hosts} hosts, {networks:,} networks, {endpoints:,} endpoints",
        "host": busiest, "networks": len(nets), "local": local, "peers": peers,
        "flows": len(bridge.flows), "groups": len(bridge.groups),
        "buckets": sum(len(g.buckets) for g in bridge.groups),
        "copies": copies / len(nets), "flood_copies": peers,
    }


def render(rows) -> str:
    lines = [
        "## Flows and groups per host",
        "",
        "`bench/bench_flows.py` (exact counts from `pipeline.compute`, the busiest host of",
        "each generated fabric). *Tunnel copies* is what one broadcast frame from that host",
        "costs on the underlay, averaged over its networks: nsgre sends it only to the hosts",
        "that carry the network; flooding to all tunnels sends it to every peer.",
        "",
        "| fabric | host: networks, local endpoints, peers | flows | groups | buckets "
        "| tunnel copies per broadcast | flood-to-all copies | ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r["copies"] / r["flood_copies"] if r["flood_copies"] else 1
        lines.append(f"| {r['size']} | {r['networks']}, {r['local']}, {r['peers']} "
                     f"| {r['flows']:,} | {r['groups']:,} | {r['buckets']:,} "
                     f"| {r['copies']:.2f} | {r['flood_copies']} | {ratio:.2f}x |")
    lines += [
        "",
        "How it grows, per host: flows = 6 base + per local attachment 2 (IPv4: ARP and IP",
        "admission) + 1 (delivery) + 1 (its floods through its port's storm-control meter)",
        "+ per network 1 tag + 2 flood + 1 tunnel admission per peer carrying it + per member",
        "of each carried network 1 ARP answer and, if remote, 1 unicast-to-tunnel flow;",
        "groups = 2 per carried network; meters = 1 per local endpoint port. So a host pays",
        "for the networks it carries and their members, never for the rest of the fabric.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE.parent / "BENCHMARKS.md"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    rows = [measure(*size) for size in SIZES]
    text = render(rows)
    print(text)
    if not args.no_write:
        big = rows[-1]
        write_section(args.out, "flows", text, [(
            f"Broadcast cost on the underlay, {big['size']} (busiest host)",
            "only to hosts carrying the network",
            f"{big['copies']:.2f} tunnel copies vs {big['flood_copies']} flooding to all "
            f"({big['flows']:,} flows, {big['groups']:,} groups on that host)", None,
            "bench/bench_flows.py")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
