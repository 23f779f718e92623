"""What to send a switch to move it from one pipeline to another (pure).

The plan is ordered so that no flow ever points at a group that does not
exist yet and no group is removed while a flow still uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from osken_apps.flows import Flow, Group


@dataclass(frozen=True)
class Op:
    verb: str          # add_group | mod_group | add_flow | del_flow | del_group
    item: Flow | Group


def plan(installed_flows, installed_groups, desired_flows, desired_groups) -> list[Op]:
    have_f = {f.identity(): f for f in installed_flows}
    want_f = {f.identity(): f for f in desired_flows}
    have_g = {g.group_id: g for g in installed_groups}
    want_g = {g.group_id: g for g in desired_groups}
    ops = []
    for gid, g in sorted(want_g.items()):
        if gid not in have_g:
            ops.append(Op("add_group", g))
        elif have_g[gid] != g:
            ops.append(Op("mod_group", g))
    for ident, f in sorted(want_f.items(), key=lambda item: item[1].sort_key()):
        old = have_f.get(ident)
        if old is None or (old.actions, old.goto, old.write_metadata, old.cookie) != \
                (f.actions, f.goto, f.write_metadata, f.cookie):
            ops.append(Op("add_flow", f))
    for ident, f in sorted(have_f.items(), key=lambda item: item[1].sort_key()):
        if ident not in want_f:
            ops.append(Op("del_flow", f))
    for gid, g in sorted(have_g.items()):
        if gid not in want_g:
            ops.append(Op("del_group", g))
    return ops
