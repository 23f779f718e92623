"""``nsgre draw``: what the picture must show (``to_dot`` as a
specification), and one real rendering with Graphviz."""

import html
import re
import shutil

import pytest

import topology
from nsgre_tools import cli
from nsgre_tools import draw

def eight_hosts() -> str:
    """8 hosts, 10 networks, 40 endpoints; some host pairs share no network,
    one pair shares more keys than a label lists."""
    nets = {"web": 10, "db": 20, "mgmt": 30, "storage": 40, "dmz": 100, "backup": 200,
            "lab": 1000, "voip": 3000, "tenant-a": 5000, "tenant-b": 70000}
    plan = {"hv1": ["web", "db", "mgmt", "storage", "dmz"],
            "hv2": ["web", "db", "mgmt", "storage", "backup"],
            "hv3": ["web", "lab", "voip", "mgmt", "db"],
            "hv4": ["tenant-a", "tenant-a", "tenant-b", "tenant-b", "lab"],
            "hv5": ["tenant-a", "tenant-b", "voip", "voip", "lab"],
            "hv6": ["dmz", "dmz", "web", "backup", "storage"],
            "hv7": ["tenant-a", "tenant-b", "tenant-a", "tenant-b", "tenant-a"],
            "hv8": ["web", "db", "mgmt", "storage", "backup"]}
    lines = ["hosts:"]
    lines += [f"  {h}: {{underlay_ip: 198.18.{i // 4}.{i % 4 + 1}}}" for i, h in enumerate(plan)]
    lines += ["networks:"] + [f"  {n}: {{key: {k}}}" for n, k in nets.items()]
    lines += ["endpoints:"]
    count: dict = {}
    for h, members in plan.items():
        for j, n in enumerate(members):
            count[n] = count.get(n, 0) + 1
            kind = "vm" if j % 2 == 0 else "namespace"
            lines.append(f"  {n}-{count[n]}: {{host: {h}, kind: {kind}, network: {n}, "
                         f"ip: 10.{list(nets).index(n)}.0.{count[n]}/24}}")
    return "\n".join(lines) + "\n"


SEED = topology.load()
EIGHT = topology.parse(eight_hosts(), "eight.yaml")

# -- a reader for the DOT that to_dot writes -----------------------------------

TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|<(?:[^<>]|<(?:[^<>]|<[^<>]*>)*>)*>|--|[{}\[\];=,]|[^\s{}\[\];=,"]+')


def _unquote(tok):
    if tok.startswith("<"):
        return tok[1:-1]                      # an HTML-like label
    return tok[1:-1].replace('\\"', '"').replace("\\\\", "\\") if tok.startswith('"') else tok


def parse_dot(text):
    """``(nodes, edges, clusters)``: nodes {id: (attrs, cluster or None)},
    edges [(a, b, attrs)], clusters {name: attrs}."""
    toks = TOKEN.findall(text)
    nodes, edges, clusters, stack = {}, [], {}, []
    i = 0

    def attrs_at(i):
        out = {}
        if i < len(toks) and toks[i] == "[":
            i += 1
            while toks[i] != "]":
                k, _, v = toks[i], toks[i + 1], toks[i + 2]
                out[k] = _unquote(v)
                i += 3
                if toks[i] == ",":
                    i += 1
            i += 1
        return out, i

    while i < len(toks):
        t = toks[i]
        if t == "subgraph":
            stack.append(_unquote(toks[i + 1]))
            clusters[stack[-1]] = {}
            i += 3
        elif t == "}":
            if stack:
                stack.pop()
            i += 1
        elif t in ("graph", "node", "edge") and i + 1 < len(toks) and toks[i + 1] == "[":
            a, i = attrs_at(i + 1)
            if t == "graph" and stack:
                clusters[stack[-1]].update(a)
        elif t.startswith('"') and i + 1 < len(toks) and toks[i + 1] == "--":
            a, i2 = attrs_at(i + 3)
            edges.append((_unquote(t), _unquote(toks[i + 2]), a))
            i = i2
        elif t.startswith('"'):
            a, i = attrs_at(i + 1)
            nodes[_unquote(t)] = (a, stack[-1] if stack else None)
        else:
            i += 1
    return nodes, edges, clusters


def tunnel_edges(topo):
    nodes, edges, _ = parse_dot(draw.to_dot(topo))
    hosts = {draw.host_id(h): h for h in topo.hosts}
    return {frozenset((hosts[a], hosts[b])): attrs for a, b, attrs in edges
            if a in hosts and b in hosts}


def label_text(attrs):
    return re.sub(r"<[^>]*>", "", attrs["label"]).strip()


# -- specifications ---------------------------------------------------------------

@pytest.mark.parametrize("topo", [SEED, EIGHT], ids=["seed", "eight"])
def test_every_host_is_a_cluster_labelled_with_name_and_underlay_ip(topo):
    _, _, clusters = parse_dot(draw.to_dot(topo))
    for host in topo.hosts.values():
        label = clusters[draw.cluster_id(host.name)]["label"]
        assert label.split("\\n") == [host.name, str(host.underlay_ip)]


@pytest.mark.parametrize("topo", [SEED, EIGHT], ids=["seed", "eight"])
def test_every_endpoint_is_inside_its_hosts_cluster_labelled_with_name_and_ip(topo):
    nodes, _, _ = parse_dot(draw.to_dot(topo))
    for ep in topo.endpoints.values():
        attrs, cluster = nodes[draw.endpoint_id(ep.name)]
        assert cluster == draw.cluster_id(ep.host)
        assert attrs["label"].split("\\n") == [ep.name, str(ep.ip)]


def test_vms_and_namespaces_have_different_shapes():
    nodes, _, _ = parse_dot(draw.to_dot(SEED))
    shapes = {kind: {nodes[draw.endpoint_id(e.name)][0]["shape"]
                     for e in SEED.endpoints.values() if e.kind == kind}
              for kind in ("vm", "namespace")}
    assert len(shapes["vm"]) == len(shapes["namespace"]) == 1
    assert shapes["vm"] != shapes["namespace"]


@pytest.mark.parametrize("topo", [SEED, EIGHT], ids=["seed", "eight"])
def test_each_network_has_its_own_colour_on_its_endpoints(topo):
    colors = draw.network_colors(topo)
    assert set(colors) == set(topo.networks)
    assert len(set(colors.values())) == len(colors)
    nodes, _, _ = parse_dot(draw.to_dot(topo))
    for ep in topo.endpoints.values():
        attrs = nodes[draw.endpoint_id(ep.name)][0]
        assert attrs["color"] == colors[ep.network]
        assert attrs["fillcolor"] == draw.tint(colors[ep.network])


def test_colours_are_deterministic_and_distinct_for_many_networks():
    nets = "\n".join(f"  n{i}: {{key: {i + 1}}}" for i in range(40))
    eps = "\n".join(f"  e{i}: {{host: h1, kind: vm, network: n{i}, ip: 10.0.{i}.1/24}}"
                    for i in range(40))
    text = f"hosts:\n  h1: {{underlay_ip: 198.18.0.1}}\nnetworks:\n{nets}\nendpoints:\n{eps}\n"
    colors = draw.network_colors(topology.parse(text, "many.yaml"))
    assert len(set(colors.values())) == 40
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colors.values())
    assert colors == draw.network_colors(topology.parse(text, "many.yaml"))
    assert draw.to_dot(topology.parse(text, "a.yaml")) == draw.to_dot(topology.parse(text, "a.yaml"))


def test_seed_colours_the_networks_like_the_post_blue_and_red():
    assert draw.network_colors(SEED) == {"net10": draw.PALETTE[0], "net20": draw.PALETTE[1]}


@pytest.mark.parametrize("topo", [SEED, EIGHT], ids=["seed", "eight"])
def test_legend_lists_every_network_with_colour_and_key(topo):
    colors = draw.network_colors(topo)
    dot = draw.to_dot(topo)
    legend = re.search(r"graph \[label=<(.*)>\];", dot).group(1)
    for net in topo.networks.values():
        assert re.search(rf'bgcolor="{colors[net.name]}"[^<]*</td><td[^>]*>{net.name}</td>'
                         rf'<td[^>]*>{net.key}</td>', legend), net.name


def test_tunnel_edges_are_drawn_only_between_hosts_sharing_a_network_labelled_with_the_keys():
    for topo in (SEED, EIGHT):
        edges = tunnel_edges(topo)
        for a in topo.hosts:
            for b in topo.hosts:
                if a >= b:
                    continue
                shared = sorted(n.key for n in topo.networks_on(a)
                                if n in topo.networks_on(b))
                pair = frozenset((a, b))
                if not shared:
                    assert pair not in edges
                    continue
                assert label_text(edges[pair]) == draw.key_label(shared)
                if len(shared) <= draw.MAX_LISTED_KEYS:
                    assert [int(k) for k in re.findall(r"\d+", label_text(edges[pair]))] == shared


