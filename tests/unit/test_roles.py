"""Several controllers on one fabric: the one holding the database's lock is
MASTER on every switch with the generation it claimed, the others SLAVE;
the switches (fake, with OVS's role rules) refuse a SLAVE's writes, so a
controller that lost the lock without knowing it installs nothing."""

import itertools

import topology
from nsgre_core import pipeline
from osken_apps import events as ev

from fakeswitch import MASTER, SLAVE, FakeHostDb, FakeSwitch, Harness, desired

SEED = topology.load()
PORTS = pipeline.offline_ports(SEED)
NET30 = topology.seed_text().replace("  net20: {key: 20}\n", "  net20: {key: 20}\n  net30: {}\n") \
    + "  green:  {host: kvm1, kind: vm,        network: net30, ip: 10.1.1.1/24}\n"


class Pair:
    """Two controllers (a, b) sharing one generation counter (the
    database's), each connected to every host's bridge."""

    def __init__(self, topo=SEED, shards=None, ovsdb=False):
        self.generations = itertools.count(1)      # the database's counter
        self.claimed = []
        self.dbs = {}                              # with ``ovsdb``: each one's FakeHostDb
        for name in ("a", "b"):
            kwargs = {}
            if ovsdb:
                kwargs["hostdb"] = self.dbs[name] = FakeHostDb(PORTS)
            setattr(self, name, Harness(topo, roles=True, shards=shards, **kwargs))
        self.bridges = {}
        self.conns = {self.a: {}, self.b: {}}
        for name, host in topo.hosts.items():
            first = FakeSwitch(self.a, host.dpid, PORTS[name])
            self.bridges[name] = first
            self.conns[self.a][name] = first
            self.conns[self.b][name] = first.connection(self.b)
        for h in (self.a, self.b):
            for conn in self.conns[h].values():
                h.connect(conn)

    def lock(self, h, held=True, alone=False, shard=0):
        """The database grants ``h`` a shard's lock (with the next
        generation) or tells it the lock is lost; ``alone``: the other
        controller is frozen meanwhile (handles nothing)."""
        if held:
            self.claimed.append(next(self.generations))
        h.queue_event(ev.Leadership(shard, self.claimed[-1] if held else None))
        h.run() if alone else self.run()

    def run(self):
        while self.a.events or self.b.events:
            self.a.run()
            self.b.run()

    def writes(self, h) -> int:
        return sum(len(c.mods()) + len(c.packets_out) for c in self.conns[h].values())

    def as_modelled(self, topo=SEED) -> bool:
        return all(b.table() == desired(topo, name, b.ports)
                   for name, b in self.bridges.items())


def test_nothing_is_written_to_a_switch_before_it_answers_a_master_claim():
    p = Pair()
    for conn in list(p.conns[p.a].values()) + list(p.conns[p.b].values()):
        # which generation? (NOCHANGE), then SLAVE with it: no reads, no writes
        assert [m.role[0] for m in conn.received if m.kind == "role"] == [0, SLAVE]
        assert [m.kind for m in conn.received] == ["role", "role"]
    assert p.writes(p.a) == p.writes(p.b) == 0
    assert all(not b.flows for b in p.bridges.values())


def test_the_lock_holder_is_master_everywhere_and_programs_the_fabric_while_the_other_stands_by():
    p = Pair()
    p.lock(p.a)
    assert p.claimed == [1]
    assert all(c.role == MASTER for c in p.conns[p.a].values())
    assert all(c.role == SLAVE for c in p.conns[p.b].values())
    assert p.as_modelled() and p.writes(p.b) == 0
    # MASTER claimed with the database's generation, then the read, then the writes
    received = p.conns[p.a]["kvm1"].received
    kinds = [m.kind for m in received]
    claim = next(i for i, m in enumerate(received) if m.kind == "role" and m.role[0] == MASTER)
    assert received[claim].role == (MASTER, 1)
    assert kinds[claim + 1] == "request" and set(kinds[:claim]) == {"role"}


def test_a_standby_that_takes_the_lock_claims_a_newer_generation_and_deletes_nothing():
    p = Pair()
    p.lock(p.a)
    held = {n: b.table() for n, b in p.bridges.items()}
    p.lock(p.a, False)
    p.lock(p.b)
    assert p.claimed == [1, 2]
    assert all(c.role == MASTER for c in p.conns[p.b].values())
    assert all(c.role == SLAVE for c in p.conns[p.a].values())
    assert p.writes(p.b) == 0                    # the fabric held the model: nothing to send
    assert {n: b.table() for n, b in p.bridges.items()} == held


