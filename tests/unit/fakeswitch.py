"""A switch and a runtime made of plain Python, to drive the controller core.

``FakeSwitch`` is what the core sees as a connection: it records the bytes
the core sends, reads them back with ``wire.decode`` and applies them to a
table of flows, groups and meters the way OVS does (an ADD replaces a flow
of the same table, priority and match; DELETE_STRICT removes exactly it; a
bundle is applied whole at its commit, or not at all when a message in it
is refused).  Its replies, port changes and errors come back as the events
the os-ken shim would queue.  ``Harness`` runs the core's queue, its timers
(on a fake clock) and its I/O jobs.
"""

from __future__ import annotations

import collections
import itertools

from nsgre_core import pipeline
from nsgre_core.reconcile import Verb
from osken_apps import events as ev
from osken_apps import wire
from osken_apps.controller import Controller

#: The error OVS sends for a refused message inside a bundle (OFPET_BAD_REQUEST)
#: and for the bundle's commit (ONF bundle error, OFPBFC_MSG_FAILED).
REFUSED = (1, 9)
BUNDLE_FAILED = (0xFFFF, 3005)
IS_SLAVE = (1, 10)                 # OFPET_BAD_REQUEST, OFPBRC_IS_SLAVE
STALE = (11, 0)                    # OFPET_ROLE_REQUEST_FAILED, OFPRRFC_STALE
NOCHANGE, EQUAL, MASTER, SLAVE = 0, 1, 2, 3
UNDEFINED = (1 << 64) - 1          # the generation of a switch no master claimed yet


class Bridge:
    """What one OVS bridge holds, shared by its controllers' connections."""

    def __init__(self, ports):
        self.ports = dict(ports)
        self.flows: dict = {}
        self.groups: dict = {}
        self.meters: dict = {}
        self.generation: int | None = None
        self.connections: list = []


def _shared(name):
    return property(lambda self: getattr(self.bridge, name),
                    lambda self, value: setattr(self.bridge, name, value))


