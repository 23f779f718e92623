"""IPv6 as safe as IPv4, on the real thing: real ovs-vswitchd per host, the
real controller, real namespaces and kernels, frames crafted with scapy,
verdicts read at the receivers (and in their neighbour caches and routes).

    v6h1 (198.18.0.61): v6a1 (A, the attacker), v6a3 (A), v6b1 (B)
    v6h2 (198.18.0.62): v6a2 (A), v6r (A, A's router), v6b2 (B)

A and B reuse the same addresses (v6a1 and v6b1 are both 2001:db8:6::1,
v6a2 and v6b2 both ::2).  Names are unique to this file (namespace names
are global); run it alone with ``NSGRE_RUN_DIR=/run/nsgre-v6`` next to
another emulation.

Every crafted ND message carries the test's marker in an ND option of an
experimental type (253, RFC 4727), which receivers ignore (RFC 4861 4.6),
so a frame that got through would be acted upon: a test that asserts
"nobody received it" also checks the kernels' neighbour caches and routes.
Each attack test sends a control: the same kind of frame, well formed and
allowed, and asserts it *is* delivered.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
import time

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA,
                                ICMPv6ND_Redirect, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr,
                                IPv6)
from scapy.layers.l2 import Ether
from scapy.packet import Raw

import topology
from mininet_scenarios import emulation
from nsgre_core.pipeline import solicited_node

import attack
from conftest import ns, ping

TOPOLOGY = """\
tunnel: gre
hosts:
  v6h1: {underlay_ip: 198.18.0.61}
  v6h2: {underlay_ip: 198.18.0.62}
networks:
  v6neta: {key: 601, router: v6r}
  v6netb: {key: 70601}             # not a VLAN id: local VLAN hashed from it
endpoints:
  v6a1: {host: v6h1, kind: namespace, network: v6neta, ip: "2001:db8:6::1/64"}
  v6a3: {host: v6h1, kind: namespace, network: v6neta, ip: "2001:db8:6::3/64"}
  v6a2: {host: v6h2, kind: namespace, network: v6neta, ip: "2001:db8:6::2/64"}
  v6r:  {host: v6h2, kind: namespace, network: v6neta, ip: "2001:db8:6::fe/64"}
  v6b1: {host: v6h1, kind: namespace, network: v6netb, ip: "2001:db8:6::1/64"}
  v6b2: {host: v6h2, kind: namespace, network: v6netb, ip: "2001:db8:6::2/64"}
