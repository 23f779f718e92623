"""Marked probe frames, sent and captured inside endpoint namespaces.

Isolation cannot be proven with ping: networks may reuse addresses, so a
reply may come from the wrong endpoint.  Instead every sender emits UDP
frames carrying ``nsgre-probe:SRC>DST`` (unicast to each endpoint's MAC and
IP, and one broadcast), and every endpoint records which markers reached
it.  A marker can only arrive if the frame crossed the fabric to that port.

A real guest (``--guests qemu|libvirt``) has no Python: it sends the same
frames (``frames()`` below, as hex) and listens with ``nsgre-raw``, the
static helper of the guest image, driven over its command channel
(``mininet_scenarios.check``).

    python -m mininet_scenarios.probe listen IFACE SECONDS   (or until a line on stdin)
    python -m mininet_scenarios.probe send IFACE VLAN|- SRC_NAME SRC_MAC SRC_IP \\
        DST_NAME,DST_MAC,DST_IP ...
"""

from __future__ import annotations

import ipaddress
import json
import select
import socket
import struct
import sys
import time

from nsgre_core.dhcp import internet_checksum

ETH_P_ALL = 0x0003
MAGIC = b"nsgre-probe:"
PORT = 7  # UDP echo port: nothing listens, nothing answers
BROADCAST = "*"


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def frame(src_mac: str, src_ip: str, dst_mac: str, dst_ip: str, marker: str,
          vlan: int | None = None) -> bytes:
    payload = MAGIC + marker.encode()
    udp = struct.pack("!HHHH", PORT, PORT, 8 + len(payload), 0) + payload
    src, dst = ipaddress.ip_address(src_ip), ipaddress.ip_address(dst_ip)
    if src.version == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         src.packed, dst.packed)
        ip = ip[:10] + struct.pack("!H", internet_checksum(ip)) + ip[12:]
        ethertype = 0x0800
    else:
        pseudo = src.packed + dst.packed + struct.pack("!IxxxB", len(udp), 17)
        udp = udp[:6] + struct.pack("!H", internet_checksum(pseudo + udp) or 0xFFFF) + udp[8:]
        ip = struct.pack("!IHBB16s16s", 0x60000000, len(udp), 17, 64, src.packed, dst.packed)
        ethertype = 0x86DD
    tag = struct.pack("!HH", 0x8100, vlan) if vlan else b""
    return _mac(dst_mac) + _mac(src_mac) + tag + struct.pack("!H", ethertype) + ip + udp


def _arrival_vlan(data: bytes, ancdata) -> int | None:
    """The 802.1Q VLAN id a frame arrived with, or None if untagged.  The
    kernel usually strips the tag into the packet's metadata (auxdata)."""
    for level, kind, cdata in ancdata:
        if level == SOL_PACKET and kind == PACKET_AUXDATA:
            status, _, _, _, _, tci = struct.unpack_from("IIIHHH", cdata)
            if status & TP_STATUS_VLAN_VALID:
                return tci & 0xFFF
    if data[12:14] == b"\x81\x00":
        return struct.unpack_from("!H", data, 14)[0] & 0xFFF
    return None


SOL_PACKET, PACKET_AUXDATA, TP_STATUS_VLAN_VALID = 263, 8, 0x10


def listen(iface: str, seconds: float) -> list[str]:
    """Markers that arrived, as ``SRC>DST`` (untagged) or ``SRC>DST@VID``."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    sock.bind((iface, 0))
    print("ready", flush=True)
    seen = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock, sys.stdin], [], [], 0.1)
        if sys.stdin in ready:
            break                      # the checker says: all probes are sent
        if sock not in ready:
            continue
        data, ancdata, _, addr = sock.recvmsg(65535, socket.CMSG_SPACE(64))
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        at = data.find(MAGIC)
        if at >= 0:
            marker = data[at + len(MAGIC):].split(b"\0")[0].decode(errors="replace")
            vlan = _arrival_vlan(data, ancdata)
            seen.add(marker if vlan is None else f"{marker}@{vlan}")
    return sorted(seen)


def frames(src: str, src_mac: str, src_ip: str, targets: list[str],
           vlan: int | None = None) -> list[bytes]:
    """The marked frames a sender emits: one unicast to each ``NAME,MAC,IP``
    target and one broadcast, tagged with ``vlan`` when the sender is a
    trunk's guest VLAN.  A guest sends these same bytes (``nsgre-raw send``
    in the guest image), so its probes are a namespace's probes."""
    ip = str(ipaddress.ip_interface(src_ip).ip)
    out = []
    for target in targets:
        name, mac, dst_ip = target.split(",")
        out.append(frame(src_mac, ip, mac, str(ipaddress.ip_interface(dst_ip).ip),
                         f"{src}>{name}", vlan))
    bcast_ip = "255.255.255.255" if ipaddress.ip_address(ip).version == 4 else "ff02::1"
    out.append(frame(src_mac, ip, "ff:ff:ff:ff:ff:ff" if bcast_ip[0] == "2" else
                     "33:33:00:00:00:01", bcast_ip, f"{src}>{BROADCAST}", vlan))
    return out


def send(iface: str, vlan: int | None, src: str, src_mac: str, src_ip: str,
         targets: list[str], copies: int = 3):
    """Unicast a marker to each ``NAME,MAC,IP`` target and broadcast one,
    tagged with ``vlan`` when the sender is a trunk's guest VLAN."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    out = frames(src, src_mac, src_ip, targets, vlan)
    for _ in range(copies):
        for f in out:
            sock.send(f)
        time.sleep(0.05)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["listen"]:
        print(json.dumps(listen(argv[1], float(argv[2]))), flush=True)
    elif argv[:1] == ["send"]:
        vlan = None if argv[2] == "-" else int(argv[2])
        send(argv[1], vlan, argv[3], argv[4], argv[5], argv[6:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
