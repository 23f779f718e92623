"""Where does a packet go?  An offline evaluator of nsgre's flows.

The pipeline (``nsgre_core.pipeline``) is a pure function from topology to
flow records; this module executes those records the way Open vSwitch
would, so tests (and ``nsgre trace``) can ask "who receives this frame?"
without root, OVS or namespaces.  It implements exactly the OpenFlow 1.3
subset the pipeline emits, and refuses anything else loudly: a silent
approximation would let a broken pipeline pass its tests.

Semantics implemented (OpenFlow 1.3 as OVS runs it):

* per table, the highest-priority matching flow wins; two matching flows
  of equal priority are *undefined* in OpenFlow, so that is an error here;
* no match in a table drops the packet (1.3 table-miss default);
* instructions run in spec order: meter, apply-actions (in list order,
  outputs see the packet as modified so far), write-metadata, goto-table
  (forward only); a meter passes the frame (one frame is within any rate:
  what storm control drops is a matter of rates, not of where frames go);
* a group of type ``all`` runs every bucket on its own copy of the packet;
* output to the packet's own ``in_port`` is silently skipped, as OVS does,
  including inside group buckets;
* output to ``CONTROLLER`` sends the packet up as a packet-in: it is
  recorded (``HostRun.controller``, ``FabricRun.controller``), never
  delivered anywhere;
* VLAN tags form a stack: ``push_vlan`` adds an outer tag (copying the
  current outer VID, or 0), ``pop_vlan`` removes the outer one, and the
  ``vlan_vid`` field is the outermost tag (``0x1000 | vid``) or 0.

``run_host`` evaluates one bridge; ``run_fabric`` follows a frame from an
endpoint across tunnels to every endpoint that receives it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Iterable, Mapping, NamedTuple

from nsgre_core.flows import Flow, Group
from nsgre_core.ofp import OFPP_CONTROLLER, OFPP_IN_PORT, OFPP_MAX, OFPVID_PRESENT

#: Match fields the simulator understands (the ones the pipeline uses, plus
#: eth_type so a future ARP/IP rule has somewhere to go).
FIELDS = ("in_port", "eth_src", "eth_dst", "eth_type", "vlan_vid", "tunnel_id", "metadata",
          "ip_proto", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "tcp_dst", "udp_src",
          "udp_dst",
          "arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha", "icmpv6_type",
          "ipv6_nd_target", "ipv6_nd_sll", "ipv6_nd_tll")
ZERO_MAC = "00:00:00:00:00:00"

BROADCAST = "ff:ff:ff:ff:ff:ff"


class SimulationError(Exception):
    """The flows do something the pipeline must never do (ambiguous match,
    unknown action, reserved port, missing group, ...)."""


class FabricLoop(SimulationError):
    """A frame kept crossing tunnels past the hop limit."""


def mac_to_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


@dataclass(frozen=True)
class Packet:
    """The header fields the pipeline looks at, and nothing else.

    ``vlans`` is the 802.1Q tag stack as 12-bit VIDs, outermost first, so a
    frame that arrives already tagged (or double tagged) is modelled as
    exactly that rather than squeezed into one field.  ``metadata`` is the
    OpenFlow pipeline register: 0 on entry, changed by write-metadata.
    """
    in_port: int = 0
    eth_src: str = "00:00:00:00:00:00"
    eth_dst: str = BROADCAST
    vlans: tuple[int, ...] = ()
    tunnel_id: int = 0
    metadata: int = 0
    eth_type: int = 0x0800
    # L3/L4 fields, None where the frame has no such header (then no match
    # on that field can succeed, as OpenFlow prerequisites demand).
    ip_proto: int | None = None
    ipv4_src: str | None = None
    ipv4_dst: str | None = None
    ipv6_src: str | None = None
    ipv6_dst: str | None = None
    tcp_dst: int | None = None
    udp_src: int | None = None
    udp_dst: int | None = None
    arp_op: int | None = None
    arp_spa: str | None = None
    arp_tpa: str | None = None
    arp_sha: str | None = None
    arp_tha: str | None = None
    # ICMPv6 and neighbour discovery (RFC 4861).  As Open vSwitch reads a
    # solicitation (135) or advertisement (136): the target, the link-layer
    # address of its first option (source for 135 with option type 1,
    # target for 136 with option type 2; 00:00:00:00:00:00 when absent), the
    # 32-bit flags word (R, S, O) and the first option's type (None: none).
    icmpv6_type: int | None = None
    ipv6_nd_target: str | None = None
    ipv6_nd_sll: str | None = None
    ipv6_nd_tll: str | None = None
    nd_reserved: int | None = None
    nd_options_type: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "eth_src", self.eth_src.lower())
        object.__setattr__(self, "eth_dst", self.eth_dst.lower())
        object.__setattr__(self, "vlans", tuple(self.vlans))

    @property
    def vlan_vid(self) -> int:
        """The OXM ``vlan_vid`` value: ``0x1000 | vid`` of the outer tag, 0 if none."""
        return OFPVID_PRESENT | self.vlans[0] if self.vlans else 0

    def get(self, name: str) -> int | str:
        if name not in FIELDS:
            raise SimulationError(f"match on unsupported field {name!r}")
        return getattr(self, name)


MAC_FIELDS = ("eth_src", "eth_dst", "arp_sha", "arp_tha", "ipv6_nd_sll", "ipv6_nd_tll")
IP_FIELDS = ("ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "arp_spa", "arp_tpa",
             "ipv6_nd_target")


def neighbour_solicitation(target: str, src: str, sll: str | None, **kw) -> dict:
    """Packet fields of an ICMPv6 neighbour solicitation for ``target`` from
    ``src`` (``sll``: its source link-layer address option, None: none); to
    the target's solicited-node group unless ``ipv6_dst`` is given."""
    from nsgre_core.pipeline import solicited_node
    fields = dict(eth_type=0x86DD, ip_proto=58, icmpv6_type=135, ipv6_src=src,
                  ipv6_dst=solicited_node(target), ipv6_nd_target=target,
                  ipv6_nd_sll=sll or ZERO_MAC, ipv6_nd_tll=ZERO_MAC, nd_reserved=0,
                  nd_options_type=1 if sll else None)
    fields.update(kw)
    return fields


