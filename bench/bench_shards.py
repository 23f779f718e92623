"""A fabric of many hosts programmed by 1, 2 and 3 sharded controllers.

    sudo .venv/bin/python bench/bench_shards.py [--hosts 64] [--networks 6000]
        [--rounds 2] [--takeovers 3] [--no-write]

Every host is its own ovsdb-server and ``ovs-vswitchd --enable-dummy`` with
a ``datapath_type=dummy`` br-int (no kernel device, no namespace of its
own, little memory), its endpoint ports dummy interfaces; all of them, the
3-member raft cluster holding the topology and the controllers run in one
namespace the benchmark creates.  For each count of controllers (the
topology applied with ``--shards`` that count, each controller preferring
its own shard):

- every bridge emptied of nsgre's flows and groups, no controller set;
- the controllers started at once; once every host is prepared (each by
  the controller holding its shard's lock), every bridge is given all the
  controllers and the time runs until every bridge holds exactly what it
  should (``dump-aggregate`` and ``dump-group-stats`` polled);
- each controller's CPU seconds (user + system, from its start until the
  fabric is programmed) and peak memory (VmHWM);
- once more after the rounds, the 3 with a standby beside them holding no
  shard (connected to every switch, following the database): what any
  controller costs before it programs anything, and so what sharding
  cannot divide (a round of its own: a fourth controller on 2 cores slows
  the others);
- the limit, side by side: the same flows and groups by ``ovs-ofctl
  bundle``, one bundle per bridge, all at once;
- last, a shard's owner killed (SIGKILL) among three once every bridge is
  programmed: the time until each of its hosts has a new master (#14:
  within 1 s), ``--takeovers`` times.

Target (#14): with 3 controllers, each one's CPU and memory at most 0.4x
of one controller doing it all.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import topology                                               # noqa: E402
from bench_programming import bundle_text, fabric_file        # noqa: E402
from fabric import COOKIE                                     # noqa: E402
from report import write_section                              # noqa: E402
from osken_apps import ovsdb as ovsdb_mod                     # noqa: E402
from nsgre_tools import database                              # noqa: E402

NAMESPACE = "nsgre-bench-shards"
RAFT_IP = "198.18.254.9"
CLI = [sys.executable, "-m", "nsgre_tools.cli"]
#: The database sessions' probe: 1 s (the failover tests' and benchmark's)
#: dropped sessions here -- 64 switches, a raft cluster and 3 controllers
#: on 2 cores leave a busy controller's echo unanswered that long.
PROBE_MS = 5000
#: A survivor's log line: a switch answered its MASTER claim.
CLAIMED = re.compile(r"^(\S+ \S+) nsgre: (\S+): MASTER \(generation \d+\)", re.M)


def run(cmd, check=True, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and done.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: {done.stderr.strip()}")
    return done


def in_ns(cmd) -> list:
    return ["ip", "netns", "exec", NAMESPACE, *cmd]


class DummyFabric:
    """The hosts' switches, the topology database and the controllers, each
    process recorded by PID and stopped by it (``down``)."""

    def __init__(self, topo, directory: Path):
        self.topo = topo
        self.dir = directory
        self.pids: list[int] = []           # switches' ovsdb-servers and vswitchds
        self.controllers: list[subprocess.Popen] = []
        self.db_dir = directory / "db"
        self.listening = False
        self.namespace = False                # created by this run

    # -- building ---------------------------------------------------------------
    def up(self):
        if NAMESPACE in run(["ip", "netns", "list"]).stdout.split():
            raise RuntimeError(f"namespace {NAMESPACE} exists: a run of this bench is going "
                               "on, or one crashed (ip netns delete it)")
        run(["ip", "netns", "add", NAMESPACE])
        self.namespace = True
        try:
            run(in_ns(["ip", "link", "set", "lo", "up"]))
            run(in_ns(["ip", "addr", "add", f"{RAFT_IP}/32", "dev", "lo"]))
            for host in self.topo.hosts:
                self._switch(host)
            run(in_ns([*CLI, "db", "create", str(self.db_dir), "--cluster", "3",
                       "--address", RAFT_IP]))
        except BaseException:
            self.down()
            raise

    def host_dir(self, host: str) -> Path:
        return self.dir / "hosts" / host

    def db(self, host: str) -> str:
        return f"unix:{self.host_dir(host)}/db.sock"

    def _switch(self, host: str):
        d = self.host_dir(host)
        d.mkdir(parents=True)
        env = {**os.environ, "OVS_RUNDIR": str(d), "OVS_LOGDIR": str(d), "OVS_DBDIR": str(d)}
        run(["ovsdb-tool", "create", f"{d}/conf.db", "/usr/share/openvswitch/vswitch.ovsschema"])
        run(in_ns(["ovsdb-server", f"{d}/conf.db", f"--remote=punix:{d}/db.sock",
                   f"--pidfile={d}/ovsdb.pid", f"--unixctl={d}/ovsdb.ctl",
                   f"--log-file={d}/ovsdb.log", "--detach"]), env=env)
        self.pids.append(int((d / "ovsdb.pid").read_text()))
        run(["ovs-vsctl", f"--db={self.db(host)}", "--no-wait", "init"])
        run(in_ns(["ovs-vswitchd", self.db(host), "--enable-dummy", "--disable-system-route",
                   f"--pidfile={d}/vs.pid", f"--unixctl={d}/vs.ctl", f"--log-file={d}/vs.log",
                   "--detach"]), env=env)
        self.pids.append(int((d / "vs.pid").read_text()))
        ovsdb_mod.prepare_host(self.topo, host, self.db(host), None, datapath_type="dummy")
        args = []
        for ep in self.topo.endpoints_on(host):
            args += ["--", "add-port", "br-int", ep.port, "--", "set", "interface", ep.port,
                     "type=dummy"]
        for i in range(0, len(args), 3000):
            run(["ovs-vsctl", f"--db={self.db(host)}", *args[i:i + 3000]])

    def down(self):
        _stop([p.pid for p in self.controllers], "nsgre_tools.cli")
        self.controllers = []
        database.stop(self.db_dir)
        _stop(self.pids, "ovs")
        self.pids = []
        if self.namespace:
            run(["ip", "netns", "delete", NAMESPACE], check=False)
            self.namespace = False

    # -- what a round does ----------------------------------------------------------
    def ofctl(self, host: str, *args, check=True) -> str:
        mgmt = f"unix:{self.host_dir(host)}/br-int.mgmt"
        return run(["ovs-ofctl", "-O", "OpenFlow13", args[0], mgmt, *args[1:]],
                   check=check).stdout

    def ports(self, host: str) -> dict[str, int]:
        out = run(["ovs-vsctl", f"--db={self.db(host)}", "--format=csv", "--no-headings",
                   "--columns=name,ofport", "list", "Interface"]).stdout
        return {n.strip('"'): int(p) for n, p in (line.split(",") for line in out.splitlines())
                if int(p) > 0}

    def counts(self, host: str) -> tuple[int, int]:
        flows = self.ofctl(host, "dump-aggregate", COOKIE, check=False)
        n = int(flows.split("flow_count=")[1].split()[0]) if "flow_count=" in flows else -1
        return n, self.ofctl(host, "dump-group-stats", check=False).count("group_id=")

    def wait_counts(self, want: dict, timeout: float = 300) -> None:
        """Until each host holds ``want`` (flows, groups); hosts polled
        several at once (64 hosts one by one take a while)."""
        from concurrent.futures import ThreadPoolExecutor
        left, deadline = set(want), time.monotonic() + timeout
        with ThreadPoolExecutor(8) as pool:
            while left:
                got = dict(zip(sorted(left), pool.map(self.counts, sorted(left))))
                left = {h for h in left if got[h] != want[h]}
                if left and time.monotonic() > deadline:
                    raise RuntimeError(f"not programmed after {timeout} s: " + ", ".join(
                        f"{h} {got[h]} (wants {want[h]})" for h in sorted(left)[:5]))
                time.sleep(0.05)

    def empty(self):
        """No controller on any bridge, none of nsgre's flows or groups."""
        for host in self.topo.hosts:
            run(["ovs-vsctl", f"--db={self.db(host)}", "del-controller", "br-int"])
            self.ofctl(host, "del-flows", COOKIE)
            self.ofctl(host, "del-groups")

    def start_controllers(self, count: int, source: Path,
                          standby: bool = False) -> list[subprocess.Popen]:
        """``count`` controllers, each preferring its shard; ``standby``: one
        more (the last), preferring a shard that does not exist, so it
        holds none while the others live."""
        run([*CLI, "apply", str(source), "--db", self.remotes(), "--shards", str(count)])
        if not self.listening:               # the controllers' socket on every member
            run(in_ns([*CLI, "db", "listen", str(self.db_dir), "--target",
                       "punix:controllers.sock", "--probe", str(PROBE_MS)]))
            self.listening = True
        controllers = ",".join(f"unix:{m.rundir / 'controllers.sock'}"
                               for m in database.members(self.db_dir))
        for k in range(count + standby):
            log = open(self.dir / f"controller-{count}-{k}.log", "w")
            proc = subprocess.Popen(in_ns([
                *CLI, "controller", "--db", controllers, "--prefer", str(k if k < count else 999),
                "--db-probe", str(PROBE_MS / 1000),
                "--listen", str(self.dir / f"of-{k}.sock"),
                "--api", str(self.dir / f"api-{k}.sock"),
                "--ovsdb", f"unix:{self.dir}/hosts/{{host}}/db.sock"]),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self.controllers.append(proc)
        return self.controllers

    def remotes(self) -> str:
        return ",".join(f"unix:{m.sock}" for m in database.members(self.db_dir))

    def wait_prepared(self, count: int, timeout: float = 300):
        """Until every host is logged prepared by one of the controllers."""
        deadline = time.monotonic() + timeout
        while True:
            text = "".join((self.dir / f"controller-{count}-{k}.log").read_text(errors="replace")
                           for k in range(count))
            if all(f"nsgre: {h} prepared before its switch connected" in text
                   for h in self.topo.hosts):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"hosts not prepared in {timeout} s:\n{text[-3000:]}")
            time.sleep(0.1)

    def connect(self, count: int):
        """Every bridge given every controller (OVS connects to Unix sockets
        only inside its own run directory: through links placed there)."""
        procs = []
        for h in self.topo.hosts:
            targets = []
            for k in range(count):
                link = self.host_dir(h) / f"controller-{k}.sock"
                link.unlink(missing_ok=True)
                link.symlink_to(self.dir / f"of-{k}.sock")
                targets.append(f"unix:{link}")
            procs.append(subprocess.Popen(["ovs-vsctl", f"--db={self.db(h)}", "set-controller",
                                           "br-int", *targets]))
        for p in procs:
            p.wait()

    def stop_controllers(self):
        _stop([p.pid for p in self.controllers], "nsgre_tools.cli")
        for proc in self.controllers:
            proc.wait()
        self.controllers = []


