"""Read and validate a topology file; report every problem at once.

A file either yields a complete, allocated ``Topology`` or a
``TopologyError`` listing each problem as ``FILE:LINE: dotted.path:
message``; nothing is ever half-loaded.
"""

from __future__ import annotations

import difflib
import gc
import ipaddress
import re
from importlib import resources
from pathlib import Path

import yaml

from topology import allocate
from topology.model import (DEFAULT_BROADCAST_LIMIT, DEFAULT_LEASE_TIME, DEFAULT_UNDERLAY_MTU,
                            DNS_MAX, ENDPOINT_KINDS, LEASE_TIME_MAX, LEASE_TIME_MIN, MAX_KEY,
                            NETWORK_MTU_MIN, TUNNEL_TYPES, UNDERLAY_MTU_MAX, UNDERLAY_MTU_MIN,
                            VLAN_MAX, VLAN_MIN, Attachment, Endpoint, Host, Network, Topology,
                            tunnel_overhead, tunnel_port_name)

SEED_NAME = "seed.yaml"

TOP_KEYS = ("tunnel", "broadcast_limit", "underlay_mtu", "hosts", "networks", "endpoints")
#: Highest ``broadcast_limit`` accepted (frames per second per endpoint port).
MAX_BROADCAST_LIMIT = 1_000_000
HOST_KEYS = ("underlay_ip", "dpid")
NETWORK_KEYS = ("key", "router", "dhcp", "dns", "lease_time", "mtu")
ENDPOINT_KEYS = ("host", "kind", "network", "ip", "vlans", "mac", "port", "link_local",
                 "iface_id")
ATTACHMENT_KEYS = ("network", "ip")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
#: An OVS ``external_ids:iface-id``: printable ASCII without whitespace.
IFACE_ID_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


class TopologyError(ValueError):
    """Every problem found in one topology file."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class _Map(dict):
    """A YAML mapping that remembers the line of each key."""
    line: int = 0
    key_lines: dict


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """SafeLoader (libyaml when available) whose numbers have no base 60:
    YAML 1.1 would read the unquoted MAC 52:54:00:12:34:56 as an int.
    Only its parser, resolver and scalar constructors are used: the
    document is built by ``_Reader``, never by the composer."""


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)"
                     r"|[-+]?0x[0-9a-fA-F_]+)$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    _FLOAT, re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?"
                       r"|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)"
                       r"|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))

#: Deepest nesting of mappings and lists read; a topology needs 5
#: (top, endpoints, E, vlans, VLAN).
MAX_DEPTH = 32
_YAML = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ = _YAML + "str", _YAML + "map", _YAML + "seq"
#: The only scalar types a file may hold (dates because the resolver reads
#: 2024-01-01 as one); explicit tags must name one of them.
_SCALARS = {tag: _Loader.yaml_constructors[tag]
            for tag in (_STR, _INT, _FLOAT, _YAML + "bool", _YAML + "null", _YAML + "timestamp")}
_NO_KEY = object()


class _Refused(Exception):
    """A file read no further: ``(line, path, message)``."""


def _utf8(data: str | bytes) -> bytes:
    """The file as bytes; a ``str`` with lone surrogates keeps them as
    (invalid) bytes so that ``_check_utf8`` names their offset."""
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    return bytes(data)


def _check_utf8(data: bytes):
    """Refuse a file that is not UTF-8 at its first bad byte, by offset and
    line (the parser's own error gives neither in a usable form)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refused(data.count(b"\n", 0, exc.start) + 1, "(yaml)",
                       f"not UTF-8: invalid byte 0x{data[exc.start]:02x} at offset {exc.start}"
                       ) from None


class _Frame:
    """A mapping or list being read, and where the reader is in it."""
    __slots__ = ("data", "key", "key_line", "key_text", "spellings")

    def __init__(self, data):
        self.data = data
        self.key = _NO_KEY          # in a mapping: the key whose value comes next
        self.key_text = self.key_line = None
        self.spellings = {}         # non-string keys as written: {256: "0x100"}


