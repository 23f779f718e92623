"""One object of the topology in force added or removed: the per-object
commands (``nsgre endpoint|network|host add|del``) and the database's
follower.

A change is checked in what it touches (the object's own fields with the
loader's own checks, then against the few objects it could clash with)
and the next version is built from this one (``Topology.changed``), so an
endpoint added to a 10,000-endpoint fabric costs milliseconds, not the
second a whole file takes.  Anything unusual -- any problem at all, a
name taken, a removal others depend on -- goes the whole way instead: the
topology rendered as a file with the change, validated whole
(``render.edited``), so a refusal says exactly what ``nsgre apply`` would.
A property test holds the quick way to the whole one.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

from topology import allocate, loader
from topology.model import (MAX_KEY, VLAN_MAX, Endpoint, Host, Network, Topology,
                            tunnel_overhead, tunnel_port_name)

SECTIONS = ("hosts", "networks", "endpoints")


class Change(NamedTuple):
    """``name`` added to ``section`` with the fields a file would give it
    (``body``), or removed (``body`` None)."""
    section: str
    name: str
    body: dict | None = None

    def on(self, doc: dict) -> None:
        """Make the change in a topology's document (``render.document``)."""
        where = doc[self.section]
        if self.body is None:
            if self.name not in where:
                raise loader.TopologyError(
                    [f"{self.section}.{self.name}: there is no such {self.section[:-1]}"])
            del where[self.name]
        else:
            if self.name in where:
                raise loader.TopologyError([f"{self.section}.{self.name}: exists already"])
            where[self.name] = self.body


def edited(current: Topology, what: str, change: Change) -> Topology:
    """``current`` with ``change`` made, validated and allocated as the
    whole file would be (``TopologyError`` with the loader's messages, each
    led by ``what``); the result keeps ``current``'s source."""
    quick = _QUICK[change.section, change.body is None](current, change.name, change.body)
    if quick is not None:
        return quick
    from topology import render
    topo = render.edited(current, what, change)
    topo.source = current.source
    return topo


# -- the quick way: None whenever the whole way must decide -------------------------------
def _fields_ok(check, *args) -> object | None:
    p = loader._Problems("")
    p.hint_budget = 0                      # no hints: a problem goes the whole way anyway
    result = check(p, *args)
    return None if p.items else result


def _add_endpoint(cur: Topology, name: str, body) -> Topology | None:
    if name in cur.endpoints or not isinstance(body, dict) or not loader.NAME_RE.match(name):
        return None
    fields = _fields_ok(loader.endpoint_fields, name, body, cur.hosts, cur.networks, cur.tunnel)
    if fields is None:
        return None
    host, kind, attachments, mac, port, link_local, iface_id = fields
    for a in attachments:
        if any(b.network == a.network and b.ip.ip == a.ip.ip
               for e in cur.members(a.network) for b in e.attachments):
            return None                                  # the address is taken there
    macs = cur.macs
    if mac is not None and mac in macs:
        return None
    on_host = {e.port for e in cur.endpoints_on(host)}
    if port is not None and port in on_host:
        return None
    ids = cur.iface_ids
    if (iface_id if iface_id is not None else name) in ids or name in ids:
        return None
    if mac is None:
        mac = allocate.allocate_names([name], allocate.default_mac, set(macs))[name]
    if port is None:
        port = allocate.allocate_names([name], allocate.default_port, on_host)[name]
    ep = Endpoint(name, host, kind, tuple(attachments), mac, port, link_local, iface_id)
    if link_local is not None or any(a.ip.version == 6 for a in attachments):
        neighbours = {e.name: e for a in attachments for e in cur.members(a.network)}
        neighbours[name] = ep
        p = loader._Problems("")
        loader._check_link_locals(p, {n: {} for n in neighbours},
                                  sorted(neighbours.values(), key=lambda e: e.name))
        if p.items:
            return None
    carried = {n.name: n.key for n in cur.networks_on(host)}
    new_nets = [a.network for a in attachments if a.network not in carried]
    if not new_nets:
        return cur.changed(endpoints={name: ep})
    carried.update((n, cur.networks[n].key) for n in new_nets)
    if len(carried) > VLAN_MAX:
        return None
    before = {n.name: cur.local_vlan(host, n.name) for n in cur.networks_on(host)}
    vlans = allocate.allocate_local_vlans(carried, before)
    if any(vlans[n] != v for n, v in before.items()):
        return None                                      # never renumber: the whole way
    return cur.changed(endpoints={name: ep},
                       local_vlans={(host, n): vlans[n] for n in new_nets})


def _del_endpoint(cur: Topology, name: str, _body) -> Topology | None:
    ep = cur.endpoints.get(name)
    if ep is None or any(n.router == name for n in map(cur.networks.get, ep.networks)):
        return None
    gone = {(ep.host, net): None for net in ep.networks
            if not any(e.name != name and e.host == ep.host for e in cur.members(net))}
    return cur.changed(endpoints={name: None}, local_vlans=gone)


def _add_network(cur: Topology, name: str, body) -> Topology | None:
    if name in cur.networks or not isinstance(body, dict) or not loader.NAME_RE.match(name) \
            or "router" in body:                         # no member yet: always refused
        return None
    max_key = MAX_KEY[cur.tunnel]
    explicit = _fields_ok(loader._networks, {name: body}, cur.tunnel, max_key)
    if explicit is None or name not in explicit:
        return None
    keys = {n.key: n.name for n in cur.networks.values()}
    if explicit[name] is not None and explicit[name] in keys:
        return None
    max_mtu = cur.underlay_mtu - tunnel_overhead(cur.tunnel, cur.ipv6_underlay)
    settings = _fields_ok(loader._network_settings, {name: body}, max_mtu, "")
    if settings is None or name not in settings:
        return None
    allocated = allocate.allocate_keys({**{k: v for v, k in keys.items()}, name: explicit[name]},
                                       max_key, {n: v for v, n in keys.items()})
    return cur.changed(networks={name: Network(name, allocated[name], None, **settings[name])})


def _del_network(cur: Topology, name: str, _body) -> Topology | None:
    if name not in cur.networks or cur.members(name):
        return None
    return cur.changed(networks={name: None})


def _add_host(cur: Topology, name: str, body) -> Topology | None:
    if name in cur.hosts or not isinstance(body, dict) or not loader.NAME_RE.match(name):
        return None
    hosts = _fields_ok(loader._hosts, {name: body}, cur.tunnel)
    if hosts is None or name not in hosts:
        return None
    h: Host = hosts[name]
    if isinstance(h.underlay_ip, ipaddress.IPv6Address) and not cur.ipv6_underlay:
        return None                      # the tunnel-safe MTU shrinks: networks' mtu rechecked
    port = tunnel_port_name(cur.tunnel, name)
    if any(o.underlay_ip == h.underlay_ip or o.dpid == h.dpid
           or tunnel_port_name(cur.tunnel, o.name) == port for o in cur.hosts.values()):
        return None
    return cur.changed(hosts={name: h})


def _del_host(cur: Topology, name: str, _body) -> Topology | None:
    if name not in cur.hosts or cur.endpoints_on(name):
        return None
    return cur.changed(hosts={name: None})


_QUICK = {("endpoints", False): _add_endpoint, ("endpoints", True): _del_endpoint,
          ("networks", False): _add_network, ("networks", True): _del_network,
          ("hosts", False): _add_host, ("hosts", True): _del_host}
