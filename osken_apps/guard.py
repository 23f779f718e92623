"""What a switch may send the controller, checked before os-ken parses it.

os-ken walks the lists inside a message (hello elements, stats entries,
instructions, actions, buckets, bands, queue and bundle properties) by
the lengths the message itself states, and several of its loops never end
on a length of zero: one message of 24 bytes (a queue-config reply whose
queue says length 0) froze the controller for good, every switch with it.
So every OpenFlow connection reads through a ``Guarded`` socket that
frames messages by their header and hands os-ken only those that

- are of a type a switch sends nsgre (anything else: refused), in OpenFlow
  1.3 (a HELLO may carry any version: that is how versions are agreed);
- are as long as their type's fixed part, and every list inside one that
  os-ken parses has elements no shorter than their header and no longer
  than what is left (multipart replies only of the kinds nsgre asks for);
- keep within a budget of packet-ins and port-status messages (a token
  bucket each: a flood is dropped and counted, not queued ahead of every
  other switch's events).

Dropping is not enough on its own: a peer that floods as fast as its
socket takes it kept the controller's one core busy reading and dropping
(33 million packet-ins in a benchmark; every other switch's port-up timed
out).  So once a connection is over its budget the guard stops reading it
for ``FLOOD_HOLD``: the peer's TCP window closes and it floods itself, as
an OVS switch then queues and drops its own packet-ins.

A malformed message closes that connection (logged, counted); no other
switch notices.  A peer that reconnects at once, again and again, is held
off (``Strikes``): past a few refusals each new connection from its
address waits, twice as long each time, before it is read.  ``problem``
is pure: the unit tests hold it to os-ken's parser.
"""

from __future__ import annotations

import socket
import struct
import time
from collections import Counter

from nsgre_core.ofp import ONF_ET_BUNDLE_CONTROL, ONF_ET_ROLE_STATUS, ONF_EXPERIMENTER_ID

VERSION = 4
HELLO, ERROR, ECHO_REQUEST, ECHO_REPLY, EXPERIMENTER = 0, 1, 2, 3, 4
FEATURES_REPLY, PACKET_IN, PORT_STATUS, MULTIPART_REPLY = 6, 10, 12, 19
BARRIER_REPLY, ROLE_REPLY = 21, 25
#: Type -> its fixed size: what a switch sends nsgre, no shorter.
MINIMUM = {HELLO: 8, ERROR: 12, ECHO_REQUEST: 8, ECHO_REPLY: 8, EXPERIMENTER: 16,
           FEATURES_REPLY: 32, PACKET_IN: 34, PORT_STATUS: 80, MULTIPART_REPLY: 16,
           BARRIER_REPLY: 8, ROLE_REPLY: 24}
#: Multipart kinds nsgre (and os-ken's handshake) ask for -> each entry's fixed size.
FLOW, AGGREGATE, GROUP, GROUP_DESC, METER_CONFIG, PORT_DESC = 1, 2, 6, 7, 10, 13
ENTRY = {FLOW: 56, AGGREGATE: 24, GROUP: 40, GROUP_DESC: 8, METER_CONFIG: 8, PORT_DESC: 64}
#: Instructions that carry actions.
WRITE_ACTIONS, APPLY_ACTIONS = 3, 4
#: (messages a second, burst) a connection may send of each flooding kind.
BUDGET = {PACKET_IN: (500, 1000), PORT_STATUS: (1000, 5000)}
#: Seconds a connection over its budget is not read.
FLOOD_HOLD = 0.2

#: Counts since start, for the metrics: (kind, reason) -> messages.
DROPPED: Counter = Counter()


def problem(msg: bytes) -> str | None:
    """Why os-ken must not parse ``msg`` (one whole message), or None."""
    version, kind, length = struct.unpack_from("!BBH", msg)
    if kind == HELLO:
        return _tlvs(msg, 8, length, 4, "hello element")
    if version != VERSION:
        return f"OpenFlow version {version} (1.3 was agreed)"
    if kind not in MINIMUM:
        return f"message type {kind}, which no switch sends nsgre"
    if length < MINIMUM[kind]:
        return f"type {kind} of {length} bytes, shorter than its {MINIMUM[kind]}"
    if kind == ERROR and struct.unpack_from("!H", msg, 8)[0] == 0xFFFF and length < 16:
        return "an experimenter error cut short"
    if kind == PACKET_IN:
        return _packet_in(msg, length)
    if kind == EXPERIMENTER:
        return _experimenter(msg, length)
    if kind == MULTIPART_REPLY:
        return _multipart(msg, length)
    return None


