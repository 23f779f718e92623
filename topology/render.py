"""A topology as a file again: what ``topology.parse`` reads back into the
same fabric (``previous`` given, for the local VLANs, which a file never
holds).  Every allocated value is written out (tunnel keys, MACs, port
names, datapath ids), so nothing is allocated anew; other optional fields
only when they differ from their defaults.  For the per-object commands,
which change one object of the topology in force and validate the result
as a whole file, with the loader's own messages."""

from __future__ import annotations

import yaml

from topology.loader import TopologyError, parse
from topology.model import DEFAULT_LEASE_TIME, Topology


def document(topo: Topology) -> dict:
    """The topology as the mapping a file holds."""
    networks = {}
    for n in topo.networks.values():
        body: dict = {"key": n.key}
        if n.router is not None:
            body["router"] = n.router
        if not n.dhcp:
            body["dhcp"] = False
        if n.dns:
            body["dns"] = [str(a) for a in n.dns]
        if n.lease_time != DEFAULT_LEASE_TIME:
            body["lease_time"] = n.lease_time
        if n.mtu is not None:
            body["mtu"] = n.mtu
        networks[n.name] = body
    endpoints = {}
    for e in topo.endpoints.values():
        body = {"host": e.host, "kind": e.kind}
        if e.trunk:
            body["vlans"] = {a.vlan: {"network": a.network, "ip": str(a.ip)}
                             for a in e.attachments}
        else:
            body.update(network=e.network, ip=str(e.ip))
        body.update(mac=e.mac, port=e.port)
        if e.link_local is not None:
            body["link_local"] = str(e.link_local)
        if e.declared_iface_id is not None:
            body["iface_id"] = e.declared_iface_id
        endpoints[e.name] = body
    return {"tunnel": topo.tunnel, "broadcast_limit": topo.broadcast_limit,
            "underlay_mtu": topo.underlay_mtu,
            "hosts": {h.name: {"underlay_ip": str(h.underlay_ip), "dpid": h.dpid}
                      for h in topo.hosts.values()},
            "networks": networks, "endpoints": endpoints}


def text(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100)


# -- one object at a time ------------------------------------------------------------------
def adding(section: str, name: str, body: dict):
    """An edit adding ``name`` to ``section`` (hosts, networks, endpoints)."""
    def edit(doc: dict) -> None:
        if name in doc[section]:
            raise TopologyError([f"{section}.{name}: exists already"])
        doc[section][name] = body
    return edit


def removing(section: str, name: str):
    """An edit removing ``name`` from ``section``."""
    def edit(doc: dict) -> None:
        if name not in doc[section]:
            raise TopologyError([f"{section}.{name}: there is no such {section[:-1]}"])
        del doc[section][name]
    return edit


def edited(current: Topology, what: str, edit) -> tuple[Topology, bytes]:
    """``current`` with one object changed by ``edit``, validated whole and
    allocated around it, and its file; ``TopologyError`` with the loader's
    messages, each led by ``what`` (the change's name)."""
    doc = document(current)
    try:
        edit(doc)
    except TopologyError as exc:
        raise TopologyError([f"{what}: {p}" for p in exc.problems]) from None
    data = text(doc).encode()
    return parse(data, what, current), data
