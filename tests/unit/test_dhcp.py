"""The DHCP codec reads what real clients send and writes what real
clients accept: frames are built and dissected by scapy, an independent
implementation, and anything a guest could send is either a ``Request``
or a ``DhcpError``."""

from ipaddress import IPv4Interface

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP, IPOption_Router_Alert
from scapy.layers.l2 import ARP, Dot1Q, Ether

from nsgre_core import dhcp
from nsgre_core.dhcp import DhcpError, Lease, Request

CLIENT = "02:00:00:00:00:01"
SERVER_MAC = "02:00:00:00:00:fe"
SERVER = "10.1.1.254"
LEASE = Lease(address=IPv4Interface("10.1.1.2/24"), server_id=SERVER, server_mac=SERVER_MAC,
              lease_time=3600, mtu=1450, router="10.1.1.1", dns=("10.1.1.53", "9.9.9.9"))
BARE = LEASE._replace(mtu=None, router=None, dns=())
KINDS = {dhcp.DISCOVER: "discover", dhcp.REQUEST: "request", dhcp.DECLINE: "decline",
         dhcp.RELEASE: "release", dhcp.INFORM: "inform"}


def client(kind=dhcp.DISCOVER, *options, vlan=None, flags=0, ciaddr="0.0.0.0", xid=0x1234,
           ip_options=(), src=CLIENT, chaddr=CLIENT):
    """A client message as scapy builds it."""
    frame = Ether(src=src, dst="ff:ff:ff:ff:ff:ff")
    if vlan is not None:
        frame /= Dot1Q(vlan=vlan)
    return bytes(frame / IP(src="0.0.0.0", dst="255.255.255.255", options=list(ip_options))
                 / UDP(sport=68, dport=67)
                 / BOOTP(chaddr=bytes.fromhex(chaddr.replace(":", "")), xid=xid, flags=flags,
                         ciaddr=ciaddr)
                 / DHCP(options=[("message-type", KINDS[kind]), *options, "end"]))


def answer(kind=dhcp.DISCOVER, *options, lease=LEASE, **fields):
    """scapy's reading of our reply to a client message."""
    frame = dhcp.reply(dhcp.parse(client(kind, *options, **fields)), lease)
    assert frame is not None
    return Ether(frame)


def opts(packet) -> dict:
    """The reply's DHCP options by scapy's name: one value, or a tuple of several."""
    out = {}
    for item in packet[DHCP].options:
        if isinstance(item, tuple):
            out[item[0]] = item[1] if len(item) == 2 else item[1:]
    return out


# -- parse --------------------------------------------------------------------

def test_parse_reads_every_field_of_an_untagged_discover():
    request = dhcp.parse(client(dhcp.DISCOVER, ("hostname", b"vm1"), flags=0x8000, xid=0xCAFE))
    assert request == Request(kind=dhcp.DISCOVER, xid=0xCAFE, chaddr=CLIENT, eth_src=CLIENT,
                              vlan=None, flags=0x8000, ciaddr="0.0.0.0", requested=None,
                              server_id=None, client_id=None, hostname="vm1")


def test_parse_reads_a_tagged_request_with_its_options():
    frame = client(dhcp.REQUEST, ("requested_addr", "10.1.1.2"), ("server_id", SERVER),
                   ("client_id", b"\x01\x02\x00\x00\x00\x00\x01"), vlan=100,
                   src="02:00:00:00:00:99", chaddr="02:AA:BB:CC:DD:EE")
    request = dhcp.parse(frame)
    assert (request.kind, request.vlan) == (dhcp.REQUEST, 100)
    assert (request.requested, request.server_id) == ("10.1.1.2", SERVER)
    assert request.client_id == b"\x01\x02\x00\x00\x00\x00\x01"
    assert (request.chaddr, request.eth_src) == ("02:aa:bb:cc:dd:ee", "02:00:00:00:00:99")


def test_parse_skips_ip_options():
    frame = client(dhcp.DISCOVER, ip_options=[IPOption_Router_Alert()])
    assert Ether(frame)[IP].ihl > 5
    assert dhcp.parse(frame).chaddr == CLIENT


