"""The pipeline's tables, priorities, group ids and cookie layout, declared
once.  The README documents these same names; keep the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    id: int
    name: str
    purpose: str


CLASSIFY = Table(0, "classify",
                 "admit frames from known endpoint ports (own MAC, untagged) and "
                 "from tunnel ports of peers with the key of a shared network; "
                 "push the network's local VLAN; drop the rest")
FORWARD = Table(1, "forward",
                "deliver by destination MAC within the local VLAN: to a local "
                "port (pop VLAN), to the one tunnel of the host holding the MAC "
                "(pop VLAN, set key), or flood the network through its group")

TABLES = (CLASSIFY, FORWARD)

# Priorities, highest first.
PRIO_ADMIT = 100        # classify: a known port/MAC or tunnel/key
PRIO_UNICAST = 100      # forward: a known destination MAC
PRIO_FLOOD = 50         # forward: broadcast and multicast
PRIO_DROP = 0           # every table: explicit drop of everything else

# Metadata bit set by classify on frames that arrived from a tunnel, so that
# forward never sends them back into a tunnel (split horizon).
FROM_TUNNEL = 0x1

# Group ids: one pair per network on a host, derived from its local VLAN.
GROUP_FLOOD_ALL_BASE = 0        # + local VLAN: local ports and peer tunnels
GROUP_FLOOD_LOCAL_BASE = 4096   # + local VLAN: local ports only (from tunnel)

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
