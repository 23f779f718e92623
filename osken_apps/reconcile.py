"""What to send a switch to move it from one pipeline to another (pure).

The plan is ordered so that no flow ever points at a group or meter that
does not exist yet and no group or meter is removed while a flow still
uses it.  ``Held``
is the controller's record of one bridge; ``resync`` compares all of it,
``update`` only the networks a change touches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from osken_apps import pipeline
from osken_apps.flows import Flow, Group, Meter


@dataclass(frozen=True)
class Op:
    verb: str          # add_meter | mod_meter | add_group | mod_group | add_flow | del_flow
    item: Flow | Group | Meter  # | del_group | del_meter


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
            ops.append(Op("add_meter", m))
        elif have_m[mid] != m:
            ops.append(Op("mod_meter", m))
    for gid, g in sorted(want_g.items()):
        if gid not in have_g:
            ops.append(Op("add_group", g))
        elif have_g[gid] != g:
            ops.append(Op("mod_group", g))
    # By table and priority only (stable, so the order stays the pipeline's):
    # sorting 15,000 flows by their full match text costs more than the rest.
    for ident, f in sorted(want_f.items(), key=_table_priority):
        old = have_f.get(ident)
        if old is None or (old.actions, old.goto, old.write_metadata, old.cookie, old.meter) != \
                (f.actions, f.goto, f.write_metadata, f.cookie, f.meter):
            ops.append(Op("add_flow", f))
    for ident, f in sorted(have_f.items(), key=_table_priority):
        if ident not in want_f:
            ops.append(Op("del_flow", f))
    for gid, g in sorted(have_g.items()):
        if gid not in want_g:
            ops.append(Op("del_group", g))
    for mid, m in sorted(have_m.items()):
        if mid not in want_m:
            ops.append(Op("del_meter", m))
    return ops


def apply(flows: dict, groups: dict, meters: dict, ops) -> None:
    """Update a record of a switch's flows (identity -> Flow), groups and
    meters (id -> Group, Meter) by a plan sent to it."""
    for op in ops:
        if op.verb == "add_flow":
            flows[op.item.identity()] = op.item
        elif op.verb == "del_flow":
            flows.pop(op.item.identity(), None)
        elif op.verb in ("add_group", "mod_group"):
            groups[op.item.group_id] = op.item
        elif op.verb == "del_group":
            groups.pop(op.item.group_id, None)
        elif op.verb in ("add_meter", "mod_meter"):
            meters[op.item.meter_id] = op.item
        else:
            meters.pop(op.item.meter_id, None)


@dataclass
class Held:
    """What one bridge holds, as far as the controller knows: nsgre's flows
    (identity -> Flow), groups and meters (id -> Group, Meter) as installed,
    and per network the piece of the pipeline they were made from."""
    flows: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)
    meters: dict = field(default_factory=dict)
    pieces: dict = field(default_factory=dict)

    def resync(self, topo, host: str, ports, cache=None) -> list[Op]:
        """Everything the bridge should hold against everything it holds
        (``cache``: see ``pipeline.pieces``)."""
        parts = pipeline.pieces(topo, host, ports, cache=cache)
        flows, groups = pipeline.joined(parts.values())
        ops = plan(self.flows.values(), self.groups.values(), flows + list(pipeline.base_flows()),
                   groups, self.meters.values(), pipeline.meters(topo, host, ports))
        self.pieces = parts
        apply(self.flows, self.groups, self.meters, ops)
        return ops

    def update(self, topo, host: str, ports, networks, cache=None) -> list[Op]:
        """Recompute and compare only ``networks``' pieces (both versions are
        planned in one go, so a flow that moves from one network to another,
        as when a local VLAN is reused, is modified, never lost), and the
        meters (one per endpoint port: cheap, and a changed limit touches no
        network)."""
        parts = pipeline.pieces(topo, host, ports, networks, cache)
        before = [self.pieces.pop(n) for n in networks if n in self.pieces]
        ops = plan(*pipeline.joined(before), *pipeline.joined(parts.values()),
                   self.meters.values(), pipeline.meters(topo, host, ports))
        self.pieces.update(parts)
        apply(self.flows, self.groups, self.meters, ops)
        return ops
