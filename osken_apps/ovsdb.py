"""Prepare a host's Open vSwitch from the model, over OVSDB.

This is the only place that writes OVSDB: the integration bridge (datapath
type, datapath id, ``fail_mode=secure``, OpenFlow 1.3, the controller)
and endpoint ports through the ``ovs`` IDL; one tunnel port per peer host
with ``options:key=flow`` through plain transactions (``transact``: the
controller reads and writes them in its event loop, where the IDL is slow).
Real hypervisors (``nsgre prepare-host``) and the emulation use the same
calls.  Everything is idempotent: running it again changes only what
differs, and removes only tunnel ports that nsgre created (tagged with
``external_ids:nsgre-peer``).
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

import ovs.db.idl
import ovs.poller

from nsgre_core.ofp import OVSDB_OFPORT_MAX
from osken_apps.ovsdb_rpc import (Monitor, OvsdbError, OvsdbTimeout, _connect,  # noqa: F401
                                  _Messages, _read_reply, transact)
from topology import Topology
from topology.rows import map_of, set_of

SCHEMA = os.environ.get("NSGRE_OVS_SCHEMA", "/usr/share/openvswitch/vswitch.ovsschema")
BRIDGE = "br-int"
PEER_KEY = "nsgre-peer"        # external_ids key on the tunnel ports we own
HOST_KEY = "nsgre-host"        # external_ids key on the bridge we own


#: The columns nsgre reads or writes.  The IDL copies (and parses) only
#: these: registering all of them made a host of 2,500 ports cost ~1.2 s.
COLUMNS = {
    "Open_vSwitch": ["bridges", "ssl", "manager_options"],
    "SSL": ["private_key", "certificate", "ca_cert"],
    "Manager": ["target"],
    "Bridge": ["name", "ports", "datapath_type", "fail_mode", "protocols", "other_config",
               "external_ids", "controller"],
    "Port": ["name", "interfaces", "external_ids"],
    "Interface": ["name", "type", "options", "ofport"],
    "Controller": ["target"],
}


class PortRecord(NamedTuple):
    """One port of a bridge as OVSDB holds it (its first interface's type,
    options and OpenFlow number; None while vswitchd has not numbered it)."""
    name: str
    uuid: str                 # the Port row's
    interface: str            # the name OpenFlow knows it by (nsgre's: the port's)
    type: str
    options: dict
    peer: str | None          # external_ids:nsgre-peer, on the tunnels nsgre owns
    ofport: int | None


class Ovsdb:
    """A short-lived IDL connection to one ovsdb-server."""

    def __init__(self, remote: str, timeout: float = 10.0):
        self.remote = remote
        self.timeout = timeout
        helper = ovs.db.idl.SchemaHelper(location=SCHEMA)
        for table, columns in COLUMNS.items():
            helper.register_columns(table, columns)
        self.idl = ovs.db.idl.Idl(remote, helper)
        self._wait(lambda: self.idl.has_ever_connected() and self._loaded(), "connect")

    def _loaded(self):
        return bool(self.idl.tables["Open_vSwitch"].rows)

    def _wait(self, done, what):
        deadline = time.monotonic() + self.timeout
        while True:
            self.idl.run()
            if done():
                return
            if time.monotonic() > deadline:
                raise OvsdbTimeout(f"{self.remote}: timed out waiting to {what}")
            poller = ovs.poller.Poller()
            self.idl.wait(poller)
            poller.timer_wait(100)
            poller.block()

    def close(self):
        self.idl.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- reading ------------------------------------------------------------
    def rows(self, table):
        return list(self.idl.tables[table].rows.values())

    def bridge(self, name):
        return next((b for b in self.rows("Bridge") if b.name == name), None)

    def port_names(self, bridge=BRIDGE) -> list[str]:
        br = self.bridge(bridge)
        return sorted(p.name for p in br.ports) if br else []

    # -- writing ------------------------------------------------------------
    def transact(self, build, what):
        """Run ``build(txn)`` in one transaction; retry when the database
        changed under us (TRY_AGAIN), raise on anything but success."""
        for _ in range(5):
            txn = ovs.db.idl.Transaction(self.idl)
            build(txn)
            status = txn.commit_block()
            if status in (txn.SUCCESS, txn.UNCHANGED):
                return
            if status != txn.TRY_AGAIN:
                raise OvsdbError(f"{self.remote}: {what}: {status} {txn.get_error()}")
            self._wait(lambda: True, "refresh")
        raise OvsdbError(f"{self.remote}: {what}: database kept changing")

    def _add_bridge_row(self, txn, name):
        root = self.rows("Open_vSwitch")[0]
        port, iface = self._new_port(txn, name, "internal", {}, {})
        br = txn.insert(self.idl.tables["Bridge"])
        br.name = name
        br.ports = [port]
        root.verify("bridges")
        root.bridges = list(root.bridges) + [br]
        return br

    def _new_port(self, txn, name, iface_type, options, external_ids):
        iface = txn.insert(self.idl.tables["Interface"])
        iface.name = name
        iface.type = iface_type
        iface.options = options
        port = txn.insert(self.idl.tables["Port"])
        port.name = name
        port.interfaces = [iface]
        port.external_ids = external_ids
        return port, iface

    def ensure_bridge(self, name, *, dpid: int, datapath_type: str, controller: str | None,
                      host: str):
        def build(txn):
            br = self.bridge(name) or self._add_bridge_row(txn, name)
            br.datapath_type = datapath_type
            br.fail_mode = "secure"
            br.protocols = ["OpenFlow13"]
            br.other_config = {**dict(getattr(br, "other_config", {})), "datapath-id": f"{dpid:016x}",
                               "disable-in-band": "true"}
            br.external_ids = {**dict(getattr(br, "external_ids", {})), HOST_KEY: host}
            targets = [c.target for c in getattr(br, "controller", [])]
            wanted = controller.split(",") if controller else []
            if targets != wanted:           # several: every controller of a fabric run in HA
                rows = []
                for target in wanted:
                    rows.append(txn.insert(self.idl.tables["Controller"]))
                    rows[-1].target = target
                br.controller = rows
        self.transact(build, f"bridge {name}")

    def ensure_ssl(self, key: str, cert: str, ca: str) -> None:
        """The switch's key, certificate and CA (``ovs-vsctl set-ssl``): what
        an ``ssl:`` controller target and OVSDB remote use."""
        def build(txn):
            root = self.rows("Open_vSwitch")[0]
            row = root.ssl[0] if root.ssl else txn.insert(self.idl.tables["SSL"])
            row.private_key, row.certificate, row.ca_cert = key, cert, ca
            if not root.ssl:
                root.ssl = [row]
        self.transact(build, "ssl")

    def ensure_manager(self, target: str) -> None:
        """The host's OVSDB also served at ``target`` (``ovs-vsctl
        set-manager``; ovsdb-server must read ``manager_options`` and the
        ``SSL`` table, as Debian's ``ovs-ctl`` starts it): the controllers
        reach the host's interfaces there.  Other managers are left alone."""
        def build(txn):
            root = self.rows("Open_vSwitch")[0]
            if any(m.target == target for m in root.manager_options):
                return
            row = txn.insert(self.idl.tables["Manager"])
            row.target = target
            root.verify("manager_options")
            root.manager_options = list(root.manager_options) + [row]
        self.transact(build, f"manager {target}")

    def add_port(self, bridge, name, external_ids=None):
        """Attach an existing Linux interface (an endpoint's port)."""
        def build(txn):
            br = self.bridge(bridge)
            if any(p.name == name for p in br.ports):
                return
            port, _ = self._new_port(txn, name, "", {}, external_ids or {})
            br.verify("ports")
            br.ports = list(br.ports) + [port]
        self.transact(build, f"port {name} on {bridge}")

    def del_port(self, bridge, name):
        def build(txn):
            br = self.bridge(bridge)
            keep = [p for p in br.ports if p.name != name]
            if len(keep) != len(br.ports):
                br.verify("ports")
                br.ports = keep
        self.transact(build, f"remove port {name} from {bridge}")


