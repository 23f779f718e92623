"""Real QEMU guests (``--guests qemu|libvirt``) on the emulated hosts, the
real controller, real packets.  The guests boot the project's image
(``mininet_scenarios.guest_image``): a Debian cloud kernel and busybox,
configured only by the controller's DHCP.  What must happen is asserted at
the receivers: inside the guests through their command channel, inside
the namespaces with sockets and packet captures.

    gh1 (198.18.0.41): gvm1 (guest, gneta 10.9.1.2), gns2 (namespace, gnetb 10.9.1.1)
    gh2 (198.18.0.42): gns1 (namespace, gneta 10.9.1.1), gvm2 (guest, gnetb 10.9.1.2)

gneta and gnetb reuse the same addresses, so a ping reply proves nothing
about isolation: marked frames read at the receivers do.
"""

from __future__ import annotations

import hashlib
import random
import re
import subprocess
import sys
import threading
import time

import pytest

import topology
from mininet_scenarios import emulation, guest_image
from mininet_scenarios.check import check, interfaces
from mininet_scenarios.guests import Guest

from conftest import ns, ping

TOPOLOGY = """\
tunnel: {tunnel}
hosts:
  gh1: {{underlay_ip: 198.18.0.41}}
  gh2: {{underlay_ip: 198.18.0.42}}
networks:
  gneta: {{key: 4101}}
  gnetb: {{key: 4102}}
endpoints:
  gvm1: {{host: gh1, kind: vm,        network: gneta, ip: 10.9.1.2/24,
          iface_id: 3f0b7c52-8d1e-4c1a-9d0e-6a1f0e9b0a01}}
  gns1: {{host: gh2, kind: namespace, network: gneta, ip: 10.9.1.1/24}}
  gvm2: {{host: gh2, kind: vm,        network: gnetb, ip: 10.9.1.2/24,
          iface_id: 3f0b7c52-8d1e-4c1a-9d0e-6a1f0e9b0a02}}
  gns2: {{host: gh1, kind: namespace, network: gnetb, ip: 10.9.1.1/24}}
"""

TO_GUEST = random.Random(4101).randbytes(3 * 1024 * 1024 + 17)


def load(tmp_path_factory, text: str, name: str):
    path = tmp_path_factory.mktemp(name) / f"{name}.yaml"
    path.write_text(text)
    return topology.load(str(path))


@pytest.fixture(scope="module", params=["gre", "vxlan"])
def fabric(request, tmp_path_factory):
    """Two qemu guests and two namespaces, booted once per tunnel type."""
    topo = load(tmp_path_factory, TOPOLOGY.format(tunnel=request.param), request.param)
    emu = emulation.Emulation(topo, guests="qemu")
    try:
        emu.up(None)
        emu.wait_programmed()
        yield topo, emu, emu.guest_handles()
    finally:
        emu.down()


def stream_from(namespace: str, ip: str, port: int) -> bytes:
    """Everything a TCP connection from ``namespace`` to ip:port receives."""
    code = ("import socket,sys\n"
            "s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=60)\n"
            "while True:\n"
            "    d=s.recv(1<<16)\n"
            "    if not d: break\n"
            "    sys.stdout.buffer.write(d)\n")
    proc = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", code, ip,
                           str(port)], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def send_to(namespace: str, ip: str, port: int, data: bytes, timeout: float = 30.0):
    """Connect from ``namespace`` (retrying until something listens), send
    ``data``, close."""
    code = ("import socket,sys,time\n"
            "deadline=time.monotonic()+float(sys.argv[3])\n"
            "while True:\n"
            "    try:\n"
            "        s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=30); break\n"
            "    except OSError:\n"
            "        if time.monotonic()>deadline: raise\n"
            "        time.sleep(0.1)\n"
            "s.sendall(sys.stdin.buffer.read()); s.shutdown(socket.SHUT_WR)\n"
            "while s.recv(4096): pass\n")
    proc = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", code, ip,
                           str(port), str(timeout)], input=data, capture_output=True,
                          timeout=timeout + 60)
    assert proc.returncode == 0, proc.stderr.decode()


def received_in_guest(guest: Guest, port: int, send) -> tuple[int, str]:
    """Listen on ``port`` inside the guest while ``send()`` runs; the byte
    count and MD5 the guest itself read (the verdict at the receiver)."""
    result = {}

    def listen():
        result["out"] = guest.run(f"nc -l -p {port} > /tmp/in; wc -c < /tmp/in; "
                                  "md5sum < /tmp/in; rm -f /tmp/in", timeout=120, check=True)[1]
    listener = threading.Thread(target=listen)
    listener.start()
    try:
        send()
    finally:
        listener.join(130)
    count, digest = result["out"].split()[:2]
    return int(count), digest


