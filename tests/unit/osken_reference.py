"""nsgre's records as os-ken message objects: the independent reference
the wire encoder (``osken_apps.wire``) is held equal to, byte for byte.

The controller never builds os-ken messages (about 110 us a flow-mod);
the tests do, to check the bytes it packs itself.
"""

from os_ken.ofproto import ofproto_v1_3
from os_ken.ofproto.ofproto_v1_3_parser import OFPAction

from nsgre_core import ids
from nsgre_core.flows import FIELD_BITS, Flow, Group, Meter
from nsgre_core.reconcile import Op, Verb


#: set_field actions of Open vSwitch fields os-ken does not know (the
#: Ericsson ND fields, class 0x1000), as the bytes ``ovs-ofctl ofp-print``
#: decodes to ``set_field:0x60000000->nd_reserved`` and so on (checked by
#: hand with OVS 3.1; test_wire holds them to OVS's encoding).
ERICSSON_SET_FIELD = {
    "nd_reserved": lambda v: bytes.fromhex("0019001010000204") + v.to_bytes(4, "big") + bytes(4),
    "nd_options_type": lambda v: bytes.fromhex("0019001010000401") + bytes([v]) + bytes(7),
}


class RawAction(OFPAction):
    """An action os-ken cannot build, as its bytes (os-ken's instruction
    serialises each action by calling ``serialize`` and reading ``len``)."""
    cls_action_type, cls_action_len = 25, 16      # OFPAT_SET_FIELD

    def __init__(self, data: bytes):
        super().__init__()
        self.data, self.len = data, len(data)

    def serialize(self, buf, offset):
        buf[offset:offset + self.len] = self.data


def actions(parser, acts) -> list:
    out = []
    for a in acts:
        kind = a[0]
        if kind == "output" and a[1] == ofproto_v1_3.OFPP_CONTROLLER:     # the whole frame
            out.append(parser.OFPActionOutput(
                a[1], a[2] if len(a) > 2 else ofproto_v1_3.OFPCML_NO_BUFFER))
        elif kind == "output":
            out.append(parser.OFPActionOutput(a[1]))
        elif kind == "group":
            out.append(parser.OFPActionGroup(a[1]))
        elif kind == "push_vlan":
            out.append(parser.OFPActionPushVlan(a[1]))
        elif kind == "pop_vlan":
            out.append(parser.OFPActionPopVlan())
        elif kind == "set_field" and a[1] in ERICSSON_SET_FIELD:
            out.append(RawAction(ERICSSON_SET_FIELD[a[1]](a[2])))
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
        dp, cookie=flow.cookie, cookie_mask=ids.COOKIE_OWNED_MASK if command != ofp.OFPFC_ADD else 0,
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