def bridge_ports(remote: str, bridge: str = BRIDGE,
                 timeout: float = 5.0) -> dict[str, PortRecord] | None:
    """Port name -> ``PortRecord`` for every port on ``bridge`` (None when
    there is no such bridge), in one read-only transaction."""
    ops = [{"op": "select", "table": "Bridge", "where": [["name", "==", bridge]],
            "columns": ["ports"]},
           {"op": "select", "table": "Port", "where": [],
            "columns": ["_uuid", "name", "interfaces", "external_ids"]},
           {"op": "select", "table": "Interface", "where": [],
            "columns": ["_uuid", "name", "type", "options", "ofport"]}]
    return ports_from_reply(transact(remote, ops, timeout))


def tunnels_to_step(remote: str, want: dict[str, tuple[str, dict, str]],
                    bridge: str = BRIDGE, timeout: float = 5.0):
    """Make ``bridge``'s nsgre tunnels exactly ``want`` ({port name: (type,
    options, peer host)}) in one read and, only if they differ, one write:
    a tunnel that is already right keeps its OpenFlow port number and the
    flows that use it.  Returns the bridge's ports afterwards (None without
    the bridge) and whether any tunnel changed; retried when someone else
    changed the ports between the read and the write."""
    for _ in range(5):
        ports = bridge_ports(remote, bridge, timeout)
        if ports is None:
            return None, False
        ops = tunnel_ops(ports, want, bridge)
        if not ops:
            return ports, False
        try:
            transact(remote, ops, timeout)
        except OvsdbTimeout:                  # the wait: the ports changed since read
            continue
        return bridge_ports(remote, bridge, timeout) or {}, True
    raise OvsdbError(f"{remote}: tunnels on {bridge}: the ports kept changing")


