"""Time from a switch restart to fully programmed, on the real emulation.

    sudo .venv/bin/python bench/bench_restart.py [--runs 5] [--no-write]

Brings up the seed emulation with its controller, then kills kvm1's
ovs-vswitchd (every flow gone) and starts it again, --runs times; each time
it measures how long until kvm1's bridge holds exactly the nsgre flows it
held before (polled every 10 ms with ovs-ofctl), and until blue on kvm2
pings vm1 on kvm1 again.  Needs root.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import topology                                  # noqa: E402
from mininet_scenarios import emulation          # noqa: E402
from report import write_section                 # noqa: E402


def flows(emu, host):
    out = emu.ovs[host].ofctl("dump-flows", "cookie=0x4e53000000000000/0xffff000000000000",
                              "--no-stats", check=False)
    return sorted(line.strip() for line in out.splitlines() if "cookie=" in line)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=str(HERE.parent / "BENCHMARKS.md"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    topo = topology.load()
    emu = emulation.Emulation(topo)
    programmed, reachable = [], []
    try:
        emu.up(None)
        emu.wait_programmed()
        want = flows(emu, "kvm1")
        for _ in range(args.runs):
            emu.ovs["kvm1"].kill_switch()
            start = time.monotonic()
            emu.restart_switch("kvm1")
            while flows(emu, "kvm1") != want:
                time.sleep(0.01)
            programmed.append(time.monotonic() - start)
            while subprocess.run(["ip", "netns", "exec", "blue", "ping", "-c", "1", "-W", "0.2",
                                  "10.1.1.2"], capture_output=True).returncode:
                pass
            reachable.append(time.monotonic() - start)
            time.sleep(0.5)
    finally:
        emu.down()
    text = "\n".join([
        "## Switch restart to fully programmed",
        "",
        f"`bench/bench_restart.py` (root): kvm1's ovs-vswitchd killed and restarted "
        f"{args.runs} times on the seed emulation; time from starting it again (it then",
        "connects, the controller reads its empty tables and sends the full state as one",
        "bundle) until the bridge holds exactly its nsgre flows again, and until blue pings",
        "vm1 across it.",
        "",
        "| | median | max |",
        "|---|---:|---:|",
        f"| fully programmed | {statistics.median(programmed):.2f} s | {max(programmed):.2f} s |",
        f"| blue reaches vm1 again | {statistics.median(reachable):.2f} s "
        f"| {max(reachable):.2f} s |",
        "",
        "Target (issue): within 2 s of the reconnect.",
    ])
    print(text)
    if not args.no_write:
        median = statistics.median(programmed)
        write_section(args.out, "restart", text, [(
            "Switch restart to fully programmed (seed)", "within 2 s of the reconnect",
            f"{median:.2f} s median, {max(programmed):.2f} s max", max(programmed) <= 2.0,
            "bench/bench_restart.py")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
