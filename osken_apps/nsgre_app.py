"""os-ken application: the shim between os-ken and the controller core.

Its handlers only decode: each OpenFlow message becomes a plain event
(``osken_apps.events``) on one queue, and one green thread hands the
events, one at a time, to the controller core (``osken_apps.controller``),
which decides and sends.  SIGHUP, ``POST /apply``, OVSDB reads, timers and
audit ticks join the same queue, so the model and every switch's records
change in one place only.  Run it with

    osken-manager osken_apps/nsgre_app.py                  # embedded seed topology
    osken-manager --user-flags osken_apps/flags.py osken_apps/nsgre_app.py \\
        --nsgre-topology FILE                            # or --nsgre-db REMOTES
"""

from __future__ import annotations

import gc
import logging
import signal
import struct
import time

from eventlet import tpool
from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER,
                                       MAIN_DISPATCHER, set_ev_cls)
from os_ken.lib import hub
from os_ken.app.ofctl import api as ofctl_api
from os_ken.ofproto import ofproto_v1_3

import topology
from nsgre_core import ids
from nsgre_core.ofp import ONF_ET_ROLE_STATUS, ONF_EXPERIMENTER_ID, ROLE_STATUS
from nsgre_core import identity
from osken_apps import api, flags, guard, openflow, tls, topodb, unix_socket
from osken_apps import events as ev
from osken_apps.controller import XID_BASE, Controller
from osken_apps.hostdb import OvsdbHosts
from osken_apps.views import Views

LOG = logging.getLogger("nsgre")
#: Seconds of queued events the core handles before other green threads run.
SLICE = 0.02

flags.register(cfg.CONF)
unix_socket.install()


class NsgreApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for handler in logging.getLogger().handlers:     # os-ken logs bare messages
            if handler.formatter is None:
                handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        path = cfg.CONF.nsgre_topology or None
        database = cfg.CONF.nsgre_db or None
        credentials = None
        if cfg.CONF.nsgre_tls:
            from nsgre_core.credentials import Credentials
            from osken_apps import ovsdb_rpc
            credentials = Credentials(cfg.CONF.nsgre_tls)
            ovsdb_rpc.use(credentials)              # the database's ssl: remotes
        self.queue = hub.Queue()
        self.watch = None                 # of the topology database, when following one
        self.held: dict = {}              # shard -> generation of the lock held
        shards = {}
        if database:
            start = topodb.load(database)
            topo, shards = start.topology, start.shards
            self.watch = topodb.Watch(database, lambda t, s: self.queue.put(ev.Loaded(t, s)),
                                      start)
            hub.spawn(self.watch.run, hub.sleep)
            LOG.info("nsgre: following the topology database %s (version %d)%s", database,
                     start.version, "" if start.watched is None else
                     ": the networks of the shards it holds, and their members")
        else:
            topo = topology.load(path)
        self.core = Controller(
            topo, clock=time.monotonic, effects=self, topology_path=path,
            hostdb=OvsdbHosts(cfg.CONF.nsgre_ovsdb, self.queue.put)
            if cfg.CONF.nsgre_ovsdb else None, database=database,
            roles=bool(database), shards=shards)
        # Before os-ken's listener starts (after every app is made): the
        # guard first, the fence after it (it finds a connection by its TLS
        # socket, which the guard then wraps).
        guard.install(lambda address, why: self.queue.put(
            ev.SwitchRefused(address, None, None, why, "malformed")))
        tls.fence_datapaths()
        if credentials is not None:
            tls.install(credentials, cfg.CONF.ofp_listen_host,
                        cfg.CONF.ofp_tcp_listen_port,
                        lambda who, dpid: identity.switch_refusal(who, dpid, self.core.topology),
                        lambda address, who, dpid, why: self.queue.put(ev.SwitchRefused(
                            address, None if who is None else str(who), dpid, why,
                            "handshake" if dpid is None else "identity")))
        if database:
            # Master of a shard's switches while holding its lock (on the raft
            # leader); every other controller on the same database stands by.
            prefer = {int(n) for n in cfg.CONF.nsgre_prefer.split(",") if n.strip()}
            for shard in sorted(set(shards.values()) or {0}):
                grace = 0.0 if not prefer or shard in prefer else topodb.GRACE
                hub.spawn(topodb.hold, database, topodb.lock_name(shard),
                          lambda g, shard=shard: self._leadership(shard, g),
                          hub.sleep, grace=grace, probe=cfg.CONF.nsgre_db_probe)
            LOG.info("nsgre: shards %s: asking for %s at once, the others after %.0f s",
                     sorted(set(shards.values()) or {0}),
                     sorted(prefer) if prefer else "all", topodb.GRACE)
        # The controller holds a large, long-lived heap (the model, every
        # switch's flow records, the caches).  With the default thresholds
        # Python's cyclic collector walks all of it again and again while a
        # sync allocates: measured, more than half of programming 8 hosts of
        # 13,000 flows.  The model is frozen out of collection once loaded,
        # and collections come every 100,000 allocations, not 700.
        gc.collect()
        gc.freeze()
        gc.set_threshold(100_000, 50, 50)
        hub.spawn(self._run)
        interval = cfg.CONF.nsgre_audit_interval
        if interval > 0:
            hub.spawn(self._ticks, interval)
        signal.signal(signal.SIGHUP, lambda *_: hub.spawn(self.queue.put, ev.Reload()))
        self.core.start()
        if cfg.CONF.nsgre_api:
            address = cfg.CONF.nsgre_api
            if "/" not in address and credentials is None:
                raise SystemExit(f"nsgre: API on {address}: on TCP it serves only TLS "
                                 "(--nsgre-tls DIR)")
            hub.spawn(api.serve, Views(self.core, self), self.apply, address, self.change,
                      credentials, lambda peer, why: self.queue.put(ev.ClientRefused(peer, why)))
            LOG.info("nsgre: API on %s%s", address,
                     "" if "/" in address else " (TLS, client certificates)")

    def _leadership(self, shard: int, generation: int | None) -> None:
        """A shard's lock granted or lost.  Watching part of the fabric, a
        new owner first watches the shard's sub-fabric too, and claims its
        switches once that has come (programming them from less would
        delete their flows); a shard lost meanwhile is not claimed."""
        if generation is None:
            self.held.pop(shard, None)
        else:
            self.held[shard] = generation
        partial = self.watch is not None and self.watch.watched is not None
        if generation is None or not partial:
            self.queue.put(ev.Leadership(shard, generation))
        if not partial:
            return

        def claim():
            if self.held.get(shard) == generation:
                self.queue.put(ev.Leadership(shard, generation))
        self.watch.want(self.held, None if generation is None else claim)

    # -- the one queue -------------------------------------------------------
    def _run(self):
        """Hand events to the core in order (``Controller.handle`` survives
        whatever one of them raises), and let every other green thread run
        once the queue is empty or ``SLICE`` has gone by: a queue that is
        never empty (64 switches programmed at once) must not starve the
        database sessions, whose echo unanswered for a second costs this
        controller its locks.  Not after every event: a green thread that
        runs may be one parsing a switch's 2,000 flows (0.2 s), and 22
        switches' MASTER answers, queued together, were handled one per
        such parse (4 s for a shard taken over)."""
        while True:
            event = self.queue.get()
            until = time.monotonic() + SLICE
            while True:
                self.core.handle(event)
                if self.queue.empty() or time.monotonic() >= until:
                    break
                event = self.queue.get()
            hub.sleep(0)

    def _ticks(self, interval: float):
        while True:
            hub.sleep(interval)
            self.queue.put(ev.AuditTick())

    # -- what the core asks of the runtime (controller.Effects) -----------------
    def later(self, delay: float, event) -> None:
        hub.spawn_after(delay, self.queue.put, event)

    def io(self, job) -> None:
        hub.spawn(lambda: self.queue.put(job()))

    def compute(self, job) -> None:
        # A native thread: the hub (switches, the API, the audit) keeps
        # running while a large file is validated.
        hub.spawn(lambda: self.queue.put(tpool.execute(job)))

    def apply(self, text: bytes, source: str, wait: float | None = None) -> tuple[int, dict]:
        """POST /apply: through the queue; wait for the core's answer (with
        ``wait``, given once every host holds the change, for at most
        ``wait`` seconds)."""
        answer, done = [], hub.Event()

        def reply(status, body):
            if not answer:
                answer.append((status, body))
                done.set()
        self.queue.put(ev.Apply(text, source, reply, wait is not None))
        if not done.wait(timeout=wait):
            behind = sorted(self.core.behind())
            reply(504, {"ok": False, "behind": behind,
                        "error": f"not every host holds the change after {wait} s: "
                                 f"{', '.join(behind)} not in step"})
        return answer[0]

    def change(self, what: str, change) -> tuple[int, dict]:
        """POST /objects: through the queue; wait for the core's answer."""
        answer, done = [], hub.Event()

        def reply(status, body):
            answer.append((status, body))
            done.set()
        self.queue.put(ev.Change(what, change, reply))
        done.wait()
        return answer[0]

    # -- decoding: OpenFlow messages as events -------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features(self, msg_ev):
        dp = msg_ev.msg.datapath
        # os-ken numbers its own messages (echoes, the API's reads) from a
        # random xid; from 0, they stay below the core's (XID_BASE and up).
        dp.xid = 0
        self.queue.put(ev.SwitchUp(dp.id, dp))

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def switch_gone(self, msg_ev):
        self.queue.put(ev.SwitchDown(msg_ev.datapath.id, msg_ev.datapath))

    def _reply(self, msg, part: str, items):
        if msg.xid >= XID_BASE:          # not an on-demand read of the API's
            dp = msg.datapath
            more = bool(msg.flags & dp.ofproto.OFPMPF_REPLY_MORE)
            self.queue.put(ev.StateReply(dp.id, dp, msg.xid, part, items, more))

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def port_desc(self, msg_ev):
        msg = msg_ev.msg
        max_port = msg.datapath.ofproto.OFPP_MAX
        self._reply(msg, "ports", {_name(p): p.port_no for p in msg.body
                                   if p.port_no <= max_port})

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def flow_stats(self, msg_ev):
        if msg_ev.msg.xid >= XID_BASE:
            self._reply(msg_ev.msg, "flows", {f.identity(): f for f in
                                             map(openflow.flow_from_stats, msg_ev.msg.body)})

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, MAIN_DISPATCHER)
    def group_desc(self, msg_ev):
        if msg_ev.msg.xid >= XID_BASE:
            self._reply(msg_ev.msg, "groups", {g.group_id: g for g in
                                              openflow.owned_groups(msg_ev.msg.body)})

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, MAIN_DISPATCHER)
    def meter_config(self, msg_ev):
        if msg_ev.msg.xid >= XID_BASE:
            self._reply(msg_ev.msg, "meters", {m.meter_id: m for m in
                                              openflow.owned_meters(msg_ev.msg.body)})

    @set_ev_cls(ofp_event.EventOFPAggregateStatsReply, MAIN_DISPATCHER)
    def aggregate(self, msg_ev):
        msg = msg_ev.msg
        if msg.xid >= XID_BASE:
            self.queue.put(ev.FlowCount(msg.datapath.id, msg.datapath, msg.xid,
                                        msg.body.flow_count))

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def barrier(self, msg_ev):
        msg = msg_ev.msg
        self.queue.put(ev.BarrierReply(msg.datapath.id, msg.datapath, msg.xid))

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def port_status(self, msg_ev):
        msg = msg_ev.msg
        dp, ofp = msg.datapath, msg.datapath.ofproto
        if msg.desc.port_no > ofp.OFPP_MAX:
            return
        gone = msg.reason == ofp.OFPPR_DELETE
        self.queue.put(ev.PortChanged(dp.id, dp, _name(msg.desc),
                                      None if gone else msg.desc.port_no))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, msg_ev):
        msg = msg_ev.msg
        dp = msg.datapath
        self.queue.put(ev.PacketIn(dp.id, dp, msg.match.get("in_port"), bytes(msg.data)))

    @set_ev_cls(ofp_event.EventOFPRoleReply, MAIN_DISPATCHER)
    def role_reply(self, msg_ev):
        msg = msg_ev.msg
        self.queue.put(ev.RoleReply(msg.datapath.id, msg.datapath, msg.xid, msg.role,
                                    msg.generation_id))

    @set_ev_cls(ofp_event.EventOFPExperimenter, MAIN_DISPATCHER)
    def experimenter(self, msg_ev):
        """OVS's role-status (ONF 1911), which os-ken leaves undecoded."""
        msg = msg_ev.msg
        if msg.experimenter == ONF_EXPERIMENTER_ID and msg.exp_type == ONF_ET_ROLE_STATUS \
                and len(msg.data) >= struct.calcsize(ROLE_STATUS):
            role, _reason, generation = struct.unpack_from(ROLE_STATUS, msg.data)
            self.queue.put(ev.RoleStatus(msg.datapath.id, msg.datapath, role, generation))

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def switch_error(self, msg_ev):
        msg = msg_ev.msg
        self.queue.put(ev.SwitchError(msg.datapath.id, msg.datapath, msg.xid, msg.type,
                                      msg.code))

    # -- on-demand reads for the API (views.SwitchReader) --------------------------
    def _ask(self, switch, request, reply_cls) -> list:
        return [r for reply in ofctl_api.send_msg(self, request, reply_cls, reply_multi=True)
                for r in ([reply.body] if not isinstance(reply.body, list) else reply.body)]

    def flows_and_groups(self, switch):
        dp = switch.conn
        ofp, parser = dp.ofproto, dp.ofproto_parser
        stats = self._ask(switch, parser.OFPFlowStatsRequest(
            dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, ids.COOKIE_OWNED,
            ids.COOKIE_OWNED_MASK, parser.OFPMatch()), parser.OFPFlowStatsReply)
        groups = openflow.owned_groups(self._ask(switch, parser.OFPGroupDescStatsRequest(dp, 0),
                                                 parser.OFPGroupDescStatsReply))
        return [(openflow.flow_from_stats(s), s.packet_count, s.byte_count) for s in stats], \
            groups

    def meters(self, switch):
        dp = switch.conn
        ofp, parser = dp.ofproto, dp.ofproto_parser
        return openflow.owned_meters(self._ask(switch, parser.OFPMeterConfigStatsRequest(
            dp, 0, ofp.OFPM_ALL), parser.OFPMeterConfigStatsReply))

    def group_counters(self, switch):
        dp = switch.conn
        stats = self._ask(switch, dp.ofproto_parser.OFPGroupStatsRequest(
            dp, 0, dp.ofproto.OFPG_ALL), dp.ofproto_parser.OFPGroupStatsReply)
        return {g.group_id: (g.packet_count, g.byte_count) for g in stats}


def _name(port) -> str:
    name = port.name
    return name.decode() if isinstance(name, bytes) else name
