"""One object changed (``topology.edit``): the quick way, checked in what
the change touches, gives exactly what the whole file would -- the same
fabric when it accepts, and it never accepts what the whole file refuses
(it hands those to the whole way, whose messages are the loader's) -- and
it is the way taken for the everyday changes."""

from __future__ import annotations

import yaml
from hypothesis import given, settings, strategies as st

import topology
from topology import edit, render, rows
from topology.edit import Change
from topology.model import Topology

from fabrics import assert_same, build, fabrics

SEED = topology.load()


def fresh(topo: Topology) -> Topology:
    """The same objects built from scratch."""
    return Topology(topo.tunnel, topo.hosts.values(), topo.networks.values(),
                    list(topo.endpoints.values()), topo.local_vlans, topo.source,
                    topo.broadcast_limit, topo.underlay_mtu)


def whole(topo: Topology, change: Change):
    """The whole file's answer: the fabric, or the refusal's messages."""
    try:
        return render.edited(topo, "the change", change)
    except topology.TopologyError as exc:
        return exc.problems


# -- the changes drawn: mostly plausible, often clashing with what exists --------------
def _pick(draw, values, *others):
    return draw(st.sampled_from(sorted(values) + list(others)))


@st.composite
def changes(draw):
    spec = draw(fabrics())
    nets = sorted(spec["networks"])
    # Some extras the plain fabrics lack: an IPv6 member, a router, an empty network.
    if spec["endpoints"] and draw(st.booleans()):
        first = sorted(spec["endpoints"])[0]
        spec["networks"][spec["endpoints"][first]["network"]]["router"] = first
    if draw(st.booleans()):
        spec["networks"]["empty"] = {}
    if draw(st.booleans()):
        spec["networks"]["v6"] = {}
        spec["endpoints"]["six"] = {"host": sorted(spec["hosts"])[0], "kind": "vm",
                                    "network": "v6", "ip": "fd00::1/64"}
    topo = topology.parse(build(spec), "fabric.yaml")
    section = draw(st.sampled_from(edit.SECTIONS))
    existing = getattr(topo, section)
    name = _pick(draw, existing, "new", "new2", "h0", "n0", "e0", "bad name")
    if draw(st.integers(0, 3)) == 0:
        return topo, Change(section, name)                         # removed
    if draw(st.booleans()):
        name = draw(st.sampled_from(["new", "new2", "e99"]))        # a name free mostly
    if section == "hosts":
        body = {"underlay_ip": draw(st.sampled_from(
            [str(h.underlay_ip) for h in topo.hosts.values()]
            + ["198.19.0.9", "198.19.0.10", "fd00::9", "not-an-ip"]))}
        if draw(st.booleans()):
            body["dpid"] = draw(st.sampled_from([h.dpid for h in topo.hosts.values()]
                                                + [77, 0, "x"]))
    elif section == "networks":
        body = {}
        if draw(st.booleans()):
            body["key"] = draw(st.sampled_from([n.key for n in topo.networks.values()]
                                               + [4000, 8999, 0, -1, "k"]))
        for field, values in (("dhcp", [False, True, "no"]), ("mtu", [1400, 9000, 500]),
                              ("dns", [["192.0.2.53"], ["x"]]), ("lease_time", [600, 1]),
                              ("router", ["e0"])):
            if draw(st.integers(0, 4)) == 0:
                body[field] = draw(st.sampled_from(values))
    else:
        members = [e for e in topo.endpoints.values()]
        usual = draw(st.integers(0, 3)) > 0           # plausible, clashing now and then
        net = _pick(draw, topo.networks, "nonet") if not usual else \
            draw(st.sampled_from(sorted(topo.networks)))
        taken = [str(a.ip) for e in members for a in e.attachments]
        body = {"host": draw(st.sampled_from(sorted(topo.hosts))) if usual else
                _pick(draw, topo.hosts, "nohost"),
                "kind": "vm" if usual else draw(st.sampled_from(["vm", "namespace", "box"]))}
        fresh_ips = ["10.7.0.1/16", "10.7.0.2/16", "fd00::2/64"]
        ips = fresh_ips if usual else taken + fresh_ips + ["fd00::1/64", "10.7.0.3"]
        if draw(st.integers(0, 5)) == 0:
            body["vlans"] = {draw(st.sampled_from([100, 0, 200])): {
                "network": net, "ip": draw(st.sampled_from(ips))}}
        else:
            body.update(network=net, ip=draw(st.sampled_from(ips)))
        for field, values in (
                ("mac", [e.mac for e in members] + ["02:00:00:00:aa:01", "01:00:00:00:00:01"]),
                ("port", [e.port for e in members] + ["tap9", f"{topo.tunnel}-x"]),
                ("iface_id", [e.name for e in members] + ["uuid-1", "two words"]),
                ("link_local", [str(e.ipv6_link_local) for e in members] + ["fe80::77",
                                                                             "2001:db8::1"])):
            if values and draw(st.integers(0, 4)) == 0:
                body[field] = draw(st.sampled_from(values))
    return topo, Change(section, name, body)


