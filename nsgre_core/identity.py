"""Who a certificate says its holder is: the one place that layout lives.

Every certificate nsgre's CA issues names one identity, as a URI in its
subjectAltName: ``urn:nsgre:<kind>:<name>`` (the subject's CN repeats the
name, OU the kind, for people and for ovsdb-server's RBAC, which match on
CN).  Kinds:

- ``host``: a host's Open vSwitch (OpenFlow to the controllers, its OVSDB);
  a switch may only be the switch of the host its certificate names;
- ``controller``: an nsgre controller (OpenFlow listener, topology database);
- ``reader`` / ``writer``: a client of the API or the topology database,
  allowed to read, or to read and change.
"""

from __future__ import annotations

import re
from typing import NamedTuple

KINDS = ("host", "controller", "reader", "writer")
PREFIX = "urn:nsgre:"
#: What a name may be: a topology name (hosts are named like that), no
#: separator of the URI, nothing a shell or a path would read twice.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class Identity(NamedTuple):
    kind: str
    name: str

    def uri(self) -> str:
        return f"{PREFIX}{self.kind}:{self.name}"

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def may_write(self) -> bool:
        """Allowed to change the topology through the API."""
        return self.kind == "writer"


def make(kind: str, name: str) -> Identity:
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: one of {', '.join(KINDS)}")
    if not NAME.match(name or ""):
        raise ValueError(f"name {name!r}: letters, digits, '.', '_', '-' "
                         "(starting with a letter or digit, at most 63)")
    return Identity(kind, name)


def from_uri(uri: str) -> Identity | None:
    if not uri.startswith(PREFIX):
        return None
    kind, _, name = uri[len(PREFIX):].partition(":")
    try:
        return make(kind, name)
    except ValueError:
        return None


def from_peercert(cert: dict | None) -> Identity | None:
    """The identity in a verified peer certificate as Python's ``ssl``
    gives it (``getpeercert()``); None when it names none, or several."""
    found = {from_uri(value) for kind, value in (cert or {}).get("subjectAltName", ())
             if kind == "URI" and value.startswith(PREFIX)}
    found.discard(None)
    return found.pop() if len(found) == 1 else None


def switch_refusal(identity: Identity | None, dpid: int, topo) -> str | None:
    """Why a switch with this certificate may not present ``dpid`` (None: it
    may).  A host's certificate makes its holder the switch of that host
    only; nothing else is a switch."""
    if identity is None:
        return "its certificate names no nsgre identity"
    if identity.kind != "host":
        return f"its certificate is a {identity.kind}'s ({identity.name}), not a host's"
    host = topo.hosts.get(identity.name)
    if host is None:
        return f"its certificate names host {identity.name}, which is not in the topology"
    if host.dpid != dpid:
        owner = topo.host_by_dpid(dpid)
        claimed = f"host {owner.name}'s" if owner is not None else "an unknown"
        return (f"its certificate names host {identity.name} (datapath {host.dpid:016x}) "
                f"but it presented {claimed} datapath id {dpid:016x}")
    return None
