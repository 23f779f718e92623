"""The fabric as a typed networkx graph: hosts, networks and endpoints.

Everything else (flow pipeline, emulation, CLI) asks this model questions
instead of walking the YAML, so the answers stay consistent everywhere.

Nodes are keyed ``(kind, name)`` so a host and an endpoint may share a
name.  Node kinds and their ``obj`` attribute:

    ("host", name)      Host
    ("network", name)   Network
    ("endpoint", name)  Endpoint

Edge kinds (attribute ``kind``):

    endpoint -> host      "attached"   the endpoint's port is on that host
    endpoint -> network   "member"     ``attachment``: the endpoint's address in
                                       that network (and guest VLAN on a trunk)
    host -> network       "carries"    ``local_vlan``: the host-local VLAN id
    host -> host          "tunnel"     one per ordered pair of hosts
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Iterable, NamedTuple


TUNNEL_TYPES = ("gre", "vxlan", "geneve")
ENDPOINT_KINDS = ("vm", "namespace")

#: Largest tunnel key per tunnel type (GRE key is 32 bits, VNIs 24 bits).
MAX_KEY = {"gre": 2**32 - 1, "vxlan": 2**24 - 1, "geneve": 2**24 - 1}

#: Bytes the encapsulation adds to a frame on an IPv4 underlay, counted
#: against the underlay MTU: GRE 42 = the inner Ethernet header 14 (an MTU
#: counts from the IP header, the tunnel carries the whole frame) + outer
#: IPv4 20 + GRE with key 8; VXLAN 50 = 14 + outer IPv4 20 + UDP 8 + VXLAN 8;
#: Geneve 50 likewise (8-byte header, no options).  The endpoint MTU must
#: leave this much room: 1500 - 42 = 1458 (GRE), 1500 - 50 = 1450.
ENCAP_OVERHEAD = {"gre": 42, "vxlan": 50, "geneve": 50}
#: An IPv6 outer header is 40 bytes, not IPv4's 20.
IPV6_EXTRA_OVERHEAD = 20

#: The underlay's MTU (``underlay_mtu:``): the default, and the range accepted
#: (1280, IPv6's minimum link MTU, up to the usual 9216-byte jumbo frame).
DEFAULT_UNDERLAY_MTU = 1500
UNDERLAY_MTU_MIN, UNDERLAY_MTU_MAX = 1280, 9216
#: The lowest ``mtu:`` a network may declare: every IPv4 host must accept
#: 576-byte datagrams (RFC 791), and DHCP's option 26 may not say less (RFC 2132).
NETWORK_MTU_MIN = 576

#: DHCP (``networks.N.dhcp``, on by default): the lease time handed out unless
#: a network sets ``lease_time:`` (12 hours, OVN's default), its bounds in
#: seconds, and the most DNS servers a network may list (``dns:``).
DEFAULT_LEASE_TIME = 43200
LEASE_TIME_MIN, LEASE_TIME_MAX = 60, 86400 * 365
DNS_MAX = 8

#: DHCP to the controller: frames a second each endpoint port may send up
#: (an OpenFlow meter per port drops the rest, on the switch, before a
#: packet-in is made).  A client sends a DISCOVER and a REQUEST to get a
#: lease, retransmits every 4, 8, 16... seconds while unanswered (RFC 2131
#: 4.1) and renews at half the lease time: well under one frame a second.
#: 20 a second, with a burst of 20, lets a trunk guest bring up a score of
#: VLAN interfaces at once and a guest retry at will, while a guest flooding
#: DHCP costs the controller at most 20 packet-ins a second per port.
DHCP_RATE = 20
DHCP_BURST = 20

#: Storm control: broadcast and multicast frames per second each endpoint
#: port may flood (an OpenFlow meter per port drops the rest).  Hundreds of
#: times what a guest sends: ARP never floods here, it is answered locally.
DEFAULT_BROADCAST_LIMIT = 1000

#: Usable 802.1Q VLAN ids: 0 means "no VLAN" and 4095 is reserved.
VLAN_MIN, VLAN_MAX = 1, 4094


@dataclass(frozen=True)
class Host:
    name: str
    underlay_ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    dpid: int


@dataclass(frozen=True)
class Network:
    name: str
    key: int
    #: The member endpoint that routes this network (``router:`` in the
    #: file); None: none.  IPv6: the one allowed to send router
    #: advertisements and redirects; IPv4: the gateway DHCP hands out.
    router: str | None = None
    #: DHCP answered by the controller from the model (``dhcp:``).
    dhcp: bool = True
    #: DNS servers DHCP hands out (``dns:``), in the file's order.
    dns: tuple[ipaddress.IPv4Address, ...] = ()
    #: Seconds of a DHCP lease (``lease_time:``).
    lease_time: int = DEFAULT_LEASE_TIME
    #: The MTU declared (``mtu:``); None: the tunnel-safe MTU
    #: (``Topology.network_mtu`` gives the one in force).
    mtu: int | None = None


@dataclass(frozen=True)
class Attachment:
    """An endpoint's place in one network.  ``vlan`` is the guest's own
    802.1Q id on a trunk endpoint, None on an access (untagged) endpoint."""
    network: str
    ip: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    vlan: int | None = None


@dataclass(frozen=True)
class Endpoint:
    name: str
    host: str
    kind: str
    attachments: tuple[Attachment, ...]
    mac: str
    port: str
    #: IPv6 link-local address declared in the file (``link_local:``);
    #: None: the EUI-64 address of ``mac`` (see ``ipv6_link_local``).
    link_local: ipaddress.IPv6Address | None = None
    #: ``iface_id:`` as declared in the file; None: the endpoint's name
    #: (see ``iface_id``).
    declared_iface_id: str | None = None

    @property
    def iface_id(self) -> str:
        """The OVS ``external_ids:iface-id`` that names the endpoint's
        interface on its host (libvirt writes its interface UUID there):
        the declared one, else the endpoint's name."""
        return self.declared_iface_id if self.declared_iface_id is not None else self.name

    @property
    def ipv6_link_local(self) -> ipaddress.IPv6Address:
        """The one link-local address the endpoint may send from: the
        declared one, else fe80::/64 + the modified EUI-64 of its MAC."""
        return self.link_local if self.link_local is not None else eui64_link_local(self.mac)

    @property
    def trunk(self) -> bool:
        return self.attachments[0].vlan is not None

    @property
    def networks(self) -> list[str]:
        return [a.network for a in self.attachments]

    def attachment(self, network: str) -> Attachment:
        return next(a for a in self.attachments if a.network == network)

    @property
    def network(self) -> str:
        """The network of an access endpoint (a trunk has several)."""
        if self.trunk:
            raise ValueError(f"endpoint {self.name} is a trunk: see attachments")
        return self.attachments[0].network

    @property
    def ip(self):
        if self.trunk:
            raise ValueError(f"endpoint {self.name} is a trunk: see attachments")
        return self.attachments[0].ip


