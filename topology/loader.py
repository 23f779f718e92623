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
from topology.model import (ENDPOINT_KINDS, MAX_KEY, TUNNEL_TYPES, VLAN_MAX, VLAN_MIN,
                            Attachment, DEFAULT_BROADCAST_LIMIT, Endpoint, Host, Network,
                            Topology, tunnel_port_name)

SEED_NAME = "seed.yaml"

TOP_KEYS = ("tunnel", "broadcast_limit", "hosts", "networks", "endpoints")
#: Highest ``broadcast_limit`` accepted (frames per second per endpoint port).
MAX_BROADCAST_LIMIT = 1_000_000
HOST_KEYS = ("underlay_ip", "dpid")
NETWORK_KEYS = ("key",)
ENDPOINT_KEYS = ("host", "kind", "network", "ip", "vlans", "mac", "port")
ATTACHMENT_KEYS = ("network", "ip")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


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
    """SafeLoader that records line numbers and reads YAML 1.2 numbers:
    YAML 1.1 would read the unquoted MAC 52:54:00:12:34:56 as a base-60 int."""

    def construct_mapping(self, node, deep=False):
        mapping = _Map()
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a name, not a list or mapping",
                    key_node.start_mark) from None
            mapping[key] = self.construct_object(value_node, deep=deep)
            mapping.key_lines[key] = key_node.start_mark.line + 1
        return mapping


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
# (CSafeLoader parses in C but resolves tags and builds objects in Python,
# with these resolvers and the constructor above.)
_Loader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)"
                     r"|[-+]?0x[0-9a-fA-F_]+)$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    _FLOAT, re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?"
                       r"|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)"
                       r"|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                        _Loader.construct_mapping)


def _duplicates(node, path=""):
    """(line, dotted path) of every key given twice in one mapping."""
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            sub = f"{path}.{key}" if path else str(key)
            if key is not None and key in seen:
                yield key_node.start_mark.line + 1, sub
            seen.add(key)
            yield from _duplicates(value_node, sub)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicates(item, f"{path}[{i}]")


class _Problems:
    def __init__(self, source: str):
        self.source = source
        self.items: list[tuple[int, str]] = []

    def add(self, line: int | None, path: str, message: str):
        where = f"{self.source}:{line}" if line else self.source
        self.items.append((line or 0, f"{where}: {path}: {message}"))

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
                  f"unknown field{did_you_mean(key, allowed)}; expected one of: "
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


def parse(text: str, source: str = "<string>", previous: Topology | None = None) -> Topology:
    """Validate and allocate a topology from YAML text.

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


def _parse(text: str, source: str, previous: Topology | None) -> Topology:
    prev = previous.allocations() if previous is not None else {}
    p = _Problems(source)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        for line, path in _duplicates(node):
            p.add(line, path, "duplicate key")
        doc = loader.construct_document(node) if node is not None else None
        del node                        # the node tree is not needed any more
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        p.add(line, "(yaml)", f"syntax error: {getattr(exc, 'problem', exc)}")
        p.raise_if_any()
    except (ValueError, TypeError) as exc:          # e.g. `!!int name`
        p.add(None, "(yaml)", f"cannot read: {exc}")
        p.raise_if_any()
    finally:
        loader.dispose()
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
              f"unknown tunnel type {tunnel!r}{did_you_mean(tunnel, TUNNEL_TYPES)}; "
              f"expected one of: {', '.join(TUNNEL_TYPES)}")
        tunnel = "gre"
    max_key = MAX_KEY[tunnel]
    broadcast_limit = doc.get("broadcast_limit", DEFAULT_BROADCAST_LIMIT)
    if type(broadcast_limit) is not int or not 0 <= broadcast_limit <= MAX_BROADCAST_LIMIT:
        p.add(_line(doc, "broadcast_limit"), "broadcast_limit",
              f"must be a whole number of frames per second from 0 (no limit) to "
              f"{MAX_BROADCAST_LIMIT}, not {broadcast_limit!r}")
        broadcast_limit = DEFAULT_BROADCAST_LIMIT

    raw_hosts = _section(p, doc, "hosts")
    raw_networks = _section(p, doc, "networks")
    hosts = _hosts(p, raw_hosts, tunnel)
    explicit_keys = _networks(p, raw_networks, tunnel, max_key)
    # Names that are declared but broken are still known: an endpoint that
    # names them gets no second, misleading "unknown" error.
    endpoints = _endpoints(p, _section(p, doc, "endpoints"), set(raw_hosts),
                           set(raw_networks), tunnel, prev)
    p.raise_if_any()

    keys = allocate.allocate_keys(explicit_keys, max_key, prev.get("keys"))
    networks = [Network(n, keys[n]) for n in sorted(keys)]

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
                    broadcast_limit)


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
              f"unknown network {net!r}{did_you_mean(net, networks)}")
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


def _endpoints(p: _Problems, raw: dict, hosts: set, networks: set, tunnel: str,
               previous: dict) -> list[Endpoint]:
    valid = {}          # name -> (host, kind, attachments, explicit mac, explicit port)
    for name, body in raw.items():
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
                  f"unknown host {host!r}{did_you_mean(host, hosts)}")
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
        if ok and attachments:
            valid[name] = (host, kind, attachments, mac, port)

    # Explicit values first, each checked for duplicates; then defaults
    # allocated around them, so a default never collides with anything.
    seen_mac: dict[str, str] = {}
    seen_port: dict[tuple, str] = {}
    seen_ip: dict[tuple, str] = {}
    for name, (host, _, attachments, mac, port) in valid.items():
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
    for name, (host, _, _, _, port) in valid.items():
        pending.setdefault(host, [])
        if port is None:
            pending[host].append(name)
    for host, port in seen_port:
        used.setdefault(host, set()).add(port)
    ports = {}
    for host in sorted(pending):
        ports.update(allocate.allocate_names(pending[host], allocate.default_port,
                                             used.get(host, set()), previous.get("ports")))
    return [Endpoint(name, host, kind, tuple(attachments), mac or macs[name], port or ports[name])
            for name, (host, kind, attachments, mac, port) in valid.items()]


def load(path: str | Path | None = None, previous: Topology | None = None) -> Topology:
    """Load a topology file, or the embedded seed topology when ``path`` is
    None.  ``previous``: the topology in force, whose allocations are kept."""
    if path is None:
        return parse(seed_text(), SEED_NAME, previous)
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse(text, str(path), previous)


def seed_text() -> str:
    return resources.files("topology").joinpath(SEED_NAME).read_text()
