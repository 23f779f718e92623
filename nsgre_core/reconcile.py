"""What to send a switch to move it from one pipeline to another (pure).

The plan is ordered so that no flow ever points at a group or meter that
does not exist yet and no group or meter is removed while a flow still
uses it.  ``Held``
is the controller's record of one bridge; ``resync`` compares all of it,
``update`` only the networks a change touches.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from nsgre_core import ids, pipeline
from nsgre_core.flows import Flow, Group, Meter


class Verb(enum.StrEnum):
    """What one step does to one flow, group or meter (in plan order)."""
    ADD_METER = "add_meter"
    MOD_METER = "mod_meter"
    ADD_GROUP = "add_group"
    MOD_GROUP = "mod_group"
    ADD_FLOW = "add_flow"          # add or replace: OpenFlow's ADD overwrites
    DEL_FLOW = "del_flow"
    DEL_GROUP = "del_group"
    DEL_METER = "del_meter"

    @property
    def meter(self) -> bool:
        """Meter-mods: OVS cannot bundle them."""
        return self in (Verb.ADD_METER, Verb.MOD_METER, Verb.DEL_METER)

    @property
    def delete(self) -> bool:
        return self in (Verb.DEL_FLOW, Verb.DEL_GROUP, Verb.DEL_METER)


@dataclass(frozen=True)
class Op:
    verb: Verb
    item: Flow | Group | Meter


def _table_priority(item) -> tuple[int, int]:
    return item[0][0], item[0][1]


def plan(installed_flows, installed_groups, desired_flows, desired_groups,
         installed_meters=(), desired_meters=()) -> list[Op]:
    have_f = {f.identity(): f for f in installed_flows}
    want_f = {f.identity(): f for f in desired_flows}
    have_g = {g.group_id: g for g in installed_groups}
    want_g = {g.group_id: g for g in desired_groups}
    have_m = {m.meter_id: m for m in installed_meters}
    want_m = {m.meter_id: m for m in desired_meters}
    ops = []
    for mid, m in sorted(want_m.items()):
        if mid not in have_m:
            ops.append(Op(Verb.ADD_METER, m))
        elif have_m[mid] != m:
            ops.append(Op(Verb.MOD_METER, m))
    for gid, g in sorted(want_g.items()):
        if gid not in have_g:
            ops.append(Op(Verb.ADD_GROUP, g))
        elif have_g[gid] != g:
            ops.append(Op(Verb.MOD_GROUP, g))
    # By table and priority only (stable, so the order stays the pipeline's):
    # sorting 15,000 flows by their full match text costs more than the rest.
    for ident, f in sorted(want_f.items(), key=_table_priority):
        old = have_f.get(ident)
        if old is None or (old.actions, old.goto, old.write_metadata, old.cookie, old.meter) != \
                (f.actions, f.goto, f.write_metadata, f.cookie, f.meter):
            ops.append(Op(Verb.ADD_FLOW, f))
    for ident, f in sorted(have_f.items(), key=_table_priority):
        if ident not in want_f:
            ops.append(Op(Verb.DEL_FLOW, f))
    for gid, g in sorted(have_g.items()):
        if gid not in want_g:
            ops.append(Op(Verb.DEL_GROUP, g))
    for mid, m in sorted(have_m.items()):
        if mid not in want_m:
            ops.append(Op(Verb.DEL_METER, m))
    return ops


def apply(flows: dict, groups: dict, meters: dict, ops) -> None:
    """Update a record of a switch's flows (identity -> Flow), groups and
    meters (id -> Group, Meter) by a plan sent to it."""
    for op in ops:
        item = op.item
        match op.verb:
            case Verb.ADD_FLOW:
                flows[item.identity()] = item
            case Verb.DEL_FLOW:
                flows.pop(item.identity(), None)
            case Verb.ADD_GROUP | Verb.MOD_GROUP:
                groups[item.group_id] = item
            case Verb.DEL_GROUP:
                groups.pop(item.group_id, None)
            case Verb.ADD_METER | Verb.MOD_METER:
                meters[item.meter_id] = item
            case Verb.DEL_METER:
                meters.pop(item.meter_id, None)


@dataclass
class Held:
    """What one bridge holds, as far as the controller knows: nsgre's flows
    (identity -> Flow), groups and meters (id -> Group, Meter) as installed,
    and per network the piece of the pipeline they were made from."""
    flows: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)
    meters: dict = field(default_factory=dict)
    pieces: dict = field(default_factory=dict)
    meter_inputs: tuple | None = None    # (topology, ports) its meters were planned for

    def resync(self, topo, host: str, ports, cache=None) -> list[Op]:
        """Everything the bridge should hold against everything it holds
        (``cache``: see ``pipeline.pieces``)."""
        parts = pipeline.pieces(topo, host, ports, cache=cache)
        flows, groups = pipeline.joined(parts.values())
        self.meter_inputs = (topo, dict(ports))
        ops = plan(self.flows.values(), self.groups.values(), flows + list(pipeline.base_flows()),
                   groups, self.meters.values(), pipeline.meters(topo, host, ports))
        self.pieces = parts
        apply(self.flows, self.groups, self.meters, ops)
        return ops

    def update(self, topo, host: str, ports, networks, cache=None) -> list[Op]:
        """Recompute and compare only ``networks``' pieces (both versions are
        planned in one go, so a flow that moves from one network to another,
        as when a local VLAN is reused, is modified, never lost), and the
        meters that may have changed (``_meters``)."""
        parts = pipeline.pieces(topo, host, ports, networks, cache)
        before = [self.pieces.pop(n) for n in networks if n in self.pieces]
        ops = plan(*pipeline.joined(before), *pipeline.joined(parts.values()),
                   *self._meters(topo, host, ports))
        self.pieces.update(parts)
        apply(self.flows, self.groups, self.meters, ops)
        return ops

    def _meters(self, topo, host: str, ports) -> tuple:
        """The meters to compare, as (held, wanted): all of them for another
        topology (a changed limit touches no network); for the same one,
        those of the ports whose number changed since (one per endpoint port:
        planning a host's 2,500 meters on every port event cost 7 ms)."""
        last, self.meter_inputs = self.meter_inputs, (topo, dict(ports))
        if last is None or last[0] is not topo:
            return self.meters.values(), pipeline.meters(topo, host, ports)
        old = last[1]
        changed = [p for p in old.keys() | ports.keys() if old.get(p) != ports.get(p)]
        numbers = {old[p] for p in changed if p in old} | {ports[p] for p in changed if p in ports}
        wanted = pipeline.meters(topo, host, {p: n for p, n in ports.items() if n in numbers})
        held = [meter for meter in map(self.meters.get, sorted(
            ids.storm_meter(n) for n in numbers) + sorted(ids.dhcp_meter(n) for n in numbers))
            if meter is not None]
        return held, wanted