class FakeSwitch:
    """One bridge: its ports and what it holds, and the messages it got."""

    ports = _shared("ports")
    flows = _shared("flows")           # identity -> Flow
    groups = _shared("groups")         # id -> Group
    meters = _shared("meters")         # id -> Meter

    def __init__(self, harness, dpid: int, ports: dict[str, int], bridge: Bridge | None = None):
        self.harness = harness
        self.dpid = dpid
        self.bridge = bridge or Bridge(ports)
        self.bridge.connections.append(self)
        self.role = EQUAL              # as OVS starts every connection
        self.refused_writes = 0
        self.received: list = []       # every decoded message, in order
        self.refuse = None             # op -> True to refuse it (once per call site)
        self.bundle: list | None = None
        self.bundle_refused: list = []
        self.packets_out: list = []    # (port, frame) the controller sent out
        self.requests: list = []       # (what, (cookie, mask) or None) of each read asked

    def connection(self, harness) -> "FakeSwitch":
        """Another controller's connection to the same bridge."""
        return FakeSwitch(harness, self.dpid, {}, self.bridge)

    # -- the connection the core writes to ------------------------------------
    def send(self, data: bytes) -> None:
        for message in wire.decode(data):
            self.received.append(message)
            self._handle(message)

    def _role(self, m: wire.Decoded) -> None:
        """OVS's rules: a claim older than the generation in force is stale;
        a new MASTER makes the old one SLAVE, and says so (role-status)."""
        role, generation = m.role
        b = self.bridge
        if role in (MASTER, SLAVE):
            if b.generation is not None and (generation - b.generation) % (1 << 64) >= 1 << 63:
                return self.harness.queue_event(ev.SwitchError(self.dpid, self, m.xid, *STALE))
            b.generation = generation
            if role == MASTER:
                for other in b.connections:
                    if other is not self and other.role == MASTER:
                        other.role = SLAVE
                        other.harness.queue_event(ev.RoleStatus(self.dpid, other, SLAVE,
                                                                generation))
            self.role = role
        self.harness.queue_event(ev.RoleReply(
            self.dpid, self, m.xid, self.role,
            UNDEFINED if b.generation is None else b.generation))

    def _handle(self, m: wire.Decoded) -> None:
        if m.kind == "role":
            return self._role(m)
        if self.role == SLAVE and m.kind in ("op", "bundle_open", "bundle_commit",
                                             "packet_out"):
            self.refused_writes += 1
            if m.kind != "bundle_commit":
                self.harness.queue_event(ev.SwitchError(self.dpid, self, m.xid, *IS_SLAVE))
            return
        if m.kind == "bundle_open":
            self.bundle, self.bundle_refused = [], []
        elif m.kind == "op" and m.bundle is not None:
            if self.refuse is not None and self.refuse(m.op):
                self.bundle_refused.append(m.xid)
            self.bundle.append(m.op)
        elif m.kind == "bundle_commit":
            ops, self.bundle = self.bundle, None
            if self.bundle_refused:
                for xid in self.bundle_refused:
                    self.harness.queue_event(ev.SwitchError(self.dpid, self, xid, *REFUSED))
                self.harness.queue_event(ev.SwitchError(self.dpid, self, m.xid,
                                                        *BUNDLE_FAILED))
            else:
                for op in ops:
                    self._apply(op)
        elif m.kind == "op":
            self._apply(m.op)
        elif m.kind == "barrier":
            self.harness.queue_event(ev.BarrierReply(self.dpid, self, m.xid))
        elif m.kind == "packet_out":
            self.packets_out.append(m.packet)
        elif m.kind == "request":
            self._answer(m.request, m.xid, m.cookie)

    def _apply(self, op) -> None:
        item = op.item
        match op.verb:
            case Verb.ADD_FLOW:
                self.flows[item.identity()] = item
            case Verb.DEL_FLOW:
                self.flows.pop(item.identity(), None)
            case Verb.ADD_GROUP | Verb.MOD_GROUP:
                self.groups[item.group_id] = item
            case Verb.DEL_GROUP:
                self.groups.pop(item.group_id, None)
                # OVS deletes the flows that use a group with it.
                self.flows = {k: f for k, f in self.flows.items()
                              if ("group", item.group_id) not in f.actions}
            case Verb.ADD_METER | Verb.MOD_METER:
                self.meters[item.meter_id] = item
            case Verb.DEL_METER:
                self.meters.pop(item.meter_id, None)
                self.flows = {k: f for k, f in self.flows.items() if f.meter != item.meter_id}

    def _answer(self, what: str, xid: int, cookie=None) -> None:
        q = self.harness.queue_event
        self.requests.append((what, cookie))
        if what == "ports":
            q(ev.StateReply(self.dpid, self, xid, "ports", dict(self.ports)))
        elif what == "flows":
            # In two replies, as a switch with many flows answers; only the
            # flows whose cookie matches under the mask, as OVS selects them.
            value, mask = cookie
            items = [(k, f) for k, f in self.flows.items() if f.cookie & mask == value & mask]
            half = len(items) // 2
            q(ev.StateReply(self.dpid, self, xid, "flows", dict(items[:half]), more=True))
            q(ev.StateReply(self.dpid, self, xid, "flows", dict(items[half:])))
        elif what == "groups":
            q(ev.StateReply(self.dpid, self, xid, "groups", dict(self.groups)))
        elif what == "meters":
            q(ev.StateReply(self.dpid, self, xid, "meters", dict(self.meters)))
        elif what == "count":
            q(ev.FlowCount(self.dpid, self, xid, len(self.flows)))

    # -- what the tests look at ------------------------------------------------------
    def table(self):
        """(flows with their cookies, groups, meters) the switch holds."""
        return ({(f, f.cookie) for f in self.flows.values()}, set(self.groups.values()),
                set(self.meters.values()))

    def mods(self) -> list:
        """The flow-, group- and meter-mods received so far."""
        return [m.op for m in self.received if m.kind == "op"]

    def set_port(self, name: str, ofport: int | None) -> None:
        """A port comes (or gets a new number) or goes, as OVS reports it
        (to every controller connected)."""
        if ofport is None:
            self.ports.pop(name, None)
        else:
            self.ports[name] = ofport
        for conn in self.bridge.connections:
            conn.harness.queue_event(ev.PortChanged(self.dpid, conn, name, ofport))

    def packet_in(self, port: str, frame: bytes) -> None:
        """The pipeline sent ``frame``, arrived on ``port``, to the controller."""
        self.harness.queue_event(ev.PacketIn(self.dpid, self, self.ports[port], frame))


