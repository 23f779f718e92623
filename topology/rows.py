"""The topology as rows of nsgre's OVSDB database (``nsgre.ovsschema``), and back.

The database holds a topology *allocated*: every tunnel key, local VLAN,
MAC, port name and datapath id as chosen when it was applied, so every
controller reading it builds the same fabric without allocating anything,
and the next apply allocates around it (``allocations``).  A change is
written as the difference between what the database holds and what the
new topology wants, in one transaction guarded by the fabric's version
(``transaction``).  Pure: OVSDB's JSON values in and out, no I/O.

Rows are compared by name in a *logical* form, references by the name of
what they refer to, so a diff does not depend on row uuids:

    Host      name -> (underlay_ip, dpid, shard, {network: local VLAN})
    Network   name -> (key, router, dhcp, (dns, ...), lease_time, mtu)
    Endpoint  name -> (host, kind, ((network, ip, vlan), ...) by VLAN, mac,
                       port, link_local, iface_id)
"""

from __future__ import annotations

from collections import Counter

import functools
import ipaddress
import json
from pathlib import Path
from typing import NamedTuple

from topology.model import Attachment, Endpoint, Host, Network, Topology

SCHEMA = Path(__file__).with_name("nsgre.ovsschema")
DATABASE = "NSGRE"
TABLES = ("Fabric", "Host", "Network", "Endpoint", "Attachment")


# -- OVSDB's JSON values ------------------------------------------------------------
def _opt(value):
    """An optional column (min 0, max 1): the value, or the empty set."""
    return ["set", []] if value is None else value


def _unopt(datum):
    return None if isinstance(datum, list) and datum[:1] == ["set"] and not datum[1] else datum


def set_of(datum) -> list:
    """An OVSDB set as a list (a one-element set comes bare)."""
    if isinstance(datum, list) and datum[:1] == ["set"]:
        return datum[1]
    return [datum]


def map_of(datum) -> dict:
    return {k: v for k, v in datum[1]}


def _ref(datum) -> str:
    return datum[1]


# -- the logical form ---------------------------------------------------------------
class Fabric(NamedTuple):
    tunnel: str
    broadcast_limit: int
    underlay_mtu: int


def logical(topo: Topology, shards: dict | None = None) -> dict:
    """Table -> name -> logical row of the topology (``Fabric``: one row,
    named ``""``); ``shards``: host -> shard (default 0)."""
    shards = shards or {}
    vlans: dict = {h: {} for h in topo.hosts}
    for (host, net), vlan in topo.local_vlans.items():
        vlans[host][net] = vlan
    return {
        "Fabric": {"": Fabric(topo.tunnel, topo.broadcast_limit, topo.underlay_mtu)},
        "Host": {h.name: (str(h.underlay_ip), h.dpid, shards.get(h.name, 0),
                          tuple(sorted(vlans[h.name].items())))
                 for h in topo.hosts.values()},
        "Network": {n.name: (n.key, n.router, n.dhcp, tuple(str(a) for a in n.dns),
                             n.lease_time, n.mtu)
                    for n in topo.networks.values()},
        "Endpoint": {e.name: (e.host, e.kind, tuple(sorted(
                              ((a.network, str(a.ip), a.vlan) for a in e.attachments),
                              key=_attachment_order)),
                              e.mac, e.port,
                              None if e.link_local is None else str(e.link_local),
                              e.declared_iface_id)
                     for e in topo.endpoints.values()},
    }


def _attachment_order(attachment: tuple):
    """A trunk's attachments by guest VLAN (the database keeps no order)."""
    network, _, vlan = attachment
    return (vlan or 0, network)


class Held(NamedTuple):
    """What a database holds: per table, name -> (uuid, logical row); the
    fabric's version (None: an empty database); the uuids of each
    endpoint's attachment rows."""
    tables: dict
    version: int | None
    generation: int = 0
    attachments: dict = {}


