"""DHCPv4 on the wire: read a guest's client message, write the answer.

The controller answers DHCP itself, from the topology, for a guest on its
own port: a packet-in carries the guest's frame, ``parse`` reads it and
``reply`` builds the whole Ethernet frame the packet-out sends back down
the same port.  No relay agents (giaddr is always 0) and no lease
database: the topology already says which address each guest has.

``parse`` reads frames a guest controls, so it trusts nothing: any input
either gives a ``Request`` or raises ``DhcpError`` saying why.  Checksums
of the request are not checked: a guest with checksum offload on sends
UDP checksums it never filled in, and the switch has already taken the
frame from the guest's own port.  The controller must ask for the whole
frame (``OFPCML_NO_BUFFER``); a packet-in cut at 128 bytes is truncated.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = 1, 2, 3, 4, 5, 6, 7, 8
KIND_NAMES = {DISCOVER: "DHCPDISCOVER", OFFER: "DHCPOFFER", REQUEST: "DHCPREQUEST",
              DECLINE: "DHCPDECLINE", ACK: "DHCPACK", NAK: "DHCPNAK",
              RELEASE: "DHCPRELEASE", INFORM: "DHCPINFORM"}
#: The message types a client sends (RFC 2131 3.1, 3.4): the others are ours.
CLIENT_KINDS = frozenset({DISCOVER, REQUEST, DECLINE, RELEASE, INFORM})

ETH_P_IP, ETH_P_8021Q = 0x0800, 0x8100
IPPROTO_UDP = 17
SERVER_PORT, CLIENT_PORT = 67, 68
BOOTREQUEST, BOOTREPLY = 1, 2
HTYPE_ETHERNET, HLEN_ETHERNET = 1, 6
MAGIC_COOKIE = b"\x63\x82\x53\x63"
BROADCAST_FLAG = 0x8000
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
INFINITE_LEASE = 0xFFFFFFFF
TTL = 64
#: BOOTP's legacy 300-byte minimum (RFC 951 with a 64-byte vendor area):
#: some clients drop shorter replies.
BOOTP_MIN = 300

# options (RFC 2132)
OPT_PAD, OPT_END = 0, 255
OPT_SUBNET_MASK, OPT_ROUTER, OPT_DNS, OPT_HOSTNAME = 1, 3, 6, 12
OPT_MTU, OPT_BROADCAST = 26, 28
OPT_REQUESTED, OPT_LEASE_TIME, OPT_MESSAGE_TYPE, OPT_SERVER_ID = 50, 51, 53, 54
OPT_MESSAGE, OPT_T1, OPT_T2, OPT_CLIENT_ID = 56, 58, 59, 61

ETH_HEADER = struct.Struct("!6s6sH")
IP_HEADER = struct.Struct("!BBHHHBBH4s4s")
UDP_HEADER = struct.Struct("!HHHH")
#: op htype hlen hops xid secs flags ciaddr yiaddr siaddr giaddr chaddr sname file
BOOTP = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
UNSET = "0.0.0.0"


class DhcpError(ValueError):
    """A frame that is not a well-formed DHCP client message (says why)."""


class Request(NamedTuple):
    """What a guest asked for, and enough about its frame to answer it."""
    kind: int                 # option 53 message type
    xid: int
    chaddr: str               # client hardware address, lower case
    eth_src: str              # Ethernet source MAC of the frame
    vlan: int | None          # the frame's 802.1Q VLAN id, None untagged
    flags: int                # BOOTP flags (0x8000 = broadcast)
    ciaddr: str               # "0.0.0.0" when unset
    requested: str | None     # option 50
    server_id: str | None     # option 54
    client_id: bytes | None   # option 61, echoed back per RFC 6842
    hostname: str | None      # option 12 (for logs)


class Lease(NamedTuple):
    """What the topology grants one guest, and who grants it."""
    address: ipaddress.IPv4Interface   # the client's address and prefix
    server_id: str                     # option 54 and the IP source of replies
    server_mac: str                    # Ethernet source of replies
    lease_time: int                    # seconds; T1 = 1/2, T2 = 7/8 of it
    mtu: int | None                    # option 26 when not None
    router: str | None                 # option 3 when not None
    dns: tuple[str, ...] = ()          # option 6 when non-empty


# -- reading --------------------------------------------------------------------

def parse(frame: bytes) -> Request:
    """The client message in ``frame``: Ethernet (one 802.1Q tag at most),
    IPv4 without fragments, UDP 68->67, a BOOTREQUEST with DHCP options.
    Raises ``DhcpError`` for anything else, and never anything else.
    Option 52 (overload) is ignored: sname and file are never read."""
    frame = bytes(frame)
    if len(frame) < ETH_HEADER.size:
        raise DhcpError(f"truncated Ethernet header ({len(frame)} bytes)")
    _, src, ethertype = ETH_HEADER.unpack_from(frame)
    offset, vlan = ETH_HEADER.size, None
    if ethertype == ETH_P_8021Q:
        if len(frame) < offset + 4:
            raise DhcpError("truncated 802.1Q tag")
        tci, ethertype = struct.unpack_from("!HH", frame, offset)
        offset, vlan = offset + 4, tci & 0x0FFF
        if ethertype == ETH_P_8021Q:
            raise DhcpError("more than one 802.1Q tag")
    if ethertype != ETH_P_IP:
        raise DhcpError(f"not IPv4 (ethertype 0x{ethertype:04x})")
    udp = _ipv4_payload(frame, offset)
    bootp = _udp_payload(udp)
    return _bootrequest(bootp, mac(src), vlan)


def _ipv4_payload(frame: bytes, offset: int) -> bytes:
    """The UDP datagram in the IPv4 packet at ``offset``; Ethernet padding
    after the packet's total length is dropped."""
    if len(frame) < offset + IP_HEADER.size:
        raise DhcpError("truncated IPv4 header")
    vihl, _, total, _, frag, _, proto, _, _, _ = IP_HEADER.unpack_from(frame, offset)
    version, ihl = vihl >> 4, (vihl & 0x0F) * 4
    if version != 4:
        raise DhcpError(f"IP version {version}, not 4")
    if ihl < IP_HEADER.size:
        raise DhcpError(f"IPv4 header length {ihl} below 20")
    if total < ihl:
        raise DhcpError(f"IPv4 total length {total} below its header length {ihl}")
    if offset + total > len(frame):
        raise DhcpError(f"truncated: IPv4 total length {total}, "
                        f"{len(frame) - offset} bytes in the frame")
    if frag & 0x3FFF:
        raise DhcpError("an IPv4 fragment (MF or fragment offset set)")
    if proto != IPPROTO_UDP:
        raise DhcpError(f"IP protocol {proto}, not UDP")
    return frame[offset + ihl:offset + total]


