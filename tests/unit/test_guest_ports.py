"""Guests attached the way hypervisors attach them, driven through the
controller core: found by ``external_ids:iface-id`` under whatever tap name
and port number a boot gives them, refused when their identity does not
hold, marked ``nsgre-installed`` once their flows are in (confirmed by
barriers on their host and on every peer), and answered DHCP from the model."""

import logging

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

import topology
from osken_apps import events as ev
from osken_apps import wire
from osken_apps.controller import Controller
from nsgre_core import pipeline

from fakeswitch import FakeHostDb, FakeSwitch, Harness, desired

SEED = topology.load()
VM1 = SEED.endpoints["vm1"]
WIRED = pipeline.offline_ports(SEED)
WITHOUT_VM1 = {name: n for name, n in WIRED["kvm1"].items() if name != VM1.port}
SETTLE = 1.0      # past the coalescing of port events (a guest boots in seconds)
TRUNK = topology.seed_text() + \
    "  router: {host: kvm1, kind: vm, vlans: {100: {network: net10, ip: 10.1.1.254/24},\n" \
    "                                         200: {network: net20, ip: 10.1.2.254/24}}}\n"


def guest_fabric(topo=SEED, kvm1_ports=WITHOUT_VM1):
    """The seed's two hosts with OVSDB; on kvm1, no port for vm1 yet."""
    db = FakeHostDb()
    db.interfaces["kvm1"] = {name: {} for name in kvm1_ports}
    h = Harness(topo, hostdb=db)
    wired = pipeline.offline_ports(topo)
    kvm1 = FakeSwitch(h, topo.host("kvm1").dpid, kvm1_ports)
    kvm2 = FakeSwitch(h, topo.host("kvm2").dpid, wired["kvm2"])
    h.connect(kvm1)
    h.connect(kvm2)
    return h, db, kvm1, kvm2


def boot(h, db, switch, host, tap, ofport, ep=VM1, mac=None):
    """What libvirt does when a guest starts: one transaction adds the port
    with its external_ids; OVS numbers it and says so."""
    db.set_interface(h, host, tap, {"iface-id": ep.iface_id, "attached-mac": mac or ep.mac,
                                    "vm-id": "3b1f0b1e-0000-4000-8000-000000000001",
                                    "iface-status": "active"})
    switch.set_port(tap, ofport)
    h.advance(SETTLE)


def power_off(h, db, switch, host, tap):
    switch.set_port(tap, None)
    db.set_interface(h, host, tap, None)
    h.advance(SETTLE)


def taps(db) -> set:
    """kvm1's guest interfaces marked nsgre-installed (its namespace's
    veth, bound by name, is marked too)."""
    return db.installed("kvm1") - set(WITHOUT_VM1)


def vm1_flows_on(switch, ofport) -> bool:
    return any(dict(f.match).get("in_port") == ofport or ("output", ofport) in f.actions
               for f, _ in switch.table()[0])


def test_a_guest_is_found_by_its_iface_id_whatever_its_tap_is_called():
    h, db, kvm1, kvm2 = guest_fabric()
    boot(h, db, kvm1, "kvm1", "vnet0", 7)
    assert kvm1.table() == desired(SEED, "kvm1", {**WITHOUT_VM1, VM1.port: 7})
    assert taps(db) == {"vnet0"}


def test_a_power_cycled_guest_keeps_its_network_on_its_new_tap_and_nothing_stays_on_the_old():
    h, db, kvm1, kvm2 = guest_fabric()
    boot(h, db, kvm1, "kvm1", "vnet0", 7)
    power_off(h, db, kvm1, "kvm1", "vnet0")
    assert not vm1_flows_on(kvm1, 7) and taps(db) == set()
    boot(h, db, kvm1, "kvm1", "vnet1", 8)
    assert kvm1.table() == desired(SEED, "kvm1", {**WITHOUT_VM1, VM1.port: 8})
    assert not vm1_flows_on(kvm1, 7)
    assert taps(db) == {"vnet1"}


def test_the_port_event_may_come_before_the_identity_and_the_guest_is_still_bound():
    h, db, kvm1, kvm2 = guest_fabric()
    kvm1.set_port("vnet0", 7)
    h.advance(SETTLE)
    assert not vm1_flows_on(kvm1, 7)
    db.set_interface(h, "kvm1", "vnet0", {"iface-id": VM1.iface_id})
    h.advance(SETTLE)
    assert kvm1.table() == desired(SEED, "kvm1", {**WITHOUT_VM1, VM1.port: 7})
    assert taps(db) == {"vnet0"}


def test_a_report_of_changed_names_is_trusted_only_against_the_report_it_was_made_from():
    h, db, kvm1, kvm2 = guest_fabric()
    kvm1.set_port("vnet0", 7)
    h.advance(SETTLE)
    ext = {"iface-id": VM1.iface_id}
    db.interfaces["kvm1"]["vnet0"] = ext
    # the watch names no change, but from a report the core never held
    # (dropped, say): everything is compared
    stale = {n: dict(e) for n, e in db.interfaces["kvm1"].items() if n != "vnet0"}
    h.queue_event(ev.Interfaces("kvm1", {n: dict(e) for n, e in db.interfaces["kvm1"].items()},
                                frozenset(), stale))
    h.advance(SETTLE)
    assert kvm1.table() == desired(SEED, "kvm1", {**WITHOUT_VM1, VM1.port: 7})


