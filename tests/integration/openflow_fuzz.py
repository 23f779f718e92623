"""A seeded generator of malformed OpenFlow, thrown at a running controller
by peers that pass the handshake (a HELLO, a features reply with a datapath
id no host has), as a compromised or broken switch would: unknown types,
wrong versions, lengths shorter or longer than the bytes, truncated
messages, bodies of random bytes for every message type the controller
reads, oversized messages, and floods of packet-ins and port-status."""

from __future__ import annotations

import random
import socket
import struct

VERSION = 4
HELLO, ERROR, ECHO_REQUEST, FEATURES_REQUEST, FEATURES_REPLY = 0, 1, 2, 5, 6
PACKET_IN, PORT_STATUS, MULTIPART_REPLY, BARRIER_REPLY, ROLE_REPLY = 10, 12, 19, 21, 25
EXPERIMENTER = 4
#: The types a controller reads from a switch: their bodies get random bytes.
READ_TYPES = (ERROR, ECHO_REQUEST, EXPERIMENTER, FEATURES_REPLY, PACKET_IN, 11, PORT_STATUS,
              MULTIPART_REPLY, BARRIER_REPLY, ROLE_REPLY, 23, 27, 30)


def header(kind: int, length: int, xid: int, version: int = VERSION) -> bytes:
    return struct.pack("!BBHI", version, kind, length, xid)


def message(kind: int, body: bytes, xid: int) -> bytes:
    return header(kind, 8 + len(body), xid) + body


def features_reply(dpid: int, xid: int) -> bytes:
    return message(FEATURES_REPLY, struct.pack("!QIBB2xII", dpid, 256, 254, 0, 0x4f, 0), xid)


def packet_in(rng: random.Random, xid: int) -> bytes:
    frame = bytes(rng.getrandbits(8) for _ in range(rng.randrange(14, 120)))
    match = struct.pack("!HHHBBI4x", 1, 12, 0x8000, 0, 4, rng.randrange(1, 100))  # OXM in_port
    body = struct.pack("!IHBBQ", 0xffffffff, len(frame), 0, 0, 0) + match + b"\0\0" + frame
    return message(PACKET_IN, body, xid)


def port_status(rng: random.Random, xid: int) -> bytes:
    name = f"fz{rng.randrange(10000)}".encode().ljust(16, b"\0")
    port = struct.pack("!I4x6s2x16sIIIIIIII", rng.randrange(1, 0xff00), rng.randbytes(6), name,
                       0, 0, 0, 0, 0, 0, 0, 0)
    return message(PORT_STATUS, struct.pack("!B7x", rng.randrange(0, 4)) + port, xid)


def malformed(rng: random.Random, xid: int) -> bytes:
    """One message that is wrong some way (or, one time in five, a valid
    packet-in or port-status of a flood)."""
    kind = rng.randrange(9)
    body = rng.randbytes(rng.randrange(0, 300))
    if kind == 0:                                   # a type OpenFlow 1.3 does not have
        return message(rng.randrange(36, 256), body, xid)
    if kind == 1:                                   # a type it reads, a body of noise
        return message(rng.choice(READ_TYPES), body, xid)
    if kind == 2:                                   # a length shorter than a header
        return header(rng.choice(READ_TYPES), rng.randrange(0, 8), xid) + body[:8]
    if kind == 3:                                   # a length past the bytes that follow
        return header(rng.choice(READ_TYPES), 8 + len(body) + rng.randrange(1, 64), xid) + body
    if kind == 4:                                   # another version
        return header(rng.choice(READ_TYPES), 8 + len(body), xid,
                      version=rng.choice([0, 1, 2, 3, 5, 6, 255])) + body
    if kind == 5:                                   # a multipart reply of every part, noise
        return message(MULTIPART_REPLY, struct.pack("!HH4x", rng.randrange(0, 20),
                                                    rng.randrange(2)) + body, xid)
    if kind == 6:                                   # as large as a length can say
        return message(rng.choice((ECHO_REQUEST, EXPERIMENTER, PACKET_IN)),
                       rng.randbytes(65535 - 8), xid)
    if kind == 7:
        return packet_in(rng, xid)
    return port_status(rng, xid)


