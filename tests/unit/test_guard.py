"""What a switch may send the controller (``osken_apps.guard``): every reply
of a real fabric passes; every shape that sends os-ken's parser round in
circles is refused; and anything the guard lets through, os-ken parses
in bounded time."""

import os
import random
import signal
import socket
import struct
import sys
import types
from pathlib import Path

import pytest

import topology
from nsgre_core.pipeline import compute, offline_ports
from os_ken.ofproto import ofproto_parser, ofproto_v1_3 as ofp, ofproto_v1_3_parser as parser
from osken_apps import guard, wire

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import openflow_fuzz  # noqa: E402

from test_trunks import TRUNKS  # noqa: E402

DP = types.SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=1)


def message(kind, body, xid=1):
    return struct.pack("!BBHI", 4, kind, 8 + len(body), xid) + body


def multipart(part, entries: bytes):
    return message(guard.MULTIPART_REPLY, struct.pack("!HH4x", part, 0) + entries)


def flow_entry(flow) -> bytes:
    """A flow as a switch reports it (ofp_flow_stats), from its flow-mod."""
    body = wire.flow_mod(flow, 0)[8 + 40:]                   # match + instructions
    return struct.pack("!HBxIIHHHH4xQQQ", 48 + len(body), flow.table, 0, 0, flow.priority,
                       0, 0, 0, flow.cookie, 0, 0) + body


def group_entry(group) -> bytes:
    buckets = wire.group_mod(group, 0)[8 + 8:]
    return struct.pack("!HBxI", 8 + len(buckets), 0, group.group_id) + buckets


def meter_entry(meter) -> bytes:
    bands = wire.meter_mod(meter, 0)[8 + 8:]
    return struct.pack("!HHI", 8 + len(bands), 0, meter.meter_id) + bands


def parse(msg: bytes):
    """os-ken's parser on ``msg``, stopped (and failed) after 2 s."""
    def stuck(*_):
        raise TimeoutError("os-ken's parser went round in circles")
    old = signal.signal(signal.SIGALRM, stuck)
    signal.setitimer(signal.ITIMER_REAL, 2.0)
    try:
        version, kind, length, xid = struct.unpack_from("!BBHI", msg)
        return ofproto_parser.msg(DP, version, kind, length, xid, msg)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("text", [None, TRUNKS], ids=["seed", "trunks"])
def test_a_real_fabrics_flows_groups_and_meters_as_a_switch_reports_them_pass(text):
    topo = topology.load() if text is None else topology.parse(text, "t.yaml")
    ports = offline_ports(topo)
    for host in topo.hosts:
        want = compute(topo, host, ports[host])
        for part, entries in ((guard.FLOW, [flow_entry(f) for f in want.flows]),
                              (guard.GROUP_DESC, [group_entry(g) for g in want.groups]),
                              (guard.METER_CONFIG, [meter_entry(m) for m in want.meters])):
            msg = multipart(part, b"".join(entries))
            assert guard.problem(msg) is None
            assert len(parse(msg).body) == len(entries)


