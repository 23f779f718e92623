"""nsgre's topology database (an OVSDB: ``topology/nsgre.ovsschema``), from
the operator's side: a file applied as the difference with what the
database holds, in one transaction guarded by the fabric's version.

Validation and allocation happen here, on the client, exactly as a
controller does them for a file (same loader, same messages): a file with
any problem writes nothing.  Of two applies racing, the one whose guard
fails reads again and retries, so the database ends holding one of the two
files whole, never a mix.  Unix and TCP remotes; several, comma-separated
(the members of a cluster: the first that answers is used, and a member
forwards writes to the cluster's leader)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import topology
from osken_apps import ovsdb_rpc
from topology import edit, rows

#: Applies tried in a row while other writers keep landing first.
ATTEMPTS = 5


class DatabaseError(Exception):
    """The database could not be read or written (not the file's fault)."""


class Applied(NamedTuple):
    topology: object        # the topology the database holds now
    version: int            # the fabric's version now
    operations: int         # operations written (0: it held the file already)
    retries: int            # applies that lost a race first


def read(remotes: str) -> tuple[str, rows.Held]:
    """The first remote that answers, and what it holds."""
    errors = []
    for remote in remotes.split(","):
        try:
            result = ovsdb_rpc.transact(remote, rows.select_ops(), database=rows.DATABASE)
        except ovsdb_rpc.OvsdbError as exc:
            errors.append(str(exc))
            continue
        return remote, rows.read(result)
    raise DatabaseError("; ".join(errors) or "no remote given")


def apply(remotes: str, data: bytes, source: str, shards: int | None = None) -> Applied:
    """Apply a topology file's bytes (``TopologyError``: nothing written);
    ``shards``: share the hosts out between that many shards (default: as
    many as now), each host keeping its shard while it exists."""
    def make(held):
        previous = rows.topology(held) if held.version is not None else None
        return topology.parse(data, source, previous), hashlib.sha256(data).hexdigest()
    return _write(remotes, make, shards)


def change(remotes: str, what: str, change) -> Applied:
    """Make one change (``topology.edit.Change``) to the topology the
    database holds, validated as ``topology.edit`` does, with the loader's
    messages (``TopologyError``: nothing written); ``what`` names the change
    in them.  The fabric's digest is left empty: it holds no file now."""
    def make(held):
        if held.version is None:
            raise DatabaseError("holds no topology yet (nsgre apply FILE --db ...)")
        topo = edit.edited(rows.topology(held), what, change)
        topo.source = what
        return topo, ""
    return _write(remotes, make)


def _write(remotes: str, make, shards: int | None = None) -> Applied:
    """Read, ``make(held)`` the topology to write (validated and allocated
    around what the database holds) and its file's digest, write the
    difference; again when another writer landed first."""
    for attempt in range(ATTEMPTS):
        remote, held = read(remotes)
        topo, digest = make(held)
        ops = rows.transaction(held, topo, digest,
                               rows.assign_shards(rows.shards_of(held), topo.hosts, shards))
        if not ops:
            return Applied(topo, held.version or 0, 0, attempt)
        try:
            ovsdb_rpc.transact(remote, ops, timeout=30.0, database=rows.DATABASE)
        except ovsdb_rpc.OvsdbTimeout:
            continue                   # another writer landed since the read: again
        except ovsdb_rpc.OvsdbError as exc:
            raise DatabaseError(str(exc)) from exc
        return Applied(topo, (held.version or 0) + 1, len(ops), attempt)
    raise DatabaseError(f"{remotes}: another writer landed first {ATTEMPTS} times in a row")


def upgrade(remotes: str) -> str:
    """Bring a database made by an older nsgre to this one's schema, online
    (``ovsdb-client convert``: its members and clients see it converted,
    as OVN upgrades its databases), then fill what the new schema adds from
    what the database holds -- 1.2.0: each endpoint's ``networks``, the
    networks of its attachments, by which a shard's controller selects the
    members of the networks its hosts carry; 1.3.0: ``trunk``, whether
    there are several.  What it did, in words."""
    errors = []
    for remote in remotes.split(","):
        try:
            need = _run(["ovsdb-client", "needs-conversion", remote, str(rows.SCHEMA)])
        except DatabaseError as exc:
            errors.append(str(exc))
            continue
        converted = need.strip() == "yes"
        if converted:
            _run(["ovsdb-client", "convert", remote, str(rows.SCHEMA)])
        result = ovsdb_rpc.transact(remote, [
            {"op": "select", "table": "Endpoint", "where": [],
             "columns": ["_uuid", "attachments", "networks", "trunk"]},
            {"op": "select", "table": "Attachment", "where": [],
             "columns": ["_uuid", "network"]}], database=rows.DATABASE)
        network_of = {r["_uuid"][1]: r["network"][1] for r in result[1]["rows"]}
        ops = []
        for r in result[0]["rows"]:
            want = sorted({network_of[a[1]] for a in rows.set_of(r["attachments"])})
            row = rows.membership([["uuid", n] for n in want])
            if sorted(n[1] for n in rows.set_of(r["networks"])) != want or \
                    r["trunk"] != row["trunk"]:
                ops.append({"op": "update", "table": "Endpoint",
                            "where": [["_uuid", "==", r["_uuid"]]], "row": row})
        if ops:
            try:
                ovsdb_rpc.transact(remote, ops, timeout=30.0, database=rows.DATABASE)
            except ovsdb_rpc.OvsdbError as exc:
                raise DatabaseError(str(exc)) from exc
        version = json.loads(rows.SCHEMA.read_text())["version"]
        return (f"schema {version} " + ("(converted)" if converted else "already") +
                f"; {len(ops)} endpoints' networks and trunk flags filled")
    raise DatabaseError("; ".join(errors) or "no remote given")


def listen(remotes: str, target: str, probe_ms: int | None = None, gated: bool = False) -> str:
    """Make every member serve ``target`` too (a ``Connection`` row of the
    fabric, which each ovsdb-server reads, as OVN's ``NB_Global``
    connections), with an inactivity probe of ``probe_ms``: the server then
    drops a client silent that long twice over, and the locks it held go
    to the next in line (without a probe, a frozen master keeps its lock for
    ever on a Unix socket, or 5-10 s on TCP).  ``ptcp:6641`` on machines of
    their own; a relative ``punix:NAME`` is a socket in each member's own
    run directory."""
    if target.startswith("pssl:") or (gated and not target.startswith("punix:")):
        raise DatabaseError(f"listen: {target}: TLS clients come through each member's gate "
                            "(create/join --tls --remote pssl:PORT:IP): served by "
                            "ovsdb-server itself, they would skip the CRL and the readers' "
                            "limits")
    remote, held = read(remotes)
    if held.version is None:
        raise DatabaseError("holds no topology yet (nsgre apply FILE --db ...)")
    probe = ["set", []] if probe_ms is None else probe_ms
    found = ovsdb_rpc.transact(remote, [{"op": "select", "table": "Connection",
                                         "where": [["target", "==", target]]}],
                               database=rows.DATABASE)[0]["rows"]
    if found:
        ops = [{"op": "update", "table": "Connection", "where": [["target", "==", target]],
                "row": {"inactivity_probe": probe}}]
    else:
        ops = [{"op": "insert", "table": "Connection", "uuid-name": "conn",
                "row": {"target": target, "inactivity_probe": probe}},
               {"op": "mutate", "table": "Fabric", "where": [],
                "mutations": [["connections", "insert", ["set", [["named-uuid", "conn"]]]]]}]
    try:
        ovsdb_rpc.transact(remote, ops, database=rows.DATABASE)
    except ovsdb_rpc.OvsdbError as exc:
        raise DatabaseError(str(exc)) from exc
    return remote


# -- running the database: ovsdb-tool and ovsdb-server, wrapped ---------------------------
#: Every member also serves the fabric's ``Connection`` rows (``listen``).
CONNECTIONS = f"db:{rows.DATABASE},Fabric,connections"
#: The gate's inactivity probe (ms), as ovsdb-server's own on TCP.
GATE_PROBE_MS = 5000


class Member(NamedTuple):
    """One ovsdb-server of the database in a directory: its files."""
    dir: Path
    name: str                 # nsgre (standalone) or m1, m2... (members of a cluster)

    @property
    def db(self) -> Path:
        return self.dir / f"{self.name}.db"

    @property
    def sock(self) -> Path:
        return self.dir / f"{self.name}.sock"

    @property
    def ctl(self) -> Path:
        return self.dir / f"{self.name}.ctl"

    @property
    def pidfile(self) -> Path:
        return self.dir / f"{self.name}.pid"

    @property
    def rundir(self) -> Path:
        """Its own run directory: a relative ``punix:`` target of the
        database's connections (``listen``) lands here, one per member."""
        return self.dir / self.name

    @property
    def gate_pidfile(self) -> Path:
        return self.dir / f"{self.name}-gate.pid"

    @property
    def gate_log(self) -> Path:
        return self.dir / f"{self.name}-gate.log"

    def start(self, remotes=(), tls=None, probe_ms: int = GATE_PROBE_MS) -> None:
        """Served; ``tls``: the member's credentials (a controller's), for
        raft over ``ssl:``, and its ``pssl:`` remotes served by nsgre's gate
        (``database_gate``: the CRL, readers kept read-only, an inactivity
        probe of ``probe_ms``), never by ovsdb-server itself."""
        self.rundir.mkdir(exist_ok=True)
        gated = [r for r in remotes if r.startswith("pssl:")] if tls is not None else []
        if tls is not None:
            bare = [r for r in remotes if not r.startswith(("pssl:", "punix:"))]
            if bare:
                raise DatabaseError(f"--remote {bare[0]}: with --tls, clients on the network "
                                    "come over TLS only (pssl:PORT:IP)")
        keys = [] if tls is None else [f"--private-key={tls.key}", f"--certificate={tls.cert}",
                                       f"--ca-cert={tls.ca}"]
        _run(["ovsdb-server", str(self.db), f"--remote=punix:{self.sock}", *(
            f"--remote={r}" for r in remotes if r not in gated), f"--remote={CONNECTIONS}",
            *keys, f"--pidfile={self.pidfile}", f"--unixctl={self.ctl}",
            f"--log-file={self.dir / self.name}.log", "--detach", "--no-chdir"],
            env={**os.environ, "OVS_RUNDIR": str(self.rundir)})
        if gated:
            self._start_gate(gated, tls, probe_ms)

    def _start_gate(self, remotes: list[str], tls, probe_ms: int) -> None:
        """The gate, once it listens (it says ``ready``); its PID recorded."""
        with open(self.gate_log, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "nsgre_tools.database_gate", "--tls", str(tls.dir),
                 "--upstream", f"unix:{self.sock}", "--probe", str(probe_ms),
                 *(f"--listen={r}" for r in remotes)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                start_new_session=True)
        ready = proc.stdout.readline()
        proc.stdout.close()
        if ready != b"ready\n":
            proc.wait(timeout=10)
            lines = self.gate_log.read_text().strip().splitlines()
            raise DatabaseError(f"{self.name}: its TLS gate did not start: "
                                f"{lines[-1] if lines else 'no word from it'}")
        self.gate_pidfile.write_text(f"{proc.pid}\n")


def members(directory: str | Path) -> list[Member]:
    """The database's servers in ``directory``, by their database files."""
    d = Path(directory)
    return [Member(d, p.stem) for p in sorted(d.glob("*.db"))]


def _run(argv: list[str], env=None) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    except FileNotFoundError:
        raise DatabaseError(f"{argv[0]} is not installed (Debian: openvswitch-switch)") from None
    if done.returncode != 0:
        raise DatabaseError(f"{' '.join(argv[:2])}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def create(directory: str, cluster: int = 0, address: str | None = None,
           port: int = 6641, remotes=(), tls=None, probe_ms: int = GATE_PROBE_MS
           ) -> list[Member]:
    """A new database in ``directory`` (which must hold none), served at
    once: one standalone ovsdb-server, or ``cluster`` members of a raft
    cluster on this machine, at ``address`` ports ``port``, ``port`` + 1...
    (members on other machines: ``join``), each serving ``remotes`` on
    ports counting up the same way (``member_remote``).  Stops and removes what it made
    if any step fails."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if members(d):
        raise DatabaseError(f"{d}: holds a database already ({members(d)[0].db.name})")
    if cluster and not address:
        raise DatabaseError("a cluster needs --address: the IP its members talk raft on")
    made: list[Member] = []
    try:
        if not cluster:
            made.append(Member(d, "nsgre"))
            _run(["ovsdb-tool", "create", str(made[0].db), str(rows.SCHEMA)])
        else:
            raft = "tcp" if tls is None else "ssl"
            first = f"{raft}:{address}:{port}"
            made.append(Member(d, "m1"))
            _run(["ovsdb-tool", "create-cluster", str(made[0].db), str(rows.SCHEMA), first])
            for k in range(2, cluster + 1):
                made.append(Member(d, f"m{k}"))
                _run(["ovsdb-tool", "join-cluster", str(made[-1].db), rows.DATABASE,
                      f"{raft}:{address}:{port + k - 1}", first])
        for k, member in enumerate(made):
            member.start([member_remote(r, k) for r in remotes] if cluster else remotes,
                         tls, probe_ms)
    except BaseException:
        stop(d)
        for member in made:
            member.db.unlink(missing_ok=True)
        raise
    return made


def member_remote(remote: str, k: int) -> str:
    """Member ``k`` (from 0) of a cluster on one machine serves a network
    remote on its port + ``k``, as its raft port counts up (one port each)."""
    kind, sep, rest = remote.partition(":")
    if kind not in ("ptcp", "pssl") or not sep:
        return remote
    port, sep, address = rest.partition(":")
    return f"{kind}:{int(port) + k}{sep}{address}"


def join(directory: str, address: str, port: int, peer: str, remotes=(),
         tls=None, probe_ms: int = GATE_PROBE_MS) -> Member:
    """This machine's member of an existing cluster (``peer``: a member's
    raft address, tcp:IP:PORT, or ssl:IP:PORT with ``tls``), served at once."""
    member = Member(Path(directory), "nsgre")
    member.dir.mkdir(parents=True, exist_ok=True)
    if members(member.dir):
        raise DatabaseError(f"{member.dir}: holds a database already")
    _run(["ovsdb-tool", "join-cluster", str(member.db), rows.DATABASE,
          f"{'tcp' if tls is None else 'ssl'}:{address}:{port}", peer])
    try:
        member.start(remotes, tls, probe_ms)
    except BaseException:
        stop(member.dir)
        member.db.unlink(missing_ok=True)
        raise
    return member


def stop(directory: str | Path) -> list[str]:
    """Stop the database's servers in ``directory``, each by the PID its
    pidfile recorded (and only if that PID is still an ovsdb-server)."""
    stopped = []
    for member in members(directory):
        for number, what in ((gate_pid(member), f"{member.name}'s gate"),
                             (pid(member), member.name)):
            if number is None:
                continue
            try:
                os.kill(number, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                if not Path(f"/proc/{number}").exists():
                    break
                time.sleep(0.05)
            stopped.append(what)
    return stopped


def pid(member: Member) -> int | None:
    """The PID its pidfile recorded, if that is still an ovsdb-server."""
    return _recorded(member.pidfile, "ovsdb-server")


def gate_pid(member: Member) -> int | None:
    """Its TLS gate's PID, if it has one running."""
    return _recorded(member.gate_pidfile, "nsgre_tools.database_gate")


