"""The controller core, driven without root: fake switches record the bytes
it sends, read them back and apply them; after every kind of event, what
each switch holds is exactly what the model says."""

import logging

import pytest

import topology
from nsgre_core import pipeline
from nsgre_core.reconcile import Verb
from osken_apps import events as ev
from osken_apps import wire
from osken_apps.controller import STATE_PARTS, Controller

from fakeswitch import FakeHostDb, FakeSwitch, Harness, desired

SEED = topology.load()
NET30 = topology.seed_text().replace("  net20: {key: 20}\n", "  net20: {key: 20}\n  net30: {}\n") \
    + "  green:  {host: kvm1, kind: vm,        network: net30, ip: 10.1.1.1/24}\n" \
    + "  yellow: {host: kvm2, kind: namespace, network: net30, ip: 10.1.1.2/24}\n"
WIRED = pipeline.offline_ports(topology.parse(NET30, "net30.yaml"))


def fabric(topo=SEED, **kwargs):
    """A controller and one fake switch per host, every port of the larger
    topology present, connected."""
    h = Harness(topo, **kwargs)
    switches = {name: FakeSwitch(h, host.dpid, WIRED[name]) for name, host in topo.hosts.items()}
    for switch in switches.values():
        h.connect(switch)
    return h, switches


def assert_as_modelled(h, switches):
    for name, switch in switches.items():
        assert switch.table() == desired(h.core.topology, name, switch.ports), name


def test_switches_that_connect_empty_get_exactly_the_model():
    h, switches = fabric()
    assert_as_modelled(h, switches)
    for switch in switches.values():
        kinds = [m.kind for m in switch.received]
        # read first (all four parts); the meters (OVS cannot bundle them),
        # then one bundle of everything else, then a barrier
        assert kinds[:4] == ["request"] * 4
        meters = [m for m in switch.received[4:] if m.kind == "op" and m.bundle is None]
        assert meters and all(m.op.verb == Verb.ADD_METER for m in meters)
        assert kinds[4 + len(meters)] == "bundle_open"
        assert kinds[-2:] == ["bundle_commit", "barrier"]
        assert h.core.switches[switch.dpid].sent == {}      # the barrier came back


def test_a_reconnecting_switch_that_holds_the_model_is_sent_nothing():
    h, switches = fabric()
    kvm1 = switches["kvm1"]
    h.disconnect(kvm1)
    assert kvm1.dpid not in h.core.switches
    before = len(kvm1.mods())
    h.connect(kvm1)
    assert len(kvm1.mods()) == before
    assert_as_modelled(h, switches)


def test_a_switch_restarted_empty_is_programmed_again_in_full():
    h, switches = fabric()
    kvm2 = switches["kvm2"]
    h.disconnect(kvm2)
    kvm2.flows, kvm2.groups, kvm2.meters = {}, {}, {}
    h.connect(kvm2)
    assert_as_modelled(h, switches)


def test_a_power_cycled_port_gets_its_flows_back_on_its_new_number_and_none_stay_on_the_old():
    h, switches = fabric()
    kvm1 = switches["kvm1"]
    old = kvm1.ports["p-vm1"]
    kvm1.set_port("p-vm1", None)
    h.advance(Controller.COALESCE_SECONDS)
    assert_as_modelled(h, switches)
    h.advance(2)                       # the guest boots again
    kvm1.set_port("p-vm1", 42)
    h.advance(Controller.COALESCE_SECONDS)
    assert_as_modelled(h, switches)
    for flow, _ in kvm1.table()[0]:
        assert dict(flow.match).get("in_port") != old
        assert ("output", old) not in flow.actions


def test_port_events_within_the_coalescing_window_go_out_as_one_bundle():
    h, switches = fabric()
    kvm1 = switches["kvm1"]
    opened = sum(m.kind == "bundle_open" for m in kvm1.received)
    kvm1.set_port("p-vm1", None)
    kvm1.set_port("p-red", None)
    kvm1.set_port("p-vm1", 50)
    kvm1.set_port("p-red", 51)
    h.advance(Controller.COALESCE_SECONDS)
    assert sum(m.kind == "bundle_open" for m in kvm1.received) == opened + 1
    assert_as_modelled(h, switches)


