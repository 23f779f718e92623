"""Draw a topology the way a person sketches it: hosts as boxes holding
their VMs and namespaces, one colour per network, tunnels between hosts
labelled with the keys they carry.

``to_dot(topo)`` is pure: it returns Graphviz DOT text (one cluster per
host, every endpoint inside its host's cluster, a legend of networks,
colours and keys).  ``render(dot, out)`` runs Graphviz (Debian package
``graphviz``) to write an ``.svg`` or ``.png``.
"""

from __future__ import annotations

import colorsys
import math
import html
import shutil
import subprocess
from pathlib import Path

#: Output formats, by file suffix.
FORMATS = {".svg": "svg", ".png": "png"}

#: Graphviz program that draws the picture (``-n2``: at the positions given).
ENGINE = "neato"

#: Network colours in order of tunnel key: saturated enough for a border,
#: told apart by most colour-blind readers; more networks get generated hues.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
           "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f")

#: A tunnel edge lists at most this many keys; more are summarised.
MAX_LISTED_KEYS = 4

SHAPES = {"vm": "box3d", "namespace": "ellipse"}


class DrawError(Exception):
    """Why a picture could not be made (one line)."""


# -- pure parts ---------------------------------------------------------------

def network_colors(topo) -> dict[str, str]:
    """``{network: "#rrggbb"}``: distinct, and the same for the same topology.
    Networks are coloured in order of tunnel key."""
    nets = sorted(topo.networks.values(), key=lambda n: (n.key, n.name))
    colors: dict[str, str] = {}
    used: set[str] = set()
    for i, net in enumerate(nets):
        if i < len(PALETTE):
            c = PALETTE[i]
        else:
            j = i - len(PALETTE)
            while True:          # golden-angle hues, alternating lightness
                h = (0.07 + j * 0.618033988749895) % 1.0
                v = (0.80, 0.60, 0.95)[j % 3]
                r, g, b = colorsys.hsv_to_rgb(h, 0.85, v)
                c = f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
                if c not in used and c not in PALETTE:
                    break
                j += 1
        used.add(c)
        colors[net.name] = c
    return colors


def tint(color: str, amount: float = 0.78) -> str:
    """``color`` mixed with ``amount`` of white: a fill that black text reads on."""
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)


def attachments(endpoint) -> list[tuple[str, object, int | None]]:
    """``[(network, ip_interface, guest_vlan or None)]`` of an endpoint: one
    for an access endpoint, several for a trunk."""
    return [(a.network, a.ip, a.vlan) for a in endpoint.attachments]


def shared_keys(topo, a: str, b: str) -> list[int]:
    """Tunnel keys the tunnel between hosts ``a`` and ``b`` carries: those of
    the networks both hosts carry, ascending."""
    on_b = {n.name for n in topo.networks_on(b)}
    return sorted(n.key for n in topo.networks_on(a) if n.name in on_b)


def key_label(keys: list[int]) -> str:
    """``key 10``, ``keys 10, 20``, or ``12 keys: 10..5000`` for many."""
    if len(keys) == 1:
        return f"key {keys[0]}"
    if len(keys) <= MAX_LISTED_KEYS:
        return "keys " + ", ".join(map(str, keys))
    return f"{len(keys)} keys: {keys[0]}..{keys[-1]}"


def _q(text: str) -> str:
    """A DOT quoted string; ``\\n`` in ``text`` becomes a centred line break."""
    lines = str(text).split("\n")
    return '"' + "\\n".join(l.replace("\\", "\\\\").replace('"', '\\"') for l in lines) + '"'


def _attrs(**kw) -> str:
    parts = []
    for k, v in kw.items():
        if v is None:
            continue
        if isinstance(v, HTML):
            parts.append(f"{k}=<{v}>")
        else:
            parts.append(f"{k}={_q(v)}")
    return "[" + ", ".join(parts) + "]"


class HTML(str):
    """A Graphviz HTML-like label (written between ``<`` and ``>``)."""


def host_id(name: str) -> str:
    return f"host:{name}"


def endpoint_id(name: str) -> str:
    return f"ep:{name}"


