"""The pipeline's tables and priorities, declared once, as data.

Each table says what its flows may match and do (``check`` holds every
computed flow to it); each priority says what its flows match and do.
The README's pipeline reference is generated from these declarations and
``ids`` (``nsgre_core.reference``; a test fails when they differ).
"""

from __future__ import annotations

from dataclasses import dataclass

from nsgre_core import ids
from nsgre_core.ofp import OFPP_CONTROLLER, OFPP_IN_PORT, OFPP_MAX


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
    outputs_controller_only: bool = False     # may only send frames up to the controller
    meters: frozenset = frozenset()           # meter kinds (ids.METER_*) it may use


CLASSIFY = Table(
    0, "classify",
    "port security and admission: an endpoint port admits untagged frames (a "
    "trunk: frames tagged with its guest VLANs) from its own MAC that are ARP "
    "for its own IP or IPv4/IPv6 from its own addresses (IPv6: also its own "
    "link-local address); IPv6 neighbour discovery only as the endpoint's own "
    "(solicitations with its MAC, duplicate address detection of its own "
    "addresses, advertisements of its own addresses with its MAC; router "
    "advertisements and redirects from the network's router only); a tunnel "
    "port admits untagged frames from a peer with the key of a network both "
    "carry. Records the network's local VLAN and the frame's origin in metadata; "
    "sends an endpoint's DHCP requests (from its own MAC, in a network with DHCP on) "
    "to the controller through its port's DHCP meter and drops any other DHCP, from "
    "any port; drops IEEE 802.1 reserved frames (STP, LACP, LLDP, ...) from any port, "
    "and the rest",
    matches=frozenset({"in_port", "vlan_vid", "eth_src", "eth_dst", "eth_type", "arp_sha",
                       "arp_spa", "ipv4_src", "ipv6_src", "ipv6_dst", "ip_proto",
                       "udp_src", "udp_dst", "icmpv6_type", "ipv6_nd_target", "ipv6_nd_sll",
                       "ipv6_nd_tll", "tunnel_id"}),
    actions=frozenset({"output"}), outputs_controller_only=True,
    meters=frozenset({ids.METER_DHCP}), goto=frozenset({1, 2}), writes_metadata=True)
ARP_RESPONDER = Table(
    1, "arp_responder",
    "answer ARP requests and IPv6 neighbour solicitations for an address of any "
    "endpoint of the frame's network (IPv6: also its link-local address) right "
    "here, back out of the port they came in on; no ARP is forwarded; a "
    "solicitation is turned into the advertisement and finished by nd_reply; "
    "duplicate address detection (from ::) is never answered",
    matches=frozenset({"metadata", "eth_type", "arp_op", "arp_tpa", "ip_proto",
                       "icmpv6_type", "ipv6_src", "ipv6_nd_target"}),
    actions=frozenset({"move", "set_field", "output"}),
    sets=frozenset({"eth_src", "eth_dst", "arp_op", "arp_sha", "arp_spa", "arp_tha",
                    "arp_tpa", "ipv6_src", "ipv6_dst", "icmpv6_type", "nd_reserved",
                    "nd_options_type"}),
    goto=frozenset({2, 4}), outputs_in_port_only=True)
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
    sets=frozenset({"tunnel_id", "vlan_vid"}), meters=frozenset({ids.METER_STORM}))

ND_REPLY = Table(
    4, "nd_reply",
    "finish the neighbour advertisement arp_responder made of a solicitation: "
    "the answering endpoint's MAC as target link-layer address (Open vSwitch "
    "writes that field only in a flow that matches an advertisement), back out "
    "of the port the solicitation came in on",
    matches=frozenset({"metadata", "eth_type", "ip_proto", "icmpv6_type", "ipv6_nd_target"}),
    actions=frozenset({"set_field", "output"}), sets=frozenset({"ipv6_nd_tll"}),
    outputs_in_port_only=True)

TABLES = (CLASSIFY, ARP_RESPONDER, TAG, FORWARD, ND_REPLY)
BY_ID = {t.id: t for t in TABLES}