def peer(path: str, rng: random.Random, count: int, dpid: int) -> int:
    """One connection: the handshake, then ``count`` messages, some of them
    malformed past recovery (the controller may hang up: fine).  How many
    were sent."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sent = 0
    try:
        sock.connect(path)
        sock.sendall(message(HELLO, b"", 1))
        xid = features_request(sock)
        if xid is None:
            return sent
        sock.sendall(features_reply(dpid, xid))
        for i in range(count):
            sock.sendall(malformed(rng, 100 + i))
            sent += 1
    except OSError:
        pass                                          # hung up on: it may
    finally:
        sock.close()
    return sent


def features_request(sock) -> int | None:
    """Read the controller's messages until its FEATURES_REQUEST; its xid."""
    seen = b""
    while True:
        while len(seen) >= 8:
            _, kind, length, xid = struct.unpack("!BBHI", seen[:8])
            if len(seen) < length:
                break
            if kind == FEATURES_REQUEST:
                return xid
            seen = seen[max(length, 8):]
        chunk = sock.recv(4096)
        if not chunk:
            return None
        seen += chunk


# -- HTTP: what a broken or hostile client sends the controller's API ------------------
PATHS = ("/", "/apply", "/objects", "/topology", "/metrics", "/trace", "/diff", "/%ff",
         "/apply?wait=x", "/trace?src=&dst=", "/objects?wait=-1", "/" + "a" * 9000)


def http_request(rng: random.Random) -> bytes:
    """One request that is wrong some way: a bad request line or method,
    headers too long or without colons, a body shorter or longer than its
    length, lengths that are not numbers, chunked bodies gone wrong, YAML
    and JSON of noise, bytes that are not UTF-8."""
    kind = rng.randrange(10)
    path = rng.choice(PATHS)
    method = rng.choice(("GET", "POST", "PUT", "DELETE", "BREW", "G\xffT", ""))
    body = rng.choice((b"", rng.randbytes(rng.randrange(1, 400)), b"hosts: [a, {",
                       b'{"kind": "endpoint", "action": "add"', b"\xff\xfe\x00tunnel: gre",
                       b"- " * 500, b"a: &x [*x]"))
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 200)) + b"\r\n\r\n"
    if kind == 1:
        return f"{method} {path} HTTP/1.1\r\n\r\n".encode("latin-1")
    if kind == 2:
        return f"POST {path} HTTP/1.1\r\nContent-Length: {len(body) + 50}\r\n\r\n".encode() \
            + body
    if kind == 3:
        return f"POST {path} HTTP/1.1\r\nContent-Length: {rng.choice(['-1', 'x', '1e9'])}" \
               "\r\n\r\n".encode() + body
    if kind == 4:
        return b"POST /apply HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" \
            + rng.choice((b"zz\r\n", b"ffffffff\r\n", b"5\r\nab")) + body
    if kind == 5:
        return f"GET {path} HTTP/1.1\r\nX: {'y' * rng.randrange(9000, 70000)}\r\n\r\n".encode()
    if kind == 6:
        return b"GET /metrics HTTP/1.1\r\n" + b"no colon here\r\n" * rng.randrange(1, 200) \
            + b"\r\n"
    if kind == 7:
        return f"GET {path} HTTP/9.9\r\n\r\n".encode()
    return f"POST {path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def http_client(path: str, rng: random.Random) -> bool:
    """One malformed request on a connection of its own; whether the
    controller answered it (or hung up) within 15 s."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(15)
    try:
        sock.connect(path)
        sock.sendall(http_request(rng))
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
        return True
    except socket.timeout:
        return False
    except OSError:
        return True                               # hung up on: an answer too
    finally:
        sock.close()
