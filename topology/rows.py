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

import ipaddress
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
        tables["Fabric"][""] = (_ref(r["_uuid"]),
                                Fabric(r["tunnel"], r["broadcast_limit"], r["underlay_mtu"]))
        version, generation = r["version"], r["generation"]
    for r in hosts:
        vlans = tuple(sorted((net_name[_ref(k)], v) for k, v in r["local_vlans"][1]
                             if _ref(k) in net_name))
        tables["Host"][r["name"]] = (_ref(r["_uuid"]),
                                     (r["underlay_ip"], r["dpid"], r["shard"], vlans))
    for r in networks:
        dns = tuple(v for _, v in sorted(map_of(r["dns"]).items()))
        tables["Network"][r["name"]] = (_ref(r["_uuid"]), (
            r["key"], _unopt(r["router"]), r["dhcp"], dns, r["lease_time"], _unopt(r["mtu"])))
    for r in endpoints:
        refs = tuple(_ref(a) for a in set_of(r["attachments"]))
        owned[r["name"]] = refs
        attachments = sorted(((net_name[_ref(a["network"])], a["ip"], _unopt(a["vlan"]))
                              for a in map(attach.get, refs)), key=_attachment_order)
        tables["Endpoint"][r["name"]] = (_ref(r["_uuid"]), (
            host_name[_ref(r["host"])], r["kind"], tuple(attachments),
            r["mac"], r["port"], _unopt(r["link_local"]), _unopt(r["iface_id"])))
    return Held(tables, version, generation or 0, owned)


def shards_of(held: Held) -> dict:
    """Host -> the shard the database gives it."""
    return {name: row[2] for name, (_, row) in held.tables.get("Host", {}).items()}


def assign_shards(current: dict, hosts, count: int | None = None) -> dict:
    """Each host's shard among ``count`` (default: as many as now, at
    least one): the one it has while there is such a shard, else the
    least loaded (the lowest of equals), so applies move no host needlessly."""
    if count is None:
        count = max(current.values(), default=0) + 1
    shards = {h: s for h, s in current.items() if h in hosts and s < count}
    load = Counter(shards.values())
    for host in sorted(hosts):
        if host not in shards:
            shards[host] = min(range(count), key=lambda k: (load[k], k))
            load[shards[host]] += 1
    return shards


def select_ops() -> list[dict]:
    """One transaction's worth of selects reading the whole database (what
    ``read`` takes)."""
    return [{"op": "select", "table": t, "where": []} for t in TABLES]


def topology(held: Held, source: str = "nsgre database") -> Topology:
    """The topology a database holds, as allocated when it was written:
    no validation and no allocation (the writer did both)."""
    t = held.tables
    (_, fabric), = t["Fabric"].values()
    hosts = [Host(name, ipaddress.ip_address(ip), dpid)
             for name, (_, (ip, dpid, _shard, _vlans)) in sorted(t["Host"].items())]
    networks = [Network(name, key, router, dhcp, tuple(ipaddress.IPv4Address(a) for a in dns),
                        lease_time, mtu)
                for name, (_, (key, router, dhcp, dns, lease_time, mtu))
                in sorted(t["Network"].items())]
    endpoints = [Endpoint(name, host, kind,
                          tuple(Attachment(net, ipaddress.ip_interface(ip), vlan)
                                for net, ip, vlan in attachments),
                          mac, port, None if ll is None else ipaddress.IPv6Address(ll), iface_id)
                 for name, (_, (host, kind, attachments, mac, port, ll, iface_id))
                 in sorted(t["Endpoint"].items())]
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
    own, owned by it: the old ones go when nothing refers to them)."""
    host, kind, attachments, mac, port, link_local, iface_id = row
    inserts, refs = [], []
    for net, ip, vlan in attachments:
        label = f"attachment{next(counter)}"
        inserts.append({"op": "insert", "table": "Attachment", "uuid-name": label,
                        "row": {"network": ref("Network", net), "ip": ip, "vlan": _opt(vlan)}})
        refs.append(["named-uuid", label])
    return ({"name": name, "host": ref("Host", host), "kind": kind,
             "attachments": ["set", refs], "mac": mac, "port": port,
             "link_local": _opt(link_local), "iface_id": _opt(iface_id)}, inserts)