def _recorded(pidfile: Path, program: str) -> int | None:
    try:
        number = int(pidfile.read_text())
        running = program in Path(f"/proc/{number}/cmdline").read_text()
    except (OSError, ValueError):
        return None
    return number if running else None


def _gate(member: Member) -> str:
    if not member.gate_pidfile.exists():
        return ""
    number = gate_pid(member)
    return (f"; TLS clients through its gate (pid {number})" if number is not None
            else "; its TLS gate NOT RUNNING (TLS clients are not served)")


def status(directory: str) -> list[str]:
    """Lines saying what the database in ``directory`` is: each member's
    role and the cluster's leader (raft), and what the database holds."""
    found = members(directory)
    if not found:
        raise DatabaseError(f"{directory}: no database here (nsgre db create)")
    lines, clustered = [], {}
    for member in found:
        if pid(member) is None:
            lines.append(f"{member.name}: not running")
        elif subprocess.run(["ovsdb-tool", "db-is-clustered", str(member.db)],
                            capture_output=True).returncode != 0:
            lines.append(f"{member.name}: standalone, serving unix:{member.sock}{_gate(member)}")
        else:
            try:
                text = _run(["ovs-appctl", "-t", str(member.ctl), "cluster/status",
                             rows.DATABASE])
            except DatabaseError as exc:
                lines.append(f"{member.name}: no cluster status ({exc})")
                continue
            clustered[member] = dict(line.split(": ", 1) for line in text.splitlines()
                                     if ": " in line)
            lines.append(member)
    names = {info["Server ID"].split()[0]: m.name for m, info in clustered.items()}
    for k, line in enumerate(lines):
        if isinstance(line, Member):
            info = clustered[line]
            leader = info.get("Leader", "?")
            leader = "itself" if leader == "self" else names.get(leader, leader)
            lines[k] = (f"{line.name}: {info.get('Role', '?')}, term {info.get('Term', '?')}, "
                        f"leader {leader}, raft {info.get('Address', '?')}, "
                        f"serving unix:{line.sock}{_gate(line)}")
    remotes = ",".join(f"unix:{m.sock}" for m in found)
    try:
        _, held = read(remotes)
    except DatabaseError as exc:
        lines.append(f"topology: unreadable ({exc})")
        return lines
    if held.version is None:
        lines.append("topology: none yet (nsgre apply FILE --db ...)")
    else:
        t = held.tables
        lines.append(f"topology: version {held.version}: {len(t['Host'])} hosts, "
                     f"{len(t['Network'])} networks, {len(t['Endpoint'])} endpoints")
    return lines
