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
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Mapping

from topology import Topology
from mininet_scenarios import probe as probe_mod
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


def check(topo: Topology, guests: Mapping | None = None) -> Result:
    """Trunk guests get no IP stack here (this kernel has no 8021q module),
    so a pair with a trunk side is judged by its marked frames alone; pairs
    of access endpoints also need a ping reply.  ``guests`` (endpoint name
    -> ``guests.Guest``) are real QEMU guests: they listen, send the same
    marked frames and ping from inside, over their command channel."""
    guests = dict(guests or {})
    units = {i.label: i for i in interfaces(topo)}
    names = list(units)
    probe = [sys.executable, "-m", "mininet_scenarios.probe"]
    token = secrets.token_hex(4)

    spaces = sorted({u.ns for u in units.values()})
    listeners = {ns: subprocess.Popen(_ns(ns, *probe, "listen", "eth0", str(LISTEN_SECONDS)),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for ns in spaces if ns not in guests}
    guest_listeners = _parallel({ns: (lambda g=guests[ns]: _guest_listen(g, token))
                                 for ns in spaces if ns in guests})
    for proc in listeners.values():
        proc.stdout.readline()                     # "ready"

    pings = {}
    for s, src in units.items():
        for d, dst in units.items():
            if s != d and src.network == dst.network and src.vlan is None and dst.vlan is None \
                    and src.ns not in guests:
                pings[(s, d)] = subprocess.Popen(
                    _ns(src.ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-q", str(dst.ip.ip)),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    targets = {s: [f"{d},{dst.mac},{dst.ip}" for d, dst in units.items() if d != s]
               for s in units}
    senders = [subprocess.Popen(_ns(src.ns, *probe, "send", "eth0", str(src.vlan or "-"), s,
                                    src.mac, str(src.ip), *targets[s]))
               for s, src in units.items() if src.ns not in guests]
    guest_sends = _parallel({
        s: (lambda s=s, src=src: _guest_send(
            guests[src.ns], probe_mod.frames(s, src.mac, str(src.ip), targets[s], src.vlan),
            {d: str(dst.ip.ip) for d, dst in units.items()
             if d != s and dst.network == src.network and dst.vlan is None}))
        for s, src in units.items() if src.ns in guests})
    for proc in senders:
        proc.wait()
    replied = {pair: proc.wait() == 0 for pair, proc in pings.items()}
    for s, answers in guest_sends.items():
        replied.update({(s, d): ok for d, ok in answers.items()})
    time.sleep(SETTLE_SECONDS)                     # frames still in flight
    arrived = {ns: json.loads(proc.communicate("stop\n")[0].splitlines()[-1] or "[]")
               for ns, proc in listeners.items()}
    arrived.update(_parallel({ns: (lambda g=guests[ns], pid=pid: _guest_stop(g, pid, token))
                              for ns, pid in guest_listeners.items()}))
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


# -- real guests: the same probes over their command channel --------------------
def _parallel(jobs: dict) -> dict:
    """Run each job (a callable) in its own thread; their results by key.
    The first exception is raised once all have finished."""
    results, errors = {}, []

    def work(key, job):
        try:
            results[key] = job()
        except Exception as exc:             # noqa: BLE001 - re-raised below
            errors.append(exc)
    threads = [threading.Thread(target=work, args=item) for item in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def _guest_listen(guest, token: str) -> str:
    """Start ``nsgre-raw listen`` in the guest; its PID once it is ready."""
    out = f"/tmp/nsgre-probe-{token}"
    _, text = guest.run(
        f"nsgre-raw listen eth0 > {out} 2>&1 & echo $!; i=0; "
        f"while ! grep -q ready {out} 2>/dev/null && [ $i -lt 300 ]; do usleep 10000; "
        "i=$((i + 1)); done", check=True)
    return text.split()[0]


def _guest_stop(guest, pid: str, token: str) -> list[str]:
    """Stop the guest's listener; the markers that reached the guest."""
    out = f"/tmp/nsgre-probe-{token}"
    _, text = guest.run(f"kill {pid}; cat {out}; rm -f {out}", check=True)
    return sorted({line.strip() for line in text.splitlines()
                   if line.strip() and line.strip() != "ready"})


def _guest_send(guest, frames: list[bytes], pings: dict) -> dict:
    """From inside the guest: ping each same-network destination (in the
    background) and send the marked frames; which pings were answered."""
    script = [f'( ping -c 3 -i 0.2 -W 2 -q {ip} > /dev/null 2>&1; echo "ping {name} $?" ) &'
              for name, ip in pings.items()]
    script.append("nsgre-raw send eth0 3 " + " ".join(f.hex() for f in frames))
    script.append("wait")
    _, text = guest.run("\n".join(script), timeout=60)
    answered = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ping":
            answered[parts[1]] = parts[2] == "0"
    return {name: answered.get(name, False) for name in pings}