def neighbour_advertisement(target: str, src: str, tll: str | None, *, dst: str = "ff02::1",
                            flags: int = 0x20000000, **kw) -> dict:
    """Packet fields of an ICMPv6 neighbour advertisement of ``target``
    (``tll``: its target link-layer address option, None: none); by default
    unsolicited, to all nodes, with the override flag."""
    fields = dict(eth_type=0x86DD, ip_proto=58, icmpv6_type=136, ipv6_src=src, ipv6_dst=dst,
                  ipv6_nd_target=target, ipv6_nd_sll=ZERO_MAC, ipv6_nd_tll=tll or ZERO_MAC,
                  nd_reserved=flags, nd_options_type=2 if tll else None)
    fields.update(kw)
    return fields


def dhcp_request(**kw) -> dict:
    """Packet fields of a DHCP client's broadcast (a DISCOVER, or a REQUEST
    before it has an address): from 0.0.0.0 port 68 to 255.255.255.255 port 67."""
    fields = dict(eth_type=0x0800, ip_proto=17, ipv4_src="0.0.0.0",
                  ipv4_dst="255.255.255.255", udp_src=68, udp_dst=67)
    fields.update(kw)
    return fields


def dhcp_reply(src: str, **kw) -> dict:
    """Packet fields of a DHCP server's answer (OFFER, ACK) from ``src``
    port 67, broadcast to port 68."""
    fields = dict(eth_type=0x0800, ip_proto=17, ipv4_src=src,
                  ipv4_dst="255.255.255.255", udp_src=67, udp_dst=68)
    fields.update(kw)
    return fields


def _nd(packet: "Packet", name: str, types=(135, 136)) -> None:
    """Open vSwitch sets an ND field only on a packet that is ND of ``types``
    at that point of the actions (and ignores the action otherwise: the
    simulator refuses it, so a pipeline relying on it fails its tests)."""
    if packet.eth_type != 0x86DD or packet.ip_proto != 58 or packet.icmpv6_type not in types:
        raise SimulationError(f"set_field {name} on a packet that is not ICMPv6 type "
                              f"{' or '.join(map(str, types))}: Open vSwitch ignores it")


def _number(name: str, value) -> int:
    if name in MAC_FIELDS:
        return mac_to_int(value)
    if name in IP_FIELDS:
        return int(ipaddress.ip_address(value))
    return value