"""
A = ("v6a1", "v6a2", "v6a3", "v6r")
B = ("v6b1", "v6b2")
ALL_NODES, ALL_NODES_MAC = "ff02::1", "33:33:00:00:00:01"
SETTLE = 0.4                   # after the controls arrived, for late frames
EXPERIMENTAL_OPTION = 253      # RFC 4727: an ND option type for experiments


def group_mac(address: str) -> str:
    low = int(ipaddress.IPv6Address(address)) & 0xFFFFFFFF
    return "33:33:" + ":".join(f"{(low >> s) & 0xFF:02x}" for s in (24, 16, 8, 0))


def marker_option(tok: str, label: str) -> Raw:
    """The marker as a well-formed ND option every receiver ignores."""
    data = attack.payload(tok, label)
    units = (len(data) + 2 + 7) // 8
    return Raw(bytes([EXPERIMENTAL_OPTION, units]) + data.ljust(units * 8 - 2, b"\0"))


def neighbour_mac(name: str, address: str) -> str | None:
    out = ns(name, "ip", "-j", "-6", "neigh", "show", address, "dev", "eth0").stdout
    entries = [e for e in json.loads(out or "[]") if e.get("state") != ["FAILED"]]
    return entries[0].get("lladdr") if entries else None


def addresses(name: str) -> list[dict]:
    out = ns(name, "ip", "-j", "-6", "addr", "show", "dev", "eth0").stdout
    return json.loads(out)[0]["addr_info"]


def default_routes(name: str) -> str:
    return ns(name, "ip", "-6", "route", "show", "default").stdout


class Fabric:
    def __init__(self, topo, emu):
        self.topo, self.emu = topo, emu

    def ep(self, name):
        return self.topo.endpoint(name)

    def mac(self, name) -> str:
        return self.ep(name).mac

    def ip(self, name) -> str:
        return str(self.ep(name).ip.ip)

    def lla(self, name) -> str:
        return str(self.ep(name).ipv6_link_local)

    def eth(self, src, dst_mac, src_mac=None):
        return Ether(src=src_mac or self.mac(src), dst=dst_mac)

    def attack(self, sender: str, frames: dict, controls: dict[str, set[str]]) -> dict:
        """Send each labelled frame (``frames[label](tok)`` builds it with its
        marker) from ``sender``, capture on every other endpoint; wait for the
        controls (labels among ``frames`` that must reach exactly their
        receivers).  Returns label -> endpoints reached."""
        tok = attack.token()
        where = {name: "eth0" for name in self.topo.endpoints if name != sender}
        with attack.Capture(where, tok) as capture:
            attack.send(sender, "eth0", [build(tok) for build in frames.values()])
            capture.wait_for(controls)
            time.sleep(SETTLE)
            return capture.snapshot()


@pytest.fixture(scope="module")
def fabric(tmp_path_factory):
    path = tmp_path_factory.mktemp("ipv6") / "ipv6.yaml"
    path.write_text(TOPOLOGY)
    topo = topology.load(path)
    emu = emulation.Emulation(topo)
    try:
        emu.up(None)
        emu.wait_programmed()
        f = Fabric(topo, emu)
        # Each endpoint's link-local address (the model's) goes through DAD,
        # which port security must let through.
        deadline = time.monotonic() + 10
        for name in topo.endpoints:
            while any("tentative" in a for a in addresses(name)) and time.monotonic() < deadline:
                time.sleep(0.1)
        yield f
    finally:
        emu.down()


class Sniff(attack.Listener):
    """Every frame arriving at the given endpoints, as scapy packets."""

    def __init__(self, names):
        super().__init__({n: "eth0" for n in names})
        self.frames = {n: [] for n in names}

    def arrived(self, ns: str, data: bytes) -> None:
        self.frames[ns].append(Ether(data))

    def solicitations(self, name, target=None, src=None):
        return [p for p in self.frames[name] if ICMPv6ND_NS in p
                and (target is None or p[ICMPv6ND_NS].tgt == target)
                and (src is None or p[IPv6].src == src)]


# -- the kernels agree with the model ---------------------------------------------

def test_every_endpoint_has_its_models_link_local_address_done_with_dad(fabric):
    for name in fabric.topo.endpoints:
        info = addresses(name)
        link = [a["local"] for a in info if a.get("scope") == "link"]
        assert link == [fabric.lla(name)], (name, info)
        assert not [a for a in info if "tentative" in a or "dadfailed" in a], (name, info)


# -- reachability: ping, TCP, the ND responder -------------------------------------

def test_ipv6_ping_crosses_the_tunnel_in_both_networks_reusing_addresses(fabric):
    for src, dst in (("v6a1", "v6a2"), ("v6a2", "v6a1"), ("v6a3", "v6r"),
                     ("v6b1", "v6b2"), ("v6b2", "v6b1")):
        result = ping(src, fabric.ip(dst))
        assert result.returncode == 0, (src, dst, result.stdout + result.stderr)
        # the address is reused in the other network: the cache says who answered
        assert neighbour_mac(src, fabric.ip(dst)) == fabric.mac(dst)
    result = ping("v6a1", f"{fabric.lla('v6a2')}%eth0")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ipv6_tcp_carries_a_known_stream_across_the_tunnel(fabric):
    data = hashlib.sha256(b"nsgre").digest() * (4 * 1024 * 1024 // 32)      # 4 MiB
    server = subprocess.Popen(
        ["ip", "netns", "exec", "v6a2", "python3", "-c",
         "import socket,hashlib\n"
         "s=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
         "s.bind(('::',5601));s.listen(1);print('ready',flush=True)\n"
         "c,_=s.accept();h=hashlib.sha256();n=0\n"
         "while True:\n"
         "  b=c.recv(65536)\n"
         "  if not b: break\n"
         "  h.update(b);n+=len(b)\n"
         "print(n,h.hexdigest(),flush=True)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        client = subprocess.run(
            ["ip", "netns", "exec", "v6a1", "python3", "-c",
             "import socket,sys\n"
             "c=socket.create_connection(('2001:db8:6::2',5601),timeout=20)\n"
             "c.sendall(sys.stdin.buffer.read());c.close()"],
            input=data, capture_output=True, timeout=60)
        assert client.returncode == 0, client.stderr
        out, _ = server.communicate(timeout=30)
    finally:
        server.kill()
        server.wait()
    assert out.split() == [str(len(data)), hashlib.sha256(data).hexdigest()]


def test_iperf3_runs_over_ipv6_across_the_tunnel(fabric):
    server = subprocess.Popen(["ip", "netns", "exec", "v6b2", "iperf3", "-s", "-1", "-p", "5602"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = ns("v6b1", "iperf3", "-6", "-c", fabric.ip("v6b2"), "-p", "5602", "-t", "2", "-J",
                 timeout=30, check=False)
        assert out.returncode == 0, out.stdout[-500:] + out.stderr
        received = json.loads(out.stdout)["end"]["sum_received"]["bytes"]
        assert received > 1_000_000
    finally:
        server.wait(timeout=10)


def test_a_solicitation_for_a_known_address_is_answered_on_the_asking_host(fabric):
    """The kernel's own solicitations get the bridge's advertisement (the
    checksum and every field right, or the kernel would ignore it), and the
    solicited endpoint, on the other host, never sees them."""
    for src, dst in (("v6a1", "v6a2"), ("v6b1", "v6b2"), ("v6a1", "v6a3")):
        ns(src, "ip", "-6", "neigh", "flush", "dev", "eth0")
        with Sniff([dst]) as sniff:
            result = ping(src, fabric.ip(dst))
            time.sleep(SETTLE)
        assert result.returncode == 0, result.stdout + result.stderr
        assert neighbour_mac(src, fabric.ip(dst)) == fabric.mac(dst)
        assert sniff.solicitations(dst, fabric.ip(dst), fabric.ip(src)) == [], \
            f"{src}'s solicitation for {dst} reached it"
    # and a crafted one, from the link-local address, for a link-local target
    tok = attack.token()
    frame = (fabric.eth("v6a1", group_mac(solicited_node(fabric.lla("v6a2"))))
             / IPv6(src=fabric.lla("v6a1"), dst=solicited_node(fabric.lla("v6a2")), hlim=255)
             / ICMPv6ND_NS(tgt=fabric.lla("v6a2")) / ICMPv6NDOptSrcLLAddr(lladdr=fabric.mac("v6a1"))
             / marker_option(tok, "ns"))
    with Sniff(["v6a1", "v6a2"]) as sniff:
        attack.send("v6a1", "eth0", [frame], copies=1)
        time.sleep(SETTLE)
    answers = [p for p in sniff.frames["v6a1"] if ICMPv6ND_NA in p
               and p[ICMPv6ND_NA].tgt == fabric.lla("v6a2")]
    assert answers, "no advertisement came back"
    na = answers[0]
    assert (na[Ether].src, na[Ether].dst) == (fabric.mac("v6a2"), fabric.mac("v6a1"))
    assert (na[IPv6].src, na[IPv6].dst, na[IPv6].hlim) == (fabric.lla("v6a2"),
                                                          fabric.lla("v6a1"), 255)
    assert (na[ICMPv6ND_NA].R, na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O) == (0, 1, 1)
    assert na[ICMPv6NDOptDstLLAddr].lladdr == fabric.mac("v6a2")
    sent = na[ICMPv6ND_NA].cksum
    del na[ICMPv6ND_NA].cksum
    assert Ether(bytes(na))[ICMPv6ND_NA].cksum == sent, "ICMPv6 checksum not updated"
    assert not sniff.solicitations("v6a2"), "the solicitation crossed the tunnel"


# -- port security: spoofed neighbour discovery ----------------------------------

def test_unsolicited_advertisements_claiming_a_neighbours_address_poison_no_cache(fabric):
    """The reported attack: v6a1 advertises v6a2's address (to all nodes,
    override) with its own MAC, or as v6a2; the victims v6a3 (same host as
    the attacker) and v6r (v6a2's host) keep v6a2's MAC, and pings meant
    for v6a2 reach v6a2."""
    f = fabric
    for victim in ("v6a3", "v6r"):
        assert ping(victim, f.ip("v6a2")).returncode == 0
    assert ping("v6b2", f.ip("v6b1")).returncode == 0
    atk = f.mac("v6a1")

    def na(target, tll, src, dst=ALL_NODES, dst_mac=ALL_NODES_MAC, flags=(0, 0, 1)):
        r, s, o = flags
        return lambda tok: (f.eth("v6a1", dst_mac) / IPv6(src=src, dst=dst, hlim=255)
                            / ICMPv6ND_NA(tgt=target, R=r, S=s, O=o)
                            / ICMPv6NDOptDstLLAddr(lladdr=tll) / marker_option(tok, ""))
    frames = {}
    for src in (f.ip("v6a1"), f.lla("v6a1"), f.ip("v6a2")):
        frames[f"claim a2 from {src}"] = na(f.ip("v6a2"), atk, src)
        frames[f"claim a2 link-local from {src}"] = na(f.lla("v6a2"), atk, src)
    frames["claim a2 with a2's mac"] = na(f.ip("v6a2"), f.mac("v6a2"), f.ip("v6a1"))
    frames["claim a2 to a3 solicited"] = na(f.ip("v6a2"), atk, f.ip("v6a1"), f.ip("v6a3"),
                                            f.mac("v6a3"), (0, 1, 1))
    # (v6b1's address is v6a1's own too: its link-local address is not)
    frames["claim b1's link-local (other network)"] = na(f.lla("v6b1"), atk, f.lla("v6a1"))
    frames["claim own address with a2's mac"] = na(f.ip("v6a1"), f.mac("v6a2"), f.ip("v6a1"))
    frames["control: own address"] = na(f.ip("v6a1"), atk, f.ip("v6a1"))
    frames = {label: _relabel(build, label) for label, build in frames.items()}
    reached = f.attack("v6a1", frames, {"control: own address": {"v6a2", "v6a3", "v6r"}})
    assert reached == {"control: own address": {"v6a2", "v6a3", "v6r"}}
    for victim in ("v6a3", "v6r"):
        assert neighbour_mac(victim, f.ip("v6a2")) == f.mac("v6a2"), victim
        assert ping(victim, f.ip("v6a2")).returncode == 0
    assert neighbour_mac("v6b2", f.ip("v6b1")) == f.mac("v6b1")


def _relabel(build, label):
    """``build(tok)`` with the marker option carrying ``label``."""
    def with_label(tok):
        frame = build(tok)
        opt = frame.getlayer(Raw)
        fixed = marker_option(tok, label)
        opt.load = fixed.load
        return frame
    return with_label


def test_solicitations_with_a_forged_source_link_layer_address_poison_no_cache(fabric):
    """v6a1 solicits with v6a2's address or MAC as its own: a receiver would
    map v6a2's address to the attacker (or v6a1's to v6a2's MAC).  A
    solicitation for a known address is answered by the bridge whatever it
    carries (the answer goes back to the asker only), so the ones for an
    unknown address test port security alone."""
    f = fabric
    assert ping("v6a3", f.ip("v6a2")).returncode == 0
    assert ping("v6a3", f.ip("v6a1")).returncode == 0
    assert ping("v6r", f.ip("v6a1")).returncode == 0

    def sol(target, src, sll, unicast_to=None):
        dst = f.ip(unicast_to) if unicast_to else solicited_node(target)
        dst_mac = f.mac(unicast_to) if unicast_to else group_mac(solicited_node(target))
        return lambda tok: (f.eth("v6a1", dst_mac) / IPv6(src=src, dst=dst, hlim=255)
                            / ICMPv6ND_NS(tgt=target) / ICMPv6NDOptSrcLLAddr(lladdr=sll)
                            / marker_option(tok, ""))
    frames = {
        "as a2 with own mac": sol(f.ip("v6a3"), f.ip("v6a2"), f.mac("v6a1")),
        "as a2 with own mac to a3": sol(f.ip("v6a3"), f.ip("v6a2"), f.mac("v6a1"), "v6a3"),
        "own address with a2's mac": sol(f.ip("v6a3"), f.ip("v6a1"), f.mac("v6a2")),
        "own address with a2's mac to r": sol(f.ip("v6r"), f.ip("v6a1"), f.mac("v6a2"), "v6r"),
        "link-local with a2's mac": sol(f.lla("v6a3"), f.lla("v6a1"), f.mac("v6a2")),
        "as r with own mac": sol("2001:db8:6::99", f.ip("v6r"), f.mac("v6a1")),
        # for an address nobody has: not answered by the bridge, so only
        # port security stands between these and every endpoint of A
        "own address with a2's mac, unknown target": sol("2001:db8:6::99", f.ip("v6a1"),
                                                         f.mac("v6a2")),
        "link-local with a2's mac, unknown target": sol("2001:db8:6::99", f.lla("v6a1"),
                                                        f.mac("v6a2")),
        "own address without one, unknown target": lambda tok: (
            f.eth("v6a1", group_mac(solicited_node("2001:db8:6::99")))
            / IPv6(src=f.ip("v6a1"), dst=solicited_node("2001:db8:6::99"), hlim=255)
            / ICMPv6ND_NS(tgt="2001:db8:6::99") / marker_option(tok, "")),
        "without a source link-layer address": lambda tok: (
            f.eth("v6a1", group_mac(solicited_node(f.ip("v6a3"))))
            / IPv6(src=f.ip("v6a1"), dst=solicited_node(f.ip("v6a3")), hlim=255)
            / ICMPv6ND_NS(tgt=f.ip("v6a3")) / marker_option(tok, "")),
        "control: unknown target": sol("2001:db8:6::99", f.ip("v6a1"), f.mac("v6a1")),
    }
    frames = {label: _relabel(build, label) for label, build in frames.items()}
    reached = f.attack("v6a1", frames, {"control: unknown target": {"v6a2", "v6a3", "v6r"}})
    assert reached == {"control: unknown target": {"v6a2", "v6a3", "v6r"}}
    assert neighbour_mac("v6a3", f.ip("v6a2")) == f.mac("v6a2")
    assert neighbour_mac("v6a3", f.ip("v6a1")) == f.mac("v6a1")
    assert neighbour_mac("v6r", f.ip("v6a1")) == f.mac("v6a1")


def test_router_advertisements_and_redirects_only_from_the_networks_router(fabric):
    f = fabric
    ns("v6a2", "ip", "-6", "route", "flush", "proto", "ra", check=False)
    ns("v6a3", "ip", "-6", "route", "flush", "proto", "ra", check=False)

    def ra(sender, lifetime=1800):
        return lambda tok: (f.eth(sender, ALL_NODES_MAC)
                            / IPv6(src=f.lla(sender), dst=ALL_NODES, hlim=255)
                            / ICMPv6ND_RA(routerlifetime=lifetime)
                            / ICMPv6NDOptSrcLLAddr(lladdr=f.mac(sender))
                            / marker_option(tok, ""))

    def redirect(sender, to):
        return lambda tok: (f.eth(sender, f.mac(to))
                            / IPv6(src=f.lla(sender), dst=f.ip(to), hlim=255)
                            / ICMPv6ND_Redirect(tgt=f.lla(sender), dst=f.ip("v6a2"))
                            / ICMPv6NDOptDstLLAddr(lladdr=f.mac(sender))
                            / marker_option(tok, ""))
    frames = {"ra from a1": ra("v6a1"), "redirect from a1 to a3": redirect("v6a1", "v6a3")}
    frames = {label: _relabel(build, label) for label, build in frames.items()}
    assert f.attack("v6a1", frames, {}) == {}
    assert f.lla("v6a1") not in default_routes("v6a3") + default_routes("v6a2")
    # the same from the network's router: delivered in A, and believed
    frames = {"ra from r": ra("v6r"), "redirect from r to a3": redirect("v6r", "v6a3")}
    frames = {label: _relabel(build, label) for label, build in frames.items()}
    reached = f.attack("v6r", frames, {"ra from r": {"v6a1", "v6a2", "v6a3"},
                                       "redirect from r to a3": {"v6a3"}})
    assert reached == {"ra from r": {"v6a1", "v6a2", "v6a3"}, "redirect from r to a3": {"v6a3"}}
    deadline = time.monotonic() + 3
    while f.lla("v6r") not in default_routes("v6a2") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f.lla("v6r") in default_routes("v6a2"), default_routes("v6a2")
    # withdraw it (router lifetime 0)
    attack.send("v6r", "eth0", [_relabel(ra("v6r", 0), "withdraw")("0")], copies=1)
    for name in A:
        ns(name, "ip", "-6", "route", "flush", "proto", "ra", check=False)


def test_only_the_own_link_local_address_is_a_source(fabric):
    f = fabric

    def udp(src_ip, dst_mac, dst_ip):
        return lambda tok: (f.eth("v6a1", dst_mac) / IPv6(src=src_ip, dst=dst_ip)
                            / UDP(sport=9, dport=9) / Raw(attack.payload(tok, "")))
    frames = {}
    for owner, forged in (("a2 link-local", f.lla("v6a2")), ("b1 link-local", f.lla("v6b1")),
                          ("fe80::1", "fe80::1"), ("a2 address", f.ip("v6a2")),
                          ("unspecified", "::")):
        frames[f"{owner} to a3"] = udp(forged, f.mac("v6a3"), f.lla("v6a3"))
        frames[f"{owner} to all"] = udp(forged, ALL_NODES_MAC, ALL_NODES)
        frames[f"{owner} to b1"] = udp(forged, f.mac("v6b1"), f.lla("v6b1"))
    frames["control: own link-local to a3"] = udp(f.lla("v6a1"), f.mac("v6a3"), f.lla("v6a3"))
    frames["control: own link-local to all"] = udp(f.lla("v6a1"), ALL_NODES_MAC, ALL_NODES)
    frames = {label: _relabel_raw(build, label) for label, build in frames.items()}
    want = {"control: own link-local to a3": {"v6a3"},
            "control: own link-local to all": {"v6a2", "v6a3", "v6r"}}
    assert f.attack("v6a1", frames, want) == want


def _relabel_raw(build, label):
    def with_label(tok):
        frame = build(tok)
        frame.getlayer(Raw).load = attack.payload(tok, label)
        return frame
    return with_label


# -- duplicate address detection ---------------------------------------------------

@pytest.mark.parametrize("name", ["v6a3", "v6b1"])
def test_duplicate_address_detection_still_works(fabric, name):
    """An address configured with DAD comes up (not tentative, not failed):
    v6b1's address is v6a1's too, in the other network, and is no
    duplicate there.  The probe floods its own network (as OVN does) and
    never the other."""
    f = fabric
    address = f"{f.ip(name)}/64"
    network = B if name in B else A
    others = [n for n in A + B if n != name]
    with Sniff(others) as sniff:
        ns(name, "ip", "-6", "addr", "del", address, "dev", "eth0")
        ns(name, "ip", "-6", "addr", "add", address, "dev", "eth0")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            mine = [a for a in addresses(name) if a["local"] == f.ip(name)]
            if mine and "tentative" not in mine[0]:
                break
            time.sleep(0.1)
        time.sleep(SETTLE)
    assert mine and "tentative" not in mine[0] and "dadfailed" not in mine[0], mine
    probed = {n for n in others if sniff.solicitations(n, f.ip(name), "::")}
    assert probed == {n for n in network if n != name}
    peer = "v6b2" if name == "v6b1" else "v6a2"
    assert ping(name, f.ip(peer)).returncode == 0


# -- isolation -----------------------------------------------------------------------

def test_ipv6_frames_never_cross_between_networks_reusing_addresses(fabric):
    f = fabric

    def echo(src, dst_mac, dst_ip):
        return lambda tok: (f.eth(src, dst_mac) / IPv6(src=f.ip(src), dst=dst_ip)
                            / ICMPv6EchoRequest(data=attack.payload(tok, "")))
    frames = {"to b2's mac": echo("v6a1", f.mac("v6b2"), f.ip("v6b2")),
              "to b1's mac": echo("v6a1", f.mac("v6b1"), f.ip("v6b1")),
              "to ::2 at a2": echo("v6a1", f.mac("v6a2"), f.ip("v6a2")),
              "to all nodes": echo("v6a1", ALL_NODES_MAC, ALL_NODES)}
    frames = {label: _relabel_echo(build, label) for label, build in frames.items()}
    want = {"to ::2 at a2": {"v6a2"}, "to all nodes": {"v6a2", "v6a3", "v6r"}}
    assert f.attack("v6a1", frames, want) == want
    frames = {"b to all nodes": echo("v6b1", ALL_NODES_MAC, ALL_NODES),
              "b to a2's mac": echo("v6b1", f.mac("v6a2"), f.ip("v6a2"))}
    frames = {label: _relabel_echo(build, label) for label, build in frames.items()}
    want = {"b to all nodes": {"v6b2"}}
    assert f.attack("v6b1", frames, want) == want


def _relabel_echo(build, label):
    def with_label(tok):
        frame = build(tok)
        frame[ICMPv6EchoRequest].data = attack.payload(tok, label)
        return frame
    return with_label


# -- what the switches report is what was meant ------------------------------------

def test_the_switches_report_the_nd_flows_back_as_the_model_says(fabric):
    """The controller's audit reads every flow back from each switch (os-ken
    decodes the reply: ND matches, the Ericsson set_fields) every interval
    and finds nothing to repair: what OVS holds is exactly the model."""
    import re
    log = fabric.emu.run_dir / "osken.log"
    start = len(log.read_text())
    pattern = re.compile(r"nsgre: (\S+) audited: (.*?) \(read in")
    deadline = time.monotonic() + 15
    audited: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        audited = {}
        for host, verdict in pattern.findall(log.read_text()[start:]):
            audited.setdefault(host, []).append(verdict)
        if set(audited) == set(fabric.topo.hosts):
            break
        time.sleep(0.5)
    assert set(audited) == set(fabric.topo.hosts), audited
    assert all(v.endswith(" flows as sent") for seen in audited.values() for v in seen), audited