@pytest.mark.parametrize("name,msg", [
    ("a hello element of length 0", message(guard.HELLO, struct.pack("!HH", 1, 0))),
    ("a queue-config reply (never asked for)", message(23, struct.pack("!I4x", 1)
                                                       + struct.pack("!IIH6x", 1, 1, 0))),
    ("a flow stats entry of length 0", multipart(guard.FLOW, b"\0" * 56)),
    ("an instruction of length 0", multipart(guard.FLOW, struct.pack(
        "!HBxIIHHHH4xQQQ", 56 + 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        + struct.pack("!HH4x", 1, 4) + struct.pack("!HH4x", 4, 0))),
    ("a bucket of length 0", multipart(guard.GROUP_DESC, struct.pack("!HBxI", 24, 0, 1)
                                       + b"\0" * 16)),
    ("a meter band of length 0", multipart(guard.METER_CONFIG, struct.pack("!HHI", 24, 0, 1)
                                           + struct.pack("!HH12x", 1, 0))),
    ("a bundle property of length 0", message(guard.EXPERIMENTER, struct.pack(
        "!IIIHH", 0x4F4E4600, 2300, 1, 1, 0) + struct.pack("!HH", 1, 0))),
    ("a Nicira packet-in2", message(guard.EXPERIMENTER, struct.pack("!II", 0x2320, 30)
                                    + struct.pack("!HH", 0, 0))),
])
def test_the_shapes_that_freeze_os_kens_parser_are_refused(name, msg):
    assert guard.problem(msg) is not None


def test_whatever_the_guard_lets_through_os_ken_parses_in_bounded_time():
    rng = random.Random(7)
    passed = 0
    for i in range(5000):
        msg = openflow_fuzz.malformed(rng, i)
        length = struct.unpack_from("!H", msg, 2)[0]
        if length < 8 or len(msg) < length:
            continue                          # framing refuses these before any parse
        msg = msg[:length]
        if guard.problem(msg) is None:
            passed += 1
            try:
                parse(msg)
            except TimeoutError:
                raise
            except Exception:                 # os-ken may refuse it: that connection closes
                pass
    assert passed > 1000                      # the flood's valid packet-ins and port-status


class Wire:
    """A socket whose peer sent ``data``, in chunks of ``step`` bytes."""

    def __init__(self, data: bytes, step: int):
        self.data, self.step = data, step

    def recv(self, size):
        out, self.data = self.data[:self.step], self.data[self.step:]
        return out


def read_all(sock) -> bytes:
    got = b""
    while chunk := sock.recv(8):
        got += chunk
    return got


def test_whole_messages_pass_however_they_are_cut_and_a_malformed_one_ends_the_stream():
    good = [openflow_fuzz.features_reply(7, 1), message(guard.ECHO_REQUEST, b"hi"),
            message(guard.BARRIER_REPLY, b"")]
    bad = message(99, b"")
    refused = []
    for step in (1, 3, 8, 1000):
        sock = guard.Guarded(Wire(b"".join(good) + bad + good[0], step), refused.append)
        assert read_all(sock) == b"".join(good)
    assert refused == ["message type 99, which no switch sends nsgre"] * 4


class CountingWire(Wire):
    def __init__(self, data, step):
        super().__init__(data, step)
        self.reads = 0

    def recv(self, size):
        self.reads += 1
        return super().recv(size)


def count(got: bytes) -> int:
    passed = 0
    while got:
        passed += 1
        got = got[struct.unpack_from("!H", got, 2)[0]:]
    return passed


def test_a_packet_in_flood_is_held_to_its_budget_and_not_read_while_over_it():
    rng = random.Random(1)
    flood = b"".join(openflow_fuzz.packet_in(rng, i) for i in range(20000))
    before = guard.DROPPED[guard.PACKET_IN, "flood"]
    clock = [100.0]

    def sleep(seconds):
        clock[0] += seconds

    wire = CountingWire(flood, 1 << 16)
    sock = guard.Guarded(wire, lambda why: None, clock=lambda: clock[0], sleep=sleep)
    passed = count(read_all(sock))
    elapsed = clock[0] - 100.0
    rate, burst = guard.BUDGET[guard.PACKET_IN]
    assert elapsed > 0                                      # it stopped reading, for a while
    assert passed <= burst + rate * elapsed + 1            # never past the budget
    # every read after the burst ran out came a hold after the one before
    assert wire.reads <= 2 + elapsed / guard.FLOOD_HOLD + 1
    assert guard.DROPPED[guard.PACKET_IN, "flood"] - before == 20000 - passed


def test_a_peer_refused_again_and_again_waits_longer_each_time_and_is_forgiven_later():
    clock = [0.0]
    strikes = guard.Strikes(clock=lambda: clock[0])
    tcp = types.SimpleNamespace(family=socket.AF_INET)
    peer = guard.Strikes.peer(tcp, ("198.18.0.9", 40001))
    assert guard.Strikes.peer(tcp, ("198.18.0.9", 50000)) == peer   # any port of that address
    other = guard.Strikes.peer(tcp, ("198.18.0.10", 40002))
    waits = []
    for _ in range(12):
        waits.append(strikes.wait(peer))
        strikes.strike(peer)
        clock[0] += 1.0
    assert waits[:strikes.FREE] == [0.0] * strikes.FREE    # a switch's one mistake costs nothing
    assert waits[strikes.FREE:strikes.FREE + 3] == [strikes.BASE, 2 * strikes.BASE, 4 * strikes.BASE]
    assert waits[-1] == strikes.LONGEST
    assert strikes.wait(other) == 0.0                      # other peers are not held
    clock[0] += strikes.FORGIVE + 1
    assert strikes.wait(peer) == 0.0


def test_on_a_unix_socket_a_peer_is_its_process():
    left, right = socket.socketpair()
    with left, right:
        assert guard.Strikes.peer(left, "") == f"process {os.getpid()}"


def test_a_connection_from_a_peer_with_strikes_is_not_read_until_its_wait_is_over():
    clock = [10.0]
    reads = []

    class Stamped(Wire):
        def recv(self, size):
            reads.append(clock[0])
            return super().recv(size)

    def sleep(seconds):
        clock[0] += seconds

    good = openflow_fuzz.features_reply(7, 1)
    sock = guard.Guarded(Stamped(good, 1000), lambda why: None, clock=lambda: clock[0],
                         sleep=sleep, wait=4.0)
    assert read_all(sock) == good
    assert reads[0] == 14.0
