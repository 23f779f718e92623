"""Flow records and reconcile steps as os-ken OpenFlow 1.3 messages."""

from __future__ import annotations

from osken_apps import tables as T
from osken_apps.flows import FIELD_BITS, Flow, Group
from osken_apps.reconcile import Op


def actions(parser, acts) -> list:
    out = []
    for a in acts:
        kind = a[0]
        if kind == "output":
            out.append(parser.OFPActionOutput(a[1]))
        elif kind == "group":
            out.append(parser.OFPActionGroup(a[1]))
        elif kind == "push_vlan":
            out.append(parser.OFPActionPushVlan(a[1]))
        elif kind == "pop_vlan":
            out.append(parser.OFPActionPopVlan())
        elif kind == "set_field":
            out.append(parser.OFPActionSetField(**{a[1]: a[2]}))
        elif kind == "move":
            out.append(parser.NXActionRegMove(src_field=a[1], dst_field=a[2],
                                              n_bits=FIELD_BITS[a[1]]))
        else:
            raise ValueError(f"unknown action {a!r}")
    return out


def flow_mod(dp, flow: Flow, command: int):
    ofp, parser = dp.ofproto, dp.ofproto_parser
    inst = []
    if flow.actions:
        inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS,
                                                 actions(parser, flow.actions)))
    if flow.write_metadata is not None:
        inst.append(parser.OFPInstructionWriteMetadata(*flow.write_metadata))
    if flow.goto is not None:
        inst.append(parser.OFPInstructionGotoTable(flow.goto))
    return parser.OFPFlowMod(
        dp, cookie=flow.cookie, cookie_mask=T.COOKIE_OWNED_MASK if command != ofp.OFPFC_ADD else 0,
        table_id=flow.table, command=command, priority=flow.priority,
        out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(**flow.match_dict), instructions=inst)


def group_mod(dp, group: Group, command: int):
    ofp, parser = dp.ofproto, dp.ofproto_parser
    buckets = [parser.OFPBucket(actions=actions(parser, b)) for b in group.buckets]
    return parser.OFPGroupMod(dp, command, ofp.OFPGT_ALL, group.group_id, buckets)


def message(dp, op: Op):
    ofp = dp.ofproto
    if op.verb == "add_flow":
        return flow_mod(dp, op.item, ofp.OFPFC_ADD)
    if op.verb == "del_flow":
        return flow_mod(dp, op.item, ofp.OFPFC_DELETE_STRICT)
    if op.verb == "add_group":
        return group_mod(dp, op.item, ofp.OFPGC_ADD)
    if op.verb == "mod_group":
        return group_mod(dp, op.item, ofp.OFPGC_MODIFY)
    if op.verb == "del_group":
        return group_mod(dp, op.item, ofp.OFPGC_DELETE)
    raise ValueError(f"unknown op {op.verb}")


def delete_owned(dp, group_ids):
    """Remove every flow carrying an nsgre cookie, in all tables, and the
    given groups.  Flows of anyone else are untouched."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    dp.send_msg(parser.OFPFlowMod(
        dp, cookie=T.COOKIE_MAGIC << T.COOKIE_MAGIC_SHIFT, cookie_mask=T.COOKIE_OWNED_MASK,
        table_id=ofp.OFPTT_ALL, command=ofp.OFPFC_DELETE,
        out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY, match=parser.OFPMatch()))
    for gid in group_ids:
        dp.send_msg(parser.OFPGroupMod(dp, ofp.OFPGC_DELETE, ofp.OFPGT_ALL, gid, []))
    dp.send_msg(parser.OFPBarrierRequest(dp))
