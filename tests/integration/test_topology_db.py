"""The topology in nsgre's OVSDB database (``topology/nsgre.ovsschema``),
written as the difference with what it holds, read back as it was
allocated: against a real ovsdb-server."""

import hashlib
from ipaddress import ip_interface
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import topology
from osken_apps import ovsdb
from topology import rows

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
from fabrics import EDITS, GROWTH, TRUNKS, assert_same, build, fabrics, mutate  # noqa: E402
from conftest import ovsdb_server  # noqa: E402


@pytest.fixture
def db(tmp_path):
    """A standalone ovsdb-server holding an empty nsgre database."""
    with ovsdb_server(tmp_path, rows.SCHEMA) as remote:
        yield remote


def held(remote):
    return rows.read(ovsdb.transact(remote, rows.select_ops(), database=rows.DATABASE))


def apply(remote, text, source="t.yaml"):
    """Validate and allocate around what the database holds, then write the
    difference; the operations sent."""
    now = held(remote)
    previous = None if now.version is None else rows.topology(now)
    topo = topology.parse(text, source, previous)
    ops = rows.transaction(now, topo, hashlib.sha256(text.encode()).hexdigest())
    if ops:
        ovsdb.transact(remote, ops, database=rows.DATABASE)
    return ops


GROWN = topology.seed_text().replace("  net20: {key: 20}\n", "  net20: {key: 20}\n  net30: {}\n") \
    + "  green: {host: kvm1, kind: vm, network: net30, ip: 10.1.3.1/24}\n"


def test_a_topology_written_reads_back_as_it_was_allocated(db):
    seed = topology.load()
    assert apply(db, topology.seed_text())
    back = rows.topology(held(db))
    assert back.views == seed.views and back.allocations() == seed.allocations()
    assert {h.name: h.dpid for h in back.hosts.values()} == \
        {h.name: h.dpid for h in seed.hosts.values()}
    assert held(db).version == 1


def test_the_same_file_applied_again_writes_nothing(db):
    apply(db, topology.seed_text())
    assert apply(db, topology.seed_text()) == []
    assert held(db).version == 1


def test_a_change_writes_only_its_rows_and_keeps_every_allocation(db):
    apply(db, topology.seed_text())
    before = rows.topology(held(db))
    ops = apply(db, GROWN)
    written = sorted((op["op"], op["table"]) for op in ops if op["op"] != "wait")
    # net30 and green (with its attachment), kvm1 (its local VLAN), the fabric's version
    assert written == [("insert", "Attachment"), ("insert", "Endpoint"), ("insert", "Network"),
                       ("update", "Fabric"), ("update", "Host")]
    after = rows.topology(held(db))
    old, new = before.allocations(), after.allocations()
    for kind in old:
        assert {k: v for k, v in new[kind].items() if k in old[kind]} == old[kind], kind
    assert after.views == topology.parse(GROWN, "t.yaml", before).views


def test_a_writer_that_read_an_older_version_is_refused_and_nothing_of_it_lands(db):
    apply(db, topology.seed_text())
    stale = held(db)
    apply(db, GROWN)                                      # another writer, meanwhile
    other = topology.parse(topology.seed_text() + "  yellow: {host: kvm2, kind: namespace, "
                           "network: net10, ip: 10.1.1.3/24}\n", "other.yaml", topology.load())
    ops = rows.transaction(stale, other, "x")             # planned on the old read
    with pytest.raises(ovsdb.OvsdbTimeout):
        ovsdb.transact(db, ops, database=rows.DATABASE)
    now = rows.topology(held(db))
    assert "green" in now.endpoints and "yellow" not in now.endpoints
    assert held(db).version == 2


def test_a_host_still_named_by_an_endpoint_cannot_be_deleted_alone(db):
    apply(db, topology.seed_text())
    now = held(db)
    uuid, _ = now.tables["Host"]["kvm2"]
    with pytest.raises(ovsdb.OvsdbError, match="referential integrity"):
        ovsdb.transact(db, [{"op": "delete", "table": "Host",
                             "where": [["_uuid", "==", ["uuid", uuid]]]}],
                       database=rows.DATABASE)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fabrics(), st.randoms(use_true_random=False))