def _stop(pids, what: str, timeout: float = 10.0):
    """SIGTERM to each of ``pids`` still running ``what``, all at once;
    SIGKILL to any still there after ``timeout``."""
    mine = []
    for pid in pids:
        try:
            if what in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, 15)
                mine.append(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass
    deadline = time.monotonic() + timeout
    while mine and time.monotonic() < deadline:
        mine = [pid for pid in mine if _running(pid)]
        time.sleep(0.05)
    for pid in mine:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines()
                    if line.startswith("VmHWM")).split()[1]) / 1024


def round_nsgre(fab: DummyFabric, count: int, source: Path, want: dict,
                standby: bool = False) -> dict:
    fab.empty()
    procs = fab.start_controllers(count, source, standby)
    fab.wait_prepared(count)
    start = time.monotonic()
    fab.connect(count + standby)
    fab.wait_counts(want)
    seconds = time.monotonic() - start
    time.sleep(0.5)                                   # the last barrier replies
    cpu, rss = [cpu_seconds(p.pid) for p in procs], [peak_mb(p.pid) for p in procs]
    result = {"seconds": seconds, "cpu": cpu[:count], "rss": rss[:count]}
    if standby:
        result["standby"] = (cpu[-1], rss[-1])
    fab.stop_controllers()
    return result


