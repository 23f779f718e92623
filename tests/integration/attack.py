"""An attacker's tools for the adversarial suite: frames sent and captured
inside the emulation's namespaces, from the test process itself.

A socket belongs to the network namespace it was opened in, so a short-
lived thread enters the namespace (``setns``), opens and binds an
AF_PACKET socket there and ends; the socket then sends and receives in that
namespace from any thread.  No process is started for it, and a capture is
listening the moment ``Capture`` is entered.

Every crafted frame carries ``MARK`` + a per-test token + a label in its
payload (``nsgre-attack:TOKEN:LABEL;``), so a capture says exactly which
frame reached which endpoint, and a late frame of another test is never
counted.
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import struct
import threading
import time
import uuid
from collections import defaultdict

MARK = b"nsgre-attack:"
ETH_P_ALL = 0x0003
CLONE_NEWNET = 0x40000000
SO_ATTACH_FILTER = 26
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def token() -> str:
    return uuid.uuid4().hex[:8]


def payload(tok: str, label: str) -> bytes:
    return MARK + f"{tok}:{label};".encode()


def in_netns(ns: str, fn):
    """Run ``fn()`` in a thread that has entered network namespace ``ns``."""
    result = {}

    def enter_and_run():
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {ns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result["value"] = fn()
        except BaseException as exc:       # handed to the caller below
            result["error"] = exc

    thread = threading.Thread(target=enter_and_run)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


# Classic BPF: accept a frame only if its destination MAC has the group bit
# (broadcast or multicast): ldb [0]; jset #1; ret #262144; ret #0.
_GROUP_DST_ONLY = [(0x30, 0, 0, 0), (0x45, 0, 1, 1), (0x06, 0, 0, 0x40000), (0x06, 0, 0, 0)]


def packet_socket(ns: str, iface: str, group_dst_only: bool = False,
                  send_only: bool = False) -> socket.socket:
    """An AF_PACKET socket bound to ``iface`` in namespace ``ns``; with
    ``group_dst_only`` the kernel passes it broadcast and multicast only.
    A ``send_only`` socket (protocol 0) receives nothing: an ETH_P_ALL one
    is handed a copy of every frame it sends, which a fast sender pays for."""
    def open_bound():
        protocol = 0 if send_only else socket.htons(ETH_P_ALL)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, protocol)
        if group_dst_only:
            code = b"".join(struct.pack("HBBI", *ins) for ins in _GROUP_DST_ONLY)
            buf = ctypes.create_string_buffer(code)
            prog = struct.pack("HL", len(_GROUP_DST_ONLY), ctypes.addressof(buf))
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((iface, 0))
        return sock
    return in_netns(ns, open_bound)


def send(ns: str, iface: str, frames, copies: int = 3, gap: float = 0.02):
    """Send each frame (scapy packet or bytes) ``copies`` times from ``ns``."""
    raw = [bytes(f) for f in frames]
    with packet_socket(ns, iface) as sock:
        for i in range(copies):
            if i:
                time.sleep(gap)
            for data in raw:
                sock.send(data)


def _is_icmp(data: bytes) -> bool:
    """An ICMP error quotes the datagram it answers, marker included: that
    is the receiver answering, not the frame arriving somewhere."""
    at, ethertype = 14, data[12:14]
    while ethertype in (b"\x81\x00", b"\x88\xa8") and len(data) >= at + 4:
        ethertype, at = data[at + 2:at + 4], at + 4
    return ethertype == b"\x08\x00" and len(data) > at + 9 and data[at + 9] == 1


class Listener:
    """Every frame arriving at each namespace's interface (``{ns: iface}``),
    read by a thread while the block runs; ``arrived(ns, data)`` says what
    to keep (frames the namespace sent itself are not arrivals)."""

    group_dst_only = False

    def __init__(self, where: dict[str, str]):
        self.where = where
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def __enter__(self):
        self.socks = {packet_socket(ns, iface, self.group_dst_only): ns
                      for ns, iface in self.where.items()}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            ready, _, _ = select.select(list(self.socks), [], [], 0.05)
            for sock in ready:
                data, addr = sock.recvfrom(65535)
                if addr[2] != socket.PACKET_OUTGOING:
                    with self._lock:
                        self.arrived(self.socks[sock], data)

    def arrived(self, ns: str, data: bytes) -> None:
        raise NotImplementedError

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()
        for sock in self.socks:
            sock.close()


class Capture(Listener):
    """Frames marked with ``tok`` arriving at each namespace's interface
    (``{ns: iface}``), recorded by label: ``reached[label] == {ns, ...}``."""

    def __init__(self, where: dict[str, str], tok: str, group_dst_only: bool = False):
        super().__init__(where)
        self.tok = tok
        self.prefix = MARK + tok.encode() + b":"
        self.group_dst_only = group_dst_only
        self.reached: dict[str, set[str]] = defaultdict(set)

    def arrived(self, ns: str, data: bytes) -> None:
        at = data.find(self.prefix)
        if at >= 0 and not _is_icmp(data):
            label = data[at + len(self.prefix):].split(b";")[0].decode(errors="replace")
            self.reached[label].add(ns)

    def snapshot(self) -> dict[str, set[str]]:
        with self._lock:
            return {label: set(who) for label, who in self.reached.items()}

    def wait_for(self, expected: dict[str, set[str]], timeout: float = 3.0) -> bool:
        """Wait until every expected label reached at least its expected
        namespaces; False on timeout (the caller's assert says what is missing)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.snapshot()
            if all(who <= got.get(label, set()) for label, who in expected.items()):
                return True
            time.sleep(0.02)
        return False

class Storm:
    """A generator that sends one frame at ``rate`` frames a second from
    ``ns`` while switched on (in ticks of ``tick`` seconds, as a guest's
    busy sender would), counting what it sent and the CPU it used."""

    def __init__(self, ns: str, iface: str, frame, rate: float, tick: float = 0.005):
        self.sock = packet_socket(ns, iface, send_only=True)
        self.frame, self.rate, self.tick = bytes(frame), rate, tick
        self.on = threading.Event()
        self.done = threading.Event()
        self.sent = 0
        self.seconds_on = 0.0
        self.cpu_seconds = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            if not self.on.wait(0.05):
                continue
            started, due = time.monotonic(), 0.0
            cpu = time.thread_time()
            while self.on.is_set() and not self.done.is_set():
                elapsed = time.monotonic() - started
                want = int(elapsed * self.rate) + 1
                while due < want:
                    try:
                        self.sock.send(self.frame)
                        self.sent += 1
                    except OSError:             # a full queue drops, as a NIC would
                        pass
                    due += 1
                time.sleep(self.tick)
            self.seconds_on += time.monotonic() - started
            self.cpu_seconds += time.thread_time() - cpu

    def close(self):
        self.done.set()
        self.on.clear()
        self.thread.join()
        self.sock.close()