def tunnel_ops(ports: dict[str, PortRecord], want: dict[str, tuple[str, dict, str]],
               bridge: str = BRIDGE) -> list[dict]:
    """The OVSDB operations taking ``ports`` to exactly the tunnels ``want``,
    or none when they hold them: remove nsgre's ports that are not wanted
    or not right (and any other port holding a tunnel's name), add the
    missing tunnels, tagged with their peer.  Only the bridge's port set is
    mutated (unreferenced Port and Interface rows go with it), guarded by
    a wait on the set as read."""
    kept = {name for name, r in ports.items()
            if (r.peer is None and name not in want)
            or want.get(name) == (r.type, r.options, r.peer)}
    drop = [["uuid", r.uuid] for name, r in sorted(ports.items()) if name not in kept]
    add = [name for name in sorted(want) if name not in kept]
    if not drop and not add:
        return []
    where = [["name", "==", bridge]]
    ops = [{"op": "wait", "table": "Bridge", "where": where, "columns": ["ports"],
            "until": "==", "timeout": 0,
            "rows": [{"ports": ["set", [["uuid", r.uuid] for r in ports.values()]]}]}]
    for i, name in enumerate(add):
        kind, options, peer = want[name]
        ops.append({"op": "insert", "table": "Interface", "uuid-name": f"iface{i}",
                    "row": {"name": name, "type": kind,
                            "options": ["map", sorted(options.items())]}})
        ops.append({"op": "insert", "table": "Port", "uuid-name": f"port{i}",
                    "row": {"name": name, "interfaces": ["named-uuid", f"iface{i}"],
                            "external_ids": ["map", [[PEER_KEY, peer]]]}})
    mutations = []
    if drop:
        mutations.append(["ports", "delete", ["set", drop]])
    if add:
        mutations.append(["ports", "insert",
                          ["set", [["named-uuid", f"port{i}"] for i in range(len(add))]]])
    ops.append({"op": "mutate", "table": "Bridge", "where": where, "mutations": mutations})
    return ops


def ports_from_reply(result: list) -> dict[str, PortRecord] | None:
    """``bridge_ports``' records from the three selects' results."""
    bridge_rows, port_rows, iface_rows = (r.get("rows", []) for r in result)
    if not bridge_rows:
        return None
    ifaces = {row["_uuid"][1]: row for row in iface_rows}
    ports = {row["_uuid"][1]: row for row in port_rows}
    records = {}
    for ref in set_of(bridge_rows[0]["ports"]):
        port = ports.get(ref[1])
        if port is None:
            continue
        members = [ifaces[i[1]] for i in set_of(port["interfaces"]) if i[1] in ifaces]
        iface = members[0] if members else {}
        ofport = set_of(iface.get("ofport", ["set", []]))
        number = ofport[0] if ofport and isinstance(ofport[0], int) and ofport[0] > 0 else None
        records[port["name"]] = PortRecord(
            port["name"], ref[1], iface.get("name", port["name"]), iface.get("type", ""), map_of(iface.get("options", ["map", []])),
            map_of(port["external_ids"]).get(PEER_KEY), number)
    return records