def queued(fab: DummyFabric, count: int, k: int, shard: int) -> bool:
    """Controller ``k`` is queued for ``shard``'s lock now (its last word
    on it): after a raft leader change a backup asks again only after its
    grace, and an owner killed meanwhile waits for that."""
    lines = [line for line in (fab.dir / f"controller-{count}-{k}.log").read_text(
        errors="replace").splitlines() if f"nsgre_shard_{shard}:" in line]
    return bool(lines) and "queued" in lines[-1]


def round_takeover(fab: DummyFabric, count: int, source: Path, want: dict) -> dict:
    """Every bridge programmed by ``count`` controllers and the others
    queued for shard 0's lock (after ``topodb.GRACE``); then the
    owner of shard 0 killed (SIGKILL): seconds until every one of its
    switches has answered another controller's MASTER claim (as the
    survivors log it, ms resolution: ovs-vswitchd refreshes its
    ``Controller`` role column only now and then); every bridge then
    checked to hold exactly what it should."""
    from osken_apps.topodb import GRACE
    fab.empty()
    procs = fab.start_controllers(count, source)
    fab.wait_prepared(count)
    fab.connect(count)
    fab.wait_counts(want)
    deadline = time.monotonic() + 3 * GRACE
    while not all(queued(fab, count, k, 0) for k in range(1, count)):
        if time.monotonic() > deadline:
            raise RuntimeError("the backups of shard 0 never queued for its lock")
        time.sleep(0.1)
    orphans = sorted({m[2] for m in CLAIMED.finditer(
        (fab.dir / f"controller-{count}-0.log").read_text(errors="replace"))})
    if not orphans:
        raise RuntimeError("controller 0 was master of no switch")
    killed, clock = time.time(), time.monotonic()
    os.kill(procs[0].pid, 9)
    procs[0].wait()
    claimed: dict = {}
    while set(claimed) != set(orphans):
        for k in range(1, count):
            text = (fab.dir / f"controller-{count}-{k}.log").read_text(errors="replace")
            for m in CLAIMED.finditer(text):
                when = datetime.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                if m[2] in orphans and when >= killed - 0.001:
                    claimed.setdefault(m[2], when)
        if time.monotonic() - clock > 60:
            raise RuntimeError(f"no new master in 60 s for {sorted(set(orphans) - set(claimed))}")
        time.sleep(0.05)
    fab.wait_counts(want)
    fab.stop_controllers()
    return {"hosts": len(orphans), "moved": max(claimed.values()) - killed}