def test_a_standby_follows_topology_changes_and_programs_them_when_it_takes_over():
    p = Pair()
    p.lock(p.a)
    new = topology.parse(NET30, "net30.yaml", previous=SEED)
    for h in (p.a, p.b):
        h.queue_event(ev.Loaded(new))
    p.run()
    assert p.writes(p.b) == 0 and p.as_modelled(new)
    for conn in p.conns[p.a].values():            # a dies
        p.a.disconnect(conn)
        conn.bridge.connections.remove(conn)
    newer = topology.parse(NET30.replace("green", "teal"), "teal.yaml", previous=new)
    p.b.queue_event(ev.Loaded(newer))             # committed while nobody is master
    p.run()
    assert p.writes(p.b) == 0 and not p.as_modelled(newer)
    p.lock(p.b)
    assert p.as_modelled(newer)
    assert sum(len(c.mods()) for c in p.conns[p.b].values()) < 40     # the delta, not a wipe


def test_a_master_that_lost_the_lock_unawares_has_every_write_refused():
    """a freezes (its lock session and its queue stall); b takes over.  When
    a wakes, its pending work is refused by the switches: nothing installed."""
    p = Pair()
    p.lock(p.a)
    held = {n: b.table() for n, b in p.bridges.items()}
    p.lock(p.b, alone=True)                       # the server gave b the lock; a never heard
    stale = [e for e in p.a.events if isinstance(e, ev.RoleStatus)]
    assert len(stale) == len(p.bridges)           # the switches told a (it has not read it)
    p.a.events.clear()
    kvm1 = p.conns[p.a]["kvm1"]
    kvm1.set_port("p-vm1", 77)                    # a port event a acts on as if master
    p.b.events.clear()                            # (b's copy of it is not the point here)
    p.a.advance(1)
    assert kvm1.refused_writes > 0
    assert {n: b.table() for n, b in p.bridges.items()} == held
    assert p.a.core.switches[kvm1.dpid].role == "slave"
    assert p.a.core.demotions["kvm1"] == 1


def test_an_old_generation_claiming_master_is_refused_as_stale():
    p = Pair()
    p.lock(p.b)                                   # generation 1
    p.lock(p.a, alone=True)                       # generation 2: b never heard it lost
    conn = p.conns[p.b]["kvm2"]
    p.b.events.clear()                            # (nor read the switches' role-status)
    writes = p.writes(p.b)
    p.b.core._ask_role(p.b.core.switches[conn.dpid])        # b claims again, with 1
    p.run()
    assert conn.bridge.generation == 2
    assert conn.role == SLAVE and p.writes(p.b) == writes
    assert p.b.core.switches[conn.dpid].role == "slave"


def masters(p, h) -> set:
    return {name for name, c in p.conns[h].items() if c.role == MASTER}


def test_shards_each_have_their_own_master_and_one_master_takes_a_dead_ones_shard():
    p = Pair(shards={"kvm1": 0, "kvm2": 1})
    p.lock(p.a, shard=0)
    p.lock(p.b, shard=1)
    assert masters(p, p.a) == {"kvm1"} and masters(p, p.b) == {"kvm2"}
    assert p.as_modelled()
    assert all(not c.mods() for name, c in p.conns[p.a].items() if name != "kvm1")
    assert all(not c.mods() for name, c in p.conns[p.b].items() if name != "kvm2")
    held = {n: b.table() for n, b in p.bridges.items()}
    p.lock(p.b, shard=0)                 # a died: b, queued for shard 0, is granted it
    assert masters(p, p.b) == {"kvm1", "kvm2"} and masters(p, p.a) == set()
    assert {n: b.table() for n, b in p.bridges.items()} == held


def test_a_host_moved_to_another_shard_changes_master():
    p = Pair(shards={"kvm1": 0, "kvm2": 1})
    p.lock(p.a, shard=0)
    p.lock(p.b, shard=1)
    for h in (p.a, p.b):
        h.queue_event(ev.Loaded(SEED, {"kvm1": 1, "kvm2": 1}))
    p.run()
    assert masters(p, p.b) == {"kvm1", "kvm2"} and masters(p, p.a) == set()
    assert p.as_modelled()


def test_a_controller_watches_the_interfaces_of_the_hosts_it_is_master_of_only():
    p = Pair(shards={"kvm1": 0, "kvm2": 1}, ovsdb=True)
    assert p.dbs["a"].watched == p.dbs["b"].watched == set()       # standing by: none
    p.lock(p.a, shard=0)
    p.lock(p.b, shard=1)
    assert p.dbs["a"].watched == {"kvm1"} and p.dbs["b"].watched == {"kvm2"}
    assert p.as_modelled()
    p.lock(p.a, held=False, shard=0)                # a loses kvm1's shard, b takes it
    p.lock(p.b, shard=0)
    assert p.dbs["a"].watched == set() and p.dbs["b"].watched == {"kvm1", "kvm2"}
    assert p.conns[p.b]["kvm1"].role == MASTER and p.as_modelled()
