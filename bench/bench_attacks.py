"""Port events and audits under attack: a slow-client attack on the
controller's HTTP API, floods of packet-ins and of port-status from a
fake switch, and malformed OpenFlow, each side by side with no attack.

    sudo .venv/bin/python bench/bench_attacks.py [--hosts 4] [--networks 500]
        [--rounds 4] [--ports 10] [--audits 5] [--audit-interval 1]
        [--slow-clients 200] [--timeout 10] [--profile PY_SPY] [--no-write]

The fabric is the port-up benchmark's (``bench/fabric.py``: emulated hosts,
each its own ovsdb-server and ovs-vswitchd, endpoints as patch ports, the
controller started by the emulation on a file, its audit every
``--audit-interval`` seconds through oslo.config's environment,
``OS_DEFAULT__NSGRE_AUDIT_INTERVAL``), plus endpoints ``pu0000``... whose
ports do not exist yet.  Two latencies are probed, one after the other, in
a seeded order:

- **port up**: a port added with ``external_ids:iface-id`` in one OVSDB
  transaction (``bench_port_up``'s plug) to the controller's
  ``nsgre-installed-ts`` on it, hosts in turn;
- **audit repair**: one nsgre flow deleted by hand (``ovs-ofctl --strict
  del-flows``) to the switch adding it again, both seen by OpenFlow flow
  monitoring (``ovs-ofctl monitor``: the switch's own word), on the switch
  the audit round read last (so the repair comes from the flow count at
  the next tick, not from wherever the paced round happens to be).

under five conditions, in rounds (each round every condition once, in
turn, so that whatever else the machine does falls on all of them alike):

- **baseline**: nothing else;
- **slow clients**: ``--slow-clients`` connections to the API socket, each
  with a partial HTTP request: half trickle a byte a second and never end
  it, half stall (cut by the controller after its ``CLIENT_TIMEOUT``; first
  opened over ``STALL_SPREAD`` seconds, so the cuts come a few at a time);
  every connection cut is opened again at once;
- **packet-in flood**, **port-status flood**: a fake switch (a datapath id
  no host has) that passes the handshake, answers echoes and the port
  description, then sends packet-ins (or port-status) as fast as the
  socket takes them, reconnecting when cut;
- **malformed**: ``openflow_fuzz.peer`` (tests/integration) in a loop, two
  at a time: the handshake, then malformed and oversized messages until the
  controller hangs up, then again.

Every attacker is a process of its own (this script, ``--attacker KIND``,
at nice 19), started before a block's probes and stopped after them; it
reports what it threw.  The controller's counters
(``nsgre_openflow_dropped_total``, ``nsgre_switches_refused_total``,
``nsgre_api_clients_refused_total``) are read from ``GET /metrics`` before
and after each block, and once in its middle (the time that takes is
reported).  A probe not done within ``--timeout`` fails; after ``GIVE_UP``
failures in a row a block skips the rest.  Target: under each attack, each
latency's p95 at most ``TARGET_RATIO`` times the baseline's, none failed.
``--profile`` records the controller with py-spy for a few seconds of each
attack (raw stacks in the run directory, for a closer look).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

import openflow_fuzz as fuzz                           # noqa: E402

TARGET_RATIO = 1.5            # p95 under an attack, at most this times the baseline's
CONDITIONS = ("baseline", "slow clients", "packet-in flood", "port-status flood", "malformed")
ATTACKER = {"slow clients": "slow", "packet-in flood": "packet-in",
            "port-status flood": "port-status", "malformed": "malformed"}
WARMUP = 2.0                  # seconds an attack runs before the first probe
SETTLE = 1.0                  # seconds after an attack stops, before the next block
PROFILE_SECONDS = 5           # --profile: seconds of py-spy record
METRICS_TIMEOUT = 10.0        # seconds GET /metrics may take; past that: no answer
RECOVERY = 60.0               # seconds a block's ports may take to be marked once it is over
GIVE_UP = 2                   # probes failed in a row after which a block skips the rest
STRANGER = 0xf000_0000_0000_0000          # fake switches' datapath ids: no host's
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: nsgre\r\nX-Slow: "
MULTIPART_REQUEST, PORT_DESC, ECHO_REPLY = 18, 13, 3
STALL_SPREAD = 10.0           # seconds over which the stalled API clients are first opened


# == the attackers (each a process of its own: --attacker KIND) ==========================
class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict = {}
        self.lifetimes: dict = {}

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def lived(self, key: str, seconds: float) -> None:
        with self.lock:
            self.lifetimes.setdefault(key, []).append(seconds)


def slow_clients(api: str, clients: int, tally: Tally, stop: threading.Event,
                 ready: threading.Event) -> None:
    """``clients`` connections each holding a partial request: half trickle
    a byte a second, half stall; one cut is opened again at once.  The
    stalled ones are opened over the first ``STALL_SPREAD`` seconds, so
    they are cut (and opened again) a few at a time, all along, not in
    waves."""
    sel = __import__("selectors").DefaultSelector()
    conns: dict = {}                    # socket -> [kind, opened, next byte due]

    def open_one(kind: str) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(api)
            s.sendall(REQUEST)
        except OSError as exc:
            s.close()
            tally.add(f"connect failed ({type(exc).__name__})")
            return
        s.setblocking(False)
        now = time.monotonic()
        conns[s] = [kind, now, now + 1.0]
        sel.register(s, 1)
        tally.add("connections")

    def close(s, cut: bool) -> None:
        kind, opened, _ = conns.pop(s)
        sel.unregister(s)
        s.close()
        if cut:
            tally.add(f"cut ({kind})")
            tally.lived(kind, time.monotonic() - opened)
        open_one(kind)

    trickling, stalled = (clients + 1) // 2, clients // 2
    for _ in range(trickling):
        open_one("trickling")
    start = time.monotonic()
    opened_stalled = 0
    while not stop.is_set():
        while opened_stalled < stalled and \
                time.monotonic() >= start + opened_stalled * STALL_SPREAD / stalled:
            open_one("stalled")
            opened_stalled += 1
        if opened_stalled == stalled and len(conns) == clients:
            ready.set()
        for key, _ in sel.select(timeout=0.1):
            try:
                data = key.fileobj.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                close(key.fileobj, cut=True)
            else:
                tally.add("answered")               # never: the request never ends
        now = time.monotonic()
        for s, (kind, _, due) in list(conns.items()):
            if kind == "trickling" and now >= due:
                try:
                    s.send(b"a")
                    tally.add("bytes trickled")
                    conns[s][2] = now + 1.0
                except OSError:
                    close(s, cut=True)
        kinds = [kind for kind, _, _ in conns.values()]
        for _ in range(trickling - kinds.count("trickling")):    # connect failures: again
            open_one("trickling")
        for _ in range(opened_stalled - kinds.count("stalled")):
            open_one("stalled")
    for s in list(conns):
        s.close()


class FakeSwitch:
    """A peer that passes the handshake as a switch would, with a datapath
    id no host has, and answers echoes and the port description."""

    def __init__(self, path: str, dpid: int):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.send_lock = threading.Lock()
        self.sock.connect(path)
        self.sock.sendall(fuzz.message(fuzz.HELLO, b"", 1))
        xid = fuzz.features_request(self.sock)
        if xid is None:
            raise OSError("no features request")
        self.sock.sendall(fuzz.features_reply(dpid, xid))
        self.sock.settimeout(None)
        threading.Thread(target=self._read, daemon=True).start()

    def send(self, data: bytes) -> None:
        with self.send_lock:
            self.sock.sendall(data)

    def _read(self) -> None:
        seen = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                seen += chunk
                while len(seen) >= 8:
                    _, kind, length, xid = struct.unpack("!BBHI", seen[:8])
                    if len(seen) < length:
                        break
                    msg, seen = seen[:length], seen[max(length, 8):]
                    if kind == fuzz.ECHO_REQUEST:
                        self.send(fuzz.header(ECHO_REPLY, length, xid) + msg[8:])
                    elif kind == MULTIPART_REQUEST and \
                            struct.unpack_from("!H", msg, 8)[0] == PORT_DESC:
                        self.send(fuzz.message(fuzz.MULTIPART_REPLY,
                                               struct.pack("!HH4x", PORT_DESC, 0), xid))
        except OSError:
            return

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def flood(path: str, kind: str, seed: int, tally: Tally, stop: threading.Event,
          ready: threading.Event) -> None:
    """Packet-ins (or port-status) as fast as the socket takes them, in
    batches of about 64 KB; reconnect when cut."""
    rng = random.Random(seed)
    make = fuzz.packet_in if kind == "packet-in" else fuzz.port_status
    batches = []
    for b in range(8):
        msgs = [make(rng, 1000 + b * 1000 + i) for i in range(600 if kind == "packet-in"
                                                               else 400)]
        batches.append((b"".join(msgs), len(msgs)))
    n = 0
    while not stop.is_set():
        try:
            switch = FakeSwitch(path, STRANGER + 1)
        except OSError:
            tally.add("connect failed")
            time.sleep(0.1)
            continue
        tally.add("connections")
        ready.set()
        opened = time.monotonic()
        try:
            while not stop.is_set():
                data, count = batches[n % len(batches)]
                switch.send(data)
                n += 1
                tally.add("messages", count)
            switch.close()
            return
        except OSError:
            tally.add("cut")
            tally.lived("connection", time.monotonic() - opened)
            switch.close()


def malformed(path: str, seed: int, tally: Tally, stop: threading.Event) -> None:
    """openflow_fuzz.peer again and again: the handshake, then malformed
    messages until the controller hangs up (at most 200 a connection)."""
    rng = random.Random(seed)
    k = 0
    while not stop.is_set():
        k += 1
        sent = fuzz.peer(path, random.Random(rng.getrandbits(32)), 200, STRANGER + 16 + k)
        tally.add("connections")
        tally.add("messages", sent)


def attacker(args) -> int:
    """Run one attack until SIGTERM; print what it threw as JSON.  At
    nice 19: it takes the machine's cores only as far as the fabric leaves
    them idle (on a network the attacker would be another machine)."""
    os.nice(19)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    tally = Tally()
    ready = threading.Event()
    began = time.monotonic()
    if args.attacker == "slow":
        jobs = [lambda: slow_clients(args.api, args.slow_clients, tally, stop, ready)]
    elif args.attacker in ("packet-in", "port-status"):
        jobs = [lambda: flood(args.openflow, args.attacker, args.seed, tally, stop, ready)]
    else:
        jobs = [lambda k=k: malformed(args.openflow, args.seed + k, tally, stop)
                for k in range(2)]
        ready.set()
    for job in jobs:
        threading.Thread(target=job, daemon=True).start()
    ready.wait(30)
    sys.stdout.write(json.dumps({"ready": ready.is_set(),
                                 "after": time.monotonic() - began}) + "\n")
    sys.stdout.flush()
    while not stop.is_set():
        stop.wait(0.2)
    time.sleep(0.3)                                  # the threads see it, where they can
    with tally.lock:
        out = {"seconds": time.monotonic() - began, "counts": dict(tally.counts),
               "lifetimes": {k: statistics.median(v) for k, v in tally.lifetimes.items()}}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    os._exit(0)                                       # threads blocked in sendall: no join


# == the bench ===========================================================================
def load_bench_modules():
    """The fabric, the port-up benchmark's plug and marks (imported here:
    an attacker process needs none of it)."""
    global BenchFabric, COOKIE, topology, emulation, binding, api, generate, \
        write_section, pu
    from fabric import BenchFabric, COOKIE
    import topology
    from mininet_scenarios import emulation
    from nsgre_core import binding
    from nsgre_tools import client as api
    from gen_topology import generate
    from report import write_section
    import bench_port_up as pu


FLOW_KEY = re.compile(r"table=(\d+)")
COOKIE_KEY = re.compile(r"cookie=(0x[0-9a-f]+)")


def flow_key(line: str) -> tuple | None:
    """(table, cookie, the match's fields but priority) of a flow as
    ``dump-flows`` or ``monitor`` prints it (the monitor leaves the priority
    out); None for a line that is no flow."""
    cookie = COOKIE_KEY.search(line)
    if cookie is None:
        return None
    m = FLOW_KEY.search(line)
    last = line.split(" actions=", 1)[0].split()[-1].rstrip(",")    # (a drop: no actions)
    fields = set() if re.match(r"(cookie|table|event|reason|duration|n_\w+|idle_\w+|hard_\w+)=",
                               last) else set(last.split(","))
    return (int(m[1]) if m else 0, cookie[1],
            frozenset(f for f in fields if not f.startswith("priority=")))


class FlowWatch:
    """``ovs-ofctl monitor br-int watch:!initial`` on every host: each flow
    added or deleted, with when this process read it."""

    def __init__(self, fab):
        self.cond = threading.Condition()
        self.events: list = []                        # (seen, host, ADDED|DELETED, key)
        self.raw: list = []                           # the last lines, for a report
        self.procs = {}
        for host, ovs in fab.ovs.items():
            self.procs[host] = subprocess.Popen(
                ["stdbuf", "-oL", "ovs-ofctl", "-O", "OpenFlow13", "monitor", ovs.mgmt("br-int"),
                 "watch:!initial"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env={**os.environ, "OVS_RUNDIR": str(ovs.dir)})
            threading.Thread(target=self._read, args=(host, self.procs[host]),
                             daemon=True).start()
        time.sleep(0.5)                               # the monitors are registered

    def _read(self, host: str, proc) -> None:
        for raw in proc.stdout:
            seen = time.time()
            line = raw.decode(errors="replace")
            with self.cond:
                self.raw = self.raw[-20:] + [f"{host}: {line.rstrip()}"]
            what = "ADDED" if "event=ADDED" in line else \
                "DELETED" if "event=DELETED" in line else None
            key = flow_key(line) if what else None
            if key is not None:
                with self.cond:
                    self.events.append((seen, host, what, key))
                    self.cond.notify_all()

    def mark(self) -> int:
        with self.cond:
            return len(self.events)

    def wait(self, host: str, what: str, key, since: int, timeout: float) -> float | None:
        """When ``host`` reported ``what`` of flow ``key`` (first, after
        event ``since``), or None."""
        def found():
            return next((e[0] for e in self.events[since:]
                         if e[1] == host and e[2] == what and e[3] == key), None)
        with self.cond:
            self.cond.wait_for(lambda: found() is not None, timeout=timeout)
            return found()

    def close(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def candidate_flows(fab, host: str) -> list[tuple[tuple, str]]:
    """nsgre's flows on a host's br-int: (key, a strict match for del-flows)."""
    out = fab.ovs[host].ofctl("dump-flows", COOKIE, "--no-stats")
    flows = []
    for line in out.splitlines():
        key = flow_key(line)
        if key is None:
            continue
        match = line.split(" actions=", 1)[0].split()[-1].rstrip(",")
        if match.startswith("priority=") and "," in match:           # a match, not a table's miss
            flows.append((key, f"table={key[0]},{match}"))
    return flows


def last_audited(log: Path, hosts: list[str]) -> str | None:
    """The host the controller logged as audited last."""
    with open(log, "rb") as f:
        f.seek(max(0, log.stat().st_size - 200_000))
        text = f.read().decode(errors="replace")
    found = re.findall(r" nsgre: (\S+) audited: ", text)
    return next((h for h in reversed(found) if h in hosts), None)


# -- the probes ---------------------------------------------------------------------------
def port_probe(fab, marks, plug, timeout: float) -> float | None:
    """Seconds from the transaction adding the port to its nsgre-installed-ts."""
    t0 = time.time()
    pu.ovsdb.transact(fab.ovs[plug.host].db, pu.add_ops([plug]))
    marks.wait(lambda: plug.iface in marks.first, t0 + timeout - time.time())
    seen, stamp = marks.first.get(plug.iface, (None, None))
    return None if stamp is None else stamp - t0


def audit_probe(fab, watch: FlowWatch, host: str, flow, timeout: float) -> dict:
    """Delete one flow; seconds from the switch reporting it deleted to it
    reporting it added again."""
    key, spec = flow
    since = watch.mark()
    done = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--strict", "del-flows",
                           fab.ovs[host].mgmt("br-int"), spec], capture_output=True, text=True)
    if done.returncode:
        return {"host": host, "spec": spec, "error": done.stderr.strip(), "repair": None}
    gone = watch.wait(host, "DELETED", key, since, 2.0)
    if gone is None:
        with watch.cond:
            said = watch.raw[-5:]
        return {"host": host, "spec": spec, "error": f"no deletion reported; the monitors said "
                f"last: {said}", "repair": None}
    back = watch.wait(host, "ADDED", key, since, gone + timeout - time.time())
    return {"host": host, "spec": spec, "error": None,
            "repair": None if back is None else back - gone}


# -- the controller's counters ------------------------------------------------------------
COUNTERS = ("nsgre_openflow_dropped_total", "nsgre_switches_refused_total",
            "nsgre_api_clients_refused_total", "nsgre_port_changes_total")
SAMPLE = re.compile(r"^(\w+)(\{[^}]*\})? (\S+)$")


def metrics(api_sock: str) -> tuple[dict, float]:
    """The counters (name{labels} -> value) and the seconds GET /metrics took."""
    t0 = time.monotonic()
    try:
        status, data = api._raw(api_sock, "GET", "/metrics", timeout=METRICS_TIMEOUT)
        text = data.decode() if status == 200 else ""
    except (api.ApiError, OSError) as exc:
        print(f"  GET /metrics: {exc}", flush=True)
        return {}, None
    took = time.monotonic() - t0
    out = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and m[1] in COUNTERS:
            out[m[1] + (m[2] or "")] = float(m[3])
    return out, took


def delta(before: dict, after: dict) -> dict:
    return {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}


# -- a block: one condition, its probes ---------------------------------------------------
def start_attacker(kind: str, fab, args, seed: int) -> subprocess.Popen:
    sock, api_sock, _ = fab.controller_files(1)
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--attacker", kind,
                             "--api", str(api_sock), "--openflow", str(sock),
                             "--slow-clients", str(args.slow_clients), "--seed", str(seed)],
                            stdout=subprocess.PIPE, text=True)


def wait_ready(proc: subprocess.Popen) -> dict:
    """The attacker's first line: its attack is under way (or it gave up)."""
    if select.select([proc.stdout], [], [], 40)[0]:
        line = proc.stdout.readline()
        try:
            return json.loads(line)
        except ValueError:
            return {"ready": False, "said": line}
    return {"ready": False}


def stop_attacker(proc: subprocess.Popen) -> dict:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"exit {proc.returncode}, said {out[-300:]!r}"}


