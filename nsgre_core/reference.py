"""The README's pipeline reference, generated from the declarations.

``markdown()`` renders the section "The pipeline" of README.md from
``nsgre_core.tables`` (tables, their contracts, priorities), ``nsgre_core.ids``
(metadata, group, meter and cookie layouts) and, as an example, the flows
``nsgre_core.pipeline.compute`` gives host kvm1 of the embedded seed topology.
The prose that explains *why* cannot be derived; it lives here as constant
text next to the item it explains, so the whole section is generated.

    python -m nsgre_core.reference                    # print the section
    python -m nsgre_core.reference --write README.md  # rewrite it between the markers

``tests/unit/test_reference.py`` fails when README.md and ``markdown()`` differ.
Pure: imports nothing of os-ken, eventlet or OVS.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import topology
from nsgre_core import ids, ofp, pipeline
from topology import model
from nsgre_core import tables as T
from nsgre_core.flows import _OFCTL_FIELDS, Group

BEGIN = "<!-- BEGIN generated: python -m nsgre_core.reference --write README.md -->"
END = "<!-- END generated -->"

EXAMPLE_HOST = "kvm1"

#: Match fields in OpenFlow 1.3 OXM order (OXM_OF_* field numbers); a field
#: not listed here comes after these, alphabetically.
OXM_ORDER = ("in_port", "in_phy_port", "metadata", "eth_dst", "eth_src", "eth_type",
             "vlan_vid", "vlan_pcp", "ip_dscp", "ip_ecn", "ip_proto", "ipv4_src",
             "ipv4_dst", "tcp_src", "tcp_dst", "udp_src", "udp_dst", "sctp_src", "sctp_dst",
             "icmpv4_type", "icmpv4_code", "arp_op", "arp_spa", "arp_tpa", "arp_sha",
             "arp_tha", "ipv6_src", "ipv6_dst", "ipv6_flabel", "icmpv6_type", "icmpv6_code",
             "ipv6_nd_target", "ipv6_nd_sll", "ipv6_nd_tll", "mpls_label", "mpls_tc",
             "mpls_bos", "pbb_isid", "tunnel_id", "ipv6_exthdr")

#: Action kinds in the order a reader meets them on a frame; others follow.
ACTION_ORDER = ("push_vlan", "pop_vlan", "move", "set_field", "output", "group")

# -- the prose: what cannot be derived, each piece next to what it explains ---

INTRO = """\
The tables and their priorities are declared once, as data, in
`nsgre_core/tables.py`; every id nsgre puts on a switch (cookies, flood
groups, meters, metadata) is encoded and decoded in `nsgre_core/ids.py`
alone. A host's flows, groups and meters are computed by the pure function
`nsgre_core.pipeline.compute(topology, host, ports)`. The same flow records
feed the switch (as OpenFlow messages), the tests and `nsgre pipeline` (as
`ovs-ofctl` text).