def _tlvs(msg, start, end, smallest, what) -> str | None:
    """A list of (type: 16 bits, length: 16 bits, ...) elements from
    ``start`` to ``end``: each at least ``smallest`` long, none past the end."""
    offset = start
    while offset < end:
        if end - offset < 4:
            return f"a {what} cut short"
        size = struct.unpack_from("!H", msg, offset + 2)[0]
        if size < smallest or offset + size > end:
            return f"a {what} of length {size} at byte {offset}"
        offset += size
    return None


def _match(msg, offset, end) -> tuple[str | None, int]:
    """An ofp_match at ``offset``: (problem, its padded length)."""
    if end - offset < 4:
        return "a match cut short", 0
    size = struct.unpack_from("!H", msg, offset + 2)[0]
    padded = (size + 7) // 8 * 8
    if size < 4 or offset + padded > end:
        return f"a match of length {size}", 0
    field, stop = offset + 4, offset + size
    while stop - field >= 4:                        # OXM: 4-byte header, its payload
        payload = msg[field + 3]
        if payload == 0 or field + 4 + payload > stop:
            return f"a match field of length {payload}", 0
        field += 4 + payload
    return None, padded


def _actions(msg, start, end) -> str | None:
    return _tlvs(msg, start, end, 8, "action")


def _packet_in(msg, length) -> str | None:
    why, padded = _match(msg, 24, length)
    if why is None and 24 + padded + 2 > length:
        why = "a packet-in cut short after its match"
    return why


def _experimenter(msg, length) -> str | None:
    experimenter, exp_type = struct.unpack_from("!II", msg, 8)
    if experimenter != ONF_EXPERIMENTER_ID:
        return f"experimenter {experimenter:#x} messages are not for nsgre"
    if exp_type == ONF_ET_ROLE_STATUS:
        return None if length >= 32 else "a role status cut short"
    if exp_type == ONF_ET_BUNDLE_CONTROL:
        if length < 24:
            return "a bundle control cut short"
        return _tlvs(msg, 24, length, 4, "bundle property")
    return f"ONF experimenter type {exp_type}, which no switch sends nsgre"


def _multipart(msg, length) -> str | None:
    part = struct.unpack_from("!H", msg, 8)[0]
    if part not in ENTRY:
        return f"multipart reply of kind {part}, which nsgre does not ask for"
    offset, entry = 16, ENTRY[part]
    while offset < length:
        if part in (PORT_DESC, AGGREGATE):         # fixed size, no length of their own
            size = entry
        else:
            if length - offset < 2:
                return "a stats entry cut short"
            size = struct.unpack_from("!H", msg, offset)[0]
        if size < entry or offset + size > length:
            return f"a kind {part} stats entry of length {size} at byte {offset}"
        why = _entry(msg, part, offset, offset + size)
        if why is not None:
            return why
        offset += size
    return None


def _entry(msg, part, start, end) -> str | None:
    if part == FLOW:
        why, padded = _match(msg, start + 48, end)
        if why is not None:
            return why
        offset = start + 48 + padded
        why = _tlvs(msg, offset, end, 8, "instruction")
        while why is None and offset < end:
            kind, size = struct.unpack_from("!HH", msg, offset)
            if kind in (WRITE_ACTIONS, APPLY_ACTIONS):
                why = _actions(msg, offset + 8, offset + size)
            offset += size
        return why
    if part == GROUP:
        return None if (end - start - 40) % 16 == 0 else "group counters of an odd length"
    if part == GROUP_DESC:
        offset, why = start + 8, None
        while offset < end:                         # buckets: length first, 16 fixed
            if end - offset < 16:
                return "a bucket cut short"
            size = struct.unpack_from("!H", msg, offset)[0]
            if size < 16 or offset + size > end:
                return f"a bucket of length {size}"
            why = _actions(msg, offset + 16, offset + size)
            if why is not None:
                return why
            offset += size
        return why
    if part == METER_CONFIG:
        return _tlvs(msg, start + 8, end, 16, "meter band")
    return None


