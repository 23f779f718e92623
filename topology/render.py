"""A topology as a file again: what ``topology.parse`` reads back into the
same fabric (``previous`` given, for the local VLANs, which a file never
holds).  Every allocated value is written out (tunnel keys, MACs, port
names, datapath ids), so nothing is allocated anew; other optional fields
only when they differ from their defaults.  For a controller that keeps
its file, and for the per-object changes that must be validated as a
whole file (``topology.edit``), with the loader's own messages."""

from __future__ import annotations

import functools
import re

import yaml

from topology.loader import TopologyError, parse
from topology.model import DEFAULT_LEASE_TIME, Topology


def _network_body(n) -> dict:
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
    return body


def _endpoint_body(e) -> dict:
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
    return body


def _host_body(h) -> dict:
    return {"underlay_ip": str(h.underlay_ip), "dpid": h.dpid}


_BODIES = {"hosts": _host_body, "networks": _network_body, "endpoints": _endpoint_body}


def document(topo: Topology) -> dict:
    """The topology as the mapping a file holds."""
    return {"tunnel": topo.tunnel, "broadcast_limit": topo.broadcast_limit,
            "underlay_mtu": topo.underlay_mtu,
            **{section: {o.name: body(o) for o in getattr(topo, section).values()}
               for section, body in _BODIES.items()}}


def file_text(topo: Topology) -> str:
    """``text(document(topo))``, each object's line remembered: objects are
    shared between versions (``Topology.changed``), so a controller writing
    its file after a one-object change formats one line, not 15,000."""
    out = [f"{key}: {_flow(getattr(topo, key))}"
           for key in ("tunnel", "broadcast_limit", "underlay_mtu")]
    for section in _BODIES:
        objs = getattr(topo, section)
        out.append(f"{section}:" + ("" if objs else " {}"))
        out.extend(_line(section, o) for o in objs.values())
    return "\n".join(out) + "\n"


@functools.lru_cache(maxsize=1 << 17)
def _line(section: str, obj) -> str:
    return f"  {_scalar(obj.name)}: {_flow(_BODIES[section](obj))}"


#: A string the loader reads back as that string when written bare: it
#: starts with a letter or digit, holds no YAML indicator, and no implicit
#: resolver (int, float, bool, null, timestamp...) claims it.
_BARE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]*$")
_RESOLVER = yaml.resolver.Resolver()
_STR = "tag:yaml.org,2002:str"


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _string(str(value))


@functools.lru_cache(maxsize=1 << 16)       # names recur: hosts, kinds, networks
def _string(s: str) -> str:
    if _BARE.match(s) and _RESOLVER.resolve(yaml.ScalarNode, s, (True, False)) == _STR:
        return s
    return "'" + s.replace("'", "''") + "'"


def _flow(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_flow, value)) + "]"
    return _scalar(value)


def text(doc: dict) -> str:
    """The document as YAML, an object a line.  Written here rather than by
    PyYAML's emitter, which took 1.5 s (C) to 4.5 s for a 10,000-endpoint
    fabric: a per-object change writes its controller's file every time."""
    out = []
    for key, value in doc.items():
        if isinstance(value, dict) and key in ("hosts", "networks", "endpoints"):
            out.append(f"{key}:" + ("" if value else " {}"))
            out.extend(f"  {_scalar(name)}: {_flow(body)}" for name, body in value.items())
        else:
            out.append(f"{key}: {_flow(value)}")
    return "\n".join(out) + "\n"


# -- one object at a time ------------------------------------------------------------------
def edited(current: Topology, what: str, change) -> Topology:
    """``current`` with one object changed (``topology.edit.Change``),
    validated whole and allocated around it; ``TopologyError``
    with the loader's messages, each led by ``what`` (the change's name).
    ``topology.edit.edited`` goes this way only when it must."""
    doc = document(current)
    try:
        change.on(doc)
    except TopologyError as exc:
        raise TopologyError([f"{what}: {p}" for p in exc.problems]) from None
    return parse(text(doc).encode(), what, current)