class _Reader:
    """Build the document from the parser's events, one at a time.

    Never recursive and never composing a node graph, so neither the
    nesting nor the shape of a file can exhaust the stack or expand: an
    anchor or alias is refused where it is met, before anything is built
    from it; nesting beyond ``MAX_DEPTH`` likewise.  Keys are compared by
    the value they are read as (``100`` and ``0x64`` are one key); each
    duplicate is added to ``problems`` and reading goes on.
    """

    def __init__(self, loader, problems: _Problems):
        self.loader, self.problems = loader, problems
        self.stack: list[_Frame] = []
        self.root = None
        self.documents = 0

    def read(self):
        """The document: a mapping, list, scalar or None (an empty file)."""
        on = {yaml.ScalarEvent: self._scalar, yaml.MappingStartEvent: self._mapping,
              yaml.SequenceStartEvent: self._sequence, yaml.MappingEndEvent: self._end,
              yaml.SequenceEndEvent: self._end, yaml.AliasEvent: self._alias,
              yaml.DocumentStartEvent: self._document}
        get_event = self.loader.get_event
        while True:
            event = get_event()
            if event is None or type(event) is yaml.StreamEndEvent:
                return self.root
            handler = on.get(type(event))
            if handler is not None:
                handler(event)

    # -- events ------------------------------------------------------------
    def _document(self, event):
        self.documents += 1
        if self.documents > 1:
            self._refuse(event, "(yaml)", "a file holds one document; found a second '---'")

    def _alias(self, event):
        self._refuse(event, self._path(), f"alias *{event.anchor}: " + _NO_ANCHORS)

    def _scalar(self, event):
        if event.anchor is not None:
            self._refuse(event, self._path(), f"anchor &{event.anchor}: " + _NO_ANCHORS)
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _STR:
            value = event.value
        else:
            value = self._construct(event, tag)
        self._put(value, event)

    def _mapping(self, event):
        data = _Map()
        data.line = event.start_mark.line + 1
        data.key_lines = {}
        self._open(data, event, _MAP)

    def _sequence(self, event):
        self._open([], event, _SEQ)

    def _end(self, _event):
        self.stack.pop()

    # -- helpers -----------------------------------------------------------
    def _open(self, data, event, tag):
        if event.anchor is not None:
            self._refuse(event, self._path(), f"anchor &{event.anchor}: " + _NO_ANCHORS)
        if event.tag not in (None, "!", tag):
            self._refuse(event, self._path(), f"tag {_short(event.tag)} is not allowed")
        if len(self.stack) >= MAX_DEPTH:
            self._refuse(event, "(yaml)", f"nested more than {MAX_DEPTH} levels deep "
                         "(a topology needs 5)")
        top = self.stack[-1] if self.stack else None
        if top is not None and top.key is _NO_KEY and isinstance(top.data, dict):
            self._refuse(event, self._path(), "a key must be a name, not a list or mapping")
        self._put(data, event)
        self.stack.append(_Frame(data))

    def _construct(self, event, tag):
        """A non-string scalar, or a refusal naming its line."""
        construct = _SCALARS.get(tag)
        if construct is None:
            self._refuse(event, self._path(), f"tag {_short(tag)} is not allowed")
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return construct(self.loader, node)
        except Exception:  # noqa: BLE001 (`!!int x`, `0x_`, `!!bool maybe`: each its own)
            self._refuse(event, self._path(), f"cannot read {event.value!r} as {_short(tag)}")

    def _put(self, value, event):
        """Add ``value`` (just read, or just opened) where the reader is."""
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        data = top.data
        if type(data) is list:
            data.append(value)
        elif top.key is _NO_KEY:
            self._key(top, value, event)
        else:
            if top.key not in data:             # a duplicate is reported, the first kept
                data[top.key] = value
                data.key_lines[top.key] = top.key_line
            top.key = _NO_KEY

    def _key(self, top: _Frame, key, event):
        line = event.start_mark.line + 1
        top.key, top.key_text, top.key_line = key, event.value, line
        if key in top.data:
            first = key if isinstance(key, str) else top.spellings[key]
            message = ("duplicate key" if first == event.value else
                       f"duplicate of {first} (line {top.data.key_lines[key]})")
            self.problems.add(line, self._path(), message)
        elif not isinstance(key, str):
            top.spellings[key] = event.value

    def _path(self) -> str:
        """The dotted path of what is being read: ``endpoints.r.vlans.100``."""
        path, last = "", len(self.stack) - 1
        for i, frame in enumerate(self.stack):
            inside = i < last             # an inner frame's current item is open
            if type(frame.data) is list:
                path += f"[{len(frame.data) - inside}]"
            elif inside or frame.key is not _NO_KEY:
                path = f"{path}.{frame.key_text}" if path else frame.key_text
        return path or "(top)"

    def _refuse(self, event, path: str, message: str):
        raise _Refused(event.start_mark.line + 1, path, message)


_NO_ANCHORS = ("anchors and aliases are not allowed in a topology file "
               "(write the value out)")


def _short(tag: str) -> str:
    return "!!" + tag[len(_YAML):] if tag.startswith(_YAML) else tag