class FakeHostDb:
    """Each host's OVSDB as the core sees it: interfaces with their
    external_ids (changed by the tests, announced as ``Interfaces``), the
    tunnels' ports for ``prepare``, and the marks the core writes."""

    def __init__(self, ports=None):
        self.ports = ports or {}                   # host -> {name: ofport} for prepare
        self.interfaces: dict = {}                 # host -> {name: external_ids}
        self.watched: set = set()
        self.put = None                            # the harness's queue (Harness sets it)
        self.silent: set = set()                   # hosts whose watch has not answered yet
        self.reported: dict = {}                   # host -> the watch's last report
        self.writes: list = []                     # (host, {iface: bool}) in order
        self.fail = False

    def prepare(self, topo, host):
        return ev.HostPorts(host, topo, dict(self.ports.get(host, {})))

    def watch(self, topo, host):
        """Watched from now on: the host's interfaces reported at once, as
        a monitor's first answer."""
        if host not in self.watched:
            self.watched.add(host)
            if host not in self.silent:
                self.answer(host)

    def answer(self, host):
        """The watch of ``host`` reports its interfaces as they are now."""
        self.silent.discard(host)
        self.reported[host] = {n: dict(e) for n, e in self.interfaces.get(host, {}).items()}
        self.put(ev.Interfaces(host, self.reported[host]))

    def unwatch(self, host):
        self.watched.discard(host)

    def mark(self, topo, host, marks):
        if self.fail:
            return ev.Marked(host, marks, "connection refused")
        self.writes.append((host, dict(marks)))
        for iface, installed in marks.items():
            ext = self.interfaces.setdefault(host, {}).get(iface)
            if ext is None:
                continue
            ext = {k: v for k, v in ext.items() if not k.startswith("nsgre-installed")}
            if installed:
                ext.update({"nsgre-installed": "true", "nsgre-installed-ts": "1"})
            self.interfaces[host][iface] = ext
        return ev.Marked(host, marks)

    def installed(self, host) -> set:
        """The interfaces of ``host`` that carry nsgre-installed=true now."""
        return {name for name, ext in self.interfaces.get(host, {}).items()
                if ext.get("nsgre-installed") == "true"}

    def set_interface(self, harness, host, name, external_ids) -> None:
        """An interface's external_ids change (None: it is gone) and the
        watch reports the host's interfaces, and which one changed since its
        last report, as the real watch does."""
        if external_ids is None:
            self.interfaces.setdefault(host, {}).pop(name, None)
        else:
            self.interfaces.setdefault(host, {})[name] = dict(external_ids)
        base, now = self.reported.get(host), {n: dict(e) for n, e in
                                              self.interfaces[host].items()}
        self.reported[host] = now
        harness.queue_event(ev.Interfaces(host, now, frozenset({name}), base))


def desired(topo, host: str, ports):
    """What the model says ``host``'s bridge should hold, as ``table`` shows it."""
    want = pipeline.compute(topo, host, ports)
    return {(f, f.cookie) for f in want.flows}, set(want.groups), set(want.meters)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """The runtime around a ``Controller``: its queue, timers and I/O."""

    def __init__(self, topo, **kwargs):
        self.clock = Clock()
        self.events = collections.deque()
        self.timers = []                       # (due, sequence, event)
        self.sequence = itertools.count()
        if kwargs.get("hostdb") is not None:
            kwargs["hostdb"].put = self.queue_event
        self.core = Controller(topo, clock=self.clock, effects=self, **kwargs)
        self.core.start()

    # controller.Effects
    def later(self, delay, event):
        self.timers.append((self.clock.now + delay, next(self.sequence), event))

    def io(self, job):
        self.events.append(job())

    def compute(self, job):
        self.events.append(job())

    def queue_event(self, event):
        self.events.append(event)

    def run(self):
        """Handle events until the queue is empty (timers not due stay)."""
        while self.events:
            self.core.handle(self.events.popleft())

    def advance(self, seconds: float):
        """Let time pass: timers falling due fire, in order, with their events."""
        until = self.clock.now + seconds
        while True:
            self.run()
            due = sorted(t for t in self.timers if t[0] <= until)
            if not due:
                break
            self.timers.remove(due[0])
            self.clock.now = max(self.clock.now, due[0][0])
            self.events.append(due[0][2])
        self.clock.now = until

    def connect(self, switch: FakeSwitch):
        self.queue_event(ev.SwitchUp(switch.dpid, switch))
        self.run()

    def disconnect(self, switch: FakeSwitch):
        self.queue_event(ev.SwitchDown(switch.dpid, switch))
        self.run()