class Guarded:
    """A switch's socket as os-ken reads it: whole messages, each checked
    (``problem``), the floods held to their budget; EOF after a malformed
    one (``refused(why)`` is told).  Everything else is the socket's."""

    def __init__(self, sock, refused, clock=time.monotonic, sleep=time.sleep, wait=0.0):
        self._sock = sock
        self._clock = clock
        self._sleep = sleep
        self._refused = refused
        self._inbox = bytearray()
        self._ready = bytearray()
        self._ended = False
        now = clock()
        self._tokens = {kind: [burst, now] for kind, (_, burst) in BUDGET.items()}
        self._unread_until = now + wait             # a peer with strikes waits first

    def recv(self, size: int, *flags) -> bytes:
        while not self._ready and not self._ended:
            pause = self._unread_until - self._clock()
            if pause > 0:
                self._sleep(pause)                  # green under os-ken: others run
            chunk = self._sock.recv(max(size, 65536))
            if not chunk:
                self._ended = True
                break
            self._inbox += chunk
            self._frame()
        out = bytes(self._ready[:size])
        del self._ready[:size]
        return out

    def _frame(self) -> None:
        while len(self._inbox) >= 8 and not self._ended:
            length = struct.unpack_from("!H", self._inbox, 2)[0]
            if length < 8:
                return self._refuse(f"a message of length {length}")
            if len(self._inbox) < length:
                return
            msg = bytes(self._inbox[:length])
            del self._inbox[:length]
            why = problem(msg)
            if why is not None:
                return self._refuse(why)
            if msg[1] in BUDGET and not self._spend(msg[1]):
                DROPPED[msg[1], "flood"] += 1
                self._unread_until = self._clock() + FLOOD_HOLD
                continue
            self._ready += msg

    def _spend(self, kind: int) -> bool:
        rate, burst = BUDGET[kind]
        bucket = self._tokens[kind]
        now = self._clock()
        bucket[0] = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if bucket[0] < 1:
            return False
        bucket[0] -= 1
        return True

    def _refuse(self, why: str) -> None:
        DROPPED["any", "malformed"] += 1
        self._ended = True
        self._inbox.clear()
        self._refused(why)

    def __getattr__(self, name):
        return getattr(self._sock, name)


class Strikes:
    """Peer addresses whose connections were closed as malformed, and how
    long a new connection from one waits before it is read: nothing for the
    first ``FREE`` strikes, then ``BASE`` seconds doubling up to ``LONGEST``;
    forgiven after ``FORGIVE`` seconds without one.  A switch that sent one
    bad message reconnects at once; a peer that reconnects to send another,
    thousands of times a second (a benchmark saw 200,000 connections), is
    slowed to a few a minute instead of taking the controller's core."""

    FREE, BASE, LONGEST, FORGIVE = 3, 0.5, 30.0, 60.0

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._seen: dict[str, tuple[int, float]] = {}

    @staticmethod
    def peer(sock, address) -> str:
        """Who is connecting: its IP address, or on a Unix socket (every
        emulated host shares one path) its process."""
        if sock.family == socket.AF_UNIX:
            pid, _, _ = struct.unpack("3i", sock.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
            return f"process {pid}"
        return str(address[0])

    def strike(self, peer: str) -> None:
        count, _ = self._current(peer)
        self._seen[peer] = count + 1, self._clock()

    def wait(self, peer: str) -> float:
        count, _ = self._current(peer)
        if count < self.FREE:
            return 0.0
        return min(self.LONGEST, self.BASE * 2 ** (count - self.FREE))

    def _current(self, peer) -> tuple[int, float]:
        count, last = self._seen.get(peer, (0, 0.0))
        if count and self._clock() - last > self.FORGIVE:
            del self._seen[peer]
            return 0, 0.0
        return count, last


STRIKES = Strikes()


def install(refused) -> None:
    """Every OpenFlow connection os-ken accepts reads through ``Guarded``;
    a message os-ken's parser still fails on closes its connection quietly
    (os-ken would log a traceback and close it); ``refused(address, why)``
    is told of each connection closed either way."""
    from os_ken.controller import controller
    from os_ken.ofproto import ofproto_parser
    original = controller.Datapath.__init__
    if getattr(original, "nsgre_guarded", False):
        return

    def init(self, sock, address):
        peer = Strikes.peer(sock, address)

        def closed(why):
            STRIKES.strike(peer)
            refused(address, why)

        original(self, Guarded(sock, closed, wait=STRIKES.wait(peer)), address)
        self.nsgre_closed = closed

    parse = ofproto_parser.msg

    def msg(datapath, version, msg_type, msg_len, xid, buf):
        try:
            return parse(datapath, version, msg_type, msg_len, xid, buf)
        except Exception as exc:
            DROPPED[msg_type, "unparsable"] += 1
            datapath.nsgre_closed(f"a message of type {msg_type} os-ken cannot parse "
                                      f"({type(exc).__name__}: {exc})")
            datapath.close()
            return None

    init.nsgre_guarded = True
    controller.Datapath.__init__ = init
    ofproto_parser.msg = msg
