"""``nsgre trace``: where does this packet go, and why?  Offline, from the model.

Like ``ovn-trace``: build the packet an endpoint would send, run it through
the flows ``pipeline.compute`` gives every host (ports numbered by
``pipeline.offline_ports``, as ``nsgre pipeline`` prints them) with
``simulator.inject``, and explain each
bridge visit, each table step and each output in the model's own names
(endpoints, networks, tunnel keys), ending with a verdict.

    trace(topo, "vm1", "blue")                  -> Trace
    trace(topo, "vm1", "10.1.2.2", "tcp:22")    DST as an IP: resolved in SRC's network
    trace(topo, "vm1", "02:..", "arp")          DST as a MAC: used as eth_dst as given
    trace(topo, "router", "blue", vlan=100)     a trunk sends on a guest VLAN
    trace(topo, "vm1", "blue", "dhcp")          a DHCP DISCOVER (DST only checked not
                                                to receive it): to the controller

``Trace.text()`` is the human form, ``Trace.to_dict()`` the JSON one.
Bad input raises ``TraceError``; a flow the simulator cannot execute raises
``simulator.SimulationError``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from nsgre_core import flows as flows_mod
from nsgre_core import ids
from nsgre_core import pipeline as pl
from nsgre_core import tables as T
from nsgre_core.ofp import OFPP_CONTROLLER, OFPP_IN_PORT
from nsgre_tools import simulator as sim
from topology import did_you_mean

BRIDGE = "br-int"
BROADCAST = sim.BROADCAST
ZERO_MAC = "00:00:00:00:00:00"
#: Where a frame for an IP nobody in the network holds goes: a unicast MAC
#: from the documentation range (RFC 7042), which no endpoint has.
UNKNOWN_MAC = "00:00:5e:00:53:00"

_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_PROTO_RE = re.compile(r"^(icmp|arp|dhcp|tcp:(\d+)|udp:(\d+))$")


class TraceError(ValueError):
    """Bad input: unknown endpoint, bad protocol, impossible VLAN choice."""


# -- input --------------------------------------------------------------------

@dataclass(frozen=True)
class Proto:
    name: str               # icmp | arp | dhcp | tcp | udp
    port: int | None = None

    def __str__(self):
        return f"{self.name}:{self.port}" if self.port is not None else self.name


def parse_proto(text: str) -> Proto:
    m = _PROTO_RE.match(text.strip().lower())
    if not m:
        raise TraceError(f"bad --proto {text!r}: expected icmp, arp, dhcp, tcp:PORT or "
                         "udp:PORT")
    if m.group(2) or m.group(3):
        name, port = m.group(1).split(":")
        port = int(port)
        if not 1 <= port <= 65535:
            raise TraceError(f"bad --proto {text!r}: port must be 1..65535")
        return Proto(name, port)
    return Proto(m.group(1))


def _unknown_endpoint(topo, name: str, what: str) -> TraceError:
    names = list(topo.endpoints)
    return TraceError(f"unknown {what} endpoint {name!r}{did_you_mean(name, names)}; "
                      f"endpoints: {', '.join(names)}")


def _is_mac(text: str) -> bool:
    return bool(_MAC_RE.match(text))


def _as_ip(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _ep_by_mac(topo, mac: str):
    mac = mac.lower()
    return next((e for e in topo.endpoints.values() if e.mac == mac), None)


def _holders_of_ip(topo, addr) -> list[tuple[str, str]]:
    """(endpoint, network) pairs whose address is ``addr``, anywhere."""
    return [(e.name, a.network) for e in topo.endpoints.values() for a in e.attachments
            if a.ip.ip == addr]


# -- the trace ----------------------------------------------------------------

@dataclass
class StepInfo:
    table: int
    table_name: str
    priority: int | None
    cookie: int | None
    cookie_meaning: str | None
    match: str
    actions: str
    explanation: str
    dropped: bool
    reason: str | None = None

    def text(self) -> str:
        head = f"  table {self.table} {self.table_name}"
        if self.priority is None:
            line = f"{head}: no flow matched -> dropped"
            return line + (f": {self.reason}" if self.reason else "")
        ck = f"cookie {self.cookie:#x}"
        if self.cookie_meaning:
            ck += f" ({self.cookie_meaning})"
        return (f"{head}, priority {self.priority}, {ck}:\n"
                f"      {self.match} -> {self.actions}\n"
                f"      {self.explanation}")


@dataclass
class OutputInfo:
    port: int
    name: str | None
    kind: str               # endpoint | tunnel | controller | unknown | skipped
    endpoint: str | None = None
    peer: str | None = None
    key: int | None = None
    vlans: tuple = ()
    arrived: bool = True

    def text(self) -> str:
        tag = f", tagged VLAN {self.vlans[0]}" if self.vlans else ""
        if self.kind == "endpoint":
            return f"  -> delivered to {self.endpoint} ({self.name}){tag}"
        if self.kind == "tunnel":
            lost = "" if self.arrived else f" (no tunnel port back on {self.peer}: lost)"
            return f"  -> tunnel {self.name} to {self.peer}, key {self.key:#x}{lost}"
        if self.kind == "skipped":
            return f"  -> not sent back out of its in_port {self.port} ({self.name})"
        if self.kind == "controller":
            return f"  -> to the controller (packet-in){tag}"
        return f"  -> output to port {self.port} ({self.name or 'unknown'})"


@dataclass
class HopInfo:
    host: str
    in_port: int
    in_port_name: str | None
    source: str             # "endpoint vm1" / "tunnel from kvm2, key 0xa"
    packet: dict
    steps: list[StepInfo] = field(default_factory=list)
    outputs: list[OutputInfo] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"host {self.host} ({BRIDGE}), in_port {self.in_port} "
                 f"({self.in_port_name or '?'} = {self.source})"]
        lines += [s.text() for s in self.steps]
        lines += [o.text() for o in self.outputs]
        return "\n".join(lines)


@dataclass
class Trace:
    src: str
    dst: str
    proto: str
    summary: list[str]          # what was sent, and how DST was resolved
    packet: dict
    hops: list[HopInfo]
    delivered_to: list[str]
    verdict: str
    notes: list[str]
    dropped: dict | None
    expected: bool | None       # should DST receive it (same network)?
    leak: bool
    answered: bool
    to_controller: list[str] = field(default_factory=list)   # hosts that sent it up

    def text(self) -> str:
        out = [f"trace {self.src} -> {self.dst} ({self.proto})"]
        out += [f"  {line}" for line in self.summary]
        out.append("")
        for hop in self.hops:
            out.append(hop.text())
            out.append("")
        out.append(f"verdict: {self.verdict}")
        out += [f"  {n}" for n in self.notes]
        return "\n".join(out)

    def to_dict(self) -> dict:
        def step(s: StepInfo):
            return {"table": s.table, "table_name": s.table_name, "priority": s.priority,
                    "cookie": None if s.cookie is None else f"{s.cookie:#x}",
                    "cookie_meaning": s.cookie_meaning, "match": s.match,
                    "actions": s.actions, "explanation": s.explanation,
                    "dropped": s.dropped, "reason": s.reason}

        def output(o: OutputInfo):
            return {"port": o.port, "name": o.name, "kind": o.kind, "endpoint": o.endpoint,
                    "peer": o.peer, "key": o.key, "vlans": list(o.vlans), "arrived": o.arrived}

        return {
            "src": self.src, "dst": self.dst, "proto": self.proto,
            "summary": self.summary, "packet": self.packet,
            "hops": [{"host": h.host, "bridge": BRIDGE, "in_port": h.in_port,
                      "in_port_name": h.in_port_name, "source": h.source,
                      "packet": h.packet, "steps": [step(s) for s in h.steps],
                      "outputs": [output(o) for o in h.outputs]} for h in self.hops],
            "verdict": {"text": self.verdict, "delivered_to": self.delivered_to,
                        "dropped": self.dropped, "expected": self.expected,
                        "leak": self.leak, "answered": self.answered,
                        "to_controller": self.to_controller, "notes": self.notes},
        }


def _packet_dict(p: sim.Packet) -> dict:
    d = {"in_port": p.in_port, "eth_src": p.eth_src, "eth_dst": p.eth_dst,
         "vlans": list(p.vlans), "eth_type": f"{p.eth_type:#06x}"}
    if p.tunnel_id:
        d["tunnel_id"] = p.tunnel_id
    if p.metadata:
        d["metadata"] = p.metadata
    for name in ("ip_proto", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "tcp_dst",
                 "udp_src", "udp_dst", "arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha",
                 "icmpv6_type", "ipv6_nd_target", "ipv6_nd_sll", "ipv6_nd_tll", "nd_reserved",
                 "nd_options_type"):
        v = getattr(p, name)
        if v is not None:
            d[name] = v
    return d


class _Names:
    """Model names for the numbers a trace meets."""

    def __init__(self, topo, ports):
        self.topo = topo
        self.ports = ports
        self.port_names = {h: {n: name for name, n in m.items()} for h, m in ports.items()}
        self.ep_by_port = {(e.host, e.port): e for e in topo.endpoints.values()}
        self.net_by_key = {n.key: n.name for n in topo.networks.values()}
        self.pipelines = {}
        self.net_by_vlan = {h: {topo.local_vlan(h, n.name): n.name
                                for n in topo.networks_on(h)} for h in topo.hosts}

    def port(self, host, num):
        """(name, endpoint or None, peer host or None) of port ``num``."""
        name = self.port_names.get(host, {}).get(num)
        ep = self.ep_by_port.get((host, name))
        peer = None
        if ep is None and name is not None:
            peer = next((p.name for p in self.topo.peers(host)
                         if self.topo.tunnel_port(host, p.name) == name), None)
        return name, ep, peer

    def port_text(self, host, num) -> str:
        name, ep, peer = self.port(host, num)
        if ep is not None:
            return f"{name} (endpoint {ep.name})"
        if peer is not None:
            return f"{name} -> {peer}"
        return f"port {num}" + (f" ({name})" if name else "")

    def key(self, key) -> str:
        net = self.net_by_key.get(key)
        return f"{key} ({net})" if net else f"{key} (no network's key)"

    def local_vlan(self, host, vid) -> str:
        net = self.net_by_vlan.get(host, {}).get(vid)
        return f"{vid} ({net})" if net else f"{vid}"

    def mac(self, mac) -> str | None:
        mac = str(mac).lower()
        if mac == BROADCAST:
            return "broadcast"
        ep = _ep_by_mac(self.topo, mac)
        return ep.name if ep else None

    def cookie(self, value) -> str:
        return pl.cookie_meaning(self.topo, value)


# -- rendering flows ------------------------------------------------------------

def _fmt_value(v) -> str:
    return f"{v:#x}" if isinstance(v, int) and v > 9 else str(v)


def _meta_words(names: "_Names", host: str, value: int, mask: int, match: bool) -> str:
    """``vlan 10 net10, from_tunnel`` for metadata ``value/mask``."""
    words = []
    if mask & ids.META_VLAN_MASK:
        vid = ids.metadata_vlan(value)
        net = names.net_by_vlan.get(host, {}).get(vid)
        words.append(f"{net} (local VLAN {vid})" if net else f"local VLAN {vid}")
    for bit, name in ids.FLAG_NAMES.items():
        if mask & bit:
            words.append(name if value & bit else (f"not {name}" if match else ""))
    return ", ".join(w for w in words if w)


def _meta_net(names: "_Names", host: str, metadata: int) -> str | None:
    return names.net_by_vlan.get(host, {}).get(ids.metadata_vlan(metadata))


def _match_text(names: _Names, host: str, flow) -> str:
    parts = []
    for name, value in flow.match:
        if name == "in_port":
            pname = names.port(host, value)[0]
            parts.append(f"in_port={value}" + (f"({pname})" if pname else ""))
        elif name == "vlan_vid":
            if isinstance(value, tuple):
                parts.append(f"vlan_vid={_fmt_value(value[0])}/{_fmt_value(value[1])}")
            elif value == 0:
                parts.append("vlan=none")
            else:
                parts.append(f"vlan={value & 0xFFF}")
        elif name == "tunnel_id" and not isinstance(value, tuple):
            net = names.net_by_key.get(value)
            parts.append(f"tun_id={_fmt_value(value)}" + (f"({net})" if net else ""))
        elif name in sim.MAC_FIELDS and not isinstance(value, tuple):
            who = names.mac(value)
            parts.append(f"{name}={value}" + (f"({who})" if who else ""))
        elif name in sim.MAC_FIELDS and value == pl.MULTICAST:
            parts.append(f"{name}=multicast")
        elif name == "metadata":
            v, m = value if isinstance(value, tuple) else (value, (1 << 64) - 1)
            words = _meta_words(names, host, v, m, match=True)
            raw = f"metadata={_fmt_value(v)}" + (f"/{_fmt_value(m)}" if isinstance(value, tuple)
                                                 else "")
            parts.append(raw + (f"({words})" if words else ""))
        elif isinstance(value, tuple):
            parts.append(f"{name}={_fmt_value(value[0])}/{_fmt_value(value[1])}")
        elif name in flows_mod._DECIMAL:        # protocol numbers and ports
            parts.append(f"{name}={value}")
        else:
            parts.append(f"{name}={_fmt_value(value)}")
    return ",".join(parts) or "(any)"


def _explain_actions(names: _Names, host: str, actions, packet: sim.Packet) -> list[str]:
    """Plain words for an action list; ``packet`` is the packet before it."""
    sets = {a[1]: a[2] for a in actions if a[0] == "set_field"}
    if sets.get("arp_op") == 2:             # an ARP responder: say what it answered
        spa, sha = sets.get("arp_spa", "?"), sets.get("arp_sha", "?")
        who = names.mac(sha)
        back = [a for a in actions if a[0] == "output"]
        said = [f"answered the ARP request: {spa} is at {sha}" + (f" ({who})" if who else "")]
        if back and back[0][1] == OFPP_IN_PORT:
            said.append(f"reply sent back out of the in_port, "
                        f"{names.port_text(host, packet.in_port)}")
        elif back:
            said.append(f"reply sent to {names.port_text(host, back[0][1])}")
        return said
    if sets.get("icmpv6_type") == pl.ND_NA:     # the ND responder, first half
        target, mac = packet.ipv6_nd_target, sets.get("eth_src", "?")
        who = names.mac(mac)
        return [f"turned the neighbour solicitation into the advertisement of {target} "
                f"from {mac}" + (f" ({who})" if who else "")
                + ", to the asker; nd_reply writes the target link-layer address"]
    if "ipv6_nd_tll" in sets:                   # the ND responder, second half
        said = [f"set the target link-layer address to {sets['ipv6_nd_tll']}"]
        if any(a[0] == "output" and a[1] == OFPP_IN_PORT for a in actions):
            said.append(f"advertisement sent back out of the in_port, "
                        f"{names.port_text(host, packet.in_port)}")
        return said
    said = []
    vlans = list(packet.vlans)
    i = 0
    while i < len(actions):
        a = actions[i]
        kind = a[0]
        nxt = actions[i + 1] if i + 1 < len(actions) else None
        if (kind == "push_vlan" and nxt and nxt[0] == "set_field" and nxt[1] == "vlan_vid"):
            vid = nxt[2] & 0xFFF
            said.append(f"pushed local VLAN {names.local_vlan(host, vid)}")
            vlans.insert(0, vid)
            i += 2
            continue
        if kind == "push_vlan":
            said.append("pushed a VLAN tag")
            vlans.insert(0, vlans[0] if vlans else 0)
        elif kind == "pop_vlan":
            said.append(f"popped VLAN {vlans[0]}" if vlans else "popped VLAN")
            vlans = vlans[1:]
        elif kind == "set_field" and a[1] == "vlan_vid":
            vid = a[2] & 0xFFF
            old = f"VLAN {vlans[0]}" if vlans else "the VLAN"
            # Towards a local endpoint port it is that guest's own id; otherwise
            # it is the host-local VLAN of a network.
            dest = next((names.port(host, b[1])[1] for b in actions[i:]
                         if b[0] == "output"), None)
            if dest is not None and dest.trunk:
                net = next((x.network for x in dest.attachments if x.vlan == vid), None)
                said.append(f"rewrote {old} to {dest.name}'s guest VLAN {vid}"
                            + (f" ({net})" if net else ""))
            else:
                said.append(f"rewrote {old} to local VLAN {names.local_vlan(host, vid)}")
            vlans = [vid] + vlans[1:]
        elif kind == "set_field" and a[1] == "tunnel_id":
            said.append(f"set tunnel key {names.key(a[2])}")
        elif kind == "set_field":
            said.append(f"set {a[1]} to {_fmt_value(a[2])}")
        elif kind == "move":
            said.append(f"copied {a[1]} into {a[2]}")
        elif kind == "output" and a[1] == OFPP_CONTROLLER:
            said.append("sent to the controller (packet-in, the whole frame"
                        + (f", tagged VLAN {vlans[0]}" if vlans else "") + ")")
        elif kind == "output":
            port = a[1]
            if port == OFPP_IN_PORT:
                said.append(f"output back out of the in_port "
                            f"({names.port_text(host, packet.in_port)})")
            elif port == packet.in_port:
                said.append(f"output to {names.port_text(host, port)} "
                            "(skipped: it is the in_port)")
            else:
                said.append(f"output to {names.port_text(host, port)}")
        elif kind == "group":
            said.append(_explain_group(names, host, a[1], packet))
        else:
            said.append(flows_mod.action_ofctl(a))
        i += 1
    return said


def _explain_meter(names: _Names, host: str, meter_id: int) -> str:
    """``through meter 131073 (DHCP rate limit of p-red (endpoint red))``."""
    meter = ids.decode_meter(meter_id)
    if meter is None:
        return f"through meter {meter_id} (not nsgre's)"
    what = {ids.METER_STORM: "storm control", ids.METER_DHCP: "DHCP rate limit"}.get(
        meter.kind, meter.kind)
    return f"through meter {meter_id} ({what} of {names.port_text(host, meter.ofport)})"


def _explain_group(names: _Names, host: str, gid: int, packet: sim.Packet) -> str:
    decoded = ids.decode_group(gid)
    local_only = decoded is not None and decoded.local_only
    net = pl.group_network(names.topo, host, gid)
    scope = "local ports only" if local_only else "local ports and tunnels"
    what = f"{net}, {scope}" if net else scope
    grp = next((g for g in names.pipelines[host].groups if g.group_id == gid), None)
    if grp is None:
        return f"flooded through group {gid} ({what}): no such group"
    if not grp.buckets:
        return f"flooded through group {gid} ({what}): it has no buckets, so nobody"
    parts = []
    for bucket in grp.buckets:
        parts.append("; ".join(_explain_actions(names, host, bucket, packet)))
    return f"flooded through group {gid} ({what}): " + " | ".join(parts)


# -- why a drop -----------------------------------------------------------------

def _drop_reason(names: _Names, host: str, table: str, p: sim.Packet) -> str | None:
    """Why ``table`` (by name) dropped ``p`` on ``host``, when it can be told."""
    topo = names.topo
    if table == "classify":
        name, ep, peer = names.port(host, p.in_port)
        dhcp = _dhcp_refused(names, ep, peer, p)
        if dhcp is not None:
            return dhcp
        if ep is not None:
            return _endpoint_refused(ep, p)
        if peer is not None:
            if p.vlans:
                return f"tagged frame (VLAN {p.vlans[0]}) from the tunnel to {peer}"
            net = names.net_by_key.get(p.tunnel_id)
            if net is None:
                return f"tunnel key {p.tunnel_id:#x} is no network's"
            if net not in {n.name for n in topo.networks_on(host)}:
                return f"{host} does not carry {net} (key {p.tunnel_id:#x})"
            if net not in {n.name for n in topo.networks_on(peer)}:
                return f"{peer} does not carry {net} (key {p.tunnel_id:#x})"
            return None
        return f"port {p.in_port} ({name or 'unknown'}) is neither an endpoint nor a tunnel port"
    if table == "arp_responder" and p.eth_type == 0x0806:
        net = _meta_net(names, host, p.metadata)
        if p.arp_op != 1:
            return f"ARP op {p.arp_op} is not a request: only requests are answered, here"
        holders = [f"{e}'s in {n}" for e, n in _holders_of_ip(topo, _as_ip(p.arp_tpa))
                   if n != net] if p.arp_tpa else []
        return (f"ARP request for {p.arp_tpa}, which no endpoint of {net or 'this network'} "
                "holds" + (f" (it is {', '.join(holders)})" if holders else "")
                + ": ARP is answered by the bridge or not at all, never forwarded")
    if table == "forward":
        vid = p.vlans[0] if p.vlans else None
        net = names.net_by_vlan.get(host, {}).get(vid)
        if net is None:
            return f"VLAN {vid} is no network's local VLAN on {host}"
        if int(p.eth_dst.split(":")[0], 16) & 1:
            return f"no flood flow for {p.eth_dst} in {net}"
        dst = topo.endpoint_by_mac(net, p.eth_dst)
        if dst is None:
            other = _ep_by_mac(topo, p.eth_dst)
            if other is not None:
                return (f"destination MAC {p.eth_dst} is {other.name}'s, which is not in {net} "
                        f"(it is in {', '.join(other.networks)}): networks are isolated")
            return f"destination MAC {p.eth_dst} is unknown in {net}"
        if dst.host != host:
            if p.metadata & ids.FROM_TUNNEL:
                return (f"frame from a tunnel to a remote MAC ({dst.name} on {dst.host}): "
                        "never sent back into a tunnel (split horizon)")
            if topo.tunnel_port(host, dst.host) not in names.ports.get(host, {}):
                return f"no tunnel port from {host} to {dst.host} (where {dst.name} is)"
        elif dst.port not in names.ports.get(host, {}):
            return f"{dst.name}'s port {dst.port} is not on the bridge"
        return None
    return None


def _dhcp_refused(names: _Names, ep, peer, p: sim.Packet) -> str | None:
    """Why classify dropped a DHCP frame (UDP from or to port 67), if it is one."""
    if p.eth_type != 0x0800 or p.ip_proto != pl.UDP:
        return None
    if p.udp_src == pl.DHCP_SERVER_PORT:
        return ("DHCP server traffic (from UDP port 67): only the controller answers DHCP, "
                "and its answers go straight to the guest's port")
    if p.udp_dst != pl.DHCP_SERVER_PORT:
        return None
    if peer is not None:
        return (f"DHCP from the tunnel to {peer}: a guest's DHCP goes to its own host's "
                "controller, never across a tunnel")
    if ep is None:
        return None
    if p.eth_src != ep.mac:
        return (f"DHCP from source MAC {p.eth_src}, not {ep.name}'s own ({ep.mac}): "
                "spoofed requests are not answered")
    att = ep.attachments[0] if not ep.trunk else next(
        (a for a in ep.attachments if p.vlans and a.vlan == p.vlans[0]), None)
    if att is None or bool(p.vlans) != ep.trunk:
        return None                     # port security's reason says it better
    if att.ip.version != 4:
        return f"DHCP from {ep.name}, whose address in {att.network} is IPv6"
    if not names.topo.network(att.network).dhcp:
        return f"DHCP is off in {att.network} (dhcp: false): nobody answers it"
    if p.udp_src != pl.DHCP_CLIENT_PORT:
        return ("UDP to port 67, DHCP's server port, not from a DHCP client's port 68: "
                "only the controller takes DHCP, and only a client's requests")
    return None


def _endpoint_refused(ep, p: sim.Packet) -> str | None:
    """Why port security refuses a frame ``ep``'s port sent."""
    if p.eth_src != ep.mac:
        return (f"source MAC {p.eth_src} is not {ep.name}'s own ({ep.mac}): "
                "spoofed frames are not admitted")
    if not ep.trunk and p.vlans:
        return (f"tagged frame (VLAN {p.vlans[0]}) on {ep.name}'s access port: "
                "access endpoints must send untagged")
    if ep.trunk and not p.vlans:
        return (f"untagged frame on {ep.name}'s trunk port: it must tag with a guest "
                f"VLAN ({_guest_vlans(ep)})")
    att = ep.attachments[0]
    if ep.trunk:
        att = next((a for a in ep.attachments if a.vlan == p.vlans[0]), None)
        if att is None:
            return (f"VLAN {p.vlans[0]} is not one of {ep.name}'s guest VLANs "
                    f"({_guest_vlans(ep)})")
    own = str(att.ip.ip)
    if p.eth_type == 0x0806:
        if p.arp_sha != ep.mac or p.arp_spa != own:
            return (f"ARP from {p.arp_spa} ({p.arp_sha}), not {ep.name}'s own "
                    f"{own} ({ep.mac}) in {att.network}")
    elif p.eth_type == 0x0800:
        if att.ip.version != 4:
            return f"IPv4 from {ep.name}, whose address in {att.network} is IPv6"
        if p.ipv4_src != own:
            return f"IPv4 source {p.ipv4_src} is not {ep.name}'s own {own} in {att.network}"
    elif p.eth_type == 0x86DD:
        if att.ip.version != 6:
            return f"IPv6 from {ep.name}, whose address in {att.network} is IPv4"
        lla = str(ep.ipv6_link_local)
        mine = {own, lla}
        kind = p.icmpv6_type if p.ip_proto == 58 else None
        if kind in (pl.ND_RA, pl.ND_REDIRECT):
            what = "router advertisement" if kind == pl.ND_RA else "redirect"
            return (f"ICMPv6 {what} from {ep.name}, which is not {att.network}'s router "
                    "(networks.N.router), or not from its own address")
        if p.ipv6_src == "::" and kind == pl.ND_NS:
            if p.ipv6_nd_target not in mine:
                return (f"duplicate address detection for {p.ipv6_nd_target}, which is not "
                        f"{ep.name}'s ({own} or {lla})")
            return ("duplicate address detection must go to the target's solicited-node "
                    "group, without a source link-layer address")
        if p.ipv6_src not in mine:
            return f"IPv6 source {p.ipv6_src} is not {ep.name}'s own {own} or {lla}"
        if kind == pl.ND_NS:
            return (f"neighbour solicitation with source link-layer address {p.ipv6_nd_sll}, "
                    f"not {ep.name}'s MAC {ep.mac}")
        if kind == pl.ND_NA:
            if p.ipv6_nd_target not in mine:
                return (f"neighbour advertisement for {p.ipv6_nd_target}, which is not "
                        f"{ep.name}'s ({own} or {lla})")
            return (f"neighbour advertisement with target link-layer address "
                    f"{p.ipv6_nd_tll}, not {ep.name}'s MAC {ep.mac}")
        return None
    else:
        return f"ethertype {p.eth_type:#06x}: only ARP and IP are admitted"
    return None