def _udp_payload(datagram: bytes) -> bytes:
    if len(datagram) < UDP_HEADER.size:
        raise DhcpError("truncated UDP header")
    sport, dport, length, _ = UDP_HEADER.unpack_from(datagram)
    if (sport, dport) != (CLIENT_PORT, SERVER_PORT):
        raise DhcpError(f"UDP {sport}->{dport}, not {CLIENT_PORT}->{SERVER_PORT}")
    if length != len(datagram):
        raise DhcpError(f"UDP length {length} but the IPv4 payload is {len(datagram)} bytes")
    return datagram[UDP_HEADER.size:]


def _bootrequest(bootp: bytes, eth_src: str, vlan: int | None) -> Request:
    if len(bootp) < BOOTP.size + len(MAGIC_COOKIE):
        raise DhcpError(f"truncated BOOTP message ({len(bootp)} bytes)")
    (op, htype, hlen, _, xid, _, flags, ciaddr, _, _, _, chaddr, _, _
     ) = BOOTP.unpack_from(bootp)
    if op != BOOTREQUEST:
        raise DhcpError(f"BOOTP op {op}, not BOOTREQUEST")
    if (htype, hlen) != (HTYPE_ETHERNET, HLEN_ETHERNET):
        raise DhcpError(f"hardware type {htype} length {hlen}, not Ethernet")
    if bootp[BOOTP.size:BOOTP.size + 4] != MAGIC_COOKIE:
        raise DhcpError("no DHCP magic cookie")
    options = parse_options(bootp[BOOTP.size + 4:])
    kind = _message_type(options)
    return Request(
        kind=kind, xid=xid, chaddr=mac(chaddr[:6]), eth_src=eth_src, vlan=vlan,
        flags=flags, ciaddr=str(ipaddress.IPv4Address(ciaddr)),
        requested=_address_option(options, OPT_REQUESTED, "requested address"),
        server_id=_address_option(options, OPT_SERVER_ID, "server identifier"),
        client_id=options.get(OPT_CLIENT_ID),
        hostname=printable(options[OPT_HOSTNAME]) if OPT_HOSTNAME in options else None)


