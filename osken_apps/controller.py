"""The controller core: takes events, decides, sends bytes.

One object holds the topology in force and what every switch holds, and
only ``Controller.handle`` changes them, one event at a time, from one
queue (``osken_apps.events``): switch connects and disconnects, state
replies, port changes, errors, barriers, SIGHUP, ``POST /apply``, OVSDB
reads, timers and audit ticks.  It imports nothing of os-ken or eventlet:
it sends OpenFlow bytes packed by ``wire`` through each event's ``conn``,
asks the runtime for timers and I/O through ``effects``, and reads time
from the ``clock`` it is given, so the unit tests drive it with a fake
switch and a fake clock (``tests/unit/test_controller.py``).

Every message sent carries an xid the core records with what it carried;
a barrier after each change tells when the switch has it all.  A switch
that refuses a message is logged with that message in ``ovs-ofctl``
syntax, counted, and read again in full (so its records are the truth and
the next sync repairs whatever the refusal left undone).
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Protocol

import topology
from nsgre_core import binding, dhcp, leases, pipeline, reconcile
from nsgre_core.ofp import (MAX_XID, OFPBRC_IS_SLAVE, OFPCR_ROLE_MASTER, OFPCR_ROLE_NOCHANGE,
                            OFPCR_ROLE_SLAVE, OFPET_BAD_REQUEST, OFPET_ROLE_REQUEST_FAILED)
from nsgre_core.reconcile import Op, Verb
from osken_apps import events as ev
from osken_apps import port_hold, wire
from topology import diff, edit, render

LOG = logging.getLogger("nsgre")

#: What the controller reads from a switch, in this order.
STATE_PARTS = tuple(wire.STATE_REQUESTS)
#: Where each part read is kept on a ``Switch`` (ports as the switch names
#: them; ``Switch.ports`` is what they are bound to).
HELD_AS = {"ports": "ofports", "flows": "flows", "groups": "groups", "meters": "meters"}
#: The core's xids start here, above the few os-ken itself uses for the
#: handshake and the API's on-demand reads: a reply or an error below it is
#: not the core's.
XID_BASE = 0x10000000
#: What a switch's ``reading`` holds while this controller may not write to
#: it (several controllers: until the switch answers a MASTER claim).  Its
#: records are not trusted then, exactly as during a read of its state.
ROLE = "role"
#: What a switch's ``reading`` holds while its host's interfaces have not
#: come from OVSDB yet: a sync before them would bind guests' taps by name
#: only, and take the flows of every guest bound by ``iface-id``.
INTERFACES = "interfaces"


class HostDb(Protocol):
    """Each host's OVSDB, as the core uses it (``osken_apps.hostdb`` talks
    to the real ones; the unit tests use a plain fake)."""

    def prepare(self, topo, host: str) -> ev.HostPorts:
        """Put the host's tunnels in step; read its ports (blocking: run by
        ``Effects.io``)."""

    def watch(self, topo, host: str) -> None:
        """Stream the host's br-int interfaces as ``Interfaces`` events from
        now on, the first at once (once per host; again with a new remote
        if it moved)."""

    def unwatch(self, host: str) -> None:
        """Stop streaming the host's interfaces."""

    def mark(self, topo, host: str, marks: dict) -> ev.Marked:
        """Set (True) or remove (False) ``nsgre-installed`` on each interface
        (blocking: run by ``Effects.io``)."""


class Effects(Protocol):
    """What the core asks of the runtime around it."""

    def later(self, delay: float, event) -> None:
        """Put ``event`` on the queue after ``delay`` seconds."""

    def io(self, job: Callable[[], Any]) -> None:
        """Run ``job`` (blocking I/O) elsewhere; queue the event it returns."""

    def compute(self, job: Callable[[], Any]) -> None:
        """Run ``job`` (long CPU work) off the event loop; queue the event it
        returns."""


@dataclass(eq=False)
class Switch(reconcile.Held):
    """What the core knows of one connected bridge, besides what it holds."""
    dpid: int = 0
    host: str = ""
    conn: Any = None
    ofports: dict = field(default_factory=dict)        # interface name -> OpenFlow port
    ports: dict = field(default_factory=dict)          # logical port -> OpenFlow port (binding)
    reading: dict = field(default_factory=dict)        # part -> xid of its request
    auditing: dict = field(default_factory=dict)       # part -> xid of the audit's read
    audit_queue: list = field(default_factory=list)    # (part, slice) the audit reads next
    audit_slice: int | None = None                     # the flows' slice being read
    audit_slices: int = 1                              # slices its flows are read in
    audit_paced: bool = False                          # a round's read (not a count's)
    shadow: dict = field(default_factory=dict)         # what the audit's read got so far
    since_audit: list = field(default_factory=list)    # ops sent since it was asked for
    audit_started: float = 0.0
    audit_found: int = 0                               # differences the audit found
    counting: int | None = None                        # xid of the flow count asked
    holds: dict = field(default_factory=dict)          # port name -> PortHold
    due: set = field(default_factory=set)              # port names whose change awaits a sync
    sent: dict = field(default_factory=dict)           # xid -> what it carried, until a barrier
    synced: int = 0                                    # topology version of its last sync
    plans: int = 0                                     # plans sent on this connection
    counted_at: int = 0                                # ``plans`` when the flow count was asked
    role: str = ""                                     # several controllers: master, slave...
    role_xid: int | None = None                        # the role request it answers

    @property
    def audited(self) -> bool:
        """An audit of it is under way (a read out, or more to ask)."""
        return bool(self.auditing or self.audit_queue)

    @property
    def in_round(self) -> bool:
        """It is the audit round's switch being read now."""
        return self.audit_paced and self.audited

    @property
    def holding(self) -> bool:
        """A port change is waiting for its sync."""
        return bool(self.due)

    @property
    def ready(self) -> bool:
        """No read of its state is under way: its records are whole."""
        return not self.reading


class HostIndex(NamedTuple):
    """A host's endpoints by identity and port, and the networks each port
    touches, for one topology (``Controller._index``)."""
    topology: Any
    binding: binding.Index
    networks: dict