def round_limit(fab: DummyFabric, files: dict, meters: dict, want: dict) -> float:
    """The bundles' time; the meters their flows use (DHCP's rate limit,
    gone with the controllers' connections) are put in first, untimed:
    OVS cannot bundle meter-mods and ovs-ofctl has no bulk meter command."""
    from concurrent.futures import ThreadPoolExecutor
    fab.empty()

    def add_meters(host):
        for meter in meters[host]:
            fab.ofctl(host, "add-meter", meter)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(add_meters, sorted(meters)))
    start = time.monotonic()
    procs = [subprocess.Popen(["ovs-ofctl", "-O", "OpenFlow13", "bundle",
                               f"unix:{fab.host_dir(h)}/br-int.mgmt", str(files[h])],
                              stderr=subprocess.PIPE, text=True) for h in sorted(files)]
    for p in procs:
        if p.wait():
            raise RuntimeError(f"ovs-ofctl bundle: {p.stderr.read()}")
    fab.wait_counts(want)
    return time.monotonic() - start


def installed(fab: DummyFabric, host: str) -> list[str]:
    out = fab.ofctl(host, "dump-flows", COOKIE, "--no-stats", check=False)
    return sorted(line.strip() for line in out.splitlines() if "cookie=" in line)


def measure(hosts: int, networks: int, rounds: int, counts=(1, 2, 3), takeovers: int = 3) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="nsgre-shards-"))
    source = fabric_file(hosts, networks, tmp)
    topo = topology.load(str(source))
    fab = DummyFabric(topo, tmp)
    results: dict = {n: [] for n in counts}
    limit, takeover = [], []
    try:
        fab.up()
        ports = {h: fab.ports(h) for h in topo.hosts}
        from nsgre_core import pipeline
        want, files, meters = {}, {}, {}
        for h in topo.hosts:
            p = pipeline.compute(topo, h, ports[h])
            want[h] = (len(p.flows), len(p.groups))
            meters[h] = [m.to_ofctl() for m in p.meters]
            files[h] = tmp / f"bundle-{h}.txt"
            files[h].write_text(bundle_text(topo, h, ports[h]))
        for i in range(rounds):
            for n in counts:                              # side by side, alternating
                results[n].append(round_nsgre(fab, n, source, want))
                print(f"round {i + 1}: {n} controller(s): {results[n][-1]}", flush=True)
                if i == 0 and n == counts[0]:
                    by_nsgre = {h: installed(fab, h) for h in sorted(topo.hosts)[:4]}
            limit.append(round_limit(fab, files, meters, want))
            print(f"round {i + 1}: ovs-ofctl bundle {limit[-1]:.2f} s", flush=True)
            if i == 0:
                assert {h: installed(fab, h) for h in by_nsgre} == by_nsgre, \
                    "ovs-ofctl and nsgre left different tables"
        standby = round_nsgre(fab, counts[-1], source, want, standby=True)["standby"]
        print(f"standby beside {counts[-1]}: {standby}", flush=True)
        for i in range(takeovers):
            takeover.append(round_takeover(fab, counts[-1], source, want))
            print(f"takeover {i + 1}: {takeover[-1]}", flush=True)
    except BaseException:
        fab.down()
        print(f"logs kept in {tmp}", flush=True)
        raise
    fab.down()
    shutil.rmtree(tmp, ignore_errors=True)
    flows = [w[0] for w in want.values()]
    return {"hosts": hosts, "networks": networks, "summary": topo.summary(),
            "flows_total": sum(flows), "flows_max": max(flows),
            "results": results, "limit": limit, "standby": standby, "takeover": takeover}


