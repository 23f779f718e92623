"""The one flow representation every consumer shares.

A ``Flow`` is plain, hashable data: the os-ken app turns it into a
FlowMod, tests and the simulator read it directly, and ``to_ofctl`` gives
the ``ovs-ofctl`` text that operators know.

Match fields use OpenFlow 1.3 OXM names as os-ken spells them (``in_port``,
``eth_dst``, ``vlan_vid``, ``tunnel_id``, ``metadata``).  A masked value is
a ``(value, mask)`` pair.  ``vlan_vid`` follows OpenFlow: ``0x1000 | vid``
for a tagged frame, 0 for an untagged one.

Actions are tuples:  ``("output", port)``, ``("group", id)``,
``("push_vlan", ethertype)``, ``("pop_vlan",)``, ``("set_field", field, value)``.
``("output", OFPP_CONTROLLER)`` sends the whole frame to the controller (the
wire carries max_len ``OFPCML_NO_BUFFER``); a switch reporting an output to
the controller with any other max_len reads back as
``("output", OFPP_CONTROLLER, max_len)``, which equals nothing nsgre wants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nsgre_core.ofp import OFPCML_NO_BUFFER, OFPP_CONTROLLER, OFPP_IN_PORT, OFPVID_PRESENT

Action = tuple


def output(port: int) -> Action:
    return ("output", port)


def to_controller() -> Action:
    """Send the frame to the controller as a packet-in, whole."""
    return ("output", OFPP_CONTROLLER)


def group(group_id: int) -> Action:
    return ("group", group_id)


def push_vlan(vid: int) -> tuple[Action, Action]:
    return (("push_vlan", 0x8100), ("set_field", "vlan_vid", OFPVID_PRESENT | vid))


def set_vlan(vid: int) -> Action:
    """Rewrite the outer tag's VLAN id (a pop and a push in one action)."""
    return ("set_field", "vlan_vid", OFPVID_PRESENT | vid)


def move(src: str, dst: str) -> Action:
    """Copy one header field into another (Nicira move)."""
    return ("move", src, dst)


def pop_vlan() -> Action:
    return ("pop_vlan",)


def set_tunnel_key(key: int) -> Action:
    return ("set_field", "tunnel_id", key)


@dataclass(frozen=True, order=True)
class Flow:
    table: int
    priority: int
    match: tuple = ()                   # sorted ((field, value), ...)
    actions: tuple = ()                 # apply-actions; empty means drop
    goto: int | None = None             # goto-table instruction
    write_metadata: tuple | None = None  # (value, mask) instruction
    cookie: int = field(default=0, compare=False)
    meter: int | None = None            # meter instruction (before the actions)

    def __hash__(self) -> int:
        """Computed once: a flow is hashed wherever it goes (the packing
        cache, every plan's sets), and hashing its nested tuples again each
        time was a tenth of a controller's CPU programming a fabric."""
        try:
            return self.__dict__["_hash"]
        except KeyError:
            value = self.__dict__["_hash"] = hash((self.table, self.priority, self.match,
                                                   self.actions, self.goto,
                                                   self.write_metadata, self.meter))
            return value

    def __getstate__(self) -> dict:
        """Copied or pickled without its hash: another process hashes
        strings differently."""
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    @staticmethod
    def make(table, priority, match=None, actions=(), goto=None,
             write_metadata=None, cookie=0, meter=None) -> "Flow":
        return Flow(table, priority, tuple(sorted((match or {}).items())),
                    tuple(actions), goto, write_metadata, cookie, meter)

    @property
    def match_dict(self) -> dict:
        return dict(self.match)

    def sort_key(self) -> tuple:
        """Table, priority, then match as text: a field may hold a plain value
        in one flow and a (value, mask) pair in another, which do not compare."""
        return (self.table, self.priority, repr(self.match))

    def identity(self) -> tuple:
        """What OpenFlow uses to tell flows apart: table, priority, match."""
        return (self.table, self.priority, self.match)

    def match_ofctl(self) -> str:
        return ",".join(_match_ofctl(k, v) for k, v in self.match)

    def actions_ofctl(self) -> str:
        instr = [] if self.meter is None else [f"meter:{self.meter}"]
        instr += [action_ofctl(a) for a in self.actions]
        if self.write_metadata is not None:
            instr.append("write_metadata:%#x/%#x" % self.write_metadata)
        if self.goto is not None:
            instr.append(f"goto_table:{self.goto}")
        return ",".join(instr) or "drop"

    def to_ofctl(self, cookie: bool = True) -> str:
        parts = [f"cookie={self.cookie:#x}"] if cookie else []
        parts += [f"table={self.table}", f"priority={self.priority}"]
        if self.match:
            parts.append(self.match_ofctl())
        return ",".join(parts) + " actions=" + self.actions_ofctl()


