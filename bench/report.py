"""BENCHMARKS.md is made of sections, one per benchmark script; each script
rewrites only its own section (between HTML comment markers), so running
one benchmark never throws away another's figures."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

HEADER = """# Benchmarks

Written by the scripts in `bench/` (`make bench` runs them all); rerun them
rather than editing this file. Speed and memory targets are checked here, by
benchmarks measured side by side in one run and read as ratios, never by
timed tests: absolute times on shared machines are noise.
"""


def machine() -> str:
    """Where and with what the figures were measured."""
    def first_line(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return "?"
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "?")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    try:
        distro = next(line.split("=", 1)[1].strip('"') for line in
                      Path("/etc/os-release").read_text().splitlines()
                      if line.startswith("PRETTY_NAME="))
    except (OSError, StopIteration):
        distro = "?"

    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"
    return "\n".join([
        "## Machine",
        "",
        f"Last written {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by "
        "a `bench/` script (each section says which).",
        "",
        f"- CPU: {cpu}, {os.cpu_count()} cores; memory {mem_kb / 2**20:.1f} GiB",
        f"- OS: {distro}, kernel {platform.release()}",
        f"- Open vSwitch: {first_line(['ovs-vswitchd', '--version'])} (userspace datapath)",
        f"- Python {platform.python_version()}; os-ken {version('os-ken')}, "
        f"ovs {version('ovs')}, networkx {version('networkx')}, PyYAML {version('PyYAML')}",
        f"- iperf3: {first_line(['iperf3', '--version'])}",
    ])


def write_section(path: str | Path, name: str, text: str, figures=()) -> None:
    """Rewrite section ``name`` of BENCHMARKS.md, the machine section, and
    the one-page summary from every script's ``figures``: (figure, target,
    measured, met: True/False/None for no target, command) rows, kept in
    bench/results.json so one script's run never drops another's rows."""
    _write(path, name, text)
    _write(path, "machine", machine())
    if figures:
        store = Path(path).resolve().parent / "bench" / "results.json"
        results = json.loads(store.read_text()) if store.exists() else {}
        results[name] = [list(row) for row in figures]
        store.write_text(json.dumps(results, indent=1) + "\n")
        _write(path, "summary", summary(results))


#: Order of the summary: the issue's list.
ORDER = ("programming", "scale", "live-change", "port-up", "change", "restart", "dataplane",
         "flows", "topology")


def summary(results: dict) -> str:
    lines = ["## Summary", "",
             "Every figure below, its target, the value of the last run and the command that",
             "measures it (sections below give the detail). Ratios are measured side by side.",
             "", "| figure | target | measured | | command |", "|---|---|---|---|---|"]
    for name in sorted(results, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        for figure, target, measured, met, command in results[name]:
            mark = {True: "met", False: "**not met**", None: ""}[met]
            lines.append(f"| {figure} | {target or '-'} | {measured} | {mark} | `{command}` |")
    return "\n".join(lines)


def _write(path: str | Path, name: str, text: str) -> None:
    path = Path(path)
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    current = path.read_text() if path.exists() else HEADER
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        tail = rest.split(end, 1)[1]
        current = head + block + tail
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    path.write_text(current)