def test_a_port_whose_link_goes_down_and_up_under_its_number_costs_nothing():
    h, switches = fabric()
    kvm1 = switches["kvm1"]
    received = len(kvm1.received)
    for _ in range(100):
        kvm1.set_port("p-vm1", kvm1.ports["p-vm1"])     # port-status MODIFY: link state
    h.run()
    assert not h.core.switches[kvm1.dpid].holding and h.core.port_flaps == {}
    h.advance(1)
    assert len(kvm1.received) == received and h.core.port_changes["kvm1"] >= 100


def test_a_changed_topology_is_applied_as_its_delta_only():
    h, switches = fabric()
    before = {n: len(s.mods()) for n, s in switches.items()}
    answers = []
    h.queue_event(ev.Apply(NET30, "net30.yaml", lambda *a: answers.append(a)))
    h.run()
    (status, body), = answers
    assert status == 200 and body["ok"] and body["changes"]["kvm1"] > 0
    assert_as_modelled(h, switches)
    assert "green" in h.core.topology.endpoints
    for name, switch in switches.items():
        sent = len(switch.mods()) - before[name]
        assert 0 < sent < 20 and sent == body["changes"][name]


def test_a_bad_topology_is_refused_and_nothing_is_sent():
    h, switches = fabric()
    before = {n: len(s.received) for n, s in switches.items()}
    answers = []
    h.queue_event(ev.Apply(NET30.replace("network: net30", "network: net31"), "bad.yaml",
                           lambda *a: answers.append(a)))
    h.run()
    (status, body), = answers
    assert status == 400 and "unknown network 'net31'" in "\n".join(body["problems"])
    assert {n: len(s.received) for n, s in switches.items()} == before
    assert "green" not in h.core.topology.endpoints


def test_a_host_leaving_the_topology_loses_all_of_nsgres_flows_groups_and_meters():
    h, switches = fabric()
    alone = topology.seed_text().replace("  kvm2: {underlay_ip: 198.18.0.2}\n", "") \
        .replace("host: kvm2", "host: kvm1").replace("p-vm2", "p-vm2")
    answers = []
    h.queue_event(ev.Apply(alone, "alone.yaml", lambda *a: answers.append(a)))
    h.run()
    assert answers[0][0] == 200, answers
    assert switches["kvm2"].table() == (set(), set(), set())
    assert switches["kvm2"].dpid in h.core.strangers


def test_a_refused_bundle_is_logged_as_the_message_it_carried_counted_and_repaired(caplog):
    h = Harness(SEED)
    kvm1 = FakeSwitch(h, SEED.host("kvm1").dpid, WIRED["kvm1"])
    refused = []

    def refuse_first_group(op):
        if op.verb == Verb.ADD_GROUP and not refused:
            refused.append(op)
            return True
        return False
    kvm1.refuse = refuse_first_group
    with caplog.at_level(logging.INFO, logger="nsgre"):
        h.connect(kvm1)
    assert refused
    assert h.core.switch_errors["kvm1"] == 2                 # the message and the commit
    text = caplog.text
    assert f"kvm1 rejected add_group {refused[0].item.to_ofctl()}" in text
    assert "kvm1 rejected bundle 1 commit" in text
    assert "read again in full" in text
    # read again and sent again: the second bundle went through
    assert sum(m.kind == "bundle_open" for m in kvm1.received) == 2
    assert kvm1.table() == desired(SEED, "kvm1", kvm1.ports)


def test_an_error_about_a_message_not_the_cores_is_counted_but_reads_nothing():
    h, switches = fabric()
    kvm1 = switches["kvm1"]
    before = len(kvm1.received)
    h.queue_event(ev.SwitchError(kvm1.dpid, kvm1, 7, 1, 1))
    h.run()
    assert h.core.switch_errors["kvm1"] == 1 and len(kvm1.received) == before