def test_parse_skips_pad_and_stops_at_end():
    frame = mutate(client(), DHCP, options=["pad", ("message-type", "request"), "pad", "pad",
                                            ("requested_addr", "10.1.1.2"), "end",
                                            b"\x35\x01\x07junk"])
    request = dhcp.parse(frame)
    assert (request.kind, request.requested) == (dhcp.REQUEST, "10.1.1.2")


def test_parse_ignores_ethernet_padding_after_the_ip_packet():
    assert dhcp.parse(client() + bytes(20)).kind == dhcp.DISCOVER


def test_parse_makes_a_hostname_safe_to_log():
    assert dhcp.parse(client(dhcp.DISCOVER, ("hostname", b"a\nb\x1b[0m"))).hostname == "a?b?[0m"


def test_parse_joins_an_option_split_in_parts():
    """RFC 3396: a long option comes as several options with one code."""
    assert dhcp.parse_options(b"\x3d\x02ab\x00\x3d\x01c\xff") == {61: b"abc"}


def mutate(frame: bytes, layer, **fields) -> bytes:
    """``frame`` with ``fields`` of ``layer`` changed, and every length and
    checksum not changed recomputed.  New BOOTP options replace the DHCP
    layer's."""
    packet = Ether(frame)
    if layer is BOOTP and "options" in fields:
        packet[BOOTP].remove_payload()
    for name, value in fields.items():
        setattr(packet[layer], name, value)
    for derived in (IP, UDP):
        for name in ("len", "chksum"):
            if not (derived is layer and name in fields):
                delattr(packet[derived], name)
    return bytes(packet)


GOOD = client(dhcp.DISCOVER)
REJECTED = {
    "ARP": (bytes(Ether() / ARP()), "not IPv4"),
    "two tags": (bytes(Ether() / Dot1Q(vlan=1) / Dot1Q(vlan=2) / IP() / UDP()), "802.1Q"),
    "IPv6 version": (mutate(GOOD, IP, version=6), "version"),
    "IHL 4": (GOOD[:14] + b"\x44" + GOOD[15:], "header length"),
    "TCP": (mutate(GOOD, IP, proto=6), "not UDP"),
    "MF": (mutate(GOOD, IP, flags="MF"), "fragment"),
    "fragment offset": (mutate(GOOD, IP, frag=10), "fragment"),
    "IP length past the frame": (mutate(GOOD, IP, len=len(GOOD)), "truncated"),
    "IP length below header": (mutate(GOOD, IP, len=12), "below"),
    "UDP length too long": (mutate(GOOD, UDP, len=1000), "UDP length"),
    "UDP length too short": (mutate(GOOD, UDP, len=100), "UDP length"),
    "server port": (mutate(GOOD, UDP, sport=67, dport=68), "not 68->67"),
    "BOOTREPLY": (mutate(GOOD, BOOTP, op=2), "op 2"),
    "not Ethernet": (mutate(GOOD, BOOTP, htype=6), "not Ethernet"),
    "bad magic": (mutate(GOOD, BOOTP, options=b"\x63\x82\x53\x64"), "magic"),
    "short BOOTP": (bytes(Ether() / IP() / UDP(sport=68, dport=67) / bytes(200)),
                    "truncated BOOTP"),
    "no option 53": (mutate(GOOD, DHCP, options=["end"]), "option 53"),
    "plain BOOTP": (mutate(GOOD, DHCP, options=[("hostname", b"x"), "end"]), "option 53"),
    "unknown type": (mutate(GOOD, DHCP, options=[("message-type", 42), "end"]), "unknown"),
    "server's type": (mutate(GOOD, DHCP, options=[("message-type", "offer"), "end"]),
                      "server's message"),
    "option past the end": (mutate(GOOD, DHCP, options=[("message-type", 1), b"\x0c\x09ab"]),
                            "past the end"),
    "option without length": (mutate(GOOD, DHCP, options=[("message-type", 1), b"\x0c"]),
                               "no length"),
    "short server id": (mutate(GOOD, DHCP, options=[("message-type", 1), b"\x36\x02ab", "end"]),
                        "not 4"),
}