def read(result: list) -> Held:
    """``Held`` from the results of ``select_ops()``."""
    fabric, hosts, networks, endpoints, attachments = (r.get("rows", []) for r in result)
    attach = {_ref(r["_uuid"]): r for r in attachments}
    net_name = {_ref(r["_uuid"]): r["name"] for r in networks}
    host_name = {_ref(r["_uuid"]): r["name"] for r in hosts}
    tables: dict = {t: {} for t in TABLES[:4]}
    owned: dict = {}
    version = generation = None
    for r in fabric:
        tables["Fabric"][""] = (_ref(r["_uuid"]), _fabric_logical(r))
        version, generation = r["version"], r["generation"]
    for r in hosts:
        tables["Host"][r["name"]] = (_ref(r["_uuid"]), _host_logical(r, net_name))
    for r in networks:
        tables["Network"][r["name"]] = (_ref(r["_uuid"]), _network_logical(r))
    for r in endpoints:
        owned[r["name"]] = _attachment_refs(r)
        row = _endpoint_logical(r, attach, net_name, host_name)
        if row is not None:
            tables["Endpoint"][r["name"]] = (_ref(r["_uuid"]), row)
    return Held(tables, version, generation or 0, owned)


# Each table's row in its logical form, and the model's object from that.
def _fabric_logical(r) -> Fabric:
    return Fabric(r["tunnel"], r["broadcast_limit"], r["underlay_mtu"])


def _host_logical(r, net_name: dict) -> tuple:
    vlans = tuple(sorted((net_name[_ref(k)], v) for k, v in r["local_vlans"][1]
                         if _ref(k) in net_name))
    return (r["underlay_ip"], r["dpid"], r["shard"], vlans)


def _network_logical(r) -> tuple:
    dns = tuple(v for _, v in sorted(map_of(r["dns"]).items()))
    return (r["key"], _unopt(r["router"]), r["dhcp"], dns, r["lease_time"], _unopt(r["mtu"]))


def _attachment_refs(r) -> tuple:
    return tuple(_ref(a) for a in set_of(r["attachments"]))


def _endpoint_logical(r, attach: dict, net_name: dict, host_name: dict) -> tuple | None:
    """None: none of its attachments is in view (a controller watching part
    of the fabric sees an endpoint elsewhere only in the networks its hosts
    carry, ``conditions``)."""
    attachments = sorted(((net_name[_ref(a["network"])], a["ip"], _unopt(a["vlan"]))
                          for a in map(attach.get, _attachment_refs(r))
                          if a is not None and _ref(a["network"]) in net_name),
                         key=_attachment_order)
    if not attachments:
        return None
    return (host_name[_ref(r["host"])], r["kind"], tuple(attachments),
            r["mac"], r["port"], _unopt(r["link_local"]), _unopt(r["iface_id"]))


def _host_of(name: str, row: tuple) -> Host:
    ip, dpid, _shard, _vlans = row
    return Host(name, ipaddress.ip_address(ip), dpid)


def _network_of(name: str, row: tuple) -> Network:
    key, router, dhcp, dns, lease_time, mtu = row
    return Network(name, key, router, dhcp, tuple(ipaddress.IPv4Address(a) for a in dns),
                   lease_time, mtu)


def _endpoint_of(name: str, row: tuple) -> Endpoint:
    host, kind, attachments, mac, port, ll, iface_id = row
    return Endpoint(name, host, kind, tuple(Attachment(net, ipaddress.ip_interface(ip), vlan)
                                            for net, ip, vlan in attachments),
                    mac, port, None if ll is None else ipaddress.IPv6Address(ll), iface_id)


# -- what a controller of some shards watches ---------------------------------------
def conditions(hosts: dict, shards) -> dict:
    """Table -> the ``monitor_cond`` condition (clauses, any of which
    selects a row) of what a controller programming the hosts of ``shards``
    needs (``hosts``: the Host rows, uuid -> row as the server sends them):
    the fabric and every host (each is a tunnel peer), the networks those
    hosts carry (their local VLANs name them), those networks' attachments
    and the endpoints with one of them (``Endpoint.networks``, and every
    trunk) -- the rows ``Topology.sub_fabric`` holds, trunks aside.  As
    ovn-controller watches the datapaths local to its chassis.  ``shards``
    None: everything."""
    if shards is None:
        return {t: [True] for t in TABLES}
    carried = sorted({_ref(k) for r in hosts.values() if r["shard"] in shards
                      for k, _ in r["local_vlans"][1]})
    if not carried:
        return {"Fabric": [True], "Host": [True], "Network": [False], "Attachment": [False],
                "Endpoint": [False]}
    # Only ``==`` clauses: ovsdb-server hashes a table's clauses when every
    # one of them is ``==``, and tries them one by one otherwise (``includes``
    # for 2,000 networks: 1.15 s of a shard's takeover at 64 hosts, 0.45 s
    # hashed).  An endpoint of one network is selected by it; trunks, by
    # their flag, all of them (a few: those of no carried network are left
    # out by the follower, as their attachments do not come).
    return {"Fabric": [True], "Host": [True],
            "Network": [["_uuid", "==", ["uuid", n]] for n in carried],
            "Attachment": [["network", "==", ["uuid", n]] for n in carried],
            "Endpoint": [["networks", "==", ["uuid", n]] for n in carried]
            + [["trunk", "==", True]]}