# Priorities, highest first within a table (each declared in PRIORITIES below).
PRIO_RESERVED = 200     # classify: IEEE 802.1 reserved group addresses are never forwarded
PRIO_DHCP_GUARD = 140   # classify: DHCP server traffic (from udp 67), from any port
PRIO_DHCP = 130         # classify: an endpoint's DHCP requests, to the controller
PRIO_DHCP_DROP = 125    # classify: any other DHCP request (to udp 67), from any port
PRIO_ND = 120           # classify: IPv6 neighbour discovery an endpoint may send
PRIO_ND_GUARD = 110     # classify: any other RA, NS, NA or redirect from an endpoint port
PRIO_ADMIT = 100        # classify: a known port/MAC/address or tunnel/key
PRIO_DAD = 150          # arp_responder: a solicitation from :: (DAD) is never answered
PRIO_ANSWER = 100       # arp_responder: a request for a known IP
PRIO_ND_REPLY = 100     # nd_reply: the advertisement of a known address
PRIO_NO_ARP = 50        # arp_responder: any other ARP is dropped
PRIO_TAG = 100          # tag: one per network and origin
PRIO_UNICAST = 100      # forward: a known destination MAC
PRIO_STORM = 60         # forward: broadcast and multicast from an endpoint port, metered
PRIO_FLOOD = 50         # forward: broadcast and multicast
PRIO_NEXT = 0           # arp_responder: everything else goes on to tag
PRIO_DROP = 0           # classify, tag, forward, nd_reply: explicit drop of everything else


@dataclass(frozen=True)
class Priority:
    """One priority of one table: what its flows match and what they do."""
    table: Table
    value: int
    name: str
    matches: str
    does: str