class _Problems:
    #: Name comparisons the hints of one file may cost: a hint compares the
    #: name with every choice, so a file of 1,000 endpoints naming unknown
    #: networks among 1,000 would take seconds; past this, no more hints.
    HINT_BUDGET = 20_000

    def __init__(self, source: str):
        self.source = source
        self.items: list[tuple[int, str]] = []
        self.hint_budget = self.HINT_BUDGET

    def add(self, line: int | None, path: str, message: str):
        where = f"{self.source}:{line}" if line else self.source
        self.items.append((line or 0, f"{where}: {path}: {message}"))

    def hint(self, word, choices) -> str:
        """``did_you_mean`` while the file's budget lasts."""
        if len(choices) > self.hint_budget:
            return ""
        self.hint_budget -= len(choices)
        return did_you_mean(word, choices)

    def raise_if_any(self):
        if self.items:
            raise TopologyError([m for _, m in sorted(self.items, key=lambda i: i[0])])


def _line(mapping, key=None):
    if isinstance(mapping, _Map):
        return mapping.key_lines.get(key, mapping.line) if key is not None else mapping.line
    return None


def did_you_mean(word, choices) -> str:
    """`` (did you mean 'net10'?)`` when a choice is close to ``word``, else
    nothing: the one hint every nsgre error about a name gives."""
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_keys(p: _Problems, mapping, path: str, allowed):
    for key in mapping:
        if key not in allowed:
            p.add(_line(mapping, key), f"{path}.{key}" if path else str(key),
                  f"unknown field{p.hint(key, allowed)}; expected one of: "
                  + ", ".join(allowed))


def _section(p: _Problems, doc, name: str) -> dict:
    value = doc.get(name)
    if value is None:
        if name in ("hosts", "endpoints"):
            p.add(_line(doc), name, "missing section")
        return {}
    if not isinstance(value, dict):
        p.add(_line(doc, name), name, f"must be a mapping of names, got {type(value).__name__}")
        return {}
    good = {}
    for item, body in value.items():
        path = f"{name}.{item}"
        if not isinstance(item, str) or not NAME_RE.match(item):
            p.add(_line(value, item), path, "name must start with a letter or digit and "
                  "hold only letters, digits, '_', '.', '-'")
            continue
        if body is None:
            body = _Map()
            body.line, body.key_lines = _line(value, item), {}
        if not isinstance(body, dict):
            p.add(_line(value, item), path, f"must be a mapping, got {type(body).__name__}")
            continue
        good[item] = body
    return good


def _parse_int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            return None
    return None


def parse(text: str | bytes, source: str = "<string>",
          previous: Topology | None = None) -> Topology:
    """Validate and allocate a topology from YAML text (``str``, or the
    file's bytes: then a byte that is not UTF-8 is refused with its offset).

    Allocation is deterministic: the same text gives the same fabric on any
    machine.  With ``previous`` (the topology in force), every key, local
    VLAN, MAC and port name that is still valid is kept, so adding or
    removing elements never renumbers the others.
    """
    # A large file builds hundreds of thousands of small objects that all
    # live until the end; the cyclic collector would rescan them over and
    # over (3x the parse time at 40,000 endpoints) and frees nothing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse(text, source, previous)
    finally:
        if enabled:
            gc.enable()


def _read(data: str | bytes, p: _Problems):
    """The document in ``data``, or every duplicate key in ``p``; raises
    ``TopologyError`` at the first thing the loader will not read."""
    data = _utf8(data)
    loader = None
    try:
        _check_utf8(data)
        loader = _Loader(data)
        return _Reader(loader, p).read()
    except _Refused as refused:
        p.add(*refused.args)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        p.add(mark.line + 1 if mark else None, "(yaml)", f"syntax error: {exc.problem}")
    except yaml.reader.ReaderError as exc:          # e.g. a control character
        p.add(data.count(b"\n", 0, exc.position) + 1, "(yaml)",
              f"syntax error: character #x{exc.character:04x}: {exc.reason}")
    except (yaml.YAMLError, ValueError) as exc:
        p.add(None, "(yaml)", f"cannot read: {exc}")
    finally:
        if loader is not None:
            loader.dispose()
    p.raise_if_any()