_ATOM_DEFAULTS = {"integer": 0, "real": 0.0, "boolean": False, "string": "",
                  "uuid": ["uuid", "00000000-0000-0000-0000-000000000000"]}


@functools.cache
def _column_kinds() -> dict:
    """Table -> column -> ("set", "map" or "atom", its default value), from the schema."""
    kinds: dict = {}
    for table, body in json.loads(SCHEMA.read_text())["tables"].items():
        for column, spec in body["columns"].items():
            t = spec["type"]
            key = t if isinstance(t, str) else t["key"]
            key = key if isinstance(key, str) else key["type"]
            if isinstance(t, dict) and "value" in t:
                kind = ("map", ["map", []])
            elif isinstance(t, dict) and not (t.get("min", 1) == 1 and t.get("max", 1) == 1):
                kind = ("set", ["set", []])
            else:
                kind = ("atom", _ATOM_DEFAULTS[key])
            kinds.setdefault(table, {})[column] = kind
    return kinds


def from_update2(raw: dict, updates: dict) -> dict:
    """An ``update2`` (what ``monitor_cond`` sends: rows ``initial``,
    ``insert``, ``delete``, or ``modify`` with each changed column's
    difference) as ``monitor``'s updates (``{"new": row}``, or ``{}`` for a
    row gone), the rows modified taken from ``raw`` (table -> uuid -> row
    held).  Columns left out of a new row hold their default."""
    result: dict = {}
    for table, changes in updates.items():
        kinds, out = _column_kinds()[table], result.setdefault(table, {})
        for uuid, change in changes.items():
            if "delete" in change:
                out[uuid] = {}
                continue
            new = change.get("initial") or change.get("insert")
            if new is not None:
                row = {c: default for c, (_, default) in kinds.items()}
                row.update(new)
            else:
                row = {c: v for c, v in raw[table][uuid].items() if c != "_uuid"}
                for column, diff in change["modify"].items():
                    if column in kinds:                # not _version
                        row[column] = _modified(kinds[column][0], row.get(column), diff)
            out[uuid] = {"new": row}
    return result


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def _modified(kind: str, old, diff):
    """A column's new value from its ``modify`` difference: a set's is
    the elements added or removed, a map's the pairs added, removed (same
    value) or changed (a new value); anything else's, the new value."""
    if kind == "set":
        now = {_hashable(a): a for a in set_of(old)}
        for a in set_of(diff):
            if now.pop(_hashable(a), None) is None:
                now[_hashable(a)] = a
        values = list(now.values())
        return values[0] if len(values) == 1 else ["set", values]
    if kind == "map":
        now = {_hashable(k): (k, v) for k, v in old[1]}
        for k, v in diff[1]:
            key = _hashable(k)
            if key in now and now[key][1] == v:
                del now[key]
            else:
                now[key] = (k, v)
        return ["map", [list(pair) for pair in now.values()]]
    return diff


def shards_of(held: Held) -> dict:
    """Host -> the shard the database gives it."""
    return {name: row[2] for name, (_, row) in held.tables.get("Host", {}).items()}


def assign_shards(current: dict, hosts, count: int | None = None) -> dict:
    """Each host's shard among ``count`` (default: as many as now, at
    least one): the one it has while there is such a shard, else the
    least loaded (the lowest of equals), so applies move no host
    needlessly; when ``count`` is new, a shard holding more than its even
    share also gives up its last hosts by name, so the shards come out
    even with as few hosts moved as that takes."""
    if count is None:
        count = max(current.values(), default=0) + 1
    shards = {h: s for h, s in current.items() if h in hosts and s < count}
    load = Counter(shards.values())
    if count != max(current.values(), default=count - 1) + 1:
        # Even: the (hosts mod count) fullest shards keep up to one more.
        even, extra = divmod(len(hosts), count)
        fullest = sorted(range(count), key=lambda k: (-load[k], k))
        for rank, shard in enumerate(fullest):
            over = load[shard] - (even + (rank < extra))
            for host in sorted((h for h, s in shards.items() if s == shard),
                               reverse=True)[:max(0, over)]:
                del shards[host]
                load[shard] -= 1
    for host in sorted(hosts):
        if host not in shards:
            shards[host] = min(range(count), key=lambda k: (load[k], k))
            load[shards[host]] += 1
    return shards


