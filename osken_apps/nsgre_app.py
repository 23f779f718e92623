"""os-ken application: program each host's integration bridge from the model.

Thin plumbing around the pure parts: a switch is matched to its host by
datapath id, its ports are read, ``pipeline.compute`` says what it should
hold and ``reconcile.plan`` what to send.  Run it with

    osken-manager osken_apps/nsgre_app.py                  # embedded seed topology
    osken-manager --user-flags osken_apps/flags.py osken_apps/nsgre_app.py \\
        --nsgre-topology FILE
"""

from __future__ import annotations

import logging

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER,
                                       MAIN_DISPATCHER, set_ev_cls)
from os_ken.ofproto import ofproto_v1_3

from osken_apps import flags, openflow, pipeline, reconcile, unix_socket
import topology

LOG = logging.getLogger("nsgre")

flags.register(cfg.CONF)
unix_socket.install()


class SwitchState:
    """What the controller knows of one connected bridge."""

    def __init__(self, datapath, host: str):
        self.datapath = datapath
        self.host = host
        self.ports: dict[str, int] = {}
        self.flows: tuple = ()          # what we last sent and saw accepted
        self.groups: tuple = ()
        self.synced_once = False


class NsgreApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        path = cfg.CONF.nsgre_topology or None
        self.topology = topology.load(path)
        self.switches: dict[int, SwitchState] = {}
        LOG.info("nsgre: topology %s: %s", self.topology.source, self.topology.summary())

    # -- connection life cycle ---------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features(self, ev):
        dp = ev.msg.datapath
        host = self.topology.host_by_dpid(dp.id)
        if host is None:
            LOG.warning("nsgre: datapath %016x is not a host of the topology; leaving it alone", dp.id)
            return
        LOG.info("nsgre: %s connected (datapath %016x)", host.name, dp.id)
        self.switches[dp.id] = SwitchState(dp, host.name)
        dp.send_msg(dp.ofproto_parser.OFPPortDescStatsRequest(dp, 0))

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def switch_gone(self, ev):
        state = self.switches.pop(ev.datapath.id, None)
        if state is not None:
            LOG.info("nsgre: %s disconnected", state.host)

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def port_desc(self, ev):
        state = self.switches.get(ev.msg.datapath.id)
        if state is None:
            return
        ofp = ev.msg.datapath.ofproto
        for port in ev.msg.body:
            if port.port_no <= ofp.OFPP_MAX:
                state.ports[_name(port)] = port.port_no
        if not (ev.msg.flags & ofp.OFPMPF_REPLY_MORE):
            self.sync(state)

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
        self.sync(state)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def switch_error(self, ev):
        state = self.switches.get(ev.msg.datapath.id)
        LOG.error("nsgre: %s rejected a message: type=%d code=%d",
                  state.host if state else f"{ev.msg.datapath.id:016x}",
                  ev.msg.type, ev.msg.code)

    # -- programming -------------------------------------------------------
    def sync(self, state: SwitchState):
        """Send the switch the difference between what it holds and what it should."""
        desired = pipeline.compute(self.topology, state.host, state.ports)
        dp = state.datapath
        if not state.synced_once:
            # A fresh connection: we do not know what an earlier controller
            # left, so clear our own cookie space (never anyone else's).
            openflow.delete_owned(dp, [g.group_id for g in desired.groups])
            state.flows, state.groups = (), ()
        ops = reconcile.plan(state.flows, state.groups, desired.flows, desired.groups)
        for op in ops:
            dp.send_msg(openflow.message(dp, op))
        dp.send_msg(dp.ofproto_parser.OFPBarrierRequest(dp))
        state.flows, state.groups = desired.flows, desired.groups
        state.synced_once = True
        LOG.info("nsgre: %s programmed: %d flows, %d groups (%d changes sent)",
                 state.host, len(desired.flows), len(desired.groups), len(ops))


def _name(port) -> str:
    name = port.name
    return name.decode() if isinstance(name, bytes) else name