def _parse(data: str | bytes, source: str, previous: Topology | None) -> Topology:
    prev = previous.allocations() if previous is not None else {}
    p = _Problems(source)
    doc = _read(data, p)
    # With a key given twice the later one wins silently in YAML, so
    # anything checked after this would be checked on the wrong data.
    p.raise_if_any()
    if not isinstance(doc, dict):
        p.add(None, "(top)", "a topology must be a mapping with hosts, networks and endpoints")
        p.raise_if_any()
    _check_keys(p, doc, "", TOP_KEYS)

    tunnel = doc.get("tunnel", "gre")
    if tunnel not in TUNNEL_TYPES:
        p.add(_line(doc, "tunnel"), "tunnel",
              f"unknown tunnel type {tunnel!r}{p.hint(tunnel, TUNNEL_TYPES)}; "
              f"expected one of: {', '.join(TUNNEL_TYPES)}")
        tunnel = "gre"
    max_key = MAX_KEY[tunnel]
    broadcast_limit = doc.get("broadcast_limit", DEFAULT_BROADCAST_LIMIT)
    if type(broadcast_limit) is not int or not 0 <= broadcast_limit <= MAX_BROADCAST_LIMIT:
        p.add(_line(doc, "broadcast_limit"), "broadcast_limit",
              f"must be a whole number of frames per second from 0 (no limit) to "
              f"{MAX_BROADCAST_LIMIT}, not {broadcast_limit!r}")
        broadcast_limit = DEFAULT_BROADCAST_LIMIT
    underlay_mtu = doc.get("underlay_mtu", DEFAULT_UNDERLAY_MTU)
    if type(underlay_mtu) is not int or not UNDERLAY_MTU_MIN <= underlay_mtu <= UNDERLAY_MTU_MAX:
        p.add(_line(doc, "underlay_mtu"), "underlay_mtu",
              f"must be a whole number of bytes from {UNDERLAY_MTU_MIN} to {UNDERLAY_MTU_MAX}, "
              f"not {underlay_mtu!r}")
        underlay_mtu = DEFAULT_UNDERLAY_MTU

    raw_hosts = _section(p, doc, "hosts")
    raw_networks = _section(p, doc, "networks")
    hosts = _hosts(p, raw_hosts, tunnel)
    explicit_keys = _networks(p, raw_networks, tunnel, max_key)
    ipv6_underlay = any(h.underlay_ip.version == 6 for h in hosts.values())
    overhead = tunnel_overhead(tunnel, ipv6_underlay)
    why = (f"underlay_mtu {underlay_mtu} - {overhead} for {tunnel}"
           + (" over IPv6" if ipv6_underlay else ""))
    settings = _network_settings(p, raw_networks, underlay_mtu - overhead, why)
    # Names that are declared but broken are still known: an endpoint that
    # names them gets no second, misleading "unknown" error.
    endpoints = _endpoints(p, _section(p, doc, "endpoints"), set(raw_hosts),
                           set(raw_networks), tunnel, prev)
    routers = _routers(p, raw_networks, endpoints)
    p.raise_if_any()

    keys = allocate.allocate_keys(explicit_keys, max_key, prev.get("keys"))
    networks = [Network(n, keys[n], routers.get(n), **settings[n]) for n in sorted(keys)]

    per_host: dict[str, dict[str, int]] = {h: {} for h in hosts}
    for e in endpoints:
        for net in e.networks:
            per_host[e.host][net] = keys[net]
    prev_vlans: dict[str, dict[str, int]] = {}
    for (h, n), v in prev.get("local_vlans", {}).items():
        prev_vlans.setdefault(h, {})[n] = v
    local_vlans = {}
    for host, carried in per_host.items():
        if len(carried) > VLAN_MAX:
            p.add(_line(doc.get("hosts"), host), f"hosts.{host}",
                  f"carries {len(carried)} networks; a host can carry at most {VLAN_MAX}")
            continue
        for net, vlan in allocate.allocate_local_vlans(carried, prev_vlans.get(host)).items():
            local_vlans[(host, net)] = vlan
    p.raise_if_any()
    return Topology(tunnel, hosts.values(), networks, endpoints, local_vlans, source,
                    broadcast_limit, underlay_mtu)


