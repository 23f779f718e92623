"""The topology from nsgre's database (``topology/nsgre.ovsschema``), for
a controller that follows it instead of a file: read once at start, then
watched with an OVSDB ``monitor_cond`` (``Watch``); and the locks that
make one controller master of a shard's switches (``hold``)."""

from __future__ import annotations

import logging
import threading
from typing import NamedTuple

from osken_apps import ovsdb_rpc
from topology import rows

LOG = logging.getLogger("nsgre")

#: Seconds between attempts while no member of the database answers.
BACKOFF = (0.1, 0.5, 1.0, 2.0)


class DatabaseEmpty(Exception):
    pass


class Start(NamedTuple):
    """What a controller starts from: the topology it watches (the whole
    fabric; or, ``watched`` not None, the hosts alone: it watches the
    sub-fabric of the shards it holds, none yet), its version, every host's
    shard, and the Host rows (the watch's conditions start from them)."""
    topology: object
    version: int
    shards: dict
    hosts: dict
    watched: set | None


def load(remotes: str) -> Start:
    """What the database holds now, as a controller starts from it: a
    fabric of several shards is watched in part (``rows.conditions``)."""
    errors = []
    for remote in remotes.split(","):
        try:
            result = ovsdb_rpc.transact(remote, rows.select_ops(("Fabric", "Host")),
                                        database=rows.DATABASE)
            held = rows.read(result)
            if held.version is None:
                raise DatabaseEmpty(f"{remote}: the database holds no topology yet "
                                    f"(nsgre apply FILE --db {remotes})")
            watched = set() if len(set(rows.shards_of(held).values())) > 1 else None
            if watched is None:
                result = ovsdb_rpc.transact(remote, rows.select_ops(),
                                            database=rows.DATABASE)
                held = rows.read(result)
        except ovsdb_rpc.OvsdbError as exc:
            errors.append(str(exc))
            continue
        hosts = {r["_uuid"][1]: r for r in result[1]["rows"]}
        return Start(rows.topology(held), held.version, rows.shards_of(held), hosts, watched)
    raise ovsdb_rpc.OvsdbError("; ".join(errors))


class Watch:
    """A controller's watch of the topology database: every version it
    commits (one apply is one transaction, so one update) handed on as a
    whole ``Topology`` (``on_change(topology, shards)``), built as it was
    allocated with no validation (the writer validated it), each from the
    one before in what the update touches (``rows.Follower``), so the
    controller's caches of what a change leaves alone stay valid.

    ``watched``: None, the whole fabric (a controller of the only shard,
    or its standby, ready to take over at once); else the shards whose
    hosts the controller programs: it watches their sub-fabric alone
    (``rows.conditions``, as ovn-controller watches only the datapaths
    local to its chassis), and ``want`` changes that set.  A version is
    handed on once every row the conditions select has come."""

    def __init__(self, remotes: str, on_change, start: Start):
        self.members = remotes.split(",")
        self.on_change = on_change
        self.version, self.current = start.version, start.topology
        self.watched = start.watched
        self.hosts = start.hosts              # the Host rows last seen: the conditions' input
        self.current_asked = self._conditions()   # what ``current`` was read under
        self.monitor = None
        self.follower = None
        self.asked = None                     # the conditions asked of ``monitor``
        self.unanswered = 0                   # its requests not answered yet
        self.waiting: list = []               # called once what is wanted has come
        self.lock = threading.Lock()          # want() comes from other (green) threads

    def _conditions(self) -> dict:
        return rows.conditions(self.hosts, self.watched)

    def want(self, shards, then=None) -> None:
        """Watch the sub-fabric of ``shards``; ``then()`` once it has come
        and been handed on (a shard's new owner programs nothing before)."""
        with self.lock:
            self.watched = set(shards)
            if then is not None:
                self.waiting.append(then)
            self._ask()
            self._settle()

    def _ask(self) -> None:
        if self.monitor is None:
            return                            # asked for at the next connection
        wanted = self._conditions()
        if wanted != self.asked:
            try:
                self.monitor.change(wanted)
            except ovsdb_rpc.OvsdbError:
                return                        # the watch finds the connection gone
            self.asked = wanted
            self.unanswered += 1

    def _settle(self) -> None:
        """Hand on the topology, and call the waiting, once every request is answered."""
        follower = self.follower
        if self.unanswered or follower is None or follower.held is None:
            return
        held = follower.held
        if held.version is not None and follower.topology is not self.current:
            if held.version == self.version and self.asked == self.current_asked:
                follower.topology = self.current     # the same, as the object handed on
            else:
                self.version, self.current = held.version, follower.topology
                self.current_asked = self.asked
                self.on_change(follower.topology, rows.shards_of(held))
        waiting, self.waiting = self.waiting, []
        for then in waiting:
            then()

    def run(self, sleep, alive=lambda: True) -> None:
        """Follow whichever member answers (again after a failure, a little
        later each time) until ``alive()`` turns false."""
        failures = 0
        while alive():
            remote = self.members[failures % len(self.members)]
            try:
                with self.lock:
                    self.follower = follower = rows.Follower()
                    self.asked = self._conditions()
                    self.unanswered = 1
                    self.monitor = ovsdb_rpc.Monitor(remote, rows.DATABASE, self.asked)
                for kind, updates in self.monitor.messages(alive):
                    failures = 0
                    with self.lock:
                        if updates is not None:
                            follower.update(rows.from_update2(follower.raw, updates))
                            self.hosts = follower.raw["Host"]
                        if kind == "answer":
                            self.unanswered -= 1
                        self._ask()
                        self._settle()
            except ovsdb_rpc.OvsdbError as exc:
                if failures == 0:
                    LOG.warning("nsgre: topology database %s: %s (trying again)", remote, exc)
            finally:
                if self.monitor is not None:
                    self.monitor.close()
                self.monitor = self.follower = None
            sleep(BACKOFF[min(failures, len(BACKOFF) - 1)])
            failures += 1