PRIORITIES = (
    Priority(CLASSIFY, PRIO_RESERVED, "PRIO_RESERVED",
             "destination 01:80:c2:00:00:00 to 01:80:c2:00:00:0f (IEEE 802.1 reserved: "
             "STP, LACP, 802.1X, LLDP, ...), from any port",
             "drop where it arrives, as a standard bridge does (the flow's packet counter "
             "counts them)"),
    Priority(CLASSIFY, PRIO_DHCP_GUARD, "PRIO_DHCP_GUARD",
             "IPv4 UDP from port 67 (a DHCP server's or relay's), from any port",
             "drop: only the controller answers DHCP, and its answers are packet-outs "
             "straight to the guest's port; a guest acting as a DHCP server (as Neutron's "
             "rogue-DHCP protection has it) or a tunnel carrying one reaches nobody"),
    Priority(CLASSIFY, PRIO_DHCP, "PRIO_DHCP",
             "an IPv4 endpoint port + its MAC (a trunk: + a guest VLAN) + IPv4 UDP from port "
             "68 to port 67, in a network with `dhcp` on: a DHCP client's request, from "
             "any source address (a DISCOVER comes from 0.0.0.0)",
             "through the port's DHCP meter, then to the controller (whole frame, as it "
             "arrived: tagged on a trunk), which answers from the model"),
    Priority(CLASSIFY, PRIO_DHCP_DROP, "PRIO_DHCP_DROP",
             "any other IPv4 UDP to port 67, from any port: a foreign source MAC, a network "
             "with `dhcp: false`, a tunnel (a peer's guests are answered by their own host)",
             "drop: DHCP is never flooded, forwarded nor tunnelled"),
    Priority(CLASSIFY, PRIO_ND, "PRIO_ND",
             "an IPv6 endpoint port + its MAC + the neighbour discovery it may send: a "
             "solicitation from its address or link-local address with its MAC as source "
             "link-layer address; duplicate address detection (from :: to the "
             "solicited-node group of its own address, no source link-layer address); an "
             "advertisement from and for its own addresses with its MAC as target "
             "link-layer address or none; router advertisements and redirects from its "
             "addresses if it is the network's `router`",
             "write local VLAN and origin to metadata; go to arp_responder"),
    Priority(CLASSIFY, PRIO_ND_GUARD, "PRIO_ND_GUARD",
             "an IPv6 endpoint port + any other ICMPv6 router advertisement (134), "
             "neighbour solicitation (135), neighbour advertisement (136) or redirect (137)",
             "drop: spoofed neighbour discovery never reaches a neighbour's cache"),
    Priority(CLASSIFY, PRIO_ADMIT, "PRIO_ADMIT",
             "an endpoint port + its MAC + its own ARP/IP source (a trunk: + a guest "
             "VLAN); a tunnel port + the key of a network both hosts carry, untagged",
             "write local VLAN and origin to metadata; go to arp_responder "
             "(endpoint) or tag (tunnel)"),
    Priority(CLASSIFY, PRIO_DROP, "PRIO_DROP", "anything else", "drop"),
    Priority(ARP_RESPONDER, PRIO_DAD, "PRIO_DAD",
             "an IPv6 neighbour solicitation from :: (duplicate address detection; "
             "classify admitted it only for the sender's own address)",
             "go to tag: flooded in the network, never answered (an answer would make "
             "the sender's address a duplicate)"),
    Priority(ARP_RESPONDER, PRIO_ANSWER, "PRIO_ANSWER",
             "local VLAN in metadata + ARP request for an endpoint IP of that network, "
             "or IPv6 neighbour solicitation for an endpoint address or link-local "
             "address of that network",
             "ARP: rewrite into the reply from that endpoint's MAC; output IN_PORT. "
             "IPv6: rewrite into the advertisement from that address (flags S and O, and "
             "R for the network's router), to the asker; go to nd_reply"),
    Priority(ARP_RESPONDER, PRIO_NO_ARP, "PRIO_NO_ARP", "any other ARP", "drop"),
    Priority(ARP_RESPONDER, PRIO_NEXT, "PRIO_NEXT", "anything else", "go to tag"),
    Priority(TAG, PRIO_TAG, "PRIO_TAG",
             "local VLAN + origin in metadata (a trunk's frame: + tagged)",
             "push the local VLAN, or rewrite the guest VLAN to it; go to forward"),
    Priority(TAG, PRIO_DROP, "PRIO_DROP", "anything else", "drop"),
    Priority(FORWARD, PRIO_UNICAST, "PRIO_UNICAST",
             "local VLAN + a member's MAC (remote member: + not from a tunnel)",
             "pop VLAN (trunk: set its guest VLAN) and output to the port; or pop "
             "VLAN, set the tunnel key and output to the member's host's tunnel"),
    Priority(FORWARD, PRIO_STORM, "PRIO_STORM",
             "an endpoint port + local VLAN + multicast/broadcast destination",
             "through the port's storm-control meter, then the flood-to-all group"),
    Priority(FORWARD, PRIO_FLOOD, "PRIO_FLOOD",
             "local VLAN + multicast/broadcast destination, split on from-tunnel",
             "the flood-to-all group, or flood-local-only for frames from a tunnel"),
    Priority(FORWARD, PRIO_DROP, "PRIO_DROP", "anything else (unknown destination)", "drop"),
    Priority(ND_REPLY, PRIO_ND_REPLY, "PRIO_ND_REPLY",
             "local VLAN + the advertisement arp_responder made for an endpoint address "
             "of that network",
             "set the target link-layer address to that endpoint's MAC; output IN_PORT"),
    Priority(ND_REPLY, PRIO_DROP, "PRIO_DROP", "anything else", "drop"),
)


