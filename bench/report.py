"""BENCHMARKS.md is made of sections, one per benchmark script; each script
rewrites only its own section (between HTML comment markers), so running
one benchmark never throws away another's figures."""

from __future__ import annotations

from pathlib import Path

HEADER = """# Benchmarks

Written by the scripts in `bench/` (`make bench` runs them all); rerun them
rather than editing this file. Speed and memory targets are checked here, by
benchmarks measured side by side in one run and read as ratios, never by
timed tests: absolute times on shared machines are noise.
"""


def write_section(path: str | Path, name: str, text: str) -> None:
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