def _guest_vlans(ep) -> str:
    return ", ".join(f"{a.vlan} {a.network}" for a in ep.attachments)


# -- building the packet ----------------------------------------------------------

@dataclass
class _Probe:
    src: object                         # Endpoint
    network: str | None                 # network of the attachment sent on
    vlans: tuple
    packet: sim.Packet
    dst_ep: object | None               # the endpoint DST names or resolves to
    dst_ip: object | None
    summary: list
    notes: list
    dst_text: str


def _pick_attachment(topo, src, vlan, dst_ep, summary):
    """(network, wire tags, attachment for addressing) of the frame SRC sends."""
    if not src.trunk:
        att = src.attachments[0]
        if vlan is not None:
            summary.append(f"{src.name} is an access endpoint of {att.network}: sending a frame "
                           f"tagged VLAN {vlan}, which it must not")
            return att.network, (vlan,), att
        return att.network, (), att
    guest = {a.vlan: a for a in src.attachments}
    if vlan is None:
        if dst_ep is not None:
            shared = [a for a in src.attachments if a.network in dst_ep.networks]
            if len(shared) == 1:
                a = shared[0]
                summary.append(f"{src.name} is a trunk: sending on guest VLAN {a.vlan} "
                               f"({a.network}), the one it shares with {dst_ep.name}")
                return a.network, (a.vlan,), a
        raise TraceError(f"{src.name} is a trunk endpoint: choose the guest VLAN to send on "
                         f"with --vlan ({_guest_vlans(src)})")
    if vlan in guest:
        a = guest[vlan]
        summary.append(f"{src.name} is a trunk: sending on guest VLAN {vlan} ({a.network})")
        return a.network, (vlan,), a
    a = src.attachments[0]
    summary.append(f"{src.name} is a trunk, but VLAN {vlan} is not one of its guest VLANs "
                   f"({_guest_vlans(src)})")
    return None, (vlan,), a