@dataclass(frozen=True, order=True)
class Group:
    group_id: int
    buckets: tuple = ()                 # (actions, ...), one tuple per bucket
    type: str = "all"

    def to_ofctl(self) -> str:
        buckets = ",".join("bucket=actions=" + ",".join(action_ofctl(a) for a in b)
                           for b in self.buckets)
        return f"group_id={self.group_id},type={self.type}" + (f",{buckets}" if buckets else "")


@dataclass(frozen=True, order=True)
class Meter:
    """A packet-rate meter that drops what exceeds ``rate`` frames a second
    (bursts of up to ``burst`` frames pass)."""
    meter_id: int
    rate: int
    burst: int

    def to_ofctl(self) -> str:
        return (f"meter={self.meter_id},pktps,burst,stats,"
                f"bands=type=drop,rate={self.rate},burst_size={self.burst}")


_OFCTL_FIELDS = {"eth_src": "dl_src", "eth_dst": "dl_dst", "tunnel_id": "tun_id",
                 "eth_type": "dl_type", "ipv4_src": "nw_src", "ip_proto": "nw_proto",
                 "ipv6_nd_target": "nd_target", "ipv6_nd_sll": "nd_sll",
                 "ipv6_nd_tll": "nd_tll"}
#: Fields ``ovs-ofctl`` text shows in decimal, as its own output does.
_DECIMAL = {"ip_proto", "icmpv6_type", "nd_options_type", "udp_src", "udp_dst"}
_NXM = {"eth_src": "NXM_OF_ETH_SRC", "eth_dst": "NXM_OF_ETH_DST", "arp_sha": "NXM_NX_ARP_SHA",
        "arp_tha": "NXM_NX_ARP_THA", "arp_spa": "NXM_OF_ARP_SPA", "arp_tpa": "NXM_OF_ARP_TPA",
        "ipv6_src": "NXM_NX_IPV6_SRC", "ipv6_dst": "NXM_NX_IPV6_DST"}
#: Width in bits of the fields ``move`` copies.
FIELD_BITS = {"eth_src": 48, "eth_dst": 48, "arp_sha": 48, "arp_tha": 48,
              "arp_spa": 32, "arp_tpa": 32, "ipv6_src": 128, "ipv6_dst": 128}


def _match_ofctl(name: str, value) -> str:
    if name == "vlan_vid":
        if value == 0:
            return "vlan_tci=0x0000/0x1fff"
        if value == (OFPVID_PRESENT, OFPVID_PRESENT):
            return "vlan_tci=0x1000/0x1000"
        return f"dl_vlan={value & 0xFFF}"
    if name == "in_port":
        return f"in_port={value}"           # ovs-ofctl reads port numbers in decimal only
    if name in _DECIMAL:
        return f"{name}={value}"
    name = _OFCTL_FIELDS.get(name, name)
    if isinstance(value, tuple):
        v, m = value
        return f"{name}={_fmt(v)}/{_fmt(m)}"
    return f"{name}={_fmt(value)}"


def _fmt(v) -> str:
    return f"{v:#x}" if isinstance(v, int) and v > 9 else str(v)


def action_ofctl(action: Action) -> str:
    kind = action[0]
    if kind == "output" and action[1] == OFPP_CONTROLLER:
        return f"CONTROLLER:{action[2] if len(action) > 2 else OFPCML_NO_BUFFER}"
    if kind == "output":
        return "IN_PORT" if action[1] == OFPP_IN_PORT else f"output:{action[1]}"
    if kind == "move":
        return f"move:{_NXM[action[1]]}[]->{_NXM[action[2]]}[]"
    if kind == "group":
        return f"group:{action[1]}"
    if kind == "push_vlan":
        return f"push_vlan:{action[1]:#06x}"
    if kind == "pop_vlan":
        return "pop_vlan"
    if kind == "set_field":
        _, fld, value = action
        shown = f"{value:#x}" if isinstance(value, int) and fld not in _DECIMAL else value
        return f"set_field:{shown}->{_OFCTL_FIELDS.get(fld, fld)}"
    if kind == "unknown":              # reported by a switch, not one nsgre writes
        return f"unknown({action[1]})"
    raise ValueError(f"unknown action {action!r}")