def cluster_id(name: str) -> str:
    return f"cluster_host_{name}"


def _legend(topo, colors, drawn: int, total: int) -> HTML:
    e = html.escape
    rows = ['<tr><td colspan="4"><b>networks</b></td></tr>',
            '<tr><td></td><td align="left"><i>name</i></td>'
            f'<td align="right"><i>{e(topo.tunnel)} key</i></td>'
            '<td align="right"><i>endpoints</i></td></tr>']
    for net in sorted(topo.networks.values(), key=lambda n: (n.key, n.name)):
        members = len(topo.members(net.name))
        rows.append(f'<tr><td bgcolor="{colors[net.name]}" width="28"> </td>'
                    f'<td align="left">{e(net.name)}</td>'
                    f'<td align="right">{net.key}</td>'
                    f'<td align="right">{members}</td></tr>')
    rows.append('<tr><td colspan="4" align="left">3-D box: VM   oval: namespace</td></tr>')
    note = f"line: {e(topo.tunnel)} tunnel, labelled with the keys it carries"
    rows.append(f'<tr><td colspan="4" align="left">{note}</td></tr>')
    if drawn < total:
        rows.append(f'<tr><td colspan="4" align="left">{total - drawn} of {total} tunnels '
                    'carry no shared network: not drawn</td></tr>')
    return HTML('<table border="0" cellborder="1" cellspacing="0" cellpadding="4">'
                + "".join(rows) + "</table>")


# Layout, in points (1/72 inch).  Graphviz's own layouts either overlap the
# host boxes (neato) or scatter the tunnel labels (fdp), so the picture is
# laid out here and ``neato -n2`` only draws it: host bridges on a ring,
# each host's endpoints in a grid on the outer side of its bridge, so the
# tunnels run as chords inside the ring and never cross an endpoint.
CHAR_W, LINE_H = 6.8, 15.0        # Helvetica 11: mean character width, line height
GAP, PAD, HOST_LABEL_H, MARGIN = 14.0, 12.0, 38.0, 40.0
PER_LINE = 6                      # endpoints side by side along a bridge


def _text_size(label: str) -> tuple[float, float]:
    lines = label.split("\n")
    return max(len(l) for l in lines) * CHAR_W, len(lines) * LINE_H


def _overlap(a, b, margin=0.0) -> bool:
    return not (a[2] + margin <= b[0] or b[2] + margin <= a[0]
                or a[3] + margin <= b[1] or b[3] + margin <= a[1])


def _endpoint_label(ep) -> str:
    atts = attachments(ep)
    def tag(vlan):
        return f" vlan {vlan}" if vlan is not None else ""
    if len(atts) == 1:
        _, ip, vlan = atts[0]
        return f"{ep.name}\n{ip}{tag(vlan)}"
    return "\n".join([ep.name] + [f"{net}: {ip}{tag(vlan)}" for net, ip, vlan in atts])