def build_probe(topo, ports, src_name: str, dst: str, proto: Proto, vlan: int | None) -> _Probe:
    if src_name not in topo.endpoints:
        raise _unknown_endpoint(topo, src_name, "source")
    src = topo.endpoint(src_name)
    if vlan is not None and not 0 <= vlan <= 4095:
        raise TraceError(f"bad --vlan {vlan}: a VLAN id is 0..4095")
    summary, notes = [], []

    dst_ep, dst_mac, dst_ip = None, None, None
    dst_kind = "endpoint"
    if dst in topo.endpoints:
        dst_ep = topo.endpoint(dst)
    elif _is_mac(dst):
        dst_kind, dst_mac = "mac", dst.lower()
        dst_ep = _ep_by_mac(topo, dst_mac)
    elif _as_ip(dst) is not None:
        dst_kind, dst_ip = "ip", _as_ip(dst)
    else:
        raise _unknown_endpoint(topo, dst, "destination")

    net, vlans, att = _pick_attachment(topo, src, vlan, dst_ep, summary)
    src_ip = att.ip.ip

    if dst_kind == "ip":
        dst_ep = topo.endpoint_by_ip(net, str(dst_ip)) if net else None
        elsewhere = [(e, n) for e, n in _holders_of_ip(topo, dst_ip) if n != net]
        if dst_ep is not None:
            summary.append(f"{dst_ip} is {dst_ep.name}'s address in {net}")
        else:
            where = (" (it is " + ", ".join(f"{e}'s in {n}" for e, n in elsewhere) + ")"
                     if elsewhere else "")
            summary.append(f"no endpoint has {dst_ip} in {net or 'this VLAN'}{where}")
            if proto.name != "arp":
                summary.append(f"without an ARP answer the frame goes to an unknown MAC "
                               f"{UNKNOWN_MAC}")
        dst_mac = dst_ep.mac if dst_ep else UNKNOWN_MAC
    elif dst_kind == "endpoint":
        dst_mac = dst_ep.mac
        if net in dst_ep.networks:
            dst_ip = dst_ep.attachment(net).ip.ip
        else:
            dst_ip = dst_ep.attachments[0].ip.ip
            summary.append(f"{dst_ep.name} is in {', '.join(dst_ep.networks)}, "
                           f"not in {net or 'this VLAN'}: sending to its MAC and address anyway")
    else:  # mac
        if dst_ep is None:
            summary.append(f"{dst_mac} is no endpoint's MAC")
        else:
            a = dst_ep.attachment(net) if net in dst_ep.networks else dst_ep.attachments[0]
            dst_ip = a.ip.ip
            summary.append(f"{dst_mac} is {dst_ep.name}'s MAC ({', '.join(dst_ep.networks)})")

    if dst_ip is not None and dst_ip.version != src_ip.version:
        notes.append(f"{dst_ip} is IPv{dst_ip.version}, {src.name} sends IPv{src_ip.version}: "
                     "no destination address in the packet")
        dst_ip = None
    v6 = src_ip.version == 6
    s, d = str(src_ip), (str(dst_ip) if dst_ip is not None else None)
    in_port = ports[src.host][src.port]
    base = dict(in_port=in_port, eth_src=src.mac, vlans=vlans)
    if proto.name == "dhcp":
        packet = sim.Packet(**base, eth_dst=BROADCAST, **sim.dhcp_request())
        summary.append(f"DHCP DISCOVER from 0.0.0.0 port 68 to 255.255.255.255 port 67, "
                       f"{src.mac} -> broadcast ({_dhcp_dst_role(dst)})")
        if v6:
            notes.append(f"{src.name}'s address in {net} is IPv6: DHCP (IPv4) is not for it")
    elif proto.name == "arp" and not v6:
        eth_dst = dst_mac if dst_kind == "mac" else BROADCAST
        packet = sim.Packet(**base, eth_dst=eth_dst, eth_type=0x0806, arp_op=1,
                            arp_spa=s, arp_sha=src.mac, arp_tpa=d, arp_tha=ZERO_MAC)
        summary.append(f"ARP request: who has {d or '?'}? tell {s} ({src.mac})"
                       + ("" if eth_dst == BROADCAST else f", unicast to {eth_dst}"))
    elif proto.name == "arp":
        # IPv6 has no ARP: a neighbour solicitation to the solicited-node group.
        if dst_ip is not None and dst_kind != "mac":
            low = int(dst_ip) & 0xFFFFFF
            eth_dst = "33:33:ff:%02x:%02x:%02x" % (low >> 16, (low >> 8) & 0xFF, low & 0xFF)
            group = ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0")) | low)
        else:
            eth_dst, group = dst_mac or BROADCAST, dst_ip
        if d is not None:
            packet = sim.Packet(**base, eth_dst=eth_dst, **sim.neighbour_solicitation(
                d, s, src.mac, ipv6_dst=str(group)))
        else:
            packet = sim.Packet(**base, eth_dst=eth_dst, eth_type=0x86DD, ip_proto=58,
                                ipv6_src=s, ipv6_dst=None)
        summary.append(f"IPv6 neighbour solicitation for {d or '?'} from {s} (ARP's IPv6 form)")
    else:
        ip_proto = {"icmp": 58 if v6 else 1, "tcp": 6, "udp": 17}[proto.name]
        fields = dict(ip_proto=ip_proto)
        if v6:
            fields.update(eth_type=0x86DD, ipv6_src=s, ipv6_dst=d)
        else:
            fields.update(eth_type=0x0800, ipv4_src=s, ipv4_dst=d)
        if proto.name == "tcp":
            fields["tcp_dst"] = proto.port
        if proto.name == "udp":
            fields["udp_dst"] = proto.port
        packet = sim.Packet(**base, eth_dst=dst_mac, **fields)
        what = {"icmp": "ICMPv6 echo" if v6 else "ICMP echo", "tcp": f"TCP to port {proto.port}",
                "udp": f"UDP to port {proto.port}"}[proto.name]
        summary.append(f"{what} {s} -> {d or '?'}, {src.mac} -> {dst_mac}")
    tag = f" tagged VLAN {vlans[0]}" if vlans else " untagged"
    summary.insert(0, f"sent by {src.name} on {src.host} port {src.port}{tag}"
                   + (f" in {net}" if net else ""))
    return _Probe(src, net, vlans, packet, dst_ep, dst_ip, summary, notes, dst)


