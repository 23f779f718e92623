"""The hosts' OVSDB as the controller core uses it (``controller.HostDb``).

Each host's remote comes from a template (``--nsgre-ovsdb``, e.g.
``ssl:{underlay_ip}:6640``); on ``ssl:`` the server must present the
certificate of the host it serves.  Reads and writes are short transactions run
by the core's ``Effects.io``; the interface watch is one long-lived
``monitor_cond`` per host in its own green thread, reconnecting with
backoff, whose reports join the core's queue as ``Interfaces`` events.
"""

from __future__ import annotations

import logging
import time

from os_ken.lib import hub

from nsgre_core import identity
from osken_apps import events as ev
from osken_apps import ovsdb, ovsdb_rpc

LOG = logging.getLogger("nsgre")

#: Seconds between attempts to reach a host's OVSDB: doubling up to the last.
BACKOFF = (0.5, 1, 2, 4, 8)


class OvsdbHosts:
    def __init__(self, template: str, put):
        self.template = template
        self.put = put
        self.watching: dict = {}          # host -> (remote, green thread) of its watch

    def remote(self, topo, host: str) -> str:
        h = topo.host(host)
        remote = self.template.format(host=host, underlay_ip=h.underlay_ip)
        if remote.startswith("ssl:"):
            ovsdb_rpc.bind(remote, identity.Identity("host", host))
        return remote

    def prepare(self, topo, host: str) -> ev.HostPorts:
        remote = self.remote(topo, host)
        try:
            ports, changed = ovsdb.tunnels_to_step(remote, ovsdb.tunnel_ports(topo, host))
        except ovsdb.OvsdbError as exc:
            return ev.HostPorts(host, topo, None, error=f"{remote}: {exc}")
        return ev.HostPorts(host, topo, None if ports is None else ovsdb.ofports(ports),
                            changed)

    def mark(self, topo, host: str, marks: dict) -> ev.Marked:
        remote = self.remote(topo, host)
        try:
            ovsdb.transact(remote, ovsdb.mark_ops(marks, int(time.time() * 1000)))
        except ovsdb.OvsdbError as exc:
            return ev.Marked(host, marks, f"{remote}: {exc}")
        return ev.Marked(host, marks)

    def watch(self, topo, host: str) -> None:
        remote = self.remote(topo, host)
        if self.watching.get(host, (None,))[0] == remote:
            return
        self.unwatch(host)
        self.watching[host] = (remote, hub.spawn(self._watch, host, remote))

    def unwatch(self, host: str) -> None:
        remote, thread = self.watching.pop(host, (None, None))
        if thread is not None:
            hub.kill(thread)             # its monitor's session is closed on the way out

    def _watch(self, host: str, remote: str) -> None:
        """Until the host is watched elsewhere or no more: monitor, and
        after a failure wait a little longer each time, as OVSDB clients
        do.  A host whose OVSDB has not answered yet is reported with no
        interfaces after the first failure: its switch is then bound by
        port names, as without OVSDB, rather than kept waiting."""
        failures, answered, last = 0, False, None

        def alive():
            return self.watching.get(host, (None,))[0] == remote

        def report(interfaces, names):
            nonlocal failures, answered, last
            failures, answered = 0, True
            self.put(ev.Interfaces(host, interfaces, None if names is None else frozenset(names),
                                   last))
            last = interfaces
        while alive():
            try:
                ovsdb.watch_interfaces(remote, report, alive=alive)
            except ovsdb.OvsdbError as exc:
                if failures == 0:
                    LOG.warning("nsgre: %s: interfaces not watched: %s (retrying)", host, exc)
                    if not answered:
                        self.put(ev.Interfaces(host, {}))
                hub.sleep(BACKOFF[min(failures, len(BACKOFF) - 1)])
                failures += 1