def layout(topo) -> dict:
    """Positions (points, y up) of every node, the box of every host and the
    label position of every drawn tunnel: ``{"nodes": {id: (x, y, w, h)},
    "hosts": {host: (x0, y0, x1, y1)}, "tunnels": {(a, b): (x, y)}}``."""
    hosts = list(topo.hosts)
    labels = {e.name: _endpoint_label(e) for e in topo.endpoints.values()}
    cell_w = max([_text_size(l)[0] + 30 for l in labels.values()] or [60.0])
    cell_h = max([_text_size(l)[1] + 16 for l in labels.values()] or [30.0])
    br = {h: (max(len("br-int"), len(str(topo.host(h).underlay_ip))) * 6.0 + 20, 34.0)
          for h in hosts}
    # Each host relative to its bridge at (0, 0), for an outward unit vector.
    def host_shape(h, ux, uy):
        eps = topo.endpoints_on(h)
        n = len(eps)
        nodes = {}
        bw, bh = br[h]
        x0, y0, x1, y1 = -bw / 2, -bh / 2, bw / 2, bh / 2
        if n:
            # Lines of at most PER_LINE endpoints along the bridge, stacked outward.
            lines = math.ceil(n / PER_LINE)
            per = math.ceil(n / lines)
            rows = abs(uy) > abs(ux) + 1e-6          # above/below, else beside
            along, across = (cell_w, cell_h) if rows else (cell_h, cell_w)
            sign = (uy if rows else ux) >= 0 and 1 or -1
            start = ((bh if rows else bw) / 2 + 2 * GAP + across / 2) * sign
            for i, e in enumerate(eps):
                line, j = divmod(i, per)
                count = min(per, n - line * per)
                a = (j - (count - 1) / 2) * (along + GAP)
                b = start + sign * line * (across + GAP)
                if not rows:
                    a = -a                           # first endpoint on top
                x, y = (a, b) if rows else (b, a)
                nodes[endpoint_id(e.name)] = (x, y, cell_w, cell_h)
                x0, y0 = min(x0, x - cell_w / 2), min(y0, y - cell_h / 2)
                x1, y1 = max(x1, x + cell_w / 2), max(y1, y + cell_h / 2)
        label_w = max(len(h), len(str(topo.host(h).underlay_ip))) * 7.5 + 2 * PAD
        x0, x1 = min(x0 - PAD, -label_w / 2), max(x1 + PAD, label_w / 2)
        box = (x0, y0 - PAD, x1, y1 + PAD + HOST_LABEL_H)
        nodes[host_id(h)] = (0.0, 0.0, bw, bh)
        return nodes, box

    k = len(hosts)
    angles = [math.pi - 2 * math.pi * i / k for i in range(k)]
    shapes = [host_shape(h, math.cos(a), math.sin(a)) if k > 1 else host_shape(h, 0.0, 1.0)
              for h, a in zip(hosts, angles)]
    pairs = [(a, b) for i, a in enumerate(hosts) for b in hosts[i + 1:] if shared_keys(topo, a, b)]
    texts = {p: key_label(shared_keys(topo, *p)) for p in pairs}
    widest = max([len(t) * CHAR_W + 16 for t in texts.values()] or [0.0])

    def place(radius):
        centres = [(radius * math.cos(a), radius * math.sin(a)) for a in angles] if k > 1 \
            else [(0.0, 0.0)]
        boxes = {h: (b[0] + x, b[1] + y, b[2] + x, b[3] + y)
                 for h, (_, b), (x, y) in zip(hosts, shapes, centres)}
        return centres, boxes

    radius = 60.0
    while k > 1:
        centres, boxes = place(radius)
        room = widest + 2 * MARGIN if k == 2 else MARGIN
        if not any(_overlap(boxes[a], boxes[b], room)
                   for i, a in enumerate(hosts) for b in hosts[i + 1:]):
            break
        radius *= 1.08
    centres, boxes = place(radius)
    nodes = {}
    for (shape, _), (x, y) in zip(shapes, centres):
        for nid, (nx_, ny, w, h) in shape.items():
            nodes[nid] = (nx_ + x, ny + y, w, h)
    # Each tunnel's label on its chord, where it hides no other label or box.
    taken = list(boxes.values())
    tunnels = {}
    for a, b in pairs:
        (ax, ay, _, _), (bx, by, _, _) = nodes[host_id(a)], nodes[host_id(b)]
        w, h = len(texts[(a, b)]) * CHAR_W + 10, LINE_H + 6
        spot = None
        for t in (0.5, 0.42, 0.58, 0.34, 0.66, 0.27, 0.73, 0.2, 0.8):
            x, y = ax + (bx - ax) * t, ay + (by - ay) * t
            rect = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
            if not any(_overlap(rect, r) for r in taken):
                spot = (x, y, rect)
                break
        if spot is None:
            x, y = (ax + bx) / 2, (ay + by) / 2
            spot = (x, y, (x - w / 2, y - h / 2, x + w / 2, y + h / 2))
        taken.append(spot[2])
        tunnels[(a, b)] = spot[:2]
    return {"nodes": nodes, "hosts": boxes, "tunnels": tunnels}


def _pt(x, y) -> str:
    return f"{x:.1f},{y:.1f}"


def _size(w, h) -> dict:
    return {"width": f"{w / 72:.3f}", "height": f"{h / 72:.3f}"}