def _hosts(p: _Problems, raw: dict, tunnel: str) -> dict[str, Host]:
    hosts = {}
    seen_ip: dict = {}
    seen_dpid: dict = {}
    for name, body in raw.items():
        path = f"hosts.{name}"
        _check_keys(p, body, path, HOST_KEYS)
        try:
            ip = ipaddress.ip_address(str(body.get("underlay_ip", "")))
        except ValueError:
            if "underlay_ip" not in body:
                p.add(_line(body), f"{path}.underlay_ip", "missing (the host's tunnel endpoint address)")
            else:
                p.add(_line(body, "underlay_ip"), f"{path}.underlay_ip",
                      f"not an IP address: {body['underlay_ip']!r}")
            continue
        if ip in seen_ip:
            p.add(_line(body, "underlay_ip"), f"{path}.underlay_ip",
                  f"{ip} is already the underlay address of host '{seen_ip[ip]}'")
            continue
        seen_ip[ip] = name
        if "dpid" in body:
            dpid = _parse_int(body["dpid"])
            if dpid is None or not 0 < dpid < 2**64:
                p.add(_line(body, "dpid"), f"{path}.dpid",
                      f"must be an integer between 1 and 2^64-1, got {body['dpid']!r}")
                continue
        else:
            dpid = allocate.default_dpid(ip)
        if dpid in seen_dpid:
            p.add(_line(body, "dpid"), f"{path}.dpid",
                  f"{dpid:#x} is already the datapath id of host '{seen_dpid[dpid]}'")
            continue
        seen_dpid[dpid] = name
        hosts[name] = Host(name, ip, dpid)
    tunnel_names: dict[str, str] = {}
    for name in hosts:
        port = tunnel_port_name(tunnel, name)
        if port in tunnel_names:
            p.add(_line(raw[name]), f"hosts.{name}",
                  f"tunnel port name '{port}' collides with host '{tunnel_names[port]}'")
        tunnel_names[port] = name
    return hosts


def _networks(p: _Problems, raw: dict, tunnel: str, max_key: int) -> dict[str, int | None]:
    keys: dict[str, int | None] = {}
    seen: dict[int, str] = {}
    for name, body in raw.items():
        path = f"networks.{name}"
        _check_keys(p, body, path, NETWORK_KEYS)
        if "key" not in body:
            keys[name] = None
            continue
        key = _parse_int(body["key"])
        if key is None or not 1 <= key <= max_key:
            p.add(_line(body, "key"), f"{path}.key",
                  f"must be an integer between 1 and {max_key} for {tunnel} tunnels "
                  f"(0 is reserved), got {body['key']!r}")
            continue
        if key in seen:
            p.add(_line(body, "key"), f"{path}.key", f"key {key} is already used by network '{seen[key]}'")
            continue
        seen[key] = name
        keys[name] = key
    return keys


def _whole(value) -> bool:
    return type(value) is int


def _network_settings(p: _Problems, raw: dict, max_mtu: int, why: str) -> dict[str, dict]:
    """Network -> its DHCP and MTU settings (``dhcp``, ``dns``,
    ``lease_time``, ``mtu``) as ``Network`` keyword arguments; a network
    with a bad one is left out (its problem is reported)."""
    out = {}
    for name, body in raw.items():
        path, ok = f"networks.{name}", True
        dhcp = body.get("dhcp", True)
        if type(dhcp) is not bool:
            p.add(_line(body, "dhcp"), f"{path}.dhcp",
                  f"must be true or false, not {dhcp!r}")
            ok = False
        dns = _dns(p, body, path) if "dns" in body else ()
        ok = ok and dns is not None
        lease = body.get("lease_time", DEFAULT_LEASE_TIME)
        if not _whole(lease) or not LEASE_TIME_MIN <= lease <= LEASE_TIME_MAX:
            p.add(_line(body, "lease_time"), f"{path}.lease_time",
                  f"must be a whole number of seconds from {LEASE_TIME_MIN} to "
                  f"{LEASE_TIME_MAX} (a year), not {lease!r}")
            ok = False
        mtu = body.get("mtu")
        if mtu is not None and (not _whole(mtu) or not NETWORK_MTU_MIN <= mtu <= max_mtu):
            p.add(_line(body, "mtu"), f"{path}.mtu",
                  f"must be a whole number of bytes from {NETWORK_MTU_MIN} to {max_mtu} "
                  f"(the tunnel-safe MTU: {why}), not {mtu!r}")
            ok = False
        if "mtu" in body and mtu is None:
            p.add(_line(body, "mtu"), f"{path}.mtu",
                  "must be a whole number of bytes (leave it out for the tunnel-safe MTU)")
            ok = False
        if ok:
            out[name] = {"dhcp": dhcp, "dns": dns, "lease_time": lease, "mtu": mtu}
    return out