def test_the_audit_repairs_a_flow_deleted_behind_its_back():
    h, switches = fabric()
    kvm2 = switches["kvm2"]
    victim = next(k for k, f in kvm2.flows.items() if f.table == 3)
    del kvm2.flows[victim]
    h.core.AUDIT_RATE = 0           # no rounds of full reads: only the count notices
    h.queue_event(ev.AuditTick())
    h.run()
    assert_as_modelled(h, switches)


def test_the_audit_repairs_a_flow_modified_in_place_by_its_full_read():
    h, switches = fabric()
    kvm1 = switches["kvm1"]
    key, flow = next((k, f) for k, f in kvm1.flows.items() if f.table == 3 and f.actions)
    kvm1.flows[key] = type(flow)(flow.table, flow.priority, flow.match, (), flow.goto,
                                 flow.write_metadata, flow.cookie, flow.meter)
    assert kvm1.table() != desired(SEED, "kvm1", kvm1.ports)
    h.queue_event(ev.AuditTick())
    h.advance(5)                                   # one round, within the interval
    assert_as_modelled(h, switches)


def audit_read_held_back(h, switch):
    """Start an audit that reads ``switch`` in full (its flows in one
    slice) and let it run up to its read of the flows; the replies (the
    flows as the request found them) are held back and returned."""
    h.core.AUDIT_SLICE = 10 ** 6
    h.core.audit_read(h.core.switches[switch.dpid], STATE_PARTS)
    while True:
        reply = next(e for e in h.events if isinstance(e, ev.StateReply) and e.conn is switch)
        h.events.remove(reply)
        if reply.part == "flows":
            break
        h.core.handle(reply)
    replies = [e for e in h.events if isinstance(e, ev.StateReply) and e.xid == reply.xid]
    for e in replies:
        h.events.remove(e)
    assert h.core.switches[switch.dpid].auditing == {"flows": reply.xid}
    return [reply] + replies


def test_a_port_change_during_an_audit_read_is_synced_without_waiting_for_the_read():
    h, switches = fabric()
    kvm1 = switches["kvm1"]
    kvm1.set_port("p-vm1", 42)                     # comes before the audit's request
    replies = audit_read_held_back(h, kvm1)
    h.advance(Controller.COALESCE_SECONDS)
    assert_as_modelled(h, switches)                # the read is still out
    sent = len(kvm1.mods())
    h.events.extend(replies)
    h.run()
    # what it read (before the change's bundle) plus the bundle is what was sent
    assert not h.core.switches[kvm1.dpid].auditing and len(kvm1.mods()) == sent
    assert h.core.drift == {}
    assert_as_modelled(h, switches)


def test_an_audit_read_overlapping_a_change_still_repairs_a_flow_deleted_behind_its_back():
    h, switches = fabric()
    kvm1 = switches["kvm1"]
    kvm1.set_port("p-vm1", 42)
    after = desired(SEED, "kvm1", kvm1.ports)[0]
    victim = next(k for k, f in kvm1.flows.items() if (f, f.cookie) in after)
    del kvm1.flows[victim]
    replies = audit_read_held_back(h, kvm1)
    h.advance(Controller.COALESCE_SECONDS)
    assert victim not in kvm1.flows
    h.events.extend(replies)
    h.run()
    assert h.core.drift == {"kvm1": 1}
    assert_as_modelled(h, switches)


def test_a_lost_port_event_is_found_by_the_audit_and_the_port_gets_its_flows():
    h, switches = fabric()
    kvm1 = switches["kvm1"]
    kvm1.ports["p-vm1"] = 42                       # no port-status came
    h.queue_event(ev.AuditTick())                  # a round: kvm1's ports are read first
    h.advance(Controller.COALESCE_SECONDS)
    assert h.core.switches[kvm1.dpid].ofports["p-vm1"] == 42
    assert_as_modelled(h, switches)


