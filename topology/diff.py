"""What changed between two versions of a topology, per network.

A network's flows on a host depend on its *view*: its key, its members
(name, host, MAC, port, address, guest VLAN), the hosts carrying it with
their local VLANs, the tunnel type, whether storm control is on, its router
and whether its DHCP goes to the controller (``dhcp``).  Two versions whose
views of a network are equal need nothing sent for that network anywhere,
so a change costs in proportion to the networks it touches, not to the
fabric.  (``dns``, ``lease_time`` and ``mtu`` are no part of it: no flow
depends on them; the controller's DHCP answers read them from the model.)
"""

from __future__ import annotations

from collections import defaultdict

from topology.model import Topology


def changed_networks(old: Topology, new: Topology) -> set[str]:
    """Networks added, removed, or whose view differs."""
    before, after = old.views, new.views
    return {name for name, view in after.items() if before.get(name) != view} | \
        (before.keys() - after.keys())


def hosts_touched(old: Topology, new: Topology, networks: set[str]) -> dict[str, set[str]]:
    """Host -> the changed networks it carries in either version: the only
    pieces of the only bridges a change needs recomputed."""
    touched: dict[str, set[str]] = defaultdict(set)
    for topo in (old, new):
        views = topo.views
        for name in networks:
            view = views.get(name)
            if view is not None:
                for host, _ in view.carrying:
                    touched[host].add(name)
    return dict(touched)