class Member(NamedTuple):
    """One endpoint's attachment to a network, as the network's flows see it."""
    name: str
    host: str
    mac: str
    port: str
    address: str                 # with prefix length, as text
    guest_vlan: int | None       # a trunk's own 802.1Q id; None on an access port
    link_local: str = ""         # IPv6 members: the endpoint's link-local address


class NetworkView(NamedTuple):
    """Everything one network's flows depend on, in plain strings and ints
    so that comparing two versions is cheap (``topology.diff``): equal views
    need nothing sent for that network anywhere."""
    tunnel: str                  # tunnel type of the fabric
    metered: bool                # storm control on
    key: int
    members: tuple[Member, ...]
    carrying: tuple[tuple[str, int], ...]   # (host, local VLAN), by host name
    router: str | None = None    # the member that may send IPv6 RAs and redirects
    dhcp: bool = True            # the members' DHCP goes to the controller


def _node(kind: str, name: str) -> tuple[str, str]:
    return (kind, name)


def _by_name(objs) -> dict:
    return {o.name: o for o in sorted(objs, key=lambda o: o.name)}


class Topology:
    """A validated, fully allocated fabric.  Build it with ``topology.load``
    (a whole file), ``topology.edit`` (one object changed) or ``changed``.

    It is held as name-keyed indexes, which answer the pipeline's
    questions and let a one-object change build the next version in what
    that object touches; the networkx graph (``graph``) is made from them
    when first asked for."""

    def __init__(self, tunnel: str, hosts: Iterable[Host],
                 networks: Iterable[Network], endpoints: list[Endpoint],
                 local_vlans: dict[tuple[str, str], int], source: str = "<memory>",
                 broadcast_limit: int = DEFAULT_BROADCAST_LIMIT,
                 underlay_mtu: int = DEFAULT_UNDERLAY_MTU):
        self.tunnel = tunnel
        self.source = source
        self.broadcast_limit = broadcast_limit
        self.underlay_mtu = underlay_mtu
        self.hosts: dict[str, Host] = _by_name(hosts)
        self.networks: dict[str, Network] = _by_name(networks)
        self.endpoints: dict[str, Endpoint] = _by_name(endpoints)
        self.local_vlans: dict[tuple[str, str], int] = dict(local_vlans)
        on_host: dict[str, list] = {h: [] for h in self.hosts}
        members: dict[str, list] = {n: [] for n in self.networks}
        for e in self.endpoints.values():                  # by name: lists come sorted
            on_host[e.host].append(e)
            for a in e.attachments:
                members[a.network].append(e)
        carried: dict[str, list] = {h: [] for h in self.hosts}
        carrying: dict[str, list] = {n: [] for n in self.networks}
        for host, net in sorted(self.local_vlans):
            carried[host].append(net)
            carrying[net].append(host)
        self._on_host = {h: tuple(es) for h, es in on_host.items()}
        self._members = {n: tuple(es) for n, es in members.items()}
        self._carried = {h: tuple(ns) for h, ns in carried.items()}
        self._carrying = {n: tuple(hs) for n, hs in carrying.items()}
        # Per network, all its flows depend on (topology.diff compares them).
        self.views = {n: self._view(n) for n in self.networks}

    def changed(self, hosts: dict | None = None, networks: dict | None = None,
                endpoints: dict | None = None, local_vlans: dict | None = None,
                source: str | None = None) -> "Topology":
        """This fabric with the objects given replaced (name -> object, or
        None: removed) and those local VLANs set ((host, network) -> VLAN,
        or None: no longer carried), built in what they touch: the objects
        and indexes nobody changed are shared with this version, which
        stays as it was.  The caller (``topology.edit``, the database's
        follower) validated the change."""
        hosts, networks = hosts or {}, networks or {}
        endpoints, local_vlans = endpoints or {}, local_vlans or {}
        new = object.__new__(Topology)
        new.__dict__.update(tunnel=self.tunnel, broadcast_limit=self.broadcast_limit,
                            underlay_mtu=self.underlay_mtu,
                            source=self.source if source is None else source)
        new.hosts = _patched(self.hosts, hosts)
        new.networks = _patched(self.networks, networks)
        new.endpoints = _patched(self.endpoints, endpoints)
        new.local_vlans = dict(self.local_vlans)
        for pair, vlan in local_vlans.items():
            if vlan is None:
                new.local_vlans.pop(pair, None)
            else:
                new.local_vlans[pair] = vlan
        # Which per-host and per-network lists the change reaches.
        host_touched, net_touched = set(hosts), set(networks)
        for name in endpoints:
            for e in (self.endpoints.get(name), new.endpoints.get(name)):
                if e is not None:
                    host_touched.add(e.host)
                    net_touched.update(e.networks)
        by_host: dict = {}                 # the local VLAN changes by host, and by network
        by_net: dict = {}
        for (host, net), vlan in local_vlans.items():
            host_touched.add(host)
            net_touched.add(net)
            by_host.setdefault(host, []).append((net, vlan))
            by_net.setdefault(net, []).append((host, vlan))
        new._on_host = _regrouped(self._on_host, new.hosts, host_touched, endpoints,
                                  new.endpoints, lambda e: (e.host,))
        new._members = _regrouped(self._members, new.networks, net_touched, endpoints,
                                  new.endpoints, lambda e: e.networks)
        new._carried = _regrouped(self._carried, new.hosts, host_touched, {}, {}, None,
                                  lambda h: _paired(self._carried.get(h, ()), by_host.get(h, ())))
        new._carrying = _regrouped(self._carrying, new.networks, net_touched, {}, {}, None,
                                   lambda n: _paired(self._carrying.get(n, ()),
                                                     by_net.get(n, ())))
        new.views = {n: (new._view(n) if n in net_touched or n not in self.views
                         else self.views[n]) for n in new.networks}
        return new

    def _view(self, name: str) -> NetworkView:
        n = self.networks[name]
        members = sorted(Member(e.name, e.host, e.mac, e.port, str(a.ip), a.vlan,
                                str(e.ipv6_link_local) if a.ip.version == 6 else "")
                         for e in self._members[name] for a in e.attachments
                         if a.network == name)
        carrying = tuple((h, self.local_vlans[(h, name)]) for h in self._carrying[name])
        return NetworkView(self.tunnel, self.broadcast_limit > 0, n.key, tuple(members),
                           carrying, n.router, n.dhcp)

    @cached_property
    def macs(self) -> dict[str, str]:
        """MAC -> the endpoint that has it."""
        return {e.mac: e.name for e in self.endpoints.values()}

    @cached_property
    def iface_ids(self) -> dict[str, str]:
        """Every endpoint's ``iface_id`` (declared, or its name) -> the endpoint."""
        return {e.iface_id: e.name for e in self.endpoints.values()}

    def same_ports(self, other: "Topology", host: str) -> bool:
        """Nothing ``host``'s ports depend on differs from ``other``'s (one
        made from the other by ``changed``, which shares what it did not
        touch): its endpoints, the hosts, and the networks each host carries
        (a tunnel port's networks are those both ends carry)."""
        return other is self or (
            self.hosts is other.hosts and self._on_host.get(host) is other._on_host.get(host)
            and self._carried.keys() == other._carried.keys()
            and all(c is other._carried[h] for h, c in self._carried.items()))

    def sub_fabric(self, hosts: Iterable[str]) -> "Topology":
        """What a controller programming ``hosts`` alone needs, as one of
        several sharing a fabric out holds it (the database's conditions,
        ``rows.conditions``, select the same rows): every host (each is a
        tunnel peer), the networks ``hosts`` carry, their local VLANs on
        every host, and their members -- a trunk elsewhere with its
        attachments to those networks only.  Each of ``hosts`` gets the same
        pipeline from it as from the whole fabric."""
        carried = {n for h in hosts for n in self._carried.get(h, ())}
        endpoints = []
        for e in self.endpoints.values():
            kept = tuple(a for a in e.attachments if a.network in carried)
            if len(kept) == len(e.attachments):
                endpoints.append(e)
            elif kept:
                endpoints.append(replace(e, attachments=kept))
        return Topology(self.tunnel, self.hosts.values(),
                        [n for name, n in self.networks.items() if name in carried], endpoints,
                        {k: v for k, v in self.local_vlans.items() if k[1] in carried},
                        self.source, self.broadcast_limit, self.underlay_mtu)

    # -- the networkx model ---------------------------------------------------
    @cached_property
    def graph(self) -> "networkx.DiGraph":
        """The fabric as the typed graph the module's docstring describes
        (networkx imported here: a command that never asks for the graph
        starts 0.2 s sooner)."""
        import networkx
        g = networkx.DiGraph()
        for h in self.hosts.values():
            g.add_node(_node("host", h.name), kind="host", obj=h)
        for n in self.networks.values():
            g.add_node(_node("network", n.name), kind="network", obj=n)
        for e in self.endpoints.values():
            g.add_node(_node("endpoint", e.name), kind="endpoint", obj=e)
            g.add_edge(_node("endpoint", e.name), _node("host", e.host), kind="attached")
            for a in e.attachments:
                g.add_edge(_node("endpoint", e.name), _node("network", a.network),
                           kind="member", attachment=a)
        for (host, net), vlan in self.local_vlans.items():
            g.add_edge(_node("host", host), _node("network", net),
                       kind="carries", local_vlan=vlan)
        for a in self.hosts:
            for b in self.hosts:
                if a != b:
                    g.add_edge(_node("host", a), _node("host", b), kind="tunnel")
        return g

    # -- lookups ----------------------------------------------------------------
    def host(self, name: str) -> Host:
        return self.hosts[name]

    def network(self, name: str) -> Network:
        return self.networks[name]

    def endpoint(self, name: str) -> Endpoint:
        return self.endpoints[name]

    def host_by_dpid(self, dpid: int) -> Host | None:
        return next((h for h in self.hosts.values() if h.dpid == dpid), None)

    # -- per-host questions the pipeline asks -------------------------------
    def endpoints_on(self, host: str) -> list[Endpoint]:
        return list(self._on_host.get(host, ()))

    def networks_on(self, host: str) -> list[Network]:
        return [self.networks[n] for n in self._carried.get(host, ())]

    def carries(self, host: str, network: str) -> bool:
        return (host, network) in self.local_vlans

    def local_vlan(self, host: str, network: str) -> int:
        return self.local_vlans[(host, network)]

    def hosts_carrying(self, network: str) -> list[Host]:
        return [self.hosts[h] for h in self._carrying.get(network, ())]

    def members(self, network: str) -> list[Endpoint]:
        return list(self._members.get(network, ()))

    def peers(self, host: str) -> list[Host]:
        return [h for name, h in self.hosts.items() if name != host]

    def endpoint_by_mac(self, network: str, mac: str) -> Endpoint | None:
        mac = mac.lower()
        return next((e for e in self.members(network) if e.mac == mac), None)

    def endpoint_by_ip(self, network: str, ip: str) -> Endpoint | None:
        addr = ipaddress.ip_address(ip)
        return next((e for e in self.members(network) if e.attachment(network).ip.ip == addr),
                    None)

    def allocations(self) -> dict:
        """What allocation chose, to hand back as ``previous`` when the next
        version of the file is loaded, so nothing existing is renumbered."""
        return {
            "keys": {n.name: n.key for n in self.networks.values()},
            "local_vlans": dict(self.local_vlans),
            "macs": {e.name: e.mac for e in self.endpoints.values()},
            "ports": {e.name: e.port for e in self.endpoints.values()},
        }

    def tunnel_port(self, host: str, peer: str) -> str:
        """Name of the tunnel port on ``host`` that leads to ``peer``."""
        return tunnel_port_name(self.tunnel, peer)

    @property
    def ipv6_underlay(self) -> bool:
        """Some host's tunnel endpoint is an IPv6 address."""
        return any(h.underlay_ip.version == 6 for h in self.hosts.values())

    def endpoint_mtu(self, underlay_mtu: int | None = None) -> int:
        """The largest MTU an endpoint's frames cross the tunnels with
        unfragmented over an underlay of ``underlay_mtu`` (default: the
        topology's ``underlay_mtu``): that less the encapsulation
        (``ENCAP_OVERHEAD``), and 20 more when any underlay address is IPv6."""
        if underlay_mtu is None:
            underlay_mtu = self.underlay_mtu
        return underlay_mtu - tunnel_overhead(self.tunnel, self.ipv6_underlay)

    def network_mtu(self, network: str) -> int:
        """The MTU of ``network``'s endpoints (DHCP hands it out): its
        declared ``mtu:``, else the tunnel-safe ``endpoint_mtu()``."""
        declared = self.network(network).mtu
        return declared if declared is not None else self.endpoint_mtu()

    def gateway(self, network: str) -> str | None:
        """The IPv4 address (no prefix length) in ``network`` of its
        ``router:`` endpoint, the default gateway DHCP hands out; None when
        the network has no router or the router's address there is IPv6."""
        router = self.network(network).router
        if router is None:
            return None
        ip = self.endpoint(router).attachment(network).ip
        return str(ip.ip) if ip.version == 4 else None

    def summary(self) -> str:
        return (f"{len(self.hosts)} hosts, {len(self.networks)} networks, "
                f"{len(self.endpoints)} endpoints, tunnel {self.tunnel}")