This section is generated from those declarations by
`python -m nsgre_core.reference --write README.md`; edit them (or the prose
in `nsgre_core/reference.py`), not this text: `tests/unit/test_reference.py`
fails when the two differ."""

TABLES_INTRO = """\
Each table is declared with its contract: what its flows may match, which
actions and `set_field`/`move` targets they may use, which tables they may
go to, whether they may write metadata or use a meter. Every computed flow is
checked against it (`tables.check`) before anything is sent, so a pipeline
bug fails in the unit tests, not on a switch. Each table ends in an explicit
lowest-priority flow (see the priorities), so no frame meets a table miss."""

PRIORITIES_INTRO = """\
Within a table the highest matching priority wins. Each priority is a
`PRIO_*` constant declared with what its flows match and what they do."""

METADATA_INTRO = "Written by classify (`write_metadata`), read by the tables after it."

METADATA_VLAN_WHY = ("the network's local VLAN on this host: arp_responder answers only for "
                     "endpoints of that network, tag pushes or rewrites to it")

#: Why each origin flag exists, by flag (``ids.FLAG_NAMES``).
FLAG_WHY = {
    ids.FROM_TUNNEL: "the frame arrived from a tunnel: forward never sends it into a tunnel "
                     "again (split horizon), so a frame crosses at most one tunnel",
    ids.FROM_TRUNK: "the frame arrived tagged with a trunk guest's VLAN: tag rewrites that "
                    "VLAN id to the local VLAN instead of pushing a second tag",
}

GROUPS_INTRO = """\
Two groups per network on a host, numbered from the network's local VLAN
`V` on that host; forward floods broadcast and multicast through them."""

#: What each flood group does and why, by whether it floods to local ports only.
GROUP_WHY = {
    False: "frames from a local port: to the network's other local ports and to the "
           "tunnels of exactly the hosts that carry the network",
    True: "frames from a tunnel (`FROM_TUNNEL`): to the local ports only. Split horizon: "
          "a flood that crossed a tunnel is never sent into another one, so floods "
          "cannot loop between hosts",
}

GROUPS_OUTRO = """\
A group holds every port of the flood, the sender's own port included: OVS
never sends a copy back out of the port a frame came in on, so the sender
does not receive its own flood and one group serves every port of the
network."""

#: What each meter kind is for (``ids.METER_RANGES``), as ``may do`` names it.
METER_WHAT = {ids.METER_STORM: "storm control", ids.METER_DHCP: "DHCP rate limit"}

METERS_INTRO = """\
Two meters per endpoint port at most, each numbered from the port's
OpenFlow number `P` (OVS numbers real ports below `{ofmax:#x}`; `ovs-ofctl`
shows meter ids in decimal). Each is a packet-rate meter with one drop band."""

#: Which frames go through each meter kind, at what rate and why.
METER_WHY = {
    ids.METER_STORM: (
        "every endpoint port present, unless `broadcast_limit: 0`",
        "every broadcast and multicast frame the endpoint sends, before the flood group "
        "(forward, `PRIO_STORM`; a trunk's networks share its port's meter); unicast never "
        "does. A storm in one network is cut at the port it comes from, before it costs a "
        "copy, a tunnel header or a peer's CPU",
        "the topology's `broadcast_limit` (default {storm:,} frames a second), burst a "
        "tenth of that ({storm_burst} at the default)"),
    ids.METER_DHCP: (
        "every endpoint port present with an IPv4 address in a network with `dhcp` on, "
        "whatever the `broadcast_limit`",
        "the endpoint's DHCP requests, on their way to the controller (classify, "
        "`PRIO_DHCP`; a trunk's guest VLANs share its port's meter). A guest flooding DHCP "
        "is cut on the switch, before it costs a packet-in",
        "`DHCP_RATE` {dhcp} frames a second, burst `DHCP_BURST` {dhcp_burst}: a client "
        "sends a few frames a lease, retransmitting every few seconds"),
}

METERS_BUNDLE = """\
OVS cannot put meter-mods in a bundle: new meters are sent just before a
sync's bundle (so the flows that use them find them), removed ones just
after it (once no flow uses them)."""

COOKIES_INTRO = "A flow's cookie says that the flow is nsgre's and what it serves."

COOKIE_MAGIC_WHY = "this flow is nsgre's"

#: Which flows carry each cookie kind and what their id is, by kind
#: (``ids.KIND_NAMES``); ``{bits}`` is the width of the id field.
KIND_WHY = {
    ids.KIND_BASE: ("the flows every bridge holds whatever the topology: the explicit "
                    "drops (DHCP guards included), the ARP table's fall-through", "0"),
    ids.KIND_NETWORK: ("a network's flows (tunnel admission, tagging, flooding)",
                       "the network's tunnel key"),
    ids.KIND_ENDPOINT: ("an endpoint's flows (admission, DHCP to the controller, ARP "
                        "answer, delivery, storm control)",
                        "a {bits}-bit hash of the endpoint's name"),
}

COOKIES_OWNED = """\
The controller removes flows only within its own cookie space ({match}),
never anyone else's; likewise it only touches groups and meters whose ids
fall in the ranges above (`ids.owned_group`, `ids.owned_meter`)."""

EXAMPLE_INTRO = """\
What `nsgre pipeline {host}` prints for host `{host}` of the embedded seed
topology, cookies left out (the CLI prints them first on each flow line).
Offline there is no switch to tell port numbers, so the ports are numbered
as in a fully wired fabric (`pipeline.offline_ports`) and the first line
says how. Flows are sorted by table, then highest priority first, then
groups and meters."""


# -- rendering ----------------------------------------------------------------

def _para(text: str) -> str:
    """One prose paragraph, wrapped as the rest of the README is (never
    inside a `code span`)."""
    spans = " ".join(text.split()).split("`")
    glued = "`".join(s.replace(" ", "\0") if i % 2 else s for i, s in enumerate(spans))
    return textwrap.fill(glued, width=76, break_long_words=False,
                         break_on_hyphens=False).replace("\0", " ")


def _prose(*paragraphs: str) -> list[str]:
    return [_para(p) for text in paragraphs for p in text.split("\n\n")]


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: tuple, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _ordered(names, order) -> list[str]:
    rank = {n: i for i, n in enumerate(order)}
    return sorted(names, key=lambda n: (rank.get(n, len(order)), n))


def _code(names) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _bits(mask: int) -> str:
    """``16..27`` for a contiguous mask, ``0`` for a single bit."""
    low, high = (mask & -mask).bit_length() - 1, mask.bit_length() - 1
    return str(low) if low == high else f"{low}..{high}"


def _bits_desc(mask: int) -> str:
    """``63..48``: how the cookie layout is usually written, high bit first."""
    low, high = (mask & -mask).bit_length() - 1, mask.bit_length() - 1
    return str(low) if low == high else f"{high}..{low}"


def _table_ref(table_id: int) -> str:
    return f"{table_id} ({T.BY_ID[table_id].name})"


def may_do(table: T.Table) -> str:
    """What a table's flows may do, from its declaration."""
    parts = []
    if table.meters:
        parts.append("meter (" + ", ".join(METER_WHAT.get(k, k) for k in
                                          _ordered(table.meters, list(METER_WHAT))) + ")")
    kinds = []
    for kind in _ordered(table.actions, ACTION_ORDER):
        if kind == "output":
            kind += (" (`IN_PORT` only)" if table.outputs_in_port_only else
                     " (the controller only)" if table.outputs_controller_only else
                     " (real ports)")
        kinds.append(kind)
    if kinds:
        parts.append(", ".join(kinds))
    if table.sets:
        parts.append("set " + _code(_ordered(table.sets, OXM_ORDER)))
    if table.writes_metadata:
        parts.append("write metadata")
    if table.goto:
        parts.append("go to " + " or ".join(_table_ref(t) for t in sorted(table.goto)))
    parts.append("drop")
    return "; ".join(parts)


