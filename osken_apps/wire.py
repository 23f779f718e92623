"""Flow and group records straight to OpenFlow 1.3 bytes, for bulk sends.

os-ken builds a tree of Python objects per message and serialises it
field by field: about 110 us a flow-mod, which is most of the time a large
bridge takes to program.  The records here use a small, fixed vocabulary
(the match fields and actions of ``flows``), so they are packed directly
with ``struct``, the way ovs-ofctl does it in C.  ``tests/unit/
test_wire.py`` holds the bytes equal to os-ken's own serialisation for
every flow and group of several fabrics, so the two can never drift.

Field and action encodings are cached: a fabric repeats the same MACs,
addresses, keys and ports across thousands of flows.

Everything the controller core sends goes through here: flow-, group-
and meter-mods (inside ONF bundles, meter-mods around them), the state
requests and barriers; os-ken only frames the connection and parses
replies.  ``decode`` reads the same bytes back into records, for the
unit tests' fake switch and for logging what a switch refused.
"""

from __future__ import annotations

import functools
import ipaddress
import struct

from typing import NamedTuple

from nsgre_core import ids
from nsgre_core.flows import FIELD_BITS, Flow, Group, Meter
from nsgre_core.ofp import (ONF_BF_ATOMIC, ONF_BF_ORDERED, NX_EXPERIMENTER_ID, NXAST_REG_MOVE, OFPCML_MAX,
                            OFPCML_NO_BUFFER,
                            OFPFC_ADD, OFPFC_DELETE_STRICT, OFPG_ANY, OFPGC_ADD, OFPGC_DELETE,
                            OFPGC_MODIFY, OFPGT_ALL, OFPM_ALL, OFPMBT_DROP, OFPMC_ADD,
                            OFPMC_DELETE, OFPMC_MODIFY, OFPMF_BURST, OFPMF_PKTPS, OFPMF_STATS,
                            OFPMP_AGGREGATE, OFPMP_FLOW, OFPMP_GROUP_DESC, OFPMP_METER_CONFIG,
                            OFPMP_PORT_DESC, OFPP_ANY, OFPP_CONTROLLER, OFP_NO_BUFFER,
                            OFPT_BARRIER_REQUEST, OFPT_EXPERIMENTER, OFPT_PACKET_OUT,
                            OFPT_FLOW_MOD, OFPT_GROUP_MOD, OFPT_METER_MOD,
                            OFPT_MULTIPART_REQUEST, OFPT_ROLE_REQUEST, OFPTT_ALL, ONF_BCT_COMMIT_REQUEST,
                            ONF_BCT_OPEN_REQUEST, ONF_ET_BUNDLE_ADD_MESSAGE,
                            ONF_ET_BUNDLE_CONTROL, ONF_EXPERIMENTER_ID, VERSION)
from nsgre_core.reconcile import Op, Verb


_HEADER = struct.Struct("!BBHI")
_FLOW_MOD = struct.Struct("!QQBBHHHIIIH2x")
_GROUP_MOD = struct.Struct("!HBxI")
_BUNDLE_ADD = struct.Struct("!II I2xH")


def _mac(value: str) -> bytes:
    return bytes.fromhex(value.replace(":", ""))


def _ip(value: str) -> bytes:
    return ipaddress.ip_address(value).packed


def _int(fmt: str):
    packer = struct.Struct(fmt)
    return lambda value: packer.pack(value)