@settings(max_examples=400, deadline=None)
@given(changes())
def test_the_quick_way_accepts_only_what_the_whole_file_accepts_and_builds_the_same(case):
    topo, change = case
    quick = edit._QUICK[change.section, change.body is None](topo, change.name, change.body)
    answer = whole(topo, change)
    if quick is None:
        return                     # the whole way decides (edit.edited takes it)
    assert isinstance(answer, Topology), (change, answer)
    assert_same(quick, answer)
    assert_same(quick, fresh(quick))           # the indexes kept in step, not rebuilt


@settings(max_examples=100, deadline=None)
@given(changes())
def test_edited_answers_as_the_whole_file_does(case):
    topo, change = case
    answer = whole(topo, change)
    try:
        got = edit.edited(topo, "the change", change)
    except topology.TopologyError as exc:
        assert exc.problems == answer
        return
    assert_same(got, answer)
    assert got.source == topo.source


@st.composite
def new_endpoints(draw):
    """A fabric and an endpoint that fits in it: new name, free address."""
    topo = topology.parse(build(draw(fabrics())), "fabric.yaml")
    nets = sorted(topo.networks)
    body = {"host": draw(st.sampled_from(sorted(topo.hosts))),
            "kind": draw(st.sampled_from(["vm", "namespace"]))}
    six = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:
        chosen = draw(st.lists(st.sampled_from(nets), min_size=1, max_size=3, unique=True))
        body["vlans"] = {100 + i: {"network": n, "ip": f"10.8.0.{i + 1}/16"}
                         for i, n in enumerate(chosen)}
    else:
        body.update(network=draw(st.sampled_from(nets)),
                    ip="fd00::99/64" if six else "10.8.0.1/16")
        if six and draw(st.booleans()):
            body["link_local"] = "fe80::99"
    for field, value in (("mac", "02:00:00:00:aa:99"), ("port", "tap99"),
                         ("iface_id", "uuid-99")):
        if draw(st.booleans()):
            body[field] = value
    return topo, Change("endpoints", "newcomer", body)


@settings(max_examples=200, deadline=None)
@given(new_endpoints())
def test_an_endpoint_that_fits_goes_the_quick_way_and_is_allocated_as_the_whole_file_would(
        case):
    topo, change = case
    quick = edit._add_endpoint(topo, change.name, change.body)
    assert quick is not None, change
    assert_same(quick, whole(topo, change))
    assert_same(quick, fresh(quick))


def test_everyday_changes_go_the_quick_way():
    seed = SEED
    cases = [
        Change("endpoints", "teal", {"host": "kvm1", "kind": "namespace", "network": "net10",
                                     "ip": "10.1.1.9/24"}),
        Change("endpoints", "trunky", {"host": "kvm2", "kind": "vm",
                                       "vlans": {100: {"network": "net10",
                                                       "ip": "10.1.1.10/24"}}}),
        Change("endpoints", "v6", {"host": "kvm2", "kind": "vm", "network": "net10",
                                   "ip": "fd00::5/64", "iface_id": "uuid-5"}),
        Change("endpoints", "blue"),
        Change("networks", "net99", {"key": 99, "dhcp": False}),
        Change("networks", "net98", {}),
        Change("hosts", "kvm3", {"underlay_ip": "198.18.0.3"}),
    ]
    for change in cases:
        quick = edit._QUICK[change.section, change.body is None](seed, change.name,
                                                                 change.body)
        assert quick is not None, change
        assert_same(quick, whole(seed, change))
    emptied = edit.edited(seed, "x", Change("endpoints", "vm2"))
    emptied = edit.edited(emptied, "x", Change("endpoints", "red"))
    assert not emptied.members("net20") and not emptied.carries("kvm1", "net20")
    assert edit._del_network(emptied, "net20", None) is not None


