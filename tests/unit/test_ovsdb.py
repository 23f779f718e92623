"""Reading a bridge over OVSDB without the IDL: what the reply says about
ports, and whether a host's tunnels are already what the model wants."""

import json
import socket
import threading

import pytest
from hypothesis import given, settings, strategies as st

import topology
from osken_apps import ovsdb


def uuid(n):
    return ["uuid", f"00000000-0000-0000-0000-{n:012d}"]


def reply(ports, bridge=True):
    """The three selects' result for ``ports``: (name, type, options,
    external_ids, ofport) with ofport None for 'not numbered yet'."""
    port_rows, iface_rows = [], []
    for i, (name, kind, options, ext, ofport) in enumerate(ports):
        iface_rows.append({"_uuid": uuid(1000 + i), "name": name, "type": kind,
                           "options": ["map", sorted(options.items())],
                           "ofport": ["set", []] if ofport is None else ofport})
        port_rows.append({"_uuid": uuid(i), "name": name, "interfaces": uuid(1000 + i),
                          "external_ids": ["map", sorted(ext.items())]})
    refs = [uuid(i) for i in range(len(ports))]
    bridge_rows = [{"ports": refs[0] if len(refs) == 1 else ["set", refs]}] if bridge else []
    return [{"rows": bridge_rows}, {"rows": port_rows}, {"rows": iface_rows}]


SEED = topology.load()
WANT = ovsdb.tunnel_ports(SEED, "kvm1")            # gre-kvm2 to kvm2
TUNNEL = ("gre-kvm2", "gre", WANT["gre-kvm2"][1], {ovsdb.PEER_KEY: "kvm2"}, 7)


def test_ports_are_read_with_their_openflow_numbers_unnumbered_ones_and_local_left_out():
    ports = ovsdb.ports_from_reply(reply([
        ("br-int", "internal", {}, {}, 65534), TUNNEL, ("tap-vm1", "", {}, {}, 3),
        ("tap-new", "", {}, {}, None)]))
    assert ports["gre-kvm2"].peer == "kvm2" and ports["tap-vm1"].peer is None
    assert set(ports) == {"br-int", "gre-kvm2", "tap-vm1", "tap-new"}
    assert ovsdb.ofports(ports) == {"gre-kvm2": 7, "tap-vm1": 3}


def test_a_bridge_of_one_port_is_read_too():
    assert set(ovsdb.ports_from_reply(reply([TUNNEL]))) == {"gre-kvm2"}


def test_no_such_bridge_reads_as_none():
    assert ovsdb.ports_from_reply(reply([TUNNEL], bridge=False)) is None


def ops(*ports):
    return ovsdb.tunnel_ops(ovsdb.ports_from_reply(reply(list(ports))), WANT)


def changes(*ports):
    """(names of ports removed, names of tunnels added) by ``tunnel_ops``."""
    records = ovsdb.ports_from_reply(reply(list(ports)))
    by_uuid = {r.uuid: name for name, r in records.items()}
    found = ovsdb.tunnel_ops(records, WANT)
    mutate = found[-1]["mutations"] if found else []
    removed = {by_uuid[u] for m in mutate if m[1] == "delete" for _, u in m[2][1]}
    added = {op["row"]["name"] for op in found if op.get("table") == "Port"}
    return removed, added


def test_tunnels_already_right_need_no_write_and_other_ports_are_left_alone():
    assert ops(TUNNEL) == []
    assert ops(TUNNEL, ("eth1", "", {}, {}, 9), ("br-int", "internal", {}, {}, 65534)) == []


def test_a_missing_tunnel_is_added_tagged_with_its_peer_under_a_wait_on_the_port_set():
    found = ops()
    assert [op["op"] for op in found] == ["wait", "insert", "insert", "mutate"]
    iface, port = found[1]["row"], found[2]["row"]
    assert (iface["name"], iface["type"], dict(iface["options"][1])) == \
        ("gre-kvm2", "gre", WANT["gre-kvm2"][1])
    assert port["external_ids"] == ["map", [[ovsdb.PEER_KEY, "kvm2"]]]
    assert found[0]["rows"] == [{"ports": ["set", []]}]