def select_ops(tables=TABLES) -> list[dict]:
    """One transaction's worth of selects reading the whole database, or
    only ``tables`` of it (what ``read`` takes)."""
    return [{"op": "select", "table": t, "where": []} if t in tables else
            {"op": "comment", "comment": f"{t}: not read"} for t in TABLES]


def topology(held: Held, source: str = "nsgre database") -> Topology:
    """The topology a database holds, as allocated when it was written:
    no validation and no allocation (the writer did both)."""
    t = held.tables
    (_, fabric), = t["Fabric"].values()
    hosts = [_host_of(name, row) for name, (_, row) in t["Host"].items()]
    networks = [_network_of(name, row) for name, (_, row) in t["Network"].items()]
    endpoints = [_endpoint_of(name, row) for name, (_, row) in t["Endpoint"].items()]
    local_vlans = {(host, net): vlan for host, (_, (_, _, _, vlans)) in t["Host"].items()
                   for net, vlan in vlans}
    return Topology(fabric.tunnel, hosts, networks, endpoints, local_vlans, source,
                    fabric.broadcast_limit, fabric.underlay_mtu)


def allocations(held: Held) -> dict:
    """What a database holds allocated, as ``Topology.allocations`` gives
    it: hand it to the loader so the next topology keeps it."""
    t = held.tables
    return {
        "keys": {name: row[0] for name, (_, row) in t["Network"].items()},
        "local_vlans": {(host, net): vlan for host, (_, row) in t["Host"].items()
                        for net, vlan in row[3]},
        "macs": {name: row[3] for name, (_, row) in t["Endpoint"].items()},
        "ports": {name: row[4] for name, (_, row) in t["Endpoint"].items()},
    }


# -- writing the difference -----------------------------------------------------------
def transaction(held: Held, topo: Topology, digest: str, shards: dict | None = None) -> list:
    """The operations that turn what the database holds into ``topo``,
    guarded: they fail as a whole (the ``wait`` times out at once) if
    another writer changed the fabric's version since it was read.  Empty
    when the database holds ``topo`` already: nothing is written."""
    want = logical(topo, shards)
    have = held.tables
    ops: list = []
    uuid_of: dict = {}       # (table, name) -> a reference usable in this transaction

    def ref(table, name):
        return uuid_of[table, name]

    for table in ("Host", "Network", "Endpoint"):
        for name, (uuid, _) in have[table].items():
            uuid_of[table, name] = ["uuid", uuid]
    # New rows are inserted under a name the rest of the transaction refers to.
    counter = iter(range(1_000_000_000))
    for table in ("Network", "Host", "Endpoint"):
        for name in want[table].keys() - have[table].keys():
            uuid_of[table, name] = ["named-uuid", f"{table.lower()}{next(counter)}"]
    for table, build in (("Network", _network_row), ("Host", _host_row),
                         ("Endpoint", _endpoint_row)):
        for name, row in sorted(want[table].items()):
            old = have[table].get(name)
            if old is not None and old[1] == row:
                continue
            body, extra = build(name, row, ref, counter)
            ops += extra
            if old is None:
                ops.append({"op": "insert", "table": table, "row": body,
                            "uuid-name": uuid_of[table, name][1]})
            else:
                ops.append({"op": "update", "table": table, "where": _by_uuid(old[0]),
                            "row": body})
                ops += _drop_attachments(held, table, name)
        for name, (uuid, _) in sorted(have[table].items()):
            if name not in want[table]:
                ops.append({"op": "delete", "table": table, "where": _by_uuid(uuid)})
                ops += _drop_attachments(held, table, name)
    fabric = want["Fabric"][""]
    old = have["Fabric"].get("")
    if not ops and old is not None and old[1] == fabric:
        return []
    guard = {"op": "wait", "table": "Fabric", "where": [], "columns": ["version"],
             "until": "==", "timeout": 0,
             "rows": [] if held.version is None else [{"version": held.version}]}
    settings = {"tunnel": fabric.tunnel, "broadcast_limit": fabric.broadcast_limit,
                "underlay_mtu": fabric.underlay_mtu, "digest": digest, "source": topo.source}
    if old is None:
        fabric_op = {"op": "insert", "table": "Fabric",
                     "row": {**settings, "version": 1, "generation": 0}}
    else:
        fabric_op = {"op": "update", "table": "Fabric", "where": [],
                     "row": {**settings, "version": held.version + 1}}
    return [guard, *ops, fabric_op]