# What Open vSwitch requires before it accepts a match on a field, or a
# set_field/move of it (OpenFlow prerequisites: ``ovs-fields(7)``).  A flow
# that lacks them is refused by the switch (OFPBMC_BAD_PREREQ, or for an
# action OFPBAC_MATCH_INCONSISTENT), so ``check`` refuses it first.
_IP = (0x0800, 0x86DD)
PREREQUISITES = {
    "ipv4_src": {"eth_type": (0x0800,)}, "ipv4_dst": {"eth_type": (0x0800,)},
    "ipv6_src": {"eth_type": (0x86DD,)}, "ipv6_dst": {"eth_type": (0x86DD,)},
    "arp_op": {"eth_type": (0x0806,)}, "arp_spa": {"eth_type": (0x0806,)},
    "arp_tpa": {"eth_type": (0x0806,)}, "arp_sha": {"eth_type": (0x0806,)},
    "arp_tha": {"eth_type": (0x0806,)},
    "ip_proto": {"eth_type": _IP},
    "icmpv6_type": {"eth_type": (0x86DD,), "ip_proto": (58,)},
    "ipv6_nd_target": {"eth_type": (0x86DD,), "ip_proto": (58,), "icmpv6_type": (135, 136)},
    "nd_reserved": {"eth_type": (0x86DD,), "ip_proto": (58,), "icmpv6_type": (135, 136)},
    "nd_options_type": {"eth_type": (0x86DD,), "ip_proto": (58,), "icmpv6_type": (135, 136)},
    "ipv6_nd_sll": {"eth_type": (0x86DD,), "ip_proto": (58,), "icmpv6_type": (135,)},
    "ipv6_nd_tll": {"eth_type": (0x86DD,), "ip_proto": (58,), "icmpv6_type": (136,)},
    "udp_src": {"eth_type": _IP, "ip_proto": (17,)},
    "udp_dst": {"eth_type": _IP, "ip_proto": (17,)},
}


def missing_prerequisite(name: str, match: dict) -> str | None:
    """What ``match`` lacks for Open vSwitch to accept matching or setting
    ``name`` (``eth_type=0x86dd``, ...), or None.  Like OVS, it is checked
    against the flow's match, not against fields earlier actions set."""
    for field, allowed in PREREQUISITES.get(name, {}).items():
        if match.get(field) not in allowed:
            shown = " or ".join(f"{v:#x}" if field == "eth_type" else str(v) for v in allowed)
            return f"{field}={shown}"
    return None


def check(flow) -> None:
    """Raise PipelineError if ``flow`` breaks its table's declaration."""
    table = BY_ID.get(flow.table)
    if table is None:
        raise PipelineError(f"flow in undeclared table {flow.table}: {flow.to_ofctl()}")

    def fail(why):
        raise PipelineError(f"table {table.id} ({table.name}): {why}: {flow.to_ofctl()}")

    match = flow.match_dict
    for name, _ in flow.match:
        if name not in table.matches:
            fail(f"may not match {name}")
        lacking = missing_prerequisite(name, match)
        if lacking:
            fail(f"a match on {name} needs {lacking} in the match")
    for action in flow.actions:
        kind = action[0]
        if kind not in table.actions:
            fail(f"may not use action {kind}")
        if kind == "set_field" and action[1] not in table.sets:
            fail(f"may not set {action[1]}")
        if kind == "move" and action[2] not in table.sets:
            fail(f"may not move into {action[2]}")
        if kind in ("set_field", "move"):
            for name in action[1:3] if kind == "move" else action[1:2]:
                lacking = missing_prerequisite(name, match)
                if lacking:
                    fail(f"{kind} of {name} needs {lacking} in the match (Open vSwitch "
                         "checks the match, not what earlier actions set)")
        if kind == "output":
            port = action[1]
            if table.outputs_in_port_only and port != OFPP_IN_PORT:
                fail("may only output to IN_PORT")
            if table.outputs_controller_only and port != OFPP_CONTROLLER:
                fail(f"may not use action output to port {port} (only to the controller)")
            if not (table.outputs_in_port_only or table.outputs_controller_only) \
                    and port > OFPP_MAX:
                fail(f"may not output to reserved port {port:#x}")
            if len(action) != 2:
                fail("an output names its port only (to the controller: the whole frame)")
    if flow.goto is not None and flow.goto not in table.goto:
        fail(f"may not go to table {flow.goto}")
    if flow.write_metadata is not None and not table.writes_metadata:
        fail("may not write metadata")
    if flow.meter is not None:
        meter = ids.decode_meter(flow.meter)
        if meter is None or meter.kind not in table.meters:
            fail(f"may not use meter {flow.meter}" + (f" ({meter.kind})" if meter else ""))
        if match.get("in_port", meter.ofport) != meter.ofport:
            fail(f"meter {flow.meter} serves port {meter.ofport}, not in_port "
                 f"{match['in_port']}")