@pytest.mark.parametrize("frame, reason", REJECTED.values(), ids=REJECTED.keys())
def test_parse_rejects_what_is_not_a_client_message_and_says_why(frame, reason):
    with pytest.raises(DhcpError, match=reason):
        dhcp.parse(frame)


@pytest.mark.parametrize("frame", [client(), client(dhcp.REQUEST, ("client_id", b"\x01x"),
                                                    vlan=7, ip_options=[IPOption_Router_Alert()])],
                         ids=["untagged", "tagged with ip options"])
def test_every_truncation_of_a_valid_frame_is_a_dhcp_error(frame):
    for size in range(len(frame)):
        with pytest.raises(DhcpError):
            dhcp.parse(frame[:size])


def parse_or_reject(frame: bytes):
    """What any input may do: give a Request that describe and reply can
    handle, or raise DhcpError, nothing else."""
    try:
        request = dhcp.parse(frame)
    except DhcpError:
        return
    assert isinstance(request, Request)
    dhcp.describe(request)
    frame = dhcp.reply(request, LEASE)
    assert frame is None or isinstance(frame, bytes)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_parse_or_raise_dhcp_error(frame):
    parse_or_reject(frame)


VALID = [client(), client(dhcp.REQUEST, ("requested_addr", "10.1.1.2"), ("server_id", SERVER),
                          ("client_id", b"\x01abc"), ("hostname", b"vm"), vlan=100),
         client(dhcp.INFORM, ciaddr="10.1.1.2", ip_options=[IPOption_Router_Alert()])]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_and_truncated_valid_frames_parse_or_raise_dhcp_error(data):
    frame = bytearray(data.draw(st.sampled_from(VALID)))
    for _ in range(data.draw(st.integers(0, 4))):
        where = data.draw(st.integers(0, len(frame) - 1) | st.integers(0, 60))
        frame[where] = data.draw(st.integers(0, 255))
    size = data.draw(st.just(len(frame)) | st.integers(0, len(frame)))
    parse_or_reject(bytes(frame[:size]))


TLVS = st.lists(st.tuples(st.integers(1, 254), st.binary(max_size=8))).map(
    lambda tlvs: b"\x35\x01\x03" + b"".join(bytes([c, len(v)]) + v for c, v in tlvs))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80) | TLVS | TLVS.map(lambda b: b + b"\x33"),
       st.sampled_from([None, 5]))
def test_arbitrary_options_in_consistent_headers_parse_or_raise_dhcp_error(options, vlan):
    """Headers right, so the fuzz reaches the option walker and past it."""
    parse_or_reject(mutate(client(vlan=vlan), BOOTP, options=b"\x63\x82\x53\x63" + options))


# -- reply ----------------------------------------------------------------------

def test_offer_dissected_by_scapy_has_every_field_and_option_right():
    offer = answer(dhcp.DISCOVER, xid=0xBEEF)
    assert (offer[Ether].dst, offer[Ether].src, offer[Ether].type) == (CLIENT, SERVER_MAC, 0x0800)
    assert (offer[IP].src, offer[IP].dst, offer[IP].ttl, offer[IP].proto) == \
        (SERVER, "10.1.1.2", 64, 17)
    assert (offer[IP].flags, offer[IP].frag) == (0, 0)
    assert (offer[UDP].sport, offer[UDP].dport) == (67, 68)
    bootp = offer[BOOTP]
    assert (bootp.op, bootp.htype, bootp.hlen, bootp.xid, bootp.flags) == (2, 1, 6, 0xBEEF, 0)
    assert (bootp.ciaddr, bootp.yiaddr, bootp.siaddr, bootp.giaddr) == \
        ("0.0.0.0", "10.1.1.2", "0.0.0.0", "0.0.0.0")
    assert bootp.chaddr[:6] == bytes.fromhex("020000000001")
    assert opts(offer) == {"message-type": dhcp.OFFER, "server_id": SERVER, "lease_time": 3600,
                           "renewal_time": 1800, "rebinding_time": 3150,
                           "subnet_mask": "255.255.255.0", "broadcast_address": "10.1.1.255",
                           "router": "10.1.1.1", "name_server": ("10.1.1.53", "9.9.9.9"),
                           "interface-mtu": 1450}