def to_dot(topo) -> str:
    """The topology as Graphviz DOT text (undirected graph ``nsgre``), laid
    out: render it with ``neato -n2``."""
    colors = network_colors(topo)
    lay = layout(topo)
    nodes = lay["nodes"]
    out = ["graph nsgre {",
           '  graph [fontname="Helvetica", fontsize=12, splines=line, pad=0.3, '
           'labelloc=b, labeljust=l, outputorder=edgesfirst];',
           '  node [fontname="Helvetica", fontsize=11, style=filled, penwidth=2, fixedsize=false];',
           '  edge [fontname="Helvetica", fontsize=11];']
    for host in topo.hosts.values():
        x0, y0, x1, y1 = lay["hosts"][host.name]
        out.append(f"  subgraph {_q(cluster_id(host.name))} {{")
        box = _attrs(label=f"{host.name}\n{host.underlay_ip}", style="rounded,filled",
                     fillcolor="#f4f4f4", color="#555555", penwidth="1.5", fontsize="13",
                     labelloc="t", labeljust="c", bb=f"{x0:.1f},{y0:.1f},{x1:.1f},{y1:.1f}")
        out.append(f"    graph {box};")
        hid = host_id(host.name)
        x, y, w, h = nodes[hid]
        out.append(f"    {_q(hid)} "
                   + _attrs(label="br-int", shape="box", style="rounded,filled",
                            fillcolor="#555555", fontcolor="white", color="#333333",
                            fontsize="10", penwidth="1", pos=_pt(x, y), **_size(w, h)) + ";")
        for ep in topo.endpoints_on(host.name):
            atts = attachments(ep)
            shape = SHAPES.get(ep.kind, "box")
            if len(atts) == 1:
                net = atts[0][0]
                style = dict(fillcolor=tint(colors[net]), color=colors[net], style="filled")
            else:
                fill = ":".join(tint(colors[n]) for n, _, _ in atts)
                style = dict(fillcolor=fill, color="#333333",
                             style="wedged" if shape == "ellipse" else "striped")
            eid = endpoint_id(ep.name)
            x, y, w, h = nodes[eid]
            out.append(f"    {_q(eid)} " + _attrs(label=_endpoint_label(ep), shape=shape,
                                                  pos=_pt(x, y), **_size(w, h), **style) + ";")
            edge_color = ":".join(colors[n] for n, _, _ in atts)
            out.append(f"    {_q(eid)} -- {_q(hid)} " + _attrs(color=edge_color, penwidth="2") + ";")
        out.append("  }")
    for (a, b), (x, y) in lay["tunnels"].items():
        text = html.escape(key_label(shared_keys(topo, a, b)))
        label = HTML('<table border="0" cellborder="0" cellpadding="1" bgcolor="white">'
                     f"<tr><td>{text}</td></tr></table>")
        out.append(f"  {_q(host_id(a))} -- {_q(host_id(b))} "
                   + _attrs(label=label, lp=_pt(x, y), color="#333333", penwidth="2.5") + ";")
    total = len(topo.hosts) * (len(topo.hosts) - 1) // 2
    out.append("  graph " + _attrs(label=_legend(topo, colors, len(lay["tunnels"]), total)) + ";")
    out.append("}")
    return "\n".join(out) + "\n"


# -- rendering ----------------------------------------------------------------

def output_format(out: str | Path) -> str:
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise DrawError(f"cannot draw to {str(out)!r}: the output must end in "
                        + " or ".join(FORMATS) + f", not {suffix or 'no suffix'!r}")
    return FORMATS[suffix]


def render(dot: str, out: str | Path, engine: str = ENGINE) -> None:
    """Lay ``dot`` out with Graphviz and write ``out`` (.svg or .png)."""
    fmt = output_format(out)
    exe = shutil.which(engine)
    if exe is None:
        raise DrawError(f"Graphviz is not installed (no {engine!r} command): "
                        "apt-get install graphviz")
    proc = subprocess.run([exe, "-n2", f"-T{fmt}", "-o", str(out)], input=dot.encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise DrawError(f"{engine} failed: {msg[-1] if msg else f'exit {proc.returncode}'}")