def test_a_refused_change_says_what_the_whole_file_says():
    change = Change("endpoints", "teal", {"host": "kvm1", "kind": "namespace",
                                          "network": "net01", "ip": "10.1.1.9/24"})
    try:
        edit.edited(SEED, "nsgre endpoint add teal", change)
    except topology.TopologyError as exc:
        assert any("endpoints.teal.network: unknown network 'net01' (did you mean" in p
                   for p in exc.problems), exc.problems
        assert [p.replace("nsgre endpoint add teal", "the change", 1) for p in exc.problems] \
            == whole(SEED, change)
    else:
        raise AssertionError("accepted an unknown network")


def test_a_chain_of_quick_changes_is_the_fabric_built_from_scratch():
    topo = SEED
    for i in range(30):
        topo = edit.edited(topo, "x", Change("endpoints", f"ep{i}", {
            "host": ("kvm1", "kvm2")[i % 2], "kind": "vm", "network": "net10",
            "ip": f"10.1.1.{100 + i}/24"}))
        if i % 3 == 0:
            topo = edit.edited(topo, "x", Change("networks", f"extra{i}", {}))
        if i % 4 == 1:
            topo = edit.edited(topo, "x", Change("endpoints", f"ep{i - 1}"))
    assert_same(topo, fresh(topo))
    again = topology.parse(render.text(render.document(topo)), "again.yaml", topo)
    assert_same(topo, again)


# -- the file the controller writes ------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(changes())
def test_the_controllers_file_is_the_document_as_text_and_reads_back_as_the_fabric(case):
    topo, change = case
    versions = [topo]
    try:
        versions.append(edit.edited(topo, "x", change))
    except topology.TopologyError:
        pass
    for t in versions:
        assert render.file_text(t) == render.text(render.document(t))
        assert_same(topology.parse(render.file_text(t), "again.yaml", t), t)


TRICKY = ["yes", "no", "on", "off", "null", "~", "true", "1e3", "0x1F", "1_000", "12:30",
          "2001-01-01", ".inf", "0o17", "'quoted'", "a: b", "#x", "[x]", "{y}", "-dash",
          "x'y", "plain", "10.1.1.2/24", "fd00::1/64", "02:00:00:00:00:01", "007", "1.5"]


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(TRICKY + ["n1", "n2"]), st.dictionaries(
    st.sampled_from(["a", "b", "vlans"]), st.one_of(
        st.sampled_from(TRICKY), st.integers(-5, 2**40), st.booleans(),
        st.lists(st.sampled_from(TRICKY), max_size=3),
        st.dictionaries(st.integers(1, 4094), st.dictionaries(
            st.sampled_from(["network", "ip"]), st.sampled_from(TRICKY)), max_size=2)),
    max_size=3), max_size=4))
def test_the_file_text_reads_back_as_the_document_it_was_made_from(section):
    doc = {"tunnel": "gre", "broadcast_limit": 1000, "hosts": section, "networks": {},
           "endpoints": section}
    assert yaml.safe_load(render.text(doc)) == doc


def test_a_change_shares_with_the_version_before_what_it_does_not_touch():
    # The controller keeps a host's port index while same_ports holds:
    # an endpoint added on kvm1 in a network it carries leaves kvm2's alone.
    new = edit.edited(SEED, "x", Change("endpoints", "teal", {
        "host": "kvm1", "kind": "vm", "network": "net10", "ip": "10.1.1.9/24"}))
    assert new.same_ports(SEED, "kvm2") and not new.same_ports(SEED, "kvm1")
    assert new.views["net20"] is SEED.views["net20"]
    # A network new to kvm1: every host's tunnel ports to kvm1 may carry it.
    wider = edit.edited(SEED, "x", Change("networks", "net30", {}))
    wider2 = edit.edited(wider, "x", Change("endpoints", "teal", {
        "host": "kvm1", "kind": "vm", "network": "net30", "ip": "10.3.0.9/24"}))
    assert not wider2.same_ports(wider, "kvm2")