def summarise(r: dict) -> dict:
    """Per count of controllers: median seconds, and the median over rounds
    of the busiest controller's CPU seconds and peak memory."""
    out = {}
    for n, rounds in r["results"].items():
        out[n] = {"seconds": statistics.median(x["seconds"] for x in rounds),
                  "cpu": statistics.median(max(x["cpu"]) for x in rounds),
                  "rss": statistics.median(max(x["rss"]) for x in rounds),
                  "all_cpu": [x["cpu"] for x in rounds], "all_rss": [x["rss"] for x in rounds]}
    return out


def headline(r: dict) -> str:
    s = summarise(r)
    one = s[1]
    limit = statistics.median(r["limit"])
    lines = [
        "## Many hosts, sharded controllers",
        "",
        f"`bench/bench_shards.py` (root): {r['summary']}, {r['flows_total']:,} flows in all "
        f"(up to {r['flows_max']:,} a host). Every host its own ovsdb-server and",
        "`ovs-vswitchd --enable-dummy` (br-int `datapath_type=dummy`, endpoint ports dummy",
        "interfaces); the topology in a 3-member raft cluster, applied with `--shards N`; N",
        "controllers, each preferring its own shard and watching only its hosts' networks",
        "and their members (`monitor_cond`). Each round empties every bridge, starts the",
        "controllers, waits until every host is prepared, then gives every bridge all N",
        "controllers and times until every bridge holds exactly what it should. CPU: user +",
        "system seconds of each controller from its start to the fabric programmed; memory:",
        "its peak resident set (VmHWM). The busiest controller counts. Median of "
        f"{len(r['limit'])} rounds, alternating, side by side with `ovs-ofctl bundle`:",
        "",
        "| controllers | programmed in | vs `ovs-ofctl bundle` | busiest CPU | CPU vs one "
        "| busiest peak memory | memory vs one | target |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for n, x in s.items():
        cpu, rss = x["cpu"] / one["cpu"], x["rss"] / one["rss"]
        target = "" if n != 3 else (
            "CPU and memory <= 0.4x: " + ("met" if cpu <= 0.4 and rss <= 0.4 else
                                          f"**not met** (CPU {'met' if cpu <= 0.4 else 'not'}, "
                                          f"memory {'met' if rss <= 0.4 else 'not'})"))
        lines.append(f"| {n} | {x['seconds']:.2f} s | {x['seconds'] / limit:.2f}x | "
                     f"{x['cpu']:.1f} s | {cpu:.2f}x | {x['rss']:.0f} MB | {rss:.2f}x | {target} |")
    lines += ["", f"`ovs-ofctl bundle`, all bridges at once: {limit:.2f} s (rounds "
              f"{', '.join(f'{x:.2f}' for x in r['limit'])})."]
    if r.get("standby") and 3 in s:
        (sc, sm), three = r["standby"], s[3]
        lines += ["", f"A standby holding no shard, beside the three in a round of its own "
                  f"(every switch connected,", f"the database followed): {sc:.1f} s of CPU "
                  f"and {sm:.0f} MB, what sharding cannot divide. Beyond it, the",
                  f"busiest of three does {(three['cpu'] - sc) / (one['cpu'] - sc):.2f}x the "
                  f"CPU and {(three['rss'] - sm) / (one['rss'] - sm):.2f}x the memory of one "
                  "controller doing it all."]
    if r.get("takeover"):
        moved = [x["moved"] for x in r["takeover"]]
        lines += ["", "A shard's owner killed (SIGKILL) among three, once every switch was "
                  "programmed and the backups", f"queued: all {r['takeover'][0]['hosts']} of "
                  "its switches had answered another controller's MASTER claim",
                  f"{statistics.median(moved):.2f} s later (median of {len(moved)}; max "
                  f"{max(moved):.2f} s; from the survivors' logs); every bridge then still",
                  "held exactly what it should (checked): a takeover deletes nothing."]
    lines += ["",
              "Every controller, every round (CPU s / peak MB):", ""]
    for n, x in s.items():
        lines.append(f"- {n}: " + "; ".join(
            ", ".join(f"{c:.1f}/{m:.0f}" for c, m in zip(cpus, rsss))
            for cpus, rsss in zip(x["all_cpu"], x["all_rss"])))
    return "\n".join(lines)


def figures(r: dict) -> list[tuple]:
    s = summarise(r)
    size = f"{r['hosts']} hosts x {r['networks']:,} networks"
    cpu, rss = s[3]["cpu"] / s[1]["cpu"], s[3]["rss"] / s[1]["rss"]
    limit = statistics.median(r["limit"])
    return [
        (f"Busiest of 3 sharded controllers against one, {size}: CPU", "<= 0.4x",
         f"{cpu:.2f}x ({s[3]['cpu']:.1f} s vs {s[1]['cpu']:.1f} s)", cpu <= 0.4,
         "bench/bench_shards.py"),
        (f"Busiest of 3 sharded controllers against one, {size}: peak memory", "<= 0.4x",
         f"{rss:.2f}x ({s[3]['rss']:.0f} MB vs {s[1]['rss']:.0f} MB)", rss <= 0.4,
         "bench/bench_shards.py"),
        *([(f"Shard takeover, {size}, 3 controllers: owner killed to a new master on each "
            "of its hosts", "within 1 s",
            f"median {statistics.median(x['moved'] for x in r['takeover']):.2f} s, max "
            f"{max(x['moved'] for x in r['takeover']):.2f} s ({len(r['takeover'])} runs)",
            max(x["moved"] for x in r["takeover"]) <= 1.0, "bench/bench_shards.py")]
          if r.get("takeover") else []),
        (f"Programming {size}: 1 / 2 / 3 controllers against `ovs-ofctl bundle`", "-",
         " / ".join(f"{s[n]['seconds'] / limit:.2f}x" for n in s) + f" ({limit:.2f} s)", None,
         "bench/bench_shards.py"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--networks", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--takeovers", type=int, default=3,
                        help="runs of a shard's owner killed among three")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--out", default=str(HERE.parent / "BENCHMARKS.md"))
    args = parser.parse_args()
    r = measure(args.hosts, args.networks, args.rounds, takeovers=args.takeovers)
    text = headline(r)
    print(text)
    if not args.no_write:
        write_section(args.out, "shards", text, figures(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