def _dns(p: _Problems, body, path: str) -> tuple[ipaddress.IPv4Address, ...] | None:
    """``dns: [192.0.2.53, ...]``: at most ``DNS_MAX`` IPv4 addresses, each once."""
    value, line = body["dns"], _line(body, "dns")
    if not isinstance(value, list):
        p.add(line, f"{path}.dns", f"must be a list of IPv4 addresses like [192.0.2.53], "
              f"not {value!r}")
        return None
    if len(value) > DNS_MAX:
        p.add(line, f"{path}.dns", f"at most {DNS_MAX} DNS servers, got {len(value)}")
        return None
    out: list[ipaddress.IPv4Address] = []
    for i, item in enumerate(value):
        try:
            if not isinstance(item, str):
                raise ValueError
            addr = ipaddress.IPv4Address(item)
        except ValueError:
            p.add(line, f"{path}.dns[{i}]",
                  f"must be an IPv4 address like 192.0.2.53 (no prefix length), got {item!r}")
            return None
        if addr in out:
            p.add(line, f"{path}.dns[{i}]", f"{addr} is already listed")
            return None
        out.append(addr)
    return tuple(out)


def _routers(p: _Problems, raw: dict, endpoints: list[Endpoint]) -> dict[str, str]:
    """Network -> the endpoint named as its router (``router:``): it must
    be a member of that network.  With an IPv6 address there it may send
    router advertisements; with an IPv4 one it is the network's gateway."""
    by_name = {e.name: e for e in endpoints}
    routers = {}
    for name, body in raw.items():
        if "router" not in body:
            continue
        value, path, line = body["router"], f"networks.{name}.router", _line(body, "router")
        if not isinstance(value, str):
            p.add(line, path, f"must be an endpoint name, got {type(value).__name__} {value!r}")
            continue
        ep = by_name.get(value)
        if ep is None:
            p.add(line, path, f"unknown endpoint {value!r}{p.hint(value, by_name)}")
            continue
        att = next((a for a in ep.attachments if a.network == name), None)
        if att is None:
            p.add(line, path, f"endpoint '{value}' is not a member of network '{name}'")
            continue
        routers[name] = value
    return routers


def _link_local(p: _Problems, body, path: str, attachments) -> ipaddress.IPv6Address | None:
    """A declared IPv6 link-local address (``link_local: fe80::1``)."""
    value = body["link_local"]
    line = _line(body, "link_local")
    try:
        addr = ipaddress.IPv6Address(str(value))
    except ValueError:
        p.add(line, f"{path}.link_local",
              f"must be an IPv6 link-local address like fe80::1 (no prefix length), "
              f"got {value!r}")
        return None
    if not addr.is_link_local:
        p.add(line, f"{path}.link_local", f"{addr} is not link-local (fe80::/10)")
        return None
    if attachments and not any(a.ip.version == 6 for a in attachments):
        p.add(line, f"{path}.link_local", "the endpoint has no IPv6 address")
        return None
    return addr


def _address(p: _Problems, body, path: str):
    value = body.get("ip")
    try:
        if "/" not in str(value):
            raise ValueError
        return ipaddress.ip_interface(str(value))
    except ValueError:
        p.add(_line(body, "ip"), f"{path}.ip",
              f"must be an address with prefix length like 10.1.1.2/24, got {value!r}")
        return None


def _network_ref(p: _Problems, body, path: str, networks: set) -> str | None:
    net = body.get("network")
    if not isinstance(net, str):
        p.add(_line(body, "network"), f"{path}.network",
              f"must be a name, got {type(net).__name__} {net!r}")
        return None
    if net not in networks:
        p.add(_line(body, "network"), f"{path}.network",
              f"unknown network {net!r}{p.hint(net, networks)}")
        return None
    return net


def _attachments(p: _Problems, body, path: str, networks: set) -> list[Attachment] | None:
    """An access endpoint's network and ip, or a trunk's ``vlans``."""
    if "vlans" in body:
        for field in ("network", "ip"):
            if field in body:
                p.add(_line(body, field), f"{path}.{field}",
                      "a trunk endpoint gives network and ip per VLAN under vlans:, not here")
                return None
        vlans = body["vlans"]
        if not isinstance(vlans, dict) or not vlans:
            p.add(_line(body, "vlans"), f"{path}.vlans",
                  "must map guest VLAN ids to {network: ..., ip: ...}")
            return None
        out, seen = [], {}
        for vid, sub in vlans.items():
            sub_path = f"{path}.vlans.{vid}"
            if isinstance(vid, str):        # '100' quoted, or 0X64, 0o144: not YAML ints here
                p.add(_line(vlans, vid), sub_path, f"a guest VLAN id must be a number "
                      f"1..{VLAN_MAX}, not the string {vid!r}")
                continue
            if isinstance(vid, bool) or not isinstance(vid, int) or not VLAN_MIN <= vid <= VLAN_MAX:
                p.add(_line(vlans, vid), sub_path, f"a guest VLAN id must be 1..{VLAN_MAX}")
                continue
            if not isinstance(sub, dict):
                p.add(_line(vlans, vid), sub_path, "must be a mapping {network: ..., ip: ...}")
                continue
            _check_keys(p, sub, sub_path, ATTACHMENT_KEYS)
            for field in ATTACHMENT_KEYS:
                if field not in sub:
                    p.add(_line(sub), f"{sub_path}.{field}", "missing")
            net = _network_ref(p, sub, sub_path, networks) if "network" in sub else None
            ip = _address(p, sub, sub_path) if "ip" in sub else None
            if net in seen:
                p.add(_line(sub, "network"), f"{sub_path}.network",
                      f"network '{net}' is already on VLAN {seen[net]} of this trunk")
                continue
            if net and ip:
                seen[net] = vid
                out.append(Attachment(net, ip, vid))
        return out if len(out) == len(vlans) else None
    ok = True
    for field in ATTACHMENT_KEYS:
        if field not in body:
            p.add(_line(body), f"{path}.{field}", "missing (or give vlans: for a trunk)")
            ok = False
    if not ok:
        return None
    net = _network_ref(p, body, path, networks)
    ip = _address(p, body, path)
    return [Attachment(net, ip)] if net and ip else None