def underlay_capture(host: str, expr: str) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", emulation.UNDERLAY_NS, "tcpdump", "-l", "-n",
                             "-v", "-i", emulation.underlay_port(host), "-c", "1", expr],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


# -- (a) a guest and a namespace across the tunnel ----------------------------------
def test_guests_get_their_model_address_and_a_tunnel_safe_mtu_only_by_dhcp(fabric):
    topo, _, guests = fabric
    for name, guest in guests.items():
        ep = topo.endpoint(name)
        assert f"dhcp {ep.ip} mtu {topo.network_mtu(ep.network)}" in guest.console(), \
            guest.console_tail()
        _, cmdline = guest.run("cat /proc/cmdline", check=True)
        assert str(ep.ip.ip) not in cmdline                   # nothing but DHCP told it
        _, addr = guest.run("ip -4 addr show dev eth0", check=True)
        assert f"inet {ep.ip} " in addr
        assert f"mtu {topo.network_mtu(ep.network)} " in addr


def test_guest_and_namespace_ping_each_other_across_the_tunnel_with_the_networks_key(fabric):
    topo, _, guests = fabric
    key = topo.network("gneta").key
    # Packets leaving gh1 (outer source) with gvm1's inner source address:
    # only gvm1 sends from 10.9.1.2 on gh1 (gvm2 reuses it on gh2).
    if topo.tunnel == "gre":
        expr, want = "src host 198.18.0.41 and ip proto 47 and ip[54:4] = 0x0a090102", \
            f"key=0x{key:x}"
    else:
        expr, want = "src host 198.18.0.41 and udp port 4789 and ip[62:4] = 0x0a090102", \
            f"vni {key}"
    capture = underlay_capture("gh1", expr)
    try:
        time.sleep(1)
        assert guests["gvm1"].ping("10.9.1.1")                   # guest -> namespace
        out, _ = capture.communicate(timeout=15)
    finally:
        capture.kill()
    assert want in out, out
    assert ping("gns1", "10.9.1.2").returncode == 0           # namespace -> guest


def test_a_stream_of_known_length_crosses_the_tunnel_from_guest_to_namespace(fabric):
    data = stream_from("gns1", "10.9.1.2", guest_image.STREAM_PORT)
    assert len(data) == guest_image.STREAM_BYTES
    assert data == guest_image.stream_data()


def test_a_stream_of_known_length_crosses_the_tunnel_from_namespace_to_guest(fabric):
    _, _, guests = fabric
    count, digest = received_in_guest(
        guests["gvm1"], 7100, lambda: send_to("gns1", "10.9.1.2", 7100, TO_GUEST))
    assert count == len(TO_GUEST)
    assert digest == hashlib.md5(TO_GUEST).hexdigest()


def test_the_guest_count_service_reports_what_a_namespace_sent(fabric):
    code = ("import socket,sys\n"
            f"s=socket.create_connection(('10.9.1.2',{guest_image.COUNT_PORT}),timeout=60)\n"
            "s.sendall(b'x'*1000003); s.shutdown(socket.SHUT_WR)\n"
            "r=b''\n"
            "while True:\n"
            "    d=s.recv(100)\n"
            "    if not d: break\n"
            "    r+=d\n"
            "print(r.decode().strip())\n")
    out = ns("gns2", sys.executable, "-c", code, timeout=120).stdout.strip()
    assert out == "1000003"                                   # gvm2, gnetb's 10.9.1.2


# -- (b) isolation where the networks reuse addresses ------------------------------
def test_guests_and_namespaces_reusing_addresses_reach_only_their_own_network(fabric):
    topo, _, guests = fabric
    result = check(topo, guests)
    table = result.table([i.label for i in interfaces(topo)])
    # gneta: gvm1 gns1; gnetb: gvm2 gns2 -> 4 same-network ordered pairs, 8 across.
    assert (result.same_ok, result.same_total) == (4, 4), table
    assert (result.cross_ok, result.cross_total) == (8, 8), table


def test_a_guest_resolves_its_peers_reused_address_to_its_own_networks_endpoint(fabric):
    topo, _, guests = fabric
    for guest, peer in (("gvm1", "gns1"), ("gvm2", "gns2")):
        assert guests[guest].ping("10.9.1.1")
        _, neigh = guests[guest].run("ip neigh show 10.9.1.1", check=True)
        assert topo.endpoint(peer).mac in neigh, (guest, neigh)


