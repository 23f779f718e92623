"""The pipeline's tables, priorities, group ids and cookie layout, declared
once.  The README documents these same names; keep the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass


class PipelineError(ValueError):
    """A computed flow does something its table is not declared to do."""


@dataclass(frozen=True)
class Table:
    """One table and its contract: what its flows may match, which actions
    and set_field targets they may use, and which tables they may go to.
    Every flow the pipeline computes is checked against this (``check``)."""
    id: int
    name: str
    purpose: str
    matches: frozenset = frozenset()
    actions: frozenset = frozenset()          # action kinds: output, group, ...
    sets: frozenset = frozenset()             # set_field and move targets
    goto: frozenset = frozenset()
    writes_metadata: bool = False
    outputs_in_port_only: bool = False        # may only answer where it came from
    meters: bool = False                      # may send frames through a meter


CLASSIFY = Table(
    0, "classify",
    "port security and admission: an endpoint port admits untagged frames (a "
    "trunk: frames tagged with its guest VLANs) from its own MAC that are ARP "
    "for its own IP or IPv4/IPv6 from its own addresses; a tunnel port admits "
    "untagged frames from a peer with the key of a network both carry. Records "
    "the network's local VLAN and the frame's origin in metadata; drops the rest",
    matches=frozenset({"in_port", "vlan_vid", "eth_src", "eth_type", "arp_sha", "arp_spa",
                       "ipv4_src", "ipv6_src", "tunnel_id"}),
    goto=frozenset({1, 2}), writes_metadata=True)
ARP_RESPONDER = Table(
    1, "arp_responder",
    "answer ARP requests for the IP of any endpoint of the frame's network "
    "right here, back out of the port they came in on; no ARP is forwarded",
    matches=frozenset({"metadata", "eth_type", "arp_op", "arp_tpa"}),
    actions=frozenset({"move", "set_field", "output"}),
    sets=frozenset({"eth_src", "eth_dst", "arp_op", "arp_sha", "arp_spa", "arp_tha",
                    "arp_tpa"}),
    goto=frozenset({2}), outputs_in_port_only=True)
TAG = Table(
    2, "tag",
    "put the frame on its network's local VLAN: push it (access port, tunnel) "
    "or rewrite the guest's VLAN id (trunk)",
    matches=frozenset({"metadata", "vlan_vid"}), actions=frozenset({"push_vlan", "set_field"}),
    sets=frozenset({"vlan_vid"}), goto=frozenset({3}))
FORWARD = Table(
    3, "forward",
    "deliver by destination MAC within the local VLAN: to a local port (pop "
    "VLAN, or the guest's VLAN id on a trunk), to the one tunnel of the host "
    "holding the MAC (pop VLAN, set key; never for frames from a tunnel), or "
    "flood the network through its group, from an endpoint port through that "
    "port's storm-control meter; drop unknown destinations",
    matches=frozenset({"in_port", "vlan_vid", "eth_dst", "metadata"}),
    actions=frozenset({"pop_vlan", "set_field", "output", "group"}),
    sets=frozenset({"tunnel_id", "vlan_vid"}), meters=True)

TABLES = (CLASSIFY, ARP_RESPONDER, TAG, FORWARD)
BY_ID = {t.id: t for t in TABLES}

# Priorities, highest first.
PRIO_ADMIT = 100        # classify: a known port/MAC/address or tunnel/key
PRIO_ANSWER = 100       # arp_responder: a request for a known IP
PRIO_NO_ARP = 50        # arp_responder: any other ARP is dropped
PRIO_TAG = 100          # tag: one per network and origin
PRIO_UNICAST = 100      # forward: a known destination MAC
PRIO_STORM = 60         # forward: broadcast and multicast from an endpoint port, metered
PRIO_FLOOD = 50         # forward: broadcast and multicast
PRIO_NEXT = 0           # arp_responder: everything else goes on to tag
PRIO_DROP = 0           # classify, tag, forward: explicit drop of everything else

# Metadata written by classify:  local VLAN (bits 16..27) | origin flags.
FROM_TUNNEL = 0x1       # arrived from a tunnel: never sent back into one
FROM_TRUNK = 0x2        # arrived tagged with a guest VLAN: rewrite, do not push
META_VLAN_SHIFT = 16
META_VLAN_MASK = 0xFFF << META_VLAN_SHIFT
META_ORIGIN_MASK = FROM_TUNNEL | FROM_TRUNK

OFPP_IN_PORT = 0xFFFFFFF8


def metadata(vlan: int, flags: int = 0) -> int:
    return (vlan << META_VLAN_SHIFT) | flags


def check(flow) -> None:
    """Raise PipelineError if ``flow`` breaks its table's declaration."""
    table = BY_ID.get(flow.table)
    if table is None:
        raise PipelineError(f"flow in undeclared table {flow.table}: {flow.to_ofctl()}")

    def fail(why):
        raise PipelineError(f"table {table.id} ({table.name}): {why}: {flow.to_ofctl()}")

    for name, _ in flow.match:
        if name not in table.matches:
            fail(f"may not match {name}")
    for action in flow.actions:
        kind = action[0]
        if kind not in table.actions:
            fail(f"may not use action {kind}")
        if kind == "set_field" and action[1] not in table.sets:
            fail(f"may not set {action[1]}")
        if kind == "move" and action[2] not in table.sets:
            fail(f"may not move into {action[2]}")
        if kind == "output" and table.outputs_in_port_only and action[1] != OFPP_IN_PORT:
            fail("may only output to IN_PORT")
        if kind == "output" and not table.outputs_in_port_only and action[1] >= 0xFFFFFF00:
            fail(f"may not output to reserved port {action[1]:#x}")
    if flow.goto is not None and flow.goto not in table.goto:
        fail(f"may not go to table {flow.goto}")
    if flow.write_metadata is not None and not table.writes_metadata:
        fail("may not write metadata")
    if flow.meter is not None and not (table.meters and owned_meter(flow.meter)):
        fail(f"may not use meter {flow.meter}")