def test_an_interface_whose_attached_mac_is_not_the_endpoints_gets_no_flows(caplog):
    h, db, kvm1, kvm2 = guest_fabric()
    with caplog.at_level(logging.WARNING, logger="nsgre"):
        boot(h, db, kvm1, "kvm1", "vnet0", 7, mac="02:de:ad:be:ef:01")
    assert kvm1.table() == desired(SEED, "kvm1", WITHOUT_VM1)
    assert not vm1_flows_on(kvm1, 7) and taps(db) == set()
    assert "attached-mac 02:de:ad:be:ef:01 is not the endpoint's MAC" in caplog.text
    assert h.core.refused["kvm1"] and "attached-mac" in \
        {r.reason for r in h.core.refused["kvm1"]}


def test_of_two_interfaces_claiming_one_iface_id_the_older_keeps_it(caplog):
    h, db, kvm1, kvm2 = guest_fabric()
    boot(h, db, kvm1, "kvm1", "vnet0", 17)
    with caplog.at_level(logging.WARNING, logger="nsgre"):
        boot(h, db, kvm1, "kvm1", "vnet9", 15)      # lower number, but newer
    assert kvm1.table() == desired(SEED, "kvm1", {**WITHOUT_VM1, VM1.port: 17})
    assert not vm1_flows_on(kvm1, 15)
    assert taps(db) == {"vnet0"}
    assert "interface vnet9 claims endpoint vm1: interface vnet0 has it already" in caplog.text
    # when the older one goes, the other is next in line
    power_off(h, db, kvm1, "kvm1", "vnet0")
    assert kvm1.table() == desired(SEED, "kvm1", {**WITHOUT_VM1, VM1.port: 15})
    assert taps(db) == {"vnet9"}


def test_a_restarted_controller_touches_no_guest_until_its_hosts_interfaces_have_come():
    # vm1 runs on vnet0, programmed by a first controller; a second one
    # starts while kvm1's OVSDB is slow to answer: bound by name alone,
    # vnet0 would be nobody's and vm1's flows deleted.
    h, db, kvm1, kvm2 = guest_fabric()
    boot(h, db, kvm1, "kvm1", "vnet0", 7)
    programmed = kvm1.table()
    db2 = FakeHostDb()
    db2.interfaces = db.interfaces
    db2.silent = {"kvm1"}
    h2 = Harness(SEED, hostdb=db2)
    again = kvm1.connection(h2)
    h2.connect(again)
    h2.advance(SETTLE)
    assert again.mods() == [] and kvm1.table() == programmed
    assert not h2.core.switches[kvm1.dpid].ready
    db2.answer("kvm1")
    h2.advance(SETTLE)
    assert h2.core.switches[kvm1.dpid].ready
    assert again.mods() == [] and kvm1.table() == programmed      # right already: nothing sent
    assert h2.core.bound["kvm1"][VM1.name] == "vnet0"


def test_a_host_whose_ovsdb_never_answered_is_bound_by_port_names_as_without_ovsdb():
    db = FakeHostDb()
    db.silent = {"kvm1"}
    h = Harness(SEED, hostdb=db)
    kvm1 = FakeSwitch(h, SEED.host("kvm1").dpid, WIRED["kvm1"])
    h.connect(kvm1)
    assert kvm1.mods() == []
    h.queue_event(ev.Interfaces("kvm1", {}))      # what the watch reports on its first failure
    h.run()
    assert kvm1.table() == desired(SEED, "kvm1", WIRED["kvm1"])


def test_without_an_iface_id_an_endpoint_is_still_found_by_its_port_name():
    h, db, kvm1, kvm2 = guest_fabric(kvm1_ports=WIRED["kvm1"])
    assert kvm1.table() == desired(SEED, "kvm1", WIRED["kvm1"])
    assert db.installed("kvm1") == {VM1.port, "p-red"}


def test_installed_waits_for_the_barrier_of_every_peer_carrying_the_network():
    h, db, kvm1, kvm2 = guest_fabric()
    grown = topology.seed_text() + \
        "  green: {host: kvm1, kind: vm, network: net20, ip: 10.1.2.9/24}\n"
    held = []
    real_send = kvm2.send
    kvm2.send = lambda data: held.append(data)          # kvm2's answers held back
    h.queue_event(ev.Apply(grown, "grown.yaml", lambda *a: None))
    h.run()
    green = h.core.topology.endpoints["green"]
    boot(h, db, kvm1, "kvm1", "vnet3", 11, ep=green)
    assert "vnet3" not in taps(db)          # kvm2 has not confirmed net20
    kvm2.send = real_send
    for data in held:
        kvm2.send(data)
    h.run()
    assert "vnet3" in taps(db)