def test_seed_tunnel_carries_both_keys():
    assert {p: label_text(a) for p, a in tunnel_edges(SEED).items()} == \
        {frozenset(("kvm1", "kvm2")): "keys 10, 20"}


def test_eight_hosts_draw_fewer_than_28_tunnels_and_say_so():
    edges = tunnel_edges(EIGHT)
    assert 0 < len(edges) < 28
    assert f"{28 - len(edges)} of 28 tunnels carry no shared network" in draw.to_dot(EIGHT)


@pytest.mark.parametrize("keys, label", [
    ([10], "key 10"),
    ([10, 20], "keys 10, 20"),
    ([10, 20, 30, 40], "keys 10, 20, 30, 40"),
    ([10, 20, 30, 40, 50], "5 keys: 10..50"),
    (list(range(10, 121, 10)) + [5000], "13 keys: 10..5000"),
])
def test_many_keys_are_summarised(keys, label):
    assert draw.key_label(keys) == label


@pytest.mark.parametrize("topo", [SEED, EIGHT], ids=["seed", "eight"])
def test_layout_host_boxes_hold_their_nodes_and_do_not_overlap(topo):
    lay = draw.layout(topo)
    boxes = lay["hosts"]
    names = list(boxes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not draw._overlap(boxes[a], boxes[b]), (a, b)
    for ep in topo.endpoints.values():
        x, y, w, h = lay["nodes"][draw.endpoint_id(ep.name)]
        x0, y0, x1, y1 = boxes[ep.host]
        assert x0 <= x - w / 2 and x + w / 2 <= x1 and y0 <= y - h / 2 and y + h / 2 <= y1


def test_dot_strings_are_quoted_and_escaped():
    assert draw._q('a"b\\c') == '"a\\"b\\\\c"'
    assert draw._q("kvm1\n198.18.0.1") == '"kvm1\\n198.18.0.1"'
    topo = topology.parse(topology.seed_text().replace("  vm1:", "  vm.1-a_b:"), "q.yaml")
    nodes, _, _ = parse_dot(draw.to_dot(topo))
    assert draw.endpoint_id("vm.1-a_b") in nodes


# -- command line and the real renderer -------------------------------------------

def test_output_suffix_picks_the_format_and_others_are_refused(tmp_path, capsys):
    assert draw.output_format("a.svg") == "svg" and draw.output_format("A.PNG") == "png"
    assert cli.main(["draw", "-o", str(tmp_path / "seed.pdf")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ".svg or .png" in err
    assert not (tmp_path / "seed.pdf").exists()


def test_missing_graphviz_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli.main(["draw", "-o", str(tmp_path / "seed.svg")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "graphviz" in err


@pytest.mark.parametrize("name", ["seed", "eight"])
def test_real_svg_shows_every_host_and_endpoint(tmp_path, name):
    assert shutil.which(draw.ENGINE), "needs Graphviz: make setup installs it (apt graphviz)"
    out = tmp_path / f"{name}.svg"
    args = ["draw", "-o", str(out)]
    if name == "eight":
        src = tmp_path / "eight.yaml"
        src.write_text(eight_hosts())
        args.insert(1, str(src))
    assert cli.main(args) == 0
    svg = html.unescape(out.read_text())
    topo = SEED if name == "seed" else EIGHT
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for name_ in list(topo.hosts) + list(topo.endpoints):
        assert f">{name_}</text>" in svg, name_
    for host in topo.hosts.values():
        assert f">{host.underlay_ip}</text>" in svg


def test_trunk_endpoint_shows_every_network_and_guest_vlan_in_their_colours():
    text = topology.seed_text() + (
        "  router: {host: kvm1, kind: vm, vlans: {100: {network: net10, ip: 10.1.1.254/24},\n"
        "                                         200: {network: net20, ip: 10.1.2.254/24}}}\n")
    topo = topology.parse(text, "trunk.yaml")
    colors = draw.network_colors(topo)
    nodes, edges, _ = parse_dot(draw.to_dot(topo))
    attrs, cluster = nodes[draw.endpoint_id("router")]
    assert cluster == draw.cluster_id("kvm1")
    assert attrs["label"].split("\\n") == ["router", "net10: 10.1.1.254/24 vlan 100",
                                            "net20: 10.1.2.254/24 vlan 200"]
    assert attrs["fillcolor"] == f"{draw.tint(colors['net10'])}:{draw.tint(colors['net20'])}"
    link = next(a for u, v, a in edges if u == draw.endpoint_id("router"))
    assert link["color"] == f"{colors['net10']}:{colors['net20']}"