def field_matches(name: str, want, have) -> bool:
    """One OXM match: exact, or ``(value, mask)`` for maskable fields."""
    if have is None:
        return False
    have = _number(name, have)
    if isinstance(want, tuple):
        value, mask = want
        return (have & _number(name, mask)) == (_number(name, value) & _number(name, mask))
    return _number(name, want) == have


def matches(flow: Flow, packet: Packet) -> bool:
    return all(field_matches(name, want, packet.get(name)) for name, want in flow.match)


class Step(NamedTuple):
    """One table visit: the packet as it entered, and the flow that won
    (None: table miss, the packet is dropped)."""
    table: int
    flow: Flow | None
    packet: Packet


@dataclass(frozen=True)
class HostRun:
    """What one bridge did with one packet.

    ``outputs``: (ofport, packet as emitted) in emission order.
    ``trace``: one ``Step`` per table visited.
    ``skipped``: outputs suppressed because they targeted the in_port.
    ``controller``: packets sent to the controller (packet-ins), in order.
    """
    outputs: tuple[tuple[int, Packet], ...]
    trace: tuple[Step, ...]
    skipped: tuple[int, ...] = ()
    controller: tuple[Packet, ...] = ()

    @property
    def ports(self) -> list[int]:
        return sorted(port for port, _ in self.outputs)


def lookup(flows: Iterable[Flow], table: int, packet: Packet) -> Flow | None:
    """The flow that wins ``table`` for ``packet``; None on a miss."""
    hits = [f for f in flows if f.table == table and matches(f, packet)]
    if not hits:
        return None
    top = max(f.priority for f in hits)
    winners = [f for f in hits if f.priority == top]
    if len(winners) > 1:
        raise SimulationError(
            f"table {table}: {len(winners)} flows of priority {top} match {packet}; "
            "OpenFlow leaves the choice undefined:\n  "
            + "\n  ".join(f.to_ofctl() for f in winners))
    return winners[0]


def _apply(actions, packet: Packet, groups: Mapping[int, Group],
           outputs: list, skipped: list, in_group: bool = False,
           controller: list | None = None) -> Packet:
    """Run an action list; returns the packet as modified by it."""
    for action in actions:
        kind = action[0]
        if kind == "output" and len(action) != 2:
            raise SimulationError(f"output {action!r}: nsgre sends whole frames only")
        if kind == "output" and action[1] == OFPP_CONTROLLER:
            if in_group or controller is None:
                raise SimulationError("output to the controller from a group bucket")
            controller.append(packet)          # a packet-in: the controller has it
        elif kind == "output":
            port = action[1]
            # Reserved ports (above OFPP_MAX) but IN_PORT and CONTROLLER are not the pipeline's.
            if not isinstance(port, int) or not (0 < port <= OFPP_MAX or port == OFPP_IN_PORT):
                raise SimulationError(f"output to reserved or invalid port {port!r}")
            if port == OFPP_IN_PORT:           # answer back
                outputs.append((packet.in_port, packet))
            elif port == packet.in_port:
                skipped.append(port)
            else:
                outputs.append((port, packet))
        elif kind == "group":
            if in_group:
                raise SimulationError("group chaining is not used by the pipeline")
            grp = groups.get(action[1])
            if grp is None:
                raise SimulationError(f"action group:{action[1]} but no such group")
            if grp.type != "all":
                raise SimulationError(f"group {grp.group_id}: type {grp.type!r} not supported")
            for bucket in grp.buckets:
                _apply(bucket, packet, groups, outputs, skipped, in_group=True)
        elif kind == "push_vlan":
            if action[1] != 0x8100:
                raise SimulationError(f"push_vlan ethertype {action[1]:#x} not supported")
            outer = packet.vlans[0] if packet.vlans else 0
            packet = replace(packet, vlans=(outer,) + packet.vlans)
        elif kind == "pop_vlan":
            if not packet.vlans:
                raise SimulationError("pop_vlan on an untagged packet")
            packet = replace(packet, vlans=packet.vlans[1:])
        elif kind == "set_field":
            _, name, value = action
            if name == "vlan_vid":
                if not packet.vlans:
                    raise SimulationError("set_field vlan_vid on an untagged packet")
                if not value & OFPVID_PRESENT:
                    raise SimulationError(f"set_field vlan_vid {value:#x} lacks OFPVID_PRESENT")
                packet = replace(packet, vlans=(value & 0xFFF,) + packet.vlans[1:])
            elif name in ("tunnel_id", "eth_src", "eth_dst", "arp_op", "arp_sha", "arp_spa",
                          "arp_tha", "arp_tpa"):
                packet = replace(packet, **{name: value})
            elif name in ("ipv6_src", "ipv6_dst"):
                if packet.eth_type != 0x86DD:
                    raise SimulationError(f"set_field {name} on a packet that is not IPv6")
                packet = replace(packet, **{name: value})
            elif name == "icmpv6_type":
                if packet.eth_type != 0x86DD or packet.ip_proto != 58:
                    raise SimulationError("set_field icmpv6_type on a packet that is not ICMPv6")
                packet = replace(packet, icmpv6_type=value)
            elif name == "nd_reserved":
                _nd(packet, name)
                packet = replace(packet, nd_reserved=value)
            elif name == "nd_options_type":
                # Rewrites the first option's type byte; its address stays, now
                # read as the other kind of link-layer address.
                _nd(packet, name)
                if packet.nd_options_type is None:
                    raise SimulationError("set_field nd_options_type on ND without options")
                mac = packet.ipv6_nd_sll if packet.nd_options_type == 1 else packet.ipv6_nd_tll
                packet = replace(packet, nd_options_type=value,
                                 ipv6_nd_sll=mac if value == 1 else ZERO_MAC,
                                 ipv6_nd_tll=mac if value == 2 else ZERO_MAC)
            elif name in ("ipv6_nd_sll", "ipv6_nd_tll"):
                kind, option = (135, 1) if name == "ipv6_nd_sll" else (136, 2)
                _nd(packet, name, (kind,))
                if packet.nd_options_type != option:
                    raise SimulationError(f"set_field {name}: the packet has no such option "
                                          "(Open vSwitch writes only an existing one)")
                packet = replace(packet, **{name: value})
            else:
                raise SimulationError(f"set_field on unsupported field {name!r}")
        elif kind == "move":
            _, src, dst = action
            if getattr(packet, src, None) is None:
                raise SimulationError(f"move from {src}, which this packet does not have")
            packet = replace(packet, **{dst: getattr(packet, src)})
        else:
            raise SimulationError(f"unsupported action {action!r}")
    return packet