def lock_name(shard: int) -> str:
    """The lock whose holder is the master of a shard's switches (as
    ovn-northd's ``ovn_northd``; an identifier, see ``ovsdb_rpc.LOCK_NAME``).
    A fabric not sharded is shard 0 alone."""
    return f"nsgre_shard_{shard}"


#: How long a controller waits before asking for a shard it does not
#: prefer (and again after every reconnect): longer than an owner takes to
#: reconnect after a raft leader change, so shards stay where they are;
#: once asked, a backup is queued and gets the lock the moment its owner's
#: session ends.
GRACE = 5.0
#: Seconds of silence after which a lock session's member is sent an echo
#: (and given up after as long again): a frozen or cut-off leader must not
#: keep this controller believing it holds the lock.
LOCK_PROBE = 1.0


#: What a new master does the moment the lock is granted, in the same
#: session (so only while it holds the lock): take the next generation.
CLAIM = [{"op": "mutate", "table": "Fabric", "where": [],
          "mutations": [["generation", "+=", 1]]},
         {"op": "select", "table": "Fabric", "where": [], "columns": ["generation"]}]


def hold(remotes: str, name: str, on_change, sleep, alive=lambda: True,
         grace: float = 0.0, probe: float = LOCK_PROBE) -> None:
    """Hold lock ``name`` on whichever member leads the cluster; call
    ``on_change(generation)`` when it is granted, with the fabric's
    generation incremented for this grant (the OpenFlow generation id of
    the new master: newer than any before, so the switches refuse an older
    master), and ``on_change(None)`` when it is lost (its session closed,
    or its member no longer leads); then look for the leader again; until
    ``alive()`` turns false.  ``grace``: seconds to wait on the leader
    before asking (a backup's), each time; ``probe``: ``LOCK_PROBE``."""
    members = remotes.split(",")
    held, failures, turn = False, 0, 0
    while alive():
        remote = members[turn % len(members)]
        turn += 1
        try:
            for result in ovsdb_rpc.lock(remote, rows.DATABASE, name, CLAIM, alive,
                                         probe, grace):
                failures = 0
                if result is None:
                    LOG.info("nsgre: lock %s: queued on %s behind its holder", name, remote)
                if result is not None:
                    fabric = result[1]["rows"]
                    if not fabric:
                        raise DatabaseEmpty(f"{remote}: the database holds no topology")
                    held = True
                    LOG.info("nsgre: lock %s: granted on %s (generation %d)", name, remote,
                             fabric[0]["generation"])
                    on_change(fabric[0]["generation"])
        except ovsdb_rpc.NotLeader:
            pass                              # the next member may be
        except (ovsdb_rpc.OvsdbError, DatabaseEmpty) as exc:
            LOG.warning("nsgre: lock %s on %s: %s", name, remote, exc)
        if held:
            held = False
            on_change(None)
        if turn % len(members) == 0:          # every member tried: wait a little
            sleep(BACKOFF[min(failures, len(BACKOFF) - 1)])
            failures += 1