def test_after_any_sequence_of_applies_the_database_holds_exactly_the_last(db, spec, rnd):
    ovsdb.transact(db, [{"op": "delete", "table": t, "where": []}
                        for t in ("Fabric", "Endpoint", "Attachment", "Host", "Network")],
                   database=rows.DATABASE)                 # each example from empty
    for _ in range(3):
        before = held(db)
        previous = None if before.version is None else rows.topology(before)
        want = topology.parse(build(spec), "t.yaml", previous)
        apply(db, build(spec))
        now = held(db)
        got = rows.topology(now)
        assert got.views == want.views and got.allocations() == want.allocations()
        assert {h.name: (h.dpid, h.underlay_ip) for h in got.hosts.values()} == \
            {h.name: (h.dpid, h.underlay_ip) for h in want.hosts.values()}
        spec = mutate(spec, rnd, set(want.allocations()["keys"].values()), GROWTH + EDITS)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fabrics(), st.randoms(use_true_random=False))
def test_a_follower_kept_from_the_monitors_updates_holds_what_a_fresh_read_builds(db, spec,
                                                                                   rnd):
    from nsgre_tools import database
    from osken_apps import ovsdb_rpc
    from topology.edit import Change
    ovsdb.transact(db, [{"op": "delete", "table": t, "where": []}
                        for t in ("Fabric", "Endpoint", "Attachment", "Host", "Network")],
                   database=rows.DATABASE)
    follower = rows.Follower()
    monitor = ovsdb_rpc.Monitor(db, rows.DATABASE, rows.conditions({}, None))
    updates = (rows.from_update2(follower.raw, u) for _, u in monitor.messages())
    follower.update(next(updates))                          # the (empty) snapshot
    try:
        for step in range(6):
            if step % 2 == 0 or not follower.topology:      # a whole file...
                wrote = apply(db, build(spec))
            else:                                           # ...or one object
                topo = follower.topology
                net = rnd.choice(sorted(topo.networks))
                change = rnd.choice([
                    Change("endpoints", f"obj{step}", {
                        "host": rnd.choice(sorted(topo.hosts)), "kind": "vm",
                        "network": net, "ip": f"10.99.{step}.1/16"}),
                    Change("endpoints", rnd.choice(sorted(topo.endpoints) or ["none"])),
                    Change("networks", f"objnet{step}", {}),
                    Change("hosts", f"objhost{step}", {"underlay_ip": f"198.19.1.{step}"})])
                try:
                    wrote = database.change(db, "the change", change).operations
                except topology.TopologyError:
                    wrote = 0
            if wrote:
                follower.update(next(updates))
            assert follower.held.version == held(db).version
            assert_same(follower.topology, rows.topology(held(db)))
            spec = mutate(spec, rnd, {n.key for n in follower.topology.networks.values()},
                          GROWTH + EDITS)
        assert follower.whole_reads == 2        # the empty snapshot and the first version
    finally:
        monitor.close()


class Watching:
    """A controller's watch of the database (``topodb.Watch``) run in a
    thread: each version it hands on, kept in order."""

    def __init__(self, remote):
        import queue
        import threading
        import time
        from osken_apps import topodb
        self.handed = queue.Queue()
        self.stopped = False
        self.watch = topodb.Watch(remote, lambda t, s: self.handed.put((self.watch.version, t)),
                                  topodb.load(remote))
        self.thread = threading.Thread(target=self.watch.run,
                                       args=(time.sleep, lambda: not self.stopped))
        self.thread.start()

    def version(self, version):
        """The topology handed on with ``version`` (none of another after it)."""
        while True:
            got, topo = self.handed.get(timeout=10)
            if got == version and self.handed.empty():
                return topo

    def want(self, shards):
        """The topology handed on once ``shards``' sub-fabric has come."""
        import threading
        came = threading.Event()
        self.watch.want(shards, came.set)
        assert came.wait(10)
        return self.watch.current

    def stop(self):
        self.stopped = True
        monitor = self.watch.monitor
        if monitor is not None:
            monitor.close()
        self.thread.join(10)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.large_base_example])
