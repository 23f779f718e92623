"""Flow records and reconcile steps as os-ken OpenFlow 1.3 messages."""

from __future__ import annotations

from osken_apps import tables as T
from osken_apps.flows import FIELD_BITS, Flow, Group, Meter
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
    if flow.meter is not None:
        inst.append(parser.OFPInstructionMeter(flow.meter))
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
    # A delete names the group only: OVS refuses one that carries buckets
    # (OFPGMFC_INVALID_GROUP), and would fail the whole bundle with it.
    buckets = [] if command == ofp.OFPGC_DELETE else \
        [parser.OFPBucket(actions=actions(parser, b)) for b in group.buckets]
    return parser.OFPGroupMod(dp, command, ofp.OFPGT_ALL, group.group_id, buckets)


def meter_mod(dp, meter: Meter, command: int):
    ofp, parser = dp.ofproto, dp.ofproto_parser
    if command == ofp.OFPMC_DELETE:
        return parser.OFPMeterMod(dp, command, 0, meter.meter_id, [])
    return parser.OFPMeterMod(
        dp, command, ofp.OFPMF_PKTPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS, meter.meter_id,
        [parser.OFPMeterBandDrop(rate=meter.rate, burst_size=meter.burst)])


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
    if op.verb in ("add_meter", "mod_meter", "del_meter"):
        command = {"add_meter": ofp.OFPMC_ADD, "mod_meter": ofp.OFPMC_MODIFY,
                   "del_meter": ofp.OFPMC_DELETE}[op.verb]
        return meter_mod(dp, op.item, command)
    raise ValueError(f"unknown op {op.verb}")


# -- the way back: what a switch reports, as flow records ----------------------
def actions_from(acts) -> tuple:
    """os-ken action objects as flow-record action tuples."""
    out = []
    for a in acts:
        name = type(a).__name__
        if name == "OFPActionOutput":
            out.append(("output", a.port))
        elif name == "OFPActionGroup":
            out.append(("group", a.group_id))
        elif name == "OFPActionPushVlan":
            out.append(("push_vlan", a.ethertype))
        elif name == "OFPActionPopVlan":
            out.append(("pop_vlan",))
        elif name == "OFPActionSetField":
            out.append(("set_field", a.key, a.value))
        elif name == "NXActionRegMove":
            # OVS reports the fields by their NXM names (eth_src_nxm, ...)
            out.append(("move", a.src_field.removesuffix("_nxm"),
                        a.dst_field.removesuffix("_nxm")))
        else:
            out.append(("unknown", name))      # never equal to anything we want
    return tuple(out)


def flow_from_stats(stats) -> Flow:
    """An installed flow (OFPFlowStats) as the record that would install it."""
    actions, goto, metadata, meter = (), None, None, None
    for inst in stats.instructions:
        name = type(inst).__name__
        if name == "OFPInstructionMeter":
            meter = inst.meter_id
        elif name == "OFPInstructionActions":
            actions = actions_from(inst.actions)
        elif name == "OFPInstructionGotoTable":
            goto = inst.table_id
        elif name == "OFPInstructionWriteMetadata":
            metadata = (inst.metadata, inst.metadata_mask)
    return Flow.make(stats.table_id, stats.priority, dict(stats.match.items()), actions,
                     goto=goto, write_metadata=metadata, cookie=stats.cookie, meter=meter)


def group_from_desc(desc) -> Group:
    return Group(desc.group_id, tuple(actions_from(b.actions) for b in desc.buckets))


def meter_from_config(config) -> Meter:
    """An installed meter (OFPMeterConfigStats) as its record; anything but
    one drop band in packets with burst reads as a meter nsgre never sets."""
    bands = config.bands
    if len(bands) != 1 or type(bands[0]).__name__ != "OFPMeterBandDrop":
        return Meter(config.meter_id, -1, -1)
    return Meter(config.meter_id, bands[0].rate, bands[0].burst_size)


def owned_groups(body) -> list[Group]:
    """nsgre's groups in a group-description reply, as records."""
    return [group_from_desc(g) for g in body if owned_group(g.group_id)]


def owned_meters(body) -> list[Meter]:
    """nsgre's meters in a meter-config reply, as records."""
    return [meter_from_config(m) for m in body if T.owned_meter(m.meter_id)]


def owned_group(group_id: int) -> bool:
    """Group ids nsgre allocates (flood groups of local VLANs 1..4094)."""
    return (T.GROUP_FLOOD_ALL_BASE < group_id <= T.GROUP_FLOOD_ALL_BASE + 4094
            or T.GROUP_FLOOD_LOCAL_BASE < group_id <= T.GROUP_FLOOD_LOCAL_BASE + 4094)


def state_requests(dp) -> list:
    """Ask a switch for its ports, nsgre's flows (by cookie), its groups
    and its meters."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    return [
        parser.OFPPortDescStatsRequest(dp, 0),
        parser.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY,
                                   T.COOKIE_MAGIC << T.COOKIE_MAGIC_SHIFT,
                                   T.COOKIE_OWNED_MASK, parser.OFPMatch()),
        parser.OFPGroupDescStatsRequest(dp, 0),
        parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL),
    ]


def count_request(dp):
    """How many flows nsgre owns on a switch: one small reply, however many."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    return parser.OFPAggregateStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY,
                                           T.COOKIE_MAGIC << T.COOKIE_MAGIC_SHIFT,
                                           T.COOKIE_OWNED_MASK, parser.OFPMatch())