def test_wrong_and_stale_tunnels_are_replaced_or_removed_never_someone_elses_port():
    stale = ("gre-kvm9", "gre", {}, {ovsdb.PEER_KEY: "kvm9"}, 8)
    assert changes(TUNNEL, stale) == ({"gre-kvm9"}, set())
    moved = (*TUNNEL[:2], {**TUNNEL[2], "remote_ip": "198.18.0.99"}, *TUNNEL[3:])
    assert changes(moved) == ({"gre-kvm2"}, {"gre-kvm2"})
    vxlan = (TUNNEL[0], "vxlan", *TUNNEL[2:])
    assert changes(vxlan) == ({"gre-kvm2"}, {"gre-kvm2"})
    by_hand = (*TUNNEL[:3], {}, 7)           # a tunnel's name, but not made by nsgre
    assert changes(by_hand) == ({"gre-kvm2"}, {"gre-kvm2"})
    assert changes(TUNNEL, ("eth1", "gre", {}, {}, 9)) == (set(), set())


def serve(chunks):
    """A one-shot OVSDB stand-in on a socket pair: reads the request, then
    writes ``chunks`` (bytes) one by one."""
    ours, theirs = socket.socketpair()

    def run():
        theirs.recv(65536)
        for chunk in chunks:
            theirs.sendall(chunk)
        theirs.close()
    threading.Thread(target=run, daemon=True).start()
    ours.sendall(b"{}")
    return ours


def test_a_reply_split_anywhere_and_preceded_by_an_echo_is_read_whole():
    message = json.dumps({"id": "nsgre-read", "result": reply([TUNNEL]), "error": None})
    echo = json.dumps({"id": "echo", "method": "echo", "params": []})
    text = (echo + message).encode()
    for cut in (1, len(echo), len(echo) + 1, len(text) // 2, len(text) - 1):
        sock = serve([text[:cut], text[cut:]])
        assert ovsdb._read_reply(sock, "nsgre-read")["result"] == json.loads(message)["result"]
        sock.close()


JSON_TEXT = st.text(alphabet=st.sampled_from(list('ab{}[]"\\:, é€😀\n')), max_size=12)
JSON_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | JSON_TEXT,
                          lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(JSON_TEXT, inner, max_size=4), max_leaves=20)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(JSON_TEXT, JSON_VALUE, min_size=1, max_size=4), min_size=1,
                max_size=5), st.data())
def test_messages_cut_anywhere_even_inside_a_character_read_back_whole_and_in_order(
        messages, data):
    # strings may hold braces (unbalancing the count) and characters of
    # several bytes, which a cut may split
    from osken_apps.ovsdb_rpc import _Messages
    raw = "".join(json.dumps(m, ensure_ascii=False) for m in messages).encode()
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(raw) - 1)), max_size=6)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)]) if raw[a:b]]
    sock = serve(chunks)
    got = _Messages(sock)
    assert [got.next() for _ in messages] == messages
    sock.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(JSON_TEXT, JSON_VALUE, min_size=1, max_size=4), min_size=1,
                max_size=5), st.data())
def test_the_framer_gives_each_message_with_the_very_text_it_came_as(messages, data):
    # the database's TLS gate forwards that text: not a byte may change or go
    from osken_apps.ovsdb_rpc import Framer
    texts = [json.dumps(m, ensure_ascii=False, indent=data.draw(st.sampled_from([None, 1])))
             for m in messages]
    raw = " ".join(texts).encode()
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(raw) - 1)), max_size=6)))
    framer, got = Framer(), []
    for a, b in zip([0, *cuts], [*cuts, len(raw)]):
        if framer.feed(raw[a:b]) != "partial":
            got += framer.decode()
    got += framer.decode()
    assert [m for m, _ in got] == messages and [t for _, t in got] == texts
    assert not framer.holding