def _drop_attachments(held: Held, table: str, name: str) -> list:
    """Delete an endpoint's old attachment rows outright: ovsdb-server
    checks a network's deletion against them before it collects them as
    garbage, and refuses it (referential integrity)."""
    if table != "Endpoint":
        return []
    return [{"op": "delete", "table": "Attachment", "where": _by_uuid(uuid)}
            for uuid in held.attachments.get(name, ())]


def _by_uuid(uuid: str) -> list:
    return [["_uuid", "==", ["uuid", uuid]]]


def _network_row(name, row, ref, counter):
    key, router, dhcp, dns, lease_time, mtu = row
    return ({"name": name, "key": key, "router": _opt(router), "dhcp": dhcp,
             "dns": ["map", [[i + 1, a] for i, a in enumerate(dns)]],
             "lease_time": lease_time, "mtu": _opt(mtu)}, [])


def _host_row(name, row, ref, counter):
    ip, dpid, shard, vlans = row
    return ({"name": name, "underlay_ip": ip, "dpid": dpid, "shard": shard,
             "local_vlans": ["map", [[ref("Network", net), vlan] for net, vlan in vlans]]}, [])


def _endpoint_row(name, row, ref, counter):
    """An endpoint's row and the inserts of its attachments (rows of their
    own, owned by it: the old ones go when nothing refers to them).  Its
    ``networks`` repeat its attachments' and ``trunk`` says there are
    several, so that a controller can watch the members of the networks its
    hosts carry (``conditions``)."""
    host, kind, attachments, mac, port, link_local, iface_id = row
    inserts, refs = [], []
    for net, ip, vlan in attachments:
        label = f"attachment{next(counter)}"
        inserts.append({"op": "insert", "table": "Attachment", "uuid-name": label,
                        "row": {"network": ref("Network", net), "ip": ip, "vlan": _opt(vlan)}})
        refs.append(["named-uuid", label])
    networks = sorted({net for net, _, _ in attachments})
    return ({"name": name, "host": ref("Host", host), "kind": kind,
             "attachments": ["set", refs], "mac": mac, "port": port,
             "link_local": _opt(link_local), "iface_id": _opt(iface_id),
             **membership([ref("Network", net) for net in networks])}, inserts)


def membership(networks: list) -> dict:
    """An endpoint's columns that say which networks it is in (references
    to their rows): what a shard's watch selects it by (``conditions``)."""
    return {"networks": ["set", networks], "trunk": len(networks) > 1}


