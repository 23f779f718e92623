"""Prepare a host's Open vSwitch from the model, over OVSDB (ovs IDL).

This is the only place that writes OVSDB: the integration bridge (datapath
type, datapath id, ``fail_mode=secure``, OpenFlow 1.3, the controller),
one tunnel port per peer host with ``options:key=flow``, and endpoint ports.
Real hypervisors (``nsgre prepare-host``) and the emulation use the same
calls.  Everything is idempotent: running it again changes only what
differs, and removes only tunnel ports that nsgre created (tagged with
``external_ids:nsgre-peer``).
"""

from __future__ import annotations

import os
import time

import ovs.db.idl
import ovs.poller

from topology import Topology

SCHEMA = os.environ.get("NSGRE_OVS_SCHEMA", "/usr/share/openvswitch/vswitch.ovsschema")
BRIDGE = "br-int"
PEER_KEY = "nsgre-peer"        # external_ids key on the tunnel ports we own
HOST_KEY = "nsgre-host"        # external_ids key on the bridge we own


class OvsdbError(RuntimeError):
    pass


class Ovsdb:
    """A short-lived IDL connection to one ovsdb-server."""

    def __init__(self, remote: str, timeout: float = 10.0):
        self.remote = remote
        self.timeout = timeout
        helper = ovs.db.idl.SchemaHelper(location=SCHEMA)
        helper.register_all()
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
                raise OvsdbError(f"{self.remote}: timed out waiting to {what}")
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
            if controller is None:
                br.controller = []
            elif targets != [controller]:
                ctl = txn.insert(self.idl.tables["Controller"])
                ctl.target = controller
                br.controller = [ctl]
        self.transact(build, f"bridge {name}")

    def sync_tunnels(self, bridge, tunnels: dict[str, tuple[str, dict, str]]):
        """Make the bridge's nsgre tunnel ports exactly ``tunnels``:
        {port name: (type, options, peer host)}; each tagged with its peer.
        A port that is already right is left alone, keeping its OpenFlow
        port number and the flows that use it."""
        def build(txn):
            br = self.bridge(bridge)
            ports = list(br.ports)
            keep = []
            for port in ports:
                peer = dict(port.external_ids).get(PEER_KEY)
                if peer is None and port.name not in tunnels:
                    keep.append(port)
                    continue
                want = tunnels.get(port.name)
                iface = port.interfaces[0] if port.interfaces else None
                if want and iface is not None and iface.type == want[0] \
                        and dict(iface.options) == want[1] and peer == want[2]:
                    keep.append(port)
            kept = {p.name for p in keep}
            for name, (kind, options, peer) in sorted(tunnels.items()):
                if name not in kept:
                    port, _ = self._new_port(txn, name, kind, options, {PEER_KEY: peer})
                    keep.append(port)
            if {p.uuid for p in keep} != {p.uuid for p in ports}:
                br.verify("ports")
                br.ports = keep
        self.transact(build, f"tunnels on {bridge}")

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

    def del_bridge(self, name):
        def build(txn):
            root = self.rows("Open_vSwitch")[0]
            keep = [b for b in root.bridges if b.name != name]
            if len(keep) != len(root.bridges):
                root.verify("bridges")
                root.bridges = keep
        self.transact(build, f"remove bridge {name}")


def tunnel_ports(topo: Topology, host: str) -> dict[str, tuple[str, dict, str]]:
    """The tunnel ports ``host`` should have: one per peer, key from the flow."""
    local = str(topo.host(host).underlay_ip)
    return {
        topo.tunnel_port(host, peer.name): (
            topo.tunnel,
            {"remote_ip": str(peer.underlay_ip), "local_ip": local, "key": "flow"},
            peer.name)
        for peer in topo.peers(host)
    }


def prepare_host(topo: Topology, host: str, db: str, controller: str | None,
                 datapath_type: str = "netdev", bridge: str = BRIDGE):
    """Bring one host's OVS to what the model says: bridge and tunnels."""
    h = topo.host(host)
    with Ovsdb(db) as ovsdb:
        ovsdb.ensure_bridge(bridge, dpid=h.dpid, datapath_type=datapath_type,
                            controller=controller, host=host)
        ovsdb.sync_tunnels(bridge, tunnel_ports(topo, host))
