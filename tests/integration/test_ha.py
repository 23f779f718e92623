"""Two controllers on a 3-member raft cluster of the topology database,
every host's bridge connected to both (``python -m mininet_scenarios
--ha 2``): one holds the database's master lock and is MASTER on the
switches, the other is SLAVE and stands by.  A master killed or frozen
gives way with no packet lost and no flow deleted; a change right after
reaches the switches; the frozen one, resumed, installs nothing; the raft
leader killed under applies loses none of them."""

from __future__ import annotations

import datetime
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time

import pytest

import topology
from mininet_scenarios import emulation
from nsgre_core.ofp import OFPBRC_IS_SLAVE, OFPCR_ROLE_MASTER, OFPET_BAD_REQUEST
from osken_apps import wire

from conftest import ROOT

HOSTS = ("kvm1", "kvm2")
GRANTED = re.compile(r"^(\S+ \S+) nsgre: shard 0: the lock is ours: MASTER with generation (\d+)")
CLAIMED = re.compile(r"^(\S+ \S+) nsgre: (\S+): MASTER \(generation (\d+)\)")
STANDING_BY = re.compile(r"nsgre: (shard 0: the lock is lost: standing by|\S+: no longer MASTER)")


def running(emu):
    """An emulation brought up and programmed, torn down after the module."""
    try:
        emu.up(None)
        emu.wait_programmed()
        yield emu
    finally:
        emu.down()


@pytest.fixture(scope="module")
def ha():
    yield from running(emulation.Emulation(topology.load(), ha=2))


