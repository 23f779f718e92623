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
from typing import NamedTuple

import topology
from osken_apps import ovsdb_rpc
from topology import rows

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


def apply(remotes: str, data: bytes, source: str) -> Applied:
    """Apply a topology file's bytes (``TopologyError``: nothing written)."""
    digest = hashlib.sha256(data).hexdigest()
    for attempt in range(ATTEMPTS):
        remote, held = read(remotes)
        previous = None if held.version is None else rows.topology(held)
        topo = topology.parse(data, source, previous)
        ops = rows.transaction(held, topo, digest)
        if not ops:
            return Applied(topo, held.version or 0, 0, attempt)
        try:
            ovsdb_rpc.transact(remote, ops, timeout=30.0, database=rows.DATABASE)
        except ovsdb_rpc.OvsdbTimeout:
            continue                   # another apply landed since the read: again
        except ovsdb_rpc.OvsdbError as exc:
            raise DatabaseError(str(exc)) from exc
        return Applied(topo, (held.version or 0) + 1, len(ops), attempt)
    raise DatabaseError(f"{remotes}: another apply landed first {ATTEMPTS} times in a row")
