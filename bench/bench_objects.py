"""One endpoint added by a per-object command against the same endpoint in
a whole file, on the large fabric: how long the command takes, and when
the new endpoint first answers a ping after the command returned.

    sudo .venv/bin/python bench/bench_objects.py [--hosts 8] [--networks 5000] [--runs 5]
                                                 [--no-write]

On the emulated fabric of ``bench/fabric.py`` (patch-port endpoints; the
pinger and the endpoints added are real namespaces), twice: a controller
on a topology file (the command goes through its API, which keeps the
change in the file) and a controller following a 3-member raft cluster of
the topology database (the command writes the database).  Each run adds
one endpoint, on another host than the pinger's, to the pinger's network:

- **per object**: ``nsgre endpoint add NAME --host ... --ip ...``;
- **whole file**: ``nsgre apply FILE``, FILE the fabric with the endpoint.

The emulation builds the endpoint's namespace and port first (what a
compute layer does), then the clock starts: the command runs, and once
it returns the pinger pings the new address every 10 ms.  *Reply after
return*: from the command's return to the first echo reply (issue target:
within 100 ms for the per-object command).  Each run is undone (``nsgre
endpoint del`` / the base file) before the next; modes alternate.
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

from bench_live_change import fast_neighbours, first_reply, free_ip, pick   # noqa: E402
from fabric import BenchFabric                                              # noqa: E402
import topology                                                             # noqa: E402
from gen_topology import generate                                           # noqa: E402
from report import write_section                                            # noqa: E402
from topology import edit, render                                           # noqa: E402

CLI = [sys.executable, "-m", "nsgre_tools.cli"]
TARGET_MS = 100


def command(args: list[str]) -> tuple[float, float]:
    """Run an nsgre command: (when it started, when it returned), wall clock."""
    start = time.time()
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300,
                          cwd=HERE.parent)
    end = time.time()
    if done.returncode != 0:
        raise SystemExit(f"nsgre {' '.join(args)}: {done.stderr or done.stdout}")
    return start, end


def wait_settled(fab, topo):
    fab.wait_counts({h: fab.expected(h) for h in topo.hosts}, time.monotonic(), timeout=120)


def trial(fab, where: list[str], how: str, k: int, net: str, host: str, base_text: str,
          tmp: Path) -> dict:
    """Add endpoint ``obj{k}`` ``how`` (per object / whole file), time it,
    undo it."""
    name = f"obj{k}"
    ip = free_ip(fab.topo, net, 100 + k)
    body = {"host": host, "kind": "vm", "network": net, "ip": ip}
    new = edit.edited(fab.topo, "bench", edit.Change("endpoints", name, body))
    base = fab.topo
    fab.apply(new)                               # its namespace and port, first
    fast_neighbours(name)
    if how == "per object":
        start, end = command(["endpoint", "add", name, "--host", host, "--kind", "vm",
                              "--network", net, "--ip", ip, *where])
    else:
        path = tmp / f"with-{name}.yaml"
        path.write_text(base_text + f"  {name}: {{host: {host}, kind: vm, network: {net}, "
                                    f"ip: {ip}}}\n")
        start, end = command(["apply", str(path), *where])
    reply = first_reply("pinger", ip.split("/")[0])
    wait_settled(fab, new)
    # Undo the same way, so the file and the database stay the base.
    if how == "per object":
        command(["endpoint", "del", name, *where])
    else:
        path = tmp / "base.yaml"
        path.write_text(base_text)
        command(["apply", str(path), *where])
    back = topology.parse(render.text(render.document(base)).encode(), "base", fab.topo)
    fab.apply(back)
    wait_settled(fab, back)
    return {"command": end - start, "after": reply - end}


def run_mode(label: str, base_text: str, runs: int, ha: int) -> dict:
    probe = topology.parse(base_text, "fabric.yaml")
    net, _, pinger_host, other = pick(probe)
    tmp = Path(tempfile.mkdtemp())
    base_file = tmp / "fabric.yaml"
    base_file.write_text(base_text)
    base = topology.load(str(base_file))
    fab = BenchFabric(base, live={"pinger"} | {f"obj{k}" for k in range(2 * runs)}, ha=ha)
    results: dict = {"per object": [], "whole file": []}
    try:
        fab.up(None)
        fast_neighbours("pinger")
        wait_settled(fab, base)
        where = ["--db", fab.db_remotes()] if ha else \
            ["--api", str(fab.controller_files(1)[1])]
        for k in range(2 * runs):
            how = ("per object", "whole file")[k % 2]
            r = trial(fab, where, how, k, net, other, base_text, tmp)
            results[how].append(r)
            print(f"{label}, {how}: command {r['command'] * 1000:.0f} ms, first reply "
                  f"{r['after'] * 1000:.0f} ms after it returned", flush=True)
    finally:
        fab.down()
    return results


def row(label: str, how: str, rs: list[dict]) -> str:
    cmd = [r["command"] * 1000 for r in rs]
    after = [r["after"] * 1000 for r in rs]
    return (f"| {label} | {how} | {len(rs)} | {statistics.median(cmd):,.0f} ms | "
            f"{max(cmd):,.0f} ms | {statistics.median(after):,.0f} ms | {max(after):,.0f} ms |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=8)
    ap.add_argument("--networks", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=5, help="runs of each way, per mode")
    ap.add_argument("--out", default=str(HERE.parent / "BENCHMARKS.md"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    base_text = generate(args.hosts, args.networks, args.networks * 2, seed=1)
    probe = topology.parse(base_text, "fabric.yaml")
    _, member, _, _ = pick(probe)
    base_text = base_text.replace(f"  {member.name}: ", "  pinger: ", 1)
    summary = topology.parse(base_text, "fabric.yaml").summary()
    modes = {"controller on a file": run_mode("file", base_text, args.runs, ha=0),
             "controller following the database": run_mode("database", base_text, args.runs,
                                                           ha=1)}
    lines = [
        "## One endpoint: per object against the whole file",
        "",
        f"`bench/bench_objects.py` (root): {summary}, emulated as in the programming",
        "benchmark. One endpoint added to the pinger's network on another host, by",
        "`nsgre endpoint add` (*per object*) or by `nsgre apply` of the whole file with it",
        "(*whole file*), alternately, each undone before the next. *file*: the controller",
        "runs on a topology file (the command goes through its API; the change is kept in",
        "the file before it answers); *database*: one controller following a 3-member raft",
        "cluster (the command validates against what the database holds and writes the",
        "difference). *Command*: wall time of the command as a user runs it (Python start",
        "included); *first reply after return*: the pinger pings the new address every 10 ms",
        f"from the moment the command returned (target: within {TARGET_MS} ms per object).",
        "",
        "| controller | change | runs | command: median | max | first reply after return: "
        "median | max |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, results in modes.items():
        for how in ("per object", "whole file"):
            lines.append(row(label, how, results[how]))
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        rows = []
        for label, results in modes.items():
            po, wf = results["per object"], results["whole file"]
            worst = max(r["after"] for r in po) * 1000
            rows.append((f"Add one endpoint per object (8 x 5,000 x 10,000), {label}: first "
                         "ping reply after the command returned",
                         f"within {TARGET_MS} ms",
                         f"median {statistics.median(r['after'] for r in po) * 1000:.0f} ms, "
                         f"max {worst:.0f} ms; command {statistics.median(r['command'] for r in po):.2f} s "
                         f"vs {statistics.median(r['command'] for r in wf):.2f} s whole file",
                         worst <= TARGET_MS, "bench/bench_objects.py"))
        write_section(args.out, "objects", text, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
