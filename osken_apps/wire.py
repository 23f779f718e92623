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

Only what nsgre sends in bulk goes through here (flow-mods and group-mods
inside ONF bundles, meter-mods around them); everything else is os-ken's.
"""

from __future__ import annotations

import functools
import ipaddress
import struct

from osken_apps import tables as T
from osken_apps.flows import FIELD_BITS, Flow, Group, Meter

VERSION = 4                                   # OpenFlow 1.3
OFPT_EXPERIMENTER, OFPT_FLOW_MOD, OFPT_GROUP_MOD, OFPT_METER_MOD = 4, 14, 15, 29
OFPFC_ADD, OFPFC_DELETE_STRICT = 0, 4
OFPGC_ADD, OFPGC_MODIFY, OFPGC_DELETE = 0, 1, 2
OFPGT_ALL = 0
OFPMC_ADD, OFPMC_MODIFY, OFPMC_DELETE = 0, 1, 2
OFPMF_PKTPS, OFPMF_BURST, OFPMF_STATS = 2, 4, 8
OFPMBT_DROP = 1
ANY = 0xFFFFFFFF                              # OFPP_ANY, OFPG_ANY, OFP_NO_BUFFER
OFPCML_MAX = 0xFFE5
ONF_EXPERIMENTER_ID = 0x4F4E4600
ONF_ET_BUNDLE_ADD_MESSAGE = 2301
NX_EXPERIMENTER_ID = 0x00002320
NXAST_REG_MOVE = 6

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
    "vlan_vid": (6, 2, _int("!H")), "ipv4_src": (11, 4, _ip), "arp_op": (21, 2, _int("!H")),
    "arp_spa": (22, 4, _ip), "arp_tpa": (23, 4, _ip), "arp_sha": (24, 6, _mac),
    "arp_tha": (25, 6, _mac), "ipv6_src": (26, 16, _ip), "tunnel_id": (38, 8, _int("!Q")),
}


def _oxm_header(name: str, masked: bool = False) -> int:
    number, length, _ = OXM[name]
    return 0x80000000 | number << 9 | masked << 8 | (length * 2 if masked else length)


@functools.lru_cache(maxsize=1 << 16)
def oxm(name: str, value) -> bytes:
    _, _, pack = OXM[name]
    if isinstance(value, tuple):
        return struct.pack("!I", _oxm_header(name, True)) + pack(value[0]) + pack(value[1])
    return struct.pack("!I", _oxm_header(name)) + pack(value)


def _number(item) -> int:
    return OXM[item[0]][0]


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
        return struct.pack("!HHIH6x", 0, 16, a[1], OFPCML_MAX)
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
    body = _FLOW_MOD.pack(cookie, T.COOKIE_OWNED_MASK if command != OFPFC_ADD else 0,
                          flow.table, command, 0, 0, flow.priority, ANY, ANY, ANY, 0)
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
        buckets += struct.pack("!HHII4x", 16 + len(acts), 0, ANY, ANY) + acts
    body = _GROUP_MOD.pack(command, OFPGT_ALL, group.group_id) + buckets
    return _HEADER.pack(VERSION, OFPT_GROUP_MOD, 8 + len(body), xid) + body


def meter_mod(meter: Meter, command: int, xid: int = 0) -> bytes:
    """A packet-rate meter with one drop band (a delete names the meter only)."""
    band = b"" if command == OFPMC_DELETE else \
        struct.pack("!HHII4x", OFPMBT_DROP, 16, meter.rate, meter.burst)
    flags = 0 if command == OFPMC_DELETE else OFPMF_PKTPS | OFPMF_BURST | OFPMF_STATS
    body = struct.pack("!HHI", command, flags, meter.meter_id) + band
    return _HEADER.pack(VERSION, OFPT_METER_MOD, 8 + len(body), xid) + body


_COMMANDS = {"add_flow": (flow_mod, OFPFC_ADD), "del_flow": (flow_mod, OFPFC_DELETE_STRICT),
             "add_group": (group_mod, OFPGC_ADD), "mod_group": (group_mod, OFPGC_MODIFY),
             "del_group": (group_mod, OFPGC_DELETE), "add_meter": (meter_mod, OFPMC_ADD),
             "mod_meter": (meter_mod, OFPMC_MODIFY), "del_meter": (meter_mod, OFPMC_DELETE)}


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
