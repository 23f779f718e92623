"""What a switch reports, as nsgre's records: os-ken's parsed replies
(flow stats, group and meter descriptions) turned into the ``Flow``,
``Group`` and ``Meter`` records the pure core compares (reply decoding;
the only module of the core's side that reads os-ken objects).
"""

from __future__ import annotations

import base64

from nsgre_core import ids
from nsgre_core.flows import Flow, Group, Meter
from osken_apps.wire import OXM, OXM_BASIC, OXM_CLASS, output_record

#: Fields os-ken does not know (Open vSwitch's Ericsson ND fields): it
#: reports a set_field of them as ``field_N`` (N = class << 7 | field
#: number) with the value as bytes.
_UNKNOWN_OXM = {f"field_{cls << 7 | OXM[name][0]}": name
                for name, cls in OXM_CLASS.items() if cls != OXM_BASIC}


def actions_from(acts) -> tuple:
    """os-ken action objects as flow-record action tuples."""
    out = []
    for a in acts:
        name = type(a).__name__
        if name == "OFPActionOutput":
            out.append(output_record(a.port, a.max_len))
        elif name == "OFPActionGroup":
            out.append(("group", a.group_id))
        elif name == "OFPActionPushVlan":
            out.append(("push_vlan", a.ethertype))
        elif name == "OFPActionPopVlan":
            out.append(("pop_vlan",))
        elif name == "OFPActionSetField" and a.key in _UNKNOWN_OXM:
            value = a.value         # os-ken shows unknown fields' bytes in base64
            raw = base64.b64decode(value) if isinstance(value, str) else bytes(value)
            out.append(("set_field", _UNKNOWN_OXM[a.key], int.from_bytes(raw, "big")))
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
    return [group_from_desc(g) for g in body if ids.owned_group(g.group_id)]


def owned_meters(body) -> list[Meter]:
    """nsgre's meters in a meter-config reply, as records."""
    return [meter_from_config(m) for m in body if ids.owned_meter(m.meter_id)]