def test_options_come_in_order_and_end_with_255():
    names = [o[0] if isinstance(o, tuple) else o for o in answer()[DHCP].options]
    assert names == ["message-type", "server_id", "lease_time", "renewal_time",
                     "rebinding_time", "subnet_mask", "broadcast_address", "router",
                     "name_server", "interface-mtu", "end"]


@pytest.mark.parametrize("kind, options", [
    (dhcp.DISCOVER, ()),
    (dhcp.REQUEST, (("requested_addr", "10.1.1.2"),)),
    (dhcp.REQUEST, (("requested_addr", "10.9.9.9"),)),
    (dhcp.INFORM, ()),
], ids=["offer", "ack", "nak", "inform"])
@pytest.mark.parametrize("vlan", [None, 100])
def test_reply_checksums_are_what_scapy_computes(kind, options, vlan):
    ciaddr = "10.1.1.2" if kind == dhcp.INFORM else "0.0.0.0"
    reply = answer(kind, *options, vlan=vlan, ciaddr=ciaddr)
    rebuilt = reply.copy()
    rebuilt[IP].chksum = None
    rebuilt[UDP].chksum = None
    assert bytes(Ether(bytes(rebuilt))) == bytes(reply)
    assert reply[UDP].chksum != 0


@pytest.mark.parametrize("kind, options", [
    (dhcp.DISCOVER, ()),
    (dhcp.REQUEST, (("requested_addr", "10.1.1.2"),)),
    (dhcp.REQUEST, (("requested_addr", "10.9.9.9"),)),
])
def test_reply_carries_the_requests_tag(kind, options):
    reply = answer(kind, *options, vlan=100)
    assert (reply[Dot1Q].vlan, reply[Dot1Q].type) == (100, 0x0800)
    assert Dot1Q not in answer(kind, *options)


def test_reply_pads_the_bootp_part_to_300_bytes_and_lengths_agree():
    reply = answer(lease=BARE)
    assert len(bytes(reply[UDP].payload)) >= 300
    assert reply[UDP].len == len(bytes(reply[UDP]))
    assert reply[IP].len == len(bytes(reply[IP]))


def test_broadcast_flag_sends_to_the_limited_broadcast():
    assert answer(flags=0x8000)[IP].dst == "255.255.255.255"
    assert answer(flags=0x8000)[BOOTP].flags == 0x8000
    assert answer(flags=0)[IP].dst == "10.1.1.2"


@pytest.mark.parametrize("options, fields", [
    ((("requested_addr", "10.1.1.2"), ("server_id", SERVER)), {}),           # selecting
    ((("requested_addr", "10.1.1.2"),), {}),                                # init-reboot
    ((), {"ciaddr": "10.1.1.2"}),                                          # renewing
], ids=["selecting", "init-reboot", "renewing"])
def test_request_for_the_leased_address_is_acked(options, fields):
    ack = answer(dhcp.REQUEST, *options, **fields)
    assert opts(ack)["message-type"] == dhcp.ACK
    assert (ack[BOOTP].yiaddr, ack[IP].dst, ack[Ether].dst) == ("10.1.1.2", "10.1.1.2", CLIENT)
    assert ack[BOOTP].ciaddr == fields.get("ciaddr", "0.0.0.0")
    assert opts(ack)["lease_time"] == 3600


