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


class _FreeSlots:
    """The first free value at or after a slot, wrapping around ``first``..
    ``last``: what linear probing finds, in near-constant time however long
    the runs of taken values (a file declaring 200,000 consecutive keys must
    not cost 200,000 steps for every network hashed into them)."""

    def __init__(self, first: int, last: int, used):
        self.first, self.last = first, last
        self.after = {v: self._succ(v) for v in used}   # taken value -> where to look next

    def _succ(self, v: int) -> int:
        return v + 1 if v < self.last else self.first

    def take(self, start: int) -> int:
        path, v = [], start
        while v in self.after:
            path.append(v)
            v = self.after[v]
        for p in path:                                    # path compression
            self.after[p] = v
        self.after[v] = self._succ(v)
        return v


def _claim_previous(names, previous: dict, valid, used: set, out: dict):
    """Give each name its previous value when that is still valid and free:
    what a running fabric already uses is never renumbered."""
    for name in sorted(names):
        value = previous.get(name)
        if value is not None and valid(value) and value not in used:
            out[name] = value
            used.add(value)


def allocate_keys(explicit: dict[str, int | None], max_key: int,
                  previous: dict[str, int] | None = None) -> dict[str, int]:
    """Tunnel keys: explicit ones as given; then a network's previous key;
    the rest hashed from the name into 1..max_key and probed linearly past
    keys already taken."""
    keys = {n: k for n, k in explicit.items() if k is not None}
    used = set(keys.values())
    pending = [n for n, k in explicit.items() if k is None]
    _claim_previous(pending, previous or {}, lambda k: 1 <= k <= max_key, used, keys)
    free = _FreeSlots(1, max_key, used)
    for name in sorted(n for n in pending if n not in keys):
        keys[name] = free.take(_slot(name, max_key) + 1)
    return keys


def allocate_local_vlans(keys: dict[str, int],
                         previous: dict[str, int] | None = None) -> dict[str, int]:
    """Host-local VLAN ids for the networks one host carries.

    First the VLAN a network already had on this host; then the key itself
    where it is a valid VLAN id, so the source post's VLAN 10 stays VLAN 10
    on the bridge; larger keys are hashed into the VLAN range, skipping ids
    already in use on this host.
    """
    vlans: dict[str, int] = {}
    used: set[int] = set()
    _claim_previous(keys, previous or {}, lambda v: VLAN_MIN <= v <= VLAN_MAX, used, vlans)
    for name, key in sorted(keys.items()):
        if name not in vlans and VLAN_MIN <= key <= VLAN_MAX and key not in used:
            vlans[name] = key
            used.add(key)
    span = VLAN_MAX - VLAN_MIN + 1
    free = _FreeSlots(VLAN_MIN, VLAN_MAX, used)
    for name, key in sorted((n, k) for n, k in keys.items() if n not in vlans):
        vlans[name] = free.take(key % span + VLAN_MIN)
    return vlans


def allocate_names(pending: list[str], default, used: set, previous: dict | None = None) -> dict:
    """MACs or port names for those not given one: the previous value, else
    ``default(name)``, else ``default(name#1)``... past values in ``used``."""
    out: dict = {}
    _claim_previous(pending, previous or {}, lambda v: True, used, out)
    for name in sorted(n for n in pending if n not in out):
        value, attempt = default(name), 0
        while value in used:
            attempt += 1
            value = default(f"{name}#{attempt}")
        out[name] = value
        used.add(value)
    return out


def default_mac(endpoint: str) -> str:
    """A locally administered unicast MAC (02:...) hashed from the name."""
    digest = hashlib.sha256(f"mac:{endpoint}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def default_port(endpoint: str) -> str:
    """Bridge-side interface name: ``p-NAME``, hashed to fit 15 bytes."""
    name = f"p-{endpoint}"
    if len(name) <= 15 and "#" not in endpoint:
        return name
    return f"p-{endpoint[:6]}-{short_hash(endpoint, 6)}"


def default_dpid(underlay_ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    """The underlay address as a number: unique because addresses are, and
    readable in ``ovs-ofctl`` output (198.18.0.1 -> 0xc6120001)."""
    return int(underlay_ip) & (2**48 - 1)