def parse_options(data: bytes) -> dict[int, bytes]:
    """Option code -> value, up to option 255 or the end of ``data``.
    A code given twice is one long option split in parts (RFC 3396)."""
    options: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        code = data[i]
        if code == OPT_END:
            break
        if code == OPT_PAD:
            i += 1
            continue
        if i + 1 >= len(data):
            raise DhcpError(f"option {code} has no length byte")
        size = data[i + 1]
        if i + 2 + size > len(data):
            raise DhcpError(f"option {code} of {size} bytes runs past the end")
        options[code] = options.get(code, b"") + data[i + 2:i + 2 + size]
        i += 2 + size
    return options


def _message_type(options: dict[int, bytes]) -> int:
    value = options.get(OPT_MESSAGE_TYPE)
    if value is None:
        raise DhcpError("no DHCP message type (option 53): plain BOOTP")
    if len(value) != 1:
        raise DhcpError(f"DHCP message type of {len(value)} bytes")
    kind = value[0]
    if kind not in KIND_NAMES:
        raise DhcpError(f"unknown DHCP message type {kind}")
    if kind not in CLIENT_KINDS:
        raise DhcpError(f"{KIND_NAMES[kind]} is a server's message, not a client's")
    return kind


def _address_option(options: dict[int, bytes], code: int, what: str) -> str | None:
    value = options.get(code)
    if value is None:
        return None
    if len(value) != 4:
        raise DhcpError(f"{what} (option {code}) of {len(value)} bytes, not 4")
    return str(ipaddress.IPv4Address(value))


def printable(value: bytes) -> str:
    """A guest-chosen name made safe to log: no newlines or escapes to
    forge log lines with."""
    return "".join(c if c.isprintable() else "?" for c in value.decode("utf-8", "replace"))


def mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def describe(request: Request) -> str:
    """One log line: ``DHCPDISCOVER from 02:00:00:00:00:01 xid 0x1234 (vlan 100)``."""
    vlan = "" if request.vlan is None else f" (vlan {request.vlan})"
    kind = KIND_NAMES.get(request.kind, f"DHCP type {request.kind}")
    return f"{kind} from {request.chaddr} xid 0x{request.xid:x}{vlan}"


# -- answering ------------------------------------------------------------------

def reply(request: Request, lease: Lease) -> bytes | None:
    """The frame answering ``request`` from ``lease``, or None when the
    server must stay silent (RFC 2131 4.3): DISCOVER gets an OFFER; REQUEST
    an ACK for the lease's address, a NAK for any other, nothing when it
    chose another server; INFORM an ACK with configuration only; DECLINE
    and RELEASE nothing (there is no lease database to update)."""
    ours = lease.address.ip
    if request.kind == DISCOVER:
        return _frame(request, lease, OFFER)
    if request.kind == REQUEST:
        if request.server_id is not None and _ip(request.server_id) != _ip(lease.server_id):
            return None
        asked = request.requested or (request.ciaddr if request.ciaddr != UNSET else None)
        if asked is not None and ipaddress.IPv4Address(asked) == ours:
            return _frame(request, lease, ACK)
        return _frame(request, lease, NAK)   # asks for another address, or for none
    if request.kind == INFORM:
        return _frame(request, lease, ACK, inform=True)
    return None


def _frame(request: Request, lease: Lease, kind: int, inform: bool = False) -> bytes:
    """The whole reply frame, addressed as RFC 2131 4.1 says for a client
    on the server's own link (no relay)."""
    yiaddr = UNSET if kind == NAK or inform else str(lease.address.ip)
    # RFC 2131 table 3: an ACK echoes ciaddr, an OFFER and a NAK do not.
    ciaddr = request.ciaddr if kind == ACK else UNSET
    if inform:
        ip_dst = request.ciaddr if request.ciaddr != UNSET else "255.255.255.255"
    elif kind == NAK or request.flags & BROADCAST_FLAG:
        ip_dst = "255.255.255.255"
    else:
        ip_dst = yiaddr
    eth_dst = BROADCAST_MAC if kind == NAK else request.chaddr
    bootp = _bootreply(request, kind, ciaddr, yiaddr, _reply_options(request, lease, kind, inform))
    udp = udp_datagram(lease.server_id, ip_dst, SERVER_PORT, CLIENT_PORT, bootp)
    return ethernet(eth_dst, lease.server_mac, request.vlan,
                    ipv4_packet(lease.server_id, ip_dst, IPPROTO_UDP, udp))