def endpoint_fields(p: _Problems, name: str, body, hosts, networks, tunnel: str):
    """One endpoint's own fields checked (not yet against the others):
    (host, kind, attachments, mac or None, port or None, link_local or None,
    iface_id or None), or None with its problems in ``p``."""
    path = f"endpoints.{name}"
    _check_keys(p, body, path, ENDPOINT_KEYS)
    ok = True
    for field in ("host", "kind"):
        value = body.get(field)
        if field not in body:
            p.add(_line(body), f"{path}.{field}", "missing")
            ok = False
        elif not isinstance(value, str):
            p.add(_line(body, field), f"{path}.{field}",
                  f"must be a name, got {type(value).__name__} {value!r}")
            ok = False
    host, kind = body.get("host"), body.get("kind")
    if ok and host not in hosts:
        p.add(_line(body, "host"), f"{path}.host",
              f"unknown host {host!r}{p.hint(host, hosts)}")
        ok = False
    if ok and kind not in ENDPOINT_KINDS:
        p.add(_line(body, "kind"), f"{path}.kind",
              f"unknown kind {kind!r}; expected one of: {', '.join(ENDPOINT_KINDS)}")
        ok = False
    attachments = _attachments(p, body, path, networks)
    mac = port = None
    if "mac" in body:
        mac = str(body["mac"]).lower()
        if not MAC_RE.match(mac) or int(mac[:2], 16) & 1:
            p.add(_line(body, "mac"), f"{path}.mac",
                  f"must be a unicast MAC like 02:00:00:00:00:01, got {body['mac']!r}")
            ok = False
    if "port" in body:
        port = str(body["port"])
        if not IFNAME_RE.match(port):
            p.add(_line(body, "port"), f"{path}.port",
                  f"must be a Linux interface name of at most 15 characters, got {port!r}")
            ok = False
        elif port.startswith(f"{tunnel}-"):
            p.add(_line(body, "port"), f"{path}.port",
                  f"'{port}' is reserved for tunnel ports ({tunnel}-HOST)")
            ok = False
    link_local = None
    if "link_local" in body:
        link_local = _link_local(p, body, path, attachments)
        ok = ok and link_local is not None
    iface_id = None
    if "iface_id" in body:
        iface_id = body["iface_id"]
        if not isinstance(iface_id, str) or not IFACE_ID_RE.match(iface_id):
            p.add(_line(body, "iface_id"), f"{path}.iface_id",
                  "must be 1 to 255 printable ASCII characters without spaces (the "
                  "interface's OVS external_ids:iface-id, e.g. libvirt's interface UUID), "
                  f"got {iface_id!r}")
            ok = False
    if ok and attachments:
        return (host, kind, attachments, mac, port, link_local, iface_id)
    return None


