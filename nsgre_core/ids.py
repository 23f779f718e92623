"""Every id nsgre puts on a switch, encoded and decoded here and nowhere
else: flow cookies, flood-group ids, meter ids (storm control and DHCP)
and the pipeline metadata.  The README's pipeline reference is generated from
these constants (``nsgre_core.reference``).
"""

from __future__ import annotations

import functools
import hashlib
from typing import NamedTuple

# -- cookies:  MAGIC(16) | KIND(8) | ID(40) ------------------------------------
COOKIE_MAGIC = 0x4E53            # "NS": this flow is nsgre's
COOKIE_MAGIC_SHIFT = 48
COOKIE_KIND_SHIFT = 40
COOKIE_ID_MASK = (1 << 40) - 1
COOKIE_OWNED = COOKIE_MAGIC << COOKIE_MAGIC_SHIFT
COOKIE_OWNED_MASK = 0xFFFF << COOKIE_MAGIC_SHIFT

KIND_BASE = 0       # table-miss drops and fall-throughs: ID 0
KIND_NETWORK = 1    # ID = the network's tunnel key
KIND_ENDPOINT = 2   # ID = 40-bit hash of the endpoint name
KIND_NAMES = {KIND_BASE: "base", KIND_NETWORK: "network", KIND_ENDPOINT: "endpoint"}


def cookie(kind: int, ident: int = 0) -> int:
    return COOKIE_OWNED | (kind << COOKIE_KIND_SHIFT) | (ident & COOKIE_ID_MASK)


BASE_COOKIE = cookie(KIND_BASE)


def network_cookie(key: int) -> int:
    return cookie(KIND_NETWORK, key)


@functools.lru_cache(maxsize=None)
def endpoint_cookie(name: str) -> int:
    ident = int.from_bytes(hashlib.sha256(f"ep:{name}".encode()).digest()[:5], "big")
    return cookie(KIND_ENDPOINT, ident)


def owned_cookie(value: int) -> bool:
    return value >> COOKIE_MAGIC_SHIFT == COOKIE_MAGIC


class Cookie(NamedTuple):
    kind: str           # base | network | endpoint | kindN
    ident: int


def decode_cookie(value: int) -> Cookie | None:
    """``Cookie(kind name, id)`` for an nsgre cookie, None for anyone else's."""
    if not owned_cookie(value):
        return None
    kind = (value >> COOKIE_KIND_SHIFT) & 0xFF
    return Cookie(KIND_NAMES.get(kind, f"kind{kind}"), value & COOKIE_ID_MASK)


# -- flood groups: one pair per network on a host, from its local VLAN -------
GROUP_FLOOD_ALL_BASE = 0        # + local VLAN: local ports and peer tunnels
GROUP_FLOOD_LOCAL_BASE = 4096   # + local VLAN: local ports only (from a tunnel)
VLAN_MAX = 4094


def flood_groups(vlan: int) -> tuple[int, int]:
    """(flood to all, flood to local ports only) group ids of a local VLAN."""
    return GROUP_FLOOD_ALL_BASE + vlan, GROUP_FLOOD_LOCAL_BASE + vlan


class FloodGroup(NamedTuple):
    vlan: int           # the local VLAN whose network floods through it
    local_only: bool    # True: local ports only (for frames from a tunnel)


def decode_group(group_id: int) -> FloodGroup | None:
    """What a group id nsgre allocates stands for; None for anyone else's."""
    for base, local_only in ((GROUP_FLOOD_ALL_BASE, False), (GROUP_FLOOD_LOCAL_BASE, True)):
        if base < group_id <= base + VLAN_MAX:
            return FloodGroup(group_id - base, local_only)
    return None


def owned_group(group_id: int) -> bool:
    return decode_group(group_id) is not None


# -- meters: two kinds, one of each per endpoint port, from its OpenFlow number --
# OVS numbers real ports below 0xff00, so each kind's range is 0xfeff ids wide;
# the userspace datapath accepts meter ids below 2^18 (0x40000).
METER_STORM_BASE = 0x10000      # + OpenFlow port: storm control of its floods (forward)
METER_STORM_MAX = METER_STORM_BASE + 0xFEFF
METER_DHCP_BASE = 0x20000       # + OpenFlow port: its DHCP to the controller (classify)
METER_DHCP_MAX = METER_DHCP_BASE + 0xFEFF
METER_STORM, METER_DHCP = "storm", "dhcp"
#: Meter kind -> (first id - 1, last id): what ``decode_meter`` reads.
METER_RANGES = {METER_STORM: (METER_STORM_BASE, METER_STORM_MAX),
                METER_DHCP: (METER_DHCP_BASE, METER_DHCP_MAX)}


def storm_meter(ofport: int) -> int:
    return METER_STORM_BASE + ofport


def dhcp_meter(ofport: int) -> int:
    return METER_DHCP_BASE + ofport


class MeterId(NamedTuple):
    kind: str           # storm | dhcp
    ofport: int         # the endpoint port it serves


def decode_meter(meter_id: int) -> MeterId | None:
    """``MeterId(kind, OpenFlow port)`` of a meter nsgre allocates: a
    port's storm-control or DHCP meter; None for anyone else's."""
    for kind, (base, last) in METER_RANGES.items():
        if base < meter_id <= last:
            return MeterId(kind, meter_id - base)
    return None


def owned_meter(meter_id: int) -> bool:
    return decode_meter(meter_id) is not None


# -- metadata written by classify:  local VLAN (bits 16..27) | origin flags --
FROM_TUNNEL = 0x1       # arrived from a tunnel: never sent back into one
FROM_TRUNK = 0x2        # arrived tagged with a guest VLAN: rewrite, do not push
META_VLAN_SHIFT = 16
META_VLAN_MASK = 0xFFF << META_VLAN_SHIFT
META_ORIGIN_MASK = FROM_TUNNEL | FROM_TRUNK
FLAG_NAMES = {FROM_TUNNEL: "from_tunnel", FROM_TRUNK: "from_trunk"}


def metadata(vlan: int, flags: int = 0) -> int:
    return (vlan << META_VLAN_SHIFT) | flags


def metadata_vlan(value: int) -> int:
    """The local VLAN recorded in a metadata value."""
    return (value & META_VLAN_MASK) >> META_VLAN_SHIFT