def _bootreply(request: Request, kind: int, ciaddr: str, yiaddr: str, options: bytes) -> bytes:
    fixed = BOOTP.pack(BOOTREPLY, HTYPE_ETHERNET, HLEN_ETHERNET, 0, request.xid, 0,
                       request.flags, _ip(ciaddr), _ip(yiaddr), _ip(UNSET), _ip(UNSET),
                       _mac(request.chaddr), b"", b"")
    message = fixed + MAGIC_COOKIE + options
    return message.ljust(BOOTP_MIN, bytes([OPT_PAD]))


def _reply_options(request: Request, lease: Lease, kind: int, inform: bool) -> bytes:
    """The reply's options (RFC 2131 table 3): a NAK carries only the type,
    the server, a reason for the client's log and the client id."""
    out = [option(OPT_MESSAGE_TYPE, bytes([kind])),
           option(OPT_SERVER_ID, _ip(lease.server_id))]
    if kind == NAK:
        out.append(option(OPT_MESSAGE, b"requested address is not yours"))
    else:
        if not inform:
            out.append(option(OPT_LEASE_TIME, _u32(lease.lease_time)))
            if lease.lease_time != INFINITE_LEASE:
                out.append(option(OPT_T1, _u32(lease.lease_time // 2)))
                out.append(option(OPT_T2, _u32(lease.lease_time * 7 // 8)))
        network = lease.address.network
        out.append(option(OPT_SUBNET_MASK, network.netmask.packed))
        out.append(option(OPT_BROADCAST, network.broadcast_address.packed))
        if lease.router is not None:
            out.append(option(OPT_ROUTER, _ip(lease.router)))
        if lease.dns:
            out.append(option(OPT_DNS, b"".join(_ip(a) for a in lease.dns)))
        if lease.mtu is not None:
            out.append(option(OPT_MTU, struct.pack("!H", lease.mtu)))
    if request.client_id is not None:
        out.append(option(OPT_CLIENT_ID, request.client_id))
    out.append(bytes([OPT_END]))
    return b"".join(out)


def option(code: int, value: bytes) -> bytes:
    """One option; a value over 255 bytes goes out in parts (RFC 3396)."""
    parts = [value[i:i + 255] for i in range(0, len(value), 255)] or [b""]
    return b"".join(bytes([code, len(part)]) + part for part in parts)


# -- the headers around it ------------------------------------------------------

def ethernet(dst: str, src: str, vlan: int | None, payload: bytes) -> bytes:
    """An IPv4 Ethernet frame, tagged with ``vlan`` when it is not None."""
    tag = b"" if vlan is None else struct.pack("!HH", ETH_P_8021Q, vlan)
    return _mac(dst) + _mac(src) + tag + struct.pack("!H", ETH_P_IP) + payload


def ipv4_packet(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    header = IP_HEADER.pack(0x45, 0, IP_HEADER.size + len(payload), 0, 0, TTL, proto, 0,
                            _ip(src), _ip(dst))
    checksum = internet_checksum(header)
    return header[:10] + struct.pack("!H", checksum) + header[12:] + payload


def udp_datagram(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    length = UDP_HEADER.size + len(payload)
    pseudo = _ip(src) + _ip(dst) + struct.pack("!xBH", IPPROTO_UDP, length)
    header = UDP_HEADER.pack(sport, dport, length, 0)
    checksum = internet_checksum(pseudo + header + payload) or 0xFFFF   # 0 means "none"
    return UDP_HEADER.pack(sport, dport, length, checksum) + payload


def internet_checksum(data: bytes) -> int:
    """RFC 1071: the one's complement of the one's complement sum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip(address: str) -> bytes:
    return ipaddress.IPv4Address(address).packed


def _mac(address: str) -> bytes:
    raw = bytes.fromhex(address.replace(":", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {address!r}")
    return raw


def _u32(value: int) -> bytes:
    return struct.pack("!I", value)
