"""The topology from nsgre's database (``topology/nsgre.ovsschema``), for
a controller that follows it instead of a file: read once at start, then
watched with an OVSDB ``monitor``; each version the database commits (one
apply is one transaction, so one update) comes as a whole ``Topology``,
built as it was allocated, with no validation (the writer validated it),
from the one before in what the update touches (``rows.Follower``)."""

from __future__ import annotations

import logging

from osken_apps import ovsdb_rpc
from topology import rows

LOG = logging.getLogger("nsgre")

#: Seconds between attempts while no member of the database answers.
BACKOFF = (0.1, 0.5, 1.0, 2.0)


class DatabaseEmpty(Exception):
    pass


def load(remotes: str):
    """(topology, version, host -> shard) the database holds now."""
    errors = []
    for remote in remotes.split(","):
        try:
            held = rows.read(ovsdb_rpc.transact(remote, rows.select_ops(),
                                                database=rows.DATABASE))
        except ovsdb_rpc.OvsdbError as exc:
            errors.append(str(exc))
            continue
        if held.version is None:
            raise DatabaseEmpty(f"{remote}: the database holds no topology yet "
                                f"(nsgre apply FILE --db {remotes})")
        return rows.topology(held), held.version, rows.shards_of(held)
    raise ovsdb_rpc.OvsdbError("; ".join(errors))


def watch(remotes: str, on_change, version: int, sleep, alive=lambda: True,
          current=None) -> None:
    """Call ``on_change(topology, shards)`` with every new version of the topology,
    from whichever member answers (again after a failure, a little later
    each time), until ``alive()`` turns false.  ``current``: the topology
    of ``version`` (as ``load`` gave it): each version is built from the
    one handed on before, so the controller's caches of what a change
    leaves alone stay valid (``Topology.same_ports``)."""
    failures = 0
    members = remotes.split(",")
    while alive():
        remote = members[failures % len(members)]
        try:
            for follower in _monitor(remote, alive):
                failures = 0
                held = follower.held
                if held.version == version and current is not None:
                    follower.topology = current          # the same, as the object handed on
                elif held.version is not None and held.version != version:
                    version, current = held.version, follower.topology
                    on_change(follower.topology, rows.shards_of(held))
        except ovsdb_rpc.OvsdbError as exc:
            if failures == 0:
                LOG.warning("nsgre: topology database %s: %s (trying again)", remote, exc)
        sleep(BACKOFF[min(failures, len(BACKOFF) - 1)])
        failures += 1


def _monitor(remote: str, alive):
    """What the database holds, after its first answer and after every
    update (``rows.Follower``: each update built in what it touches)."""
    follower = rows.Follower()
    for updates in ovsdb_rpc.monitor(remote, rows.DATABASE, {t: {} for t in rows.TABLES},
                                     alive):
        follower.update(updates)
        yield follower


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
         grace: float = 0.0) -> None:
    """Hold lock ``name`` on whichever member leads the cluster; call
    ``on_change(generation)`` when it is granted, with the fabric's
    generation incremented for this grant (the OpenFlow generation id of
    the new master: newer than any before, so the switches refuse an older
    master), and ``on_change(None)`` when it is lost (its session closed,
    or its member no longer leads); then look for the leader again; until
    ``alive()`` turns false.  ``grace``: seconds to wait on the leader
    before asking (a backup's), each time."""
    members = remotes.split(",")
    held, failures, turn = False, 0, 0
    while alive():
        remote = members[turn % len(members)]
        turn += 1
        try:
            for result in ovsdb_rpc.lock(remote, rows.DATABASE, name, CLAIM, alive,
                                         LOCK_PROBE, grace):
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