def run_host(flows: Iterable[Flow], groups: Iterable[Group], packet: Packet) -> HostRun:
    """Evaluate one bridge's flows and groups for a packet entering at
    ``packet.in_port``, starting in table 0."""
    flows = tuple(flows)
    by_id = {g.group_id: g for g in groups}
    outputs: list = []
    skipped: list = []
    controller: list = []
    trace = []
    table = 0
    while True:
        flow = lookup(flows, table, packet)
        trace.append(Step(table, flow, packet))
        if flow is None:
            break
        packet = _apply(flow.actions, packet, by_id, outputs, skipped, controller=controller)
        if flow.write_metadata is not None:
            value, mask = flow.write_metadata
            packet = replace(packet, metadata=(packet.metadata & ~mask) | (value & mask))
        if flow.goto is None:
            break
        if flow.goto <= table:
            raise SimulationError(f"table {table}: goto_table:{flow.goto} must go forward")
        table = flow.goto
    return HostRun(tuple(outputs), tuple(trace), tuple(skipped), tuple(controller))


# -- the fabric: hosts joined by tunnels -------------------------------------

@dataclass(frozen=True)
class Delivery:
    endpoint: str
    host: str
    packet: Packet          # as emitted on the endpoint's port


@dataclass(frozen=True)
class Hop:
    src: str                # host that emitted into the tunnel
    dst: str                # host at the other end
    packet: Packet          # as emitted into the tunnel (in_port of src)
    arrived: bool           # False when the peer's tunnel port is absent


@dataclass(frozen=True)
class PacketIn:
    host: str               # whose bridge sent it to the controller
    packet: Packet          # as sent up (as it arrived, on a trunk: tagged)
    meter: int | None       # the meter the flow that sent it went through


@dataclass(frozen=True)
class FabricRun:
    deliveries: tuple[Delivery, ...]
    hops: tuple[Hop, ...]
    runs: tuple[tuple[str, Packet, HostRun], ...]  # (host, packet in, result) per bridge visit
    controller: tuple[PacketIn, ...] = ()           # packets sent to the controller

    @property
    def receivers(self) -> list[str]:
        """Names of receiving endpoints, sorted, one entry per copy (so a
        duplicate delivery shows up as a repeated name)."""
        return sorted(d.endpoint for d in self.deliveries)

    def delivered(self, endpoint: str) -> Packet:
        """The single copy ``endpoint`` received (error if none or several)."""
        copies = [d.packet for d in self.deliveries if d.endpoint == endpoint]
        if len(copies) != 1:
            raise AssertionError(f"{endpoint} received {len(copies)} copies")
        return copies[0]


