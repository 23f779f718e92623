"""os-ken application: program each host's integration bridge from the model.

Thin plumbing around the pure parts: a switch is matched to its host by
datapath id, its ports are read, ``pipeline.compute`` says what it should
hold and ``reconcile.plan`` what to send.  Run it with

    osken-manager osken_apps/nsgre_app.py                  # embedded seed topology
    osken-manager --user-flags osken_apps/flags.py osken_apps/nsgre_app.py \\
        --nsgre-topology FILE
"""

from __future__ import annotations

import gc
import itertools
import logging
import signal
import time
from collections import Counter

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER,
                                       MAIN_DISPATCHER, set_ev_cls)
from os_ken.lib import hub
from os_ken.app.ofctl import api as ofctl_api
from os_ken.ofproto import ofproto_v1_3

from nsgre_core import pipeline, reconcile
from osken_apps import api, flags, openflow, ovsdb, unix_socket, wire
from nsgre_core.flows import Group, Meter
import topology
from topology import diff

LOG = logging.getLogger("nsgre")
#: What the controller reads from a switch (``openflow.state_requests``, in order).
STATE_PARTS = ("ports", "flows", "groups", "meters")

flags.register(cfg.CONF)
unix_socket.install()


class SwitchState(reconcile.Held):
    """What the controller knows of one connected bridge."""

    def __init__(self, datapath, host: str):
        super().__init__()
        self.datapath = datapath
        self.host = host
        self.ports: dict[str, int] = {}
        self.dirty: set[str] = set()      # networks whose ports changed, not yet synced
        self.flush_pending = False
        self.waiting = set(STATE_PARTS)               # state replies still to come

    @property
    def ready(self) -> bool:
        return not self.waiting


class NsgreApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for handler in logging.getLogger().handlers:     # os-ken logs bare messages
            if handler.formatter is None:
                handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        path = cfg.CONF.nsgre_topology or None
        self.topology = topology.load(path)
        self.switches: dict[int, SwitchState] = {}
        self.strangers: dict = {}       # connected datapaths of no host (yet): dpid -> dp
        self.piece_cache: dict = {}     # host -> pipeline.pieces cache, across reconnects
        self.prepared: dict = {}        # host -> networks computed before its switch came
        self.version = 1
        self.bundle_ids = itertools.count(1)
        # Counters for GET /metrics (Prometheus text format).
        self.flow_mods_sent: Counter = Counter()       # host -> messages
        self.switch_errors: Counter = Counter()        # host -> errors reported
        self.reconciles = 0
        self.reconcile_seconds = 0.0
        LOG.info("nsgre: topology %s: %s", self.topology.source, self.topology.summary())
        # The controller holds a large, long-lived heap (the model, every
        # switch's flow records, the caches).  With the default thresholds
        # Python's cyclic collector walks all of it again and again while a
        # sync allocates: measured, more than half of programming 8 hosts of
        # 13,000 flows.  The model is frozen out of collection once loaded,
        # and collections come every 100,000 allocations, not 700.
        gc.collect()
        gc.freeze()
        gc.set_threshold(100_000, 50, 50)
        self.audit_interval = cfg.CONF.nsgre_audit_interval
        if self.audit_interval > 0:
            hub.spawn(self._audit_loop)
        signal.signal(signal.SIGHUP, lambda *_: hub.spawn(self.reload))
        self.prepare_hosts(self.topology)
        if cfg.CONF.nsgre_api:
            hub.spawn(api.serve, self, cfg.CONF.nsgre_api)
            LOG.info("nsgre: API on %s", cfg.CONF.nsgre_api)

    def reload(self):
        """Apply the topology file again (SIGHUP)."""
        path = cfg.CONF.nsgre_topology or None
        try:
            self.apply(topology.load(path, previous=self.topology))
        except topology.TopologyError as exc:
            LOG.error("nsgre: reload refused, the topology in force stays:\n%s", exc)

    def apply_text(self, text: str, source: str) -> tuple[int, dict]:
        """Validate and apply posted YAML (the API's POST /apply)."""
        try:
            new = topology.parse(text, source, previous=self.topology)
        except topology.TopologyError as exc:
            LOG.error("nsgre: apply refused, the topology in force stays:\n%s", exc)
            return 400, {"ok": False, "problems": exc.problems}
        return 200, {"ok": True, "topology": new.summary(), "changes": self.apply(new)}

    def prepare_hosts(self, topo):
        """With --nsgre-ovsdb, prepare every host over OVSDB, each in its
        own green thread so a host whose OVSDB is down delays nobody."""
        template = cfg.CONF.nsgre_ovsdb
        if not template:
            return
        for host in topo.hosts.values():
            remote = template.format(host=host.name, underlay_ip=host.underlay_ip)
            hub.spawn(self._prepare_host, topo, host.name, remote)

    def _prepare_host(self, topo, host: str, remote: str):
        """Give the host exactly one tunnel port per peer (hosts joining and
        leaving), then, if its switch has not connected yet, compute its
        pipeline from the port numbers OVSDB gives: the switch that connects
        next finds its pieces computed and its messages packed.  One read,
        and one write only when tunnels must change."""
        try:
            ports, changed = ovsdb.tunnels_to_step(remote, ovsdb.tunnel_ports(topo, host))
        except ovsdb.OvsdbError as exc:
            LOG.warning("nsgre: %s: tunnels not updated over OVSDB: %s", host, exc)
            return
        if ports is None:
            LOG.warning("nsgre: %s has no %s yet (run nsgre prepare-host)", host, ovsdb.BRIDGE)
            return
        if changed:
            LOG.info("nsgre: %s tunnels in step over OVSDB (%s)", host, remote)
        self.prepare(topo, host, ovsdb.ofports(ports))

    #: Networks computed between two yields to the event loop while preparing.
    PREPARE_CHUNK = 100

    def prepare(self, topo, host: str, ports: dict[str, int]):
        """Compute and pack ``host``'s pieces for ``ports`` ahead of its
        switch, yielding between chunks.  A piece whose ports turn out
        different when the switch connects is simply computed again
        (``pipeline.pieces`` checks its inputs); a switch that connects
        meanwhile stops the preparation and does the rest itself."""
        started = time.monotonic()
        cache = self.piece_cache.setdefault(host, {})
        names = [n.name for n in topo.networks_on(host)]
        for i in range(0, len(names), self.PREPARE_CHUNK):
            if self.topology is not topo or any(s.host == host for s in self.switches.values()):
                return
            for piece in pipeline.pieces(topo, host, ports, names[i:i + self.PREPARE_CHUNK],
                                         cache).values():
                wire.pack_ahead(piece.flows)
            hub.sleep(0)
        self.prepared[host] = len(names)
        LOG.info("nsgre: %s prepared before its switch connected: %d networks, %d ports "
                 "from OVSDB (%.2f s)", host, len(names), len(ports), time.monotonic() - started)

    def apply(self, new) -> dict:
        """Make ``new`` (validated, allocated around the topology in force)
        the topology in force; send each switch only its delta."""
        old, self.topology = self.topology, new
        gc.freeze()                          # see __init__
        if _tunnel_plan(old) != _tunnel_plan(new):
            # Only hosts joining, leaving or moving change tunnel ports (and
            # only a host not connected yet gains from being prepared).
            self.prepare_hosts(new)
        self.version += 1
        changed = diff.changed_networks(old, new)
        touched = diff.hosts_touched(old, new, changed)
        for host in list(self.piece_cache):
            if host not in new.hosts:
                del self.piece_cache[host]
        for host, names in touched.items():       # networks a host no longer carries
            cache = self.piece_cache.get(host, {})
            for name in names:
                if name in cache and not new.carries(host, name):
                    del cache[name]
        LOG.info("nsgre: topology %s reloaded: %s; %d networks changed on %d hosts",
                 new.source, new.summary(), len(changed), len(touched))
        changes = {}
        for dpid, state in list(self.switches.items()):
            host = new.host_by_dpid(dpid)
            if host is None:
                LOG.warning("nsgre: %s left the topology; removing nsgre's flows", state.host)
                ops = reconcile.plan(state.flows.values(), state.groups.values(), (), ())
                self.send_plan(state, ops)
                changes[state.host] = len(ops)
                del self.switches[dpid]
                self.strangers[dpid] = state.datapath
            elif state.ready:
                state.host = host.name
                changes[host.name] = self.sync(state, touched.get(host.name, set()))
        for dpid, dp in list(self.strangers.items()):
            host = new.host_by_dpid(dpid)
            if host is not None:                   # a host that joined
                del self.strangers[dpid]
                self.adopt(dp, host.name)
        return changes

    def describe_topology(self) -> dict:
        t = self.topology
        return {"source": t.source, "version": self.version, "summary": t.summary(),
                "hosts": sorted(t.hosts), "networks": {n.name: n.key for n in t.networks.values()},
                "endpoints": sorted(t.endpoints)}

    def describe_switches(self) -> dict:
        return {s.host: {"datapath": f"{dpid:016x}", "ready": s.ready, "ports": s.ports,
                         "flows": len(s.flows), "groups": len(s.groups),
                         "meters": len(s.meters)}
                for dpid, s in sorted(self.switches.items())}

    def describe_fabric(self) -> dict:
        """Everything `nsgre show` prints: the model joined with what each
        connected switch reports."""
        t = self.topology
        by_host = {s.host: s for s in self.switches.values()}
        hosts = {}
        for h in t.hosts.values():
            state = by_host.get(h.name)
            hosts[h.name] = {
                "connected": state is not None, "datapath": f"{h.dpid:016x}",
                "underlay_ip": str(h.underlay_ip),
                "tunnels": {t.tunnel_port(h.name, p.name): {
                    "peer": p.name, "ofport": state.ports.get(t.tunnel_port(h.name, p.name))
                    if state else None} for p in t.peers(h.name)}}
        networks = {n.name: {"key": n.key,
                             "local_vlans": {h.name: t.local_vlan(h.name, n.name)
                                             for h in t.hosts_carrying(n.name)}}
                    for n in t.networks.values()}
        endpoints = {}
        for e in t.endpoints.values():
            state = by_host.get(e.host)
            endpoints[e.name] = {
                "host": e.host, "kind": e.kind, "port": e.port, "mac": e.mac,
                "ofport": state.ports.get(e.port) if state else None,
                "attachments": [{"network": a.network, "ip": str(a.ip), "vlan": a.vlan}
                                for a in e.attachments]}
        return {"source": t.source, "version": self.version, "tunnel": t.tunnel,
                "hosts": hosts, "networks": networks, "endpoints": endpoints}

    def fetch(self, state: "SwitchState"):
        """Fresh from the switch: nsgre's flow stats (with counters) and its
        groups.  Blocks this green thread only."""
        dp = state.datapath
        parser = dp.ofproto_parser
        _, flow_req, group_req, _ = openflow.state_requests(dp)
        flows = [f for reply in ofctl_api.send_msg(self, flow_req, parser.OFPFlowStatsReply,
                                                    reply_multi=True) for f in reply.body]
        groups = [g for reply in ofctl_api.send_msg(self, group_req, parser.OFPGroupDescStatsReply,
                                                     reply_multi=True)
                  for g in openflow.owned_groups(reply.body)]
        return flows, groups

    def fetch_meters(self, state: "SwitchState"):
        """Fresh from the switch: nsgre's meters."""
        dp = state.datapath
        request = openflow.state_requests(dp)[3]
        return [m for reply in ofctl_api.send_msg(self, request, dp.ofproto_parser
                                                  .OFPMeterConfigStatsReply, reply_multi=True)
                for m in openflow.owned_meters(reply.body)]

    def describe_flows(self) -> dict:
        """Installed nsgre flows per connected host, named and counted."""
        out = {}
        for state in sorted(self.switches.values(), key=lambda s: s.host):
            stats, _ = self.fetch(state)
            rows = []
            for st in stats:
                flow = openflow.flow_from_stats(st)
                rows.append({"table": flow.table, "priority": flow.priority,
                             "cookie": f"{flow.cookie:#x}",
                             "serves": pipeline.cookie_meaning(self.topology, flow.cookie),
                             "flow": flow.match_ofctl() or "(any)",
                             "actions": flow.actions_ofctl(),
                             "packets": st.packet_count, "bytes": st.byte_count})
            out[state.host] = sorted(rows, key=lambda r: (r["table"], -r["priority"], r["flow"]))
        return out

    def describe_groups(self) -> dict:
        """Installed nsgre groups per connected host, with their counters."""
        out = {}
        for state in sorted(self.switches.values(), key=lambda s: s.host):
            dp = state.datapath
            _, groups = self.fetch(state)
            replies = ofctl_api.send_msg(
                self, dp.ofproto_parser.OFPGroupStatsRequest(dp, 0, dp.ofproto.OFPG_ALL),
                dp.ofproto_parser.OFPGroupStatsReply, reply_multi=True)
            counters = {g.group_id: g for r in replies for g in r.body}
            out[state.host] = [
                {"group": g.to_ofctl(), "network": self._group_network(state.host, g.group_id),
                 "packets": counters[g.group_id].packet_count if g.group_id in counters else None,
                 "bytes": counters[g.group_id].byte_count if g.group_id in counters else None}
                for g in groups]
        return out

    def _group_network(self, host: str, group_id: int) -> str | None:
        vlan = group_id % 4096
        return next((n.name for n in self.topology.networks_on(host)
                     if self.topology.local_vlan(host, n.name) == vlan), None)

    def describe_desired(self) -> dict:
        """What each connected host should hold, as ovs-ofctl text."""
        out = {}
        for state in sorted(self.switches.values(), key=lambda s: s.host):
            want = pipeline.compute(self.topology, state.host, state.ports)
            out[state.host] = {"flows": [f.to_ofctl() for f in want.flows],
                               "groups": [g.to_ofctl() for g in want.groups],
                               "meters": [m.to_ofctl() for m in want.meters]}
        return out

    def describe_diff(self) -> dict:
        """Desired against installed, per connected host."""
        hosts = {}
        for state in sorted(self.switches.values(), key=lambda s: s.host):
            stats, groups = self.fetch(state)
            flows = [openflow.flow_from_stats(st) for st in stats]
            desired = pipeline.compute(self.topology, state.host, state.ports)
            have = {f.identity(): f for f in flows}
            entry = {"missing": [], "unexpected": [], "changed": []}
            for op in reconcile.plan(flows, groups, desired.flows, desired.groups,
                                     self.fetch_meters(state), desired.meters):
                item = op.item
                text = item.to_ofctl()
                if isinstance(item, Group):
                    serves = f"group {item.group_id}"
                elif isinstance(item, Meter):
                    serves = f"meter {item.meter_id}"
                else:
                    serves = pipeline.cookie_meaning(self.topology, item.cookie)
                row = {"serves": serves, "flow": text}
                if op.verb.startswith("del_"):
                    entry["unexpected"].append(row)
                elif op.verb == "add_flow" and item.identity() not in have:
                    entry["missing"].append(row)
                elif op.verb in ("add_group", "add_meter"):
                    entry["missing"].append(row)
                else:
                    entry["changed"].append(row)
            hosts[state.host] = entry
        in_sync = all(not any(e.values()) for e in hosts.values())
        missing_hosts = [h for h in self.topology.hosts if h not in hosts]
        return {"in_sync": in_sync and not missing_hosts, "hosts": hosts,
                "not_connected": missing_hosts}

    def describe_trace(self, src: str, dst: str, proto: str, vlan: int | None) -> dict:
        """The trace through the flows installed right now, and whether the
        model's flows (on the same ports) would give the same verdict."""
        from nsgre_tools import trace as trace_mod
        ports = {h: {} for h in self.topology.hosts}
        installed = {h: pipeline.HostPipeline(h, (), ()) for h in self.topology.hosts}
        for state in self.switches.values():
            stats, groups = self.fetch(state)
            ports[state.host] = dict(state.ports)
            installed[state.host] = pipeline.HostPipeline(
                state.host, tuple(openflow.flow_from_stats(st) for st in stats), tuple(groups))
        live = trace_mod.trace(self.topology, src, dst, proto, vlan, ports=ports,
                               pipelines=installed)
        model = trace_mod.trace(self.topology, src, dst, proto, vlan, ports=ports)
        result = live.to_dict()
        result["text"] = live.text()
        result["model_verdict"] = model.verdict
        result["agrees_with_model"] = live.verdict == model.verdict
        return result

    def metrics(self) -> str:
        """Prometheus text exposition of the controller's state."""
        lines = []

        def metric(name, kind, doc, samples):
            lines.extend([f"# HELP {name} {doc}", f"# TYPE {name} {kind}"])
            for labels, value in samples:
                label = ",".join(f'{k}="{v}"' for k, v in labels.items())
                lines.append(f"{name}{{{label}}} {value}" if label else f"{name} {value}")

        metric("nsgre_switches_connected", "gauge", "hosts whose bridge is connected",
               [({}, len(self.switches))])
        metric("nsgre_hosts", "gauge", "hosts in the topology in force",
               [({}, len(self.topology.hosts))])
        metric("nsgre_topology_version", "gauge", "topology applications since start",
               [({}, self.version)])
        per_table = Counter((s.host, f.table) for s in self.switches.values()
                            for f in s.flows.values())
        metric("nsgre_flows_installed", "gauge", "nsgre flows per host and table",
               [({"host": h, "table": t}, n) for (h, t), n in sorted(per_table.items())])
        metric("nsgre_flow_mods_sent_total", "counter", "flow and group mods sent per host",
               [({"host": h}, n) for h, n in sorted(self.flow_mods_sent.items())])
        metric("nsgre_prepared_networks", "gauge",
               "networks computed for a host from OVSDB before its switch connected",
               [({"host": h}, n) for h, n in sorted(self.prepared.items())])
        metric("nsgre_reconcile_runs_total", "counter", "reconciliations run",
               [({}, self.reconciles)])
        metric("nsgre_reconcile_seconds_total", "counter", "time spent reconciling",
               [({}, round(self.reconcile_seconds, 6))])
        metric("nsgre_switch_errors_total", "counter", "error messages from switches",
               [({"host": h}, n) for h, n in sorted(self.switch_errors.items())])
        return "\n".join(lines) + "\n"

    #: Flows read in full per audit interval (~30 us each in os-ken): beyond
    #: it, switches take turns.
    AUDIT_BUDGET = 20_000

    def _audit_loop(self):
        """Check every switch every interval.  Cheaply, for all: the number
        of flows in nsgre's cookie space (one aggregate reply); a flow
        deleted or forged by hand changes it (so does a group deleted: its
        flows go with it), and that switch is then read in full and repaired.
        In full, whatever its count, as many switches in turn as fit in
        ``AUDIT_BUDGET`` flows (at least one), with their ports: a flow
        modified in place, or a port event lost, is repaired within one
        interval on a fabric of up to that many flows, within
        ceil(flows / budget) intervals on a larger one."""
        turn = 0
        while True:
            hub.sleep(self.audit_interval)
            states = sorted((s for s in self.switches.values() if s.ready), key=lambda s: s.host)
            full, budget = set(), self.AUDIT_BUDGET
            for k in range(len(states)):
                state = states[(turn + k) % len(states)]
                if full and len(state.flows) > budget:
                    break
                full.add(state.host)
                budget -= len(state.flows)
            turn += len(full)
            for state in states:
                if state.host in full:
                    parts = STATE_PARTS                       # ports too: a lost event
                elif self.count_flows(state) != len(state.flows):
                    parts = ("flows", "groups")
                else:
                    continue
                if state.ready and self.switches.get(state.datapath.id) is state:
                    self.read_state(state, parts)

    def count_flows(self, state: "SwitchState") -> int | None:
        dp = state.datapath
        try:
            replies = ofctl_api.send_msg(self, openflow.count_request(dp),
                                         dp.ofproto_parser.OFPAggregateStatsReply,
                                         reply_multi=True)
        except Exception as exc:                    # the switch went away meanwhile
            LOG.debug("nsgre: %s: flow count failed: %s", state.host, exc)
            return None
        return sum(r.body.flow_count for r in replies)

    def read_state(self, state: "SwitchState", parts=None):
        parts = STATE_PARTS if parts is None else parts
        state.waiting = set(parts)
        for part in parts:
            setattr(state, part, {})
        dp = state.datapath
        for part, request in zip(STATE_PARTS, openflow.state_requests(dp)):
            if part in parts:
                dp.send_msg(request)

    # -- connection life cycle ---------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features(self, ev):
        dp = ev.msg.datapath
        host = self.topology.host_by_dpid(dp.id)
        if host is None:
            LOG.warning("nsgre: datapath %016x is not a host of the topology; leaving it alone", dp.id)
            self.strangers[dp.id] = dp
            return
        LOG.info("nsgre: %s connected (datapath %016x)", host.name, dp.id)
        self.adopt(dp, host.name)

    def adopt(self, dp, host: str):
        state = self.switches[dp.id] = SwitchState(dp, host)
        # Read what the switch holds before changing anything: a restarted
        # controller must not disturb flows that are already right.
        self.read_state(state)

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def switch_gone(self, ev):
        if self.strangers.get(ev.datapath.id) is ev.datapath:
            del self.strangers[ev.datapath.id]
        state = self.switches.get(ev.datapath.id)
        if state is not None and state.datapath is ev.datapath:
            del self.switches[ev.datapath.id]
            LOG.info("nsgre: %s disconnected", state.host)

    def _reply(self, ev, part: str, collect):
        state = self.switches.get(ev.msg.datapath.id)
        if state is None or part not in state.waiting:
            return
        collect(state, ev.msg.datapath.ofproto, ev.msg.body)
        if not (ev.msg.flags & ev.msg.datapath.ofproto.OFPMPF_REPLY_MORE):
            state.waiting.discard(part)
            if state.ready:
                self.sync(state)

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def port_desc(self, ev):
        def collect(state, ofp, body):
            state.ports.update({_name(p): p.port_no for p in body if p.port_no <= ofp.OFPP_MAX})
        self._reply(ev, "ports", collect)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def flow_stats(self, ev):
        def collect(state, ofp, body):
            state.flows.update((f.identity(), f) for f in map(openflow.flow_from_stats, body))
        self._reply(ev, "flows", collect)

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, MAIN_DISPATCHER)
    def group_desc(self, ev):
        def collect(state, ofp, body):
            state.groups.update((g.group_id, g) for g in openflow.owned_groups(body))
        self._reply(ev, "groups", collect)

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, MAIN_DISPATCHER)
    def meter_config(self, ev):
        def collect(state, ofp, body):
            state.meters.update((m.meter_id, m) for m in openflow.owned_meters(body))
        self._reply(ev, "meters", collect)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def port_status(self, ev):
        state = self.switches.get(ev.msg.datapath.id)
        if state is None:
            return
        ofp = ev.msg.datapath.ofproto
        port, name = ev.msg.desc, _name(ev.msg.desc)
        if port.port_no > ofp.OFPP_MAX:
            return
        if ev.msg.reason == ofp.OFPPR_DELETE:
            if state.ports.get(name) == port.port_no:
                del state.ports[name]
        else:
            state.ports[name] = port.port_no
        LOG.info("nsgre: %s port %s is %s", state.host, name,
                 "gone" if ev.msg.reason == ofp.OFPPR_DELETE else f"ofport {port.port_no}")
        state.dirty |= pipeline.networks_using_port(self.topology, state.host, name)
        if state.ready and not state.flush_pending:
            # Coalesce: ports come in bursts (a host booting its guests, a
            # bridge restored); one bundle a burst, sent a moment later.
            state.flush_pending = True
            hub.spawn_after(self.COALESCE_SECONDS, self._flush_ports, state)

    #: How long port events gather before their networks are synced at once.
    COALESCE_SECONDS = 0.05

    def _flush_ports(self, state: "SwitchState"):
        state.flush_pending = False
        if state.ready and state.dirty and self.switches.get(state.datapath.id) is state:
            networks, state.dirty = state.dirty, set()
            self.sync(state, networks)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def switch_error(self, ev):
        state = self.switches.get(ev.msg.datapath.id)
        self.switch_errors[state.host if state else f"{ev.msg.datapath.id:016x}"] += 1
        LOG.error("nsgre: %s rejected a message: type=%d code=%d",
                  state.host if state else f"{ev.msg.datapath.id:016x}",
                  ev.msg.type, ev.msg.code)

    # -- programming -------------------------------------------------------
    def sync(self, state: SwitchState, networks=None):
        """Send the switch the difference between what it holds and what it
        should hold; nothing at all when they agree.  With ``networks``, only
        those networks' pieces are recomputed and compared (a topology change
        or a port coming and going): the work is that of the change, and the
        audit still compares everything every interval."""
        started = time.monotonic()
        host = state.host
        cache = self.piece_cache.setdefault(host, {})
        if networks is None:
            state.dirty = set()             # a full sync covers every port event
            ops = state.resync(self.topology, host, state.ports, cache)
        else:
            ops = state.update(self.topology, host, state.ports, networks, cache)
        held = len(state.flows), len(state.groups), len(state.meters)
        self.send_plan(state, ops)           # may yield to other green threads
        self.reconciles += 1
        self.reconcile_seconds += time.monotonic() - started
        verbs = Counter(op.verb for op in ops)
        LOG.info("nsgre: %s %s: %d flows, %d groups, %d meters (%d changes sent%s)",
                 host, "programmed" if networks is None else f"{len(networks)} networks updated",
                 *held, len(ops), "".join(f", {n} {verb}" for verb, n in sorted(verbs.items())))
        return len(ops)

    def send_plan(self, state: SwitchState, ops):
        """Send a plan as one atomic, ordered OpenFlow bundle (the ONF
        extension OVS implements for OpenFlow 1.3): the switch applies all of
        it or none of it, and never forwards with half a change.  The
        bundle's messages are packed by ``wire`` and handed to the socket as
        one buffer, not built and queued one os-ken object at a time.  OVS
        cannot bundle meter-mods: new meters go just before the bundle and
        old ones just after it, on the same connection, which OVS handles
        in order (a flow never names a meter that is not there)."""
        if not ops:
            return
        self.flow_mods_sent[state.host] += len(ops)
        dp = state.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        before = [op for op in ops if op.verb in ("add_meter", "mod_meter")]
        after = [op for op in ops if op.verb == "del_meter"]
        bundled = [op for op in ops if not op.verb.endswith("_meter")]
        if LOG.isEnabledFor(logging.DEBUG):
            for op in ops:
                LOG.debug("nsgre: %s %s %s", state.host, op.verb, op.item.to_ofctl())
        data = self._plain(dp, before)
        if bundled:
            bundle = next(self.bundle_ids)
            flags = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
            opening = parser.ONFBundleCtrlMsg(dp, bundle, ofp.ONF_BCT_OPEN_REQUEST, flags, [])
            dp.set_xid(opening)
            opening.serialize()
            first = dp.xid + 1
            dp.xid = (dp.xid + len(bundled)) & ofp.MAX_XID
            adds = b"".join(wire.bundle_add(bundle, flags, op, (first + i) & ofp.MAX_XID)
                            for i, op in enumerate(bundled))
            commit = parser.ONFBundleCtrlMsg(dp, bundle, ofp.ONF_BCT_COMMIT_REQUEST, flags, [])
            dp.set_xid(commit)
            commit.serialize()
            data += bytes(opening.buf) + adds + bytes(commit.buf)
        dp.send(data + self._plain(dp, after))

    @staticmethod
    def _plain(dp, ops) -> bytes:
        """Messages outside any bundle, each with its own xid."""
        first = dp.xid + 1
        dp.xid = (dp.xid + len(ops)) & dp.ofproto.MAX_XID
        return b"".join(wire.message(op, (first + i) & dp.ofproto.MAX_XID)
                        for i, op in enumerate(ops))


def _tunnel_plan(topo) -> tuple:
    """What the tunnel ports of every host depend on."""
    return topo.tunnel, tuple((h.name, str(h.underlay_ip)) for h in topo.hosts.values())


def _name(port) -> str:
    name = port.name
    return name.decode() if isinstance(name, bytes) else name