class Controller:
    """The topology in force, every switch's records, and the rules that
    keep the two in step."""

    #: How long a quiet port's events gather before its networks are synced.
    COALESCE_SECONDS = port_hold.GATHER
    #: Networks computed per ``PrepareChunk`` while preparing a host.
    PREPARE_CHUNK = 100
    #: Flows the audit reads back a second, in reads of about ``AUDIT_SLICE``
    #: flows spaced evenly (0: no full reads, the flow count only).  Decoding
    #: a read costs about 0.1 ms a flow: a tenth of the controller's time, and
    #: no port event waits behind more than one read of ~25 ms.
    AUDIT_RATE = 1000
    AUDIT_SLICE = 250

    def __init__(self, topo, *, clock: Callable[[], float], effects: Effects,
                 topology_path: str | None = None, hostdb: HostDb | None = None,
                 database: str | None = None, roles: bool = False,
                 shards: dict | None = None):
        """``hostdb``: the hosts' OVSDB (tunnels, interfaces' identities,
        readiness marks); None without OVSDB: endpoints are then found by
        port name and nothing is marked.  ``roles``: one of several
        controllers, master of a host's switch only while it holds the lock
        of the host's shard (``shards``: host -> shard, default 0) in the
        database (``ev.Leadership``), with the generation that came with it."""
        self.topology = topo
        self.clock = clock
        self.effects = effects
        self.topology_path = topology_path
        self.database = database              # the topology database it follows, if any
        self.hostdb = hostdb
        self.switches: dict[int, Switch] = {}
        self.strangers: dict[int, Any] = {}   # connected datapaths of no host (yet)
        self.piece_cache: dict = {}           # host -> pipeline.pieces cache, across reconnects
        self.prepared: dict = {}              # host -> networks computed before its switch came
        self.version = 1
        self.saved_version = 0             # the last version written to the topology file
        # Binding (nsgre_core.binding), per host, across reconnects.
        self.interfaces: dict = {}            # host -> {interface: external_ids} from OVSDB
        self.bound: dict = {}                 # host -> {endpoint: interface}
        self.refused: dict = {}               # host -> {Refusal}
        self.host_index: dict = {}            # host -> HostIndex of the topology in force
        self.binders: dict = {}               # host -> binding.Binder, kept up to date
        self.marked: dict = {}                # host -> {interface: (endpoint, ofport)} marked installed
        self.marking: set = set()             # hosts with a mark write under way
        # What the next check looks at, so a port event costs the ports it
        # touches, not every endpoint of the fabric (10,000: 13 ms a check).
        self.to_mark: dict = {}               # host -> endpoints whose mark may be due
        self.to_clear: dict = {}              # host -> interfaces that may carry a stale mark
        self.waiters: list = []               # (started, answer) of each apply --wait
        self.bundle_ids = itertools.count(1)
        # Several controllers (``roles``): this one writes to a switch only
        # while it holds the lock and the switch answered its MASTER claim.
        self.roles = roles
        self.shards = dict(shards or {})      # host -> shard
        self.owned: dict = {}                 # shard whose lock it holds -> generation
        self.xids = itertools.count(XID_BASE)       # one sequence for every connection
        self.audit_round: list = []           # hosts the audit's round reads next
        # Counters for the metrics.
        self.flow_mods_sent: Counter = Counter()       # host -> messages
        self.switch_errors: Counter = Counter()        # host -> errors reported
        self.drift: Counter = Counter()                # host -> audits that found it changed
        self.event_errors: Counter = Counter()         # event kind -> exceptions handling it
        self.port_changes: Counter = Counter()         # host -> port events
        self.port_flaps: Counter = Counter()           # (host, port) -> events while flapping
        self.dhcp: Counter = Counter()                 # (host, outcome) -> DHCP messages
        self.demotions: Counter = Counter()            # host -> times it was taken from us
        self.switches_refused: Counter = Counter()     # (identity, why in short) -> connections
        self.clients_refused = 0                       # API clients whose handshake failed
        self.reconciles = 0
        self.reconcile_seconds = 0.0
        self._handlers = {
            ev.SwitchUp: self._switch_up, ev.SwitchDown: self._switch_down,
            ev.SwitchRefused: self._switch_refused, ev.ClientRefused: self._client_refused,
            ev.StateReply: self._state_reply, ev.FlowCount: self._flow_count,
            ev.PortChanged: self._port_changed, ev.FlushPorts: self._flush_ports,
            ev.BarrierReply: self._barrier_reply, ev.SwitchError: self._switch_error,
            ev.Reload: self._reload, ev.Apply: self._apply_posted, ev.Validated: self._validated,
            ev.Change: self._change_posted, ev.Rendered: self._rendered, ev.Loaded: self._loaded,
            ev.HostPorts: self._host_ports, ev.PrepareChunk: self._prepare_chunk,
            ev.AuditTick: self._audit, ev.AuditNext: self._audit_continue,
            ev.Interfaces: self._interfaces, ev.Marked: self._marked,
            ev.PacketIn: self._packet_in, ev.RoleReply: self._role_reply,
            ev.RoleStatus: self._role_status, ev.Leadership: self._leadership,
        }

    def start(self) -> None:
        LOG.info("nsgre: topology %s: %s", self.topology.source, self.topology.summary())
        self._prepare_hosts(self.topology)

    def handle(self, event) -> None:
        """The one way in: every change to the model and the records.  An
        event whose handling raises is logged and counted, and the next one
        is handled as usual: nothing ends the controller's loop (a failed
        audit tick must not end the audit for the life of the process)."""
        try:
            self._handlers[type(event)](event)
        except Exception:
            self.event_errors[type(event).__name__] += 1
            LOG.exception("nsgre: handling %s failed", type(event).__name__)

    def xid(self) -> int:
        """A fresh xid: unique across connections, so nothing a replaced
        connection answers late can be taken for an answer to a new one."""
        value = next(self.xids)
        if value > MAX_XID:
            self.xids = itertools.count(XID_BASE)
            value = next(self.xids)
        return value

    def _switch(self, event) -> Switch | None:
        """The switch an event is about, if it came on its current connection."""
        switch = self.switches.get(event.dpid)
        return switch if switch is not None and switch.conn is event.conn else None

    # -- topology changes ----------------------------------------------------
    def _reload(self, _event: ev.Reload) -> None:
        if self.database:
            LOG.warning("nsgre: SIGHUP ignored: the topology comes from the database %s",
                        self.database)
            return
        path = self.topology_path
        self._validate(lambda previous: topology.load(path, previous=previous), "reload")

    def _loaded(self, event: ev.Loaded) -> None:
        """A version of the topology the database committed: applied as it
        is (its writer validated and allocated it around the one before).
        A host moved to another shard changes master."""
        moved = {h for h in event.topology.hosts
                 if event.shards.get(h, 0) != self.shards.get(h, 0)}
        self.shards = dict(event.shards)
        self.apply(event.topology)
        for switch in list(self.switches.values()):
            if self.roles and switch.host in moved:
                if switch.role == "master":
                    self._demote(switch, "its host moved to another shard")
                self._ask_role(switch)
        self._check_installed()

    def _following(self, done) -> bool:
        """A controller following a database takes changes from there only."""
        if self.database:
            done(409, {"ok": False, "error": f"this controller follows the topology database "
                       f"{self.database}: write there (--db {self.database})"})
        return bool(self.database)

    def _apply_posted(self, event: ev.Apply) -> None:
        if self._following(event.done):
            return
        self._validate(lambda previous: topology.parse(event.text, event.source,
                                                       previous=previous),
                       "apply", event.done, event.wait)

    def _change_posted(self, event: ev.Change) -> None:
        """One object changed: the topology in force with it, validated
        whole (again around any change landing meanwhile), applied, and
        written back to the controller's file so a restart keeps it."""
        if self._following(event.done):
            return
        if self.topology_path is None:
            event.done(409, {"ok": False, "error": "this controller runs the embedded seed: "
                             "no topology file to keep the change in (--topology FILE)"})
            return
        self._validate(lambda previous: edit.edited(previous, event.what, event.change),
                       event.what, event.done, save=True)

    def _validate(self, check, what: str, done=None, wait: bool = False,
                  save: bool = False) -> None:
        """Validate and allocate off the event loop: a 10,000-endpoint file
        takes a second or more, and switches are served meanwhile."""
        previous = self.topology
        LOG.info("nsgre: %s: validating off the event loop", what)

        def job():
            try:
                return ev.Validated(previous, check(previous), check, what, done, wait, save)
            except Exception as exc:                    # reported by _validated
                return ev.Validated(previous, exc, check, what, done, wait, save)
        self.effects.compute(job)

    def _validated(self, event: ev.Validated) -> None:
        if event.previous is not self.topology:
            # Another change landed meanwhile: allocate around it instead.
            self._validate(event.check, event.what, event.done, event.wait, event.save)
            return
        result = event.result
        if isinstance(result, topology.TopologyError):
            LOG.error("nsgre: %s refused, the topology in force stays:\n%s", event.what, result)
            if event.done is not None:
                event.done(400, {"ok": False, "problems": result.problems})
            return
        if isinstance(result, Exception):
            self.event_errors["Validated"] += 1
            LOG.error("nsgre: %s failed, the topology in force stays: %s: %s", event.what,
                      type(result).__name__, result)
            if event.done is not None:
                event.done(500, {"ok": False, "error": f"{type(result).__name__}: {result}"})
            return
        changes = self.apply(result)
        body = {"ok": True, "topology": result.summary(), "changes": changes}
        if event.save:
            # The switches have their part; the file is made off the loop
            # and the change answered once it is written (_rendered).
            version, what, done = self.version, event.what, event.done
            self.effects.compute(lambda: ev.Rendered(
                version, render.file_text(result).encode(), what, body, done))
            self._check_installed()
            return
        if event.done is None:
            self._check_installed()
            return
        if not event.wait:
            event.done(200, body)
        else:
            def answer(seconds, done=event.done):
                done(200, {**body, "wait_seconds": round(seconds, 3)})
            self.waiters.append((self.clock(), answer))
        self._check_installed()

    def _rendered(self, event: ev.Rendered) -> None:
        """Keep a change in the controller's file, unless a later version
        was written already (it holds this change too), and answer it."""
        path = self.topology_path
        if event.version > self.saved_version:
            self.saved_version = event.version
            path = self._save(event.data, event.what)
        if event.done is not None:
            event.done(200, {**event.body, "saved": str(path)})

    def _save(self, data: bytes, what: str) -> str:
        """Write a version of the topology (its file, made off the event
        loop) to the controller's file, whole or not at all: a temporary
        file renamed over it."""
        path = Path(self.topology_path)
        tmp = path.with_name(f".{path.name}.nsgre-tmp")
        tmp.write_bytes(f"# written by the nsgre controller after: {what}\n".encode() + data)
        os.replace(tmp, path)
        LOG.info("nsgre: %s written with the change (%s)", path, what)
        return str(path)

    def apply(self, new) -> dict:
        """Make ``new`` (validated, allocated around the topology in force)
        the topology in force; send each switch only its delta."""
        old, self.topology = self.topology, new
        old_version = self.version
        gc.freeze()                    # the new model joins the long-lived heap (see nsgre_app)
        if _tunnel_plan(old) != _tunnel_plan(new):
            # Only hosts joining, leaving or moving change tunnel ports (and
            # only a host not connected yet gains from being prepared).
            self._prepare_hosts(new)
        self.version += 1
        changed = diff.changed_networks(old, new)
        touched = diff.hosts_touched(old, new, changed)
        for host in list(self.piece_cache):
            if host not in new.hosts:
                del self.piece_cache[host]
        self._forget_interfaces(old.hosts.keys() - new.hosts.keys())
        for host, names in touched.items():       # networks a host no longer carries
            cache = self.piece_cache.get(host, {})
            for name in names:
                if name in cache and not new.carries(host, name):
                    del cache[name]
        LOG.info("nsgre: topology %s reloaded: %s; %d networks changed on %d hosts",
                 new.source, new.summary(), len(changed), len(touched))
        changes = {}
        for dpid, switch in list(self.switches.items()):
            host = new.host_by_dpid(dpid)
            if host is None:
                LOG.warning("nsgre: %s left the topology; removing nsgre's flows", switch.host)
                ops = [] if ROLE in switch.reading else reconcile.plan(
                    switch.flows.values(), switch.groups.values(), (), (),
                    switch.meters.values(), ())
                self.send_plan(switch, ops)
                changes[switch.host] = len(ops)
                del self.switches[dpid]
                self.strangers[dpid] = switch.conn
            elif switch.ready:
                before = self.host_index.get(host.name) if switch.host == host.name else None
                switch.host = host.name
                if before is None or self._index(host.name).binding is not before.binding:
                    self._rebind(switch)             # its endpoints or ports changed
                if host.name in touched or switch.synced != old_version:
                    changes[host.name] = self.sync(switch, touched.get(host.name, set()))
                else:                        # holds what the new version wants
                    switch.synced = self.version
                    changes[host.name] = 0
        for dpid, conn in list(self.strangers.items()):
            host = new.host_by_dpid(dpid)
            if host is not None:                   # a host that joined
                del self.strangers[dpid]
                self._adopt(dpid, conn, host.name)
        return changes

    # -- preparing hosts before their switches connect -------------------------
    def _prepare_hosts(self, topo, hosts=None) -> None:
        """With OVSDB, read every host's bridge (and put its tunnels in step),
        each read on its own, so a host whose OVSDB is down delays nobody;
        and watch its interfaces, whose identities bind endpoints.  One of
        several controllers prepares and watches only the hosts of the
        shards it holds (``hosts``: those of a shard just granted): the
        others' 12,000 interfaces cost a standby a second of CPU and 20 MB
        for nothing; a shard taken over waits for its hosts' interfaces
        (``INTERFACES``), a few milliseconds, before its switches are synced."""
        if self.hostdb is None:
            return
        for host in topo.hosts if hosts is None else hosts:
            if not self.roles or self.generation(host) is not None:
                self.effects.io(lambda host=host: self.hostdb.prepare(topo, host))
                self.hostdb.watch(topo, host)

    def _host_ports(self, event: ev.HostPorts) -> None:
        if event.error is not None:
            LOG.warning("nsgre: %s: tunnels not updated over OVSDB: %s", event.host, event.error)
            return
        if event.ports is None:
            LOG.warning("nsgre: %s has no br-int yet (run nsgre prepare-host)", event.host)
            return
        if event.tunnels_changed:
            LOG.info("nsgre: %s tunnels in step over OVSDB", event.host)
        self._prepare_chunk(ev.PrepareChunk(event.host, event.topology, event.ports, 0,
                                            self.clock()))

    def _prepare_chunk(self, event: ev.PrepareChunk) -> None:
        """Compute and pack a chunk of a host's pieces ahead of its switch,
        then queue the next chunk, so other events go between them.  A piece
        whose ports turn out different when the switch connects is simply
        computed again (``pipeline.pieces`` checks its inputs); a switch that
        connects meanwhile stops the preparation and does the rest itself."""
        topo, host = event.topology, event.host
        if self.topology is not topo or host not in topo.hosts or \
                any(s.host == host for s in self.switches.values()):
            return
        names = [n.name for n in topo.networks_on(host)]
        cache = self.piece_cache.setdefault(host, {})
        chunk = names[event.start:event.start + self.PREPARE_CHUNK]
        for piece in pipeline.pieces(topo, host, event.ports, chunk, cache).values():
            wire.pack_ahead(piece.flows)
        if event.start + self.PREPARE_CHUNK < len(names):
            self.effects.later(0, ev.PrepareChunk(host, topo, event.ports,
                                                  event.start + self.PREPARE_CHUNK,
                                                  event.started))
            return
        self.prepared[host] = len(names)
        LOG.info("nsgre: %s prepared before its switch connected: %d networks, %d ports "
                 "from OVSDB (%.2f s)", host, len(names), len(event.ports),
                 self.clock() - event.started)

    # -- connection life cycle ---------------------------------------------------
    def _switch_up(self, event: ev.SwitchUp) -> None:
        host = self.topology.host_by_dpid(event.dpid)
        if host is None:
            LOG.warning("nsgre: datapath %016x is not a host of the topology; leaving it alone",
                        event.dpid)
            self.strangers[event.dpid] = event.conn
            return
        LOG.info("nsgre: %s connected (datapath %016x)", host.name, event.dpid)
        self._adopt(event.dpid, event.conn, host.name)

    def _switch_refused(self, event: ev.SwitchRefused) -> None:
        """Refused before it was anyone's switch (``osken_apps.tls``): nothing
        of any host was sent to it."""
        if event.reason == "malformed":
            LOG.warning("nsgre: OpenFlow connection from %s closed: it sent %s",
                        _peer(event.address), event.why)
        else:
            claimed = "" if event.dpid is None else f" presenting datapath {event.dpid:016x}"
            LOG.warning("nsgre: OpenFlow connection from %s refused (%s%s): %s",
                        _peer(event.address), event.identity or "no nsgre identity", claimed,
                        event.why)
        self.switches_refused[event.identity or "none", event.reason] += 1

    def _client_refused(self, event: ev.ClientRefused) -> None:
        LOG.warning("nsgre: API client %s refused: TLS handshake failed: %s",
                    _peer(event.address), event.why)
        self.clients_refused += 1

    def _adopt(self, dpid: int, conn, host: str) -> None:
        switch = self.switches[dpid] = Switch(dpid=dpid, host=host, conn=conn)
        if self.roles:
            return self._ask_role(switch)
        # Read what the switch holds before changing anything: a restarted
        # controller must not disturb flows that are already right.
        self.read_state(switch, STATE_PARTS)

    # -- roles: one master among several controllers ----------------------------------
    # As ovn-northd's active/standby: the database's lock says who should be
    # master; OpenFlow roles make the switches refuse anyone else.  A new
    # OpenFlow connection is EQUAL, which may write: nothing is written on it
    # before the switch answers a MASTER claim with the claimed generation.
    def _ask_role(self, switch: Switch) -> None:
        """Claim MASTER with the generation in force, or (standing by) ask
        the switch its generation, to become SLAVE with it."""
        switch.reading = {ROLE: None}
        xid = switch.role_xid = self.xid()
        generation = self.generation(switch.host)
        if generation is not None:
            switch.role = "claiming"
            switch.conn.send(wire.role_request(OFPCR_ROLE_MASTER, generation, xid))
        else:
            switch.role = "asking"
            switch.conn.send(wire.role_request(OFPCR_ROLE_NOCHANGE, 0, xid))

    def _role_reply(self, event: ev.RoleReply) -> None:
        switch = self._switch(event)
        if switch is None or event.xid != switch.role_xid:
            return                       # answers a claim since superseded
        if switch.role == "claiming" and event.role == OFPCR_ROLE_MASTER and \
                event.generation == self.generation(switch.host):
            switch.role = "master"
            LOG.info("nsgre: %s: MASTER (generation %d)", switch.host, event.generation)
            del switch.reading[ROLE]
            self.read_state(switch, STATE_PARTS)   # what it holds now: a sync repairs, no wipe
        elif switch.role == "asking":
            switch.role, switch.role_xid = "demoting", self.xid()
            switch.conn.send(wire.role_request(OFPCR_ROLE_SLAVE, event.generation,
                                               switch.role_xid))
        elif event.role == OFPCR_ROLE_SLAVE:
            switch.role = "slave"
            LOG.info("nsgre: %s: SLAVE (generation %d)", switch.host, event.generation)

    def _role_status(self, event: ev.RoleStatus) -> None:
        """The switch made this connection SLAVE: another controller claimed
        MASTER with a newer generation."""
        switch = self._switch(event)
        if switch is not None and event.role != OFPCR_ROLE_MASTER:
            self._demote(switch, f"another controller claimed MASTER with generation "
                                 f"{event.generation}")

    def _demote(self, switch: Switch, why: str) -> None:
        """Write nothing more to the switch: its records are not trusted
        until a MASTER claim is answered and its state read again."""
        if switch.role == "master":
            self.demotions[switch.host] += 1
            LOG.warning("nsgre: %s: no longer MASTER (%s)", switch.host, why)
        in_round = switch.in_round
        switch.role, switch.reading = "slave", {ROLE: None}
        switch.auditing, switch.audit_queue, switch.shadow, switch.since_audit = {}, [], {}, []
        switch.sent, switch.due = {}, set()
        if in_round:
            self._audit_step()

    def generation(self, host: str) -> int | None:
        """The generation to claim MASTER with on ``host``'s switch (None:
        another controller holds its shard)."""
        return self.owned.get(self.shards.get(host, 0))

    def _leadership(self, event: ev.Leadership) -> None:
        shard, generation = event.shard, event.generation
        if self.owned.get(shard) == generation:
            return
        hosts = sorted(h for h in self.topology.hosts if self.shards.get(h, 0) == shard)
        if generation is not None:
            self.owned[shard] = generation
            LOG.info("nsgre: shard %d: the lock is ours: MASTER with generation %d of %s",
                     shard, generation, ", ".join(hosts) or "no host")
        else:
            self.owned.pop(shard, None)
            LOG.warning("nsgre: shard %d: the lock is lost: standing by", shard)
        for switch in self.switches.values():
            if switch.host in hosts:
                if generation is None and switch.role == "master":
                    self._demote(switch, f"the lock of shard {shard} is lost")
                self._ask_role(switch)
        if generation is not None:
            self._prepare_hosts(self.topology, hosts)
        else:
            self._forget_interfaces(hosts)       # its new master watches them now

    def _forget_interfaces(self, hosts) -> None:
        """Watch these hosts' interfaces no more; a watch begun again waits
        for their first report (``INTERFACES``)."""
        if self.hostdb is None:
            return
        for host in hosts:
            self.hostdb.unwatch(host)
            self.interfaces.pop(host, None)

    def _switch_down(self, event: ev.SwitchDown) -> None:
        if self.strangers.get(event.dpid) is event.conn:
            del self.strangers[event.dpid]
        switch = self._switch(event)
        if switch is not None:
            del self.switches[event.dpid]
            LOG.info("nsgre: %s disconnected", switch.host)
            if switch.in_round:
                self._audit_step()             # the round goes on without it

    def read_state(self, switch: Switch, parts) -> None:
        """Ask for ``parts`` of the switch's state afresh; when the last
        reply is in, the switch is synced in full.  Its records are not
        trusted meanwhile (no sync, no mark): a read supersedes an audit."""
        in_round = switch.in_round
        switch.auditing, switch.audit_queue, switch.shadow, switch.since_audit = {}, [], {}, []
        if in_round:
            self._audit_step()
        data = b""
        for part in parts:
            setattr(switch, HELD_AS[part], {})
            xid = switch.reading[part] = self.xid()
            data += wire.STATE_REQUESTS[part](xid)
        if self.hostdb is not None and switch.host not in self.interfaces:
            switch.reading[INTERFACES] = None
        switch.conn.send(data)

    def audit_read(self, switch: Switch, parts, paced: bool = False) -> None:
        """Read ``parts`` of the switch's state beside its records, which
        stay in use: port events and changes go on being synced during the
        read, and each part is compared when it is in (``_audit_reply``).
        One part at a time, the flows in slices by cookie: decoding a host's
        15,000 flows in one go held the event loop (every switch's port
        events) for 1.3-2.7 s.  ``paced``: a round's read, one part every
        so often (``AUDIT_RATE``); else one right after the other."""
        slices = 1
        while len(switch.flows) > slices * self.AUDIT_SLICE and slices < 1 << 16:
            slices *= 2
        switch.audit_slices, switch.audit_paced = slices, paced
        switch.audit_queue = [(part, piece) for part in parts for piece in
                              (range(slices) if part == "flows" else (None,))]
        switch.audit_started, switch.audit_found = self.clock(), 0
        self._audit_next(switch)

    def _audit_next(self, switch: Switch) -> None:
        part, piece = switch.audit_queue.pop(0)
        xid = self.xid()
        switch.auditing, switch.audit_slice = {part: xid}, piece
        switch.shadow, switch.since_audit = {}, []
        switch.conn.send(wire.flows_request(xid, piece, switch.audit_slices) if part == "flows"
                         else wire.STATE_REQUESTS[part](xid))

    def _state_reply(self, event: ev.StateReply) -> None:
        switch = self._switch(event)
        if switch is not None and switch.auditing.get(event.part) == event.xid:
            return self._audit_reply(switch, event)
        if switch is None or switch.reading.get(event.part) != event.xid:
            return
        getattr(switch, HELD_AS[event.part]).update(event.items)
        if event.more:
            return
        self._read_done(switch, event.part)

    def _read_done(self, switch: Switch, part: str) -> None:
        """One part of a switch's state is in; with the last, it is synced."""
        del switch.reading[part]
        if not switch.reading:
            self._rebind(switch)
            self.sync(switch)

    # -- ports ---------------------------------------------------------------
    def _port_changed(self, event: ev.PortChanged) -> None:
        switch = self._switch(event)
        if switch is None:
            return
        self.port_changes[switch.host] += 1
        if event.ofport is not None and switch.ofports.get(event.name) == event.ofport:
            # Its link went up or down: no flow depends on that (a guest's
            # tap comes up a moment after it is added; held as a change, that
            # second event made the port look like flapping and kept its
            # mark waiting 100 ms).
            return
        if event.ofport is None:
            switch.ofports.pop(event.name, None)
        else:
            switch.ofports[event.name] = event.ofport
        logical = self._rebind(switch, {event.name}) | {event.name}
        self._hold(switch, event.name, logical, "gone" if event.ofport is None
                   else f"ofport {event.ofport}")

    def _hold(self, switch: Switch, name: str, logical, what: str) -> None:
        """Hold the change of port ``name`` (touching the logical ports
        ``logical``) for its sync.  Coalesced: ports come in bursts (a host
        booting its guests, a bridge restored): one bundle a burst, sent a
        moment later; a flapping port ever less often (``port_hold``), and
        summed up in the log."""
        now = self.clock()
        hold = switch.holds.setdefault(name, port_hold.PortHold())
        by_port = self._index(switch.host).networks
        networks = set().union(*(by_port.get(port, ()) for port in logical))
        due = hold.change(now, networks)
        switch.due.add(name)
        if hold.flapping:
            self.port_flaps[switch.host, name] += 1
        else:
            LOG.info("nsgre: %s port %s is %s", switch.host, name, what)
        if due is not None:
            self.effects.later(due - now, ev.FlushPorts(switch.dpid, switch.conn))

    # -- binding interfaces to endpoints -------------------------------------------
    def _interfaces(self, event: ev.Interfaces) -> None:
        """A host's interfaces and their ``external_ids``, as OVSDB has them
        now: an identity appearing (or changing) rebinds its endpoint; a mark
        found on an interface is cleared at the next check unless it is bound
        (left by an earlier run, or by an endpoint since unbound); a mark gone
        from a bound interface (its row made again) is written again."""
        host = event.host
        if host not in self.topology.hosts or self.roles and self.generation(host) is None:
            return                  # left, or another controller's (a late report)
        old, new = self.interfaces.get(host, {}), event.interfaces
        self.interfaces[host] = new
        # the names the watch says changed, if it said so of what is held here
        names = event.changed if event.changed is not None and old is event.base else \
            old.keys() | new.keys()
        gone = {name for name in names if name not in new and name in old}
        changed = [name for name in names if name in new and old.get(name) != new[name]]
        rebind = gone | {
            name for name in changed if _identity(old.get(name)) != _identity(new[name])}
        to_clear = self.to_clear.setdefault(host, set())
        for name in changed:
            if binding.INSTALLED in new[name]:
                to_clear.add(name)
            elif binding.INSTALLED in old.get(name, {}) and host not in self.marking:
                mark = self.marked.get(host, {}).pop(name, None)
                if mark is not None:
                    self.to_mark.setdefault(host, set()).add(mark[0])
        switch = self._host_switch(host)
        if switch is not None and INTERFACES in switch.reading:
            self._read_done(switch, INTERFACES)
            return
        if switch is None or not switch.ready:
            return
        if rebind:
            for port in self._rebind(switch, rebind):
                self._hold(switch, port, {port}, "rebound")
        self._check_installed()

    def _host_switch(self, host: str) -> Switch | None:
        return next((s for s in self.switches.values() if s.host == host), None)

    def _index(self, host: str) -> HostIndex:
        """What every port event on ``host`` looks up, built once per topology."""
        index = self.host_index.get(host)
        if index is not None and index.topology is not self.topology and \
                self.topology.same_ports(index.topology, host):
            index = self.host_index[host] = index._replace(topology=self.topology)
        if index is None or index.topology is not self.topology:
            index = self.host_index[host] = HostIndex(
                self.topology, binding.index(self.topology, host),
                pipeline.port_networks(self.topology, host))
        return index

    def _rebind(self, switch: Switch, names=None) -> set[str]:
        """Bind the switch's interfaces (those ``names``; default: all) to
        endpoints again; the logical ports whose OpenFlow number changed (or
        that came or went)."""
        host = switch.host
        idx = self._index(host).binding
        binder = self.binders.get(host)
        if binder is None or binder.idx is not idx:         # another topology
            binder = self.binders[host] = binding.Binder(self.topology, host, idx,
                                                         self.bound.get(host))
            names = None
        before = binder.last
        binder.update(binder.every_name(switch.ofports) if names is None else names,
                      switch.ofports, self.interfaces.get(host, {}))
        result = binder.result()
        ports, endpoints = binder.changes()
        old, switch.ports = switch.ports, result.ports
        old_bound, self.bound[host] = self.bound.get(host, {}), result.bound
        if before is None or old is not before.ports or old_bound is not before.bound:
            # not what this binder gave last (a new switch, a new binder): all of it
            ports, endpoints = old.keys() | result.ports.keys(), old_bound.keys() | result.bound.keys()
        refused = set(result.refused)
        for refusal in sorted(refused - self.refused.get(host, set())):
            LOG.warning("nsgre: %s %s: it gets no flows", host, refusal)
        self.refused[host] = refused
        changed = {p for p in ports if old.get(p) != result.ports.get(p)}
        # Marks that may be due: an endpoint bound anew, to another
        # interface, or whose port has a new number; marks that may be
        # stale: an interface no longer bound.
        to_mark = self.to_mark.setdefault(host, set())
        by_port = self._index(host).binding.by_port
        to_mark.update(ep.name for ep in map(by_port.get, changed)
                       if ep is not None and ep.name in result.bound)
        for ep_name in endpoints:
            if old_bound.get(ep_name) != result.bound.get(ep_name):
                if ep_name in result.bound:
                    to_mark.add(ep_name)
                if ep_name in old_bound:
                    self.to_clear.setdefault(host, set()).add(old_bound[ep_name])
        return changed

    # -- readiness: nsgre-installed and apply --wait ----------------------------------
    def _in_step(self, switch: Switch | None) -> bool:
        """The switch holds everything the topology in force wants for its
        ports right now, confirmed by a barrier."""
        return switch is not None and switch.ready and not switch.sent and \
            switch.synced == self.version and not switch.holding

    def is_installed(self, host: str, endpoint: str) -> bool:
        """``nsgre-installed`` is written for the endpoint's interface."""
        iface = self.bound.get(host, {}).get(endpoint)
        return iface is not None and self.marked.get(host, {}).get(iface, (None,))[0] == endpoint

    def behind(self) -> set[str]:
        """Hosts of the topology whose switch does not hold it all yet."""
        in_step = {s.host for s in self.switches.values() if self._in_step(s)}
        return set(self.topology.hosts) - in_step

    def _check_installed(self) -> None:
        """Mark ``nsgre-installed`` on each bound endpoint's interface once
        its host and every peer carrying its networks are in step; answer
        the ``apply --wait`` whose version every host holds."""
        in_step = {s.host: self._in_step(s) for s in self.switches.values()}
        if self.waiters and all(in_step.get(h) for h in self.topology.hosts):
            for started, answer in self.waiters:
                answer(self.clock() - started)
            self.waiters = []
        if self.hostdb is None:
            return
        for switch in self.switches.values():
            host = switch.host
            if not in_step[host] or host in self.marking or \
                    not (self.to_mark.get(host) or self.to_clear.get(host)):
                continue
            bound = self.bound.get(host, {})
            marked = self.marked.setdefault(host, {})
            marks, waiting = {}, set()
            for ep_name in self.to_mark.get(host, ()):
                iface = bound.get(ep_name)
                if iface is None:
                    continue
                ofport = switch.ofports.get(iface)
                if marked.get(iface) == (ep_name, ofport):
                    continue
                ep = self.topology.endpoint(ep_name)
                if all(in_step.get(peer) for net in ep.networks
                       for peer, _ in self.topology.views[net].carrying):
                    marks[iface] = (ep_name, ofport)
                else:
                    waiting.add(ep_name)
            self.to_mark[host] = waiting
            clear = set()
            if self.to_clear.get(host):
                bound_ifaces = set(bound.values())
                interfaces = self.interfaces.get(host, {})
                clear = {iface for iface in self.to_clear[host] if iface not in bound_ifaces and
                         (iface in marked or binding.INSTALLED in interfaces.get(iface, {}))}
                self.to_clear[host] = set()
            if marks or clear:
                self._mark(host, marks, clear)

    def _mark(self, host: str, marks: dict, clear: set) -> None:
        self.marking.add(host)
        topo = self.topology
        writes = {**{iface: False for iface in clear}, **{iface: True for iface in marks}}
        for iface in clear:
            self.marked[host].pop(iface, None)
        self.marked[host].update(marks)

        def job():
            return self.hostdb.mark(topo, host, writes)
        self.effects.io(job)

    def _marked(self, event: ev.Marked) -> None:
        self.marking.discard(event.host)
        if event.error is not None:
            # Written again at the next check (a barrier, a port, the audit).
            LOG.warning("nsgre: %s: nsgre-installed not written: %s", event.host, event.error)
            for iface, value in event.marks.items():
                if value:
                    mark = self.marked.get(event.host, {}).pop(iface, None)
                    if mark is not None:
                        self.to_mark.setdefault(event.host, set()).add(mark[0])
                else:
                    self.to_clear.setdefault(event.host, set()).add(iface)
            return
        done = sorted(i for i, v in event.marks.items() if v)
        if done:
            LOG.info("nsgre: %s installed: %s", event.host, ", ".join(done))
        self._check_installed()

    def _flush_ports(self, event: ev.FlushPorts) -> None:
        """Sync the networks of every port whose change is due (a switch
        being read now is synced in full when the read is in)."""
        switch = self._switch(event)
        if switch is None:
            return
        now, networks = self.clock(), set()
        for name in sorted(switch.due):
            hold = switch.holds[name]
            changes, flapping = hold.changes, hold.flapping
            due = hold.take(now)
            if due is None:
                continue
            switch.due.discard(name)
            networks |= due
            if flapping:
                LOG.warning("nsgre: %s port %s is flapping: %d changes since its last sync; "
                            "synced every %.2f s until it settles (now %s)", switch.host, name,
                            changes, hold.delay,
                            f"ofport {switch.ofports[name]}" if name in switch.ofports else "gone")
        if switch.ready and networks:
            self.sync(switch, networks)
        elif not switch.holding:
            self._check_installed()       # a change that touched no flow

    # -- programming -----------------------------------------------------------
    def sync(self, switch: Switch, networks=None) -> int:
        """Send the switch the difference between what it holds and what it
        should hold; nothing at all when they agree.  With ``networks``, only
        those networks' pieces are recomputed and compared (a topology change
        or a port coming and going): the work is that of the change, and the
        audit still compares everything every interval."""
        started = self.clock()
        host = switch.host
        cache = self.piece_cache.setdefault(host, {})
        if networks is None:
            for hold in switch.holds.values():     # a full sync covers every port event
                hold.networks = set()
            ops = switch.resync(self.topology, host, switch.ports, cache)
        else:
            ops = switch.update(self.topology, host, switch.ports, networks, cache)
        switch.synced = self.version
        self.send_plan(switch, ops)
        if not ops:
            self._check_installed()
        self.reconciles += 1
        self.reconcile_seconds += self.clock() - started
        verbs = Counter(op.verb for op in ops)
        LOG.info("nsgre: %s %s: %d flows, %d groups, %d meters (%d changes sent%s)",
                 host, "programmed" if networks is None else f"{len(networks)} networks updated",
                 len(switch.flows), len(switch.groups), len(switch.meters), len(ops),
                 "".join(f", {n} {verb}" for verb, n in sorted(verbs.items())))
        return len(ops)

    def send_plan(self, switch: Switch, ops: list[Op]) -> None:
        """Send a plan as one atomic, ordered OpenFlow bundle (the ONF
        extension OVS implements for OpenFlow 1.3): the switch applies all of
        it or none of it, and never forwards with half a change.  OVS cannot
        bundle meter-mods: new meters go just before the bundle and old ones
        just after it, on the same connection, which OVS handles in order (a
        flow never names a meter that is not there).  A barrier closes it:
        its reply says the switch has processed everything before it."""
        if not ops:
            return
        switch.plans += 1
        if switch.auditing:
            switch.since_audit += ops
        self.flow_mods_sent[switch.host] += len(ops)
        before = [op for op in ops if op.verb in (Verb.ADD_METER, Verb.MOD_METER)]
        after = [op for op in ops if op.verb == Verb.DEL_METER]
        bundled = [op for op in ops if not op.verb.meter]
        if LOG.isEnabledFor(logging.DEBUG):
            for op in ops:
                LOG.debug("nsgre: %s %s %s", switch.host, op.verb, op.item.to_ofctl())
        data = self._plain(switch, before)
        if bundled:
            bundle = next(self.bundle_ids)
            xids = [self.xid() for _ in range(len(bundled) + 2)]
            packed = wire.bundle(bundle, bundled, xids)
            switch.sent[xids[0]] = f"bundle {bundle} open"
            switch.sent.update(zip(xids[1:-1], bundled))
            switch.sent[xids[-1]] = f"bundle {bundle} commit ({len(bundled)} messages)"
            data += packed
        data += self._plain(switch, after)
        barrier = self.xid()
        switch.sent[barrier] = "barrier"
        switch.conn.send(data + wire.barrier(barrier))

    def _plain(self, switch: Switch, ops) -> bytes:
        """Messages outside any bundle, each with its own xid."""
        data = b""
        for op in ops:
            xid = self.xid()
            switch.sent[xid] = op
            data += wire.message(op, xid)
        return data

    def _barrier_reply(self, event: ev.BarrierReply) -> None:
        """Everything sent before the barrier has been processed: forget it."""
        switch = self._switch(event)
        if switch is None or event.xid not in switch.sent:
            return
        for xid in list(switch.sent):
            del switch.sent[xid]
            if xid == event.xid:
                break
        if not switch.sent:
            self._check_installed()

    def _switch_error(self, event: ev.SwitchError) -> None:
        """A refused message: say which, count it, and read the switch again
        in full, so the next sync starts from what it really holds.  A write
        refused because this controller is SLAVE there, or a role claim
        refused as stale, means another controller is master: stand by."""
        switch = self._switch(event)
        if switch is not None and self.roles and self._role_error(switch, event):
            return
        host = switch.host if switch is not None else f"{event.dpid:016x}"
        self.switch_errors[host] += 1
        carried = switch.sent.get(event.xid) if switch is not None else None
        if isinstance(carried, Op):
            what = f"{carried.verb} {carried.item.to_ofctl()}"
        else:
            what = carried or f"xid {event.xid:#x}"
        LOG.error("nsgre: %s rejected %s: OpenFlow error type=%d code=%d", host, what,
                  event.type, event.code)
        if switch is not None and event.xid >= XID_BASE and ROLE not in switch.reading and \
                not switch.reading.keys() >= set(STATE_PARTS):
            LOG.warning("nsgre: %s is read again in full after the error", host)
            self.read_state(switch, STATE_PARTS)

    def _role_error(self, switch: Switch, event: ev.SwitchError) -> bool:
        if event.type == OFPET_BAD_REQUEST and event.code == OFPBRC_IS_SLAVE:
            self.switch_errors[switch.host] += 1
            if switch.role == "master":
                self._demote(switch, "it refused a write: this controller is SLAVE there")
            return True
        if event.type != OFPET_ROLE_REQUEST_FAILED or event.xid != switch.role_xid:
            return False
        if switch.role != "claiming":
            # A master claimed a newer generation since the switch told us
            # its own: ask it again.
            LOG.info("nsgre: %s: the SLAVE claim came after a newer MASTER's: asking again",
                     switch.host)
            self._ask_role(switch)
            return True
        LOG.warning("nsgre: %s refused the MASTER claim as stale (OpenFlow error code %d): "
                    "another controller claimed a newer generation", switch.host, event.code)
        self._demote(switch, "another controller claimed a newer generation")
        return True

    # -- DHCP, answered from the model ---------------------------------------------
    def _packet_in(self, event: ev.PacketIn) -> None:
        """A DHCP message from an endpoint port (the only thing the pipeline
        sends up, through the port's meter): answered on the port it came
        from with the endpoint's own lease, or dropped, counted and logged
        when it is not the endpoint's own."""
        switch = self._switch(event)
        if switch is None or ROLE in switch.reading:
            return                       # not ours to answer (another controller is master)
        host = switch.host
        try:
            request = dhcp.parse(event.data)
        except dhcp.DhcpError as exc:
            return self._dhcp_drop(host, "malformed", f"port {event.in_port}: {exc}")
        port = next((p for p, n in switch.ports.items() if n == event.in_port), None)
        ep = self._index(host).binding.by_port.get(port)
        if ep is None:
            return self._dhcp_drop(host, "not an endpoint",
                                   f"{dhcp.describe(request)} on port {event.in_port}")
        if request.chaddr != ep.mac or request.eth_src != ep.mac:
            return self._dhcp_drop(host, "foreign MAC", f"{dhcp.describe(request)} on "
                                   f"{ep.name}'s port (its MAC is {ep.mac})")
        guest_vlan = request.vlan
        attachment = next((a for a in ep.attachments if a.vlan == guest_vlan), None)
        lease = attachment and leases.lease(self.topology, ep, attachment)
        if lease is None:
            return self._dhcp_drop(host, "no lease", f"{dhcp.describe(request)} on "
                                   f"{ep.name}'s port: no DHCP there")
        frame = dhcp.reply(request, lease)
        if frame is None:
            self.dhcp[host, "ignored"] += 1
            return
        switch.conn.send(wire.packet_out(event.in_port, frame, self.xid()))
        self.dhcp[host, "answered"] += 1
        LOG.info("nsgre: %s %s: %s answered: %s, mtu %s", host, ep.name,
                 dhcp.describe(request), lease.address, lease.mtu)

    def _dhcp_drop(self, host: str, why: str, what: str) -> None:
        self.dhcp[host, why] += 1
        LOG.warning("nsgre: %s: DHCP dropped (%s): %s", host, why, what)

    # -- audit -------------------------------------------------------------------
    def _audit(self, _event: ev.AuditTick) -> None:
        """Check every switch.  Cheaply, for all: the number of flows in
        nsgre's cookie space (one aggregate reply); a flow deleted or forged
        by hand changes it (so does a group deleted: its flows go with it),
        and that switch is then read and repaired at once.  In full, whatever
        its count, in rounds: each switch in turn, ports, flows, groups and
        meters, at ``AUDIT_RATE`` flows a second; a new round starts at the
        first tick after the last one ended.  A flow modified in place, or a
        port event lost, is repaired within one round: within the interval
        on a small fabric, flows / ``AUDIT_RATE`` seconds on a large one."""
        states = sorted((s for s in self.switches.values() if s.ready), key=lambda s: s.host)
        now = self.clock()
        for switch in states:                  # forget ports gone long enough not to flap
            switch.holds = {name: hold for name, hold in switch.holds.items()
                            if name in switch.ofports or name in switch.due
                            or now - hold.last_sync < 2 * port_hold.MAX}
        if self.AUDIT_RATE > 0 and \
                not any(s.in_round for s in states):
            if not self.audit_round:
                self.audit_round = [s.host for s in states]
            self._audit_step()          # (also a round whose read went wrong goes on)
        for switch in states:
            if not switch.audited:
                switch.counting, switch.counted_at = self.xid(), switch.plans
                switch.conn.send(wire.count_request(switch.counting))

    def _audit_step(self) -> None:
        """The round's next switch, if any is left."""
        while self.audit_round:
            switch = self._host_switch(self.audit_round.pop(0))
            if switch is not None and switch.ready and not switch.audited:
                return self.audit_read(switch, STATE_PARTS, paced=True)   # ports too: a lost event

    def _audit_continue(self, event: ev.AuditNext) -> None:
        switch = self._switch(event)
        if switch is not None and switch.audit_paced and switch.audit_queue and \
                not switch.auditing:
            return self._audit_next(switch)
        # The round goes on, unless it went on without this switch already
        # (it disconnected, or was read again in full, meanwhile).
        if not any(s.in_round for s in self.switches.values()):
            self._audit_step()

    def _audit_reply(self, switch: Switch, event: ev.StateReply) -> None:
        """A reply to the audit.  OVS answers a request from its state when
        the request comes, in order with everything else on the connection:
        ports read are what the switch had when their reply came (port
        events before it are in it, those after it are newer); flows,
        groups and meters read are what it had before the plans sent since
        the request, which are applied to them before comparing."""
        switch.shadow.update(event.items)
        if event.more:
            return
        read, ops = switch.shadow, switch.since_audit
        switch.auditing, switch.shadow, switch.since_audit = {}, {}, []
        if event.part == "ports":
            self._audit_ports(switch, read)
        else:
            self._audit_compare(switch, event.part, read, ops)
        if not switch.audit_queue:
            LOG.info("nsgre: %s audited: %s (read in %.0f ms)", switch.host,
                     f"{switch.audit_found} differences repaired" if switch.audit_found
                     else f"{len(switch.flows)} flows as sent",
                     1000 * (self.clock() - switch.audit_started))
            self._check_installed()        # a mark whose write failed is written now
        if switch.audit_paced:
            self.effects.later(len(read) / self.AUDIT_RATE, ev.AuditNext(switch.dpid, switch.conn))
        elif switch.audit_queue:
            self._audit_next(switch)

    def _audit_compare(self, switch: Switch, part: str, read: dict, ops) -> None:
        """What the switch holds of ``part`` (of the flows, the slice read),
        with the plans sent since, against what was sent; a difference is
        taken as what it holds, and the switch synced in full."""
        slices, piece = switch.audit_slices, switch.audit_slice

        def in_slice(flows):
            return {k: f for k, f in flows.items() if f.cookie % slices == piece}
        records = getattr(switch, HELD_AS[part])
        held = in_slice(records) if part == "flows" else records
        now = {"flows": {}, "groups": {}, "meters": {}}
        sent = {"flows": {}, "groups": {}, "meters": {}}
        now[part], sent[part] = dict(read), held
        reconcile.apply(now["flows"], now["groups"], now["meters"], ops)
        now = {other: {} for other in now} | {part: now[part]}     # the part read only
        if part == "flows":
            now["flows"] = in_slice(now["flows"])
        drift = reconcile.plan(now["flows"].values(), now["groups"].values(),
                               sent["flows"].values(), sent["groups"].values(),
                               now["meters"].values(), sent["meters"].values())
        if not drift:
            return
        LOG.warning("nsgre: %s does not hold the %s that were sent (%d differences, e.g. "
                    "%s %s): repairing", switch.host, part, len(drift), drift[0].verb,
                    drift[0].item.to_ofctl())
        self.drift[switch.host] += 1
        switch.audit_found += len(drift)
        if part == "flows":
            for key in held:
                del records[key]
            records.update(now["flows"])
        else:
            setattr(switch, HELD_AS[part], now[part])
        self.sync(switch)

    def _audit_ports(self, switch: Switch, ports: dict) -> None:
        """A port event the controller never got (lost with a connection,
        or a bridge changed behind its back) is handled as if it had come."""
        lost = {name for name in ports.keys() | switch.ofports.keys()
                if ports.get(name) != switch.ofports.get(name)}
        if not lost:
            return
        switch.ofports = dict(ports)
        logical = self._rebind(switch, lost)
        for name in sorted(lost):
            self._hold(switch, name, logical | {name},
                       f"ofport {ports[name]}, found by the audit" if name in ports
                       else "gone, found by the audit")

    def _flow_count(self, event: ev.FlowCount) -> None:
        switch = self._switch(event)
        if switch is None or switch.counting != event.xid:
            return
        switch.counting = None
        # A count taken while a plan was on its way, or answered after
        # another was sent, is no measure of drift.
        settled = not switch.sent and switch.plans == switch.counted_at
        if switch.ready and not switch.audited and settled and \
                event.count != len(switch.flows):
            LOG.info("nsgre: %s holds %d nsgre flows, %d sent: reading it again",
                     switch.host, event.count, len(switch.flows))
            self.audit_read(switch, ("flows", "groups"))


def _identity(ext) -> tuple:
    """What binding reads of an interface's ``external_ids``."""
    ext = ext or {}
    return ext.get(binding.IFACE_ID), ext.get(binding.ATTACHED_MAC)


def _tunnel_plan(topo) -> tuple:
    """What the tunnel ports of every host depend on."""
    return topo.tunnel, tuple((h.name, str(h.underlay_ip)) for h in topo.hosts.values())


def _peer(address) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
