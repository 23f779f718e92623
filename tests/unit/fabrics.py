"""Random valid topologies for property tests (hypothesis strategies)."""

import random

import yaml
from hypothesis import strategies as st


@st.composite
def fabrics(draw):
    """A random valid topology as a plain dict."""
    tunnel = draw(st.sampled_from(["gre", "vxlan", "geneve"]))
    n_hosts = draw(st.integers(1, 5))
    hosts = {f"h{i}": {"underlay_ip": f"198.18.0.{i + 1}"} for i in range(n_hosts)}
    n_nets = draw(st.integers(1, 25))
    keys = draw(st.lists(st.one_of(st.none(), st.integers(1, 9000)), min_size=n_nets,
                         max_size=n_nets))
    networks, used = {}, set()
    for i, key in enumerate(keys):
        networks[f"n{i}"] = {} if key is None or key in used else {"key": key}
        used.add(key)
    endpoints = {}
    for i in range(draw(st.integers(0, 30))):
        net = f"n{draw(st.integers(0, n_nets - 1))}"
        endpoints[f"e{i}"] = {"host": f"h{draw(st.integers(0, n_hosts - 1))}", "kind": "vm",
                              "network": net, "ip": f"10.0.{i // 250}.{i % 250 + 1}/16"}
    return {"tunnel": tunnel, "hosts": hosts, "networks": networks, "endpoints": endpoints}


def assert_same(a, b):
    """Two topologies hold the same fabric, down to the model's indexes."""
    from topology import rows
    assert rows.logical(a) == rows.logical(b)
    assert a.views == b.views
    for index in ("hosts", "networks", "endpoints"):
        assert list(getattr(a, index)) == list(getattr(b, index)), index
    for index in ("_on_host", "_members", "_carried", "_carrying", "local_vlans"):
        assert getattr(a, index) == getattr(b, index), index


def build(spec) -> str:
    return yaml.safe_dump(spec, sort_keys=False)


GROWTH = ("add_net", "del_net", "add_ep", "del_ep", "add_host", "del_host")
#: Edits that renumber or move what exists (allocation keeps nothing of them).
EDITS = ("move_ep", "readdress_ep", "rekey_net")
#: A trunk endpoint added: a guest in two or three networks, one per guest VLAN.
TRUNKS = ("add_trunk",)


def _attached(e) -> list:
    """An endpoint's (network, ip) pairs, a trunk's per guest VLAN."""
    return [(v["network"], v["ip"]) for v in e["vlans"].values()] if "vlans" in e \
        else [(e["network"], e["ip"])]


def _fresh_ip(spec, rnd: random.Random) -> str:
    used = {ip.split("/")[0] for e in spec["endpoints"].values() for _, ip in _attached(e)}
    while True:
        ip = f"10.9.{rnd.randrange(250)}.{rnd.randrange(1, 250)}"
        if ip not in used:
            return ip + "/16"


def mutate(spec, rnd: random.Random, taken: set, kinds=GROWTH):
    """One random change of kind ``kinds``.  A new network's explicit key is
    one no network has yet (explicit keys win, so naming a key another
    network was given would renumber that one)."""
    spec = yaml.safe_load(build(spec))
    what = rnd.choice(kinds)
    free_key = rnd.choice([k for k in range(1, 9000) if k not in taken])
    if what == "add_net":
        spec["networks"][f"new{rnd.randrange(1000)}"] = rnd.choice([{}, {"key": free_key}])
    elif what == "del_net" and len(spec["networks"]) > 1:
        gone = rnd.choice(sorted(spec["networks"]))
        del spec["networks"][gone]
        spec["endpoints"] = {n: e for n, e in spec["endpoints"].items()
                             if gone not in dict(_attached(e))}
    elif what == "add_ep":
        spec["endpoints"][f"new{rnd.randrange(1000)}"] = {
            "host": rnd.choice(sorted(spec["hosts"])), "kind": "namespace",
            "network": rnd.choice(sorted(spec["networks"])), "ip": _fresh_ip(spec, rnd)}
    elif what == "del_ep" and spec["endpoints"]:
        del spec["endpoints"][rnd.choice(sorted(spec["endpoints"]))]
    elif what == "add_host":
        spec["hosts"]["hnew"] = {"underlay_ip": "198.19.0.1"}
    elif what == "del_host" and len(spec["hosts"]) > 1:
        gone = rnd.choice(sorted(spec["hosts"]))
        del spec["hosts"][gone]
        spec["endpoints"] = {n: e for n, e in spec["endpoints"].items() if e["host"] != gone}
    elif what == "move_ep" and spec["endpoints"]:
        ep = spec["endpoints"][rnd.choice(sorted(spec["endpoints"]))]
        ep["host"] = rnd.choice(sorted(spec["hosts"]))
    elif what == "readdress_ep" and spec["endpoints"]:
        ep = spec["endpoints"][rnd.choice(sorted(spec["endpoints"]))]
        if "vlans" not in ep:
            ep["ip"] = _fresh_ip(spec, rnd)
    elif what == "add_trunk":
        nets = rnd.sample(sorted(spec["networks"]), min(len(spec["networks"]), rnd.randint(2, 3)))
        vlans = {}
        for i, net in enumerate(nets):
            vlans[100 + i] = {"network": net, "ip": _fresh_ip(spec, rnd)}   # one per network
        spec["endpoints"][f"trunk{rnd.randrange(1000)}"] = {
            "host": rnd.choice(sorted(spec["hosts"])), "kind": "vm", "vlans": vlans}
    elif what == "rekey_net":
        spec["networks"][rnd.choice(sorted(spec["networks"]))] = {"key": free_key}
    return spec