def ofports(ports: dict[str, PortRecord]) -> dict[str, int]:
    """Interface name -> OpenFlow port number, as the controller keeps them
    from a switch's port description (ports not numbered yet, and LOCAL,
    left out)."""
    return {r.interface: r.ofport for r in ports.values()
            if r.ofport is not None and r.ofport < OVSDB_OFPORT_MAX}


def tunnel_ports(topo: Topology, host: str) -> dict[str, tuple[str, dict, str]]:
    """The tunnel ports ``host`` should have: one per peer, key from the flow.

    No ``local_ip``: the route to the peer gives the source address.  OVS
    (3.1) routes a tunnel that pins ``local_ip`` only through a *local*
    route of the kernel's table, and its copy of that table is what loses
    packets on a busy userspace host: it is rebuilt from scratch on any link
    change (a guest's tap appearing), and a flow translated meanwhile hands
    tunnel packets to the kernel undecapsulated.  Without ``local_ip``, a
    host can run ``ovs-vswitchd --disable-system-route`` with its underlay
    route given by ``ovs-appctl ovs/route/add`` (the emulation does), which
    is never flushed."""
    return {
        topo.tunnel_port(host, peer.name): (
            topo.tunnel, {"remote_ip": str(peer.underlay_ip), "key": "flow"}, peer.name)
        for peer in topo.peers(host)
    }


def prepare_host(topo: Topology, host: str, db: str, controller: str | None,
                 datapath_type: str = "netdev", bridge: str = BRIDGE, tls=None,
                 manager: str | None = None):
    """Bring one host's OVS to what the model says: bridge and tunnels;
    ``tls``: its credentials (``nsgre_core.credentials.Credentials``) for ``ssl:``
    controller targets and ``pssl:`` managers; ``manager``: where its OVSDB
    serves the controllers (``pssl:6640:IP``)."""
    h = topo.host(host)
    with Ovsdb(db) as ovsdb:
        if tls is not None:
            ovsdb.ensure_ssl(str(tls.key), str(tls.cert), str(tls.ca))
        if manager:
            ovsdb.ensure_manager(manager)
        ovsdb.ensure_bridge(bridge, dpid=h.dpid, datapath_type=datapath_type,
                            controller=controller, host=host)
    tunnels_to_step(db, tunnel_ports(topo, host), bridge)


# -- watching interfaces: what binds endpoints by identity -----------------------
#: The columns the interface watch reads (the bridge is selected by name).
WATCHED = {"Bridge": ["ports"], "Port": ["interfaces"], "Interface": ["name", "external_ids"]}


def watch_interfaces(remote: str, on_change, bridge: str = BRIDGE,
                     timeout: float = 10.0, alive=lambda: True) -> None:
    """Monitor ``bridge``'s interfaces over OVSDB and call
    ``on_change(interfaces, changed)`` -- interface name -> ``external_ids``
    of all of them, and the names that came, went or changed (None with the
    first answer: everything) -- until the connection fails (``OvsdbError``)
    or ``alive()`` turns false.  As ovn-controller watches br-int: one
    ``monitor_cond`` whose updates carry differences (a port added to a
    bridge of 1,300 sends that port, not the bridge's whole list twice)."""
    view = _BridgeView(bridge)
    watch = Monitor(remote, "Open_vSwitch",
                    {"Bridge": [["name", "==", bridge]], "Port": [True], "Interface": [True]},
                    timeout, columns=WATCHED)
    try:
        for kind, updates in watch.messages(alive):
            changed = view.apply(updates or {})
            if kind == "answer":
                on_change(dict(view.current), None)
            elif changed:
                on_change(dict(view.current), changed)
    finally:
        watch.close()


