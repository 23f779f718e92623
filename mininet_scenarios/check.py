"""Reachability and isolation of every ordered pair of endpoints.

A same-network pair is reachable when a ping gets its reply AND a marked
frame sent to the destination's MAC arrives there.  A cross-network pair is
isolated when none of the source's marked frames (unicast to the
destination's MAC and IP, or broadcast) arrives at the destination: the
verdict is read at the receiver, so a wrong endpoint answering cannot fake
it, even where networks reuse the same addresses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass

from topology import Topology
from mininet_scenarios.probe import BROADCAST

LISTEN_SECONDS = 30.0    # upper bound; listeners stop once every probe is sent
SETTLE_SECONDS = 0.3


@dataclass
class Result:
    same_ok: int
    same_total: int
    cross_ok: int
    cross_total: int
    matrix: dict            # (src, dst) -> "ok" | "FAIL" | "iso" | "LEAK"

    @property
    def passed(self) -> bool:
        return self.same_ok == self.same_total and self.cross_ok == self.cross_total

    def line(self) -> str:
        return (f"check: {self.same_ok}/{self.same_total} same-network pairs reachable, "
                f"{self.cross_ok}/{self.cross_total} cross-network pairs isolated")

    def table(self, names) -> str:
        width = max(len(n) for n in names) + 2
        first = max(width, len("src \\ dst") + 2)
        rows = ["src \\ dst".ljust(first) + "".join(n.ljust(width) for n in names)]
        for s in names:
            cells = [("-" if s == d else self.matrix[(s, d)]).ljust(width) for d in names]
            rows.append(s.ljust(first) + "".join(cells))
        return "\n".join(rows)


def _ns(ns, *cmd):
    return ["ip", "netns", "exec", ns, *cmd]


def check(topo: Topology) -> Result:
    eps = topo.endpoints
    names = list(eps)
    probe = [sys.executable, "-m", "mininet_scenarios.probe"]

    listeners = {n: subprocess.Popen(_ns(n, *probe, "listen", "eth0", str(LISTEN_SECONDS)),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for n in names}
    for proc in listeners.values():
        proc.stdout.readline()                     # "ready"

    pings = {}
    for s in names:
        for d in names:
            if s != d and eps[s].network == eps[d].network:
                pings[(s, d)] = subprocess.Popen(
                    _ns(s, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-q", str(eps[d].ip.ip)),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    senders = [subprocess.Popen(_ns(s, *probe, "send", "eth0", s, eps[s].mac, str(eps[s].ip),
                                    *[f"{d},{eps[d].mac},{eps[d].ip}" for d in names if d != s]))
               for s in names]
    for proc in senders:
        proc.wait()
    replied = {pair: proc.wait() == 0 for pair, proc in pings.items()}
    time.sleep(SETTLE_SECONDS)                     # frames still in flight
    seen = {n: set(json.loads(proc.communicate("stop\n")[0].splitlines()[-1] or "[]"))
            for n, proc in listeners.items()}

    matrix = {}
    same_ok = same_total = cross_ok = cross_total = 0
    for s in names:
        for d in names:
            if s == d:
                continue
            got_unicast = f"{s}>{d}" in seen[d]
            got_any = got_unicast or f"{s}>{BROADCAST}" in seen[d]
            if eps[s].network == eps[d].network:
                same_total += 1
                ok = replied[(s, d)] and got_unicast
                same_ok += ok
                matrix[(s, d)] = "ok" if ok else "FAIL"
            else:
                cross_total += 1
                cross_ok += not got_any
                matrix[(s, d)] = "LEAK" if got_any else "iso"
    return Result(same_ok, same_total, cross_ok, cross_total, matrix)