def test_the_audit_reads_the_flows_a_slice_at_a_time_paced_and_repairs_any_slice():
    h, switches = fabric()
    kvm1 = switches["kvm1"]
    h.core.AUDIT_SLICE = 4
    slices = 1
    while len(h.core.switches[kvm1.dpid].flows) > slices * 4:
        slices *= 2
    assert slices >= 8
    by_slice = {}
    for key, flow in kvm1.flows.items():
        by_slice.setdefault(flow.cookie % slices, key)
    for key in by_slice.values():                # one flow of every slice there is
        del kvm1.flows[key]
    asked = len(kvm1.requests)
    h.queue_event(ev.AuditTick())                 # a round: kvm1 first, one read a slice
    h.advance(0.001)
    assert [what for what, _ in kvm1.requests[asked:]] == ["ports"]   # the next one later
    h.advance(len(kvm1.flows) / h.core.AUDIT_RATE + 1)
    flows_read = [cookie for what, cookie in kvm1.requests[asked:] if what == "flows"]
    assert sorted(c[0] % slices for c in flows_read) == list(range(slices))
    assert all(c[1] % slices == slices - 1 for c in flows_read)
    assert h.core.drift["kvm1"] == len(by_slice)
    assert_as_modelled(h, switches)


def test_a_switch_of_no_host_is_left_alone_until_a_topology_names_it():
    h, switches = fabric()
    stranger = FakeSwitch(h, 0xDEAD, {"p-x": 1})
    h.connect(stranger)
    assert stranger.received == []
    text = NET30.replace("  kvm2: {underlay_ip: 198.18.0.2}\n",
                         "  kvm2: {underlay_ip: 198.18.0.2}\n  kvm3: {underlay_ip: 198.18.0.3, "
                         "dpid: 0xdead}\n")
    h.queue_event(ev.Apply(text, "three.yaml", lambda *a: None))
    h.run()
    assert [m.kind for m in stranger.received][:4] == ["request"] * 4
    assert stranger.table() == desired(h.core.topology, "kvm3", stranger.ports)


def test_replies_from_a_replaced_connection_or_to_another_request_are_ignored():
    h, switches = fabric()
    kvm1 = switches["kvm1"]
    held = kvm1.table()
    ghost = FakeSwitch(h, kvm1.dpid, {})
    h.queue_event(ev.StateReply(kvm1.dpid, ghost, 0x10000000, "flows", {}))
    h.queue_event(ev.StateReply(kvm1.dpid, kvm1, 12345, "flows", {}))
    h.queue_event(ev.PortChanged(kvm1.dpid, ghost, "p-vm1", None))
    h.advance(1)
    assert kvm1.table() == held and h.core.switches[kvm1.dpid].ofports == kvm1.ports


def test_reconcile_time_is_read_from_the_clock_it_is_given():
    h, switches = fabric()
    assert h.core.reconcile_seconds == 0          # the fake clock never moved inside a sync
    assert h.core.reconciles == len(switches)


def test_every_message_sent_is_remembered_by_xid_until_its_barrier_returns():
    h = Harness(SEED)
    kvm1 = FakeSwitch(h, SEED.host("kvm1").dpid, WIRED["kvm1"])
    h.queue_event(ev.SwitchUp(kvm1.dpid, kvm1))
    h.run()
    switch = h.core.switches[kvm1.dpid]
    assert switch.sent == {}
    # hold the barrier back: what the bundle carried is still known by xid
    held_back = []
    kvm1.send = lambda data: held_back.extend(wire.decode(data))
    kvm1.set_port("p-vm1", 9)
    h.advance(Controller.COALESCE_SECONDS)
    carried = [m for m in held_back if m.kind == "op"]
    # (a delete carries only an id: compare what went on the wire)
    assert carried and all(wire.message(switch.sent[m.xid], m.xid) == wire.message(m.op, m.xid)
                           for m in carried)
    barrier = next(m for m in reversed(held_back) if m.kind == "barrier")
    h.queue_event(ev.BarrierReply(kvm1.dpid, kvm1, barrier.xid))
    h.run()
    assert switch.sent == {}


