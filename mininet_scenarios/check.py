"""Reachability and isolation of every ordered pair of endpoints.

The units are interfaces: an access endpoint's ``eth0``, and each guest
VLAN of a trunk endpoint (``router.100`` on ``eth0.100``).  A same-network
pair is reachable when a ping gets its reply AND a marked
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


@dataclass(frozen=True)
class Interface:
    """One place an endpoint sits in one network: the untagged ``eth0`` of
    an access endpoint, or one guest VLAN of a trunk endpoint (``router.100``:
    frames on ``eth0`` tagged 100)."""
    label: str
    ns: str
    vlan: int | None
    mac: str
    ip: object
    network: str


def interfaces(topo: Topology) -> list[Interface]:
    return [Interface(ep.name if a.vlan is None else f"{ep.name}.{a.vlan}", ep.name, a.vlan,
                      ep.mac, a.ip, a.network)
            for ep in topo.endpoints.values() for a in ep.attachments]


def check(topo: Topology) -> Result:
    """Trunk guests get no IP stack here (this kernel has no 8021q module),
    so a pair with a trunk side is judged by its marked frames alone; pairs
    of access endpoints also need a ping reply."""
    units = {i.label: i for i in interfaces(topo)}
    names = list(units)
    probe = [sys.executable, "-m", "mininet_scenarios.probe"]

    listeners = {ns: subprocess.Popen(_ns(ns, *probe, "listen", "eth0", str(LISTEN_SECONDS)),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for ns in sorted({u.ns for u in units.values()})}
    for proc in listeners.values():
        proc.stdout.readline()                     # "ready"

    pings = {}
    for s, src in units.items():
        for d, dst in units.items():
            if s != d and src.network == dst.network and src.vlan is None and dst.vlan is None:
                pings[(s, d)] = subprocess.Popen(
                    _ns(src.ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-q", str(dst.ip.ip)),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    senders = [subprocess.Popen(_ns(src.ns, *probe, "send", "eth0", str(src.vlan or "-"), s,
                                    src.mac, str(src.ip),
                                    *[f"{d},{dst.mac},{dst.ip}" for d, dst in units.items()
                                      if d != s]))
               for s, src in units.items()]
    for proc in senders:
        proc.wait()
    replied = {pair: proc.wait() == 0 for pair, proc in pings.items()}
    time.sleep(SETTLE_SECONDS)                     # frames still in flight
    arrived = {ns: json.loads(proc.communicate("stop\n")[0].splitlines()[-1] or "[]")
               for ns, proc in listeners.items()}
    seen = {label: {m for m in arrived[u.ns] if m.endswith(f"@{u.vlan}") == (u.vlan is not None)
                    and (u.vlan is None or m.count("@") == 1)}
            for label, u in units.items()}
    seen = {label: {m.split("@")[0] for m in markers} for label, markers in seen.items()}

    matrix = {}
    same_ok = same_total = cross_ok = cross_total = 0
    for s in names:
        for d in names:
            if s == d:
                continue
            got_unicast = f"{s}>{d}" in seen[d]
            got_any = got_unicast or f"{s}>{BROADCAST}" in seen[d]
            if units[s].network == units[d].network:
                same_total += 1
                ok = replied.get((s, d), True) and got_unicast
                same_ok += ok
                matrix[(s, d)] = "ok" if ok else "FAIL"
            else:
                cross_total += 1
                cross_ok += not got_any
                matrix[(s, d)] = "LEAK" if got_any else "iso"
    return Result(same_ok, same_total, cross_ok, cross_total, matrix)
