"""Deterministic allocation of what a topology file may leave out.

Every value is derived from names and explicit values only (never from
dict order, time or randomness), so the same file gives the same fabric on
any machine.
"""

from __future__ import annotations

import hashlib
import ipaddress

from topology.model import VLAN_MAX, VLAN_MIN


def short_hash(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _slot(text: str, size: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % size


def allocate_keys(explicit: dict[str, int | None], max_key: int) -> dict[str, int]:
    """Tunnel keys: explicit ones as given, the rest hashed from the name
    into 1..max_key and probed linearly past keys already taken."""
    keys = {n: k for n, k in explicit.items() if k is not None}
    used = set(keys.values())
    for name in sorted(n for n, k in explicit.items() if k is None):
        key = _slot(name, max_key) + 1
        while key in used:
            key = key % max_key + 1
        keys[name] = key
        used.add(key)
    return keys


def allocate_local_vlans(keys: dict[str, int]) -> dict[str, int]:
    """Host-local VLAN ids for the networks one host carries.

    A key that is itself a valid VLAN id is used as the VLAN id, so the
    source post's VLAN 10 stays VLAN 10 on the bridge; larger keys are
    hashed into the VLAN range, skipping ids already in use on this host.
    """
    vlans = {n: k for n, k in keys.items() if VLAN_MIN <= k <= VLAN_MAX}
    used = set(vlans.values())
    span = VLAN_MAX - VLAN_MIN + 1
    for name, key in sorted((n, k) for n, k in keys.items() if n not in vlans):
        vlan = key % span + VLAN_MIN
        while vlan in used:
            vlan = (vlan - VLAN_MIN + 1) % span + VLAN_MIN
        vlans[name] = vlan
        used.add(vlan)
    return vlans


def default_mac(endpoint: str) -> str:
    """A locally administered unicast MAC (02:...) hashed from the name."""
    digest = hashlib.sha256(f"mac:{endpoint}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def default_port(endpoint: str) -> str:
    """Bridge-side interface name: ``p-NAME``, hashed to fit 15 bytes."""
    name = f"p-{endpoint}"
    if len(name) <= 15:
        return name
    return f"p-{endpoint[:6]}-{short_hash(endpoint, 6)}"


def default_dpid(underlay_ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    """The underlay address as a number: unique because addresses are, and
    readable in ``ovs-ofctl`` output (198.18.0.1 -> 0xc6120001)."""
    return int(underlay_ip) & (2**48 - 1)