def test_an_endpoint_removed_from_the_topology_loses_its_installed_mark():
    h, db, kvm1, kvm2 = guest_fabric()
    boot(h, db, kvm1, "kvm1", "vnet0", 7)
    without = topology.seed_text().replace(
        "  vm1:  {host: kvm1, kind: vm,        network: net10, ip: 10.1.1.2/24", "  #")
    without = "\n".join(line for line in without.splitlines() if not line.startswith("  #"))
    answers = []
    h.queue_event(ev.Apply(without + "\n", "without.yaml", lambda *a: answers.append(a)))
    h.run()
    assert answers[0][0] == 200, answers
    assert "vm1" not in h.core.topology.endpoints
    assert taps(db) == set() and ("kvm1", {"vnet0": False}) in db.writes


def test_apply_wait_answers_only_once_every_host_holds_the_change():
    h, db, kvm1, kvm2 = guest_fabric()
    grown = topology.seed_text() + \
        "  green: {host: kvm2, kind: namespace, network: net10, ip: 10.1.1.9/24}\n"
    held, answers = [], []
    real_send = kvm2.send
    kvm2.send = lambda data: held.append(data)
    h.queue_event(ev.Apply(grown, "grown.yaml", lambda *a: answers.append(a), wait=True))
    h.advance(0.25)
    assert answers == [] and h.core.behind() == {"kvm2"}
    kvm2.send = real_send
    for data in held:
        kvm2.send(data)
    h.run()
    (status, body), = answers
    assert status == 200 and body["changes"]["kvm2"] > 0
    assert body["wait_seconds"] >= 0.25


def test_a_failed_mark_is_written_again_later():
    h, db, kvm1, kvm2 = guest_fabric()
    db.fail = True
    boot(h, db, kvm1, "kvm1", "vnet0", 7)
    assert taps(db) == set()
    db.fail = False
    h.queue_event(ev.AuditTick())
    h.advance(1)
    assert taps(db) == {"vnet0"}


# -- DHCP ------------------------------------------------------------------------
def discover(mac, chaddr=None, vlan=None, kind="discover"):
    eth = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
    if vlan is not None:
        eth = eth / Dot1Q(vlan=vlan)
    chaddr = bytes.fromhex((chaddr or mac).replace(":", ""))
    return bytes(eth / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
                 / BOOTP(chaddr=chaddr, xid=0x4242) / DHCP(options=[("message-type", kind),
                                                                    "end"]))


def options(frame) -> dict:
    return {o[0]: o[1] for o in Ether(frame)[DHCP].options if isinstance(o, tuple)}


def test_a_guest_asking_for_an_address_is_offered_its_own_with_a_tunnel_safe_mtu():
    h, db, kvm1, kvm2 = guest_fabric()
    boot(h, db, kvm1, "kvm1", "vnet0", 7)
    kvm1.packet_in("vnet0", discover(VM1.mac))
    h.run()
    (port, frame), = kvm1.packets_out
    reply = Ether(frame)
    assert port == 7 and reply.dst == VM1.mac
    assert reply[BOOTP].yiaddr == "10.1.1.2" and reply[BOOTP].xid == 0x4242
    opts = options(frame)
    assert opts["message-type"] == 2 and opts["subnet_mask"] == "255.255.255.0"
    assert opts["interface-mtu"] == SEED.network_mtu("net10") == 1458      # GRE, 1500 underlay


def test_a_dhcp_request_for_another_mac_is_dropped_and_counted():
    h, db, kvm1, kvm2 = guest_fabric()
    boot(h, db, kvm1, "kvm1", "vnet0", 7)
    kvm1.packet_in("vnet0", discover(VM1.mac, chaddr="02:66:66:66:66:66"))
    h.run()
    assert kvm1.packets_out == []
    assert h.core.dhcp["kvm1", "foreign MAC"] == 1


def test_a_trunk_guest_gets_a_lease_per_guest_vlan_tagged_with_that_vlan():
    topo = topology.parse(TRUNK, "trunk.yaml")
    wired = pipeline.offline_ports(topo)
    h, db, kvm1, kvm2 = guest_fabric(topo, wired["kvm1"])
    router = topo.endpoints["router"]
    for vlan, address in ((100, "10.1.1.254"), (200, "10.1.2.254")):
        kvm1.packets_out.clear()
        kvm1.packet_in(router.port, discover(router.mac, vlan=vlan))
        h.run()
        (port, frame), = kvm1.packets_out
        assert port == wired["kvm1"][router.port]
        assert Ether(frame)[Dot1Q].vlan == vlan and Ether(frame)[BOOTP].yiaddr == address
    kvm1.packets_out.clear()
    kvm1.packet_in(router.port, discover(router.mac, vlan=300))
    h.run()
    assert kvm1.packets_out == []


def test_dhcp_is_answered_with_exactly_the_bytes_wire_decodes():
    data = wire.packet_out(7, b"\x01\x02frame", 99)
    (m,) = wire.decode(data)
    assert m.kind == "packet_out" and m.packet == (7, b"\x01\x02frame") and m.xid == 99