class _BridgeView:
    """One bridge's interfaces and their ``external_ids``, kept from a
    ``monitor_cond``'s ``update2`` messages: rows ``initial``/``insert``
    whole (columns at their default left out), ``delete``, or ``modify``
    with each changed column's difference (a set's elements to add or
    remove, a map's pairs).  The Python work per update is what it changes:
    with the bridge's whole port list parsed, copied and compared on every
    update, a hypervisor plugging ports one by one into a bridge of 1,300
    kept the controller's event loop busy for most of a second."""

    def __init__(self, bridge: str):
        self.bridge = bridge
        self.bridges: dict = {}           # Bridge uuid -> {Port uuid} (the one named, or
                                          # two while it is deleted and made again)
        self.ports: dict = {}             # Port uuid -> {Interface uuid}
        self.port_of: dict = {}           # Interface uuid -> its Port uuid
        self.ifaces: dict = {}            # Interface uuid -> (name, external_ids)
        # What ``current`` holds, by the row it came from: names are unique on
        # a bridge, but one update may delete a row and make another of the
        # same name, in either order.
        self.shown: dict = {}             # Interface uuid -> (name, external_ids)
        self.current: dict = {}           # name -> external_ids of the bridge's interfaces

    def apply(self, updates: dict) -> set[str]:
        """Apply one update; the names of the interfaces that came, went
        or changed."""
        touched: set = set()              # Interface uuids to look at again
        for uuid, change in updates.get("Interface", {}).items():
            touched.add(uuid)
            row = _whole(change)
            if "delete" in change:
                self.ifaces.pop(uuid, None)
            elif row is not None:
                self.ifaces[uuid] = (row.get("name", ""),
                                     map_of(row.get("external_ids", ["map", []])))
            elif uuid in self.ifaces and "external_ids" in change["modify"]:
                name, ext = self.ifaces[uuid]
                self.ifaces[uuid] = (name, _map_toggled(ext, change["modify"]["external_ids"]))
        for uuid, change in updates.get("Port", {}).items():
            old = self.ports.pop(uuid, set())
            row = _whole(change)
            if "delete" in change:
                new = set()
            elif row is not None:
                new = _refs(row.get("interfaces", ["set", []]))
            else:
                new = old ^ _refs(change["modify"].get("interfaces", ["set", []]))
            for iface in old - new:
                if self.port_of.get(iface) == uuid:
                    del self.port_of[iface]
            for iface in new:
                self.port_of[iface] = uuid
            if new:
                self.ports[uuid] = new
            touched |= old | new
        for uuid, change in updates.get("Bridge", {}).items():
            row = _whole(change)
            if "delete" in change:
                moved = self.bridges.pop(uuid, set())
            elif row is not None:
                new = _refs(row.get("ports", ["set", []]))
                moved = self.bridges.get(uuid, set()) ^ new
                self.bridges[uuid] = new
            else:
                moved = _refs(change["modify"].get("ports", ["set", []]))
                self.bridges.setdefault(uuid, set()).symmetric_difference_update(moved)
            for port in moved:
                touched |= self.ports.get(port, set())
        changed = set()
        for uuid in touched:
            port = self.port_of.get(uuid)
            on_bridge = any(port in ports for ports in self.bridges.values())
            now = self.ifaces.get(uuid) if on_bridge else None
            was = self.shown.get(uuid)
            if now == was:
                continue
            if was is not None:
                del self.shown[uuid]
                if self.current.get(was[0]) is was[1]:     # not since taken by another row
                    del self.current[was[0]]
                changed.add(was[0])
            if now is not None:
                self.shown[uuid] = now
                self.current[now[0]] = now[1]
                changed.add(now[0])
        return changed


def _whole(change: dict) -> dict | None:
    """The row of an ``initial`` or ``insert``, else None."""
    return change["initial"] if "initial" in change else change.get("insert")


def _refs(datum) -> set:
    """The uuids of an OVSDB set of references."""
    return {ref[1] for ref in set_of(datum)}


def _map_toggled(old: dict, diff) -> dict:
    """A map column after an ``update2`` difference: a pair named with its
    value removed, with another value changed, a new key added."""
    new = dict(old)
    for key, value in diff[1]:
        if new.get(key) == value:
            del new[key]
        else:
            new[key] = value
    return new


def mark_ops(marks: dict[str, bool], stamp_ms: int) -> list[dict]:
    """Set (True) or remove (False) ``nsgre-installed`` and its time stamp
    on each interface, keeping every other ``external_ids`` key."""
    ops = []
    keys = ["set", ["nsgre-installed", "nsgre-installed-ts"]]
    for iface, installed in sorted(marks.items()):
        where = [["name", "==", iface]]
        ops.append({"op": "mutate", "table": "Interface", "where": where,
                    "mutations": [["external_ids", "delete", keys]]})
        if installed:
            ops.append({"op": "mutate", "table": "Interface", "where": where,
                        "mutations": [["external_ids", "insert",
                                       ["map", [["nsgre-installed", "true"],
                                                ["nsgre-installed-ts", str(stamp_ms)]]]]]})
    return ops