def tables_section() -> str:
    rows = [(t.id, t.name, t.purpose, _code(_ordered(t.matches, OXM_ORDER)), may_do(t))
            for t in T.TABLES]
    renamed = ", ".join(f"`{oxm}` as `{_OFCTL_FIELDS[oxm]}`"
                        for oxm in _ordered(_OFCTL_FIELDS, OXM_ORDER))
    names = (f"Fields are OpenFlow 1.3 OXM names as os-ken spells them; `ovs-ofctl` "
             f"(and so `nsgre pipeline`) prints some under older names: {renamed}, "
             f"`vlan_vid` as `vlan_tci` or `dl_vlan`.")
    return "\n\n".join(["### Tables", *_prose(TABLES_INTRO),
                        _table(("table", "name", "purpose", "may match", "may do"), rows),
                        *_prose(names)])


def priorities_section() -> str:
    blocks = ["### Priorities", *_prose(PRIORITIES_INTRO)]
    for table in T.TABLES:
        prios = sorted((p for p in T.PRIORITIES if p.table.id == table.id),
                       key=lambda p: -p.value)
        if not prios:
            continue
        blocks.append(f"**Table {table.id}, {table.name}**")
        blocks.append(_table(("priority", "name", "matches", "does"),
                             [(p.value, f"`{p.name}`", p.matches, p.does) for p in prios]))
    return "\n\n".join(blocks)