#: OXM field (OpenFlow basic class) -> (field number, value length, packer).
OXM = {
    "in_port": (0, 4, _int("!I")), "metadata": (2, 8, _int("!Q")),
    "eth_dst": (3, 6, _mac), "eth_src": (4, 6, _mac), "eth_type": (5, 2, _int("!H")),
    "vlan_vid": (6, 2, _int("!H")), "ip_proto": (10, 1, _int("!B")),
    "ipv4_src": (11, 4, _ip), "udp_src": (15, 2, _int("!H")), "udp_dst": (16, 2, _int("!H")),
    "arp_op": (21, 2, _int("!H")),
    "arp_spa": (22, 4, _ip), "arp_tpa": (23, 4, _ip), "arp_sha": (24, 6, _mac),
    "arp_tha": (25, 6, _mac), "ipv6_src": (26, 16, _ip), "ipv6_dst": (27, 16, _ip),
    "icmpv6_type": (29, 1, _int("!B")), "ipv6_nd_target": (31, 16, _ip),
    "ipv6_nd_sll": (32, 6, _mac), "ipv6_nd_tll": (33, 6, _mac),
    "tunnel_id": (38, 8, _int("!Q")),
    # Open vSwitch's Ericsson fields (class ERICOXM_OF, 0x1000; ovs-fields(7)):
    # the 32-bit flags word of a neighbour advertisement (R, S, O) and the
    # type of the first ND option; OVS recomputes the ICMPv6 checksum.
    "nd_reserved": (1, 4, _int("!I")), "nd_options_type": (2, 1, _int("!B")),
}
OXM_BASIC, ERICOXM_OF = 0x8000, 0x1000
#: The OXM class of each field: OpenFlow basic unless listed here.
OXM_CLASS = {"nd_reserved": ERICOXM_OF, "nd_options_type": ERICOXM_OF}


def _oxm_header(name: str, masked: bool = False) -> int:
    number, length, _ = OXM[name]
    return (OXM_CLASS.get(name, OXM_BASIC) << 16 | number << 9 | masked << 8
            | (length * 2 if masked else length))


@functools.lru_cache(maxsize=1 << 16)
def oxm(name: str, value) -> bytes:
    _, _, pack = OXM[name]
    if isinstance(value, tuple):
        return struct.pack("!I", _oxm_header(name, True)) + pack(value[0]) + pack(value[1])
    return struct.pack("!I", _oxm_header(name)) + pack(value)


def _number(item) -> tuple[int, int]:
    return (OXM_CLASS.get(item[0], OXM_BASIC) != OXM_BASIC, OXM[item[0]][0])


def _pad8(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 8)


def match(fields) -> bytes:
    """OXM fields in field-number order, as os-ken (and ovs-ofctl) write them."""
    body = b"".join(oxm(name, value) for name, value in sorted(fields, key=_number))
    return _pad8(struct.pack("!HH", 1, 4 + len(body)) + body)   # OFPMT_OXM