def inject(topo, ports_by_host: Mapping[str, Mapping[str, int]], host: str, packet: Packet,
           pipelines: Mapping | None = None, max_hops: int = 8) -> FabricRun:
    """Follow ``packet`` entering ``host`` at ``packet.in_port`` through the
    fabric.  Output to a tunnel port ``topo.tunnel_port(A, B)`` arrives at
    B on ``topo.tunnel_port(B, A)`` with the tunnel key and tags as emitted
    and fresh metadata; output to an endpoint's port is a delivery.

    ``pipelines`` maps host -> object with ``flows`` and ``groups``
    (default: ``pipeline.compute`` on ``ports_by_host``), so tests can run
    hand-made flows.  A frame that crosses more than ``max_hops`` tunnels
    raises ``FabricLoop``.
    """
    from nsgre_core import pipeline as pl

    cache = dict(pipelines or {})

    def bridge(h):
        if h not in cache:
            cache[h] = pl.compute(topo, h, ports_by_host.get(h, {}))
        return cache[h]

    ep_by_port = {(e.host, e.port): e.name for e in topo.endpoints.values()}
    deliveries, hops, runs, packet_ins = [], [], [], []
    queue = [(host, packet, 0)]
    while queue:
        h, pkt, depth = queue.pop(0)
        res = run_host(bridge(h).flows, bridge(h).groups, pkt)
        runs.append((h, pkt, res))
        if res.controller:
            meter = next((st.flow.meter for st in res.trace
                          if st.flow is not None and to_controller(st.flow)), None)
            packet_ins += [PacketIn(h, up, meter) for up in res.controller]
        names = {num: name for name, num in ports_by_host.get(h, {}).items()}
        for port, out in res.outputs:
            name = names.get(port)
            if (h, name) in ep_by_port:
                deliveries.append(Delivery(ep_by_port[(h, name)], h, out))
                continue
            peer = next((p.name for p in topo.peers(h) if topo.tunnel_port(h, p.name) == name), None)
            if peer is None:
                raise SimulationError(f"{h}: output to port {port} ({name or 'unknown'}) "
                                      "which is neither an endpoint nor a tunnel port")
            back = ports_by_host.get(peer, {}).get(topo.tunnel_port(peer, h))
            hops.append(Hop(h, peer, out, back is not None))
            if back is None:
                continue
            if depth + 1 > max_hops:
                raise FabricLoop(f"frame still crossing tunnels after {max_hops} hops: "
                                 + " ".join(f"{x.src}->{x.dst}" for x in hops))
            arrived = replace(out, in_port=back, metadata=0)
            queue.append((peer, arrived, depth + 1))
    return FabricRun(tuple(deliveries), tuple(hops), tuple(runs), tuple(packet_ins))


def to_controller(flow: Flow) -> bool:
    """Does ``flow`` send frames to the controller?"""
    return any(a[0] == "output" and a[1] == OFPP_CONTROLLER for a in flow.actions)


def run_fabric(topo, ports_by_host: Mapping[str, Mapping[str, int]], src: str,
               eth_dst: str = BROADCAST, *, eth_src: str | None = None,
               vlans: tuple[int, ...] = (), pipelines: Mapping | None = None,
               max_hops: int = 8) -> FabricRun:
    """Send an IP frame from endpoint ``src``'s port, from its own MAC and
    address unless told otherwise (on a trunk, the address of the guest
    VLAN the frame is tagged with), and follow it to every endpoint that
    receives it."""
    ep = topo.endpoint(src)
    port = ports_by_host[ep.host][ep.port]
    att = next((a for a in ep.attachments if a.vlan == (vlans[0] if vlans else None)),
               ep.attachments[0])
    l3 = ({"eth_type": 0x0800, "ipv4_src": str(att.ip.ip)} if att.ip.version == 4 else
          {"eth_type": 0x86DD, "ipv6_src": str(att.ip.ip)})
    packet = Packet(in_port=port, eth_src=eth_src or ep.mac, eth_dst=eth_dst, vlans=vlans, **l3)
    return inject(topo, ports_by_host, ep.host, packet, pipelines, max_hops)