def metadata_section(topo) -> str:
    rows = [(_bits(ids.META_VLAN_MASK), f"`{ids.META_VLAN_MASK:#x}`", "`META_VLAN_MASK`",
             METADATA_VLAN_WHY)]
    for flag, name in sorted(ids.FLAG_NAMES.items()):
        const = name.upper()
        rows.append((_bits(flag), f"`{flag:#x}`", f"`{const}`", FLAG_WHY[flag]))
    net = min(n.name for n in topo.networks_on(EXAMPLE_HOST))
    vlan = topo.local_vlan(EXAMPLE_HOST, net)
    example = ids.metadata(vlan, ids.FROM_TUNNEL)
    mask = ids.META_VLAN_MASK | ids.META_ORIGIN_MASK
    outro = (f"Classify writes value and mask together: in the example below, a frame of "
             f"`{net}` (local VLAN {vlan} on {EXAMPLE_HOST}) from a tunnel gets "
             f"`write_metadata:{example:#x}/{mask:#x}`.")
    return "\n\n".join(["### Metadata", *_prose(METADATA_INTRO),
                        _table(("bits", "mask", "name", "meaning"), rows), *_prose(outro)])


def _id_range(base: int, width_name: str) -> str:
    return f"`{width_name}`" if base == 0 else f"`{base}+{width_name}`"


def groups_section() -> str:
    rows = []
    for base, local_only in ((ids.GROUP_FLOOD_ALL_BASE, False),
                             (ids.GROUP_FLOOD_LOCAL_BASE, True)):
        first, last = base + 1, base + ids.VLAN_MAX
        assert ids.decode_group(first) == ids.FloodGroup(1, local_only)
        assert ids.decode_group(last) == ids.FloodGroup(ids.VLAN_MAX, local_only)
        rows.append((_id_range(base, "V"), f"{first}..{last}",
                     "local ports only" if local_only else "all",
                     GROUP_WHY[local_only]))
    head = f"{GROUPS_INTRO} Type `{Group(0).type}`."
    return "\n\n".join(["### Flood groups", *_prose(head),
                        _table(("group id", "ids", "floods to", "for"), rows),
                        *_prose(GROUPS_OUTRO)])


def meters_section() -> str:
    storm = topology.DEFAULT_BROADCAST_LIMIT
    figures = dict(storm=storm, storm_burst=pipeline.storm_burst(storm),
                   dhcp=model.DHCP_RATE, dhcp_burst=model.DHCP_BURST)
    rows = []
    for kind, (base, last) in ids.METER_RANGES.items():
        assert ids.decode_meter(base + 1) == ids.MeterId(kind, 1)
        assert ids.decode_meter(last) == ids.MeterId(kind, last - base)
        on, what, rate = METER_WHY[kind]
        rows.append((f"`{base:#x}+P`", f"`{base + 1:#x}`..`{last:#x}` ({base + 1}..{last})",
                     METER_WHAT[kind], on, what, rate.format(**figures)))
    head = METERS_INTRO.format(ofmax=ofp.OVSDB_OFPORT_MAX)
    return "\n\n".join(["### Meters", *_prose(head),
                         _table(("meter id", "ids", "kind", "on", "meters", "rate"), rows),
                         *_prose(METERS_BUNDLE)])