def _dhcp_dst_role(dst: str) -> str:
    return f"{dst} is only checked not to receive it: DHCP is answered by the controller"


# -- running it -------------------------------------------------------------------

def trace(topo, src: str, dst: str, proto: str | Proto = "icmp", vlan: int | None = None,
          ports=None, pipelines=None) -> Trace:
    """``pipelines`` (host -> flows and groups) replaces the computed ones:
    the flows actually installed, for ``nsgre trace --live``."""
    if isinstance(proto, str):
        proto = parse_proto(proto)
    ports = ports if ports is not None else pl.offline_ports(topo)
    p = build_probe(topo, ports, src, dst, proto, vlan)
    names = _Names(topo, ports)
    names.pipelines = dict(pipelines) if pipelines is not None else \
        {h: pl.compute(topo, h, ports.get(h, {})) for h in topo.hosts}
    run = sim.inject(topo, ports, p.src.host, p.packet, pipelines=names.pipelines)

    hops, first_drop = [], None
    for host, pkt, res in run.runs:
        pname, ep, peer = names.port(host, pkt.in_port)
        if ep is not None:
            source = f"endpoint {ep.name}"
        elif peer is not None:
            source = f"tunnel from {peer}, key {pkt.tunnel_id:#x}"
        else:
            source = "unknown port"
        hop = HopInfo(host, pkt.in_port, pname, source, _packet_dict(pkt))
        for st in res.trace:
            tname = next((t.name for t in T.TABLES if t.id == st.table), f"table{st.table}")
            flow = st.flow
            if flow is None:
                reason = _drop_reason(names, host, tname, st.packet)
                info = StepInfo(st.table, tname, None, None, None, "", "drop",
                                "no flow matched: dropped", True, reason)
            else:
                said = _explain_actions(names, host, flow.actions, st.packet)
                if flow.meter is not None:
                    said.insert(0, _explain_meter(names, host, flow.meter))
                if flow.write_metadata is not None:
                    v, m = flow.write_metadata
                    words = _meta_words(names, host, v, m, match=False)
                    said.append(f"recorded {words.replace(', ', ' and ')} in metadata" if words
                                else "wrote metadata %#x/%#x" % (v, m))
                if flow.goto is not None:
                    gname = next((t.name for t in T.TABLES if t.id == flow.goto), "")
                    said.append(f"continued to table {flow.goto} {gname}".rstrip())
                dropped = not flow.actions and flow.goto is None
                reason = None
                if dropped:
                    reason = _drop_reason(names, host, tname, st.packet)
                    said = ["explicit drop: " + (reason or "no other flow matched")]
                text = ", ".join(said)
                info = StepInfo(st.table, tname, flow.priority, flow.cookie,
                                names.cookie(flow.cookie), _match_text(names, host, flow),
                                flow.actions_ofctl(), text[:1].upper() + text[1:], dropped,
                                reason)
            hop.steps.append(info)
            if info.dropped and first_drop is None:
                first_drop = {"host": host, "table": st.table, "table_name": tname,
                              "reason": info.reason or "no flow matched"}
        for port, out in res.outputs:
            oname, oep, opeer = names.port(host, port)
            if oep is not None:
                hop.outputs.append(OutputInfo(port, oname, "endpoint", endpoint=oep.name,
                                              vlans=out.vlans))
            elif opeer is not None:
                back = ports.get(opeer, {}).get(topo.tunnel_port(opeer, host))
                hop.outputs.append(OutputInfo(port, oname, "tunnel", peer=opeer,
                                              key=out.tunnel_id, vlans=out.vlans,
                                              arrived=back is not None))
            else:
                hop.outputs.append(OutputInfo(port, oname, "unknown", vlans=out.vlans))
        for up in res.controller:
            hop.outputs.append(OutputInfo(OFPP_CONTROLLER, "CONTROLLER", "controller",
                                          vlans=up.vlans))
        for port in res.skipped:
            hop.outputs.append(OutputInfo(port, names.port(host, port)[0], "skipped"))
        hops.append(hop)

    return _verdict(topo, p, run, hops, first_drop, proto, names)