def test_every_interface_carries_what_a_hypervisor_writes_and_is_marked_installed(fabric):
    topo, emu, guests = fabric
    for host in topo.hosts:
        found = {ext.get("iface-id"): (name, ext) for name, (ext, _) in emu.interfaces(host).items()}
        for ep in topo.endpoints_on(host):
            name, ext = found[ep.iface_id]
            assert ext["attached-mac"] == ep.mac and ext["iface-status"] == "active"
            assert ext["nsgre-installed"] == "true" and int(ext["nsgre-installed-ts"]) > 0
            if ep.kind == "vm":
                assert name == guests[ep.name].tap and re.match(r"g-gvm\d-1$", name)
                assert ext["vm-id"] == guests[ep.name].record["uuid"]
            else:
                assert name == ep.port


def test_a_qemu_guest_power_cycled_onto_a_new_tap_keeps_its_network(fabric):
    topo, emu, _ = fabric
    line = emu.cycle("gvm1")
    assert re.match(r"gvm1: power-cycled \(qemu, tap g-gvm1-1 -> g-gvm1-2, ofport \d+ -> \d+\); "
                    r"first reply across the tunnel [\d.]+ s after start", line), line
    guest = emu.guest_handles()["gvm1"]
    ext, _ = emu.interfaces("gh1")["g-gvm1-2"]
    assert ext["nsgre-installed"] == "true"
    assert "g-gvm1-1" not in emu.interfaces("gh1")
    result = check(topo, emu.guest_handles())
    assert result.passed, result.table([i.label for i in interfaces(topo)])
    assert guest.lease()["address"] == topo.endpoint("gvm1").ip


# -- (c) libvirt: a power cycle brings the tap back as vnetN+1 ------------------------
LIBVIRT_TOPOLOGY = """\
tunnel: gre
hosts:
  gh1: {underlay_ip: 198.18.0.41}
  gh2: {underlay_ip: 198.18.0.42}
networks:
  gneta: {key: 4101}
  gnetb: {key: 4102}
endpoints:
  glv1: {host: gh1, kind: vm,        network: gneta, ip: 10.9.2.2/24,
         iface_id: 9a4e2b0c-5f6d-4e8a-b1c2-7d3e4f5a6b01}
  gns1: {host: gh2, kind: namespace, network: gneta, ip: 10.9.2.1/24}
  gns2: {host: gh2, kind: namespace, network: gnetb, ip: 10.9.2.2/24}
"""


def test_a_libvirt_guest_power_cycled_comes_back_on_a_new_vnet_in_its_network(tmp_path_factory):
    topo = load(tmp_path_factory, LIBVIRT_TOPOLOGY, "libvirt")
    emu = emulation.Emulation(topo, guests="libvirt")
    try:
        emu.up(None)
        emu.wait_programmed()
        guest = emu.guest_handles()["glv1"]
        assert guest.tap == "vnet0"
        before = emu.interfaces("gh1")["vnet0"]
        assert before[0]["iface-id"] == topo.endpoint("glv1").iface_id   # written by libvirt
        cycled_at = time.time()
        line = emu.cycle("glv1")
        assert re.match(r"glv1: power-cycled \(libvirt, tap vnet0 -> vnet1, ofport \d+ -> \d+\); "
                        r"first reply across the tunnel [\d.]+ s after start", line), line
        ifaces = emu.interfaces("gh1")
        assert "vnet0" not in ifaces
        ext, ofport = ifaces["vnet1"]
        assert ofport != before[1]
        assert ext["iface-id"] == topo.endpoint("glv1").iface_id
        assert ext["attached-mac"] == topo.endpoint("glv1").mac
        assert ext["nsgre-installed"] == "true"
        assert int(ext["nsgre-installed-ts"]) / 1000 > cycled_at - 1
        guest = emu.guest_handles()["glv1"]
        assert guest.lease()["address"] == topo.endpoint("glv1").ip
        # Its network, and only its network: gns2 (gnetb) has glv1's address.
        result = check(topo, emu.guest_handles())
        table = result.table([i.label for i in interfaces(topo)])
        assert (result.same_ok, result.same_total) == (2, 2), table
        assert (result.cross_ok, result.cross_total) == (4, 4), table
    finally:
        emu.down()
    assert not {"gh1", "gh2"} & emulation.existing_netns()


def test_libvirt_refuses_a_guest_whose_iface_id_is_no_uuid_naming_it(tmp_path_factory):
    topo = load(tmp_path_factory, LIBVIRT_TOPOLOGY.replace(
        "iface_id: 9a4e2b0c-5f6d-4e8a-b1c2-7d3e4f5a6b01", "iface_id: glv1-port"), "nouuid")
    emu = emulation.Emulation(topo, guests="libvirt")
    with pytest.raises(emulation.EmulationError, match=r"endpoint glv1: libvirt needs a UUID"):
        emu.up(None)
    assert not {"gh1", "gh2"} & emulation.existing_netns()
