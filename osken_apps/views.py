"""What the API shows: the controller's model and records, joined with
what the switches report right now, as JSON-ready dicts; and the metrics.

Read-only: nothing here changes the controller core's state.  Reads of
the switches (flow statistics with counters, groups, meters) go through
the ``reader`` the os-ken shim gives (``NsgreApp``), so this module does
not talk OpenFlow itself.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from nsgre_core import pipeline, reconcile
from nsgre_core.flows import Group, Meter
from nsgre_core.reconcile import Verb
from osken_apps import guard


class SwitchReader(Protocol):
    """Fresh reads of one connected switch (they block the calling green
    thread only)."""

    def flows_and_groups(self, switch) -> tuple[list, list]:
        """nsgre's flows as (Flow, packets, bytes), and its groups."""

    def meters(self, switch) -> list: ...

    def group_counters(self, switch) -> dict:
        """group id -> (packets, bytes)."""


class Views:
    """The API's answers, over a running ``Controller``."""

    def __init__(self, core, reader: SwitchReader):
        self.core = core
        self.read = reader

    def describe_topology(self) -> dict:
        t = self.core.topology
        return {"source": t.source, "version": self.core.version, "summary": t.summary(),
                "hosts": sorted(t.hosts), "networks": {n.name: n.key for n in t.networks.values()},
                "endpoints": sorted(t.endpoints)}

    def describe_switches(self) -> dict:
        return {s.host: {"datapath": f"{dpid:016x}", "ready": s.ready, "ports": s.ports,
                         "interfaces": s.ofports, "bound": self.core.bound.get(s.host, {}),
                         "flows": len(s.flows), "groups": len(s.groups),
                         "meters": len(s.meters)}
                for dpid, s in sorted(self.core.switches.items())}

    def describe_status(self) -> dict:
        """Who this controller is among several (``nsgre status``): the
        shards whose lock it holds, with their generation and hosts, and its
        role on each connected switch."""
        core = self.core
        shards: dict = {}
        for host in sorted(core.topology.hosts):
            shard = core.shards.get(host, 0)
            entry = shards.setdefault(str(shard), {"hosts": [], "generation": None})
            entry["hosts"].append(host)
            entry["generation"] = core.owned.get(shard)
        return {"database": core.database, "several": core.roles, "shards": shards,
                "holds": core.topology.summary(),
                "switches": {s.host: s.role or "master" for s in
                             sorted(core.switches.values(), key=lambda s: s.host)}}

    def describe_fabric(self) -> dict:
        """Everything `nsgre show` prints: the model joined with what each
        connected switch reports."""
        t = self.core.topology
        by_host = {s.host: s for s in self.core.switches.values()}
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
                "interface": self.core.bound.get(e.host, {}).get(e.name),
                "installed": self.core.is_installed(e.host, e.name),
                "attachments": [{"network": a.network, "ip": str(a.ip), "vlan": a.vlan}
                                for a in e.attachments]}
        return {"source": t.source, "version": self.core.version, "tunnel": t.tunnel,
                "hosts": hosts, "networks": networks, "endpoints": endpoints}

    def describe_flows(self) -> dict:
        """Installed nsgre flows per connected host, named and counted."""
        out = {}
        for state in sorted(self.core.switches.values(), key=lambda s: s.host):
            stats, _ = self.read.flows_and_groups(state)
            rows = []
            for flow, packets, octets in stats:
                rows.append({"table": flow.table, "priority": flow.priority,
                             "cookie": f"{flow.cookie:#x}",
                             "serves": pipeline.cookie_meaning(self.core.topology, flow.cookie),
                             "flow": flow.match_ofctl() or "(any)",
                             "actions": flow.actions_ofctl(),
                             "packets": packets, "bytes": octets})
            out[state.host] = sorted(rows, key=lambda r: (r["table"], -r["priority"], r["flow"]))
        return out

    def describe_groups(self) -> dict:
        """Installed nsgre groups per connected host, with their counters."""
        out = {}
        for state in sorted(self.core.switches.values(), key=lambda s: s.host):
            _, groups = self.read.flows_and_groups(state)
            counters = self.read.group_counters(state)
            out[state.host] = [
                {"group": g.to_ofctl(),
                 "network": pipeline.group_network(self.core.topology, state.host, g.group_id),
                 "packets": counters.get(g.group_id, (None, None))[0],
                 "bytes": counters.get(g.group_id, (None, None))[1]}
                for g in groups]
        return out

    def describe_desired(self) -> dict:
        """What each connected host should hold, as ovs-ofctl text."""
        out = {}
        for state in sorted(self.core.switches.values(), key=lambda s: s.host):
            want = pipeline.compute(self.core.topology, state.host, state.ports)
            out[state.host] = {"flows": [f.to_ofctl() for f in want.flows],
                               "groups": [g.to_ofctl() for g in want.groups],
                               "meters": [m.to_ofctl() for m in want.meters]}
        return out

    def describe_diff(self) -> dict:
        """Desired against installed, per connected host."""
        hosts = {}
        for state in sorted(self.core.switches.values(), key=lambda s: s.host):
            stats, groups = self.read.flows_and_groups(state)
            flows = [flow for flow, _, _ in stats]
            desired = pipeline.compute(self.core.topology, state.host, state.ports)
            have = {f.identity(): f for f in flows}
            entry = {"missing": [], "unexpected": [], "changed": []}
            for op in reconcile.plan(flows, groups, desired.flows, desired.groups,
                                     self.read.meters(state), desired.meters):
                item = op.item
                text = item.to_ofctl()
                if isinstance(item, Group):
                    serves = f"group {item.group_id}"
                elif isinstance(item, Meter):
                    serves = f"meter {item.meter_id}"
                else:
                    serves = pipeline.cookie_meaning(self.core.topology, item.cookie)
                row = {"serves": serves, "flow": text}
                if op.verb.delete:
                    entry["unexpected"].append(row)
                elif op.verb == Verb.ADD_FLOW and item.identity() not in have:
                    entry["missing"].append(row)
                elif op.verb in (Verb.ADD_GROUP, Verb.ADD_METER):
                    entry["missing"].append(row)
                else:
                    entry["changed"].append(row)
            hosts[state.host] = entry
        in_sync = all(not any(e.values()) for e in hosts.values())
        missing_hosts = [h for h in self.core.topology.hosts if h not in hosts]
        return {"in_sync": in_sync and not missing_hosts, "hosts": hosts,
                "not_connected": missing_hosts}

    def describe_trace(self, src: str, dst: str, proto: str, vlan: int | None) -> dict:
        """The trace through the flows installed right now, and whether the
        model's flows (on the same ports) would give the same verdict."""
        from nsgre_tools import trace as trace_mod     # the operator tools' trace, on live flows
        ports = {h: {} for h in self.core.topology.hosts}
        installed = {h: pipeline.HostPipeline(h, (), ()) for h in self.core.topology.hosts}
        for state in self.core.switches.values():
            stats, groups = self.read.flows_and_groups(state)
            ports[state.host] = dict(state.ports)
            installed[state.host] = pipeline.HostPipeline(
                state.host, tuple(flow for flow, _, _ in stats), tuple(groups))
        live = trace_mod.trace(self.core.topology, src, dst, proto, vlan, ports=ports,
                               pipelines=installed)
        model = trace_mod.trace(self.core.topology, src, dst, proto, vlan, ports=ports)
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
               [({}, len(self.core.switches))])
        metric("nsgre_switch_master", "gauge",
               "1 where this controller is MASTER of the host's switch (always, alone)",
               [({"host": sw.host}, int(not self.core.roles or sw.role == "master"))
                for sw in sorted(self.core.switches.values(), key=lambda sw: sw.host)])
        metric("nsgre_demotions_total", "counter",
               "times another controller took a switch from this one",
               [({"host": h}, n) for h, n in sorted(self.core.demotions.items())])
        metric("nsgre_switches_refused_total", "counter",
               "OpenFlow connections refused or closed: TLS handshake failed, a "
               "certificate that does not allow the datapath id presented, a malformed message",
               [({"identity": i, "reason": r}, n)
                for (i, r), n in sorted(self.core.switches_refused.items())])
        metric("nsgre_openflow_dropped_total", "counter",
               "messages from switches dropped before parsing: over a flood budget "
               "(packet-in, port-status), or malformed (the connection closed)",
               [({"type": str(k), "reason": r}, n) for (k, r), n in sorted(
                   guard.DROPPED.items(), key=lambda item: (str(item[0][0]), item[0][1]))])
        metric("nsgre_api_clients_refused_total", "counter",
               "API connections whose TLS handshake failed", [({}, self.core.clients_refused)])
        metric("nsgre_hosts", "gauge", "hosts in the topology in force",
               [({}, len(self.core.topology.hosts))])
        metric("nsgre_topology_version", "gauge", "topology applications since start",
               [({}, self.core.version)])
        per_table = Counter((s.host, f.table) for s in self.core.switches.values()
                            for f in s.flows.values())
        metric("nsgre_flows_installed", "gauge", "nsgre flows per host and table",
               [({"host": h, "table": t}, n) for (h, t), n in sorted(per_table.items())])
        metric("nsgre_flow_mods_sent_total", "counter", "flow and group mods sent per host",
               [({"host": h}, n) for h, n in sorted(self.core.flow_mods_sent.items())])
        metric("nsgre_prepared_networks", "gauge",
               "networks computed for a host from OVSDB before its switch connected",
               [({"host": h}, n) for h, n in sorted(self.core.prepared.items())])
        metric("nsgre_port_changes_total", "counter", "port events from switches per host",
               [({"host": h}, n) for h, n in sorted(self.core.port_changes.items())])
        metric("nsgre_port_flaps_total", "counter",
               "port events that came while the port was flapping (synced ever less often)",
               [({"host": h, "port": p}, n) for (h, p), n in sorted(self.core.port_flaps.items())])
        metric("nsgre_ports_flapping", "gauge", "ports held back as flapping right now",
               [({"host": s.host}, sum(h.flapping for h in s.holds.values()))
                for s in sorted(self.core.switches.values(), key=lambda s: s.host)])
        refused = Counter((host, r.reason) for host, rs in self.core.refused.items() for r in rs)
        metric("nsgre_interfaces_refused", "gauge",
               "interfaces claiming an endpoint that do not get it (attached-mac, duplicate)",
               [({"host": h, "reason": r}, n) for (h, r), n in sorted(refused.items())])
        metric("nsgre_endpoints_bound", "gauge", "endpoints bound to an interface per host",
               [({"host": h}, len(b)) for h, b in sorted(self.core.bound.items())])
        metric("nsgre_endpoints_installed", "gauge",
               "endpoints marked nsgre-installed per host",
               [({"host": h}, len(m)) for h, m in sorted(self.core.marked.items())])
        metric("nsgre_dhcp_messages_total", "counter",
               "DHCP messages from endpoints by outcome (answered, or why dropped)",
               [({"host": h, "outcome": o}, n) for (h, o), n in sorted(self.core.dhcp.items())])
        metric("nsgre_reconcile_runs_total", "counter", "reconciliations run",
               [({}, self.core.reconciles)])
        metric("nsgre_reconcile_seconds_total", "counter", "time spent reconciling",
               [({}, round(self.core.reconcile_seconds, 6))])
        metric("nsgre_switch_errors_total", "counter", "error messages from switches",
               [({"host": h}, n) for h, n in sorted(self.core.switch_errors.items())])
        metric("nsgre_audit_repairs_total", "counter",
               "audits that found a switch holding other than what was sent (then repaired)",
               [({"host": h}, n) for h, n in sorted(self.core.drift.items())])
        metric("nsgre_event_errors_total", "counter",
               "events whose handling raised (logged; the controller goes on)",
               [({"event": e}, n) for e, n in sorted(self.core.event_errors.items())])
        return "\n".join(lines) + "\n"
