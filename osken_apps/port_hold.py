"""When a port's change is synced: at once for a port that changes now and
then, ever less often for one that flaps.

A quiet port's change is synced ``GATHER`` seconds after it comes: port
events that come together (a hypervisor starting 50 guests in one OVSDB
transaction: 50 port-status messages back to back) are queued together
and go out as one bundle, and a guest's port is not kept waiting for
companions that are not coming (the time to ``nsgre-installed`` is what
a hypervisor waits on).  Two syncs of one port are ``BASE`` seconds apart
at least: a port that changes again sooner is flapping, and the time
between two of its syncs doubles, up to ``MAX`` seconds, as a bridge
dampens a flapping link; it falls back to ``BASE`` once the port has been
quiet for twice that long.  However it flaps, its flows are right at most
``MAX`` seconds after it settles, and it costs the controller at most one
resync every ``MAX`` seconds meanwhile (an endpoint's eth0 flapped 951
times in 10 s used to cost 200 resyncs and 3,000 log lines).  Pure: time
is passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

GATHER = 0.005       # seconds a quiet port's events gather before they are synced
BASE = 0.05          # shortest time between two syncs of one port
MAX = 5.0            # longest hold between two syncs of a flapping port


@dataclass
class PortHold:
    delay: float = BASE
    due: float | None = None            # when its pending change is synced; None: none pending
    last_sync: float = -math.inf
    networks: set = field(default_factory=set)   # networks its pending change touches
    changes: int = 0                    # changes since its last sync
    flaps: int = 0                      # changes ever seen while it was flapping

    @property
    def flapping(self) -> bool:
        return self.delay > BASE

    def change(self, now: float, networks) -> float | None:
        """Record a change; the time its sync falls due when a timer must be
        set for it (None: one is pending already)."""
        self.networks |= networks
        self.changes += 1
        if self.flapping:
            self.flaps += 1
        if self.due is not None:
            return None
        quiet = now - self.last_sync
        if quiet > 2 * self.delay:
            self.delay = BASE
        elif quiet < self.delay:
            self.delay = min(2 * self.delay, MAX)
        self.due = max(now + GATHER, self.last_sync + self.delay)
        return self.due

    def take(self, now: float) -> set | None:
        """The networks to sync now if this port's sync is due, else None."""
        if self.due is None or self.due > now:
            return None
        networks, self.networks = self.networks, set()
        self.due, self.last_sync, self.changes = None, now, 0
        return networks