@given(fabrics(), st.randoms(use_true_random=False))
def test_a_watch_of_some_shards_holds_their_sub_fabric_as_the_fabric_and_the_shards_change(
        db, spec, rnd):
    """A controller of some shards watches only their hosts' networks and
    those networks' members (``monitor_cond``); whatever is applied, and
    whichever shards it takes or gives up, it holds what the whole
    fabric's ``sub_fabric`` of those hosts is."""
    from nsgre_tools import database
    ovsdb.transact(db, [{"op": "delete", "table": t, "where": []}
                        for t in ("Fabric", "Endpoint", "Attachment", "Host", "Network")],
                   database=rows.DATABASE)
    count = rnd.choice([2, 3])
    for _ in range(2):                      # trunks: seen in part by a shard carrying some of theirs
        spec = mutate(spec, rnd, set(), TRUNKS)
    database.apply(db, build(spec).encode(), "t.yaml", shards=count)
    watching = Watching(db)
    try:
        mine: set = set()
        for step in range(6):
            if step % 2:
                mine = set(rnd.sample(range(count), rnd.randint(0, count)))
                got = watching.want(mine)
            else:
                spec = mutate(spec, rnd, {n.key for n in rows.topology(held(db)).networks.values()},
                              GROWTH + EDITS + TRUNKS + TRUNKS)
                try:
                    applied = database.apply(db, build(spec).encode(), "t.yaml", shards=count)
                except topology.TopologyError:
                    continue
                if not applied.operations:
                    continue
                got = watching.version(applied.version)
            now = held(db)
            if watching.watch.watched is None:             # one shard: all of it
                assert_same(got, rows.topology(now))
                continue
            hosts = [h for h, s in rows.shards_of(now).items() if s in mine]
            assert_same(got, rows.topology(now).sub_fabric(hosts))
            raw = watching.watch.follower.raw                # and no row more came
            assert sorted(r["name"] for r in raw["Network"].values()) == sorted(got.networks)
            extra = {r["name"]: r["trunk"] for r in raw["Endpoint"].values()
                     if r["name"] not in got.endpoints}   # every trunk comes
            assert all(extra.values()), extra
            assert set(got.endpoints) <= {r["name"] for r in raw["Endpoint"].values()}
    finally:
        watching.stop()


ROOT = Path(__file__).resolve().parent.parent.parent