@functools.lru_cache(maxsize=1 << 16)
def action(a) -> bytes:
    kind = a[0]
    if kind == "output":
        # To the controller: the whole frame (a 3-tuple is a max_len a switch reported).
        max_len = a[2] if len(a) > 2 else OFPCML_NO_BUFFER if a[1] == OFPP_CONTROLLER \
            else OFPCML_MAX
        return struct.pack("!HHIH6x", 0, 16, a[1], max_len)
    if kind == "group":
        return struct.pack("!HHI", 22, 8, a[1])
    if kind == "push_vlan":
        return struct.pack("!HHH2x", 17, 8, a[1])
    if kind == "pop_vlan":
        return struct.pack("!HH4x", 18, 8)
    if kind == "set_field":
        field = oxm(a[1], a[2])
        return _pad8(struct.pack("!HH", 25, (4 + len(field) + 7) // 8 * 8) + field)
    if kind == "move":
        return struct.pack("!HHIHHHHII", 0xFFFF, 24, NX_EXPERIMENTER_ID, NXAST_REG_MOVE,
                           FIELD_BITS[a[1]], 0, 0, _oxm_header(a[1]), _oxm_header(a[2]))
    raise ValueError(f"unknown action {a!r}")


def actions(acts) -> bytes:
    return b"".join(action(a) for a in acts)


def flow_mod(flow: Flow, command: int, xid: int = 0) -> bytes:
    body = _flow_mod_body(flow, flow.cookie, command)
    return _HEADER.pack(VERSION, OFPT_FLOW_MOD, 8 + len(body), xid) + body


@functools.lru_cache(maxsize=1 << 18)
def _flow_mod_body(flow: Flow, cookie: int, command: int) -> bytes:
    """Everything after the header (a reconnecting switch is sent the same
    flows again: they are packed once).  ``cookie`` is part of the key:
    flows equal but for their cookie compare equal."""
    inst = b""
    if flow.meter is not None:
        inst += struct.pack("!HHI", 6, 8, flow.meter)                    # METER
    if flow.actions:
        acts = actions(flow.actions)
        inst += struct.pack("!HH4x", 4, 8 + len(acts)) + acts          # APPLY_ACTIONS
    if flow.write_metadata is not None:
        inst += struct.pack("!HH4xQQ", 2, 24, *flow.write_metadata)      # WRITE_METADATA
    if flow.goto is not None:
        inst += struct.pack("!HHB3x", 1, 8, flow.goto)                   # GOTO_TABLE
    body = _FLOW_MOD.pack(cookie, ids.COOKIE_OWNED_MASK if command != OFPFC_ADD else 0,
                          flow.table, command, 0, 0, flow.priority, OFPP_ANY, OFPP_ANY, OFPG_ANY, 0)
    return body + match(flow.match) + inst


def pack_ahead(flows) -> None:
    """Pack flows' additions now (into the cache), so that sending them to
    a switch later costs only the copy."""
    for flow in flows:
        _flow_mod_body(flow, flow.cookie, OFPFC_ADD)


def group_mod(group: Group, command: int, xid: int = 0) -> bytes:
    buckets = b""
    for bucket in (group.buckets if command != OFPGC_DELETE else ()):
        acts = actions(bucket)
        buckets += struct.pack("!HHII4x", 16 + len(acts), 0, OFPP_ANY, OFPG_ANY) + acts
    body = _GROUP_MOD.pack(command, OFPGT_ALL, group.group_id) + buckets
    return _HEADER.pack(VERSION, OFPT_GROUP_MOD, 8 + len(body), xid) + body


def meter_mod(meter: Meter, command: int, xid: int = 0) -> bytes:
    """A packet-rate meter with one drop band (a delete names the meter only)."""
    band = b"" if command == OFPMC_DELETE else \
        struct.pack("!HHII4x", OFPMBT_DROP, 16, meter.rate, meter.burst)
    flags = 0 if command == OFPMC_DELETE else OFPMF_PKTPS | OFPMF_BURST | OFPMF_STATS
    body = struct.pack("!HHI", command, flags, meter.meter_id) + band
    return _HEADER.pack(VERSION, OFPT_METER_MOD, 8 + len(body), xid) + body


_COMMANDS = {Verb.ADD_FLOW: (flow_mod, OFPFC_ADD),
             Verb.DEL_FLOW: (flow_mod, OFPFC_DELETE_STRICT),
             Verb.ADD_GROUP: (group_mod, OFPGC_ADD), Verb.MOD_GROUP: (group_mod, OFPGC_MODIFY),
             Verb.DEL_GROUP: (group_mod, OFPGC_DELETE), Verb.ADD_METER: (meter_mod, OFPMC_ADD),
             Verb.MOD_METER: (meter_mod, OFPMC_MODIFY),
             Verb.DEL_METER: (meter_mod, OFPMC_DELETE)}


def message(op, xid: int = 0) -> bytes:
    """The flow-, group- or meter-mod of one reconcile step."""
    encode, command = _COMMANDS[op.verb]
    return encode(op.item, command, xid)


def bundle_add(bundle_id: int, flags: int, op, xid: int) -> bytes:
    """ONF_ET_BUNDLE_ADD_MESSAGE carrying one step; the inner message has
    the outer one's xid, as the bundle extension requires."""
    inner = message(op, xid)
    body = _BUNDLE_ADD.pack(ONF_EXPERIMENTER_ID, ONF_ET_BUNDLE_ADD_MESSAGE, bundle_id,
                            flags) + inner
    return _HEADER.pack(VERSION, OFPT_EXPERIMENTER, 8 + len(body), xid) + body


def bundle_control(bundle_id: int, kind: int, flags: int, xid: int) -> bytes:
    """ONF_ET_BUNDLE_CONTROL: open or commit a bundle."""
    body = struct.pack("!IIIHH", ONF_EXPERIMENTER_ID, ONF_ET_BUNDLE_CONTROL, bundle_id, kind,
                       flags)
    return _HEADER.pack(VERSION, OFPT_EXPERIMENTER, 8 + len(body), xid) + body


def bundle(bundle_id: int, ops, xids: list[int]) -> bytes:
    """One atomic, ordered bundle carrying ``ops``; ``xids``: one for each
    message (the open, one per op, the commit)."""
    flags = ONF_BF_ATOMIC | ONF_BF_ORDERED
    data = bundle_control(bundle_id, ONF_BCT_OPEN_REQUEST, flags, xids[0])
    data += b"".join(bundle_add(bundle_id, flags, op, xid) for op, xid in zip(ops, xids[1:]))
    return data + bundle_control(bundle_id, ONF_BCT_COMMIT_REQUEST, flags, xids[-1])


def packet_out(port: int, frame: bytes, xid: int = 0) -> bytes:
    """Send ``frame`` out of ``port`` (the controller's answers: DHCP)."""
    acts = action(("output", port))
    body = struct.pack("!IIH6x", OFP_NO_BUFFER, OFPP_CONTROLLER, len(acts)) + acts + frame
    return _HEADER.pack(VERSION, OFPT_PACKET_OUT, 8 + len(body), xid) + body


def barrier(xid: int) -> bytes:
    return _HEADER.pack(VERSION, OFPT_BARRIER_REQUEST, 8, xid)


def role_request(role: int, generation: int, xid: int) -> bytes:
    """Claim a role on the switch (MASTER, SLAVE) or ask its generation
    (NOCHANGE); ``generation`` fences a claim older than the last one."""
    return _HEADER.pack(VERSION, OFPT_ROLE_REQUEST, 24, xid) + \
        struct.pack("!I4xQ", role, generation)


def _multipart(kind: int, body: bytes, xid: int) -> bytes:
    return _HEADER.pack(VERSION, OFPT_MULTIPART_REQUEST, 16 + len(body), xid) + \
        struct.pack("!HH4x", kind, 0) + body


def _owned_flows_body(cookie: int = ids.COOKIE_OWNED, mask: int = ids.COOKIE_OWNED_MASK) -> bytes:
    """Every table, any port and group, nsgre's cookies only."""
    return struct.pack("!B3xII4xQQ", OFPTT_ALL, OFPP_ANY, OFPG_ANY, cookie, mask) + match(())


def ports_request(xid: int) -> bytes:
    return _multipart(OFPMP_PORT_DESC, b"", xid)


def flows_request(xid: int, piece: int | None = None, slices: int = 1) -> bytes:
    """nsgre's flows, by cookie: nobody else's flows are ever read.  With
    ``piece``, only those whose cookie is ``piece`` modulo ``slices`` (a
    power of two): a switch's flows read a slice at a time."""
    if piece is None:
        return _multipart(OFPMP_FLOW, _owned_flows_body(), xid)
    assert slices & (slices - 1) == 0 and 0 <= piece < slices, (piece, slices)
    return _multipart(OFPMP_FLOW, _owned_flows_body(ids.COOKIE_OWNED | piece,
                                                    ids.COOKIE_OWNED_MASK | (slices - 1)), xid)


def groups_request(xid: int) -> bytes:
    return _multipart(OFPMP_GROUP_DESC, b"", xid)


def meters_request(xid: int) -> bytes:
    return _multipart(OFPMP_METER_CONFIG, struct.pack("!I4x", OFPM_ALL), xid)


def count_request(xid: int) -> bytes:
    """How many flows nsgre owns on a switch: one small reply, however many."""
    return _multipart(OFPMP_AGGREGATE, _owned_flows_body(), xid)


#: What the controller reads from a switch, in this order, and how to ask.
STATE_REQUESTS = {"ports": ports_request, "flows": flows_request, "groups": groups_request,
                  "meters": meters_request}


# -- the way back: the same bytes as records ----------------------------------
class Decoded(NamedTuple):
    """One message as ``decode`` reads it.  ``kind``: op (a flow-, group- or
    meter-mod: ``op``), bundle_open, bundle_commit (``bundle``), barrier,
    request (``request``: ports, flows, groups, meters or count), packet_out
    (``packet``: (port, frame)), role (``role``: (role, generation))."""
    xid: int
    kind: str
    op: Op | None = None
    bundle: int | None = None
    request: str | None = None
    packet: tuple | None = None
    cookie: tuple | None = None        # (cookie, mask) of a flows or count request
    role: tuple | None = None          # (role, generation) of a role request


_OXM_BY_NUMBER = {(OXM_CLASS.get(name, OXM_BASIC), number): (name, length)
                  for name, (number, length, _) in OXM.items()}
_MAC_FIELDS = {"eth_dst", "eth_src", "arp_sha", "arp_tha", "ipv6_nd_sll", "ipv6_nd_tll"}
_IP_FIELDS = {"ipv4_src", "arp_spa", "arp_tpa", "ipv6_src", "ipv6_dst", "ipv6_nd_target"}
_MULTIPART = {OFPMP_PORT_DESC: "ports", OFPMP_FLOW: "flows", OFPMP_GROUP_DESC: "groups",
              OFPMP_METER_CONFIG: "meters", OFPMP_AGGREGATE: "count"}
_VERBS = {(encode, command): verb for verb, (encode, command) in _COMMANDS.items()}


def _value(name: str, raw: bytes):
    if name in _MAC_FIELDS:
        return ":".join(f"{b:02x}" for b in raw)
    if name in _IP_FIELDS:
        return str(ipaddress.ip_address(raw))
    return int.from_bytes(raw, "big")


def _oxms(data: bytes) -> list[tuple[str, object]]:
    fields, at = [], 0
    while at < len(data):
        header, = struct.unpack_from("!I", data, at)
        number, masked, length = (header >> 9) & 0x7F, (header >> 8) & 1, header & 0xFF
        name, size = _OXM_BY_NUMBER[header >> 16, number]
        raw = data[at + 4:at + 4 + length]
        fields.append((name, (_value(name, raw[:size]), _value(name, raw[size:]))
                       if masked else _value(name, raw)))
        at += 4 + length
    return fields


def _oxm_name(header: int) -> str:
    return _OXM_BY_NUMBER[header >> 16, (header >> 9) & 0x7F][0]


def output_record(port: int, max_len: int) -> tuple:
    """An output action as the record that would send it: an output to the
    controller that does not send the whole frame keeps its max_len (and so
    equals no record nsgre wants); elsewhere max_len means nothing."""
    if port == OFPP_CONTROLLER and max_len != OFPCML_NO_BUFFER:
        return ("output", port, max_len)
    return ("output", port)


def _actions(data: bytes) -> tuple:
    out, at = [], 0
    while at < len(data):
        kind, length = struct.unpack_from("!HH", data, at)
        if kind == 0:
            port, max_len = struct.unpack_from("!IH", data, at + 4)
            out.append(output_record(port, max_len))
        elif kind == 22:
            out.append(("group", struct.unpack_from("!I", data, at + 4)[0]))
        elif kind == 17:
            out.append(("push_vlan", struct.unpack_from("!H", data, at + 4)[0]))
        elif kind == 18:
            out.append(("pop_vlan",))
        elif kind == 25:
            (name, value), = _oxms(data[at + 4:at + 4 + 4 + (data[at + 7])])
            out.append(("set_field", name, value))
        elif kind == 0xFFFF:
            src, dst = struct.unpack_from("!II", data, at + 16)
            out.append(("move", _oxm_name(src), _oxm_name(dst)))
        else:
            raise ValueError(f"action type {kind} is not one nsgre writes")
        at += length
    return tuple(out)


def _flow(body: bytes) -> tuple[int, Flow]:
    cookie, _, table, command, _, _, priority, _, _, _, _ = _FLOW_MOD.unpack_from(body)
    at = _FLOW_MOD.size
    _, match_len = struct.unpack_from("!HH", body, at)
    fields = dict(_oxms(body[at + 4:at + match_len]))
    at += (match_len + 7) // 8 * 8
    actions, goto, metadata, meter = (), None, None, None
    while at < len(body):
        kind, length = struct.unpack_from("!HH", body, at)
        if kind == 6:
            meter = struct.unpack_from("!I", body, at + 4)[0]
        elif kind == 4:
            actions = _actions(body[at + 8:at + length])
        elif kind == 2:
            metadata = struct.unpack_from("!QQ", body, at + 8)
        elif kind == 1:
            goto = body[at + 4]
        at += length
    return command, Flow.make(table, priority, fields, actions, goto=goto,
                              write_metadata=metadata, cookie=cookie, meter=meter)


def _group(body: bytes) -> tuple[int, Group]:
    command, _, group_id = _GROUP_MOD.unpack_from(body)
    buckets, at = [], _GROUP_MOD.size
    while at < len(body):
        length, = struct.unpack_from("!H", body, at)
        buckets.append(_actions(body[at + 16:at + length]))
        at += length
    return command, Group(group_id, tuple(buckets))


def _meter(body: bytes) -> tuple[int, Meter]:
    command, _, meter_id = struct.unpack_from("!HHI", body)
    if len(body) < 24:
        return command, Meter(meter_id, 0, 0)
    _, _, rate, burst = struct.unpack_from("!HHII", body, 8)
    return command, Meter(meter_id, rate, burst)


def _one(kind: int, xid: int, body: bytes) -> Decoded:
    if kind == OFPT_FLOW_MOD:
        command, item = _flow(body)
        return Decoded(xid, "op", Op(_VERBS[flow_mod, command], item))
    if kind == OFPT_GROUP_MOD:
        command, item = _group(body)
        return Decoded(xid, "op", Op(_VERBS[group_mod, command], item))
    if kind == OFPT_METER_MOD:
        command, item = _meter(body)
        return Decoded(xid, "op", Op(_VERBS[meter_mod, command], item))
    if kind == OFPT_BARRIER_REQUEST:
        return Decoded(xid, "barrier")
    if kind == OFPT_PACKET_OUT:
        _, _, actions_len = struct.unpack_from("!IIH", body)
        (_, port), = _actions(body[16:16 + actions_len])
        return Decoded(xid, "packet_out", packet=(port, body[16 + actions_len:]))
    if kind == OFPT_ROLE_REQUEST:
        return Decoded(xid, "role", role=struct.unpack_from("!I4xQ", body))
    if kind == OFPT_MULTIPART_REQUEST:
        request = _MULTIPART[struct.unpack_from("!H", body)[0]]
        cookie = struct.unpack_from("!QQ", body, 24) if request in ("flows", "count") else None
        return Decoded(xid, "request", request=request, cookie=cookie)
    if kind == OFPT_EXPERIMENTER:
        experimenter, exp_type, bundle_id = struct.unpack_from("!III", body)
        if experimenter == ONF_EXPERIMENTER_ID and exp_type == ONF_ET_BUNDLE_CONTROL:
            control, = struct.unpack_from("!H", body, 12)
            return Decoded(xid, "bundle_open" if control == ONF_BCT_OPEN_REQUEST
                           else "bundle_commit", bundle=bundle_id)
        if experimenter == ONF_EXPERIMENTER_ID and exp_type == ONF_ET_BUNDLE_ADD_MESSAGE:
            inner = body[16:]
            _, inner_kind, length, inner_xid = _HEADER.unpack_from(inner)
            return _one(inner_kind, inner_xid, inner[8:length])._replace(bundle=bundle_id)
    raise ValueError(f"message type {kind} is not one nsgre sends")


def decode(data: bytes) -> list[Decoded]:
    """The messages in ``data`` (as sent by the controller core) as records."""
    out, at = [], 0
    while at < len(data):
        _, kind, length, xid = _HEADER.unpack_from(data, at)
        out.append(_one(kind, xid, data[at + 8:at + length]))
        at += length
    return out