def tunnel_overhead(tunnel: str, ipv6_underlay: bool = False) -> int:
    """Bytes the ``tunnel`` encapsulation costs on the underlay's MTU."""
    return ENCAP_OVERHEAD[tunnel] + (IPV6_EXTRA_OVERHEAD if ipv6_underlay else 0)


def _patched(index: dict, changes: dict) -> dict:
    """``index`` (name -> object, by name) with ``changes`` made (None:
    removed), still by name."""
    if not changes:
        return index
    out = dict(index)
    for name, obj in changes.items():
        if obj is None:
            out.pop(name, None)
        else:
            out[name] = obj
    if any(name not in index for name, obj in changes.items() if obj is not None):
        out = {name: out[name] for name in sorted(out)}
    return out


def _paired(names: tuple, changes) -> tuple:
    """The hosts carrying a network, or the networks a host carries, after
    its local VLANs changed (``changes``: (the other name, VLAN or None))."""
    out = set(names)
    for other, vlan in changes:
        if vlan is None:
            out.discard(other)
        else:
            out.add(other)
    return tuple(sorted(out))


def _regrouped(groups: dict, keys: dict, touched: set, changes: dict, objs: dict, under,
               whole=None) -> dict:
    """A per-key index of sorted tuples (endpoints on a host, members of
    a network, networks a host carries...) after a change: keys gone are
    dropped, new ones start empty, and only the ``touched`` keys are
    rebuilt: by ``whole(key)``, or from the old tuple less the ``changes``'
    names plus the changed objects filed ``under`` it; a key whose tuple comes
    out equal keeps the old one."""
    out = {k: groups.get(k, ()) for k in keys} if keys.keys() != groups.keys() \
        else dict(groups)
    filed: dict = {}                       # key -> the changed objects filed under it
    for name in changes if whole is None else ():
        obj = objs.get(name)
        for key in () if obj is None else under(obj):
            filed.setdefault(key, []).append(obj)
    for key in touched & keys.keys():
        if whole is not None:
            now = whole(key)
        else:
            kept = [e for e in out[key] if e.name not in changes]
            now = tuple(sorted(kept + filed.get(key, []), key=lambda e: e.name))
        if now != out[key]:            # an equal one stays the same object (same_ports)
            out[key] = now
    return out


def eui64_link_local(mac: str) -> ipaddress.IPv6Address:
    """fe80::/64 with the modified EUI-64 interface id of ``mac`` (RFC 4291
    appendix A: ff:fe in the middle, the universal/local bit flipped), the
    link-local address Linux gives an interface with that MAC by default."""
    b = bytes.fromhex(mac.replace(":", ""))
    iid = bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:]
    return ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + iid)


def tunnel_port_name(tunnel: str, peer: str) -> str:
    """``gre-kvm2``: a Linux-sized (15 byte) name, hashed when too long."""
    name = f"{tunnel}-{peer}"
    if len(name) <= 15:
        return name
    from topology.allocate import short_hash
    return f"{tunnel}-{peer[:15 - len(tunnel) - 7]}{short_hash(peer, 6)}"