def nsgre(*args):
    done = subprocess.run([sys.executable, "-m", "nsgre_tools.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def log(emu, k) -> list[str]:
    return emu.controller_files(k)[2].read_text().splitlines()


def stamp(text: str) -> float:
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def generations(emu, k) -> list[int]:
    return [int(m.group(2)) for m in map(GRANTED.match, log(emu, k)) if m]


def master(emu) -> int:
    """The controller holding the lock now: the newest generation claimed."""
    newest = {k: max(generations(emu, k), default=0) for k in (1, 2)}
    return max(newest, key=newest.get)


def claimed_at(emu, k, generation, timeout) -> dict[str, float]:
    """When each switch answered controller ``k``'s MASTER claim with
    ``generation`` (waiting up to ``timeout`` s for all of them)."""
    deadline = time.monotonic() + timeout
    while True:
        found = {m.group(2): stamp(m.group(1)) for m in map(CLAIMED.match, log(emu, k))
                 if m and int(m.group(3)) == generation}
        if set(found) == set(HOSTS) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def flows(emu) -> dict[str, set[str]]:
    """Every host's nsgre flows, without their counters."""
    return {h: {line.strip() for line in emu.ovs[h].ofctl(
        "dump-flows", "--no-stats", "cookie=0x4e53000000000000/0xffff000000000000").splitlines()
        if "cookie=" in line} for h in HOSTS}


def wait_flows(emu, changed_from, timeout=5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        now = flows(emu)
        if all(now[h] != changed_from[h] for h in HOSTS) or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


class Pings:
    """vm1 (kvm1) pings blue (kvm2) across the tunnel, 100 a second.  A
    reply missing is named by its sequence number and when it was due.

    Only requests followed by a later reply count as lost: ping, stopped
    by SIGINT, counts the request still in flight then as lost (CI saw
    it: 124 sent, icmp_seq=124 missing), and the window measured ended a
    second before."""

    def __init__(self):
        self.proc = subprocess.Popen(["ip", "netns", "exec", "vm1", "ping", "-D", "-i", "0.01",
                                      "-W", "1", "10.1.1.1"], stdout=subprocess.PIPE, text=True)

    def __enter__(self):
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        time.sleep(1.0)                  # the last replies come in
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=10)
        self.sent = int(re.search(r"(\d+) packets transmitted", out).group(1))
        self.replies = {int(m.group(2)): float(m.group(1)) for m in re.finditer(
            r"^\[([\d.]+)\] .* icmp_seq=(\d+) ", out, re.M)}
        last = max(self.replies, default=self.sent + 1)
        self.gone = sorted(set(range(1, last)) - set(self.replies))
        self.lost = len(self.gone)

    def missing(self) -> str:
        """The sequence numbers without a reply, each with the time of the
        reply before it (wall clock), for the assertion's message."""
        return ", ".join(f"icmp_seq={n} after the reply at "
                         f"{max((t for s, t in self.replies.items() if s < n), default=0):.3f}"
                         for n in self.gone)


def change(emu, action, *args):
    return nsgre("endpoint", action, "teal", *args, "--db", emu.db_remotes())


def add_teal(emu):
    return change(emu, "add", "--host", "kvm1", "--kind", "namespace", "--network", "net10",
                  "--ip", "10.1.1.9/24")


def test_the_lock_holder_is_master_on_every_switch_and_the_other_controller_slave(ha):
    k = master(ha)
    assert generations(ha, k) and set(claimed_at(ha, k, generations(ha, k)[-1], 5)) == \
        set(HOSTS)
    roles = {}
    deadline = time.monotonic() + 10        # OVS writes the Controller table every few s
    while time.monotonic() < deadline:
        roles = {h: dict(line.split(",") for line in ha.ovs[h].vsctl(
            "--format=csv", "--no-headings", "--columns=target,role", "list", "Controller")
            .replace('"', "").split()) for h in HOSTS}
        if all(sorted(r.values()) == ["master", "slave"] for r in roles.values()):
            break
        time.sleep(0.2)
    suffix = "controller.sock" if k == 1 else "controller-2.sock"
    for h in HOSTS:
        assert roles[h][f"unix:{ha.ovs[h].dir}/{suffix}"] == "master", roles


def gives_way(ha, k, signum, what: str, within: float, flows_before: dict) -> None:
    """Master ``k`` signalled under 100 pings a second: the other
    controller is MASTER of every switch with the next generation within
    ``within`` seconds, no ping lost, no flow changed."""
    other, generation = 3 - k, generations(ha, k)[-1]
    with Pings() as pings:
        struck = time.time()
        os.kill(ha.controller_pid(k), signum)
        taken = claimed_at(ha, other, generation + 1, timeout=10)
    assert set(taken) == set(HOSTS), log(ha, other)[-20:]
    print(f"master {what}: MASTER again {max(taken.values()) - struck:.3f} s later; "
          f"{pings.sent} pings, {pings.lost} lost")
    assert max(taken.values()) - struck < within
    assert pings.lost == 0, pings.missing()
    assert flows(ha) == flows_before


def test_a_master_killed_gives_way_within_a_second_with_no_ping_lost_and_no_flow_deleted(ha):
    k = master(ha)
    before = flows(ha)
    try:
        gives_way(ha, k, signal.SIGKILL, "killed", within=1.0, flows_before=before)
        # the new master programs a change at once
        add_teal(ha)
        added = wait_flows(ha, before)
        assert all(added[h] > before[h] for h in HOSTS)
        change(ha, "del")
        assert wait_flows(ha, added) == before
    finally:
        ha.restart_controller(k)              # back as the standby (whatever failed)
    deadline = time.monotonic() + 10
    while sum("SLAVE (generation" in line for line in log(ha, k)) < len(HOSTS):
        assert time.monotonic() < deadline, log(ha, k)[-20:]
        time.sleep(0.1)


def test_a_frozen_master_gives_way_within_3_s_and_once_resumed_installs_nothing(ha):
    k = master(ha)
    other, pid = 3 - k, ha.controller_pid(k)
    before = flows(ha)
    try:
        gives_way(ha, k, signal.SIGSTOP, "frozen", within=3.0, flows_before=before)
        add_teal(ha)                          # while the old master is frozen
        changed = wait_flows(ha, before)
        assert all(changed[h] > before[h] for h in HOSTS)
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while not any(STANDING_BY.search(line) for line in log(ha, k)):
        assert time.monotonic() < deadline, log(ha, k)[-20:]
        time.sleep(0.1)
    time.sleep(1.0)
    assert flows(ha) == changed               # nothing it sent (if anything) was installed
    assert master(ha) == other
    change(ha, "del")
    assert wait_flows(ha, changed) == before


class StaleMaster:
    """A bare OpenFlow 1.3 connection a bridge makes to a socket of the
    test's (a Controller row added beside the controllers' own): it claims
    MASTER with a generation and writes a flow, as a master that missed
    its demotion would."""

    def __init__(self, emu, host):
        import socket
        self.ovs, self.path = emu.ovs[host], emu.ovs[host].dir / "stale.sock"
        self.path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(1)
        listener.settimeout(15)
        self.row = self.ovs.vsctl("--id=@c", "create", "Controller",
                                  f"target=\"unix:{self.path}\"", "--", "add", "Bridge",
                                  "br-int", "controller", "@c").strip()
        self.sock, _ = listener.accept()
        listener.close()
        self.sock.settimeout(5)
        self.sock.sendall(struct.pack("!BBHI", 4, 0, 8, 1))          # HELLO
        self.buffer = b""

    def _next(self) -> tuple[int, int, bytes]:
        """The next message from the switch but echoes (answered): (type, xid, body)."""
        while True:
            while len(self.buffer) < 8 or len(self.buffer) < struct.unpack_from(
                    "!H", self.buffer, 2)[0]:
                data = self.sock.recv(65536)
                assert data, "the switch closed the connection"
                self.buffer += data
            _, kind, length, xid = struct.unpack_from("!BBHI", self.buffer)
            body, self.buffer = self.buffer[8:length], self.buffer[length:]
            if kind == 2:                                             # ECHO_REQUEST
                self.sock.sendall(struct.pack("!BBHI", 4, 3, 8, xid) + body)
            else:
                return kind, xid, body

    def until(self, xid: int) -> list[tuple[int, bytes]]:
        """Messages up to the answer to ``xid``: [(type, body)]."""
        out = []
        while True:
            kind, got, body = self._next()
            out.append((kind, body))
            if got == xid:
                return out

    def claim(self, generation: int) -> int:
        """Claim MASTER: the role the switch answers with."""
        self.sock.sendall(wire.role_request(OFPCR_ROLE_MASTER, generation, 7))
        kind, body = self.until(7)[-1]
        assert kind == 25, (kind, body)                               # ROLE_REPLY
        return struct.unpack_from("!I", body)[0]

    def write(self, flow) -> list[tuple[int, int]]:
        """Send a flow-mod and a barrier: the errors the switch answers."""
        self.sock.sendall(wire.flow_mod(flow, 0, 8) + wire.barrier(9))
        return [struct.unpack_from("!HH", body) for kind, body in self.until(9) if kind == 1]

    def close(self):
        self.sock.close()
        self.ovs.vsctl("remove", "Bridge", "br-int", "controller", self.row)
        self.path.unlink(missing_ok=True)


def test_a_stale_master_is_refused_by_the_switch_and_writes_nothing(ha):
    """A master that missed its demotion (here a bare OpenFlow connection
    holding the master's generation) writes after a newer master claimed
    the switch: the switch refuses it (OFPBRC_IS_SLAVE) and installs nothing."""
    from nsgre_core.flows import Flow
    k = master(ha)
    other, generation = 3 - k, generations(ha, k)[-1]
    stale, killed = StaleMaster(ha, "kvm1"), False
    try:
        assert stale.claim(generation) == OFPCR_ROLE_MASTER      # it is the master now
        os.kill(ha.controller_pid(k), signal.SIGKILL)            # the lock moves on:
        killed = True
        taken = claimed_at(ha, other, generation + 1, timeout=10)   # a newer generation
        assert set(taken) == set(HOSTS), log(ha, other)[-20:]
        before = flows(ha)
        marker = Flow.make(0, 1, {"eth_src": "02:de:ad:be:ef:01"}, (),
                           cookie=0x4E53_0000_DEAD_0001)
        assert stale.write(marker) == [(OFPET_BAD_REQUEST, OFPBRC_IS_SLAVE)]
        assert flows(ha) == before
        assert "02:de:ad:be:ef:01" not in ha.ovs["kvm1"].ofctl("dump-flows")
    finally:
        stale.close()
        if killed:
            ha.restart_controller(k)               # back as the standby
    deadline = time.monotonic() + 10
    while sum("SLAVE (generation" in line for line in log(ha, k)) < len(HOSTS):
        assert time.monotonic() < deadline, log(ha, k)[-20:]
        time.sleep(0.1)


def test_the_raft_leader_killed_under_applies_loses_none_of_them_and_a_master_comes_back(ha):
    from nsgre_tools import database
    status = database.status(str(ha.db_dir))
    leader = next(line.split(":")[0] for line in status if ": leader," in line)
    member = next(m for m in database.members(ha.db_dir) if m.name == leader)
    before = generations(ha, master(ha))[-1]
    applied, errors = [], []

    def applies():
        for n in range(8):
            try:
                nsgre("network", "add", f"load{n}", "--db", ha.db_remotes())
                applied.append(n)
            except AssertionError as exc:
                errors.append(str(exc))
            time.sleep(0.25)
    with Pings() as pings:
        writer = threading.Thread(target=applies)
        writer.start()
        time.sleep(0.5)
        os.kill(database.pid(member), signal.SIGKILL)
        writer.join(timeout=120)
        deadline = time.monotonic() + 15
        while generations(ha, master(ha))[-1] == before:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        k = master(ha)
        assert set(claimed_at(ha, k, generations(ha, k)[-1], 10)) == set(HOSTS)
    assert pings.lost == 0, pings.missing()
    assert applied == list(range(8)), errors
    held = nsgre("db", "status", str(ha.db_dir))
    assert "10 networks" in held, held                      # 2 + load0..load7