# Group ids: one pair per network on a host, derived from its local VLAN.
GROUP_FLOOD_ALL_BASE = 0        # + local VLAN: local ports and peer tunnels
GROUP_FLOOD_LOCAL_BASE = 4096   # + local VLAN: local ports only (from tunnel)

# Meter ids: storm control, one meter per endpoint port, derived from its
# OpenFlow port number (unique on a bridge; OVS numbers ports below 0xff00).
METER_STORM_BASE = 0x10000      # + OpenFlow port number
METER_STORM_MAX = METER_STORM_BASE + 0xFEFF


def storm_meter(ofport: int) -> int:
    return METER_STORM_BASE + ofport


def storm_burst(rate: int) -> int:
    """Frames a port may flood at once above its rate: a tenth of a
    second's worth, so a storm is held to its rate within 100 ms."""
    return max(1, rate // 10)


def owned_meter(meter_id: int) -> bool:
    return METER_STORM_BASE < meter_id <= METER_STORM_MAX


# Cookie layout (64 bits):  MAGIC(16) | KIND(8) | ID(40)
COOKIE_MAGIC = 0x4E53            # "NS": this flow is nsgre's
COOKIE_MAGIC_SHIFT = 48
COOKIE_KIND_SHIFT = 40
COOKIE_ID_MASK = (1 << 40) - 1
COOKIE_OWNED_MASK = 0xFFFF << COOKIE_MAGIC_SHIFT

KIND_BASE = 0       # table-miss drops: ID 0
KIND_NETWORK = 1    # ID = the network's tunnel key
KIND_ENDPOINT = 2   # ID = 40-bit hash of the endpoint name

KIND_NAMES = {KIND_BASE: "base", KIND_NETWORK: "network", KIND_ENDPOINT: "endpoint"}


def cookie(kind: int, ident: int = 0) -> int:
    return (COOKIE_MAGIC << COOKIE_MAGIC_SHIFT) | (kind << COOKIE_KIND_SHIFT) | (ident & COOKIE_ID_MASK)


def owned(cookie_value: int) -> bool:
    return cookie_value >> COOKIE_MAGIC_SHIFT == COOKIE_MAGIC


def decode_cookie(cookie_value: int) -> tuple[str, int] | None:
    """``(kind name, id)`` for an nsgre cookie, None for anyone else's."""
    if not owned(cookie_value):
        return None
    kind = (cookie_value >> COOKIE_KIND_SHIFT) & 0xFF
    return KIND_NAMES.get(kind, f"kind{kind}"), cookie_value & COOKIE_ID_MASK
