"""Programming speed against the physical limit, and how it scales.

    sudo .venv/bin/python bench/bench_programming.py [--hosts 8] [--networks 5000]
        [--rounds 3] [--curve] [--no-write]

On an emulated fabric (``bench/fabric.py``: every host its own
ovs-vswitchd; endpoints as patch ports, a few as real namespaces), each
round measures, side by side:

- nsgre: every bridge's controller connection removed and nsgre's flows and
  groups deleted; then all bridges connected at once, and the time until
  every bridge holds exactly the flows and groups it should (polled with
  ``ovs-ofctl dump-aggregate`` and ``dump-group-stats`` every 20 ms);
- the limit: the same bridges emptied the same way, and exactly the same
  flows and groups (``pipeline.compute`` on the bridges' real port numbers,
  as ovs-ofctl text) sent by ``ovs-ofctl bundle`` -- one atomic bundle per
  bridge, all bridges at once, C all the way: the fastest any controller
  could be -- timed by the same poll.

Both sides leave identical tables (checked after the first round).  With
``--curve``, programming time and flows per host for 1, 2, 4, 8 hosts and
100, 1,000, 5,000 networks, plotted to bench/scale.png.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fabric import COOKIE, BenchFabric              # noqa: E402
import topology                                     # noqa: E402
from osken_apps import pipeline                     # noqa: E402
from gen_topology import generate                   # noqa: E402
from report import write_section                    # noqa: E402


def fabric_file(hosts: int, networks: int, directory: Path) -> Path:
    path = directory / f"fabric-{hosts}x{networks}.yaml"
    path.write_text(generate(hosts, networks, networks * 2, seed=1))
    return path


def installed(fab: BenchFabric, host: str) -> list[str]:
    out = fab.ovs[host].ofctl("dump-flows", COOKIE, "--no-stats", check=False)
    return sorted(line.strip() for line in out.splitlines() if "cookie=" in line)


def bundle_text(topo, host, ports) -> str:
    want = pipeline.compute(topo, host, ports)
    lines = [f"group add {g.to_ofctl()}" for g in want.groups]
    lines += [f"flow add {f.to_ofctl()}" for f in want.flows]
    return "\n".join(lines) + "\n"


def round_nsgre(fab, want) -> float:
    hosts = sorted(want)
    fab.disconnect(hosts)
    fab.wipe(hosts)
    start = time.monotonic()
    for p in fab.connect(hosts):
        p.wait()
    return max(fab.wait_counts(want, start).values())


def round_limit(fab, want, files) -> float:
    hosts = sorted(want)
    fab.disconnect(hosts)
    fab.wipe(hosts)
    start = time.monotonic()
    procs = [subprocess.Popen(["ovs-ofctl", "-O", "OpenFlow13", "bundle", fab.ovs[h].mgmt(),
                               str(files[h])], stderr=subprocess.PIPE, text=True)
             for h in hosts]
    for p in procs:
        if p.wait():
            raise RuntimeError(f"ovs-ofctl bundle: {p.stderr.read()}")
    return max(fab.wait_counts(want, start).values())


def measure(hosts: int, networks: int, rounds: int, limit: bool, tmp: Path) -> dict:
    path = fabric_file(hosts, networks, tmp)
    topo = topology.load(str(path))
    fab = BenchFabric(topo)
    built = time.monotonic()
    try:
        fab.up(None)
        ports = {h: fab.ports(h) for h in topo.hosts}
        want = {h: fab.expected(h, ports[h]) for h in topo.hosts}
        fab.wait_counts(want, time.monotonic())      # the first programming, while building
        built = time.monotonic() - built
        files = {}
        for h in topo.hosts:
            files[h] = tmp / f"bundle-{h}.txt"
            files[h].write_text(bundle_text(topo, h, ports[h]))
        t_nsgre, t_limit = [], []
        for i in range(rounds):
            t_nsgre.append(round_nsgre(fab, want))
            if i == 0:
                by_nsgre = {h: installed(fab, h) for h in topo.hosts}
            if limit:
                t_limit.append(round_limit(fab, want, files))
                if i == 0:
                    assert {h: installed(fab, h) for h in topo.hosts} == by_nsgre, \
                        "ovs-ofctl and nsgre left different tables"
        for p in fab.connect(sorted(topo.hosts)):       # leave it programmed by nsgre
            p.wait()
        fab.wait_counts(want, time.monotonic())
        rss = fab.controller_peak_rss_mb()
    finally:
        fab.down()
    flows = [want[h][0] for h in topo.hosts]
    return {"hosts": hosts, "networks": networks, "summary": topo.summary(), "built": built,
            "nsgre": statistics.median(t_nsgre), "nsgre_all": t_nsgre,
            "limit": statistics.median(t_limit) if t_limit else None, "limit_all": t_limit,
            "flows_max": max(flows), "flows_mean": sum(flows) / len(flows),
            "groups_max": max(want[h][1] for h in topo.hosts), "rss_mb": rss}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=8)
    ap.add_argument("--networks", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--curve", action="store_true")
    ap.add_argument("--out", default=str(HERE.parent / "BENCHMARKS.md"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        r = measure(args.hosts, args.networks, args.rounds, True, Path(tmp))
    print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