def test_a_connection_closed_before_the_reply_is_an_error():
    sock = serve([b'{"id": "nsgre-read", "res'])
    with pytest.raises(ovsdb.OvsdbError, match="closed"):
        ovsdb._read_reply(sock, "nsgre-read")
    sock.close()


def test_an_unreachable_ovsdb_is_an_error_naming_the_remote(tmp_path):
    remote = f"unix:{tmp_path}/db.sock"
    with pytest.raises(ovsdb.OvsdbError, match=remote):
        ovsdb.bridge_ports(remote)
    with pytest.raises(ovsdb.OvsdbError, match="ssl:"):
        ovsdb.bridge_ports("ssl:198.18.0.1:6640")


def unix_server(tmp_path, answer):
    """An OVSDB stand-in on a Unix socket: answers one request with
    ``answer(request)`` (None: never answers)."""
    path = str(tmp_path / "db.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def run():
        conn, _ = server.accept()
        request = json.loads(conn.recv(65536))
        reply = answer(request)
        if reply is not None:
            conn.sendall(json.dumps({"id": request["id"], **reply}).encode())
        conn.recv(1)                 # hold the connection until the client gives up
        conn.close()
        server.close()
    threading.Thread(target=run, daemon=True).start()
    return f"unix:{path}"


def test_a_wait_that_does_not_hold_is_an_ovsdb_timeout(tmp_path):
    remote = unix_server(tmp_path, lambda r: {"result": [{"error": "timed out"}], "error": None})
    with pytest.raises(ovsdb.OvsdbTimeout, match="timed out"):
        ovsdb.transact(remote, [{"op": "wait"}])


def test_a_server_that_never_answers_is_an_ovsdb_timeout(tmp_path):
    remote = unix_server(tmp_path, lambda r: None)
    with pytest.raises(ovsdb.OvsdbTimeout, match="no reply within"):
        ovsdb.transact(remote, [{"op": "select"}], timeout=0.2)


def test_other_ovsdb_errors_are_not_timeouts(tmp_path):
    remote = unix_server(tmp_path, lambda r: {"result": [{"error": "constraint violation",
                                                          "details": "no"}], "error": None})
    with pytest.raises(ovsdb.OvsdbError, match="constraint violation") as caught:
        ovsdb.transact(remote, [{"op": "insert"}])
    assert not isinstance(caught.value, ovsdb.OvsdbTimeout)


def test_a_watched_bridge_reports_its_own_interfaces_as_rows_come_change_and_go():
    view = ovsdb._BridgeView("br-int")
    refs = lambda *uuids: ["set", [["uuid", u] for u in uuids]]
    iface = lambda name, ext=(): {"initial": {"name": name, "external_ids": ["map", list(ext)]}}
    changed = view.apply({
        "Bridge": {"b1": {"initial": {"name": "br-int", "ports": refs("p1", "p2")}}},
        "Port": {"p1": {"initial": {"interfaces": ["uuid", "i1"]}},
                 "p2": {"initial": {"interfaces": ["uuid", "i2"]}},
                 "p3": {"initial": {"interfaces": ["uuid", "i3"]}}},     # on another bridge
        "Interface": {"i1": iface("vnet0", [["iface-id", "a"]]), "i2": {"initial": {"name": "p-red"}},
                      "i3": iface("eth0")}})
    assert view.current == {"vnet0": {"iface-id": "a"}, "p-red": {}}
    assert changed == {"vnet0", "p-red"}
    # a mark added: the map's difference
    changed = view.apply({"Interface": {"i1": {"modify": {"external_ids": [
        "map", [["nsgre-installed", "true"]]]}}}})
    assert changed == {"vnet0"}
    assert view.current["vnet0"] == {"iface-id": "a", "nsgre-installed": "true"}
    # a value changed, a pair removed (named with its value)
    view.apply({"Interface": {"i1": {"modify": {"external_ids": [
        "map", [["iface-id", "b"], ["nsgre-installed", "true"]]]}}}})
    assert view.current["vnet0"] == {"iface-id": "b"}
    # a port added: the bridge's list sends the one port, not the list
    changed = view.apply({"Bridge": {"b1": {"modify": {"ports": ["uuid", "p4"]}}},
                          "Port": {"p4": {"insert": {"interfaces": ["uuid", "i4"]}}},
                          "Interface": {"i4": {"insert": {"name": "vnet1"}}}})
    assert changed == {"vnet1"} and set(view.current) == {"vnet0", "p-red", "vnet1"}
    # a port removed with its interface
    changed = view.apply({"Bridge": {"b1": {"modify": {"ports": ["uuid", "p1"]}}},
                          "Port": {"p1": {"delete": None}}, "Interface": {"i1": {"delete": None}}})
    assert changed == {"vnet0"} and view.current == {"p-red": {}, "vnet1": {}}
    # another bridge's rows change: nothing to report
    assert view.apply({"Interface": {"i3": {"modify": {"external_ids": [
        "map", [["x", "y"]]]}}}}) == set()


def test_an_interface_made_again_under_its_name_in_one_update_stays_reported():
    view = ovsdb._BridgeView("br-int")
    view.apply({"Bridge": {"b1": {"initial": {"name": "br-int", "ports": ["uuid", "p1"]}}},
                "Port": {"p1": {"initial": {"interfaces": ["uuid", "i1"]}}},
                "Interface": {"i1": {"initial": {"name": "vnet0"}}}})
    changed = view.apply({"Bridge": {"b1": {"modify": {"ports": ["set", [["uuid", "p1"],
                                                                         ["uuid", "p2"]]]}}},
                          "Port": {"p1": {"delete": None},
                                   "p2": {"insert": {"interfaces": ["uuid", "i2"]}}},
                          "Interface": {"i1": {"delete": None},
                                        "i2": {"insert": {"name": "vnet0", "external_ids": [
                                            "map", [["iface-id", "a"]]]}}}})
    assert changed == {"vnet0"} and view.current == {"vnet0": {"iface-id": "a"}}


@pytest.mark.parametrize("insert_first", [True, False])
def test_a_bridge_deleted_and_made_again_in_one_update_keeps_its_interfaces(insert_first):
    """As ``del-br br-int -- add-br br-int`` (Neutron's bridge reset): the
    rows of one update come in no set order."""
    view = ovsdb._BridgeView("br-int")
    view.apply({"Bridge": {"b1": {"initial": {"ports": ["set", [["uuid", "p1"], ["uuid", "p2"]]]}}},
                "Port": {"p1": {"initial": {"interfaces": ["uuid", "i1"]}},
                         "p2": {"initial": {"interfaces": ["uuid", "i2"]}}},
                "Interface": {"i1": {"initial": {"name": "vnet0", "external_ids": [
                                  "map", [["iface-id", "a"]]]}},
                              "i2": {"initial": {"name": "p-red"}}}})
    bridges = [("b2", {"insert": {"ports": ["set", [["uuid", "p1"], ["uuid", "p3"]]]}}),
               ("b1", {"delete": None})]
    view.apply({"Bridge": dict(bridges if insert_first else bridges[::-1]),
                "Port": {"p2": {"delete": None}, "p3": {"insert": {"interfaces": ["uuid", "i3"]}}},
                "Interface": {"i2": {"delete": None}, "i3": {"insert": {"name": "vnet1"}}}})
    assert view.current == {"vnet0": {"iface-id": "a"}, "vnet1": {}}
    view.apply({"Bridge": {"b2": {"modify": {"ports": ["uuid", "p1"]}}},
                "Port": {"p1": {"delete": None}}, "Interface": {"i1": {"delete": None}}})
    assert view.current == {"vnet1": {}}