# -- following the database ---------------------------------------------------------
class Follower:
    """What a database holds, kept from an OVSDB monitor's updates (table ->
    uuid -> {"new": row} or {} for a row gone): each update turned into the
    next ``Topology`` in what it touches (``Topology.changed``), as a
    controller following the database needs it -- rebuilding a
    10,000-endpoint fabric from every row takes it a second."""

    def __init__(self, source: str = "nsgre database"):
        self.source = source
        self.raw: dict = {t: {} for t in TABLES}      # table -> uuid -> row as the server sent
        self.held: Held | None = None
        self.topology: Topology | None = None
        self.whole_reads = 0                           # updates that took a whole rebuild
        self.names: dict = {"Host": {}, "Network": {}}  # uuid -> name
        self.owner: dict = {}                          # attachment uuid -> (endpoint, its uuid)

    def update(self, updates: dict) -> None:
        before = {t: {u: self.raw[t].get(u) for u in updates.get(t, {})} for t in TABLES}
        for table, changes in updates.items():
            for uuid, change in changes.items():
                if "new" in change:
                    self.raw[table][uuid] = {**change["new"], "_uuid": ["uuid", uuid]}
                else:
                    self.raw[table].pop(uuid, None)
        for table in ("Host", "Network"):
            names = self.names[table]
            for uuid in before[table]:
                row = self.raw[table].get(uuid)
                if row is None:
                    names.pop(uuid, None)
                else:
                    names[uuid] = row["name"]
        if self.held is None or not self._step(before):
            self.whole_reads += 1
            self.held = read([{"rows": list(self.raw[t].values())} for t in TABLES])
            self.topology = topology(self.held, self.source) \
                if self.held.version is not None else None
            self.owner = {ref: (r["name"], uuid) for uuid, r in self.raw["Endpoint"].items()
                          for ref in _attachment_refs(r)}

    def _step(self, before: dict) -> bool:
        """The update made in what it touches; False: it needs a whole read
        (the first version, the fabric's own settings changed, a row renamed)."""
        old, raw = self.held, self.raw
        if old.version is None or self.topology is None or not raw["Fabric"]:
            return False
        (fabric,) = raw["Fabric"].values()
        if _fabric_logical(fabric) != old.tables["Fabric"][""][1]:
            return False
        for table in ("Host", "Network"):
            for uuid, was in before[table].items():
                now = raw[table].get(uuid)
                if was is not None and now is not None and was["name"] != now["name"]:
                    return False
        net_name, host_name = self.names["Network"], self.names["Host"]
        names = {t: {r["name"] for rs in (before[t].values(), map(raw[t].get, before[t]))
                     for r in rs if r is not None} for t in ("Host", "Network", "Endpoint")}
        endpoint_uuid = {}            # an endpoint whose attachments alone changed -> its row
        for a in before["Attachment"]:
            if a in self.owner:
                name, endpoint_uuid[name] = self.owner[a]
                names["Endpoint"].add(name)
        # A network coming into view or leaving it (a controller watching part
        # of the fabric, ``conditions``): the hosts' local VLANs of it.
        seen = {u for u, was in before["Network"].items()
                if (was is None) != (raw["Network"].get(u) is None)}
        if seen:
            names["Host"].update(r["name"] for r in raw["Host"].values()
                                 if any(_ref(k) in seen for k, _ in r["local_vlans"][1]))
        # The rows now of the names touched (a row may have gone, or come back
        # under a new uuid): only among the rows the update brought.
        rows_now = {t: {r["name"]: r for r in map(raw[t].get, before[t]) if r is not None}
                    for t in ("Host", "Network", "Endpoint")}
        tables = {t: dict(rows_) for t, rows_ in old.tables.items()}
        owned = dict(old.attachments)
        objects: dict = {"Host": {}, "Network": {}, "Endpoint": {}}
        local_vlans: dict = {}
        make = {"Host": _host_of, "Network": _network_of, "Endpoint": _endpoint_of}
        for table in ("Host", "Network", "Endpoint"):
            for name in names[table]:
                r = rows_now[table].get(name)
                if r is None:             # the row unchanged: something it refers to changed
                    uuid = tables[table][name][0] if name in tables[table] else \
                        endpoint_uuid.get(name)
                    if uuid is not None and uuid not in before[table]:
                        r = raw[table].get(uuid)
                if r is None:             # gone
                    for ref in owned.pop(name, ()):
                        self.owner.pop(ref, None)
                    row = None
                elif table == "Endpoint":
                    for ref in owned.get(name, ()):
                        self.owner.pop(ref, None)
                    owned[name] = _attachment_refs(r)
                    self.owner.update((ref, (name, _ref(r["_uuid"]))) for ref in owned[name])
                    row = _endpoint_logical(r, raw["Attachment"], net_name, host_name)
                else:
                    row = _host_logical(r, net_name) if table == "Host" else _network_logical(r)
                if row is None:           # gone, or out of view
                    if name in tables[table]:
                        was = tables[table].pop(name)[1]
                        objects[table][name] = None
                        if table == "Host":
                            local_vlans.update(((name, n), None) for n, _ in was[3])
                    continue
                was = tables[table].get(name)
                tables[table][name] = (_ref(r["_uuid"]), row)
                if was is not None and was[1] == row:
                    continue
                objects[table][name] = make[table](name, row)
                if table == "Host":
                    vlans, had = dict(row[3]), dict(was[1][3]) if was else {}
                    local_vlans.update(((name, n), None) for n in had.keys() - vlans.keys())
                    local_vlans.update(((name, n), v) for n, v in vlans.items()
                                       if had.get(n) != v)
        tables["Fabric"] = {"": (_ref(fabric["_uuid"]), _fabric_logical(fabric))}
        self.held = Held(tables, fabric["version"], fabric["generation"] or 0, owned)
        self.topology = self.topology.changed(objects["Host"], objects["Network"],
                                              objects["Endpoint"], local_vlans)
        return True