def test_ovsdb_reads_prepare_a_host_in_chunks_between_other_events():
    h = Harness(SEED, hostdb=FakeHostDb(WIRED))
    h.core.PREPARE_CHUNK = 1
    h.run()
    assert h.core.prepared == {}                   # a chunk each, the rest queued as timers
    h.advance(0)
    assert h.core.prepared == {"kvm1": 2, "kvm2": 2}
    assert set(h.core.piece_cache["kvm1"]) == {"net10", "net20"}


@pytest.mark.parametrize("part", STATE_PARTS)
def test_a_read_is_complete_only_when_every_part_has_come(part):
    h = Harness(SEED)
    kvm1 = FakeSwitch(h, SEED.host("kvm1").dpid, WIRED["kvm1"])
    h.queue_event(ev.SwitchUp(kvm1.dpid, kvm1))
    h.core.handle(h.events.popleft())
    answers = [e for e in h.events if not (isinstance(e, ev.StateReply) and e.part == part)]
    h.events.clear()
    h.events.extend(answers)
    h.run()
    assert not h.core.switches[kvm1.dpid].ready and kvm1.mods() == []


def test_an_event_that_raises_is_logged_and_counted_and_the_audit_goes_on(caplog, monkeypatch):
    h, switches = fabric()
    kvm2 = switches["kvm2"]
    broken = []

    def explode(core, switch, parts, paced=False):
        broken.append(switch.host)
        raise RuntimeError("the switch went away mid-read")
    with monkeypatch.context() as m:
        m.setattr(Controller, "audit_read", explode)
        with caplog.at_level(logging.ERROR, logger="nsgre"):
            h.queue_event(ev.AuditTick())
            h.run()
    assert broken and h.core.event_errors["AuditTick"] == 1
    assert "handling AuditTick failed" in caplog.text and "mid-read" in caplog.text
    # the next tick works: a flow modified in place (only a full read sees
    # it) is repaired by the round, which goes on
    key, flow = next((k, f) for k, f in kvm2.flows.items() if f.actions)
    kvm2.flows[key] = type(flow)(flow.table, flow.priority, flow.match, (), flow.goto,
                                 flow.write_metadata, flow.cookie, flow.meter)
    for _ in range(3):
        h.queue_event(ev.AuditTick())
        h.advance(5)
    assert_as_modelled(h, switches)


def syncs(switch) -> int:
    return sum(m.kind == "bundle_open" for m in switch.received)


def test_a_flapping_port_is_synced_ever_less_often_and_right_once_it_settles(caplog):
    h, switches = fabric()
    kvm1, kvm2 = switches["kvm1"], switches["kvm2"]
    before = syncs(kvm1)
    caplog.set_level(logging.INFO, logger="nsgre")
    for i in range(1000):                       # 1,000 changes in 10 s
        kvm1.set_port("p-vm1", None if i % 2 == 0 else 60 + i % 7)
        h.advance(0.01)
        if i == 500:                            # meanwhile, a guest elsewhere comes up
            kvm2.set_port("p-blue", 77)
            kvm1.set_port("p-red", 78)
            h.advance(Controller.COALESCE_SECONDS)
            assert kvm2.table() == desired(h.core.topology, "kvm2", kvm2.ports)
            assert any(dict(f.match).get("in_port") == 78 for f, _ in kvm1.table()[0])
    flapping_syncs = syncs(kvm1) - before
    assert flapping_syncs < 20, flapping_syncs       # was one every 50 ms: 200
    port_lines = [r for r in caplog.records if "port p-vm1" in r.getMessage()]
    assert len(port_lines) < 30, len(port_lines)
    assert any("is flapping" in r.getMessage() for r in port_lines)
    assert h.core.port_flaps["kvm1", "p-vm1"] > 900
    assert h.core.port_changes["kvm1"] == 1001
    h.advance(5)                                  # it settles: right within the longest hold
    assert_as_modelled(h, switches)
    h.advance(20)                                 # quiet long enough: back to a prompt sync
    kvm1.set_port("p-vm1", 90)
    h.advance(Controller.COALESCE_SECONDS)
    assert_as_modelled(h, switches)