def _verdict(topo, p: _Probe, run, hops, first_drop, proto: Proto, names) -> Trace:
    src, net, dst_ep = p.src, p.network, p.dst_ep
    receivers = run.receivers
    notes = list(p.notes)
    # An ARP (or neighbour) answer: a reply delivered back to the sender.
    replies = [d for d in run.deliveries if d.endpoint == src.name and (
        d.packet.arp_op == 2 or d.packet.icmpv6_type == pl.ND_NA)]
    answered = bool(replies)
    if answered:
        r = replies[0].packet
        addr, mac = ((r.arp_spa, r.arp_sha) if r.arp_op == 2
                     else (r.ipv6_nd_target, r.ipv6_nd_tll))
        who = names.mac(mac)
        verdict = (f"answered: {addr} is at {mac}" + (f" ({who})" if who else "")
                   + f", reply delivered to {src.name}")
    elif receivers:
        # a trunk receives on one of its guest VLANs: name the sub-interface
        verdict = "delivered to " + ", ".join(sorted(
            f"{d.endpoint}.{d.packet.vlans[0]}" if d.packet.vlans else d.endpoint
            for d in run.deliveries))
    elif run.controller:
        up = run.controller[0]
        how = "" if up.meter is None else \
            " " + _explain_meter(names, up.host, up.meter)
        verdict = f"to the controller: {up.host} sent it up as a packet-in{how}"
    elif first_drop is not None:
        verdict = (f"dropped at {first_drop['host']} table {first_drop['table']} "
                   f"({first_drop['table_name']}): {first_drop['reason']}")
    else:
        lost = [h for h in run.hops if not h.arrived]
        verdict = ("not delivered: " + (f"lost on the way to {lost[0].dst}" if lost
                                        else "no output reached an endpoint"))
    if first_drop is not None and (receivers or answered or run.controller):
        notes.append(f"a copy was dropped at {first_drop['host']} table {first_drop['table']} "
                     f"({first_drop['table_name']}): {first_drop['reason']}")
    if run.controller and (receivers or answered):
        notes.append("a copy went to the controller: "
                     + ", ".join(sorted({up.host for up in run.controller})))

    expected, leak = None, False
    dhcp = proto.name == "dhcp" or (proto.name == "udp" and proto.port == pl.DHCP_SERVER_PORT)
    if dhcp and dst_ep is not None and dst_ep.name != src.name:
        expected = False            # DHCP reaches the controller, never an endpoint
        if dst_ep.name in receivers:
            leak = True
            notes.append(f"!!! LEAK: {dst_ep.name} received {src.name}'s DHCP request: DHCP "
                         "must only reach the controller !!!")
        else:
            notes.append(f"{dst_ep.name} did not receive it: DHCP (UDP to port 67) only "
                         "reaches the controller, as it should")
    elif dst_ep is not None and dst_ep.name != src.name:
        expected = net is not None and net in dst_ep.networks and not (
            not src.trunk and p.vlans)      # an access endpoint sending tagged: refused
        reached = dst_ep.name in receivers or (
            answered and names.mac(replies[0].packet.arp_sha or replies[0].packet.ipv6_nd_tll)
            == dst_ep.name)
        if expected and not reached:
            notes.append(f"NOT REACHED: {dst_ep.name} is in {net} like {src.name} "
                         "and should have received it")
        elif expected and reached and not answered:
            notes.append(f"{dst_ep.name} is in {net} like {src.name}: reached, as expected")
        elif expected and answered:
            notes.append(f"{dst_ep.name} is in {net} like {src.name}: answered, as expected")
        elif not expected and reached:
            if net is not None and net not in dst_ep.networks:
                leak = True
                notes.append(f"!!! LEAK: {dst_ep.name} is in {', '.join(dst_ep.networks)}, "
                             f"not in {net}, yet received the frame: isolation is broken !!!")
            else:
                leak = True
                notes.append(f"!!! LEAK: {dst_ep.name} received a frame {src.name} must not "
                             "be able to send !!!")
        elif not expected:
            why = (f"{dst_ep.name} is not in {net}" if net and net not in dst_ep.networks
                   else "the frame is not admitted")
            notes.append(f"{why}: not reached, as it should be")
    if proto.name == "arp" and not answered and p.dst_ip is not None and p.packet.arp_op:
        holders = [r for r in receivers if net and r in
                   {e.name for e in topo.members(net)}
                   and topo.endpoint(r).attachment(net).ip.ip == p.dst_ip]
        if receivers and not holders:
            notes.append(f"nobody that received it holds {p.dst_ip} in {net or 'this VLAN'}: "
                         "the request goes unanswered")
    return Trace(src.name, p.dst_text, str(proto), p.summary,
                 _packet_dict(p.packet), hops, receivers, verdict, notes, first_drop,
                 expected, leak, answered, sorted({up.host for up in run.controller}))