@pytest.mark.parametrize("options, fields", [
    ((("requested_addr", "10.1.1.3"), ("server_id", SERVER)), {}),
    ((("requested_addr", "10.1.1.3"),), {}),
    ((), {"ciaddr": "10.1.1.3"}),
    ((), {}),
], ids=["selecting", "init-reboot", "renewing", "no address at all"])
def test_request_for_another_address_is_naked_to_broadcast(options, fields):
    nak = answer(dhcp.REQUEST, *options, ("client_id", b"\x01id"), vlan=100, **fields)
    assert (nak[Ether].dst, nak[IP].dst, nak[IP].src) == \
        ("ff:ff:ff:ff:ff:ff", "255.255.255.255", SERVER)
    assert (nak[BOOTP].yiaddr, nak[BOOTP].ciaddr) == ("0.0.0.0", "0.0.0.0")
    assert set(opts(nak)) == {"message-type", "server_id", "error_message", "client_id"}
    assert opts(nak)["message-type"] == dhcp.NAK


@pytest.mark.parametrize("frame", [
    client(dhcp.REQUEST, ("requested_addr", "10.1.1.2"), ("server_id", "10.1.1.253")),
    client(dhcp.DECLINE, ("requested_addr", "10.1.1.2"), ("server_id", SERVER)),
    client(dhcp.RELEASE, ("server_id", SERVER), ciaddr="10.1.1.2"),
], ids=["request to another server", "decline", "release"])
def test_no_reply(frame):
    assert dhcp.reply(dhcp.parse(frame), LEASE) is None


def test_inform_gets_configuration_without_an_address_or_a_lease():
    ack = answer(dhcp.INFORM, ciaddr="10.1.1.2", flags=0x8000)
    assert opts(ack)["message-type"] == dhcp.ACK
    assert (ack[BOOTP].yiaddr, ack[BOOTP].ciaddr) == ("0.0.0.0", "10.1.1.2")
    assert (ack[IP].dst, ack[Ether].dst) == ("10.1.1.2", CLIENT)
    assert not {"lease_time", "renewal_time", "rebinding_time"} & set(opts(ack))
    assert opts(ack)["subnet_mask"] == "255.255.255.0"
    assert opts(ack)["router"] == "10.1.1.1"


def test_client_id_is_echoed_only_when_the_request_carried_it():
    assert opts(answer(dhcp.DISCOVER, ("client_id", b"\xff\x00\x01")))["client_id"] == \
        b"\xff\x00\x01"
    assert "client_id" not in opts(answer(dhcp.DISCOVER))


def test_mtu_router_and_dns_are_left_out_when_not_given():
    got = opts(answer(lease=BARE))
    assert not {"interface-mtu", "router", "name_server"} & set(got)
    assert got["subnet_mask"] == "255.255.255.0"


def test_lease_time_gives_t1_half_and_t2_seven_eighths():
    got = opts(answer(lease=LEASE._replace(lease_time=86400)))
    assert (got["lease_time"], got["renewal_time"], got["rebinding_time"]) == (86400, 43200, 75600)


def test_an_infinite_lease_has_no_renewal_times():
    got = opts(answer(lease=LEASE._replace(lease_time=0xFFFFFFFF)))
    assert got["lease_time"] == 0xFFFFFFFF
    assert not {"renewal_time", "rebinding_time"} & set(got)


def test_subnet_mask_and_broadcast_follow_the_prefix():
    got = opts(answer(lease=LEASE._replace(address=IPv4Interface("10.2.0.9/16"))))
    assert (got["subnet_mask"], got["broadcast_address"]) == ("255.255.0.0", "10.2.255.255")


def test_reply_is_not_taken_for_a_client_message():
    """Our own packet-out, seen again, is never answered."""
    with pytest.raises(DhcpError):
        dhcp.parse(bytes(answer()))


def test_describe_is_one_log_line():
    assert dhcp.describe(dhcp.parse(client(vlan=100))) == \
        "DHCPDISCOVER from 02:00:00:00:00:01 xid 0x1234 (vlan 100)"
    assert dhcp.describe(dhcp.parse(client(dhcp.REQUEST, xid=0xAB))) == \
        "DHCPREQUEST from 02:00:00:00:00:01 xid 0xab"