def test_a_posted_file_that_is_not_utf8_is_refused_naming_the_byte():
    h, switches = fabric()
    answers = []
    h.queue_event(ev.Apply(NET30.encode().replace(b"green", b"gr\xffen"), "bad.yaml",
                           lambda *a: answers.append(a)))
    h.run()
    (status, body), = answers
    assert status == 400 and "not UTF-8: invalid byte 0xff at offset" in body["problems"][0]


def test_a_file_is_validated_off_the_event_loop_and_a_change_landing_meanwhile_is_allocated_around():
    h, switches = fabric()
    jobs = []
    h.compute = jobs.append                      # validation runs elsewhere, later
    answers = []
    first = NET30
    second = NET30.replace("  yellow: {host: kvm2, kind: namespace, network: net30, "
                           "ip: 10.1.1.2/24}\n", "")
    h.queue_event(ev.Apply(first, "first.yaml", lambda *a: answers.append(("first", *a))))
    h.queue_event(ev.Apply(second, "second.yaml", lambda *a: answers.append(("second", *a))))
    h.run()
    assert len(jobs) == 2 and answers == [] and "green" not in h.core.topology.endpoints
    # meanwhile the switches are served: a port change is synced as usual
    switches["kvm1"].set_port("p-red", 33)
    h.advance(Controller.COALESCE_SECONDS)
    assert_as_modelled(h, switches)
    for _ in range(3):                           # the second is checked again, around the first
        if jobs:
            h.queue_event(jobs.pop(0)())
            h.run()
    assert [a[:2] for a in answers] == [("first", 200), ("second", 200)]
    assert "green" in h.core.topology.endpoints and "yellow" not in h.core.topology.endpoints
    assert h.core.topology.source == "second.yaml"
    assert_as_modelled(h, switches)


def test_an_object_added_through_the_api_is_applied_and_kept_in_the_controllers_file(tmp_path):
    from topology.edit import Change
    path = tmp_path / "fabric.yaml"
    path.write_text(topology.seed_text())
    h, switches = fabric(topology.load(str(path)), topology_path=str(path))
    answers = []
    yellow = {"host": "kvm2", "kind": "namespace", "network": "net10", "ip": "10.1.1.3/24"}
    h.queue_event(ev.Change("nsgre endpoint add yellow", Change("endpoints", "yellow", yellow),
                            lambda *a: answers.append(a)))
    h.run()
    (status, body), = answers
    assert status == 200 and body["saved"] == str(path) and body["changes"]["kvm2"] > 0
    kept = topology.load(str(path), previous=h.core.topology)
    assert "yellow" in kept.endpoints and kept.views == h.core.topology.views
    assert_as_modelled(h, switches)
    h.queue_event(ev.Change("nsgre endpoint add yellow", Change("endpoints", "yellow", yellow),
                            lambda *a: answers.append(a)))
    h.run()
    status, body = answers[-1]
    assert status == 400
    assert body["problems"] == ["nsgre endpoint add yellow: endpoints.yellow: exists already"]


def test_without_a_topology_file_an_object_change_is_refused_not_lost():
    h, switches = fabric()
    answers = []
    h.queue_event(ev.Change("nsgre host del kvm2", lambda doc: None,
                            lambda *a: answers.append(a)))
    h.run()
    (status, body), = answers
    assert status == 409 and "--topology FILE" in body["error"]


def test_a_controller_following_a_database_applies_what_lands_there_and_takes_nothing_else():
    h, switches = fabric(database="unix:/nowhere")
    grown = topology.parse(NET30, "db", h.core.topology)
    h.queue_event(ev.Loaded(grown))
    h.run()
    assert h.core.topology is grown
    assert_as_modelled(h, switches)
    answers = []
    h.queue_event(ev.Apply(topology.seed_text(), "posted.yaml", lambda *a: answers.append(a)))
    h.queue_event(ev.Change("nsgre host del kvm2", lambda doc: None,
                            lambda *a: answers.append(a)))
    h.queue_event(ev.Reload())
    h.run()
    assert [status for status, _ in answers] == [409, 409]
    assert h.core.topology is grown