def run_block(fab, marks, watch, condition: str, plugs: list, flows: dict, hosts: list,
              args, seed: int) -> dict:
    sock, api_sock, log = fab.controller_files(1)
    before, _ = metrics(str(api_sock))
    pids = {"controller": fab.controller_pid()}
    proc = None
    if condition in ATTACKER:
        proc = start_attacker(ATTACKER[condition], fab, args, seed)
        pids["attacker"] = proc.pid
        started = wait_ready(proc)
        if not started.get("ready"):
            print(f"  {condition}: the attacker is not ready: {started}", flush=True)
        time.sleep(WARMUP)
    spy = None
    if args.profile and proc is not None:
        out = fab.run_dir / f"profile-{ATTACKER[condition]}-{seed}.txt"
        spy = subprocess.Popen([args.profile, "record", "--pid", str(pids["controller"]),
                                "--duration", str(PROFILE_SECONDS), "--format", "raw",
                                "--output", str(out), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu0, began = {k: sum(pu.cpu_seconds([p]).values()) for k, p in pids.items()}, time.monotonic()
    rng = random.Random(seed)
    ports, audits = [], []
    order = ["port"] * len(plugs) + ["audit"] * args.audits
    order.sort(key=lambda what: rng.random())         # interleaved, seeded
    it = iter(plugs)
    api_during, failing, skipped = None, 0, {"port": 0, "audit": 0}
    for n, what in enumerate(order):
        if n == len(order) // 2:
            _, api_during = metrics(str(api_sock))    # the API answering, mid-attack
        if failing >= GIVE_UP:
            skipped[what] += 1
            continue
        if what == "port":
            plug = next(it)
            ports.append({"host": plug.host, "iface": plug.iface,
                          "latency": port_probe(fab, marks, plug, args.timeout)})
            failing = failing + 1 if ports[-1]["latency"] is None else 0
        else:
            host = last_audited(log, hosts) or hosts[len(audits) % len(hosts)]
            audits.append(audit_probe(fab, watch, host, rng.choice(flows[host]), args.timeout))
            failing = failing + 1 if audits[-1]["repair"] is None else 0
        time.sleep(0.05)
    active = time.monotonic() - began
    cpu = {k: sum(pu.cpu_seconds([p]).values()) - cpu0[k] for k, p in pids.items()}
    stopped = time.monotonic()
    thrown = stop_attacker(proc) if proc is not None else {}
    added = {x["iface"] for x in ports}
    caught_up = marks.wait(lambda: added <= marks.first.keys(), RECOVERY)
    recovery = time.monotonic() - stopped if caught_up else None
    if spy is not None:
        spy.wait()
    after, api_after = metrics(str(api_sock))
    time.sleep(SETTLE)
    return {"condition": condition, "ports": ports, "audits": audits, "skipped": skipped,
            "recovery": recovery,
            "thrown": thrown,
            "counters": delta(before, after) if before and after else {"unread": 1}, "cpu": cpu, "active": active,
            "api_during": api_during, "api_after": api_after}


# -- figures ------------------------------------------------------------------------------
def summarize(values: list) -> dict:
    done = [v for v in values if v is not None]
    if not done:
        return {"n": len(values), "failed": len(values), "p50": None, "p95": None, "max": None}
    return {"n": len(values), "failed": len(values) - len(done), "p50": statistics.median(done),
            "p95": pu.pct(done, 95), "max": max(done)}


def ms(v) -> str:
    return "-" if v is None else f"{v * 1000:,.0f} ms"


def ratio(v, base) -> str:
    return "-" if v is None or not base else f"{v / base:.2f}x"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--networks", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=4, help="each condition this many times")
    ap.add_argument("--ports", type=int, default=10, help="port-up probes per block")
    ap.add_argument("--audits", type=int, default=5, help="audit-repair probes per block")
    ap.add_argument("--audit-interval", type=float, default=1.0,
                    help="the controller's --nsgre-audit-interval, seconds")
    ap.add_argument("--slow-clients", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="seconds after which a probe not done is a failure")
    ap.add_argument("--out", default=str(HERE.parent / "BENCHMARKS.md"))
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--attacker", choices=sorted(set(ATTACKER.values())), help=argparse.SUPPRESS)
    ap.add_argument("--api", help=argparse.SUPPRESS)
    ap.add_argument("--openflow", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--only", action="append", choices=CONDITIONS, help=argparse.SUPPRESS)
    ap.add_argument("--profile", metavar="PY_SPY",
                    help="record the controller with this py-spy for PROFILE_SECONDS from each "
                         "attack's first probe (raw stacks in the run directory, not reported)")
    args = ap.parse_args(argv)
    if args.attacker:
        return attacker(args)
    load_bench_modules()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    state = emulation.State.read(emulation.RUN_DIR)
    if state is not None and any(emulation._cmdline(p["pid"]) and p["what"] in
                                 emulation._cmdline(p["pid"]) for p in state.data["processes"]):
        raise SystemExit(f"an emulation is running in {emulation.RUN_DIR} (another benchmark?); "
                         "not touching it")

    base_text = generate(args.hosts, args.networks, args.networks * 2, seed=1)
    probe = topology.parse(base_text, "fabric.yaml")
    hosts = sorted(probe.hosts)
    count = args.rounds * len(CONDITIONS) * args.ports
    text = pu.extend(base_text, probe, count, lambda i: hosts[i % len(hosts)])
    tmp = tempfile.TemporaryDirectory()
    path = Path(tmp.name) / "fabric.yaml"
    path.write_text(text)
    topo = topology.load(str(path))
    absent = {e for e in topo.endpoints if e.startswith(pu.PREFIX)}
    plugs = []
    for name in sorted(absent):
        ep = topo.endpoint(name)
        i = int(name[len(pu.PREFIX):])
        plugs.append(pu.Plug(name, ep.host, f"vn{i:05d}", f"vs{i:05d}",
                             {binding.IFACE_ID: ep.iface_id, binding.ATTACHED_MAC: ep.mac,
                              "iface-status": "active"}))
    os.environ["OS_DEFAULT__NSGRE_AUDIT_INTERVAL"] = f"{args.audit_interval:g}"  # the controller's
    fab = BenchFabric(topo, absent=absent)
    marks = watch = None
    blocks = []
    try:
        began = time.monotonic()
        fab.up(None)
        fab.wait_counts({h: fab.expected(h) for h in hosts}, time.monotonic())
        marks = pu.Marks({h: fab.ovs[h].db for h in hosts})
        present = {h: sum(1 for e in topo.endpoints_on(h) if e.name not in absent)
                   for h in hosts}
        if not marks.wait(lambda: all(marks.marked(h) >= present[h] for h in hosts), 300):
            raise emulation.EmulationError("the fabric's endpoints were not all marked")
        flows = {h: candidate_flows(fab, h) for h in hosts}
        watch = FlowWatch(fab)
        time.sleep(2)
        print(f"fabric up and marked in {time.monotonic() - began:.0f} s: {topo.summary()}; "
              f"flows per host {', '.join(str(len(flows[h])) for h in hosts)}", flush=True)
        k = 0
        for r in range(args.rounds):
            for condition in CONDITIONS:
                if args.only and condition != "baseline" and condition not in args.only:
                    continue
                mine = plugs[k * args.ports:(k + 1) * args.ports]
                k += 1
                b = run_block(fab, marks, watch, condition, mine, flows, hosts, args,
                              seed=1000 * r + k)
                blocks.append(b)
                p = summarize([x["latency"] for x in b["ports"]])
                a = summarize([x["repair"] for x in b["audits"]])
                print(f"round {r + 1}, {condition}: port up p50 {ms(p['p50'])} max "
                      f"{ms(p['max'])} ({p['failed']} failed); audit repair p50 {ms(a['p50'])} "
                      f"max {ms(a['max'])} ({a['failed']} failed); controller CPU "
                      f"{b['cpu']['controller'] / b['active']:.0%}; thrown "
                      f"{b['thrown'].get('counts', {})}; counters {b['counters']}", flush=True)
        (fab.run_dir / "attacks.json").write_text(json.dumps(blocks, indent=0, default=str))
        errors = ["Traceback" if line.startswith("Traceback") else line[:200]
                  for line in fab.controller_log().read_text(errors="replace").splitlines()
                  if line.startswith("Traceback") or "Encountered an error while parsing" in line]
    finally:
        if watch is not None:
            watch.close()
        if marks is not None:
            marks.close()
        fab.down()
        tmp.cleanup()

    section, rows = report(topo, blocks, args, errors, count)
    print(section)
    if not args.no_write:
        write_section(args.out, "attacks", section, rows)
    return 0


def report(topo, blocks: list, args, errors: list, plugged: int) -> tuple[str, list]:
    by = {c: bs for c in CONDITIONS if (bs := [b for b in blocks if b["condition"] == c])}
    lat = {c: {"port": summarize([x["latency"] for b in bs for x in b["ports"]]),
               "audit": summarize([x["repair"] for b in bs for x in b["audits"]])}
           for c, bs in by.items()}
    base = lat["baseline"]
    fabric = topo.summary().split(", tunnel")[0].replace(
        f"{len(topo.endpoints)} endpoints", f"{len(topo.endpoints) - plugged} endpoints")
    lines = [
        "## Port events and audits under attack",
        "",
        f"`bench/bench_attacks.py` (root): {fabric} as patch ports (`bench/fabric.py`, each",
        "host its own ovsdb-server and ovs-vswitchd), the controller auditing every "
        f"{args.audit_interval:g} s.",
        "Two latencies, probed one after the other: *port up*, a port added with",
        "`external_ids:iface-id` in one OVSDB transaction to the controller's",
        "`nsgre-installed-ts` on it (as `bench/bench_port_up.py`); *audit repair*, one nsgre",
        "flow deleted by hand (`ovs-ofctl --strict del-flows`) to the switch adding it again,",
        "both as the switch reports them (`ovs-ofctl monitor`), on the switch the audit round",
        "read last (the repair then comes from the flow count at the next tick). Conditions,",
        f"in {args.rounds} rounds of each in turn, {args.ports} port and {args.audits} audit "
        "probes a block:",
        "",
        "- **baseline**: no attack;",
        f"- **slow clients**: {args.slow_clients} connections to the API socket, each a partial "
        "HTTP request: half trickle a byte a second, never ending it, half stall (the "
        "controller cuts a stalled one after 10 s; they are first opened over 10 s, so the "
        "cuts come a few at a time, all along); each one cut is opened again at once;",
        "- **packet-in flood**, **port-status flood**: a fake switch (a datapath id no host "
        "has; handshake, port description and echoes answered) sending packet-ins, or "
        "port-status, as fast as the socket takes them, reconnecting when cut;",
        "- **malformed**: `openflow_fuzz.peer` (tests/integration) two at a time, again and "
        "again: the handshake, then malformed and oversized (64 KB) messages until the "
        "controller hangs up.",
        "",
        f"Each attack runs in its own process at nice 19 (it takes the cores only as far as the "
        "fabric leaves them idle; on a network it would be another machine), from "
        f"{WARMUP:g} s after it is under way to the block's last probe. Target: under each attack, each latency's p95 at most "
        f"{TARGET_RATIO:g}x the baseline's p95, none failed. A probe not done within "
        f"{args.timeout:g} s failed; after {GIVE_UP} failed in a row a block skips the rest of "
        "its probes (*skipped*).",
        "",
        "| condition | latency | n | median | p95 | max | failed | skipped | median / baseline "
        "| p95 / baseline | target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    rows, verdict = [], {}
    for c in by:
        for what, label in (("port", "port up"), ("audit", "audit repair")):
            s, b = lat[c][what], base[what]
            skipped = sum(blk["skipped"][what] for blk in by[c])
            if c == "baseline":
                mark = ""
            else:
                met = s["failed"] == skipped == 0 and s["p95"] is not None and b["p95"] is not None \
                    and s["p95"] <= TARGET_RATIO * b["p95"]
                verdict[c, what] = met
                mark = "met" if met else "**not met**"
            lines.append(f"| {c} | {label} | {s['n']} | {ms(s['p50'])} | {ms(s['p95'])} | "
                         f"{ms(s['max'])} | {s['failed']} | {skipped} | "
                         f"{ratio(s['p50'], b['p50'])} | "
                         f"{ratio(s['p95'], b['p95'])} | {mark} |")
    lines += ["", "What each attack threw (over all its blocks), the controller's counters "
              "(the change over its blocks, from `GET /metrics`), the controller's CPU while "
              "probes ran (of one core), how long `GET /metrics` took in the middle of a "
              "block (slowest), and *caught up*: from the attack's end until every port its "
              f"blocks added was marked (slowest block; *never*: not within {RECOVERY:g} s):",
              "",
              "| condition | thrown | controller counters | controller CPU | attacker CPU "
              "| GET /metrics | caught up |", "|---|---|---|---:|---:|---:|---:|"]
    for c, bs in by.items():
        thrown: dict = {}
        lifetimes: dict = {}
        for b in bs:
            for key, n in b["thrown"].get("counts", {}).items():
                thrown[key] = thrown.get(key, 0) + n
            for key, v in b["thrown"].get("lifetimes", {}).items():
                lifetimes.setdefault(key, []).append(v)
        counters: dict = {}
        for b in bs:
            for key, n in b["counters"].items():
                if not key.startswith("nsgre_port_changes_total"):
                    counters[key] = counters.get(key, 0) + n
        active = sum(b["active"] for b in bs)
        cpu = sum(b["cpu"]["controller"] for b in bs) / active
        attacker_cpu = sum(b["cpu"].get("attacker", 0.0) for b in bs) / active
        thrown_text = ", ".join(f"{k} {n:,}" for k, n in sorted(thrown.items())) or "-"
        if lifetimes:
            thrown_text += "; median life of one cut: " + ", ".join(
                f"{k} {statistics.median(v):.1f} s" for k, v in sorted(lifetimes.items()))
        counter_text = ", ".join(f"`{k}` +{n:,.0f}" for k, n in sorted(counters.items())) or "-"
        answered = [b["api_during"] for b in bs if b["api_during"] is not None]
        api_text = ms(max(answered, default=None))
        if len(answered) < len(bs):
            api_text += f"; no answer within {METRICS_TIMEOUT:g} s in {len(bs) - len(answered)} " \
                        f"of {len(bs)} blocks"
        recovered = [b["recovery"] for b in bs]
        caught = "never" if None in recovered else ms(max(recovered))
        lines.append(f"| {c} | {thrown_text} | {counter_text} | {cpu:.0%} | "
                     f"{attacker_cpu:.0%} | {api_text} | {caught} |")
    parse = sum("Encountered an error while parsing" in line for line in errors)
    lines += ["", f"Tracebacks in the controller's log: {errors.count('Traceback')}, of which "
              f"{parse} os-ken's own, logged as its parser failed on a message the guard had "
              "passed (`nsgre_openflow_dropped_total{reason=\"unparsable\"}`; the connection "
              "is then closed)."]
    for c in list(by)[1:]:
        p, a = lat[c]["port"], lat[c]["audit"]
        rows.append((f"Under attack ({c}, {fabric}): port up and audit repair p95 against "
                     "no attack", f"p95 <= {TARGET_RATIO:g}x baseline",
                     f"port up {ratio(p['p95'], base['port']['p95'])} "
                     f"({ms(p['p95'])} vs {ms(base['port']['p95'])}), audit repair "
                     f"{ratio(a['p95'], base['audit']['p95'])} ({ms(a['p95'])} vs "
                     f"{ms(base['audit']['p95'])}); {p['failed'] + a['failed']} failed, "
                     f"{sum(sum(blk['skipped'].values()) for blk in by[c])} skipped",
                     verdict[c, "port"] and verdict[c, "audit"], "bench/bench_attacks.py"))
    return "\n".join(lines), rows


if __name__ == "__main__":
    sys.exit(main())