def _endpoints(p: _Problems, raw: dict, hosts: set, networks: set, tunnel: str,
               previous: dict) -> list[Endpoint]:
    valid = {}          # name -> (host, kind, attachments, explicit mac, explicit port, ...)
    for name, body in raw.items():
        fields = endpoint_fields(p, name, body, hosts, networks, tunnel)
        if fields is not None:
            valid[name] = fields

    # Explicit values first, each checked for duplicates; then defaults
    # allocated around them, so a default never collides with anything.
    seen_mac: dict[str, str] = {}
    seen_port: dict[tuple, str] = {}
    seen_ip: dict[tuple, str] = {}
    for name, (host, _, attachments, mac, port, _, _) in valid.items():
        body, path = raw[name], f"endpoints.{name}"
        if mac is not None:
            if mac in seen_mac:
                p.add(_line(body, "mac"), f"{path}.mac",
                      f"MAC {mac} is already used by endpoint '{seen_mac[mac]}'")
            seen_mac.setdefault(mac, name)
        for a in attachments:
            key = (a.network, a.ip.ip)
            if key in seen_ip:
                where = f"{path}.vlans.{a.vlan}.ip" if a.vlan else f"{path}.ip"
                p.add(_line(body, "vlans" if a.vlan else "ip"), where,
                      f"{a.ip.ip} is already used in network '{a.network}' "
                      f"by endpoint '{seen_ip[key]}'")
            seen_ip.setdefault(key, name)
        if port is not None:
            if (host, port) in seen_port:
                p.add(_line(body, "port"), f"{path}.port", f"port '{port}' on host '{host}' "
                      f"is already used by endpoint '{seen_port[(host, port)]}'")
            seen_port.setdefault((host, port), name)

    macs = allocate.allocate_names([n for n, v in valid.items() if v[3] is None],
                                   allocate.default_mac, set(seen_mac), previous.get("macs"))
    pending: dict[str, list[str]] = {}
    used: dict[str, set[str]] = {}
    for name, (host, _, _, _, port, _, _) in valid.items():
        pending.setdefault(host, [])
        if port is None:
            pending[host].append(name)
    for host, port in seen_port:
        used.setdefault(host, set()).add(port)
    ports = {}
    for host in sorted(pending):
        ports.update(allocate.allocate_names(pending[host], allocate.default_port,
                                             used.get(host, set()), previous.get("ports")))
    result = [Endpoint(name, host, kind, tuple(attachments), mac or macs[name],
                       port or ports[name], link_local, iface_id)
              for name, (host, kind, attachments, mac, port, link_local, iface_id)
              in valid.items()]
    _check_link_locals(p, raw, result)
    _check_iface_ids(p, raw, result)
    return result


def _check_link_locals(p: _Problems, raw: dict, endpoints: list[Endpoint]):
    """A declared link-local address must not be another member's address
    or link-local address (declared or EUI-64) in a network the two share:
    port security would admit both, and neighbour discovery could not tell
    them apart."""
    declared = [e for e in endpoints if e.link_local is not None]
    if not declared:
        return
    owners: dict[tuple, tuple[str, str]] = {}
    for e in endpoints:
        for a in e.attachments:
            if a.ip.version == 6:
                owners[(a.network, a.ip.ip)] = (e.name, "address")
    for e in sorted(endpoints, key=lambda e: (e.link_local is not None, e.name)):
        for a in e.attachments:
            if a.ip.version != 6:
                continue
            key = (a.network, e.ipv6_link_local)
            owner = owners.get(key)
            if owner is not None and owner[0] != e.name and e.link_local is not None:
                what = "link-local address" if owner[1] == "link" else "address"
                p.add(_line(raw[e.name], "link_local"), f"endpoints.{e.name}.link_local",
                      f"{e.link_local} is already the {what} of endpoint "
                      f"'{owner[0]}' in network '{a.network}'")
            owners.setdefault(key, (e.name, "link"))


def _check_iface_ids(p: _Problems, raw: dict, endpoints: list[Endpoint]):
    """Effective iface ids (declared, or the endpoint's name) are unique:
    the controller finds an endpoint's port on its host by it.  A clash is
    reported at the declared one (a name can only clash with a declared id)."""
    owners = {e.name: (e.name, "name (its default iface_id)") for e in endpoints
              if e.declared_iface_id is None}
    declared = [e for e in endpoints if e.declared_iface_id is not None]
    # In file order (a stable sort: endpoints on one line keep theirs).
    for e in sorted(declared, key=lambda e: _line(raw[e.name], "iface_id") or 0):
        owner = owners.get(e.iface_id)
        if owner is not None:
            p.add(_line(raw[e.name], "iface_id"), f"endpoints.{e.name}.iface_id",
                  f"{e.iface_id!r} is already the {owner[1]} of endpoint '{owner[0]}'")
            continue
        owners[e.iface_id] = (e.name, "iface_id")


def load(path: str | Path | None = None, previous: Topology | None = None) -> Topology:
    """Load a topology file, or the embedded seed topology when ``path`` is
    None.  ``previous``: the topology in force, whose allocations are kept."""
    if path is None:
        return parse(seed_text(), SEED_NAME, previous)
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TopologyError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse(data, str(path), previous)


def seed_text() -> str:
    return resources.files("topology").joinpath(SEED_NAME).read_text()