def cookies_section(topo) -> str:
    magic_mask = ids.COOKIE_OWNED_MASK
    kind_mask = ((1 << ids.COOKIE_MAGIC_SHIFT) - 1) & ~((1 << ids.COOKIE_KIND_SHIFT) - 1)
    id_bits = ids.COOKIE_ID_MASK.bit_length()
    text = ids.COOKIE_MAGIC.to_bytes((ids.COOKIE_MAGIC.bit_length() + 7) // 8, "big")
    rows = [(_bits_desc(magic_mask), "magic",
             f"`{ids.COOKIE_MAGIC:#x}` (\"{text.decode('ascii')}\"): {COOKIE_MAGIC_WHY}"),
            (_bits_desc(kind_mask), "kind", "which flows: see the kinds below"),
            (_bits_desc(ids.COOKIE_ID_MASK), "id", "which of them, as the kind says")]
    kinds = [(k, f"`{name}`", KIND_WHY[k][0], KIND_WHY[k][1].format(bits=id_bits))
             for k, name in sorted(ids.KIND_NAMES.items())]
    net = min(topo.networks.values(), key=lambda n: n.name)
    endpoint = min(topo.endpoints)
    examples = (f"In the seed, network `{net.name}` (key {net.key}) has cookie "
                f"`{ids.network_cookie(net.key):#x}`, endpoint `{endpoint}` "
                f"`{ids.endpoint_cookie(endpoint):#x}`, the base flows "
                f"`{ids.BASE_COOKIE:#x}`.")
    match = f"`cookie={ids.COOKIE_OWNED:#018x}/{ids.COOKIE_OWNED_MASK:#018x}`"
    return "\n\n".join(["### Cookies", *_prose(COOKIES_INTRO),
                        _table(("bits", "field", "holds"), rows),
                        _table(("kind", "name", "on", "id"), kinds),
                        *_prose(examples, COOKIES_OWNED.format(match=match))])


def example_section(topo) -> str:
    body = "\n".join(["```", *pipeline.offline_listing(topo, EXAMPLE_HOST, cookies=False), "```"])
    return "\n\n".join([f"### Example: {EXAMPLE_HOST} of the seed",
                        *_prose(EXAMPLE_INTRO.format(host=EXAMPLE_HOST)), body])


def markdown() -> str:
    """The pipeline reference: what goes between ``BEGIN`` and ``END`` in the README."""
    topo = topology.load()
    blocks = [*_prose(INTRO), tables_section(), priorities_section(), metadata_section(topo),
              groups_section(), meters_section(), cookies_section(topo),
              example_section(topo)]
    return "\n" + "\n\n".join(blocks) + "\n\n"


# -- the README ---------------------------------------------------------------

class MarkerError(ValueError):
    """The README lacks the markers, or holds them more than once or out of order."""


def _bounds(text: str) -> tuple[int, int]:
    """Start and end of what lies between the BEGIN line and the END marker."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise MarkerError(f"expected exactly one {BEGIN!r} line and one {END!r} line "
                          f"(found {text.count(BEGIN)} and {text.count(END)})")
    begin = text.index(BEGIN) + len(BEGIN)
    if not text.startswith("\n", begin):
        raise MarkerError(f"{BEGIN!r} must end its line")
    start, end = begin + 1, text.index(END)
    if end < start or (end > 0 and text[end - 1] != "\n"):
        raise MarkerError(f"{END!r} must start a line after {BEGIN!r}")
    return start, end


def section(text: str) -> str:
    """What a README ``text`` holds between the markers."""
    start, end = _bounds(text)
    return text[start:end]


def replace_section(text: str, body: str) -> str:
    start, end = _bounds(text)
    return text[:start] + body + text[end:]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nsgre_core.reference",
        description="Print the README's pipeline reference, generated from "
                    "nsgre_core/tables.py and nsgre_core/ids.py, or rewrite it in a file.")
    parser.add_argument("--write", metavar="FILE",
                        help=f"rewrite FILE between {BEGIN} and {END}")
    args = parser.parse_args(argv)
    body = markdown()
    if args.write is None:
        sys.stdout.write(body)
        return 0
    path = Path(args.write)
    try:
        text = path.read_text()
        new = replace_section(text, body)
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
        return 1
    except MarkerError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    if new != text:
        path.write_text(new)
        print(f"{path}: pipeline reference rewritten", file=sys.stderr)
    else:
        print(f"{path}: pipeline reference already up to date", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