def nsgre(*args):
    return subprocess.run([sys.executable, "-m", "nsgre_tools.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_nsgre_apply_db_writes_the_file_and_says_so_and_again_writes_nothing(db, tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text(topology.seed_text())
    first = nsgre("apply", str(seed), "--db", db)
    assert first.returncode == 0, first.stderr
    assert "applied to the database: 2 hosts, 2 networks, 4 endpoints" in first.stdout
    assert "version 1, 14 operations" in first.stdout
    again = nsgre("apply", str(seed), "--db", db)
    assert again.returncode == 0 and "version 1, unchanged" in again.stdout


def test_a_bad_file_gets_the_loaders_errors_and_writes_nothing(db, tmp_path):
    apply(db, topology.seed_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text(GROWN.replace("ip: 10.1.3.1/24", "ip: 10.1.3.1/33"))
    run = nsgre("apply", str(bad), "--db", db)
    validate = nsgre("validate", str(bad))
    assert run.returncode == 1 and run.stderr and run.stderr == validate.stderr
    assert held(db).version == 1 and "green" not in rows.topology(held(db)).endpoints


def test_of_two_applies_racing_the_database_holds_one_file_whole(db, tmp_path):
    apply(db, topology.seed_text())
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(GROWN)
    b.write_text(topology.seed_text() + "  yellow: {host: kvm2, kind: namespace, "
                 "network: net10, ip: 10.1.1.3/24}\n")
    for _ in range(4):
        runs = [subprocess.Popen([sys.executable, "-m", "nsgre_tools.cli", "apply", str(f),
                                  "--db", db], cwd=ROOT, stdout=subprocess.PIPE, text=True)
                for f in (a, b, a, b)]
        assert all(r.wait(timeout=60) == 0 for r in runs)
        names = set(rows.topology(held(db)).endpoints)
        assert ("green" in names) != ("yellow" in names), names


# -- running it: nsgre db ----------------------------------------------------------------
RAFT_NS, RAFT_IP = "nsgre-dbtest", "198.18.250.1"


@pytest.fixture
def raft_ns():
    """A namespace of the test's own for the members' raft traffic (their
    Unix sockets serve clients from anywhere)."""
    subprocess.run(["ip", "netns", "add", RAFT_NS], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", RAFT_NS, "ip", "link", "set", "lo", "up"],
                       check=True)
        subprocess.run(["ip", "netns", "exec", RAFT_NS, "ip", "addr", "add", f"{RAFT_IP}/32",
                        "dev", "lo"], check=True)
        yield RAFT_NS
    finally:
        subprocess.run(["ip", "netns", "del", RAFT_NS], check=True)


def test_a_standalone_database_is_created_served_told_about_and_stopped(tmp_path):
    d = tmp_path / "db"
    made = nsgre("db", "create", str(d))
    assert made.returncode == 0, made.stderr
    try:
        seed = tmp_path / "seed.yaml"
        seed.write_text(topology.seed_text())
        assert nsgre("apply", str(seed), "--db", f"unix:{d}/nsgre.sock").returncode == 0
        status = nsgre("db", "status", str(d)).stdout.splitlines()
        assert status == [f"nsgre: standalone, serving unix:{d}/nsgre.sock",
                          "topology: version 1: 2 hosts, 2 networks, 4 endpoints"]
        again = nsgre("db", "create", str(d))
        assert again.returncode == 1 and "holds a database already" in again.stderr
    finally:
        assert "stopped nsgre" in nsgre("db", "stop", str(d)).stdout
    assert nsgre("db", "status", str(d)).stdout.startswith("nsgre: not running")


def test_a_cluster_of_three_survives_its_leader_killed_and_an_apply_goes_on(tmp_path, raft_ns):
    d = tmp_path / "db"
    made = subprocess.run(["ip", "netns", "exec", raft_ns, sys.executable, "-m",
                           "nsgre_tools.cli", "db", "create", str(d), "--cluster", "3",
                           "--address", RAFT_IP], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert made.returncode == 0, made.stderr
    remotes = ",".join(f"unix:{d}/m{k}.sock" for k in (1, 2, 3))
    try:
        assert nsgre("apply", str(ROOT / "topology/seed.yaml"), "--db", remotes).returncode == 0
        status = nsgre("db", "status", str(d)).stdout
        leader = next(line.split(":")[0] for line in status.splitlines()
                      if "leader itself" in line)
        os_kill = subprocess.run(["kill", "-9", (d / f"{leader}.pid").read_text().strip()])
        assert os_kill.returncode == 0
        grown = tmp_path / "grown.yaml"
        grown.write_text(GROWN)
        run = nsgre("apply", str(grown), "--db", remotes)      # during the election
        assert run.returncode == 0, run.stderr
        assert "version 2" in run.stdout
        after = nsgre("db", "status", str(d)).stdout.splitlines()
        assert f"{leader}: not running" in after
        assert sum("leader itself" in line for line in after) == 1, after
        assert "green" in rows.topology(held(remotes.split(",")[1])).endpoints
    finally:
        nsgre("db", "stop", str(d))


def test_one_object_at_a_time_added_refused_with_the_loaders_words_and_deleted(db):
    apply(db, topology.seed_text())
    before = rows.topology(held(db))
    add = nsgre("endpoint", "add", "yellow", "--host", "kvm2", "--kind", "namespace",
                "--network", "net10", "--ip", "10.1.1.3/24", "--db", db)
    assert add.returncode == 0, add.stderr
    assert add.stdout.startswith("nsgre endpoint add yellow: done: 2 hosts, 2 networks, "
                                 "5 endpoints")
    now = rows.topology(held(db))
    assert now.endpoint("yellow").attachment("net10").ip == ip_interface("10.1.1.3/24")
    for kind in ("keys", "macs", "ports"):                 # nothing else renumbered
        assert now.allocations()[kind].items() >= before.allocations()[kind].items()
    twice = nsgre("endpoint", "add", "yellow", "--host", "kvm2", "--network", "net10",
                  "--ip", "10.1.1.4/24", "--db", db)
    assert twice.returncode == 1
    assert twice.stderr == "nsgre endpoint add yellow: endpoints.yellow: exists already\n"
    bad = nsgre("endpoint", "add", "pink", "--host", "kvm2", "--network", "net10",
                "--ip", "10.1.1.300/24", "--db", db)
    assert bad.returncode == 1 and bad.stderr.startswith(
        "nsgre endpoint add pink: endpoints.pink.ip: must be an address with prefix length")
    used = nsgre("network", "del", "net10", "--db", db)
    assert used.returncode == 1 and "endpoints.vm1.network: unknown network 'net10'" in used.stderr
    assert held(db).version == 2                          # the refusals wrote nothing
    gone = nsgre("endpoint", "del", "yellow", "--db", db)
    assert gone.returncode == 0 and "yellow" not in rows.topology(held(db)).endpoints
    host = nsgre("host", "add", "kvm3", "--underlay-ip", "198.18.0.3", "--db", db)
    assert host.returncode == 0 and "kvm3" in rows.topology(held(db)).hosts


def test_a_database_of_the_older_schema_is_upgraded_online_and_watched_in_part(tmp_path):
    """A database made by nsgre before Endpoint.networks (schema 1.1.0)
    is converted in place by ``nsgre db upgrade``, each endpoint's networks
    filled from its attachments; a shard's controller then watches exactly
    its sub-fabric.  Again: nothing to do."""
    import json
    from nsgre_tools import database
    old_schema = json.loads(rows.SCHEMA.read_text())
    old_schema["version"] = "1.1.0"
    del old_schema["tables"]["Endpoint"]["columns"]["networks"]
    del old_schema["tables"]["Endpoint"]["columns"]["trunk"]
    (tmp_path / "old.ovsschema").write_text(json.dumps(old_schema))
    member = database.Member(tmp_path, "nsgre")
    subprocess.run(["ovsdb-tool", "create", str(member.db), str(tmp_path / "old.ovsschema")],
                   check=True)
    member.start(())
    try:
        remote = f"unix:{member.sock}"
        text = build(TRUNKY)
        topo = topology.parse(text, "t.yaml")
        ops = rows.transaction(held(remote), topo, "", rows.assign_shards({}, topo.hosts, 2))
        for op in ops:                               # as the older nsgre wrote it
            if op.get("table") == "Endpoint" and "row" in op:
                op["row"].pop("networks", None)
                op["row"].pop("trunk", None)
        ovsdb.transact(remote, ops, database=rows.DATABASE)
        out = nsgre("db", "upgrade", str(tmp_path))
        assert out.returncode == 0, out.stderr
        assert out.stdout == f"{tmp_path}: schema 1.3.0 (converted); 4 endpoints' networks " \
                             "and trunk flags filled\n"
        now = held(remote)
        assert_same(rows.topology(now), rows.topology(held(remote)))
        watching = Watching(remote)
        try:
            shard_of = rows.shards_of(now)
            for shard in (0, 1):
                got = watching.want({shard})
                assert_same(got, rows.topology(now).sub_fabric(
                    [h for h, s in shard_of.items() if s == shard]))
        finally:
            watching.stop()
        again = nsgre("db", "upgrade", str(tmp_path))
        assert again.stdout == f"{tmp_path}: schema 1.3.0 already; 0 endpoints' networks " \
                               "and trunk flags filled\n"
    finally:
        database.stop(tmp_path)


#: Two hosts, three networks, a trunk on h0 in all three.
TRUNKY = {"tunnel": "gre",
          "hosts": {"h0": {"underlay_ip": "198.18.0.1"}, "h1": {"underlay_ip": "198.18.0.2"}},
          "networks": {"n0": {}, "n1": {}, "n2": {}},
          "endpoints": {
              "a": {"host": "h0", "kind": "vm", "network": "n0", "ip": "10.0.0.1/24"},
              "b": {"host": "h1", "kind": "vm", "network": "n1", "ip": "10.0.0.2/24"},
              "c": {"host": "h1", "kind": "vm", "network": "n2", "ip": "10.0.0.3/24"},
              "t": {"host": "h0", "kind": "vm", "vlans": {
                  10: {"network": "n0", "ip": "10.0.0.4/24"},
                  20: {"network": "n1", "ip": "10.0.0.5/24"},
                  30: {"network": "n2", "ip": "10.0.0.6/24"}}}}}


def test_a_watch_asking_for_more_never_waits_for_the_server_to_read_it(db):
    # ovsdb-server reads a client's next request only once it has sent it
    # everything it owes: a watch that blocked sending its (large)
    # conditions while the server was sending it a large answer would wait
    # for itself for ever.  The asks return at once; both are answered.
    import threading
    import uuid
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from gen_topology import generate
    from osken_apps import ovsdb_rpc
    apply(db, generate(8, 1500, 3000, seed=3))
    result = ovsdb.transact(db, rows.select_ops(("Fabric", "Host")), database=rows.DATABASE)
    hosts = {r["_uuid"][1]: r for r in result[1]["rows"]}
    monitor = ovsdb_rpc.Monitor(db, rows.DATABASE, rows.conditions(hosts, set()))
    try:
        messages = monitor.messages()
        assert next(messages)[0] == "answer"            # the hosts alone
        everything = {t: [True] for t in rows.conditions(hosts, None)}
        many = {**everything, "Network": [["_uuid", "==", ["uuid", str(uuid.uuid4())]]
                                          for _ in range(60_000)]}
        asked = threading.Thread(target=lambda: (monitor.change(everything),
                                                 monitor.change(many)), daemon=True)
        asked.start()
        asked.join(30)
        assert not asked.is_alive(), "asking blocked on the server"
        answers, rows_seen = 0, 0
        while answers < 2:
            kind, updates = next(messages)
            answers += kind == "answer"
            rows_seen += sum(len(t) for t in (updates or {}).values())
        assert rows_seen >= 1500 + 3000
    finally:
        monitor.close()
