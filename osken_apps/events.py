"""What happens to the controller, as plain records.

Every input reaches the controller core (``osken_apps.controller``) as one
of these, through one queue: the os-ken shim decodes switch messages into
them, SIGHUP and ``POST /apply`` become ``Reload`` and ``Apply``, OVSDB
reads come back as ``HostPorts``, timers as ``FlushPorts``,
``PrepareChunk`` and ``AuditTick``.  Nothing here imports os-ken.

``conn`` is the switch connection the event came on (anything with
``send(bytes)``): a reply or a port change from a connection that has been
replaced is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class SwitchUp:
    """A switch finished the OpenFlow handshake."""
    dpid: int
    conn: Any


@dataclass(frozen=True)
class SwitchDown:
    dpid: int
    conn: Any


@dataclass(frozen=True)
class SwitchRefused:
    """An OpenFlow connection refused: its TLS handshake failed, its
    certificate does not allow the datapath id it presented
    (``osken_apps.tls``), or it sent a malformed message (``osken_apps.guard``)."""
    address: Any
    identity: str | None
    dpid: int | None
    why: str
    reason: str                  # handshake | identity | malformed


@dataclass(frozen=True)
class ClientRefused:
    """An API client whose TLS handshake failed."""
    address: Any
    why: str


@dataclass(frozen=True)
class PortChanged:
    """A port came (or changed number) or went (``ofport`` None)."""
    dpid: int
    conn: Any
    name: str
    ofport: int | None


@dataclass(frozen=True)
class StateReply:
    """One part of a switch's state read (``part``: ports, flows, groups or
    meters); ``items``: name -> ofport for ports, records otherwise.
    ``more``: further replies to the same request follow."""
    dpid: int
    conn: Any
    xid: int
    part: str
    items: Any
    more: bool = False


@dataclass(frozen=True)
class FlowCount:
    """How many flows the switch holds in nsgre's cookie space."""
    dpid: int
    conn: Any
    xid: int
    count: int


@dataclass(frozen=True)
class BarrierReply:
    dpid: int
    conn: Any
    xid: int


@dataclass(frozen=True)
class PacketIn:
    """A frame the pipeline sent to the controller (DHCP from an endpoint
    port, metered on the switch), as it arrived on ``in_port``."""
    dpid: int
    conn: Any
    in_port: int
    data: bytes


@dataclass(frozen=True)
class SwitchError:
    """An OpenFlow error message: the switch refused the message ``xid``."""
    dpid: int
    conn: Any
    xid: int
    type: int
    code: int


@dataclass(frozen=True)
class RoleReply:
    """The switch's answer to a role request: the role this connection has
    now and the switch's generation (the newest a MASTER claimed)."""
    dpid: int
    conn: Any
    xid: int
    role: int
    generation: int


@dataclass(frozen=True)
class RoleStatus:
    """The switch changed this connection's role on its own: another
    controller claimed MASTER with ``generation``."""
    dpid: int
    conn: Any
    role: int
    generation: int


@dataclass(frozen=True)
class Leadership:
    """The lock of a shard of the hosts (``topodb.lock_name``; shard 0: the
    only one of a fabric not sharded) was granted, with the ``generation``
    this master claims on their switches (taken in the database under the
    lock), or lost (None: the session closed, or its member stopped leading)."""
    shard: int
    generation: int | None


@dataclass(frozen=True)
class Reload:
    """Read the topology file again (SIGHUP)."""


@dataclass(frozen=True)
class Apply:
    """A topology posted to the API; ``done(status, body)`` answers it,
    with ``wait`` only once every host holds it (``nsgre apply --wait``)."""
    text: str | bytes
    source: str
    done: Callable[[int, dict], None] = field(compare=False)
    wait: bool = False


@dataclass(frozen=True)
class Loaded:
    """A new version of the topology, from the database the controller
    follows (validated and allocated by whoever wrote it)."""
    topology: Any = field(compare=False)
    shards: dict = field(default_factory=dict, compare=False)   # host -> shard


@dataclass(frozen=True)
class Change:
    """One object of the topology added or removed through the API
    (``nsgre endpoint add ...``, a ``topology.edit.Change``); ``done``
    answers the POST."""
    what: str
    change: Any
    done: Callable[[int, dict], None] = field(compare=False)


@dataclass(frozen=True)
class Rendered:
    """The topology in force after a change as its file (made off the event
    loop), to write to the controller's file; then ``body`` answers the
    change's POST through ``done``."""
    version: int
    data: bytes
    what: str
    body: dict = field(compare=False)
    done: Callable[[int, dict], None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Validated:
    """A topology validated off the event loop (``result``: the Topology, or
    the exception that refused it), allocated around ``previous``; ``check``
    does it again around another topology; ``done`` answers a POST."""
    previous: Any
    result: Any
    check: Callable = field(compare=False)
    what: str = "apply"
    done: Callable[[int, dict], None] | None = field(default=None, compare=False)
    wait: bool = False
    save: bool = False                 # write the topology back to the controller's file


@dataclass(frozen=True)
class HostPorts:
    """A host's bridge as read over OVSDB (None: no bridge; ``error``: the
    read failed), for the topology it was asked for."""
    host: str
    topology: Any
    ports: dict | None
    tunnels_changed: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Interfaces:
    """A host's br-int interfaces as OVSDB holds them now: interface name
    -> its ``external_ids`` (``iface-id``, ``attached-mac``, ...).  With
    ``changed``, the names that differ from ``base``, the very dict of the
    watch's previous report: only those need a look when the core holds
    that same object (compared by identity; a copy gets a full look)."""
    host: str
    interfaces: dict
    changed: frozenset | None = None
    base: dict | None = None


@dataclass(frozen=True)
class Marked:
    """``nsgre-installed`` written (True) or removed (False) on a host's
    interfaces, or not (``error``)."""
    host: str
    marks: dict
    error: str | None = None


@dataclass(frozen=True)
class PrepareChunk:
    """Go on computing a host's pipeline ahead of its switch."""
    host: str
    topology: Any
    ports: dict
    start: int
    started: float


@dataclass(frozen=True)
class FlushPorts:
    """Port events of a switch gathered long enough: sync their networks."""
    dpid: int
    conn: Any


@dataclass(frozen=True)
class AuditNext:
    """Time for the audit's next read of a switch (reads are paced)."""
    dpid: int
    conn: Any


@dataclass(frozen=True)
class AuditTick:
    """Time to check the switches again."""
